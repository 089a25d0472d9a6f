#!/usr/bin/env bash
# Append benchmark (issue #2 item 7): the event store next to pgbench inserting the same rows
# into a plain table, in the same run, shape by shape, 8 writers / 8 clients each:
#   A: one ~200-byte event per append (per transaction), 20 000 events
#   B: 10 events per append (per transaction), 100 000 events
# Prints events/s, p50 and p99 per append (per transaction) for both, and the ratio. When the
# server runs on this machine and its data directory is readable, also the CPU time per append
# (per transaction) of the server and of the writing process (pgbench, or the store's bench).
#
# Usage: scripts/bench-append.sh   (BENCH_DATABASE_URL overrides the database; default
# postgres://postgres@127.0.0.1:5432/pyairtable_bench, created if missing)
set -euo pipefail
cd "$(dirname "$0")/.."

url="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/pyairtable_bench}"
admin_url="${url%/*}/postgres"
db="${url##*/}"
db="${db%%\?*}"
writers=8
a_events="${BENCH_A_EVENTS:-20000}"
b_events="${BENCH_B_EVENTS:-100000}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

say() { printf '\n== %s\n' "$*"; }

say "building the benchmark (release)"
cargo bench -p pyairtable-eventstore --bench append --no-run

if [ "$(psql "$admin_url" -Atc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != "1" ]; then
  psql "$admin_url" -qc "CREATE DATABASE \"$db\"" || true
fi

# The rows the store writes, as literals. Colons are escaped (\x3a) because pgbench would
# read ":name" as a variable.
payload='{"fields":{"fldCount000000002":17,"fldDone0000000003":false,"fldName0000000001":"Benchmark row with a modest text value","fldNote0000000004":"lorem ipsum dolor sit amet"},"record_id":"rec00000000000017","table_id":"tblBenchmark00001"}'
metadata='{"actor":{"id":"usrBenchmark00001","type":"user"},"correlation_id":"5b1f2c57-7d0e-4b8e-9c55-3b0c86f1d2aa","workspace_id":"wspBenchmark00001"}'
payload="${payload//:/\\x3a}"
metadata="${metadata//:/\\x3a}"
columns="epoch, xid, version, recorded_at, schema_version, event_id, stream_id, event_type, payload, metadata, prev_hash, hash"

cat >"$work/a.sql" <<SQL
\set n random(1, 9000000000000000000)
INSERT INTO bench_plain.events ($columns) VALUES (1, pg_current_xact_id()::text::bigint, 1, now(), 1, gen_random_uuid(), 'bench-a-' || :client_id || '-' || :n, 'RecordUpdated', E'$payload', E'$metadata', sha256('prev'), sha256(gen_random_uuid()::text::bytea));
SQL
cat >"$work/b.sql" <<SQL
\set s random(1, 100)
\set v random(1, 9000000000000000000)
INSERT INTO bench_plain.events ($columns) SELECT 1, pg_current_xact_id()::text::bigint, :v::bigint + g, now(), 1, gen_random_uuid(), 'bench-b-' || :client_id || '-' || :s, 'RecordUpdated', E'$payload', E'$metadata', sha256('prev'), sha256(gen_random_uuid()::text::bytea) FROM generate_series(1, 10) AS g;
SQL

# The cost of a NOTIFY inside the writing transaction (why the store sends it afterwards):
# shape A's row with explicit BEGIN/COMMIT, without and with a NOTIFY before COMMIT.
{ echo '\set n random(1, 9000000000000000000)'; echo 'BEGIN;'; sed -n 2p "$work/a.sql"; echo 'COMMIT;'; } >"$work/a_tx.sql"
{ echo '\set n random(1, 9000000000000000000)'; echo 'BEGIN;'; sed -n 2p "$work/a.sql"; echo 'NOTIFY bench_plain_events;'; echo 'COMMIT;'; } >"$work/a_notify.sql"

# A plain table with the store's columns and a primary key; with "indexed", also the store's
# other two unique indexes, to separate what the data costs from what the store's logic costs.
reset_plain() {
  local keys="PRIMARY KEY (pos)"
  if [ "${1:-}" = indexed ]; then
    keys="PRIMARY KEY (epoch, xid, pos), UNIQUE (stream_id, version), UNIQUE (event_id)"
  fi
  psql "$url" -q <<SQL
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS bench_plain CASCADE;
CREATE SCHEMA bench_plain;
CREATE TABLE bench_plain.events (
    pos bigserial, epoch bigint NOT NULL, xid bigint NOT NULL, version bigint NOT NULL,
    recorded_at timestamptz NOT NULL, schema_version integer NOT NULL, event_id uuid NOT NULL,
    stream_id text NOT NULL, event_type text NOT NULL, payload json NOT NULL, metadata json NOT NULL,
    prev_hash bytea NOT NULL, hash bytea NOT NULL, $keys);
CHECKPOINT;
SQL
}

# The server's postmaster, when it runs here (its CPU time is read from /proc).
postmaster=$(head -1 "$(psql "$url" -Atc 'SHOW data_directory' 2>/dev/null)/postmaster.pid" 2>/dev/null || true)

# CPU ticks the server has used so far: the postmaster's own, its exited backends' (reaped,
# so in its children's times) and its live children's. Empty when /proc cannot tell.
server_ticks() {
  [ -n "$postmaster" ] && [ -r "/proc/$postmaster/task/$postmaster/children" ] || return 0
  local total child
  total=$(sed 's/.*) //' "/proc/$postmaster/stat" | awk '{print $12 + $13 + $14 + $15}')
  for child in $(cat "/proc/$postmaster/task/$postmaster/children"); do
    total=$((total + $(sed 's/.*) //' "/proc/$child/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0)))
  done
  echo "$total"
}

# pgbench SHAPE SCRIPT TRANSACTIONS EVENTS_PER_TRANSACTION [indexed]
#   -> "events/s p50_ms p99_ms server_us client_us" (CPU per transaction, "-" if unknown)
run_pgbench() {
  local shape=$1 script=$2 transactions=$3 per=$4
  reset_plain "${5:-}"
  rm -f "$work"/pgbench_log.*
  local before after TIMEFORMAT='%U %S'
  before=$(server_ticks)
  { time (cd "$work" && pgbench -n -M prepared -c "$writers" -j 2 -t $((transactions / writers)) \
      -l --log-prefix="$work/pgbench_log" -f "$script" "$url" >"$work/pgbench_$shape.out" 2>"$work/pgbench_$shape.err"); } 2>"$work/time"
  after=$(server_ticks)
  local tps
  tps=$(awk '/^tps = /{print $3}' "$work/pgbench_$shape.out")
  # Per-transaction log: the third field is the latency in microseconds.
  cat "$work"/pgbench_log.* | awk '{print $3}' | sort -n >"$work/lat"
  local count p50 p99
  count=$(wc -l <"$work/lat")
  p50=$(awk -v n="$count" 'NR == int((n * 50 + 99) / 100) {printf "%.2f", $1 / 1000}' "$work/lat")
  p99=$(awk -v n="$count" 'NR == int((n * 99 + 99) / 100) {printf "%.2f", $1 / 1000}' "$work/lat")
  local server=- client
  if [ -n "$before" ] && [ -n "$after" ]; then
    server=$(awk -v d=$((after - before)) -v n="$transactions" 'BEGIN {printf "%.0f", d * 1e6 / 100 / n}')
  fi
  client=$(tail -1 "$work/time" | awk -v n="$transactions" '{printf "%.0f", ($1 + $2) * 1e6 / n}')
  echo "$(awk -v t="$tps" -v p="$per" 'BEGIN {printf "%.0f", t * p}') $p50 $p99 $server $client"
}

# store SHAPE -> "events/s p50_ms p99_ms server_us client_us" (CPU per append, from the bench)
run_store() {
  local shape=$1
  psql "$url" -qc "CHECKPOINT"
  BENCH_DATABASE_URL="$url" BENCH_SHAPES="$shape" BENCH_WRITERS="$writers" \
    BENCH_A_EVENTS="$a_events" BENCH_B_EVENTS="$b_events" \
    cargo bench -q -p pyairtable-eventstore --bench append >"$work/store_$shape.out"
  awk '/^RESULT/ {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      print v["events_per_sec"], v["p50_ms"], v["p99_ms"], v["server_us"], v["client_us"] }' "$work/store_$shape.out"
}

say "machine"
echo "cores: $(nproc), memory: $(free -h | awk '/^Mem:/ {print $2}'), $(psql "$url" -Atc 'SELECT version()' | cut -d, -f1)"
psql "$url" -Atc "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings
                  WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers', 'wal_level', 'max_wal_size')"

declare -A result
say "shape A: $a_events events, one per append, $writers writers"
result[pg_A]=$(run_pgbench A "$work/a.sql" "$a_events" 1)
result[pgx_A]=$(run_pgbench A "$work/a.sql" "$a_events" 1 indexed)
result[store_A]=$(run_store A)
say "shape B: $b_events events, 10 per append, $writers writers"
result[pg_B]=$(run_pgbench B "$work/b.sql" $((b_events / 10)) 10)
result[pgx_B]=$(run_pgbench B "$work/b.sql" $((b_events / 10)) 10 indexed)
result[store_B]=$(run_store B)
say "NOTIFY inside the transaction: shape A rows in BEGIN/COMMIT, without and with NOTIFY"
result[pg_tx]=$(run_pgbench tx "$work/a_tx.sql" "$a_events" 1)
result[pg_notify]=$(run_pgbench notify "$work/a_notify.sql" "$a_events" 1)
psql "$url" -qc "SET client_min_messages = warning; DROP SCHEMA IF EXISTS bench_plain CASCADE"

say "results (latency and CPU time per append / per pgbench transaction)"
row() { printf '%-6s %-24s %10s %8s %8s %13s %13s\n' "$@"; }
row shape writer "events/s" "p50 ms" "p99 ms" "server µs/tx" "writer µs/tx"
for shape in A B; do
  read -r pe p50 p99 pcs pcc <<<"${result[pg_$shape]}"
  read -r xe x50 x99 xcs xcc <<<"${result[pgx_$shape]}"
  read -r se s50 s99 scs scc <<<"${result[store_$shape]}"
  row "$shape" "pgbench, plain table" "$pe" "$p50" "$p99" "$pcs" "$pcc"
  row "$shape" "  + the store's indexes" "$xe" "$x50" "$x99" "$xcs" "$xcc"
  row "$shape" "event store" "$se" "$s50" "$s99" "$scs" "$scc"
  printf '%-6s %-24s %9s%%\n' "$shape" "store / plain" "$(awk -v s="$se" -v p="$pe" 'BEGIN {printf "%.0f", 100 * s / p}')"
  printf '%-6s %-24s %9s%%\n' "$shape" "store / indexed" "$(awk -v s="$se" -v p="$xe" 'BEGIN {printf "%.0f", 100 * s / p}')"
done
read -r te t50 t99 tcs tcc <<<"${result[pg_tx]}"
read -r ne n50 n99 ncs ncc <<<"${result[pg_notify]}"
row "A" "pgbench, BEGIN/COMMIT" "$te" "$t50" "$t99" "$tcs" "$tcc"
row "A" "  + NOTIFY in the tx" "$ne" "$n50" "$n99" "$ncs" "$ncc"
