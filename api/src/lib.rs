//! The `pyairtable` server and admin CLI.
//!
//! `main.rs` is a thin shell over this library so black-box tests and the binary share one
//! code path: [`Application::build`] connects and migrates, [`Application::run_until_stopped`]
//! serves until a shutdown signal.

pub mod cli;
pub mod config;
pub mod graphql;
pub mod health;
pub mod realtime;
pub mod rest;
pub mod state;
pub mod webhooks;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::config::{ServeSettings, Settings};
use crate::state::AppState;

/// A built server: connected, migrated, bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    /// Connects to the services, applies pending migrations and binds the listener.
    ///
    /// # Errors
    /// When Postgres is unreachable, a migration fails or the address cannot be bound.
    pub async fn build(settings: &Settings, serve: &ServeSettings) -> anyhow::Result<Self> {
        let state = AppState::connect(settings).await?;
        state.store.migrate().await?;
        // Queries must find the read-model tables from the first request on.
        state.projections.install().await?;
        let listener = TcpListener::bind(serve.bind).await?;
        Ok(Self {
            listener,
            router: router(state.clone(), settings.graphql_max_body_bytes),
            state,
        })
    }

    /// The address actually bound (useful with port 0).
    ///
    /// # Errors
    /// When the socket has no local address (never on a bound TCP listener).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves HTTP and runs the relay and the projection workers until SIGINT or SIGTERM,
    /// then lets in-flight requests finish and stops the workers.
    ///
    /// # Errors
    /// When the server fails to accept connections.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let wait = move |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let relay = self.state.relay.clone();
        let relay_stop = wait(stopped.clone());
        let relay_task = tokio::spawn(async move {
            if let Err(error) = relay.run(relay_stop).await {
                tracing::error!(%error, "relay stopped with an error");
            }
        });
        let projections = self.state.projections.clone();
        let projections_stop = wait(stopped.clone());
        let projections_task = tokio::spawn(async move {
            if let Err(error) = projections.run(projections_stop).await {
                tracing::error!(%error, "projection workers stopped with an error");
            }
        });
        let webhooks_task = webhooks::spawn(self.state.clone(), wait(stopped.clone()));
        // Client addresses key the anonymous rate limit.
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown_signal())
            .await;
        let _ = stop.send(true);
        self.state.hub.shutdown();
        let _ = tokio::join!(relay_task, projections_task, webhooks_task);
        served?;
        Ok(())
    }
}

/// The HTTP routes with their middleware.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route(
            "/graphql",
            get(graphql::http::graphql_get)
                .post(graphql::http::graphql_post)
                .layer(RequestBodyLimitLayer::new(max_body_bytes)),
        )
        .route("/graphiql/assets/{file}", get(graphql::graphiql::asset))
        .nest("/v0", rest::router().merge(webhooks::router()))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received, draining");
}
