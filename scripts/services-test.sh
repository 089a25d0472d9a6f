#!/usr/bin/env bash
# Checks scripts/services.sh's NATS handling against private nats-server processes on free
# ports (the shared services are never touched): a stopped server is started with JetStream,
# and a running server without JetStream is refused with a message saying so. Run by
# scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/services.sh

free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 20000))
    port_open "$port" || { echo "$port"; return 0; }
  done
  echo "error: no free port found" >&2
  return 1
}

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  pkill -f "nats-server -a 127.0.0.1 -p ${started_port:-0} " 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "services-test: $*" >&2; exit 1; }

# 1. Nothing listens: ensure_nats starts a server with JetStream.
started_port=$(free_port)
( export NATS_PORT=$started_port STATE_DIR="$work/state"
  have_systemd() { return 1; }  # the private server, never the machine's service
  ensure_nats ) || fail "ensure_nats did not start NATS on a free port"
nats_jetstream "$started_port" || fail "the NATS ensure_nats started has no JetStream"

# 2. A server without JetStream: refused, naming the problem.
plain_port=$(free_port)
nats-server -a 127.0.0.1 -p "$plain_port" >"$work/plain.log" 2>&1 &
pids+=($!)
wait_port "$plain_port" "private NATS"
nats_jetstream "$plain_port" && fail "a server without JetStream was taken for one with it"
if out=$( (export NATS_PORT=$plain_port; have_systemd() { return 1; }; ensure_nats) 2>&1); then
  fail "ensure_nats accepted a NATS server without JetStream"
fi
[[ $out == *"without JetStream"* ]] || fail "unexpected message: $out"

log "service scripts: NATS started with JetStream; a server without it refused"
