//! The pump: the hub's one JetStream consumer, turned into a gap-free broadcast.
//!
//! Invariant: the events broadcast are consecutive events of the global feed. Each one is sent
//! with the position of the one before it, which is the pump's `last`. A bus message is
//! broadcast as is only when the relay's previous-position header equals `last`; anything else
//! (a message missed, reordered, or published before the consumer existed) is resolved by
//! reading the event store after `last`, which is the source of truth.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use pyairtable_eventstore::{EventStore, Position, RecordedEvent};
use pyairtable_projections::Names;
use pyairtable_projections::relay::HEADER_PREV_POSITION;
use tracing::{debug, info, warn};

use crate::realtime::{Backoff, HubConfig, LiveEvent, RealtimeError, Shared};

/// How long a pull request waits on the server before the client renews it. Well under the
/// consumer's inactivity threshold, so an idle but healthy consumer is never reaped.
const PULL_EXPIRES: Duration = Duration::from_secs(10);
/// The server deletes the ephemeral consumer after this long without a client (a crashed
/// process, or one that moved to a new consumer after a reconnect).
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(60);
/// Most time spent deleting an abandoned consumer (best effort, in the background).
const DELETE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a broadcast event came from (for the counters).
#[derive(Clone, Copy)]
enum Origin {
    Nats,
    Store,
}

/// An open consumer and its message stream.
struct Session {
    stream: jetstream::stream::Stream,
    name: String,
    messages: consumer::pull::Stream,
}

pub(crate) struct Pump {
    store: EventStore,
    jetstream: jetstream::Context,
    names: Names,
    shared: Arc<Shared>,
    config: HubConfig,
    /// Position of the last event broadcast; only this task changes it.
    last: Position,
}

impl Pump {
    pub(crate) fn new(
        store: EventStore,
        jetstream: jetstream::Context,
        names: Names,
        shared: Arc<Shared>,
        config: HubConfig,
        last: Position,
    ) -> Self {
        Self {
            store,
            jetstream,
            names,
            shared,
            config,
            last,
        }
    }

    /// Runs until aborted: consume while a consumer is open, tail the store while not.
    pub(crate) async fn run(mut self) {
        let mut backoff = Backoff::new(self.config.max_backoff);
        let mut delay = Duration::ZERO;
        loop {
            let js = self.jetstream.clone();
            let names = self.names.clone();
            let config = self.config.clone();
            let opening = async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                open_consumer(&js, &names, &config).await
            };
            // While the bus is unavailable subscribers still get events, from one store
            // subscription for the whole process.
            match self.tail_store_until(opening).await {
                Ok(mut session) => {
                    self.shared.consumers_opened.fetch_add(1, Ordering::Relaxed);
                    backoff.reset();
                    // Whatever was relayed before the consumer existed is in the store.
                    self.fill().await;
                    self.shared.nats_live.store(true, Ordering::Relaxed);
                    info!(namespace = %self.names.namespace(), consumer = %session.name, "realtime hub consuming from JetStream");
                    let why = self.consume(&mut session.messages).await;
                    self.shared.nats_live.store(false, Ordering::Relaxed);
                    warn!(namespace = %self.names.namespace(), error = %why, "realtime hub lost its JetStream consumer; tailing the event store until it is back");
                    let Session { stream, name, .. } = session;
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(DELETE_TIMEOUT, stream.delete_consumer(&name))
                            .await;
                    });
                }
                Err(error) => {
                    warn!(namespace = %self.names.namespace(), %error, "realtime hub cannot open a JetStream consumer; tailing the event store");
                }
            }
            delay = backoff.next();
        }
    }

    /// Broadcasts store events as they commit until `until` completes, and returns its output.
    async fn tail_store_until<T>(&mut self, until: impl Future<Output = T>) -> T {
        let mut until = pin!(until);
        let mut feed = pin!(self.store.subscribe_all(self.last));
        loop {
            tokio::select! {
                biased;
                out = &mut until => return out,
                item = feed.next() => match item {
                    Some(Ok(event)) => self.broadcast(event, Origin::Store),
                    // The subscription pauses and retries by itself.
                    Some(Err(error)) => warn!(%error, "realtime hub cannot read the event store"),
                    // `subscribe_all` never ends; should it, just wait for `until`.
                    None => return until.await,
                },
            }
        }
    }

    /// Handles bus messages until the consumer fails; returns why it stopped.
    async fn consume(&mut self, messages: &mut consumer::pull::Stream) -> RealtimeError {
        loop {
            match tokio::time::timeout(self.config.idle_fill, messages.next()).await {
                Err(_quiet) => self.fill().await,
                Ok(None) => {
                    return RealtimeError::Nats {
                        context: "consuming events".to_owned(),
                        message: "the message stream ended".to_owned(),
                    };
                }
                Ok(Some(Err(error))) => {
                    return RealtimeError::nats("consuming events")(error);
                }
                Ok(Some(Ok(message))) => self.on_message(&message).await,
            }
        }
    }

    async fn on_message(&mut self, message: &jetstream::Message) {
        let (event, prev) = match decode(message) {
            Ok(decoded) => decoded,
            Err(reason) => {
                warn!(subject = %message.subject, %reason, "undecodable event message; reading the store instead");
                self.fill().await;
                return;
            }
        };
        if event.position <= self.last {
            // Already broadcast (a republish, or read from the store first).
            return;
        }
        if prev == Some(self.last) {
            self.broadcast(event, Origin::Nats);
            return;
        }
        self.shared.gaps.fetch_add(1, Ordering::Relaxed);
        debug!(last = %self.last, position = %event.position, "gap before a bus message; filling from the store");
        self.fill().await;
        // The fill normally covers this event. If the store did not show it yet (it always
        // should: the relay read it from there), the next fill delivers it.
        if event.position > self.last && prev == Some(self.last) {
            self.broadcast(event, Origin::Nats);
        }
    }

    /// Reads the store after `last` until it is caught up, broadcasting every event. Retries
    /// failed reads: skipping ahead would lose events for every subscriber.
    async fn fill(&mut self) {
        let batch = self.config.read_batch.max(1);
        let mut backoff = Backoff::new(self.config.max_backoff);
        loop {
            match self.store.read_all(&self.last, batch).await {
                Ok(read) => {
                    let full = read.events.len() >= batch;
                    for event in read.events {
                        self.broadcast(event, Origin::Store);
                    }
                    if !full {
                        return;
                    }
                }
                Err(error) => {
                    warn!(%error, "realtime hub cannot read the event store; retrying");
                    tokio::time::sleep(backoff.next()).await;
                }
            }
        }
    }

    /// Sends the event after `last`; ignores anything at or before it.
    fn broadcast(&mut self, event: RecordedEvent, origin: Origin) {
        if event.position <= self.last {
            return;
        }
        let position = event.position;
        // Counted before sending, so a subscriber that has the event sees it counted too.
        let counter = match origin {
            Origin::Nats => &self.shared.from_nats,
            Origin::Store => &self.shared.from_store,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let item = Arc::new(LiveEvent {
            prev: self.last,
            event,
        });
        {
            let mut state = self.shared.lock();
            if let Some(tx) = &state.tx {
                // No receivers is not an error: nobody is listening right now.
                let _ = tx.send(item);
            }
            state.last = position;
        }
        self.last = position;
    }
}

/// Opens a fresh ephemeral consumer delivering only messages published from now on; the
/// caller reads the store for anything earlier.
async fn open_consumer(
    js: &jetstream::Context,
    names: &Names,
    config: &HubConfig,
) -> Result<Session, RealtimeError> {
    let stream = js
        .get_stream(names.stream())
        .await
        .map_err(RealtimeError::nats(format!(
            "opening stream {}",
            names.stream()
        )))?;
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            description: Some("pyairtable realtime hub".to_owned()),
            deliver_policy: consumer::DeliverPolicy::New,
            // The hub never redelivers: the store fills whatever the bus misses.
            ack_policy: consumer::AckPolicy::None,
            filter_subject: names.all_subjects(),
            inactive_threshold: INACTIVE_THRESHOLD,
            memory_storage: true,
            ..Default::default()
        })
        .await
        .map_err(RealtimeError::nats("creating the realtime consumer"))?;
    let name = consumer.cached_info().name.clone();
    let heartbeat = config
        .heartbeat
        .clamp(Duration::from_millis(100), PULL_EXPIRES / 2);
    let messages = consumer
        .stream()
        .max_messages_per_batch(config.read_batch.max(1))
        .heartbeat(heartbeat)
        .expires(PULL_EXPIRES)
        .messages()
        .await
        .map_err(RealtimeError::nats("pulling realtime messages"))?;
    Ok(Session {
        stream,
        name,
        messages,
    })
}

/// The event of a message and the relay's previous-position header.
fn decode(message: &jetstream::Message) -> Result<(RecordedEvent, Option<Position>), String> {
    let event: RecordedEvent =
        serde_json::from_slice(&message.payload).map_err(|e| format!("payload: {e}"))?;
    let prev = message
        .headers
        .as_ref()
        .and_then(|h| h.get(HEADER_PREV_POSITION))
        .map(|v| v.as_str().parse::<Position>())
        .transpose()
        .map_err(|e| format!("{HEADER_PREV_POSITION} header: {e}"))?;
    Ok((event, prev))
}
