//! The projection runtime: durable JetStream consumers feeding the SQL and Redis read models,
//! with checkpoints, retries, parking of poison events, status and read-your-writes.
//!
//! Each projection is one durable pull consumer `<ns>_<projection>` over every event of the
//! namespace, processed in stream order by one worker (per-stream order follows). A batch is
//! applied in one transaction that first takes the projection's generation row `FOR SHARE`
//! (so a rebuild's switch never splits a batch), skips events at or before the checkpoint
//! (idempotent beyond JetStream's duplicate window), fills any gap from the event store (the
//! relay's `Pyairtable-Prev-Position` header must equal the checkpoint), applies the rest and
//! writes the checkpoint. Messages are acknowledged only after the commit; a crash before the
//! acknowledgement redelivers events the checkpoint then skips.
//!
//! A failing event is retried with exponential backoff and then parked in `parked_events`;
//! the projection's [`FailurePolicy`] decides whether it then skips the event or halts until
//! `retry` succeeds.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use pyairtable_eventstore::{EventStore, Position, RecordedEvent};
use redis::aio::ConnectionManager;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tokio::time::{Instant, sleep};
use tracing::{debug, info, warn};

use crate::error::{ProjectionError, Result};
use crate::names::Names;
use crate::redis_models::{self, Applied, REDIS_PROJECTION, RedisReadModels};
use crate::relay::{Backoff, HEADER_PREV_POSITION, RelayConfig, ensure_stream, parse_position};
use crate::sql_models::{self, SQL_PROJECTIONS};

/// What a projection does with an event that still fails after its retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailurePolicy {
    /// Park the event and go on with the next one.
    SkipAndContinue,
    /// Park the event and stop the projection until `retry` applies it.
    Halt,
}

/// Where a projection's read models live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Tables in the `<ns>_rm` schema.
    Sql,
    /// Keys under `<ns>:rm:`.
    Redis,
}

/// A projection's state as the status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProjectionState {
    /// Applying events.
    Running,
    /// Stopped on a parked event (policy [`FailurePolicy::Halt`]).
    Halted,
    /// Running, while a rebuild fills a shadow generation.
    Rebuilding,
}

impl ProjectionState {
    /// Lower-case name (`running`, `halted`, `rebuilding`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Halted => "halted",
            Self::Rebuilding => "rebuilding",
        }
    }
}

/// One projection's status.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionStatus {
    /// Its name.
    pub name: String,
    /// Where its read models are.
    pub backend: Backend,
    /// The generation queries read.
    pub generation: i64,
    /// The position the published generation has reached.
    pub position: Position,
    /// Events in the feed after that position.
    pub lag_events: u64,
    /// Age of the oldest event not yet applied (0 when caught up).
    pub lag_seconds: f64,
    /// Running, halted or rebuilding.
    pub state: ProjectionState,
    /// Parked events not yet resolved.
    pub parked: u64,
}

/// How the runtime behaves.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Most events applied in one transaction.
    pub batch_size: usize,
    /// Most unacknowledged messages JetStream hands one consumer.
    pub max_ack_pending: i64,
    /// How long JetStream waits for an acknowledgement before redelivering.
    pub ack_wait: Duration,
    /// Attempts for a failing event before it is parked.
    pub retry_attempts: u32,
    /// Longest pause between attempts.
    pub max_backoff: Duration,
    /// Per-projection failure policy; projections not listed use [`FailurePolicy::SkipAndContinue`].
    pub policies: HashMap<String, FailurePolicy>,
    /// The stream settings used when the runtime has to create the events stream.
    pub relay: RelayConfig,
    /// Rebuild `records` in bulk: records folded in memory across batches, revisions copied,
    /// indexes built at the end (see docs/adr/0008-bulk-rebuild.md). Off, a rebuild replays
    /// through the live batched path, which is slower but the reference.
    pub bulk_rebuild: bool,
    /// Events a rebuild reads and applies per batch (at most the store's `MAX_READ`).
    pub rebuild_batch: usize,
    /// Most records a bulk rebuild holds in memory before writing them out (about 2 KiB each
    /// for a dozen cells).
    pub rebuild_cache_rows: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            batch_size: 256,
            max_ack_pending: 2048,
            ack_wait: Duration::from_secs(30),
            retry_attempts: 5,
            max_backoff: Duration::from_secs(5),
            policies: HashMap::new(),
            relay: RelayConfig::default(),
            bulk_rebuild: true,
            rebuild_batch: pyairtable_eventstore::MAX_READ,
            rebuild_cache_rows: 500_000,
        }
    }
}

/// Every projection of this crate: the SQL ones and the Redis one.
pub const ALL_PROJECTIONS: [&str; 4] = ["audit_log", "records", "directory", REDIS_PROJECTION];

/// The backend of a projection name.
///
/// # Errors
/// [`ProjectionError::UnknownProjection`] for a name this crate does not ship.
pub fn backend_of(name: &str) -> Result<Backend> {
    if SQL_PROJECTIONS.contains(&name) {
        Ok(Backend::Sql)
    } else if name == REDIS_PROJECTION {
        Ok(Backend::Redis)
    } else {
        Err(ProjectionError::UnknownProjection(name.to_owned()))
    }
}

/// The projections of one namespace: run their workers, ask their status, rebuild them,
/// retry parked events, wait for a position. Cheap to clone.
#[derive(Clone)]
pub struct Projections {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: EventStore,
    pub(crate) jetstream: jetstream::Context,
    pub(crate) redis: ConnectionManager,
    pub(crate) names: Names,
    pub(crate) config: RuntimeConfig,
    /// Woken after every commit of a worker of this process (read-your-writes waits on it).
    pub(crate) progress: Notify,
}

impl std::fmt::Debug for Projections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projections")
            .field("namespace", &self.inner.names.namespace())
            .finish_non_exhaustive()
    }
}

/// One event to apply, with the position the relay says precedes it (absent when the event
/// comes straight from the event store, whose order is already gap-free).
pub(crate) struct Incoming {
    pub(crate) event: RecordedEvent,
    pub(crate) prev: Option<Position>,
}

/// What applying a run of events did.
pub(crate) struct Outcome {
    /// The checkpoint after the commit.
    pub(crate) reached: Position,
    /// The event that failed (nothing after it was applied), and why.
    pub(crate) failed: Option<(RecordedEvent, ProjectionError)>,
}

impl Projections {
    /// The runtime for the store's namespace.
    ///
    /// # Errors
    /// [`ProjectionError::Redis`] when no Redis connection can be made.
    pub async fn new(
        store: EventStore,
        nats: async_nats::Client,
        redis: redis::Client,
        config: RuntimeConfig,
    ) -> Result<Self> {
        let names = Names::new(store.namespace());
        let redis = ConnectionManager::new(redis)
            .await
            .map_err(ProjectionError::redis("connecting"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                jetstream: jetstream::new(nats),
                redis,
                names,
                config,
                progress: Notify::new(),
            }),
        })
    }

    /// The names this runtime uses.
    #[must_use]
    pub fn names(&self) -> &Names {
        &self.inner.names
    }

    /// Queries against the Redis read models.
    #[must_use]
    pub fn redis_read_models(&self) -> RedisReadModels {
        RedisReadModels::new(self.inner.redis.clone(), self.inner.names.clone())
    }

    fn pool(&self) -> &PgPool {
        self.inner.store.pool()
    }

    pub(crate) fn policy(&self, name: &str) -> FailurePolicy {
        self.inner
            .config
            .policies
            .get(name)
            .copied()
            .unwrap_or(FailurePolicy::SkipAndContinue)
    }

    /// Creates generation 1 of every SQL projection that has none yet (tables and views,
    /// empty) so queries work from the first start. Idempotent and safe to race.
    ///
    /// # Errors
    /// [`ProjectionError::Postgres`] when the DDL fails.
    pub async fn install(&self) -> Result<()> {
        for name in SQL_PROJECTIONS {
            self.install_sql(name).await?;
        }
        Ok(())
    }

    async fn install_sql(&self, name: &str) -> Result<()> {
        let mut tx = self
            .pool()
            .begin()
            .await
            .map_err(ProjectionError::pg("starting the install"))?;
        let created: Option<i32> = sqlx::query_scalar(
            "INSERT INTO projection_generations (projection, generation) VALUES ($1, 1)
             ON CONFLICT (projection) DO NOTHING RETURNING generation",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(ProjectionError::pg("registering a projection"))?;
        if created.is_some() {
            let schema = self.inner.names.rm_schema();
            sqlx::query("SELECT rm_create_generation($1, $2, 1), rm_publish($1, $2, 1)")
                .bind(&schema)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(ProjectionError::pg(format!(
                    "creating the tables of {name}"
                )))?;
            sqlx::query(
                "INSERT INTO projection_checkpoints (projection, generation, position)
                 VALUES ($1, 1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(name)
            .bind(Position::START.to_token())
            .execute(&mut *tx)
            .await
            .map_err(ProjectionError::pg("creating a checkpoint"))?;
        }
        tx.commit()
            .await
            .map_err(ProjectionError::pg("committing the install"))?;
        Ok(())
    }

    /// Runs a worker for every projection until `shutdown` completes.
    ///
    /// # Errors
    /// [`ProjectionError::Postgres`] when the read models cannot be installed. Failures
    /// while running are logged and retried, never returned.
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        self.install().await?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut workers = tokio::task::JoinSet::new();
        for name in ALL_PROJECTIONS {
            let this = self.clone();
            let mut rx = rx.clone();
            workers.spawn(async move {
                this.run_projection(name, async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                })
                .await
            });
        }
        shutdown.await;
        let _ = tx.send(true);
        while let Some(joined) = workers.join_next().await {
            if let Ok(Err(e)) = joined {
                warn!(error = %e, "projection worker ended with an error");
            }
        }
        Ok(())
    }

    /// Runs the worker of one projection until `shutdown` completes, restarting its
    /// consumer after failures.
    ///
    /// # Errors
    /// [`ProjectionError::UnknownProjection`] for a name this crate does not ship.
    pub async fn run_projection(
        &self,
        name: &str,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        let backend = backend_of(name)?;
        let mut shutdown = std::pin::pin!(shutdown);
        let mut backoff = Backoff::new(self.inner.config.max_backoff);
        loop {
            let session = tokio::select! {
                () = &mut shutdown => return Ok(()),
                r = self.worker_session(name, backend) => r,
            };
            let pause = match session {
                Ok(()) => Duration::from_millis(10),
                Err(ProjectionError::Halted { name, reason }) => {
                    debug!(projection = %name, %reason, "projection halted; waiting for retry");
                    Duration::from_secs(1)
                }
                Err(e) => {
                    warn!(projection = name, error = %e, "projection worker failed; restarting");
                    backoff.next()
                }
            };
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = sleep(pause) => {}
            }
        }
    }

    /// Consumes until an error; returns `Err(Halted)` while the projection is halted.
    async fn worker_session(&self, name: &str, backend: Backend) -> Result<()> {
        if backend == Backend::Sql {
            self.install_sql(name).await?;
            self.ensure_not_halted(name).await?;
        } else {
            self.ensure_redis_generation().await?;
            self.ensure_not_halted(name).await?;
        }
        let cfg = &self.inner.config;
        ensure_stream(&self.inner.jetstream, &self.inner.names, &cfg.relay).await?;
        let stream = self
            .inner
            .jetstream
            .get_stream(self.inner.names.stream())
            .await
            .map_err(ProjectionError::nats("opening the events stream"))?;
        let durable = self.inner.names.consumer(name);
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                &durable,
                consumer::pull::Config {
                    durable_name: Some(durable.clone()),
                    deliver_policy: consumer::DeliverPolicy::All,
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: cfg.ack_wait,
                    max_ack_pending: cfg.max_ack_pending,
                    filter_subject: self.inner.names.all_subjects(),
                    ..Default::default()
                },
            )
            .await
            .map_err(ProjectionError::nats(format!(
                "creating consumer {durable}"
            )))?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(cfg.batch_size)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(ProjectionError::nats("pulling messages"))?;
        let mut chunks = std::pin::pin!(messages.ready_chunks(cfg.batch_size.max(1)));
        while let Some(chunk) = chunks.next().await {
            let mut msgs = Vec::with_capacity(chunk.len());
            for m in chunk {
                msgs.push(m.map_err(ProjectionError::nats("receiving a message"))?);
            }
            self.process_messages(name, backend, msgs).await?;
        }
        Err(ProjectionError::Nats {
            context: "pulling messages".to_owned(),
            message: "the message stream ended".to_owned(),
        })
    }

    async fn ensure_not_halted(&self, name: &str) -> Result<()> {
        let state: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT state, halted_reason FROM projection_generations WHERE projection = $1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await
        .map_err(ProjectionError::pg("reading the projection state"))?;
        match state {
            Some((s, reason)) if s == "halted" => Err(ProjectionError::Halted {
                name: name.to_owned(),
                reason: reason.unwrap_or_default(),
            }),
            _ => Ok(()),
        }
    }

    /// Applies a chunk of bus messages, handles failures, then acknowledges.
    async fn process_messages(
        &self,
        name: &str,
        backend: Backend,
        msgs: Vec<jetstream::Message>,
    ) -> Result<()> {
        let mut incoming = Vec::with_capacity(msgs.len());
        for m in &msgs {
            match decode_message(m) {
                Ok(i) => incoming.push(i),
                Err(e) => {
                    warn!(projection = name, error = %e, "skipping a message that is not a relayed event")
                }
            }
        }
        let mut remaining = incoming;
        while !remaining.is_empty() {
            let outcome = self.apply(name, backend, &remaining).await?;
            self.inner.progress.notify_waiters();
            let Some((failed, error)) = outcome.failed else {
                break;
            };
            let failed_position = failed.position;
            self.handle_failure(name, backend, failed, error).await?;
            remaining.retain(|i| i.event.position > failed_position);
        }
        for m in &msgs {
            // A lost acknowledgement only means a redelivery that the checkpoint skips.
            if let Err(e) = m.ack().await {
                debug!(projection = name, error = %e, "acknowledgement failed");
            }
        }
        Ok(())
    }

    /// Applies events to the published generation of a projection.
    pub(crate) async fn apply(
        &self,
        name: &str,
        backend: Backend,
        incoming: &[Incoming],
    ) -> Result<Outcome> {
        match backend {
            Backend::Sql => self.apply_sql_live(name, incoming).await,
            Backend::Redis => self.apply_redis_live(incoming).await,
        }
    }

    /// The events to apply after `checkpoint`: drops those at or before it and fills gaps
    /// (a relayed event whose predecessor is not the checkpoint) from the event store.
    pub(crate) async fn sequence(
        &self,
        checkpoint: Position,
        incoming: &[Incoming],
    ) -> Result<Vec<RecordedEvent>> {
        let mut out: Vec<RecordedEvent> = Vec::with_capacity(incoming.len());
        let mut cursor = checkpoint;
        for i in incoming {
            if i.event.position <= cursor {
                continue;
            }
            if let Some(prev) = i.prev
                && prev != cursor
            {
                debug!(from = %cursor, to = %i.event.position, "filling a gap from the event store");
                let mut at = cursor;
                'fill: loop {
                    let batch = self.inner.store.read_all(&at, 1000).await?;
                    if batch.events.is_empty() {
                        break;
                    }
                    for e in batch.events {
                        if e.position >= i.event.position {
                            break 'fill;
                        }
                        at = e.position;
                        out.push(e);
                    }
                }
            }
            cursor = i.event.position;
            out.push(i.event.clone());
        }
        Ok(out)
    }

    async fn apply_sql_live(&self, name: &str, incoming: &[Incoming]) -> Result<Outcome> {
        let mut tx = self
            .pool()
            .begin()
            .await
            .map_err(ProjectionError::pg("starting a projection batch"))?;
        let (generation, state): (i32, String) = sqlx::query_as(
            "SELECT generation, state FROM projection_generations WHERE projection = $1 FOR SHARE",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await
        .map_err(ProjectionError::pg("locking the projection generation"))?;
        if state == "halted" {
            return Err(ProjectionError::Halted {
                name: name.to_owned(),
                reason: "halted on a parked event".to_owned(),
            });
        }
        let checkpoint = lock_checkpoint(&mut tx, name, generation).await?;
        let events = self.sequence(checkpoint, incoming).await?;
        let outcome = apply_sql_in_tx(
            &mut tx,
            &self.inner.names,
            name,
            generation,
            checkpoint,
            &events,
        )
        .await?;
        tx.commit()
            .await
            .map_err(ProjectionError::pg("committing a projection batch"))?;
        Ok(outcome)
    }

    async fn apply_redis_live(&self, incoming: &[Incoming]) -> Result<Outcome> {
        let mut con = self.inner.redis.clone();
        // A few rounds: a rebuild may switch the generation between our read and our write.
        for _ in 0..5 {
            let generation = self.ensure_redis_generation().await?;
            let Some(token) =
                redis_models::generation_checkpoint(&mut con, &self.inner.names, generation)
                    .await?
            else {
                // The pointer exists but the generation's data is gone: rebuild.
                self.recover_redis().await?;
                continue;
            };
            let checkpoint = parse_position(&token)?;
            let events = self.sequence(checkpoint, incoming).await?;
            let (ops, applied_to, failed) = redis_ops_until_failure(checkpoint, &events);
            if applied_to == checkpoint {
                return Ok(Outcome {
                    reached: checkpoint,
                    failed,
                });
            }
            let applied = redis_models::apply_ops(
                &mut con,
                &self.inner.names,
                generation,
                true,
                Some(&token),
                &applied_to.to_token(),
                &ops,
                events.len(),
            )
            .await?;
            match applied {
                Applied::Done => {
                    self.mirror_redis_checkpoint(generation, applied_to).await;
                    return Ok(Outcome {
                        reached: applied_to,
                        failed,
                    });
                }
                Applied::GenerationMoved | Applied::CheckpointMoved => continue,
            }
        }
        Err(ProjectionError::Redis {
            context: "applying a batch".to_owned(),
            source: redis::RedisError::from((
                redis::ErrorKind::Client,
                "the generation or checkpoint kept moving",
            )),
        })
    }

    /// Copies the Redis checkpoint into Postgres for the status (best effort: Redis holds
    /// the authoritative one).
    pub(crate) async fn mirror_redis_checkpoint(&self, generation: i64, position: Position) {
        let generation = i32::try_from(generation).unwrap_or(i32::MAX);
        let result = sqlx::query(
            "INSERT INTO projection_checkpoints (projection, generation, position)
             VALUES ($1, $2, $3)
             ON CONFLICT (projection, generation) DO UPDATE
                SET position = EXCLUDED.position, updated_at = now()",
        )
        .bind(REDIS_PROJECTION)
        .bind(generation)
        .bind(position.to_token())
        .execute(self.pool())
        .await;
        if let Err(e) = result {
            debug!(error = %e, "mirroring the Redis checkpoint failed");
        }
    }

    /// The published Redis generation; rebuilds from the event store when there is none
    /// (first start, or Redis lost its data).
    pub(crate) async fn ensure_redis_generation(&self) -> Result<i64> {
        let mut con = self.inner.redis.clone();
        if let Some(g) = redis_models::current_generation(&mut con, &self.inner.names).await? {
            return Ok(g);
        }
        self.recover_redis().await?;
        redis_models::current_generation(&mut con, &self.inner.names)
            .await?
            .ok_or_else(|| ProjectionError::Unavailable(format!("redis:{REDIS_PROJECTION}")))
    }

    async fn recover_redis(&self) -> Result<()> {
        info!(namespace = %self.inner.names.namespace(), "Redis read models missing; rebuilding from the event store");
        sqlx::query(
            "INSERT INTO projection_generations (projection, generation) VALUES ($1, 1)
             ON CONFLICT (projection) DO NOTHING",
        )
        .bind(REDIS_PROJECTION)
        .execute(self.pool())
        .await
        .map_err(ProjectionError::pg("registering the Redis projection"))?;
        match self.rebuild(REDIS_PROJECTION, |_| {}).await {
            Ok(_) | Err(ProjectionError::RebuildRunning(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Retries a failing event, then parks it according to the projection's policy.
    async fn handle_failure(
        &self,
        name: &str,
        backend: Backend,
        event: RecordedEvent,
        first_error: ProjectionError,
    ) -> Result<()> {
        let mut error = first_error;
        let mut backoff = Backoff::new(self.inner.config.max_backoff);
        let attempts = self.inner.config.retry_attempts.max(1);
        let mut attempt = 1;
        while attempt < attempts {
            warn!(projection = name, event_id = %event.event_id, attempt, error = %error, "retrying a failed event");
            sleep(backoff.next()).await;
            attempt += 1;
            let single = [Incoming {
                event: event.clone(),
                prev: None,
            }];
            match self.apply(name, backend, &single).await {
                Ok(Outcome { failed: None, .. }) => return Ok(()),
                Ok(Outcome {
                    failed: Some((_, e)),
                    ..
                }) => error = e,
                Err(e @ ProjectionError::Halted { .. }) => return Err(e),
                Err(e) => error = e,
            }
        }
        self.park(name, backend, &event, &error, attempt).await
    }

    async fn park(
        &self,
        name: &str,
        backend: Backend,
        event: &RecordedEvent,
        error: &ProjectionError,
        attempts: u32,
    ) -> Result<()> {
        let policy = self.policy(name);
        warn!(projection = name, event_id = %event.event_id, error = %error, ?policy, "parking an event");
        let mut tx = self
            .pool()
            .begin()
            .await
            .map_err(ProjectionError::pg("starting to park"))?;
        let generation: i32 = sqlx::query_scalar(
            "SELECT generation FROM projection_generations WHERE projection = $1 FOR SHARE",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await
        .map_err(ProjectionError::pg("locking the projection generation"))?;
        let event_json = serde_json::to_value(event)
            .map_err(|e| ProjectionError::Malformed(format!("serialising a parked event: {e}")))?;
        sqlx::query(
            "INSERT INTO parked_events (projection, position, event_id, stream_id, version,
                                        event_type, error, attempts, event)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (projection, event_id) DO UPDATE
                SET error = EXCLUDED.error, attempts = parked_events.attempts + EXCLUDED.attempts,
                    parked_at = now(), resolved_at = NULL",
        )
        .bind(name)
        .bind(event.position.to_token())
        .bind(event.event_id)
        .bind(&event.stream_id)
        .bind(i64::try_from(event.version).unwrap_or(i64::MAX))
        .bind(&event.event_type)
        .bind(error.to_string())
        .bind(i32::try_from(attempts).unwrap_or(i32::MAX))
        .bind(event_json)
        .execute(&mut *tx)
        .await
        .map_err(ProjectionError::pg("parking an event"))?;
        match policy {
            FailurePolicy::Halt => {
                sqlx::query(
                    "UPDATE projection_generations SET state = 'halted', halted_reason = $2
                      WHERE projection = $1",
                )
                .bind(name)
                .bind(format!(
                    "event {} at {}: {error}",
                    event.event_id, event.position
                ))
                .execute(&mut *tx)
                .await
                .map_err(ProjectionError::pg("halting a projection"))?;
                tx.commit()
                    .await
                    .map_err(ProjectionError::pg("committing the park"))?;
                Err(ProjectionError::Halted {
                    name: name.to_owned(),
                    reason: error.to_string(),
                })
            }
            FailurePolicy::SkipAndContinue => {
                if backend == Backend::Sql {
                    sqlx::query(
                        "UPDATE projection_checkpoints SET position = $3, updated_at = now()
                          WHERE projection = $1 AND generation = $2",
                    )
                    .bind(name)
                    .bind(generation)
                    .bind(event.position.to_token())
                    .execute(&mut *tx)
                    .await
                    .map_err(ProjectionError::pg("skipping a parked event"))?;
                    tx.commit()
                        .await
                        .map_err(ProjectionError::pg("committing the park"))?;
                } else {
                    tx.commit()
                        .await
                        .map_err(ProjectionError::pg("committing the park"))?;
                    self.skip_redis(event).await?;
                }
                Ok(())
            }
        }
    }

    /// Moves the Redis checkpoint over one event without changing anything else.
    async fn skip_redis(&self, event: &RecordedEvent) -> Result<()> {
        let mut con = self.inner.redis.clone();
        let generation = self.ensure_redis_generation().await?;
        let token = redis_models::generation_checkpoint(&mut con, &self.inner.names, generation)
            .await?
            .unwrap_or_default();
        let applied = redis_models::apply_ops(
            &mut con,
            &self.inner.names,
            generation,
            true,
            Some(&token),
            &event.position.to_token(),
            &[],
            1,
        )
        .await?;
        if applied == Applied::Done {
            self.mirror_redis_checkpoint(generation, event.position)
                .await;
        }
        Ok(())
    }

    /// Replays the parked events of a projection, oldest first, into its published generation.
    /// Resolved events are marked; a halted projection runs again once none is left.
    /// Returns (resolved, still failing).
    ///
    /// # Errors
    /// [`ProjectionError::UnknownProjection`], or the failure of Postgres or Redis.
    pub async fn retry_parked(&self, name: &str) -> Result<(u64, u64)> {
        let backend = backend_of(name)?;
        let rows: Vec<(i64, serde_json::Value)> = sqlx::query_as(
            "SELECT id, event FROM parked_events
              WHERE projection = $1 AND resolved_at IS NULL ORDER BY id",
        )
        .bind(name)
        .fetch_all(self.pool())
        .await
        .map_err(ProjectionError::pg("reading parked events"))?;
        let (mut resolved, mut failing) = (0_u64, 0_u64);
        for (id, json) in rows {
            let event: RecordedEvent = serde_json::from_value(json)
                .map_err(|e| ProjectionError::Malformed(format!("parked event {id}: {e}")))?;
            let result = match backend {
                Backend::Sql => self.apply_parked_sql(name, &event).await,
                Backend::Redis => self.apply_parked_redis(&event).await,
            };
            match result {
                Ok(()) => {
                    sqlx::query("UPDATE parked_events SET resolved_at = now() WHERE id = $1")
                        .bind(id)
                        .execute(self.pool())
                        .await
                        .map_err(ProjectionError::pg("resolving a parked event"))?;
                    resolved += 1;
                }
                Err(e) => {
                    sqlx::query(
                        "UPDATE parked_events SET error = $2, attempts = attempts + 1 WHERE id = $1",
                    )
                    .bind(id)
                    .bind(e.to_string())
                    .execute(self.pool())
                    .await
                    .map_err(ProjectionError::pg("updating a parked event"))?;
                    failing += 1;
                }
            }
        }
        if failing == 0 {
            sqlx::query(
                "UPDATE projection_generations SET state = 'running', halted_reason = NULL
                  WHERE projection = $1 AND state = 'halted'",
            )
            .bind(name)
            .execute(self.pool())
            .await
            .map_err(ProjectionError::pg("resuming a projection"))?;
        }
        Ok((resolved, failing))
    }

    /// Applies one parked event; moves the checkpoint over it when it is the next one (a
    /// halted projection), otherwise (skipped earlier) applies it out of order, which the
    /// per-row version guards keep from undoing later changes.
    async fn apply_parked_sql(&self, name: &str, event: &RecordedEvent) -> Result<()> {
        let mut tx = self
            .pool()
            .begin()
            .await
            .map_err(ProjectionError::pg("starting a retry"))?;
        let generation: i32 = sqlx::query_scalar(
            "SELECT generation FROM projection_generations WHERE projection = $1 FOR SHARE",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await
        .map_err(ProjectionError::pg("locking the projection generation"))?;
        let checkpoint = lock_checkpoint(&mut tx, name, generation).await?;
        sql_models::apply_sql(name, &mut tx, &self.inner.names, generation, event).await?;
        if event.position > checkpoint {
            write_checkpoint(
                &mut tx,
                name,
                generation,
                event.position,
                1,
                Some(event.recorded_at),
            )
            .await?;
        }
        tx.commit()
            .await
            .map_err(ProjectionError::pg("committing a retry"))?;
        Ok(())
    }

    async fn apply_parked_redis(&self, event: &RecordedEvent) -> Result<()> {
        let ops = redis_models::redis_ops(event)?;
        let mut con = self.inner.redis.clone();
        let generation = self.ensure_redis_generation().await?;
        let token = redis_models::generation_checkpoint(&mut con, &self.inner.names, generation)
            .await?
            .unwrap_or_default();
        let checkpoint = parse_position(&token)?;
        let new = checkpoint.max(event.position);
        let applied = redis_models::apply_ops(
            &mut con,
            &self.inner.names,
            generation,
            true,
            Some(&token),
            &new.to_token(),
            &ops,
            1,
        )
        .await?;
        if applied == Applied::Done {
            Ok(())
        } else {
            Err(ProjectionError::Unavailable(format!(
                "redis:{REDIS_PROJECTION}"
            )))
        }
    }

    /// The position the published generation of a projection has reached.
    ///
    /// # Errors
    /// [`ProjectionError::UnknownProjection`], or the failure of Postgres or Redis.
    pub async fn position(&self, name: &str) -> Result<Position> {
        match backend_of(name)? {
            Backend::Sql => {
                let token: Option<String> = sqlx::query_scalar(
                    "SELECT c.position FROM projection_generations g
                       JOIN projection_checkpoints c
                         ON c.projection = g.projection AND c.generation = g.generation
                      WHERE g.projection = $1",
                )
                .bind(name)
                .fetch_optional(self.pool())
                .await
                .map_err(ProjectionError::pg("reading a checkpoint"))?;
                token.map_or(Ok(Position::START), |t| parse_position(&t))
            }
            Backend::Redis => match self.redis_read_models().checkpoint().await {
                Ok(Some(t)) => parse_position(&t),
                Ok(None) | Err(ProjectionError::Unavailable(_)) => Ok(Position::START),
                Err(e) => Err(e),
            },
        }
    }

    /// Waits until a projection has applied everything up to `position` (a consistency token
    /// from a write), for read-your-writes.
    ///
    /// # Errors
    /// [`ProjectionError::Stale`] when `timeout` passes first; errors of
    /// [`Projections::position`].
    pub async fn wait_for(&self, name: &str, position: &Position, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(2);
        loop {
            let notified = self.inner.progress.notified();
            let reached = self.position(name).await?;
            if reached >= *position {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ProjectionError::Stale {
                    projection: name.to_owned(),
                    wanted: position.to_token(),
                    reached: reached.to_token(),
                });
            }
            // Woken by this process's workers at once; other processes' are polled.
            tokio::select! {
                () = notified => {}
                () = sleep(pause.min(deadline - now)) => {}
            }
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// The status of every projection.
    ///
    /// # Errors
    /// The failure of Postgres or Redis.
    pub async fn status(&self) -> Result<Vec<ProjectionStatus>> {
        let mut out = Vec::with_capacity(ALL_PROJECTIONS.len());
        for name in ALL_PROJECTIONS {
            out.push(self.status_of(name).await?);
        }
        Ok(out)
    }

    /// The status of one projection.
    ///
    /// # Errors
    /// [`ProjectionError::UnknownProjection`], or the failure of Postgres or Redis.
    pub async fn status_of(&self, name: &str) -> Result<ProjectionStatus> {
        let backend = backend_of(name)?;
        let row: Option<(i32, String, Option<i32>)> = sqlx::query_as(
            "SELECT generation, state, rebuilding_generation FROM projection_generations
              WHERE projection = $1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await
        .map_err(ProjectionError::pg("reading a projection's state"))?;
        let (mut generation, state, rebuilding) = row.unwrap_or((1, "running".to_owned(), None));
        if backend == Backend::Redis {
            let mut con = self.inner.redis.clone();
            if let Some(g) = redis_models::current_generation(&mut con, &self.inner.names).await? {
                generation = i32::try_from(g).unwrap_or(i32::MAX);
            }
        }
        let state = match (state.as_str(), rebuilding) {
            ("halted", _) => ProjectionState::Halted,
            (_, Some(_)) => ProjectionState::Rebuilding,
            _ => ProjectionState::Running,
        };
        let position = self.position(name).await?;
        let (lag_events, lag_seconds) = self.lag_after(position).await?;
        let parked: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM parked_events WHERE projection = $1 AND resolved_at IS NULL",
        )
        .bind(name)
        .fetch_one(self.pool())
        .await
        .map_err(ProjectionError::pg("counting parked events"))?;
        Ok(ProjectionStatus {
            name: name.to_owned(),
            backend,
            generation: i64::from(generation),
            position,
            lag_events,
            lag_seconds,
            state,
            parked: u64::try_from(parked).unwrap_or(0),
        })
    }

    /// Events stored after a position, and the age of the oldest of them.
    ///
    /// Reads the store's `events` table directly (same schema): the store's API has no count,
    /// and the feed key's index makes this a range scan over the lag only.
    pub(crate) async fn lag_after(&self, position: Position) -> Result<(u64, f64)> {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let (count, age): (i64, Option<f64>) = sqlx::query_as(
            "SELECT count(*), extract(epoch FROM now() - min(recorded_at))::float8
               FROM events WHERE (epoch, xid, pos) > ($1, $2, $3)",
        )
        .bind(clamp(position.epoch))
        .bind(clamp(position.xid))
        .bind(clamp(position.pos))
        .fetch_one(self.pool())
        .await
        .map_err(ProjectionError::pg("measuring the lag"))?;
        Ok((
            u64::try_from(count).unwrap_or(0),
            age.unwrap_or(0.0).max(0.0),
        ))
    }
}

/// Turns a JetStream message into an event and its predecessor's position.
pub(crate) fn decode_message(m: &jetstream::Message) -> Result<Incoming> {
    let event: RecordedEvent = serde_json::from_slice(&m.payload)
        .map_err(|e| ProjectionError::Malformed(format!("payload: {e}")))?;
    let prev = m
        .headers
        .as_ref()
        .and_then(|h| h.get(HEADER_PREV_POSITION))
        .map(|v| parse_position(v.as_str()))
        .transpose()?;
    Ok(Incoming { event, prev })
}

/// Takes the checkpoint row of a generation FOR UPDATE (two workers of one projection then
/// take turns instead of both applying a batch).
pub(crate) async fn lock_checkpoint(
    conn: &mut PgConnection,
    name: &str,
    generation: i32,
) -> Result<Position> {
    let token: Option<String> = sqlx::query_scalar(
        "SELECT position FROM projection_checkpoints
          WHERE projection = $1 AND generation = $2 FOR UPDATE",
    )
    .bind(name)
    .bind(generation)
    .fetch_optional(&mut *conn)
    .await
    .map_err(ProjectionError::pg("locking a checkpoint"))?;
    match token {
        Some(t) => parse_position(&t),
        None => {
            sqlx::query(
                "INSERT INTO projection_checkpoints (projection, generation, position)
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(name)
            .bind(generation)
            .bind(Position::START.to_token())
            .execute(&mut *conn)
            .await
            .map_err(ProjectionError::pg("creating a checkpoint"))?;
            Ok(Position::START)
        }
    }
}

pub(crate) async fn write_checkpoint(
    conn: &mut PgConnection,
    name: &str,
    generation: i32,
    position: Position,
    events: usize,
    last_recorded_at: Option<DateTime<Utc>>,
) -> Result<()> {
    sqlx::query(
        "UPDATE projection_checkpoints
            SET position = $3, events = events + $4,
                last_recorded_at = coalesce($5, last_recorded_at), updated_at = now()
          WHERE projection = $1 AND generation = $2",
    )
    .bind(name)
    .bind(generation)
    .bind(position.to_token())
    .bind(i64::try_from(events).unwrap_or(i64::MAX))
    .bind(last_recorded_at)
    .execute(conn)
    .await
    .map_err(ProjectionError::pg("writing a checkpoint"))?;
    Ok(())
}

/// Applies events (already sequenced after `checkpoint`) inside the caller's transaction and
/// moves the checkpoint. Tries the whole run at once; if that fails, replays it event by
/// event under savepoints to apply everything before the failing event and report it.
pub(crate) async fn apply_sql_in_tx(
    conn: &mut PgConnection,
    names: &Names,
    name: &str,
    generation: i32,
    checkpoint: Position,
    events: &[RecordedEvent],
) -> Result<Outcome> {
    if events.is_empty() {
        return Ok(Outcome {
            reached: checkpoint,
            failed: None,
        });
    }
    savepoint(conn, "SAVEPOINT batch").await?;
    let fast = sql_models::apply_sql_batch(name, conn, names, generation, events).await;
    let (reached, applied, failed) = match fast {
        Ok(()) => {
            savepoint(conn, "RELEASE SAVEPOINT batch").await?;
            let last = events.last().map_or(checkpoint, |e| e.position);
            (last, events.len(), None)
        }
        Err(_) => {
            savepoint(conn, "ROLLBACK TO SAVEPOINT batch").await?;
            let mut reached = checkpoint;
            let mut applied = 0;
            let mut failed = None;
            for e in events {
                savepoint(conn, "SAVEPOINT one").await?;
                match sql_models::apply_sql(name, conn, names, generation, e).await {
                    Ok(()) => {
                        savepoint(conn, "RELEASE SAVEPOINT one").await?;
                        reached = e.position;
                        applied += 1;
                    }
                    Err(err) => {
                        savepoint(conn, "ROLLBACK TO SAVEPOINT one").await?;
                        failed = Some((e.clone(), err));
                        break;
                    }
                }
            }
            (reached, applied, failed)
        }
    };
    if reached != checkpoint {
        let last_at = events
            .iter()
            .take_while(|e| e.position <= reached)
            .last()
            .map(|e| e.recorded_at);
        write_checkpoint(conn, name, generation, reached, applied, last_at).await?;
    }
    Ok(Outcome { reached, failed })
}

async fn savepoint(conn: &mut PgConnection, sql: &'static str) -> Result<()> {
    sqlx::query(sql)
        .execute(conn)
        .await
        .map_err(ProjectionError::pg(sql.to_lowercase()))?;
    Ok(())
}

/// The Redis operations of a run of events (sequenced after `checkpoint`) up to, not
/// including, the first one whose payload cannot be read; the position reached; and that
/// failure.
pub(crate) fn redis_ops_until_failure(
    checkpoint: Position,
    events: &[RecordedEvent],
) -> (
    Vec<serde_json::Value>,
    Position,
    Option<(RecordedEvent, ProjectionError)>,
) {
    let mut ops = Vec::new();
    let mut reached = checkpoint;
    for e in events {
        match redis_models::redis_ops(e) {
            Ok(mut more) => {
                ops.append(&mut more);
                reached = e.position;
            }
            Err(err) => return (ops, reached, Some((e.clone(), err))),
        }
    }
    (ops, reached, None)
}
