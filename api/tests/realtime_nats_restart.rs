//! The realtime hub across a NATS restart (a private `nats-server`): killed while subscribers
//! are attached, events written while it is down, restarted on the same store directory. No
//! subscriber misses or repeats an event, and the hub goes back to consuming from JetStream.

mod realtime_support;

use std::time::Duration;

use anyhow::{Result, bail};
use pyairtable_api::realtime::{EventFilter, HubConfig, Source};
use realtime_support::{Env, PrivateNats, assert_same_sequence, collect_until, store_events};

const WAIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_subscriber_misses_an_event_across_a_nats_restart() -> Result<()> {
    let mut nats = PrivateNats::start()?;
    let config = HubConfig {
        heartbeat: Duration::from_millis(500),
        max_backoff: Duration::from_millis(500),
        read_batch: 32,
        ..HubConfig::default()
    };
    let env = Env::start(&nats.url(), config).await?;
    env.wait_for_nats(Duration::from_secs(20)).await?;
    let start = env.hub.status().position;
    let is_end = |e: &pyairtable_eventstore::RecordedEvent| e.stream_id == "rec-recEnd";
    let subscribers = vec![
        tokio::spawn(collect_until(
            env.hub.live(EventFilter::all_for_admin()),
            is_end,
            WAIT,
        )),
        tokio::spawn(collect_until(
            env.hub
                .catch_up_then_live(start, EventFilter::for_workspaces(["wspR"])),
            is_end,
            WAIT,
        )),
    ];
    let write_phase = |phase: &'static str| {
        let store = env.store().clone();
        async move {
            for i in 0..40 {
                realtime_support::append(
                    &store,
                    &format!("rec-rec{phase}{}", i % 6),
                    1 + i % 2,
                    Some("wspR"),
                )
                .await?;
            }
            anyhow::Ok(())
        }
    };
    write_phase("Before").await?;
    // A subscriber that joins mid-way and catches up over the first phase.
    let late = tokio::spawn(collect_until(
        env.hub
            .catch_up_then_live(start, EventFilter::all_for_admin()),
        is_end,
        WAIT,
    ));

    nats.kill();
    // Written while the bus is down: the relay cannot publish them.
    write_phase("During").await?;
    // The hub notices (missed heartbeats) and tails the store meanwhile.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while env.hub.status().source != Source::Store {
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the hub did not notice NATS was gone: {:?}",
                env.hub.status()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    nats.restart()?;

    // The hub reopens a consumer on the restarted server.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = env.hub.status();
        if status.source == Source::Nats && status.consumers_opened >= 2 {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the hub did not reconnect to NATS: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before_after_phase = env.hub.status();
    write_phase("After").await?;
    let end = env.append("rec-recEnd", 1, Some("wspR")).await?;

    let expected = store_events(env.store(), start, end.position, |_| true).await?;
    assert_eq!(expected.len(), 3 * 60 + 1);
    let mut all = Vec::new();
    for s in subscribers {
        all.push(s.await??);
    }
    all.push(late.await??);
    for (k, got) in all.iter().enumerate() {
        assert_same_sequence(&format!("subscriber {k}"), got, &expected);
    }
    let status = env.hub.status();
    assert!(
        status.from_nats > before_after_phase.from_nats,
        "after the restart events should come over NATS again: {before_after_phase:?} -> {status:?}"
    );
    env.cleanup().await
}
