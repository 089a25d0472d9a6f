//! Given/when/then for every base command, accepted and rejected.

use chrono::{DateTime, TimeZone, Utc};
use pyairtable_domain::base::{
    Base, BaseCommand as C, BaseError, BaseEvent as E, Sort, SortDirection, Subject, TableSchema,
    ViewDef,
};
use pyairtable_domain::fields::{
    CheckboxOptions, Choice, Conversion, FieldDef, FieldType, LinkOptions, NumberOptions,
    SelectOptions,
};
use pyairtable_domain::ids::{BaseId, ChoiceId, FieldId, TableId, UserId, ViewId, WorkspaceId};
use pyairtable_domain::testing::TestHarness;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}
fn by() -> UserId {
    UserId::from_suffix([1; 14])
}
fn base_id() -> BaseId {
    BaseId::from_suffix([1; 14])
}
fn wsp() -> WorkspaceId {
    WorkspaceId::from_suffix([1; 14])
}
fn tbl(n: u8) -> TableId {
    TableId::from_suffix([n; 14])
}
fn fld(n: u8) -> FieldId {
    FieldId::from_suffix([n; 14])
}
fn viw(n: u8) -> ViewId {
    ViewId::from_suffix([n; 14])
}
fn sel(n: u8) -> ChoiceId {
    ChoiceId::from_suffix([n; 14])
}

fn text(id: u8, name: &str) -> FieldDef {
    FieldDef {
        id: fld(id),
        name: name.to_owned(),
        description: None,
        field_type: FieldType::SingleLineText,
    }
}

fn typed(id: u8, name: &str, field_type: FieldType) -> FieldDef {
    FieldDef {
        id: fld(id),
        name: name.to_owned(),
        description: None,
        field_type,
    }
}

fn link_to(table: u8, inverse: Option<u8>) -> FieldType {
    FieldType::MultipleRecordLinks(LinkOptions {
        linked_table_id: tbl(table),
        inverse_link_field_id: inverse.map(fld),
        prefers_single_record_link: false,
    })
}

fn select(choices: &[(u8, &str)]) -> FieldType {
    FieldType::SingleSelect(SelectOptions {
        choices: choices
            .iter()
            .map(|(i, n)| Choice {
                id: sel(*i),
                name: (*n).to_owned(),
                color: None,
            })
            .collect(),
    })
}

fn grid(view: u8) -> ViewDef {
    ViewDef {
        id: viw(view),
        name: "Grid view".to_owned(),
        is_default: true,
        filter_formula: None,
        sorts: vec![],
        visible_field_ids: None,
    }
}

fn created() -> E {
    E::BaseCreated {
        id: base_id(),
        workspace_id: wsp(),
        name: "Projects".to_owned(),
        by: by(),
        at: at(),
    }
}

/// Table `n` named `name` with a primary text field `fld(n)` "Name" and default view `viw(n)`.
fn table(n: u8, name: &str) -> TableSchema {
    TableSchema {
        id: tbl(n),
        name: name.to_owned(),
        description: None,
        primary_field_id: fld(n),
        fields: vec![text(n, "Name")],
        views: vec![grid(n)],
    }
}

fn table_created(n: u8, name: &str) -> E {
    E::TableCreated {
        table: table(n, name),
        by: by(),
        at: at(),
    }
}

fn field_created(table: u8, field: FieldDef) -> E {
    E::FieldCreated {
        table_id: tbl(table),
        field,
        by: by(),
        at: at(),
    }
}

/// A base with tables 1 "Tasks" and 2 "People".
fn two_tables() -> Vec<E> {
    vec![
        created(),
        table_created(1, "Tasks"),
        table_created(2, "People"),
    ]
}

fn create_table(n: u8, name: &str, fields: Vec<FieldDef>) -> C {
    C::CreateTable {
        table_id: tbl(n),
        name: name.to_owned(),
        description: None,
        fields,
        primary_field_id: None,
        default_view_id: viw(n),
        by: by(),
        at: at(),
    }
}

fn add_field(table: u8, field: FieldDef) -> C {
    C::AddField {
        table_id: tbl(table),
        field,
        by: by(),
        at: at(),
    }
}

/// The optional parts of `UpdateField`, so tests can name only what they change.
struct UF {
    table: u8,
    field: u8,
    name: Option<String>,
    description: Option<Option<String>>,
    field_type: Option<FieldType>,
    allow_lossy: bool,
}

impl UF {
    fn new(table: u8, field: u8) -> Self {
        Self {
            table,
            field,
            name: None,
            description: None,
            field_type: None,
            allow_lossy: false,
        }
    }

    fn cmd(self) -> C {
        C::UpdateField {
            table_id: tbl(self.table),
            field_id: fld(self.field),
            name: self.name,
            description: self.description,
            field_type: self.field_type,
            allow_lossy: self.allow_lossy,
            by: by(),
            at: at(),
        }
    }
}

fn invalid_name(subject: Subject, value: &str, reason: &'static str) -> BaseError {
    BaseError::InvalidName {
        subject,
        value: value.to_owned(),
        reason,
    }
}

// --- base lifecycle -------------------------------------------------------------------------

#[test]
fn create_base() {
    TestHarness::<Base>::given([])
        .when(C::CreateBase {
            id: base_id(),
            workspace_id: wsp(),
            name: "  Projects ".to_owned(),
            by: by(),
            at: at(),
        })
        .then([created()]);
}

#[test]
fn create_base_twice_is_rejected() {
    TestHarness::<Base>::given([created()])
        .when(C::CreateBase {
            id: base_id(),
            workspace_id: wsp(),
            name: "Again".to_owned(),
            by: by(),
            at: at(),
        })
        .then_err(BaseError::AlreadyCreated(base_id()));
}

#[test]
fn base_names_must_be_non_empty_and_short() {
    TestHarness::<Base>::given([])
        .when(C::CreateBase {
            id: base_id(),
            workspace_id: wsp(),
            name: "   ".to_owned(),
            by: by(),
            at: at(),
        })
        .then_err(invalid_name(Subject::Base, "   ", "it is empty"));
    let long = "b".repeat(256);
    TestHarness::<Base>::given([created()])
        .when(C::RenameBase {
            name: long.clone(),
            by: by(),
            at: at(),
        })
        .then_err(invalid_name(
            Subject::Base,
            &long,
            "it is longer than 255 characters",
        ));
}

#[test]
fn rename_base() {
    let state = TestHarness::<Base>::given([created()])
        .when(C::RenameBase {
            name: "Roadmap".to_owned(),
            by: by(),
            at: at(),
        })
        .then([E::BaseRenamed {
            name: "Roadmap".to_owned(),
            by: by(),
            at: at(),
        }]);
    assert_eq!(state.name, "Roadmap");
    TestHarness::<Base>::given([created()])
        .when(C::RenameBase {
            name: "Projects".to_owned(),
            by: by(),
            at: at(),
        })
        .then([]);
}

#[test]
fn commands_on_a_missing_base_are_rejected() {
    TestHarness::<Base>::given([])
        .when(C::RenameBase {
            name: "X".to_owned(),
            by: by(),
            at: at(),
        })
        .then_err(BaseError::NotCreated);
    TestHarness::<Base>::given([])
        .when(C::RestoreBase { by: by(), at: at() })
        .then_err(BaseError::NotCreated);
}

#[test]
fn delete_and_restore_base() {
    let deleted = E::BaseDeleted { by: by(), at: at() };
    TestHarness::<Base>::given([created()])
        .when(C::DeleteBase { by: by(), at: at() })
        .then([deleted.clone()]);
    let state = TestHarness::<Base>::given([created(), deleted.clone()])
        .when(C::RestoreBase { by: by(), at: at() })
        .then([E::BaseRestored { by: by(), at: at() }]);
    assert!(!state.deleted);
    TestHarness::<Base>::given([created()])
        .when(C::RestoreBase { by: by(), at: at() })
        .then_err(BaseError::NotDeleted(base_id()));
}

#[test]
fn deleted_base_rejects_everything_but_restore() {
    let mut history = two_tables();
    history.push(E::BaseDeleted { by: by(), at: at() });
    let commands = vec![
        C::RenameBase {
            name: "X".to_owned(),
            by: by(),
            at: at(),
        },
        C::DeleteBase { by: by(), at: at() },
        create_table(3, "New", vec![text(3, "Name")]),
        add_field(1, text(9, "Notes")),
        C::DeleteTable {
            table_id: tbl(1),
            by: by(),
            at: at(),
        },
    ];
    for c in commands {
        TestHarness::<Base>::given(history.clone())
            .when(c)
            .then_err(BaseError::Deleted(base_id()));
    }
}

// --- tables ---------------------------------------------------------------------------------

#[test]
fn create_table_with_default_view() {
    let state = TestHarness::<Base>::given([created()])
        .when(create_table(1, " Tasks ", vec![text(1, " Name ")]))
        .then([table_created(1, "Tasks")]);
    let t = state.table(&tbl(1)).unwrap();
    assert_eq!(t.views.iter().filter(|v| v.is_default).count(), 1);
    assert_eq!(state.table_by_name_or_id("tasks").unwrap().id, tbl(1));
    assert_eq!(
        state.table_by_name_or_id(tbl(1).as_str()).unwrap().name,
        "Tasks"
    );
    assert_eq!(
        state.field_by_name_or_id("Tasks", "NAME").unwrap().id,
        fld(1)
    );
}

#[test]
fn table_lookup_prefers_exact_names() {
    let history = vec![
        created(),
        table_created(1, "tasks"),
        table_created(2, "Tasks"),
    ];
    let state = TestHarness::<Base>::given(history).state().clone();
    assert_eq!(state.table_by_name_or_id("Tasks").unwrap().id, tbl(2));
    assert_eq!(state.table_by_name_or_id("tasks").unwrap().id, tbl(1));
    assert_eq!(state.table_by_name_or_id("TASKS").unwrap().id, tbl(1));
    assert!(state.table_by_name_or_id("Nope").is_none());
}

#[test]
fn create_table_with_explicit_primary() {
    let mut t = table(1, "Tasks");
    t.fields.push(text(2, "Code"));
    t.primary_field_id = fld(2);
    TestHarness::<Base>::given([created()])
        .when(C::CreateTable {
            table_id: tbl(1),
            name: "Tasks".to_owned(),
            description: Some("  all tasks ".to_owned()),
            fields: vec![text(1, "Name"), text(2, "Code")],
            primary_field_id: Some(fld(2)),
            default_view_id: viw(1),
            by: by(),
            at: at(),
        })
        .then([E::TableCreated {
            table: TableSchema {
                description: Some("all tasks".to_owned()),
                ..t
            },
            by: by(),
            at: at(),
        }]);
}

#[test]
fn create_table_rejections() {
    let given = two_tables;
    TestHarness::<Base>::given(given())
        .when(create_table(3, "TASKS", vec![text(3, "Name")]))
        .then_err(BaseError::DuplicateTableName {
            name: "TASKS".to_owned(),
        });
    TestHarness::<Base>::given(given())
        .when(create_table(1, "Other", vec![text(3, "Name")]))
        .then_err(BaseError::DuplicateId {
            subject: Subject::Table,
            id: tbl(1).to_string(),
        });
    TestHarness::<Base>::given(given())
        .when(create_table(3, "Other", vec![]))
        .then_err(BaseError::NoFields);
    TestHarness::<Base>::given(given())
        .when(create_table(3, "", vec![text(3, "Name")]))
        .then_err(invalid_name(Subject::Table, "", "it is empty"));
    TestHarness::<Base>::given(given())
        .when(create_table(
            3,
            "Other",
            vec![text(3, "Name"), text(4, "name ")],
        ))
        .then_err(BaseError::DuplicateFieldName {
            table_id: tbl(3),
            name: "name".to_owned(),
        });
    TestHarness::<Base>::given(given())
        .when(create_table(
            3,
            "Other",
            vec![text(3, "Name"), text(3, "Other")],
        ))
        .then_err(BaseError::DuplicateId {
            subject: Subject::Field,
            id: fld(3).to_string(),
        });
    // Field ids are unique across the base, not just the table.
    TestHarness::<Base>::given(given())
        .when(create_table(3, "Other", vec![text(1, "Name")]))
        .then_err(BaseError::DuplicateId {
            subject: Subject::Field,
            id: fld(1).to_string(),
        });
    let mut c = create_table(3, "Other", vec![text(3, "Name")]);
    if let C::CreateTable {
        default_view_id, ..
    } = &mut c
    {
        *default_view_id = viw(1);
    }
    TestHarness::<Base>::given(given())
        .when(c)
        .then_err(BaseError::DuplicateId {
            subject: Subject::View,
            id: viw(1).to_string(),
        });
    let mut c = create_table(3, "Other", vec![text(3, "Name")]);
    if let C::CreateTable {
        primary_field_id, ..
    } = &mut c
    {
        *primary_field_id = Some(fld(9));
    }
    TestHarness::<Base>::given(given())
        .when(c)
        .then_err(BaseError::FieldNotFound {
            table_id: tbl(3),
            field_id: fld(9),
        });
}

#[test]
fn primary_field_must_have_an_allowed_type() {
    let checkbox = FieldType::Checkbox(CheckboxOptions {
        icon: "check".to_owned(),
        color: "greenBright".to_owned(),
    });
    TestHarness::<Base>::given(two_tables())
        .when(create_table(3, "Other", vec![typed(3, "Done", checkbox)]))
        .then_err(BaseError::InvalidPrimaryFieldType {
            field_id: fld(3),
            field_type: "checkbox",
        });
    TestHarness::<Base>::given(two_tables())
        .when(create_table(
            3,
            "Other",
            vec![typed(3, "Who", link_to(2, None))],
        ))
        .then_err(BaseError::InvalidPrimaryFieldType {
            field_id: fld(3),
            field_type: "multipleRecordLinks",
        });
}

#[test]
fn create_table_with_link_creates_the_inverse_in_the_target() {
    let link = typed(4, "Owner", link_to(2, Some(5)));
    let inverse = typed(
        5,
        "Projects",
        FieldType::MultipleRecordLinks(LinkOptions {
            linked_table_id: tbl(3),
            inverse_link_field_id: Some(fld(4)),
            prefers_single_record_link: false,
        }),
    );
    let mut t = table(3, "Projects");
    t.fields.push(link.clone());
    let state = TestHarness::<Base>::given(two_tables())
        .when(create_table(3, "Projects", vec![text(3, "Name"), link]))
        .then([
            E::TableCreated {
                table: t,
                by: by(),
                at: at(),
            },
            field_created(2, inverse),
        ]);
    assert_eq!(state.table(&tbl(2)).unwrap().fields.len(), 2);
}

#[test]
fn link_fields_must_target_a_table_of_this_base() {
    TestHarness::<Base>::given(two_tables())
        .when(add_field(1, typed(4, "Elsewhere", link_to(9, Some(5)))))
        .then_err(BaseError::LinkTargetNotFound {
            field_name: "Elsewhere".to_owned(),
            table_id: tbl(9),
        });
}

#[test]
fn inverse_field_ids_must_be_new() {
    TestHarness::<Base>::given(two_tables())
        .when(add_field(1, typed(4, "Owner", link_to(2, Some(2)))))
        .then_err(BaseError::DuplicateId {
            subject: Subject::Field,
            id: fld(2).to_string(),
        });
}

#[test]
fn update_table() {
    TestHarness::<Base>::given(two_tables())
        .when(C::UpdateTable {
            table_id: tbl(1),
            name: Some("Todos".to_owned()),
            description: Some(Some("things".to_owned())),
            by: by(),
            at: at(),
        })
        .then([E::TableUpdated {
            table_id: tbl(1),
            name: "Todos".to_owned(),
            description: Some("things".to_owned()),
            by: by(),
            at: at(),
        }]);
    // Renaming to a case variant of its own name is allowed.
    TestHarness::<Base>::given(two_tables())
        .when(C::UpdateTable {
            table_id: tbl(1),
            name: Some("TASKS".to_owned()),
            description: None,
            by: by(),
            at: at(),
        })
        .then([E::TableUpdated {
            table_id: tbl(1),
            name: "TASKS".to_owned(),
            description: None,
            by: by(),
            at: at(),
        }]);
    TestHarness::<Base>::given(two_tables())
        .when(C::UpdateTable {
            table_id: tbl(1),
            name: Some("Tasks".to_owned()),
            description: Some(None),
            by: by(),
            at: at(),
        })
        .then([]);
}

#[test]
fn update_table_rejections() {
    TestHarness::<Base>::given(two_tables())
        .when(C::UpdateTable {
            table_id: tbl(1),
            name: Some("people".to_owned()),
            description: None,
            by: by(),
            at: at(),
        })
        .then_err(BaseError::DuplicateTableName {
            name: "people".to_owned(),
        });
    TestHarness::<Base>::given(two_tables())
        .when(C::UpdateTable {
            table_id: tbl(9),
            name: Some("X".to_owned()),
            description: None,
            by: by(),
            at: at(),
        })
        .then_err(BaseError::TableNotFound(tbl(9)));
}

#[test]
fn delete_table_removes_links_pointing_to_it() {
    let mut history = two_tables();
    history.push(field_created(1, typed(4, "Owner", link_to(2, Some(5)))));
    history.push(field_created(2, typed(5, "Tasks", link_to(1, Some(4)))));
    let state = TestHarness::<Base>::given(history)
        .when(C::DeleteTable {
            table_id: tbl(2),
            by: by(),
            at: at(),
        })
        .then([
            E::FieldDeleted {
                table_id: tbl(1),
                field_id: fld(4),
                by: by(),
                at: at(),
            },
            E::TableDeleted {
                table_id: tbl(2),
                by: by(),
                at: at(),
            },
        ]);
    assert_eq!(state.tables.len(), 1);
    assert_eq!(state.tables[0].fields.len(), 1);
}

#[test]
fn delete_table_rejections() {
    TestHarness::<Base>::given(two_tables())
        .when(C::DeleteTable {
            table_id: tbl(9),
            by: by(),
            at: at(),
        })
        .then_err(BaseError::TableNotFound(tbl(9)));
    TestHarness::<Base>::given([created(), table_created(1, "Tasks")])
        .when(C::DeleteTable {
            table_id: tbl(1),
            by: by(),
            at: at(),
        })
        .then_err(BaseError::LastTable(tbl(1)));
}

// --- fields ---------------------------------------------------------------------------------

#[test]
fn add_field_accepted() {
    let state = TestHarness::<Base>::given(two_tables())
        .when(add_field(1, text(4, " Notes ")))
        .then([field_created(1, text(4, "Notes"))]);
    assert_eq!(state.table(&tbl(1)).unwrap().fields.len(), 2);
}

#[test]
fn add_field_rejections() {
    TestHarness::<Base>::given(two_tables())
        .when(add_field(1, text(4, "NAME")))
        .then_err(BaseError::DuplicateFieldName {
            table_id: tbl(1),
            name: "NAME".to_owned(),
        });
    TestHarness::<Base>::given(two_tables())
        .when(add_field(9, text(4, "Notes")))
        .then_err(BaseError::TableNotFound(tbl(9)));
    TestHarness::<Base>::given(two_tables())
        .when(add_field(1, text(4, "")))
        .then_err(invalid_name(Subject::Field, "", "it is empty"));
    let long = "f".repeat(256);
    TestHarness::<Base>::given(two_tables())
        .when(add_field(1, text(4, &long)))
        .then_err(invalid_name(
            Subject::Field,
            &long,
            "it is longer than 255 characters",
        ));
    TestHarness::<Base>::given(two_tables())
        .when(add_field(
            1,
            typed(
                4,
                "Amount",
                FieldType::Number(NumberOptions { precision: 9 }),
            ),
        ))
        .then_err(BaseError::InvalidFieldOptions {
            field_name: "Amount".to_owned(),
            reason: "precision 9 is out of range 0..=8".to_owned(),
        });
    let mut history = two_tables();
    history.push(field_created(1, typed(4, "Status", select(&[(1, "a")]))));
    TestHarness::<Base>::given(history)
        .when(add_field(2, typed(5, "Kind", select(&[(1, "b")]))))
        .then_err(BaseError::DuplicateId {
            subject: Subject::Choice,
            id: sel(1).to_string(),
        });
}

#[test]
fn add_link_field_creates_inverse_named_after_the_table() {
    // People already has a field named "Tasks", so the inverse becomes "Tasks 2".
    let mut history = two_tables();
    history.push(field_created(2, text(6, "Tasks")));
    TestHarness::<Base>::given(history)
        .when(add_field(1, typed(4, "Owner", link_to(2, Some(5)))))
        .then([
            field_created(1, typed(4, "Owner", link_to(2, Some(5)))),
            field_created(2, typed(5, "Tasks 2", link_to(1, Some(4)))),
        ]);
}

#[test]
fn self_link_inverse_lives_in_the_same_table() {
    TestHarness::<Base>::given(two_tables())
        .when(add_field(1, typed(4, "Parent", link_to(1, Some(5)))))
        .then([
            field_created(1, typed(4, "Parent", link_to(1, Some(5)))),
            field_created(1, typed(5, "Tasks", link_to(1, Some(4)))),
        ]);
    TestHarness::<Base>::given(two_tables())
        .when(add_field(1, typed(4, "Related", link_to(1, None))))
        .then([field_created(1, typed(4, "Related", link_to(1, None)))]);
}

#[test]
fn update_field_name_and_description() {
    TestHarness::<Base>::given(two_tables())
        .when(
            UF {
                name: Some("Title".to_owned()),
                description: Some(Some("the title".to_owned())),
                ..UF::new(1, 1)
            }
            .cmd(),
        )
        .then([E::FieldUpdated {
            table_id: tbl(1),
            field: FieldDef {
                description: Some("the title".to_owned()),
                ..text(1, "Title")
            },
            conversion: Conversion::Lossless,
            previous_type: None,
            by: by(),
            at: at(),
        }]);
    TestHarness::<Base>::given(two_tables())
        .when(
            UF {
                name: Some("Name".to_owned()),
                ..UF::new(1, 1)
            }
            .cmd(),
        )
        .then([]);
}

#[test]
fn update_field_rejections() {
    let mut history = two_tables();
    history.push(field_created(1, text(4, "Notes")));
    TestHarness::<Base>::given(history.clone())
        .when(
            UF {
                name: Some("notes".to_owned()),
                ..UF::new(1, 1)
            }
            .cmd(),
        )
        .then_err(BaseError::DuplicateFieldName {
            table_id: tbl(1),
            name: "notes".to_owned(),
        });
    TestHarness::<Base>::given(history.clone())
        .when(UF::new(1, 9).cmd())
        .then_err(BaseError::FieldNotFound {
            table_id: tbl(1),
            field_id: fld(9),
        });
    TestHarness::<Base>::given(history.clone())
        .when(
            UF {
                field_type: Some(FieldType::Number(NumberOptions { precision: 0 })),
                ..UF::new(1, 4)
            }
            .cmd(),
        )
        .then_err(BaseError::LossyConversion {
            field_id: fld(4),
            from: "singleLineText",
            to: "number",
        });
    TestHarness::<Base>::given(history.clone())
        .when(
            UF {
                field_type: Some(link_to(2, None)),
                allow_lossy: true,
                ..UF::new(1, 4)
            }
            .cmd(),
        )
        .then_err(BaseError::ImpossibleConversion {
            field_id: fld(4),
            from: "singleLineText",
            to: "multipleRecordLinks",
        });
    TestHarness::<Base>::given(history.clone())
        .when(
            UF {
                field_type: Some(FieldType::Checkbox(CheckboxOptions {
                    icon: "check".to_owned(),
                    color: "greenBright".to_owned(),
                })),
                allow_lossy: true,
                ..UF::new(1, 1)
            }
            .cmd(),
        )
        .then_err(BaseError::InvalidPrimaryFieldType {
            field_id: fld(1),
            field_type: "checkbox",
        });
    TestHarness::<Base>::given(history)
        .when(
            UF {
                field_type: Some(FieldType::Number(NumberOptions { precision: 10 })),
                allow_lossy: true,
                ..UF::new(1, 4)
            }
            .cmd(),
        )
        .then_err(BaseError::InvalidFieldOptions {
            field_name: "Notes".to_owned(),
            reason: "precision 10 is out of range 0..=8".to_owned(),
        });
}

#[test]
fn update_field_type_lossless_and_lossy() {
    let mut history = two_tables();
    history.push(field_created(1, text(4, "Notes")));
    TestHarness::<Base>::given(history.clone())
        .when(
            UF {
                field_type: Some(FieldType::MultilineText),
                ..UF::new(1, 4)
            }
            .cmd(),
        )
        .then([E::FieldUpdated {
            table_id: tbl(1),
            field: typed(4, "Notes", FieldType::MultilineText),
            conversion: Conversion::Lossless,
            previous_type: Some(FieldType::SingleLineText),
            by: by(),
            at: at(),
        }]);
    let number = FieldType::Number(NumberOptions { precision: 1 });
    TestHarness::<Base>::given(history)
        .when(
            UF {
                field_type: Some(number.clone()),
                allow_lossy: true,
                ..UF::new(1, 4)
            }
            .cmd(),
        )
        .then([E::FieldUpdated {
            table_id: tbl(1),
            field: typed(4, "Notes", number),
            conversion: Conversion::Lossy,
            previous_type: Some(FieldType::SingleLineText),
            by: by(),
            at: at(),
        }]);
}

#[test]
fn delete_field() {
    let mut history = two_tables();
    history.push(field_created(1, text(4, "Notes")));
    history.push(E::ViewCreated {
        table_id: tbl(1),
        view: ViewDef {
            id: viw(7),
            name: "Sorted".to_owned(),
            is_default: false,
            filter_formula: None,
            sorts: vec![Sort {
                field_id: fld(4),
                direction: SortDirection::Desc,
            }],
            visible_field_ids: Some(vec![fld(1), fld(4)]),
        },
        by: by(),
        at: at(),
    });
    let state = TestHarness::<Base>::given(history)
        .when(C::DeleteField {
            table_id: tbl(1),
            field_id: fld(4),
            by: by(),
            at: at(),
        })
        .then([E::FieldDeleted {
            table_id: tbl(1),
            field_id: fld(4),
            by: by(),
            at: at(),
        }]);
    let view = state.table(&tbl(1)).unwrap().view(&viw(7)).unwrap();
    assert!(view.sorts.is_empty());
    assert_eq!(view.visible_field_ids, Some(vec![fld(1)]));
}

#[test]
fn delete_link_field_deletes_its_inverse() {
    let mut history = two_tables();
    history.push(field_created(1, typed(4, "Owner", link_to(2, Some(5)))));
    history.push(field_created(2, typed(5, "Tasks", link_to(1, Some(4)))));
    TestHarness::<Base>::given(history)
        .when(C::DeleteField {
            table_id: tbl(2),
            field_id: fld(5),
            by: by(),
            at: at(),
        })
        .then([
            E::FieldDeleted {
                table_id: tbl(2),
                field_id: fld(5),
                by: by(),
                at: at(),
            },
            E::FieldDeleted {
                table_id: tbl(1),
                field_id: fld(4),
                by: by(),
                at: at(),
            },
        ]);
}

#[test]
fn delete_field_rejections() {
    TestHarness::<Base>::given(two_tables())
        .when(C::DeleteField {
            table_id: tbl(1),
            field_id: fld(1),
            by: by(),
            at: at(),
        })
        .then_err(BaseError::PrimaryFieldNotDeletable(fld(1)));
    TestHarness::<Base>::given(two_tables())
        .when(C::DeleteField {
            table_id: tbl(1),
            field_id: fld(2),
            by: by(),
            at: at(),
        })
        .then_err(BaseError::FieldNotFound {
            table_id: tbl(1),
            field_id: fld(2),
        });
}

#[test]
fn set_primary_field() {
    let mut history = two_tables();
    history.push(field_created(1, text(4, "Code")));
    history.push(field_created(1, typed(6, "Owner", link_to(2, None))));
    let state = TestHarness::<Base>::given(history.clone())
        .when(C::SetPrimaryField {
            table_id: tbl(1),
            field_id: fld(4),
            by: by(),
            at: at(),
        })
        .then([E::PrimaryFieldSet {
            table_id: tbl(1),
            field_id: fld(4),
            by: by(),
            at: at(),
        }]);
    assert_eq!(
        state.table(&tbl(1)).unwrap().primary_field().unwrap().name,
        "Code"
    );
    TestHarness::<Base>::given(history.clone())
        .when(C::SetPrimaryField {
            table_id: tbl(1),
            field_id: fld(6),
            by: by(),
            at: at(),
        })
        .then_err(BaseError::InvalidPrimaryFieldType {
            field_id: fld(6),
            field_type: "multipleRecordLinks",
        });
    TestHarness::<Base>::given(history)
        .when(C::SetPrimaryField {
            table_id: tbl(1),
            field_id: fld(1),
            by: by(),
            at: at(),
        })
        .then([]);
}

#[test]
fn add_choices() {
    let mut history = two_tables();
    history.push(field_created(1, typed(4, "Status", select(&[(1, "Todo")]))));
    let new = |i: u8, name: &str| Choice {
        id: sel(i),
        name: name.to_owned(),
        color: None,
    };
    let state = TestHarness::<Base>::given(history.clone())
        .when(C::AddChoices {
            table_id: tbl(1),
            field_id: fld(4),
            // "Todo" exists already (a concurrent typecast added it): skipped.
            choices: vec![new(2, "Done"), new(3, "Todo")],
            by: by(),
            at: at(),
        })
        .then([E::ChoicesAdded {
            table_id: tbl(1),
            field_id: fld(4),
            choices: vec![new(2, "Done")],
            by: by(),
            at: at(),
        }]);
    let names: Vec<&str> = state
        .table(&tbl(1))
        .unwrap()
        .field(&fld(4))
        .unwrap()
        .field_type
        .choices()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["Todo", "Done"]);
    TestHarness::<Base>::given(history.clone())
        .when(C::AddChoices {
            table_id: tbl(1),
            field_id: fld(4),
            choices: vec![new(5, "Todo")],
            by: by(),
            at: at(),
        })
        .then([]);
    TestHarness::<Base>::given(history.clone())
        .when(C::AddChoices {
            table_id: tbl(1),
            field_id: fld(4),
            choices: vec![new(1, "Other")],
            by: by(),
            at: at(),
        })
        .then_err(BaseError::DuplicateId {
            subject: Subject::Choice,
            id: sel(1).to_string(),
        });
    TestHarness::<Base>::given(history)
        .when(C::AddChoices {
            table_id: tbl(1),
            field_id: fld(1),
            choices: vec![new(2, "Done")],
            by: by(),
            at: at(),
        })
        .then_err(BaseError::NotASelectField(fld(1)));
}

// --- views ----------------------------------------------------------------------------------

fn create_view(view: u8, name: &str) -> C {
    C::CreateView {
        view_id: viw(view),
        table_id: tbl(1),
        name: name.to_owned(),
        filter_formula: Some(" {Name} != '' ".to_owned()),
        sorts: vec![Sort {
            field_id: fld(1),
            direction: SortDirection::Asc,
        }],
        visible_field_ids: Some(vec![fld(1)]),
        by: by(),
        at: at(),
    }
}

fn view(view: u8, name: &str) -> ViewDef {
    ViewDef {
        id: viw(view),
        name: name.to_owned(),
        is_default: false,
        filter_formula: Some("{Name} != ''".to_owned()),
        sorts: vec![Sort {
            field_id: fld(1),
            direction: SortDirection::Asc,
        }],
        visible_field_ids: Some(vec![fld(1)]),
    }
}

fn with_view() -> Vec<E> {
    let mut h = two_tables();
    h.push(E::ViewCreated {
        table_id: tbl(1),
        view: view(7, "Mine"),
        by: by(),
        at: at(),
    });
    h
}

#[test]
fn create_view_accepted() {
    TestHarness::<Base>::given(two_tables())
        .when(create_view(7, "Mine"))
        .then([E::ViewCreated {
            table_id: tbl(1),
            view: view(7, "Mine"),
            by: by(),
            at: at(),
        }]);
}

#[test]
fn new_fields_become_visible_in_views_that_list_fields() {
    let state = TestHarness::<Base>::given(with_view())
        .when(add_field(1, text(4, "Notes")))
        .then([field_created(1, text(4, "Notes"))]);
    let t = state.table(&tbl(1)).unwrap();
    assert_eq!(
        t.view(&viw(7)).unwrap().visible_field_ids,
        Some(vec![fld(1), fld(4)])
    );
    assert_eq!(t.view(&viw(1)).unwrap().visible_field_ids, None);
}

#[test]
fn create_view_rejections() {
    TestHarness::<Base>::given(with_view())
        .when(create_view(8, "MINE"))
        .then_err(BaseError::DuplicateViewName {
            table_id: tbl(1),
            name: "MINE".to_owned(),
        });
    TestHarness::<Base>::given(with_view())
        .when(create_view(2, "Other"))
        .then_err(BaseError::DuplicateId {
            subject: Subject::View,
            id: viw(2).to_string(),
        });
    TestHarness::<Base>::given(with_view())
        .when(create_view(8, " "))
        .then_err(invalid_name(Subject::View, " ", "it is empty"));
    let mut c = create_view(8, "Other");
    if let C::CreateView { sorts, .. } = &mut c {
        sorts[0].field_id = fld(2);
    }
    TestHarness::<Base>::given(with_view())
        .when(c)
        .then_err(BaseError::FieldNotFound {
            table_id: tbl(1),
            field_id: fld(2),
        });
    let mut c = create_view(8, "Other");
    if let C::CreateView {
        visible_field_ids, ..
    } = &mut c
    {
        *visible_field_ids = Some(vec![fld(3)]);
    }
    TestHarness::<Base>::given(with_view())
        .when(c)
        .then_err(BaseError::FieldNotFound {
            table_id: tbl(1),
            field_id: fld(3),
        });
}

/// The optional parts of `UpdateView` on table 1.
struct UV {
    view: u8,
    name: Option<String>,
    filter_formula: Option<Option<String>>,
    sorts: Option<Vec<Sort>>,
    visible_field_ids: Option<Option<Vec<FieldId>>>,
}

impl UV {
    fn new(view: u8) -> Self {
        Self {
            view,
            name: None,
            filter_formula: None,
            sorts: None,
            visible_field_ids: None,
        }
    }

    fn cmd(self) -> C {
        C::UpdateView {
            table_id: tbl(1),
            view_id: viw(self.view),
            name: self.name,
            filter_formula: self.filter_formula,
            sorts: self.sorts,
            visible_field_ids: self.visible_field_ids,
            by: by(),
            at: at(),
        }
    }
}

#[test]
fn update_view_accepted() {
    TestHarness::<Base>::given(with_view())
        .when(
            UV {
                name: Some("Everything".to_owned()),
                filter_formula: Some(None),
                sorts: Some(vec![]),
                visible_field_ids: Some(None),
                ..UV::new(7)
            }
            .cmd(),
        )
        .then([E::ViewUpdated {
            table_id: tbl(1),
            view: ViewDef {
                id: viw(7),
                name: "Everything".to_owned(),
                is_default: false,
                filter_formula: None,
                sorts: vec![],
                visible_field_ids: None,
            },
            by: by(),
            at: at(),
        }]);
    TestHarness::<Base>::given(with_view())
        .when(UV::new(7).cmd())
        .then([]);
}

#[test]
fn update_view_rejections() {
    TestHarness::<Base>::given(with_view())
        .when(
            UV {
                name: Some("grid VIEW".to_owned()),
                ..UV::new(7)
            }
            .cmd(),
        )
        .then_err(BaseError::DuplicateViewName {
            table_id: tbl(1),
            name: "grid VIEW".to_owned(),
        });
    TestHarness::<Base>::given(with_view())
        .when(UV::new(9).cmd())
        .then_err(BaseError::ViewNotFound {
            table_id: tbl(1),
            view_id: viw(9),
        });
    TestHarness::<Base>::given(with_view())
        .when(
            UV {
                visible_field_ids: Some(Some(vec![fld(9)])),
                ..UV::new(7)
            }
            .cmd(),
        )
        .then_err(BaseError::FieldNotFound {
            table_id: tbl(1),
            field_id: fld(9),
        });
}

#[test]
fn delete_view() {
    TestHarness::<Base>::given(with_view())
        .when(C::DeleteView {
            table_id: tbl(1),
            view_id: viw(7),
            by: by(),
            at: at(),
        })
        .then([E::ViewDeleted {
            table_id: tbl(1),
            view_id: viw(7),
            by: by(),
            at: at(),
        }]);
    TestHarness::<Base>::given(with_view())
        .when(C::DeleteView {
            table_id: tbl(1),
            view_id: viw(1),
            by: by(),
            at: at(),
        })
        .then_err(BaseError::DefaultViewNotDeletable(viw(1)));
    TestHarness::<Base>::given(with_view())
        .when(C::DeleteView {
            table_id: tbl(1),
            view_id: viw(9),
            by: by(),
            at: at(),
        })
        .then_err(BaseError::ViewNotFound {
            table_id: tbl(1),
            view_id: viw(9),
        });
}

#[test]
fn errors_name_the_subject_and_value() {
    let e = BaseError::DuplicateFieldName {
        table_id: tbl(1),
        name: "Notes".to_owned(),
    };
    assert!(e.to_string().contains("\"Notes\""));
    assert!(e.to_string().contains(tbl(1).as_str()));
    let e = BaseError::LossyConversion {
        field_id: fld(4),
        from: "singleLineText",
        to: "number",
    };
    assert!(e.to_string().contains("allow_lossy"));
}
