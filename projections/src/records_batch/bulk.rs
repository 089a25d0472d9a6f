//! The `records` projection replayed in bulk into a rebuild's shadow generation.
//!
//! A rebuild reads the whole log in feed order into tables nobody reads yet. The live batched
//! path (see the parent module) would read the touched rows, upsert them and insert revisions
//! batch after batch: a record edited ten times over the log is read and rewritten ten times,
//! and every write maintains the indexes. Here the records stay in memory across batches (up to
//! a bound), so each is written once, and the revisions, which are only ever appended, stream
//! in with `COPY`. The caller has dropped the shadow's secondary indexes and builds them once
//! the replay is done.
//!
//! The writes go through a connection of their own, one batch behind the fold: while
//! PostgreSQL takes in batch n's revisions, this process folds batch n+1, so the server's core
//! and ours both work. Nobody reads the shadow before the rebuild has written everything out
//! and built its indexes, and a rebuild that fails starts again from an empty generation, so
//! these writes need no transaction with the shadow's checkpoint.
//!
//! The fold is the live path's own ([`fold`]), so both produce the same rows; a test compares
//! a bulk rebuild with tables the live workers built event by event.
//!
//! Auto numbers: the shadow starts empty and this fold is its only writer until it has written
//! everything out, so the per-table counters stay in memory (a few bytes per table, never
//! forgotten) and the fold hands out final numbers. Every write-out also stores the counters,
//! so the live path that catches the shadow up afterwards goes on from them.

use std::collections::HashMap;

use sqlx::{PgConnection, PgPool};
use tokio::task::JoinHandle;

use super::{Parsed, RecordRow, fold, read_rows, write_counters, write_rows};
use crate::copy::CopyRows;
use crate::error::{ProjectionError, Result};
use crate::names::Names;

/// Records folded in memory during a bulk replay, and the writer of their rows.
pub(crate) struct BulkRecords {
    rows: HashMap<String, RecordRow>,
    /// Most records kept in memory; past it they are written out and forgotten.
    cap: usize,
    /// Whether records were written out before: a record not in memory may then be in the
    /// table, and must be read from it before it is folded.
    spilled: bool,
    /// Per table, the last auto number handed out in the shadow.
    numbers: HashMap<String, i64>,
    writer: Writer,
    records: String,
    revisions_table: String,
    counters_table: String,
}

impl BulkRecords {
    /// An empty fold for one shadow generation, keeping at most `cap` records in memory and
    /// writing through a connection of `pool`.
    pub(crate) fn new(pool: &PgPool, names: &Names, generation: i32, cap: usize) -> Self {
        Self {
            rows: HashMap::new(),
            cap: cap.max(1),
            spilled: false,
            numbers: HashMap::new(),
            writer: Writer {
                pool: pool.clone(),
                idle: None,
                busy: None,
            },
            records: names.rm_table("records", generation),
            revisions_table: names.rm_table("record_revisions", generation),
            counters_table: names.rm_table("record_autonumbers", generation),
        }
    }

    /// Folds a batch of parsed record events (in feed order) and starts copying their
    /// revisions. `conn` reads records written out earlier.
    ///
    /// # Errors
    /// [`ProjectionError::Postgres`] when a read, or the previous batch's write, failed.
    pub(crate) async fn apply(
        &mut self,
        conn: &mut PgConnection,
        parsed: &[Parsed<'_>],
    ) -> Result<()> {
        if self.spilled {
            let mut missing: Vec<&str> = parsed
                .iter()
                .map(|p| p.record_id)
                .filter(|id| !self.rows.contains_key(*id))
                .collect();
            missing.sort_unstable();
            missing.dedup();
            if !missing.is_empty() {
                // What was written out must have landed before it is read back.
                self.writer.settle().await?;
                self.rows
                    .extend(read_rows(conn, &self.records, &missing, false).await?);
            }
        }
        let mut revisions = CopyRows::default();
        for p in parsed {
            if let Some(table_id) = fold(&mut self.rows, p, &mut self.numbers) {
                let r = &mut revisions;
                r.text(p.record_id);
                r.plain(p.version);
                r.plain(p.event.event_id);
                r.text(&p.event.event_type);
                r.opt_text(table_id.as_deref());
                r.opt_text(p.event.metadata.workspace_id.as_deref());
                r.json(&p.actor);
                r.time(&p.event.recorded_at);
                r.text(&p.changed_fields());
                r.json(&p.changes());
                r.text(&p.position);
                r.end_row();
            }
        }
        let statement = format!(
            "COPY {} (record_id, version, event_id, event_type, table_id, workspace_id, \
             actor, recorded_at, changed_fields, changes, position) FROM STDIN",
            self.revisions_table
        );
        self.writer
            .copy(statement, revisions, "copying record revisions")
            .await?;
        if self.rows.len() > self.cap {
            self.spill().await?;
        }
        Ok(())
    }

    /// Writes every record held in memory to the shadow table and forgets them; returns when
    /// every write has landed.
    ///
    /// # Errors
    /// [`ProjectionError::Postgres`] when a write fails.
    pub(crate) async fn spill(&mut self) -> Result<()> {
        let rows = std::mem::take(&mut self.rows);
        let (stored, fresh): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(_, r)| r.stored);
        // Records read back from the table are updates; the rest are new rows, copied.
        write_rows(self.writer.settle().await?, &self.records, stored).await?;
        let mut out = CopyRows::default();
        for (id, r) in fresh.into_iter().filter(|(_, r)| r.dirty) {
            out.text(&id);
            out.text(&r.stream_id);
            out.opt_text(r.table_id.as_deref());
            out.opt_text(r.base_id.as_deref());
            out.opt_text(r.workspace_id.as_deref());
            out.json(&r.cells);
            out.plain(r.version);
            out.plain(r.deleted);
            out.time(&r.created_at);
            out.opt_json(r.created_by.as_ref());
            out.time(&r.updated_at);
            out.opt_json(r.updated_by.as_ref());
            out.text(&r.position);
            out.plain(r.autonumber);
            out.end_row();
        }
        let statement = format!(
            "COPY {} (record_id, stream_id, table_id, base_id, workspace_id, cells, version, \
             deleted, created_at, created_by, updated_at, updated_by, position, autonumber) \
             FROM STDIN",
            self.records
        );
        self.writer.copy(statement, out, "copying records").await?;
        write_counters(
            self.writer.settle().await?,
            &self.counters_table,
            &self.numbers,
        )
        .await?;
        self.spilled = true;
        Ok(())
    }
}

/// A connection that runs one `COPY` at a time in the background.
struct Writer {
    pool: PgPool,
    /// The connection, when no copy runs.
    idle: Option<PgConnection>,
    /// The copy running, which hands the connection back.
    busy: Option<JoinHandle<Result<PgConnection>>>,
}

impl Writer {
    /// Waits for the running copy, and returns the connection (made on first use).
    async fn settle(&mut self) -> Result<&mut PgConnection> {
        if let Some(task) = self.busy.take() {
            let conn = task
                .await
                .map_err(|e| ProjectionError::Malformed(format!("rebuild write task: {e}")))??;
            self.idle = Some(conn);
        }
        if self.idle.is_none() {
            // Detached: the session setting below must not leak into the pool.
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(ProjectionError::pg(
                    "taking a connection for the rebuild's writes",
                ))?
                .detach();
            // Nothing reads the shadow before the switch, which commits synchronously.
            sqlx::query("SET synchronous_commit = off")
                .execute(&mut conn)
                .await
                .map_err(ProjectionError::pg("setting up the rebuild's writes"))?;
            self.idle = Some(conn);
        }
        match self.idle.as_mut() {
            Some(conn) => Ok(conn),
            None => Err(ProjectionError::Malformed(
                "the rebuild's write connection is gone".to_owned(),
            )),
        }
    }

    /// Starts copying `rows` after the running copy has finished (nothing for no rows).
    async fn copy(
        &mut self,
        statement: String,
        rows: CopyRows,
        context: &'static str,
    ) -> Result<()> {
        if rows.rows() == 0 {
            return Ok(());
        }
        self.settle().await?;
        let Some(mut conn) = self.idle.take() else {
            return Err(ProjectionError::Malformed(
                "the rebuild's write connection is gone".to_owned(),
            ));
        };
        self.busy = Some(tokio::spawn(async move {
            copy(&mut conn, &statement, rows.bytes(), context).await?;
            Ok(conn)
        }));
        Ok(())
    }
}

/// Streams `data` into a `COPY ... FROM STDIN`.
async fn copy(
    conn: &mut PgConnection,
    statement: &str,
    data: &[u8],
    context: &'static str,
) -> Result<()> {
    let mut copy_in = conn
        .copy_in_raw(statement)
        .await
        .map_err(ProjectionError::pg(context))?;
    // Sent in pieces so one huge buffer is not held twice by the connection's writer.
    for piece in data.chunks(1 << 20) {
        if let Err(e) = copy_in.send(piece).await {
            let _ = copy_in.abort("the rebuild stopped").await;
            return Err(ProjectionError::pg(context)(e));
        }
    }
    copy_in
        .finish()
        .await
        .map_err(ProjectionError::pg(context))?;
    Ok(())
}
