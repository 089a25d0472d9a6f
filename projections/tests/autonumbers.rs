//! Auto numbers in the `records` read model (docs/adr/0009-auto-numbers.md): 1, 2, 3, ... per
//! table in the order the creations appear in the feed, never handed out twice, the same after
//! a bulk or a classic rebuild, safe under concurrent writers, and given to the records of a
//! deployment that existed before migration 0060.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::*;
use pyairtable_eventstore::{
    Actor, ExpectedVersion, Metadata, NewEvent, Position, RecordedEvent, StreamId,
};
use pyairtable_projections::sql_models::{apply_sql, apply_sql_batch};
use pyairtable_projections::{Projections, RuntimeConfig};
use serde_json::json;
use sqlx::AssertSqlSafe;

const CONVERGE: Duration = Duration::from_secs(30);

/// A creation whose `at` runs backwards with `n`, so neither the creation time nor the record
/// id sorts the records the way the feed does.
fn created(rec: &str, table: &str, n: u32) -> NewEvent {
    ev(
        "RecordCreated",
        json!({
            "id": rec, "table_id": table, "cells": { id("fld", 1): rec },
            "by": "usr00000000000001",
            "at": format!("2026-01-01T00:{:02}:00Z", 59 - n),
        }),
    )
}

async fn append(env: &Env, rec: usize, events: Vec<NewEvent>) -> Result<()> {
    let stream = format!("record-{}", id("rec", rec));
    env.append(&stream, events, Some("wsp00000000000001"))
        .await?;
    Ok(())
}

fn restored() -> NewEvent {
    ev(
        "RecordRestored",
        json!({"by": "usr00000000000001", "at": "2026-01-01T01:00:00Z"}),
    )
}

/// (record id, number, deleted) of a table's records, by number, as the `records` view shows
/// them.
async fn numbers(env: &Env, table: &str) -> Result<Vec<(String, i64, bool)>> {
    let sql = format!(
        "SELECT record_id, autonumber, deleted FROM {} WHERE table_id = $1 ORDER BY autonumber",
        env.sql().view("records")
    );
    Ok(sqlx::query_as(AssertSqlSafe(sql))
        .bind(table)
        .fetch_all(env.test.store().pool())
        .await?)
}

/// Rows as [`numbers`] gives them, from (record number, auto number, deleted).
fn expect(rows: &[(usize, i64, bool)]) -> Vec<(String, i64, bool)> {
    rows.iter()
        .map(|(r, n, d)| (id("rec", *r), *n, *d))
        .collect()
}

#[tokio::test]
async fn numbers_follow_the_feed_per_table_are_never_reused_and_survive_rebuilds() -> Result<()> {
    let config = RuntimeConfig {
        // Small rebuild batches and a tiny cache: the bulk fold writes records out and reads
        // them back, so numbers go through every path of it.
        rebuild_batch: 3,
        rebuild_cache_rows: 2,
        ..fast_runtime()
    };
    let mut env = Env::with(NATS_URL, REDIS_URL, config).await?;
    let (a, b) = (id("tbl", 1), id("tbl", 2));
    // Written before any worker runs, so the first live batch creates several records in two
    // tables at once.
    append(&env, 30, vec![created(&id("rec", 30), &a, 1)]).await?;
    append(&env, 10, vec![created(&id("rec", 10), &b, 2)]).await?;
    append(&env, 5, vec![created(&id("rec", 5), &a, 3)]).await?;
    append(&env, 20, vec![created(&id("rec", 20), &a, 4)]).await?;
    append(&env, 40, vec![created(&id("rec", 40), &b, 5)]).await?;
    append(&env, 5, vec![record_deleted()]).await?;
    // The highest number of table B goes: a number derived from the records not deleted
    // would be given again.
    append(&env, 40, vec![record_deleted()]).await?;
    env.start_all();
    env.converge(CONVERGE).await?;
    ensure!(
        numbers(&env, &a).await? == expect(&[(30, 1, false), (5, 2, true), (20, 3, false)]),
        "table A after the first batch: {:?}",
        numbers(&env, &a).await?
    );
    ensure!(
        numbers(&env, &b).await? == expect(&[(10, 1, false), (40, 2, true)]),
        "table B after the first batch: {:?}",
        numbers(&env, &b).await?
    );

    // One by one now, through the running workers.
    append(&env, 7, vec![created(&id("rec", 7), &a, 6)]).await?;
    append(&env, 41, vec![created(&id("rec", 41), &b, 7)]).await?;
    append(&env, 5, vec![restored()]).await?;
    env.converge(CONVERGE).await?;
    let expected_a = expect(&[(30, 1, false), (5, 2, false), (20, 3, false), (7, 4, false)]);
    let expected_b = expect(&[(10, 1, false), (40, 2, true), (41, 3, false)]);
    ensure!(
        numbers(&env, &a).await? == expected_a,
        "table A: {:?}",
        numbers(&env, &a).await?
    );
    ensure!(
        numbers(&env, &b).await? == expected_b,
        "table B: {:?}",
        numbers(&env, &b).await?
    );
    let sql = env.sql();
    ensure!(sql.last_autonumber(&a).await? == 4);
    ensure!(sql.last_autonumber(&b).await? == 3);
    ensure!(sql.last_autonumber(&id("tbl", 9)).await? == 0);
    let record = sql.record(&id("rec", 41)).await?.context("record 41")?;
    ensure!(record["autonumber"] == json!(3), "{record}");
    let listed: Vec<serde_json::Value> = sql
        .records_in_table(&b, 10)
        .await?
        .into_iter()
        .map(|r| r["autonumber"].clone())
        .collect();
    ensure!(listed == vec![json!(1), json!(3)], "{listed:?}");

    let live = checksums(&env).await?;
    let report = env.projections.rebuild("records", |_| {}).await?;
    ensure!(report.parked == 0, "{report:?}");
    ensure!(
        numbers(&env, &a).await? == expected_a && numbers(&env, &b).await? == expected_b,
        "the bulk rebuild numbered differently"
    );
    ensure!(
        checksums(&env).await? == live,
        "the bulk rebuild differs from the live tables"
    );

    // Through the live batched path, as a rebuild without the bulk fold replays.
    let classic = Projections::new(
        env.test.store().clone(),
        env.nats.clone(),
        env.redis.clone(),
        RuntimeConfig {
            bulk_rebuild: false,
            rebuild_batch: 2,
            ..fast_runtime()
        },
    )
    .await?;
    classic.rebuild("records", |_| {}).await?;
    ensure!(
        checksums(&env).await? == live,
        "the classic rebuild differs from the live tables"
    );

    // The workers go on from the rebuilt counters.
    append(&env, 8, vec![created(&id("rec", 8), &a, 8)]).await?;
    env.converge(CONVERGE).await?;
    let record = sql.record(&id("rec", 8)).await?.context("record 8")?;
    ensure!(record["autonumber"] == json!(5), "{record}");
    env.cleanup().await
}

/// Reads the whole feed once every one of `count` events is visible (other tests' open
/// transactions hold the feed's horizon back for a moment).
async fn read_feed(env: &Env, count: usize) -> Result<Vec<RecordedEvent>> {
    let deadline = std::time::Instant::now() + CONVERGE;
    loop {
        let batch = env.test.store().read_all(&Position::START, 1000).await?;
        if batch.events.len() >= count {
            return Ok(batch.events);
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "only {} of {count} events became visible",
            batch.events.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two writers of one generation at once, one batch by batch and one event by event (the
/// runtime never does this: a batch holds its checkpoint row), still never give a number
/// twice, and leave no gap when every event creates a record.
#[tokio::test]
async fn concurrent_writers_never_give_a_number_twice() -> Result<()> {
    let env = Env::new().await?;
    let tables = [id("tbl", 1), id("tbl", 2)];
    let total = 120;
    for i in 0..total {
        let rec = id("rec", i);
        env.append(
            &format!("record-{rec}"),
            vec![record_created(&rec, &tables[i % 3 / 2], json!({}))],
            None,
        )
        .await?;
    }
    let events = read_feed(&env, total).await?;
    let names = env.projections.names().clone();
    let pool = env.test.store().pool();
    sqlx::query("SELECT rm_create_generation($1, 'records', 7)")
        .bind(names.rm_schema())
        .execute(pool)
        .await?;
    let (mut odd, mut even) = (Vec::new(), Vec::new());
    for (i, e) in events.into_iter().enumerate() {
        if i % 2 == 1 {
            odd.push(e);
        } else {
            even.push(e);
        }
    }
    let batches = async {
        for chunk in even.chunks(4) {
            let mut tx = pool.begin().await?;
            apply_sql_batch("records", &mut tx, &names, 7, chunk).await?;
            // Hold the transaction a moment, so the other writer has to wait on the counters.
            tokio::time::sleep(Duration::from_millis(2)).await;
            tx.commit().await?;
        }
        anyhow::Ok(())
    };
    let singles = async {
        for e in &odd {
            let mut tx = pool.begin().await?;
            apply_sql("records", &mut tx, &names, 7, e).await?;
            tx.commit().await?;
        }
        anyhow::Ok(())
    };
    let (b, s) = tokio::join!(batches, singles);
    b.context("the batch writer")?;
    s.context("the event writer")?;

    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT table_id, count(*), count(DISTINCT autonumber), max(autonumber) FROM {}
          GROUP BY table_id ORDER BY table_id",
        names.rm_table("records", 7)
    )))
    .fetch_all(pool)
    .await?;
    let counters: BTreeMap<String, i64> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT table_id, last FROM {}",
        names.rm_table("record_autonumbers", 7)
    )))
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    ensure!(rows.len() == 2, "{rows:?}");
    for (table, count, distinct, max) in &rows {
        ensure!(
            count == distinct && count == max && counters.get(table) == Some(max),
            "table {table}: {count} records, {distinct} numbers, highest {max}, counter {:?}",
            counters.get(table)
        );
    }
    ensure!(rows.iter().map(|r| r.1).sum::<i64>() == total as i64);
    env.cleanup().await
}

/// A deployment migrated before 0060, whose `records` generation was filled by the old
/// projection (rows without numbers), gets numbers in the order of the creations in the feed,
/// counters that go on from them, and a view that shows them; a rebuild then agrees.
#[tokio::test]
async fn migration_0060_numbers_the_records_of_an_existing_deployment() -> Result<()> {
    let old = TestStore::migrated_to(50).await?;
    let mut env = Env::on_store(old, NATS_URL, REDIS_URL, fast_runtime()).await?;
    let (a, b) = (id("tbl", 1), id("tbl", 2));
    let meta = Metadata::new(Actor::User { id: id("usr", 1) }, uuid::Uuid::new_v4());
    let store = env.test.store().clone();
    for (n, (rec, table)) in [(9, &a), (3, &b), (6, &a), (1, &a), (4, &b)]
        .into_iter()
        .enumerate()
    {
        let rec = id("rec", rec);
        let mut events = vec![created(&rec, table, u32::try_from(n)?)];
        if rec == id("rec", 6) {
            events.push(record_deleted());
        }
        store
            .append(
                &StreamId::parse(&format!("record-{rec}"))?,
                ExpectedVersion::Any,
                events,
                &meta,
            )
            .await?;
    }
    // What the projection before 0060 left: a row per created record (no number, created at
    // the payload's time, which runs against the feed here), and its checkpoint at the head.
    let names = env.projections.names().clone();
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (record_id, stream_id, table_id, cells, version, deleted, created_at,
                         updated_at, position)
         SELECT c.payload ->> 'id', c.stream_id, c.payload ->> 'table_id', '{{}}',
                max(e.version), bool_or(e.event_type = 'RecordDeleted'),
                (c.payload ->> 'at')::timestamptz, max(e.recorded_at), 'before 0060'
           FROM events c JOIN events e ON e.stream_id = c.stream_id
          WHERE c.event_type = 'RecordCreated'
          GROUP BY c.stream_id, c.payload ->> 'id', c.payload ->> 'table_id', c.payload ->> 'at'",
        names.rm_table("records", 1)
    )))
    .execute(store.pool())
    .await?;
    let head = env.head().await?;
    sqlx::query("UPDATE projection_checkpoints SET position = $1 WHERE projection = 'records'")
        .bind(head.to_token())
        .execute(store.pool())
        .await?;

    store.migrate().await?;
    let expected_a = expect(&[(9, 1, false), (6, 2, true), (1, 3, false)]);
    let expected_b = expect(&[(3, 1, false), (4, 2, false)]);
    ensure!(
        numbers(&env, &a).await? == expected_a && numbers(&env, &b).await? == expected_b,
        "migrated: A {:?}, B {:?}",
        numbers(&env, &a).await?,
        numbers(&env, &b).await?
    );
    let sql = env.sql();
    ensure!(sql.last_autonumber(&a).await? == 3 && sql.last_autonumber(&b).await? == 2);
    let record = sql.record(&id("rec", 4)).await?.context("record 4")?;
    ensure!(
        record["autonumber"] == json!(2),
        "the view hides the number: {record}"
    );

    // The live projection goes on from the migrated counters.
    env.start_all();
    env.append(
        &format!("record-{}", id("rec", 2)),
        vec![created(&id("rec", 2), &b, 10)],
        None,
    )
    .await?;
    env.converge(CONVERGE).await?;
    let mut expected_b = expected_b;
    expected_b.push((id("rec", 2), 3, false));
    ensure!(
        numbers(&env, &b).await? == expected_b,
        "after the migration: {:?}",
        numbers(&env, &b).await?
    );

    // The numbers a rebuild gives from the log are the migrated ones.
    let counters = sql.checksum("record_autonumbers").await?;
    env.projections.rebuild("records", |_| {}).await?;
    ensure!(
        numbers(&env, &a).await? == expected_a && numbers(&env, &b).await? == expected_b,
        "rebuilt: A {:?}, B {:?}",
        numbers(&env, &a).await?,
        numbers(&env, &b).await?
    );
    ensure!(sql.checksum("record_autonumbers").await? == counters);
    env.cleanup().await
}
