//! Personal API tokens: creation (the secret is shown once) and revocation.

use pyairtable_domain::ids::{BaseId, TokenId, UserId};
use pyairtable_domain::permissions::Action;
use pyairtable_domain::roles::Scope;
use pyairtable_domain::token::{ApiToken, TokenCommand};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Platform, acting_user, authorize_account, decide, load_active_user, load_existing};
use crate::auth::new_api_token;
use crate::auth::tables::TxWrite;
use crate::context::CommandContext;
use crate::error::CommandError;
use crate::idempotency::Fingerprint;
use crate::runner::{BatchOutcome, Begin};
use crate::service::Written;
use crate::service::users::written;

/// Arguments of [`Platform::create_api_token`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateApiToken {
    /// Whose token it is: `None` for the caller; the system caller must name a user.
    pub owner: Option<UserId>,
    /// A name to recognise it by.
    pub name: String,
    /// What it may be used for.
    pub scopes: Vec<Scope>,
    /// Restrict it to these bases (`None`: every base the owner can reach).
    pub base_ids: Option<Vec<BaseId>>,
}

/// A created API token.
#[derive(Clone, PartialEq, Eq)]
pub struct CreatedApiToken {
    /// The token's id (`pat…`).
    pub token_id: TokenId,
    /// Its owner.
    pub owner: UserId,
    /// The full token to hand to the user (`pat….<secret>`). Shown once: it is `None` when the
    /// call was a replay of an idempotency key, because the secret is stored nowhere.
    pub token: Option<String>,
    /// Stream version and consistency token of the write.
    pub written: Written<TokenId>,
}

impl std::fmt::Debug for CreatedApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiToken")
            .field("token_id", &self.token_id)
            .field("owner", &self.owner)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("written", &self.written)
            .finish()
    }
}

/// What an idempotent replay of a token creation returns (never the secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredToken {
    owner: UserId,
    written: Written<TokenId>,
}

fn created(stored: StoredToken, token: Option<String>) -> CreatedApiToken {
    CreatedApiToken {
        token_id: stored.written.id.clone(),
        owner: stored.owner,
        token,
        written: stored.written,
    }
}

impl Platform {
    /// Creates a personal API token (`CreateApiToken`: a signed-in user for itself, or the
    /// system caller for any active user). Tokens cannot create tokens.
    ///
    /// # Errors
    /// `Rejected` for no scopes, an empty base list, a bad name or a deactivated owner;
    /// `Forbidden` when an API token tries, or a user names someone else; `NotFound` for an
    /// unknown owner.
    pub async fn create_api_token(
        &self,
        ctx: &CommandContext,
        input: CreateApiToken,
    ) -> Result<CreatedApiToken, CommandError> {
        authorize_account(ctx, Action::CreateApiToken)?;
        let owner = acting_user(ctx, input.owner.as_ref())?;
        let request = Fingerprint::new("createApiToken", &input)?;
        let (token_id, token, secret_hash) = new_api_token();
        let command = TokenCommand::Create {
            id: token_id.clone(),
            owner: owner.clone(),
            name: input.name.clone(),
            scopes: input.scopes.clone(),
            base_ids: input.base_ids.clone(),
            secret_hash,
            at: ctx.now,
        };
        let mut run = match self.runner().begin(ctx, None, &request).await? {
            Begin::Replayed(stored) => return Ok(created(stored, None)),
            Begin::Run(run) => run,
        };
        let stored: StoredToken = loop {
            let mut batch = run.batch();
            load_active_user(&mut batch, &owner).await?;
            let loaded = batch.load::<ApiToken>(token_id.as_str()).await?;
            let events = decide(&loaded, &command)?;
            let emitted = batch.emit(&loaded, &events)?;
            batch.tx_write(TxWrite::ProjectToken {
                token: emitted.state,
                version: emitted.version,
            });
            let finish = |o: &BatchOutcome| {
                Ok(StoredToken {
                    owner: owner.clone(),
                    written: written(&token_id, emitted.version, o),
                })
            };
            if let Some(stored) = run.commit(batch, finish).await? {
                break stored;
            }
        };
        // A concurrent request with the same key may have won: its token is not ours.
        let fresh = stored.written.id == token_id;
        Ok(created(stored, fresh.then_some(token)))
    }

    /// Revokes an API token: one's own (`RevokeOwnApiToken`) or anyone's for instance admins
    /// (`RevokeAnyApiToken`). It stops working at once: verification reads the same table
    /// this transaction updates.
    ///
    /// # Errors
    /// `NotFound` for an unknown token (or someone else's, for non-admins), `Rejected` when
    /// already revoked, `Forbidden` for API-token callers.
    pub async fn revoke_api_token(
        &self,
        ctx: &CommandContext,
        token_id: &TokenId,
    ) -> Result<Written<TokenId>, CommandError> {
        let request = Fingerprint::new("revokeApiToken", &json!({"tokenId": token_id}))?;
        let command = TokenCommand::Revoke { at: ctx.now };
        let mut run = match self.runner().begin(ctx, None, &request).await? {
            Begin::Replayed(result) => return Ok(result),
            Begin::Run(run) => run,
        };
        loop {
            let mut batch = run.batch();
            let loaded =
                load_existing::<ApiToken>(&mut batch, "API token", token_id.as_str()).await?;
            let owner = loaded.state.state().map(|s| s.owner.clone());
            let own = owner.is_some() && ctx.caller.user_id() == owner.as_ref();
            if own {
                authorize_account(ctx, Action::RevokeOwnApiToken)?;
            } else if authorize_account(ctx, Action::RevokeAnyApiToken).is_err() {
                // Someone else's token is reported missing, not forbidden, so token ids
                // cannot be probed.
                return Err(CommandError::not_found("API token", token_id.as_str()));
            }
            let events = decide(&loaded, &command)?;
            let emitted = batch.emit(&loaded, &events)?;
            batch.tx_write(TxWrite::ProjectToken {
                token: emitted.state,
                version: emitted.version,
            });
            if let Some(result) = run
                .commit(batch, |o| Ok(written(token_id, emitted.version, o)))
                .await?
            {
                return Ok(result);
            }
        }
    }
}
