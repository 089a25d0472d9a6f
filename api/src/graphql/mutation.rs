//! The mutation root: authentication, then one mutation per command of
//! [`pyairtable_commands::Platform`]. Each returns the changed entity as the write left it
//! (read back from the event store, so it never lags), its version and a `consistencyToken`.

use async_graphql::{Context, Enum, ID, InputObject, Json, MaybeUndefined, Object, SimpleObject};
use chrono::Utc;
use pyairtable_commands::service::{
    CommentWritten, FieldChange, NewField, NewTable, NewView, RecordUpdate, RecordsWritten,
    ViewChange,
};
use pyairtable_commands::{Caller, CommandContext, CreateApiToken, RegisterUser, Written};
use pyairtable_domain::base::{Base, Sort};
use pyairtable_domain::fields::FieldType;
use pyairtable_domain::ids::{
    BaseId, CommentId, FieldId, RecordId, TableId, TokenId, UserId, ViewId, WorkspaceId,
};
use pyairtable_domain::roles::{Role, Scope};
use pyairtable_domain::workspace::Workspace;
use serde_json::{Map, Value};

use super::access::{Location, locate_record, locate_table, parse_id};
use super::context::{Services, command_ctx, maybe_viewer, services, viewer};
use super::error::{ApiError, ApiResult};
use super::types::{
    ApiTokenPayload, BaseNode, BasePayload, CommentPayload, FieldNode, FieldPayload, RecordNode,
    RecordsPayload, SessionNode, TableNode, TablePayload, ViewNode, ViewPayload, WorkspaceNode,
    WorkspacePayload, WrittenNode,
};

/// The mutation root.
#[derive(Default)]
pub struct MutationRoot;

/// A workspace role.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum RoleInput {
    /// Everything.
    Owner,
    /// Everything but ownership and archiving.
    Creator,
    /// Records and views.
    Editor,
    /// Reads and comments.
    Commenter,
    /// Reads.
    Read,
}

impl From<RoleInput> for Role {
    fn from(r: RoleInput) -> Self {
        match r {
            RoleInput::Owner => Role::Owner,
            RoleInput::Creator => Role::Creator,
            RoleInput::Editor => Role::Editor,
            RoleInput::Commenter => Role::Commenter,
            RoleInput::Read => Role::ReadOnly,
        }
    }
}

/// The result of `register`.
#[derive(SimpleObject, Clone, Debug)]
pub struct RegisterPayload {
    /// The new user.
    pub user_id: ID,
    /// A session for the new user (only when registering oneself).
    pub session: Option<SessionNode>,
    /// Pass it to a query's `consistencyToken` to read this write.
    pub consistency_token: String,
}

/// One record of an `updateRecords` batch.
#[derive(InputObject, Clone, Debug)]
pub struct RecordUpdateInput {
    /// The record.
    pub id: ID,
    /// Cells by field name or id; `null` clears a cell.
    pub fields: Json<Map<String, Value>>,
}

fn from_json<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> ApiResult<T> {
    serde_json::from_value(value).map_err(|e| ApiError::Validation {
        message: format!("{what}: {e}"),
        reason: Some("INVALID_INPUT".to_owned()),
    })
}

fn version(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

async fn workspace_payload(
    svc: &Services,
    ctx: &CommandContext,
    written: &Written<WorkspaceId>,
) -> ApiResult<WorkspacePayload> {
    let loaded = svc
        .platform
        .runner()
        .load::<Workspace>(written.id.as_str())
        .await?;
    let me = ctx.caller.user_id();
    // A caller who just left the workspace is not shown it any more.
    let workspace = loaded
        .state
        .state()
        .filter(|s| me.is_some_and(|u| s.role_of(u).is_some()))
        .map(|s| WorkspaceNode::from_state(s, me));
    Ok(WorkspacePayload {
        workspace,
        version: version(written.version),
        consistency_token: written.position.clone(),
    })
}

async fn load_base(svc: &Services, base_id: &BaseId) -> ApiResult<Base> {
    Ok(svc
        .platform
        .runner()
        .load::<Base>(base_id.as_str())
        .await?
        .state)
}

async fn base_payload(svc: &Services, written: &Written<BaseId>) -> ApiResult<BasePayload> {
    let base = load_base(svc, &written.id).await?;
    Ok(BasePayload {
        base: BaseNode::from_aggregate(&base),
        version: version(written.version),
        consistency_token: written.position.clone(),
    })
}

async fn table_payload(
    svc: &Services,
    base_id: &BaseId,
    table_id: &TableId,
    written: &Written<BaseId>,
) -> ApiResult<TablePayload> {
    let base = load_base(svc, base_id).await?;
    Ok(TablePayload {
        table: base
            .table(table_id)
            .map(|t| TableNode::from_schema(t, base_id.as_str())),
        version: version(written.version),
        consistency_token: written.position.clone(),
    })
}

async fn field_payload(
    svc: &Services,
    base_id: &BaseId,
    table_id: &TableId,
    field_id: &FieldId,
    written_version: u64,
    position: &str,
) -> ApiResult<FieldPayload> {
    let base = load_base(svc, base_id).await?;
    let table = base.table(table_id);
    Ok(FieldPayload {
        field: table
            .and_then(|t| t.field(field_id))
            .map(FieldNode::from_def),
        table: table.map(|t| TableNode::from_schema(t, base_id.as_str())),
        version: version(written_version),
        consistency_token: position.to_owned(),
    })
}

async fn view_payload(
    svc: &Services,
    base_id: &BaseId,
    table_id: &TableId,
    view_id: &ViewId,
    written: &Written<BaseId>,
) -> ApiResult<ViewPayload> {
    let base = load_base(svc, base_id).await?;
    Ok(ViewPayload {
        view: base
            .table(table_id)
            .and_then(|t| t.view(view_id))
            .map(ViewNode::from_def),
        version: version(written.version),
        consistency_token: written.position.clone(),
    })
}

fn records_payload(written: RecordsWritten, at: &Location) -> RecordsPayload {
    RecordsPayload {
        records: written
            .records
            .into_iter()
            .map(|r| RecordNode {
                id: ID(r.id.to_string()),
                table_id: Some(ID(r.table_id.to_string())),
                cells: Json(super::types::cells_json(&r.cells)),
                version: version(r.version),
                deleted: r.deleted,
                created_at: r.created_at,
                updated_at: None,
                workspace_id: Some(at.workspace_id.clone()),
                base_id: at.base_id.clone(),
                autonumber: None,
            })
            .collect(),
        consistency_token: written.position,
    }
}

/// A table's base, for commands that take both.
async fn table_base(svc: &Services, table_id: &TableId) -> ApiResult<(Location, BaseId)> {
    let at = locate_table(svc, table_id).await?;
    let base = at
        .base_id
        .clone()
        .ok_or_else(|| ApiError::not_found("table", table_id.as_str()))?;
    Ok((at, base))
}

async fn record_base(svc: &Services, record_id: &RecordId) -> ApiResult<(Location, BaseId)> {
    let at = locate_record(svc, record_id).await?;
    let base = at
        .base_id
        .clone()
        .ok_or_else(|| ApiError::not_found("record", record_id.as_str()))?;
    Ok((at, base))
}

fn parse_sorts(sorts: Option<Json<Value>>) -> ApiResult<Option<Vec<Sort>>> {
    sorts
        .map(|s| from_json::<Vec<Sort>>(s.0, "sorts"))
        .transpose()
}

fn parse_ids<K: pyairtable_domain::ids::IdKind>(
    ids: Vec<ID>,
) -> ApiResult<Vec<pyairtable_domain::ids::Id<K>>> {
    ids.iter().map(|id| parse_id::<K>(id)).collect()
}

#[Object]
impl MutationRoot {
    // ---- Authentication ----

    /// Registers an account. Anonymous callers register themselves (when open registration is
    /// on) and get a session; an instance admin registers someone else and gets no session.
    async fn register(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
        display_name: Option<String>,
    ) -> ApiResult<RegisterPayload> {
        let svc = services(ctx)?;
        let admin = maybe_viewer(ctx).filter(|v| v.is_admin);
        let caller = match admin {
            Some(user) => Caller::User(user.clone()),
            None if svc.config.open_registration => Caller::system("registration"),
            None => {
                return Err(ApiError::Forbidden(
                    "registration is closed; ask an administrator for an account".to_owned(),
                ));
            }
        };
        let is_admin = svc
            .config
            .admin_emails
            .contains(&email.trim().to_lowercase());
        let cmd = CommandContext::new(caller);
        let written = svc
            .platform
            .register_user(
                &cmd,
                RegisterUser {
                    email: email.clone(),
                    display_name,
                    password: password.clone(),
                    is_admin,
                },
            )
            .await?;
        let session = if admin.is_none() {
            let session = svc
                .platform
                .auth()
                .login(&email, &password, Utc::now())
                .await?;
            Some(SessionNode::new(session, Some(written.position.clone())))
        } else {
            None
        };
        Ok(RegisterPayload {
            user_id: ID(written.id.to_string()),
            session,
            consistency_token: written.position,
        })
    }

    /// Signs in with email and password.
    async fn login(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> ApiResult<SessionNode> {
        let svc = services(ctx)?;
        let session = svc
            .platform
            .auth()
            .login(&email, &password, Utc::now())
            .await?;
        Ok(SessionNode::new(session, None))
    }

    /// Exchanges a refresh token (single use) for a new session.
    async fn refresh_token(
        &self,
        ctx: &Context<'_>,
        refresh_token: String,
    ) -> ApiResult<SessionNode> {
        let svc = services(ctx)?;
        let session = svc
            .platform
            .auth()
            .refresh(&refresh_token, Utc::now())
            .await?;
        Ok(SessionNode::new(session, None))
    }

    /// Ends the session a refresh token belongs to.
    async fn logout(&self, ctx: &Context<'_>, refresh_token: String) -> ApiResult<bool> {
        let svc = services(ctx)?;
        svc.platform
            .auth()
            .logout(&refresh_token, Utc::now())
            .await?;
        Ok(true)
    }

    /// Creates a personal API token. `scopes` use Airtable's names (`data.records:read`,
    /// `data.records:write`, `schema.bases:read`, ...). The token is shown once.
    async fn create_api_token(
        &self,
        ctx: &Context<'_>,
        name: String,
        scopes: Vec<String>,
        base_ids: Option<Vec<ID>>,
    ) -> ApiResult<ApiTokenPayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let scopes = scopes
            .iter()
            .map(|s| Scope::parse(s).map_err(|e| ApiError::validation(e.to_string())))
            .collect::<ApiResult<Vec<_>>>()?;
        let base_ids = base_ids.map(parse_ids).transpose()?;
        let created = svc
            .platform
            .create_api_token(
                &cmd,
                CreateApiToken {
                    owner: None,
                    name,
                    scopes,
                    base_ids,
                },
            )
            .await?;
        Ok(ApiTokenPayload {
            token_id: ID(created.token_id.to_string()),
            token: created.token,
            version: version(created.written.version),
            consistency_token: created.written.position,
        })
    }

    /// Revokes an API token (one's own; admins: anyone's).
    async fn revoke_api_token(&self, ctx: &Context<'_>, token_id: ID) -> ApiResult<WrittenNode> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let id: TokenId = parse_id(&token_id)?;
        Ok(WrittenNode::from(
            &svc.platform.revoke_api_token(&cmd, &id).await?,
        ))
    }

    // ---- Users ----

    /// Changes one's display name and, optionally, email.
    async fn change_profile(
        &self,
        ctx: &Context<'_>,
        display_name: String,
        email: Option<String>,
    ) -> ApiResult<WrittenNode> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let me = viewer(ctx)?.user_id.clone();
        let written = svc
            .platform
            .change_profile(&cmd, &me, &display_name, email.as_deref())
            .await?;
        Ok(WrittenNode::from(&written))
    }

    /// Changes one's password; every session ends.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
    ) -> ApiResult<WrittenNode> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let me = viewer(ctx)?.user_id.clone();
        let written = svc
            .platform
            .change_password(&cmd, &me, Some(&current_password), &new_password)
            .await?;
        Ok(WrittenNode::from(&written))
    }

    /// Deactivates a user (instance admins).
    async fn deactivate_user(&self, ctx: &Context<'_>, user_id: ID) -> ApiResult<WrittenNode> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let id: UserId = parse_id(&user_id)?;
        Ok(WrittenNode::from(
            &svc.platform.deactivate_user(&cmd, &id).await?,
        ))
    }

    /// Reactivates a user (instance admins).
    async fn reactivate_user(&self, ctx: &Context<'_>, user_id: ID) -> ApiResult<WrittenNode> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let id: UserId = parse_id(&user_id)?;
        Ok(WrittenNode::from(
            &svc.platform.reactivate_user(&cmd, &id).await?,
        ))
    }

    // ---- Workspaces ----

    /// Creates a workspace owned by the caller.
    async fn create_workspace(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> ApiResult<WorkspacePayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let written = svc.platform.create_workspace(&cmd, &name, None).await?;
        workspace_payload(svc, &cmd, &written).await
    }

    /// Renames a workspace.
    async fn rename_workspace(
        &self,
        ctx: &Context<'_>,
        id: ID,
        name: String,
    ) -> ApiResult<WorkspacePayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let id: WorkspaceId = parse_id(&id)?;
        let written = svc.platform.rename_workspace(&cmd, &id, &name).await?;
        workspace_payload(svc, &cmd, &written).await
    }

    /// Invites someone by email with a role.
    async fn invite_member(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        email: String,
        role: RoleInput,
    ) -> ApiResult<WorkspacePayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let id: WorkspaceId = parse_id(&workspace_id)?;
        let written = svc
            .platform
            .invite_member(&cmd, &id, &email, role.into())
            .await?;
        workspace_payload(svc, &cmd, &written).await
    }

    /// Withdraws a pending invitation.
    async fn cancel_invitation(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        email: String,
    ) -> ApiResult<WorkspacePayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let id: WorkspaceId = parse_id(&workspace_id)?;
        let written = svc.platform.cancel_invitation(&cmd, &id, &email).await?;
        workspace_payload(svc, &cmd, &written).await
    }

    /// Accepts the invitation sent to the caller's email.
    async fn accept_invitation(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
    ) -> ApiResult<WorkspacePayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let id: WorkspaceId = parse_id(&workspace_id)?;
        let written = svc.platform.accept_invitation(&cmd, &id).await?;
        workspace_payload(svc, &cmd, &written).await
    }

    /// Adds an existing user with a role.
    async fn add_member(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        user_id: ID,
        role: RoleInput,
    ) -> ApiResult<WorkspacePayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let id: WorkspaceId = parse_id(&workspace_id)?;
        let user: UserId = parse_id(&user_id)?;
        let written = svc
            .platform
            .add_member(&cmd, &id, &user, role.into())
            .await?;
        workspace_payload(svc, &cmd, &written).await
    }

    /// Changes a member's role.
    async fn change_member_role(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        user_id: ID,
        role: RoleInput,
    ) -> ApiResult<WorkspacePayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let id: WorkspaceId = parse_id(&workspace_id)?;
        let user: UserId = parse_id(&user_id)?;
        let written = svc
            .platform
            .change_member_role(&cmd, &id, &user, role.into())
            .await?;
        workspace_payload(svc, &cmd, &written).await
    }

    /// Removes a member.
    async fn remove_member(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        user_id: ID,
    ) -> ApiResult<WorkspacePayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let id: WorkspaceId = parse_id(&workspace_id)?;
        let user: UserId = parse_id(&user_id)?;
        let written = svc.platform.remove_member(&cmd, &id, &user).await?;
        workspace_payload(svc, &cmd, &written).await
    }

    /// Archives a workspace (owners).
    async fn archive_workspace(&self, ctx: &Context<'_>, id: ID) -> ApiResult<WorkspacePayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let id: WorkspaceId = parse_id(&id)?;
        let written = svc.platform.archive_workspace(&cmd, &id).await?;
        workspace_payload(svc, &cmd, &written).await
    }

    // ---- Bases ----

    /// Creates a base in a workspace.
    async fn create_base(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        name: String,
    ) -> ApiResult<BasePayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let id: WorkspaceId = parse_id(&workspace_id)?;
        let written = svc.platform.create_base(&cmd, &id, &name).await?;
        base_payload(svc, &written).await
    }

    /// Renames a base.
    async fn rename_base(&self, ctx: &Context<'_>, id: ID, name: String) -> ApiResult<BasePayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let id: BaseId = parse_id(&id)?;
        let written = svc.platform.rename_base(&cmd, &id, &name).await?;
        base_payload(svc, &written).await
    }

    /// Deletes a base (restorable).
    async fn delete_base(&self, ctx: &Context<'_>, id: ID) -> ApiResult<BasePayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let id: BaseId = parse_id(&id)?;
        let written = svc.platform.delete_base(&cmd, &id).await?;
        base_payload(svc, &written).await
    }

    /// Restores a deleted base.
    async fn restore_base(&self, ctx: &Context<'_>, id: ID) -> ApiResult<BasePayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let id: BaseId = parse_id(&id)?;
        let written = svc.platform.restore_base(&cmd, &id).await?;
        base_payload(svc, &written).await
    }

    // ---- Tables, fields, views ----

    /// Creates a table. Each field is Airtable's shape:
    /// `{"name": "Status", "type": "singleSelect", "options": {"choices": [{"name": "Todo"}]}}`.
    async fn create_table(
        &self,
        ctx: &Context<'_>,
        base_id: ID,
        name: String,
        description: Option<String>,
        fields: Vec<Json<Value>>,
        primary_field_id: Option<ID>,
    ) -> ApiResult<TablePayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let base: BaseId = parse_id(&base_id)?;
        let fields = fields
            .into_iter()
            .enumerate()
            .map(|(i, f)| from_json::<NewField>(f.0, &format!("fields[{i}]")))
            .collect::<ApiResult<Vec<_>>>()?;
        let primary_field_id = primary_field_id
            .map(|f| parse_id::<pyairtable_domain::ids::FieldKind>(&f))
            .transpose()?;
        let created = svc
            .platform
            .create_table(
                &cmd,
                &base,
                NewTable {
                    name,
                    description,
                    fields,
                    primary_field_id,
                },
            )
            .await?;
        Ok(TablePayload {
            table: Some(TableNode::from_schema(&created.table, base.as_str())),
            version: version(created.written.version),
            consistency_token: created.written.position,
        })
    }

    /// Renames a table or changes its description (`null` clears it).
    async fn update_table(
        &self,
        ctx: &Context<'_>,
        table_id: ID,
        name: Option<String>,
        description: MaybeUndefined<String>,
    ) -> ApiResult<TablePayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let table: TableId = parse_id(&table_id)?;
        let (_, base) = table_base(svc, &table).await?;
        let description = match &description {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(d) => Some(Some(d.as_str())),
        };
        let written = svc
            .platform
            .update_table(&cmd, &base, &table, name.as_deref(), description)
            .await?;
        table_payload(svc, &base, &table, &written).await
    }

    /// Deletes a table.
    async fn delete_table(&self, ctx: &Context<'_>, table_id: ID) -> ApiResult<TablePayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let table: TableId = parse_id(&table_id)?;
        let (_, base) = table_base(svc, &table).await?;
        let written = svc.platform.delete_table(&cmd, &base, &table).await?;
        table_payload(svc, &base, &table, &written).await
    }

    /// Adds a field (Airtable's shape, as in `createTable`).
    async fn add_field(
        &self,
        ctx: &Context<'_>,
        table_id: ID,
        field: Json<Value>,
    ) -> ApiResult<FieldPayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let table: TableId = parse_id(&table_id)?;
        let (_, base) = table_base(svc, &table).await?;
        let field: NewField = from_json(field.0, "field")?;
        let written = svc.platform.add_field(&cmd, &base, &table, field).await?;
        field_payload(
            svc,
            &base,
            &table,
            &written.id,
            written.version,
            &written.position,
        )
        .await
    }

    /// Changes a field's name, description or type (`{"type": ..., "options": ...}`); a lossy
    /// type change needs `allowLossy`.
    #[allow(clippy::too_many_arguments)]
    async fn update_field(
        &self,
        ctx: &Context<'_>,
        table_id: ID,
        field_id: ID,
        name: Option<String>,
        description: MaybeUndefined<String>,
        field_type: Option<Json<Value>>,
        #[graphql(default)] allow_lossy: bool,
    ) -> ApiResult<FieldPayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let table: TableId = parse_id(&table_id)?;
        let field: FieldId = parse_id(&field_id)?;
        let (_, base) = table_base(svc, &table).await?;
        let change = FieldChange {
            name,
            description: match description {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(d) => Some(Some(d)),
            },
            field_type: field_type
                .map(|t| from_json::<FieldType>(t.0, "fieldType"))
                .transpose()?,
            allow_lossy,
        };
        let written = svc
            .platform
            .update_field(&cmd, &base, &table, &field, change)
            .await?;
        field_payload(
            svc,
            &base,
            &table,
            &field,
            written.version,
            &written.position,
        )
        .await
    }

    /// Deletes a field.
    async fn delete_field(
        &self,
        ctx: &Context<'_>,
        table_id: ID,
        field_id: ID,
    ) -> ApiResult<FieldPayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let table: TableId = parse_id(&table_id)?;
        let field: FieldId = parse_id(&field_id)?;
        let (_, base) = table_base(svc, &table).await?;
        let written = svc
            .platform
            .delete_field(&cmd, &base, &table, &field)
            .await?;
        field_payload(
            svc,
            &base,
            &table,
            &field,
            written.version,
            &written.position,
        )
        .await
    }

    /// Makes a field the table's primary field.
    async fn set_primary_field(
        &self,
        ctx: &Context<'_>,
        table_id: ID,
        field_id: ID,
    ) -> ApiResult<FieldPayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let table: TableId = parse_id(&table_id)?;
        let field: FieldId = parse_id(&field_id)?;
        let (_, base) = table_base(svc, &table).await?;
        let written = svc
            .platform
            .set_primary_field(&cmd, &base, &table, &field)
            .await?;
        field_payload(
            svc,
            &base,
            &table,
            &field,
            written.version,
            &written.position,
        )
        .await
    }

    /// Creates a view. `sorts` is `[{"fieldId": "fld…", "direction": "asc"}]`.
    async fn create_view(
        &self,
        ctx: &Context<'_>,
        table_id: ID,
        name: String,
        filter_formula: Option<String>,
        sorts: Option<Json<Value>>,
        visible_field_ids: Option<Vec<ID>>,
    ) -> ApiResult<ViewPayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let table: TableId = parse_id(&table_id)?;
        let (_, base) = table_base(svc, &table).await?;
        let view = NewView {
            name,
            filter_formula,
            sorts: parse_sorts(sorts)?.unwrap_or_default(),
            visible_field_ids: visible_field_ids.map(parse_ids).transpose()?,
        };
        let (def, written) = svc.platform.create_view(&cmd, &base, &table, view).await?;
        Ok(ViewPayload {
            view: Some(ViewNode::from_def(&def)),
            version: version(written.version),
            consistency_token: written.position,
        })
    }

    /// Changes a view (`null` filter removes it; `null` visible fields shows all).
    #[allow(clippy::too_many_arguments)]
    async fn update_view(
        &self,
        ctx: &Context<'_>,
        table_id: ID,
        view_id: ID,
        name: Option<String>,
        filter_formula: MaybeUndefined<String>,
        sorts: Option<Json<Value>>,
        visible_field_ids: MaybeUndefined<Vec<ID>>,
    ) -> ApiResult<ViewPayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let table: TableId = parse_id(&table_id)?;
        let view: ViewId = parse_id(&view_id)?;
        let (_, base) = table_base(svc, &table).await?;
        let change = ViewChange {
            name,
            filter_formula: match filter_formula {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(f) => Some(Some(f)),
            },
            sorts: parse_sorts(sorts)?,
            visible_field_ids: match visible_field_ids {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(ids) => Some(Some(parse_ids(ids)?)),
            },
        };
        let written = svc
            .platform
            .update_view(&cmd, &base, &table, &view, change)
            .await?;
        view_payload(svc, &base, &table, &view, &written).await
    }

    /// Deletes a view (never the default one).
    async fn delete_view(
        &self,
        ctx: &Context<'_>,
        table_id: ID,
        view_id: ID,
    ) -> ApiResult<ViewPayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let table: TableId = parse_id(&table_id)?;
        let view: ViewId = parse_id(&view_id)?;
        let (_, base) = table_base(svc, &table).await?;
        let written = svc.platform.delete_view(&cmd, &base, &table, &view).await?;
        view_payload(svc, &base, &table, &view, &written).await
    }

    // ---- Records ----

    /// Creates up to ten records, all or none. Each is a map of cells by field name or id.
    async fn create_records(
        &self,
        ctx: &Context<'_>,
        table_id: ID,
        records: Vec<Json<Map<String, Value>>>,
        #[graphql(default)] typecast: bool,
    ) -> ApiResult<RecordsPayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let table: TableId = parse_id(&table_id)?;
        let (at, base) = table_base(svc, &table).await?;
        let records = records.into_iter().map(|r| r.0).collect();
        let written = svc
            .platform
            .create_records(&cmd, &base, table.as_str(), records, typecast)
            .await?;
        Ok(records_payload(written, &at))
    }

    /// Updates up to ten records, all or none. With `replace`, cells not given are cleared.
    async fn update_records(
        &self,
        ctx: &Context<'_>,
        table_id: ID,
        records: Vec<RecordUpdateInput>,
        #[graphql(default)] replace: bool,
        #[graphql(default)] typecast: bool,
    ) -> ApiResult<RecordsPayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let table: TableId = parse_id(&table_id)?;
        let (at, base) = table_base(svc, &table).await?;
        let updates = records
            .into_iter()
            .map(|r| {
                Ok(RecordUpdate {
                    id: parse_id(&r.id)?,
                    fields: r.fields.0,
                })
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let written = svc
            .platform
            .update_records(&cmd, &base, table.as_str(), updates, replace, typecast)
            .await?;
        Ok(records_payload(written, &at))
    }

    /// Deletes up to ten records, all or none (restorable).
    async fn delete_records(
        &self,
        ctx: &Context<'_>,
        table_id: ID,
        ids: Vec<ID>,
    ) -> ApiResult<RecordsPayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let table: TableId = parse_id(&table_id)?;
        let (at, base) = table_base(svc, &table).await?;
        let ids = parse_ids(ids)?;
        let written = svc
            .platform
            .delete_records(&cmd, &base, table.as_str(), ids)
            .await?;
        Ok(records_payload(written, &at))
    }

    /// Restores a deleted record.
    async fn restore_record(&self, ctx: &Context<'_>, id: ID) -> ApiResult<RecordsPayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let record: RecordId = parse_id(&id)?;
        let (at, base) = record_base(svc, &record).await?;
        let written = svc.platform.restore_record(&cmd, &base, &record).await?;
        Ok(records_payload(written, &at))
    }

    /// Brings a record's cells back to what they were at `toVersion`, as a new version.
    async fn revert_record(
        &self,
        ctx: &Context<'_>,
        id: ID,
        to_version: i64,
    ) -> ApiResult<RecordsPayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let record: RecordId = parse_id(&id)?;
        let to_version = u64::try_from(to_version)
            .map_err(|_| ApiError::validation("toVersion must be positive"))?;
        let (at, base) = record_base(svc, &record).await?;
        let written = svc
            .platform
            .revert_record(&cmd, &base, &record, to_version)
            .await?;
        Ok(records_payload(written, &at))
    }

    // ---- Comments ----

    /// Comments on a record (mentions as `@[usr…]`).
    async fn add_comment(
        &self,
        ctx: &Context<'_>,
        record_id: ID,
        text: String,
    ) -> ApiResult<CommentPayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let record: RecordId = parse_id(&record_id)?;
        let (_, base) = record_base(svc, &record).await?;
        let w = svc
            .platform
            .add_comment(&cmd, &base, &record, &text)
            .await?;
        Ok(comment_payload(&w))
    }

    /// Edits one's own comment.
    async fn edit_comment(
        &self,
        ctx: &Context<'_>,
        record_id: ID,
        comment_id: ID,
        text: String,
    ) -> ApiResult<CommentPayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let record: RecordId = parse_id(&record_id)?;
        let comment: CommentId = parse_id(&comment_id)?;
        let (_, base) = record_base(svc, &record).await?;
        let w = svc
            .platform
            .edit_comment(&cmd, &base, &record, &comment, &text)
            .await?;
        Ok(comment_payload(&w))
    }

    /// Deletes one's own comment.
    async fn delete_comment(
        &self,
        ctx: &Context<'_>,
        record_id: ID,
        comment_id: ID,
    ) -> ApiResult<CommentPayload> {
        let svc = services(ctx)?;
        let cmd = command_ctx(ctx)?;
        let record: RecordId = parse_id(&record_id)?;
        let comment: CommentId = parse_id(&comment_id)?;
        let (_, base) = record_base(svc, &record).await?;
        let w = svc
            .platform
            .delete_comment(&cmd, &base, &record, &comment)
            .await?;
        Ok(comment_payload(&w))
    }

    // ---- Administration ----

    /// Rebuilds a projection into a shadow copy and switches to it (instance admins); follow
    /// it with the `projectionProgress` subscription.
    async fn rebuild_projection(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> ApiResult<super::subscription::RebuildResult> {
        let svc = services(ctx)?;
        super::access::require_admin(viewer(ctx)?)?;
        super::subscription::rebuild(svc, &name).await
    }

    /// Applies a projection's parked events again (instance admins).
    async fn retry_parked_events(&self, ctx: &Context<'_>, name: String) -> ApiResult<RetryResult> {
        let svc = services(ctx)?;
        super::access::require_admin(viewer(ctx)?)?;
        let (resolved, failing) = svc.projections.retry_parked(&name).await?;
        Ok(RetryResult {
            resolved: i64::try_from(resolved).unwrap_or(i64::MAX),
            still_failing: i64::try_from(failing).unwrap_or(i64::MAX),
        })
    }
}

/// The outcome of `retryParkedEvents`.
#[derive(SimpleObject, Clone, Debug)]
pub struct RetryResult {
    /// Parked events now applied.
    pub resolved: i64,
    /// Parked events that failed again.
    pub still_failing: i64,
}

fn comment_payload(w: &CommentWritten) -> CommentPayload {
    CommentPayload {
        comment_id: ID(w.comment_id.to_string()),
        record_id: ID(w.record.id.to_string()),
        version: version(w.record.version),
        consistency_token: w.record.position.clone(),
    }
}
