//! PyAirtable's domain: the aggregates (users, workspaces, bases with their schema, records,
//! API tokens), their commands and past-tense events, field types with cell validation, roles
//! and the permission matrix.
//!
//! This crate is pure: no I/O, no async, no clock reads, no randomness. Time and new ids come in
//! on the commands, so every decision is a deterministic function of state and command.

pub mod aggregate;
pub mod base;
pub mod fields;
pub mod formula;
pub mod ids;
pub mod permissions;
pub mod record;
pub mod roles;
pub mod testing;
pub mod token;
pub mod user;
pub mod workspace;

pub use aggregate::{Aggregate, DomainEvent};
