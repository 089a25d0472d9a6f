//! Idempotency keys: a client that retries a request with the same `Idempotency-Key` gets the
//! first attempt's result, and nothing is decided or written twice.
//!
//! A key is scoped to its caller, so two users cannot collide or read each other's results.
//! The row is written in the same transaction as the command's events (see
//! [`crate::Runner::begin`] and [`crate::Run::commit`]), and keeps a hash of the request so
//! that reusing a key for a different request is an error instead of a silent wrong answer.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};

use crate::auth::sha256_hex;
use crate::context::{CommandContext, IDEMPOTENCY_KEY_MAX_LEN};
use crate::error::CommandError;

/// What identifies a request for idempotency: the command's name and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    hash: String,
}

impl Fingerprint {
    /// Hashes the command name with its serialised arguments. Arguments that differ in any
    /// field (or in map key order, which serde_json normalises) give different fingerprints.
    ///
    /// # Errors
    /// An infrastructure error when `body` cannot be serialised.
    pub fn new(command: &str, body: &impl Serialize) -> Result<Self, CommandError> {
        let body = serde_json::to_value(body)
            .map_err(|e| CommandError::infra("fingerprinting a command", e))?;
        // serde_json's Map is ordered by key, so this text is canonical for equal values.
        Ok(Self {
            hash: sha256_hex(&format!("{command}\n{body}")),
        })
    }

    /// The claim this request makes on the context's idempotency key, if it has one.
    pub(crate) fn claim(&self, ctx: &CommandContext) -> Result<Option<Claim>, CommandError> {
        let Some(key) = &ctx.idempotency_key else {
            return Ok(None);
        };
        if key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX_LEN {
            return Err(CommandError::rejected(
                "invalid_idempotency_key",
                format!("an idempotency key must have 1 to {IDEMPOTENCY_KEY_MAX_LEN} bytes"),
            ));
        }
        Ok(Some(Claim {
            actor: ctx.caller.key(),
            key: key.clone(),
            hash: self.hash.clone(),
        }))
    }
}

/// One request's claim on a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    pub actor: String,
    pub key: String,
    pub hash: String,
}

/// The stored result for the claim's key, or [`CommandError::IdempotencyKeyReused`] when the
/// key was used for another request.
pub(crate) async fn lookup(
    db: impl PgExecutor<'_>,
    claim: &Claim,
) -> Result<Option<Value>, CommandError> {
    let row: Option<(String, Value)> = sqlx::query_as(
        "SELECT command_hash, result FROM idempotency_keys WHERE actor = $1 AND key = $2",
    )
    .bind(&claim.actor)
    .bind(&claim.key)
    .fetch_optional(db)
    .await?;
    match row {
        None => Ok(None),
        Some((hash, _)) if hash != claim.hash => Err(CommandError::IdempotencyKeyReused {
            key: claim.key.clone(),
        }),
        Some((_, result)) => Ok(Some(result)),
    }
}

/// Stores the result; false when the key is already taken (by a concurrent request that
/// committed first, which this insert waited for).
pub(crate) async fn insert(
    conn: &mut PgConnection,
    claim: &Claim,
    result: &Value,
) -> Result<bool, CommandError> {
    let done = sqlx::query(
        "INSERT INTO idempotency_keys (actor, key, command_hash, result) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (actor, key) DO NOTHING",
    )
    .bind(&claim.actor)
    .bind(&claim.key)
    .bind(&claim.hash)
    .bind(result)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Turns a stored result back into the caller's type.
pub(crate) fn decode<R: DeserializeOwned>(claim: &Claim, stored: Value) -> Result<R, CommandError> {
    serde_json::from_value(stored).map_err(|e| {
        CommandError::infra(
            format!(
                "decoding the stored result of idempotency key {}",
                claim.key
            ),
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Caller;

    #[test]
    fn fingerprints_differ_by_command_and_body_and_ignore_key_order() {
        let a = Fingerprint::new("createRecords", &serde_json::json!({"a": 1, "b": 2})).unwrap();
        let b = Fingerprint::new("createRecords", &serde_json::json!({"b": 2, "a": 1})).unwrap();
        let c = Fingerprint::new("createRecords", &serde_json::json!({"a": 1, "b": 3})).unwrap();
        let d = Fingerprint::new("updateRecords", &serde_json::json!({"a": 1, "b": 2})).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn claims_are_scoped_to_the_caller_and_keys_are_bounded() {
        let f = Fingerprint::new("x", &1).unwrap();
        let ctx = CommandContext::new(Caller::system("cli"));
        assert_eq!(f.claim(&ctx).unwrap(), None);
        let claim = f
            .claim(&ctx.clone().with_idempotency_key("k"))
            .unwrap()
            .unwrap();
        assert_eq!(claim.actor, "system:cli");
        let other = CommandContext::new(Caller::system("importer")).with_idempotency_key("k");
        assert_ne!(f.claim(&other).unwrap().unwrap().actor, claim.actor);
        let long = ctx
            .clone()
            .with_idempotency_key("k".repeat(IDEMPOTENCY_KEY_MAX_LEN + 1));
        assert!(matches!(
            f.claim(&long),
            Err(CommandError::Rejected {
                code: "invalid_idempotency_key",
                ..
            })
        ));
        assert!(f.claim(&ctx.with_idempotency_key("")).is_err());
    }
}
