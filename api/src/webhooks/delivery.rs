//! The delivery worker: turns the global feed into each webhook's payloads, then pings the
//! webhooks' notification URLs.
//!
//! **Payloads.** Each webhook stores the feed position it has been brought up to. A pass reads
//! one batch of the feed after the smallest of those positions, splits it into transactions
//! (events sharing a transaction id: one append), resolves each transaction once, and for every
//! webhook assembles the payloads of the transactions past its own position. The payloads and
//! the webhook's new position are written in one transaction guarded by a compare-and-set on
//! the old position, so a payload number always names the same change, however many nodes run
//! the worker and whenever it restarts. A pass is woken by the realtime hub as events commit,
//! and otherwise polls.
//!
//! **Pings.** A new payload schedules a ping after a short coalescing window (one ping covers
//! everything recorded meanwhile). Due pings are claimed with `FOR UPDATE SKIP LOCKED` and a
//! lease, signed with the webhook's MAC secret, and sent. A failure is recorded and retried
//! with exponential backoff; when the retries are spent the webhook's notifications are turned
//! off, which is recorded in `lastNotificationResult` and logged (never silently).

use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::{FutureExt as _, StreamExt as _};
use hmac::{Hmac, KeyInit as _, Mac as _};
use pyairtable_eventstore::{Position, RecordedEvent};
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::{PgPool, Row};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::WebhookConfig;
use super::payload::assemble;
use super::repo::{self, WebhookRow};
use super::resolve::{Resolver, Scope};
use super::spec::Specification;
use super::target::{GuardedResolver, is_refused, literal_refused};
use crate::realtime::EventFilter;
use crate::rest::cells::iso;
use crate::state::AppState;

/// Feed events read per pass.
const BATCH: usize = 500;
/// Pings sent concurrently per round.
const PING_CLAIM: i64 = 32;
/// How often old payloads and attempts are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// What a ping records when the notification URL leads only to addresses webhooks may not
/// call (the address itself is not shown: it may describe the server's own network).
pub const REFUSED_MESSAGE: &str = "The notification URL resolves to a private, loopback or \
    otherwise non-public address, which webhooks may not call";

/// The header carrying the body's MAC.
pub const MAC_HEADER: &str = "X-Airtable-Content-MAC";

/// `hmac-sha256=<hex>` of `body` under `secret`, as Airtable signs pings.
#[must_use]
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so building the MAC cannot fail.
    let mut mac = <Hmac<Sha256>>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    format!("hmac-sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Starts the payload builder and the pinger; both stop when `stop` completes.
pub fn spawn(state: AppState, stop: impl Future<Output = ()> + Send + 'static) -> JoinHandle<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        let builder = tokio::spawn(build_loop(state.clone(), stop_rx.clone()));
        let pinger = tokio::spawn(ping_loop(state, stop_rx));
        stop.await;
        let _ = stop_tx.send(true);
        let _ = tokio::join!(builder, pinger);
    })
}

async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// A webhook in the builder's working set.
struct Active {
    row: WebhookRow,
    spec: Specification,
    position: Position,
}

async fn build_loop(state: AppState, mut stop: watch::Receiver<bool>) {
    let config = state.webhooks.config.clone();
    let mut resolver = Resolver::new(state.platform.clone());
    let mut watched: HashSet<String> = HashSet::new();
    let filter = EventFilter::all_for_admin().with_aggregate_kinds(["record", "base"]);
    let mut live = Box::pin(state.hub.live(filter));
    let mut live_open = true;
    let mut last_prune: Option<Instant> = None;
    loop {
        loop {
            match build_pass(&state, &mut resolver, &mut watched).await {
                Ok(true) => {
                    if *stop.borrow() {
                        return;
                    }
                }
                Ok(false) => break,
                Err(error) => {
                    tracing::warn!(
                        target: "pyairtable::webhooks",
                        error = %format!("{error:#}"),
                        "building webhook payloads failed; retrying"
                    );
                    break;
                }
            }
        }
        if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            prune(state.store.pool()).await;
            last_prune = Some(Instant::now());
        }
        tokio::select! {
            () = stopped(&mut stop) => return,
            () = tokio::time::sleep(config.poll) => {}
            item = live.next(), if live_open => {
                match item {
                    Some(_) => {
                        // Everything already waiting is covered by the next pass.
                        while let Some(Some(_)) = live.next().now_or_never() {}
                    }
                    None => live_open = false,
                }
            }
        }
    }
}

/// Deletes payloads and attempts older than a webhook's lifetime (Airtable keeps payloads
/// for a week; cursors keep counting).
async fn prune(pool: &PgPool) {
    for sql in [
        "DELETE FROM webhook_payloads WHERE created_at < now() - interval '7 days'",
        "DELETE FROM webhook_notifications WHERE completed_at < now() - interval '7 days'",
    ] {
        if let Err(error) = sqlx::query(sql).execute(pool).await {
            tracing::warn!(target: "pyairtable::webhooks", %error, "pruning webhook data failed");
        }
    }
}

/// One pass: returns whether a full batch was processed (more may be waiting).
async fn build_pass(
    state: &AppState,
    resolver: &mut Resolver,
    watched: &mut HashSet<String>,
) -> anyhow::Result<bool> {
    let pool = state.store.pool();
    let mut hooks = Vec::new();
    for row in repo::active(pool).await? {
        let spec = serde_json::from_value::<Specification>(row.specification.clone());
        let position = Position::parse(&row.position);
        match (spec, position) {
            (Ok(spec), Ok(position)) => hooks.push(Active {
                row,
                spec,
                position,
            }),
            _ => tracing::error!(
                target: "pyairtable::webhooks",
                webhook_id = %row.id,
                "stored webhook has an unreadable specification or position; skipping it"
            ),
        }
    }
    let Some(from) = hooks.iter().map(|h| h.position).min() else {
        return Ok(false);
    };
    let bases: HashSet<String> = hooks.iter().map(|h| h.row.base_id.clone()).collect();
    if &bases != watched {
        resolver.watched_bases_changed();
        watched.clone_from(&bases);
    }
    let want_cells: HashSet<String> = hooks
        .iter()
        .filter(|h| {
            h.spec
                .options
                .includes
                .include_cell_values_in_field_ids
                .is_some()
        })
        .map(|h| h.row.base_id.clone())
        .collect();
    let batch = state.store.read_all(&from, BATCH).await?;
    if batch.events.is_empty() {
        return Ok(false);
    }
    let full = batch.events.len() >= BATCH;
    let mut groups = transactions(batch.events);
    // A full batch may end inside a transaction: leave its tail for the next pass, so one
    // append always makes one payload (unless a single append is larger than a batch).
    if full && groups.len() > 1 {
        groups.pop();
    }
    let Some(end) = groups.last().and_then(|g| g.last()).map(|e| e.position) else {
        return Ok(false);
    };
    let scope = Scope {
        bases: &bases,
        want_cells: &want_cells,
    };
    let mut resolved = Vec::with_capacity(groups.len());
    for group in &groups {
        let last = group.last().map_or(end, |e| e.position);
        if hooks.iter().all(|h| h.position >= last) {
            continue;
        }
        resolved.push((last, resolver.transaction(group, &scope).await?));
    }
    let mut pinged = false;
    for hook in hooks.iter().filter(|h| h.position < end) {
        let payloads: Vec<(Position, Value)> = resolved
            .iter()
            .filter(|(last, _)| *last > hook.position)
            .filter_map(|(last, tx)| {
                assemble(&hook.spec, &hook.row.base_id, tx).map(|p| (*last, p))
            })
            .collect();
        let added = advance(
            pool,
            &hook.row,
            &end,
            &payloads,
            state.webhooks.config.coalesce,
        )
        .await?;
        pinged |= added > 0;
        if added > 0 {
            tracing::debug!(
                target: "pyairtable::webhooks",
                webhook_id = %hook.row.id,
                added,
                "webhook payloads recorded"
            );
        }
    }
    if pinged {
        state.webhooks.wake_pinger();
    }
    Ok(full)
}

/// Splits feed events into transactions (same epoch and transaction id), keeping feed order.
fn transactions(events: Vec<RecordedEvent>) -> Vec<Vec<RecordedEvent>> {
    let mut out: Vec<Vec<RecordedEvent>> = Vec::new();
    for event in events {
        match out.last_mut() {
            Some(group)
                if group.last().is_some_and(|e| {
                    e.position.epoch == event.position.epoch && e.position.xid == event.position.xid
                }) =>
            {
                group.push(event);
            }
            _ => out.push(vec![event]),
        }
    }
    out
}

/// Records a webhook's new payloads and moves it to `end`, unless another worker moved it
/// first. Returns how many payloads were added.
async fn advance(
    pool: &PgPool,
    hook: &WebhookRow,
    end: &Position,
    payloads: &[(Position, Value)],
    coalesce: Duration,
) -> sqlx::Result<usize> {
    let mut tx = pool.begin().await?;
    let added = i64::try_from(payloads.len()).unwrap_or(i64::MAX);
    let coalesce_ms = i64::try_from(coalesce.as_millis()).unwrap_or(i64::MAX);
    let first: Option<i64> = sqlx::query_scalar(
        "UPDATE webhooks SET position = $3, payload_count = payload_count + $4, \
           ping_due_at = CASE WHEN $4 > 0 AND notifications_enabled AND notification_url IS NOT NULL \
                                   AND ping_due_at IS NULL \
                              THEN now() + make_interval(secs => $5::double precision / 1000) \
                              ELSE ping_due_at END \
         WHERE id = $1 AND position = $2 RETURNING payload_count - $4 + 1",
    )
    .bind(&hook.id)
    .bind(&hook.position)
    .bind(end.to_token())
    .bind(added)
    .bind(coalesce_ms)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(first) = first else {
        // Deleted, or moved by another worker: nothing to do.
        return Ok(0);
    };
    for (number, (position, payload)) in (first..).zip(payloads) {
        sqlx::query(
            "INSERT INTO webhook_payloads (webhook_id, number, position, payload) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&hook.id)
        .bind(number)
        .bind(position.to_token())
        .bind(payload)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(payloads.len())
}

/// A ping claimed for sending.
struct DuePing {
    id: String,
    base_id: String,
    url: String,
    secret: Vec<u8>,
    retry: i32,
    covers: i64,
}

async fn ping_loop(state: AppState, mut stop: watch::Receiver<bool>) {
    let config = state.webhooks.config.clone();
    // reqwest here is built without a default TLS provider: install ring (a no-op when the
    // binary already did).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Every connection goes through the guarded resolver, and straight to the address it
    // approved: no redirect (a receiver could point it anywhere) and no proxy (the proxy's
    // address would be checked instead of the receiver's).
    let client = match reqwest::Client::builder()
        .timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(GuardedResolver::new(config.allow_private.clone()))
        .user_agent("pyairtable-webhooks")
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(target: "pyairtable::webhooks", %error, "cannot build the HTTP client; webhook pings are off");
            return;
        }
    };
    let wake = state.webhooks.wake.clone();
    loop {
        match claim(state.store.pool(), &config).await {
            Ok(due) if !due.is_empty() => {
                let sends = due
                    .into_iter()
                    .map(|ping| deliver(state.store.pool(), &client, &config, ping));
                futures::future::join_all(sends).await;
                continue;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(target: "pyairtable::webhooks", %error, "claiming webhook pings failed");
            }
        }
        tokio::select! {
            () = stopped(&mut stop) => return,
            () = wake.notified() => {}
            () = tokio::time::sleep(config.ping_poll) => {}
        }
    }
}

/// Claims the pings that are due, moving their due time a lease ahead so that a crashed
/// sender's pings are sent again later.
async fn claim(pool: &PgPool, config: &WebhookConfig) -> sqlx::Result<Vec<DuePing>> {
    let lease_ms =
        i64::try_from((config.timeout + Duration::from_secs(30)).as_millis()).unwrap_or(i64::MAX);
    let rows = sqlx::query(
        "UPDATE webhooks AS w SET ping_due_at = now() + make_interval(secs => $1::double precision / 1000) \
         FROM (SELECT id FROM webhooks \
               WHERE ping_due_at <= now() AND notifications_enabled AND expires_at > now() \
                 AND notification_url IS NOT NULL \
               ORDER BY ping_due_at LIMIT $2 FOR UPDATE SKIP LOCKED) AS due \
         WHERE w.id = due.id \
         RETURNING w.id, w.base_id, w.notification_url, w.mac_secret, w.ping_retry, w.payload_count",
    )
    .bind(lease_ms)
    .bind(PING_CLAIM)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DuePing {
                id: r.try_get("id")?,
                base_id: r.try_get("base_id")?,
                url: r.try_get("notification_url")?,
                secret: r.try_get("mac_secret")?,
                retry: r.try_get("ping_retry")?,
                covers: r.try_get("payload_count")?,
            })
        })
        .collect()
}

/// The delay before retry number `retry` (1 for the first retry): doubling from the base,
/// capped.
#[must_use]
pub fn backoff(config: &WebhookConfig, retry: u32) -> Duration {
    let factor = 2_u32.saturating_pow(retry.saturating_sub(1));
    config
        .retry_base
        .saturating_mul(factor)
        .min(config.retry_max_delay)
}

async fn deliver(pool: &PgPool, client: &reqwest::Client, config: &WebhookConfig, ping: DuePing) {
    let body = json!({
        "base": {"id": ping.base_id},
        "webhook": {"id": ping.id},
        "timestamp": iso(Utc::now()),
    })
    .to_string();
    let mac = sign(&ping.secret, body.as_bytes());
    let started = Instant::now();
    let sent = if literal_refused(&ping.url, &config.allow_private) {
        Err(None)
    } else {
        client
            .post(&ping.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(MAC_HEADER, mac)
            .body(body)
            .send()
            .await
            .map_err(Some)
    };
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (status, failure) = match sent {
        Ok(response) if response.status().is_success() => (Some(response.status().as_u16()), None),
        Ok(response) => {
            let status = response.status();
            (
                Some(status.as_u16()),
                Some(format!("The notification URL answered HTTP {status}")),
            )
        }
        Err(None) => (None, Some(REFUSED_MESSAGE.to_owned())),
        Err(Some(error)) => {
            let reason = if is_refused(&error) {
                REFUSED_MESSAGE
            } else if error.is_timeout() {
                "The notification URL did not answer in time"
            } else if error.is_connect() {
                "Could not connect to the notification URL"
            } else {
                "The notification request failed"
            };
            (None, Some(reason.to_owned()))
        }
    };
    let retry_number = u32::try_from(ping.retry).unwrap_or(0);
    let will_retry = failure.is_some() && retry_number < config.max_retries;
    let now = Utc::now();
    let mut result = json!({
        "success": failure.is_none(),
        "completionTimestamp": iso(now),
        "durationMs": duration_ms,
        "retryNumber": retry_number,
    });
    if let Some(message) = &failure {
        result["error"] = json!({ "message": message });
        result["willBeRetried"] = json!(will_retry);
    }
    let recorded = record(
        pool,
        &ping,
        &result,
        status,
        failure.as_deref(),
        duration_ms,
        will_retry,
        backoff(config, retry_number + 1),
        config.coalesce,
    )
    .await;
    if let Err(error) = recorded {
        tracing::warn!(target: "pyairtable::webhooks", %error, webhook_id = %ping.id, "recording a ping failed");
    }
    match (&failure, will_retry) {
        (None, _) => {
            tracing::debug!(target: "pyairtable::webhooks", webhook_id = %ping.id, "ping delivered")
        }
        (Some(message), true) => tracing::info!(
            target: "pyairtable::webhooks",
            webhook_id = %ping.id,
            retry_number,
            error = %message,
            "ping failed; will retry"
        ),
        (Some(message), false) => tracing::warn!(
            target: "pyairtable::webhooks",
            action = "notifications_disabled",
            webhook_id = %ping.id,
            base_id = %ping.base_id,
            retry_number,
            error = %message,
            "ping failed after every retry; notifications turned off until re-enabled"
        ),
    }
}

#[allow(clippy::too_many_arguments)] // one attempt's facts, written together
async fn record(
    pool: &PgPool,
    ping: &DuePing,
    result: &Value,
    status: Option<u16>,
    failure: Option<&str>,
    duration_ms: f64,
    will_retry: bool,
    retry_in: Duration,
    coalesce: Duration,
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    if failure.is_none() {
        // Payloads recorded while the ping was in flight get a ping of their own.
        sqlx::query(
            "UPDATE webhooks SET notified_count = GREATEST(notified_count, $2), ping_retry = 0, \
               last_success_at = now(), last_result = $3, \
               ping_due_at = CASE WHEN payload_count > $2 \
                                  THEN now() + make_interval(secs => $4::double precision / 1000) \
                                  ELSE NULL END \
             WHERE id = $1",
        )
        .bind(&ping.id)
        .bind(ping.covers)
        .bind(result)
        .bind(ms(coalesce))
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query(
            "UPDATE webhooks SET ping_retry = ping_retry + 1, last_result = $2, \
               ping_due_at = CASE WHEN $3 THEN now() + make_interval(secs => $4::double precision / 1000) \
                                  ELSE NULL END, \
               notifications_enabled = notifications_enabled AND $3 \
             WHERE id = $1",
        )
        .bind(&ping.id)
        .bind(result)
        .bind(will_retry)
        .bind(ms(retry_in))
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO webhook_notifications \
           (webhook_id, retry_number, success, error, status_code, duration_ms, will_be_retried) \
         SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = $1)",
    )
    .bind(&ping.id)
    .bind(ping.retry)
    .bind(failure.is_none())
    .bind(failure)
    .bind(status.map(i32::from))
    .bind(duration_ms)
    .bind(will_retry)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Attempts recorded for a webhook, newest first (for operators and tests).
///
/// # Errors
/// Database errors.
pub async fn attempts(pool: &PgPool, webhook_id: &str) -> sqlx::Result<Vec<Value>> {
    let rows = sqlx::query(
        "SELECT retry_number, success, error, status_code, will_be_retried FROM webhook_notifications \
         WHERE webhook_id = $1 ORDER BY id DESC",
    )
    .bind(webhook_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(json!({
                "retryNumber": r.try_get::<i32, _>("retry_number")?,
                "success": r.try_get::<bool, _>("success")?,
                "error": r.try_get::<Option<String>, _>("error")?,
                "statusCode": r.try_get::<Option<i32>, _>("status_code")?,
                "willBeRetried": r.try_get::<bool, _>("will_be_retried")?,
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_airtable() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "hmac-sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let config = WebhookConfig {
            retry_base: Duration::from_secs(2),
            retry_max_delay: Duration::from_secs(60),
            ..WebhookConfig::default()
        };
        assert_eq!(backoff(&config, 1), Duration::from_secs(2));
        assert_eq!(backoff(&config, 2), Duration::from_secs(4));
        assert_eq!(backoff(&config, 4), Duration::from_secs(16));
        assert_eq!(backoff(&config, 30), Duration::from_secs(60));
    }

    #[test]
    fn transactions_split_on_transaction_ids() {
        let event = |xid: u64, pos: u64| RecordedEvent {
            position: Position { epoch: 1, xid, pos },
            stream_id: "record-recAAAAAAAAAAAAAA".into(),
            version: 1,
            event_id: uuid::Uuid::nil(),
            event_type: "RecordDeleted".into(),
            schema_version: 1,
            payload: json!({}),
            metadata: pyairtable_eventstore::Metadata::new(
                pyairtable_eventstore::Actor::System { name: "t".into() },
                uuid::Uuid::nil(),
            ),
            recorded_at: Utc::now(),
            hash: [0; 32],
            prev_hash: [0; 32],
        };
        let groups = transactions(vec![event(5, 1), event(5, 2), event(7, 3), event(5, 4)]);
        let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![2, 1, 1]);
    }
}
