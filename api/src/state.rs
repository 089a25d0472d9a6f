//! Shared state handed to every request handler.

use std::collections::HashSet;
use std::time::Duration;

use pyairtable_eventstore::{EventStore, Namespace};
use pyairtable_projections::{Names, Projections, Relay, RelayConfig, RuntimeConfig};

use crate::config::Settings;
use crate::graphql::{ApiSchema, GraphqlConfig, Services};
use crate::realtime::EventHub;

/// Connections to the backing services, cheap to clone (each is a handle to a shared pool).
#[derive(Clone)]
pub struct AppState {
    /// The event store (and its Postgres pool).
    pub store: EventStore,
    /// NATS client; reconnects on its own after an outage.
    pub nats: async_nats::Client,
    /// Redis connection manager; reconnects on its own after an outage.
    pub redis: redis::aio::ConnectionManager,
    /// The namespace every NATS subject and Redis key of this deployment starts with.
    pub namespace: Namespace,
    /// The projection runtime: read models, status, rebuilds, read-your-writes.
    pub projections: Projections,
    /// The relay from the event store to NATS JetStream.
    pub relay: Relay,
    /// The application layer: authentication and one method per command.
    pub platform: pyairtable_commands::Platform,
    /// Settings of the Airtable-compatible REST API (rate limit, read-your-writes wait).
    pub rest: crate::rest::RestConfig,
    /// Live events for subscriptions (one NATS consumer per process).
    pub hub: EventHub,
    /// The GraphQL schema over these services.
    pub schema: ApiSchema,
    /// The GraphQL API's settings.
    pub graphql_config: GraphqlConfig,
    /// Webhook delivery settings and the pinger's wake-up.
    pub webhooks: crate::webhooks::Webhooks,
}

impl AppState {
    /// Connects to Postgres, NATS and Redis.
    ///
    /// NATS may be down at start: its client keeps retrying in the background, and `/readyz`
    /// reports it unavailable until it answers. Postgres and Redis must answer: migrations run
    /// before anything is served, and the projection runtime opens its Redis connection here.
    ///
    /// # Errors
    /// When Postgres or Redis is unreachable or a setting is invalid.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let store = pyairtable_eventstore::EventStore::connect(settings.store_config()?).await?;
        let nats = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(std::time::Duration::from_secs(2))
            .connect(settings.nats_url.as_str())
            .await?;
        let redis_client = redis::Client::open(settings.redis_url.as_str())?;
        let redis_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
            .set_response_timeout(Some(std::time::Duration::from_secs(2)))
            .set_number_of_retries(2);
        let redis = redis::aio::ConnectionManager::new_lazy_with_config(
            redis_client.clone(),
            redis_config,
        )?;
        let relay = Relay::new(store.clone(), nats.clone(), RelayConfig::default());
        let projections = Projections::new(
            store.clone(),
            nats.clone(),
            redis_client,
            RuntimeConfig::default(),
        )
        .await?;
        // The platform's key material lives in migrated tables, so migrate first (idempotent).
        store.migrate().await?;
        let platform =
            pyairtable_commands::Platform::new(store.clone(), settings.auth_config(&store).await?)
                .await?;
        let rest = crate::rest::RestConfig::from_env()?;
        let hub = EventHub::start(store.clone(), nats.clone()).await?;
        let graphql_config = GraphqlConfig {
            consistency_timeout: Duration::from_millis(settings.consistency_timeout_ms),
            open_registration: settings.open_registration,
            admin_emails: settings
                .admin_emails
                .iter()
                .map(|e| e.trim().to_lowercase())
                .filter(|e| !e.is_empty())
                .collect::<HashSet<_>>(),
            rate_limit: settings.graphql_rate_limit,
            rate_limit_window: Duration::from_secs(settings.graphql_rate_limit_window_secs.max(1)),
            introspection: settings.graphql_introspection,
        };
        let schema = crate::graphql::schema(Services {
            platform: platform.clone(),
            store: store.clone(),
            projections: projections.clone(),
            pool: store.pool().clone(),
            names: Names::new(store.namespace()),
            hub: hub.clone(),
            config: graphql_config.clone(),
        });
        Ok(Self {
            webhooks: crate::webhooks::Webhooks::from_env()?,
            hub,
            schema,
            graphql_config,
            platform,
            rest,
            projections,
            relay,
            namespace: store.namespace().clone(),
            store,
            nats,
            redis,
        })
    }
}
