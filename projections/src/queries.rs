//! Reads of the SQL read models for the API layer and tests. Queries always go through the
//! plain-named views in `<ns>_rm`, which a rebuild re-points atomically.

use serde_json::Value;
use sqlx::{AssertSqlSafe, PgPool};

use crate::error::{ProjectionError, Result};
use crate::names::Names;

/// Queries against the SQL read models. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqlReadModels {
    pool: PgPool,
    names: Names,
}

impl SqlReadModels {
    /// Queries over a pool (any pool of the database; the names are schema-qualified).
    #[must_use]
    pub fn new(pool: PgPool, names: Names) -> Self {
        Self { pool, names }
    }

    /// The schema-qualified view of a read-model table, e.g. `"<ns>_rm"."records"`, for
    /// callers building their own queries.
    #[must_use]
    pub fn view(&self, table: &str) -> String {
        self.names.rm_view(table)
    }

    /// A record as JSON (`record_id`, `table_id`, `cells`, `version`, `deleted`, ...,
    /// `autonumber`: its number in its table, see docs/adr/0009-auto-numbers.md), or `None`
    /// when the read model has never seen it.
    ///
    /// # Errors
    /// [`ProjectionError::Postgres`].
    pub async fn record(&self, record_id: &str) -> Result<Option<Value>> {
        let sql = format!(
            "SELECT to_jsonb(r) FROM {} r WHERE record_id = $1",
            self.names.rm_view("records")
        );
        sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(record_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(ProjectionError::pg("reading a record"))
    }

    /// The live records of a table in creation order (their auto numbers, which follow the
    /// feed), up to `limit`, as JSON like [`SqlReadModels::record`].
    ///
    /// # Errors
    /// [`ProjectionError::Postgres`].
    pub async fn records_in_table(&self, table_id: &str, limit: i64) -> Result<Vec<Value>> {
        let sql = format!(
            "SELECT to_jsonb(r) FROM {} r WHERE table_id = $1 AND NOT deleted
              ORDER BY autonumber LIMIT $2",
            self.names.rm_view("records")
        );
        sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(table_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(ProjectionError::pg("listing records"))
    }

    /// Every revision of a record, oldest first.
    ///
    /// # Errors
    /// [`ProjectionError::Postgres`].
    pub async fn revisions(&self, record_id: &str) -> Result<Vec<Value>> {
        let sql = format!(
            "SELECT to_jsonb(r) FROM {} r WHERE record_id = $1 ORDER BY version",
            self.names.rm_view("record_revisions")
        );
        sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(record_id)
            .fetch_all(&self.pool)
            .await
            .map_err(ProjectionError::pg("listing revisions"))
    }

    /// The last auto number handed out in a table (deleted records included), 0 when none
    /// was: the next record created in it gets this plus one.
    ///
    /// # Errors
    /// [`ProjectionError::Postgres`].
    pub async fn last_autonumber(&self, table_id: &str) -> Result<i64> {
        let sql = format!(
            "SELECT coalesce((SELECT last FROM {} WHERE table_id = $1), 0)",
            self.names.rm_view("record_autonumbers")
        );
        sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(table_id)
            .fetch_one(&self.pool)
            .await
            .map_err(ProjectionError::pg("reading an auto number counter"))
    }

    /// The number of rows of a read-model table.
    ///
    /// # Errors
    /// [`ProjectionError::Postgres`].
    pub async fn count(&self, table: &str) -> Result<i64> {
        let sql = format!(
            "SELECT count(*) FROM {}",
            self.names.rm_view(checked(table)?)
        );
        sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&self.pool)
            .await
            .map_err(ProjectionError::pg("counting rows"))
    }

    /// An order-independent checksum of a read-model table's content (md5 over its rows as
    /// text, sorted): two copies built from the same events have the same checksum.
    ///
    /// # Errors
    /// [`ProjectionError::Postgres`]; [`ProjectionError::UnknownProjection`] for a table
    /// no projection owns.
    pub async fn checksum(&self, table: &str) -> Result<String> {
        let sql = format!(
            "SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {} t",
            self.names.rm_view(checked(table)?)
        );
        sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&self.pool)
            .await
            .map_err(ProjectionError::pg("checksumming a table"))
    }
}

/// Every read-model table (each behind a view of the same name), by projection.
pub const RM_TABLES: [(&str, &[&str]); 3] = [
    ("audit_log", &["audit_log"]),
    (
        "records",
        &["records", "record_revisions", "record_autonumbers"],
    ),
    (
        "directory",
        &[
            "users",
            "workspaces",
            "members",
            "bases",
            "tables",
            "fields",
            "views",
            "api_tokens",
        ],
    ),
];

fn checked(table: &str) -> Result<&str> {
    RM_TABLES
        .iter()
        .flat_map(|(_, tables)| tables.iter())
        .find(|t| **t == table)
        .copied()
        .ok_or_else(|| ProjectionError::UnknownProjection(table.to_owned()))
}
