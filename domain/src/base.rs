//! The base aggregate: a base and its whole schema (tables, fields, views) live in one stream,
//! so schema invariants that span tables (unique names, link fields and their inverses in the
//! linked table) are decided on one consistent state.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainEvent};
use crate::fields::{
    Choice, Conversion, FieldDef, FieldType, LinkOptions, check_choices, conversion,
};
use crate::ids::{BaseId, ChoiceId, FieldId, TableId, UserId, ViewId, WorkspaceId};

/// Longest base, table, field or view name, in characters.
pub const MAX_NAME_CHARS: usize = 255;

/// A base: its name, workspace, and the schema of its tables.
#[derive(Default, Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Base {
    /// The base id; `None` until `BaseCreated`.
    pub id: Option<BaseId>,
    /// The workspace the base belongs to.
    pub workspace_id: Option<WorkspaceId>,
    /// The base's name.
    pub name: String,
    /// Whether the base is deleted (restorable).
    pub deleted: bool,
    /// The tables, in creation order.
    pub tables: Vec<TableSchema>,
}

/// The schema of one table.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableSchema {
    /// The table's id.
    pub id: TableId,
    /// The table's name, unique in the base case-insensitively.
    pub name: String,
    /// Free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The primary field, always one of `fields`.
    pub primary_field_id: FieldId,
    /// The fields, in creation order.
    pub fields: Vec<FieldDef>,
    /// The views; the first is the default grid view.
    pub views: Vec<ViewDef>,
}

/// A view of a table: a saved filter, sort order and set of visible fields.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ViewDef {
    /// The view's id.
    pub id: ViewId,
    /// The view's name, unique in its table case-insensitively.
    pub name: String,
    /// Whether this is the table's default grid view (exactly one per table, never deleted).
    pub is_default: bool,
    /// An Airtable formula records must satisfy to be shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_formula: Option<String>,
    /// Sort order, first key first.
    #[serde(default)]
    pub sorts: Vec<Sort>,
    /// Fields shown, in order; `None` shows every field. Fields added later are appended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_field_ids: Option<Vec<FieldId>>,
}

/// One sort key of a view.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sort {
    /// The field sorted on.
    pub field_id: FieldId,
    /// The direction.
    pub direction: SortDirection,
}

/// Ascending or descending, spelled like Airtable's `sort[0][direction]`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortDirection {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

impl TableSchema {
    /// The field with this id.
    #[must_use]
    pub fn field(&self, id: &FieldId) -> Option<&FieldDef> {
        self.fields.iter().find(|f| &f.id == id)
    }

    /// The field named or identified by `key`: an exact name first, then an id, then a
    /// case-insensitive name (Airtable's order).
    #[must_use]
    pub fn field_by_name_or_id(&self, key: &str) -> Option<&FieldDef> {
        self.fields
            .iter()
            .find(|f| f.name == key)
            .or_else(|| self.fields.iter().find(|f| f.id.as_str() == key))
            .or_else(|| {
                let lower = key.to_lowercase();
                self.fields.iter().find(|f| f.name.to_lowercase() == lower)
            })
    }

    /// The primary field.
    #[must_use]
    pub fn primary_field(&self) -> Option<&FieldDef> {
        self.field(&self.primary_field_id)
    }

    /// The view with this id.
    #[must_use]
    pub fn view(&self, id: &ViewId) -> Option<&ViewDef> {
        self.views.iter().find(|v| &v.id == id)
    }

    fn field_name_taken(&self, name: &str, except: Option<&FieldId>) -> bool {
        let lower = name.to_lowercase();
        self.fields
            .iter()
            .any(|f| Some(&f.id) != except && f.name.to_lowercase() == lower)
    }
}

impl Base {
    /// The table with this id.
    #[must_use]
    pub fn table(&self, id: &TableId) -> Option<&TableSchema> {
        self.tables.iter().find(|t| &t.id == id)
    }

    /// The table named or identified by `key`: an exact name first, then an id, then a
    /// case-insensitive name.
    #[must_use]
    pub fn table_by_name_or_id(&self, key: &str) -> Option<&TableSchema> {
        self.tables
            .iter()
            .find(|t| t.name == key)
            .or_else(|| self.tables.iter().find(|t| t.id.as_str() == key))
            .or_else(|| {
                let lower = key.to_lowercase();
                self.tables.iter().find(|t| t.name.to_lowercase() == lower)
            })
    }

    /// The field `key` (name or id) of table `table_key` (name or id).
    #[must_use]
    pub fn field_by_name_or_id(&self, table_key: &str, key: &str) -> Option<&FieldDef> {
        self.table_by_name_or_id(table_key)?
            .field_by_name_or_id(key)
    }

    fn table_mut(&mut self, id: &TableId) -> Option<&mut TableSchema> {
        self.tables.iter_mut().find(|t| &t.id == id)
    }

    fn field_id_used(&self, id: &FieldId) -> bool {
        self.tables.iter().any(|t| t.field(id).is_some())
    }

    fn view_id_used(&self, id: &ViewId) -> bool {
        self.tables.iter().any(|t| t.view(id).is_some())
    }

    fn choice_id_used(&self, id: &ChoiceId) -> bool {
        self.tables.iter().flat_map(|t| &t.fields).any(|f| {
            f.field_type
                .choices()
                .is_some_and(|cs| cs.iter().any(|c| &c.id == id))
        })
    }
}

/// What can be asked of a base.
#[derive(Clone, Debug, PartialEq)]
pub enum BaseCommand {
    /// Create the base (no tables yet).
    CreateBase {
        /// The new base's id.
        id: BaseId,
        /// Its workspace.
        workspace_id: WorkspaceId,
        /// Its name.
        name: String,
        /// Who asks.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Rename the base.
    RenameBase {
        /// The new name.
        name: String,
        /// Who asks.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Delete the base (it can be restored).
    DeleteBase {
        /// Who asks.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Restore a deleted base.
    RestoreBase {
        /// Who asks.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Create a table with its fields and its default grid view.
    CreateTable {
        /// The new table's id.
        table_id: TableId,
        /// Its name.
        name: String,
        /// Its description.
        description: Option<String>,
        /// Its fields (at least one). Link fields name their inverse field's id in
        /// `inverse_link_field_id`; that field is created in the linked table.
        fields: Vec<FieldDef>,
        /// The primary field; the first field when `None`.
        primary_field_id: Option<FieldId>,
        /// The id of the default grid view.
        default_view_id: ViewId,
        /// Who asks.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Rename a table and/or change its description.
    UpdateTable {
        /// The table.
        table_id: TableId,
        /// A new name.
        name: Option<String>,
        /// A new description (`Some(None)` clears it).
        description: Option<Option<String>>,
        /// Who asks.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Delete a table, and every link field of other tables that points to it.
    DeleteTable {
        /// The table.
        table_id: TableId,
        /// Who asks.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Add a field; a link field with an inverse id also creates the inverse field.
    AddField {
        /// The table.
        table_id: TableId,
        /// The new field.
        field: FieldDef,
        /// Who asks.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Rename a field, change its description or its type.
    UpdateField {
        /// The table.
        table_id: TableId,
        /// The field.
        field_id: FieldId,
        /// A new name.
        name: Option<String>,
        /// A new description (`Some(None)` clears it).
        description: Option<Option<String>>,
        /// A new type with its options.
        field_type: Option<FieldType>,
        /// Accept a type change that loses data.
        allow_lossy: bool,
        /// Who asks.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Delete a field (never the primary one); a link field takes its inverse with it.
    DeleteField {
        /// The table.
        table_id: TableId,
        /// The field.
        field_id: FieldId,
        /// Who asks.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Make another field the primary one.
    SetPrimaryField {
        /// The table.
        table_id: TableId,
        /// The field.
        field_id: FieldId,
        /// Who asks.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Add select choices (typecast created them); names already present are skipped.
    AddChoices {
        /// The table.
        table_id: TableId,
        /// The select field.
        field_id: FieldId,
        /// The new choices with their ids.
        choices: Vec<Choice>,
        /// Who asks.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Create a (non-default) grid view.
    CreateView {
        /// The new view's id.
        view_id: ViewId,
        /// The table.
        table_id: TableId,
        /// Its name.
        name: String,
        /// Its filter formula.
        filter_formula: Option<String>,
        /// Its sort order.
        sorts: Vec<Sort>,
        /// Its visible fields; `None` shows all.
        visible_field_ids: Option<Vec<FieldId>>,
        /// Who asks.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Change a view.
    UpdateView {
        /// The table.
        table_id: TableId,
        /// The view.
        view_id: ViewId,
        /// A new name.
        name: Option<String>,
        /// A new filter (`Some(None)` removes it).
        filter_formula: Option<Option<String>>,
        /// A new sort order.
        sorts: Option<Vec<Sort>>,
        /// New visible fields (`Some(None)` shows all).
        visible_field_ids: Option<Option<Vec<FieldId>>>,
        /// Who asks.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Delete a view (never the default one).
    DeleteView {
        /// The table.
        table_id: TableId,
        /// The view.
        view_id: ViewId,
        /// Who asks.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
}

/// What happened to a base.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum BaseEvent {
    /// The base was created.
    BaseCreated {
        /// Its id.
        id: BaseId,
        /// Its workspace (the command layer finds the base's workspace here).
        workspace_id: WorkspaceId,
        /// Its name.
        name: String,
        /// Who created it.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// The base was renamed.
    BaseRenamed {
        /// The new name.
        name: String,
        /// Who.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// The base was deleted.
    BaseDeleted {
        /// Who.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// The base was restored.
    BaseRestored {
        /// Who.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// A table was created with its fields and default view.
    TableCreated {
        /// The table, complete.
        table: TableSchema,
        /// Who.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// A table's name or description changed (both carry their new values).
    TableUpdated {
        /// The table.
        table_id: TableId,
        /// Its name now.
        name: String,
        /// Its description now.
        description: Option<String>,
        /// Who.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// A table was deleted.
    TableDeleted {
        /// The table.
        table_id: TableId,
        /// Who.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// A field was created (possibly as the inverse of a new link field).
    FieldCreated {
        /// The table.
        table_id: TableId,
        /// The field.
        field: FieldDef,
        /// Who.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// A field changed; `field` is its new definition.
    FieldUpdated {
        /// The table.
        table_id: TableId,
        /// The field now.
        field: FieldDef,
        /// How its type changed (`lossless` when only the name or description did); read models
        /// convert cells with `fields::convert_cell` when it is not.
        conversion: Conversion,
        /// The type it had before, when the type changed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_type: Option<FieldType>,
        /// Who.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// A field was deleted.
    FieldDeleted {
        /// The table.
        table_id: TableId,
        /// The field.
        field_id: FieldId,
        /// Who.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Another field became the primary one.
    PrimaryFieldSet {
        /// The table.
        table_id: TableId,
        /// The new primary field.
        field_id: FieldId,
        /// Who.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Choices were appended to a select field.
    ChoicesAdded {
        /// The table.
        table_id: TableId,
        /// The field.
        field_id: FieldId,
        /// The new choices.
        choices: Vec<Choice>,
        /// Who.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// A view was created.
    ViewCreated {
        /// The table.
        table_id: TableId,
        /// The view.
        view: ViewDef,
        /// Who.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// A view changed; `view` is its new definition.
    ViewUpdated {
        /// The table.
        table_id: TableId,
        /// The view now.
        view: ViewDef,
        /// Who.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// A view was deleted.
    ViewDeleted {
        /// The table.
        table_id: TableId,
        /// The view.
        view_id: ViewId,
        /// Who.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for BaseEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::BaseCreated { .. } => "BaseCreated",
            Self::BaseRenamed { .. } => "BaseRenamed",
            Self::BaseDeleted { .. } => "BaseDeleted",
            Self::BaseRestored { .. } => "BaseRestored",
            Self::TableCreated { .. } => "TableCreated",
            Self::TableUpdated { .. } => "TableUpdated",
            Self::TableDeleted { .. } => "TableDeleted",
            Self::FieldCreated { .. } => "FieldCreated",
            Self::FieldUpdated { .. } => "FieldUpdated",
            Self::FieldDeleted { .. } => "FieldDeleted",
            Self::PrimaryFieldSet { .. } => "PrimaryFieldSet",
            Self::ChoicesAdded { .. } => "ChoicesAdded",
            Self::ViewCreated { .. } => "ViewCreated",
            Self::ViewUpdated { .. } => "ViewUpdated",
            Self::ViewDeleted { .. } => "ViewDeleted",
        }
    }
}

/// Which kind of thing a name or id belongs to, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Subject {
    /// A base.
    Base,
    /// A table.
    Table,
    /// A field.
    Field,
    /// A view.
    View,
    /// A select choice.
    Choice,
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Base => "base",
            Self::Table => "table",
            Self::Field => "field",
            Self::View => "view",
            Self::Choice => "choice",
        })
    }
}

/// Why a base command was rejected.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BaseError {
    /// The base does not exist yet.
    #[error("the base does not exist")]
    NotCreated,
    /// The base exists already.
    #[error("base {0} already exists")]
    AlreadyCreated(BaseId),
    /// The base is deleted; only `RestoreBase` is accepted.
    #[error("base {0} is deleted; restore it first")]
    Deleted(BaseId),
    /// `RestoreBase` on a base that is not deleted.
    #[error("base {0} is not deleted")]
    NotDeleted(BaseId),
    /// A name that is empty, too long or has surrounding blanks removed to nothing.
    #[error("{subject} name {value:?} is invalid: {reason}")]
    InvalidName {
        /// What is being named.
        subject: Subject,
        /// The name given (cut to 300 characters).
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// Another table of the base has this name (case-insensitively).
    #[error("the base already has a table named {name:?}")]
    DuplicateTableName {
        /// The name.
        name: String,
    },
    /// Another field of the table has this name (case-insensitively).
    #[error("table {table_id} already has a field named {name:?}")]
    DuplicateFieldName {
        /// The table.
        table_id: TableId,
        /// The name.
        name: String,
    },
    /// Another view of the table has this name (case-insensitively).
    #[error("table {table_id} already has a view named {name:?}")]
    DuplicateViewName {
        /// The table.
        table_id: TableId,
        /// The name.
        name: String,
    },
    /// An id given for a new table, field, view or choice is already in use.
    #[error("{subject} id {id} is already in use")]
    DuplicateId {
        /// What kind of id.
        subject: Subject,
        /// The id.
        id: String,
    },
    /// No such table.
    #[error("table {0} does not exist in this base")]
    TableNotFound(TableId),
    /// No such field in the table.
    #[error("field {field_id} does not exist in table {table_id}")]
    FieldNotFound {
        /// The table.
        table_id: TableId,
        /// The field.
        field_id: FieldId,
    },
    /// No such view in the table.
    #[error("view {view_id} does not exist in table {table_id}")]
    ViewNotFound {
        /// The table.
        table_id: TableId,
        /// The view.
        view_id: ViewId,
    },
    /// A table needs at least one field.
    #[error("a table needs at least one field")]
    NoFields,
    /// The primary field's type cannot be primary.
    #[error(
        "field {field_id} cannot be the primary field: type {field_type} is not allowed as primary"
    )]
    InvalidPrimaryFieldType {
        /// The field.
        field_id: FieldId,
        /// Its type name.
        field_type: &'static str,
    },
    /// The primary field cannot be deleted.
    #[error("field {0} is the table's primary field and cannot be deleted")]
    PrimaryFieldNotDeletable(FieldId),
    /// The default grid view cannot be deleted.
    #[error("view {0} is the table's default view and cannot be deleted")]
    DefaultViewNotDeletable(ViewId),
    /// The last table of a base cannot be deleted.
    #[error("table {0} is the base's last table and cannot be deleted")]
    LastTable(TableId),
    /// A field's options are out of range.
    #[error("field {field_name:?} has invalid options: {reason}")]
    InvalidFieldOptions {
        /// The field's name.
        field_name: String,
        /// What is wrong.
        reason: String,
    },
    /// A link field points to a table that is not in this base.
    #[error("field {field_name:?} links to table {table_id}, which is not in this base")]
    LinkTargetNotFound {
        /// The link field's name.
        field_name: String,
        /// The missing table.
        table_id: TableId,
    },
    /// A type change would lose data and `allow_lossy` was not set.
    #[error(
        "changing field {field_id} from {from} to {to} may lose data; set allow_lossy to accept"
    )]
    LossyConversion {
        /// The field.
        field_id: FieldId,
        /// The old type.
        from: &'static str,
        /// The new type.
        to: &'static str,
    },
    /// A type change that is not supported.
    #[error("field {field_id} cannot be changed from {from} to {to}")]
    ImpossibleConversion {
        /// The field.
        field_id: FieldId,
        /// The old type.
        from: &'static str,
        /// The new type.
        to: &'static str,
    },
    /// `AddChoices` on a field that is not a select.
    #[error("field {0} is not a select field")]
    NotASelectField(FieldId),
}

/// Checks and trims a name.
fn clean_name(subject: Subject, name: &str) -> Result<String, BaseError> {
    let invalid = |reason| BaseError::InvalidName {
        subject,
        value: name.chars().take(300).collect(),
        reason,
    };
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(invalid("it is empty"));
    }
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return Err(invalid("it is longer than 255 characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(invalid("it contains control characters"));
    }
    Ok(trimmed.to_owned())
}

fn check_options(field: &FieldDef) -> Result<(), BaseError> {
    field
        .field_type
        .check_options()
        .map_err(|reason| BaseError::InvalidFieldOptions {
            field_name: field.name.clone(),
            reason,
        })
}

/// A name not taken among `taken` (lower-cased): `name`, then `name 2`, `name 3`, ...
fn free_name(name: &str, taken: &[String]) -> String {
    let is_free = |n: &str| !taken.contains(&n.to_lowercase());
    if is_free(name) {
        return name.to_owned();
    }
    (2u32..)
        .map(|i| format!("{name} {i}"))
        .find(|n| is_free(n))
        .unwrap_or_else(|| name.to_owned())
}

/// New fields for a table, and the inverse link fields they create as `(table, field)` pairs.
type NewFields = (Vec<FieldDef>, Vec<(TableId, FieldDef)>);

impl Base {
    fn live_id(&self) -> Result<&BaseId, BaseError> {
        match &self.id {
            None => Err(BaseError::NotCreated),
            Some(id) if self.deleted => Err(BaseError::Deleted(id.clone())),
            Some(id) => Ok(id),
        }
    }

    fn existing_table(&self, id: &TableId) -> Result<&TableSchema, BaseError> {
        self.table(id)
            .ok_or_else(|| BaseError::TableNotFound(id.clone()))
    }

    fn existing_field<'a>(table: &'a TableSchema, id: &FieldId) -> Result<&'a FieldDef, BaseError> {
        table.field(id).ok_or_else(|| BaseError::FieldNotFound {
            table_id: table.id.clone(),
            field_id: id.clone(),
        })
    }

    /// A lookup, rollup or count follows a link field of its own table (`own`, the table's
    /// fields so far); a lookup or rollup reads a field of the table that link points to.
    /// Both must exist when the field is defined, so a reader never has to guess.
    fn check_link_references(
        &self,
        table_id: &TableId,
        own: &[&FieldDef],
        field: &FieldDef,
    ) -> Result<(), BaseError> {
        let (link_id, target) = match &field.field_type {
            FieldType::MultipleLookupValues(o) => {
                (&o.record_link_field_id, Some(&o.field_id_in_linked_table))
            }
            FieldType::Rollup(o) => (&o.record_link_field_id, Some(&o.field_id_in_linked_table)),
            FieldType::Count(o) => (&o.record_link_field_id, None),
            _ => return Ok(()),
        };
        let invalid = |reason: String| BaseError::InvalidFieldOptions {
            field_name: field.name.clone(),
            reason,
        };
        let link = own
            .iter()
            .find(|f| &f.id == link_id)
            .ok_or_else(|| {
                invalid(format!(
                    "recordLinkFieldId {link_id} is not a field of this table"
                ))
            })?
            .field_type
            .link()
            .ok_or_else(|| {
                invalid(format!(
                    "recordLinkFieldId {link_id} is not a multipleRecordLinks field"
                ))
            })?;
        let Some(target) = target else {
            return Ok(());
        };
        let found = if &link.linked_table_id == table_id {
            own.iter().any(|f| &f.id == target)
        } else {
            self.table(&link.linked_table_id)
                .is_some_and(|t| t.field(target).is_some())
        };
        if found {
            Ok(())
        } else {
            Err(invalid(format!(
                "fieldIdInLinkedTable {target} is not a field of the linked table {}",
                link.linked_table_id
            )))
        }
    }

    /// Validates new fields for table `table_id` (which may be about to be created, holding
    /// `existing` fields so far) and returns them with trimmed names, plus the inverse fields
    /// their links create, as `(table, field)` pairs.
    fn new_fields(
        &self,
        table_id: &TableId,
        table_name: &str,
        existing: &[FieldDef],
        fields: &[FieldDef],
    ) -> Result<NewFields, BaseError> {
        let mut accepted: Vec<FieldDef> = Vec::with_capacity(fields.len());
        let mut inverses: Vec<(TableId, FieldDef)> = Vec::new();
        let mut new_ids: Vec<FieldId> = Vec::new();
        let mut new_choice_ids: Vec<ChoiceId> = Vec::new();
        let mut claim = |id: &FieldId| -> Result<(), BaseError> {
            if self.field_id_used(id) || new_ids.contains(id) {
                return Err(BaseError::DuplicateId {
                    subject: Subject::Field,
                    id: id.to_string(),
                });
            }
            new_ids.push(id.clone());
            Ok(())
        };
        for f in fields {
            let name = clean_name(Subject::Field, &f.name)?;
            claim(&f.id)?;
            let lower = name.to_lowercase();
            if existing
                .iter()
                .chain(&accepted)
                .chain(
                    inverses
                        .iter()
                        .filter(|(t, _)| t == table_id)
                        .map(|(_, f)| f),
                )
                .any(|g| g.name.to_lowercase() == lower)
            {
                return Err(BaseError::DuplicateFieldName {
                    table_id: table_id.clone(),
                    name,
                });
            }
            check_options(f)?;
            let own: Vec<&FieldDef> = existing.iter().chain(&accepted).collect();
            self.check_link_references(table_id, &own, f)?;
            for c in f.field_type.choices().unwrap_or(&[]) {
                if self.choice_id_used(&c.id) || new_choice_ids.contains(&c.id) {
                    return Err(BaseError::DuplicateId {
                        subject: Subject::Choice,
                        id: c.id.to_string(),
                    });
                }
                new_choice_ids.push(c.id.clone());
            }
            let mut field = f.clone();
            field.name = name;
            if let Some(link) = f.field_type.link() {
                let self_link = &link.linked_table_id == table_id;
                let target = if self_link {
                    None
                } else {
                    Some(self.table(&link.linked_table_id).ok_or_else(|| {
                        BaseError::LinkTargetNotFound {
                            field_name: field.name.clone(),
                            table_id: link.linked_table_id.clone(),
                        }
                    })?)
                };
                if let Some(inverse_id) = &link.inverse_link_field_id {
                    claim(inverse_id)?;
                    // The inverse is named after the table it links back to, like Airtable.
                    let mut taken: Vec<String> = match target {
                        Some(t) => t.fields.iter().map(|g| g.name.to_lowercase()).collect(),
                        None => existing
                            .iter()
                            .chain(&accepted)
                            .map(|g| g.name.to_lowercase())
                            .collect(),
                    };
                    taken.push(field.name.to_lowercase());
                    taken.extend(
                        inverses
                            .iter()
                            .filter(|(t, _)| t == &link.linked_table_id)
                            .map(|(_, g)| g.name.to_lowercase()),
                    );
                    let inverse = FieldDef {
                        id: inverse_id.clone(),
                        name: free_name(table_name, &taken),
                        description: None,
                        field_type: FieldType::MultipleRecordLinks(LinkOptions {
                            linked_table_id: table_id.clone(),
                            inverse_link_field_id: Some(field.id.clone()),
                            prefers_single_record_link: false,
                        }),
                    };
                    inverses.push((link.linked_table_id.clone(), inverse));
                }
            }
            accepted.push(field);
        }
        Ok((accepted, inverses))
    }

    fn decide(&self, command: &BaseCommand) -> Result<Vec<BaseEvent>, BaseError> {
        use BaseCommand as C;
        use BaseEvent as E;
        match command {
            C::CreateBase {
                id,
                workspace_id,
                name,
                by,
                at,
            } => {
                if let Some(existing) = &self.id {
                    return Err(BaseError::AlreadyCreated(existing.clone()));
                }
                Ok(vec![E::BaseCreated {
                    id: id.clone(),
                    workspace_id: workspace_id.clone(),
                    name: clean_name(Subject::Base, name)?,
                    by: by.clone(),
                    at: *at,
                }])
            }
            C::RestoreBase { by, at } => match &self.id {
                None => Err(BaseError::NotCreated),
                Some(id) if !self.deleted => Err(BaseError::NotDeleted(id.clone())),
                Some(_) => Ok(vec![E::BaseRestored {
                    by: by.clone(),
                    at: *at,
                }]),
            },
            other => {
                self.live_id()?;
                self.decide_live(other)
            }
        }
    }

    #[allow(clippy::too_many_lines)] // one arm per command reads better than a split
    fn decide_live(&self, command: &BaseCommand) -> Result<Vec<BaseEvent>, BaseError> {
        use BaseCommand as C;
        use BaseEvent as E;
        match command {
            C::CreateBase { .. } | C::RestoreBase { .. } => self.decide(command),
            C::RenameBase { name, by, at } => {
                let name = clean_name(Subject::Base, name)?;
                if name == self.name {
                    return Ok(vec![]);
                }
                Ok(vec![E::BaseRenamed {
                    name,
                    by: by.clone(),
                    at: *at,
                }])
            }
            C::DeleteBase { by, at } => Ok(vec![E::BaseDeleted {
                by: by.clone(),
                at: *at,
            }]),
            C::CreateTable {
                table_id,
                name,
                description,
                fields,
                primary_field_id,
                default_view_id,
                by,
                at,
            } => {
                let name = clean_name(Subject::Table, name)?;
                if self.table(table_id).is_some() {
                    return Err(BaseError::DuplicateId {
                        subject: Subject::Table,
                        id: table_id.to_string(),
                    });
                }
                let lower = name.to_lowercase();
                if self.tables.iter().any(|t| t.name.to_lowercase() == lower) {
                    return Err(BaseError::DuplicateTableName { name });
                }
                if self.view_id_used(default_view_id) {
                    return Err(BaseError::DuplicateId {
                        subject: Subject::View,
                        id: default_view_id.to_string(),
                    });
                }
                if fields.is_empty() {
                    return Err(BaseError::NoFields);
                }
                let (fields, inverses) = self.new_fields(table_id, &name, &[], fields)?;
                let primary = match primary_field_id {
                    Some(id) => fields.iter().find(|f| &f.id == id).ok_or_else(|| {
                        BaseError::FieldNotFound {
                            table_id: table_id.clone(),
                            field_id: id.clone(),
                        }
                    })?,
                    None => &fields[0],
                };
                if !primary.field_type.can_be_primary() {
                    return Err(BaseError::InvalidPrimaryFieldType {
                        field_id: primary.id.clone(),
                        field_type: primary.field_type.type_name(),
                    });
                }
                let primary_field_id = primary.id.clone();
                // Inverses of self-links belong to the new table itself: put them in its field
                // list so TableCreated describes the table completely.
                let (own, others): (Vec<_>, Vec<_>) =
                    inverses.into_iter().partition(|(t, _)| t == table_id);
                let mut fields = fields;
                fields.extend(own.into_iter().map(|(_, f)| f));
                let table = TableSchema {
                    id: table_id.clone(),
                    name,
                    description: description
                        .as_deref()
                        .map(str::trim)
                        .filter(|d| !d.is_empty())
                        .map(str::to_owned),
                    primary_field_id,
                    fields,
                    views: vec![ViewDef {
                        id: default_view_id.clone(),
                        name: "Grid view".to_owned(),
                        is_default: true,
                        filter_formula: None,
                        sorts: Vec::new(),
                        visible_field_ids: None,
                    }],
                };
                let mut events = vec![E::TableCreated {
                    table,
                    by: by.clone(),
                    at: *at,
                }];
                events.extend(others.into_iter().map(|(t, field)| E::FieldCreated {
                    table_id: t,
                    field,
                    by: by.clone(),
                    at: *at,
                }));
                Ok(events)
            }
            C::UpdateTable {
                table_id,
                name,
                description,
                by,
                at,
            } => {
                let table = self.existing_table(table_id)?;
                let new_name = match name {
                    Some(n) => {
                        let n = clean_name(Subject::Table, n)?;
                        let lower = n.to_lowercase();
                        if self
                            .tables
                            .iter()
                            .any(|t| &t.id != table_id && t.name.to_lowercase() == lower)
                        {
                            return Err(BaseError::DuplicateTableName { name: n });
                        }
                        n
                    }
                    None => table.name.clone(),
                };
                let new_description = match description {
                    Some(d) => d
                        .as_deref()
                        .map(str::trim)
                        .filter(|d| !d.is_empty())
                        .map(str::to_owned),
                    None => table.description.clone(),
                };
                if new_name == table.name && new_description == table.description {
                    return Ok(vec![]);
                }
                Ok(vec![E::TableUpdated {
                    table_id: table_id.clone(),
                    name: new_name,
                    description: new_description,
                    by: by.clone(),
                    at: *at,
                }])
            }
            C::DeleteTable { table_id, by, at } => {
                self.existing_table(table_id)?;
                if self.tables.len() == 1 {
                    return Err(BaseError::LastTable(table_id.clone()));
                }
                // Link fields of other tables that point here lose their target: delete them
                // first so no remaining field refers to a missing table.
                let mut events: Vec<BaseEvent> = self
                    .tables
                    .iter()
                    .filter(|t| &t.id != table_id)
                    .flat_map(|t| {
                        t.fields
                            .iter()
                            .filter(|f| {
                                f.field_type
                                    .link()
                                    .is_some_and(|l| &l.linked_table_id == table_id)
                            })
                            .map(|f| E::FieldDeleted {
                                table_id: t.id.clone(),
                                field_id: f.id.clone(),
                                by: by.clone(),
                                at: *at,
                            })
                    })
                    .collect();
                events.push(E::TableDeleted {
                    table_id: table_id.clone(),
                    by: by.clone(),
                    at: *at,
                });
                Ok(events)
            }
            C::AddField {
                table_id,
                field,
                by,
                at,
            } => {
                let table = self.existing_table(table_id)?;
                let (fields, inverses) = self.new_fields(
                    table_id,
                    &table.name,
                    &table.fields,
                    std::slice::from_ref(field),
                )?;
                let mut events: Vec<BaseEvent> = fields
                    .into_iter()
                    .map(|f| E::FieldCreated {
                        table_id: table_id.clone(),
                        field: f,
                        by: by.clone(),
                        at: *at,
                    })
                    .collect();
                events.extend(inverses.into_iter().map(|(t, f)| E::FieldCreated {
                    table_id: t,
                    field: f,
                    by: by.clone(),
                    at: *at,
                }));
                Ok(events)
            }
            C::UpdateField {
                table_id,
                field_id,
                name,
                description,
                field_type,
                allow_lossy,
                by,
                at,
            } => {
                let table = self.existing_table(table_id)?;
                let current = Self::existing_field(table, field_id)?;
                let mut next = current.clone();
                if let Some(n) = name {
                    let n = clean_name(Subject::Field, n)?;
                    if table.field_name_taken(&n, Some(field_id)) {
                        return Err(BaseError::DuplicateFieldName {
                            table_id: table_id.clone(),
                            name: n,
                        });
                    }
                    next.name = n;
                }
                if let Some(d) = description {
                    next.description = d
                        .as_deref()
                        .map(str::trim)
                        .filter(|d| !d.is_empty())
                        .map(str::to_owned);
                }
                let mut conv = Conversion::Lossless;
                let mut previous_type = None;
                if let Some(t) = field_type
                    && t != &current.field_type
                {
                    next.field_type = t.clone();
                    check_options(&next)?;
                    let own: Vec<&FieldDef> = table.fields.iter().collect();
                    self.check_link_references(table_id, &own, &next)?;
                    if let Some(cs) = t.choices() {
                        for c in cs {
                            let known = current
                                .field_type
                                .choices()
                                .is_some_and(|old| old.iter().any(|o| o.id == c.id));
                            if !known && self.choice_id_used(&c.id) {
                                return Err(BaseError::DuplicateId {
                                    subject: Subject::Choice,
                                    id: c.id.to_string(),
                                });
                            }
                        }
                    }
                    if field_id == &table.primary_field_id && !t.can_be_primary() {
                        return Err(BaseError::InvalidPrimaryFieldType {
                            field_id: field_id.clone(),
                            field_type: t.type_name(),
                        });
                    }
                    conv = conversion(&current.field_type, t);
                    let (from, to) = (current.field_type.type_name(), t.type_name());
                    match conv {
                        Conversion::Impossible => {
                            return Err(BaseError::ImpossibleConversion {
                                field_id: field_id.clone(),
                                from,
                                to,
                            });
                        }
                        Conversion::Lossy if !allow_lossy => {
                            return Err(BaseError::LossyConversion {
                                field_id: field_id.clone(),
                                from,
                                to,
                            });
                        }
                        _ => {}
                    }
                    previous_type = Some(current.field_type.clone());
                }
                if &next == current {
                    return Ok(vec![]);
                }
                Ok(vec![E::FieldUpdated {
                    table_id: table_id.clone(),
                    field: next,
                    conversion: conv,
                    previous_type,
                    by: by.clone(),
                    at: *at,
                }])
            }
            C::DeleteField {
                table_id,
                field_id,
                by,
                at,
            } => {
                let table = self.existing_table(table_id)?;
                let field = Self::existing_field(table, field_id)?;
                if &table.primary_field_id == field_id {
                    return Err(BaseError::PrimaryFieldNotDeletable(field_id.clone()));
                }
                let mut events = vec![E::FieldDeleted {
                    table_id: table_id.clone(),
                    field_id: field_id.clone(),
                    by: by.clone(),
                    at: *at,
                }];
                if let Some(link) = field.field_type.link()
                    && let Some(inverse) = &link.inverse_link_field_id
                    && self
                        .table(&link.linked_table_id)
                        .is_some_and(|t| t.field(inverse).is_some())
                    && inverse != field_id
                {
                    events.push(E::FieldDeleted {
                        table_id: link.linked_table_id.clone(),
                        field_id: inverse.clone(),
                        by: by.clone(),
                        at: *at,
                    });
                }
                Ok(events)
            }
            C::SetPrimaryField {
                table_id,
                field_id,
                by,
                at,
            } => {
                let table = self.existing_table(table_id)?;
                let field = Self::existing_field(table, field_id)?;
                if !field.field_type.can_be_primary() {
                    return Err(BaseError::InvalidPrimaryFieldType {
                        field_id: field_id.clone(),
                        field_type: field.field_type.type_name(),
                    });
                }
                if &table.primary_field_id == field_id {
                    return Ok(vec![]);
                }
                Ok(vec![E::PrimaryFieldSet {
                    table_id: table_id.clone(),
                    field_id: field_id.clone(),
                    by: by.clone(),
                    at: *at,
                }])
            }
            C::AddChoices {
                table_id,
                field_id,
                choices,
                by,
                at,
            } => {
                let table = self.existing_table(table_id)?;
                let field = Self::existing_field(table, field_id)?;
                let existing = field
                    .field_type
                    .choices()
                    .ok_or_else(|| BaseError::NotASelectField(field_id.clone()))?;
                // A concurrent typecast may have added the same name first: skip it rather
                // than fail, so retries after a conflict converge.
                let mut fresh: Vec<Choice> = Vec::new();
                for c in choices {
                    let name = clean_name(Subject::Choice, &c.name)?;
                    if existing.iter().chain(&fresh).any(|e| e.name == name) {
                        continue;
                    }
                    if self.choice_id_used(&c.id) || fresh.iter().any(|f| f.id == c.id) {
                        return Err(BaseError::DuplicateId {
                            subject: Subject::Choice,
                            id: c.id.to_string(),
                        });
                    }
                    fresh.push(Choice { name, ..c.clone() });
                }
                check_choices(&fresh).map_err(|reason| BaseError::InvalidFieldOptions {
                    field_name: field.name.clone(),
                    reason,
                })?;
                if fresh.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![E::ChoicesAdded {
                    table_id: table_id.clone(),
                    field_id: field_id.clone(),
                    choices: fresh,
                    by: by.clone(),
                    at: *at,
                }])
            }
            C::CreateView {
                view_id,
                table_id,
                name,
                filter_formula,
                sorts,
                visible_field_ids,
                by,
                at,
            } => {
                let table = self.existing_table(table_id)?;
                if self.view_id_used(view_id) {
                    return Err(BaseError::DuplicateId {
                        subject: Subject::View,
                        id: view_id.to_string(),
                    });
                }
                let name = Self::view_name(table, name, None)?;
                Self::check_view_fields(table, sorts, visible_field_ids.as_deref())?;
                Ok(vec![E::ViewCreated {
                    table_id: table_id.clone(),
                    view: ViewDef {
                        id: view_id.clone(),
                        name,
                        is_default: false,
                        filter_formula: clean_formula(filter_formula.as_deref()),
                        sorts: sorts.clone(),
                        visible_field_ids: visible_field_ids.clone(),
                    },
                    by: by.clone(),
                    at: *at,
                }])
            }
            C::UpdateView {
                table_id,
                view_id,
                name,
                filter_formula,
                sorts,
                visible_field_ids,
                by,
                at,
            } => {
                let table = self.existing_table(table_id)?;
                let current = table.view(view_id).ok_or_else(|| BaseError::ViewNotFound {
                    table_id: table_id.clone(),
                    view_id: view_id.clone(),
                })?;
                let mut next = current.clone();
                if let Some(n) = name {
                    next.name = Self::view_name(table, n, Some(view_id))?;
                }
                if let Some(f) = filter_formula {
                    next.filter_formula = clean_formula(f.as_deref());
                }
                if let Some(s) = sorts {
                    next.sorts = s.clone();
                }
                if let Some(v) = visible_field_ids {
                    next.visible_field_ids = v.clone();
                }
                Self::check_view_fields(table, &next.sorts, next.visible_field_ids.as_deref())?;
                if &next == current {
                    return Ok(vec![]);
                }
                Ok(vec![E::ViewUpdated {
                    table_id: table_id.clone(),
                    view: next,
                    by: by.clone(),
                    at: *at,
                }])
            }
            C::DeleteView {
                table_id,
                view_id,
                by,
                at,
            } => {
                let table = self.existing_table(table_id)?;
                let view = table.view(view_id).ok_or_else(|| BaseError::ViewNotFound {
                    table_id: table_id.clone(),
                    view_id: view_id.clone(),
                })?;
                if view.is_default {
                    return Err(BaseError::DefaultViewNotDeletable(view_id.clone()));
                }
                Ok(vec![E::ViewDeleted {
                    table_id: table_id.clone(),
                    view_id: view_id.clone(),
                    by: by.clone(),
                    at: *at,
                }])
            }
        }
    }

    fn view_name(
        table: &TableSchema,
        name: &str,
        except: Option<&ViewId>,
    ) -> Result<String, BaseError> {
        let name = clean_name(Subject::View, name)?;
        let lower = name.to_lowercase();
        if table
            .views
            .iter()
            .any(|v| Some(&v.id) != except && v.name.to_lowercase() == lower)
        {
            return Err(BaseError::DuplicateViewName {
                table_id: table.id.clone(),
                name,
            });
        }
        Ok(name)
    }

    fn check_view_fields(
        table: &TableSchema,
        sorts: &[Sort],
        visible: Option<&[FieldId]>,
    ) -> Result<(), BaseError> {
        for id in sorts
            .iter()
            .map(|s| &s.field_id)
            .chain(visible.unwrap_or(&[]))
        {
            Self::existing_field(table, id)?;
        }
        Ok(())
    }
}

fn clean_formula(f: Option<&str>) -> Option<String> {
    f.map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
}

impl Aggregate for Base {
    type Command = BaseCommand;
    type Event = BaseEvent;
    type Error = BaseError;
    const KIND: &'static str = "base";

    fn handle(&self, command: &BaseCommand) -> Result<Vec<BaseEvent>, BaseError> {
        self.decide(command)
    }

    fn apply(&mut self, event: &BaseEvent) {
        use BaseEvent as E;
        match event {
            E::BaseCreated {
                id,
                workspace_id,
                name,
                ..
            } => {
                self.id = Some(id.clone());
                self.workspace_id = Some(workspace_id.clone());
                self.name = name.clone();
            }
            E::BaseRenamed { name, .. } => self.name = name.clone(),
            E::BaseDeleted { .. } => self.deleted = true,
            E::BaseRestored { .. } => self.deleted = false,
            E::TableCreated { table, .. } => self.tables.push(table.clone()),
            E::TableUpdated {
                table_id,
                name,
                description,
                ..
            } => {
                if let Some(t) = self.table_mut(table_id) {
                    t.name = name.clone();
                    t.description = description.clone();
                }
            }
            E::TableDeleted { table_id, .. } => self.tables.retain(|t| &t.id != table_id),
            E::FieldCreated {
                table_id, field, ..
            } => {
                if let Some(t) = self.table_mut(table_id) {
                    t.fields.push(field.clone());
                    for v in &mut t.views {
                        if let Some(ids) = &mut v.visible_field_ids {
                            ids.push(field.id.clone());
                        }
                    }
                }
            }
            E::FieldUpdated {
                table_id, field, ..
            } => {
                if let Some(t) = self.table_mut(table_id)
                    && let Some(f) = t.fields.iter_mut().find(|f| f.id == field.id)
                {
                    *f = field.clone();
                }
            }
            E::FieldDeleted {
                table_id, field_id, ..
            } => {
                if let Some(t) = self.table_mut(table_id) {
                    t.fields.retain(|f| &f.id != field_id);
                    for v in &mut t.views {
                        v.sorts.retain(|s| &s.field_id != field_id);
                        if let Some(ids) = &mut v.visible_field_ids {
                            ids.retain(|id| id != field_id);
                        }
                    }
                }
            }
            E::PrimaryFieldSet {
                table_id, field_id, ..
            } => {
                if let Some(t) = self.table_mut(table_id) {
                    t.primary_field_id = field_id.clone();
                }
            }
            E::ChoicesAdded {
                table_id,
                field_id,
                choices,
                ..
            } => {
                if let Some(t) = self.table_mut(table_id)
                    && let Some(f) = t.fields.iter_mut().find(|f| &f.id == field_id)
                    && let FieldType::SingleSelect(o) | FieldType::MultipleSelects(o) =
                        &mut f.field_type
                {
                    o.choices.extend(choices.iter().cloned());
                }
            }
            E::ViewCreated { table_id, view, .. } => {
                if let Some(t) = self.table_mut(table_id) {
                    t.views.push(view.clone());
                }
            }
            E::ViewUpdated { table_id, view, .. } => {
                if let Some(t) = self.table_mut(table_id)
                    && let Some(v) = t.views.iter_mut().find(|v| v.id == view.id)
                {
                    *v = view.clone();
                }
            }
            E::ViewDeleted {
                table_id, view_id, ..
            } => {
                if let Some(t) = self.table_mut(table_id) {
                    t.views.retain(|v| &v.id != view_id);
                }
            }
        }
    }
}
