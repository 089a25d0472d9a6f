//! [`EventStore`]: connect, migrate, append, read streams and the feed, snapshots.

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, PgPool, Row};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::instrument;

use crate::append::AppendStatements;
use crate::config::StoreConfig;
use crate::conns::AppendConnections;
use crate::envelope::{Direction, FeedBatch, RecordedEvent, Snapshot, StreamLoad};
use crate::error::StoreError;
use crate::feed;
use crate::heads::{Head, HeadCache};
use crate::ids::{Namespace, StreamId};
use crate::position::Position;
use crate::prepare::check_json;

/// The selected columns of an event row, in the order [`decode_event`] reads them.
macro_rules! event_columns {
    () => {
        "e.epoch, e.xid, e.pos, e.stream_id, e.version, e.event_id, e.event_type, \
         e.schema_version, e.payload::text AS payload, e.metadata::text AS metadata, \
         e.recorded_at, e.prev_hash, e.hash"
    };
}

/// `(current epoch, oldest running event writer)`: rows whose `(epoch, xid)` sort below it
/// are final. Rows of an older epoch are all final; in the current epoch, a transaction older
/// than every running transaction that writes events can no longer add rows (see
/// `feed_horizon` in migrations/0050_feed_horizon.sql). A subquery, so the function runs
/// once per statement and sees the statement's snapshot.
macro_rules! horizon {
    () => {
        "((SELECT s.epoch FROM store_epoch AS s), \
          (SELECT feed_horizon(pg_current_snapshot())))"
    };
}

/// Whether committed events wait behind the horizon, asked as "is the newest row at or past
/// it?": one step of a backward scan of the feed index. Asked as EXISTS, the planner expects
/// an early match and picks a sequential scan, which reads every event when nothing is held
/// back (the usual case).
const HELD_BACK_SQL: &str = concat!(
    "SELECT coalesce((SELECT (e.epoch, e.xid) FROM events AS e",
    " ORDER BY e.epoch DESC, e.xid DESC, e.pos DESC LIMIT 1) >= ",
    horizon!(),
    ", false)"
);

/// Most events one read returns, whatever `max` asks for.
pub const MAX_READ: usize = 10_000;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// The Postgres event store of one namespace. Cheap to clone: clones share one pool.
#[derive(Clone)]
pub struct EventStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: PgPool,
    pub(crate) config: StoreConfig,
    /// The append statements, with the namespace's tables qualified.
    pub(crate) statements: AppendStatements,
    /// Connections appends run on (see `conns`).
    pub(crate) appenders: AppendConnections,
    /// Stream heads this process stored last, for the known-head append.
    pub(crate) heads: HeadCache,
    /// Bumped after every local commit and every NOTIFY received; subscribers wait on it.
    pub(crate) feed_signal: Arc<watch::Sender<u64>>,
    /// Wakes the task that sends the coalesced NOTIFY.
    pub(crate) notifier: Arc<Notify>,
    notifier_task: JoinHandle<()>,
    pub(crate) listener_task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.notifier_task.abort();
        if let Ok(mut task) = self.listener_task.lock()
            && let Some(task) = task.take()
        {
            task.abort();
        }
    }
}

impl EventStore {
    /// Connects a pool whose connections use `search_path = <namespace>, public` and the
    /// configured `idle_in_transaction_session_timeout`, creates the namespace's schema if
    /// missing, checks the feed epoch if the store is migrated, and starts the task that
    /// announces commits with NOTIFY.
    ///
    /// # Errors
    /// [`StoreError::Database`] when Postgres cannot be reached or the URL is invalid.
    #[instrument(skip_all, fields(namespace = %config.namespace), err)]
    pub async fn connect(config: StoreConfig) -> Result<Self, StoreError> {
        let ns = config.namespace.as_str().to_owned();
        let mut options = PgConnectOptions::from_str(&config.database_url)?.options([
            ("search_path", format!("{ns},public")),
            (
                "idle_in_transaction_session_timeout",
                format!("{}ms", config.idle_in_transaction_timeout.as_millis()),
            ),
        ]);
        if options.get_application_name().is_none() {
            options = options.application_name("pyairtable-eventstore");
        }
        // The append statements are fixed and their plans do not depend on the values; with
        // the default plan cache mode PostgreSQL planned the many-CTE batch statement anew on
        // every execution (custom plans), most of its server time for a ten-event append.
        let appenders = AppendConnections::new(
            options
                .clone()
                .options([("plan_cache_mode", "force_generic_plan")]),
            config.max_connections,
            config.acquire_timeout,
        );
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections.max(2))
            .acquire_timeout(config.acquire_timeout)
            // The default pings every connection on checkout: one more round trip per append.
            // A dead connection fails its query instead, and the pool replaces it.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;

        let create = sqlx::query(AssertSqlSafe(format!(
            r#"CREATE SCHEMA IF NOT EXISTS "{ns}""#
        )))
        .execute(&pool)
        .await;
        if let Err(err) = create {
            // Another process creating the same schema at the same moment loses with a
            // unique violation on pg_namespace; the schema exists all the same.
            if !is_already_exists(&err) {
                return Err(err.into());
            }
        }

        let (signal, _) = watch::channel(0_u64);
        let notifier = Arc::new(Notify::new());
        let notifier_task = tokio::spawn(feed::notify_commits(
            pool.clone(),
            config.namespace.notify_channel(),
            Arc::clone(&notifier),
            config.notify_interval,
        ));
        let store = Self {
            inner: Arc::new(Inner {
                statements: AppendStatements::new(&config.namespace),
                appenders,
                heads: HeadCache::default(),
                pool,
                config,
                feed_signal: Arc::new(signal),
                notifier,
                notifier_task,
                listener_task: Mutex::new(None),
            }),
        };
        let migrated: bool = sqlx::query_scalar(
            "SELECT to_regprocedure(format('%I.check_epoch()', $1::text)) IS NOT NULL",
        )
        .bind(&ns)
        .fetch_one(&store.inner.pool)
        .await?;
        if migrated {
            store.check_epoch().await?;
        }
        Ok(store)
    }

    /// Closes the store's connections: the pool, and the connections appends run on. Later
    /// calls fail with [`StoreError::Database`].
    pub async fn close(&self) {
        self.inner.appenders.close().await;
        self.inner.pool.close().await;
    }

    /// The connection pool (its connections have the namespace on their search_path).
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The namespace this store works in.
    pub fn namespace(&self) -> &Namespace {
        &self.inner.config.namespace
    }

    /// The settings this store was connected with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// Applies every migration of the repository (`migrations/`) inside the namespace's schema,
    /// then checks the feed epoch.
    ///
    /// # Errors
    /// [`StoreError::Migration`] when a migration fails or an applied one has changed.
    #[instrument(skip_all, fields(namespace = %self.namespace()), err)]
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.inner.pool).await?;
        self.check_epoch().await?;
        Ok(())
    }

    /// Compares the cluster under the data with the one recorded, bumping the feed epoch when
    /// the data has moved (see `docs/adr/0002-gap-free-global-feed.md`). Returns the epoch.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn check_epoch(&self) -> Result<u64, StoreError> {
        let sql = format!(r#"SELECT "{}".check_epoch()"#, self.namespace());
        let epoch: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&self.inner.pool)
            .await?;
        u64::try_from(epoch).map_err(|_| StoreError::Corrupt(format!("negative epoch {epoch}")))
    }

    /// Reads up to `max` events of a stream (at most [`MAX_READ`]), forwards from
    /// `from_version` or backwards from it (`u64::MAX` reads backwards from the end).
    /// A stream that does not exist reads as empty.
    ///
    /// # Errors
    /// [`StoreError::Database`], [`StoreError::Corrupt`].
    pub async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let sql = match direction {
            Direction::Forward => concat!(
                "SELECT ",
                event_columns!(),
                " FROM events AS e WHERE e.stream_id = $1 AND e.version >= $2",
                " ORDER BY e.version LIMIT $3"
            ),
            Direction::Backward => concat!(
                "SELECT ",
                event_columns!(),
                " FROM events AS e WHERE e.stream_id = $1 AND e.version <= $2",
                " ORDER BY e.version DESC LIMIT $3"
            ),
        };
        let rows = sqlx::query(sql)
            .bind(stream.as_str())
            .bind(saturating_i64(from_version))
            .bind(limit(max))
            .fetch_all(&self.inner.pool)
            .await?;
        let events = rows
            .iter()
            .map(decode_event)
            .collect::<Result<Vec<_>, _>>()?;
        // A read that reached the stream's end saw its head: the append that usually follows
        // (a command loads its aggregate, then appends) can chain onto it here.
        let head = match direction {
            Direction::Forward if events.len() < max.min(MAX_READ) => events.last(),
            Direction::Backward if from_version == u64::MAX => events.first(),
            _ => None,
        };
        self.saw_head(head);
        Ok(events)
    }

    /// Remembers `head`, an event read as its stream's last (see `heads`).
    fn saw_head(&self, head: Option<&RecordedEvent>) {
        if let Some(head) = head {
            self.inner.heads.put(
                &head.stream_id,
                Head::new(head.version, head.hash, head.recorded_at),
            );
        }
    }

    /// A stream's latest snapshot and up to `max` events after it (after version 0 when it
    /// has none), in one round trip: how an aggregate is loaded. When `max` events come back
    /// there may be more; read on with [`EventStore::read_stream`].
    ///
    /// # Errors
    /// [`StoreError::Database`], [`StoreError::Corrupt`].
    pub async fn load_stream(
        &self,
        stream: &StreamId,
        max: usize,
    ) -> Result<StreamLoad, StoreError> {
        let rows = sqlx::query(concat!(
            "WITH s AS MATERIALIZED (SELECT s.version, s.schema_version, s.state, s.taken_at",
            " FROM snapshots AS s WHERE s.stream_id = $1)",
            " SELECT NULL::bigint AS epoch, NULL::bigint AS xid, NULL::bigint AS pos,",
            " NULL::text AS stream_id, s.version, NULL::uuid AS event_id,",
            " NULL::text AS event_type, s.schema_version, s.state::text AS payload,",
            " NULL::text AS metadata, s.taken_at AS recorded_at, NULL::bytea AS prev_hash,",
            " NULL::bytea AS hash, true AS is_snapshot FROM s",
            " UNION ALL (SELECT ",
            event_columns!(),
            ", false FROM events AS e WHERE e.stream_id = $1",
            " AND e.version > coalesce((SELECT s.version FROM s), 0)",
            " ORDER BY e.version LIMIT $2)"
        ))
        .bind(stream.as_str())
        .bind(limit(max.max(1)))
        .fetch_all(&self.inner.pool)
        .await?;
        let mut load = StreamLoad {
            snapshot: None,
            events: Vec::with_capacity(rows.len()),
        };
        for row in &rows {
            if row.try_get::<bool, _>("is_snapshot")? {
                load.snapshot = Some(decode_snapshot(row, "payload", "recorded_at")?);
            } else {
                load.events.push(decode_event(row)?);
            }
        }
        if load.events.len() < max.clamp(1, MAX_READ) {
            self.saw_head(load.events.last());
        }
        Ok(load)
    }

    /// The stream's current version, `None` when it has no events.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>, StoreError> {
        self.version_of(stream.as_str()).await
    }

    pub(crate) async fn version_of(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT max(e.version) FROM events AS e WHERE e.stream_id = $1")
                .bind(stream)
                .fetch_one(&self.inner.pool)
                .await?;
        Ok(version.and_then(|v| u64::try_from(v).ok()))
    }

    /// Reads up to `max` events of the global feed after `after` (at most [`MAX_READ`]).
    ///
    /// Only events below the snapshot horizon are returned: an event whose transaction id is
    /// not older than every transaction still running waits, so a transaction that commits
    /// late can never be skipped. Feed order is `(epoch, xid, pos)`; within a stream it is
    /// version order.
    ///
    /// # Errors
    /// [`StoreError::Database`], [`StoreError::Corrupt`].
    pub async fn read_all(&self, after: &Position, max: usize) -> Result<FeedBatch, StoreError> {
        if max == 0 {
            return Ok(FeedBatch {
                events: Vec::new(),
                next: *after,
            });
        }
        let (epoch, xid, pos) = after.to_sql();
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events AS e",
            " WHERE (e.epoch, e.xid, e.pos) > ($1, $2, $3)",
            " AND (e.epoch, e.xid) < ",
            horizon!(),
            " ORDER BY e.epoch, e.xid, e.pos LIMIT $4"
        ))
        .bind(epoch)
        .bind(xid)
        .bind(pos)
        .bind(limit(max))
        .fetch_all(&self.inner.pool)
        .await?;
        let events = rows
            .iter()
            .map(decode_event)
            .collect::<Result<Vec<_>, _>>()?;
        let next = events.last().map_or(*after, |e| e.position);
        Ok(FeedBatch { events, next })
    }

    /// True when committed events wait behind the snapshot horizon (an older transaction is
    /// still open), so a caught-up reader should poll soon rather than wait for a NOTIFY.
    pub(crate) async fn feed_held_back(&self) -> Result<bool, StoreError> {
        let held = sqlx::query_scalar(HELD_BACK_SQL)
            .fetch_one(&self.inner.pool)
            .await?;
        Ok(held)
    }

    /// True when the feed has passed `position`: every event up to it can be read.
    pub(crate) async fn feed_passed(&self, position: &Position) -> Result<bool, StoreError> {
        let (epoch, xid, _) = position.to_sql();
        let passed = sqlx::query_scalar(concat!("SELECT ($1::bigint, $2::bigint) < ", horizon!()))
            .bind(epoch)
            .bind(xid)
            .fetch_one(&self.inner.pool)
            .await?;
        Ok(passed)
    }

    /// The position of the last event readers of the feed can see ([`Position::START`] when
    /// there is none).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn head(&self) -> Result<Position, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT e.epoch, e.xid, e.pos FROM events AS e WHERE (e.epoch, e.xid) < ",
            horizon!(),
            " ORDER BY e.epoch DESC, e.xid DESC, e.pos DESC LIMIT 1"
        ))
        .fetch_optional(&self.inner.pool)
        .await?;
        row.map_or(Ok(Position::START), |r| decode_position(&r))
    }

    /// Saves a snapshot of a stream's state at `version`. Only the latest snapshot is kept: an
    /// older one than the stored one is ignored.
    ///
    /// # Errors
    /// [`StoreError::SnapshotVersion`] when `version` is 0 or beyond the stream's version,
    /// [`StoreError::InvalidJson`], [`StoreError::Database`].
    pub async fn save_snapshot(
        &self,
        stream: &StreamId,
        version: u64,
        schema_version: i32,
        state: serde_json::Value,
    ) -> Result<(), StoreError> {
        check_json(&state).map_err(|reason| StoreError::InvalidJson {
            event_id: None,
            field: "snapshot state",
            reason,
        })?;
        let current = self.stream_version(stream).await?;
        if version == 0 || current.is_none_or(|current| version > current) {
            return Err(StoreError::SnapshotVersion {
                stream: stream.to_string(),
                version,
                current,
            });
        }
        sqlx::query(
            "INSERT INTO snapshots AS s (stream_id, version, schema_version, state, taken_at)
             VALUES ($1, $2, $3, $4, now())
             ON CONFLICT (stream_id) DO UPDATE
                SET version = EXCLUDED.version, schema_version = EXCLUDED.schema_version,
                    state = EXCLUDED.state, taken_at = EXCLUDED.taken_at
              WHERE s.version <= EXCLUDED.version",
        )
        .bind(stream.as_str())
        .bind(saturating_i64(version))
        .bind(schema_version)
        .bind(sqlx::types::Json(&state))
        .execute(&self.inner.pool)
        .await?;
        Ok(())
    }

    /// The latest snapshot of a stream, if any.
    ///
    /// # Errors
    /// [`StoreError::Database`], [`StoreError::Corrupt`].
    pub async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let row = sqlx::query(
            "SELECT s.version, s.schema_version, s.state::text AS state, s.taken_at
               FROM snapshots AS s WHERE s.stream_id = $1",
        )
        .bind(stream.as_str())
        .fetch_optional(&self.inner.pool)
        .await?;
        row.map(|row| decode_snapshot(&row, "state", "taken_at"))
            .transpose()
    }
}

/// A snapshot from a row with `version` and `schema_version`, and the state's JSON text and the
/// time it was taken under the names given.
fn decode_snapshot(row: &PgRow, state: &str, taken_at: &str) -> Result<Snapshot, StoreError> {
    let version: i64 = row.try_get("version")?;
    let state: String = row.try_get(state)?;
    Ok(Snapshot {
        version: u64::try_from(version)
            .map_err(|_| StoreError::Corrupt(format!("snapshot version {version}")))?,
        schema_version: row.try_get("schema_version")?,
        state: serde_json::from_str(&state)
            .map_err(|_| StoreError::Corrupt(format!("the state of snapshot version {version}")))?,
        taken_at: row.try_get(taken_at)?,
    })
}

fn decode_position(row: &PgRow) -> Result<Position, StoreError> {
    Position::from_sql(
        row.try_get("epoch")?,
        row.try_get("xid")?,
        row.try_get("pos")?,
    )
}

pub(crate) fn decode_event(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    let position = decode_position(row)?;
    let version: i64 = row.try_get("version")?;
    let payload: String = row.try_get("payload")?;
    let metadata: String = row.try_get("metadata")?;
    let hash: Vec<u8> = row.try_get("hash")?;
    let prev_hash: Vec<u8> = row.try_get("prev_hash")?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("{what} of the event at {position:?}"));
    Ok(RecordedEvent {
        position,
        stream_id: row.try_get("stream_id")?,
        version: u64::try_from(version).map_err(|_| corrupt("version"))?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get("schema_version")?,
        payload: serde_json::from_str(&payload).map_err(|_| corrupt("payload"))?,
        metadata: serde_json::from_str(&metadata).map_err(|_| corrupt("metadata"))?,
        recorded_at: row.try_get("recorded_at")?,
        hash: hash.try_into().map_err(|_| corrupt("hash"))?,
        prev_hash: prev_hash.try_into().map_err(|_| corrupt("previous hash"))?,
    })
}

/// True for "already exists" errors a concurrent creator causes: unique violation on a
/// catalog, duplicate schema, duplicate database.
pub(crate) fn is_already_exists(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code == "23505" || code == "42P06" || code == "42P04")
}

pub(crate) fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn limit(max: usize) -> i64 {
    i64::try_from(max.min(MAX_READ)).unwrap_or(1)
}

#[cfg(all(test, feature = "testkit"))]
mod plan_tests {
    use super::HELD_BACK_SQL;
    use crate::testkit::TestStore;
    use serde_json::Value;

    /// The (node type, relation) pairs of an `EXPLAIN (FORMAT JSON)` plan.
    fn nodes(plan: &Value, out: &mut Vec<(String, String)>) {
        match plan {
            Value::Object(map) => {
                if let Some(Value::String(kind)) = map.get("Node Type") {
                    let relation = map
                        .get("Relation Name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    out.push((kind.clone(), relation.to_owned()));
                }
                map.values().for_each(|v| nodes(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| nodes(v, out)),
            _ => {}
        }
    }

    /// The held-back check, run on every wake of a caught-up subscriber, must not scan the
    /// events table: with statistics of a table of 20,000 events, its plan reads the feed
    /// index only.
    #[tokio::test]
    async fn the_held_back_check_reads_the_feed_index_only() -> anyhow::Result<()> {
        let test = TestStore::new().await;
        sqlx::query(
            "INSERT INTO events (epoch, xid, version, recorded_at, schema_version, event_id,
                                 stream_id, event_type, payload, metadata, prev_hash, hash)
             SELECT 1, g, 1, now(), 1, gen_random_uuid(), 'plan-' || g, 'Planned', '{}', '{}',
                    '\\x00', '\\x00'
               FROM generate_series(1, 20000) AS g",
        )
        .execute(test.pool())
        .await?;
        sqlx::query("ANALYZE events").execute(test.pool()).await?;
        let plan: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "EXPLAIN (FORMAT JSON) {HELD_BACK_SQL}"
        )))
        .fetch_one(test.pool())
        .await?;
        let mut found = Vec::new();
        nodes(&plan, &mut found);
        assert!(
            found.iter().any(|(_, relation)| relation == "events"),
            "{found:?}"
        );
        assert!(
            !found
                .iter()
                .any(|(kind, relation)| kind == "Seq Scan" && relation == "events"),
            "{found:?}"
        );
        test.cleanup().await?;
        Ok(())
    }
}
