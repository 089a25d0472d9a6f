//! Projection benchmarks against the real Postgres, NATS JetStream and Redis (issue #4 item 8).
//!
//! 1. **Rebuild throughput.** Loads `BENCH_EVENTS` (default 1,000,000) record events into an
//!    isolated namespace through the store's public `append_many` (real hashes and positions),
//!    then times `Projections::rebuild("records")` and `rebuild("audit_log")`.
//! 2. **Commit-to-read-model lag.** In a second namespace, with the relay and every projection
//!    worker running in this process, a writer appends one record command every
//!    `1/BENCH_RATE` s (default 500/s) for `BENCH_LAG_SECS` (default 20) and an observer notes
//!    when the records read model has applied each write.
//!
//! Run: `cargo bench -p pyairtable-projections --bench projections`
//! (quick: `BENCH_EVENTS=100000 BENCH_LAG_SECS=5 cargo bench ...`).
//! Environment: `DATABASE_URL` (default the test database), `NATS_URL`, `REDIS_URL`.
//! Figures and the machine they were taken on are recorded in docs/benchmarks.md.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use chrono::{Duration as ChronoDuration, TimeZone, Utc};
use futures::StreamExt;
use pyairtable_domain::aggregate::DomainEvent;
use pyairtable_domain::ids::{FieldId, RecordId, TableId, UserId};
use pyairtable_domain::record::{CellChange, RecordEvent};
use pyairtable_eventstore::testkit::TestStore;
use pyairtable_eventstore::{
    Actor, ExpectedVersion, Metadata, NewEvent, Position, StreamId, StreamWrite,
};
use pyairtable_projections::{Projections, RuntimeConfig, SqlReadModels};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::{Mutex, Notify};

/// Events of one record: its creation and then updates.
const EVENTS_PER_RECORD: usize = 10;
/// Streams per `append_many` call while loading (one event each, so records interleave in
/// the feed the way independent edits do, rather than sitting together).
const STREAMS_PER_APPEND: usize = 2_000;
/// Appends in flight while loading.
const LOAD_CONCURRENCY: usize = 3;
/// Records in the lag benchmark's namespace before the writer starts.
const LAG_SEED_RECORDS: usize = 5_000;
/// Rebuild target of the issue, events per second.
const REBUILD_TARGET: f64 = 50_000.0;
/// Lag target of the issue, p99.
const LAG_P99_TARGET: Duration = Duration::from_millis(50);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// The bench's table: twelve fields of the usual kinds.
struct Schema {
    table: TableId,
    fields: Vec<(FieldId, &'static str)>,
}

impl Schema {
    fn new() -> Self {
        let kinds = [
            "Name", "Notes", "Status", "Priority", "Estimate", "Done", "Due", "Tags", "Email",
            "Website", "Owner", "Rating",
        ];
        Self {
            table: TableId::parse("tblBench000000001").expect("a valid table id"),
            fields: kinds
                .iter()
                .map(|k| {
                    let id = FieldId::parse(&format!("fld{k:0>14}")).expect("a valid field id");
                    (id, *k)
                })
                .collect(),
        }
    }

    /// A plausible value for a field.
    fn value(&self, kind: &str, rng: &mut StdRng) -> Value {
        const WORDS: [&str; 12] = [
            "alpha",
            "launch",
            "review",
            "budget",
            "design",
            "vendor",
            "sprint",
            "customer",
            "invoice",
            "roadmap",
            "hiring",
            "migration",
        ];
        let word = |rng: &mut StdRng| WORDS[rng.random_range(0..WORDS.len())];
        match kind {
            "Name" => json!(format!(
                "{} {} {}",
                word(rng),
                word(rng),
                rng.random_range(1..10_000)
            )),
            "Notes" => {
                let n = rng.random_range(8..40);
                json!((0..n).map(|_| word(rng)).collect::<Vec<_>>().join(" "))
            }
            "Status" => json!(["Todo", "In progress", "Blocked", "Done"][rng.random_range(0..4)]),
            "Priority" => json!(rng.random_range(1..6)),
            "Estimate" => json!((rng.random_range(0..4000) as f64) / 100.0),
            "Done" => json!(rng.random_bool(0.3)),
            "Due" => {
                let day = Utc
                    .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                    .single()
                    .expect("a date")
                    + ChronoDuration::days(rng.random_range(0..365));
                json!(day.format("%Y-%m-%d").to_string())
            }
            "Tags" => {
                let n = rng.random_range(0..4);
                json!((0..n).map(|_| word(rng)).collect::<Vec<_>>())
            }
            "Email" => json!(format!(
                "{}.{}@example.com",
                word(rng),
                rng.random_range(1..999)
            )),
            "Website" => json!(format!("https://{}.example.org/{}", word(rng), word(rng))),
            "Owner" => json!(format!("usr{:014}", rng.random_range(1..200))),
            _ => json!(rng.random_range(1..6)),
        }
    }

    fn created(&self, record: &RecordId, rng: &mut StdRng) -> RecordEvent {
        let mut cells = BTreeMap::new();
        for (id, kind) in &self.fields {
            // Most cells are filled, a few left empty.
            if rng.random_bool(0.85) {
                cells.insert(id.clone(), self.value(kind, rng));
            }
        }
        RecordEvent::RecordCreated {
            id: record.clone(),
            table_id: self.table.clone(),
            cells,
            by: user(rng),
            at: Utc::now(),
        }
    }

    /// An edit of one to three cells (the old values are plausible, not tracked: the
    /// projection records them, it does not check them).
    fn updated(&self, rng: &mut StdRng) -> RecordEvent {
        let n = rng.random_range(1..=3);
        let changes = (0..n)
            .map(|_| {
                let (id, kind) = &self.fields[rng.random_range(0..self.fields.len())];
                let new = if rng.random_bool(0.05) {
                    Value::Null
                } else {
                    self.value(kind, rng)
                };
                CellChange {
                    field_id: id.clone(),
                    old: self.value(kind, rng),
                    new,
                }
            })
            .collect();
        RecordEvent::RecordUpdated {
            changes,
            by: user(rng),
            at: Utc::now(),
        }
    }
}

fn user(rng: &mut StdRng) -> UserId {
    UserId::parse(&format!("usr{:014}", rng.random_range(1..200))).expect("a valid user id")
}

fn record_id(n: usize) -> RecordId {
    RecordId::parse(&format!("rec{n:014}")).expect("a valid record id")
}

fn stream(record: &RecordId) -> StreamId {
    StreamId::parse(&format!("record-{record}")).expect("a valid stream id")
}

fn new_event(event: &RecordEvent) -> NewEvent {
    NewEvent::new(
        event.event_type(),
        serde_json::to_value(event).expect("a serialisable event"),
    )
}

fn metadata(rng: &mut StdRng) -> Metadata {
    Metadata::new(
        Actor::User {
            id: user(rng).to_string(),
        },
        uuid::Uuid::new_v4(),
    )
    .with_workspace("wspBench000000001")
}

/// Loads `records` records with `EVENTS_PER_RECORD` events each, round by round (every
/// record's creation, then every record's first update, ...), `STREAMS_PER_APPEND` streams
/// per append and `LOAD_CONCURRENCY` appends in flight.
async fn load(store: &TestStore, records: usize, rounds: usize, seed: u64) -> Result<u64> {
    let schema = Arc::new(Schema::new());
    let mut loaded = 0u64;
    for round in 0..rounds {
        let chunks: Vec<(usize, usize)> = (0..records)
            .step_by(STREAMS_PER_APPEND)
            .map(|start| (start, (start + STREAMS_PER_APPEND).min(records)))
            .collect();
        let results = futures::stream::iter(chunks)
            .map(|(start, end)| {
                let schema = Arc::clone(&schema);
                let store = store.store().clone();
                async move {
                    let mut rng =
                        StdRng::seed_from_u64(seed ^ ((round as u64) << 40) ^ start as u64);
                    let writes: Vec<StreamWrite> = (start..end)
                        .map(|n| {
                            let record = record_id(n);
                            let event = if round == 0 {
                                schema.created(&record, &mut rng)
                            } else {
                                schema.updated(&mut rng)
                            };
                            StreamWrite {
                                stream: stream(&record),
                                expected: if round == 0 {
                                    ExpectedVersion::NoStream
                                } else {
                                    ExpectedVersion::Exact(round as u64)
                                },
                                events: vec![new_event(&event)],
                            }
                        })
                        .collect();
                    let n = writes.len() as u64;
                    store.append_many(writes, &metadata(&mut rng)).await?;
                    anyhow::Ok(n)
                }
            })
            .buffer_unordered(LOAD_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        for r in results {
            loaded += r?;
        }
        eprintln!("  loaded {loaded} events (round {}/{rounds})", round + 1);
    }
    Ok(loaded)
}

async fn connect_projections(store: &TestStore) -> Result<Projections> {
    let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let nats = async_nats::connect(&nats_url)
        .await
        .context("connecting to NATS")?;
    let redis = redis::Client::open(redis_url)?;
    let projections =
        Projections::new(store.store().clone(), nats, redis, RuntimeConfig::default()).await?;
    projections.install().await?;
    Ok(projections)
}

/// Removes what a namespace created besides its event store schema: the read-model schema,
/// the JetStream stream and the Redis keys.
async fn cleanup(store: TestStore, projections: Option<Projections>) -> Result<()> {
    if let Some(p) = projections {
        let names = p.names().clone();
        let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        if let Ok(nats) = async_nats::connect(&nats_url).await {
            let _ = async_nats::jetstream::new(nats)
                .delete_stream(names.stream())
                .await;
        }
        let redis_url =
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        if let Ok(client) = redis::Client::open(redis_url)
            && let Ok(mut con) = client.get_multiplexed_async_connection().await
        {
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(format!("{}*", names.redis_prefix()))
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut con)
                    .await
                    .unwrap_or((0, Vec::new()));
                if !keys.is_empty() {
                    let _: redis::RedisResult<i64> =
                        redis::cmd("DEL").arg(keys).query_async(&mut con).await;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            names.rm_schema()
        )))
        .execute(store.pool())
        .await?;
    }
    store.cleanup().await?;
    Ok(())
}

async fn bench_rebuild(events: usize) -> Result<()> {
    let records = (events / EVENTS_PER_RECORD).max(1);
    let rounds = events.div_ceil(records).max(1);
    let store = TestStore::with_config(|c| c.max_connections = 8).await?;
    let result = async {
        println!(
            "## rebuild: {} records x {rounds} events = {} events (namespace {})",
            records,
            records * rounds,
            store.namespace()
        );
        let started = Instant::now();
        let loaded = load(&store, records, rounds, 7).await?;
        let load_secs = started.elapsed().as_secs_f64();
        println!(
            "load: {loaded} events in {load_secs:.1} s = {:.0} events/s (append_many, {} streams per append, {} in flight); load average {}",
            loaded as f64 / load_secs,
            STREAMS_PER_APPEND,
            LOAD_CONCURRENCY,
            load_average()
        );
        sqlx::query("VACUUM ANALYZE events")
            .execute(store.pool())
            .await?;
        let projections = connect_projections(&store).await?;
        let sql = SqlReadModels::new(store.pool().clone(), projections.names().clone());
        let mut figures = Vec::new();
        for name in ["records", "audit_log"] {
            let mut last = Instant::now();
            let report = projections
                .rebuild(name, |p| {
                    if last.elapsed() > Duration::from_secs(5) {
                        last = Instant::now();
                        eprintln!(
                            "  {name}: {}/{} events, {:.0} events/s",
                            p.done, p.total, p.rate
                        );
                    }
                })
                .await?;
            let secs = report.elapsed.as_secs_f64();
            let rate = report.events as f64 / secs;
            println!(
                "rebuild {name}: {} events in {secs:.1} s = {rate:.0} events/s (target {REBUILD_TARGET:.0}: {}); load average {}",
                report.events,
                if rate >= REBUILD_TARGET { "PASS" } else { "FAIL" },
                load_average()
            );
            let t = report.timings;
            println!(
                "  {name}: waiting for reads {:.1} s, applying {:.1} s, records out + indexes {:.1} s, switch {:.1} s",
                t.reading.as_secs_f64(),
                t.applying.as_secs_f64(),
                t.indexing.as_secs_f64(),
                t.switching.as_secs_f64()
            );
            ensure!(report.events == loaded, "{name} replayed {} of {loaded}", report.events);
            ensure!(report.parked == 0, "{name} parked {} events", report.parked);
            figures.push((name, rate));
        }
        // The rebuilt read models hold what was loaded.
        let rows = sql.count("records").await?;
        let revisions = sql.count("record_revisions").await?;
        let audit = sql.count("audit_log").await?;
        ensure!(
            rows == records as i64 && revisions == loaded as i64 && audit == loaded as i64,
            "rebuilt {rows} records, {revisions} revisions, {audit} audit rows for {records} records and {loaded} events"
        );
        anyhow::Ok(projections)
    }
    .await;
    match result {
        Ok(p) => cleanup(store, Some(p)).await,
        Err(e) => {
            let _ = cleanup(store, None).await;
            Err(e)
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn fmt_ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Writes waiting to be seen in the read model: position -> when the append returned.
type Pending = Arc<Mutex<BTreeMap<Position, Instant>>>;

async fn bench_lag(rate: usize, secs: usize) -> Result<()> {
    let store = TestStore::with_config(|c| c.max_connections = 16).await?;
    let projections = match connect_projections(&store).await {
        Ok(p) => p,
        Err(e) => {
            let _ = cleanup(store, None).await;
            return Err(e);
        }
    };
    let result = lag_run(&store, &projections, rate, secs).await;
    cleanup(store, Some(projections)).await?;
    result
}

async fn lag_run(
    store: &TestStore,
    projections: &Projections,
    rate: usize,
    secs: usize,
) -> Result<()> {
    println!(
        "## lag: {rate} commands/s for {secs} s, relay and all four projection workers in process (namespace {})",
        store.namespace()
    );
    load(store, LAG_SEED_RECORDS, 1, 11).await?;
    let nats = async_nats::connect(
        std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
    )
    .await?;
    let relay = pyairtable_projections::Relay::new(
        store.store().clone(),
        nats.clone(),
        pyairtable_projections::RelayConfig::default(),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    {
        let mut rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let _ = relay
                .run(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await;
        }));
        let p = projections.clone();
        let mut rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let _ = p
                .run(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await;
        }));
    }
    // Everything caught up with the seed before measuring.
    let head = store.store().head().await?;
    for name in pyairtable_projections::ALL_PROJECTIONS {
        projections
            .wait_for(name, &head, Duration::from_secs(120))
            .await
            .with_context(|| format!("{name} catching up with the seed"))?;
    }

    // On the bus: a plain NATS subscriber notes when each event arrives, to split the lag
    // into relay (commit to JetStream) and projection (JetStream to read model).
    let on_bus: Arc<Mutex<BTreeMap<Position, Instant>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let bus = {
        let mut sub = nats.subscribe(projections.names().all_subjects()).await?;
        let on_bus = Arc::clone(&on_bus);
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                let at = Instant::now();
                let position = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(pyairtable_projections::relay::HEADER_POSITION))
                    .and_then(|v| Position::parse(v.as_str()).ok());
                if let Some(p) = position {
                    on_bus.lock().await.entry(p).or_insert(at);
                }
            }
        })
    };
    let committed_at: Arc<Mutex<Vec<(Position, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let pending: Pending = Arc::new(Mutex::new(BTreeMap::new()));
    let wake = Arc::new(Notify::new());
    let lags: Arc<Mutex<Vec<Duration>>> = Arc::new(Mutex::new(Vec::new()));
    let appends: Arc<Mutex<Vec<Duration>>> = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // The observer: waits for the oldest pending write, then credits every write the read
    // model has reached with the moment it saw it.
    let observer = {
        let (pending, wake, lags, done) = (
            Arc::clone(&pending),
            Arc::clone(&wake),
            Arc::clone(&lags),
            Arc::clone(&done),
        );
        let projections = projections.clone();
        tokio::spawn(async move {
            loop {
                let oldest = pending.lock().await.keys().next().copied();
                let Some(oldest) = oldest else {
                    if done.load(std::sync::atomic::Ordering::SeqCst) {
                        return anyhow::Ok(());
                    }
                    let _ = tokio::time::timeout(Duration::from_millis(5), wake.notified()).await;
                    continue;
                };
                projections
                    .wait_for("records", &oldest, Duration::from_secs(60))
                    .await?;
                let seen = Instant::now();
                let reached = projections.position("records").await?;
                let mut p = pending.lock().await;
                let applied: Vec<Duration> = p
                    .range(..=reached)
                    .map(|(_, t)| seen.saturating_duration_since(*t))
                    .collect();
                p.retain(|k, _| *k > reached);
                drop(p);
                lags.lock().await.extend(applied);
            }
        })
    };

    let schema = Arc::new(Schema::new());
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let total = rate * secs;
    let mut writers = tokio::task::JoinSet::new();
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(99);
    let mut next_record = LAG_SEED_RECORDS;
    for _ in 0..total {
        ticker.tick().await;
        // Nine commands in ten edit an existing record, one creates a record.
        let (n, event) = if rng.random_bool(0.1) {
            next_record += 1;
            let n = next_record;
            (n, schema.created(&record_id(n), &mut rng))
        } else {
            (
                rng.random_range(0..LAG_SEED_RECORDS),
                schema.updated(&mut rng),
            )
        };
        let meta = metadata(&mut rng);
        let (store, pending, wake, appends, committed_at) = (
            store.store().clone(),
            Arc::clone(&pending),
            Arc::clone(&wake),
            Arc::clone(&appends),
            Arc::clone(&committed_at),
        );
        writers.spawn(async move {
            let t0 = Instant::now();
            let result = store
                .append(
                    &stream(&record_id(n)),
                    ExpectedVersion::Any,
                    vec![new_event(&event)],
                    &meta,
                )
                .await?;
            let committed = Instant::now();
            pending.lock().await.insert(result.position, committed);
            committed_at.lock().await.push((result.position, committed));
            wake.notify_one();
            appends.lock().await.push(committed - t0);
            anyhow::Ok(())
        });
        while let Some(r) = writers.try_join_next() {
            r??;
        }
    }
    while let Some(r) = writers.join_next().await {
        r??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    wake.notify_one();
    tokio::time::timeout(Duration::from_secs(60), observer)
        .await
        .context("the observer did not finish")???;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }

    bus.abort();
    let on_bus = std::mem::take(&mut *on_bus.lock().await);
    let mut bus_lags: Vec<Duration> = committed_at
        .lock()
        .await
        .iter()
        .filter_map(|(p, t)| on_bus.get(p).map(|at| at.saturating_duration_since(*t)))
        .collect();
    bus_lags.sort();
    let mut lags = std::mem::take(&mut *lags.lock().await);
    let mut appends = std::mem::take(&mut *appends.lock().await);
    ensure!(
        lags.len() == total,
        "observed {} of {total} writes",
        lags.len()
    );
    lags.sort();
    appends.sort();
    let p99 = percentile(&lags, 99.0);
    println!(
        "writes: {total} in {elapsed:.1} s = {:.0} commands/s; append latency p50 {} p99 {}",
        total as f64 / elapsed,
        fmt_ms(percentile(&appends, 50.0)),
        fmt_ms(percentile(&appends, 99.0)),
    );
    println!(
        "commit-to-bus lag (relay, {} of {total} seen): p50 {} p95 {} p99 {} max {}",
        bus_lags.len(),
        fmt_ms(percentile(&bus_lags, 50.0)),
        fmt_ms(percentile(&bus_lags, 95.0)),
        fmt_ms(percentile(&bus_lags, 99.0)),
        fmt_ms(*bus_lags.last().unwrap_or(&Duration::ZERO)),
    );
    println!(
        "commit-to-read-model lag (records): p50 {} p95 {} p99 {} max {} (target p99 < {}: {}); load average {}",
        fmt_ms(percentile(&lags, 50.0)),
        fmt_ms(percentile(&lags, 95.0)),
        fmt_ms(p99),
        fmt_ms(*lags.last().unwrap_or(&Duration::ZERO)),
        fmt_ms(LAG_P99_TARGET),
        if p99 < LAG_P99_TARGET { "PASS" } else { "FAIL" },
        load_average()
    );
    Ok(())
}

async fn machine(store_url: &str) -> Result<()> {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or_else(
            || "?".to_owned(),
            |kb| format!("{:.1} GiB", kb as f64 / 1_048_576.0),
        );
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(store_url).await?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut conn)
        .await?;
    println!(
        "machine: {cpus} CPUs, {mem} RAM, PostgreSQL {version}; load average at start {}",
        load_average()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; a filter argument selects one part.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let events = env_usize("BENCH_EVENTS", 1_000_000);
    let rate = env_usize("BENCH_RATE", 500);
    let secs = env_usize("BENCH_LAG_SECS", 20);
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| pyairtable_eventstore::testkit::DEFAULT_TEST_DATABASE_URL.to_owned());
    machine(&url).await?;
    if filter.is_empty() || "rebuild".contains(filter.as_str()) {
        bench_rebuild(events).await?;
    }
    if filter.is_empty() || "lag".contains(filter.as_str()) {
        bench_lag(rate, secs).await?;
    }
    Ok(())
}
