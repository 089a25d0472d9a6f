//! The query root. Every query takes an optional `consistencyToken` (from a mutation) and waits
//! for the read models it reads to reach it; every one checks membership and role.

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use pyairtable_domain::base::Base;
use pyairtable_domain::ids::{BaseId, RecordId, TableId, WorkspaceId};
use pyairtable_domain::permissions::Action;
use pyairtable_domain::user::User;
use pyairtable_eventstore::StreamId;
use sqlx::AssertSqlSafe;

use super::access::{
    authorize_base, authorize_in, authorize_record, authorize_table, parse_id, require_admin,
};
use super::context::{Services, services, viewer, wait_for};
use super::error::{ApiError, ApiResult};
use super::history::{self, AsOf, AuditFilter, EventConnection, EventFilterInput, VerifyNode};
use super::records::{RecordConnection, RecordFilter, RecordSort, page_size, query_records};
use super::types::{BaseNode, RecordNode, TableNode, UserNode, WorkspaceNode};

/// The query root.
#[derive(Default)]
pub struct QueryRoot;

/// A projection's health.
#[derive(SimpleObject, Clone, Debug)]
pub struct ProjectionNode {
    /// Its name.
    pub name: String,
    /// `sql` or `redis`.
    pub backend: String,
    /// The generation queries read.
    pub generation: i64,
    /// Position token it has reached.
    pub position: String,
    /// Events in the feed it has not applied yet.
    pub lag_events: i64,
    /// Age of the oldest event not yet applied, in seconds.
    pub lag_seconds: f64,
    /// `running`, `halted` or `rebuilding`.
    pub state: String,
    /// Parked (poison) events not yet resolved.
    pub parked: i64,
}

impl From<pyairtable_projections::ProjectionStatus> for ProjectionNode {
    fn from(s: pyairtable_projections::ProjectionStatus) -> Self {
        Self {
            name: s.name,
            backend: format!("{:?}", s.backend).to_lowercase(),
            generation: s.generation,
            position: s.position.to_token(),
            lag_events: i64::try_from(s.lag_events).unwrap_or(i64::MAX),
            lag_seconds: s.lag_seconds,
            state: s.state.as_str().to_owned(),
            parked: i64::try_from(s.parked).unwrap_or(i64::MAX),
        }
    }
}

/// The workspace a stream belongs to, from its first event's metadata (the event store is the
/// authority; no read model is needed).
async fn stream_workspace(svc: &Services, stream: &StreamId) -> ApiResult<Option<Option<String>>> {
    let first = svc
        .store
        .read_stream(stream, 1, pyairtable_eventstore::Direction::Forward, 1)
        .await?;
    Ok(first.first().map(|e| e.metadata.workspace_id.clone()))
}

#[Object]
impl QueryRoot {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> ApiResult<UserNode> {
        let svc = services(ctx)?;
        let user = viewer(ctx)?;
        // The account from its own stream: always current, even right after registration.
        let loaded = svc
            .platform
            .runner()
            .load::<User>(user.user_id.as_str())
            .await?;
        let Some(account) = loaded.state.account() else {
            return Err(ApiError::not_found("user", user.user_id.as_str()));
        };
        Ok(UserNode {
            id: ID(account.id.to_string()),
            email: Some(account.email.as_str().to_owned()),
            display_name: account.display_name.clone(),
            is_admin: account.is_admin,
            active: account.active,
        })
    }

    /// The workspaces the caller is a member of (archived ones included).
    async fn workspaces(
        &self,
        ctx: &Context<'_>,
        consistency_token: Option<String>,
    ) -> ApiResult<Vec<WorkspaceNode>> {
        let svc = services(ctx)?;
        let user = viewer(ctx)?;
        wait_for(svc, consistency_token.as_deref(), &["directory"]).await?;
        let sql = format!(
            "SELECT m.workspace_id FROM {} m WHERE m.user_id = $1 ORDER BY m.joined_at, m.workspace_id",
            svc.view("members")
        );
        let ids: Vec<String> = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(user.user_id.to_string())
            .fetch_all(&svc.pool)
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let workspace_id: WorkspaceId = parse_id(&id)?;
            // The membership is confirmed on the workspace itself: the read model may lag a
            // removal.
            match authorize_in(
                svc,
                user,
                &workspace_id,
                Action::ReadMembers,
                None,
                ("workspace", &id),
            )
            .await
            {
                Ok(state) => out.push(WorkspaceNode::from_state(&state, Some(&user.user_id))),
                Err(ApiError::NotFound(_) | ApiError::Forbidden(_)) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(out)
    }

    /// One workspace, with its members and bases.
    async fn workspace(
        &self,
        ctx: &Context<'_>,
        id: ID,
        consistency_token: Option<String>,
    ) -> ApiResult<WorkspaceNode> {
        let svc = services(ctx)?;
        let user = viewer(ctx)?;
        let workspace_id: WorkspaceId = parse_id(&id)?;
        wait_for(svc, consistency_token.as_deref(), &["directory"]).await?;
        let state = authorize_in(
            svc,
            user,
            &workspace_id,
            Action::ReadMembers,
            None,
            ("workspace", &id),
        )
        .await?;
        Ok(WorkspaceNode::from_state(&state, Some(&user.user_id)))
    }

    /// One base, with its tables, fields and views.
    async fn base(
        &self,
        ctx: &Context<'_>,
        id: ID,
        consistency_token: Option<String>,
    ) -> ApiResult<BaseNode> {
        let svc = services(ctx)?;
        let user = viewer(ctx)?;
        let base_id: BaseId = parse_id(&id)?;
        wait_for(svc, consistency_token.as_deref(), &["directory"]).await?;
        authorize_base(svc, user, &base_id, Action::ReadSchema).await?;
        let sql = format!(
            "SELECT base_id, workspace_id, name, deleted, created_at FROM {} WHERE base_id = $1",
            svc.view("bases")
        );
        let row: Option<super::types::BaseRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(base_id.to_string())
            .fetch_optional(&svc.pool)
            .await?;
        match row {
            Some(row) => Ok(BaseNode::from_row(row)),
            None => {
                // Located, so it exists; the schema comes from the base's own stream.
                let loaded = svc.platform.runner().load::<Base>(base_id.as_str()).await?;
                Ok(BaseNode::from_aggregate(&loaded.state))
            }
        }
    }

    /// One table, with its fields, views and records.
    async fn table(
        &self,
        ctx: &Context<'_>,
        id: ID,
        consistency_token: Option<String>,
    ) -> ApiResult<TableNode> {
        let svc = services(ctx)?;
        let user = viewer(ctx)?;
        let table_id: TableId = parse_id(&id)?;
        wait_for(svc, consistency_token.as_deref(), &["directory"]).await?;
        authorize_table(svc, user, &table_id, Action::ReadSchema).await?;
        let sql = format!(
            "SELECT table_id, base_id, name, description, primary_field_id FROM {} \
              WHERE table_id = $1 AND NOT deleted",
            svc.view("tables")
        );
        let row: Option<super::types::TableRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(table_id.to_string())
            .fetch_optional(&svc.pool)
            .await?;
        row.map(TableNode::from_row)
            .ok_or_else(|| ApiError::not_found("table", &id))
    }

    /// A page of a table's live records, filtered on any field with typed operators and
    /// sorted by any fields. `first` is at most 100.
    #[allow(clippy::too_many_arguments)]
    async fn records(
        &self,
        ctx: &Context<'_>,
        table_id: ID,
        filter: Option<RecordFilter>,
        sort: Option<Vec<RecordSort>>,
        first: Option<i32>,
        after: Option<String>,
        consistency_token: Option<String>,
    ) -> ApiResult<RecordConnection> {
        let svc = services(ctx)?;
        let user = viewer(ctx)?;
        let table: TableId = parse_id(&table_id)?;
        let first = page_size(first)?;
        wait_for(svc, consistency_token.as_deref(), &["records", "directory"]).await?;
        let at = authorize_table(svc, user, &table, Action::ReadRecords).await?;
        let want_total = ctx.look_ahead().field("totalCount").exists();
        query_records(
            svc,
            &at,
            &table,
            filter.as_ref(),
            sort.as_deref().unwrap_or_default(),
            first,
            after.as_deref(),
            want_total,
        )
        .await
    }

    /// One record: current (from the read model), or as it was at `asOf` or after `version`
    /// (replayed from its event stream). `null` when it did not exist at that point.
    async fn record(
        &self,
        ctx: &Context<'_>,
        id: ID,
        as_of: Option<DateTime<Utc>>,
        version: Option<i64>,
        consistency_token: Option<String>,
    ) -> ApiResult<Option<RecordNode>> {
        let svc = services(ctx)?;
        let user = viewer(ctx)?;
        let record_id: RecordId = parse_id(&id)?;
        wait_for(svc, consistency_token.as_deref(), &["records"]).await?;
        let at = authorize_record(svc, user, &record_id, Action::ReadRecords).await?;
        let as_of = match (as_of, version) {
            (Some(_), Some(_)) => {
                return Err(ApiError::validation("give asOf or version, not both"));
            }
            (Some(t), None) => Some(AsOf::Time(t)),
            (None, Some(v)) => {
                Some(AsOf::Version(u64::try_from(v).map_err(|_| {
                    ApiError::validation("version must be positive")
                })?))
            }
            (None, None) => None,
        };
        if let Some(as_of) = as_of {
            return history::record_as_of(svc, &at, &record_id, as_of).await;
        }
        let sql = format!(
            "SELECT record_id, table_id, cells, version, deleted, created_at, updated_at, autonumber \
               FROM {} WHERE record_id = $1",
            svc.view("records")
        );
        type Row = (
            String,
            Option<String>,
            serde_json::Value,
            i64,
            bool,
            DateTime<Utc>,
            DateTime<Utc>,
            i64,
        );
        let row: Option<Row> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(record_id.to_string())
            .fetch_optional(&svc.pool)
            .await?;
        let mut node = row.map(
            |(id, table, cells, version, deleted, created_at, updated_at, autonumber)| RecordNode {
                id: ID(id),
                table_id: table.map(ID),
                cells: async_graphql::Json(cells),
                version,
                deleted,
                created_at: Some(created_at),
                updated_at: Some(updated_at),
                workspace_id: Some(at.workspace_id.clone()),
                base_id: at.base_id.clone(),
                autonumber: Some(autonumber),
            },
        );
        if let Some(node) = node.as_mut().filter(|n| !n.deleted) {
            super::records::fill_computed(svc, &mut [node]).await?;
        }
        Ok(node)
    }

    /// A workspace's audit log: who did what, when (owners and creators).
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        filter: Option<AuditFilter>,
        first: Option<i32>,
        after: Option<String>,
        consistency_token: Option<String>,
    ) -> ApiResult<EventConnection> {
        let svc = services(ctx)?;
        let user = viewer(ctx)?;
        let workspace: WorkspaceId = parse_id(&workspace_id)?;
        let first = page_size(first)?;
        wait_for(svc, consistency_token.as_deref(), &["audit_log"]).await?;
        authorize_in(
            svc,
            user,
            &workspace,
            Action::ReadAuditLog,
            None,
            ("workspace", &workspace_id),
        )
        .await?;
        history::audit_log(
            svc,
            &workspace,
            &filter.unwrap_or_default(),
            first,
            after.as_deref(),
        )
        .await
    }

    /// Recomputes a stream's hash chain and reports the first broken link (workspace owners
    /// and creators for the workspace's streams; instance admins for any stream).
    async fn verify_stream(&self, ctx: &Context<'_>, stream_id: String) -> ApiResult<VerifyNode> {
        let svc = services(ctx)?;
        let user = viewer(ctx)?;
        let stream = StreamId::parse(&stream_id)
            .map_err(|_| ApiError::validation(format!("{stream_id:?} is not a stream id")))?;
        let admin = require_admin(user).is_ok();
        if !admin {
            match stream_workspace(svc, &stream).await? {
                Some(Some(workspace)) => {
                    let workspace_id: WorkspaceId = parse_id(&workspace)?;
                    authorize_in(
                        svc,
                        user,
                        &workspace_id,
                        Action::VerifyStream,
                        None,
                        ("stream", &stream_id),
                    )
                    .await?;
                }
                _ => return Err(ApiError::not_found("stream", &stream_id)),
            }
        }
        let report = svc.store.verify_stream(&stream).await?;
        if report.events_checked == 0 {
            return Err(ApiError::not_found("stream", &stream_id));
        }
        Ok(VerifyNode {
            stream_id: report.stream,
            events_checked: i64::try_from(report.events_checked).unwrap_or(i64::MAX),
            ok: report.first_broken.is_none(),
            broken_at_version: report
                .first_broken
                .as_ref()
                .map(|b| i64::try_from(b.version).unwrap_or(i64::MAX)),
            reason: report.first_broken.as_ref().map(|b| {
                serde_json::to_value(&b.reason).map_or_else(
                    |_| "broken".to_owned(),
                    |v| v["kind"].as_str().unwrap_or("broken").to_owned(),
                )
            }),
        })
    }

    /// The global event feed after a position token (instance admins).
    async fn events(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        filter: Option<EventFilterInput>,
        first: Option<i32>,
    ) -> ApiResult<EventConnection> {
        let svc = services(ctx)?;
        require_admin(viewer(ctx)?)?;
        let first = page_size(first)?;
        history::feed(svc, after.as_deref(), &filter.unwrap_or_default(), first).await
    }

    /// Every projection's position, lag, state and parked events (instance admins).
    async fn projections(&self, ctx: &Context<'_>) -> ApiResult<Vec<ProjectionNode>> {
        let svc = services(ctx)?;
        require_admin(viewer(ctx)?)?;
        Ok(svc
            .projections
            .status()
            .await?
            .into_iter()
            .map(ProjectionNode::from)
            .collect())
    }
}
