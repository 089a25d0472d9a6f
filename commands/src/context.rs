//! Who is asking, and the bookkeeping every command carries: correlation and causation ids, an
//! optional idempotency key and the time of the request.

use chrono::{DateTime, Utc};
use pyairtable_domain::ids::{TokenId, UserId};
use pyairtable_domain::permissions::TokenGrant;
use uuid::Uuid;

/// Longest accepted idempotency key, in bytes.
pub const IDEMPOTENCY_KEY_MAX_LEN: usize = 255;

/// An authenticated user, as resolved by the API from a session JWT or an API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The user.
    pub user_id: UserId,
    /// Whether the user is an instance administrator.
    pub is_admin: bool,
    /// Present when the request came with an API token instead of a session.
    pub token: Option<TokenCaller>,
}

/// The API token a request was made with, and what it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCaller {
    /// The token's id.
    pub token_id: TokenId,
    /// Its scopes and base restriction.
    pub grant: TokenGrant,
}

/// Whoever issues a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A signed-in user or an API token acting for one.
    User(Authenticated),
    /// The platform itself or an operator at the admin CLI: trusted, bypasses authorisation,
    /// and is recorded under its name in every event's metadata.
    System {
        /// What acted, e.g. `cli` or `importer`.
        name: String,
    },
}

impl Caller {
    /// A user signed in with a session (no API token).
    #[must_use]
    pub fn user(user_id: UserId, is_admin: bool) -> Self {
        Self::User(Authenticated {
            user_id,
            is_admin,
            token: None,
        })
    }

    /// The admin CLI or another trusted in-process caller.
    #[must_use]
    pub fn system(name: impl Into<String>) -> Self {
        Self::System { name: name.into() }
    }

    /// The acting user, if any.
    #[must_use]
    pub fn user_id(&self) -> Option<&UserId> {
        match self {
            Self::User(a) => Some(&a.user_id),
            Self::System { .. } => None,
        }
    }

    /// A stable string naming the caller, used to scope idempotency keys.
    #[must_use]
    pub fn key(&self) -> String {
        match self {
            Self::User(Authenticated {
                user_id,
                token: Some(token),
                ..
            }) => format!("token:{}:{user_id}", token.token_id),
            Self::User(a) => format!("user:{}", a.user_id),
            Self::System { name } => format!("system:{name}"),
        }
    }
}

/// Everything a command needs besides its own arguments.
#[derive(Debug, Clone)]
pub struct CommandContext {
    /// Who issues it.
    pub caller: Caller,
    /// Ties together everything one request (or one automation run) caused.
    pub correlation_id: Uuid,
    /// The event or message that caused this command, if any.
    pub causation_id: Option<Uuid>,
    /// A client-chosen key that makes retries of the same request safe: the second attempt
    /// returns the first one's result without deciding again.
    pub idempotency_key: Option<String>,
    /// The time the command is decided at; domain events take their timestamps from it.
    pub now: DateTime<Utc>,
}

impl CommandContext {
    /// A context with a fresh correlation id, no causation, no idempotency key and the current
    /// time.
    #[must_use]
    pub fn new(caller: Caller) -> Self {
        Self {
            caller,
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            idempotency_key: None,
            now: Utc::now(),
        }
    }

    /// The same context with an idempotency key.
    #[must_use]
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// The same context with a causation id.
    #[must_use]
    pub fn caused_by(mut self, causation_id: Uuid) -> Self {
        self.causation_id = Some(causation_id);
        self
    }
}
