//! Field type serialisation (Airtable's metadata-API shape), option checks and conversions.

use pyairtable_domain::fields::{
    CheckboxOptions, Choice, Conversion, CurrencyOptions, DateFormat, DateOptions, DateTimeOptions,
    DurationFormat, DurationOptions, FieldDef, FieldType, FormulaOptions, LinkOptions,
    NumberOptions, RatingOptions, SelectOptions, TimeFormat, conversion, convert_cell,
};
use pyairtable_domain::ids::{ChoiceId, FieldId, TableId};
use serde_json::{Value, json};

fn choice(n: u8, name: &str) -> Choice {
    Choice {
        id: ChoiceId::from_suffix([n; 14]),
        name: name.to_owned(),
        color: None,
    }
}

fn single(names: &[&str]) -> FieldType {
    FieldType::SingleSelect(SelectOptions {
        choices: names.iter().zip(0u8..).map(|(n, i)| choice(i, n)).collect(),
    })
}

fn multi(names: &[&str]) -> FieldType {
    FieldType::MultipleSelects(SelectOptions {
        choices: names.iter().zip(0u8..).map(|(n, i)| choice(i, n)).collect(),
    })
}

fn number(precision: u8) -> FieldType {
    FieldType::Number(NumberOptions { precision })
}

fn link(table: u8, inverse: Option<u8>) -> FieldType {
    FieldType::MultipleRecordLinks(LinkOptions {
        linked_table_id: TableId::from_suffix([table; 14]),
        inverse_link_field_id: inverse.map(|i| FieldId::from_suffix([i; 14])),
        prefers_single_record_link: false,
    })
}

#[test]
fn serialises_in_airtable_metadata_shape() {
    let f = FieldDef {
        id: FieldId::from_suffix([1; 14]),
        name: "Status".to_owned(),
        description: None,
        field_type: FieldType::SingleSelect(SelectOptions {
            choices: vec![Choice {
                id: ChoiceId::from_suffix([2; 14]),
                name: "Done".to_owned(),
                color: Some("greenLight2".to_owned()),
            }],
        }),
    };
    let json = serde_json::to_value(&f).unwrap();
    assert_eq!(
        json,
        json!({"id": "fld11111111111111", "name": "Status", "type": "singleSelect",
               "options": {"choices": [{"id": "sel22222222222222", "name": "Done", "color": "greenLight2"}]}})
    );
    assert_eq!(serde_json::from_value::<FieldDef>(json).unwrap(), f);

    let text = FieldDef {
        field_type: FieldType::SingleLineText,
        description: Some("d".to_owned()),
        ..f
    };
    let json = serde_json::to_value(&text).unwrap();
    assert_eq!(
        json,
        json!({"id": "fld11111111111111", "name": "Status", "description": "d", "type": "singleLineText"})
    );
    assert_eq!(serde_json::from_value::<FieldDef>(json).unwrap(), text);
}

#[test]
fn every_type_round_trips() {
    let types = vec![
        FieldType::SingleLineText,
        FieldType::MultilineText,
        FieldType::RichText,
        FieldType::Email,
        FieldType::Url,
        FieldType::PhoneNumber,
        number(2),
        FieldType::Currency(CurrencyOptions {
            precision: 2,
            symbol: "€".to_owned(),
        }),
        FieldType::Percent(NumberOptions { precision: 0 }),
        FieldType::Rating(RatingOptions {
            max: 5,
            icon: "heart".to_owned(),
            color: "redBright".to_owned(),
        }),
        FieldType::Duration(DurationOptions {
            duration_format: DurationFormat::HMmSsSs,
        }),
        FieldType::Checkbox(CheckboxOptions {
            icon: "check".to_owned(),
            color: "greenBright".to_owned(),
        }),
        FieldType::Date(DateOptions {
            date_format: DateFormat::Friendly,
        }),
        FieldType::DateTime(DateTimeOptions {
            date_format: DateFormat::Us,
            time_format: TimeFormat::TwelveHour,
            time_zone: "America/New_York".to_owned(),
        }),
        single(&["a"]),
        multi(&["a", "b"]),
        link(3, Some(4)),
        FieldType::MultipleAttachments,
        FieldType::CreatedTime,
        FieldType::LastModifiedTime,
        FieldType::CreatedBy,
        FieldType::LastModifiedBy,
        FieldType::AutoNumber,
        FieldType::Formula(FormulaOptions {
            formula: "{A} * 2".to_owned(),
            result: Some(Box::new(number(1))),
        }),
    ];
    for t in types {
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["type"], json!(t.type_name()));
        assert_eq!(serde_json::from_value::<FieldType>(json).unwrap(), t);
        assert_eq!(t.check_options(), Ok(()), "{}", t.type_name());
    }
}

#[test]
fn option_shapes_follow_airtable() {
    let dt = FieldType::DateTime(DateTimeOptions {
        date_format: DateFormat::Iso,
        time_format: TimeFormat::TwentyFourHour,
        time_zone: "utc".to_owned(),
    });
    assert_eq!(
        serde_json::to_value(&dt).unwrap(),
        json!({"type": "dateTime", "options": {
            "dateFormat": {"name": "iso", "format": "YYYY-MM-DD"},
            "timeFormat": {"name": "24hour", "format": "HH:mm"},
            "timeZone": "utc"}})
    );
    let parsed: FieldType = serde_json::from_value(
        json!({"type": "duration", "options": {"durationFormat": "h:mm:ss"}}),
    )
    .unwrap();
    assert_eq!(
        parsed,
        FieldType::Duration(DurationOptions {
            duration_format: DurationFormat::HMmSs
        })
    );
    let parsed: FieldType = serde_json::from_value(
        json!({"type": "multipleRecordLinks", "options": {"linkedTableId": "tbl33333333333333"}}),
    )
    .unwrap();
    assert_eq!(parsed, link(3, None));
    assert!(
        serde_json::from_value::<FieldType>(
            json!({"type": "date", "options": {"dateFormat": {"name": "martian"}}})
        )
        .is_err()
    );
    assert!(serde_json::from_value::<FieldType>(json!({"type": "hologram"})).is_err());
}

#[test]
fn options_out_of_range_are_rejected_naming_the_value() {
    let bad: Vec<(FieldType, &str)> = vec![
        (number(9), "precision 9"),
        (
            FieldType::Percent(NumberOptions { precision: 12 }),
            "precision 12",
        ),
        (
            FieldType::Currency(CurrencyOptions {
                precision: 8,
                symbol: "$".to_owned(),
            }),
            "precision 8",
        ),
        (
            FieldType::Currency(CurrencyOptions {
                precision: 2,
                symbol: " ".to_owned(),
            }),
            "symbol",
        ),
        (
            FieldType::Rating(RatingOptions {
                max: 11,
                icon: "star".to_owned(),
                color: "yellowBright".to_owned(),
            }),
            "max 11",
        ),
        (
            FieldType::Rating(RatingOptions {
                max: 0,
                icon: "star".to_owned(),
                color: "yellowBright".to_owned(),
            }),
            "max 0",
        ),
        (
            FieldType::Rating(RatingOptions {
                max: 5,
                icon: "moon".to_owned(),
                color: "yellowBright".to_owned(),
            }),
            "\"moon\"",
        ),
        (
            FieldType::Checkbox(CheckboxOptions {
                icon: "check".to_owned(),
                color: "mauve".to_owned(),
            }),
            "\"mauve\"",
        ),
        (
            FieldType::DateTime(DateTimeOptions {
                date_format: DateFormat::Iso,
                time_format: TimeFormat::TwelveHour,
                time_zone: "Mars/Olympus".to_owned(),
            }),
            "Mars/Olympus",
        ),
        (single(&["a", "a"]), "\"a\" is used twice"),
        (single(&[" "]), "empty name"),
        (
            FieldType::SingleSelect(SelectOptions {
                choices: vec![choice(1, "a"), choice(1, "b")],
            }),
            "used twice",
        ),
        (
            FieldType::MultipleSelects(SelectOptions {
                choices: vec![Choice {
                    color: Some("plaid".to_owned()),
                    ..choice(1, "a")
                }],
            }),
            "plaid",
        ),
        (
            FieldType::Formula(FormulaOptions {
                formula: " ".to_owned(),
                result: None,
            }),
            "formula",
        ),
    ];
    for (t, needle) in bad {
        let err = t.check_options().unwrap_err();
        assert!(
            err.contains(needle),
            "{}: {err} lacks {needle}",
            t.type_name()
        );
    }
}

#[test]
fn primary_field_types_follow_airtable() {
    assert!(FieldType::SingleLineText.can_be_primary());
    assert!(number(0).can_be_primary());
    assert!(FieldType::AutoNumber.can_be_primary());
    for t in [
        link(1, None),
        FieldType::MultipleAttachments,
        FieldType::Checkbox(CheckboxOptions {
            icon: "check".to_owned(),
            color: "greenBright".to_owned(),
        }),
        single(&["a"]),
        multi(&["a"]),
        FieldType::CreatedBy,
    ] {
        assert!(!t.can_be_primary(), "{}", t.type_name());
    }
}

#[test]
fn conversions_are_classified() {
    use Conversion::{Impossible, Lossless, Lossy};
    let date = FieldType::Date(DateOptions {
        date_format: DateFormat::Iso,
    });
    let date_time = FieldType::DateTime(DateTimeOptions {
        date_format: DateFormat::Iso,
        time_format: TimeFormat::TwentyFourHour,
        time_zone: "utc".to_owned(),
    });
    let formula = FieldType::Formula(FormulaOptions {
        formula: "1".to_owned(),
        result: None,
    });
    let cases: Vec<(FieldType, FieldType, Conversion)> = vec![
        (
            FieldType::SingleLineText,
            FieldType::MultilineText,
            Lossless,
        ),
        (FieldType::MultilineText, FieldType::SingleLineText, Lossy),
        (number(2), FieldType::SingleLineText, Lossless),
        (FieldType::SingleLineText, number(2), Lossy),
        (FieldType::SingleLineText, FieldType::Email, Lossy),
        (number(2), number(4), Lossless),
        (number(4), number(2), Lossy),
        (
            number(0),
            FieldType::Percent(NumberOptions { precision: 0 }),
            Lossless,
        ),
        (date.clone(), date_time.clone(), Lossless),
        (date_time, date.clone(), Lossy),
        (single(&["a"]), multi(&["a", "b"]), Lossless),
        (multi(&["a"]), single(&["a"]), Lossy),
        (single(&["a", "b"]), single(&["a"]), Lossy),
        (single(&["a"]), single(&["a", "b"]), Lossless),
        (link(1, Some(2)), link(1, Some(2)), Lossless),
        (link(1, Some(2)), link(5, Some(2)), Impossible),
        (link(1, None), FieldType::SingleLineText, Impossible),
        (FieldType::SingleLineText, link(1, None), Impossible),
        (
            FieldType::MultipleAttachments,
            FieldType::MultilineText,
            Lossy,
        ),
        (FieldType::MultipleAttachments, number(0), Impossible),
        (FieldType::SingleLineText, formula.clone(), Lossy),
        (formula.clone(), FieldType::SingleLineText, Impossible),
        (formula, FieldType::AutoNumber, Lossless),
        (
            date,
            FieldType::Checkbox(CheckboxOptions {
                icon: "check".to_owned(),
                color: "greenBright".to_owned(),
            }),
            Lossy,
        ),
    ];
    for (from, to, expected) in cases {
        assert_eq!(
            conversion(&from, &to),
            expected,
            "{} -> {}",
            from.type_name(),
            to.type_name()
        );
    }
}

#[test]
fn cells_convert() {
    let percent = FieldType::Percent(NumberOptions { precision: 0 });
    let checkbox = FieldType::Checkbox(CheckboxOptions {
        icon: "check".to_owned(),
        color: "greenBright".to_owned(),
    });
    let duration = FieldType::Duration(DurationOptions {
        duration_format: DurationFormat::HMmSs,
    });
    let date = FieldType::Date(DateOptions {
        date_format: DateFormat::Iso,
    });
    let date_time = FieldType::DateTime(DateTimeOptions {
        date_format: DateFormat::Iso,
        time_format: TimeFormat::TwentyFourHour,
        time_zone: "utc".to_owned(),
    });
    let cases: Vec<(Value, FieldType, FieldType, Option<Value>)> = vec![
        (
            json!(42),
            number(0),
            FieldType::SingleLineText,
            Some(json!("42")),
        ),
        (
            json!("42"),
            FieldType::SingleLineText,
            number(0),
            Some(json!(42)),
        ),
        (json!("abc"), FieldType::SingleLineText, number(0), None),
        (json!(1.26), number(2), number(1), Some(json!(1.3))),
        (
            json!(0.5),
            percent.clone(),
            FieldType::SingleLineText,
            Some(json!("50%")),
        ),
        (json!(0.5), percent, number(1), Some(json!(0.5))),
        (
            json!(true),
            checkbox.clone(),
            FieldType::SingleLineText,
            Some(json!("checked")),
        ),
        (json!(true), checkbox.clone(), number(0), Some(json!(1))),
        (
            json!("yes"),
            FieldType::SingleLineText,
            checkbox,
            Some(json!(true)),
        ),
        (
            json!(5415),
            duration,
            FieldType::SingleLineText,
            Some(json!("1:30:15")),
        ),
        (
            json!("2024-05-01"),
            date.clone(),
            date_time.clone(),
            Some(json!("2024-05-01T00:00:00.000Z")),
        ),
        (
            json!("2024-05-01T23:00:00.000Z"),
            date_time,
            date,
            Some(json!("2024-05-01")),
        ),
        (json!("a, b"), multi(&["a", "b"]), single(&["a"]), None),
        (
            json!(["a", "b"]),
            multi(&["a", "b"]),
            single(&["a"]),
            Some(json!("a")),
        ),
        (json!(["b", "a"]), multi(&["a", "b"]), single(&["a"]), None),
        (
            json!("x, y"),
            single(&["x, y"]),
            multi(&["x, y"]),
            Some(json!(["x, y"])),
        ),
        (
            json!(["a", "z"]),
            multi(&["a", "z"]),
            multi(&["a"]),
            Some(json!(["a"])),
        ),
        (
            json!("a"),
            FieldType::SingleLineText,
            single(&["a"]),
            Some(json!("a")),
        ),
        (
            json!("zzz"),
            FieldType::SingleLineText,
            single(&["a"]),
            None,
        ),
        (
            json!("line1\nline2"),
            FieldType::MultilineText,
            FieldType::SingleLineText,
            Some(json!("line1 line2")),
        ),
        (
            json!("not mail"),
            FieldType::SingleLineText,
            FieldType::Email,
            None,
        ),
        (
            json!(["rec00000000000001"]),
            link(1, None),
            FieldType::SingleLineText,
            None,
        ),
        (
            json!([{"id": "att00000000000001", "url": "https://x.test/a.png", "filename": "a.png"}]),
            FieldType::MultipleAttachments,
            FieldType::MultilineText,
            Some(json!("a.png (https://x.test/a.png)")),
        ),
        (
            json!("x"),
            FieldType::SingleLineText,
            FieldType::AutoNumber,
            None,
        ),
        (Value::Null, FieldType::SingleLineText, number(0), None),
    ];
    for (v, from, to, expected) in cases {
        assert_eq!(
            convert_cell(&v, &from, &to),
            expected,
            "{v} {} -> {}",
            from.type_name(),
            to.type_name()
        );
    }
}
