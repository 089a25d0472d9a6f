#!/usr/bin/env bash
# Quick start, command 1: on a fresh Debian/Ubuntu machine, install and start what is missing
# (PostgreSQL, NATS with JetStream, Redis, Rust), build PyAirtable and run it on
# $PYAIRTABLE_BIND (default 127.0.0.1:8000). Ctrl-C stops the platform; the services stay up.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/services.sh
ensure_services
ensure_rust
log "building pyairtable (release)"
cargo build --release --locked -p pyairtable-api
log "applying migrations"
./target/release/pyairtable migrate
log "serving on http://${PYAIRTABLE_BIND:-127.0.0.1:8000} (healthz, readyz)"
exec ./target/release/pyairtable serve
