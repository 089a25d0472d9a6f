//! The generic command runner: load an aggregate (latest snapshot plus later events), decide,
//! append with the version that was read, and on a conflict load again and decide again.
//!
//! One mechanism serves single-stream commands and atomic multi-stream batches. A command
//! starts a [`Run`] ([`Runner::begin`]), then loops: take a fresh [`Batch`], load what it needs
//! through it, decide, emit events against what it loaded, and [`Run::commit`]. The commit
//! appends every emitted write with `append_many_in` in one transaction (all or nothing), writes
//! the batch's side rows and the idempotency record in that same transaction, and commits. When
//! any stream moved since it was loaded, `commit` backs off (jittered, exponential) and returns
//! `None`: the loop decides again on fresh state, up to [`RunnerConfig::max_attempts`] times.
//!
//! The loop is written out by each command instead of being a closure handed to the runner:
//! futures of async closures that borrow their argument are not provably `Send` today, and the
//! API serves commands from a multi-threaded runtime.

use std::time::Duration;

use pyairtable_domain::Aggregate;
use pyairtable_eventstore::{
    Actor, AppendResult, Direction, EventStore, ExpectedVersion, Metadata, NewEvent, RecordedEvent,
    Snapshot, StoreError, StreamId, StreamWrite,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::auth::rollback;
use crate::auth::tables::{self, TxWrite};
use crate::codec::{self, Encoded};
use crate::context::{Caller, CommandContext};
use crate::error::CommandError;
use crate::idempotency::{self, Claim, Fingerprint};

/// Schema version written with snapshots. Bump it when an aggregate's state changes shape in
/// a way that still deserialises but means something else; snapshots that fail to deserialise
/// are ignored anyway and the stream is replayed from the start.
pub const SNAPSHOT_SCHEMA_VERSION: i32 = 1;

/// Events read per round trip while loading a stream.
const READ_PAGE: usize = 1000;

/// Retry and snapshot tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnerConfig {
    /// How many times a command is decided before a conflict is reported (at least 1).
    pub max_attempts: u32,
    /// Back-off before the second attempt; doubles each time, capped at `max_delay`, and the
    /// actual sleep is drawn uniformly below it ("full jitter") so racing writers spread out.
    pub base_delay: Duration,
    /// Upper bound of one back-off.
    pub max_delay: Duration,
    /// A snapshot is saved whenever a stream's version crosses a multiple of this (0: never).
    pub snapshot_every: u64,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(250),
            snapshot_every: 100,
        }
    }
}

/// The stream id of an aggregate instance: `{KIND}-{id}`.
///
/// # Errors
/// [`CommandError::Rejected`] when the id makes an invalid stream name.
pub fn stream_id<A: Aggregate>(id: &str) -> Result<StreamId, CommandError> {
    StreamId::parse(&format!("{}-{id}", A::KIND))
        .map_err(|e| CommandError::rejected("invalid_id", e.to_string()))
}

/// An aggregate's state as of a stream version.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    /// The stream it was read from.
    pub stream: StreamId,
    /// The stream's version the state reflects (0: the stream does not exist yet).
    pub version: u64,
    /// The folded state.
    pub state: A,
}

impl<A> Loaded<A> {
    /// Whether the stream has no events yet.
    #[must_use]
    pub fn is_new(&self) -> bool {
        self.version == 0
    }

    fn expected(&self) -> ExpectedVersion {
        if self.version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(self.version)
        }
    }
}

/// The state of an aggregate after events were emitted for it, and the stream version the
/// append will give it.
#[derive(Debug, Clone)]
pub struct Emitted<A> {
    /// State after the emitted events.
    pub state: A,
    /// Stream version after the append (the loaded version when nothing was emitted).
    pub version: u64,
}

/// One event as appended: its id and stream version beside the typed event.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded<E> {
    /// The event id.
    pub event_id: Uuid,
    /// Its version in the stream.
    pub version: u64,
    /// The event.
    pub event: E,
}

/// What a single-stream command did.
#[derive(Debug, Clone)]
pub struct CommandOutcome<A: Aggregate> {
    /// The stream written.
    pub stream: String,
    /// The stream's version after the command.
    pub stream_version: u64,
    /// Opaque position token of the write in the global feed (the consistency token). When the
    /// command decided no events, the feed's head at the time.
    pub position: String,
    /// The appended events (empty when the command changed nothing).
    pub events: Vec<Recorded<A::Event>>,
    /// The aggregate's state after the command.
    pub state: A,
}

/// What one stream of a batch received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOutcome {
    /// The stream.
    pub stream: String,
    /// Its version after the batch.
    pub version: u64,
    /// Ids of the events appended to it, in order.
    pub event_ids: Vec<Uuid>,
}

/// Where a batch's writes landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOutcome {
    /// Opaque position token of the batch in the global feed (the head when nothing was written).
    pub position: String,
    /// One entry per written stream, in emit order.
    pub streams: Vec<StreamOutcome>,
    /// How many times the command was decided.
    pub attempts: u32,
}

impl BatchOutcome {
    /// The event ids appended to `stream`, if it was written.
    #[must_use]
    pub fn event_ids(&self, stream: &StreamId) -> &[Uuid] {
        self.streams
            .iter()
            .find(|s| s.stream == stream.as_str())
            .map_or(&[], |s| s.event_ids.as_slice())
    }
}

struct PendingWrite {
    stream: StreamId,
    expected: ExpectedVersion,
    events: Vec<Encoded>,
    snapshot: Option<(u64, Value)>,
}

/// The unit of work of one attempt: loads go through it, every emitted write is appended
/// atomically with the version its state was loaded at, and its side rows are written in the
/// same transaction.
pub struct Batch<'r> {
    runner: &'r Runner,
    writes: Vec<PendingWrite>,
    tx_writes: Vec<TxWrite>,
}

impl Batch<'_> {
    /// Loads an aggregate by id (stream `{KIND}-{id}`).
    ///
    /// # Errors
    /// Infrastructure errors from the store or an undecodable stored event.
    pub async fn load<A: Aggregate>(&mut self, id: &str) -> Result<Loaded<A>, CommandError> {
        self.runner.load::<A>(id).await
    }

    /// An aggregate whose id this command has just drawn at random: it cannot have a stream
    /// yet, so it is not read (two round trips saved per new record). Its write expects no
    /// stream, so were the id taken after all, the append would be a conflict; the command's
    /// next attempt loads its aggregates from the store.
    ///
    /// # Errors
    /// An id that makes no valid stream id.
    pub fn fresh<A: Aggregate>(&self, id: &str) -> Result<Loaded<A>, CommandError> {
        Ok(Loaded {
            stream: stream_id::<A>(id)?,
            version: 0,
            state: A::default(),
        })
    }

    /// Queues `events` for the stream `loaded` came from, expecting it still to be at the
    /// version it was loaded at; returns the state and version after the events. Emitting
    /// nothing is allowed and writes nothing.
    ///
    /// # Errors
    /// When the stream already has a queued write in this batch (fold every change to one
    /// aggregate into one emit), or an event cannot be serialised.
    pub fn emit<A: Aggregate>(
        &mut self,
        loaded: &Loaded<A>,
        events: &[A::Event],
    ) -> Result<Emitted<A>, CommandError> {
        let mut state = loaded.state.clone();
        for event in events {
            state.apply(event);
        }
        let version = loaded.version + events.len() as u64;
        if events.is_empty() {
            return Ok(Emitted { state, version });
        }
        if self.writes.iter().any(|w| w.stream == loaded.stream) {
            return Err(CommandError::infra(
                "planning a batch",
                format!("stream {} was emitted to twice", loaded.stream),
            ));
        }
        let encoded = events
            .iter()
            .map(codec::encode)
            .collect::<Result<Vec<_>, _>>()?;
        let snapshot = crosses_boundary(self.runner.config.snapshot_every, loaded.version, version)
            .then(|| serde_json::to_value(&state).ok().map(|v| (version, v)))
            .flatten();
        self.writes.push(PendingWrite {
            stream: loaded.stream.clone(),
            expected: loaded.expected(),
            events: encoded,
            snapshot,
        });
        Ok(Emitted { state, version })
    }

    /// Queues a row change to make in the append's transaction (only if something is appended).
    pub(crate) fn tx_write(&mut self, write: TxWrite) {
        self.tx_writes.push(write);
    }

    /// Whether anything has been emitted so far.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// Runs commands against the event store. Cheap to clone.
#[derive(Clone)]
pub struct Runner {
    store: EventStore,
    config: RunnerConfig,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("config", &self.config)
            .finish()
    }
}

/// How [`Runner::begin`] starts: with the stored result of an earlier request under the same
/// idempotency key, or with a run to drive.
#[allow(clippy::large_enum_variant)] // one short-lived value per command; boxing buys nothing
pub enum Begin<'r, R> {
    /// The caller already ran this request under this key: here is its result.
    Replayed(R),
    /// Decide and commit.
    Run(Run<'r>),
}

/// The attempts of one command: hands out batches, commits them, counts and spaces retries.
pub struct Run<'r> {
    runner: &'r Runner,
    metadata: Metadata,
    claim: Option<Claim>,
    attempt: u32,
}

impl Runner {
    /// A runner over `store`.
    #[must_use]
    pub fn new(store: EventStore, config: RunnerConfig) -> Self {
        Self { store, config }
    }

    /// The event store.
    #[must_use]
    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// The tuning in force.
    #[must_use]
    pub fn config(&self) -> RunnerConfig {
        self.config
    }

    /// Loads an aggregate: the latest usable snapshot, then every later event. The snapshot
    /// and the first page of events come in one round trip.
    ///
    /// # Errors
    /// Infrastructure errors from the store or an undecodable stored event.
    pub async fn load<A: Aggregate>(&self, id: &str) -> Result<Loaded<A>, CommandError> {
        let stream = stream_id::<A>(id)?;
        let read_error = |e| CommandError::infra(format!("reading {stream}"), e);
        let from_snapshot = if self.config.snapshot_every == 0 {
            None
        } else {
            let load = self
                .store
                .load_stream(&stream, READ_PAGE)
                .await
                .map_err(read_error)?;
            match load.snapshot {
                None => Some((A::default(), 0, load.events)),
                Some(snapshot) => usable_snapshot::<A>(&stream, snapshot)
                    .map(|(state, version)| (state, version, load.events)),
            }
        };
        let (mut state, mut version, mut page) = match from_snapshot {
            Some(loaded) => loaded,
            // No snapshots kept, or one this code cannot use: replay from the first event.
            None => {
                let page = self
                    .store
                    .read_stream(&stream, 1, Direction::Forward, READ_PAGE)
                    .await
                    .map_err(read_error)?;
                (A::default(), 0, page)
            }
        };
        loop {
            let n = page.len();
            for recorded in page {
                let event: A::Event = codec::decode(
                    stream.as_str(),
                    recorded.version,
                    &recorded.event_type,
                    &recorded.payload,
                )?;
                state.apply(&event);
                version = recorded.version;
            }
            if n < READ_PAGE {
                break;
            }
            page = self
                .store
                .read_stream(&stream, version + 1, Direction::Forward, READ_PAGE)
                .await
                .map_err(read_error)?;
        }
        Ok(Loaded {
            stream,
            version,
            state,
        })
    }

    /// Every event of an aggregate's stream, typed, oldest first (for history and reverting).
    ///
    /// # Errors
    /// Infrastructure errors from the store or an undecodable stored event.
    pub async fn history<A: Aggregate>(
        &self,
        id: &str,
    ) -> Result<Vec<(RecordedEvent, A::Event)>, CommandError> {
        let stream = stream_id::<A>(id)?;
        let mut out = Vec::new();
        let mut from = 1;
        loop {
            let page = self
                .store
                .read_stream(&stream, from, Direction::Forward, READ_PAGE)
                .await
                .map_err(|e| CommandError::infra(format!("reading {stream}"), e))?;
            let n = page.len();
            for recorded in page {
                let event: A::Event = codec::decode(
                    stream.as_str(),
                    recorded.version,
                    &recorded.event_type,
                    &recorded.payload,
                )?;
                from = recorded.version + 1;
                out.push((recorded, event));
            }
            if n < READ_PAGE {
                return Ok(out);
            }
        }
    }

    /// Starts a command. With an idempotency key in `ctx` and a `request` fingerprint: when the
    /// caller already ran a command under this key, its stored result comes back (or
    /// [`CommandError::IdempotencyKeyReused`] when the request differs); otherwise the result
    /// will be stored in the same transaction as the events, so a key never exists without its
    /// events, and of two concurrent requests with one key exactly one writes.
    ///
    /// # Errors
    /// [`CommandError::IdempotencyKeyReused`], an invalid key, or infrastructure errors.
    pub async fn begin<R: DeserializeOwned>(
        &self,
        ctx: &CommandContext,
        workspace_id: Option<&str>,
        request: &Fingerprint,
    ) -> Result<Begin<'_, R>, CommandError> {
        let claim = request.claim(ctx)?;
        if let Some(claim) = &claim
            && let Some(stored) = idempotency::lookup(self.store.pool(), claim).await?
        {
            return Ok(Begin::Replayed(idempotency::decode(claim, stored)?));
        }
        Ok(Begin::Run(Run {
            runner: self,
            metadata: metadata(ctx, workspace_id),
            claim,
            attempt: 0,
        }))
    }

    /// Decides `command` against the aggregate `id` and appends the result, retrying on
    /// conflicts. Ignores the context's idempotency key.
    ///
    /// # Errors
    /// The domain's rejection, a conflict once retries are exhausted, or an infrastructure error.
    pub async fn execute<A: Aggregate>(
        &self,
        ctx: &CommandContext,
        workspace_id: Option<&str>,
        id: &str,
        command: &A::Command,
    ) -> Result<CommandOutcome<A>, CommandError> {
        self.execute_with::<A, _>(ctx, workspace_id, id, |loaded| {
            loaded
                .state
                .handle(command)
                .map_err(|e| CommandError::domain(&e))
        })
        .await
    }

    /// Like [`Runner::execute`], with a custom decision (e.g. one that consults the loaded
    /// state before choosing the command). Ignores the context's idempotency key.
    ///
    /// # Errors
    /// Whatever `decide` returns, a conflict once retries are exhausted, or an infrastructure
    /// error.
    pub async fn execute_with<A, F>(
        &self,
        ctx: &CommandContext,
        workspace_id: Option<&str>,
        id: &str,
        mut decide: F,
    ) -> Result<CommandOutcome<A>, CommandError>
    where
        A: Aggregate,
        F: FnMut(&Loaded<A>) -> Result<Vec<A::Event>, CommandError>,
    {
        let mut run = Run {
            runner: self,
            metadata: metadata(ctx, workspace_id),
            claim: None,
            attempt: 0,
        };
        loop {
            let mut batch = run.batch();
            let loaded = batch.load::<A>(id).await?;
            let events = decide(&loaded)?;
            let emitted = batch.emit(&loaded, &events)?;
            let Some(outcome) = run.commit(batch, |o| Ok(o.clone())).await? else {
                continue;
            };
            let ids = outcome.event_ids(&loaded.stream).to_vec();
            let events = events
                .into_iter()
                .zip(ids)
                .enumerate()
                .map(|(i, (event, event_id))| Recorded {
                    event_id,
                    version: loaded.version + 1 + i as u64,
                    event,
                })
                .collect();
            return Ok(CommandOutcome {
                stream: loaded.stream.to_string(),
                stream_version: emitted.version,
                position: outcome.position,
                events,
                state: emitted.state,
            });
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .config
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.config.max_delay);
        let ceiling = u64::try_from(exp.as_micros()).unwrap_or(u64::MAX).max(1);
        Duration::from_micros(rand::random_range(0..=ceiling))
    }

    async fn save_snapshots(&self, snapshots: Vec<(StreamId, (u64, Value))>) {
        for (stream, (version, state)) in snapshots {
            if let Err(error) = self
                .store
                .save_snapshot(&stream, version, SNAPSHOT_SCHEMA_VERSION, state)
                .await
            {
                // Best effort: a missing snapshot only makes the next load replay more events.
                tracing::warn!(%stream, version, %error, "cannot save snapshot");
            }
        }
    }
}

impl<'r> Run<'r> {
    /// A fresh batch for the next attempt.
    #[must_use]
    pub fn batch(&self) -> Batch<'r> {
        Batch {
            runner: self.runner,
            writes: Vec::new(),
            tx_writes: Vec::new(),
        }
    }

    /// Records the workspace the command's events belong to (for commands that learn it only
    /// after loading, e.g. from a base).
    pub fn set_workspace(&mut self, workspace_id: &str) {
        self.metadata.workspace_id = Some(workspace_id.to_owned());
    }

    /// How many attempts were committed or abandoned so far.
    #[must_use]
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Appends the batch's writes atomically and turns the outcome into the command's result
    /// with `finish` (stored for its idempotency key, if any, in the same transaction).
    ///
    /// Returns `Ok(None)` when a stream moved since the batch loaded it: the caller decides
    /// again with a fresh [`Run::batch`] (this call already waited the back-off).
    ///
    /// # Errors
    /// [`CommandError::Conflict`] once the attempts are exhausted; whatever `finish` or a side
    /// row returns (everything is rolled back); [`CommandError::IdempotencyKeyReused`];
    /// infrastructure errors.
    pub async fn commit<R, F>(
        &mut self,
        batch: Batch<'_>,
        finish: F,
    ) -> Result<Option<R>, CommandError>
    where
        R: Serialize + DeserializeOwned,
        F: FnOnce(&BatchOutcome) -> Result<R, CommandError>,
    {
        self.attempt += 1;
        let runner = self.runner;
        let Batch {
            writes, tx_writes, ..
        } = batch;
        if writes.is_empty() {
            let head = runner
                .store
                .head()
                .await
                .map_err(|e| CommandError::infra("reading the feed head", e))?;
            let outcome = BatchOutcome {
                position: head.to_token(),
                streams: Vec::new(),
                attempts: self.attempt,
            };
            let result = finish(&outcome)?;
            if let Some(claim) = &self.claim {
                let mut conn = runner.store.pool().acquire().await?;
                if !idempotency::insert(&mut conn, claim, &to_json(&result)?).await? {
                    return self.replayed().await.map(Some);
                }
            }
            return Ok(Some(result));
        }

        let mut snapshots = Vec::new();
        let store_writes = writes
            .into_iter()
            .map(|write| {
                if let Some(snapshot) = write.snapshot {
                    snapshots.push((write.stream.clone(), snapshot));
                }
                StreamWrite {
                    stream: write.stream,
                    expected: write.expected,
                    events: write
                        .events
                        .into_iter()
                        .map(|e| NewEvent {
                            event_id: Uuid::now_v7(),
                            event_type: e.event_type.to_owned(),
                            schema_version: e.schema_version,
                            payload: e.payload,
                        })
                        .collect(),
                }
            })
            .collect();

        let mut tx = runner.store.pool().begin().await?;
        let appended = runner
            .store
            .append_many_in(&mut tx, store_writes, &self.metadata)
            .await;
        let results = match appended {
            Ok(results) => results,
            Err(StoreError::Conflict { stream, .. }) => {
                rollback(tx).await;
                if self.attempt >= runner.config.max_attempts.max(1) {
                    return Err(CommandError::Conflict {
                        stream,
                        attempts: self.attempt,
                    });
                }
                tracing::debug!(%stream, attempt = self.attempt, "conflict; deciding again");
                tokio::time::sleep(runner.backoff(self.attempt)).await;
                return Ok(None);
            }
            Err(other) => {
                rollback(tx).await;
                return Err(store_error("appending events", other));
            }
        };
        let position = results
            .iter()
            .map(|r| r.position)
            .max()
            .map(|p| p.to_token())
            .unwrap_or_default();
        let outcome = BatchOutcome {
            position,
            streams: results.into_iter().map(stream_outcome).collect(),
            attempts: self.attempt,
        };
        match self.finish_in(&mut tx, &tx_writes, &outcome, finish).await {
            Ok(Some(result)) => {
                tx.commit().await?;
                runner.store.notify_appended();
                runner.save_snapshots(snapshots).await;
                Ok(Some(result))
            }
            Ok(None) => {
                // A concurrent request with the same key committed first: undo ours.
                rollback(tx).await;
                self.replayed().await.map(Some)
            }
            Err(error) => {
                rollback(tx).await;
                Err(error)
            }
        }
    }

    /// The rest of the append's transaction: side rows, the result, its idempotency record.
    /// `Ok(None)` when the idempotency key turned out to be taken.
    async fn finish_in<R, F>(
        &self,
        tx: &mut PgConnection,
        tx_writes: &[TxWrite],
        outcome: &BatchOutcome,
        finish: F,
    ) -> Result<Option<R>, CommandError>
    where
        R: Serialize,
        F: FnOnce(&BatchOutcome) -> Result<R, CommandError>,
    {
        for write in tx_writes {
            tables::apply(tx, write).await?;
        }
        let result = finish(outcome)?;
        if let Some(claim) = &self.claim
            && !idempotency::insert(tx, claim, &to_json(&result)?).await?
        {
            return Ok(None);
        }
        Ok(Some(result))
    }

    async fn replayed<R: DeserializeOwned>(&self) -> Result<R, CommandError> {
        let Some(claim) = &self.claim else {
            return Err(CommandError::infra(
                "replaying an idempotent request",
                "no idempotency key",
            ));
        };
        match idempotency::lookup(self.runner.store.pool(), claim).await? {
            Some(stored) => idempotency::decode(claim, stored),
            None => Err(CommandError::Conflict {
                stream: format!("idempotency key {}", claim.key),
                attempts: self.attempt,
            }),
        }
    }
}

fn to_json(result: &impl Serialize) -> Result<Value, CommandError> {
    serde_json::to_value(result).map_err(|e| CommandError::infra("serialising a result", e))
}

/// Whether going from version `from` to `to` passes a multiple of `every` (0: never).
fn crosses_boundary(every: u64, from: u64, to: u64) -> bool {
    every > 0 && from / every != to / every
}

fn stream_outcome(result: AppendResult) -> StreamOutcome {
    StreamOutcome {
        stream: result.stream_id,
        version: result.last_version,
        event_ids: result.events.iter().map(|e| e.event_id).collect(),
    }
}

/// Maps a store error that is not a conflict: rejections of the input stay rejections.
pub(crate) fn store_error(context: &str, error: StoreError) -> CommandError {
    use pyairtable_eventstore::ErrorKind;
    match error.kind() {
        ErrorKind::Rejected => CommandError::rejected("invalid_write", error.to_string()),
        ErrorKind::Conflict | ErrorKind::Infrastructure => CommandError::infra(context, error),
    }
}

/// The metadata every event of a command carries (invariant 6: who and why).
pub(crate) fn metadata(ctx: &CommandContext, workspace_id: Option<&str>) -> Metadata {
    let actor = match &ctx.caller {
        Caller::User(user) => match &user.token {
            Some(token) => Actor::ApiToken {
                id: token.token_id.to_string(),
                user_id: user.user_id.to_string(),
            },
            None => Actor::User {
                id: user.user_id.to_string(),
            },
        },
        Caller::System { name } => Actor::System { name: name.clone() },
    };
    let mut metadata = Metadata::new(actor, ctx.correlation_id);
    metadata.causation_id = ctx.causation_id;
    metadata.workspace_id = workspace_id.map(str::to_owned);
    if let Some(key) = &ctx.idempotency_key {
        metadata
            .extra
            .insert("idempotency_key".to_owned(), Value::String(key.clone()));
    }
    metadata
}

/// A snapshot's state and version when this code can use it: of the current schema version
/// and decodable. Otherwise the aggregate is replayed from its first event (a snapshot is an
/// optimisation; replaying is always correct).
fn usable_snapshot<A: Aggregate>(stream: &StreamId, snapshot: Snapshot) -> Option<(A, u64)> {
    if snapshot.schema_version != SNAPSHOT_SCHEMA_VERSION {
        return None;
    }
    match serde_json::from_value::<A>(snapshot.state) {
        Ok(state) => Some((state, snapshot.version)),
        Err(error) => {
            tracing::warn!(%stream, %error, "ignoring undecodable snapshot");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_boundaries() {
        assert!(!crosses_boundary(100, 0, 99));
        assert!(crosses_boundary(100, 99, 100));
        assert!(crosses_boundary(100, 98, 105));
        assert!(!crosses_boundary(100, 100, 199));
        assert!(!crosses_boundary(0, 0, 1000));
    }
}
