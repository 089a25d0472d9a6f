//! Subscriptions, fed by the process's realtime hub (one NATS consumer shared by every
//! subscriber), and the rebuild progress bus behind `projectionProgress`.
//!
//! Each subscription is authorised when it starts. While it runs, every change to a watched
//! workspace (a member removed, a role changed, the workspace archived) reaches it in feed order
//! through the same hub stream as the data, and makes it check access again before it delivers
//! anything further: a removed member gets no event committed after the removal. Access, and
//! the API token the connection signed in with, are also checked again at most every
//! [`REAUTHORIZE_EVERY`], so a revoked token's subscriptions end too.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_graphql::{Context, Enum, ID, Json, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use pyairtable_commands::Authenticated;
use pyairtable_domain::ids::{TableId, WorkspaceId};
use pyairtable_domain::permissions::Action;
use pyairtable_domain::record::RecordEvent;
use pyairtable_eventstore::RecordedEvent;
use pyairtable_projections::{RebuildPhase, RebuildProgress};
use serde_json::Value;
use sqlx::AssertSqlSafe;

use super::access::{authorize_in, authorize_table, parse_id, require_admin};
use super::context::{ApiTokenCredential, Services, parse_position, services, viewer, wait_for};
use super::error::{ApiError, ApiResult};
use super::history::{CellChangeNode, EventFilterInput};
use super::types::{ActorNode, EventNode};
use crate::realtime::EventFilter;

/// How often a running subscription checks that its caller still has access.
pub const REAUTHORIZE_EVERY: Duration = Duration::from_secs(2);

/// The subscription root.
#[derive(Default)]
pub struct SubscriptionRoot;

/// What happened to a record.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum RecordChangeKind {
    /// Created.
    Created,
    /// Cells changed (including reverts and link changes made from the other side).
    Updated,
    /// Deleted.
    Deleted,
    /// Restored after a deletion.
    Restored,
}

/// One change to a record of the watched table.
#[derive(SimpleObject, Clone, Debug)]
pub struct RecordChange {
    /// What happened.
    pub kind: RecordChangeKind,
    /// The record.
    pub record_id: ID,
    /// The record's version after the change.
    pub version: i64,
    /// The cells that changed, with old and new values where the event carries them.
    pub changes: Vec<CellChangeNode>,
    /// Fields whose cells changed.
    pub changed_field_ids: Vec<ID>,
    /// For `CREATED`: the record's cells.
    pub cells: Option<Json<Value>>,
    /// Who did it.
    pub actor: ActorNode,
    /// When.
    pub recorded_at: DateTime<Utc>,
    /// Position token of the event.
    pub position: String,
}

/// Rebuild step.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum RebuildPhaseNode {
    /// Replaying the store into the shadow copy.
    Replaying,
    /// Catching up and switching.
    Switching,
    /// Switched.
    Done,
    /// The rebuild stopped with an error (see the server log).
    Failed,
}

/// Progress of a rebuild.
#[derive(SimpleObject, Clone, Debug)]
pub struct ProjectionProgress {
    /// The projection.
    pub projection: String,
    /// The generation being filled.
    pub generation: i64,
    /// The step.
    pub phase: RebuildPhaseNode,
    /// Events replayed so far.
    pub done: i64,
    /// Events in the store when the rebuild started.
    pub total: i64,
    /// Events per second.
    pub rate: f64,
    /// Seconds left at the current rate.
    pub eta_seconds: Option<f64>,
}

impl From<&RebuildProgress> for ProjectionProgress {
    fn from(p: &RebuildProgress) -> Self {
        Self {
            projection: p.projection.clone(),
            generation: p.generation,
            phase: match p.phase {
                RebuildPhase::Replaying => RebuildPhaseNode::Replaying,
                RebuildPhase::Switching => RebuildPhaseNode::Switching,
                RebuildPhase::Done => RebuildPhaseNode::Done,
                RebuildPhase::Failed => RebuildPhaseNode::Failed,
            },
            done: i64::try_from(p.done).unwrap_or(i64::MAX),
            total: i64::try_from(p.total).unwrap_or(i64::MAX),
            rate: p.rate,
            eta_seconds: p.eta.map(|d| d.as_secs_f64()),
        }
    }
}

/// The answer of `rebuildProjection`: the rebuild runs in the background.
#[derive(SimpleObject, Clone, Debug)]
pub struct RebuildResult {
    /// The projection being rebuilt.
    pub projection: String,
    /// Whether the rebuild was started (follow it with `projectionProgress`).
    pub started: bool,
}

/// Starts a rebuild in the background; `projectionProgress` follows it (the projections
/// runtime publishes every report, and `Done` or `Failed` at the end, on NATS).
///
/// # Errors
/// `NOT_FOUND` for an unknown projection, `CONFLICT` when one is already rebuilding.
pub async fn rebuild(svc: &Services, name: &str) -> ApiResult<RebuildResult> {
    let status = svc.projections.status_of(name).await?;
    if status.state == pyairtable_projections::ProjectionState::Rebuilding {
        return Err(ApiError::Conflict(format!(
            "a rebuild of {name} is already running"
        )));
    }
    let projections = svc.projections.clone();
    let name = name.to_owned();
    let projection = name.clone();
    tokio::spawn(async move {
        match projections.rebuild(&name, |_| {}).await {
            Ok(report) => {
                tracing::info!(projection = %name, generation = report.generation, events = report.events, "rebuild finished");
            }
            Err(error) => tracing::error!(projection = %name, %error, "rebuild failed"),
        }
    });
    Ok(RebuildResult {
        projection,
        started: true,
    })
}

/// Re-checks a caller's access while a subscription runs.
struct Guard {
    svc: Services,
    user: Authenticated,
    /// The API token the connection signed in with, if any.
    api_token: Option<ApiTokenCredential>,
    workspaces: Vec<(WorkspaceId, Option<pyairtable_domain::ids::BaseId>)>,
    action: Action,
    checked: Instant,
}

impl Guard {
    fn new(
        svc: &Services,
        ctx: &Context<'_>,
        user: Authenticated,
        workspaces: Vec<(WorkspaceId, Option<pyairtable_domain::ids::BaseId>)>,
        action: Action,
    ) -> Self {
        Self {
            svc: svc.clone(),
            user,
            api_token: ctx.data::<ApiTokenCredential>().ok().cloned(),
            workspaces,
            action,
            checked: Instant::now(),
        }
    }

    /// Whether `event` changes one of the guarded workspaces (its membership, roles or state).
    fn changes_access(&self, event: &RecordedEvent) -> bool {
        use pyairtable_projections::names::{aggregate_id, aggregate_kind};
        aggregate_kind(&event.stream_id) == "workspace"
            && self
                .workspaces
                .iter()
                .any(|(w, _)| w.as_str() == aggregate_id(&event.stream_id))
    }

    /// Checks access before `event` (or anything after it) is delivered: at once when the event
    /// changes a guarded workspace, otherwise when the last check is older than
    /// [`REAUTHORIZE_EVERY`]. Returns the error that ends the subscription when access is gone.
    async fn check(&mut self, event: &RecordedEvent) -> Option<async_graphql::Error> {
        if !self.changes_access(event) && self.checked.elapsed() < REAUTHORIZE_EVERY {
            return None;
        }
        if let Some(ApiTokenCredential(token)) = &self.api_token
            && self
                .svc
                .platform
                .auth()
                .verify_api_token(token)
                .await
                .is_err()
        {
            return Some(
                ApiError::Unauthenticated(
                    "the API token was revoked or its account deactivated; subscription ended"
                        .to_owned(),
                )
                .into(),
            );
        }
        for (workspace, base) in &self.workspaces {
            let allowed = authorize_in(
                &self.svc,
                &self.user,
                workspace,
                self.action,
                base.as_ref(),
                ("workspace", workspace.as_str()),
            )
            .await;
            if allowed.is_err() {
                return Some(
                    ApiError::Forbidden(
                        "access to the workspace was withdrawn; subscription ended".to_owned(),
                    )
                    .into(),
                );
            }
        }
        self.checked = Instant::now();
        None
    }
}

/// Whether a record event belongs to the watched table: creations say so, other events are
/// looked up once per record in the records read model (and remembered).
async fn in_table(
    svc: &Services,
    known: &mut HashMap<String, bool>,
    table_id: &TableId,
    event: &RecordedEvent,
    decoded: &RecordEvent,
) -> bool {
    let record_id = pyairtable_projections::names::aggregate_id(&event.stream_id).to_owned();
    if let RecordEvent::RecordCreated { table_id: t, .. } = decoded {
        let ours = t == table_id;
        known.insert(record_id, ours);
        return ours;
    }
    if let Some(ours) = known.get(&record_id) {
        return *ours;
    }
    let sql = format!(
        "SELECT table_id FROM {} WHERE record_id = $1",
        svc.view("records")
    );
    let found: Option<Option<String>> = sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(record_id.clone())
        .fetch_optional(&svc.pool)
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "looking up a record's table for a subscription");
            None
        });
    let ours = found.flatten().is_some_and(|t| t == table_id.as_str());
    known.insert(record_id, ours);
    ours
}

fn record_change(event: &RecordedEvent, decoded: RecordEvent) -> Option<RecordChange> {
    let (kind, changes, changed, cells) = match decoded {
        RecordEvent::RecordCreated { cells, .. } => {
            let changed = cells.keys().map(|f| ID(f.to_string())).collect();
            (
                RecordChangeKind::Created,
                Vec::new(),
                changed,
                Some(Json(super::types::cells_json(&cells))),
            )
        }
        RecordEvent::RecordUpdated { changes, .. }
        | RecordEvent::RecordReverted { changes, .. } => {
            let changed = changes.iter().map(|c| ID(c.field_id.to_string())).collect();
            let changes = changes
                .into_iter()
                .map(|c| CellChangeNode {
                    field_id: ID(c.field_id.to_string()),
                    old: Json(c.old),
                    new: Json(c.new),
                })
                .collect();
            (RecordChangeKind::Updated, changes, changed, None)
        }
        RecordEvent::LinksChanged { field_id, .. } => (
            RecordChangeKind::Updated,
            Vec::new(),
            vec![ID(field_id.to_string())],
            None,
        ),
        RecordEvent::RecordDeleted { .. } => {
            (RecordChangeKind::Deleted, Vec::new(), Vec::new(), None)
        }
        RecordEvent::RecordRestored { .. } => {
            (RecordChangeKind::Restored, Vec::new(), Vec::new(), None)
        }
        RecordEvent::CommentAdded { .. }
        | RecordEvent::CommentEdited { .. }
        | RecordEvent::CommentDeleted { .. } => return None,
    };
    Some(RecordChange {
        kind,
        record_id: ID(pyairtable_projections::names::aggregate_id(&event.stream_id).to_owned()),
        version: i64::try_from(event.version).unwrap_or(i64::MAX),
        changes,
        changed_field_ids: changed,
        cells,
        actor: ActorNode::from(&event.metadata.actor),
        recorded_at: event.recorded_at,
        position: event.position.to_token(),
    })
}

fn decode_record_event(event: &RecordedEvent) -> Option<RecordEvent> {
    serde_json::from_value::<RecordEvent>(event.payload.clone()).ok()
}

/// The workspaces whose events a non-admin may follow: those given (each checked), or every
/// workspace where the caller may read the audit log.
async fn event_workspaces(
    svc: &Services,
    user: &Authenticated,
    asked: Option<&[ID]>,
) -> ApiResult<Vec<WorkspaceId>> {
    let candidates: Vec<String> = match asked {
        Some(ids) => ids.iter().map(|id| id.to_string()).collect(),
        None => {
            let sql = format!(
                "SELECT workspace_id FROM {} WHERE user_id = $1",
                svc.view("members")
            );
            sqlx::query_scalar(AssertSqlSafe(sql))
                .bind(user.user_id.to_string())
                .fetch_all(&svc.pool)
                .await?
        }
    };
    let mut out = Vec::new();
    for id in candidates {
        let workspace: WorkspaceId = parse_id(&id)?;
        match authorize_in(
            svc,
            user,
            &workspace,
            Action::ReadAuditLog,
            None,
            ("workspace", &id),
        )
        .await
        {
            Ok(_) => out.push(workspace),
            // A workspace named explicitly must be readable; found by listing, it is skipped.
            Err(error) if asked.is_some() => return Err(error),
            Err(ApiError::NotFound(_) | ApiError::Forbidden(_)) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(out)
}

#[Subscription]
impl SubscriptionRoot {
    /// Changes to the records of a table as they happen: created, updated (with the changed
    /// cells), deleted, restored.
    async fn record_changes(
        &self,
        ctx: &Context<'_>,
        table_id: ID,
        consistency_token: Option<String>,
    ) -> async_graphql::Result<BoxStream<'static, async_graphql::Result<RecordChange>>> {
        wait_for(services(ctx)?, consistency_token.as_deref(), &["directory"]).await?;
        Ok(record_changes(ctx, table_id).await?)
    }

    /// Events after a position token (or from now), read from the store and then live, with no
    /// gap and no duplicate at the switch. Non-admins get the events of workspaces where they
    /// may read the audit log (all of them, or those named in the filter).
    async fn events(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        filter: Option<EventFilterInput>,
    ) -> async_graphql::Result<BoxStream<'static, async_graphql::Result<EventNode>>> {
        Ok(events(ctx, after, filter).await?)
    }

    /// Progress of the rebuilds of a projection, wherever they were started: this server,
    /// another one, or `pyairtable projections rebuild` (instance admins).
    async fn projection_progress(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<BoxStream<'static, ProjectionProgress>> {
        Ok(projection_progress(ctx, name).await?)
    }
}

async fn record_changes(
    ctx: &Context<'_>,
    table_id: ID,
) -> ApiResult<BoxStream<'static, async_graphql::Result<RecordChange>>> {
    let svc = services(ctx)?.clone();
    let user = viewer(ctx)?.clone();
    let table: TableId = parse_id(&table_id)?;
    let at = authorize_table(&svc, &user, &table, Action::ReadRecords).await?;
    // The workspace's own events come through too, in feed order with the records', so a
    // membership change is seen before any record event committed after it.
    let filter = EventFilter::for_workspaces([at.workspace_id.to_string()])
        .with_aggregate_kinds(["record", "workspace"]);
    let live: BoxStream<'static, _> = Box::pin(svc.hub.live(filter));
    let guard = Guard::new(
        &svc,
        ctx,
        user,
        vec![(at.workspace_id.clone(), at.base_id.clone())],
        Action::ReadRecords,
    );
    let state = (
        live,
        svc,
        guard,
        HashMap::<String, bool>::new(),
        table,
        false,
    );
    Ok(futures::stream::unfold(
        state,
        |(mut live, svc, mut guard, mut known, table, ended)| async move {
            if ended {
                return None;
            }
            loop {
                let event = match live.next().await? {
                    Ok(event) => event,
                    Err(crate::realtime::RealtimeError::Closed) => return None,
                    Err(error) => {
                        tracing::warn!(%error, "recordChanges: the hub reported an error");
                        continue;
                    }
                };
                if let Some(ended) = guard.check(&event).await {
                    return Some((Err(ended), (live, svc, guard, known, table, true)));
                }
                if pyairtable_projections::names::aggregate_kind(&event.stream_id) != "record" {
                    continue;
                }
                let Some(decoded) = decode_record_event(&event) else {
                    continue;
                };
                if !in_table(&svc, &mut known, &table, &event, &decoded).await {
                    continue;
                }
                if let Some(change) = record_change(&event, decoded) {
                    return Some((Ok(change), (live, svc, guard, known, table, false)));
                }
            }
        },
    )
    .boxed())
}

async fn events(
    ctx: &Context<'_>,
    after: Option<String>,
    filter: Option<EventFilterInput>,
) -> ApiResult<BoxStream<'static, async_graphql::Result<EventNode>>> {
    let svc = services(ctx)?.clone();
    let user = viewer(ctx)?.clone();
    let filter = filter.unwrap_or_default();
    let admin = require_admin(&user).is_ok();
    let (base_filter, workspaces) = if admin {
        let mut f = EventFilter::all_for_admin();
        if let Some(ids) = &filter.workspace_ids {
            f = EventFilter::for_workspaces(ids.iter().map(|id| id.to_string()));
        }
        (f, Vec::new())
    } else {
        let allowed = event_workspaces(&svc, &user, filter.workspace_ids.as_deref()).await?;
        (
            EventFilter::for_workspaces(allowed.iter().map(ToString::to_string)),
            allowed,
        )
    };
    let mut wanted = base_filter.clone();
    if let Some(s) = &filter.stream_ids {
        wanted = wanted.with_stream_ids(s.iter().cloned());
    }
    if let Some(k) = &filter.aggregate_kinds {
        wanted = wanted.with_aggregate_kinds(k.iter().cloned());
    }
    if let Some(t) = &filter.event_types {
        wanted = wanted.with_event_types(t.iter().cloned());
    }
    // A guarded subscription must see its workspaces' own events whatever the caller asked
    // for, so the hub delivers every event of those workspaces (it filters in memory either
    // way) and the caller's restrictions are applied here, after the access check.
    let hub_filter = if workspaces.is_empty() {
        wanted.clone()
    } else {
        base_filter
    };
    let events: BoxStream<'static, _> = match after {
        Some(token) => {
            let after = parse_position(&token, "after")?;
            Box::pin(svc.hub.catch_up_then_live(after, hub_filter))
        }
        None => Box::pin(svc.hub.live(hub_filter)),
    };
    let guard = Guard::new(
        &svc,
        ctx,
        user,
        workspaces.into_iter().map(|w| (w, None)).collect(),
        Action::ReadAuditLog,
    );
    Ok(futures::stream::unfold(
        (events, guard, wanted, false),
        |(mut events, mut guard, wanted, ended)| async move {
            if ended {
                return None;
            }
            loop {
                match events.next().await? {
                    Ok(event) => {
                        if let Some(ended) = guard.check(&event).await {
                            return Some((Err(ended), (events, guard, wanted, true)));
                        }
                        if !wanted.matches(&event) {
                            continue;
                        }
                        return Some((Ok(EventNode::from(&event)), (events, guard, wanted, false)));
                    }
                    Err(crate::realtime::RealtimeError::Closed) => return None,
                    Err(error) => {
                        tracing::warn!(%error, "events: the hub reported an error");
                    }
                }
            }
        },
    )
    .boxed())
}

async fn projection_progress(
    ctx: &Context<'_>,
    name: String,
) -> ApiResult<BoxStream<'static, ProjectionProgress>> {
    let svc = services(ctx)?;
    require_admin(viewer(ctx)?)?;
    // An unknown name is an error now, not a silent stream that never yields.
    pyairtable_projections::backend_of(&name)?;
    let reports = svc.projections.watch_rebuild(&name).await?;
    Ok(reports.map(|p| ProjectionProgress::from(&p)).boxed())
}
