//! The personal access token aggregate: a named grant of [`Scope`]s, optionally limited to some
//! bases, that a user hands to a script or an Airtable client.
//!
//! The secret itself is shown once by the command layer and never stored: the aggregate keeps
//! only its SHA-256 in lowercase hex, against which a presented secret is checked. A token acts
//! with its owner's workspace roles; whether the owner is still active is checked by the
//! command layer at authentication time, since this stream cannot see the user's.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainEvent};
use crate::ids::{BaseId, TokenId, UserId};
use crate::permissions::TokenGrant;
use crate::roles::Scope;
use crate::user::{NameError, parse_name};

/// Longest token name accepted, in characters.
pub const TOKEN_NAME_MAX_CHARS: usize = 100;

/// What can be asked of an API token.
#[derive(Clone, Debug, PartialEq)]
pub enum TokenCommand {
    /// Creates the token.
    Create {
        /// The token's id, drawn by the caller.
        id: TokenId,
        /// The user the token acts for.
        owner: UserId,
        /// A name to recognise it by.
        name: String,
        /// What it may do; at least one. Duplicates are dropped.
        scopes: Vec<Scope>,
        /// `Some` limits it to these bases (at least one, duplicates dropped); `None` lets it
        /// reach every base its owner can.
        base_ids: Option<Vec<BaseId>>,
        /// SHA-256 of the secret, 64 lowercase hex digits, computed by the caller.
        secret_hash: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Revokes it for good.
    Revoke {
        /// When.
        at: DateTime<Utc>,
    },
}

/// What happened to an API token.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum TokenEvent {
    /// A token was created.
    ApiTokenCreated {
        /// Its id.
        id: TokenId,
        /// The user it acts for.
        owner: UserId,
        /// Trimmed name.
        name: String,
        /// Its scopes, sorted and without duplicates.
        scopes: Vec<Scope>,
        /// Its base restriction, sorted and without duplicates, or `None` for all bases.
        base_ids: Option<Vec<BaseId>>,
        /// SHA-256 of the secret in lowercase hex.
        secret_hash: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A token was revoked.
    ApiTokenRevoked {
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for TokenEvent {
    fn event_type(&self) -> &'static str {
        match self {
            TokenEvent::ApiTokenCreated { .. } => "ApiTokenCreated",
            TokenEvent::ApiTokenRevoked { .. } => "ApiTokenRevoked",
        }
    }
}

/// Why a token command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// `Create` on a stream that already holds a token.
    #[error("API token {id} already exists")]
    AlreadyCreated {
        /// The existing token's id.
        id: TokenId,
    },
    /// `Revoke` on a stream with no token.
    #[error("API token does not exist")]
    NotCreated,
    /// `Revoke` on a revoked token.
    #[error("API token {id} is already revoked")]
    AlreadyRevoked {
        /// The token's id.
        id: TokenId,
    },
    /// The name is empty, too long or holds control characters.
    #[error("API token name {0}")]
    InvalidName(NameError),
    /// No scope given.
    #[error("an API token needs at least one scope")]
    NoScopes,
    /// A base restriction that lists no base (the token could do nothing).
    #[error("an API token restricted to bases needs at least one base")]
    EmptyBaseRestriction,
    /// The secret hash is not 64 lowercase hex digits.
    #[error("secret hash must be a SHA-256 in 64 lowercase hex digits")]
    InvalidSecretHash,
}

/// A created token as the aggregate knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenState {
    /// Its id.
    pub id: TokenId,
    /// The user it acts for.
    pub owner: UserId,
    /// Its name.
    pub name: String,
    /// Its scopes, sorted and distinct.
    pub scopes: Vec<Scope>,
    /// Its base restriction, or `None` for all bases.
    pub base_ids: Option<Vec<BaseId>>,
    /// SHA-256 of the secret in lowercase hex.
    pub secret_hash: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The API token aggregate: empty until created.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiToken {
    state: Option<TokenState>,
}

impl ApiToken {
    /// The token, once created.
    #[must_use]
    pub fn state(&self) -> Option<&TokenState> {
        self.state.as_ref()
    }

    /// Whether the token exists and is not revoked.
    #[must_use]
    pub fn is_active(&self) -> bool {
        self.state.as_ref().is_some_and(|s| s.revoked_at.is_none())
    }

    /// What the token allows, for [`crate::permissions::authorize`]; `None` when the token does
    /// not exist or is revoked, so a revoked token can never be turned into a grant.
    #[must_use]
    pub fn grant(&self) -> Option<TokenGrant> {
        let state = self.state.as_ref().filter(|s| s.revoked_at.is_none())?;
        Some(TokenGrant {
            scopes: state.scopes.clone(),
            base_ids: state.base_ids.clone(),
        })
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Aggregate for ApiToken {
    type Command = TokenCommand;
    type Event = TokenEvent;
    type Error = TokenError;
    const KIND: &'static str = "token";

    fn handle(&self, command: &TokenCommand) -> Result<Vec<TokenEvent>, TokenError> {
        let event = match command {
            TokenCommand::Create {
                id,
                owner,
                name,
                scopes,
                base_ids,
                secret_hash,
                at,
            } => {
                if let Some(existing) = &self.state {
                    return Err(TokenError::AlreadyCreated {
                        id: existing.id.clone(),
                    });
                }
                let name =
                    parse_name(name, TOKEN_NAME_MAX_CHARS).map_err(TokenError::InvalidName)?;
                let scopes: Vec<Scope> = scopes
                    .iter()
                    .copied()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                if scopes.is_empty() {
                    return Err(TokenError::NoScopes);
                }
                let base_ids = match base_ids {
                    None => None,
                    Some(ids) => {
                        let ids: Vec<BaseId> = ids
                            .iter()
                            .cloned()
                            .collect::<BTreeSet<_>>()
                            .into_iter()
                            .collect();
                        if ids.is_empty() {
                            return Err(TokenError::EmptyBaseRestriction);
                        }
                        Some(ids)
                    }
                };
                if !is_sha256_hex(secret_hash) {
                    return Err(TokenError::InvalidSecretHash);
                }
                TokenEvent::ApiTokenCreated {
                    id: id.clone(),
                    owner: owner.clone(),
                    name,
                    scopes,
                    base_ids,
                    secret_hash: secret_hash.clone(),
                    at: *at,
                }
            }
            TokenCommand::Revoke { at } => {
                let state = self.state.as_ref().ok_or(TokenError::NotCreated)?;
                if state.revoked_at.is_some() {
                    return Err(TokenError::AlreadyRevoked {
                        id: state.id.clone(),
                    });
                }
                TokenEvent::ApiTokenRevoked { at: *at }
            }
        };
        Ok(vec![event])
    }

    fn apply(&mut self, event: &TokenEvent) {
        match event {
            TokenEvent::ApiTokenCreated {
                id,
                owner,
                name,
                scopes,
                base_ids,
                secret_hash,
                at,
            } => {
                self.state = Some(TokenState {
                    id: id.clone(),
                    owner: owner.clone(),
                    name: name.clone(),
                    scopes: scopes.clone(),
                    base_ids: base_ids.clone(),
                    secret_hash: secret_hash.clone(),
                    created_at: *at,
                    revoked_at: None,
                });
            }
            TokenEvent::ApiTokenRevoked { at } => {
                // A revocation before creation cannot come out of `handle`; ignoring it keeps
                // replay total.
                if let Some(state) = self.state.as_mut() {
                    state.revoked_at = Some(*at);
                }
            }
        }
    }
}
