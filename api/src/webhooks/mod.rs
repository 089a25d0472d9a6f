//! Webhooks in Airtable's shape: registration endpoints under `/v0/bases/{baseId}/webhooks`,
//! payloads derived from the event log and listed by cursor, and signed pings to each
//! webhook's notification URL with retries. See docs/webhooks.md and
//! docs/adr/0007-webhooks.md.

pub mod delivery;
pub mod handlers;
pub mod payload;
pub mod repo;
pub mod resolve;
pub mod spec;
pub mod target;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::sync::Notify;

pub use delivery::spawn;

use crate::config::PrivateTargets;
use crate::state::AppState;

/// Environment variable: coalescing window of pings, in milliseconds.
pub const COALESCE_ENV: &str = "PYAIRTABLE_WEBHOOK_COALESCE_MS";
/// Environment variable: delay before the first retry of a failed ping, in milliseconds.
pub const RETRY_BASE_ENV: &str = "PYAIRTABLE_WEBHOOK_RETRY_BASE_MS";
/// Environment variable: longest delay between retries, in milliseconds.
pub const RETRY_MAX_ENV: &str = "PYAIRTABLE_WEBHOOK_RETRY_MAX_MS";
/// Environment variable: retries of a failed ping before notifications are turned off.
pub const MAX_RETRIES_ENV: &str = "PYAIRTABLE_WEBHOOK_MAX_RETRIES";
/// Environment variable: timeout of one ping, in milliseconds.
pub const TIMEOUT_ENV: &str = "PYAIRTABLE_WEBHOOK_TIMEOUT_MS";
/// Environment variable: how often the worker looks for work without being woken, in ms.
pub const POLL_ENV: &str = "PYAIRTABLE_WEBHOOK_POLL_MS";

/// Tuning of webhook delivery. The defaults suit production; tests shrink the delays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// A ping waits this long after the first new payload, so one ping covers a burst.
    pub coalesce: Duration,
    /// Delay before the first retry of a failed ping; doubles with each retry.
    pub retry_base: Duration,
    /// Longest delay between two retries.
    pub retry_max_delay: Duration,
    /// Retries of one ping before notifications are turned off (and recorded as such).
    pub max_retries: u32,
    /// Timeout of one ping request.
    pub timeout: Duration,
    /// How often the payload builder reads the feed when the realtime hub is silent.
    pub poll: Duration,
    /// How often the pinger looks for due pings when nothing woke it.
    pub ping_poll: Duration,
    /// Webhooks a base may have (Airtable allows 10).
    pub max_per_base: i64,
    /// Non-public destinations pings may reach anyway (none by default: public addresses
    /// only). See [`target`].
    pub allow_private: PrivateTargets,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            coalesce: Duration::from_millis(500),
            retry_base: Duration::from_secs(5),
            retry_max_delay: Duration::from_secs(3600),
            max_retries: 10,
            timeout: Duration::from_secs(10),
            poll: Duration::from_secs(1),
            ping_poll: Duration::from_millis(250),
            max_per_base: 10,
            allow_private: PrivateTargets::default(),
        }
    }
}

fn env_ms(name: &str, into: &mut Duration) -> anyhow::Result<()> {
    if let Ok(raw) = std::env::var(name) {
        let ms: u64 = raw
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}: expected milliseconds, got {raw:?}"))?;
        *into = Duration::from_millis(ms);
    }
    Ok(())
}

impl WebhookConfig {
    /// The defaults, overridden by the `PYAIRTABLE_WEBHOOK_*` variables that are set.
    ///
    /// # Errors
    /// When a variable is set to something that is not a whole number, or the allow-list of
    /// private destinations does not parse.
    pub fn from_env() -> anyhow::Result<Self> {
        let mut config = Self::default();
        env_ms(COALESCE_ENV, &mut config.coalesce)?;
        env_ms(RETRY_BASE_ENV, &mut config.retry_base)?;
        env_ms(RETRY_MAX_ENV, &mut config.retry_max_delay)?;
        env_ms(TIMEOUT_ENV, &mut config.timeout)?;
        env_ms(POLL_ENV, &mut config.poll)?;
        config.allow_private = PrivateTargets::from_env()?;
        if let Ok(raw) = std::env::var(MAX_RETRIES_ENV) {
            config.max_retries = raw.trim().parse().map_err(|_| {
                anyhow::anyhow!("{MAX_RETRIES_ENV}: expected a whole number, got {raw:?}")
            })?;
        }
        Ok(config)
    }
}

/// The webhook part of the application state: settings and the pinger's wake-up.
#[derive(Debug, Clone)]
pub struct Webhooks {
    /// Delivery tuning.
    pub config: WebhookConfig,
    wake: Arc<Notify>,
}

impl Webhooks {
    /// Webhooks with settings from the environment.
    ///
    /// # Errors
    /// As [`WebhookConfig::from_env`].
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self::new(WebhookConfig::from_env()?))
    }

    /// Webhooks with the given settings.
    #[must_use]
    pub fn new(config: WebhookConfig) -> Self {
        Self {
            config,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Asks the pinger to look for due pings now.
    pub fn wake_pinger(&self) {
        self.wake.notify_one();
    }
}

/// The webhook routes, to be merged into the `/v0` router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/bases/{base}/webhooks",
            get(handlers::list).post(handlers::create),
        )
        .route(
            "/bases/{base}/webhooks/{webhook}",
            axum::routing::delete(handlers::delete),
        )
        .route(
            "/bases/{base}/webhooks/{webhook}/refresh",
            post(handlers::refresh),
        )
        .route(
            "/bases/{base}/webhooks/{webhook}/enableNotifications",
            post(handlers::enable_notifications),
        )
        .route(
            "/bases/{base}/webhooks/{webhook}/payloads",
            get(handlers::payloads),
        )
}
