//! The global feed: paging, a transaction held open, wake-ups, epochs.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use pyairtable_eventstore::testkit::TestStore;
use pyairtable_eventstore::{EventStore, ExpectedVersion, Position, StreamWrite};
use uuid::Uuid;

use crate::support::{events, meta, stream};

#[tokio::test]
async fn read_all_pages_through_the_feed_in_order_exactly_once() -> anyhow::Result<()> {
    let test = TestStore::new().await;
    let m = meta();
    let mut appended = Vec::new();
    let mut last = Position::START;
    for i in 0..5_u64 {
        for s in ["rec-a", "rec-b", "rec-c"] {
            let r = test
                .append(
                    &stream(s),
                    ExpectedVersion::Any,
                    events(i * 2..i * 2 + 2),
                    &m,
                )
                .await?;
            appended.extend(r.events.iter().map(|e| e.event_id));
            last = r.position;
        }
    }
    // Transactions anywhere in the cluster (other tests) can hold the feed back for a moment.
    assert!(test.wait_for_commit(&last, Duration::from_secs(30)).await?);
    let mut seen = Vec::new();
    let mut after = Position::START;
    loop {
        let batch = test.read_all(&after, 7).await?;
        assert!(batch.events.len() <= 7);
        if batch.events.is_empty() {
            assert_eq!(batch.next, after);
            break;
        }
        for pair in batch.events.windows(2) {
            assert!(pair[0].position < pair[1].position);
        }
        assert!(batch.events[0].position > after);
        // The checkpoint survives a trip through its token form.
        after = batch.next.to_string().parse()?;
        assert_eq!(after, batch.next);
        seen.extend(batch.events.iter().map(|e| e.event_id));
    }
    assert_eq!(seen, appended);
    assert_eq!(test.head().await?, after);
    test.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_held_open_is_waited_for_not_skipped() -> anyhow::Result<()> {
    let test = TestStore::new().await;
    let m = meta();
    let start = test.head().await?;
    let mut feed = Box::pin(test.subscribe_all(start));

    // T1 takes its feed position first and stays open.
    let mut held = test.pool().begin().await?;
    let held_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *held)
        .await?;
    let late = test
        .append_many_in(
            &mut held,
            vec![StreamWrite {
                stream: stream("rec-late"),
                expected: ExpectedVersion::NoStream,
                events: events(0..1),
            }],
            &meta(),
        )
        .await?;

    // Later appends commit while T1 is open: a reader ordering by sequence alone would
    // deliver them and move its checkpoint past T1's event.
    let mut committed = Vec::new();
    for s in ["rec-early-1", "rec-early-2"] {
        let r = test
            .append(&stream(s), ExpectedVersion::NoStream, events(1..2), &m)
            .await?;
        assert!(r.position.pos > late[0].position.pos);
        committed.push(r.events[0].event_id);
    }

    // Nothing comes out of the feed while T1 is open...
    let early = tokio::time::timeout(Duration::from_millis(800), feed.next()).await;
    assert!(
        early.is_err(),
        "the feed delivered past an open transaction: {early:?}"
    );
    assert!(test.read_all(&start, 100).await?.events.is_empty());
    assert!(
        !test
            .wait_for_commit(&late[0].position, Duration::from_millis(200))
            .await?
    );

    // ...and diagnostics say why.
    let diag = test.diagnostics().await?;
    assert!(diag.held_back_events >= 2, "{diag:?}");
    assert_eq!(diag.head, start);
    assert!(diag.latest > diag.head);
    let ours = diag
        .open_transactions
        .iter()
        .find(|t| t.pid == Some(held_pid));
    let ours = ours.ok_or_else(|| anyhow::anyhow!("held transaction not listed: {diag:?}"))?;
    assert_eq!(ours.state, "idle in transaction");
    assert!(ours.age >= Duration::from_millis(800));
    let oldest = diag.oldest_open_transaction.clone();
    let oldest = oldest.ok_or_else(|| anyhow::anyhow!("no oldest transaction: {diag:?}"))?;
    // Sorted by transaction id age; its start can trail ours by the moment before our
    // transaction took its id.
    assert!(
        oldest.age + Duration::from_millis(200) >= ours.age,
        "{diag:?}"
    );
    assert!(diag.horizon_xid <= late[0].position.xid);

    // T1 commits without any NOTIFY: the subscription's held-back poll must find it.
    held.commit().await?;
    let mut delivered = Vec::new();
    for _ in 0..3 {
        let event = tokio::time::timeout(Duration::from_secs(10), feed.next()).await?;
        let event = event.ok_or_else(|| anyhow::anyhow!("feed ended"))??;
        delivered.push(event.event_id);
    }
    assert_eq!(
        delivered[0], late[0].events[0].event_id,
        "T1's event comes first: its xid is oldest"
    );
    assert_eq!(delivered[1..], committed[..]);
    assert!(
        test.wait_for_commit(&late[0].position, Duration::from_secs(5))
            .await?
    );
    assert_eq!(test.read_all(&start, 100).await?.events.len(), 3);
    drop(feed);
    test.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_wake_at_once_on_local_and_remote_commits() -> anyhow::Result<()> {
    // With a one-minute fallback poll, only a wake-up can deliver within the deadlines (which
    // leave room for other tests' transactions holding the cluster-wide horizon back).
    let test = TestStore::with_config(|c| c.poll_interval = Duration::from_secs(60)).await?;
    let other = EventStore::connect(test.config().clone()).await?;
    let mut feed = Box::pin(test.subscribe_all(Position::START));
    // Let the subscription catch up and go to sleep first.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), feed.next())
            .await
            .is_err()
    );

    let local = test
        .append(
            &stream("rec-local"),
            ExpectedVersion::Any,
            events(0..1),
            &meta(),
        )
        .await?;
    let got = tokio::time::timeout(Duration::from_secs(10), feed.next()).await?;
    assert_eq!(
        got.map(|r| r.map(|e| e.event_id).ok()),
        Some(Some(local.events[0].event_id))
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), feed.next())
            .await
            .is_err()
    );

    // Another store (as another process would be) appends: NOTIFY wakes this one.
    let remote = other
        .append(
            &stream("rec-remote"),
            ExpectedVersion::Any,
            events(1..2),
            &meta(),
        )
        .await?;
    let got = tokio::time::timeout(Duration::from_secs(10), feed.next()).await?;
    assert_eq!(
        got.map(|r| r.map(|e| e.event_id).ok()),
        Some(Some(remote.events[0].event_id))
    );
    assert!(
        test.wait_for_commit(&remote.position, Duration::from_secs(10))
            .await?
    );
    drop(feed);
    other.close().await;
    let closed = other
        .append(
            &stream("rec-closed"),
            ExpectedVersion::Any,
            events(2..3),
            &meta(),
        )
        .await;
    assert!(
        matches!(closed, Err(pyairtable_eventstore::StoreError::Database(_))),
        "{closed:?}"
    );
    test.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn a_restore_into_another_cluster_starts_a_new_epoch_after_the_old_one() -> anyhow::Result<()>
{
    let test = TestStore::new().await;
    let m = meta();
    let before = test
        .append(
            &stream("rec-old"),
            ExpectedVersion::NoStream,
            events(0..3),
            &m,
        )
        .await?;
    assert_eq!(before.position.epoch, 1);

    // Pretend the data was restored from a logical backup into another cluster: a different
    // system identifier, and stored transaction ids far ahead of this cluster's.
    sqlx::query("UPDATE store_epoch SET system_identifier = system_identifier + 1")
        .execute(test.pool())
        .await?;
    sqlx::query("UPDATE events SET xid = xid + 1000000000")
        .execute(test.pool())
        .await?;
    let restarted = EventStore::connect(test.config().clone()).await?;
    assert_eq!(
        restarted.check_epoch().await?,
        2,
        "connect bumped the epoch once"
    );
    let checkpoint = restarted.read_all(&Position::START, 2).await?.next;
    assert_eq!(checkpoint.epoch, 1);
    let after = restarted
        .append(
            &stream("rec-new"),
            ExpectedVersion::NoStream,
            events(3..4),
            &m,
        )
        .await?;
    assert_eq!(after.position.epoch, 2);
    assert!(after.position.xid < checkpoint.xid, "xids restarted lower");

    // Old rows (ids beyond this cluster's horizon) are still readable, and the new event comes
    // after them.
    assert!(
        restarted
            .wait_for_commit(&after.position, Duration::from_secs(30))
            .await?
    );
    let rest = restarted.read_all(&checkpoint, 100).await?;
    let ids: Vec<Uuid> = rest.events.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, [before.events[2].event_id, after.events[0].event_id]);
    assert_eq!(restarted.head().await?, after.position);
    assert_eq!(restarted.diagnostics().await?.epoch, 2);

    // The stream hash chains do not cover positions, so they still verify.
    let reports = restarted.verify_all().await?;
    assert!(reports.iter().all(|r| r.is_intact()), "{reports:?}");
    let streams: HashSet<&str> = reports.iter().map(|r| r.stream.as_str()).collect();
    assert_eq!(streams, HashSet::from(["rec-old", "rec-new"]));
    restarted.close().await;
    test.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn a_stream_never_goes_back_in_feed_order() -> anyhow::Result<()> {
    let test = TestStore::new().await;
    let s = stream("rec-order");
    // T takes its transaction id first (by writing something else)...
    let mut early = test.pool().begin().await?;
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *early)
        .await?;
    // ...then a younger transaction writes version 1 and commits.
    let first = test
        .append(&s, ExpectedVersion::NoStream, events(0..1), &meta())
        .await?;
    // Version 2 from T would sort before version 1 in the feed, and the feed could already
    // have passed T's id (it only waits for transactions that took the events lock before
    // their id): refused, though the expected version matches, and nothing is written.
    let err = test
        .append_many_in(
            &mut early,
            vec![StreamWrite {
                stream: s.clone(),
                expected: ExpectedVersion::Exact(1),
                events: events(1..2),
            }],
            &meta(),
        )
        .await
        .err();
    assert!(
        matches!(
            err,
            Some(pyairtable_eventstore::StoreError::AppendAfterOtherWrites)
        ),
        "{err:?}"
    );
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&mut *early)
        .await?;
    assert_eq!(written, 1, "the refused append wrote nothing");
    early.rollback().await?;
    // Retried in a new transaction it goes through, after version 1.
    let second = test
        .append(&s, ExpectedVersion::Exact(1), events(1..2), &meta())
        .await?;
    assert!(second.position > first.position);
    test.cleanup().await?;
    Ok(())
}

/// Only transactions that write events hold the feed back: an open transaction that wrote
/// elsewhere (a projection batch, another deployment's work, a long report) does not delay it,
/// and a writer that is already appending still does.
#[tokio::test]
async fn an_open_transaction_that_writes_no_events_does_not_hold_the_feed_back()
-> anyhow::Result<()> {
    let test = TestStore::new().await;
    let start = test.head().await?;
    // An older transaction with an id, writing a table of its own, left open.
    let mut other = test.pool().begin().await?;
    sqlx::query("CREATE TEMP TABLE scratch (n int)")
        .execute(&mut *other)
        .await?;
    sqlx::query("INSERT INTO scratch VALUES (1)")
        .execute(&mut *other)
        .await?;
    let other_xid: Option<i64> =
        sqlx::query_scalar("SELECT pg_current_xact_id_if_assigned()::text::bigint")
            .fetch_one(&mut *other)
            .await?;
    assert!(other_xid.is_some());

    let appended = test
        .append(
            &stream("rec-free"),
            ExpectedVersion::NoStream,
            events(0..1),
            &meta(),
        )
        .await?;
    assert!(i64::try_from(appended.position.xid)? > other_xid.unwrap_or_default());
    // Visible at once, though an older transaction is still open.
    assert!(
        test.wait_for_commit(&appended.position, Duration::from_secs(10))
            .await?,
        "the feed waited for a transaction that writes no events"
    );
    let read = test.read_all(&start, 10).await?;
    assert_eq!(read.events.len(), 1);
    let diag = test.diagnostics().await?;
    assert_eq!(diag.held_back_events, 0, "{diag:?}");
    other.rollback().await?;
    test.cleanup().await?;
    Ok(())
}
