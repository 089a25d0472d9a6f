//! [`Diagnostics`]: where the feed is, and which open transaction holds it back.

use std::time::Duration;

use serde::Serialize;
use sqlx::Row;

use crate::error::StoreError;
use crate::position::Position;
use crate::store::EventStore;

/// Committed events beyond the horizon are counted up to this many.
const HELD_BACK_COUNT_CAP: i64 = 10_000;

/// The state of the global feed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostics {
    /// The namespace.
    pub namespace: String,
    /// The feed epoch in force.
    pub epoch: u64,
    /// The last event readers of the feed can see.
    pub head: Position,
    /// The last committed event, which is ahead of `head` while an older transaction is open.
    pub latest: Position,
    /// Committed events readers cannot see yet (counted up to 10 000).
    pub held_back_events: u64,
    /// The oldest transaction id still running in the cluster: events of younger transactions
    /// wait until it ends.
    pub horizon_xid: u64,
    /// The oldest open transaction with a transaction id, anywhere in the cluster: the one
    /// that holds the feed back while `held_back_events > 0`.
    pub oldest_open_transaction: Option<OpenTransaction>,
    /// Up to ten open transactions with a transaction id, oldest first.
    pub open_transactions: Vec<OpenTransaction>,
}

/// An open transaction that has a transaction id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenTransaction {
    /// Backend process id (`None` for a prepared transaction, which has no session).
    pub pid: Option<i32>,
    /// Time since the transaction started.
    pub age: Duration,
    /// Session state, e.g. `idle in transaction`, or `prepared`.
    pub state: String,
    /// The transaction id as `pg_stat_activity.backend_xid` shows it.
    pub xid: u32,
    /// The database it runs in.
    pub database: Option<String>,
    /// The client's `application_name` (the prepared transaction's gid for one).
    pub application_name: String,
    /// Start of the session's current or last query (empty when hidden by privileges).
    pub query: String,
}

impl EventStore {
    /// Head, horizon, and the open transactions that can hold the feed back.
    ///
    /// # Errors
    /// [`StoreError::Database`], [`StoreError::Corrupt`].
    pub async fn diagnostics(&self) -> Result<Diagnostics, StoreError> {
        let pool = self.pool();
        let row = sqlx::query(
            "SELECT (SELECT s.epoch FROM store_epoch AS s) AS epoch,
                    feed_horizon(pg_current_snapshot()) AS horizon",
        )
        .fetch_one(pool)
        .await?;
        let epoch: i64 = row.try_get("epoch")?;
        let horizon: i64 = row.try_get("horizon")?;

        let head = self.head().await?;
        let latest = sqlx::query(
            "SELECT e.epoch, e.xid, e.pos FROM events AS e
              ORDER BY e.epoch DESC, e.xid DESC, e.pos DESC LIMIT 1",
        )
        .fetch_optional(pool)
        .await?
        .map(|r| Position::from_sql(r.try_get("epoch")?, r.try_get("xid")?, r.try_get("pos")?))
        .transpose()?
        .unwrap_or(Position::START);
        let held_back: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (
                SELECT 1 FROM events AS e
                 WHERE (e.epoch, e.xid) >= ((SELECT s.epoch FROM store_epoch AS s),
                                           (SELECT feed_horizon(pg_current_snapshot())))
                 LIMIT $1) AS held",
        )
        .bind(HELD_BACK_COUNT_CAP)
        .fetch_one(pool)
        .await?;

        let rows = sqlx::query(
            "SELECT * FROM (
                SELECT a.pid, coalesce(a.state, '') AS state, a.backend_xid::text::bigint AS xid,
                       a.datname::text AS database, coalesce(a.application_name, '') AS application_name,
                       left(coalesce(a.query, ''), 200) AS query,
                       extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS age,
                       age(a.backend_xid) AS xid_age
                  FROM pg_stat_activity AS a
                 WHERE a.backend_xid IS NOT NULL AND a.pid <> pg_backend_pid()
                   -- Only event writers hold the feed back (migrations/0050_feed_horizon.sql).
                   AND a.pid IN (
                       SELECT l.pid FROM pg_locks AS l
                        WHERE l.locktype = 'relation' AND l.relation = 'events'::regclass
                          AND l.mode = 'RowExclusiveLock'
                          AND l.database = (SELECT d.oid FROM pg_database AS d
                                             WHERE d.datname = current_database()))
                UNION ALL
                SELECT NULL, 'prepared', p.transaction::text::bigint, p.database::text, p.gid, '',
                       extract(epoch FROM clock_timestamp() - p.prepared)::float8,
                       age(p.transaction)
                  FROM pg_prepared_xacts AS p
             ) AS t
             ORDER BY t.xid_age DESC
             LIMIT 10",
        )
        .fetch_all(pool)
        .await?;
        let open_transactions = rows
            .iter()
            .map(|r| {
                let xid: i64 = r.try_get("xid")?;
                let age: Option<f64> = r.try_get("age")?;
                Ok(OpenTransaction {
                    pid: r.try_get("pid")?,
                    age: Duration::try_from_secs_f64(age.unwrap_or(0.0).max(0.0))
                        .unwrap_or_default(),
                    state: r.try_get("state")?,
                    xid: u32::try_from(xid).unwrap_or(u32::MAX),
                    database: r.try_get("database")?,
                    application_name: r.try_get("application_name")?,
                    query: r.try_get("query")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;

        let non_negative = |name: &str, v: i64| {
            u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative {name} {v}")))
        };
        Ok(Diagnostics {
            namespace: self.namespace().to_string(),
            epoch: non_negative("epoch", epoch)?,
            head,
            latest,
            held_back_events: non_negative("count", held_back)?,
            horizon_xid: non_negative("horizon", horizon)?,
            oldest_open_transaction: open_transactions.first().cloned(),
            open_transactions,
        })
    }
}
