#!/usr/bin/env bash
# Shared by scripts/up.sh and scripts/test.sh: install (apt, no Docker) and start PostgreSQL,
# NATS with JetStream and Redis where they are missing or stopped, and create the role and the
# databases PyAirtable uses. Idempotent: running it on a machine where all is up changes nothing.
set -euo pipefail

PG_ROLE=pyairtable
PG_PASSWORD=pyairtable
STATE_DIR="${PYAIRTABLE_STATE_DIR:-$HOME/.local/share/pyairtable}"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do
    port_open "$port" && return 0
    sleep 0.5
  done
  echo "error: $name did not start listening on 127.0.0.1:$port" >&2
  return 1
}

have_systemd() { [ -d /run/systemd/system ]; }

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}

ensure_packages() {
  command -v apt-get >/dev/null || { echo "error: this script needs a Debian or Ubuntu machine (apt-get)" >&2; exit 1; }
  local pkgs=(ca-certificates curl build-essential pkg-config)
  command -v pg_ctlcluster >/dev/null || command -v pg_ctl >/dev/null || pkgs+=(postgresql)
  command -v psql >/dev/null || pkgs+=(postgresql-client)
  command -v redis-server >/dev/null || pkgs+=(redis-server)
  command -v nats-server >/dev/null || pkgs+=(nats-server)
  apt_install "${pkgs[@]}"
}

# Chromium and playwright-core for the GraphiQL browser test (api/tests/graphql_browser.rs).
# Best effort: without them that test says what is missing and skips.
ensure_browser_tools() {
  local pkgs=()
  command -v chromium >/dev/null || pkgs+=(chromium)
  command -v node >/dev/null || pkgs+=(nodejs npm)
  [ ${#pkgs[@]} -eq 0 ] || apt_install "${pkgs[@]}" || log "could not install ${pkgs[*]}; the browser test will skip"
  if command -v npm >/dev/null && [ ! -d api/tests/browser/node_modules/playwright-core ]; then
    log "installing playwright-core for the browser test"
    npm ci --prefix api/tests/browser --no-audit --no-fund --loglevel=error \
      || log "npm ci failed; the browser test will skip"
  fi
}

ensure_rust() {
  if ! command -v cargo >/dev/null; then
    [ -x "$HOME/.cargo/bin/cargo" ] || {
      log "installing Rust with rustup"
      curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    }
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
}

ensure_postgres() {
  if ! port_open 5432; then
    log "starting PostgreSQL"
    if have_systemd; then
      as_root systemctl start postgresql
    else
      for version in $(ls /etc/postgresql 2>/dev/null); do
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
      done
    fi
    wait_port 5432 PostgreSQL
  fi
  # Superuser access: trust over TCP where configured (CI machines), else peer auth as `postgres`.
  local psql_su
  if psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
    psql_su=(psql -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -Atq)
  else
    if [ "$(id -u)" -eq 0 ]; then
      psql_su=(runuser -u postgres -- psql -d postgres -v ON_ERROR_STOP=1 -Atq)
    else
      psql_su=(sudo -u postgres psql -d postgres -v ON_ERROR_STOP=1 -Atq)
    fi
  fi
  "${psql_su[@]}" -c "do \$\$ begin
      if not exists (select from pg_roles where rolname = '$PG_ROLE') then
        create role $PG_ROLE login createdb password '$PG_PASSWORD';
      end if; end \$\$;"
  for db in pyairtable pyairtable_test; do
    if [ -z "$("${psql_su[@]}" -c "select 1 from pg_database where datname = '$db'")" ]; then
      log "creating database $db"
      "${psql_su[@]}" -c "create database $db owner $PG_ROLE"
    fi
  done
}

ensure_redis() {
  if ! port_open 6379; then
    log "starting Redis"
    if have_systemd && systemctl list-unit-files redis-server.service >/dev/null 2>&1; then
      as_root systemctl start redis-server
    else
      as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    fi
    wait_port 6379 Redis
  fi
}

# Whether the NATS server on port $1 has JetStream: its INFO greeting says so.
nats_jetstream() {
  local info
  info=$(timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && head -n1 <&3" 2>/dev/null) || return 1
  [[ $info == *'"jetstream":true'* ]]
}

# Debian's nats-server package runs a systemd service whose config has no JetStream: add it.
enable_debian_jetstream() {
  local conf=/etc/nats-server.conf
  if ! grep -q '^[[:space:]]*jetstream' "$conf"; then
    log "enabling JetStream in $conf"
    printf '\n# Added by PyAirtable (scripts/services.sh): the platform needs JetStream.\njetstream {\n  store_dir: /var/lib/nats-server\n}\n' \
      | as_root tee -a "$conf" >/dev/null
  fi
  as_root mkdir -p /var/lib/nats-server
  as_root chown nats: /var/lib/nats-server 2>/dev/null || true
}

debian_nats_service() {
  have_systemd && [ -f /etc/nats-server.conf ] \
    && systemctl list-unit-files nats-server.service >/dev/null 2>&1
}

ensure_nats() {
  local port="${NATS_PORT:-4222}"
  if port_open "$port"; then
    nats_jetstream "$port" && return 0
    if debian_nats_service && systemctl is-active --quiet nats-server; then
      enable_debian_jetstream
      as_root systemctl restart nats-server
      wait_port "$port" NATS
      nats_jetstream "$port" && return 0
    fi
    echo "error: the NATS server on 127.0.0.1:$port runs without JetStream; restart it with -js" >&2
    return 1
  fi
  log "starting NATS with JetStream"
  if debian_nats_service; then
    enable_debian_jetstream
    as_root systemctl start nats-server
  else
    mkdir -p "$STATE_DIR/nats"
    nohup nats-server -a 127.0.0.1 -p "$port" -js -sd "$STATE_DIR/nats" \
      >"$STATE_DIR/nats-server.log" 2>&1 &
  fi
  wait_port "$port" NATS
  nats_jetstream "$port" || {
    echo "error: NATS started on 127.0.0.1:$port without JetStream" >&2
    return 1
  }
}

ensure_services() {
  ensure_packages
  ensure_postgres
  ensure_redis
  ensure_nats
}

export DATABASE_URL="${DATABASE_URL:-postgres://$PG_ROLE:$PG_PASSWORD@127.0.0.1:5432/pyairtable}"
export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
