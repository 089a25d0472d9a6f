//! Application services: one method per command of every aggregate, each one authorising the
//! caller, running the command through the [`Runner`] and keeping the authentication tables in
//! step.

mod bases;
mod records;
mod tokens;
mod users;
mod workspaces;

use pyairtable_domain::Aggregate;
use pyairtable_domain::ids::{BaseId, UserId};
use pyairtable_domain::permissions::{Action, Denied, Principal, authorize};
use pyairtable_domain::user::User;
use pyairtable_domain::workspace::Workspace;
use pyairtable_eventstore::EventStore;

use crate::auth::{AuthConfig, Authenticator};
use crate::context::{Authenticated, Caller, CommandContext};
use crate::error::CommandError;
use crate::runner::{Batch, Loaded, Runner, RunnerConfig};

pub use bases::*;
pub use records::*;
pub use tokens::*;
pub use users::*;

/// The application layer's entry point: authentication plus one method per command.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Platform {
    runner: Runner,
    auth: Authenticator,
}

impl Platform {
    /// Builds the platform over a connected (and migrated) event store, with the default
    /// runner tuning.
    ///
    /// # Errors
    /// When the authentication settings are invalid (e.g. a short JWT secret).
    pub async fn new(store: EventStore, auth: AuthConfig) -> Result<Self, CommandError> {
        Self::with_runner_config(store, auth, RunnerConfig::default()).await
    }

    /// Builds the platform with explicit retry and snapshot tuning.
    ///
    /// # Errors
    /// When the authentication settings are invalid.
    pub async fn with_runner_config(
        store: EventStore,
        auth: AuthConfig,
        runner: RunnerConfig,
    ) -> Result<Self, CommandError> {
        let authenticator = Authenticator::new(store.pool().clone(), auth).await?;
        Ok(Self {
            runner: Runner::new(store, runner),
            auth: authenticator,
        })
    }

    /// The command runner (for loading aggregates and for custom commands).
    #[must_use]
    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// Login, sessions and credential checks.
    #[must_use]
    pub fn auth(&self) -> &Authenticator {
        &self.auth
    }

    /// The event store.
    #[must_use]
    pub fn store(&self) -> &EventStore {
        self.runner.store()
    }
}

/// Maps a domain denial to the caller-facing error. A non-member is told the target does not
/// exist, so workspaces and bases cannot be discovered by probing ids (tenant isolation).
fn denied(denial: &Denied, kind: &'static str, id: &str) -> CommandError {
    match denial {
        Denied::NotAMember { .. } => CommandError::not_found(kind, id),
        other => CommandError::forbidden(other.to_string()),
    }
}

/// The domain principal of a user caller with a given role in the target workspace.
fn principal(user: &Authenticated, role: Option<pyairtable_domain::roles::Role>) -> Principal {
    Principal {
        role,
        token: user.token.as_ref().map(|t| t.grant.clone()),
        is_admin: user.is_admin,
    }
}

/// Authorises an account- or instance-level action (no workspace involved). The system caller
/// may do anything.
fn authorize_account(ctx: &CommandContext, action: Action) -> Result<(), CommandError> {
    match &ctx.caller {
        Caller::System { .. } => Ok(()),
        Caller::User(user) => authorize(&principal(user, None), action, None)
            .map_err(|d| CommandError::forbidden(d.to_string())),
    }
}

/// Authorises workspace- or base-level actions against the caller's role in `workspace`.
fn authorize_in(
    ctx: &CommandContext,
    workspace: &Workspace,
    actions: &[Action],
    base: Option<&BaseId>,
    target: (&'static str, &str),
) -> Result<(), CommandError> {
    let Caller::User(user) = &ctx.caller else {
        return Ok(());
    };
    let role = workspace.role_of(&user.user_id);
    for &action in actions {
        authorize(&principal(user, role), action, base)
            .map_err(|d| denied(&d, target.0, target.1))?;
    }
    Ok(())
}

/// The user a command acts for: the caller itself, or for the system caller the user named.
fn acting_user(ctx: &CommandContext, named: Option<&UserId>) -> Result<UserId, CommandError> {
    match (&ctx.caller, named) {
        (Caller::User(user), None) => Ok(user.user_id.clone()),
        (Caller::User(user), Some(named)) if *named == user.user_id => Ok(named.clone()),
        (Caller::User(_), Some(_)) => Err(CommandError::forbidden(
            "may only act for oneself; an admin CLI can act for other users",
        )),
        (Caller::System { .. }, Some(named)) => Ok(named.clone()),
        (Caller::System { .. }, None) => Err(CommandError::rejected(
            "missing_user",
            "a system caller must name the user it acts for",
        )),
    }
}

/// Loads a user that must exist and be active (for ownership, membership and tokens).
async fn load_active_user(
    batch: &mut Batch<'_>,
    user_id: &UserId,
) -> Result<Loaded<User>, CommandError> {
    let user = batch.load::<User>(user_id.as_str()).await?;
    match user.state.account() {
        None => Err(CommandError::not_found("user", user_id.as_str())),
        Some(account) if !account.active => Err(CommandError::rejected(
            "user_deactivated",
            format!("user {user_id} is deactivated"),
        )),
        Some(_) => Ok(user),
    }
}

/// Loads an aggregate that must already exist.
async fn load_existing<A: Aggregate>(
    batch: &mut Batch<'_>,
    kind: &'static str,
    id: &str,
) -> Result<Loaded<A>, CommandError> {
    let loaded = batch.load::<A>(id).await?;
    if loaded.is_new() {
        return Err(CommandError::not_found(kind, id));
    }
    Ok(loaded)
}

/// Decides a command against loaded state, mapping the domain's rejection.
fn decide<A: Aggregate>(
    loaded: &Loaded<A>,
    command: &A::Command,
) -> Result<Vec<A::Event>, CommandError> {
    loaded
        .state
        .handle(command)
        .map_err(|e| CommandError::domain(&e))
}

#[cfg(test)]
mod send_check {
    use super::*;

    fn assert_send<T: Send>(_: T) {}

    /// The API serves commands from axum handlers, which need `Send` futures.
    #[allow(dead_code, clippy::let_underscore_future)]
    fn service_futures_are_send(
        platform: &Platform,
        ctx: &CommandContext,
        user: &UserId,
        base: &BaseId,
        record: &pyairtable_domain::ids::RecordId,
    ) {
        assert_send(platform.create_records(ctx, base, "t", Vec::new(), false));
        assert_send(platform.update_records(ctx, base, "t", Vec::new(), true, false));
        assert_send(platform.revert_record(ctx, base, record, 1));
        assert_send(platform.add_comment(ctx, base, record, "x"));
        assert_send(platform.create_table(
            ctx,
            base,
            NewTable {
                name: String::new(),
                description: None,
                fields: Vec::new(),
                primary_field_id: None,
            },
        ));
        assert_send(platform.auth().refresh("x", ctx.now));
        assert_send(platform.deactivate_user(ctx, user));
        assert_send(platform.create_workspace(ctx, "w", None));
        assert_send(platform.register_user(
            ctx,
            RegisterUser {
                email: String::new(),
                display_name: None,
                password: String::new(),
                is_admin: false,
            },
        ));
    }
}
