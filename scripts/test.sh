#!/usr/bin/env bash
# Quick start, command 2: run the whole test suite against real PostgreSQL, NATS and Redis,
# installing and starting them first where they are missing. Tests isolate themselves by
# namespace (own Postgres schema, NATS subjects, Redis keys) and run in parallel.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/services.sh
ensure_services
ensure_rust
ensure_browser_tools
# The tests create and drop their own schemas inside this database.
export DATABASE_URL="${TEST_DATABASE_URL:-postgres://pyairtable:pyairtable@127.0.0.1:5432/pyairtable_test}"
log "checking the service scripts"
scripts/services-test.sh
log "checking formatting"
cargo fmt --all -- --check
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi
log "running the test suite"
cargo nextest run --workspace --locked --no-fail-fast "$@"
log "running doc tests"
cargo test --workspace --locked --doc
