//! The record aggregate: one stream per record holding its cells, its deletion state and its
//! comments.
//!
//! Cells reach the record already validated against the table's schema
//! ([`validate_record_cells`], run by the command layer with the base's schema), so the decider
//! only decides what changed. Link fields are kept symmetric by the command layer: when a
//! record's links change ([`link_diff`]), it sends [`RecordCommand::ApplyLinkChange`] to the
//! linked records' streams.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::aggregate::{Aggregate, DomainEvent};
use crate::base::TableSchema;
use crate::fields::{CellError, CellErrorReason, FieldDef, FieldType, validate_cell};
use crate::ids::{CommentId, FieldId, RecordId, TableId, UserId};

/// Longest comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 10_000;

/// A record: its cells (only non-empty ones), who made and last changed it, and its comments.
#[derive(Default, Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// The record id; `None` until `RecordCreated`.
    pub id: Option<RecordId>,
    /// The table the record belongs to.
    pub table_id: Option<TableId>,
    /// Non-empty cells by field id.
    pub cells: BTreeMap<FieldId, Value>,
    /// Whether the record is deleted (restorable).
    pub deleted: bool,
    /// Who created it.
    pub created_by: Option<UserId>,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// Who last changed a cell.
    pub last_modified_by: Option<UserId>,
    /// When a cell last changed.
    pub last_modified_at: Option<DateTime<Utc>>,
    /// How many events the stream holds (1 after creation); `RevertRecord` names one.
    pub version: u64,
    /// The comments, oldest first.
    pub comments: Vec<Comment>,
}

/// A comment on a record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Comment {
    /// Its id.
    pub id: CommentId,
    /// Who wrote it.
    pub author: UserId,
    /// Its text, with mentions as `@[usr…]`.
    pub text: String,
    /// The users mentioned, in order of first mention.
    pub mentions: Vec<UserId>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// When it was last edited.
    pub last_updated_at: Option<DateTime<Utc>>,
}

/// A cell's value before and after a change; `null` stands for an empty cell.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CellChange {
    /// The field.
    pub field_id: FieldId,
    /// The value before.
    pub old: Value,
    /// The value after.
    pub new: Value,
}

/// Cells that passed validation against a table's schema, keyed by field id.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ValidatedCells {
    /// The normalised values (`null` clears a cell).
    pub cells: BTreeMap<FieldId, Value>,
    /// Per select field, the choices typecast wants added before the write.
    pub new_choices: BTreeMap<FieldId, Vec<String>>,
    /// Per attachment field, how many attachments still need an id.
    pub missing_attachment_ids: BTreeMap<FieldId, usize>,
}

/// Validates a record's input (keyed by field name or id, as Airtable's REST API accepts it)
/// against `table`.
///
/// # Errors
/// Every rejected cell: `UNKNOWN_FIELD_NAME` for keys naming no field, computed fields, and values
/// the field does not accept. Nothing is partially accepted.
pub fn validate_record_cells(
    table: &TableSchema,
    input: &Map<String, Value>,
    typecast: bool,
) -> Result<ValidatedCells, Vec<CellError>> {
    let mut out = ValidatedCells::default();
    let mut errors = Vec::new();
    for (key, value) in input {
        let Some(field) = table.field_by_name_or_id(key) else {
            errors.push(CellError::unknown_field(key, value));
            continue;
        };
        if out.cells.contains_key(&field.id) {
            errors.push(CellError::new(
                field,
                value,
                CellErrorReason::DuplicateField,
            ));
            continue;
        }
        match validate_cell(field, value, typecast) {
            Ok(cell) => {
                if !cell.new_choices.is_empty() {
                    out.new_choices.insert(field.id.clone(), cell.new_choices);
                }
                if cell.missing_attachment_ids > 0 {
                    out.missing_attachment_ids
                        .insert(field.id.clone(), cell.missing_attachment_ids);
                }
                out.cells.insert(field.id.clone(), cell.value);
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The record ids a link cell gains and loses when it goes from `old` to `new`; empty for
/// fields that are not links.
#[must_use]
pub fn link_diff(field: &FieldDef, old: &Value, new: &Value) -> (Vec<RecordId>, Vec<RecordId>) {
    if !matches!(field.field_type, FieldType::MultipleRecordLinks(_)) {
        return (Vec::new(), Vec::new());
    }
    let before = link_ids(old);
    let after = link_ids(new);
    let added = after
        .iter()
        .filter(|id| !before.contains(id))
        .cloned()
        .collect();
    let removed = before
        .iter()
        .filter(|id| !after.contains(id))
        .cloned()
        .collect();
    (added, removed)
}

/// The record ids of a normalised link cell, skipping anything that is not one.
fn link_ids(v: &Value) -> Vec<RecordId> {
    v.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.as_str().and_then(|s| RecordId::parse(s).ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// The users mentioned in a comment as `@[usr…]`, in order, each once.
#[must_use]
pub fn parse_mentions(text: &str) -> Vec<UserId> {
    let mut out: Vec<UserId> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("@[") {
        rest = &rest[start + 2..];
        if let Some(end) = rest.find(']') {
            if let Ok(id) = UserId::parse(&rest[..end])
                && !out.contains(&id)
            {
                out.push(id);
            }
            rest = &rest[end..];
        }
    }
    out
}

/// What can be asked of a record.
#[derive(Clone, Debug, PartialEq)]
pub enum RecordCommand {
    /// Create the record with validated cells.
    CreateRecord {
        /// Its id.
        id: RecordId,
        /// Its table.
        table_id: TableId,
        /// Validated cells (from [`validate_record_cells`]); `null`s are dropped.
        cells: BTreeMap<FieldId, Value>,
        /// Who asks.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Change some cells; with `replace`, clear every other field of `table_fields` too
    /// (Airtable's PUT).
    UpdateRecord {
        /// Validated cells; `null` clears.
        cells: BTreeMap<FieldId, Value>,
        /// Replace mode: fields of `table_fields` not in `cells` are cleared.
        replace: bool,
        /// The table's writable fields (used by replace mode).
        table_fields: Vec<FieldId>,
        /// Who asks.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Delete the record (restorable).
    DeleteRecord {
        /// Who asks.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Restore a deleted record.
    RestoreRecord {
        /// Who asks.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Bring the cells back to what they were at `to_version`, as new events.
    RevertRecord {
        /// The stream version to go back to (1 is the creation).
        to_version: u64,
        /// The cells at that version, computed by the command layer by replaying the stream.
        target_cells: BTreeMap<FieldId, Value>,
        /// Who asks.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Inverse-link maintenance: another record linked or unlinked this one.
    ApplyLinkChange {
        /// The link field of this record's table.
        field_id: FieldId,
        /// Records to add to the cell.
        add: Vec<RecordId>,
        /// Records to remove from the cell.
        remove: Vec<RecordId>,
        /// Who caused it.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Comment on the record.
    AddComment {
        /// The new comment's id.
        comment_id: CommentId,
        /// Who writes it.
        author: UserId,
        /// The text; mentions as `@[usr…]`.
        text: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Edit a comment (its author only).
    EditComment {
        /// The comment.
        comment_id: CommentId,
        /// Who asks.
        by: UserId,
        /// The new text.
        text: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Delete a comment: its author's own, or anyone's as a moderator.
    DeleteComment {
        /// The comment.
        comment_id: CommentId,
        /// Who asks.
        by: UserId,
        /// Delete even when `by` is not the author. The domain cannot see roles, so the
        /// command layer sets this only after authorising `DeleteOthersComment` (creators and
        /// owners); with `false` only the author may delete.
        moderator: bool,
        /// When.
        at: DateTime<Utc>,
    },
}

/// What happened to a record.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum RecordEvent {
    /// The record was created.
    RecordCreated {
        /// Its id.
        id: RecordId,
        /// Its table.
        table_id: TableId,
        /// Its non-empty cells.
        cells: BTreeMap<FieldId, Value>,
        /// Who.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Cells changed.
    RecordUpdated {
        /// Each changed cell, before and after.
        changes: Vec<CellChange>,
        /// Who.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// The record was deleted.
    RecordDeleted {
        /// Who.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// The record was restored.
    RecordRestored {
        /// Who.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Cells were brought back to an earlier version.
    RecordReverted {
        /// The version reverted to.
        to_version: u64,
        /// Each changed cell, before and after.
        changes: Vec<CellChange>,
        /// Who.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// A link cell changed because a linked record changed its side.
    LinksChanged {
        /// The link field.
        field_id: FieldId,
        /// Records added to the cell.
        added: Vec<RecordId>,
        /// Records removed from the cell.
        removed: Vec<RecordId>,
        /// Who caused it.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// A comment was added.
    CommentAdded {
        /// Its id.
        comment_id: CommentId,
        /// Its author.
        author: UserId,
        /// Its text.
        text: String,
        /// Users it mentions.
        mentions: Vec<UserId>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A comment was edited.
    CommentEdited {
        /// The comment.
        comment_id: CommentId,
        /// The new text.
        text: String,
        /// Users it mentions now.
        mentions: Vec<UserId>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A comment was deleted.
    CommentDeleted {
        /// The comment.
        comment_id: CommentId,
        /// Who.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for RecordEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::RecordCreated { .. } => "RecordCreated",
            Self::RecordUpdated { .. } => "RecordUpdated",
            Self::RecordDeleted { .. } => "RecordDeleted",
            Self::RecordRestored { .. } => "RecordRestored",
            Self::RecordReverted { .. } => "RecordReverted",
            Self::LinksChanged { .. } => "LinksChanged",
            Self::CommentAdded { .. } => "CommentAdded",
            Self::CommentEdited { .. } => "CommentEdited",
            Self::CommentDeleted { .. } => "CommentDeleted",
        }
    }
}

/// Why a record command was rejected.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RecordError {
    /// The record does not exist.
    #[error("the record does not exist")]
    NotCreated,
    /// The record exists already.
    #[error("record {0} already exists")]
    AlreadyCreated(RecordId),
    /// The record is deleted.
    #[error("record {0} is deleted")]
    Deleted(RecordId),
    /// `RestoreRecord` on a record that is not deleted.
    #[error("record {0} is not deleted")]
    NotDeleted(RecordId),
    /// `RevertRecord` to a version the stream does not have.
    #[error("cannot revert to version {requested}: the record has versions 1 to {current}")]
    InvalidVersion {
        /// The version asked for.
        requested: u64,
        /// The record's current version.
        current: u64,
    },
    /// No such comment.
    #[error("comment {0} does not exist on this record")]
    CommentNotFound(CommentId),
    /// A comment with this id exists already.
    #[error("comment id {0} is already in use")]
    DuplicateCommentId(CommentId),
    /// Only a comment's author may change it (a moderator may still delete it).
    #[error("user {user} is not the author of comment {comment_id}")]
    NotCommentAuthor {
        /// The comment.
        comment_id: CommentId,
        /// Who tried.
        user: UserId,
    },
    /// A comment with no text.
    #[error("a comment cannot be empty")]
    EmptyComment,
    /// A comment that is too long.
    #[error("a comment is limited to {max_chars} characters, got {chars}")]
    CommentTooLong {
        /// The limit.
        max_chars: usize,
        /// The length given.
        chars: usize,
    },
}

/// Changes that take `cells` to `target` for the fields in `fields`, in field order.
fn diff<'a>(
    cells: &BTreeMap<FieldId, Value>,
    fields: impl IntoIterator<Item = &'a FieldId>,
    target: impl Fn(&FieldId) -> Value,
) -> Vec<CellChange> {
    let mut seen: Vec<&FieldId> = Vec::new();
    let mut changes = Vec::new();
    for f in fields {
        if seen.contains(&f) {
            continue;
        }
        seen.push(f);
        let old = cells.get(f).cloned().unwrap_or(Value::Null);
        let new = target(f);
        if old != new {
            changes.push(CellChange {
                field_id: f.clone(),
                old,
                new,
            });
        }
    }
    changes
}

fn check_comment(text: &str) -> Result<String, RecordError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(RecordError::EmptyComment);
    }
    let chars = t.chars().count();
    if chars > MAX_COMMENT_CHARS {
        return Err(RecordError::CommentTooLong {
            max_chars: MAX_COMMENT_CHARS,
            chars,
        });
    }
    Ok(t.to_owned())
}

/// A cell's value with empty forms (`""`, `[]`) read as empty.
fn non_empty(v: &Value) -> Value {
    match v {
        Value::String(s) if s.is_empty() => Value::Null,
        Value::Array(a) if a.is_empty() => Value::Null,
        other => other.clone(),
    }
}

impl Record {
    fn existing(&self) -> Result<&RecordId, RecordError> {
        self.id.as_ref().ok_or(RecordError::NotCreated)
    }

    fn live(&self) -> Result<&RecordId, RecordError> {
        let id = self.existing()?;
        if self.deleted {
            return Err(RecordError::Deleted(id.clone()));
        }
        Ok(id)
    }

    fn comment(&self, id: &CommentId) -> Result<&Comment, RecordError> {
        self.comments
            .iter()
            .find(|c| &c.id == id)
            .ok_or_else(|| RecordError::CommentNotFound(id.clone()))
    }

    fn own_comment(&self, id: &CommentId, by: &UserId) -> Result<&Comment, RecordError> {
        let c = self.comment(id)?;
        if &c.author != by {
            return Err(RecordError::NotCommentAuthor {
                comment_id: id.clone(),
                user: by.clone(),
            });
        }
        Ok(c)
    }

    /// The link cell after adding and removing ids, `null` when it ends up empty.
    fn linked(&self, field_id: &FieldId, add: &[RecordId], remove: &[RecordId]) -> Value {
        let mut ids = self.cells.get(field_id).map(link_ids).unwrap_or_default();
        ids.retain(|id| !remove.contains(id));
        for id in add {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        if ids.is_empty() {
            Value::Null
        } else {
            Value::Array(ids.iter().map(|i| Value::String(i.to_string())).collect())
        }
    }

    fn set_cells(&mut self, changes: &[CellChange]) {
        for c in changes {
            if c.new.is_null() {
                self.cells.remove(&c.field_id);
            } else {
                self.cells.insert(c.field_id.clone(), c.new.clone());
            }
        }
    }

    fn touch(&mut self, by: &UserId, at: DateTime<Utc>) {
        self.last_modified_by = Some(by.clone());
        self.last_modified_at = Some(at);
    }
}

impl Aggregate for Record {
    type Command = RecordCommand;
    type Event = RecordEvent;
    type Error = RecordError;
    const KIND: &'static str = "record";

    #[allow(clippy::too_many_lines)] // one arm per command reads better than a split
    fn handle(&self, command: &RecordCommand) -> Result<Vec<RecordEvent>, RecordError> {
        use RecordCommand as C;
        use RecordEvent as E;
        match command {
            C::CreateRecord {
                id,
                table_id,
                cells,
                by,
                at,
            } => {
                if let Some(existing) = &self.id {
                    return Err(RecordError::AlreadyCreated(existing.clone()));
                }
                let cells = cells
                    .iter()
                    .map(|(k, v)| (k.clone(), non_empty(v)))
                    .filter(|(_, v)| !v.is_null())
                    .collect();
                Ok(vec![E::RecordCreated {
                    id: id.clone(),
                    table_id: table_id.clone(),
                    cells,
                    by: by.clone(),
                    at: *at,
                }])
            }
            C::UpdateRecord {
                cells,
                replace,
                table_fields,
                by,
                at,
            } => {
                self.live()?;
                let cleared: Vec<&FieldId> = if *replace {
                    table_fields
                        .iter()
                        .filter(|f| !cells.contains_key(f))
                        .collect()
                } else {
                    Vec::new()
                };
                let changes = diff(&self.cells, cells.keys().chain(cleared), |f| {
                    cells.get(f).map_or(Value::Null, non_empty)
                });
                if changes.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![E::RecordUpdated {
                    changes,
                    by: by.clone(),
                    at: *at,
                }])
            }
            C::DeleteRecord { by, at } => {
                self.live()?;
                Ok(vec![E::RecordDeleted {
                    by: by.clone(),
                    at: *at,
                }])
            }
            C::RestoreRecord { by, at } => {
                let id = self.existing()?;
                if !self.deleted {
                    return Err(RecordError::NotDeleted(id.clone()));
                }
                Ok(vec![E::RecordRestored {
                    by: by.clone(),
                    at: *at,
                }])
            }
            C::RevertRecord {
                to_version,
                target_cells,
                by,
                at,
            } => {
                self.live()?;
                if *to_version == 0 || *to_version > self.version {
                    return Err(RecordError::InvalidVersion {
                        requested: *to_version,
                        current: self.version,
                    });
                }
                let changes = diff(
                    &self.cells,
                    self.cells.keys().chain(target_cells.keys()),
                    |f| target_cells.get(f).map_or(Value::Null, non_empty),
                );
                if changes.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![E::RecordReverted {
                    to_version: *to_version,
                    changes,
                    by: by.clone(),
                    at: *at,
                }])
            }
            C::ApplyLinkChange {
                field_id,
                add,
                remove,
                by,
                at,
            } => {
                // Accepted on deleted records too, so a restored record's links stay symmetric.
                self.existing()?;
                let current = self.cells.get(field_id).map(link_ids).unwrap_or_default();
                let mut added: Vec<RecordId> = Vec::new();
                for id in add {
                    if !current.contains(id) && !remove.contains(id) && !added.contains(id) {
                        added.push(id.clone());
                    }
                }
                let mut removed: Vec<RecordId> = Vec::new();
                for id in remove {
                    if current.contains(id) && !removed.contains(id) {
                        removed.push(id.clone());
                    }
                }
                if added.is_empty() && removed.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![E::LinksChanged {
                    field_id: field_id.clone(),
                    added,
                    removed,
                    by: by.clone(),
                    at: *at,
                }])
            }
            C::AddComment {
                comment_id,
                author,
                text,
                at,
            } => {
                self.live()?;
                if self.comments.iter().any(|c| &c.id == comment_id) {
                    return Err(RecordError::DuplicateCommentId(comment_id.clone()));
                }
                let text = check_comment(text)?;
                Ok(vec![E::CommentAdded {
                    comment_id: comment_id.clone(),
                    author: author.clone(),
                    mentions: parse_mentions(&text),
                    text,
                    at: *at,
                }])
            }
            C::EditComment {
                comment_id,
                by,
                text,
                at,
            } => {
                self.live()?;
                let current = self.own_comment(comment_id, by)?;
                let text = check_comment(text)?;
                if text == current.text {
                    return Ok(vec![]);
                }
                Ok(vec![E::CommentEdited {
                    comment_id: comment_id.clone(),
                    mentions: parse_mentions(&text),
                    text,
                    at: *at,
                }])
            }
            C::DeleteComment {
                comment_id,
                by,
                moderator,
                at,
            } => {
                self.live()?;
                if *moderator {
                    self.comment(comment_id)?;
                } else {
                    self.own_comment(comment_id, by)?;
                }
                Ok(vec![E::CommentDeleted {
                    comment_id: comment_id.clone(),
                    by: by.clone(),
                    at: *at,
                }])
            }
        }
    }

    fn apply(&mut self, event: &RecordEvent) {
        use RecordEvent as E;
        self.version += 1;
        match event {
            E::RecordCreated {
                id,
                table_id,
                cells,
                by,
                at,
            } => {
                self.id = Some(id.clone());
                self.table_id = Some(table_id.clone());
                self.cells = cells
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                self.created_by = Some(by.clone());
                self.created_at = Some(*at);
                self.touch(by, *at);
            }
            E::RecordUpdated { changes, by, at }
            | E::RecordReverted {
                changes, by, at, ..
            } => {
                self.set_cells(changes);
                self.touch(by, *at);
            }
            E::RecordDeleted { .. } => self.deleted = true,
            E::RecordRestored { .. } => self.deleted = false,
            E::LinksChanged {
                field_id,
                added,
                removed,
                by,
                at,
            } => {
                let v = self.linked(field_id, added, removed);
                if v.is_null() {
                    self.cells.remove(field_id);
                } else {
                    self.cells.insert(field_id.clone(), v);
                }
                self.touch(by, *at);
            }
            E::CommentAdded {
                comment_id,
                author,
                text,
                mentions,
                at,
            } => self.comments.push(Comment {
                id: comment_id.clone(),
                author: author.clone(),
                text: text.clone(),
                mentions: mentions.clone(),
                created_at: *at,
                last_updated_at: None,
            }),
            E::CommentEdited {
                comment_id,
                text,
                mentions,
                at,
            } => {
                if let Some(c) = self.comments.iter_mut().find(|c| &c.id == comment_id) {
                    c.text = text.clone();
                    c.mentions = mentions.clone();
                    c.last_updated_at = Some(*at);
                }
            }
            E::CommentDeleted { comment_id, .. } => {
                self.comments.retain(|c| &c.id != comment_id);
            }
        }
    }
}
