//! Append benchmark (issue #2 item 7): 8 writers, two shapes.
//!
//! - A: one ~200-byte event per append into fresh streams (`NoStream`), 20 000 events.
//! - B: batches of 10 events into existing streams with the exact expected version,
//!   100 000 events.
//!
//! Prints events/s and per-append p50/p99, plus one `RESULT` line per shape for
//! `scripts/bench-append.sh`, which runs pgbench on the same rows next to it. When the server
//! runs on this machine and its data directory is readable (Linux), also the CPU time per
//! append of the server and of this process during the timed part, read from `/proc`.
//!
//! `cargo bench -p pyairtable-eventstore --bench append`. Environment: `BENCH_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/pyairtable_bench`), `BENCH_SHAPES` (`AB`),
//! `BENCH_WRITERS` (8), `BENCH_A_EVENTS` (20000), `BENCH_B_EVENTS` (100000),
//! `BENCH_B_STREAMS_PER_WRITER` (100).

use std::time::{Duration, Instant};

/// The allocator of the `pyairtable` binary, so the writer costs what the platform's would
/// (ADR 0012).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, bail};
use pyairtable_eventstore::testkit::TestStore;
use pyairtable_eventstore::{
    Actor, EventStore, ExpectedVersion, Metadata, NewEvent, StreamId, StreamWrite,
};
use serde_json::json;
use uuid::Uuid;

const BATCH_B: usize = 10;

fn env_usize(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name} must be a number")),
        Err(_) => Ok(default),
    }
}

/// A payload of about 200 bytes, shaped like a record's cell changes.
fn payload(n: usize) -> serde_json::Value {
    json!({
        "record_id": format!("rec{n:014}"),
        "table_id": "tblBenchmark00001",
        "fields": {
            "fldName0000000001": "Benchmark row with a modest text value",
            "fldCount000000002": n,
            "fldDone0000000003": n.is_multiple_of(2),
            "fldNote0000000004": "lorem ipsum dolor sit amet",
        }
    })
}

fn metadata() -> Metadata {
    Metadata::new(
        Actor::User {
            id: "usrBenchmark00001".into(),
        },
        Uuid::now_v7(),
    )
    .with_workspace("wspBenchmark00001")
}

/// An event as the platform makes them: `NewEvent::new` gives it a time-ordered (v7) id, as
/// the command runner does, so the event-id index grows at its right edge.
fn event(n: usize) -> NewEvent {
    NewEvent::new("RecordUpdated", payload(n))
}

struct Outcome {
    events: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    cpu: Option<CpuUse>,
}

/// CPU seconds used during a shape, by this process and by the PostgreSQL server, when the
/// server runs on this machine and its processes can be read in `/proc` (Linux).
#[derive(Clone, Copy)]
struct CpuUse {
    client: f64,
    server: f64,
}

/// Clock ticks per second of `/proc/*/stat` times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU time so far, in ticks: `(this process, the server)`. The server's is the postmaster's
/// own, its exited backends' (reaped, so counted in its children's times) and its live
/// children's; `None` when any of it cannot be read.
fn cpu_ticks(postmaster: Option<u32>) -> Option<(u64, u64)> {
    let fields = |pid: &str| -> Option<Vec<u64>> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = &stat[stat.rfind(')')? + 2..];
        // utime, stime, cutime, cstime are fields 14 to 17; `rest` starts at field 3.
        rest.split(' ')
            .skip(11)
            .take(4)
            .map(|v| v.parse().ok())
            .collect()
    };
    let own = fields("self")?;
    let pm = postmaster?.to_string();
    let mut server = fields(&pm)?.iter().sum::<u64>();
    let children = std::fs::read_to_string(format!("/proc/{pm}/task/{pm}/children")).ok()?;
    for child in children.split_whitespace() {
        // A backend that exits meanwhile is counted in the postmaster's children's times.
        if let Some(f) = fields(child) {
            server += f[0] + f[1];
        }
    }
    Some((own[0] + own[1], server))
}

/// The CPU used since `before` (from [`cpu_ticks`]).
fn cpu_since(before: Option<(u64, u64)>, postmaster: Option<u32>) -> Option<CpuUse> {
    before.zip(cpu_ticks(postmaster)).map(|(b, a)| CpuUse {
        client: a.0.saturating_sub(b.0) as f64 / TICKS_PER_SEC,
        server: a.1.saturating_sub(b.1) as f64 / TICKS_PER_SEC,
    })
}

/// The server's postmaster, when it runs here and its data directory can be read.
async fn postmaster_pid(store: &EventStore) -> Option<u32> {
    let dir: String = sqlx::query_scalar("SHOW data_directory")
        .fetch_one(store.pool())
        .await
        .ok()?;
    let pid = std::fs::read_to_string(format!("{dir}/postmaster.pid")).ok()?;
    pid.lines().next()?.trim().parse().ok()
}

fn report(shape: &str, outcome: &mut Outcome) {
    outcome.latencies.sort_unstable();
    let pick = |q: f64| {
        let len = outcome.latencies.len();
        if len == 0 {
            return 0.0;
        }
        // Nearest-rank percentile.
        let rank = ((q * len as f64).ceil() as usize).clamp(1, len);
        outcome.latencies[rank - 1].as_secs_f64() * 1000.0
    };
    let rate = outcome.events as f64 / outcome.elapsed.as_secs_f64();
    let (p50, p99) = (pick(0.50), pick(0.99));
    println!(
        "shape {shape}: {} events in {} appends, {:.2} s, {rate:.0} events/s, p50 {p50:.2} ms, p99 {p99:.2} ms per append",
        outcome.events,
        outcome.latencies.len(),
        outcome.elapsed.as_secs_f64()
    );
    let appends = outcome.latencies.len().max(1) as f64;
    let (server_us, client_us) = match outcome.cpu {
        Some(cpu) => {
            println!(
                "shape {shape}: CPU per append: server {:.0} µs, this process {:.0} µs",
                cpu.server * 1e6 / appends,
                cpu.client * 1e6 / appends
            );
            (
                format!("{:.0}", cpu.server * 1e6 / appends),
                format!("{:.0}", cpu.client * 1e6 / appends),
            )
        }
        None => ("-".to_owned(), "-".to_owned()),
    };
    println!(
        "RESULT shape={shape} events={} events_per_sec={rate:.0} p50_ms={p50:.2} p99_ms={p99:.2} server_us={server_us} client_us={client_us}",
        outcome.events
    );
}

/// Shape A: every append creates a new stream with one event.
async fn shape_a(
    store: &EventStore,
    writers: usize,
    events: usize,
    postmaster: Option<u32>,
) -> anyhow::Result<Outcome> {
    let per_writer = events / writers;
    let cpu = cpu_ticks(postmaster);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(writers);
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let meta = metadata();
            let mut latencies = Vec::with_capacity(per_writer);
            for i in 0..per_writer {
                let stream = StreamId::parse(&format!("bench-a-{w}-{i}"))?;
                let t = Instant::now();
                store
                    .append(&stream, ExpectedVersion::NoStream, vec![event(i)], &meta)
                    .await?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(events);
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(Outcome {
        events: per_writer * writers,
        elapsed: started.elapsed(),
        latencies,
        cpu: cpu_since(cpu, postmaster),
    })
}

/// Shape B: batches of 10 into streams that exist, with the exact expected version.
async fn shape_b(
    store: &EventStore,
    writers: usize,
    events: usize,
    streams_per_writer: usize,
    postmaster: Option<u32>,
) -> anyhow::Result<Outcome> {
    // Seed (untimed): each writer owns its streams, each starting with one event.
    let meta = metadata();
    let mut owned: Vec<Vec<(StreamId, u64)>> = Vec::with_capacity(writers);
    for w in 0..writers {
        let mut streams = Vec::with_capacity(streams_per_writer);
        let mut seeds = Vec::with_capacity(streams_per_writer);
        for s in 0..streams_per_writer {
            let stream = StreamId::parse(&format!("bench-b-{w}-{s}"))?;
            seeds.push(StreamWrite {
                stream: stream.clone(),
                expected: ExpectedVersion::NoStream,
                events: vec![event(s)],
            });
            streams.push((stream, 1));
        }
        store.append_many(seeds, &meta).await?;
        owned.push(streams);
    }

    let appends_per_writer = events / BATCH_B / writers;
    let cpu = cpu_ticks(postmaster);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(writers);
    for mut streams in owned {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let meta = metadata();
            let mut latencies = Vec::with_capacity(appends_per_writer);
            for i in 0..appends_per_writer {
                let slot = i % streams.len();
                let (stream, version) = &mut streams[slot];
                let batch = (0..BATCH_B).map(|k| event(i * BATCH_B + k)).collect();
                let t = Instant::now();
                let result = store
                    .append(stream, ExpectedVersion::Exact(*version), batch, &meta)
                    .await?;
                latencies.push(t.elapsed());
                *version = result.last_version;
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(events / BATCH_B);
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(Outcome {
        events: appends_per_writer * writers * BATCH_B,
        elapsed: started.elapsed(),
        latencies,
        cpu: cpu_since(cpu, postmaster),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/pyairtable_bench".into());
    let writers = env_usize("BENCH_WRITERS", 8)?;
    let a_events = env_usize("BENCH_A_EVENTS", 20_000)?;
    let b_events = env_usize("BENCH_B_EVENTS", 100_000)?;
    let b_streams = env_usize("BENCH_B_STREAMS_PER_WRITER", 100)?;
    if writers == 0 || b_streams == 0 {
        bail!("BENCH_WRITERS and BENCH_B_STREAMS_PER_WRITER must be positive");
    }

    let test = TestStore::in_database(url, |config| {
        config.max_connections = u32::try_from(writers + 2).unwrap_or(u32::MAX);
    })
    .await?;
    println!(
        "event store append benchmark: {writers} writers, namespace {}",
        test.namespace()
    );

    let postmaster = postmaster_pid(&test).await;
    let shapes = std::env::var("BENCH_SHAPES").unwrap_or_else(|_| "AB".into());
    let mut expected = 0;
    if shapes.contains('A') {
        let mut a = shape_a(&test, writers, a_events, postmaster).await?;
        report("A", &mut a);
        expected += a.events;
    }
    if shapes.contains('B') {
        sqlx::query("CHECKPOINT").execute(test.pool()).await?;
        let mut b = shape_b(&test, writers, b_events, b_streams, postmaster).await?;
        report("B", &mut b);
        expected += b.events + writers * b_streams;
    }

    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(test.pool())
        .await?;
    if usize::try_from(stored)? != expected {
        bail!("expected {expected} stored events, found {stored}");
    }
    test.cleanup().await?;
    Ok(())
}
