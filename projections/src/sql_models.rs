//! The SQL read models: how each event changes the tables of the `audit_log`, `records` and
//! `directory` projections.
//!
//! Handlers write into one *generation* of the tables (see [`Names::rm_table`]); the runtime
//! runs them inside the transaction that also moves the projection's checkpoint. Every row
//! records the position that last changed it, and rows that carry a stream version only move
//! forward (`WHERE version < $n`), so a replayed event never undoes a later one.
//!
//! Payloads are read as JSON rather than through the domain enums: a read model needs a few
//! fields of each event, and reading only those keeps old events readable when the domain
//! grows new fields. A test round-trips the domain's own events through these readers.

use chrono::{DateTime, Utc};
use pyairtable_eventstore::RecordedEvent;
use serde_json::{Map, Value, json};
use sqlx::{AssertSqlSafe, PgConnection};

use crate::error::{ProjectionError, Result};
use crate::names::{Names, aggregate_id, aggregate_kind};

/// The SQL projections this crate ships.
pub const SQL_PROJECTIONS: [&str; 3] = ["audit_log", "records", "directory"];

/// Reads fields out of an event payload, turning a missing or mistyped field into a
/// [`ProjectionError::BadEvent`] naming the event.
pub(crate) struct Payload<'a> {
    event: &'a RecordedEvent,
}

impl<'a> Payload<'a> {
    pub(crate) fn new(event: &'a RecordedEvent) -> Self {
        Self { event }
    }

    pub(crate) fn bad(&self, reason: impl Into<String>) -> ProjectionError {
        ProjectionError::BadEvent {
            event_id: self.event.event_id,
            event_type: self.event.event_type.clone(),
            stream_id: self.event.stream_id.clone(),
            version: self.event.version,
            reason: reason.into(),
        }
    }

    /// The payload object (internally tagged, or externally tagged under the type name).
    pub(crate) fn object(&self) -> Result<&'a Map<String, Value>> {
        let payload = &self.event.payload;
        let inner = payload
            .get(&self.event.event_type)
            .filter(|_| payload.get("type").is_none())
            .unwrap_or(payload);
        inner
            .as_object()
            .ok_or_else(|| self.bad("payload is not a JSON object"))
    }

    pub(crate) fn value(&self, key: &str) -> Result<&'a Value> {
        self.object()?
            .get(key)
            .ok_or_else(|| self.bad(format!("payload has no {key:?}")))
    }

    pub(crate) fn opt_value(&self, key: &str) -> Result<Option<&'a Value>> {
        Ok(self.object()?.get(key).filter(|v| !v.is_null()))
    }

    pub(crate) fn str(&self, key: &str) -> Result<&'a str> {
        self.value(key)?
            .as_str()
            .ok_or_else(|| self.bad(format!("{key:?} is not a string")))
    }

    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.opt_value(key)? {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.bad(format!("{key:?} is not a string"))),
        }
    }

    pub(crate) fn at(&self) -> DateTime<Utc> {
        self.opt_value("at")
            .ok()
            .flatten()
            // What `DateTime`'s own deserializer does with a string, without copying it.
            .and_then(|v| v.as_str()?.parse::<DateTime<Utc>>().ok())
            .unwrap_or(self.event.recorded_at)
    }

    pub(crate) fn array(&self, key: &str) -> Result<&'a Vec<Value>> {
        self.value(key)?
            .as_array()
            .ok_or_else(|| self.bad(format!("{key:?} is not an array")))
    }
}

/// The actor of an event as JSON.
pub(crate) fn actor_json(event: &RecordedEvent) -> Value {
    serde_json::to_value(&event.metadata.actor).unwrap_or(Value::Null)
}

pub(crate) fn version_i64(event: &RecordedEvent) -> i64 {
    i64::try_from(event.version).unwrap_or(i64::MAX)
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// One cell's change in a `RecordUpdated` or `RecordReverted` payload, borrowed from it.
pub(crate) struct CellChange<'a> {
    pub field: &'a str,
    pub old: &'a Value,
    /// Null clears the cell.
    pub new: &'a Value,
}

/// The payload's cell changes, in its order.
pub(crate) fn cell_change_list<'a>(p: &Payload<'a>) -> Result<Vec<CellChange<'a>>> {
    let changes = p.array("changes")?;
    let mut out = Vec::with_capacity(changes.len());
    for change in changes {
        // The domain's `CellChange` serialises as `fieldId`; `field_id` is accepted too.
        let field = change
            .get("fieldId")
            .or_else(|| change.get("field_id"))
            .and_then(Value::as_str)
            .ok_or_else(|| p.bad("a change has no field_id"))?;
        out.push(CellChange {
            field,
            old: change.get("old").unwrap_or(&Value::Null),
            new: change.get("new").unwrap_or(&Value::Null),
        });
    }
    Ok(out)
}

/// A record's cell changes: fields set to a value, fields cleared, and the change list kept in
/// the revision.
pub(crate) struct CellChanges {
    pub set: Map<String, Value>,
    pub cleared: Vec<String>,
    pub fields: Vec<String>,
    pub changes: Value,
}

pub(crate) fn cell_changes(p: &Payload<'_>) -> Result<CellChanges> {
    let mut set = Map::new();
    let mut cleared = Vec::new();
    let mut fields = Vec::new();
    let mut changes = Map::new();
    for c in cell_change_list(p)? {
        if c.new.is_null() {
            cleared.push(c.field.to_owned());
        } else {
            set.insert(c.field.to_owned(), c.new.clone());
        }
        fields.push(c.field.to_owned());
        changes.insert(c.field.to_owned(), json!({ "old": c.old, "new": c.new }));
    }
    Ok(CellChanges {
        set,
        cleared,
        fields,
        changes: Value::Object(changes),
    })
}

/// Applies one event to one generation of a SQL projection.
///
/// # Errors
/// [`ProjectionError::BadEvent`] for an event whose payload the projection cannot read;
/// [`ProjectionError::Postgres`] when a statement fails.
pub async fn apply_sql(
    projection: &str,
    conn: &mut PgConnection,
    names: &Names,
    generation: i32,
    event: &RecordedEvent,
) -> Result<()> {
    match projection {
        "audit_log" => audit_log(conn, names, generation, std::slice::from_ref(event)).await,
        "records" => records(conn, names, generation, event).await,
        "directory" => directory(conn, names, generation, event).await,
        other => Err(ProjectionError::UnknownProjection(other.to_owned())),
    }
}

/// Applies a run of events, using multi-row statements where the projection allows it
/// (`audit_log`: one insert; `records`: the batch folded in memory, then one upsert and one
/// insert; `directory`: event by event).
///
/// # Errors
/// As [`apply_sql`]; on error nothing is known about which event failed (the caller retries
/// event by event to find it).
pub async fn apply_sql_batch(
    projection: &str,
    conn: &mut PgConnection,
    names: &Names,
    generation: i32,
    events: &[RecordedEvent],
) -> Result<()> {
    match projection {
        "audit_log" => return audit_log(conn, names, generation, events).await,
        "records" => {
            return crate::records_batch::apply_records_batch(conn, names, generation, events)
                .await;
        }
        _ => {}
    }
    for event in events {
        apply_sql(projection, conn, names, generation, event).await?;
    }
    Ok(())
}

async fn audit_log(
    conn: &mut PgConnection,
    names: &Names,
    generation: i32,
    events: &[RecordedEvent],
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let n = events.len();
    let mut ids = Vec::with_capacity(n);
    let mut positions = Vec::with_capacity(n);
    let (mut epochs, mut xids, mut poss) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut streams = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut schema_versions = Vec::with_capacity(n);
    let mut actors = Vec::with_capacity(n);
    let mut actor_kinds: Vec<Option<String>> = Vec::with_capacity(n);
    let mut actor_ids: Vec<Option<String>> = Vec::with_capacity(n);
    let mut workspaces = Vec::with_capacity(n);
    let mut correlations = Vec::with_capacity(n);
    let mut causations = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    for e in events {
        ids.push(e.event_id);
        positions.push(e.position.to_token());
        epochs.push(clamp(e.position.epoch));
        xids.push(clamp(e.position.xid));
        poss.push(clamp(e.position.pos));
        streams.push(e.stream_id.clone());
        versions.push(version_i64(e));
        kinds.push(aggregate_kind(&e.stream_id).to_owned());
        types.push(e.event_type.clone());
        schema_versions.push(e.schema_version);
        let actor = actor_json(e);
        actor_kinds.push(actor.get("type").and_then(Value::as_str).map(str::to_owned));
        actor_ids.push(
            actor
                .get("id")
                .or_else(|| actor.get("name"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        );
        actors.push(actor);
        workspaces.push(e.metadata.workspace_id.clone());
        correlations.push(e.metadata.correlation_id.to_string());
        causations.push(e.metadata.causation_id.map(|c| c.to_string()));
        times.push(e.recorded_at);
        payloads.push(e.payload.clone());
    }
    let sql = format!(
        "INSERT INTO {t} (event_id, position, feed_epoch, feed_xid, feed_pos, stream_id, version,
                          aggregate_kind, event_type, schema_version, actor, actor_kind, actor_id,
                          workspace_id, correlation_id, causation_id, recorded_at, payload)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::int8[], $5::int8[],
                              $6::text[], $7::int8[], $8::text[], $9::text[], $10::int4[],
                              $11::jsonb[], $12::text[], $13::text[], $14::text[], $15::text[],
                              $16::text[], $17::timestamptz[], $18::jsonb[])
         ON CONFLICT (event_id) DO NOTHING",
        t = names.rm_table("audit_log", generation)
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(ids)
        .bind(positions)
        .bind(epochs)
        .bind(xids)
        .bind(poss)
        .bind(streams)
        .bind(versions)
        .bind(kinds)
        .bind(types)
        .bind(schema_versions)
        .bind(actors)
        .bind(actor_kinds)
        .bind(actor_ids)
        .bind(workspaces)
        .bind(correlations)
        .bind(causations)
        .bind(times)
        .bind(payloads)
        .execute(conn)
        .await
        .map_err(ProjectionError::pg("writing the audit log"))?;
    Ok(())
}

/// A record's table after an update (`RETURNING table_id`): the revision's `table_id`.
type AfterRow = Option<String>;

async fn records(
    conn: &mut PgConnection,
    names: &Names,
    generation: i32,
    event: &RecordedEvent,
) -> Result<()> {
    if aggregate_kind(&event.stream_id) != "record" {
        return Ok(());
    }
    let p = Payload::new(event);
    let record_id = aggregate_id(&event.stream_id);
    let records = names.rm_table("records", generation);
    let revisions = names.rm_table("record_revisions", generation);
    let counters = names.rm_table("record_autonumbers", generation);
    let version = version_i64(event);
    let actor = actor_json(event);
    let at = p.at();
    let position = event.position.to_token();

    // What the revision row records, and the record's cells after the event (if known).
    let (fields, changes, after): (Vec<String>, Value, Option<AfterRow>) =
        match event.event_type.as_str() {
            "RecordCreated" => {
                let table_id = p.str("table_id")?;
                let cells = p.value("cells")?;
                let cell_map = cells
                    .as_object()
                    .ok_or_else(|| p.bad("\"cells\" is not an object"))?;
                // A new record takes the next number of its table (docs/adr/0009): the counter
                // moves only when the row does not exist yet, so a replayed creation neither
                // uses up a number nor changes the one the record has. The 0 is never stored:
                // without a new number the row exists and the insert becomes the update.
                let sql = format!(
                    "WITH fresh AS (
                         SELECT NOT EXISTS (SELECT 1 FROM {records} WHERE record_id = $1) AS yes),
                     number AS (
                         INSERT INTO {counters} AS c (table_id, last)
                         SELECT $3, 1 FROM fresh WHERE fresh.yes
                         ON CONFLICT (table_id) DO UPDATE SET last = c.last + 1
                         RETURNING last)
                     INSERT INTO {records} AS r (record_id, stream_id, table_id, base_id,
                        workspace_id, cells, version, deleted, created_at, created_by,
                        updated_at, updated_by, position, autonumber)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, false, $8, $9, $8, $9, $10,
                             coalesce((SELECT last FROM number), 0))
                     ON CONFLICT (record_id) DO UPDATE
                        SET table_id = EXCLUDED.table_id, cells = EXCLUDED.cells,
                            version = EXCLUDED.version, deleted = false,
                            updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by,
                            position = EXCLUDED.position
                      WHERE r.version < EXCLUDED.version"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(record_id)
                    .bind(&event.stream_id)
                    .bind(table_id)
                    .bind(p.opt_str("base_id")?)
                    .bind(event.metadata.workspace_id.as_deref())
                    .bind(cells)
                    .bind(version)
                    .bind(at)
                    .bind(&actor)
                    .bind(&position)
                    .execute(&mut *conn)
                    .await
                    .map_err(ProjectionError::pg("inserting a record"))?;
                let changes: Map<String, Value> = cell_map
                    .iter()
                    .map(|(k, v)| (k.clone(), json!({ "old": null, "new": v })))
                    .collect();
                (
                    cell_map.keys().cloned().collect(),
                    Value::Object(changes),
                    Some(Some(table_id.to_owned())),
                )
            }
            "RecordUpdated" | "RecordReverted" => {
                let c = cell_changes(&p)?;
                let sql = format!(
                    "UPDATE {records}
                        SET cells = (cells - $2::text[]) || $3::jsonb, version = $4,
                            updated_at = $5, updated_by = $6, position = $7
                      WHERE record_id = $1 AND version < $4
                  RETURNING table_id"
                );
                let after: Option<AfterRow> = sqlx::query_scalar(AssertSqlSafe(sql))
                    .bind(record_id)
                    .bind(&c.cleared)
                    .bind(Value::Object(c.set))
                    .bind(version)
                    .bind(at)
                    .bind(&actor)
                    .bind(&position)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(ProjectionError::pg("updating a record"))?;
                (c.fields, c.changes, after)
            }
            "LinksChanged" => {
                let field = p.str("field_id")?.to_owned();
                let added: Vec<Value> = p.array("added")?.clone();
                let removed: Vec<Value> = p.array("removed")?.clone();
                let current_sql =
                    format!("SELECT cells -> $2 FROM {records} WHERE record_id = $1 FOR UPDATE");
                let current: Option<Option<Value>> = sqlx::query_scalar(AssertSqlSafe(current_sql))
                    .bind(record_id)
                    .bind(&field)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(ProjectionError::pg("reading record links"))?;
                // The old links minus the removed ones, then the added ones not there yet.
                let mut links: Vec<Value> = current
                    .flatten()
                    .and_then(|v| v.as_array().cloned())
                    .unwrap_or_default();
                links.retain(|l| !removed.contains(l));
                for a in &added {
                    if !links.contains(a) {
                        links.push(a.clone());
                    }
                }
                let sql = format!(
                    "UPDATE {records}
                        SET cells = CASE WHEN jsonb_array_length($3::jsonb) = 0 THEN cells - $2
                                         ELSE jsonb_set(cells, ARRAY[$2], $3::jsonb) END,
                            version = $4, updated_at = $5, updated_by = $6, position = $7
                      WHERE record_id = $1 AND version < $4
                  RETURNING table_id"
                );
                let after: Option<AfterRow> = sqlx::query_scalar(AssertSqlSafe(sql))
                    .bind(record_id)
                    .bind(&field)
                    .bind(Value::Array(links))
                    .bind(version)
                    .bind(at)
                    .bind(&actor)
                    .bind(&position)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(ProjectionError::pg("changing record links"))?;
                (
                    vec![field.clone()],
                    json!({ field: { "added": added, "removed": removed } }),
                    after,
                )
            }
            "RecordDeleted" | "RecordRestored" => {
                let deleted = event.event_type == "RecordDeleted";
                let sql = format!(
                    "UPDATE {records}
                        SET deleted = $2, version = $3, updated_at = $4, updated_by = $5,
                            position = $6
                      WHERE record_id = $1 AND version < $3
                  RETURNING table_id"
                );
                let after: Option<AfterRow> = sqlx::query_scalar(AssertSqlSafe(sql))
                    .bind(record_id)
                    .bind(deleted)
                    .bind(version)
                    .bind(at)
                    .bind(&actor)
                    .bind(&position)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(ProjectionError::pg("deleting or restoring a record"))?;
                (Vec::new(), json!({ "deleted": deleted }), after)
            }
            _ => {
                // Comments and future record events change no cell, but the row's version
                // still follows the stream so the version guard and the cache stay exact.
                let sql = format!(
                    "UPDATE {records} SET version = $2, position = $3
                      WHERE record_id = $1 AND version < $2"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(record_id)
                    .bind(version)
                    .bind(&position)
                    .execute(&mut *conn)
                    .await
                    .map_err(ProjectionError::pg("bumping a record's version"))?;
                return Ok(());
            }
        };
    let table_id = after.flatten();
    let sql = format!(
        "INSERT INTO {revisions} (record_id, version, event_id, event_type, table_id,
            workspace_id, actor, recorded_at, changed_fields, changes, position)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT DO NOTHING"
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(record_id)
        .bind(version)
        .bind(event.event_id)
        .bind(&event.event_type)
        .bind(table_id)
        .bind(event.metadata.workspace_id.as_deref())
        .bind(&actor)
        .bind(event.recorded_at)
        .bind(&fields)
        .bind(&changes)
        .bind(&position)
        .execute(&mut *conn)
        .await
        .map_err(ProjectionError::pg("writing a record revision"))?;
    Ok(())
}

async fn exec(
    conn: &mut PgConnection,
    what: &str,
    q: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
) -> Result<()> {
    q.execute(conn).await.map_err(ProjectionError::pg(what))?;
    Ok(())
}

async fn directory(
    conn: &mut PgConnection,
    names: &Names,
    generation: i32,
    event: &RecordedEvent,
) -> Result<()> {
    let p = Payload::new(event);
    let id = aggregate_id(&event.stream_id);
    let version = version_i64(event);
    let position = event.position.to_token();
    let at = p.at();
    let t = |table: &str| names.rm_table(table, generation);
    match event.event_type.as_str() {
        "UserRegistered" => {
            let sql = format!(
                "INSERT INTO {} AS u (user_id, email, display_name, is_admin, active, created_at,
                                      updated_at, version, position)
                 VALUES ($1, $2, $3, $4, true, $5, $5, $6, $7)
                 ON CONFLICT (user_id) DO UPDATE
                    SET email = EXCLUDED.email, display_name = EXCLUDED.display_name,
                        is_admin = EXCLUDED.is_admin, version = EXCLUDED.version,
                        position = EXCLUDED.position
                  WHERE u.version < EXCLUDED.version",
                t("users")
            );
            let is_admin = p
                .opt_value("is_admin")?
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let q = sqlx::query(AssertSqlSafe(sql))
                .bind(p.str("id")?)
                .bind(p.str("email")?)
                .bind(p.str("display_name")?)
                .bind(is_admin)
                .bind(at)
                .bind(version)
                .bind(&position);
            exec(conn, "registering a user", q).await
        }
        "UserProfileChanged" => {
            let sql = format!(
                "UPDATE {} SET display_name = $2, email = $3, updated_at = $4, version = $5,
                               position = $6
                  WHERE user_id = $1 AND version < $5",
                t("users")
            );
            let q = sqlx::query(AssertSqlSafe(sql))
                .bind(id)
                .bind(p.str("display_name")?)
                .bind(p.str("email")?)
                .bind(at)
                .bind(version)
                .bind(&position);
            exec(conn, "changing a user profile", q).await
        }
        "UserDeactivated" | "UserReactivated" | "UserPasswordChanged" => {
            let active = match event.event_type.as_str() {
                "UserDeactivated" => Some(false),
                "UserReactivated" => Some(true),
                _ => None,
            };
            let sql = format!(
                "UPDATE {} SET active = coalesce($2, active), updated_at = $3, version = $4,
                               position = $5
                  WHERE user_id = $1 AND version < $4",
                t("users")
            );
            let q = sqlx::query(AssertSqlSafe(sql))
                .bind(id)
                .bind(active)
                .bind(at)
                .bind(version)
                .bind(&position);
            exec(conn, "changing a user", q).await
        }
        "WorkspaceCreated" => {
            let sql = format!(
                "INSERT INTO {} AS w (workspace_id, name, created_at, updated_at, version, position)
                 VALUES ($1, $2, $3, $3, $4, $5)
                 ON CONFLICT (workspace_id) DO UPDATE
                    SET name = EXCLUDED.name, version = EXCLUDED.version, position = EXCLUDED.position
                  WHERE w.version < EXCLUDED.version",
                t("workspaces")
            );
            let q = sqlx::query(AssertSqlSafe(sql))
                .bind(p.str("id")?)
                .bind(p.str("name")?)
                .bind(at)
                .bind(version)
                .bind(&position);
            exec(conn, "creating a workspace", q).await?;
            upsert_member(
                conn,
                &t("members"),
                p.str("id")?,
                p.str("owner")?,
                "owner",
                at,
                &position,
            )
            .await
        }
        "WorkspaceRenamed" | "WorkspaceArchived" => {
            let sql = format!(
                "UPDATE {} SET name = coalesce($2, name), archived = archived OR $3,
                               updated_at = $4, version = $5, position = $6
                  WHERE workspace_id = $1 AND version < $5",
                t("workspaces")
            );
            let q = sqlx::query(AssertSqlSafe(sql))
                .bind(id)
                .bind(p.opt_str("name")?)
                .bind(event.event_type == "WorkspaceArchived")
                .bind(at)
                .bind(version)
                .bind(&position);
            exec(conn, "changing a workspace", q).await
        }
        "MemberAdded" | "InvitationAccepted" => {
            let role = role_str(&p, "role")?;
            upsert_member(
                conn,
                &t("members"),
                id,
                p.str("user_id")?,
                &role,
                at,
                &position,
            )
            .await
        }
        "MemberRoleChanged" => {
            let role = role_str(&p, "to")?;
            let sql = format!(
                "UPDATE {} SET role = $3, position = $4 WHERE workspace_id = $1 AND user_id = $2",
                t("members")
            );
            let q = sqlx::query(AssertSqlSafe(sql))
                .bind(id)
                .bind(p.str("user_id")?)
                .bind(role)
                .bind(&position);
            exec(conn, "changing a member's role", q).await
        }
        "MemberRemoved" => {
            let sql = format!(
                "DELETE FROM {} WHERE workspace_id = $1 AND user_id = $2",
                t("members")
            );
            let q = sqlx::query(AssertSqlSafe(sql))
                .bind(id)
                .bind(p.str("user_id")?);
            exec(conn, "removing a member", q).await
        }
        "BaseCreated" => {
            let sql = format!(
                "INSERT INTO {} AS b (base_id, workspace_id, name, created_at, updated_at, version, position)
                 VALUES ($1, $2, $3, $4, $4, $5, $6)
                 ON CONFLICT (base_id) DO UPDATE
                    SET workspace_id = EXCLUDED.workspace_id, name = EXCLUDED.name,
                        version = EXCLUDED.version, position = EXCLUDED.position
                  WHERE b.version < EXCLUDED.version",
                t("bases")
            );
            let q = sqlx::query(AssertSqlSafe(sql))
                .bind(p.str("id")?)
                .bind(p.str("workspace_id")?)
                .bind(p.str("name")?)
                .bind(at)
                .bind(version)
                .bind(&position);
            exec(conn, "creating a base", q).await
        }
        "BaseRenamed" | "BaseDeleted" | "BaseRestored" => {
            let deleted = match event.event_type.as_str() {
                "BaseDeleted" => Some(true),
                "BaseRestored" => Some(false),
                _ => None,
            };
            let sql = format!(
                "UPDATE {} SET name = coalesce($2, name), deleted = coalesce($3, deleted),
                               updated_at = $4, version = $5, position = $6
                  WHERE base_id = $1 AND version < $5",
                t("bases")
            );
            let q = sqlx::query(AssertSqlSafe(sql))
                .bind(id)
                .bind(p.opt_str("name")?)
                .bind(deleted)
                .bind(at)
                .bind(version)
                .bind(&position);
            exec(conn, "changing a base", q).await
        }
        "TableCreated" => {
            let table = p.value("table")?;
            let table_id = json_str(&p, table, "id")?;
            let count_sql = format!("SELECT count(*) FROM {} WHERE base_id = $1", t("tables"));
            let order: i64 = sqlx::query_scalar(AssertSqlSafe(count_sql))
                .bind(id)
                .fetch_one(&mut *conn)
                .await
                .map_err(ProjectionError::pg("counting tables"))?;
            let sql = format!(
                "INSERT INTO {} (table_id, base_id, workspace_id, name, description,
                                 primary_field_id, sort_order, updated_at, position)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (table_id) DO UPDATE
                    SET name = EXCLUDED.name, description = EXCLUDED.description,
                        primary_field_id = EXCLUDED.primary_field_id, deleted = false,
                        updated_at = EXCLUDED.updated_at, position = EXCLUDED.position",
                t("tables")
            );
            let q = sqlx::query(AssertSqlSafe(sql))
                .bind(&table_id)
                .bind(id)
                .bind(event.metadata.workspace_id.as_deref())
                .bind(json_str(&p, table, "name")?)
                .bind(table.get("description").and_then(Value::as_str))
                .bind(
                    table
                        .get("primaryFieldId")
                        .or_else(|| table.get("primary_field_id"))
                        .and_then(Value::as_str),
                )
                .bind(i32::try_from(order).unwrap_or(i32::MAX))
                .bind(at)
                .bind(&position);
            exec(conn, "creating a table", q).await?;
            let empty = Vec::new();
            let fields = table
                .get("fields")
                .and_then(Value::as_array)
                .unwrap_or(&empty);
            for (i, field) in fields.iter().enumerate() {
                upsert_field(
                    conn,
                    &t("fields"),
                    &p,
                    id,
                    &table_id,
                    field,
                    i,
                    at,
                    &position,
                )
                .await?;
            }
            let views = table
                .get("views")
                .and_then(Value::as_array)
                .unwrap_or(&empty);
            for view in views {
                upsert_view(conn, &t("views"), &p, id, &table_id, view, at, &position).await?;
            }
            Ok(())
        }
        "TableUpdated" => {
            let sql = format!(
                "UPDATE {} SET name = $2, description = $3, updated_at = $4, position = $5
                  WHERE table_id = $1",
                t("tables")
            );
            let q = sqlx::query(AssertSqlSafe(sql))
                .bind(p.str("table_id")?)
                .bind(p.str("name")?)
                .bind(p.opt_str("description")?)
                .bind(at)
                .bind(&position);
            exec(conn, "updating a table", q).await
        }
        "TableDeleted" => {
            let sql = format!(
                "UPDATE {} SET deleted = true, updated_at = $2, position = $3 WHERE table_id = $1",
                t("tables")
            );
            let q = sqlx::query(AssertSqlSafe(sql))
                .bind(p.str("table_id")?)
                .bind(at)
                .bind(&position);
            exec(conn, "deleting a table", q).await
        }
        "PrimaryFieldSet" => {
            let sql = format!(
                "UPDATE {} SET primary_field_id = $2, updated_at = $3, position = $4
                  WHERE table_id = $1",
                t("tables")
            );
            let q = sqlx::query(AssertSqlSafe(sql))
                .bind(p.str("table_id")?)
                .bind(p.str("field_id")?)
                .bind(at)
                .bind(&position);
            exec(conn, "setting a primary field", q).await
        }
        "FieldCreated" | "FieldUpdated" => {
            let table_id = p.str("table_id")?;
            let count_sql = format!("SELECT count(*) FROM {} WHERE table_id = $1", t("fields"));
            let order: i64 = sqlx::query_scalar(AssertSqlSafe(count_sql))
                .bind(table_id)
                .fetch_one(&mut *conn)
                .await
                .map_err(ProjectionError::pg("counting fields"))?;
            let order = usize::try_from(order).unwrap_or(0);
            upsert_field(
                conn,
                &t("fields"),
                &p,
                id,
                table_id,
                p.value("field")?,
                order,
                at,
                &position,
            )
            .await
        }
        "FieldDeleted" => {
            let sql = format!(
                "UPDATE {} SET deleted = true, updated_at = $2, position = $3 WHERE field_id = $1",
                t("fields")
            );
            let q = sqlx::query(AssertSqlSafe(sql))
                .bind(p.str("field_id")?)
                .bind(at)
                .bind(&position);
            exec(conn, "deleting a field", q).await
        }
        "ChoicesAdded" => {
            let sql = format!(
                "UPDATE {} SET options = jsonb_set(options, '{{choices}}',
                                   coalesce(options -> 'choices', '[]'::jsonb) || $2::jsonb),
                               updated_at = $3, position = $4
                  WHERE field_id = $1",
                t("fields")
            );
            let q = sqlx::query(AssertSqlSafe(sql))
                .bind(p.str("field_id")?)
                .bind(p.value("choices")?)
                .bind(at)
                .bind(&position);
            exec(conn, "adding choices", q).await
        }
        "ViewCreated" | "ViewUpdated" => {
            upsert_view(
                conn,
                &t("views"),
                &p,
                id,
                p.str("table_id")?,
                p.value("view")?,
                at,
                &position,
            )
            .await
        }
        "ViewDeleted" => {
            let sql = format!(
                "UPDATE {} SET deleted = true, updated_at = $2, position = $3 WHERE view_id = $1",
                t("views")
            );
            let q = sqlx::query(AssertSqlSafe(sql))
                .bind(p.str("view_id")?)
                .bind(at)
                .bind(&position);
            exec(conn, "deleting a view", q).await
        }
        "ApiTokenCreated" => {
            let sql = format!(
                "INSERT INTO {} (token_id, owner_id, name, scopes, base_ids, secret_hash,
                                 created_at, position)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (token_id) DO NOTHING",
                t("api_tokens")
            );
            let q = sqlx::query(AssertSqlSafe(sql))
                .bind(p.str("id")?)
                .bind(p.str("owner")?)
                .bind(p.str("name")?)
                .bind(p.value("scopes")?)
                .bind(p.opt_value("base_ids")?)
                .bind(p.str("secret_hash")?)
                .bind(at)
                .bind(&position);
            exec(conn, "creating an API token", q).await
        }
        "ApiTokenRevoked" => {
            let sql = format!(
                "UPDATE {} SET revoked = true, revoked_at = $2, position = $3 WHERE token_id = $1",
                t("api_tokens")
            );
            let q = sqlx::query(AssertSqlSafe(sql))
                .bind(id)
                .bind(at)
                .bind(&position);
            exec(conn, "revoking an API token", q).await
        }
        _ => Ok(()),
    }
}

fn json_str(p: &Payload<'_>, v: &Value, key: &str) -> Result<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| p.bad(format!("{key:?} missing or not a string")))
}

fn role_str(p: &Payload<'_>, key: &str) -> Result<String> {
    let role = p.value(key)?;
    let parsed: pyairtable_domain::roles::Role = serde_json::from_value(role.clone())
        .map_err(|e| p.bad(format!("{key:?} is not a role: {e}")))?;
    Ok(parsed.as_str().to_owned())
}

async fn upsert_member(
    conn: &mut PgConnection,
    table: &str,
    workspace: &str,
    user: &str,
    role: &str,
    at: DateTime<Utc>,
    position: &str,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO {table} (workspace_id, user_id, role, joined_at, position)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (workspace_id, user_id) DO UPDATE
            SET role = EXCLUDED.role, position = EXCLUDED.position"
    );
    let q = sqlx::query(AssertSqlSafe(sql))
        .bind(workspace)
        .bind(user)
        .bind(role)
        .bind(at)
        .bind(position);
    exec(conn, "adding a member", q).await
}

#[allow(clippy::too_many_arguments)]
async fn upsert_field(
    conn: &mut PgConnection,
    table: &str,
    p: &Payload<'_>,
    base_id: &str,
    table_id: &str,
    field: &Value,
    order: usize,
    at: DateTime<Utc>,
    position: &str,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO {table} (field_id, table_id, base_id, name, field_type, options,
                              description, sort_order, updated_at, position)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (field_id) DO UPDATE
            SET name = EXCLUDED.name, field_type = EXCLUDED.field_type,
                options = EXCLUDED.options, description = EXCLUDED.description,
                deleted = false, updated_at = EXCLUDED.updated_at, position = EXCLUDED.position"
    );
    let q = sqlx::query(AssertSqlSafe(sql))
        .bind(json_str(p, field, "id")?)
        .bind(table_id)
        .bind(base_id)
        .bind(json_str(p, field, "name")?)
        .bind(json_str(p, field, "type")?)
        .bind(field.get("options").cloned().unwrap_or_else(|| json!({})))
        .bind(field.get("description").and_then(Value::as_str))
        .bind(i32::try_from(order).unwrap_or(i32::MAX))
        .bind(at)
        .bind(position);
    exec(conn, "writing a field", q).await
}

#[allow(clippy::too_many_arguments)]
async fn upsert_view(
    conn: &mut PgConnection,
    table: &str,
    p: &Payload<'_>,
    base_id: &str,
    table_id: &str,
    view: &Value,
    at: DateTime<Utc>,
    position: &str,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO {table} (view_id, table_id, base_id, name, view_type, config, updated_at, position)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (view_id) DO UPDATE
            SET name = EXCLUDED.name, view_type = EXCLUDED.view_type, config = EXCLUDED.config,
                deleted = false, updated_at = EXCLUDED.updated_at, position = EXCLUDED.position"
    );
    let view_type = view
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("grid")
        .to_owned();
    let q = sqlx::query(AssertSqlSafe(sql))
        .bind(json_str(p, view, "id")?)
        .bind(table_id)
        .bind(base_id)
        .bind(json_str(p, view, "name")?)
        .bind(view_type)
        .bind(view)
        .bind(at)
        .bind(position);
    exec(conn, "writing a view", q).await
}
