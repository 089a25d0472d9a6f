//! The REST API's settings and its per-base rate limit.
//!
//! Airtable allows 5 requests per second per base and answers 429 beyond that; clients such as
//! pyairtable and airtable.js back off and retry on their own. The count lives in Redis
//! (`<ns>:rl:base:<baseId>`, a fixed one-second window), so every API node shares it. The
//! check runs before a request changes anything, so a rejected write is never half applied and
//! its retry applies it exactly once.

use std::time::Duration;

use redis::Script;

use super::error::{RestError, RestResult};
use crate::state::AppState;

/// Environment variable holding the per-base limit (requests per second, 0 disables it).
pub const RATE_LIMIT_ENV: &str = "PYAIRTABLE_RATE_LIMIT_PER_BASE";
/// Environment variable holding the read-your-writes wait, in milliseconds.
pub const WRITE_WAIT_ENV: &str = "PYAIRTABLE_REST_WRITE_WAIT_MS";

/// Settings of the REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestConfig {
    /// Requests per window allowed per base; 0 turns the limit off.
    pub rate_limit_per_base: u32,
    /// The window the limit counts over.
    pub rate_window: Duration,
    /// How long a write waits for the read models to show it before answering.
    pub write_wait: Duration,
}

impl Default for RestConfig {
    fn default() -> Self {
        Self {
            rate_limit_per_base: 5,
            rate_window: Duration::from_secs(1),
            write_wait: Duration::from_secs(10),
        }
    }
}

impl RestConfig {
    /// The defaults, overridden by `PYAIRTABLE_RATE_LIMIT_PER_BASE` and
    /// `PYAIRTABLE_REST_WRITE_WAIT_MS` when set.
    ///
    /// # Errors
    /// When a variable is set but is not a non-negative integer.
    pub fn from_env() -> anyhow::Result<Self> {
        let mut config = Self::default();
        if let Ok(raw) = std::env::var(RATE_LIMIT_ENV) {
            config.rate_limit_per_base = raw.trim().parse().map_err(|_| {
                anyhow::anyhow!("{RATE_LIMIT_ENV}: expected a whole number, got {raw:?}")
            })?;
        }
        if let Ok(raw) = std::env::var(WRITE_WAIT_ENV) {
            let ms: u64 = raw.trim().parse().map_err(|_| {
                anyhow::anyhow!("{WRITE_WAIT_ENV}: expected milliseconds, got {raw:?}")
            })?;
            config.write_wait = Duration::from_millis(ms);
        }
        Ok(config)
    }
}

/// Counts a request in the base's window and reports the window's remaining time when the
/// count is over the limit. INCR, PEXPIRE and PTTL run as one script so two nodes never both
/// see a fresh key without an expiry.
const WINDOW_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
";

/// Counts one request against base `base_id`.
///
/// # Errors
/// [`RestError::RateLimited`] when the base is over its limit.
pub async fn check_rate(state: &AppState, base_id: &str) -> RestResult<()> {
    let config = state.rest;
    if config.rate_limit_per_base == 0 {
        return Ok(());
    }
    let key = format!("{}:rl:base:{base_id}", state.namespace.as_str());
    let window_ms = u64::try_from(config.rate_window.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    let mut redis = state.redis.clone();
    let counted: Result<(i64, i64), _> = Script::new(WINDOW_SCRIPT)
        .key(&key)
        .arg(window_ms)
        .invoke_async(&mut redis)
        .await;
    match counted {
        Ok((count, ttl_ms)) if count > i64::from(config.rate_limit_per_base) => {
            let ms = u64::try_from(ttl_ms).unwrap_or(window_ms);
            Err(RestError::RateLimited {
                retry_after_secs: ms.div_ceil(1000).max(1),
            })
        }
        Ok(_) => Ok(()),
        Err(error) => {
            // The limit protects the service, it is not a correctness guarantee: while Redis is
            // unreachable requests are served unlimited rather than all refused.
            tracing::warn!(%error, base_id, "rate limit unavailable; letting the request through");
            Ok(())
        }
    }
}
