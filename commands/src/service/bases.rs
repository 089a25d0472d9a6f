//! Bases and their schema: tables, fields, views.

use pyairtable_domain::base::{Base, BaseCommand, Sort, TableSchema, ViewDef};
use pyairtable_domain::fields::{FieldDef, FieldType};
use pyairtable_domain::ids::{BaseId, FieldId, TableId, UserId, ViewId, WorkspaceId};
use pyairtable_domain::permissions::Action;
use pyairtable_domain::workspace::Workspace;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Platform, authorize_in, decide, load_existing};
use crate::auth::new_id;
use crate::context::CommandContext;
use crate::error::CommandError;
use crate::idempotency::Fingerprint;
use crate::runner::{Batch, BatchOutcome, Begin, Loaded};
use crate::service::Written;
use crate::service::users::written;

/// A field to create. Without an id, one is drawn; a link field names the id of its inverse
/// field (created in the linked table) in its options, or none for a one-way link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewField {
    /// Id to give the field (`None`: a fresh one).
    #[serde(default)]
    pub id: Option<FieldId>,
    /// Name, unique in the table (case-insensitive).
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Type and options.
    #[serde(flatten)]
    pub field_type: FieldType,
}

impl NewField {
    fn into_def(self) -> FieldDef {
        FieldDef {
            id: self.id.unwrap_or_else(new_id),
            name: self.name,
            description: self.description,
            field_type: self.field_type,
        }
    }
}

/// A table to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewTable {
    /// Name, unique in the base.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Its fields (at least one).
    pub fields: Vec<NewField>,
    /// The primary field (`None`: the first field).
    #[serde(default)]
    pub primary_field_id: Option<FieldId>,
}

/// Changes to a field; `None` leaves a property as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct FieldChange {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New description (`Some(None)` clears it).
    #[serde(default)]
    pub description: Option<Option<String>>,
    /// New type and options.
    #[serde(default)]
    pub field_type: Option<FieldType>,
    /// Accept a type change that may lose data.
    #[serde(default)]
    pub allow_lossy: bool,
}

/// A view to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewView {
    /// Name, unique in the table.
    pub name: String,
    /// Filter formula.
    #[serde(default)]
    pub filter_formula: Option<String>,
    /// Sorts, most significant first.
    #[serde(default)]
    pub sorts: Vec<Sort>,
    /// Visible fields, in order (`None`: all).
    #[serde(default)]
    pub visible_field_ids: Option<Vec<FieldId>>,
}

/// Changes to a view; `None` leaves a property as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ViewChange {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New filter (`Some(None)` removes it).
    #[serde(default)]
    pub filter_formula: Option<Option<String>>,
    /// New sorts.
    #[serde(default)]
    pub sorts: Option<Vec<Sort>>,
    /// New visible fields (`Some(None)`: all).
    #[serde(default)]
    pub visible_field_ids: Option<Option<Vec<FieldId>>>,
}

/// A created table with the ids it was given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedTable {
    /// The table as stored (fields with their ids, the default view).
    pub table: TableSchema,
    /// The base's stream version and the consistency token.
    pub written: Written<BaseId>,
}

/// The permission a schema command needs.
fn base_action(command: &BaseCommand) -> Action {
    match command {
        BaseCommand::CreateBase { .. } => Action::CreateBase,
        BaseCommand::RenameBase { .. } => Action::RenameBase,
        BaseCommand::DeleteBase { .. } => Action::DeleteBase,
        BaseCommand::RestoreBase { .. } => Action::RestoreBase,
        BaseCommand::CreateTable { .. } => Action::CreateTable,
        BaseCommand::UpdateTable { .. } => Action::RenameTable,
        BaseCommand::DeleteTable { .. } => Action::DeleteTable,
        BaseCommand::AddField { .. } => Action::AddField,
        BaseCommand::UpdateField { .. }
        | BaseCommand::SetPrimaryField { .. }
        | BaseCommand::AddChoices { .. } => Action::UpdateField,
        BaseCommand::DeleteField { .. } => Action::DeleteField,
        BaseCommand::CreateView { .. } => Action::CreateView,
        BaseCommand::UpdateView { .. } => Action::UpdateView,
        BaseCommand::DeleteView { .. } => Action::DeleteView,
    }
}

/// The user data commands are attributed to (`by` in base and record events).
pub(crate) fn data_actor(ctx: &CommandContext) -> Result<UserId, CommandError> {
    ctx.caller.user_id().cloned().ok_or_else(|| {
        CommandError::rejected(
            "missing_user",
            "base and record changes must be made by a user",
        )
    })
}

/// Loads a base that exists and the workspace it belongs to, and authorises `actions` there.
pub(crate) async fn load_base_for(
    batch: &mut Batch<'_>,
    ctx: &CommandContext,
    base_id: &BaseId,
    actions: &[Action],
) -> Result<(Loaded<Base>, WorkspaceId), CommandError> {
    let (base, workspace_id, _) = load_base_in_workspace(batch, ctx, base_id, actions).await?;
    Ok((base, workspace_id))
}

/// [`load_base_for`], also returning the workspace's state, for commands whose further
/// authorisation depends on what they load next (moderating a comment).
pub(crate) async fn load_base_in_workspace(
    batch: &mut Batch<'_>,
    ctx: &CommandContext,
    base_id: &BaseId,
    actions: &[Action],
) -> Result<(Loaded<Base>, WorkspaceId, Workspace), CommandError> {
    let base = load_existing::<Base>(batch, "base", base_id.as_str()).await?;
    let Some(workspace_id) = base.state.workspace_id.clone() else {
        return Err(CommandError::infra(
            "loading a base",
            format!("base {base_id} has no workspace"),
        ));
    };
    let workspace = batch.load::<Workspace>(workspace_id.as_str()).await?;
    authorize_in(
        ctx,
        &workspace.state,
        actions,
        Some(base_id),
        ("base", base_id.as_str()),
    )?;
    Ok((base, workspace_id, workspace.state))
}

impl Platform {
    /// Creates a base in a workspace (`CreateBase`: creators and owners).
    ///
    /// # Errors
    /// `NotFound` for an unknown workspace or a non-member, `Forbidden` for lower roles,
    /// `Rejected` for an invalid name.
    pub async fn create_base(
        &self,
        ctx: &CommandContext,
        workspace_id: &WorkspaceId,
        name: &str,
    ) -> Result<Written<BaseId>, CommandError> {
        let by = data_actor(ctx)?;
        let request = Fingerprint::new(
            "createBase",
            &json!({"workspaceId": workspace_id, "name": name}),
        )?;
        let base_id: BaseId = new_id();
        let command = BaseCommand::CreateBase {
            id: base_id.clone(),
            workspace_id: workspace_id.clone(),
            name: name.to_owned(),
            by,
            at: ctx.now,
        };
        let mut run = match self
            .runner()
            .begin(ctx, Some(workspace_id.as_str()), &request)
            .await?
        {
            Begin::Replayed(result) => return Ok(result),
            Begin::Run(run) => run,
        };
        loop {
            let mut batch = run.batch();
            let workspace =
                load_existing::<Workspace>(&mut batch, "workspace", workspace_id.as_str()).await?;
            authorize_in(
                ctx,
                &workspace.state,
                &[Action::CreateBase],
                None,
                ("workspace", workspace_id.as_str()),
            )?;
            if workspace.state.state().is_some_and(|s| s.archived) {
                return Err(CommandError::rejected(
                    "workspace_archived",
                    format!("workspace {workspace_id} is archived"),
                ));
            }
            let base = batch.load::<Base>(base_id.as_str()).await?;
            let events = decide(&base, &command)?;
            let emitted = batch.emit(&base, &events)?;
            if let Some(result) = run
                .commit(batch, |o| Ok(written(&base_id, emitted.version, o)))
                .await?
            {
                return Ok(result);
            }
        }
    }

    /// Renames a base (`RenameBase`).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, or `Rejected` (invalid name, deleted base).
    pub async fn rename_base(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        name: &str,
    ) -> Result<Written<BaseId>, CommandError> {
        let body = json!({"baseId": base_id, "name": name});
        self.schema_command(ctx, base_id, "renameBase", &body, |by| {
            BaseCommand::RenameBase {
                name: name.to_owned(),
                by,
                at: ctx.now,
            }
        })
        .await
    }

    /// Deletes a base (`DeleteBase`); it can be restored.
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, or `Rejected` (already deleted).
    pub async fn delete_base(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
    ) -> Result<Written<BaseId>, CommandError> {
        let body = json!({"baseId": base_id});
        self.schema_command(ctx, base_id, "deleteBase", &body, |by| {
            BaseCommand::DeleteBase { by, at: ctx.now }
        })
        .await
    }

    /// Restores a deleted base (`RestoreBase`).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, or `Rejected` (not deleted).
    pub async fn restore_base(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
    ) -> Result<Written<BaseId>, CommandError> {
        let body = json!({"baseId": base_id});
        self.schema_command(ctx, base_id, "restoreBase", &body, |by| {
            BaseCommand::RestoreBase { by, at: ctx.now }
        })
        .await
    }

    /// Creates a table with its fields and a default view (`CreateTable`).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, or `Rejected` (duplicate names, no fields, bad options, link
    /// to a table outside the base).
    pub async fn create_table(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        table: NewTable,
    ) -> Result<CreatedTable, CommandError> {
        let body = json!({"baseId": base_id, "table": table});
        let table_id: TableId = new_id();
        let view_id: ViewId = new_id();
        let fields: Vec<FieldDef> = table.fields.into_iter().map(NewField::into_def).collect();
        let command = |by| BaseCommand::CreateTable {
            table_id: table_id.clone(),
            name: table.name.clone(),
            description: table.description.clone(),
            fields: fields.clone(),
            primary_field_id: table.primary_field_id.clone(),
            default_view_id: view_id.clone(),
            by,
            at: ctx.now,
        };
        self.base_command(
            ctx,
            base_id,
            "createTable",
            &body,
            command,
            |base, written| {
                let table = base.table(&table_id).cloned().ok_or_else(|| {
                    CommandError::infra("creating a table", "the table is missing after creation")
                })?;
                Ok(CreatedTable { table, written })
            },
        )
        .await
    }

    /// Renames a table and/or changes its description (`RenameTable`).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, or `Rejected` (unknown table, duplicate name).
    pub async fn update_table(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        table_id: &TableId,
        name: Option<&str>,
        description: Option<Option<&str>>,
    ) -> Result<Written<BaseId>, CommandError> {
        let body = json!({"baseId": base_id, "tableId": table_id, "name": name, "description": description});
        self.schema_command(ctx, base_id, "updateTable", &body, |by| {
            BaseCommand::UpdateTable {
                table_id: table_id.clone(),
                name: name.map(str::to_owned),
                description: description.map(|d| d.map(str::to_owned)),
                by,
                at: ctx.now,
            }
        })
        .await
    }

    /// Deletes a table (`DeleteTable`).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, or `Rejected` (unknown or last table).
    pub async fn delete_table(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        table_id: &TableId,
    ) -> Result<Written<BaseId>, CommandError> {
        let body = json!({"baseId": base_id, "tableId": table_id});
        self.schema_command(ctx, base_id, "deleteTable", &body, |by| {
            BaseCommand::DeleteTable {
                table_id: table_id.clone(),
                by,
                at: ctx.now,
            }
        })
        .await
    }

    /// Adds a field to a table (`AddField`); a link field with an inverse id also creates the
    /// inverse in the linked table. Returns the new field's id.
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, or `Rejected` (duplicate name, bad options).
    pub async fn add_field(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        table_id: &TableId,
        field: NewField,
    ) -> Result<Written<FieldId>, CommandError> {
        let body = json!({"baseId": base_id, "tableId": table_id, "field": field});
        let field = field.into_def();
        let field_id = field.id.clone();
        let command = |by| BaseCommand::AddField {
            table_id: table_id.clone(),
            field: field.clone(),
            by,
            at: ctx.now,
        };
        self.base_command(ctx, base_id, "addField", &body, command, |_, w| {
            Ok(Written {
                id: field_id.clone(),
                version: w.version,
                position: w.position,
            })
        })
        .await
    }

    /// Changes a field's name, description or type (`UpdateField`).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, or `Rejected` (unknown field, lossy change without
    /// `allow_lossy`, impossible conversion).
    pub async fn update_field(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        table_id: &TableId,
        field_id: &FieldId,
        change: FieldChange,
    ) -> Result<Written<BaseId>, CommandError> {
        let body =
            json!({"baseId": base_id, "tableId": table_id, "fieldId": field_id, "change": change});
        self.schema_command(ctx, base_id, "updateField", &body, |by| {
            BaseCommand::UpdateField {
                table_id: table_id.clone(),
                field_id: field_id.clone(),
                name: change.name.clone(),
                description: change.description.clone(),
                field_type: change.field_type.clone(),
                allow_lossy: change.allow_lossy,
                by,
                at: ctx.now,
            }
        })
        .await
    }

    /// Deletes a field (`DeleteField`); never the primary one.
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, or `Rejected` (unknown or primary field).
    pub async fn delete_field(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        table_id: &TableId,
        field_id: &FieldId,
    ) -> Result<Written<BaseId>, CommandError> {
        let body = json!({"baseId": base_id, "tableId": table_id, "fieldId": field_id});
        self.schema_command(ctx, base_id, "deleteField", &body, |by| {
            BaseCommand::DeleteField {
                table_id: table_id.clone(),
                field_id: field_id.clone(),
                by,
                at: ctx.now,
            }
        })
        .await
    }

    /// Makes a field the table's primary field (`UpdateField`).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, or `Rejected` (unknown field, type not allowed as primary).
    pub async fn set_primary_field(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        table_id: &TableId,
        field_id: &FieldId,
    ) -> Result<Written<BaseId>, CommandError> {
        let body = json!({"baseId": base_id, "tableId": table_id, "fieldId": field_id});
        self.schema_command(ctx, base_id, "setPrimaryField", &body, |by| {
            BaseCommand::SetPrimaryField {
                table_id: table_id.clone(),
                field_id: field_id.clone(),
                by,
                at: ctx.now,
            }
        })
        .await
    }

    /// Creates a view (`CreateView`: editors and up). Returns the new view as stored.
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, or `Rejected` (unknown table, duplicate name, unknown fields).
    pub async fn create_view(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        table_id: &TableId,
        view: NewView,
    ) -> Result<(ViewDef, Written<BaseId>), CommandError> {
        let body = json!({"baseId": base_id, "tableId": table_id, "view": view});
        let view_id: ViewId = new_id();
        let command = |by| BaseCommand::CreateView {
            view_id: view_id.clone(),
            table_id: table_id.clone(),
            name: view.name.clone(),
            filter_formula: view.filter_formula.clone(),
            sorts: view.sorts.clone(),
            visible_field_ids: view.visible_field_ids.clone(),
            by,
            at: ctx.now,
        };
        self.base_command(
            ctx,
            base_id,
            "createView",
            &body,
            command,
            |base, written| {
                let view = base
                    .table(table_id)
                    .and_then(|t| t.view(&view_id))
                    .cloned()
                    .ok_or_else(|| {
                        CommandError::infra("creating a view", "the view is missing after creation")
                    })?;
                Ok((view, written))
            },
        )
        .await
    }

    /// Changes a view (`UpdateView`: editors and up).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, or `Rejected` (unknown view, duplicate name).
    pub async fn update_view(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        table_id: &TableId,
        view_id: &ViewId,
        change: ViewChange,
    ) -> Result<Written<BaseId>, CommandError> {
        let body =
            json!({"baseId": base_id, "tableId": table_id, "viewId": view_id, "change": change});
        self.schema_command(ctx, base_id, "updateView", &body, |by| {
            BaseCommand::UpdateView {
                table_id: table_id.clone(),
                view_id: view_id.clone(),
                name: change.name.clone(),
                filter_formula: change.filter_formula.clone(),
                sorts: change.sorts.clone(),
                visible_field_ids: change.visible_field_ids.clone(),
                by,
                at: ctx.now,
            }
        })
        .await
    }

    /// Deletes a view (`DeleteView`: editors and up); never the default one.
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, or `Rejected` (unknown or default view).
    pub async fn delete_view(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        table_id: &TableId,
        view_id: &ViewId,
    ) -> Result<Written<BaseId>, CommandError> {
        let body = json!({"baseId": base_id, "tableId": table_id, "viewId": view_id});
        self.schema_command(ctx, base_id, "deleteView", &body, |by| {
            BaseCommand::DeleteView {
                table_id: table_id.clone(),
                view_id: view_id.clone(),
                by,
                at: ctx.now,
            }
        })
        .await
    }

    async fn schema_command<M>(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        name: &str,
        body: &Value,
        make: M,
    ) -> Result<Written<BaseId>, CommandError>
    where
        M: Fn(UserId) -> BaseCommand,
    {
        self.base_command(ctx, base_id, name, body, make, |_, written| Ok(written))
            .await
    }

    /// Loads the base and its workspace, authorises the command's action against the caller's
    /// role there, decides, appends, and builds the result from the base's new state.
    async fn base_command<M, F, R>(
        &self,
        ctx: &CommandContext,
        base_id: &BaseId,
        name: &str,
        body: &Value,
        make: M,
        finish: F,
    ) -> Result<R, CommandError>
    where
        M: Fn(UserId) -> BaseCommand,
        F: Fn(&Base, Written<BaseId>) -> Result<R, CommandError>,
        R: Serialize + serde::de::DeserializeOwned,
    {
        let by = data_actor(ctx)?;
        let request = Fingerprint::new(name, body)?;
        let mut run = match self.runner().begin(ctx, None, &request).await? {
            Begin::Replayed(result) => return Ok(result),
            Begin::Run(run) => run,
        };
        loop {
            let mut batch = run.batch();
            let command = make(by.clone());
            let (base, workspace_id) =
                load_base_for(&mut batch, ctx, base_id, &[base_action(&command)]).await?;
            run.set_workspace(workspace_id.as_str());
            let events = decide(&base, &command)?;
            let emitted = batch.emit(&base, &events)?;
            let build =
                |o: &BatchOutcome| finish(&emitted.state, written(base_id, emitted.version, o));
            if let Some(result) = run.commit(batch, build).await? {
                return Ok(result);
            }
        }
    }
}
