//! The crate's one error type.

use pyairtable_eventstore::StoreError;

/// Everything that can go wrong on the query side.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The event store failed (reading the feed).
    #[error("event store: {0}")]
    Store(#[from] StoreError),

    /// PostgreSQL failed while reading or writing read models or checkpoints.
    #[error("postgres: {context}: {source}")]
    Postgres {
        /// What was being done.
        context: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },

    /// NATS or JetStream failed.
    #[error("nats: {context}: {message}")]
    Nats {
        /// What was being done.
        context: String,
        /// The client's error, as text (async-nats has one error type per call).
        message: String,
    },

    /// Redis failed.
    #[error("redis: {context}: {source}")]
    Redis {
        /// What was being done.
        context: String,
        /// The client's error.
        #[source]
        source: redis::RedisError,
    },

    /// An event could not be applied because its content is not what the projection expects
    /// (a poison event: retrying it will not help).
    #[error("event {event_id} ({event_type} at {stream_id}@{version}): {reason}")]
    BadEvent {
        /// The event.
        event_id: uuid::Uuid,
        /// Its type.
        event_type: String,
        /// Its stream.
        stream_id: String,
        /// Its version.
        version: u64,
        /// What is wrong with it.
        reason: String,
    },

    /// A message on the bus is not an event this relay published.
    #[error("malformed bus message: {0}")]
    Malformed(String),

    /// No projection has this name.
    #[error("unknown projection {0:?}")]
    UnknownProjection(String),

    /// The projection is halted on a parked event and needs `retry` (or a fix) first.
    #[error("projection {name} is halted: {reason}")]
    Halted {
        /// The projection.
        name: String,
        /// Why.
        reason: String,
    },

    /// A rebuild of this projection is already running.
    #[error("projection {0} is already being rebuilt")]
    RebuildRunning(String),

    /// A read-your-writes wait ran out of time before the projection reached the position.
    #[error(
        "projection {projection} has not reached {wanted} within the timeout (it is at {reached})"
    )]
    Stale {
        /// The projection waited on.
        projection: String,
        /// The position token asked for.
        wanted: String,
        /// The position token it had reached.
        reached: String,
    },

    /// A read model could not be read (e.g. its Redis generation is gone); callers fall back
    /// to the SQL read models.
    #[error("read model {0} is not available")]
    Unavailable(String),
}

impl ProjectionError {
    /// Wraps a sqlx error with what was being done.
    pub(crate) fn pg(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Self {
        let context = context.into();
        move |source| Self::Postgres { context, source }
    }

    /// Wraps a NATS error with what was being done.
    pub(crate) fn nats<E: std::fmt::Display>(context: impl Into<String>) -> impl FnOnce(E) -> Self {
        let context = context.into();
        move |e| Self::Nats {
            context,
            message: e.to_string(),
        }
    }

    /// Wraps a Redis error with what was being done.
    pub(crate) fn redis(context: impl Into<String>) -> impl FnOnce(redis::RedisError) -> Self {
        let context = context.into();
        move |source| Self::Redis { context, source }
    }

    /// True when retrying the same event cannot succeed (the event itself is at fault).
    #[must_use]
    pub fn is_poison(&self) -> bool {
        matches!(self, Self::BadEvent { .. })
    }
}

/// The result type of this crate.
pub type Result<T, E = ProjectionError> = std::result::Result<T, E>;
