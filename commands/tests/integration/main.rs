//! Store-backed tests of the application layer: every test gets its own migrated namespace
//! in the real PostgreSQL (`DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/pyairtable_test`).

mod auth;
mod authorization;
mod credentials;
mod harness;
mod idempotency;
mod records;
mod runner;
mod schema;
mod users;
mod workspaces;
