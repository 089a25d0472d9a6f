//! Audit and time travel: a record's versions, a record or a table as of an instant or a
//! version (replayed from the event store with the domain's own fold), the workspace audit
//! log, the admin event feed and hash-chain verification.

use async_graphql::{ID, InputObject, Json, SimpleObject};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use pyairtable_domain::Aggregate;
use pyairtable_domain::ids::{RecordId, TableId, WorkspaceId};
use pyairtable_domain::record::Record;
use pyairtable_eventstore::{Position, RecordedEvent};
use serde_json::Value;
use sqlx::{AssertSqlSafe, Postgres, QueryBuilder};

use super::access::Location;
use super::context::{Services, parse_position};
use super::error::{ApiError, ApiResult};
use super::records::{RecordConnection, RecordEdge, connection};
use super::types::{ActorNode, EventNode, RecordNode};

/// One cell's change.
#[derive(SimpleObject, Clone, Debug)]
pub struct CellChangeNode {
    /// The field.
    pub field_id: ID,
    /// The value before (`null`: empty).
    pub old: Json<Value>,
    /// The value after (`null`: empty).
    pub new: Json<Value>,
}

/// One version of a record.
#[derive(SimpleObject, Clone, Debug)]
pub struct RevisionNode {
    /// The version this event made (1 is the creation).
    pub version: i64,
    /// What happened (`RecordCreated`, `RecordUpdated`, ...).
    pub event_type: String,
    /// Who did it.
    pub actor: ActorNode,
    /// When.
    pub recorded_at: DateTime<Utc>,
    /// Each cell that changed, with its old and new value.
    pub changes: Vec<CellChangeNode>,
    /// Whether the record was deleted after this version.
    pub deleted: bool,
    /// Position token of the event.
    pub position: String,
}

async fn replay(
    svc: &Services,
    record_id: &RecordId,
) -> ApiResult<Vec<(RecordedEvent, pyairtable_domain::record::RecordEvent)>> {
    Ok(svc
        .platform
        .runner()
        .history::<Record>(record_id.as_str())
        .await?)
}

/// Every version of a record, each with the cells it changed, computed by folding the stream
/// with the domain's `apply` and comparing the cells before and after each event.
///
/// # Errors
/// `NOT_FOUND` for a record with no events; `INTERNAL` for store failures.
pub async fn record_history(svc: &Services, record_id: &RecordId) -> ApiResult<Vec<RevisionNode>> {
    let events = replay(svc, record_id).await?;
    if events.is_empty() {
        return Err(ApiError::not_found("record", record_id.as_str()));
    }
    let mut state = Record::default();
    let mut out = Vec::with_capacity(events.len());
    for (recorded, event) in &events {
        let before = state.cells.clone();
        state.apply(event);
        let mut changes = Vec::new();
        for (field, old) in &before {
            let new = state.cells.get(field).cloned().unwrap_or(Value::Null);
            if &new != old {
                changes.push(CellChangeNode {
                    field_id: ID(field.to_string()),
                    old: Json(old.clone()),
                    new: Json(new),
                });
            }
        }
        for (field, new) in &state.cells {
            if !before.contains_key(field) {
                changes.push(CellChangeNode {
                    field_id: ID(field.to_string()),
                    old: Json(Value::Null),
                    new: Json(new.clone()),
                });
            }
        }
        out.push(RevisionNode {
            version: i64::try_from(recorded.version).unwrap_or(i64::MAX),
            event_type: recorded.event_type.clone(),
            actor: ActorNode::from(&recorded.metadata.actor),
            recorded_at: recorded.recorded_at,
            changes,
            deleted: state.deleted,
            position: recorded.position.to_token(),
        });
    }
    Ok(out)
}

/// Which past state to rebuild.
#[derive(Debug, Clone, Copy)]
pub enum AsOf {
    /// The state after every event recorded at or before this instant.
    Time(DateTime<Utc>),
    /// The state after this stream version.
    Version(u64),
}

/// A record as it was, or `None` when it did not exist yet.
///
/// # Errors
/// `INTERNAL` for store failures.
pub async fn record_as_of(
    svc: &Services,
    at: &Location,
    record_id: &RecordId,
    as_of: AsOf,
) -> ApiResult<Option<RecordNode>> {
    let events = replay(svc, record_id).await?;
    let state = fold_until(&events, as_of);
    Ok(state
        .filter(|s| s.id.is_some())
        .map(|s| RecordNode::from_aggregate(&s, Some(at.workspace_id.clone()), at.base_id.clone())))
}

fn fold_until(
    events: &[(RecordedEvent, pyairtable_domain::record::RecordEvent)],
    as_of: AsOf,
) -> Option<Record> {
    let mut state = Record::default();
    let mut any = false;
    for (recorded, event) in events {
        let include = match as_of {
            AsOf::Time(t) => recorded.recorded_at <= t,
            AsOf::Version(v) => recorded.version <= v,
        };
        if !include {
            break;
        }
        state.apply(event);
        any = true;
    }
    any.then_some(state)
}

/// The live records of a table as they were at `as_of`, in creation order, replayed one
/// stream at a time (records deleted since, or created later, are handled by the replay).
///
/// # Errors
/// `VALIDATION` for a bad cursor; `INTERNAL` for failures.
pub async fn table_as_of(
    svc: &Services,
    at: &Location,
    table_id: &TableId,
    as_of: DateTime<Utc>,
    first: usize,
    after: Option<&str>,
) -> ApiResult<RecordConnection> {
    let after_id = after
        .map(|a| {
            URL_SAFE_NO_PAD
                .decode(a)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.strip_prefix("asof:").map(str::to_owned))
                .ok_or_else(|| ApiError::Validation {
                    message: "after is not a cursor of an asOf query".to_owned(),
                    reason: Some("INVALID_CURSOR".to_owned()),
                })
        })
        .transpose()?;
    // Every record ever created in the table before `as_of` (deleted ones included: they may
    // have been live then), in creation order.
    let sql = format!(
        "SELECT record_id FROM {} WHERE table_id = $1 AND created_at <= $2 \
           AND ($3::text IS NULL OR record_id > $3) ORDER BY record_id",
        svc.view("records")
    );
    let ids: Vec<String> = sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(table_id.to_string())
        .bind(as_of)
        .bind(after_id)
        .fetch_all(&svc.pool)
        .await?;
    let mut edges = Vec::new();
    let mut has_next_page = false;
    for id in ids {
        let record_id =
            RecordId::parse(&id).map_err(|e| ApiError::internal("reading record ids", &e))?;
        let Some(node) = record_as_of(svc, at, &record_id, AsOf::Time(as_of)).await? else {
            continue;
        };
        if node.deleted {
            continue;
        }
        if edges.len() == first {
            has_next_page = true;
            break;
        }
        edges.push(RecordEdge {
            cursor: URL_SAFE_NO_PAD.encode(format!("asof:{id}")),
            node,
        });
    }
    Ok(connection(edges, has_next_page, None))
}

/// Narrows the audit log.
#[derive(InputObject, Clone, Debug, Default)]
pub struct AuditFilter {
    /// Only events caused by this actor id (a user, token, automation or agent id).
    pub actor: Option<String>,
    /// Only these event types.
    pub event_types: Option<Vec<String>>,
    /// Recorded at or after.
    pub from: Option<DateTime<Utc>>,
    /// Recorded before.
    pub to: Option<DateTime<Utc>>,
    /// Only this stream, e.g. `record-rec…`.
    pub stream_id: Option<String>,
}

/// A page of events.
#[derive(SimpleObject, Clone, Debug)]
pub struct EventConnection {
    /// The events, oldest first.
    pub nodes: Vec<EventNode>,
    /// Pass it as `after` to continue.
    pub end_cursor: Option<String>,
    /// Whether more events follow (now).
    pub has_next_page: bool,
}

type AuditRow = (
    String,
    uuid::Uuid,
    String,
    i64,
    String,
    Value,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
    Value,
);

/// A workspace's audit log from the `audit_log` read model, in feed order.
///
/// # Errors
/// `VALIDATION` for a bad cursor; `INTERNAL` for failures.
pub async fn audit_log(
    svc: &Services,
    workspace_id: &WorkspaceId,
    filter: &AuditFilter,
    first: usize,
    after: Option<&str>,
) -> ApiResult<EventConnection> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT position, event_id, stream_id, version, event_type, actor, workspace_id, \
                correlation_id, recorded_at, payload FROM {} WHERE workspace_id = ",
        svc.view("audit_log")
    ));
    q.push_bind(workspace_id.to_string());
    if let Some(after) = after {
        let p = parse_position(after, "after")?;
        q.push(" AND (feed_epoch, feed_xid, feed_pos) > (");
        push_u64(&mut q, p.epoch);
        q.push(", ");
        push_u64(&mut q, p.xid);
        q.push(", ");
        push_u64(&mut q, p.pos);
        q.push(")");
    }
    if let Some(actor) = &filter.actor {
        q.push(" AND actor_id = ");
        q.push_bind(actor.clone());
    }
    if let Some(types) = &filter.event_types {
        q.push(" AND event_type = ANY(");
        q.push_bind(types.clone());
        q.push(")");
    }
    if let Some(from) = filter.from {
        q.push(" AND recorded_at >= ");
        q.push_bind(from);
    }
    if let Some(to) = filter.to {
        q.push(" AND recorded_at < ");
        q.push_bind(to);
    }
    if let Some(stream) = &filter.stream_id {
        q.push(" AND stream_id = ");
        q.push_bind(stream.clone());
    }
    q.push(" ORDER BY feed_epoch, feed_xid, feed_pos LIMIT ");
    q.push_bind(i64::try_from(first + 1).unwrap_or(i64::MAX));
    let mut rows: Vec<AuditRow> = q.build_query_as().fetch_all(&svc.pool).await?;
    let has_next_page = rows.len() > first;
    rows.truncate(first);
    let nodes: Vec<EventNode> = rows
        .into_iter()
        .map(
            |(
                position,
                event_id,
                stream_id,
                version,
                event_type,
                actor,
                workspace,
                correlation,
                recorded_at,
                payload,
            )| {
                let actor = serde_json::from_value::<pyairtable_eventstore::Actor>(actor)
                    .map(|a| ActorNode::from(&a))
                    .unwrap_or(ActorNode {
                        kind: "unknown".to_owned(),
                        id: String::new(),
                        user_id: None,
                    });
                EventNode {
                    position,
                    event_id: ID(event_id.to_string()),
                    stream_id,
                    version,
                    event_type,
                    actor,
                    workspace_id: workspace.map(ID),
                    correlation_id: correlation.unwrap_or_default(),
                    recorded_at,
                    payload: Json(payload),
                }
            },
        )
        .collect();
    Ok(EventConnection {
        end_cursor: nodes.last().map(|n| n.position.clone()),
        nodes,
        has_next_page,
    })
}

fn push_u64(q: &mut QueryBuilder<Postgres>, value: u64) {
    q.push_bind(i64::try_from(value).unwrap_or(i64::MAX));
}

/// Narrows the admin event feed and the `events` subscription.
#[derive(InputObject, Clone, Debug, Default)]
pub struct EventFilterInput {
    /// Only events of these workspaces.
    pub workspace_ids: Option<Vec<ID>>,
    /// Only these streams.
    pub stream_ids: Option<Vec<String>>,
    /// Only these aggregate kinds (`record`, `base`, `workspace`, `user`, `token`).
    pub aggregate_kinds: Option<Vec<String>>,
    /// Only these event types.
    pub event_types: Option<Vec<String>>,
}

impl EventFilterInput {
    /// Whether an event passes the filter.
    pub fn matches(&self, e: &RecordedEvent) -> bool {
        let kind = pyairtable_projections::names::aggregate_kind(&e.stream_id);
        self.workspace_ids.as_ref().is_none_or(|ws| {
            e.metadata
                .workspace_id
                .as_ref()
                .is_some_and(|w| ws.iter().any(|x| x.as_str() == w))
        }) && self
            .stream_ids
            .as_ref()
            .is_none_or(|s| s.contains(&e.stream_id))
            && self
                .aggregate_kinds
                .as_ref()
                .is_none_or(|k| k.iter().any(|x| x == kind))
            && self
                .event_types
                .as_ref()
                .is_none_or(|t| t.contains(&e.event_type))
    }
}

/// Events of the global feed after a position (admins), straight from the event store.
///
/// # Errors
/// `VALIDATION` for a bad token; `INTERNAL` for store failures.
pub async fn feed(
    svc: &Services,
    after: Option<&str>,
    filter: &EventFilterInput,
    first: usize,
) -> ApiResult<EventConnection> {
    let mut cursor = match after {
        Some(token) => parse_position(token, "after")?,
        None => Position::START,
    };
    let mut nodes = Vec::new();
    let mut has_next_page = false;
    // Scan in pages; a selective filter may need several.
    'scan: for _ in 0..50 {
        let batch = svc.store.read_all(&cursor, 500).await?;
        if batch.events.is_empty() {
            break;
        }
        for event in &batch.events {
            if !filter.matches(event) {
                cursor = event.position;
                continue;
            }
            if nodes.len() == first {
                has_next_page = true;
                break 'scan;
            }
            nodes.push(EventNode::from(event));
            cursor = event.position;
        }
        cursor = cursor.max(batch.next);
    }
    Ok(EventConnection {
        end_cursor: Some(cursor.to_token()),
        nodes,
        has_next_page,
    })
}

/// The verdict on one stream's hash chain.
#[derive(SimpleObject, Clone, Debug)]
pub struct VerifyNode {
    /// The stream.
    pub stream_id: String,
    /// Events checked.
    pub events_checked: i64,
    /// Whether every link holds.
    pub ok: bool,
    /// The first broken link's version, if any.
    pub broken_at_version: Option<i64>,
    /// Why that link is broken.
    pub reason: Option<String>,
}
