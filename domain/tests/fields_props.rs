//! Properties of cell validation: it never panics on arbitrary JSON, and what it accepts is a
//! fixed point (validating a normalised value again gives the same value).

use proptest::prelude::*;
use pyairtable_domain::fields::{
    CheckboxOptions, Choice, CurrencyOptions, DateFormat, DateOptions, DateTimeOptions,
    DurationFormat, DurationOptions, FieldDef, FieldType, LinkOptions, NumberOptions,
    RatingOptions, SelectOptions, TimeFormat, convert_cell, validate_cell,
};
use pyairtable_domain::ids::{ChoiceId, FieldId, TableId};
use serde_json::{Value, json};

fn types() -> Vec<FieldType> {
    let choices = SelectOptions {
        choices: vec![
            Choice {
                id: ChoiceId::from_suffix([1; 14]),
                name: "a".to_owned(),
                color: None,
            },
            Choice {
                id: ChoiceId::from_suffix([2; 14]),
                name: "b c".to_owned(),
                color: None,
            },
        ],
    };
    vec![
        FieldType::SingleLineText,
        FieldType::MultilineText,
        FieldType::RichText,
        FieldType::Email,
        FieldType::Url,
        FieldType::PhoneNumber,
        FieldType::Number(NumberOptions { precision: 2 }),
        FieldType::Number(NumberOptions { precision: 0 }),
        FieldType::Currency(CurrencyOptions {
            precision: 2,
            symbol: "$".to_owned(),
        }),
        FieldType::Percent(NumberOptions { precision: 1 }),
        FieldType::Rating(RatingOptions {
            max: 5,
            icon: "star".to_owned(),
            color: "yellowBright".to_owned(),
        }),
        FieldType::Duration(DurationOptions {
            duration_format: DurationFormat::HMmSsS,
        }),
        FieldType::Checkbox(CheckboxOptions {
            icon: "check".to_owned(),
            color: "greenBright".to_owned(),
        }),
        FieldType::Date(DateOptions {
            date_format: DateFormat::European,
        }),
        FieldType::DateTime(DateTimeOptions {
            date_format: DateFormat::Us,
            time_format: TimeFormat::TwelveHour,
            time_zone: "Europe/Paris".to_owned(),
        }),
        FieldType::SingleSelect(choices.clone()),
        FieldType::MultipleSelects(choices),
        FieldType::MultipleRecordLinks(LinkOptions {
            linked_table_id: TableId::from_suffix([1; 14]),
            inverse_link_field_id: None,
            prefers_single_record_link: false,
        }),
        FieldType::MultipleAttachments,
        FieldType::AutoNumber,
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|x| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)),
        ".{0,30}".prop_map(Value::String),
        "[0-9 ,.:/$%-]{0,16}".prop_map(Value::String),
        "(19|20)[0-9]{2}-[01][0-9]-[0-3][0-9]( [0-2][0-9]:[0-5][0-9])?".prop_map(Value::String),
        "rec[A-Za-z0-9]{14}(, ?rec[A-Za-z0-9]{14})?".prop_map(Value::String),
        "https?://[a-z.]{1,10}/[a-z.]{0,10}".prop_map(|u| json!([{"url": u}])),
        prop_oneof![Just("yes"), Just("no"), Just("1:30"), Just("a, b c, d")]
            .prop_map(|s| Value::String(s.to_owned())),
    ]
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn def(field_type: FieldType) -> FieldDef {
    FieldDef {
        id: FieldId::from_suffix([9; 14]),
        name: "P".to_owned(),
        description: None,
        field_type,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn validate_cell_never_panics_and_accepted_values_are_fixed_points(
        value in arbitrary_json(),
        typecast in any::<bool>(),
    ) {
        for t in types() {
            let f = def(t.clone());
            match validate_cell(&f, &value, typecast) {
                Ok(cell) => {
                    let again = validate_cell(&f, &cell.value, true);
                    prop_assert_eq!(
                        again.map(|c| c.value),
                        Ok(cell.value.clone()),
                        "{} {} -> {}", t.type_name(), value, cell.value
                    );
                    if !typecast {
                        prop_assert!(cell.new_choices.is_empty());
                    }
                }
                Err(e) => {
                    prop_assert_eq!(e.field_name.as_str(), "P");
                    prop_assert!(e.value.chars().count() <= 101);
                    prop_assert!(!e.code().is_empty());
                }
            }
        }
    }

    #[test]
    fn convert_cell_never_panics(value in arbitrary_json(), from in 0usize..20, to in 0usize..20) {
        let ts = types();
        let (from, to) = (&ts[from % ts.len()], &ts[to % ts.len()]);
        // Convert only values `from` holds, as stored cells always are.
        if let Ok(cell) = validate_cell(&def(from.clone()), &value, true)
            && let Some(v) = convert_cell(&cell.value, from, to)
        {
            prop_assert!(!v.is_null());
            let again = validate_cell(&def(to.clone()), &v, false);
            prop_assert!(again.is_ok(), "{} -> {}: {} gave {}", from.type_name(), to.type_name(), cell.value, v);
        }
    }
}
