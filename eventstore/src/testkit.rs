//! Test support (feature `testkit`): a migrated store in a throwaway namespace.
//!
//! ```no_run
//! # async fn example() -> Result<(), pyairtable_eventstore::StoreError> {
//! use pyairtable_eventstore::testkit::TestStore;
//! let test = TestStore::new().await;
//! let ns = test.namespace().as_str(); // prefix NATS subjects and Redis keys with this too
//! // ... use `test.store()` or `*test` ...
//! test.cleanup().await?;
//! # Ok(())
//! # }
//! ```

use std::ops::Deref;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection};
use uuid::Uuid;

use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::ids::Namespace;
use crate::store::{EventStore, is_already_exists};

/// The database tests use when `DATABASE_URL` is not set.
pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/pyairtable_test";

/// A migrated [`EventStore`] in a fresh namespace `t_<random>`, whose schema is dropped by
/// [`TestStore::cleanup`] (or, best effort, when the value is dropped).
pub struct TestStore {
    store: EventStore,
    database_url: String,
    cleaned: bool,
}

impl TestStore {
    /// A store in a new namespace of the database named by `DATABASE_URL` (default
    /// [`DEFAULT_TEST_DATABASE_URL`]), created if missing.
    ///
    /// # Panics
    /// When Postgres cannot be reached or migrated: tests cannot run without it.
    pub async fn new() -> Self {
        match Self::with_config(|_| {}).await {
            Ok(test) => test,
            Err(err) => panic!("cannot set up a test event store: {err}"),
        }
    }

    /// Like [`TestStore::new`], with settings adjusted by `adjust` before connecting
    /// (for example a small `max_event_bytes`).
    ///
    /// # Errors
    /// [`StoreError::Database`] or [`StoreError::Migration`].
    pub async fn with_config(adjust: impl FnOnce(&mut StoreConfig)) -> Result<Self, StoreError> {
        let database_url =
            std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_owned());
        Self::in_database(database_url, adjust).await
    }

    /// Like [`TestStore::with_config`], in the database at `database_url` (created if
    /// missing) whatever `DATABASE_URL` says.
    ///
    /// # Errors
    /// [`StoreError::Database`] or [`StoreError::Migration`].
    pub async fn in_database(
        database_url: impl Into<String>,
        adjust: impl FnOnce(&mut StoreConfig),
    ) -> Result<Self, StoreError> {
        let database_url = database_url.into();
        ensure_database(&database_url).await?;
        // 80 random bits keep parallel tests apart and fit the 31-character limit.
        let random = Uuid::new_v4().simple().to_string();
        let namespace = Namespace::parse(&format!("t_{}", &random[..20]))?;
        let mut config = StoreConfig::new(database_url.clone(), namespace);
        config.max_connections = 5;
        adjust(&mut config);
        let store = EventStore::connect(config).await?;
        let test = Self {
            store,
            database_url,
            cleaned: false,
        };
        test.store.migrate().await?;
        Ok(test)
    }

    /// The store.
    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// The namespace: derive NATS subjects, streams and Redis key prefixes from it too.
    pub fn namespace(&self) -> &Namespace {
        self.store.namespace()
    }

    /// The database URL the store connected to.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// Closes the store's pool and removes everything the namespace owns: its schemas
    /// (`<ns>` and every `<ns>_…` such as the read models), its JetStream streams (`<NS>_…`,
    /// with their consumers) and its Redis keys (`<ns>:…`).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn cleanup(mut self) -> Result<(), StoreError> {
        self.cleaned = true;
        self.store.close().await;
        drop_namespace(&self.database_url, self.store.namespace()).await
    }
}

impl Deref for TestStore {
    type Target = EventStore;

    fn deref(&self) -> &EventStore {
        &self.store
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // Drop cannot await, and the test's runtime may be shutting down: drop the schema
        // from a thread with its own runtime, and wait for it (briefly) so it happens.
        let url = self.database_url.clone();
        let namespace = self.store.namespace().clone();
        let worker = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                let _ = runtime.block_on(async {
                    tokio::time::timeout(Duration::from_secs(10), drop_namespace(&url, &namespace))
                        .await
                });
            }
        });
        let _ = worker.join();
    }
}

/// Removes the namespace's schemas, then (best effort: a test that never used them must not
/// fail here) its JetStream streams and Redis keys. The NATS and Redis addresses come from
/// `NATS_URL` and `REDIS_URL`, with the local services as defaults.
async fn drop_namespace(database_url: &str, namespace: &Namespace) -> Result<(), StoreError> {
    drop_schema(database_url, namespace).await?;
    let _ = tokio::time::timeout(Duration::from_secs(5), drop_nats_streams(namespace)).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), drop_redis_keys(namespace)).await;
    Ok(())
}

async fn drop_nats_streams(namespace: &Namespace) {
    use futures::TryStreamExt;
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let Ok(client) = async_nats::connect(url).await else {
        return;
    };
    let js = async_nats::jetstream::new(client);
    // Stream names are the upper-cased namespace plus a suffix (`<NS>_EVENTS`).
    let prefix = format!("{}_", namespace.as_str().to_ascii_uppercase());
    let names: Vec<String> = js.stream_names().try_collect().await.unwrap_or_default();
    for name in names.into_iter().filter(|n| n.starts_with(&prefix)) {
        let _ = js.delete_stream(&name).await;
    }
}

async fn drop_redis_keys(namespace: &Namespace) {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let pattern = format!("{}:*", namespace.as_str());
    let mut cursor: u64 = 0;
    loop {
        let page: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(500)
            .query_async(&mut conn)
            .await;
        let Ok((next, keys)) = page else {
            return;
        };
        if !keys.is_empty() {
            let _: redis::RedisResult<()> =
                redis::cmd("DEL").arg(&keys).query_async(&mut conn).await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

async fn drop_schema(database_url: &str, namespace: &Namespace) -> Result<(), StoreError> {
    let mut conn = PgConnection::connect(database_url).await?;
    // The lock timeout keeps a wedged test from hanging here forever.
    sqlx::query("SET lock_timeout = '5s'")
        .execute(&mut conn)
        .await?;
    // The read models live in `<ns>_rm` (and rebuilds may leave shadow schemas): drop every
    // schema of the namespace, not just the event store's.
    // `_` is a LIKE wildcard: escape the namespace's own underscores too.
    let pattern = format!("{}\\_%", namespace.as_str().replace('_', "\\_"));
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname = $1 OR nspname LIKE $2",
    )
    .bind(namespace.as_str())
    .bind(&pattern)
    .fetch_all(&mut conn)
    .await?;
    for schema in schemas {
        sqlx::query(AssertSqlSafe(format!(
            r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#
        )))
        .execute(&mut conn)
        .await?;
    }
    conn.close().await?;
    Ok(())
}

/// Creates the URL's database if it does not exist, tolerating a concurrent creator.
async fn ensure_database(database_url: &str) -> Result<(), StoreError> {
    let options = PgConnectOptions::from_str(database_url)?;
    match options.connect().await {
        Ok(conn) => {
            conn.close().await?;
            return Ok(());
        }
        Err(err) if is_missing_database(&err) => {}
        Err(err) => return Err(err.into()),
    }
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut admin = options.clone().database("postgres").connect().await?;
    let quoted = name.replace('"', "\"\"");
    let created = sqlx::query(AssertSqlSafe(format!(r#"CREATE DATABASE "{quoted}""#)))
        .execute(&mut admin)
        .await;
    admin.close().await?;
    match created {
        Ok(_) => Ok(()),
        Err(err) if is_already_exists(&err) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

fn is_missing_database(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code == "3D000")
}
