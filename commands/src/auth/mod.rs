//! Authentication: passwords, sessions (short-lived access JWT plus rotating refresh tokens)
//! and API tokens.
//!
//! Failures are worded and timed so they do not tell a caller whether an email is registered:
//! an unknown email still costs one Argon2 verification against a dummy hash, and every
//! credential failure says "invalid email or password".

mod jwt;
mod password;
mod secrets;
pub(crate) mod tables;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use pyairtable_domain::ids::{BaseId, TokenId, UserId};
use pyairtable_domain::permissions::TokenGrant;
use pyairtable_domain::roles::Scope;
use pyairtable_domain::user::Email;
use sqlx::PgPool;
use uuid::Uuid;

use crate::context::{Authenticated, TokenCaller};
use crate::error::CommandError;

pub use jwt::{AccessClaims, JWT_SECRET_MIN_BYTES};
pub use password::{
    PASSWORD_MAX_BYTES, PASSWORD_MIN_CHARS, PasswordCost, check_password_policy, hash_password,
    verify_password,
};
pub use secrets::{
    API_TOKEN_SECRET_HEX_LEN, ApiTokenParts, constant_time_eq, format_api_token, new_id,
    parse_api_token, random_secret_hex, sha256_hex,
};
pub use tables::{AuthUser, RebuildReport, rebuild_auth_tables};

const INVALID_CREDENTIALS: &str = "invalid email or password";
const INVALID_API_TOKEN: &str = "invalid API token";
const INVALID_REFRESH_TOKEN: &str = "invalid refresh token";

/// Settings of authentication.
#[derive(Clone)]
pub struct AuthConfig {
    /// HS256 signing secret for access tokens (at least 32 bytes).
    pub jwt_secret: Vec<u8>,
    /// Lifetime of an access token.
    pub access_ttl: Duration,
    /// Lifetime of a refresh token (each rotation starts a new one).
    pub refresh_ttl: Duration,
    /// Argon2id cost of new password hashes.
    pub password_cost: PasswordCost,
}

impl AuthConfig {
    /// Defaults: 15-minute access tokens, 30-day refresh tokens, OWASP's Argon2id cost.
    #[must_use]
    pub fn new(jwt_secret: impl Into<Vec<u8>>) -> Self {
        Self {
            jwt_secret: jwt_secret.into(),
            access_ttl: Duration::minutes(15),
            refresh_ttl: Duration::days(30),
            password_cost: PasswordCost::RECOMMENDED,
        }
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("jwt_secret", &"<redacted>")
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("password_cost", &self.password_cost)
            .finish()
    }
}

/// A signed-in session: an access token for requests and a refresh token to renew it.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// The user.
    pub user_id: UserId,
    /// Whether the user is an instance admin.
    pub is_admin: bool,
    /// Bearer token for API requests (HS256 JWT).
    pub access_token: String,
    /// When the access token stops being accepted.
    pub access_expires_at: DateTime<Utc>,
    /// Single-use token that [`Authenticator::refresh`] exchanges for a new session.
    pub refresh_token: String,
    /// When the refresh token stops being accepted.
    pub refresh_expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user_id", &self.user_id)
            .field("is_admin", &self.is_admin)
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .finish_non_exhaustive()
    }
}

/// Checks credentials and manages sessions. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    pool: PgPool,
    keys: jwt::JwtKeys,
    config: Arc<AuthConfig>,
    dummy_hash: Arc<str>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(sqlx::FromRow)]
struct RefreshRow {
    id: Uuid,
    family_id: Uuid,
    user_id: String,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl Authenticator {
    /// Builds an authenticator over the namespace's pool.
    ///
    /// # Errors
    /// When the JWT secret is too short or the dummy hash cannot be computed.
    pub async fn new(pool: PgPool, config: AuthConfig) -> Result<Self, CommandError> {
        let keys = jwt::JwtKeys::new(&config.jwt_secret)?;
        // Unknown emails are verified against this so they cost as much as known ones.
        let dummy_hash = hash_password(config.password_cost, &random_secret_hex()).await?;
        Ok(Self {
            pool,
            keys,
            config: Arc::new(config),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// The settings in force.
    #[must_use]
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Checks an email and password and starts a session.
    ///
    /// # Errors
    /// [`CommandError::Unauthorized`] with the same message whether the email is unknown or
    /// the password wrong; a distinct message for a deactivated account, given only after the
    /// password was verified.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        now: DateTime<Utc>,
    ) -> Result<Session, CommandError> {
        let user = match Email::parse(email) {
            Ok(email) => tables::find_user_by_email(&self.pool, email.as_str()).await?,
            Err(_) => None,
        };
        // A user without a stored hash (recreated by an auth-table rebuild) is verified against
        // the dummy hash too, so the answer takes as long and reads the same as a wrong password.
        let stored = user.as_ref().and_then(|u| u.password_hash.as_deref());
        let matches = verify_password(stored.unwrap_or(&self.dummy_hash), password).await?;
        let Some(user) = user.filter(|u| matches && u.password_hash.is_some()) else {
            return Err(CommandError::unauthorized(INVALID_CREDENTIALS));
        };
        if !user.active {
            return Err(CommandError::unauthorized("account is deactivated"));
        }
        let family = Uuid::new_v4();
        let mut conn = self.pool.acquire().await?;
        let (refresh_token, refresh_expires_at) = self
            .insert_refresh(&mut conn, family, None, &user.user_id, now)
            .await?;
        self.session(
            user.user_id,
            user.is_admin,
            refresh_token,
            refresh_expires_at,
            now,
        )
    }

    /// Spends a refresh token and issues a new session in the same family.
    ///
    /// Presenting a token that was already spent means it leaked (or a client raced itself):
    /// the whole family is revoked, so neither holder can continue.
    ///
    /// # Errors
    /// [`CommandError::Unauthorized`] for unknown, expired, revoked or reused tokens, or a
    /// deactivated account.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        now: DateTime<Utc>,
    ) -> Result<Session, CommandError> {
        let mut tx = self.pool.begin().await?;
        // Denials are committed too: reuse detection and deactivation revoke the family.
        let step = match self.refresh_in(&mut tx, refresh_token, now).await {
            Ok(step) => step,
            Err(error) => {
                rollback(tx).await;
                return Err(error);
            }
        };
        tx.commit().await?;
        let (user_id, is_admin, refresh_token, refresh_expires_at) = step?;
        self.session(user_id, is_admin, refresh_token, refresh_expires_at, now)
    }

    /// The refresh decision inside the transaction: `Ok(Err(denial))` for a refused token
    /// (whose writes, if any, must be kept), `Err` for a failure that must be rolled back.
    async fn refresh_in(
        &self,
        tx: &mut sqlx::PgConnection,
        refresh_token: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<(UserId, bool, String, DateTime<Utc>), CommandError>, CommandError> {
        let deny = |message: &str| Ok(Err(CommandError::unauthorized(message)));
        let Some(row) = lock_refresh(tx, refresh_token).await? else {
            return deny(INVALID_REFRESH_TOKEN);
        };
        if row.revoked_at.is_some() {
            return deny("refresh token revoked");
        }
        if row.used_at.is_some() {
            revoke_family(tx, row.family_id, now).await?;
            tracing::warn!(family = %row.family_id, user = %row.user_id, "refresh token reused; family revoked");
            return deny("refresh token already used; the session was revoked, sign in again");
        }
        if row.expires_at <= now {
            return deny("refresh token expired");
        }
        let user = tables::find_user_by_id(&mut *tx, &row.user_id).await?;
        let Some(user) = user.filter(|u| u.active) else {
            revoke_family(tx, row.family_id, now).await?;
            return deny("account is deactivated");
        };
        sqlx::query("UPDATE refresh_tokens SET used_at = $2 WHERE id = $1")
            .bind(row.id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let (refresh_token, refresh_expires_at) = self
            .insert_refresh(tx, row.family_id, Some(row.id), &user.user_id, now)
            .await?;
        Ok(Ok((
            user.user_id,
            user.is_admin,
            refresh_token,
            refresh_expires_at,
        )))
    }

    /// Ends the session a refresh token belongs to (its whole family).
    ///
    /// # Errors
    /// [`CommandError::Unauthorized`] when the token is unknown.
    pub async fn logout(
        &self,
        refresh_token: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CommandError> {
        let mut conn = self.pool.acquire().await?;
        // One statement, so no transaction is left open on any path.
        let revoked = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, $2) \
             WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
        )
        .bind(sha256_hex(refresh_token))
        .bind(now)
        .execute(&mut *conn)
        .await?;
        if revoked.rows_affected() == 0 {
            return Err(CommandError::unauthorized(INVALID_REFRESH_TOKEN));
        }
        Ok(())
    }

    /// Revokes every refresh token of a user (after a password change or deactivation).
    ///
    /// # Errors
    /// Infrastructure errors only.
    pub async fn revoke_all_sessions(
        &self,
        user_id: &UserId,
        now: DateTime<Utc>,
    ) -> Result<u64, CommandError> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user_id.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Checks an access token's signature and expiry and returns the caller it names.
    ///
    /// # Errors
    /// [`CommandError::Unauthorized`] for invalid or expired tokens.
    pub fn verify_access_token(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Authenticated, CommandError> {
        let claims = self.keys.verify(token, now)?;
        let user_id = UserId::parse(&claims.sub)
            .map_err(|_| CommandError::unauthorized("invalid access token"))?;
        Ok(Authenticated {
            user_id,
            is_admin: claims.adm,
            token: None,
        })
    }

    /// Checks an API token (`pat<id>.<secret>`) and returns the caller it acts for.
    ///
    /// # Errors
    /// [`CommandError::Unauthorized`] for malformed, unknown, wrong-secret or revoked tokens
    /// and for tokens of deactivated accounts.
    pub async fn verify_api_token(&self, token: &str) -> Result<Authenticated, CommandError> {
        let parts = parse_api_token(token);
        let row = match &parts {
            Some(parts) => tables::find_token(&self.pool, parts.id.as_str()).await?,
            None => None,
        };
        // Compare even when the token is unknown, so the time taken does not say which.
        let presented = sha256_hex(parts.as_ref().map_or(token, |p| p.secret.as_str()));
        let stored = row
            .as_ref()
            .map_or("0".repeat(64), |r| r.secret_hash.clone());
        let matches = constant_time_eq(presented.as_bytes(), stored.as_bytes());
        let (Some(parts), Some(row)) = (parts, row) else {
            return Err(CommandError::unauthorized(INVALID_API_TOKEN));
        };
        if !matches {
            return Err(CommandError::unauthorized(INVALID_API_TOKEN));
        }
        if row.revoked {
            return Err(CommandError::unauthorized("API token revoked"));
        }
        if !row.user_active {
            return Err(CommandError::unauthorized("account is deactivated"));
        }
        let corrupt =
            |what: String| CommandError::infra("reading auth_tokens", format!("stored {what}"));
        let scopes = row
            .scopes
            .iter()
            .map(|s| Scope::parse(s).map_err(|e| corrupt(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let base_ids = row
            .base_ids
            .map(|ids| {
                ids.iter()
                    .map(|b| BaseId::parse(b).map_err(|e| corrupt(e.to_string())))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let user_id = UserId::parse(&row.user_id).map_err(|e| corrupt(e.to_string()))?;
        Ok(Authenticated {
            user_id,
            is_admin: row.user_is_admin,
            token: Some(TokenCaller {
                token_id: parts.id,
                grant: TokenGrant { scopes, base_ids },
            }),
        })
    }

    /// Looks a user up by email (case-insensitive), for the CLI and invitations.
    ///
    /// # Errors
    /// Infrastructure errors only; an invalid or unknown email gives `Ok(None)`.
    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<AuthUser>, CommandError> {
        match Email::parse(email) {
            Ok(email) => tables::find_user_by_email(&self.pool, email.as_str()).await,
            Err(_) => Ok(None),
        }
    }

    async fn insert_refresh(
        &self,
        tx: &mut sqlx::PgConnection,
        family: Uuid,
        parent: Option<Uuid>,
        user_id: &UserId,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), CommandError> {
        let token = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            rand::random::<[u8; 32]>(),
        );
        let expires_at = now + self.config.refresh_ttl;
        sqlx::query(
            "INSERT INTO refresh_tokens (id, family_id, parent_id, user_id, token_hash, issued_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(Uuid::now_v7())
        .bind(family)
        .bind(parent)
        .bind(user_id.as_str())
        .bind(sha256_hex(&token))
        .bind(now)
        .bind(expires_at)
        .execute(tx)
        .await?;
        Ok((token, expires_at))
    }

    fn session(
        &self,
        user_id: UserId,
        is_admin: bool,
        refresh_token: String,
        refresh_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Session, CommandError> {
        let (access_token, access_expires_at) =
            self.keys
                .issue(&user_id, is_admin, now, self.config.access_ttl)?;
        Ok(Session {
            user_id,
            is_admin,
            access_token,
            access_expires_at,
            refresh_token,
            refresh_expires_at,
        })
    }
}

/// Rolls a transaction back now instead of leaving the rollback to the connection's next use:
/// an idle transaction would hold the global feed back.
pub(crate) async fn rollback(tx: sqlx::Transaction<'_, sqlx::Postgres>) {
    if let Err(error) = tx.rollback().await {
        tracing::warn!(%error, "rollback failed");
    }
}

async fn lock_refresh(
    tx: &mut sqlx::PgConnection,
    token: &str,
) -> Result<Option<RefreshRow>, CommandError> {
    let row = sqlx::query_as::<_, RefreshRow>(
        "SELECT id, family_id, user_id, expires_at, used_at, revoked_at \
         FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(sha256_hex(token))
    .fetch_optional(tx)
    .await?;
    Ok(row)
}

async fn revoke_family(
    tx: &mut sqlx::PgConnection,
    family: Uuid,
    now: DateTime<Utc>,
) -> Result<(), CommandError> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family)
    .bind(now)
    .execute(tx)
    .await?;
    Ok(())
}

/// Builds the principal-independent parts of an API token for a new token: id, secret, the
/// string handed to the user once, and the hash stored in events.
pub(crate) fn new_api_token() -> (TokenId, String, String) {
    let id: TokenId = new_id();
    let secret = random_secret_hex();
    let token = format_api_token(&id, &secret);
    let hash = sha256_hex(&secret);
    (id, token, hash)
}
