//! The per-token rate limit, held in Redis so every API node counts the same requests.
//!
//! A fixed window per key (`<ns>:ratelimit:<who>`, `who` being the API token id, the user id
//! of a session, or `ip:<address>` for anonymous callers): one atomic script increments the
//! counter, starts the window on the first request and returns the count with the time left.
//! When Redis is unreachable the request is let through and the failure logged: an outage of
//! the limiter must not take the API down with it.

use std::time::Duration;

use redis::aio::ConnectionManager;

const SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
";

/// The limiter's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allowed,
    /// Over the limit; the window resets after this many seconds.
    Limited {
        /// Seconds until the window resets (at least 1).
        retry_after: u64,
    },
}

/// Counts one request for `who` and says whether it is within `limit` per `window`.
pub async fn check(
    redis: &ConnectionManager,
    namespace: &str,
    who: &str,
    limit: u32,
    window: Duration,
) -> Verdict {
    if limit == 0 {
        return Verdict::Allowed;
    }
    let key = format!("{namespace}:ratelimit:{who}");
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
    let mut conn = redis.clone();
    let outcome: redis::RedisResult<(u64, i64)> = redis::Script::new(SCRIPT)
        .key(&key)
        .arg(window_ms)
        .invoke_async(&mut conn)
        .await;
    match outcome {
        Ok((count, ttl_ms)) if count > u64::from(limit) => Verdict::Limited {
            retry_after: u64::try_from(ttl_ms).unwrap_or(0).div_ceil(1000).max(1),
        },
        Ok(_) => Verdict::Allowed,
        Err(error) => {
            tracing::warn!(%error, "rate limiter unavailable; letting the request through");
            Verdict::Allowed
        }
    }
}
