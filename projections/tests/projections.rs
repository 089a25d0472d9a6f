//! End-to-end tests of the relay, the projection runtime and the read models against the real
//! Postgres, NATS JetStream and Redis.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::*;
use pyairtable_eventstore::Position;
use pyairtable_projections::{
    FailurePolicy, ProjectionError, ProjectionState, RebuildPhase, RuntimeConfig,
};
use serde_json::json;

const CONVERGE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_write_reaches_every_read_model() -> Result<()> {
    let mut env = Env::new().await?;
    let (ws, table) = seed_directory(&env, 1).await?;
    write_records(&env, &table, &ws, 1, 6).await?;
    env.start_all();
    env.converge(CONVERGE).await?;

    let sql = env.sql();
    let rec = sql
        .record(&id("rec", 1))
        .await?
        .context("record 1 projected")?;
    ensure!(
        rec["cells"] == json!({ id("fld", 1): "name 1", id("fld", 2): "a" }),
        "{rec}"
    );
    ensure!(rec["version"] == json!(2));
    let deleted = sql.record(&id("rec", 3)).await?.context("record 3")?;
    ensure!(deleted["deleted"] == json!(true));
    ensure!(sql.revisions(&id("rec", 3)).await?.len() == 3);
    let total_events = 5 + 6 * 2 + 2;
    ensure!(sql.count("audit_log").await? == total_events);
    ensure!(sql.count("members").await? == 2);
    ensure!(sql.count("fields").await? == 2);
    ensure!(sql.records_in_table(&table, 100).await?.len() == 4);

    let redis = env.projections.redis_read_models();
    ensure!(redis.role(&ws, &id("usr", 1001)).await?.as_deref() == Some("editor"));
    ensure!(redis.role(&ws, &id("usr", 1)).await?.as_deref() == Some("owner"));
    ensure!(redis.role(&ws, &id("usr", 77)).await?.is_none());
    ensure!(redis.record_count(&table).await? == 4);
    let schema = redis.table_schema(&table).await?.context("schema")?;
    ensure!(schema["name"] == json!("People"), "{schema}");
    ensure!(
        schema["fields"][1]["options"]["choices"]
            .as_array()
            .map(Vec::len)
            == Some(2),
        "{schema}"
    );

    // The hot cache only answers with the latest version.
    ensure!(redis.cache_record(&id("rec", 1), 2, &rec).await?);
    ensure!(redis.cached_record(&id("rec", 1)).await?.is_some());
    env.append(
        &format!("record-{}", id("rec", 1)),
        vec![record_updated(&id("fld", 2), json!("a"), json!("b"))],
        Some(&ws),
    )
    .await?;
    env.converge(CONVERGE).await?;
    ensure!(
        redis.cached_record(&id("rec", 1)).await?.is_none(),
        "stale cache entry served"
    );
    ensure!(
        !redis.cache_record(&id("rec", 1), 2, &rec).await?,
        "older version cached"
    );

    let status = env.projections.status().await?;
    ensure!(status.len() == 4);
    for s in &status {
        ensure!(
            s.state == ProjectionState::Running && s.lag_events == 0 && s.parked == 0,
            "{s:?}"
        );
    }
    env.cleanup().await
}

#[tokio::test]
async fn read_your_writes_times_out_with_stale() -> Result<()> {
    let env = Env::new().await?;
    let written = env
        .append(
            "record-rec00000000000009",
            vec![record_created(&id("rec", 9), &id("tbl", 1), json!({}))],
            None,
        )
        .await?;
    // Nothing runs, so the projection cannot get there.
    let err = env
        .projections
        .wait_for("records", &written.position, Duration::from_millis(200))
        .await;
    ensure!(matches!(err, Err(ProjectionError::Stale { .. })), "{err:?}");
    env.cleanup().await
}

#[tokio::test]
async fn relay_dying_between_publish_and_checkpoint_delivers_once() -> Result<()> {
    let mut env = Env::new().await?;
    let (ws, table) = seed_directory(&env, 2).await?;
    write_records(&env, &table, &ws, 1, 10).await?;
    // A relay that published everything and died before its checkpoint.
    env.relay.ensure_stream().await?;
    let batch = env.test.store().read_all(&Position::START, 1000).await?;
    env.relay
        .publish_batch(Position::START, &batch.events)
        .await?;
    ensure!(env.relay.status().await?.position == Position::START);
    // A relay that committed nothing yet: the next events were never published.
    write_records(&env, &table, &ws, 11, 5).await?;
    env.start_all();
    env.converge(CONVERGE).await?;
    let total = env
        .test
        .store()
        .read_all(&Position::START, 1000)
        .await?
        .events
        .len();
    let js = async_nats::jetstream::new(env.nats.clone());
    let mut stream = js.get_stream(env.projections.names().stream()).await?;
    let messages = stream.info().await?.state.messages;
    ensure!(
        messages == total as u64,
        "{messages} messages for {total} events"
    );
    // Applied once: the counter of applied events equals the events, and Redis counts (not
    // idempotent by themselves) are exact.
    let applied: i64 = sqlx::query_scalar(
        "SELECT c.events FROM projection_checkpoints c JOIN projection_generations g
            ON g.projection = c.projection AND g.generation = c.generation WHERE c.projection = 'audit_log'",
    )
    .fetch_one(env.test.store().pool())
    .await?;
    ensure!(applied == total as i64, "applied {applied} of {total}");
    ensure!(
        env.projections
            .redis_read_models()
            .record_count(&table)
            .await?
            == 10
    );
    env.cleanup().await
}

#[tokio::test]
async fn a_standby_relay_takes_over_when_the_leader_dies() -> Result<()> {
    let mut env = Env::new().await?;
    let leader = env.start_relay();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _standby = env.start_relay();
    env.start_projection("audit_log");
    let (ws, table) = seed_directory(&env, 3).await?;
    env.projections
        .wait_for("audit_log", &env.head().await?, CONVERGE)
        .await?;
    env.tasks[leader].abort();
    write_records(&env, &table, &ws, 1, 3).await?;
    let head = env.head().await?;
    let started = std::time::Instant::now();
    env.projections
        .wait_for("audit_log", &head, Duration::from_secs(10))
        .await?;
    ensure!(started.elapsed() < Duration::from_secs(10));
    ensure!(env.sql().count("audit_log").await? == 5 + 7);
    env.cleanup().await
}

#[tokio::test]
async fn nats_down_for_ten_seconds_loses_nothing() -> Result<()> {
    let mut nats = Server::nats()?;
    let mut env = Env::with(&nats.url(), REDIS_URL, fast_runtime()).await?;
    env.start_all();
    let (ws, table) = seed_directory(&env, 4).await?;
    write_records(&env, &table, &ws, 1, 20).await?;
    nats.stop();
    let writer = {
        let store = env.test.store().clone();
        let ws = ws.clone();
        let table = table.clone();
        tokio::spawn(async move {
            let meta = pyairtable_eventstore::Metadata::new(
                pyairtable_eventstore::Actor::User { id: id("usr", 1) },
                uuid::Uuid::new_v4(),
            )
            .with_workspace(ws);
            for i in 21..61 {
                let rec = id("rec", i);
                let stream = pyairtable_eventstore::StreamId::parse(&format!("record-{rec}"))?;
                store
                    .append(
                        &stream,
                        pyairtable_eventstore::ExpectedVersion::Any,
                        vec![record_created(&rec, &table, json!({ id("fld", 1): i }))],
                        &meta,
                    )
                    .await?;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            anyhow::Ok(())
        })
    };
    tokio::time::sleep(Duration::from_secs(10)).await;
    nats.start()?;
    writer.await??;
    env.converge(Duration::from_secs(60)).await?;
    // Records 1-20 minus the six deleted ones, plus 21-60.
    ensure!(
        env.projections
            .redis_read_models()
            .record_count(&table)
            .await?
            == 14 + 40
    );
    let live = checksums(&env).await?;
    for name in pyairtable_projections::SQL_PROJECTIONS {
        env.projections.rebuild(name, |_| {}).await?;
    }
    ensure!(
        checksums(&env).await? == live,
        "live read models differ from a fresh rebuild"
    );
    env.cleanup().await
}

#[tokio::test]
async fn a_worker_aborted_mid_batch_applies_nothing_twice() -> Result<()> {
    let mut env = Env::new().await?;
    env.start_relay();
    let (ws, table) = seed_directory(&env, 5).await?;
    let writer = {
        let store = env.test.store().clone();
        let table = table.clone();
        tokio::spawn(async move {
            let meta = pyairtable_eventstore::Metadata::new(
                pyairtable_eventstore::Actor::User { id: id("usr", 1) },
                uuid::Uuid::new_v4(),
            )
            .with_workspace(ws);
            for i in 1..=300 {
                let rec = id("rec", i);
                let stream = pyairtable_eventstore::StreamId::parse(&format!("record-{rec}"))?;
                store
                    .append(
                        &stream,
                        pyairtable_eventstore::ExpectedVersion::Any,
                        vec![
                            record_created(&rec, &table, json!({})),
                            record_updated(&id("fld", 1), json!(null), json!(i)),
                        ],
                        &meta,
                    )
                    .await?;
            }
            anyhow::Ok(())
        })
    };
    for round in 0..8 {
        let a = env.start_projection("records");
        let b = env.start_projection(pyairtable_projections::REDIS_PROJECTION);
        tokio::time::sleep(Duration::from_millis(150 + 40 * round)).await;
        env.tasks[a].abort();
        env.tasks[b].abort();
    }
    writer.await??;
    env.start_projection("records");
    env.start_projection(pyairtable_projections::REDIS_PROJECTION);
    let head = env.head().await?;
    env.projections.wait_for("records", &head, CONVERGE).await?;
    env.projections
        .wait_for(pyairtable_projections::REDIS_PROJECTION, &head, CONVERGE)
        .await?;
    let total = 5 + 600;
    let applied: i64 = sqlx::query_scalar(
        "SELECT c.events FROM projection_checkpoints c JOIN projection_generations g
            ON g.projection = c.projection AND g.generation = c.generation WHERE c.projection = 'records'",
    )
    .fetch_one(env.test.store().pool())
    .await?;
    ensure!(
        applied == total,
        "records applied {applied} events for {total}"
    );
    ensure!(
        env.projections
            .redis_read_models()
            .record_count(&table)
            .await?
            == 300
    );
    ensure!(env.sql().count("record_revisions").await? == 600);
    env.cleanup().await
}

#[tokio::test]
async fn a_flushed_redis_is_rebuilt_and_answers_again() -> Result<()> {
    let redis_server = Server::redis()?;
    let mut env = Env::with(NATS_URL, &redis_server.url(), fast_runtime()).await?;
    env.start_all();
    let (ws, table) = seed_directory(&env, 6).await?;
    write_records(&env, &table, &ws, 1, 9).await?;
    env.converge(CONVERGE).await?;
    let redis = env.projections.redis_read_models();
    ensure!(redis.record_count(&table).await? == 6);
    let mut con = env.redis.get_multiplexed_async_connection().await?;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut con).await?;
    // The next event makes the worker notice and rebuild from the event store.
    write_records(&env, &table, &ws, 10, 3).await?;
    env.converge(CONVERGE).await?;
    ensure!(redis.record_count(&table).await? == 8);
    ensure!(redis.role(&ws, &id("usr", 1006)).await?.as_deref() == Some("editor"));
    ensure!(redis.table_schema(&table).await?.is_some());
    env.cleanup().await
}

#[tokio::test]
async fn a_rebuild_during_writes_equals_a_fresh_one_and_no_query_fails() -> Result<()> {
    let mut env = Env::new().await?;
    env.start_all();
    let (ws, table) = seed_directory(&env, 7).await?;
    write_records(&env, &table, &ws, 1, 200).await?;
    env.converge(CONVERGE).await?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let sql = env.sql();
        let redis = env.projections.redis_read_models();
        let stop = stop.clone();
        let table = table.clone();
        tokio::spawn(async move {
            let mut queries = 0_u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                sql.records_in_table(&table, 10).await?;
                sql.count("record_revisions").await?;
                redis.record_count(&table).await?;
                queries += 3;
            }
            anyhow::Ok(queries)
        })
    };
    let writer = {
        let store = env.test.store().clone();
        let table = table.clone();
        let ws = ws.clone();
        tokio::spawn(async move {
            let meta = pyairtable_eventstore::Metadata::new(
                pyairtable_eventstore::Actor::User { id: id("usr", 1) },
                uuid::Uuid::new_v4(),
            )
            .with_workspace(ws);
            for i in 201..=400 {
                let rec = id("rec", i);
                let stream = pyairtable_eventstore::StreamId::parse(&format!("record-{rec}"))?;
                store
                    .append(
                        &stream,
                        pyairtable_eventstore::ExpectedVersion::Any,
                        vec![record_created(&rec, &table, json!({}))],
                        &meta,
                    )
                    .await?;
            }
            anyhow::Ok(())
        })
    };
    let mut phases = Vec::new();
    let report = env
        .projections
        .rebuild("records", |p| phases.push(p.phase))
        .await?;
    let redis_report = env
        .projections
        .rebuild(pyairtable_projections::REDIS_PROJECTION, |_| {})
        .await?;
    writer.await??;
    env.converge(CONVERGE).await?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let queries = reader.await??;
    ensure!(queries > 0);
    ensure!(
        report.generation == 2 && redis_report.generation >= 2,
        "{report:?} {redis_report:?}"
    );
    ensure!(
        phases.first() == Some(&RebuildPhase::Replaying)
            && phases.last() == Some(&RebuildPhase::Done)
    );
    let after_live = checksums(&env).await?;
    env.projections.rebuild("records", |_| {}).await?;
    ensure!(
        checksums(&env).await? == after_live,
        "rebuild during writes differs from a fresh one"
    );
    ensure!(
        env.projections
            .redis_read_models()
            .record_count(&table)
            .await?
            == 200 - 66 + 200
    );
    env.cleanup().await
}

#[tokio::test]
async fn poison_events_are_parked_skipped_or_halt_and_retry() -> Result<()> {
    let mut config = fast_runtime();
    config
        .policies
        .insert("directory".to_owned(), FailurePolicy::Halt);
    let mut env = Env::with(NATS_URL, REDIS_URL, config).await?;
    env.start_all();
    // A RecordCreated without a table id, and a WorkspaceCreated without an owner.
    env.append(
        "record-rec00000000000001",
        vec![ev(
            "RecordCreated",
            json!({"id": id("rec", 1), "cells": {}}),
        )],
        None,
    )
    .await?;
    env.append(
        "workspace-wsp00000000000001",
        vec![ev(
            "WorkspaceCreated",
            json!({"id": id("wsp", 1), "name": "x"}),
        )],
        None,
    )
    .await?;
    env.append(
        "record-rec00000000000002",
        vec![record_created(&id("rec", 2), &id("tbl", 1), json!({}))],
        None,
    )
    .await?;
    let head = env.head().await?;
    env.projections.wait_for("records", &head, CONVERGE).await?;
    env.projections
        .wait_for("audit_log", &head, CONVERGE)
        .await?;
    ensure!(
        env.sql().record(&id("rec", 2)).await?.is_some(),
        "skip-and-continue went on"
    );
    let mut halted = None;
    for _ in 0..100 {
        let s = env.projections.status_of("directory").await?;
        if s.state == ProjectionState::Halted {
            halted = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let halted = halted.context("directory never halted")?;
    ensure!(halted.parked == 1 && halted.lag_events >= 1, "{halted:?}");
    ensure!(env.projections.status_of("records").await?.parked == 1);
    // Still failing: retry reports it and the projection stays halted.
    let (resolved, failing) = env.projections.retry_parked("directory").await?;
    ensure!(resolved == 0 && failing == 1);
    ensure!(env.projections.status_of("directory").await?.state == ProjectionState::Halted);
    // Fix the data the way an operator would (here: by editing the parked copy) and retry.
    sqlx::query("UPDATE parked_events SET event = jsonb_set(event, '{payload,owner}', '\"usr00000000000001\"') WHERE projection = 'directory'")
        .execute(env.test.store().pool())
        .await?;
    let (resolved, failing) = env.projections.retry_parked("directory").await?;
    ensure!(resolved == 1 && failing == 0);
    env.projections
        .wait_for("directory", &head, CONVERGE)
        .await?;
    let s = env.projections.status_of("directory").await?;
    ensure!(
        s.state == ProjectionState::Running && s.parked == 0,
        "{s:?}"
    );
    ensure!(env.sql().count("members").await? == 1);
    let unknown = env.projections.rebuild("nope", |_| {}).await;
    ensure!(matches!(
        unknown,
        Err(ProjectionError::UnknownProjection(_))
    ));
    let _ = RuntimeConfig::default();
    env.cleanup().await
}

/// A bulk rebuild of `records` (records folded in memory across batches, spilled to the
/// table when the cache is full, revisions copied, indexes built at the end) gives the same
/// tables as the live workers, and as a rebuild through the live batched path.
#[tokio::test]
async fn a_bulk_rebuild_equals_the_live_tables_and_a_classic_rebuild() -> Result<()> {
    let config = RuntimeConfig {
        // Small batches and a tiny cache: records spill and are read back many times.
        rebuild_batch: 7,
        rebuild_cache_rows: 3,
        ..fast_runtime()
    };
    let mut env = Env::with(NATS_URL, REDIS_URL, config).await?;
    env.start_all();
    let (ws, table) = seed_directory(&env, 11).await?;
    write_records(&env, &table, &ws, 1, 40).await?;
    // A second round, so a record's events are spread over many batches.
    for i in 1..=40 {
        let stream = format!("record-{}", id("rec", i));
        let mut events = vec![record_updated(
            &id("fld", 1),
            json!("x"),
            json!(format!("again {i}")),
        )];
        if i % 4 == 0 {
            events.push(ev(
                "LinksChanged",
                json!({"field_id": id("fld", 2), "added": [id("rec", i + 1)], "removed": [], "by": "usr00000000000001", "at": "2026-01-01T00:00:03Z"}),
            ));
        }
        if i % 5 == 0 {
            events.push(ev(
                "RecordCommentAdded",
                json!({"comment_id": id("com", i), "text": "hi", "by": "usr00000000000001", "at": "2026-01-01T00:00:04Z"}),
            ));
        }
        env.append(&stream, events, Some(&ws)).await?;
    }
    // One event no projection can read: parked by the live worker and by the rebuild alike.
    env.append(
        &format!("record-{}", id("rec", 99)),
        vec![ev(
            "RecordCreated",
            json!({"id": id("rec", 99), "table_id": table, "cells": "not an object"}),
        )],
        Some(&ws),
    )
    .await?;
    env.converge(CONVERGE).await?;
    let live = checksums(&env).await?;
    ensure!(env.sql().count("records").await? == 40);

    let index_count = |table: String| {
        let pool = env.test.store().pool().clone();
        let schema = env.projections.names().rm_schema();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND tablename = $2",
            )
            .bind(schema)
            .bind(table)
            .fetch_one(&pool)
            .await
        }
    };
    let live_generation: i32 = sqlx::query_scalar(
        "SELECT generation FROM projection_generations WHERE projection = 'records'",
    )
    .fetch_one(env.test.store().pool())
    .await?;
    let live_indexes = index_count(format!("records_g{live_generation}")).await?;
    let report = env.projections.rebuild("records", |_| {}).await?;
    ensure!(report.parked == 1, "{report:?}");
    ensure!(
        checksums(&env).await? == live,
        "the bulk rebuild differs from the live tables"
    );
    // The revisions table got its key and indexes back.
    let indexes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND tablename = $2",
    )
    .bind(env.projections.names().rm_schema())
    .bind(format!("record_revisions_g{}", report.generation))
    .fetch_one(env.test.store().pool())
    .await?;
    ensure!(
        indexes == 2,
        "record_revisions has {indexes} indexes after the rebuild"
    );
    // The records' indexes, built after their copy, and fresh statistics of the key
    // columns of both tables (not of the JSON documents, left to autovacuum).
    let indexes = index_count(format!("records_g{}", report.generation)).await?;
    ensure!(
        indexes == live_indexes && indexes >= 4,
        "records has {indexes} indexes after the rebuild, {live_indexes} before"
    );
    for (table, column, analyzed) in [
        ("records", "record_id", true),
        ("records", "cells", false),
        ("record_revisions", "record_id", true),
        ("record_revisions", "changes", false),
    ] {
        let stats: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stats WHERE schemaname = $1 AND tablename = $2 AND attname = $3",
        )
        .bind(env.projections.names().rm_schema())
        .bind(format!("{table}_g{}", report.generation))
        .bind(column)
        .fetch_one(env.test.store().pool())
        .await?;
        ensure!(
            (stats == 1) == analyzed,
            "statistics of {table}.{column} after the rebuild: {stats}"
        );
    }

    // The same log rebuilt through the live batched path, by a runtime configured so.
    let classic = pyairtable_projections::Projections::new(
        env.test.store().clone(),
        env.nats.clone(),
        env.redis.clone(),
        RuntimeConfig {
            bulk_rebuild: false,
            ..fast_runtime()
        },
    )
    .await?;
    let report = classic.rebuild("records", |_| {}).await?;
    ensure!(report.parked == 1, "{report:?}");
    ensure!(
        checksums(&env).await? == live,
        "the classic rebuild differs from the live tables"
    );
    env.cleanup().await
}
