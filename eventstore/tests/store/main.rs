//! Event store tests against the real PostgreSQL (`DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/pyairtable_test`). Each test works in its own
//! namespace, so they run in parallel safely.

mod append;
mod concurrency;
mod feed;
mod properties;
mod snapshots;
mod support;
mod verify;
