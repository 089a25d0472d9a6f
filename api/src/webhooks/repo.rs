//! The webhook tables (`migrations/0030_webhooks.sql`): registrations, their payloads and
//! their notification attempts. Every statement is scoped by base id or webhook id as its
//! caller was authorised for.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{PgPool, Row};

use crate::rest::cells::iso;

/// A webhook registration as stored.
#[derive(Debug, Clone)]
pub struct WebhookRow {
    /// `ach…`.
    pub id: String,
    /// `app…`.
    pub base_id: String,
    /// Where pings go.
    pub notification_url: Option<String>,
    /// The specification as given.
    pub specification: Value,
    /// The MAC key.
    pub mac_secret: Vec<u8>,
    /// Feed position token processed up to.
    pub position: String,
    /// Payloads recorded so far.
    pub payload_count: i64,
    /// Whether pings are sent.
    pub notifications_enabled: bool,
    /// When it stops.
    pub expires_at: DateTime<Utc>,
    /// Last successful ping.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Airtable's `lastNotificationResult`.
    pub last_result: Option<Value>,
}

const COLUMNS: &str = "id, base_id, notification_url, specification, mac_secret, position, \
     payload_count, notifications_enabled, expires_at, last_success_at, last_result";

fn decode(row: &sqlx::postgres::PgRow) -> Result<WebhookRow, sqlx::Error> {
    Ok(WebhookRow {
        id: row.try_get("id")?,
        base_id: row.try_get("base_id")?,
        notification_url: row.try_get("notification_url")?,
        specification: row.try_get("specification")?,
        mac_secret: row.try_get("mac_secret")?,
        position: row.try_get("position")?,
        payload_count: row.try_get("payload_count")?,
        notifications_enabled: row.try_get("notifications_enabled")?,
        expires_at: row.try_get("expires_at")?,
        last_success_at: row.try_get("last_success_at")?,
        last_result: row.try_get("last_result")?,
    })
}

impl WebhookRow {
    /// Whether the webhook has not expired at `now`.
    #[must_use]
    pub fn is_enabled(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now
    }

    /// The webhook as Airtable's list endpoint shows it.
    #[must_use]
    pub fn to_json(&self, now: DateTime<Utc>) -> Value {
        json!({
            "id": self.id,
            "areNotificationsEnabled": self.notifications_enabled,
            "cursorForNextPayload": self.payload_count + 1,
            "isHookEnabled": self.is_enabled(now),
            "lastSuccessfulNotificationTime": self.last_success_at.map(iso),
            "notificationUrl": self.notification_url,
            "expirationTime": iso(self.expires_at),
            "lastNotificationResult": self.last_result,
            "specification": self.specification,
        })
    }
}

/// A new registration.
pub struct NewWebhook<'a> {
    /// `ach…`.
    pub id: &'a str,
    /// `app…`.
    pub base_id: &'a str,
    /// The base's workspace.
    pub workspace_id: &'a str,
    /// `usr…` of the creator.
    pub created_by: &'a str,
    /// Where pings go.
    pub notification_url: Option<&'a str>,
    /// The validated specification.
    pub specification: &'a Value,
    /// The MAC key.
    pub mac_secret: &'a [u8],
    /// The feed's head when it was created.
    pub position: &'a str,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// Inserts a registration unless the base already has `max_per_base` of them. Returns whether
/// it was inserted.
///
/// # Errors
/// Database errors.
pub async fn insert(pool: &PgPool, w: &NewWebhook<'_>, max_per_base: i64) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    // Serialises creations per base so two concurrent requests cannot both pass the limit.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('webhooks:' || $1))")
        .bind(w.base_id)
        .execute(&mut *tx)
        .await?;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM webhooks WHERE base_id = $1")
        .bind(w.base_id)
        .fetch_one(&mut *tx)
        .await?;
    if count >= max_per_base {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO webhooks (id, base_id, workspace_id, created_by, notification_url, \
         specification, mac_secret, position, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(w.id)
    .bind(w.base_id)
    .bind(w.workspace_id)
    .bind(w.created_by)
    .bind(w.notification_url)
    .bind(w.specification)
    .bind(w.mac_secret)
    .bind(w.position)
    .bind(w.expires_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// The base's webhooks, oldest first.
///
/// # Errors
/// Database errors.
pub async fn list(pool: &PgPool, base_id: &str) -> sqlx::Result<Vec<WebhookRow>> {
    let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE base_id = $1 ORDER BY created_at, id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(base_id)
        .fetch_all(pool)
        .await?;
    rows.iter().map(decode).collect()
}

/// One webhook of a base.
///
/// # Errors
/// Database errors.
pub async fn get(pool: &PgPool, base_id: &str, id: &str) -> sqlx::Result<Option<WebhookRow>> {
    let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE base_id = $1 AND id = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(base_id)
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(decode).transpose()
}

/// Every webhook that has not expired (the delivery worker's working set).
///
/// # Errors
/// Database errors.
pub async fn active(pool: &PgPool) -> sqlx::Result<Vec<WebhookRow>> {
    let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE expires_at > now() ORDER BY id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?;
    rows.iter().map(decode).collect()
}

/// Deletes a webhook of a base (its payloads and attempts go with it). Returns whether it
/// existed.
///
/// # Errors
/// Database errors.
pub async fn delete(pool: &PgPool, base_id: &str, id: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM webhooks WHERE base_id = $1 AND id = $2")
        .bind(base_id)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Moves an unexpired webhook's expiry. Returns the new expiry, or `None` when the webhook
/// does not exist or has already expired.
///
/// # Errors
/// Database errors.
pub async fn refresh(
    pool: &PgPool,
    base_id: &str,
    id: &str,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        "UPDATE webhooks SET expires_at = $3 WHERE base_id = $1 AND id = $2 \
         AND expires_at > now() RETURNING expires_at",
    )
    .bind(base_id)
    .bind(id)
    .bind(expires_at)
    .fetch_optional(pool)
    .await
}

/// Turns pings on or off. Turning them on restarts the retry count and schedules a ping at
/// once when payloads arrived that no successful ping announced. Returns whether the webhook
/// exists.
///
/// # Errors
/// Database errors.
pub async fn enable_notifications(
    pool: &PgPool,
    base_id: &str,
    id: &str,
    enable: bool,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE webhooks SET notifications_enabled = $3, ping_retry = 0, \
         ping_due_at = CASE WHEN $3 AND payload_count > notified_count AND notification_url IS NOT NULL \
                            THEN now() ELSE NULL END \
         WHERE base_id = $1 AND id = $2",
    )
    .bind(base_id)
    .bind(id)
    .bind(enable)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Payloads numbered `cursor` and up, at most `limit`, and whether more follow.
///
/// # Errors
/// Database errors.
pub async fn payloads(
    pool: &PgPool,
    id: &str,
    cursor: i64,
    limit: i64,
) -> sqlx::Result<(Vec<(i64, Value)>, bool)> {
    let rows = sqlx::query(
        "SELECT number, payload FROM webhook_payloads WHERE webhook_id = $1 AND number >= $2 \
         ORDER BY number LIMIT $3",
    )
    .bind(id)
    .bind(cursor)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let mut out = rows
        .iter()
        .map(|r| Ok((r.try_get("number")?, r.try_get("payload")?)))
        .collect::<sqlx::Result<Vec<(i64, Value)>>>()?;
    let more = out.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    out.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok((out, more))
}
