//! The realtime hub: live streams of events for GraphQL subscriptions, webhooks and the MCP
//! server, fed from NATS rather than one database poll per subscriber.
//!
//! One [`EventHub`] per process holds ONE ephemeral JetStream consumer on `<ns>.events.>`.
//! A background task (the pump) checks every message against the relay's previous-position
//! header, fills any gap from the event store, and fans the resulting gap-free, strictly
//! increasing sequence out through a tokio broadcast channel. Subscribers filter it with an
//! [`EventFilter`]:
//!
//! - [`EventHub::live`]: events from now on.
//! - [`EventHub::catch_up_then_live`]: the store after a position token, then live, with no gap
//!   and no duplicate at the switch; a subscriber that lags the broadcast falls back to the
//!   store and switches again.
//!
//! When NATS is unreachable (restart, network), the pump tails the event store itself until a
//! new consumer is open, then reads the store once more from the last event it broadcast, so
//! nothing is missed. See `docs/adr/0006-realtime-hub.md`.

mod error;
mod filter;
mod follow;
mod pump;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::Stream;
use pyairtable_eventstore::{EventStore, Position, RecordedEvent};
use pyairtable_projections::Names;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

pub use error::RealtimeError;
pub use filter::EventFilter;

use crate::realtime::follow::Follower;
use crate::realtime::pump::Pump;

/// How the hub behaves. The defaults suit production; tests shrink them.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Events the broadcast channel keeps for slow subscribers. A subscriber further behind
    /// than this reads the gap from the event store (it loses nothing, but costs a query).
    pub capacity: usize,
    /// Events per event-store read (catch-up, gap filling, fallback).
    pub read_batch: usize,
    /// After this long without a bus message, the pump reads the store once (one query per
    /// process) in case the relay publishes elsewhere and is stuck.
    pub idle_fill: Duration,
    /// Idle heartbeat asked of JetStream; two missed heartbeats end the consumer session.
    pub heartbeat: Duration,
    /// Longest pause between attempts to reopen the JetStream consumer.
    pub max_backoff: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            capacity: 4096,
            read_batch: 500,
            idle_fill: Duration::from_secs(10),
            heartbeat: Duration::from_secs(5),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Where the pump currently gets events from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A JetStream consumer is open (the normal case).
    Nats,
    /// No consumer is open (NATS down, or the relay has not created the stream yet): the pump
    /// tails the event store itself.
    Store,
}

/// What the hub reports about itself (for health checks, metrics and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubStatus {
    /// Position of the last event broadcast (the hub's "now").
    pub position: Position,
    /// Where events come from at the moment.
    pub source: Source,
    /// Events broadcast as received from NATS.
    pub from_nats: u64,
    /// Events broadcast after reading them from the store (gaps, fallback, reconnects).
    pub from_store: u64,
    /// Bus messages whose previous position did not match: gaps filled from the store.
    pub gaps: u64,
    /// JetStream consumers opened so far (1 plus the reconnects).
    pub consumers_opened: u64,
    /// Times a subscriber lagged the broadcast and read the store to catch up.
    pub lag_recoveries: u64,
    /// Subscribers currently attached.
    pub subscribers: usize,
}

/// One event on the broadcast channel with the position of the event broadcast before it,
/// so a subscriber can tell whether it follows on from what it already has.
#[derive(Debug)]
pub(crate) struct LiveEvent {
    pub(crate) prev: Position,
    pub(crate) event: RecordedEvent,
}

/// The sending side, and the position of the last event sent, changed together under one lock
/// so a new live subscriber learns exactly where its receiver starts.
pub(crate) struct Broadcast {
    pub(crate) tx: Option<broadcast::Sender<Arc<LiveEvent>>>,
    pub(crate) last: Position,
}

/// State shared by the pump, the hub handles and the subscriptions.
pub(crate) struct Shared {
    broadcast: Mutex<Broadcast>,
    pub(crate) nats_live: AtomicBool,
    pub(crate) from_nats: AtomicU64,
    pub(crate) from_store: AtomicU64,
    pub(crate) gaps: AtomicU64,
    pub(crate) consumers_opened: AtomicU64,
    pub(crate) lag_recoveries: AtomicU64,
}

impl Shared {
    /// The broadcast state. A panic elsewhere cannot leave it half-updated (both fields are
    /// plain values), so a poisoned lock is still usable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Broadcast> {
        self.broadcast
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A new receiver and the position of the last event sent before it was created; `None`
    /// once the hub is shut down.
    pub(crate) fn subscribe(&self) -> (Option<broadcast::Receiver<Arc<LiveEvent>>>, Position) {
        let state = self.lock();
        (
            state.tx.as_ref().map(broadcast::Sender::subscribe),
            state.last,
        )
    }
}

pub(crate) struct Inner {
    pub(crate) store: EventStore,
    pub(crate) shared: Arc<Shared>,
    pub(crate) config: HubConfig,
    pump: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

/// The process's realtime hub. Cheap to clone: clones share one JetStream consumer, one pump
/// task and one broadcast channel. The pump runs as long as a handle or a subscription lives
/// (or until [`EventHub::shutdown`]).
#[derive(Clone)]
pub struct EventHub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("namespace", &self.inner.store.namespace().as_str())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl EventHub {
    /// Starts the hub with [`HubConfig::default`]. See [`EventHub::start_with`].
    ///
    /// # Errors
    /// See [`EventHub::start_with`].
    pub async fn start(store: EventStore, nats: async_nats::Client) -> Result<Self, RealtimeError> {
        Self::start_with(store, nats, HubConfig::default()).await
    }

    /// Reads the feed's head (the hub's starting point) and starts the pump, which opens the
    /// JetStream consumer in the background. NATS being down, or the events stream not created
    /// yet, is not an error: the pump tails the event store until the consumer opens.
    ///
    /// # Errors
    /// [`RealtimeError::Store`] when the head of the feed cannot be read.
    pub async fn start_with(
        store: EventStore,
        nats: async_nats::Client,
        config: HubConfig,
    ) -> Result<Self, RealtimeError> {
        let head = store.head().await?;
        let (tx, _) = broadcast::channel(config.capacity.max(1));
        let shared = Arc::new(Shared {
            broadcast: Mutex::new(Broadcast {
                tx: Some(tx),
                last: head,
            }),
            nats_live: AtomicBool::new(false),
            from_nats: AtomicU64::new(0),
            from_store: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            consumers_opened: AtomicU64::new(0),
            lag_recoveries: AtomicU64::new(0),
        });
        let pump = Pump::new(
            store.clone(),
            async_nats::jetstream::new(nats),
            Names::new(store.namespace()),
            Arc::clone(&shared),
            config.clone(),
            head,
        );
        let pump = tokio::spawn(pump.run());
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                shared,
                config,
                pump,
            }),
        })
    }

    /// Live events matching `filter`, from the hub's current position on, in feed order and
    /// each once. A subscriber that falls behind the broadcast reads the missed events from
    /// the store, so it never loses one.
    ///
    /// An `Err(RealtimeError::Store)` item is informational: the stream carries on (after a
    /// short pause) from the last event it delivered. After `Err(RealtimeError::Closed)` it
    /// ends. Dropping the stream unsubscribes.
    pub fn live(
        &self,
        filter: EventFilter,
    ) -> impl Stream<Item = Result<RecordedEvent, RealtimeError>> + Send + 'static {
        let (rx, last) = self.inner.shared.subscribe();
        Follower::new(Arc::clone(&self.inner), filter, rx, last, false).into_stream()
    }

    /// Every event matching `filter` after `after` (a position token from a checkpoint, a
    /// mutation's consistency token, or a previous subscription), read from the store, then
    /// live events, with no gap and no duplicate at the switch. Events come strictly increasing
    /// by position. Errors as for [`EventHub::live`].
    pub fn catch_up_then_live(
        &self,
        after: Position,
        filter: EventFilter,
    ) -> impl Stream<Item = Result<RecordedEvent, RealtimeError>> + Send + 'static {
        // Subscribe before the first store read: everything broadcast from here on is kept for
        // this subscriber, so the read and the broadcast overlap instead of leaving a hole.
        let (rx, _) = self.inner.shared.subscribe();
        Follower::new(Arc::clone(&self.inner), filter, rx, after, true).into_stream()
    }

    /// What the hub is doing.
    #[must_use]
    pub fn status(&self) -> HubStatus {
        let shared = &self.inner.shared;
        let (position, subscribers) = {
            let state = shared.lock();
            (
                state.last,
                state
                    .tx
                    .as_ref()
                    .map_or(0, broadcast::Sender::receiver_count),
            )
        };
        HubStatus {
            position,
            source: if shared.nats_live.load(Ordering::Relaxed) {
                Source::Nats
            } else {
                Source::Store
            },
            from_nats: shared.from_nats.load(Ordering::Relaxed),
            from_store: shared.from_store.load(Ordering::Relaxed),
            gaps: shared.gaps.load(Ordering::Relaxed),
            consumers_opened: shared.consumers_opened.load(Ordering::Relaxed),
            lag_recoveries: shared.lag_recoveries.load(Ordering::Relaxed),
            subscribers,
        }
    }

    /// Stops the pump and ends every subscription (each yields [`RealtimeError::Closed`]).
    /// New subscriptions end at once. The JetStream consumer is ephemeral: the server removes
    /// it after its inactivity threshold.
    pub fn shutdown(&self) {
        self.inner.pump.abort();
        // Dropping the only sender closes every receiver.
        self.inner.shared.lock().tx = None;
        self.inner.shared.nats_live.store(false, Ordering::Relaxed);
    }
}

/// Exponential backoff from 100 ms up to a ceiling.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    current: Duration,
    max: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);

    pub(crate) fn new(max: Duration) -> Self {
        Self {
            current: Self::FIRST,
            max: max.max(Self::FIRST),
        }
    }

    pub(crate) fn next(&mut self) -> Duration {
        let now = self.current;
        self.current = (self.current * 2).min(self.max);
        now
    }

    pub(crate) fn reset(&mut self) {
        self.current = Self::FIRST;
    }
}
