//! The one error type of the application layer.
//!
//! Callers need to tell apart a user's mistake (show the message, 4xx), a missing or wrong
//! identity (401), a lack of rights (403), a missing target (404), a write race that retries did
//! not resolve (409), a reused idempotency key (422) and a broken dependency (500, logged, never
//! shown). Each has its own variant so no caller has to parse messages.

use std::error::Error as StdError;

/// A boxed error from a dependency (database, event store, serialisation).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a command, a login or a token check did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The command breaks a domain rule or carries invalid input; `message` says which and why.
    #[error("{message}")]
    Rejected {
        /// Stable machine-readable reason, e.g. `invalid_cell` or `email_taken`.
        code: &'static str,
        /// Human-readable explanation, safe to show to the caller.
        message: String,
    },
    /// The caller is not authenticated: no, wrong, expired or revoked credentials.
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// What failed, worded so that it never reveals whether an account exists.
        message: String,
    },
    /// The caller is authenticated but lacks the role or scope the command needs.
    #[error("forbidden: {message}")]
    Forbidden {
        /// Which right is missing.
        message: String,
    },
    /// The command targets something that does not exist (or that the caller may not see).
    #[error("{kind} {id} not found")]
    NotFound {
        /// Kind of the missing thing (`base`, `record`, ...).
        kind: &'static str,
        /// Its id as given.
        id: String,
    },
    /// Concurrent writers kept changing the stream; every retry lost the race.
    #[error("conflict on {stream}: still contended after {attempts} attempts")]
    Conflict {
        /// The contended stream (the first one, for multi-stream writes).
        stream: String,
        /// How many times the command was decided.
        attempts: u32,
    },
    /// The idempotency key was already used by the same caller for a different command.
    #[error("idempotency key {key:?} was already used for a different request")]
    IdempotencyKeyReused {
        /// The reused key.
        key: String,
    },
    /// A dependency failed; the details are for logs, not for callers.
    #[error("infrastructure failure while {context}")]
    Infrastructure {
        /// What the application was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

impl CommandError {
    /// A rejection with a stable code and a precise message.
    #[must_use]
    pub fn rejected(code: &'static str, message: impl Into<String>) -> Self {
        Self::Rejected {
            code,
            message: message.into(),
        }
    }

    /// An authentication failure.
    #[must_use]
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::Unauthorized {
            message: message.into(),
        }
    }

    /// An authorisation failure.
    #[must_use]
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden {
            message: message.into(),
        }
    }

    /// A missing target.
    #[must_use]
    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound {
            kind,
            id: id.into(),
        }
    }

    /// Wraps a dependency failure with what was being done.
    #[must_use]
    pub fn infra(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Infrastructure {
            context: context.into(),
            source: source.into(),
        }
    }

    /// Turns a domain rejection into [`CommandError::Rejected`] with its own message.
    #[must_use]
    pub fn domain(error: &impl StdError) -> Self {
        Self::rejected("rejected", error.to_string())
    }

    /// A stable machine-readable code for every variant (rejections keep their own).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Rejected { code, .. } => code,
            Self::Unauthorized { .. } => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::NotFound { .. } => "not_found",
            Self::Conflict { .. } => "conflict",
            Self::IdempotencyKeyReused { .. } => "idempotency_key_reused",
            Self::Infrastructure { .. } => "internal",
        }
    }
}

impl From<sqlx::Error> for CommandError {
    fn from(error: sqlx::Error) -> Self {
        Self::infra("querying PostgreSQL", error)
    }
}
