//! [`StoreConfig`]: how to reach Postgres and the store's limits.

use std::time::Duration;

use crate::ids::Namespace;

/// Settings for [`crate::EventStore::connect`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Postgres connection URL, e.g. `postgres://postgres@127.0.0.1:5432/pyairtable`.
    pub database_url: String,
    /// The deployment's namespace: the schema the events live in.
    pub namespace: Namespace,
    /// Largest event accepted: payload JSON + metadata JSON + event type, in bytes.
    pub max_event_bytes: usize,
    /// Largest append accepted: the sum of its events' sizes.
    pub max_batch_bytes: usize,
    /// Connections in the pool (one of them is held by the LISTEN task once anything
    /// subscribes to the feed).
    pub max_connections: u32,
    /// How long to wait for a free pooled connection.
    pub acquire_timeout: Duration,
    /// `idle_in_transaction_session_timeout` of store connections: a transaction left open and
    /// idle this long is ended by the server, so it cannot hold the global feed back forever.
    /// Zero disables it.
    pub idle_in_transaction_timeout: Duration,
    /// Fallback poll of a caught-up feed subscription, in case a NOTIFY was lost.
    pub poll_interval: Duration,
    /// Poll of a feed subscription while an open transaction holds committed events back.
    pub held_back_poll_interval: Duration,
    /// Shortest pause between two NOTIFYs this store sends; commits in between share one.
    /// Bounds the extra transactions under load (each NOTIFY is one); subscribers in the same
    /// process are woken at once regardless.
    pub notify_interval: Duration,
}

impl StoreConfig {
    /// Default event size limit: 1 MiB.
    pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;
    /// Default append size limit: 64 MiB.
    pub const DEFAULT_MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;

    /// Settings with defaults: 1 MiB events, 64 MiB appends, 10 connections, 30 s idle
    /// transaction timeout, 1 s fallback poll, 50 ms poll while the feed is held back, at most
    /// one NOTIFY per 5 ms.
    pub fn new(database_url: impl Into<String>, namespace: Namespace) -> Self {
        Self {
            database_url: database_url.into(),
            namespace,
            max_event_bytes: Self::DEFAULT_MAX_EVENT_BYTES,
            max_batch_bytes: Self::DEFAULT_MAX_BATCH_BYTES,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            idle_in_transaction_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            held_back_poll_interval: Duration::from_millis(50),
            notify_interval: Duration::from_millis(5),
        }
    }
}
