//! A small table and record shared by the formula tests.

#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use pyairtable_domain::fields::{
    CheckboxOptions, DateFormat, DateOptions, DateTimeOptions, FieldDef, FieldType, LinkOptions,
    LookupOptions, NumberOptions, SelectOptions, TimeFormat,
};
use pyairtable_domain::formula::{self, RecordContext, Value};
use pyairtable_domain::ids::{FieldId, TableId};
use serde_json::{Value as Json, json};

/// A record of a table with one field of most types.
pub struct Fixture {
    pub fields: Vec<FieldDef>,
    pub cells: BTreeMap<FieldId, Json>,
    pub now: DateTime<Utc>,
    pub time_zone: chrono_tz::Tz,
}

fn fid(i: usize) -> FieldId {
    FieldId::parse(&format!("fld{i:014}")).expect("valid field id")
}

impl Fixture {
    pub fn new() -> Self {
        let number = FieldType::Number(NumberOptions { precision: 2 });
        let check = FieldType::Checkbox(CheckboxOptions {
            icon: "check".into(),
            color: "greenBright".into(),
        });
        let link = FieldType::MultipleRecordLinks(LinkOptions {
            linked_table_id: TableId::parse("tbl00000000000001").expect("valid table id"),
            inverse_link_field_id: None,
            prefers_single_record_link: false,
        });
        let lookup = FieldType::MultipleLookupValues(LookupOptions {
            record_link_field_id: fid(10),
            field_id_in_linked_table: fid(99),
        });
        let defs: Vec<(&str, FieldType, Json)> = vec![
            ("Name", FieldType::SingleLineText, json!("Widget")),
            ("Price", number.clone(), json!(10.5)),
            ("Qty", number.clone(), json!(3)),
            ("Empty", FieldType::SingleLineText, Json::Null),
            ("Done", check.clone(), json!(true)),
            ("Unchecked", check, Json::Null),
            (
                "Due",
                FieldType::Date(DateOptions {
                    date_format: DateFormat::Iso,
                }),
                json!("2024-03-15"),
            ),
            (
                "Start",
                FieldType::DateTime(DateTimeOptions {
                    date_format: DateFormat::Iso,
                    time_format: TimeFormat::TwentyFourHour,
                    time_zone: "utc".into(),
                }),
                json!("2024-01-31T10:30:00.000Z"),
            ),
            (
                "Tags",
                FieldType::MultipleSelects(SelectOptions::default()),
                json!(["a", "b", "a"]),
            ),
            (
                "Status",
                FieldType::SingleSelect(SelectOptions::default()),
                json!("Open"),
            ),
            (
                "Links",
                link,
                json!(["rec00000000000001", "rec00000000000002"]),
            ),
            ("Weird} Name", FieldType::SingleLineText, json!("w")),
            ("Lookup", lookup, json!([3, 4, null, ""])),
            ("Notes", FieldType::MultilineText, json!("  hello world  ")),
            ("Zero", number, json!(0)),
            ("NumText", FieldType::SingleLineText, json!("42")),
        ];
        let mut fields = Vec::new();
        let mut cells = BTreeMap::new();
        for (i, (name, field_type, cell)) in defs.into_iter().enumerate() {
            let id = fid(i);
            if !cell.is_null() {
                cells.insert(id.clone(), cell);
            }
            fields.push(FieldDef {
                id,
                name: name.into(),
                description: None,
                field_type,
            });
        }
        Self {
            fields,
            cells,
            now: Utc
                .with_ymd_and_hms(2024, 3, 10, 12, 0, 0)
                .single()
                .expect("valid time"),
            time_zone: chrono_tz::UTC,
        }
    }

    pub fn ctx(&self) -> RecordContext<'_> {
        RecordContext {
            fields: &self.fields,
            cells: &self.cells,
            record_id: "rec0000000000000A",
            created_time: Utc
                .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
                .single()
                .expect("valid"),
            last_modified_time: Utc
                .with_ymd_and_hms(2024, 2, 1, 8, 0, 0)
                .single()
                .expect("valid"),
            now: self.now,
            time_zone: self.time_zone,
        }
    }

    pub fn field_names(&self) -> Vec<String> {
        self.fields.iter().map(|f| f.name.clone()).collect()
    }

    /// Parses (panicking on a parse error, with the formula) and evaluates.
    pub fn eval(&self, src: &str) -> Value {
        let expr = formula::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        formula::eval(&expr, &self.ctx())
    }

    /// The `cellFormat=string` rendering of the result.
    pub fn show(&self, src: &str) -> String {
        self.eval(src).display_string()
    }
}
