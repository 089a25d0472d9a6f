//! The GraphQL layer's one error type and its mapping to `extensions.code`.
//!
//! [`ApiError`] deliberately does not implement `Display`: async-graphql converts any
//! `Display` type into an error carrying only its message, which would drop the code and could
//! leak an infrastructure message. Without `Display`, every conversion goes through the
//! `From<ApiError>` below, and resolvers return `Result<T, ApiError>` so a `?` on a
//! [`CommandError`] or a store error is always mapped, never passed through raw.

use async_graphql::ErrorExtensionValues;
use pyairtable_commands::CommandError;
use pyairtable_eventstore::StoreError;
use pyairtable_projections::ProjectionError;

/// The result type of every resolver.
pub type ApiResult<T> = Result<T, ApiError>;

/// Why a GraphQL operation failed, with the machine-readable code clients switch on.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// No, wrong, expired or revoked credentials.
    Unauthenticated(String),
    /// Authenticated, but the role or token scope does not allow it.
    Forbidden(String),
    /// The target does not exist, or the caller may not know that it does.
    NotFound(String),
    /// Bad input; `reason` is the domain's stable code when there is one.
    Validation {
        /// Safe to show.
        message: String,
        /// Stable machine-readable reason (e.g. `INVALID_VALUE_FOR_COLUMN`).
        reason: Option<String>,
    },
    /// A write race that retries did not resolve, or a reused idempotency key.
    Conflict(String),
    /// Too many requests for this token; retry after that many seconds.
    RateLimited {
        /// Seconds until the window resets.
        retry_after: u64,
    },
    /// The read models did not reach the consistency token in time.
    StaleRead(String),
    /// A dependency failed; the details went to the log.
    Internal,
}

impl ApiError {
    /// A validation error without a reason code.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::Validation {
            message: message.into(),
            reason: None,
        }
    }

    /// A missing target, worded the same whether it does not exist or is hidden.
    pub fn not_found(kind: &str, id: &str) -> Self {
        Self::NotFound(format!("{kind} {id} not found"))
    }

    /// Logs a dependency failure with what was being done and hides it from the caller.
    pub fn internal(context: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, context, "internal error while serving GraphQL");
        Self::Internal
    }

    /// The `extensions.code` value.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Validation { .. } => "VALIDATION",
            Self::Conflict(_) => "CONFLICT",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::StaleRead(_) => "STALE_READ",
            Self::Internal => "INTERNAL",
        }
    }

    /// The message shown to the caller.
    pub fn message(&self) -> String {
        match self {
            Self::Unauthenticated(m)
            | Self::Forbidden(m)
            | Self::NotFound(m)
            | Self::Conflict(m)
            | Self::StaleRead(m) => m.clone(),
            Self::Validation { message, .. } => message.clone(),
            Self::RateLimited { retry_after } => {
                format!("rate limit exceeded; retry in {retry_after} s")
            }
            Self::Internal => "internal error".to_owned(),
        }
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        let mut extensions = ErrorExtensionValues::default();
        extensions.set("code", error.code());
        match &error {
            ApiError::Validation {
                reason: Some(reason),
                ..
            } => extensions.set("reason", reason.as_str()),
            ApiError::RateLimited { retry_after } => extensions.set("retryAfter", *retry_after),
            _ => {}
        }
        async_graphql::Error {
            message: error.message(),
            source: None,
            extensions: Some(extensions),
        }
    }
}

impl From<async_graphql::Error> for ApiError {
    // Only `ctx.data::<T>()` and similar plumbing produce these inside resolvers: a missing
    // piece of request data is a server bug, not a client mistake.
    fn from(error: async_graphql::Error) -> Self {
        Self::internal("resolving a GraphQL field", &error.message)
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Rejected { code, message } => Self::Validation {
                message,
                reason: Some(code.to_owned()),
            },
            CommandError::Unauthorized { message } => Self::Unauthenticated(message),
            CommandError::Forbidden { message } => Self::Forbidden(message),
            CommandError::NotFound { kind, id } => Self::not_found(kind, &id),
            error @ CommandError::Conflict { .. } => Self::Conflict(error.to_string()),
            error @ CommandError::IdempotencyKeyReused { .. } => Self::Conflict(error.to_string()),
            CommandError::Infrastructure { context, source } => Self::internal(&context, &source),
        }
    }
}

impl From<ProjectionError> for ApiError {
    fn from(error: ProjectionError) -> Self {
        match error {
            ProjectionError::Stale {
                projection,
                wanted,
                reached,
            } => Self::StaleRead(format!(
                "the {projection} read model has not caught up with the consistency token yet \
                 (wanted {wanted}, reached {reached}); retry shortly"
            )),
            ProjectionError::UnknownProjection(name) => Self::not_found("projection", &name),
            ProjectionError::RebuildRunning(name) => {
                Self::Conflict(format!("a rebuild of {name} is already running"))
            }
            other => Self::internal("querying the read models", &other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::InvalidPosition { .. } => Self::validation(error.to_string()),
            other => Self::internal("reading the event store", &other),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        Self::internal("querying PostgreSQL", &error)
    }
}
