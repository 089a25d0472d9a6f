//! [`RealtimeError`]: what the realtime hub and its subscriptions report.

use pyairtable_eventstore::StoreError;

/// Everything that can go wrong in the realtime hub.
#[derive(Debug, thiserror::Error)]
pub enum RealtimeError {
    /// The event store failed (reading the feed). A subscription that yields this carries on
    /// from the last event it delivered.
    #[error("event store: {0}")]
    Store(#[from] StoreError),

    /// NATS or JetStream failed. The hub reports these in its logs and status, never to
    /// subscribers: it tails the event store itself until the bus is back.
    #[error("nats: {context}: {message}")]
    Nats {
        /// What was being done.
        context: String,
        /// The client's error, as text (async-nats has one error type per call).
        message: String,
    },

    /// The hub was shut down; the subscription ends after this item.
    #[error("the realtime hub was shut down")]
    Closed,
}

impl RealtimeError {
    /// A closure turning any displayable NATS error into [`RealtimeError::Nats`].
    pub(crate) fn nats<E: std::fmt::Display>(
        context: impl Into<String>,
    ) -> impl FnOnce(E) -> RealtimeError {
        let context = context.into();
        move |e| RealtimeError::Nats {
            context,
            message: e.to_string(),
        }
    }
}
