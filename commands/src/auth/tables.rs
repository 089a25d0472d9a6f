//! The authentication read tables (`auth_users`, `auth_tokens`) and the email reservations.
//!
//! These tables are projections the command service updates in the same transaction as each
//! user or token append (through the store's `append_many_in`), so a login never misses a
//! registered user. Each row keeps the stream version it reflects and an update only wins when
//! it is not older (an equal version carries the same state, so rewriting it repairs a damaged
//! row and is otherwise a no-op), so replays are harmless; [`rebuild_auth_tables`] recomputes
//! them from the event store (after a restore, or if they were ever damaged).
//!
//! One column is not a projection: `auth_users.password_hash` is the credential store. Events
//! never carry a password hash (they are immutable and reach every consumer), so the hash is
//! written here by [`TxWrite::SetPasswordHash`], in the transaction that appends the
//! `UserRegistered` or `UserPasswordChanged` event, and nothing derived from events ever
//! overwrites it: the projection upsert leaves it alone and a rebuild keeps it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use pyairtable_domain::Aggregate;
use pyairtable_domain::ids::UserId;
use pyairtable_domain::token::ApiToken;
use pyairtable_domain::user::User;
use pyairtable_eventstore::{EventStore, Position};
use sqlx::{PgConnection, PgExecutor};

use crate::codec;
use crate::error::CommandError;
use crate::runner::{Runner, RunnerConfig};

/// A user as the authentication tables know it.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthUser {
    /// The user.
    pub user_id: UserId,
    /// The (normalised, lower-case) email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Argon2id PHC string; `None` when the row was recreated by [`rebuild_auth_tables`]
    /// without one (the user cannot sign in until an administrator resets the password).
    pub password_hash: Option<String>,
    /// Instance administrator.
    pub is_admin: bool,
    /// Not deactivated.
    pub active: bool,
}

impl std::fmt::Debug for AuthUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthUser")
            .field("user_id", &self.user_id)
            .field("email", &self.email)
            .field("display_name", &self.display_name)
            .field("is_admin", &self.is_admin)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

type UserRow = (String, String, String, Option<String>, bool, bool);

fn user_from_row(row: UserRow) -> Result<AuthUser, CommandError> {
    let (user_id, email, display_name, password_hash, is_admin, active) = row;
    let user_id = UserId::parse(&user_id)
        .map_err(|e| CommandError::infra("reading auth_users", e.to_string()))?;
    Ok(AuthUser {
        user_id,
        email,
        display_name,
        password_hash,
        is_admin,
        active,
    })
}

pub(crate) async fn find_user_by_email(
    db: impl PgExecutor<'_>,
    email: &str,
) -> Result<Option<AuthUser>, CommandError> {
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT user_id, email, display_name, password_hash, is_admin, active \
         FROM auth_users WHERE email = $1",
    )
    .bind(email)
    .fetch_optional(db)
    .await?;
    row.map(user_from_row).transpose()
}

pub(crate) async fn find_user_by_id(
    db: impl PgExecutor<'_>,
    user_id: &str,
) -> Result<Option<AuthUser>, CommandError> {
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT user_id, email, display_name, password_hash, is_admin, active \
         FROM auth_users WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(db)
    .await?;
    row.map(user_from_row).transpose()
}

/// An API token row joined with its owner's status.
#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    pub user_id: String,
    pub secret_hash: String,
    pub scopes: Vec<String>,
    pub base_ids: Option<Vec<String>>,
    pub revoked: bool,
    pub user_is_admin: bool,
    pub user_active: bool,
}

pub(crate) async fn find_token(
    db: impl PgExecutor<'_>,
    token_id: &str,
) -> Result<Option<TokenRow>, CommandError> {
    let row = sqlx::query_as::<_, TokenRow>(
        "SELECT t.user_id, t.secret_hash, t.scopes, t.base_ids, t.revoked, \
                coalesce(u.is_admin, false) AS user_is_admin, \
                coalesce(u.active, false) AS user_active \
         FROM auth_tokens t LEFT JOIN auth_users u ON u.user_id = t.user_id \
         WHERE t.token_id = $1",
    )
    .bind(token_id)
    .fetch_optional(db)
    .await?;
    Ok(row)
}

fn version_i64(version: u64) -> Result<i64, CommandError> {
    i64::try_from(version).map_err(|e| CommandError::infra("storing a stream version", e))
}

/// Writes a user's state at `version` into `auth_users` unless a newer one is there. The
/// password hash is not part of the state: a new row starts without one and an existing row
/// keeps its own.
pub(crate) async fn project_user(
    db: impl PgExecutor<'_>,
    user: &User,
    version: u64,
) -> Result<(), CommandError> {
    let Some(account) = user.account() else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO auth_users (user_id, email, display_name, is_admin, active, stream_version) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (user_id) DO UPDATE SET \
            email = EXCLUDED.email, display_name = EXCLUDED.display_name, \
            is_admin = EXCLUDED.is_admin, \
            active = EXCLUDED.active, stream_version = EXCLUDED.stream_version \
         WHERE auth_users.stream_version <= EXCLUDED.stream_version",
    )
    .bind(account.id.as_str())
    .bind(account.email.as_str())
    .bind(&account.display_name)
    .bind(account.is_admin)
    .bind(account.active)
    .bind(version_i64(version)?)
    .execute(db)
    .await?;
    Ok(())
}

/// Writes a token's state at `version` into `auth_tokens` unless a newer one is there.
pub(crate) async fn project_token(
    db: impl PgExecutor<'_>,
    token: &ApiToken,
    version: u64,
) -> Result<(), CommandError> {
    let Some(state) = token.state() else {
        return Ok(());
    };
    let scopes: Vec<String> = state.scopes.iter().map(|s| s.as_str().to_owned()).collect();
    let base_ids: Option<Vec<String>> = state
        .base_ids
        .as_ref()
        .map(|ids| ids.iter().map(ToString::to_string).collect());
    sqlx::query(
        "INSERT INTO auth_tokens (token_id, user_id, name, secret_hash, scopes, base_ids, revoked, created_at, stream_version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (token_id) DO UPDATE SET \
            user_id = EXCLUDED.user_id, name = EXCLUDED.name, secret_hash = EXCLUDED.secret_hash, \
            scopes = EXCLUDED.scopes, base_ids = EXCLUDED.base_ids, revoked = EXCLUDED.revoked, \
            created_at = EXCLUDED.created_at, stream_version = EXCLUDED.stream_version \
         WHERE auth_tokens.stream_version <= EXCLUDED.stream_version",
    )
    .bind(state.id.as_str())
    .bind(state.owner.as_str())
    .bind(&state.name)
    .bind(&state.secret_hash)
    .bind(&scopes)
    .bind(&base_ids)
    .bind(state.revoked_at.is_some())
    .bind(state.created_at)
    .bind(version_i64(version)?)
    .execute(db)
    .await?;
    Ok(())
}

/// Stores a user's new password hash in the caller's transaction, the one appending the
/// `UserRegistered` or `UserPasswordChanged` event, so the event and the credential commit
/// together. The row must exist (a [`TxWrite::ProjectUser`] earlier in the same transaction
/// creates it); finding none is a bug, and failing rolls the event back rather than record a
/// password change that did not happen.
///
/// # Errors
/// [`CommandError::Infra`] when the user has no `auth_users` row.
pub(crate) async fn set_password_hash(
    conn: &mut PgConnection,
    user_id: &UserId,
    hash: &PasswordHashString,
) -> Result<(), CommandError> {
    let updated = sqlx::query("UPDATE auth_users SET password_hash = $2 WHERE user_id = $1")
        .bind(user_id.as_str())
        .bind(hash.0.as_str())
        .execute(&mut *conn)
        .await?;
    if updated.rows_affected() == 1 {
        Ok(())
    } else {
        Err(CommandError::infra(
            "storing a password hash",
            format!("user {user_id} has no auth_users row"),
        ))
    }
}

/// An Argon2id PHC string on its way to the credential store. Its `Debug` output is redacted,
/// so logging a [`TxWrite`] (or an error holding one) never prints a hash.
#[derive(Clone)]
pub(crate) struct PasswordHashString(String);

impl PasswordHashString {
    pub(crate) fn new(phc: String) -> Self {
        Self(phc)
    }
}

impl std::fmt::Debug for PasswordHashString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHashString(<redacted>)")
    }
}

/// Claims `email` for `user_id` inside the caller's transaction (the one appending the event
/// that gives the user this email). Idempotent for the same user; a concurrent claim by
/// another user waits for this transaction and then finds the email taken.
///
/// # Errors
/// [`CommandError::Rejected`] with code `email_taken` when another user holds the email.
pub(crate) async fn reserve_email(
    conn: &mut PgConnection,
    email: &str,
    user_id: &UserId,
) -> Result<(), CommandError> {
    let inserted = sqlx::query(
        "INSERT INTO email_reservations (email, user_id) VALUES ($1, $2) \
         ON CONFLICT (email) DO NOTHING",
    )
    .bind(email)
    .bind(user_id.as_str())
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(());
    }
    let holder: Option<String> =
        sqlx::query_scalar("SELECT user_id FROM email_reservations WHERE email = $1")
            .bind(email)
            .fetch_optional(&mut *conn)
            .await?;
    if holder.as_deref() == Some(user_id.as_str()) {
        return Ok(());
    }
    Err(CommandError::rejected(
        "email_taken",
        format!("email {email} is already registered"),
    ))
}

/// Gives up `user_id`'s claim on `email` (after an email change), in the caller's transaction.
pub(crate) async fn release_email(
    conn: &mut PgConnection,
    email: &str,
    user_id: &UserId,
) -> Result<(), CommandError> {
    sqlx::query("DELETE FROM email_reservations WHERE email = $1 AND user_id = $2")
        .bind(email)
        .bind(user_id.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes every refresh token of a user in the caller's transaction.
pub(crate) async fn revoke_sessions(
    conn: &mut PgConnection,
    user_id: &UserId,
    now: DateTime<Utc>,
) -> Result<(), CommandError> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id.as_str())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// A row change made in the same transaction as a command's events.
#[derive(Debug, Clone)]
pub(crate) enum TxWrite {
    /// Refresh `auth_users` from a user's state at a stream version (the password hash
    /// excepted).
    ProjectUser { user: User, version: u64 },
    /// Store a user's password hash; must follow the `ProjectUser` that creates the row.
    SetPasswordHash {
        user_id: UserId,
        hash: PasswordHashString,
    },
    /// Refresh `auth_tokens` from a token's state at a stream version.
    ProjectToken { token: ApiToken, version: u64 },
    /// Claim an email for a user (fails the command when another user holds it).
    ReserveEmail { email: String, user_id: UserId },
    /// Give up a user's claim on an email.
    ReleaseEmail { email: String, user_id: UserId },
    /// Revoke every refresh token of a user.
    RevokeSessions { user_id: UserId, at: DateTime<Utc> },
}

/// Makes one [`TxWrite`] on the transaction's connection.
pub(crate) async fn apply(conn: &mut PgConnection, write: &TxWrite) -> Result<(), CommandError> {
    match write {
        TxWrite::ProjectUser { user, version } => project_user(conn, user, *version).await,
        TxWrite::ProjectToken { token, version } => project_token(conn, token, *version).await,
        TxWrite::SetPasswordHash { user_id, hash } => set_password_hash(conn, user_id, hash).await,
        TxWrite::ReserveEmail { email, user_id } => reserve_email(conn, email, user_id).await,
        TxWrite::ReleaseEmail { email, user_id } => release_email(conn, email, user_id).await,
        TxWrite::RevokeSessions { user_id, at } => revoke_sessions(conn, user_id, *at).await,
    }
}

/// What [`rebuild_auth_tables`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RebuildReport {
    /// User streams folded.
    pub users: usize,
    /// Token streams folded.
    pub tokens: usize,
    /// Events read from the feed.
    pub events: u64,
    /// Users left without a password hash (rows recreated from events): they cannot sign in
    /// until an administrator resets their password.
    pub users_without_password: usize,
}

/// Recomputes `auth_users` and `auth_tokens` from the event store, and makes sure every
/// registered email is reserved.
///
/// Password hashes are not in the event store, so they are kept: an existing row keeps its
/// hash, a row recreated from events gets none (that user cannot sign in until an
/// administrator resets the password), and a row whose user stream does not exist is deleted
/// with its hash.
///
/// Streams are found in the global feed (which shows what committed before the oldest running
/// transaction); rows whose streams the feed did not show are re-read from their streams, and
/// deleted only when the stream does not exist. Rows are upserted with the same stream-version
/// guard the live path uses, so the rebuild is safe while commands keep running.
///
/// # Errors
/// Infrastructure errors from the store or the database.
pub async fn rebuild_auth_tables(store: &EventStore) -> Result<RebuildReport, CommandError> {
    let user_prefix = format!("{}-", User::KIND);
    let token_prefix = format!("{}-", ApiToken::KIND);
    let mut users: BTreeMap<String, (User, u64)> = BTreeMap::new();
    let mut tokens: BTreeMap<String, (ApiToken, u64)> = BTreeMap::new();
    let mut report = RebuildReport::default();
    let mut after = Position::START;
    loop {
        let batch = store
            .read_all(&after, 500)
            .await
            .map_err(|e| CommandError::infra("reading the global feed", e))?;
        if batch.events.is_empty() {
            break;
        }
        for event in &batch.events {
            report.events += 1;
            if event.stream_id.starts_with(&user_prefix) {
                let decoded = codec::decode(
                    &event.stream_id,
                    event.version,
                    &event.event_type,
                    &event.payload,
                )?;
                let entry = users.entry(event.stream_id.clone()).or_default();
                entry.0.apply(&decoded);
                entry.1 = event.version;
            } else if event.stream_id.starts_with(&token_prefix) {
                let decoded = codec::decode(
                    &event.stream_id,
                    event.version,
                    &event.event_type,
                    &event.payload,
                )?;
                let entry = tokens.entry(event.stream_id.clone()).or_default();
                entry.0.apply(&decoded);
                entry.1 = event.version;
            }
        }
        after = batch.next;
    }

    // Rows whose streams the feed did not show: either the stream is still held back by an
    // open transaction (or is older than a feed restore), and its current state is read
    // directly, or it does not exist and the row goes.
    let runner = Runner::new(
        store.clone(),
        RunnerConfig {
            snapshot_every: 0,
            ..RunnerConfig::default()
        },
    );
    let pool = store.pool();
    let seen_users: Vec<String> = users
        .values()
        .filter_map(|(u, _)| u.account())
        .map(|a| a.id.to_string())
        .collect();
    let stale: Vec<String> =
        sqlx::query_scalar("SELECT user_id FROM auth_users WHERE user_id <> ALL($1)")
            .bind(&seen_users)
            .fetch_all(pool)
            .await?;
    let mut gone_users = Vec::new();
    for id in stale {
        let loaded = runner.load::<User>(&id).await?;
        if loaded.is_new() {
            gone_users.push(id);
        } else {
            users.insert(loaded.stream.to_string(), (loaded.state, loaded.version));
        }
    }
    let seen_tokens: Vec<String> = tokens
        .values()
        .filter_map(|(t, _)| t.state())
        .map(|s| s.id.to_string())
        .collect();
    let stale: Vec<String> =
        sqlx::query_scalar("SELECT token_id FROM auth_tokens WHERE token_id <> ALL($1)")
            .bind(&seen_tokens)
            .fetch_all(pool)
            .await?;
    let mut gone_tokens = Vec::new();
    for id in stale {
        let loaded = runner.load::<ApiToken>(&id).await?;
        if loaded.is_new() {
            gone_tokens.push(id);
        } else {
            tokens.insert(loaded.stream.to_string(), (loaded.state, loaded.version));
        }
    }
    report.users = users.len();
    report.tokens = tokens.len();

    let mut tx = pool.begin().await?;
    let written = write_rebuild(&mut tx, &users, &tokens, &gone_users, &gone_tokens).await;
    match written {
        Ok(without_password) => {
            tx.commit().await?;
            report.users_without_password = without_password;
        }
        Err(error) => {
            super::rollback(tx).await;
            return Err(error);
        }
    }
    Ok(report)
}

async fn write_rebuild(
    tx: &mut PgConnection,
    users: &BTreeMap<String, (User, u64)>,
    tokens: &BTreeMap<String, (ApiToken, u64)>,
    gone_users: &[String],
    gone_tokens: &[String],
) -> Result<usize, CommandError> {
    for (user, version) in users.values() {
        project_user(&mut *tx, user, *version).await?;
        if let Some(account) = user.account() {
            sqlx::query(
                "INSERT INTO email_reservations (email, user_id) VALUES ($1, $2) \
                 ON CONFLICT (email) DO NOTHING",
            )
            .bind(account.email.as_str())
            .bind(account.id.as_str())
            .execute(&mut *tx)
            .await?;
        }
    }
    for (token, version) in tokens.values() {
        project_token(&mut *tx, token, *version).await?;
    }
    sqlx::query("DELETE FROM auth_users WHERE user_id = ANY($1)")
        .bind(gone_users)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM auth_tokens WHERE token_id = ANY($1)")
        .bind(gone_tokens)
        .execute(&mut *tx)
        .await?;
    let without: Vec<String> =
        sqlx::query_scalar("SELECT user_id FROM auth_users WHERE password_hash IS NULL")
            .fetch_all(&mut *tx)
            .await?;
    if !without.is_empty() {
        // The event store cannot give these hashes back (it never held them); say who is
        // locked out so an operator can reset their passwords.
        tracing::warn!(
            users = ?without,
            "auth rebuild: users without a password hash cannot sign in until a password reset"
        );
    }
    Ok(without.len())
}
