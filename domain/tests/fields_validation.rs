//! Table-driven cell validation: every field type, with and without typecast, accepted and
//! rejected, checking that errors name the field and the value.

use pyairtable_domain::fields::{
    CellErrorReason, CheckboxOptions, Choice, CurrencyOptions, DateFormat, DateOptions,
    DateTimeOptions, DurationFormat, DurationOptions, FieldDef, FieldType, FormulaOptions,
    LinkOptions, NumberOptions, RatingOptions, SelectOptions, TimeFormat, assign_attachment_ids,
    merge_attachment_refs, validate_cell,
};
use pyairtable_domain::ids::{AttachmentId, ChoiceId, FieldId, TableId};
use serde_json::{Value, json};

fn field(field_type: FieldType) -> FieldDef {
    FieldDef {
        id: FieldId::from_suffix([7; 14]),
        name: "Cell".to_owned(),
        description: None,
        field_type,
    }
}

fn select(names: &[&str]) -> SelectOptions {
    SelectOptions {
        choices: names
            .iter()
            .enumerate()
            .map(|(i, n)| Choice {
                id: ChoiceId::from_suffix([u8::try_from(i).unwrap_or(0); 14]),
                name: (*n).to_owned(),
                color: None,
            })
            .collect(),
    }
}

fn number(precision: u8) -> FieldType {
    FieldType::Number(NumberOptions { precision })
}

fn date_time(zone: &str) -> FieldType {
    FieldType::DateTime(DateTimeOptions {
        date_format: DateFormat::Iso,
        time_format: TimeFormat::TwentyFourHour,
        time_zone: zone.to_owned(),
    })
}

/// `Ok(value)`: accepted and normalised to `value`; `Err(code)`: rejected with Airtable's code.
type Expect = Result<Value, &'static str>;

const BAD: &str = "INVALID_VALUE_FOR_COLUMN";
const CHOICE: &str = "INVALID_MULTIPLE_CHOICE_OPTIONS";

#[track_caller]
fn check(field_type: FieldType, input: Value, typecast: bool, expect: Expect) {
    let f = field(field_type.clone());
    let got = validate_cell(&f, &input, typecast);
    match (got, expect) {
        (Ok(cell), Ok(v)) => assert_eq!(
            cell.value,
            v,
            "{} {input} (typecast {typecast})",
            field_type.type_name()
        ),
        (Err(e), Err(code)) => {
            assert_eq!(e.code(), code, "{e}");
            assert_eq!(e.field_name, "Cell");
            assert_eq!(e.field_id, Some(f.id.clone()));
            let shown: String = input.to_string().chars().take(100).collect();
            assert!(e.value.starts_with(&shown), "{} vs {shown}", e.value);
            assert!(e.to_string().contains("\"Cell\""), "{e}");
        }
        (got, expect) => panic!(
            "{} {input} (typecast {typecast}): got {got:?}, expected {expect:?}",
            field_type.type_name()
        ),
    }
}

#[test]
fn text_types() {
    use FieldType::{MultilineText, RichText, SingleLineText};
    let cases: Vec<(FieldType, Value, bool, Expect)> = vec![
        (SingleLineText, json!("hello"), false, Ok(json!("hello"))),
        (SingleLineText, json!("a\nb"), false, Ok(json!("a b"))),
        (SingleLineText, json!(""), false, Ok(Value::Null)),
        (SingleLineText, Value::Null, false, Ok(Value::Null)),
        (SingleLineText, json!(42), false, Err(BAD)),
        (SingleLineText, json!(42), true, Ok(json!("42"))),
        (SingleLineText, json!(true), true, Ok(json!("true"))),
        (SingleLineText, json!(["a", 1]), true, Ok(json!("a, 1"))),
        (SingleLineText, json!({"a": 1}), true, Err(BAD)),
        (MultilineText, json!("a\nb"), false, Ok(json!("a\nb"))),
        (MultilineText, json!([1]), false, Err(BAD)),
        (RichText, json!("**bold**"), false, Ok(json!("**bold**"))),
        (RichText, json!(1.5), true, Ok(json!("1.5"))),
    ];
    for (t, v, tc, e) in cases {
        check(t, v, tc, e);
    }
    let long = "x".repeat(100_001);
    check(MultilineText, json!(long), false, Err(BAD));
    let err = validate_cell(&field(MultilineText), &json!(long), false).unwrap_err();
    assert_eq!(err.reason, CellErrorReason::TooLong { max_chars: 100_000 });
    assert!(err.value.chars().count() <= 101);
}

#[test]
fn email_url_phone() {
    use FieldType::{Email, PhoneNumber, Url};
    let cases: Vec<(FieldType, Value, bool, Expect)> = vec![
        (
            Email,
            json!("ann@example.com"),
            false,
            Ok(json!("ann@example.com")),
        ),
        (
            Email,
            json!("  ann@example.com "),
            false,
            Ok(json!("ann@example.com")),
        ),
        (Email, json!(""), false, Ok(Value::Null)),
        (Email, json!("ann"), false, Err(BAD)),
        (Email, json!("ann@localhost"), false, Err(BAD)),
        (Email, json!("a b@example.com"), false, Err(BAD)),
        (Email, json!("@example.com"), true, Err(BAD)),
        (Email, json!(5), false, Err(BAD)),
        (
            Url,
            json!("https://example.com/x?y=1"),
            false,
            Ok(json!("https://example.com/x?y=1")),
        ),
        (
            Url,
            json!("example.com/path"),
            false,
            Ok(json!("example.com/path")),
        ),
        (
            Url,
            json!("mailto:ann@example.com"),
            false,
            Ok(json!("mailto:ann@example.com")),
        ),
        (Url, json!("not a url"), false, Err(BAD)),
        (Url, json!("nodots"), false, Err(BAD)),
        (Url, json!("://nohost"), false, Err(BAD)),
        (
            PhoneNumber,
            json!("+1 (555) 010-1234"),
            false,
            Ok(json!("+1 (555) 010-1234")),
        ),
        (
            PhoneNumber,
            json!("555-1234 ext 12"),
            false,
            Ok(json!("555-1234 ext 12")),
        ),
        (PhoneNumber, json!("call me"), false, Err(BAD)),
        (PhoneNumber, json!("12"), false, Err(BAD)),
        (PhoneNumber, json!(5_550_101), false, Err(BAD)),
        (PhoneNumber, json!(5_550_101), true, Ok(json!("5550101"))),
    ];
    for (t, v, tc, e) in cases {
        check(t, v, tc, e);
    }
}

#[test]
fn numbers() {
    let currency = FieldType::Currency(CurrencyOptions {
        precision: 2,
        symbol: "$".to_owned(),
    });
    let percent = FieldType::Percent(NumberOptions { precision: 1 });
    let cases: Vec<(FieldType, Value, bool, Expect)> = vec![
        (number(0), json!(42), false, Ok(json!(42))),
        (number(0), json!(41.6), false, Ok(json!(42))),
        (number(0), json!(-2.5), false, Ok(json!(-3))),
        (number(2), json!(1.005_1), false, Ok(json!(1.01))),
        (number(2), json!(3), false, Ok(json!(3))),
        (
            number(8),
            json!(0.123_456_789),
            false,
            Ok(json!(0.123_456_79)),
        ),
        (number(0), json!("42"), false, Err(BAD)),
        (number(0), json!("42"), true, Ok(json!(42))),
        (number(1), json!(" 1,234.56 "), true, Ok(json!(1234.6))),
        (number(0), json!("abc"), true, Err(BAD)),
        (number(0), json!("inf"), true, Err(BAD)),
        (number(0), json!("NaN"), true, Err(BAD)),
        (number(0), json!(""), true, Ok(Value::Null)),
        (number(0), json!(true), true, Ok(json!(1))),
        (number(0), json!([1]), true, Err(BAD)),
        (number(0), json!(1e300), false, Ok(json!(1e300))),
        (currency.clone(), json!(9.999), false, Ok(json!(10))),
        (currency.clone(), json!(9.994), false, Ok(json!(9.99))),
        (
            currency.clone(),
            json!("$1,200.50"),
            true,
            Ok(json!(1200.5)),
        ),
        (currency, json!("$1,200.50"), false, Err(BAD)),
        (percent.clone(), json!(0.5), false, Ok(json!(0.5))),
        (percent.clone(), json!(0.123_45), false, Ok(json!(0.123))),
        (percent.clone(), json!("50%"), true, Ok(json!(0.5))),
        (percent.clone(), json!("0.25"), true, Ok(json!(0.25))),
        (percent, json!("50%"), false, Err(BAD)),
    ];
    for (t, v, tc, e) in cases {
        check(t, v, tc, e);
    }
}

#[test]
fn rating_and_duration() {
    let rating = FieldType::Rating(RatingOptions {
        max: 5,
        icon: "star".to_owned(),
        color: "yellowBright".to_owned(),
    });
    let hmm = FieldType::Duration(DurationOptions {
        duration_format: DurationFormat::HMm,
    });
    let ms = FieldType::Duration(DurationOptions {
        duration_format: DurationFormat::HMmSsSss,
    });
    let cases: Vec<(FieldType, Value, bool, Expect)> = vec![
        (rating.clone(), json!(3), false, Ok(json!(3))),
        (rating.clone(), json!(5), false, Ok(json!(5))),
        (rating.clone(), json!(0), false, Ok(Value::Null)),
        (rating.clone(), json!(6), false, Err(BAD)),
        (rating.clone(), json!(-1), false, Err(BAD)),
        (rating.clone(), json!(2.5), false, Err(BAD)),
        (rating.clone(), json!("4"), false, Err(BAD)),
        (rating.clone(), json!("4"), true, Ok(json!(4))),
        (hmm.clone(), json!(5400), false, Ok(json!(5400))),
        (hmm.clone(), json!(1.4), false, Ok(json!(1))),
        (hmm.clone(), json!("1:30"), true, Ok(json!(5400))),
        (hmm.clone(), json!("1:30:15"), true, Ok(json!(5415))),
        (hmm.clone(), json!("-0:01"), true, Ok(json!(-60))),
        (hmm.clone(), json!("1:75"), true, Err(BAD)),
        (hmm.clone(), json!("1:30"), false, Err(BAD)),
        (hmm.clone(), json!("90"), true, Ok(json!(90))),
        (hmm, json!("soon"), true, Err(BAD)),
        (ms.clone(), json!(1.234_56), false, Ok(json!(1.235))),
        (ms, json!("0:00:01.5"), true, Ok(json!(1.5))),
    ];
    for (t, v, tc, e) in cases {
        check(t, v, tc, e);
    }
    let err = validate_cell(&field(rating), &json!(9), false).unwrap_err();
    assert_eq!(err.reason, CellErrorReason::RatingOutOfRange { max: 5 });
    assert!(err.to_string().contains("1 to 5"));
}

#[test]
fn checkbox() {
    let cb = FieldType::Checkbox(CheckboxOptions {
        icon: "check".to_owned(),
        color: "greenBright".to_owned(),
    });
    let cases: Vec<(Value, bool, Expect)> = vec![
        (json!(true), false, Ok(json!(true))),
        (json!(false), false, Ok(Value::Null)),
        (json!("true"), false, Err(BAD)),
        (json!(1), false, Err(BAD)),
        (json!("yes"), true, Ok(json!(true))),
        (json!("TRUE"), true, Ok(json!(true))),
        (json!("1"), true, Ok(json!(true))),
        (json!("checked"), true, Ok(json!(true))),
        (json!("no"), true, Ok(Value::Null)),
        (json!("0"), true, Ok(Value::Null)),
        (json!(""), true, Ok(Value::Null)),
        (json!(2), true, Ok(json!(true))),
        (json!(0), true, Ok(Value::Null)),
        (json!("maybe"), true, Err(BAD)),
        (json!([true]), true, Err(BAD)),
    ];
    for (v, tc, e) in cases {
        check(cb.clone(), v, tc, e);
    }
}

#[test]
fn dates() {
    let iso = FieldType::Date(DateOptions {
        date_format: DateFormat::Iso,
    });
    let eu = FieldType::Date(DateOptions {
        date_format: DateFormat::European,
    });
    let cases: Vec<(FieldType, Value, bool, Expect)> = vec![
        (
            iso.clone(),
            json!("2024-05-01"),
            false,
            Ok(json!("2024-05-01")),
        ),
        (
            iso.clone(),
            json!("2024-05-01T23:30:00-02:00"),
            false,
            Ok(json!("2024-05-02")),
        ),
        (iso.clone(), json!("2024-02-30"), false, Err(BAD)),
        (iso.clone(), json!("05/01/2024"), false, Err(BAD)),
        (
            iso.clone(),
            json!("05/01/2024"),
            true,
            Ok(json!("2024-05-01")),
        ),
        (
            eu.clone(),
            json!("05/01/2024"),
            true,
            Ok(json!("2024-01-05")),
        ),
        (eu, json!("25/12/2024"), true, Ok(json!("2024-12-25"))),
        (
            iso.clone(),
            json!("May 1, 2024"),
            true,
            Ok(json!("2024-05-01")),
        ),
        (
            iso.clone(),
            json!("1 May 2024"),
            true,
            Ok(json!("2024-05-01")),
        ),
        (
            iso.clone(),
            json!("2024/05/01"),
            true,
            Ok(json!("2024-05-01")),
        ),
        (
            iso.clone(),
            json!("2024-05-01 10:00"),
            true,
            Ok(json!("2024-05-01")),
        ),
        (iso.clone(), json!(""), false, Ok(Value::Null)),
        (iso.clone(), json!("someday"), true, Err(BAD)),
        (iso, json!(20_240_501), true, Err(BAD)),
        (
            date_time("utc"),
            json!("2024-05-01T10:00:00Z"),
            false,
            Ok(json!("2024-05-01T10:00:00.000Z")),
        ),
        (
            date_time("utc"),
            json!("2024-05-01T12:00:00.5+02:00"),
            false,
            Ok(json!("2024-05-01T10:00:00.500Z")),
        ),
        (
            date_time("utc"),
            json!("2024-05-01T10:00"),
            false,
            Ok(json!("2024-05-01T10:00:00.000Z")),
        ),
        (
            date_time("utc"),
            json!("2024-05-01"),
            false,
            Ok(json!("2024-05-01T00:00:00.000Z")),
        ),
        (
            date_time("Europe/Paris"),
            json!("2024-05-01T10:00:00"),
            false,
            Ok(json!("2024-05-01T08:00:00.000Z")),
        ),
        (
            date_time("Europe/Paris"),
            json!("2024-01-01T10:00:00Z"),
            false,
            Ok(json!("2024-01-01T10:00:00.000Z")),
        ),
        (
            date_time("America/New_York"),
            json!("5/1/2024 3:30 PM"),
            true,
            Ok(json!("2024-05-01T19:30:00.000Z")),
        ),
        (
            date_time("client"),
            json!("2024-05-01 10:00"),
            true,
            Ok(json!("2024-05-01T10:00:00.000Z")),
        ),
        (date_time("utc"), json!("5/1/2024 3:30 PM"), false, Err(BAD)),
        (date_time("utc"), json!("tomorrow"), true, Err(BAD)),
        (date_time("utc"), json!(1_714_557_600), false, Err(BAD)),
        // 02:30 does not exist in Paris on 2024-03-31 (clocks jump from 02:00 to 03:00).
        (
            date_time("Europe/Paris"),
            json!("2024-03-31T02:30:00"),
            false,
            Err(BAD),
        ),
    ];
    for (t, v, tc, e) in cases {
        check(t, v, tc, e);
    }
}

#[test]
fn selects() {
    let single = FieldType::SingleSelect(select(&["Todo", "Done"]));
    let multi = FieldType::MultipleSelects(select(&["a", "b", "c"]));
    let cases: Vec<(FieldType, Value, bool, Expect)> = vec![
        (single.clone(), json!("Done"), false, Ok(json!("Done"))),
        (single.clone(), json!(" Done "), false, Ok(json!("Done"))),
        (single.clone(), json!(""), false, Ok(Value::Null)),
        (single.clone(), json!("Doing"), false, Err(CHOICE)),
        (single.clone(), json!("Doing"), true, Ok(json!("Doing"))),
        (single.clone(), json!(3), false, Err(BAD)),
        (single.clone(), json!(["Done"]), false, Err(BAD)),
        (
            single.clone(),
            json!(["Done", "Todo"]),
            true,
            Ok(json!("Done")),
        ),
        (
            multi.clone(),
            json!(["a", "c"]),
            false,
            Ok(json!(["a", "c"])),
        ),
        (
            multi.clone(),
            json!(["a", "a", " c"]),
            false,
            Ok(json!(["a", "c"])),
        ),
        (multi.clone(), json!([]), false, Ok(Value::Null)),
        (multi.clone(), json!("a, b"), false, Err(BAD)),
        (multi.clone(), json!("a, b"), true, Ok(json!(["a", "b"]))),
        (multi.clone(), json!(["a", "z"]), false, Err(CHOICE)),
        (
            multi.clone(),
            json!(["a", "z"]),
            true,
            Ok(json!(["a", "z"])),
        ),
        (multi, json!([{"name": "a"}]), true, Err(BAD)),
    ];
    for (t, v, tc, e) in cases {
        check(t, v, tc, e);
    }
    let cell = validate_cell(&field(single.clone()), &json!("Doing"), true).unwrap();
    assert_eq!(cell.new_choices, vec!["Doing".to_owned()]);
    let cell = validate_cell(&field(single.clone()), &json!("Done"), true).unwrap();
    assert!(cell.new_choices.is_empty());
    let err = validate_cell(&field(single), &json!("Doing"), false).unwrap_err();
    assert_eq!(
        err.reason,
        CellErrorReason::UnknownChoices {
            names: vec!["Doing".to_owned()]
        }
    );
    let cell = validate_cell(
        &field(FieldType::MultipleSelects(select(&["a"]))),
        &json!("a, x, y, x"),
        true,
    )
    .unwrap();
    assert_eq!(cell.value, json!(["a", "x", "y"]));
    assert_eq!(cell.new_choices, vec!["x".to_owned(), "y".to_owned()]);
}

#[test]
fn record_links() {
    let link = FieldType::MultipleRecordLinks(LinkOptions {
        linked_table_id: TableId::from_suffix([1; 14]),
        inverse_link_field_id: None,
        prefers_single_record_link: false,
    });
    let a = "rec00000000000001";
    let b = "recAAAAAAAAAAAAAB";
    let cases: Vec<(Value, bool, Expect)> = vec![
        (json!([a, b]), false, Ok(json!([a, b]))),
        (json!([a, a]), false, Ok(json!([a]))),
        (json!([{"id": a}]), false, Ok(json!([a]))),
        (json!([]), false, Ok(Value::Null)),
        (json!(a), false, Err(BAD)),
        (json!(a), true, Ok(json!([a]))),
        (json!(format!("{a}, {b}")), true, Ok(json!([a, b]))),
        (json!(["tbl00000000000001"]), false, Err(BAD)),
        (json!(["recshort"]), true, Err(BAD)),
        (json!([1]), true, Err(BAD)),
    ];
    for (v, tc, e) in cases {
        check(link.clone(), v, tc, e);
    }
    let err = validate_cell(&field(link), &json!(["recshort"]), false).unwrap_err();
    assert_eq!(
        err.reason,
        CellErrorReason::InvalidRecordId {
            value: "recshort".to_owned()
        }
    );
}

#[test]
fn attachments() {
    let t = FieldType::MultipleAttachments;
    let att = "att00000000000001";
    let cases: Vec<(Value, bool, Expect)> = vec![
        (
            json!([{"url": "https://x.test/a/cat.png"}]),
            false,
            Ok(json!([{"url": "https://x.test/a/cat.png", "filename": "cat.png"}])),
        ),
        (
            json!([{"id": att, "url": "https://x.test/c.png", "filename": "C", "size": 10, "type": "image/png", "width": 3}]),
            false,
            Ok(
                json!([{"id": att, "url": "https://x.test/c.png", "filename": "C", "size": 10, "type": "image/png"}]),
            ),
        ),
        (json!([{"id": att}]), false, Ok(json!([{"id": att}]))),
        (json!([]), false, Ok(Value::Null)),
        (json!([{"filename": "x"}]), false, Err(BAD)),
        (json!([{"url": "ftp://x.test/f"}]), false, Err(BAD)),
        (
            json!([{"url": "https://x.test/f", "size": -1}]),
            false,
            Err(BAD),
        ),
        (
            json!([{"id": "nope", "url": "https://x.test/f"}]),
            false,
            Err(BAD),
        ),
        (json!("https://x.test/f.pdf"), false, Err(BAD)),
        (
            json!("https://x.test/f.pdf"),
            true,
            Ok(json!([{"url": "https://x.test/f.pdf", "filename": "f.pdf"}])),
        ),
        (
            json!(["https://x.test/"]),
            true,
            Ok(json!([{"url": "https://x.test/", "filename": "file"}])),
        ),
    ];
    for (v, tc, e) in cases {
        check(t.clone(), v, tc, e);
    }
    let mut cell = validate_cell(
        &field(t.clone()),
        &json!([{"url": "https://x.test/a"}, {"id": att, "url": "https://x.test/b"}, {"url": "https://x.test/c"}]),
        false,
    )
    .unwrap();
    assert_eq!(cell.missing_attachment_ids, 2);
    let mut ids = [
        AttachmentId::from_suffix([2; 14]),
        AttachmentId::from_suffix([3; 14]),
    ]
    .into_iter();
    assert_eq!(assign_attachment_ids(&mut cell.value, &mut ids), 2);
    assert_eq!(cell.value[0]["id"], json!("att22222222222222"));
    assert_eq!(cell.value[1]["id"], json!(att));
    assert_eq!(cell.value[2]["id"], json!("att33333333333333"));

    let current = json!([{"id": att, "url": "https://x.test/b", "filename": "b"}]);
    let merged = merge_attachment_refs(
        &json!([{"id": att}, {"id": "att99999999999999"}, {"url": "https://x.test/n", "filename": "n"}]),
        &current,
    );
    assert_eq!(
        merged,
        json!([{"id": att, "url": "https://x.test/b", "filename": "b"}, {"url": "https://x.test/n", "filename": "n"}])
    );
}

#[test]
fn computed_fields_reject_every_write() {
    let computed = [
        FieldType::CreatedTime,
        FieldType::LastModifiedTime,
        FieldType::CreatedBy,
        FieldType::LastModifiedBy,
        FieldType::AutoNumber,
        FieldType::Formula(FormulaOptions {
            formula: "1+1".to_owned(),
            result: None,
        }),
    ];
    for t in computed {
        assert!(t.is_computed());
        for typecast in [false, true] {
            for v in [json!("x"), json!(1), Value::Null] {
                let err = validate_cell(&field(t.clone()), &v, typecast).unwrap_err();
                assert_eq!(err.code(), BAD);
                assert_eq!(
                    err.reason,
                    CellErrorReason::ComputedField {
                        field_type: t.type_name()
                    }
                );
                assert!(err.to_string().contains("computed"), "{err}");
            }
        }
    }
    assert!(!FieldType::SingleLineText.is_computed());
}

#[test]
fn long_values_are_truncated_in_errors() {
    let v = json!("y".repeat(500));
    let err = validate_cell(&field(number(0)), &v, false).unwrap_err();
    assert_eq!(err.value.chars().count(), 101);
    assert!(err.value.ends_with('…'));
}
