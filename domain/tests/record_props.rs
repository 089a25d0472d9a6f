//! Random sequences of record commands: folding the accepted events from the default state
//! equals the decider's running state, and every event survives a JSON round trip unchanged.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use pyairtable_domain::Aggregate;
use pyairtable_domain::ids::{CommentId, FieldId, RecordId, TableId, UserId};
use pyairtable_domain::record::{Record, RecordCommand as C};
use pyairtable_domain::testing::assert_round_trips;
use serde_json::{Value, json};

fn at(n: u8) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap() + chrono::Duration::minutes(i64::from(n))
}
fn usr(n: u8) -> UserId {
    UserId::from_suffix([n % 3; 14])
}
fn rec(n: u8) -> RecordId {
    RecordId::from_suffix([n % 5; 14])
}
fn fld(n: u8) -> FieldId {
    FieldId::from_suffix([n % 4; 14])
}
fn com(n: u8) -> CommentId {
    CommentId::from_suffix([n % 3; 14])
}

fn value(n: u8) -> Value {
    match n % 6 {
        0 => Value::Null,
        1 => json!("text"),
        2 => json!(u32::from(n)),
        3 => json!(true),
        4 => json!([rec(n).as_str()]),
        _ => json!(""),
    }
}

fn cells(seed: &[u8]) -> BTreeMap<FieldId, Value> {
    seed.chunks(2)
        .map(|p| (fld(p[0]), value(p.get(1).copied().unwrap_or(0))))
        .collect()
}

fn command() -> impl Strategy<Value = C> {
    (0u8..9, any::<[u8; 6]>()).prop_map(|(op, [a, b, c, d, e, f])| match op {
        0 => C::CreateRecord {
            id: rec(1),
            table_id: TableId::from_suffix([1; 14]),
            cells: cells(&[a, b, c, d]),
            by: usr(e),
            at: at(f),
        },
        1 => C::UpdateRecord {
            cells: cells(&[a, b, c, d]),
            replace: e.is_multiple_of(3),
            table_fields: vec![fld(0), fld(1), fld(2)],
            by: usr(e),
            at: at(f),
        },
        2 => C::DeleteRecord {
            by: usr(a),
            at: at(b),
        },
        3 => C::RestoreRecord {
            by: usr(a),
            at: at(b),
        },
        4 => C::RevertRecord {
            to_version: u64::from(a % 8),
            target_cells: cells(&[b, c, d, e]),
            by: usr(f),
            at: at(f),
        },
        5 => C::ApplyLinkChange {
            field_id: fld(a),
            add: vec![rec(b), rec(c)],
            remove: vec![rec(d)],
            by: usr(e),
            at: at(f),
        },
        6 => C::AddComment {
            comment_id: com(a),
            author: usr(b),
            text: format!("hi @[{}] {c}", usr(c)),
            at: at(d),
        },
        7 => C::EditComment {
            comment_id: com(a),
            by: usr(b),
            text: if c.is_multiple_of(4) {
                " ".to_owned()
            } else {
                format!("edit {c}")
            },
            at: at(d),
        },
        _ => C::DeleteComment {
            comment_id: com(a),
            by: usr(b),
            moderator: d.is_multiple_of(2),
            at: at(c),
        },
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn folding_accepted_events_equals_the_running_state(
        cmds in prop::collection::vec(command(), 1..60),
    ) {
        let mut state = Record::default();
        let mut history = Vec::new();
        for c in &cmds {
            if let Ok(events) = state.handle(c) {
                for e in &events {
                    assert_round_trips(e);
                    state.apply(e);
                }
                history.extend(events);
            }
        }
        prop_assert_eq!(Record::default().fold(&history), state.clone());
        prop_assert_eq!(state.version, history.len() as u64);
        prop_assert!(state.cells.values().all(|v| !v.is_null()));
    }
}
