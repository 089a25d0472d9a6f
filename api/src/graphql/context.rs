//! What every resolver can reach: the services (schema data) and the caller (request data),
//! plus the read-your-writes wait behind every `consistencyToken` argument.

use std::collections::HashSet;
use std::time::Duration;

use async_graphql::Context;
use pyairtable_commands::{Authenticated, Caller, CommandContext, Platform};
use pyairtable_eventstore::{EventStore, Position};
use pyairtable_projections::{Names, Projections};
use sqlx::PgPool;

use super::error::{ApiError, ApiResult};
use crate::realtime::EventHub;

/// Settings of the GraphQL API.
#[derive(Debug, Clone)]
pub struct GraphqlConfig {
    /// How long a `consistencyToken` wait may take before `STALE_READ`.
    pub consistency_timeout: Duration,
    /// Whether anonymous callers may register.
    pub open_registration: bool,
    /// Lower-cased emails that become instance admins on registration.
    pub admin_emails: HashSet<String>,
    /// Requests per window and token; 0 disables the limit.
    pub rate_limit: u32,
    /// Length of the rate-limit window.
    pub rate_limit_window: Duration,
    /// Whether introspection is answered.
    pub introspection: bool,
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        Self {
            consistency_timeout: Duration::from_secs(5),
            open_registration: true,
            admin_emails: HashSet::new(),
            rate_limit: 0,
            rate_limit_window: Duration::from_secs(60),
            introspection: true,
        }
    }
}

/// The services resolvers use, shared by every request. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    /// Commands and authentication.
    pub platform: Platform,
    /// The event store (history, time travel, verification, the feed).
    pub store: EventStore,
    /// Projection status, rebuilds and read-your-writes waits.
    pub projections: Projections,
    /// Pool the SQL read models are queried through.
    pub pool: PgPool,
    /// Names of the read-model views.
    pub names: Names,
    /// Live events for subscriptions.
    pub hub: EventHub,
    /// API settings.
    pub config: GraphqlConfig,
}

impl Services {
    /// The schema-qualified view of a read-model table.
    pub fn view(&self, table: &str) -> String {
        self.names.rm_view(table)
    }
}

/// Who is calling: set per HTTP request from the `Authorization` header, or per WebSocket
/// connection from the `connection_init` payload.
#[derive(Debug, Clone, Default)]
pub struct Viewer(pub Option<Authenticated>);

/// The API token (`pat….<secret>`) a WebSocket connection signed in with, kept so that its
/// subscriptions can check it again and end once it is revoked. Never printed.
#[derive(Clone)]
pub struct ApiTokenCredential(pub String);

impl std::fmt::Debug for ApiTokenCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiTokenCredential(<redacted>)")
    }
}

/// The services, or an internal error when the schema was built without them.
pub fn services<'a>(ctx: &Context<'a>) -> ApiResult<&'a Services> {
    Ok(ctx.data::<Services>()?)
}

/// The signed-in caller, or `UNAUTHENTICATED`.
pub fn viewer<'a>(ctx: &Context<'a>) -> ApiResult<&'a Authenticated> {
    match ctx.data::<Viewer>() {
        Ok(Viewer(Some(user))) => Ok(user),
        _ => Err(ApiError::Unauthenticated(
            "sign in: send `Authorization: Bearer <access token or API token>`".to_owned(),
        )),
    }
}

/// The caller when there is one, without failing for anonymous requests.
pub fn maybe_viewer<'a>(ctx: &Context<'a>) -> Option<&'a Authenticated> {
    ctx.data::<Viewer>().ok().and_then(|v| v.0.as_ref())
}

/// A command context for the signed-in caller.
pub fn command_ctx(ctx: &Context<'_>) -> ApiResult<CommandContext> {
    let user = viewer(ctx)?;
    Ok(CommandContext::new(Caller::User(user.clone())))
}

/// Parses a position token given by a client.
pub fn parse_position(token: &str, argument: &str) -> ApiResult<Position> {
    token.parse::<Position>().map_err(|_| ApiError::Validation {
        message: format!("{argument} is not a valid position token"),
        reason: Some("INVALID_TOKEN".to_owned()),
    })
}

/// Waits until `projections` have applied everything up to the consistency token, if one was
/// given.
///
/// # Errors
/// `VALIDATION` for a malformed token, `STALE_READ` when the wait times out.
pub async fn wait_for(svc: &Services, token: Option<&str>, projections: &[&str]) -> ApiResult<()> {
    let Some(token) = token else {
        return Ok(());
    };
    let position = parse_position(token, "consistencyToken")?;
    for name in projections {
        svc.projections
            .wait_for(name, &position, svc.config.consistency_timeout)
            .await?;
    }
    Ok(())
}

/// Lets a projection catch up with everything committed so far, for at most the consistency
/// timeout.
/// Used when an id is missing from a read model: a write the caller saw acknowledged may not
/// have been projected yet, and a short wait turns that race into a hit.
pub async fn catch_up(svc: &Services, projection: &str) -> ApiResult<()> {
    let head = svc.store.head().await?;
    match svc
        .projections
        .wait_for(projection, &head, svc.config.consistency_timeout)
        .await
    {
        Ok(()) | Err(pyairtable_projections::ProjectionError::Stale { .. }) => Ok(()),
        Err(other) => Err(other.into()),
    }
}
