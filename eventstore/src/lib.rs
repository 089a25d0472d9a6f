//! PyAirtable's PostgreSQL event store.
//!
//! It knows envelopes, not PyAirtable's events: an event is a typed JSON payload with
//! [`Metadata`] (who and why), appended to a stream with an [`ExpectedVersion`].
//!
//! - [`EventStore::append_many`] writes several streams atomically in one round trip, with
//!   typed conflicts and idempotent retries.
//! - [`EventStore::read_all`] and [`EventStore::subscribe_all`] follow the global feed, which
//!   never skips an event that commits late (`docs/adr/0002-gap-free-global-feed.md`).
//!   Positions in it are opaque [`Position`] tokens.
//! - Each stream is a hash chain; [`EventStore::verify_stream`] reports the first broken link.
//! - Snapshots keep the latest state of a stream with the version it covers.
//!
//! Everything lives in the Postgres schema named after the [`Namespace`].

mod append;
mod config;
mod conns;
mod diagnostics;
mod envelope;
mod error;
mod feed;
mod hash;
mod heads;
mod ids;
mod position;
mod prepare;
mod store;
mod verify;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use config::StoreConfig;
pub use diagnostics::{Diagnostics, OpenTransaction};
pub use envelope::{
    Actor, AppendResult, AppendedEvent, Direction, ExpectedVersion, FeedBatch, Metadata, NewEvent,
    RecordedEvent, Snapshot, StreamLoad, StreamWrite,
};
pub use error::{ErrorKind, StoreError};
pub use hash::{BreakReason, BrokenLink, GENESIS, VerifyReport};
pub use ids::{Namespace, StreamId};
pub use position::Position;
pub use store::{EventStore, MAX_READ};
