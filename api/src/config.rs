//! Typed settings, read from flags and the environment, with the local services as defaults.

use std::net::SocketAddr;

use clap::Args;
use pyairtable_eventstore::{Namespace, StoreConfig};

/// Where the platform's services are and which namespace it owns in them.
///
/// Every setting has an environment variable so the same binary runs unchanged from a shell, a
/// systemd unit or a Kubernetes pod; a flag overrides the variable.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// PostgreSQL connection string (the event store and the SQL read models).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://pyairtable:pyairtable@127.0.0.1:5432/pyairtable",
        global = true
    )]
    pub database_url: String,

    /// NATS server with JetStream.
    #[arg(
        long,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        global = true
    )]
    pub nats_url: String,

    /// Redis server.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        global = true
    )]
    pub redis_url: String,

    /// Prefix of everything this deployment owns: the Postgres schema, JetStream streams,
    /// consumers and subjects, and Redis keys. Several deployments (or parallel test runs) share
    /// one Postgres, NATS and Redis safely when their namespaces differ.
    #[arg(
        long,
        env = "PYAIRTABLE_NAMESPACE",
        default_value = "pyairtable",
        global = true
    )]
    pub namespace: String,

    /// HS256 key signing access tokens (at least 32 bytes). When unset, a random key is
    /// generated on first start and kept in the database, shared by every node.
    #[arg(
        long,
        env = "PYAIRTABLE_JWT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub jwt_secret: Option<String>,

    /// Largest accepted event payload, in bytes.
    #[arg(
        long,
        env = "PYAIRTABLE_MAX_EVENT_BYTES",
        default_value_t = 1024 * 1024,
        global = true
    )]
    pub max_event_bytes: usize,

    /// Whether anyone may register an account (`register` without being signed in).
    #[arg(long, env = "PYAIRTABLE_OPEN_REGISTRATION", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub open_registration: bool,

    /// Emails (comma-separated) whose accounts become instance administrators on registration.
    #[arg(
        long,
        env = "PYAIRTABLE_ADMIN_EMAILS",
        value_delimiter = ',',
        global = true
    )]
    pub admin_emails: Vec<String>,

    /// Whether the GraphQL schema answers introspection queries (GraphiQL needs them).
    #[arg(long, env = "PYAIRTABLE_GRAPHQL_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub graphql_introspection: bool,

    /// GraphQL requests one token (or one anonymous client address) may make per window;
    /// 0 turns the limit off.
    #[arg(
        long,
        env = "PYAIRTABLE_GRAPHQL_RATE_LIMIT",
        default_value_t = 1200,
        global = true
    )]
    pub graphql_rate_limit: u32,

    /// Length of the GraphQL rate-limit window, in seconds.
    #[arg(
        long,
        env = "PYAIRTABLE_GRAPHQL_RATE_LIMIT_WINDOW_SECS",
        default_value_t = 60,
        global = true
    )]
    pub graphql_rate_limit_window_secs: u64,

    /// Largest accepted GraphQL request body, in bytes.
    #[arg(long, env = "PYAIRTABLE_GRAPHQL_MAX_BODY_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub graphql_max_body_bytes: usize,

    /// How long a query with a `consistencyToken` waits for the read models to catch up
    /// before failing with `STALE_READ`, in milliseconds.
    #[arg(
        long,
        env = "PYAIRTABLE_CONSISTENCY_TIMEOUT_MS",
        default_value_t = 5000,
        global = true
    )]
    pub consistency_timeout_ms: u64,
}

/// Settings of the HTTP server.
#[derive(Debug, Clone, Args)]
pub struct ServeSettings {
    /// Address the HTTP server listens on (port 0 picks a free port; the chosen address is
    /// logged and printed).
    #[arg(long, env = "PYAIRTABLE_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,
}

impl Settings {
    /// The validated namespace.
    ///
    /// # Errors
    /// When the namespace is not `^[a-z][a-z0-9_]{0,30}$`.
    pub fn namespace(&self) -> anyhow::Result<Namespace> {
        Namespace::parse(&self.namespace).map_err(|e| anyhow::anyhow!("PYAIRTABLE_NAMESPACE: {e}"))
    }

    /// The authentication settings: the configured JWT secret, or the deployment's generated
    /// one (created on first use, race-free, in `instance_secrets`).
    ///
    /// # Errors
    /// When the configured secret is shorter than 32 bytes or the database fails.
    pub async fn auth_config(
        &self,
        store: &pyairtable_eventstore::EventStore,
    ) -> anyhow::Result<pyairtable_commands::AuthConfig> {
        let secret = match &self.jwt_secret {
            Some(secret) => {
                anyhow::ensure!(
                    secret.len() >= 32,
                    "PYAIRTABLE_JWT_SECRET must be at least 32 bytes long"
                );
                secret.as_bytes().to_vec()
            }
            None => {
                let candidate: [u8; 32] = rand::random();
                // Whoever inserts first wins; everybody reads the winner's key.
                sqlx::query(
                    "INSERT INTO instance_secrets (name, value) VALUES ('jwt', $1)
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(candidate.as_slice())
                .execute(store.pool())
                .await?;
                sqlx::query_scalar("SELECT value FROM instance_secrets WHERE name = 'jwt'")
                    .fetch_one(store.pool())
                    .await?
            }
        };
        Ok(pyairtable_commands::AuthConfig::new(secret))
    }

    /// The event store's configuration derived from these settings.
    ///
    /// # Errors
    /// When the namespace is invalid.
    pub fn store_config(&self) -> anyhow::Result<StoreConfig> {
        let mut config = StoreConfig::new(self.database_url.clone(), self.namespace()?);
        config.max_event_bytes = self.max_event_bytes;
        Ok(config)
    }
}
