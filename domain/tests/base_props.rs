//! Random sequences of base commands: folding the accepted events from the default state equals
//! the decider's running state, and every event survives a JSON round trip unchanged.

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use pyairtable_domain::base::{Base, BaseCommand as C, Sort, SortDirection};
use pyairtable_domain::fields::{
    Choice, FieldDef, FieldType, LinkOptions, NumberOptions, SelectOptions,
};
use pyairtable_domain::ids::{BaseId, ChoiceId, FieldId, TableId, UserId, ViewId, WorkspaceId};
use pyairtable_domain::testing::assert_round_trips;
use pyairtable_domain::{Aggregate, DomainEvent};

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}
fn by() -> UserId {
    UserId::from_suffix([1; 14])
}
fn tbl(n: u8) -> TableId {
    TableId::from_suffix([n % 3; 14])
}
fn fld(n: u8) -> FieldId {
    FieldId::from_suffix([n % 16; 14])
}
fn viw(n: u8) -> ViewId {
    ViewId::from_suffix([n % 8; 14])
}
fn sel(n: u8) -> ChoiceId {
    ChoiceId::from_suffix([n % 8; 14])
}

/// Names with case-insensitive clashes, blanks and an empty one, among a wider spread.
fn name(n: u8) -> String {
    match n % 8 {
        0 => String::new(),
        1 => "alpha".to_owned(),
        2 => "Alpha".to_owned(),
        3 => " Gamma ".to_owned(),
        _ => format!("N{}", n % 23),
    }
}

fn field_type(kind: u8, a: u8, b: u8) -> FieldType {
    match kind % 5 {
        0 => FieldType::SingleLineText,
        1 => FieldType::Number(NumberOptions { precision: a % 10 }),
        2 => FieldType::SingleSelect(SelectOptions {
            choices: vec![Choice {
                id: sel(a),
                name: name(b),
                color: None,
            }],
        }),
        3 => FieldType::MultipleRecordLinks(LinkOptions {
            linked_table_id: tbl(a),
            inverse_link_field_id: (!b.is_multiple_of(3)).then(|| fld(b)),
            prefers_single_record_link: false,
        }),
        _ => FieldType::MultilineText,
    }
}

fn field(id: u8, n: u8, kind: u8, a: u8, b: u8) -> FieldDef {
    FieldDef {
        id: fld(id),
        name: name(n),
        description: None,
        field_type: field_type(kind, a, b),
    }
}

fn command() -> impl Strategy<Value = C> {
    let s = any::<[u8; 6]>();
    // Weighted towards schema changes: lifecycle commands are rare, so sequences build tables.
    (0u8..40, s).prop_map(|(op, [a, b, c, d, e, f])| match op {
        0 => C::CreateBase {
            id: BaseId::from_suffix([1; 14]),
            workspace_id: WorkspaceId::from_suffix([1; 14]),
            name: name(a),
            by: by(),
            at: at(),
        },
        1 => C::RenameBase {
            name: name(a),
            by: by(),
            at: at(),
        },
        // Deletion blocks everything until a restore: keep it rarer than the restore.
        2 if b.is_multiple_of(4) => C::DeleteBase { by: by(), at: at() },
        2 => C::RenameBase {
            name: name(b),
            by: by(),
            at: at(),
        },
        3 => C::RestoreBase { by: by(), at: at() },
        4..=9 => C::CreateTable {
            table_id: tbl(a),
            name: name(b),
            description: None,
            fields: vec![
                FieldDef {
                    name: "Name".to_owned(),
                    ..field(c, 0, 0, 0, 0)
                },
                field(d, e, f, a, b),
            ],
            primary_field_id: None,
            default_view_id: viw(e),
            by: by(),
            at: at(),
        },
        10..=11 => C::UpdateTable {
            table_id: tbl(a),
            name: Some(name(b)),
            description: Some((c.is_multiple_of(2)).then(|| "d".to_owned())),
            by: by(),
            at: at(),
        },
        12 => C::DeleteTable {
            table_id: tbl(a),
            by: by(),
            at: at(),
        },
        13..=19 => C::AddField {
            table_id: tbl(a),
            field: field(b, c, d, e, f),
            by: by(),
            at: at(),
        },
        20..=24 => C::UpdateField {
            table_id: tbl(a),
            field_id: fld(b),
            name: (c.is_multiple_of(2)).then(|| name(c)),
            description: None,
            field_type: (d.is_multiple_of(2)).then(|| field_type(e, f, c)),
            allow_lossy: f.is_multiple_of(2),
            by: by(),
            at: at(),
        },
        25..=26 => C::DeleteField {
            table_id: tbl(a),
            field_id: fld(b),
            by: by(),
            at: at(),
        },
        27..=28 => C::SetPrimaryField {
            table_id: tbl(a),
            field_id: fld(b),
            by: by(),
            at: at(),
        },
        29..=30 => C::AddChoices {
            table_id: tbl(a),
            field_id: fld(b),
            choices: vec![Choice {
                id: sel(c),
                name: name(d),
                color: None,
            }],
            by: by(),
            at: at(),
        },
        31..=34 => C::CreateView {
            view_id: viw(a),
            table_id: tbl(b),
            name: name(c),
            filter_formula: None,
            sorts: vec![Sort {
                field_id: fld(d),
                direction: SortDirection::Asc,
            }],
            visible_field_ids: (e.is_multiple_of(2)).then(|| vec![fld(f)]),
            by: by(),
            at: at(),
        },
        35..=37 => C::UpdateView {
            table_id: tbl(a),
            view_id: viw(b),
            name: Some(name(c)),
            filter_formula: Some(Some("1".to_owned())),
            sorts: None,
            visible_field_ids: Some((d.is_multiple_of(2)).then(|| vec![fld(e)])),
            by: by(),
            at: at(),
        },
        _ => C::DeleteView {
            table_id: tbl(a),
            view_id: viw(b),
            by: by(),
            at: at(),
        },
    })
}

/// Create the base first so most sequences get somewhere.
fn commands() -> impl Strategy<Value = Vec<C>> {
    prop::collection::vec(command(), 1..60).prop_map(|mut cs| {
        cs.insert(
            0,
            C::CreateBase {
                id: BaseId::from_suffix([1; 14]),
                workspace_id: WorkspaceId::from_suffix([1; 14]),
                name: "Base".to_owned(),
                by: by(),
                at: at(),
            },
        );
        cs
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn folding_accepted_events_equals_the_running_state(cmds in commands()) {
        let mut state = Base::default();
        let mut history = Vec::new();
        for c in &cmds {
            if let Ok(events) = state.handle(c) {
                for e in &events {
                    assert_round_trips(e);
                    prop_assert!(!e.event_type().is_empty());
                    state.apply(e);
                }
                history.extend(events);
            }
        }
        prop_assert_eq!(Base::default().fold(&history), state.clone());
        // Invariants that every accepted sequence keeps.
        for t in &state.tables {
            prop_assert!(t.field(&t.primary_field_id).is_some());
            prop_assert!(t.primary_field().is_some_and(|f| f.field_type.can_be_primary()));
            prop_assert_eq!(t.views.iter().filter(|v| v.is_default).count(), 1);
            let mut names: Vec<String> = t.fields.iter().map(|f| f.name.to_lowercase()).collect();
            names.sort();
            let len = names.len();
            names.dedup();
            prop_assert_eq!(names.len(), len, "field names unique in {}", t.name);
            for f in &t.fields {
                prop_assert!(!f.name.is_empty() && f.name.trim() == f.name);
                if let Some(l) = f.field_type.link() {
                    prop_assert!(state.table(&l.linked_table_id).is_some(), "link target exists");
                }
            }
        }
        let mut tnames: Vec<String> = state.tables.iter().map(|t| t.name.to_lowercase()).collect();
        tnames.sort();
        let len = tnames.len();
        tnames.dedup();
        prop_assert_eq!(tnames.len(), len);
    }
}
