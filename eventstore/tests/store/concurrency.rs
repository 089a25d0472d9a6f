//! Sixteen writers racing on overlapping streams while a feed reader follows along.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use pyairtable_eventstore::testkit::TestStore;
use pyairtable_eventstore::{
    Direction, EventStore, ExpectedVersion, Position, RecordedEvent, StoreConfig, StoreError,
    StreamWrite,
};
use uuid::Uuid;

use crate::support::{events, meta, stream};

const WRITERS: usize = 16;
const ROUNDS: usize = 30;
const STREAMS: usize = 6;

#[derive(Default)]
struct Tally {
    committed: Vec<(String, Uuid)>,
    conflicts: usize,
    other_errors: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_lose_only_with_conflicts_and_the_reader_sees_each_event_once()
-> anyhow::Result<()> {
    let test = TestStore::with_config(|c| c.max_connections = 12).await?;
    let names: Vec<String> = (0..STREAMS).map(|i| format!("rec-race-{i}")).collect();

    // The reader follows the feed while the writers run, until it has as many events as were
    // committed (told once the writers are done), then checks that nothing more arrives.
    let (target_tx, mut target_rx) = tokio::sync::watch::channel(usize::MAX);
    let reader = {
        let mut feed = Box::pin(test.subscribe_all(Position::START));
        tokio::spawn(async move {
            let mut seen: Vec<RecordedEvent> = Vec::new();
            loop {
                let target = *target_rx.borrow_and_update();
                if seen.len() >= target {
                    let extra = tokio::time::timeout(Duration::from_millis(500), feed.next()).await;
                    anyhow::ensure!(extra.is_err(), "more events than committed: {extra:?}");
                    return Ok(seen);
                }
                tokio::select! {
                    item = feed.next() => match item {
                        Some(Ok(event)) => seen.push(event),
                        Some(Err(err)) => anyhow::bail!("feed error: {err}"),
                        None => anyhow::bail!("feed ended"),
                    },
                    _ = target_rx.changed() => {}
                }
            }
        })
    };

    // Half the writers use a second store, as another process would: each store remembers
    // the heads it wrote, and the other's appends make them stale.
    let other = EventStore::connect(StoreConfig::new(
        test.database_url().to_owned(),
        test.namespace().clone(),
    ))
    .await?;
    let mut writers = Vec::with_capacity(WRITERS);
    for w in 0..WRITERS {
        let store = if w % 2 == 0 {
            test.store().clone()
        } else {
            other.clone()
        };
        let names = names.clone();
        writers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            for round in 0..ROUNDS {
                let a = &names[(w + round) % STREAMS];
                let b = &names[(w * 7 + round * 3 + 1) % STREAMS];
                let n = (w * 1000 + round * 10) as u64;
                let version = |s: &str| {
                    let store = store.clone();
                    let s = stream(s);
                    async move { store.stream_version(&s).await }
                };
                let result = match round % 3 {
                    // One stream, exact expected version read just before: often stale.
                    0 | 1 => {
                        let expected = match version(a).await {
                            Ok(v) => v.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact),
                            Err(err) => {
                                tally.other_errors.push(err.to_string());
                                continue;
                            }
                        };
                        store
                            .append(
                                &stream(a),
                                expected,
                                events(n..n + 1 + (round % 2) as u64),
                                &meta(),
                            )
                            .await
                            .map(|r| vec![r])
                    }
                    // Two streams at once (a link between records), when they differ.
                    _ => {
                        let (va, vb) = match (version(a).await, version(b).await) {
                            (Ok(va), Ok(vb)) => (va, vb),
                            (Err(err), _) | (_, Err(err)) => {
                                tally.other_errors.push(err.to_string());
                                continue;
                            }
                        };
                        let mut writes = vec![StreamWrite {
                            stream: stream(a),
                            expected: va.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact),
                            events: events(n..n + 2),
                        }];
                        if a != b {
                            writes.push(StreamWrite {
                                stream: stream(b),
                                expected: vb
                                    .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact),
                                events: events(n + 2..n + 3),
                            });
                        }
                        store.append_many(writes, &meta()).await
                    }
                };
                match result {
                    Ok(results) => {
                        for r in results {
                            for e in r.events {
                                tally.committed.push((r.stream_id.clone(), e.event_id));
                            }
                        }
                    }
                    Err(StoreError::Conflict { .. }) => tally.conflicts += 1,
                    Err(err) => tally.other_errors.push(format!("{err:?}")),
                }
            }
            tally
        }));
    }

    let mut committed: Vec<(String, Uuid)> = Vec::new();
    let mut conflicts = 0;
    let mut other_errors = Vec::new();
    for writer in writers {
        let tally = writer.await?;
        committed.extend(tally.committed);
        conflicts += tally.conflicts;
        other_errors.extend(tally.other_errors);
    }
    assert!(
        other_errors.is_empty(),
        "lost races must be conflicts: {other_errors:?}"
    );
    assert!(
        conflicts > 0,
        "the writers never raced; the test proves nothing"
    );
    assert!(!committed.is_empty());

    let expected_ids: HashSet<Uuid> = committed.iter().map(|(_, id)| *id).collect();
    assert_eq!(expected_ids.len(), committed.len());
    target_tx.send(committed.len())?;
    let delivered = tokio::time::timeout(Duration::from_secs(60), reader).await???;
    check_feed(&delivered, &expected_ids)?;

    // A second pass over the finished feed with read_all gives the same sequence.
    let mut again = Vec::new();
    let mut after = Position::START;
    loop {
        let batch = test.read_all(&after, 100).await?;
        if batch.events.is_empty() {
            break;
        }
        after = batch.next;
        again.extend(batch.events.into_iter().map(|e| e.event_id));
    }
    let first_pass: Vec<Uuid> = delivered.iter().map(|e| e.event_id).collect();
    assert_eq!(again, first_pass);

    // Streams read back contiguous, and their hash chains hold.
    let mut per_stream: HashMap<&str, Vec<Uuid>> = HashMap::new();
    for (s, id) in &committed {
        per_stream.entry(s.as_str()).or_default().push(*id);
    }
    for (name, ids) in &per_stream {
        let read = test
            .read_stream(&stream(name), 1, Direction::Forward, 10_000)
            .await?;
        let versions: Vec<u64> = read.iter().map(|e| e.version).collect();
        let contiguous: Vec<u64> = (1..=read.len() as u64).collect();
        assert_eq!(versions, contiguous, "stream {name}");
        assert!(
            read.windows(2)
                .all(|p| p[1].recorded_at >= p[0].recorded_at),
            "stream {name}: recorded_at went back"
        );
        let read_ids: HashSet<Uuid> = read.iter().map(|e| e.event_id).collect();
        assert_eq!(
            read_ids,
            ids.iter().copied().collect::<HashSet<_>>(),
            "stream {name}"
        );
    }
    other.close().await;
    let reports = test.verify_all().await?;
    assert_eq!(reports.len(), per_stream.len());
    assert!(reports.iter().all(|r| r.is_intact()), "{reports:?}");
    test.cleanup().await?;
    Ok(())
}

/// Exactly once, in increasing positions, with each stream's versions contiguous in feed order.
fn check_feed(delivered: &[RecordedEvent], expected: &HashSet<Uuid>) -> anyhow::Result<()> {
    let ids: Vec<Uuid> = delivered.iter().map(|e| e.event_id).collect();
    let unique: HashSet<Uuid> = ids.iter().copied().collect();
    anyhow::ensure!(unique.len() == ids.len(), "an event was delivered twice");
    anyhow::ensure!(
        &unique == expected,
        "delivered events differ from committed ones"
    );
    for pair in delivered.windows(2) {
        anyhow::ensure!(
            pair[0].position < pair[1].position,
            "positions not increasing"
        );
    }
    let mut last: HashMap<&str, u64> = HashMap::new();
    for e in delivered {
        let prev = last.insert(e.stream_id.as_str(), e.version).unwrap_or(0);
        anyhow::ensure!(
            e.version == prev + 1,
            "stream {} jumps from {prev} to {} in feed order",
            e.stream_id,
            e.version
        );
    }
    Ok(())
}
