//! The `records` projection applied a batch at a time must leave exactly the tables that
//! applying the same events one by one leaves (the per-event path is the reference), for
//! every way of cutting the feed into batches, including redelivered ones. The events are the
//! domain's own, serialised as the command layer stores them.

use std::collections::BTreeMap;

use anyhow::{Context, Result, ensure};
use chrono::{DateTime, TimeZone, Utc};
use pyairtable_domain::aggregate::DomainEvent;
use pyairtable_domain::ids::{CommentId, FieldId, RecordId, TableId, UserId};
use pyairtable_domain::record::{CellChange, RecordEvent};
use pyairtable_eventstore::testkit::TestStore;
use pyairtable_eventstore::{
    Actor, ExpectedVersion, Metadata, NewEvent, Position, RecordedEvent, StreamId,
};
use pyairtable_projections::sql_models::{apply_sql, apply_sql_batch};
use pyairtable_projections::{Names, ProjectionError};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

fn rec(n: u8) -> RecordId {
    RecordId::parse(&format!("rec{:014}", n)).expect("record id")
}

fn fld(name: &str) -> FieldId {
    FieldId::parse(&format!("fld{name:0>14}")).expect("field id")
}

fn at(second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, second)
        .single()
        .expect("time")
}

fn user() -> UserId {
    UserId::parse("usr00000000000001").expect("user id")
}

fn change(field: &str, old: Value, new: Value) -> CellChange {
    CellChange {
        field_id: fld(field),
        old,
        new,
    }
}

/// (record, event) in the order they are appended: records interleaved, so one batch holds
/// several events of the same record and of others, plus events of records never created.
fn script() -> Vec<(u8, RecordEvent)> {
    let table = TableId::parse("tbl00000000000001").expect("table id");
    let created = |n: u8, cells: Value, s: u32| {
        let cells: BTreeMap<FieldId, Value> = cells
            .as_object()
            .expect("cells")
            .iter()
            .map(|(k, v)| (fld(k), v.clone()))
            .collect();
        (
            n,
            RecordEvent::RecordCreated {
                id: rec(n),
                table_id: table.clone(),
                cells,
                by: user(),
                at: at(s),
            },
        )
    };
    let updated = |n: u8, changes: Vec<CellChange>, s: u32| {
        (
            n,
            RecordEvent::RecordUpdated {
                changes,
                by: user(),
                at: at(s),
            },
        )
    };
    let links = |n: u8, added: Vec<RecordId>, removed: Vec<RecordId>, s: u32| {
        (
            n,
            RecordEvent::LinksChanged {
                field_id: fld("Link"),
                added,
                removed,
                by: user(),
                at: at(s),
            },
        )
    };
    vec![
        created(
            1,
            json!({"Name": "Alpha \"quoted\" \\ é", "Num": 1.5, "Tags": ["x", "y"]}),
            1,
        ),
        // Record 3's stream starts without a creation: no row, revisions without a table.
        updated(3, vec![change("Name", json!(null), json!("orphan"))], 2),
        created(2, json!({"Name": "Beta", "Done": true}), 3),
        updated(
            1,
            vec![
                change("Num", json!(1.5), json!(2)),
                change("Name", json!("Alpha"), json!(null)),
            ],
            4,
        ),
        links(2, vec![rec(1), rec(3)], vec![], 5),
        links(3, vec![rec(2)], vec![], 6),
        (
            1,
            RecordEvent::RecordDeleted {
                by: user(),
                at: at(7),
            },
        ),
        updated(
            2,
            vec![change(
                "Obj",
                json!(null),
                json!({"nested": {"a": [1, 2.25, null, "s"]}}),
            )],
            8,
        ),
        (
            1,
            RecordEvent::RecordRestored {
                by: user(),
                at: at(9),
            },
        ),
        created(3, json!({"Name": "Gamma"}), 10),
        (
            1,
            RecordEvent::RecordReverted {
                to_version: 1,
                changes: vec![
                    change("Num", json!(2), json!(1.5)),
                    change("Name", json!(null), json!("Alpha")),
                ],
                by: user(),
                at: at(11),
            },
        ),
        (
            2,
            RecordEvent::CommentAdded {
                comment_id: CommentId::parse("com00000000000001").expect("comment id"),
                author: user(),
                text: "looks good".to_owned(),
                mentions: vec![],
                at: at(12),
            },
        ),
        links(2, vec![rec(3)], vec![rec(1)], 13),
        links(1, vec![rec(2)], vec![], 14),
        links(2, vec![], vec![rec(3)], 15),
        updated(
            1,
            vec![
                change("Tags", json!(["x", "y"]), json!(null)),
                change("Tags", json!(null), json!(["z"])),
            ],
            16,
        ),
        (
            2,
            RecordEvent::RecordDeleted {
                by: user(),
                at: at(17),
            },
        ),
        updated(
            3,
            vec![change("Name", json!("Gamma"), json!("Gamma 2"))],
            18,
        ),
        // A field set, then cleared, in one event: `(cells - cleared) || set` keeps the value,
        // and the revision keeps the last change.
        updated(
            3,
            vec![
                change("Num", json!(null), json!(9)),
                change("Num", json!(9), json!(null)),
            ],
            19,
        ),
    ]
}

async fn append_script(store: &TestStore) -> Result<Vec<RecordedEvent>> {
    let meta = Metadata::new(
        Actor::User {
            id: "usr00000000000001".to_owned(),
        },
        Uuid::new_v4(),
    )
    .with_workspace("wsp00000000000001");
    let mut appended = 0usize;
    for (i, (n, event)) in script().into_iter().enumerate() {
        appended += 1;
        let stream = StreamId::parse(&format!("record-{}", rec(n)))?;
        let new = NewEvent::new(event.event_type(), serde_json::to_value(&event)?);
        store
            .append(&stream, ExpectedVersion::Any, vec![new], &meta)
            .await?;
        if i % 5 == 0 {
            // Events of other aggregates in between, which the projection ignores.
            let other = StreamId::parse("workspace-wsp00000000000001")?;
            let new = NewEvent::new("WorkspaceRenamed", json!({"type": "WorkspaceRenamed"}));
            appended += 1;
            store
                .append(&other, ExpectedVersion::Any, vec![new], &meta)
                .await?;
        }
    }
    // The feed hides events behind any older open transaction of the cluster (other tests
    // share it): wait until every appended event is visible rather than read once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let batch = store.read_all(&Position::START, 1000).await?;
        if batch.events.len() >= appended || std::time::Instant::now() > deadline {
            return Ok(batch.events);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn checksum(conn: &mut PgConnection, table: &str) -> Result<String> {
    let sql = format!(
        "SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {table} t"
    );
    Ok(sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_one(conn)
        .await?)
}

#[tokio::test]
async fn a_batched_records_apply_equals_the_event_by_event_one() -> Result<()> {
    let store = TestStore::new().await;
    let names = Names::new(store.namespace());
    let events = append_script(&store).await?;
    ensure!(
        events.len() == 23,
        "expected 23 events, got {}",
        events.len()
    );
    let mut conn = store.pool().acquire().await?;
    for generation in 1..=4 {
        sqlx::query("SELECT rm_create_generation($1, 'records', $2)")
            .bind(names.rm_schema())
            .bind(generation)
            .execute(&mut *conn)
            .await?;
    }
    // A redelivered stretch in the middle of the feed, applied again after everything.
    let again = &events[4..15];

    // Generation 1, the reference: one event at a time.
    for e in events.iter().chain(again) {
        apply_sql("records", &mut conn, &names, 1, e).await?;
    }
    // Generation 2: the whole feed as one batch (records changed several times in it).
    apply_sql_batch("records", &mut conn, &names, 2, &events).await?;
    apply_sql_batch("records", &mut conn, &names, 2, again).await?;
    // Generation 3: uneven batches, cutting between events of one record.
    let mut rest = &events[..];
    for size in [3, 1, 7, 2, 5].into_iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (head, tail) = rest.split_at(size.min(rest.len()));
        apply_sql_batch("records", &mut conn, &names, 3, head).await?;
        rest = tail;
    }
    apply_sql_batch("records", &mut conn, &names, 3, again).await?;
    // Generation 4: the feed delivered twice in one batch.
    let twice: Vec<RecordedEvent> = events.iter().chain(events.iter()).cloned().collect();
    apply_sql_batch("records", &mut conn, &names, 4, &twice).await?;

    for table in ["records", "record_revisions", "record_autonumbers"] {
        let reference = checksum(&mut conn, &names.rm_table(table, 1)).await?;
        for generation in 2..=4 {
            let batched = checksum(&mut conn, &names.rm_table(table, generation)).await?;
            ensure!(
                batched == reference,
                "{table}: generation {generation} differs from the event-by-event one"
            );
        }
    }

    // The reference itself is what the events say (so equal tables are not equally wrong).
    let row: (Value, i64, bool) = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT cells, version, deleted FROM {} WHERE record_id = $1",
        names.rm_table("records", 1)
    )))
    .bind(rec(1).as_str())
    .fetch_one(&mut *conn)
    .await?;
    let expected = json!({
        fld("Name").as_str(): "Alpha",
        fld("Num").as_str(): 1.5,
        fld("Tags").as_str(): ["z"],
        fld("Link").as_str(): [rec(2).as_str()],
    });
    ensure!(
        row == (expected.clone(), 7, false),
        "record 1 is {row:?}, expected {expected} at version 7, not deleted"
    );
    // Set and cleared in one event: the clear goes first, so the value stays.
    let num: Option<Value> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT cells -> $2 FROM {} WHERE record_id = $1",
        names.rm_table("records", 1)
    )))
    .bind(rec(3).as_str())
    .bind(fld("Num").as_str())
    .fetch_one(&mut *conn)
    .await?;
    ensure!(num == Some(json!(9)), "record 3's Num is {num:?}");
    // Numbered in the order of the creations (record 3's came last, after its other events),
    // once each however often a creation was delivered.
    let numbered: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT record_id, autonumber FROM {} ORDER BY autonumber",
        names.rm_table("records", 1)
    )))
    .fetch_all(&mut *conn)
    .await?;
    let expected: Vec<(String, i64)> = (1..=3)
        .map(|n| (rec(n).to_string(), i64::from(n)))
        .collect();
    ensure!(numbered == expected, "numbers {numbered:?}");
    let last: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT last FROM {}",
        names.rm_table("record_autonumbers", 1)
    )))
    .fetch_one(&mut *conn)
    .await?;
    ensure!(last == 3, "the counter says {last}");
    let (revisions, orphans): (i64, i64) = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT count(*), count(*) FILTER (WHERE table_id IS NULL) FROM {}",
        names.rm_table("record_revisions", 1)
    )))
    .fetch_one(&mut *conn)
    .await?;
    // 19 record events, one of them a comment (no revision); record 3's first two events
    // came before its row existed.
    ensure!(
        (revisions, orphans) == (18, 2),
        "revisions {revisions}, without a table {orphans}"
    );

    drop(conn);
    store.cleanup().await.context("cleaning up")?;
    Ok(())
}

#[tokio::test]
async fn a_batch_with_an_unreadable_event_fails_and_writes_nothing() -> Result<()> {
    let store = TestStore::new().await;
    let names = Names::new(store.namespace());
    let mut events = append_script(&store).await?;
    let bad = events
        .iter_mut()
        .find(|e| e.event_type == "RecordUpdated")
        .context("an update")?;
    bad.payload["changes"] = json!("not a list");
    let bad_id = bad.event_id;
    let mut conn = store.pool().acquire().await?;
    sqlx::query("SELECT rm_create_generation($1, 'records', 1)")
        .bind(names.rm_schema())
        .execute(&mut *conn)
        .await?;
    match apply_sql_batch("records", &mut conn, &names, 1, &events).await {
        Err(ProjectionError::BadEvent { event_id, .. }) => {
            ensure!(event_id == bad_id, "blamed {event_id}, not {bad_id}");
        }
        other => anyhow::bail!("expected BadEvent, got {other:?}"),
    }
    let rows: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT (SELECT count(*) FROM {}) + (SELECT count(*) FROM {})",
        names.rm_table("records", 1),
        names.rm_table("record_revisions", 1)
    )))
    .fetch_one(&mut *conn)
    .await?;
    ensure!(rows == 0, "{rows} rows written by a failed batch");
    drop(conn);
    store.cleanup().await.context("cleaning up")?;
    Ok(())
}
