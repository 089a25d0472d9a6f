#!/usr/bin/env bash
# API benchmark (issue #5 item 11, issue #6 item 7): latency and throughput of the REST (/v0)
# and GraphQL (/graphql) APIs of the release binary, measured with wrk against a table of
# BENCH_RECORDS records (default 10 000; the issues ask for 100 000: BENCH_RECORDS=100000).
#
#   (a) REST   GET /v0/{base}/{table}?pageSize=100                       32 connections
#   (b) REST   same with filterByFormula={Count} > 5000                   32 connections
#   (c) GraphQL records(tableId, first: 100) { nodes { id cells } }      32 connections
#   (d) REST   POST 10 records                                           4 connections
#   (e) GraphQL createRecords with 10 records                             4 connections
#   (f) GraphQL updateRecords of 10 seeded records (each wrk thread cycles through its own
#       slice of 2 000, so concurrent requests never touch the same record)   4 connections
# Reads run before writes so that they all see the seeded record count.
#
# Runs in a fresh namespace bench_<random> (rate limits off) and drops its schemas, Redis keys
# and JetStream stream at the end.
#
# Usage: scripts/bench-api.sh
#   BENCH_RECORDS (10000)  BENCH_DURATION (20s)  BENCH_READ_CONNS (32)  BENCH_WRITE_CONNS (4)
#   BENCH_DATABASE_URL (postgres://postgres@127.0.0.1:5432/pyairtable_test)  BENCH_SKIP_BUILD=1
#   BENCH_BIN (target/release/pyairtable)  BENCH_TIMEOUT (wrk request timeout, 60s)
set -euo pipefail
cd "$(dirname "$0")/.."

records="${BENCH_RECORDS:-10000}"
duration="${BENCH_DURATION:-20s}"
read_conns="${BENCH_READ_CONNS:-32}"
write_conns="${BENCH_WRITE_CONNS:-4}"
seed_parallel="${BENCH_SEED_PARALLEL:-8}"
export DATABASE_URL="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/pyairtable_test}"
ns="bench_$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
export PYAIRTABLE_NAMESPACE="$ns"
export PYAIRTABLE_RATE_LIMIT_PER_BASE=0
export PYAIRTABLE_GRAPHQL_RATE_LIMIT=0
export RUST_LOG="${RUST_LOG:-warn}"
bin="${BENCH_BIN:-target/release/pyairtable}"
work="$(mktemp -d)"
server_pid=""

say() { printf '\n== %s   [%s]\n' "$*" "$(uptime | sed 's/.*load average/load average/')"; }

cleanup() {
  set +e
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  psql "$DATABASE_URL" -qAt -v ON_ERROR_STOP=0 <<SQL >/dev/null 2>&1
SET client_min_messages = warning;
DO \$\$ DECLARE s text; BEGIN
  FOR s IN SELECT nspname FROM pg_namespace WHERE nspname = '$ns' OR nspname LIKE '${ns}\_%' LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', s);
  END LOOP;
END \$\$;
SQL
  if command -v redis-cli >/dev/null; then
    redis-cli --scan --pattern "${ns}:*" | xargs -r -n 500 redis-cli del >/dev/null
    redis-cli --scan --pattern "pyairtable:${ns}:*" | xargs -r -n 500 redis-cli del >/dev/null
  fi
  # JetStream stream (and with it its consumers), via the JS API over the plain protocol.
  python3 - "${ns^^}_EVENTS" <<'PY' >/dev/null 2>&1
import socket, sys
s = socket.create_connection(("127.0.0.1", 4222), timeout=5)
s.recv(4096)
s.sendall(b"CONNECT {\"verbose\":false}\r\nSUB _bench.reply 1\r\n"
          b"PUB $JS.API.STREAM.DELETE." + sys.argv[1].encode() + b" _bench.reply 0\r\n\r\n")
s.recv(4096)
s.close()
PY
  echo "cleaned up namespace $ns"
  rm -rf "$work"
}
trap cleanup EXIT

if [ "${BENCH_SKIP_BUILD:-}" != 1 ]; then
  say "building the release binary"
  cargo build --release -p pyairtable-api
fi
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null

say "starting the server (namespace $ns)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
PYAIRTABLE_BIND="127.0.0.1:$port" "$bin" serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 120); do
  curl -fs "$url/readyz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.5
done
curl -fs "$url/readyz" >/dev/null || { echo "server not ready"; cat "$work/server.log"; exit 1; }

say "bootstrapping a user, workspace and token with the CLI"
email="bench@example.com"
printf 'bench password 123456\n' | "$bin" users create --email "$email" --password-stdin --admin >/dev/null
wsp=$("$bin" workspaces create --owner "$email" --name Bench | tail -1)
token=$("$bin" tokens create --email "$email" --name bench \
  --scopes data.records:read,data.records:write,schema.bases:read,schema.bases:write | tail -1)
auth="Authorization: Bearer $token"

say "creating a base and table through REST"
curl -fsS -X POST "$url/v0/meta/bases" -H "$auth" -H 'Content-Type: application/json' -d "{
  \"name\": \"Bench\", \"workspaceId\": \"$wsp\", \"tables\": [{\"name\": \"Items\", \"fields\": [
    {\"name\": \"Name\", \"type\": \"singleLineText\"},
    {\"name\": \"Count\", \"type\": \"number\", \"options\": {\"precision\": 0}},
    {\"name\": \"Note\", \"type\": \"multilineText\"},
    {\"name\": \"Done\", \"type\": \"checkbox\", \"options\": {\"icon\": \"check\", \"color\": \"greenBright\"}}]}]}" \
  >"$work/base.json"
base=$(jq -r .id "$work/base.json")
table=$(jq -r '.tables[0].id' "$work/base.json")
echo "base $base table $table"

say "seeding $records records (REST batches of 10, $seed_parallel in parallel)"
seed_start=$(date +%s.%N)
python3 - "$url" "$token" "$base" "$table" "$records" "$seed_parallel" <<'PY'
import http.client, json, sys, random
from concurrent.futures import ThreadPoolExecutor
url, token, base, table, n, par = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
host, port = url.removeprefix("http://").split(":")
def batch(start):
    c = http.client.HTTPConnection(host, int(port), timeout=60)
    recs = [{"fields": {"Name": f"Item {i}", "Count": random.randrange(10000),
                        "Note": "lorem ipsum dolor sit amet", "Done": i % 2 == 0}}
            for i in range(start, min(start + 10, n))]
    for attempt in range(5):
        c.request("POST", f"/v0/{base}/{table}", json.dumps({"records": recs}),
                  {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        r = c.getresponse(); body = r.read()
        if r.status == 200:
            return
    raise SystemExit(f"seed failed: {r.status} {body[:300]!r}")
with ThreadPoolExecutor(par) as ex:
    list(ex.map(batch, range(0, n, 10)))
PY
seed_end=$(date +%s.%N)
python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f'seeded {sys.argv[3]} records in {s:.1f} s = {int(sys.argv[3])/s:.0f} records/s')" "$seed_start" "$seed_end" "$records"
count=$(psql "$DATABASE_URL" -Atc "SELECT count(*) FROM \"${ns}_rm\".records" 2>/dev/null || echo "?")
echo "records in the read model: $count"

# A wrk Lua script for a POST with a JSON body. Counts non-2xx answers (wrk reports them too).
post_script() { # FILE BODY_FILE
  cat >"$1" <<LUA
local f = io.open("$2", "r"); local body = f:read("*a"); f:close()
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA
}

run_wrk() { # NAME CONNS ARGS...
  local name=$1 conns=$2; shift 2
  local threads=2; [ "$conns" -lt 2 ] && threads=1
  say "$name ($conns connections, $duration)"
  wrk -t"$threads" -c"$conns" -d"$duration" --timeout "${BENCH_TIMEOUT:-60s}" --latency "$@" | tee "$work/$name.txt"
  # Summary line: req/s, p50, p99, errors.
  awk -v n="$name" '
    /Requests\/sec/ {rps=$2}
    /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
    /Non-2xx/ {non2xx=$NF} /Socket errors/ {sock=$0}
    END {printf "RESULT %-22s req/s=%s p50=%s p99=%s non2xx=%s %s\n", n, rps, p50, p99, (non2xx==""?0:non2xx), sock}' \
    "$work/$name.txt" | tee -a "$work/results.txt"
}

# Sanity checks, so a broken request is not measured as a fast error.
curl -fsS "$url/v0/$base/$table?pageSize=100" -H "$auth" | jq -e '.records | length == 100' >/dev/null
filter='%7BCount%7D%20%3E%205000'
curl -fsS "$url/v0/$base/$table?pageSize=100&filterByFormula=$filter" -H "$auth" \
  | jq -e '.records | length > 0' >/dev/null
jq -n --arg t "$table" '{query: "query($t: ID!) { records(tableId: $t, first: 100) { nodes { id cells } pageInfo { hasNextPage endCursor } } }", variables: {t: $t}}' >"$work/gql_read.json"
curl -fsS -X POST "$url/graphql" -H "$auth" -H 'Content-Type: application/json' -d @"$work/gql_read.json" \
  | jq -e '.data.records.nodes | length == 100' >/dev/null
jq -n '{records: [range(10) | {fields: {Name: "Bench write \(.)", Count: ., Note: "lorem ipsum dolor sit amet", Done: true}}]}' >"$work/rest_write.json"
jq -n --arg t "$table" '{query: "mutation($t: ID!, $r: [JSON!]!) { createRecords(tableId: $t, records: $r) { records { id version } consistencyToken } }", variables: {t: $t, r: [range(10) | {Name: "Bench gql \(.)", Count: ., Note: "lorem ipsum dolor sit amet", Done: true}]}}' >"$work/gql_write.json"
curl -fsS -X POST "$url/graphql" -H "$auth" -H 'Content-Type: application/json' -d @"$work/gql_write.json" \
  | jq -e '.data.createRecords.records | length == 10' >/dev/null
# Updates: 10 seeded records per request, from per-thread slices of these ids.
psql "$DATABASE_URL" -Atc "SELECT record_id FROM \"${ns}_rm\".records ORDER BY record_id LIMIT 2000" >"$work/ids.txt"
[ "$(wc -l <"$work/ids.txt")" -ge 40 ] || { echo "too few records to update" >&2; exit 1; }
cat >"$work/gql_update.lua" <<'LUA'
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  threads[#threads + 1] = thread
end
function init(args)
  errors = 0
  ids = {}
  for line in io.lines("IDS_FILE") do ids[#ids + 1] = line end
  -- Two slices: run_wrk runs at most two threads. Whole blocks of 10, so none straddles.
  per = math.floor(#ids / 20) * 10
  first = tid * per
  n = 0
end
function request()
  local parts = {}
  for k = 0, 9 do
    local id = ids[first + ((n * 10 + k) % per) + 1]
    parts[#parts + 1] = string.format('{"id":"%s","fields":{"Count":%d,"Done":%s}}', id, n, n % 2 == 0 and "true" or "false")
  end
  n = n + 1
  local body = '{"query":"mutation($t: ID!, $r: [RecordUpdateInput!]!) { updateRecords(tableId: $t, records: $r) { records { id version } } }","variables":{"t":"TABLE_ID","r":[' .. table.concat(parts, ",") .. ']}}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer TOKEN"}, body)
end
-- GraphQL reports errors with status 200: count them, so failures are not measured as speed.
function response(status, headers, body)
  if status ~= 200 or body:find('"errors"', 1, true) then errors = errors + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("errors") end
  io.write(string.format("GraphQL update errors: %d\n", total))
end
LUA
sed -i "s|IDS_FILE|$work/ids.txt|; s|TABLE_ID|$table|; s|TOKEN|$token|" "$work/gql_update.lua"
head -10 "$work/ids.txt" | jq -R . | jq -s --arg t "$table" '{query: "mutation($t: ID!, $r: [RecordUpdateInput!]!) { updateRecords(tableId: $t, records: $r) { records { id version } } }", variables: {t: $t, r: map({id: ., fields: {Count: 1}})}}' >"$work/gql_update.json"
curl -fsS -X POST "$url/graphql" -H "$auth" -H 'Content-Type: application/json' -d @"$work/gql_update.json" \
  | jq -e '.data.updateRecords.records | length == 10' >/dev/null
post_script "$work/gql_read.lua" "$work/gql_read.json"
post_script "$work/rest_write.lua" "$work/rest_write.json"
post_script "$work/gql_write.lua" "$work/gql_write.json"

run_wrk rest_list "$read_conns" -H "$auth" "$url/v0/$base/$table?pageSize=100"
run_wrk rest_list_filter "$read_conns" -H "$auth" "$url/v0/$base/$table?pageSize=100&filterByFormula=$filter"
run_wrk graphql_records "$read_conns" -s "$work/gql_read.lua" "$url/graphql"
run_wrk rest_create10 "$write_conns" -s "$work/rest_write.lua" "$url/v0/$base/$table"
run_wrk graphql_create10 "$write_conns" -s "$work/gql_write.lua" "$url/graphql"
run_wrk graphql_update10 "$write_conns" -s "$work/gql_update.lua" "$url/graphql"
grep -q '^GraphQL update errors: 0$' "$work/graphql_update10.txt" \
  || { echo "updateRecords failed during the run (see above)" >&2; exit 1; }

# GraphQL answers errors with 200: make sure the measured mutations succeeded.
curl -fsS -X POST "$url/graphql" -H "$auth" -H 'Content-Type: application/json' -d @"$work/gql_write.json" \
  | jq -e '.data.createRecords.records | length == 10' >/dev/null
curl -fsS -X POST "$url/graphql" -H "$auth" -H 'Content-Type: application/json' -d @"$work/gql_update.json" \
  | jq -e '.data.updateRecords.records | length == 10' >/dev/null
final=$(psql "$DATABASE_URL" -Atc "SELECT count(*) FROM \"${ns}_rm\".records" 2>/dev/null || echo "?")

say "summary"
echo "namespace $ns, seeded $records records (read model: $count before writes, $final after)"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(psql "$DATABASE_URL" -Atc 'SHOW server_version')"
cat "$work/results.txt"
if grep -q 'ERROR\|panicked' "$work/server.log"; then
  echo "server log errors:"; grep 'ERROR\|panicked' "$work/server.log" | head -5
fi
