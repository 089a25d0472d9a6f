//! The GraphQL object types and how each is built, from a read-model row or from an aggregate
//! a mutation just wrote.

use std::collections::BTreeMap;

use async_graphql::{ComplexObject, Context, ID, Json, SimpleObject};
use chrono::{DateTime, Utc};
use pyairtable_domain::base::{TableSchema, ViewDef};
use pyairtable_domain::fields::FieldDef;
use pyairtable_domain::ids::{BaseId, FieldId, TableId, UserId, WorkspaceId};
use pyairtable_domain::permissions::Action;
use pyairtable_domain::record::Record;
use pyairtable_domain::workspace::WorkspaceState;
use pyairtable_eventstore::{Actor, RecordedEvent};
use serde_json::{Map, Value};
use sqlx::AssertSqlSafe;

use super::access::{authorize_in, parse_id};
use super::context::{Services, maybe_viewer, services, viewer};
use super::error::{ApiError, ApiResult};
use super::history;

/// A user account.
#[derive(SimpleObject, Clone, Debug)]
pub struct UserNode {
    /// `usr…`.
    pub id: ID,
    /// Email address: shown to the user itself and to instance admins only.
    pub email: Option<String>,
    /// Display name.
    pub display_name: String,
    /// Whether the account administers the instance.
    pub is_admin: bool,
    /// Whether the account can sign in.
    pub active: bool,
}

impl UserNode {
    /// Reads a user from the `users` read model; `show_email` decides whether the email is
    /// included.
    pub async fn load(svc: &Services, user_id: &str, show_email: bool) -> ApiResult<Option<Self>> {
        let sql = format!(
            "SELECT user_id, email, display_name, is_admin, active FROM {} WHERE user_id = $1",
            svc.view("users")
        );
        let row: Option<(String, String, String, bool, bool)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(user_id.to_owned())
            .fetch_optional(&svc.pool)
            .await?;
        Ok(row.map(|(id, email, display_name, is_admin, active)| Self {
            id: ID(id),
            email: show_email.then_some(email),
            display_name,
            is_admin,
            active,
        }))
    }
}

/// A signed-in session.
#[derive(SimpleObject, Clone, Debug)]
pub struct SessionNode {
    /// The user.
    pub user_id: ID,
    /// Whether the user is an instance admin.
    pub is_admin: bool,
    /// Send as `Authorization: Bearer <accessToken>`.
    pub access_token: String,
    /// When the access token expires.
    pub access_token_expires_at: DateTime<Utc>,
    /// Exchange it with `refreshToken` for a new session (single use).
    pub refresh_token: String,
    /// When the refresh token expires.
    pub refresh_token_expires_at: DateTime<Utc>,
    /// Position of the registration's write, when the call registered the user.
    pub consistency_token: Option<String>,
}

impl SessionNode {
    /// Wraps a session from the authenticator.
    pub fn new(session: pyairtable_commands::Session, consistency_token: Option<String>) -> Self {
        Self {
            user_id: ID(session.user_id.to_string()),
            is_admin: session.is_admin,
            access_token: session.access_token,
            access_token_expires_at: session.access_expires_at,
            refresh_token: session.refresh_token,
            refresh_token_expires_at: session.refresh_expires_at,
            consistency_token,
        }
    }
}

/// Who caused an event.
#[derive(SimpleObject, Clone, Debug)]
pub struct ActorNode {
    /// `user`, `api_token`, `system`, `automation` or `agent`.
    pub kind: String,
    /// The user, token, automation or agent id, or the system part's name.
    pub id: String,
    /// The user acting (for users and API tokens).
    pub user_id: Option<ID>,
}

impl From<&Actor> for ActorNode {
    fn from(actor: &Actor) -> Self {
        let (kind, id, user_id) = match actor {
            Actor::User { id } => ("user", id.clone(), Some(id.clone())),
            Actor::ApiToken { id, user_id } => ("api_token", id.clone(), Some(user_id.clone())),
            Actor::System { name } => ("system", name.clone(), None),
            Actor::Automation { id } => ("automation", id.clone(), None),
            Actor::Agent { id } => ("agent", id.clone(), None),
        };
        Self {
            kind: kind.to_owned(),
            id,
            user_id: user_id.map(ID),
        }
    }
}

/// A member of a workspace.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct MemberNode {
    /// The member.
    pub user_id: ID,
    /// `owner`, `creator`, `editor`, `commenter` or `read`.
    pub role: String,
}

#[ComplexObject]
impl MemberNode {
    /// The member's account (email only for oneself and admins).
    async fn user(&self, ctx: &Context<'_>) -> ApiResult<Option<UserNode>> {
        let svc = services(ctx)?;
        let show = maybe_viewer(ctx)
            .is_some_and(|v| v.is_admin || v.user_id.as_str() == self.user_id.as_str());
        UserNode::load(svc, &self.user_id, show).await
    }
}

/// A workspace.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct WorkspaceNode {
    /// `wsp…`.
    pub id: ID,
    /// Name.
    pub name: String,
    /// Whether it is archived.
    pub archived: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The caller's role in it.
    pub my_role: Option<String>,
    /// Its members, from the workspace itself (always current).
    pub members: Vec<MemberNode>,
}

impl WorkspaceNode {
    /// Builds the node from the aggregate's state, for `viewer`.
    pub fn from_state(state: &WorkspaceState, viewer: Option<&UserId>) -> Self {
        Self {
            id: ID(state.id.to_string()),
            name: state.name.clone(),
            archived: state.archived,
            created_at: state.created_at,
            my_role: viewer
                .and_then(|v| state.role_of(v))
                .map(|r| r.as_str().to_owned()),
            members: state
                .members
                .iter()
                .map(|(user, role)| MemberNode {
                    user_id: ID(user.to_string()),
                    role: role.as_str().to_owned(),
                })
                .collect(),
        }
    }
}

#[ComplexObject]
impl WorkspaceNode {
    /// The workspace's live bases (those an API token is restricted to, for a token).
    async fn bases(&self, ctx: &Context<'_>) -> ApiResult<Vec<BaseNode>> {
        let svc = services(ctx)?;
        let user = viewer(ctx)?;
        let sql = format!(
            "SELECT base_id, workspace_id, name, deleted, created_at FROM {} \
              WHERE workspace_id = $1 AND NOT deleted ORDER BY created_at, base_id",
            svc.view("bases")
        );
        let rows: Vec<BaseRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(self.id.to_string())
            .fetch_all(&svc.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let base_id: BaseId = parse_id(&row.0)?;
            // A base-restricted API token sees only its bases.
            if let Some(token) = &user.token
                && let Some(bases) = &token.grant.base_ids
                && !bases.contains(&base_id)
            {
                continue;
            }
            out.push(BaseNode::from_row(row));
        }
        Ok(out)
    }
}

/// `(base_id, workspace_id, name, deleted, created_at)` of the bases read model.
pub type BaseRow = (String, Option<String>, String, bool, DateTime<Utc>);

/// A base.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct BaseNode {
    /// `app…`.
    pub id: ID,
    /// Its workspace.
    pub workspace_id: Option<ID>,
    /// Name.
    pub name: String,
    /// Whether it is deleted (restorable).
    pub deleted: bool,
    /// Tables as a write left them (`None`: read them from the read model).
    #[graphql(skip)]
    pub preloaded: Option<Vec<TableNode>>,
}

impl BaseNode {
    /// From a row of the bases read model.
    pub fn from_row(row: BaseRow) -> Self {
        Self {
            id: ID(row.0),
            workspace_id: row.1.map(ID),
            name: row.2,
            deleted: row.3,
            preloaded: None,
        }
    }

    /// From the base aggregate.
    pub fn from_aggregate(base: &pyairtable_domain::base::Base) -> Self {
        let id = base
            .id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        Self {
            id: ID(id.clone()),
            workspace_id: base.workspace_id.as_ref().map(|w| ID(w.to_string())),
            name: base.name.clone(),
            deleted: base.deleted,
            preloaded: Some(
                base.tables
                    .iter()
                    .map(|t| TableNode::from_schema(t, &id))
                    .collect(),
            ),
        }
    }
}

#[ComplexObject]
impl BaseNode {
    /// The base's live tables, in order.
    async fn tables(&self, ctx: &Context<'_>) -> ApiResult<Vec<TableNode>> {
        if let Some(tables) = &self.preloaded {
            return Ok(tables.clone());
        }
        let svc = services(ctx)?;
        let sql = format!(
            "SELECT table_id, base_id, name, description, primary_field_id FROM {} \
              WHERE base_id = $1 AND NOT deleted ORDER BY sort_order, table_id",
            svc.view("tables")
        );
        let rows: Vec<TableRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(self.id.to_string())
            .fetch_all(&svc.pool)
            .await?;
        Ok(rows.into_iter().map(TableNode::from_row).collect())
    }
}

/// `(table_id, base_id, name, description, primary_field_id)` of the tables read model.
pub type TableRow = (String, String, String, Option<String>, Option<String>);

/// A table.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct TableNode {
    /// `tbl…`.
    pub id: ID,
    /// Its base.
    pub base_id: ID,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// The primary field.
    pub primary_field_id: Option<ID>,
    /// Fields and views as a write left them (`None`: read them from the read model).
    #[graphql(skip)]
    pub preloaded: Option<(Vec<FieldNode>, Vec<ViewNode>)>,
}

impl TableNode {
    /// From a row of the tables read model.
    pub fn from_row(row: TableRow) -> Self {
        Self {
            id: ID(row.0),
            base_id: ID(row.1),
            name: row.2,
            description: row.3,
            primary_field_id: row.4.map(ID),
            preloaded: None,
        }
    }

    /// From a table schema of the base aggregate.
    pub fn from_schema(table: &TableSchema, base_id: &str) -> Self {
        Self {
            id: ID(table.id.to_string()),
            base_id: ID(base_id.to_owned()),
            name: table.name.clone(),
            description: table.description.clone(),
            primary_field_id: Some(ID(table.primary_field_id.to_string())),
            preloaded: Some((
                table.fields.iter().map(FieldNode::from_def).collect(),
                table.views.iter().map(ViewNode::from_def).collect(),
            )),
        }
    }
}

#[ComplexObject]
impl TableNode {
    /// The table's live fields, in order.
    async fn fields(&self, ctx: &Context<'_>) -> ApiResult<Vec<FieldNode>> {
        if let Some((fields, _)) = &self.preloaded {
            return Ok(fields.clone());
        }
        let svc = services(ctx)?;
        FieldNode::of_table(svc, &self.id).await
    }

    /// The table's views, the default grid view first.
    async fn views(&self, ctx: &Context<'_>) -> ApiResult<Vec<ViewNode>> {
        if let Some((_, views)) = &self.preloaded {
            return Ok(views.clone());
        }
        let svc = services(ctx)?;
        let sql = format!(
            "SELECT view_id, name, view_type, config FROM {} \
              WHERE table_id = $1 AND NOT deleted ORDER BY updated_at, view_id",
            svc.view("views")
        );
        let rows: Vec<(String, String, String, Value)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(self.id.to_string())
            .fetch_all(&svc.pool)
            .await?;
        let mut views: Vec<ViewNode> = rows.into_iter().map(ViewNode::from_row).collect();
        views.sort_by_key(|v| !v.is_default);
        Ok(views)
    }

    /// The table's records: current ones from the read model (with `filter`, `sort` and
    /// paging), or with `asOf` the records as they were at that instant, replayed from the
    /// event store (paging only).
    #[allow(clippy::too_many_arguments)]
    async fn records(
        &self,
        ctx: &Context<'_>,
        as_of: Option<DateTime<Utc>>,
        filter: Option<super::records::RecordFilter>,
        sort: Option<Vec<super::records::RecordSort>>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<super::records::RecordConnection> {
        let svc = services(ctx)?;
        let user = viewer(ctx)?;
        let table_id: TableId = parse_id(&self.id)?;
        let at = super::access::authorize_table(svc, user, &table_id, Action::ReadRecords).await?;
        let first = super::records::page_size(first)?;
        match as_of {
            Some(as_of) => {
                if filter.is_some() || sort.is_some() {
                    return Err(ApiError::validation(
                        "asOf cannot be combined with filter or sort",
                    ));
                }
                history::table_as_of(svc, &at, &table_id, as_of, first, after.as_deref()).await
            }
            None => {
                let look = ctx.look_ahead();
                let want_total = look.field("totalCount").exists();
                super::records::query_records(
                    svc,
                    &at,
                    &table_id,
                    filter.as_ref(),
                    sort.as_deref().unwrap_or_default(),
                    first,
                    after.as_deref(),
                    want_total,
                )
                .await
            }
        }
    }
}

/// A field.
#[derive(SimpleObject, Clone, Debug)]
pub struct FieldNode {
    /// `fld…`.
    pub id: ID,
    /// Name.
    pub name: String,
    /// Airtable's type name (`singleLineText`, `number`, ...).
    #[graphql(name = "type")]
    pub field_type: String,
    /// The type's options, in Airtable's shape.
    pub options: Json<Value>,
    /// Description.
    pub description: Option<String>,
}

impl FieldNode {
    /// From the schema's definition.
    pub fn from_def(def: &FieldDef) -> Self {
        let json = serde_json::to_value(def).unwrap_or(Value::Null);
        Self {
            id: ID(def.id.to_string()),
            name: def.name.clone(),
            field_type: json
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            options: Json(json.get("options").cloned().unwrap_or(Value::Null)),
            description: def.description.clone(),
        }
    }

    /// The live fields of a table from the read model, in order.
    pub async fn of_table(svc: &Services, table_id: &str) -> ApiResult<Vec<Self>> {
        let sql = format!(
            "SELECT field_id, name, field_type, options, description FROM {} \
              WHERE table_id = $1 AND NOT deleted ORDER BY sort_order, field_id",
            svc.view("fields")
        );
        let rows: Vec<(String, String, String, Value, Option<String>)> =
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(table_id.to_owned())
                .fetch_all(&svc.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, field_type, options, description)| Self {
                id: ID(id),
                name,
                field_type,
                options: Json(options),
                description,
            })
            .collect())
    }
}

/// A view.
#[derive(SimpleObject, Clone, Debug)]
pub struct ViewNode {
    /// `viw…`.
    pub id: ID,
    /// Name.
    pub name: String,
    /// Whether it is the table's default grid view.
    pub is_default: bool,
    /// Airtable formula records must satisfy.
    pub filter_formula: Option<String>,
    /// `[{"fieldId": "fld…", "direction": "asc"}]`.
    pub sorts: Json<Value>,
    /// Fields shown, in order (`null`: all).
    pub visible_field_ids: Option<Vec<ID>>,
}

impl ViewNode {
    /// From the schema's definition.
    pub fn from_def(view: &ViewDef) -> Self {
        Self {
            id: ID(view.id.to_string()),
            name: view.name.clone(),
            is_default: view.is_default,
            filter_formula: view.filter_formula.clone(),
            sorts: Json(serde_json::to_value(&view.sorts).unwrap_or(Value::Array(Vec::new()))),
            visible_field_ids: view
                .visible_field_ids
                .as_ref()
                .map(|ids| ids.iter().map(|f| ID(f.to_string())).collect()),
        }
    }

    fn from_row((id, name, _view_type, config): (String, String, String, Value)) -> Self {
        // The directory stores the view definition itself as its config.
        match serde_json::from_value::<ViewDef>(config.clone()) {
            Ok(def) => Self::from_def(&def),
            Err(_) => Self {
                id: ID(id),
                name,
                is_default: config
                    .get("isDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                filter_formula: config
                    .get("filterFormula")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                sorts: Json(
                    config
                        .get("sorts")
                        .cloned()
                        .unwrap_or(Value::Array(Vec::new())),
                ),
                visible_field_ids: config.get("visibleFieldIds").and_then(Value::as_array).map(
                    |ids| {
                        ids.iter()
                            .filter_map(Value::as_str)
                            .map(|s| ID(s.to_owned()))
                            .collect()
                    },
                ),
            },
        }
    }
}

/// A record.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct RecordNode {
    /// `rec…`.
    pub id: ID,
    /// Its table.
    pub table_id: Option<ID>,
    /// Non-empty cells keyed by field id.
    pub cells: Json<Value>,
    /// Its stream version (1 after creation).
    pub version: i64,
    /// Whether it is deleted (restorable).
    pub deleted: bool,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// When a cell last changed.
    pub updated_at: Option<DateTime<Utc>>,
    /// Its workspace, when known (for permission checks of nested fields).
    #[graphql(skip)]
    pub workspace_id: Option<WorkspaceId>,
    /// Its base, when known.
    #[graphql(skip)]
    pub base_id: Option<BaseId>,
    /// Its auto number (ADR 0009), when read from the read model: the value of an
    /// `autoNumber` field's cell.
    #[graphql(skip)]
    pub autonumber: Option<i64>,
}

impl RecordNode {
    /// From the record aggregate (a write's result or a replay).
    pub fn from_aggregate(
        record: &Record,
        workspace_id: Option<WorkspaceId>,
        base_id: Option<BaseId>,
    ) -> Self {
        Self {
            id: ID(record
                .id
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()),
            table_id: record.table_id.as_ref().map(|t| ID(t.to_string())),
            cells: Json(cells_json(&record.cells)),
            version: i64::try_from(record.version).unwrap_or(i64::MAX),
            deleted: record.deleted,
            created_at: record.created_at,
            updated_at: record.last_modified_at.or(record.created_at),
            workspace_id,
            base_id,
            autonumber: None,
        }
    }
}

/// Cells by field id as a JSON object.
pub fn cells_json(cells: &BTreeMap<FieldId, Value>) -> Value {
    Value::Object(
        cells
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<Map<String, Value>>(),
    )
}

#[ComplexObject]
impl RecordNode {
    /// Every version of the record, oldest first: who, when, and each changed cell's old and
    /// new value. Replayed from the record's event stream.
    async fn history(&self, ctx: &Context<'_>) -> ApiResult<Vec<history::RevisionNode>> {
        let svc = services(ctx)?;
        history::record_history(svc, &parse_id(&self.id)?).await
    }

    /// The comments, oldest first (needs the comment-read permission).
    async fn comments(&self, ctx: &Context<'_>) -> ApiResult<Vec<CommentNode>> {
        let svc = services(ctx)?;
        let user = viewer(ctx)?;
        if let Some(workspace_id) = &self.workspace_id {
            authorize_in(
                svc,
                user,
                workspace_id,
                Action::ReadComments,
                self.base_id.as_ref(),
                ("record", &self.id),
            )
            .await?;
        }
        let loaded = svc
            .platform
            .runner()
            .load::<Record>(self.id.as_str())
            .await?;
        Ok(loaded
            .state
            .comments
            .iter()
            .map(|c| CommentNode {
                id: ID(c.id.to_string()),
                author_id: ID(c.author.to_string()),
                text: c.text.clone(),
                created_at: c.created_at,
                updated_at: c.last_updated_at,
            })
            .collect())
    }
}

/// A comment on a record.
#[derive(SimpleObject, Clone, Debug)]
pub struct CommentNode {
    /// `com…`.
    pub id: ID,
    /// Who wrote it.
    pub author_id: ID,
    /// Its text (mentions as `@[usr…]`).
    pub text: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// When it was last edited.
    pub updated_at: Option<DateTime<Utc>>,
}

/// One event of the store, for the audit log, `events` and subscriptions.
#[derive(SimpleObject, Clone, Debug)]
pub struct EventNode {
    /// Position token of the event (use it as `after` to continue from it).
    pub position: String,
    /// The event's id.
    pub event_id: ID,
    /// Its stream, e.g. `record-rec…`.
    pub stream_id: String,
    /// Its version in the stream.
    pub version: i64,
    /// Its type, e.g. `RecordUpdated`.
    pub event_type: String,
    /// Who caused it.
    pub actor: ActorNode,
    /// The workspace it belongs to.
    pub workspace_id: Option<ID>,
    /// Ties together everything one request caused.
    pub correlation_id: String,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
    /// Its payload.
    pub payload: Json<Value>,
}

impl From<&RecordedEvent> for EventNode {
    fn from(e: &RecordedEvent) -> Self {
        Self {
            position: e.position.to_token(),
            event_id: ID(e.event_id.to_string()),
            stream_id: e.stream_id.clone(),
            version: i64::try_from(e.version).unwrap_or(i64::MAX),
            event_type: e.event_type.clone(),
            actor: ActorNode::from(&e.metadata.actor),
            workspace_id: e.metadata.workspace_id.clone().map(ID),
            correlation_id: e.metadata.correlation_id.to_string(),
            recorded_at: e.recorded_at,
            payload: Json(e.payload.clone()),
        }
    }
}

/// Where a write landed.
#[derive(SimpleObject, Clone, Debug)]
pub struct WrittenNode {
    /// The entity written.
    pub id: ID,
    /// Its stream version after the write.
    pub version: i64,
    /// Pass it to a query's `consistencyToken` to read this write.
    pub consistency_token: String,
}

impl<I: std::fmt::Display> From<&pyairtable_commands::Written<I>> for WrittenNode {
    fn from(w: &pyairtable_commands::Written<I>) -> Self {
        Self {
            id: ID(w.id.to_string()),
            version: i64::try_from(w.version).unwrap_or(i64::MAX),
            consistency_token: w.position.clone(),
        }
    }
}

/// A workspace mutation's result.
#[derive(SimpleObject, Clone, Debug)]
pub struct WorkspacePayload {
    /// The workspace after the write (`null` when the caller is no longer a member).
    pub workspace: Option<WorkspaceNode>,
    /// Its stream version.
    pub version: i64,
    /// Pass it to a query's `consistencyToken` to read this write.
    pub consistency_token: String,
}

/// A base mutation's result.
#[derive(SimpleObject, Clone, Debug)]
pub struct BasePayload {
    /// The base after the write, with its tables.
    pub base: BaseNode,
    /// The base's stream version.
    pub version: i64,
    /// Pass it to a query's `consistencyToken` to read this write.
    pub consistency_token: String,
}

/// A table mutation's result.
#[derive(SimpleObject, Clone, Debug)]
pub struct TablePayload {
    /// The table after the write (`null` once deleted).
    pub table: Option<TableNode>,
    /// The base's stream version.
    pub version: i64,
    /// Pass it to a query's `consistencyToken` to read this write.
    pub consistency_token: String,
}

/// A field mutation's result.
#[derive(SimpleObject, Clone, Debug)]
pub struct FieldPayload {
    /// The field after the write (`null` once deleted).
    pub field: Option<FieldNode>,
    /// The table it belongs to, after the write.
    pub table: Option<TableNode>,
    /// The base's stream version.
    pub version: i64,
    /// Pass it to a query's `consistencyToken` to read this write.
    pub consistency_token: String,
}

/// A view mutation's result.
#[derive(SimpleObject, Clone, Debug)]
pub struct ViewPayload {
    /// The view after the write (`null` once deleted).
    pub view: Option<ViewNode>,
    /// The base's stream version.
    pub version: i64,
    /// Pass it to a query's `consistencyToken` to read this write.
    pub consistency_token: String,
}

/// A record batch's result.
#[derive(SimpleObject, Clone, Debug)]
pub struct RecordsPayload {
    /// The records written, in request order, each with its version.
    pub records: Vec<RecordNode>,
    /// Pass it to a query's `consistencyToken` to read this write.
    pub consistency_token: String,
}

/// A comment mutation's result.
#[derive(SimpleObject, Clone, Debug)]
pub struct CommentPayload {
    /// The comment.
    pub comment_id: ID,
    /// The record it belongs to.
    pub record_id: ID,
    /// The record's stream version.
    pub version: i64,
    /// Pass it to a query's `consistencyToken` to read this write.
    pub consistency_token: String,
}

/// A new API token. The secret is shown once.
#[derive(SimpleObject, Clone, Debug)]
pub struct ApiTokenPayload {
    /// `pat…`.
    pub token_id: ID,
    /// The full token to send as `Authorization: Bearer <token>`; shown only now.
    pub token: Option<String>,
    /// The token stream's version.
    pub version: i64,
    /// Pass it to a query's `consistencyToken` to read this write.
    pub consistency_token: String,
}
