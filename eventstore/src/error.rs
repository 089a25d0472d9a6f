//! The crate's one error type, and the three kinds callers act on differently.

use uuid::Uuid;

use crate::envelope::ExpectedVersion;

/// How a caller should treat a [`StoreError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request itself is wrong (bad input); retrying it unchanged fails again.
    Rejected,
    /// Another writer got there first; re-read, re-decide and try again.
    Conflict,
    /// The database or the stored data failed; log it, show a bare 500.
    Infrastructure,
}

/// Everything that can go wrong in the event store.
///
/// Whatever the variant, a failed append has written nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream is not at the version the append expected.
    #[error("wrong expected version for stream {stream}: expected {expected}, actual {}", display_version(*.actual))]
    Conflict {
        /// The stream whose version did not match (the first failing one of a batch).
        stream: String,
        /// What the append expected.
        expected: ExpectedVersion,
        /// The stream's version when the append was checked; `None` when it does not exist.
        actual: Option<u64>,
    },

    /// An append carried no events, or a batch no writes.
    #[error("an append needs at least one event")]
    EmptyBatch,

    /// A stream id does not match `^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$`.
    #[error("invalid stream id {value:?}: {reason}")]
    InvalidStreamId {
        /// The offending value (cut to 64 characters).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A namespace does not match `^[a-z][a-z0-9_]{0,30}$` or is reserved.
    #[error("invalid namespace {value:?}: {reason}")]
    InvalidNamespace {
        /// The offending value (cut to 64 characters).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// An event type is empty, too long, or holds characters other than visible ASCII.
    #[error("invalid event type {value:?} for event {event_id}: {reason}")]
    InvalidEventType {
        /// The event carrying it.
        event_id: Uuid,
        /// The offending value (cut to 64 characters).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A JSON document (payload, metadata or snapshot state) cannot be stored faithfully.
    #[error("invalid JSON in {field}{}: {reason}", event_suffix(*.event_id))]
    InvalidJson {
        /// The event whose document it is, when it belongs to one.
        event_id: Option<Uuid>,
        /// Which document: `payload`, `metadata` or `snapshot state`.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// An event is larger than [`crate::StoreConfig::max_event_bytes`].
    #[error("event {event_id} is {size} bytes, over the limit of {limit}")]
    EventTooLarge {
        /// The event.
        event_id: Uuid,
        /// Its size: payload JSON + metadata JSON + event type, in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },

    /// A whole append is larger than [`crate::StoreConfig::max_batch_bytes`].
    #[error("append of {size} bytes is over the batch limit of {limit}")]
    BatchTooLarge {
        /// Sum of the event sizes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },

    /// One event id appears twice in the same append.
    #[error("event id {event_id} appears more than once in the append")]
    DuplicateEventInBatch {
        /// The repeated id.
        event_id: Uuid,
    },

    /// One stream appears in two writes of the same batch.
    #[error("stream {stream} appears in more than one write of the batch")]
    DuplicateStreamInBatch {
        /// The repeated stream.
        stream: String,
    },

    /// An event id is already stored, but not as part of an identical earlier append.
    #[error(
        "event {event_id} is already stored as version {stored_version} of stream {stored_stream}"
    )]
    DuplicateEventId {
        /// The id.
        event_id: Uuid,
        /// Where it is stored.
        stored_stream: String,
        /// At which version.
        stored_version: u64,
    },

    /// [`crate::EventStore::append_many_in`] was called in a transaction that had already
    /// written: the feed could not tell it is an event writer (see
    /// migrations/0050_feed_horizon.sql), so the append is refused and nothing is written.
    #[error(
        "events must be the first thing a transaction writes: append before the transaction's other writes"
    )]
    AppendAfterOtherWrites,

    /// Some, but not all, of an append's event ids are already stored.
    #[error("{stored} of the {total} events of the append are already stored; {missing} is not")]
    PartialDuplicate {
        /// How many ids are stored.
        stored: usize,
        /// How many the append carried.
        total: usize,
        /// One of the ids that is not stored.
        missing: Uuid,
    },

    /// A position token cannot be parsed.
    #[error("invalid position token {token:?}: {reason}")]
    InvalidPosition {
        /// The token (cut to 64 characters).
        token: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A snapshot names a version the stream does not have (0, or beyond its head).
    #[error("snapshot version {version} is outside stream {stream} (current version {})", display_version(*.current))]
    SnapshotVersion {
        /// The stream.
        stream: String,
        /// The version the snapshot claims to cover.
        version: u64,
        /// The stream's current version.
        current: Option<u64>,
    },

    /// A stored row cannot be decoded (tampering or a bug); `verify` tells which.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),

    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    /// Applying migrations failed.
    #[error("migration error: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Which of the three kinds this error is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Conflict { .. } => ErrorKind::Conflict,
            Self::Corrupt(_) | Self::Database(_) | Self::Migration(_) => ErrorKind::Infrastructure,
            Self::EmptyBatch
            | Self::InvalidStreamId { .. }
            | Self::InvalidNamespace { .. }
            | Self::InvalidEventType { .. }
            | Self::InvalidJson { .. }
            | Self::EventTooLarge { .. }
            | Self::BatchTooLarge { .. }
            | Self::DuplicateEventInBatch { .. }
            | Self::DuplicateStreamInBatch { .. }
            | Self::DuplicateEventId { .. }
            | Self::PartialDuplicate { .. }
            | Self::AppendAfterOtherWrites
            | Self::InvalidPosition { .. }
            | Self::SnapshotVersion { .. } => ErrorKind::Rejected,
        }
    }

    /// True for [`StoreError::Conflict`].
    pub fn is_conflict(&self) -> bool {
        self.kind() == ErrorKind::Conflict
    }
}

fn display_version(version: Option<u64>) -> String {
    version.map_or_else(|| "none (no stream)".to_owned(), |v| v.to_string())
}

fn event_suffix(event_id: Option<Uuid>) -> String {
    event_id
        .map(|id| format!(" of event {id}"))
        .unwrap_or_default()
}

/// Cuts user input echoed in an error so a huge value cannot bloat logs.
pub(crate) fn shorten(value: &str) -> String {
    const MAX: usize = 64;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}
