//! Tenant isolation for reads: where a base, table or record lives, and whether the caller may
//! do an action there.
//!
//! Membership is decided on the workspace aggregate loaded from the event store, not on a read
//! model: a member removed a moment ago must lose access at once, whatever a projection's lag.
//! The location of a base, table or record comes from the directory and records read models
//! (ids never move between workspaces, so a lagging copy is never wrong about them).

use pyairtable_commands::Authenticated;
use pyairtable_domain::ids::{BaseId, RecordId, TableId, WorkspaceId};
use pyairtable_domain::permissions::{Action, Denied, Principal, authorize};
use pyairtable_domain::workspace::{Workspace, WorkspaceState};
use sqlx::AssertSqlSafe;

use super::context::{Services, catch_up};
use super::error::{ApiError, ApiResult};

/// Where a base, table or record lives.
#[derive(Debug, Clone)]
pub struct Location {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// The base (absent for a workspace itself).
    pub base_id: Option<BaseId>,
    /// The table (for tables and records).
    pub table_id: Option<TableId>,
}

/// Parses an id argument, turning a malformed one into `VALIDATION`.
pub fn parse_id<K: pyairtable_domain::ids::IdKind>(
    value: &str,
) -> ApiResult<pyairtable_domain::ids::Id<K>> {
    pyairtable_domain::ids::Id::<K>::parse(value).map_err(|e| ApiError::Validation {
        message: e.to_string(),
        reason: Some("INVALID_ID".to_owned()),
    })
}

/// The domain principal of a caller with a role.
pub fn principal(user: &Authenticated, role: Option<pyairtable_domain::roles::Role>) -> Principal {
    Principal {
        role,
        token: user.token.as_ref().map(|t| t.grant.clone()),
        is_admin: user.is_admin,
    }
}

/// Loads a workspace and checks that the caller may do `action` in it (on `base`, for base
/// actions). A non-member is told the target does not exist.
///
/// # Errors
/// `NOT_FOUND` for an unknown workspace or a non-member, `FORBIDDEN` for a role or token that
/// does not allow the action.
pub async fn authorize_in(
    svc: &Services,
    user: &Authenticated,
    workspace_id: &WorkspaceId,
    action: Action,
    base: Option<&BaseId>,
    target: (&str, &str),
) -> ApiResult<WorkspaceState> {
    let loaded = svc
        .platform
        .runner()
        .load::<Workspace>(workspace_id.as_str())
        .await?;
    let Some(state) = loaded.state.state().cloned() else {
        return Err(ApiError::not_found(target.0, target.1));
    };
    let role = state.role_of(&user.user_id);
    authorize(&principal(user, role), action, base).map_err(|denial| match denial {
        Denied::NotAMember { .. } => ApiError::not_found(target.0, target.1),
        other => ApiError::Forbidden(other.to_string()),
    })?;
    Ok(state)
}

async fn lookup(
    svc: &Services,
    projection: &str,
    sql: &str,
    id: &str,
) -> ApiResult<Option<(Option<String>, Option<String>, Option<String>)>> {
    let query = || {
        sqlx::query_as::<_, (Option<String>, Option<String>, Option<String>)>(AssertSqlSafe(
            sql.to_owned(),
        ))
        .bind(id.to_owned())
    };
    if let Some(row) = query().fetch_optional(&svc.pool).await? {
        return Ok(Some(row));
    }
    // A miss may be a write the caller saw acknowledged but the projection has not applied
    // yet: let it catch up, then look again a few times, for a bounded time (an unknown id
    // costs at most that long).
    catch_up(svc, projection).await?;
    let deadline = tokio::time::Instant::now() + MISS_GRACE.min(svc.config.consistency_timeout);
    let mut pause = std::time::Duration::from_millis(20);
    loop {
        if let Some(row) = query().fetch_optional(&svc.pool).await? {
            return Ok(Some(row));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(200));
    }
}

/// How long a lookup keeps looking for an id the read model does not know yet.
const MISS_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

fn located(
    row: Option<(Option<String>, Option<String>, Option<String>)>,
    kind: &str,
    id: &str,
) -> ApiResult<Location> {
    let Some((Some(workspace), base, table)) = row else {
        return Err(ApiError::not_found(kind, id));
    };
    let corrupt = |what: &str| ApiError::internal("locating an entity", &format!("bad {what} id"));
    Ok(Location {
        workspace_id: WorkspaceId::parse(&workspace).map_err(|_| corrupt("workspace"))?,
        base_id: base
            .map(|b| BaseId::parse(&b).map_err(|_| corrupt("base")))
            .transpose()?,
        table_id: table
            .map(|t| TableId::parse(&t).map_err(|_| corrupt("table")))
            .transpose()?,
    })
}

/// Where a base lives (deleted bases too).
pub async fn locate_base(svc: &Services, base_id: &BaseId) -> ApiResult<Location> {
    let sql = format!(
        "SELECT workspace_id, base_id, NULL::text FROM {} WHERE base_id = $1",
        svc.view("bases")
    );
    let row = lookup(svc, "directory", &sql, base_id.as_str()).await?;
    located(row, "base", base_id.as_str())
}

/// Where a table lives (deleted tables too).
pub async fn locate_table(svc: &Services, table_id: &TableId) -> ApiResult<Location> {
    let sql = format!(
        "SELECT t.workspace_id, t.base_id, t.table_id FROM {} t WHERE t.table_id = $1",
        svc.view("tables")
    );
    let row = lookup(svc, "directory", &sql, table_id.as_str()).await?;
    located(row, "table", table_id.as_str())
}

/// Where a record lives (deleted records too). A record too fresh for the records read model
/// is found through its own stream (which names its table) and the directory.
pub async fn locate_record(svc: &Services, record_id: &RecordId) -> ApiResult<Location> {
    let sql = format!(
        "SELECT workspace_id, base_id, table_id FROM {} WHERE record_id = $1",
        svc.view("records")
    );
    let row: Option<(Option<String>, Option<String>, Option<String>)> =
        sqlx::query_as(AssertSqlSafe(sql))
            .bind(record_id.to_string())
            .fetch_optional(&svc.pool)
            .await?;
    if row.is_some() {
        let at = located(row, "record", record_id.as_str())?;
        // The records read model may not know the base; the table's place in the directory
        // does.
        return match (&at.base_id, &at.table_id) {
            (None, Some(table_id)) => locate_table(svc, table_id)
                .await
                .map_err(|_| ApiError::not_found("record", record_id.as_str())),
            _ => Ok(at),
        };
    }
    let loaded = svc
        .platform
        .runner()
        .load::<pyairtable_domain::record::Record>(record_id.as_str())
        .await?;
    match loaded.state.table_id {
        Some(table_id) => locate_table(svc, &table_id)
            .await
            .map_err(|_| ApiError::not_found("record", record_id.as_str())),
        None => Err(ApiError::not_found("record", record_id.as_str())),
    }
}

/// Locates a table and authorises `action` on its base.
pub async fn authorize_table(
    svc: &Services,
    user: &Authenticated,
    table_id: &TableId,
    action: Action,
) -> ApiResult<Location> {
    let at = locate_table(svc, table_id).await?;
    authorize_in(
        svc,
        user,
        &at.workspace_id,
        action,
        at.base_id.as_ref(),
        ("table", table_id.as_str()),
    )
    .await?;
    Ok(at)
}

/// Locates a record and authorises `action` on its base.
pub async fn authorize_record(
    svc: &Services,
    user: &Authenticated,
    record_id: &RecordId,
    action: Action,
) -> ApiResult<Location> {
    let at = locate_record(svc, record_id).await?;
    authorize_in(
        svc,
        user,
        &at.workspace_id,
        action,
        at.base_id.as_ref(),
        ("record", record_id.as_str()),
    )
    .await?;
    Ok(at)
}

/// Locates a base and authorises `action` on it.
pub async fn authorize_base(
    svc: &Services,
    user: &Authenticated,
    base_id: &BaseId,
    action: Action,
) -> ApiResult<Location> {
    let at = locate_base(svc, base_id).await?;
    authorize_in(
        svc,
        user,
        &at.workspace_id,
        action,
        Some(base_id),
        ("base", base_id.as_str()),
    )
    .await?;
    Ok(at)
}

/// Instance administrators only.
pub fn require_admin(user: &Authenticated) -> ApiResult<()> {
    if user.is_admin && user.token.is_none() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "reserved to instance administrators signed in with a session".to_owned(),
        ))
    }
}
