//! The realtime hub against the real Postgres and NATS: live delivery, workspace filtering,
//! the catch-up/live switch under concurrent writers, and slow subscribers.

mod realtime_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use futures::StreamExt;
use pyairtable_api::realtime::{EventFilter, HubConfig};
use pyairtable_eventstore::{Position, RecordedEvent};
use realtime_support::{Env, NATS_URL, append, assert_same_sequence, collect_until, store_events};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_is_delivered_live_within_a_second() -> Result<()> {
    let env = Env::start(NATS_URL, HubConfig::default()).await?;
    env.wait_for_nats(Duration::from_secs(20)).await?;
    let mut live = Box::pin(env.hub.live(EventFilter::for_workspaces(["wspA"])));
    let before = env.hub.status();
    for round in 0..3 {
        let written = env
            .append(&format!("rec-recLive{round}"), 1, Some("wspA"))
            .await?;
        let got = tokio::time::timeout(Duration::from_secs(1), live.next()).await;
        let event = match got {
            Ok(Some(Ok(event))) => event,
            other => anyhow::bail!("round {round}: no live event within a second: {other:?}"),
        };
        assert_eq!(event.event_id, written.events[0].event_id);
        assert_eq!(event.position, written.position);
    }
    // They came over NATS, not from a store read.
    let after = env.hub.status();
    assert!(
        after.from_nats >= before.from_nats + 3,
        "expected NATS delivery: {before:?} -> {after:?}"
    );
    assert_eq!(after.subscribers, 1);
    drop(live);
    env.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_of_other_workspaces_are_never_delivered() -> Result<()> {
    let env = Env::start(NATS_URL, HubConfig::default()).await?;
    env.wait_for_nats(Duration::from_secs(20)).await?;
    let live_a = env
        .hub
        .live(EventFilter::for_workspaces(["wspA", "wspC"]).with_aggregate_kinds(["rec"]));
    let live_b = env.hub.live(EventFilter::for_workspaces(["wspB"]));
    let start = env.hub.status().position;
    let write = |i: usize| {
        let store = env.store().clone();
        async move {
            // A, B, no workspace, and A's non-record streams, interleaved.
            match i % 4 {
                0 => append(&store, &format!("rec-recA{i}"), 2, Some("wspA")).await,
                1 => append(&store, &format!("rec-recB{i}"), 1, Some("wspB")).await,
                2 => append(&store, &format!("user-usr{i}"), 1, None).await,
                _ => append(&store, &format!("base-appA{i}"), 1, Some("wspA")).await,
            }
        }
    };
    for i in 0..20 {
        write(i).await?;
    }
    // This subscriber catches up over the first half, then goes live for the second.
    let catch_a = env
        .hub
        .catch_up_then_live(start, EventFilter::for_workspaces(["wspA"]));
    for i in 20..40 {
        write(i).await?;
    }
    let sentinel_a = env.append("rec-recAend", 1, Some("wspA")).await?;
    let sentinel_b = env.append("rec-recBend", 1, Some("wspB")).await?;
    let end = sentinel_b.position;

    let id_a = sentinel_a.events[0].event_id;
    let id_b = sentinel_b.events[0].event_id;
    let got_a = collect_until(live_a, |e| e.event_id == id_a, WAIT).await?;
    let got_catch = collect_until(catch_a, |e| e.event_id == id_a, WAIT).await?;
    let got_b = collect_until(live_b, |e| e.event_id == id_b, WAIT).await?;

    let in_ws = |e: &RecordedEvent, w: &str| e.metadata.workspace_id.as_deref() == Some(w);
    let expected_a = store_events(env.store(), start, sentinel_a.position, |e| {
        in_ws(e, "wspA") && e.stream_id.starts_with("rec-")
    })
    .await?;
    let expected_catch = store_events(env.store(), start, sentinel_a.position, |e| {
        in_ws(e, "wspA")
    })
    .await?;
    let expected_b = store_events(env.store(), start, end, |e| in_ws(e, "wspB")).await?;
    assert!(got_a.iter().all(|e| in_ws(e, "wspA")));
    assert!(got_b.iter().all(|e| in_ws(e, "wspB")));
    assert!(got_catch.iter().any(|e| e.stream_id.starts_with("base-")));
    assert_same_sequence("records of A", &got_a, &expected_a);
    assert_same_sequence("all of A (catch-up)", &got_catch, &expected_catch);
    assert_same_sequence("B", &got_b, &expected_b);
    // 10 record appends of 2 events in A plus the sentinel.
    assert_eq!(got_a.len(), 21);
    env.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catch_up_switches_to_live_without_gap_or_duplicate_under_concurrent_writers() -> Result<()>
{
    // Small reads make every catch-up take several batches while writers keep appending.
    let config = HubConfig {
        read_batch: 16,
        ..HubConfig::default()
    };
    let env = Env::start(NATS_URL, config).await?;
    env.wait_for_nats(Duration::from_secs(20)).await?;
    // Some history before anyone subscribes.
    for i in 0..30 {
        env.append(&format!("rec-recPre{}", i % 4), 1 + i % 3, Some("wspC"))
            .await?;
    }
    let written: Arc<Mutex<Vec<Position>>> = Arc::new(Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..8 {
        let store = env.store().clone();
        let written = Arc::clone(&written);
        writers.push(tokio::spawn(async move {
            for i in 0..50_usize {
                let result = append(
                    &store,
                    &format!("rec-recW{w}x{}", i % 5),
                    1 + (i + w) % 3,
                    Some("wspC"),
                )
                .await?;
                if let Ok(mut positions) = written.lock() {
                    positions.push(result.position);
                }
                tokio::time::sleep(Duration::from_millis(((i * 7 + w) % 4) as u64)).await;
            }
            anyhow::Ok(())
        }));
    }
    // Five subscribers starting at different points while the writers run: the beginning, a
    // position from the history, the hub's position now, and positions just written (which may
    // still be ahead of what feed readers can see).
    let history = env.store().read_all(&Position::START, 40).await?;
    let mut starts = vec![
        Position::START,
        history
            .events
            .get(20)
            .map_or(Position::START, |e| e.position),
    ];
    let mut subscribers = Vec::new();
    for k in 0..5 {
        if k >= 2 {
            tokio::time::sleep(Duration::from_millis(60)).await;
            let latest = written.lock().ok().and_then(|p| p.last().copied());
            starts.push(match k {
                2 => env.hub.status().position,
                _ => latest.unwrap_or(Position::START),
            });
        }
        let stream = env
            .hub
            .catch_up_then_live(starts[k], EventFilter::for_workspaces(["wspC"]));
        subscribers.push(tokio::spawn(collect_until(
            stream,
            |e| e.stream_id == "rec-recEnd",
            WAIT,
        )));
    }
    for writer in writers {
        writer.await??;
    }
    let sentinel = env.append("rec-recEnd", 1, Some("wspC")).await?;
    for (k, subscriber) in subscribers.into_iter().enumerate() {
        let got = subscriber.await??;
        let expected = store_events(env.store(), starts[k], sentinel.position, |_| true).await?;
        assert!(!expected.is_empty());
        assert_same_sequence(&format!("subscriber {k}"), &got, &expected);
    }
    env.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lagging_subscriber_still_sees_every_event() -> Result<()> {
    let config = HubConfig {
        capacity: 4,
        read_batch: 8,
        ..HubConfig::default()
    };
    let env = Env::start(NATS_URL, config).await?;
    env.wait_for_nats(Duration::from_secs(20)).await?;
    let start = env.hub.status().position;
    let slow = env.hub.live(EventFilter::all_for_admin());
    let fast = env
        .hub
        .catch_up_then_live(start, EventFilter::for_workspaces(["wspL"]));
    let slow_task = tokio::spawn(async move {
        let mut slow = Box::pin(slow);
        let mut got: Vec<RecordedEvent> = Vec::new();
        loop {
            let item = tokio::time::timeout(WAIT, slow.next()).await;
            let Ok(Some(item)) = item else {
                anyhow::bail!("slow subscriber stalled after {} events", got.len());
            };
            let event = item?;
            // A deliberately slow consumer: the broadcast keeps only 4 events.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let done = event.stream_id == "rec-recLend";
            got.push(event);
            if done {
                return Ok(got);
            }
        }
    });
    let fast_task = tokio::spawn(collect_until(fast, |e| e.stream_id == "rec-recLend", WAIT));
    let mut writers = Vec::new();
    for w in 0..3 {
        let store = env.store().clone();
        writers.push(tokio::spawn(async move {
            for i in 0..100 {
                append(
                    &store,
                    &format!("rec-recL{w}x{}", i % 7),
                    1 + i % 2,
                    Some("wspL"),
                )
                .await?;
            }
            anyhow::Ok(())
        }));
    }
    for writer in writers {
        writer.await??;
    }
    let sentinel = env.append("rec-recLend", 1, Some("wspL")).await?;
    let got_slow = slow_task.await??;
    let got_fast = fast_task.await??;
    let expected = store_events(env.store(), start, sentinel.position, |_| true).await?;
    assert_eq!(expected.len(), 451);
    assert_same_sequence("slow", &got_slow, &expected);
    assert_same_sequence("fast", &got_fast, &expected);
    let status = env.hub.status();
    assert!(
        status.lag_recoveries > 0,
        "the slow subscriber never lagged, so this test proved nothing: {status:?}"
    );
    env.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_subscriptions() -> Result<()> {
    let env = Env::start(NATS_URL, HubConfig::default()).await?;
    let mut live = Box::pin(env.hub.live(EventFilter::all_for_admin()));
    env.hub.shutdown();
    let item = tokio::time::timeout(Duration::from_secs(5), live.next()).await?;
    assert!(
        matches!(
            item,
            Some(Err(pyairtable_api::realtime::RealtimeError::Closed))
        ),
        "{item:?}"
    );
    assert!(live.next().await.is_none());
    let mut late = Box::pin(env.hub.live(EventFilter::all_for_admin()));
    assert!(matches!(
        late.next().await,
        Some(Err(pyairtable_api::realtime::RealtimeError::Closed))
    ));
    env.cleanup().await
}
