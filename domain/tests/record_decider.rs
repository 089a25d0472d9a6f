//! Given/when/then for every record command, plus schema validation of record input and link
//! diffs.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use pyairtable_domain::base::{TableSchema, ViewDef};
use pyairtable_domain::fields::{
    CellErrorReason, FieldDef, FieldType, LinkOptions, NumberOptions, SelectOptions,
};
use pyairtable_domain::ids::{CommentId, FieldId, RecordId, TableId, UserId, ViewId};
use pyairtable_domain::record::{
    CellChange, Record, RecordCommand as C, RecordError, RecordEvent as E, link_diff,
    parse_mentions, validate_record_cells,
};
use pyairtable_domain::testing::TestHarness;
use serde_json::{Map, Value, json};

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}
fn later() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 2, 10, 0, 0).unwrap()
}
fn usr(n: u8) -> UserId {
    UserId::from_suffix([n; 14])
}
fn rec(n: u8) -> RecordId {
    RecordId::from_suffix([n; 14])
}
fn fld(n: u8) -> FieldId {
    FieldId::from_suffix([n; 14])
}
fn com(n: u8) -> CommentId {
    CommentId::from_suffix([n; 14])
}
fn tbl() -> TableId {
    TableId::from_suffix([1; 14])
}

fn cells(pairs: &[(u8, Value)]) -> BTreeMap<FieldId, Value> {
    pairs.iter().map(|(f, v)| (fld(*f), v.clone())).collect()
}

fn created() -> E {
    E::RecordCreated {
        id: rec(1),
        table_id: tbl(),
        cells: cells(&[(1, json!("Alpha")), (2, json!(3))]),
        by: usr(1),
        at: at(),
    }
}

fn update(pairs: &[(u8, Value)], replace: bool) -> C {
    C::UpdateRecord {
        cells: cells(pairs),
        replace,
        table_fields: vec![fld(1), fld(2), fld(3)],
        by: usr(2),
        at: later(),
    }
}

fn change(f: u8, old: Value, new: Value) -> CellChange {
    CellChange {
        field_id: fld(f),
        old,
        new,
    }
}

#[test]
fn create_record_drops_empty_cells() {
    let state = TestHarness::<Record>::given([])
        .when(C::CreateRecord {
            id: rec(1),
            table_id: tbl(),
            cells: cells(&[
                (1, json!("Alpha")),
                (2, json!(3)),
                (3, Value::Null),
                (4, json!("")),
            ]),
            by: usr(1),
            at: at(),
        })
        .then([created()]);
    assert_eq!(state.version, 1);
    assert_eq!(state.created_by, Some(usr(1)));
}

#[test]
fn create_record_twice_is_rejected() {
    TestHarness::<Record>::given([created()])
        .when(C::CreateRecord {
            id: rec(1),
            table_id: tbl(),
            cells: BTreeMap::new(),
            by: usr(1),
            at: at(),
        })
        .then_err(RecordError::AlreadyCreated(rec(1)));
}

#[test]
fn update_record_emits_only_changes() {
    let state = TestHarness::<Record>::given([created()])
        .when(update(
            &[(1, json!("Alpha")), (2, json!(4)), (3, json!(true))],
            false,
        ))
        .then([E::RecordUpdated {
            changes: vec![
                change(2, json!(3), json!(4)),
                change(3, Value::Null, json!(true)),
            ],
            by: usr(2),
            at: later(),
        }]);
    assert_eq!(state.cells.get(&fld(2)), Some(&json!(4)));
    assert_eq!(state.last_modified_by, Some(usr(2)));
    assert_eq!(state.last_modified_at, Some(later()));
}

#[test]
fn no_op_update_emits_nothing() {
    TestHarness::<Record>::given([created()])
        .when(update(&[(1, json!("Alpha")), (3, Value::Null)], false))
        .then([]);
}

#[test]
fn null_clears_a_cell() {
    let state = TestHarness::<Record>::given([created()])
        .when(update(&[(2, Value::Null)], false))
        .then([E::RecordUpdated {
            changes: vec![change(2, json!(3), Value::Null)],
            by: usr(2),
            at: later(),
        }]);
    assert!(!state.cells.contains_key(&fld(2)));
}

#[test]
fn replace_mode_clears_unnamed_fields() {
    TestHarness::<Record>::given([created()])
        .when(update(&[(3, json!("x"))], true))
        .then([E::RecordUpdated {
            changes: vec![
                change(3, Value::Null, json!("x")),
                change(1, json!("Alpha"), Value::Null),
                change(2, json!(3), Value::Null),
            ],
            by: usr(2),
            at: later(),
        }]);
}

#[test]
fn commands_on_missing_or_deleted_records_are_rejected() {
    TestHarness::<Record>::given([])
        .when(update(&[(1, json!("x"))], false))
        .then_err(RecordError::NotCreated);
    TestHarness::<Record>::given([])
        .when(C::DeleteRecord {
            by: usr(1),
            at: at(),
        })
        .then_err(RecordError::NotCreated);
    let deleted = vec![
        created(),
        E::RecordDeleted {
            by: usr(1),
            at: at(),
        },
    ];
    let rejected = vec![
        update(&[(1, json!("x"))], false),
        C::DeleteRecord {
            by: usr(1),
            at: at(),
        },
        C::RevertRecord {
            to_version: 1,
            target_cells: BTreeMap::new(),
            by: usr(1),
            at: at(),
        },
        C::AddComment {
            comment_id: com(1),
            author: usr(1),
            text: "hi".to_owned(),
            at: at(),
        },
    ];
    for c in rejected {
        TestHarness::<Record>::given(deleted.clone())
            .when(c)
            .then_err(RecordError::Deleted(rec(1)));
    }
}

#[test]
fn delete_and_restore() {
    let state = TestHarness::<Record>::given([created()])
        .when(C::DeleteRecord {
            by: usr(1),
            at: at(),
        })
        .then([E::RecordDeleted {
            by: usr(1),
            at: at(),
        }]);
    assert!(state.deleted);
    let state = TestHarness::<Record>::given([
        created(),
        E::RecordDeleted {
            by: usr(1),
            at: at(),
        },
    ])
    .when(C::RestoreRecord {
        by: usr(1),
        at: at(),
    })
    .then([E::RecordRestored {
        by: usr(1),
        at: at(),
    }]);
    assert!(!state.deleted);
    assert_eq!(state.cells.len(), 2);
    TestHarness::<Record>::given([created()])
        .when(C::RestoreRecord {
            by: usr(1),
            at: at(),
        })
        .then_err(RecordError::NotDeleted(rec(1)));
    TestHarness::<Record>::given([])
        .when(C::RestoreRecord {
            by: usr(1),
            at: at(),
        })
        .then_err(RecordError::NotCreated);
}

#[test]
fn revert_emits_the_changes_as_new_events() {
    let updated = E::RecordUpdated {
        changes: vec![
            change(2, json!(3), json!(4)),
            change(3, Value::Null, json!("n")),
        ],
        by: usr(2),
        at: later(),
    };
    let state = TestHarness::<Record>::given([created(), updated.clone()])
        .when(C::RevertRecord {
            to_version: 1,
            target_cells: cells(&[(1, json!("Alpha")), (2, json!(3))]),
            by: usr(1),
            at: later(),
        })
        .then([E::RecordReverted {
            to_version: 1,
            changes: vec![
                change(2, json!(4), json!(3)),
                change(3, json!("n"), Value::Null),
            ],
            by: usr(1),
            at: later(),
        }]);
    assert_eq!(state.version, 3);
    assert_eq!(state.cells, cells(&[(1, json!("Alpha")), (2, json!(3))]));
    // Reverting to the current cells changes nothing.
    TestHarness::<Record>::given([created(), updated])
        .when(C::RevertRecord {
            to_version: 2,
            target_cells: cells(&[(1, json!("Alpha")), (2, json!(4)), (3, json!("n"))]),
            by: usr(1),
            at: later(),
        })
        .then([]);
}

#[test]
fn revert_to_a_missing_version_is_rejected() {
    for v in [0, 2] {
        TestHarness::<Record>::given([created()])
            .when(C::RevertRecord {
                to_version: v,
                target_cells: BTreeMap::new(),
                by: usr(1),
                at: at(),
            })
            .then_err(RecordError::InvalidVersion {
                requested: v,
                current: 1,
            });
    }
}

fn link_change(add: &[u8], remove: &[u8]) -> C {
    C::ApplyLinkChange {
        field_id: fld(5),
        add: add.iter().map(|n| rec(*n)).collect(),
        remove: remove.iter().map(|n| rec(*n)).collect(),
        by: usr(2),
        at: later(),
    }
}

fn links_changed(added: &[u8], removed: &[u8]) -> E {
    E::LinksChanged {
        field_id: fld(5),
        added: added.iter().map(|n| rec(*n)).collect(),
        removed: removed.iter().map(|n| rec(*n)).collect(),
        by: usr(2),
        at: later(),
    }
}

#[test]
fn apply_link_change() {
    let state = TestHarness::<Record>::given([created()])
        .when(link_change(&[7, 8, 7], &[]))
        .then([links_changed(&[7, 8], &[])]);
    assert_eq!(
        state.cells.get(&fld(5)),
        Some(&json!([rec(7).as_str(), rec(8).as_str()]))
    );
    let state = TestHarness::<Record>::given([created(), links_changed(&[7, 8], &[])])
        .when(link_change(&[9, 8], &[7, 6]))
        .then([links_changed(&[9], &[7])]);
    assert_eq!(
        state.cells.get(&fld(5)),
        Some(&json!([rec(8).as_str(), rec(9).as_str()]))
    );
    let state = TestHarness::<Record>::given([created(), links_changed(&[7], &[])])
        .when(link_change(&[], &[7]))
        .then([links_changed(&[], &[7])]);
    assert!(!state.cells.contains_key(&fld(5)));
    TestHarness::<Record>::given([created(), links_changed(&[7], &[])])
        .when(link_change(&[7], &[3]))
        .then([]);
    TestHarness::<Record>::given([])
        .when(link_change(&[7], &[]))
        .then_err(RecordError::NotCreated);
}

#[test]
fn link_changes_reach_deleted_records_so_a_restore_stays_symmetric() {
    TestHarness::<Record>::given([
        created(),
        E::RecordDeleted {
            by: usr(1),
            at: at(),
        },
    ])
    .when(link_change(&[], &[]))
    .then([]);
    TestHarness::<Record>::given([
        created(),
        E::RecordDeleted {
            by: usr(1),
            at: at(),
        },
    ])
    .when(link_change(&[7], &[]))
    .then([links_changed(&[7], &[])]);
}

// --- comments -------------------------------------------------------------------------------

fn comment_added(n: u8, author: u8, text: &str) -> E {
    E::CommentAdded {
        comment_id: com(n),
        author: usr(author),
        text: text.to_owned(),
        mentions: parse_mentions(text),
        at: at(),
    }
}

#[test]
fn add_comment_with_mentions() {
    let text = format!(
        "ping @[{}] and @[{}] and @[{}] @[nope]",
        usr(3),
        usr(4),
        usr(3)
    );
    let state = TestHarness::<Record>::given([created()])
        .when(C::AddComment {
            comment_id: com(1),
            author: usr(2),
            text: format!("  {text} "),
            at: at(),
        })
        .then([E::CommentAdded {
            comment_id: com(1),
            author: usr(2),
            text: text.clone(),
            mentions: vec![usr(3), usr(4)],
            at: at(),
        }]);
    assert_eq!(state.comments.len(), 1);
    // Comments do not count as modifying the record's cells.
    assert_eq!(state.last_modified_by, Some(usr(1)));
}

#[test]
fn add_comment_rejections() {
    TestHarness::<Record>::given([created()])
        .when(C::AddComment {
            comment_id: com(1),
            author: usr(2),
            text: "   ".to_owned(),
            at: at(),
        })
        .then_err(RecordError::EmptyComment);
    TestHarness::<Record>::given([created()])
        .when(C::AddComment {
            comment_id: com(1),
            author: usr(2),
            text: "x".repeat(10_001),
            at: at(),
        })
        .then_err(RecordError::CommentTooLong {
            max_chars: 10_000,
            chars: 10_001,
        });
    TestHarness::<Record>::given([created(), comment_added(1, 2, "hi")])
        .when(C::AddComment {
            comment_id: com(1),
            author: usr(2),
            text: "again".to_owned(),
            at: at(),
        })
        .then_err(RecordError::DuplicateCommentId(com(1)));
    TestHarness::<Record>::given([])
        .when(C::AddComment {
            comment_id: com(1),
            author: usr(2),
            text: "hi".to_owned(),
            at: at(),
        })
        .then_err(RecordError::NotCreated);
}

#[test]
fn edit_comment_by_its_author() {
    let text = format!("now @[{}]", usr(5));
    let state = TestHarness::<Record>::given([created(), comment_added(1, 2, "hi")])
        .when(C::EditComment {
            comment_id: com(1),
            by: usr(2),
            text: text.clone(),
            at: later(),
        })
        .then([E::CommentEdited {
            comment_id: com(1),
            text: text.clone(),
            mentions: vec![usr(5)],
            at: later(),
        }]);
    assert_eq!(state.comments[0].text, text);
    assert_eq!(state.comments[0].last_updated_at, Some(later()));
    TestHarness::<Record>::given([created(), comment_added(1, 2, "hi")])
        .when(C::EditComment {
            comment_id: com(1),
            by: usr(2),
            text: "hi".to_owned(),
            at: later(),
        })
        .then([]);
}

#[test]
fn edit_comment_rejections() {
    TestHarness::<Record>::given([created(), comment_added(1, 2, "hi")])
        .when(C::EditComment {
            comment_id: com(1),
            by: usr(3),
            text: "mine now".to_owned(),
            at: later(),
        })
        .then_err(RecordError::NotCommentAuthor {
            comment_id: com(1),
            user: usr(3),
        });
    TestHarness::<Record>::given([created()])
        .when(C::EditComment {
            comment_id: com(9),
            by: usr(2),
            text: "x".to_owned(),
            at: later(),
        })
        .then_err(RecordError::CommentNotFound(com(9)));
    TestHarness::<Record>::given([created(), comment_added(1, 2, "hi")])
        .when(C::EditComment {
            comment_id: com(1),
            by: usr(2),
            text: String::new(),
            at: later(),
        })
        .then_err(RecordError::EmptyComment);
}

#[test]
fn delete_comment() {
    let state = TestHarness::<Record>::given([created(), comment_added(1, 2, "hi")])
        .when(C::DeleteComment {
            comment_id: com(1),
            by: usr(2),
            moderator: false,
            at: later(),
        })
        .then([E::CommentDeleted {
            comment_id: com(1),
            by: usr(2),
            at: later(),
        }]);
    assert!(state.comments.is_empty());
    TestHarness::<Record>::given([created(), comment_added(1, 2, "hi")])
        .when(C::DeleteComment {
            comment_id: com(1),
            by: usr(3),
            moderator: false,
            at: later(),
        })
        .then_err(RecordError::NotCommentAuthor {
            comment_id: com(1),
            user: usr(3),
        });
    TestHarness::<Record>::given([created()])
        .when(C::DeleteComment {
            comment_id: com(1),
            by: usr(2),
            moderator: false,
            at: later(),
        })
        .then_err(RecordError::CommentNotFound(com(1)));
}

#[test]
fn a_moderator_deletes_someone_elses_comment() {
    let state = TestHarness::<Record>::given([
        created(),
        comment_added(1, 2, "hi"),
        comment_added(2, 4, "keep me"),
    ])
    .when(C::DeleteComment {
        comment_id: com(1),
        by: usr(3),
        moderator: true,
        at: later(),
    })
    .then([E::CommentDeleted {
        comment_id: com(1),
        by: usr(3),
        at: later(),
    }]);
    // Only the moderated comment goes; the event names the moderator, not the author.
    let left: Vec<_> = state.comments.iter().map(|c| c.id.clone()).collect();
    assert_eq!(left, [com(2)]);
}

#[test]
fn moderation_rejections() {
    TestHarness::<Record>::given([created()])
        .when(C::DeleteComment {
            comment_id: com(1),
            by: usr(3),
            moderator: true,
            at: later(),
        })
        .then_err(RecordError::CommentNotFound(com(1)));
    TestHarness::<Record>::given([
        created(),
        comment_added(1, 2, "hi"),
        E::RecordDeleted {
            by: usr(1),
            at: later(),
        },
    ])
    .when(C::DeleteComment {
        comment_id: com(1),
        by: usr(3),
        moderator: true,
        at: later(),
    })
    .then_err(RecordError::Deleted(rec(1)));
}

// --- schema validation and link diffs -------------------------------------------------------

fn schema() -> TableSchema {
    let field = |n: u8, name: &str, field_type: FieldType| FieldDef {
        id: fld(n),
        name: name.to_owned(),
        description: None,
        field_type,
    };
    TableSchema {
        id: tbl(),
        name: "Tasks".to_owned(),
        description: None,
        primary_field_id: fld(1),
        fields: vec![
            field(1, "Name", FieldType::SingleLineText),
            field(
                2,
                "Estimate",
                FieldType::Number(NumberOptions { precision: 0 }),
            ),
            field(
                3,
                "Tags",
                FieldType::MultipleSelects(SelectOptions::default()),
            ),
            field(4, "Files", FieldType::MultipleAttachments),
            field(
                5,
                "Owner",
                FieldType::MultipleRecordLinks(LinkOptions {
                    linked_table_id: TableId::from_suffix([2; 14]),
                    inverse_link_field_id: None,
                    prefers_single_record_link: false,
                }),
            ),
            field(6, "Created", FieldType::CreatedTime),
        ],
        views: vec![ViewDef {
            id: ViewId::from_suffix([1; 14]),
            name: "Grid view".to_owned(),
            is_default: true,
            filter_formula: None,
            sorts: vec![],
            visible_field_ids: None,
        }],
    }
}

fn input(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[test]
fn validate_record_cells_maps_names_and_ids() {
    let ok = validate_record_cells(
        &schema(),
        &input(json!({
            "Name": "Write docs",
            fld(2).as_str(): "3",
            "tags": "a, b",
            "Files": [{"url": "https://x.test/f.txt"}],
        })),
        true,
    )
    .unwrap();
    assert_eq!(ok.cells.get(&fld(1)), Some(&json!("Write docs")));
    assert_eq!(ok.cells.get(&fld(2)), Some(&json!(3)));
    assert_eq!(ok.cells.get(&fld(3)), Some(&json!(["a", "b"])));
    assert_eq!(
        ok.new_choices.get(&fld(3)),
        Some(&vec!["a".to_owned(), "b".to_owned()])
    );
    assert_eq!(ok.missing_attachment_ids.get(&fld(4)), Some(&1));
}

#[test]
fn validate_record_cells_reports_every_error() {
    let errors = validate_record_cells(
        &schema(),
        &input(json!({
            "Nope": 1,
            "Estimate": "three",
            "Created": "2024-01-01",
            "Tags": ["x"],
        })),
        false,
    )
    .unwrap_err();
    let mut codes: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.field_name.as_str(), e.code()))
        .collect();
    codes.sort_unstable();
    assert_eq!(
        codes,
        [
            ("Created", "INVALID_VALUE_FOR_COLUMN"),
            ("Estimate", "INVALID_VALUE_FOR_COLUMN"),
            ("Nope", "UNKNOWN_FIELD_NAME"),
            ("Tags", "INVALID_MULTIPLE_CHOICE_OPTIONS"),
        ]
    );
    let unknown = errors.iter().find(|e| e.field_name == "Nope").unwrap();
    assert_eq!(unknown.field_id, None);
    assert_eq!(unknown.reason, CellErrorReason::UnknownField);
    assert_eq!(unknown.value, "1");
}

#[test]
fn a_field_given_twice_is_rejected() {
    let errors = validate_record_cells(
        &schema(),
        &input(json!({"Name": "a", fld(1).as_str(): "b"})),
        false,
    )
    .unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].reason, CellErrorReason::DuplicateField);
}

#[test]
fn link_diff_lists_added_and_removed() {
    let s = schema();
    let owner = s.field(&fld(5)).unwrap();
    let (a, b, c) = (rec(1), rec(2), rec(3));
    let (added, removed) = link_diff(
        owner,
        &json!([a.as_str(), b.as_str()]),
        &json!([b.as_str(), c.as_str()]),
    );
    assert_eq!(added, vec![c.clone()]);
    assert_eq!(removed, vec![a.clone()]);
    let (added, removed) = link_diff(owner, &Value::Null, &json!([a.as_str()]));
    assert_eq!((added, removed), (vec![a.clone()], vec![]));
    let name = s.field(&fld(1)).unwrap();
    let (added, removed) = link_diff(name, &Value::Null, &json!([a.as_str()]));
    assert!(added.is_empty() && removed.is_empty());
}
