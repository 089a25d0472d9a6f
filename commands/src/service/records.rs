//! Records: batched create and update (all or nothing, up to ten), delete, restore, revert to
//! an earlier version, and comments.
//!
//! Every write validates cells against the table's schema from the base stream, keeps the
//! inverse side of link fields in step (the linked records get `LinksChanged` in the same
//! atomic append), and adds the select choices typecast asks for to the schema, also in that
//! append. A conflict on any of those streams decides the whole batch again.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use pyairtable_domain::Aggregate;
use pyairtable_domain::base::{Base, BaseCommand, BaseEvent, TableSchema};
use pyairtable_domain::fields::{
    CellError, Choice, FieldDef, FieldType, assign_attachment_ids, merge_attachment_refs,
};
use pyairtable_domain::ids::{
    AttachmentKind, BaseId, CommentId, FieldId, RecordId, TableId, UserId,
};
use pyairtable_domain::permissions::Action;
use pyairtable_domain::record::{
    CellChange, Record, RecordCommand, RecordEvent, link_diff, validate_record_cells,
};
use pyairtable_domain::workspace::Workspace;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::bases::{data_actor, load_base_for, load_base_in_workspace};
use super::{Platform, authorize_in};
use crate::auth::new_id;
use crate::context::CommandContext;
use crate::error::CommandError;
use crate::idempotency::Fingerprint;
use crate::runner::{Batch, BatchOutcome, Begin, Loaded, Run};
use crate::service::Written;

/// Most records one create, update or delete request may carry (Airtable's limit).
pub const MAX_RECORDS_PER_REQUEST: usize = 10;

/// One record of an update request: its id and the cells to write, keyed by field name or id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordUpdate {
    /// The record.
    pub id: RecordId,
    /// Cells by field name or id; `null` clears a cell.
    pub fields: Map<String, Value>,
}

/// A record as a write left it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordView {
    /// Its id.
    pub id: RecordId,
    /// Its table.
    pub table_id: TableId,
    /// Non-empty cells by field id.
    pub cells: BTreeMap<FieldId, Value>,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// Whether it is deleted.
    pub deleted: bool,
    /// Its stream version.
    pub version: u64,
}

/// The records a batch wrote and the batch's consistency token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordsWritten {
    /// The records asked for, in request order.
    pub records: Vec<RecordView>,
    /// Opaque position token of the write in the global feed.
    pub position: String,
}

/// A comment write: the comment's id and where the record's stream landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentWritten {
    /// The comment.
    pub comment_id: CommentId,
    /// The record's stream version and the consistency token.
    pub record: Written<RecordId>,
}

/// One record being changed in a batch: what was loaded, the events decided so far and the
/// state they lead to.
struct Work {
    loaded: Loaded<Record>,
    events: Vec<RecordEvent>,
    state: Record,
}

impl Work {
    /// Work on `loaded`, nothing decided yet.
    fn new(loaded: Loaded<Record>) -> Self {
        let state = loaded.state.clone();
        Self {
            loaded,
            events: Vec::new(),
            state,
        }
    }
}

/// The records a batch touches (the requested ones and those whose links follow), each loaded
/// once and emitted once.
#[derive(Default)]
struct WorkSet {
    items: BTreeMap<RecordId, Work>,
}

impl WorkSet {
    async fn get(
        &mut self,
        batch: &mut Batch<'_>,
        id: &RecordId,
    ) -> Result<&mut Work, CommandError> {
        if !self.items.contains_key(id) {
            let loaded = batch.load::<Record>(id.as_str()).await?;
            self.items.insert(id.clone(), Work::new(loaded));
        }
        self.items
            .get_mut(id)
            .ok_or_else(|| CommandError::infra("planning a record batch", "work item vanished"))
    }

    /// Adds a record whose id this command drew, without reading it (see [`Batch::fresh`]),
    /// unless the work set has it already.
    fn fresh(&mut self, batch: &Batch<'_>, id: &RecordId) -> Result<(), CommandError> {
        if self.items.contains_key(id) {
            return Ok(());
        }
        let loaded = batch.fresh::<Record>(id.as_str())?;
        self.items.insert(id.clone(), Work::new(loaded));
        Ok(())
    }

    /// Decides `command` on the record's current working state and folds the events in.
    async fn apply(
        &mut self,
        batch: &mut Batch<'_>,
        id: &RecordId,
        command: &RecordCommand,
    ) -> Result<Vec<RecordEvent>, CommandError> {
        let work = self.get(batch, id).await?;
        let events = work
            .state
            .handle(command)
            .map_err(|e| CommandError::domain(&e))?;
        for event in &events {
            work.state.apply(event);
        }
        work.events.extend(events.iter().cloned());
        Ok(events)
    }

    /// Emits every changed record into the batch.
    fn emit(&self, batch: &mut Batch<'_>) -> Result<(), CommandError> {
        for work in self.items.values() {
            batch.emit(&work.loaded, &work.events)?;
        }
        Ok(())
    }

    fn view(&self, id: &RecordId) -> Result<RecordView, CommandError> {
        let work = self
            .items
            .get(id)
            .ok_or_else(|| CommandError::infra("building a record result", "record not loaded"))?;
        let state = &work.state;
        Ok(RecordView {
            id: id.clone(),
            table_id: state.table_id.clone().ok_or_else(|| {
                CommandError::infra("building a record result", "record has no table")
            })?,
            cells: state.cells.clone(),
            created_at: state.created_at,
            deleted: state.deleted,
            version: work.loaded.version + work.events.len() as u64,
        })
    }
}

/// What a record write needs besides the records: who, when, the table, and the schema.
struct Scope<'a> {
    base: &'a Base,
    table: &'a TableSchema,
    by: &'a UserId,
    at: DateTime<Utc>,
}

impl Scope<'_> {
    /// Keeps the other side of link fields in step with `changes` made to record `this`:
    /// linked records gain or lose `this` in the inverse field. New links must point at
    /// existing records of the linked table.
    async fn follow_links(
        &self,
        batch: &mut Batch<'_>,
        work: &mut WorkSet,
        this: &RecordId,
        changes: &[CellChange],
    ) -> Result<(), CommandError> {
        for change in changes {
            let Some(field) = self.table.field(&change.field_id) else {
                continue;
            };
            let FieldType::MultipleRecordLinks(link) = &field.field_type else {
                continue;
            };
            let (added, removed) = link_diff(field, &change.old, &change.new);
            for target in &added {
                let item = work.get(batch, target).await?;
                let in_table = item.state.table_id.as_ref() == Some(&link.linked_table_id);
                if item.loaded.is_new() || !in_table || item.state.deleted {
                    return Err(CommandError::rejected(
                        "ROW_DOES_NOT_EXIST",
                        format!(
                            "field {:?} links to record {target}, which is not a record of table {}",
                            field.name, link.linked_table_id
                        ),
                    ));
                }
            }
            let Some(inverse) = &link.inverse_link_field_id else {
                continue;
            };
            for (targets, adding) in [(&added, true), (&removed, false)] {
                for target in targets {
                    let known = work.get(batch, target).await?;
                    if known.loaded.is_new() && known.events.is_empty() {
                        // A link to a record that never existed has no other side to update.
                        continue;
                    }
                    let one = vec![this.clone()];
                    let (add, remove) = if adding {
                        (one, Vec::new())
                    } else {
                        (Vec::new(), one)
                    };
                    let command = RecordCommand::ApplyLinkChange {
                        field_id: inverse.clone(),
                        add,
                        remove,
                        by: self.by.clone(),
                        at: self.at,
                    };
                    work.apply(batch, target, &command).await?;
                }
            }
        }
        Ok(())
    }

    /// Validates every record's input against the table; all errors of all records at once.
    fn validate(
        &self,
        inputs: &[&Map<String, Value>],
        typecast: bool,
    ) -> Result<Vec<Validated>, CommandError> {
        let mut out = Vec::with_capacity(inputs.len());
        let mut errors: Vec<(usize, CellError)> = Vec::new();
        for (index, input) in inputs.iter().enumerate() {
            match validate_record_cells(self.table, input, typecast) {
                Ok(cells) => out.push(Validated {
                    cells: cells.cells,
                    new_choices: cells.new_choices,
                }),
                Err(errs) => errors.extend(errs.into_iter().map(|e| (index, e))),
            }
        }
        if let Some((_, first)) = errors.first() {
            let code = first.code();
            let message = errors
                .iter()
                .map(|(i, e)| format!("record {i}: {e}"))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(CommandError::rejected(code, message));
        }
        Ok(out)
    }

    /// The `AddChoices` events typecast asks for, one per select field, folded into the base.
    fn choice_events(&self, validated: &[Validated]) -> Result<Vec<BaseEvent>, CommandError> {
        let mut wanted: BTreeMap<FieldId, Vec<String>> = BTreeMap::new();
        for v in validated {
            for (field, names) in &v.new_choices {
                let list = wanted.entry(field.clone()).or_default();
                for name in names {
                    if !list.contains(name) {
                        list.push(name.clone());
                    }
                }
            }
        }
        let mut state = self.base.clone();
        let mut events = Vec::new();
        for (field_id, names) in wanted {
            let command = BaseCommand::AddChoices {
                table_id: self.table.id.clone(),
                field_id,
                choices: names
                    .into_iter()
                    .map(|name| Choice {
                        id: new_id(),
                        name,
                        color: None,
                    })
                    .collect(),
                by: self.by.clone(),
                at: self.at,
            };
            let decided = state
                .handle(&command)
                .map_err(|e| CommandError::domain(&e))?;
            for e in &decided {
                state.apply(e);
            }
            events.extend(decided);
        }
        Ok(events)
    }
}

/// Cells that passed validation.
struct Validated {
    cells: BTreeMap<FieldId, Value>,
    new_choices: BTreeMap<FieldId, Vec<String>>,
}

/// Gives attachments without an id a fresh one, and resolves `{id}`-only references against
/// the cell's current value.
fn settle_attachments(table: &TableSchema, cells: &mut BTreeMap<FieldId, Value>, current: &Record) {
    for (field_id, value) in cells.iter_mut() {
        let is_attachment = table
            .field(field_id)
            .is_some_and(|f| matches!(f.field_type, FieldType::MultipleAttachments));
        if !is_attachment || value.is_null() {
            continue;
        }
        let before = current.cells.get(field_id).cloned().unwrap_or(Value::Null);
        *value = merge_attachment_refs(value, &before);
        let mut fresh = std::iter::repeat_with(new_id::<AttachmentKind>);
        assign_attachment_ids(value, &mut fresh);
    }
}

fn check_batch_size(n: usize) -> Result<(), CommandError> {
    if n == 0 {
        return Err(CommandError::rejected(
            "INVALID_RECORDS",
            "the request names no records",
        ));
    }
    if n > MAX_RECORDS_PER_REQUEST {
        return Err(CommandError::rejected(
            "INVALID_RECORDS",
            format!("a request may carry at most {MAX_RECORDS_PER_REQUEST} records, got {n}"),
        ));
    }
    Ok(())
}

fn table_of<'b>(
    base: &'b Base,
    base_id: &BaseId,
    key: &str,
) -> Result<&'b TableSchema, CommandError> {
    if base.deleted {
        return Err(CommandError::rejected(
            "base_deleted",
            format!("base {base_id} is deleted"),
        ));
    }
    base.table_by_name_or_id(key)
        .ok_or_else(|| CommandError::not_found("table", key))
}

/// The table a record belongs to, which must be a table of this base.
fn record_table<'b>(
    base: &'b Base,
    record: &Loaded<Record>,
    record_id: &RecordId,
) -> Result<&'b TableSchema, CommandError> {
    record
        .state
        .table_id
        .as_ref()
        .and_then(|t| base.table(t))
        .ok_or_else(|| CommandError::not_found("record", record_id.as_str()))
}

fn writable_fields(table: &TableSchema) -> Vec<FieldId> {
    table
        .fields
        .iter()
        .filter(|f: &&FieldDef| !f.field_type.is_computed())
        .map(|f| f.id.clone())
        .collect()
}

fn changes_of(events: &[RecordEvent]) -> Vec<CellChange> {
    events
        .iter()
        .flat_map(|e| match e {
            RecordEvent::RecordUpdated { changes, .. }
            | RecordEvent::RecordReverted { changes, .. } => changes.clone(),
            RecordEvent::RecordCreated { cells, .. } => cells
                .iter()
                .map(|(field_id, new)| CellChange {
                    field_id: field_id.clone(),
                    old: Value::Null,
                    new: new.clone(),
                })
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

async fn start<'p, R: serde::de::DeserializeOwned>(
    platform: &'p Platform,
    ctx: &CommandContext,
    name: &str,
    body: &Value,
) -> Result<Result<R, Run<'p>>, CommandError> {
    let request = Fingerprint::new(name, body)?;
    Ok(match platform.runner().begin(ctx, None, &request).await? {
        Begin::Replayed(result) => Ok(result),
        Begin::Run(run) => Err(run),
    })
}

impl Platform {
    /// Creates up to ten records in one table, all or none (`CreateRecord`: editors and up).
    /// Cells are keyed by field name or id; with `typecast`, values are converted and unknown
    /// select options are added to the field.
    ///
    /// # Errors
    /// `Rejected` with Airtable's code (e.g. `INVALID_VALUE_FOR_COLUMN`, `UNKNOWN_FIELD_NAME`,
    /// `ROW_DOES_NOT_EXIST`) listing every bad cell; `NotFound` (base, table); `Forbidden`.
    pub async fn create_records(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        table: &str,
        records: Vec<Map<String, Value>>,
        typecast: bool,
    ) -> Result<RecordsWritten, CommandError> {
        let body =
            json!({"baseId": base_id, "table": table, "records": records, "typecast": typecast});
        let items = records.into_iter().map(|fields| (None, fields)).collect();
        self.write_records(
            ctx,
            base_id,
            table,
            "createRecords",
            &body,
            items,
            false,
            typecast,
        )
        .await
    }

    /// Updates up to ten records of one table, all or none (`UpdateRecord`: editors and up).
    /// With `replace` (Airtable's PUT), every writable field not given is cleared; otherwise
    /// only the given cells change (PATCH).
    ///
    /// # Errors
    /// As [`Platform::create_records`], plus `NotFound` for records not in the table and
    /// `Rejected` for deleted records or a record named twice.
    pub async fn update_records(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        table: &str,
        updates: Vec<RecordUpdate>,
        replace: bool,
        typecast: bool,
    ) -> Result<RecordsWritten, CommandError> {
        let body = json!({"baseId": base_id, "table": table, "records": updates, "replace": replace, "typecast": typecast});
        let items = updates
            .into_iter()
            .map(|u| (Some(u.id), u.fields))
            .collect();
        self.write_records(
            ctx,
            base_id,
            table,
            "updateRecords",
            &body,
            items,
            replace,
            typecast,
        )
        .await
    }

    /// Creates and updates up to ten records of one table in one atomic write, all or none:
    /// the write half of an upsert. `items` keep the request's order; an item with an id
    /// updates that record (merging, or with `replace` clearing fields not given), one without
    /// creates a record. Needs both `CreateRecord` and `UpdateRecord` when both occur. The
    /// written records come back in the order of `items`.
    ///
    /// # Errors
    /// As [`Platform::create_records`] and [`Platform::update_records`]; any error writes
    /// nothing, so no record is created when an update fails.
    pub async fn upsert_records(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        table: &str,
        items: Vec<(Option<RecordId>, Map<String, Value>)>,
        replace: bool,
        typecast: bool,
    ) -> Result<RecordsWritten, CommandError> {
        let body = json!({
            "baseId": base_id,
            "table": table,
            "records": items.iter().map(|(id, fields)| json!({"id": id, "fields": fields})).collect::<Vec<_>>(),
            "replace": replace,
            "typecast": typecast,
        });
        self.write_records(
            ctx,
            base_id,
            table,
            "upsertRecords",
            &body,
            items,
            replace,
            typecast,
        )
        .await
    }

    /// Creates and updates records of one table in one atomic write: what
    /// [`Platform::create_records`], [`Platform::update_records`] and
    /// [`Platform::upsert_records`] share. `command` and `body` name the request for
    /// idempotency.
    #[allow(clippy::too_many_arguments)]
    async fn write_records(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        table: &str,
        command: &str,
        body: &Value,
        items: Vec<(Option<RecordId>, Map<String, Value>)>,
        replace: bool,
        typecast: bool,
    ) -> Result<RecordsWritten, CommandError> {
        check_batch_size(items.len())?;
        let updated: Vec<&RecordId> = items.iter().filter_map(|(id, _)| id.as_ref()).collect();
        if let Some(dup) = updated
            .iter()
            .enumerate()
            .find(|(i, id)| updated[..*i].contains(id))
        {
            return Err(CommandError::rejected(
                "INVALID_RECORDS",
                format!("record {} appears more than once in the request", dup.1),
            ));
        }
        let mut actions = Vec::new();
        if items.iter().any(|(id, _)| id.is_none()) {
            actions.push(Action::CreateRecord);
        }
        if !updated.is_empty() {
            actions.push(Action::UpdateRecord);
        }
        let by = data_actor(ctx)?;
        let mut run = match start(self, ctx, command, body).await? {
            Ok(result) => return Ok(result),
            Err(run) => run,
        };
        // New ids are drawn once, so a retry after a conflict creates the same records.
        let ids: Vec<RecordId> = items
            .iter()
            .map(|(id, _)| id.clone().unwrap_or_else(new_id))
            .collect();
        loop {
            let mut batch = run.batch();
            let (base, workspace_id) = load_base_for(&mut batch, ctx, base_id, &actions).await?;
            run.set_workspace(workspace_id.as_str());
            let schema = table_of(&base.state, base_id, table)?;
            let scope = Scope {
                base: &base.state,
                table: schema,
                by: &by,
                at: ctx.now,
            };
            let inputs: Vec<&Map<String, Value>> = items.iter().map(|(_, f)| f).collect();
            // One validation of every item, so a select option typecast adds is added once.
            let validated = scope.validate(&inputs, typecast)?;
            let choice_events = scope.choice_events(&validated)?;
            let table_fields = writable_fields(schema);
            let mut work = WorkSet::default();
            for ((id, (given, _)), mut v) in ids.iter().zip(&items).zip(validated) {
                let command = if given.is_some() {
                    let item = work.get(&mut batch, id).await?;
                    let in_table = item.state.table_id.as_ref() == Some(&schema.id);
                    if item.loaded.is_new() || !in_table {
                        return Err(CommandError::not_found("record", id.as_str()));
                    }
                    settle_attachments(schema, &mut v.cells, &item.state);
                    RecordCommand::UpdateRecord {
                        cells: v.cells,
                        replace,
                        table_fields: table_fields.clone(),
                        by: by.clone(),
                        at: ctx.now,
                    }
                } else {
                    // Drawn here: on the first attempt it cannot exist yet. A retry (after a
                    // conflict, which could mean it did) reads it like any other.
                    if run.attempts() == 0 {
                        work.fresh(&batch, id)?;
                    }
                    settle_attachments(schema, &mut v.cells, &Record::default());
                    RecordCommand::CreateRecord {
                        id: id.clone(),
                        table_id: schema.id.clone(),
                        cells: v.cells,
                        by: by.clone(),
                        at: ctx.now,
                    }
                };
                let events = work.apply(&mut batch, id, &command).await?;
                scope
                    .follow_links(&mut batch, &mut work, id, &changes_of(&events))
                    .await?;
            }
            batch.emit(&base, &choice_events)?;
            work.emit(&mut batch)?;
            let finish = |o: &BatchOutcome| records_written(&work, &ids, o);
            if let Some(result) = run.commit(batch, finish).await? {
                return Ok(result);
            }
        }
    }

    /// Deletes up to ten records of one table, all or none (`DeleteRecord`: editors and up).
    /// Deleted records can be restored; their links are left in place so a restore is exact.
    ///
    /// # Errors
    /// `NotFound` (base, table, records), `Rejected` (already deleted), `Forbidden`.
    pub async fn delete_records(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        table: &str,
        ids: Vec<RecordId>,
    ) -> Result<RecordsWritten, CommandError> {
        check_batch_size(ids.len())?;
        let by = data_actor(ctx)?;
        let body = json!({"baseId": base_id, "table": table, "records": ids});
        let mut run = match start(self, ctx, "deleteRecords", &body).await? {
            Ok(result) => return Ok(result),
            Err(run) => run,
        };
        loop {
            let mut batch = run.batch();
            let (base, workspace_id) =
                load_base_for(&mut batch, ctx, base_id, &[Action::DeleteRecord]).await?;
            run.set_workspace(workspace_id.as_str());
            let schema = table_of(&base.state, base_id, table)?;
            let mut work = WorkSet::default();
            for id in &ids {
                let item = work.get(&mut batch, id).await?;
                if item.loaded.is_new() || item.state.table_id.as_ref() != Some(&schema.id) {
                    return Err(CommandError::not_found("record", id.as_str()));
                }
                let command = RecordCommand::DeleteRecord {
                    by: by.clone(),
                    at: ctx.now,
                };
                work.apply(&mut batch, id, &command).await?;
            }
            work.emit(&mut batch)?;
            let finish = |o: &BatchOutcome| records_written(&work, &ids, o);
            if let Some(result) = run.commit(batch, finish).await? {
                return Ok(result);
            }
        }
    }

    /// Restores a deleted record (`RestoreRecord`: editors and up).
    ///
    /// # Errors
    /// `NotFound` (base, record), `Rejected` (not deleted), `Forbidden`.
    pub async fn restore_record(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        record_id: &RecordId,
    ) -> Result<RecordsWritten, CommandError> {
        let by = data_actor(ctx)?;
        let command = RecordCommand::RestoreRecord { by, at: ctx.now };
        let body = json!({"baseId": base_id, "recordId": record_id});
        self.single_record(
            ctx,
            base_id,
            record_id,
            ("restoreRecord", &body),
            Action::RestoreRecord,
            |_, _| Ok(command.clone()),
        )
        .await
    }

    /// Brings a record's cells back to what they were at `to_version` (1 is its creation),
    /// as a new `RecordReverted` event: history is never rewritten (`RevertRecord`: editors
    /// and up). Inverse links follow.
    ///
    /// # Errors
    /// `Rejected` for a version outside the record's history or a deleted record; `NotFound`;
    /// `Forbidden`.
    pub async fn revert_record(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        record_id: &RecordId,
        to_version: u64,
    ) -> Result<RecordsWritten, CommandError> {
        let by = data_actor(ctx)?;
        // Versions up to `to_version` are immutable, so the target is computed once.
        let history = self.runner().history::<Record>(record_id.as_str()).await?;
        let target = Record::default().fold(
            history
                .iter()
                .take_while(|(recorded, _)| recorded.version <= to_version)
                .map(|(_, event)| event),
        );
        let command = RecordCommand::RevertRecord {
            to_version,
            target_cells: target.cells,
            by,
            at: ctx.now,
        };
        let body = json!({"baseId": base_id, "recordId": record_id, "toVersion": to_version});
        self.single_record(
            ctx,
            base_id,
            record_id,
            ("revertRecord", &body),
            Action::RevertRecord,
            |_, _| Ok(command.clone()),
        )
        .await
    }

    /// Comments on a record (`AddComment`: commenters and up). Mentions are written
    /// `@[usr…]`.
    ///
    /// # Errors
    /// `Rejected` (empty or too long, deleted record), `NotFound`, `Forbidden`.
    pub async fn add_comment(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        record_id: &RecordId,
        text: &str,
    ) -> Result<CommentWritten, CommandError> {
        let author = data_actor(ctx)?;
        let comment_id: CommentId = new_id();
        let command = RecordCommand::AddComment {
            comment_id: comment_id.clone(),
            author,
            text: text.to_owned(),
            at: ctx.now,
        };
        let body = json!({"baseId": base_id, "recordId": record_id, "text": text});
        self.comment_command(
            ctx,
            base_id,
            record_id,
            ("addComment", &body),
            Action::AddComment,
            comment_id,
            |_, _| Ok(command.clone()),
        )
        .await
    }

    /// Edits one's own comment (`EditOwnComment`).
    ///
    /// # Errors
    /// `Rejected` (not the author, unknown comment, empty text), `NotFound`, `Forbidden`.
    pub async fn edit_comment(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        record_id: &RecordId,
        comment_id: &CommentId,
        text: &str,
    ) -> Result<CommentWritten, CommandError> {
        let by = data_actor(ctx)?;
        let command = RecordCommand::EditComment {
            comment_id: comment_id.clone(),
            by,
            text: text.to_owned(),
            at: ctx.now,
        };
        let body = json!({"baseId": base_id, "recordId": record_id, "commentId": comment_id, "text": text});
        self.comment_command(
            ctx,
            base_id,
            record_id,
            ("editComment", &body),
            Action::EditOwnComment,
            comment_id.clone(),
            |_, _| Ok(command.clone()),
        )
        .await
    }

    /// Deletes a comment: one's own (`DeleteOwnComment`: commenters and up), or as a
    /// moderator someone else's (`DeleteOthersComment`: creators and owners).
    ///
    /// # Errors
    /// `Forbidden` for someone else's comment without the moderation right, `Rejected`
    /// (unknown comment, deleted record), `NotFound`.
    pub async fn delete_comment(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        record_id: &RecordId,
        comment_id: &CommentId,
    ) -> Result<CommentWritten, CommandError> {
        let by = data_actor(ctx)?;
        let body = json!({"baseId": base_id, "recordId": record_id, "commentId": comment_id});
        self.comment_command(
            ctx,
            base_id,
            record_id,
            ("deleteComment", &body),
            Action::DeleteOwnComment,
            comment_id.clone(),
            |record, authorizer| {
                // Who wrote the comment is known only now that the record is loaded, so the
                // moderation right is checked here, on the same role as the rest. An unknown
                // comment is left to the domain, which names it.
                let theirs = record
                    .comments
                    .iter()
                    .any(|c| &c.id == comment_id && c.author != by);
                if theirs {
                    authorizer.require(Action::DeleteOthersComment)?;
                }
                Ok(RecordCommand::DeleteComment {
                    comment_id: comment_id.clone(),
                    by: by.clone(),
                    moderator: theirs,
                    at: ctx.now,
                })
            },
        )
        .await
    }

    #[allow(clippy::too_many_arguments)] // the request parts are all needed and distinct
    async fn comment_command<M>(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        record_id: &RecordId,
        request: (&str, &Value),
        action: Action,
        comment_id: CommentId,
        make: M,
    ) -> Result<CommentWritten, CommandError>
    where
        M: Fn(&Record, &Authorizer<'_>) -> Result<RecordCommand, CommandError>,
    {
        let written = self
            .single_record(ctx, base_id, record_id, request, action, make)
            .await?;
        let record = written
            .records
            .first()
            .ok_or_else(|| CommandError::infra("commenting", "no record in the result"))?;
        Ok(CommentWritten {
            comment_id,
            record: Written {
                id: record.id.clone(),
                version: record.version,
                position: written.position,
            },
        })
    }

    /// One command on one existing record of the base, with inverse links followed.
    async fn single_record<M>(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        record_id: &RecordId,
        (name, body): (&str, &Value),
        action: Action,
        make: M,
    ) -> Result<RecordsWritten, CommandError>
    where
        M: Fn(&Record, &Authorizer<'_>) -> Result<RecordCommand, CommandError>,
    {
        let by = data_actor(ctx)?;
        let mut run = match start(self, ctx, name, body).await? {
            Ok(result) => return Ok(result),
            Err(run) => run,
        };
        let ids = [record_id.clone()];
        loop {
            let mut batch = run.batch();
            let (base, workspace_id, workspace) =
                load_base_in_workspace(&mut batch, ctx, base_id, &[action]).await?;
            run.set_workspace(workspace_id.as_str());
            let mut work = WorkSet::default();
            let item = work.get(&mut batch, record_id).await?;
            let schema = record_table(&base.state, &item.loaded, record_id)?;
            let authorizer = Authorizer {
                ctx,
                workspace: &workspace,
                base_id,
            };
            let command = make(&item.state, &authorizer)?;
            let events = work.apply(&mut batch, record_id, &command).await?;
            let scope = Scope {
                base: &base.state,
                table: schema,
                by: &by,
                at: ctx.now,
            };
            scope
                .follow_links(&mut batch, &mut work, record_id, &changes_of(&events))
                .await?;
            work.emit(&mut batch)?;
            let finish = |o: &BatchOutcome| records_written(&work, &ids, o);
            if let Some(result) = run.commit(batch, finish).await? {
                return Ok(result);
            }
        }
    }
}

/// Authorises further actions once a command has loaded what they depend on, against the
/// caller's role in the workspace loaded for the same attempt.
struct Authorizer<'a> {
    ctx: &'a CommandContext,
    workspace: &'a Workspace,
    base_id: &'a BaseId,
}

impl Authorizer<'_> {
    /// Fails with the caller-facing denial when the caller may not do `action` in the base.
    fn require(&self, action: Action) -> Result<(), CommandError> {
        authorize_in(
            self.ctx,
            self.workspace,
            &[action],
            Some(self.base_id),
            ("base", self.base_id.as_str()),
        )
    }
}

fn records_written(
    work: &WorkSet,
    ids: &[RecordId],
    outcome: &BatchOutcome,
) -> Result<RecordsWritten, CommandError> {
    Ok(RecordsWritten {
        records: ids
            .iter()
            .map(|id| work.view(id))
            .collect::<Result<_, _>>()?,
        position: outcome.position.clone(),
    })
}
