//! Who is calling (a bearer API token, or a session access token) and what they may reach:
//! every base-scoped request loads the base and its workspace from the event store and asks the
//! domain's permission matrix, so a token never sees a base of another workspace.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use pyairtable_commands::{Authenticated, Caller, CommandContext, CommandError};
use pyairtable_domain::base::{Base, TableSchema};
use pyairtable_domain::ids::BaseId;
use pyairtable_domain::permissions::{Action, Denied, Principal, authorize};
use pyairtable_domain::roles::Role;
use pyairtable_domain::workspace::Workspace;

use super::error::{RestError, RestResult};
use crate::state::AppState;

/// The authenticated caller of a REST request.
#[derive(Debug, Clone)]
pub struct RestCaller {
    /// The user (and the API token it came through, if any).
    pub user: Authenticated,
}

impl RestCaller {
    /// A command context acting as this caller.
    #[must_use]
    pub fn context(&self) -> CommandContext {
        CommandContext::new(Caller::User(self.user.clone()))
    }

    /// The domain principal for a role in some workspace.
    #[must_use]
    pub fn principal(&self, role: Option<Role>) -> Principal {
        Principal {
            role,
            token: self.user.token.as_ref().map(|t| t.grant.clone()),
            is_admin: self.user.is_admin,
        }
    }
}

impl FromRequestParts<AppState> for RestCaller {
    type Rejection = RestError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> RestResult<Self> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(RestError::authentication_required)?;
        let (scheme, token) = header
            .trim()
            .split_once(' ')
            .ok_or_else(RestError::authentication_required)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(RestError::authentication_required());
        }
        let token = token.trim();
        let auth = state.platform.auth();
        // API tokens start with `pat`; anything else may be a web session's access token.
        let user = if token.starts_with("pat") {
            auth.verify_api_token(token).await
        } else {
            auth.verify_access_token(token, chrono::Utc::now())
        };
        match user {
            Ok(user) => Ok(Self { user }),
            Err(CommandError::Unauthorized { .. }) => Err(RestError::authentication_required()),
            Err(other) => Err(other.into()),
        }
    }
}

/// A base the caller may act on, with its schema as of the request.
#[derive(Debug, Clone)]
pub struct OpenBase {
    /// The base's id.
    pub id: BaseId,
    /// Its state (schema) from the event store.
    pub base: Base,
    /// The caller's role in the base's workspace.
    pub role: Role,
}

impl OpenBase {
    /// The table named exactly `key`, or with id `key` (Airtable matches names exactly).
    ///
    /// # Errors
    /// 404 `NOT_FOUND` naming the table.
    pub fn table(&self, key: &str) -> RestResult<&TableSchema> {
        self.base
            .tables
            .iter()
            .find(|t| t.name == key)
            .or_else(|| self.base.tables.iter().find(|t| t.id.as_str() == key))
            .ok_or_else(|| {
                RestError::not_found_typed(format!(
                    "Could not find table {key} in application {}",
                    self.id
                ))
            })
    }
}

/// Maps a refusal of the permission matrix to Airtable's answer: anything that could reveal
/// whether a base exists is `INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND`; a member whose role is
/// too weak gets `INVALID_PERMISSIONS`.
fn refused(denied: &Denied) -> RestError {
    match denied {
        Denied::RoleForbids { .. } => RestError::invalid_permissions(
            "You are not permitted to perform this operation because your role does not allow it",
        ),
        Denied::TokenLacksScope { scope, .. } => RestError::typed(
            axum::http::StatusCode::FORBIDDEN,
            "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
            format!(
                "{} (the token lacks the {scope} scope)",
                super::error::MODEL_NOT_FOUND_MESSAGE
            ),
        ),
        _ => RestError::model_not_found(),
    }
}

/// Loads base `raw_id` and checks that the caller may do every one of `actions` in it.
///
/// # Errors
/// 403 `INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND` for a malformed, unknown, deleted or
/// unreachable base; 403 `INVALID_PERMISSIONS` for a role that is too weak; 500 when the event
/// store fails.
pub async fn open_base(
    state: &AppState,
    caller: &RestCaller,
    raw_id: &str,
    actions: &[Action],
) -> RestResult<OpenBase> {
    let id = BaseId::parse(raw_id).map_err(|_| RestError::model_not_found())?;
    let runner = state.platform.runner();
    let base = runner.load::<Base>(id.as_str()).await?;
    if base.is_new() || base.state.deleted {
        return Err(RestError::model_not_found());
    }
    let workspace_id = base
        .state
        .workspace_id
        .clone()
        .ok_or_else(RestError::model_not_found)?;
    let workspace = runner.load::<Workspace>(workspace_id.as_str()).await?;
    if workspace.state.state().is_none_or(|s| s.archived) {
        return Err(RestError::model_not_found());
    }
    let role = workspace.state.role_of(&caller.user.user_id);
    let principal = caller.principal(role);
    for &action in actions {
        authorize(&principal, action, Some(&id)).map_err(|d| refused(&d))?;
    }
    let role = role.ok_or_else(RestError::model_not_found)?;
    Ok(OpenBase {
        id,
        base: base.state,
        role,
    })
}

/// Checks an action that concerns no base (who-am-I, listing bases, creating a base in a
/// workspace given by the caller).
///
/// # Errors
/// 403 as [`open_base`].
pub fn check_account(caller: &RestCaller, action: Action) -> RestResult<()> {
    authorize(&caller.principal(None), action, None).map_err(|d| refused(&d))
}

/// Airtable's `permissionLevel` for a workspace role.
#[must_use]
pub fn permission_level(role: Role) -> &'static str {
    match role {
        Role::ReadOnly => "read",
        Role::Commenter => "comment",
        Role::Editor => "edit",
        Role::Creator | Role::Owner => "create",
    }
}
