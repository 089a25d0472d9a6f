//! Envelopes: what goes into the store with an event and what comes back out.
//!
//! The store knows envelopes, not PyAirtable's events: payloads are plain JSON, typed by
//! `event_type` and `schema_version`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::ids::StreamId;
use crate::position::Position;

/// The stream version an append expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "version", rename_all = "snake_case")]
pub enum ExpectedVersion {
    /// Append whatever the stream's version (never a conflict).
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's current version must be exactly this. `Exact(0)` means the stream has no
    /// events yet, like [`ExpectedVersion::NoStream`].
    Exact(u64),
}

impl ExpectedVersion {
    /// The value the append function takes: `None` for any, `0` for no stream, `n` for
    /// exactly `n` (saturated: no stream reaches `i64::MAX` events, so that still conflicts).
    pub(crate) fn to_sql(self) -> Option<i64> {
        match self {
            Self::Any => None,
            Self::NoStream => Some(0),
            Self::Exact(n) => Some(i64::try_from(n).unwrap_or(i64::MAX)),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(n) => write!(f, "version {n}"),
        }
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// Unique id; appending an id that is already stored is idempotent (see
    /// [`crate::EventStore::append`]).
    pub event_id: Uuid,
    /// What happened, e.g. `RecordCreated`: 1 to 200 visible ASCII characters.
    pub event_type: String,
    /// Version of the payload's schema, for upcasting.
    pub schema_version: i32,
    /// The event's data.
    pub payload: Value,
}

impl NewEvent {
    /// An event with a fresh time-ordered (v7) id and schema version 1.
    pub fn new(event_type: impl Into<String>, payload: Value) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            schema_version: 1,
            payload,
        }
    }
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// A signed-in user.
    User {
        /// The user's id.
        id: String,
    },
    /// An API token acting for a user.
    ApiToken {
        /// The token's id (never the secret).
        id: String,
        /// The user who owns the token.
        user_id: String,
    },
    /// The platform itself (migrations, imports, maintenance).
    System {
        /// Which part of the system.
        name: String,
    },
    /// An automation run.
    Automation {
        /// The automation's id.
        id: String,
    },
    /// An AI agent (for example through the MCP server).
    Agent {
        /// The agent's id.
        id: String,
    },
}

/// Who and why, stored with every event of an append.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Who caused the events.
    pub actor: Actor,
    /// Groups everything that one request caused.
    pub correlation_id: Uuid,
    /// The event or command that directly caused these events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// The workspace the events belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    /// Anything else worth keeping (request id, client, ...).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

impl Metadata {
    /// Metadata with only an actor and a correlation id.
    pub fn new(actor: Actor, correlation_id: Uuid) -> Self {
        Self {
            actor,
            correlation_id,
            causation_id: None,
            workspace_id: None,
            extra: Map::new(),
        }
    }

    /// Sets the causation id.
    #[must_use]
    pub fn with_causation(mut self, causation_id: Uuid) -> Self {
        self.causation_id = Some(causation_id);
        self
    }

    /// Sets the workspace id.
    #[must_use]
    pub fn with_workspace(mut self, workspace_id: impl Into<String>) -> Self {
        self.workspace_id = Some(workspace_id.into());
        self
    }
}

/// The events for one stream in a (possibly multi-stream) append.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamWrite {
    /// The stream to append to.
    pub stream: StreamId,
    /// The version it must be at.
    pub expected: ExpectedVersion,
    /// The events, in order; at least one.
    pub events: Vec<NewEvent>,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Where it is in the global feed.
    pub position: Position,
    /// Its stream.
    pub stream_id: String,
    /// Its version in the stream (the first event is version 1).
    pub version: u64,
    /// Its id.
    pub event_id: Uuid,
    /// Its type.
    pub event_type: String,
    /// Its payload's schema version.
    pub schema_version: i32,
    /// Its data.
    pub payload: Value,
    /// Who and why.
    pub metadata: Metadata,
    /// When the store recorded it (the appending transaction's start time).
    pub recorded_at: DateTime<Utc>,
    /// Link in the stream's hash chain: sha256 over `prev_hash` and this event.
    #[serde(with = "hex_bytes")]
    pub hash: [u8; 32],
    /// The previous event's hash (zeros for version 1).
    #[serde(with = "hex_bytes")]
    pub prev_hash: [u8; 32],
}

/// One appended event in an [`AppendResult`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendedEvent {
    /// Its id.
    pub event_id: Uuid,
    /// Its version in the stream.
    pub version: u64,
    /// Where it is in the global feed.
    pub position: Position,
}

/// What an append did to one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResult {
    /// The stream.
    pub stream_id: String,
    /// Version of the first event appended.
    pub first_version: u64,
    /// Version of the last event appended: the stream's new version.
    pub last_version: u64,
    /// Position of the last event: a consistency token for reads that must see this write.
    pub position: Position,
    /// The events, in order.
    pub events: Vec<AppendedEvent>,
    /// When they were recorded.
    pub recorded_at: DateTime<Utc>,
    /// True when every event id was already stored by an identical earlier append: this is
    /// that append's result and nothing was written.
    pub deduplicated: bool,
}

/// Which way [`crate::EventStore::read_stream`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Ascending versions, starting at `from_version`.
    Forward,
    /// Descending versions, starting at `from_version` (use `u64::MAX` for the end).
    Backward,
}

/// A batch of the global feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedBatch {
    /// Events in feed order.
    pub events: Vec<RecordedEvent>,
    /// Where to read next: the last event's position, or the requested one if none.
    pub next: Position,
}

/// The latest snapshot of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The stream version whose state it holds.
    pub version: u64,
    /// Version of the state's schema.
    pub schema_version: i32,
    /// The state.
    pub state: Value,
    /// When it was saved.
    pub taken_at: DateTime<Utc>,
}

/// What [`crate::EventStore::load_stream`] read: a stream's latest snapshot, if any, and the
/// events after it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamLoad {
    /// The latest snapshot.
    pub snapshot: Option<Snapshot>,
    /// Events after the snapshot's version (from version 1 without one), oldest first.
    pub events: Vec<RecordedEvent>,
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0_u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}
