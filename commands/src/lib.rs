//! PyAirtable's application layer.
//!
//! Every change goes the same way: authenticate (the API resolves a session JWT or an API token
//! into a [`Caller`] with [`Authenticator`]), authorise against the caller's role in the target's
//! workspace ([`pyairtable_domain::permissions`]), load the aggregate from the event store,
//! let the domain decide, append with the version that was read, and on a conflict decide again
//! on fresh state ([`Runner`]). Idempotency keys make client retries safe; the authentication
//! tables are kept in step with user and token events in the same transaction.
//!
//! [`Platform`] is the entry point: one method per command.

pub mod auth;
mod codec;
pub mod context;
pub mod error;
pub mod idempotency;
pub mod runner;
pub mod service;

pub use auth::{AuthConfig, Authenticator, PasswordCost, Session};
pub use context::{Authenticated, Caller, CommandContext, TokenCaller};
pub use error::CommandError;
pub use idempotency::Fingerprint;
pub use runner::{
    Batch, BatchOutcome, Begin, CommandOutcome, Emitted, Loaded, Recorded, Run, Runner,
    RunnerConfig, StreamOutcome,
};
pub use service::{CreateApiToken, CreatedApiToken, Platform, RegisterUser, Written};
