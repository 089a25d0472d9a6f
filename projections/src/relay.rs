//! The relay: tails the event store's global feed and publishes every event to JetStream.
//!
//! The events table is the outbox (invariant 3), so there is no dual write. The relay reads the
//! feed after its stored checkpoint, publishes a batch with each event id as `Nats-Msg-Id`,
//! waits for every acknowledgement, and only then writes the checkpoint. A crash anywhere in
//! between republishes the batch; JetStream drops the duplicates inside its duplicate window and
//! the projections, which skip positions at or before their own checkpoint, drop the rest.
//!
//! One relay leads at a time: leadership is a session-level `pg_try_advisory_lock` held on a
//! dedicated connection. Checkpoints are written on that same connection, so a relay that lost
//! its connection (and with it the lock) cannot write one. When the leader dies its connection
//! closes, the lock is released, and a standby polling every [`RelayConfig::standby_poll`]
//! takes over.
//!
//! Every message also carries the position of the event relayed just before it
//! ([`HEADER_PREV_POSITION`]). Consumers use it to notice a gap (a message JetStream never got,
//! or got out of order after a partial publish failure) and fill it from the event store.

use std::future::Future;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, message::PublishMessage as Publish, stream};
use futures::{StreamExt, future::try_join_all};
use pyairtable_eventstore::{EventStore, Position, RecordedEvent};
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres};
use tokio::time::{Instant, sleep};
use tracing::{debug, info, warn};

use crate::error::{ProjectionError, Result};
use crate::names::Names;

/// Header carrying the event's position token.
pub const HEADER_POSITION: &str = "Pyairtable-Position";
/// Header carrying the position token of the event relayed just before this one (the start
/// token for the first event of the feed).
pub const HEADER_PREV_POSITION: &str = "Pyairtable-Prev-Position";
/// Header carrying the event type.
pub const HEADER_EVENT_TYPE: &str = "Pyairtable-Event-Type";
/// Header carrying the stream id (unencoded).
pub const HEADER_STREAM_ID: &str = "Pyairtable-Stream-Id";
/// Header carrying the event's version in its stream.
pub const HEADER_VERSION: &str = "Pyairtable-Version";

/// How a relay behaves.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Name of the relay (its checkpoint row and advisory lock). One leader per name.
    pub name: String,
    /// Most events published before waiting for their acknowledgements and checkpointing.
    pub batch_size: usize,
    /// How often a standby tries to take the lead.
    pub standby_poll: Duration,
    /// How often the leader checks that its lock connection is alive.
    pub lock_check: Duration,
    /// JetStream's duplicate window: republished events inside it are dropped by the server.
    pub duplicate_window: Duration,
    /// How long JetStream keeps events (zero: forever). Rebuilds read the event store, so
    /// this only bounds how long a projection may be stopped and still catch up from the bus;
    /// a longer outage is caught up from the event store too (gap filling).
    pub max_age: Duration,
    /// Longest pause between retries after a failure.
    pub max_backoff: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            name: "main".to_owned(),
            batch_size: 500,
            standby_poll: Duration::from_secs(1),
            lock_check: Duration::from_secs(2),
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// What a relay reports about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayStatus {
    /// Its name.
    pub name: String,
    /// Position of the last event JetStream acknowledged (and so checkpointed).
    pub position: Position,
    /// Events published since the checkpoint row was created (duplicates included).
    pub published: u64,
    /// Seconds since the checkpoint was last written, if it ever was.
    pub updated_seconds_ago: Option<f64>,
}

/// Publishes the global feed to JetStream. Cheap to clone.
#[derive(Clone)]
pub struct Relay {
    store: EventStore,
    jetstream: jetstream::Context,
    names: Names,
    config: RelayConfig,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("namespace", &self.names.namespace())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why a leadership term ended.
enum TermEnd {
    Shutdown,
    LostLock(ProjectionError),
}

impl Relay {
    /// A relay for the store's namespace publishing through `nats`.
    #[must_use]
    pub fn new(store: EventStore, nats: async_nats::Client, config: RelayConfig) -> Self {
        let names = Names::new(store.namespace());
        Self {
            store,
            jetstream: jetstream::new(nats),
            names,
            config,
        }
    }

    /// The names this relay uses.
    #[must_use]
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Creates the JetStream stream `<NS>_EVENTS`, or updates its settings; safe to call
    /// any number of times from any number of processes.
    ///
    /// # Errors
    /// [`ProjectionError::Nats`] when JetStream refuses or cannot be reached.
    pub async fn ensure_stream(&self) -> Result<()> {
        ensure_stream(&self.jetstream, &self.names, &self.config).await
    }

    /// Where the relay's checkpoint is ([`Position::START`] before the first publish).
    ///
    /// # Errors
    /// [`ProjectionError::Postgres`] when the checkpoint cannot be read.
    pub async fn status(&self) -> Result<RelayStatus> {
        let row: Option<(String, i64, f64)> = sqlx::query_as(
            "SELECT position, published, extract(epoch FROM now() - updated_at)::float8
               FROM relay_checkpoints WHERE name = $1",
        )
        .bind(&self.config.name)
        .fetch_optional(self.store.pool())
        .await
        .map_err(ProjectionError::pg("reading the relay checkpoint"))?;
        Ok(match row {
            None => RelayStatus {
                name: self.config.name.clone(),
                position: Position::START,
                published: 0,
                updated_seconds_ago: None,
            },
            Some((token, published, ago)) => RelayStatus {
                name: self.config.name.clone(),
                position: parse_position(&token)?,
                published: u64::try_from(published).unwrap_or(0),
                updated_seconds_ago: Some(ago),
            },
        })
    }

    /// Runs until `shutdown` completes: leads when it can take the advisory lock, otherwise
    /// stands by and retries every [`RelayConfig::standby_poll`]. Failures (Postgres, NATS)
    /// are logged and retried with backoff; this returns only on shutdown.
    ///
    /// # Errors
    /// None at present: every failure is retried. The `Result` leaves room for fatal
    /// configuration errors.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut backoff = Backoff::new(self.config.max_backoff);
        loop {
            let attempt = tokio::select! {
                () = &mut shutdown => return Ok(()),
                attempt = self.try_lead() => attempt,
            };
            match attempt {
                Ok(None) => {
                    // Someone else leads: stand by.
                    tokio::select! {
                        () = &mut shutdown => return Ok(()),
                        () = sleep(self.config.standby_poll) => {}
                    }
                }
                Ok(Some(lock)) => {
                    info!(relay = %self.config.name, namespace = %self.names.namespace(), "relay leads");
                    match self.lead(lock, &mut shutdown).await {
                        TermEnd::Shutdown => return Ok(()),
                        TermEnd::LostLock(e) => {
                            warn!(relay = %self.config.name, error = %e, "relay lost its leadership");
                            tokio::select! {
                                () = &mut shutdown => return Ok(()),
                                () = sleep(backoff.next()) => {}
                            }
                        }
                    }
                }
                Err(e) => {
                    warn!(relay = %self.config.name, error = %e, "relay cannot reach postgres");
                    tokio::select! {
                        () = &mut shutdown => return Ok(()),
                        () = sleep(backoff.next()) => {}
                    }
                }
            }
        }
    }

    /// Takes a dedicated connection and tries the advisory lock on it.
    async fn try_lead(&self) -> Result<Option<PgConnection>> {
        let pooled: PoolConnection<Postgres> =
            self.store
                .pool()
                .acquire()
                .await
                .map_err(ProjectionError::pg(
                    "taking a connection for the relay lock",
                ))?;
        // Detached: a session lock must die with its connection, never go back to the pool.
        let mut conn = pooled.detach();
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
            .bind(self.names.relay_lock(&self.config.name))
            .fetch_one(&mut conn)
            .await
            .map_err(ProjectionError::pg("trying the relay lock"))?;
        Ok(got.then_some(conn))
    }

    /// One leadership term: relays until shutdown or until the lock connection fails.
    async fn lead(
        &self,
        mut lock: PgConnection,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> TermEnd {
        let mut backoff = Backoff::new(self.config.max_backoff);
        loop {
            let term = self.lead_from_checkpoint(&mut lock, shutdown).await;
            match term {
                Ok(()) => return TermEnd::Shutdown,
                Err(e @ ProjectionError::Postgres { .. }) => {
                    // A failed checkpoint write or lock check: the lock may be gone with the
                    // connection, so this term is over.
                    return TermEnd::LostLock(e);
                }
                Err(e) => {
                    warn!(relay = %self.config.name, error = %e, "relay publish failed; retrying from the checkpoint");
                    let pause = backoff.next();
                    let deadline = Instant::now() + pause;
                    tokio::select! {
                        () = shutdown.as_mut() => return TermEnd::Shutdown,
                        () = tokio::time::sleep_until(deadline) => {}
                    }
                    if let Err(e) = check_lock(&mut lock).await {
                        return TermEnd::LostLock(e);
                    }
                }
            }
        }
    }

    /// Tails the feed from the stored checkpoint. `Ok` on shutdown; any error ends the tail.
    async fn lead_from_checkpoint(
        &self,
        lock: &mut PgConnection,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<()> {
        self.ensure_stream().await?;
        // The checkpoint is written after every acknowledged batch, on the path to the next
        // one. One lost to a server crash only means republishing events JetStream drops as
        // duplicates (message ids, within the duplicate window), so it need not wait for the
        // WAL flush.
        sqlx::query("SET synchronous_commit = off")
            .execute(&mut *lock)
            .await
            .map_err(ProjectionError::pg("setting up the relay checkpoint"))?;
        let mut checkpoint = read_checkpoint(lock, &self.config.name).await?;
        debug!(relay = %self.config.name, %checkpoint, "relay starts tailing");
        let feed = self
            .store
            .subscribe_all(checkpoint)
            .ready_chunks(self.config.batch_size.max(1));
        let mut feed = std::pin::pin!(feed);
        let mut lock_tick = tokio::time::interval(self.config.lock_check);
        lock_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.as_mut() => return Ok(()),
                _ = lock_tick.tick() => check_lock(lock).await?,
                chunk = feed.next() => {
                    let Some(chunk) = chunk else {
                        return Err(ProjectionError::Malformed("the feed subscription ended".to_owned()));
                    };
                    let mut events = Vec::with_capacity(chunk.len());
                    let mut failure = None;
                    for item in chunk {
                        match item {
                            Ok(event) => events.push(event),
                            Err(e) => {
                                failure = Some(ProjectionError::from(e));
                                break;
                            }
                        }
                    }
                    // Publish what was read before a failure, so progress is never lost.
                    if !events.is_empty() {
                        self.publish_batch(checkpoint, &events).await?;
                        let last = events.last().map_or(checkpoint, |e| e.position);
                        write_checkpoint(lock, &self.config.name, last, events.len()).await?;
                        checkpoint = last;
                    }
                    if let Some(e) = failure {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Publishes `events` (consecutive in the feed, the first one following `prev`) and waits
    /// for every acknowledgement. Writes no checkpoint: exposed so tests can simulate a relay
    /// that dies between publishing and checkpointing.
    ///
    /// # Errors
    /// [`ProjectionError::Nats`] when a publish or an acknowledgement fails (some of the
    /// batch may be stored; publishing it again is safe).
    pub async fn publish_batch(&self, prev: Position, events: &[RecordedEvent]) -> Result<u64> {
        let mut acks = Vec::with_capacity(events.len());
        let mut previous = prev;
        for event in events {
            let (subject, publish) = self.message(previous, event)?;
            let ack = self
                .jetstream
                .send_publish(subject, publish)
                .await
                .map_err(ProjectionError::nats("publishing an event"))?;
            acks.push(ack.into_future());
            previous = event.position;
        }
        let acks = try_join_all(acks).await.map_err(ProjectionError::nats(
            "waiting for publish acknowledgements",
        ))?;
        let duplicates = acks.iter().filter(|a| a.duplicate).count();
        if duplicates > 0 {
            debug!(relay = %self.config.name, duplicates, "JetStream dropped republished events");
        }
        Ok(u64::try_from(duplicates).unwrap_or(u64::MAX))
    }

    fn message(&self, prev: Position, event: &RecordedEvent) -> Result<(String, Publish)> {
        let subject = self
            .names
            .subject(&event.stream_id, event.metadata.workspace_id.as_deref());
        let body = serde_json::to_vec(event)
            .map_err(|e| ProjectionError::Malformed(format!("serialising an event: {e}")))?;
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_POSITION, event.position.to_token().as_str());
        headers.insert(HEADER_PREV_POSITION, prev.to_token().as_str());
        headers.insert(HEADER_EVENT_TYPE, event.event_type.as_str());
        headers.insert(HEADER_STREAM_ID, event.stream_id.as_str());
        headers.insert(HEADER_VERSION, event.version.to_string().as_str());
        let publish = Publish::build()
            .payload(body.into())
            .headers(headers)
            .message_id(event.event_id.to_string());
        Ok((subject, publish))
    }
}

/// Creates or updates the events stream.
pub(crate) async fn ensure_stream(
    js: &jetstream::Context,
    names: &Names,
    config: &RelayConfig,
) -> Result<()> {
    let stream_config = stream::Config {
        name: names.stream(),
        subjects: vec![names.all_subjects()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        duplicate_window: config.duplicate_window,
        max_age: config.max_age,
        ..Default::default()
    };
    js.create_or_update_stream(stream_config)
        .await
        .map_err(ProjectionError::nats(format!(
            "creating stream {}",
            names.stream()
        )))?;
    Ok(())
}

async fn check_lock(lock: &mut PgConnection) -> Result<()> {
    sqlx::query("SELECT 1")
        .execute(lock)
        .await
        .map_err(ProjectionError::pg("checking the relay lock connection"))?;
    Ok(())
}

async fn read_checkpoint(conn: &mut PgConnection, name: &str) -> Result<Position> {
    let token: Option<String> =
        sqlx::query_scalar("SELECT position FROM relay_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(conn)
            .await
            .map_err(ProjectionError::pg("reading the relay checkpoint"))?;
    token.map_or(Ok(Position::START), |t| parse_position(&t))
}

async fn write_checkpoint(
    conn: &mut PgConnection,
    name: &str,
    position: Position,
    published: usize,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO relay_checkpoints (name, position, published) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE
            SET position = EXCLUDED.position,
                published = relay_checkpoints.published + EXCLUDED.published,
                updated_at = now()",
    )
    .bind(name)
    .bind(position.to_token())
    .bind(i64::try_from(published).unwrap_or(i64::MAX))
    .execute(conn)
    .await
    .map_err(ProjectionError::pg("writing the relay checkpoint"))?;
    Ok(())
}

/// Parses a stored position token.
pub(crate) fn parse_position(token: &str) -> Result<Position> {
    token
        .parse::<Position>()
        .map_err(|e| ProjectionError::Malformed(format!("stored position {token:?}: {e}")))
}

/// Exponential backoff from 100 ms up to a ceiling.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    current: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(max: Duration) -> Self {
        Self {
            current: Duration::from_millis(100),
            max,
        }
    }

    pub(crate) fn next(&mut self) -> Duration {
        let now = self.current;
        self.current = (self.current * 2).min(self.max);
        now
    }
}
