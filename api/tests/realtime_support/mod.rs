//! Shared set-up for the realtime hub tests: an isolated namespace with a relay publishing it to
//! NATS (the shared server or a private one), a hub, and helpers to write and collect events.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::{Stream, StreamExt};
use pyairtable_api::realtime::{EventHub, HubConfig, RealtimeError, Source};
use pyairtable_eventstore::testkit::TestStore;
use pyairtable_eventstore::{
    Actor, AppendResult, EventStore, ExpectedVersion, Metadata, NewEvent, Position, RecordedEvent,
    StreamId,
};
use pyairtable_projections::{Names, Relay, RelayConfig};
use serde_json::json;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The shared NATS server.
pub const NATS_URL: &str = "nats://127.0.0.1:4222";

/// A test namespace: store, relay task, NATS client and hub.
pub struct Env {
    pub test: TestStore,
    pub nats: async_nats::Client,
    pub hub: EventHub,
    relay: JoinHandle<()>,
}

impl Env {
    /// A fresh namespace with its relay running and a hub started with `config`.
    pub async fn start(nats_url: &str, config: HubConfig) -> Result<Self> {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let test = TestStore::with_config(|c| c.max_connections = 20).await?;
        let nats = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(nats_url)
            .await?;
        let relay = Relay::new(
            test.store().clone(),
            nats.clone(),
            RelayConfig {
                standby_poll: Duration::from_millis(200),
                lock_check: Duration::from_millis(500),
                max_backoff: Duration::from_millis(300),
                ..RelayConfig::default()
            },
        );
        let relay = tokio::spawn(async move {
            let _ = relay.run(std::future::pending()).await;
        });
        let hub = EventHub::start_with(test.store().clone(), nats.clone(), config).await?;
        Ok(Self {
            test,
            nats,
            hub,
            relay,
        })
    }

    pub fn store(&self) -> &EventStore {
        self.test.store()
    }

    /// Waits until the hub consumes from JetStream.
    pub async fn wait_for_nats(&self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.hub.status().source != Source::Nats {
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "the hub did not open a JetStream consumer: {:?}",
                    self.hub.status()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Appends `count` events (1..) to `stream` in one transaction.
    pub async fn append(
        &self,
        stream: &str,
        count: usize,
        workspace: Option<&str>,
    ) -> Result<AppendResult> {
        append(self.store(), stream, count, workspace).await
    }

    /// Stops the hub and the relay, deletes the namespace's JetStream stream and drops its
    /// schema.
    pub async fn cleanup(self) -> Result<()> {
        self.hub.shutdown();
        self.relay.abort();
        let _ = self.relay.await;
        let names = Names::new(self.test.namespace());
        let js = async_nats::jetstream::new(self.nats.clone());
        let _ =
            tokio::time::timeout(Duration::from_secs(5), js.delete_stream(names.stream())).await;
        self.test.cleanup().await?;
        Ok(())
    }
}

/// Appends `count` small events to `stream` (any version), tagged with `workspace`.
pub async fn append(
    store: &EventStore,
    stream: &str,
    count: usize,
    workspace: Option<&str>,
) -> Result<AppendResult> {
    let mut meta = Metadata::new(
        Actor::User {
            id: "usr00000000000001".to_owned(),
        },
        Uuid::new_v4(),
    );
    if let Some(w) = workspace {
        meta = meta.with_workspace(w);
    }
    let events = (0..count)
        .map(|i| NewEvent::new("Touched", json!({ "i": i })))
        .collect();
    Ok(store
        .append(
            &StreamId::parse(stream)?,
            ExpectedVersion::Any,
            events,
            &meta,
        )
        .await?)
}

/// Takes events from `stream` until one satisfying `is_last` arrived (it is included), failing
/// after `timeout`. Store errors are tolerated (the stream carries on); `Closed` is not.
pub async fn collect_until<S>(
    stream: S,
    is_last: impl Fn(&RecordedEvent) -> bool,
    timeout: Duration,
) -> Result<Vec<RecordedEvent>>
where
    S: Stream<Item = Result<RecordedEvent, RealtimeError>>,
{
    let mut stream = std::pin::pin!(stream);
    let mut got = Vec::new();
    let collecting = async {
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => {
                    let done = is_last(&event);
                    got.push(event);
                    if done {
                        return Ok(());
                    }
                }
                Err(RealtimeError::Store(e)) => eprintln!("store error (tolerated): {e}"),
                Err(e) => bail!("subscription failed: {e}"),
            }
        }
        bail!("subscription ended")
    };
    match tokio::time::timeout(timeout, collecting).await {
        Ok(Ok(())) => Ok(got),
        Ok(Err(e)) => Err(e),
        Err(_) => bail!(
            "timed out after {} events; last {:?}",
            got.len(),
            got.last().map(|e| (&e.stream_id, e.version))
        ),
    }
}

/// Every event of the store after `after` up to and including `until`, in feed order, filtered.
pub async fn store_events(
    store: &EventStore,
    after: Position,
    until: Position,
    keep: impl Fn(&RecordedEvent) -> bool,
) -> Result<Vec<RecordedEvent>> {
    let mut out = Vec::new();
    let mut next = after;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while next < until {
        let batch = store.read_all(&next, 1000).await?;
        if batch.events.is_empty() {
            if tokio::time::Instant::now() >= deadline {
                bail!("the store did not reach {until}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        for event in batch.events {
            if event.position > until {
                break;
            }
            next = event.position;
            if keep(&event) {
                out.push(event);
            }
        }
    }
    Ok(out)
}

/// Asserts `got` is exactly `expected` (same events, same order) and strictly increasing.
pub fn assert_same_sequence(label: &str, got: &[RecordedEvent], expected: &[RecordedEvent]) {
    for pair in got.windows(2) {
        assert!(
            pair[0].position < pair[1].position,
            "{label}: positions not strictly increasing at {}/{} -> {}/{}",
            pair[0].stream_id,
            pair[0].version,
            pair[1].stream_id,
            pair[1].version
        );
    }
    let ids = |v: &[RecordedEvent]| v.iter().map(|e| e.event_id).collect::<Vec<_>>();
    assert_eq!(
        got.len(),
        expected.len(),
        "{label}: got {} events, the store has {}",
        got.len(),
        expected.len()
    );
    assert_eq!(ids(got), ids(expected), "{label}: sequences differ");
}

/// A free TCP port on localhost.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A private `nats-server -js` with its own store directory, killed on drop.
pub struct PrivateNats {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl PrivateNats {
    pub fn start() -> Result<Self> {
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("pyat-rt-nats-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let mut server = Self {
            child: None,
            port,
            dir,
        };
        server.restart()?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and store directory.
    pub fn restart(&mut self) -> Result<()> {
        let child = Command::new("/usr/sbin/nats-server")
            .args(["-js", "-sd"])
            .arg(&self.dir)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nats-server")?;
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        bail!("nats-server did not start on port {}", self.port)
    }

    /// Kills the server (SIGKILL: no graceful shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
