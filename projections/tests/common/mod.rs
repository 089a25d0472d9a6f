//! Shared set-up for the projection tests: an isolated namespace in the shared Postgres,
//! NATS and Redis (or private servers for fault tests), and event builders.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use pyairtable_eventstore::{
    Actor, AppendResult, EventStore, ExpectedVersion, Metadata, Namespace, NewEvent, Position,
    StoreConfig, StreamId,
};
use pyairtable_projections::{Projections, Relay, RelayConfig, RuntimeConfig};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub const NATS_URL: &str = "nats://127.0.0.1:4222";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A free TCP port on localhost.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A private server process, killed on drop.
pub struct Server {
    pub child: Option<Child>,
    pub port: u16,
    pub dir: std::path::PathBuf,
    kind: &'static str,
}

impl Server {
    pub fn nats() -> Result<Self> {
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("pyat-nats-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let mut s = Self {
            child: None,
            port,
            dir,
            kind: "nats",
        };
        s.start()?;
        Ok(s)
    }

    pub fn redis() -> Result<Self> {
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("pyat-redis-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let mut s = Self {
            child: None,
            port,
            dir,
            kind: "redis",
        };
        s.start()?;
        Ok(s)
    }

    pub fn url(&self) -> String {
        match self.kind {
            "nats" => format!("nats://127.0.0.1:{}", self.port),
            _ => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    pub fn start(&mut self) -> Result<()> {
        let child = match self.kind {
            "nats" => Command::new("/usr/sbin/nats-server")
                .args(["-js", "-sd"])
                .arg(&self.dir)
                .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting nats-server")?,
            _ => Command::new("redis-server")
                .args([
                    "--port",
                    &self.port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(&self.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting redis-server")?,
        };
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        anyhow::bail!("{} did not start", self.kind)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub const DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/pyairtable_test";

/// A migrated store in a fresh namespace `t_<12 hex>` (short enough for the 31-character
/// namespace limit).
pub struct TestStore {
    store: EventStore,
}

impl TestStore {
    pub async fn new() -> Result<Self> {
        let test = Self::unmigrated().await?;
        test.store.migrate().await?;
        Ok(test)
    }

    /// A store whose namespace has the repository's migrations up to `version` only, read from
    /// `migrations/` at run time: a deployment from before a later migration, to upgrade.
    pub async fn migrated_to(version: i64) -> Result<Self> {
        let test = Self::unmigrated().await?;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        let migrator = sqlx::migrate::Migrator::new(dir).await?;
        ensure!(
            migrator.version_exists(version),
            "no migration {version} in the repository"
        );
        migrator.run_to(version, test.store.pool()).await?;
        Ok(test)
    }

    async fn unmigrated() -> Result<Self> {
        let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DATABASE_URL.to_owned());
        if sqlx::PgConnection::connect(&url).await.is_err() {
            let mut admin =
                sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres").await?;
            let _ = sqlx::query("CREATE DATABASE pyairtable_test")
                .execute(&mut admin)
                .await;
        }
        let simple = Uuid::new_v4().simple().to_string();
        let ns = Namespace::parse(&format!("t_{}", &simple[..12]))?;
        let mut config = StoreConfig::new(url, ns);
        config.max_connections = 8;
        let store = EventStore::connect(config).await?;
        Ok(Self { store })
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    pub async fn cleanup(self) -> Result<()> {
        let ns = self.store.namespace().clone();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{ns}\" CASCADE"
        )))
        .execute(self.store.pool())
        .await?;
        self.store.pool().close().await;
        Ok(())
    }
}

/// An isolated namespace with the relay and the projections wired to it.
pub struct Env {
    pub test: TestStore,
    pub nats: async_nats::Client,
    pub redis: redis::Client,
    pub projections: Projections,
    pub relay: Relay,
    pub tasks: Vec<JoinHandle<()>>,
}

pub fn fast_relay() -> RelayConfig {
    RelayConfig {
        standby_poll: Duration::from_millis(200),
        lock_check: Duration::from_millis(500),
        max_backoff: Duration::from_millis(500),
        ..RelayConfig::default()
    }
}

pub fn fast_runtime() -> RuntimeConfig {
    RuntimeConfig {
        retry_attempts: 2,
        max_backoff: Duration::from_millis(200),
        ack_wait: Duration::from_secs(5),
        relay: fast_relay(),
        ..RuntimeConfig::default()
    }
}

impl Env {
    pub async fn new() -> Result<Self> {
        Self::with(NATS_URL, REDIS_URL, fast_runtime()).await
    }

    pub async fn with(nats_url: &str, redis_url: &str, config: RuntimeConfig) -> Result<Self> {
        Self::on_store(TestStore::new().await?, nats_url, redis_url, config).await
    }

    /// The relay and projections over a store made by the caller (one migrated part way, say).
    pub async fn on_store(
        test: TestStore,
        nats_url: &str,
        redis_url: &str,
        config: RuntimeConfig,
    ) -> Result<Self> {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let nats = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(nats_url)
            .await?;
        let redis = redis::Client::open(redis_url)?;
        let relay = Relay::new(test.store().clone(), nats.clone(), config.relay.clone());
        let projections =
            Projections::new(test.store().clone(), nats.clone(), redis.clone(), config).await?;
        projections.install().await?;
        Ok(Self {
            test,
            nats,
            redis,
            projections,
            relay,
            tasks: Vec::new(),
        })
    }

    /// Starts the relay and every projection worker in background tasks.
    pub fn start_all(&mut self) {
        self.start_relay();
        let p = self.projections.clone();
        self.tasks.push(tokio::spawn(async move {
            let _ = p.run(std::future::pending()).await;
        }));
    }

    pub fn start_relay(&mut self) -> usize {
        let r = self.relay.clone();
        self.tasks.push(tokio::spawn(async move {
            let _ = r.run(std::future::pending()).await;
        }));
        self.tasks.len() - 1
    }

    pub fn start_projection(&mut self, name: &'static str) -> usize {
        let p = self.projections.clone();
        self.tasks.push(tokio::spawn(async move {
            let _ = p.run_projection(name, std::future::pending()).await;
        }));
        self.tasks.len() - 1
    }

    pub fn sql(&self) -> pyairtable_projections::SqlReadModels {
        pyairtable_projections::SqlReadModels::new(
            self.test.store().pool().clone(),
            self.projections.names().clone(),
        )
    }

    /// The position of the last committed event, visible to feed readers yet or not (the
    /// store's `head()` stops at the cluster-wide snapshot horizon, which other tests' open
    /// transactions hold back): what a writer's consistency token would be.
    pub async fn head(&self) -> Result<Position> {
        let row: Option<(i64, i64, i64)> = sqlx::query_as(
            "SELECT epoch, xid, pos FROM events ORDER BY epoch DESC, xid DESC, pos DESC LIMIT 1",
        )
        .fetch_optional(self.test.store().pool())
        .await?;
        Ok(match row {
            None => Position::START,
            Some((epoch, xid, pos)) => Position {
                epoch: u64::try_from(epoch)?,
                xid: u64::try_from(xid)?,
                pos: u64::try_from(pos)?,
            },
        })
    }

    /// Waits until every projection reached the store's head.
    pub async fn converge(&self, timeout: Duration) -> Result<()> {
        let head = self.head().await?;
        for name in pyairtable_projections::ALL_PROJECTIONS {
            self.projections
                .wait_for(name, &head, timeout)
                .await
                .with_context(|| format!("waiting for {name}"))?;
        }
        Ok(())
    }

    pub async fn append(
        &self,
        stream: &str,
        events: Vec<NewEvent>,
        workspace: Option<&str>,
    ) -> Result<AppendResult> {
        let mut meta = Metadata::new(
            Actor::User {
                id: "usr00000000000001".to_owned(),
            },
            Uuid::new_v4(),
        );
        if let Some(w) = workspace {
            meta = meta.with_workspace(w);
        }
        Ok(self
            .test
            .store()
            .append(
                &StreamId::parse(stream)?,
                ExpectedVersion::Any,
                events,
                &meta,
            )
            .await?)
    }

    /// Stops background tasks and removes everything the namespace created.
    pub async fn cleanup(mut self) -> Result<()> {
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        let names = self.projections.names().clone();
        let js = async_nats::jetstream::new(self.nats.clone());
        let _ = js.delete_stream(names.stream()).await;
        if let Ok(mut con) = self.redis.get_multiplexed_async_connection().await {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}*", names.redis_prefix()))
                .query_async(&mut con)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<i64> =
                    redis::cmd("DEL").arg(keys).query_async(&mut con).await;
            }
        }
        let schema = names.rm_schema();
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
        )))
        .execute(self.test.store().pool())
        .await;
        self.test.cleanup().await?;
        Ok(())
    }
}

pub fn ev(event_type: &str, mut payload: Value) -> NewEvent {
    if let Value::Object(m) = &mut payload {
        m.insert("type".to_owned(), Value::from(event_type));
    }
    NewEvent::new(event_type, payload)
}

pub fn id(prefix: &str, n: usize) -> String {
    format!("{prefix}{n:014}")
}

pub fn record_created(rec: &str, table: &str, cells: Value) -> NewEvent {
    ev(
        "RecordCreated",
        json!({"id": rec, "table_id": table, "cells": cells, "by": "usr00000000000001", "at": "2026-01-01T00:00:00Z"}),
    )
}

pub fn record_updated(field: &str, old: Value, new: Value) -> NewEvent {
    ev(
        "RecordUpdated",
        json!({"changes": [{"field_id": field, "old": old, "new": new}], "by": "usr00000000000001", "at": "2026-01-01T00:00:01Z"}),
    )
}

pub fn record_deleted() -> NewEvent {
    ev(
        "RecordDeleted",
        json!({"by": "usr00000000000001", "at": "2026-01-01T00:00:02Z"}),
    )
}

/// Writes a workspace with one extra member and a table with two fields; returns
/// (workspace, table).
pub async fn seed_directory(env: &Env, n: usize) -> Result<(String, String)> {
    let ws = id("wsp", n);
    let owner = id("usr", 1);
    let member = id("usr", 1000 + n);
    env.append(
        &format!("workspace-{ws}"),
        vec![
            ev(
                "WorkspaceCreated",
                json!({"id": ws, "name": "Acme", "owner": owner, "at": "2026-01-01T00:00:00Z"}),
            ),
            ev(
                "MemberAdded",
                json!({"user_id": member, "role": "editor", "at": "2026-01-01T00:00:00Z"}),
            ),
        ],
        Some(&ws),
    )
    .await?;
    let base = id("app", n);
    let table = id("tbl", n);
    env.append(
        &format!("base-{base}"),
        vec![
            ev("BaseCreated", json!({"id": base, "workspace_id": ws, "name": "CRM", "by": owner, "at": "2026-01-01T00:00:00Z"})),
            ev("TableCreated", json!({"table": {
                "id": table, "name": "People", "primaryFieldId": id("fld", 1),
                "fields": [
                    {"id": id("fld", 1), "name": "Name", "type": "singleLineText"},
                    {"id": id("fld", 2), "name": "Status", "type": "singleSelect", "options": {"choices": [{"name": "a"}]}}
                ],
                "views": [{"id": id("viw", n), "name": "Grid", "isDefault": true, "sorts": []}]
            }, "by": owner, "at": "2026-01-01T00:00:00Z"})),
            ev("ChoicesAdded", json!({"table_id": table, "field_id": id("fld", 2), "choices": [{"name": "b"}], "by": owner, "at": "2026-01-01T00:00:00Z"})),
        ],
        Some(&ws),
    )
    .await?;
    Ok((ws, table))
}

/// Writes `count` records into `table`, each created then updated once; every third deleted.
pub async fn write_records(
    env: &Env,
    table: &str,
    ws: &str,
    from: usize,
    count: usize,
) -> Result<()> {
    for i in from..from + count {
        let rec = id("rec", i);
        let mut events = vec![
            record_created(&rec, table, json!({ id("fld", 1): format!("name {i}") })),
            record_updated(&id("fld", 2), Value::Null, json!("a")),
        ];
        if i % 3 == 0 {
            events.push(record_deleted());
        }
        env.append(&format!("record-{rec}"), events, Some(ws))
            .await?;
    }
    Ok(())
}

/// Checksums of every SQL read-model table.
pub async fn checksums(env: &Env) -> Result<Vec<(String, String)>> {
    let sql = env.sql();
    let mut out = Vec::new();
    for (_, tables) in pyairtable_projections::RM_TABLES {
        for t in tables {
            out.push(((*t).to_owned(), sql.checksum(t).await?));
        }
    }
    Ok(out)
}
