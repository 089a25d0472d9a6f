//! PyAirtable's query side: the relay from the event store to NATS JetStream, the projection
//! runtime, the SQL and Redis read models, status, rebuilds and read-your-writes.
//!
//! What `pyairtable serve` runs:
//! - [`Relay::run`]: publishes the global feed to JetStream (one leader per namespace).
//! - [`Projections::run`]: one durable consumer per projection, applying events to the read
//!   models.
//!
//! What the CLI calls: [`Projections::status`], [`Projections::rebuild`] (with a progress
//! callback) and [`Projections::retry_parked`]. The APIs call [`Projections::wait_for`] with
//! a write's position token for read-your-writes, and read through [`SqlReadModels`] (views
//! in `<ns>_rm`) and [`RedisReadModels`].
//!
//! See docs/adr/0005-relay-and-projections.md for the design and docs/operations.md for the
//! runbook.

mod copy;
pub mod error;
pub mod names;
pub mod queries;
pub mod rebuild;
mod records_batch;
pub mod redis_models;
pub mod relay;
pub mod runtime;
pub mod sql_models;

pub use error::{ProjectionError, Result};
pub use names::Names;
pub use queries::{RM_TABLES, SqlReadModels};
pub use rebuild::{RebuildPhase, RebuildProgress, RebuildReport, RebuildTimings};
pub use redis_models::{REDIS_PROJECTION, RedisReadModels};
pub use relay::{Relay, RelayConfig, RelayStatus};
pub use runtime::{
    ALL_PROJECTIONS, Backend, FailurePolicy, ProjectionState, ProjectionStatus, Projections,
    RuntimeConfig, backend_of,
};
pub use sql_models::SQL_PROJECTIONS;
