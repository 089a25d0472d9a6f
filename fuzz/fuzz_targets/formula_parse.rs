//! Parses arbitrary UTF-8 as a formula and, when it parses, evaluates it against a small record,
//! renders the result every way the API does, and checks that printing round-trips.

#![no_main]

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use pyairtable_domain::fields::{
    CheckboxOptions, DateFormat, DateOptions, FieldDef, FieldType, NumberOptions, SelectOptions,
};
use pyairtable_domain::formula::{self, RecordContext};
use pyairtable_domain::ids::FieldId;
use serde_json::{Value, json};

struct Table {
    fields: Vec<FieldDef>,
    cells: BTreeMap<FieldId, Value>,
    now: DateTime<Utc>,
}

fn table() -> Option<Table> {
    let defs = [
        ("Name", FieldType::SingleLineText, json!("Widget")),
        (
            "Price",
            FieldType::Number(NumberOptions { precision: 2 }),
            json!(10.5),
        ),
        ("Empty", FieldType::SingleLineText, Value::Null),
        (
            "Done",
            FieldType::Checkbox(CheckboxOptions {
                icon: "check".into(),
                color: "greenBright".into(),
            }),
            json!(true),
        ),
        (
            "Due",
            FieldType::Date(DateOptions {
                date_format: DateFormat::Iso,
            }),
            json!("2024-03-15"),
        ),
        (
            "Tags",
            FieldType::MultipleSelects(SelectOptions::default()),
            json!(["a", "b", "a"]),
        ),
    ];
    let mut fields = Vec::new();
    let mut cells = BTreeMap::new();
    for (i, (name, field_type, cell)) in defs.into_iter().enumerate() {
        let id = FieldId::parse(&format!("fld{i:014}")).ok()?;
        cells.insert(id.clone(), cell);
        fields.push(FieldDef {
            id,
            name: name.into(),
            description: None,
            field_type,
        });
    }
    Some(Table {
        fields,
        cells,
        now: Utc.with_ymd_and_hms(2024, 3, 10, 12, 0, 0).single()?,
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = formula::parse(src) else {
        return;
    };
    let Some(t) = table() else {
        return;
    };
    let ctx = RecordContext {
        fields: &t.fields,
        cells: &t.cells,
        record_id: "rec00000000000001",
        created_time: t.now,
        last_modified_time: t.now,
        now: t.now,
        time_zone: chrono_tz::Europe::Paris,
    };
    let value = formula::eval(&expr, &ctx);
    let _ = value.to_cell_json();
    let _ = value.display_string();
    let _ = value.is_truthy();
    let _ = expr.result_type(&t.fields);
    let _ = expr.referenced_fields();
    let printed = expr.to_string();
    assert_eq!(
        formula::parse(&printed).as_ref(),
        Ok(&expr),
        "printing {src:?} as {printed:?} does not round-trip"
    );
});
