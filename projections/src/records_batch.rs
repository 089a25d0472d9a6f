//! The `records` projection applied a whole batch at a time.
//!
//! Event by event ([`crate::sql_models::apply_sql`]) the projection issues two statements per
//! event (the row, then its revision): about 4,000 round trips for a rebuild batch. Here the
//! batch is folded in memory instead, over the current rows of the records it touches (read
//! once, `FOR UPDATE`), with exactly the rules of the per-event statements: the same version
//! guard, the same cell arithmetic (`(cells - cleared) || set`), the same link merging. Then
//! two set-based statements write it: one upsert of every changed record's final row, and one
//! insert of every revision. A record changed five times in a batch is written once.
//!
//! The per-event path stays the reference (the runtime also falls back to it to find a failing
//! event); a test checks that both produce identical tables for mixed sequences.
//!
//! Auto numbers (docs/adr/0009-auto-numbers.md): the fold numbers the records a batch creates
//! 1, 2, 3, ... per table, in feed order; one upsert of the generation's counters then reserves
//! that many numbers per table, atomically, and the batch's numbers are shifted past the ones
//! handed out before.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use pyairtable_eventstore::RecordedEvent;
use serde_json::{Map, Value};
use sqlx::{AssertSqlSafe, PgConnection, Row as _};

use crate::error::{ProjectionError, Result};
use crate::names::{Names, aggregate_id, aggregate_kind};

mod bulk;
use crate::sql_models::{CellChange, Payload, actor_json, cell_change_list, version_i64};
pub(crate) use bulk::BulkRecords;

/// What one record event does to its row. It borrows from the event: a batch is parsed, folded
/// and written while its events are held, and the fold copies only what it keeps.
enum Change<'a> {
    Created {
        table_id: &'a str,
        base_id: Option<&'a str>,
        cells: &'a Map<String, Value>,
    },
    /// Cell changes in payload order; a `new` of null clears the cell.
    Cells(Vec<CellChange<'a>>),
    Links {
        field: &'a str,
        added: &'a [Value],
        removed: &'a [Value],
    },
    Deleted(bool),
    /// Comments and future record events: only the version and position follow the stream.
    Bump,
}

/// One record event, read and checked before anything is written.
pub(crate) struct Parsed<'a> {
    event: &'a RecordedEvent,
    record_id: &'a str,
    version: i64,
    at: DateTime<Utc>,
    actor: Value,
    position: String,
    change: Change<'a>,
}

impl Parsed<'_> {
    /// The revision's `changed_fields`, as a `text[]` literal: the fields the event names, in
    /// its order.
    pub(crate) fn changed_fields(&self) -> String {
        match &self.change {
            Change::Created { cells, .. } => text_array_literal(cells.keys().map(String::as_str)),
            Change::Cells(changes) => text_array_literal(changes.iter().map(|c| c.field)),
            Change::Links { field, .. } => text_array_literal([*field]),
            Change::Deleted(_) | Change::Bump => text_array_literal([]),
        }
    }

    /// The revision's `changes`, ready to serialise.
    pub(crate) fn changes(&self) -> RevisionChanges<'_> {
        RevisionChanges(&self.change)
    }
}

/// A revision's `changes` document, serialised straight from the event:
/// - creations and cell changes: `{"fld…": {"old": …, "new": …}, …}` (a later change of the
///   same field wins, as in a JSON object);
/// - links: `{"fld…": {"added": […], "removed": […]}}`;
/// - deletes and restores: `{"deleted": bool}`; anything else: `null`.
pub(crate) struct RevisionChanges<'a>(&'a Change<'a>);

impl RevisionChanges<'_> {
    /// As a JSON document (the live path binds documents).
    fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl serde::Serialize for RevisionChanges<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct OldNew<'v>(&'v Value, &'v Value);
        impl serde::Serialize for OldNew<'_> {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("new", self.1)?;
                m.serialize_entry("old", self.0)?;
                m.end()
            }
        }
        match self.0 {
            Change::Created { cells, .. } => {
                let mut m = s.serialize_map(Some(cells.len()))?;
                for (k, v) in *cells {
                    m.serialize_entry(k, &OldNew(&Value::Null, v))?;
                }
                m.end()
            }
            Change::Cells(changes) => {
                // An object keeps the last of repeated keys: write each field once, with its
                // last change, as the document built key by key would hold it.
                let mut m = s.serialize_map(None)?;
                for (i, c) in changes.iter().enumerate() {
                    if changes[i + 1..].iter().all(|later| later.field != c.field) {
                        m.serialize_entry(c.field, &OldNew(c.old, c.new))?;
                    }
                }
                m.end()
            }
            Change::Links {
                field,
                added,
                removed,
            } => {
                struct AddedRemoved<'v>(&'v [Value], &'v [Value]);
                impl serde::Serialize for AddedRemoved<'_> {
                    fn serialize<S: serde::Serializer>(
                        &self,
                        s: S,
                    ) -> std::result::Result<S::Ok, S::Error> {
                        let mut m = s.serialize_map(Some(2))?;
                        m.serialize_entry("added", self.0)?;
                        m.serialize_entry("removed", self.1)?;
                        m.end()
                    }
                }
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(field, &AddedRemoved(added, removed))?;
                m.end()
            }
            Change::Deleted(deleted) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("deleted", deleted)?;
                m.end()
            }
            Change::Bump => s.serialize_unit(),
        }
    }
}

/// A row of the records table, as read or as the batch leaves it.
pub(crate) struct RecordRow {
    stream_id: String,
    table_id: Option<String>,
    base_id: Option<String>,
    workspace_id: Option<String>,
    cells: Map<String, Value>,
    version: i64,
    deleted: bool,
    created_at: DateTime<Utc>,
    created_by: Option<Value>,
    updated_at: DateTime<Utc>,
    updated_by: Option<Value>,
    position: String,
    /// The record's number in its table. A row the fold created has the number the counters
    /// passed to [`fold`] gave it, which the live path then shifts past the numbers handed out
    /// before the batch.
    autonumber: i64,
    /// Changed by this batch: must be written.
    dirty: bool,
    /// Read from the table (so writing it is an update), rather than created in memory.
    stored: bool,
}

/// Reads an event the way the per-event handler does, failing on the same events.
pub(crate) fn parse(event: &RecordedEvent) -> Result<Parsed<'_>> {
    let p = Payload::new(event);
    let change = match event.event_type.as_str() {
        "RecordCreated" => Change::Created {
            table_id: p.str("table_id")?,
            base_id: p.opt_str("base_id")?,
            cells: p
                .value("cells")?
                .as_object()
                .ok_or_else(|| p.bad("\"cells\" is not an object"))?,
        },
        "RecordUpdated" | "RecordReverted" => Change::Cells(cell_change_list(&p)?),
        "LinksChanged" => Change::Links {
            field: p.str("field_id")?,
            added: p.array("added")?,
            removed: p.array("removed")?,
        },
        "RecordDeleted" | "RecordRestored" => Change::Deleted(event.event_type == "RecordDeleted"),
        _ => Change::Bump,
    };
    Ok(Parsed {
        event,
        record_id: aggregate_id(&event.stream_id),
        version: version_i64(event),
        at: p.at(),
        actor: actor_json(event),
        position: event.position.to_token(),
        change,
    })
}

/// The revision rows of a batch, column by column (the shape `unnest` wants).
#[derive(Default)]
struct Revisions {
    record_ids: Vec<String>,
    versions: Vec<i64>,
    event_ids: Vec<uuid::Uuid>,
    event_types: Vec<String>,
    table_ids: Vec<Option<String>>,
    workspace_ids: Vec<Option<String>>,
    actors: Vec<Value>,
    recorded_ats: Vec<DateTime<Utc>>,
    /// Postgres array literals, cast per row: `unnest` of a two-dimensional array would
    /// flatten it.
    changed_fields: Vec<String>,
    changes: Vec<Value>,
    positions: Vec<String>,
}

/// A `text[]` literal (`{"a","b"}`) for a list of strings.
pub(crate) fn text_array_literal<'s>(items: impl IntoIterator<Item = &'s str>) -> String {
    let mut out = String::with_capacity(64);
    out.push('{');
    for (i, s) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in s.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// Applies a batch of events to one generation of the `records` projection with two
/// set-based statements (plus one read of the touched rows).
///
/// # Errors
/// [`ProjectionError::BadEvent`] for the first event whose payload cannot be read (nothing is
/// written); [`ProjectionError::Postgres`] when a statement fails.
pub(crate) async fn apply_records_batch(
    conn: &mut PgConnection,
    names: &Names,
    generation: i32,
    events: &[RecordedEvent],
) -> Result<()> {
    let parsed = events
        .iter()
        .filter(|e| aggregate_kind(&e.stream_id) == "record")
        .map(parse)
        .collect::<Result<Vec<_>>>()?;
    if parsed.is_empty() {
        return Ok(());
    }
    let records = names.rm_table("records", generation);
    let revisions_table = names.rm_table("record_revisions", generation);
    let counters = names.rm_table("record_autonumbers", generation);

    let mut ids: Vec<&str> = parsed.iter().map(|p| p.record_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut rows = read_rows(conn, &records, &ids, true).await?;

    let mut revs = Revisions::default();
    // Per table, how many records this batch creates: the fold numbers them from 1.
    let mut created = HashMap::new();
    for p in &parsed {
        if let Some(table_id) = fold(&mut rows, p, &mut created) {
            revs.record_ids.push(p.record_id.to_owned());
            revs.versions.push(p.version);
            revs.event_ids.push(p.event.event_id);
            revs.event_types.push(p.event.event_type.clone());
            revs.table_ids.push(table_id);
            revs.workspace_ids
                .push(p.event.metadata.workspace_id.clone());
            revs.actors.push(p.actor.clone());
            revs.recorded_ats.push(p.event.recorded_at);
            revs.changed_fields.push(p.changed_fields());
            revs.changes.push(p.changes().to_value());
            revs.positions.push(p.position.clone());
        }
    }

    if !created.is_empty() {
        let before = reserve_numbers(conn, &counters, &created).await?;
        // Every row not read from the table was created by this batch's fold.
        for row in rows.values_mut().filter(|r| !r.stored) {
            if let Some(base) = row.table_id.as_ref().and_then(|t| before.get(t)) {
                row.autonumber += base;
            }
        }
    }
    write_rows(conn, &records, rows).await?;
    write_revisions(conn, &revisions_table, revs).await
}

/// Reserves `counts[table]` numbers per table in a generation's counters (`counters`, a
/// `record_autonumbers_g<n>` table) and returns, per table, the last number handed out before.
///
/// One upsert, so the reservation is atomic: a concurrent writer of the same generation waits
/// on the counter rows and gets the numbers after these. The runtime never has two (a batch
/// holds its checkpoint row), but the numbers must not depend on it. Tables are locked in
/// sorted order so that two writers cannot deadlock.
async fn reserve_numbers(
    conn: &mut PgConnection,
    counters: &str,
    counts: &HashMap<String, i64>,
) -> Result<HashMap<String, i64>> {
    let mut sorted: Vec<(&String, &i64)> = counts.iter().collect();
    sorted.sort_unstable();
    let (tables, added): (Vec<&str>, Vec<i64>) =
        sorted.into_iter().map(|(t, n)| (t.as_str(), *n)).unzip();
    let sql = format!(
        "INSERT INTO {counters} AS c (table_id, last)
         SELECT u.table_id, u.last
           FROM unnest($1::text[], $2::int8[]) WITH ORDINALITY AS u(table_id, last, i)
          ORDER BY u.i
         ON CONFLICT (table_id) DO UPDATE SET last = c.last + EXCLUDED.last
         RETURNING table_id, last"
    );
    let reserved: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(&tables)
        .bind(&added)
        .fetch_all(&mut *conn)
        .await
        .map_err(ProjectionError::pg("reserving auto numbers"))?;
    Ok(reserved
        .into_iter()
        .map(|(table, last)| {
            let before = last - counts.get(&table).copied().unwrap_or(0);
            (table, before)
        })
        .collect())
}

/// Sets a generation's counters to `last` per table: what a bulk rebuild's fold has handed out
/// when it writes its records out, so the live path goes on from there.
pub(crate) async fn write_counters(
    conn: &mut PgConnection,
    counters: &str,
    last: &HashMap<String, i64>,
) -> Result<()> {
    if last.is_empty() {
        return Ok(());
    }
    let (tables, numbers): (Vec<&str>, Vec<i64>) =
        last.iter().map(|(t, n)| (t.as_str(), *n)).unzip();
    let sql = format!(
        "INSERT INTO {counters} AS c (table_id, last)
         SELECT * FROM unnest($1::text[], $2::int8[])
         ON CONFLICT (table_id) DO UPDATE SET last = EXCLUDED.last"
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(&tables)
        .bind(&numbers)
        .execute(&mut *conn)
        .await
        .map_err(ProjectionError::pg("writing auto number counters"))?;
    Ok(())
}

/// The revision's table, like the per-event `RETURNING table_id` (None when the version guard
/// stopped the change or there is no row).
pub(crate) type RevisionTable = Option<String>;

/// Applies one event to the in-memory rows. Returns the revision's table when the event
/// writes a revision, `None` when it does not (a version bump).
///
/// A record created here (no row yet) gets the next number of its table in `numbers`, the
/// last number handed out per table, which the fold advances. The bulk rebuild passes the
/// generation's real counters (the shadow starts from nothing); the live path passes empty
/// ones per batch and shifts the numbers once it has reserved them.
pub(crate) fn fold(
    rows: &mut HashMap<String, RecordRow>,
    p: &Parsed<'_>,
    numbers: &mut HashMap<String, i64>,
) -> Option<RevisionTable> {
    let row = rows.get_mut(p.record_id);
    // The guard of every per-event statement: a row only moves forward.
    let newer = row.as_ref().is_some_and(|r| r.version < p.version);
    match &p.change {
        Change::Created {
            table_id,
            base_id,
            cells,
        } => {
            match row {
                None => {
                    let number = match numbers.get_mut(*table_id) {
                        Some(n) => n,
                        None => numbers.entry((*table_id).to_owned()).or_insert(0),
                    };
                    *number += 1;
                    let autonumber = *number;
                    rows.insert(
                        p.record_id.to_owned(),
                        RecordRow {
                            stream_id: p.event.stream_id.clone(),
                            table_id: Some((*table_id).to_owned()),
                            base_id: base_id.map(str::to_owned),
                            workspace_id: p.event.metadata.workspace_id.clone(),
                            cells: (*cells).clone(),
                            version: p.version,
                            deleted: false,
                            created_at: p.at,
                            created_by: Some(p.actor.clone()),
                            updated_at: p.at,
                            updated_by: Some(p.actor.clone()),
                            position: p.position.clone(),
                            autonumber,
                            dirty: true,
                            stored: false,
                        },
                    );
                }
                // ON CONFLICT DO UPDATE keeps the stream, base, workspace, creation and number.
                Some(r) if newer => {
                    r.table_id = Some((*table_id).to_owned());
                    r.cells = (*cells).clone();
                    r.version = p.version;
                    r.deleted = false;
                    r.updated_at = p.at;
                    r.updated_by = Some(p.actor.clone());
                    r.position = p.position.clone();
                    r.dirty = true;
                }
                Some(_) => {}
            }
            // The per-event handler records the created table whatever the guard decided.
            Some(Some((*table_id).to_owned()))
        }
        Change::Cells(changes) => Some(row.filter(|_| newer).and_then(|r| {
            // `(cells - cleared) || set`: every clear first, then the values set, a later
            // value of a field winning.
            for c in changes.iter().filter(|c| c.new.is_null()) {
                r.cells.remove(c.field);
            }
            for c in changes.iter().filter(|c| !c.new.is_null()) {
                match r.cells.get_mut(c.field) {
                    Some(cell) => cell.clone_from(c.new),
                    None => {
                        r.cells.insert(c.field.to_owned(), c.new.clone());
                    }
                }
            }
            touch(r, p);
            r.table_id.clone()
        })),
        Change::Links {
            field,
            added,
            removed,
        } => {
            // No row: the per-event statement updates nothing, but the revision is written.
            let Some(row) = row.filter(|_| newer) else {
                return Some(None);
            };
            // The old links minus the removed ones, then the added ones not there yet.
            let mut links: Vec<Value> = match row.cells.remove(*field) {
                Some(Value::Array(links)) => links,
                _ => Vec::new(),
            };
            links.retain(|l| !removed.contains(l));
            for a in *added {
                if !links.contains(a) {
                    links.push(a.clone());
                }
            }
            if !links.is_empty() {
                row.cells.insert((*field).to_owned(), Value::Array(links));
            }
            touch(row, p);
            Some(row.table_id.clone())
        }
        Change::Deleted(deleted) => Some(row.filter(|_| newer).and_then(|r| {
            r.deleted = *deleted;
            touch(r, p);
            r.table_id.clone()
        })),
        Change::Bump => {
            if let Some(r) = row.filter(|_| newer) {
                r.version = p.version;
                r.position = p.position.clone();
                r.dirty = true;
            }
            None
        }
    }
}

/// What every guarded per-event statement sets besides its own columns.
fn touch(r: &mut RecordRow, p: &Parsed<'_>) {
    r.version = p.version;
    r.updated_at = p.at;
    r.updated_by = Some(p.actor.clone());
    r.position = p.position.clone();
    r.dirty = true;
}

/// Reads the rows of `ids`; `lock` takes them `FOR UPDATE` (the live path, where two
/// workers could meet; a rebuild's shadow has one writer).
pub(crate) async fn read_rows(
    conn: &mut PgConnection,
    records: &str,
    ids: &[&str],
    lock: bool,
) -> Result<HashMap<String, RecordRow>> {
    let sql = format!(
        "SELECT record_id, stream_id, table_id, base_id, workspace_id, cells, version, deleted,
                created_at, created_by, updated_at, updated_by, position, autonumber
           FROM {records} WHERE record_id = ANY($1){}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let found = sqlx::query(AssertSqlSafe(sql))
        .bind(ids)
        .fetch_all(&mut *conn)
        .await
        .map_err(ProjectionError::pg("reading records"))?;
    let mut rows = HashMap::with_capacity(ids.len());
    for r in found {
        let get = |e: sqlx::Error| ProjectionError::pg("decoding a record row")(e);
        let cells: Value = r.try_get("cells").map_err(get)?;
        let cells = match cells {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        rows.insert(
            r.try_get("record_id").map_err(get)?,
            RecordRow {
                stream_id: r.try_get("stream_id").map_err(get)?,
                table_id: r.try_get("table_id").map_err(get)?,
                base_id: r.try_get("base_id").map_err(get)?,
                workspace_id: r.try_get("workspace_id").map_err(get)?,
                cells,
                version: r.try_get("version").map_err(get)?,
                deleted: r.try_get("deleted").map_err(get)?,
                created_at: r.try_get("created_at").map_err(get)?,
                created_by: r.try_get("created_by").map_err(get)?,
                updated_at: r.try_get("updated_at").map_err(get)?,
                updated_by: r.try_get("updated_by").map_err(get)?,
                position: r.try_get("position").map_err(get)?,
                autonumber: r.try_get("autonumber").map_err(get)?,
                dirty: false,
                stored: true,
            },
        );
    }
    Ok(rows)
}

pub(crate) async fn write_rows(
    conn: &mut PgConnection,
    records: &str,
    rows: impl IntoIterator<Item = (String, RecordRow)>,
) -> Result<()> {
    let rows: Vec<(String, RecordRow)> = rows.into_iter().filter(|(_, r)| r.dirty).collect();
    let n = rows.len();
    if n == 0 {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(n);
    let mut streams = Vec::with_capacity(n);
    let mut tables = Vec::with_capacity(n);
    let mut bases = Vec::with_capacity(n);
    let mut workspaces = Vec::with_capacity(n);
    let mut cells = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut deleted = Vec::with_capacity(n);
    let mut created_at = Vec::with_capacity(n);
    let mut created_by = Vec::with_capacity(n);
    let mut updated_at = Vec::with_capacity(n);
    let mut updated_by = Vec::with_capacity(n);
    let mut positions = Vec::with_capacity(n);
    let mut autonumbers = Vec::with_capacity(n);
    for (id, r) in rows {
        ids.push(id);
        streams.push(r.stream_id);
        tables.push(r.table_id);
        bases.push(r.base_id);
        workspaces.push(r.workspace_id);
        cells.push(Value::Object(r.cells));
        versions.push(r.version);
        deleted.push(r.deleted);
        created_at.push(r.created_at);
        created_by.push(r.created_by);
        updated_at.push(r.updated_at);
        updated_by.push(r.updated_by);
        positions.push(r.position);
        autonumbers.push(r.autonumber);
    }
    // The rows read above are locked, so the guard only matters for a record another writer
    // inserted meanwhile; it keeps the per-event rule that a row never goes back. A number is
    // never reassigned, so an update leaves `autonumber` alone.
    let sql = format!(
        "INSERT INTO {records} AS r (record_id, stream_id, table_id, base_id, workspace_id, cells,
                version, deleted, created_at, created_by, updated_at, updated_by, position,
                autonumber)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::jsonb[], $7::int8[], $8::bool[], $9::timestamptz[],
                              $10::jsonb[], $11::timestamptz[], $12::jsonb[], $13::text[],
                              $14::int8[])
         ON CONFLICT (record_id) DO UPDATE
            SET table_id = EXCLUDED.table_id, cells = EXCLUDED.cells,
                version = EXCLUDED.version, deleted = EXCLUDED.deleted,
                updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by,
                position = EXCLUDED.position
          WHERE r.version < EXCLUDED.version"
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(ids)
        .bind(streams)
        .bind(tables)
        .bind(bases)
        .bind(workspaces)
        .bind(cells)
        .bind(versions)
        .bind(deleted)
        .bind(created_at)
        .bind(created_by)
        .bind(updated_at)
        .bind(updated_by)
        .bind(positions)
        .bind(autonumbers)
        .execute(&mut *conn)
        .await
        .map_err(ProjectionError::pg("writing records"))?;
    Ok(())
}

async fn write_revisions(conn: &mut PgConnection, table: &str, revs: Revisions) -> Result<()> {
    if revs.record_ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO {table} (record_id, version, event_id, event_type, table_id, workspace_id,
                actor, recorded_at, changed_fields, changes, position)
         SELECT u.record_id, u.version, u.event_id, u.event_type, u.table_id, u.workspace_id,
                u.actor, u.recorded_at, u.changed_fields::text[], u.changes, u.position
           FROM unnest($1::text[], $2::int8[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                       $7::jsonb[], $8::timestamptz[], $9::text[], $10::jsonb[], $11::text[])
                AS u(record_id, version, event_id, event_type, table_id, workspace_id, actor,
                     recorded_at, changed_fields, changes, position)
         ON CONFLICT DO NOTHING"
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(revs.record_ids)
        .bind(revs.versions)
        .bind(revs.event_ids)
        .bind(revs.event_types)
        .bind(revs.table_ids)
        .bind(revs.workspace_ids)
        .bind(revs.actors)
        .bind(revs.recorded_ats)
        .bind(revs.changed_fields)
        .bind(revs.changes)
        .bind(revs.positions)
        .execute(&mut *conn)
        .await
        .map_err(ProjectionError::pg("writing record revisions"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::text_array_literal;

    #[test]
    fn text_array_literals_quote_and_escape() {
        assert_eq!(text_array_literal([]), "{}");
        assert_eq!(
            text_array_literal(["fldA", "a\"b\\c,{d}"]),
            r#"{"fldA","a\"b\\c,{d}"}"#
        );
    }
}
