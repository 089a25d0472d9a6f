//! Liveness and readiness probes.
//!
//! `/healthz` answers as long as the process serves HTTP (a restart is the only cure when it
//! does not). `/readyz` checks each backing service so a load balancer stops sending traffic to a
//! node that cannot reach one of them; it names which one failed, never why in detail (the
//! detail goes to the log).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::state::AppState;

/// How long one dependency check may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The outcome of one dependency check.
#[derive(Debug, Serialize)]
pub struct Check {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    /// Round-trip time of the check in milliseconds.
    pub latency_ms: u128,
}

/// Body of `/readyz`.
#[derive(Debug, Serialize)]
pub struct Readiness {
    /// `ready` when every check passed, else `not_ready`.
    pub status: &'static str,
    /// PostgreSQL (event store).
    pub postgres: Check,
    /// NATS JetStream.
    pub nats: Check,
    /// Redis.
    pub redis: Check,
}

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 when Postgres, NATS JetStream and Redis all answer, else 503.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let (postgres, nats, redis) = tokio::join!(
        timed("postgres", check_postgres(&state)),
        timed("nats", check_nats(&state)),
        timed("redis", check_redis(&state)),
    );
    let ready = [&postgres, &nats, &redis].iter().all(|c| c.status == "ok");
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        postgres,
        nats,
        redis,
    };
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

async fn timed(name: &'static str, check: impl Future<Output = anyhow::Result<()>>) -> Check {
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(CHECK_TIMEOUT, check).await;
    let status = match outcome {
        Ok(Ok(())) => "ok",
        Ok(Err(error)) => {
            tracing::warn!(service = name, error = %error, "readiness check failed");
            "unavailable"
        }
        Err(_) => {
            tracing::warn!(service = name, "readiness check timed out");
            "unavailable"
        }
    };
    Check {
        status,
        latency_ms: started.elapsed().as_millis(),
    }
}

async fn check_postgres(state: &AppState) -> anyhow::Result<()> {
    state.store.head().await?;
    Ok(())
}

async fn check_nats(state: &AppState) -> anyhow::Result<()> {
    if state.nats.connection_state() != async_nats::connection::State::Connected {
        anyhow::bail!("not connected");
    }
    // Account info proves JetStream itself is enabled and answering, not just the core server.
    // Asked raw: async-nats' typed `query_account` cannot parse NATS 2.9's reply.
    let reply = state
        .nats
        .request("$JS.API.INFO", bytes::Bytes::new())
        .await?;
    let info: serde_json::Value = serde_json::from_slice(&reply.payload)?;
    if let Some(error) = info.get("error") {
        anyhow::bail!("JetStream unavailable: {error}");
    }
    Ok(())
}

async fn check_redis(state: &AppState) -> anyhow::Result<()> {
    let mut conn = state.redis.clone();
    let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
    anyhow::ensure!(pong == "PONG", "unexpected reply");
    Ok(())
}
