//! Records as the REST API shows them: rows read from the records read model (their computed
//! cells filled in by [`super::computed`]) and rendered as
//! `{"id", "createdTime", "fields"}` with cells keyed by field name or id, as JSON or as display
//! strings. Empty cells are left out, as Airtable leaves them out.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use pyairtable_domain::base::TableSchema;
use pyairtable_domain::fields::{FieldDef, FieldType};
use pyairtable_domain::formula::{self, RecordContext, Value as FValue};
use pyairtable_domain::ids::FieldId;
use serde_json::{Map, Value, json};

use super::params::CellFormat;

/// One record of a table with its cells by field id.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `rec…`.
    pub id: String,
    /// Non-empty cells, stored and computed.
    pub cells: BTreeMap<FieldId, Value>,
    /// When the record was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Its auto number in its table (ADR 0009), when read from the read model.
    pub number: Option<i64>,
}

impl Row {
    /// A row from the read model's `cells` JSON object (keys that are not field ids are
    /// dropped).
    #[must_use]
    pub fn from_json_cells(
        id: String,
        cells: &Value,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Self {
        let cells = cells
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(_, v)| !v.is_null())
                    .filter_map(|(k, v)| FieldId::parse(k).ok().map(|k| (k, v.clone())))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            id,
            cells,
            created_at,
            updated_at,
            number: None,
        }
    }

    /// The row with its auto number.
    #[must_use]
    pub fn with_number(mut self, number: Option<i64>) -> Self {
        self.number = number;
        self
    }

    /// The formula engine's view of this row.
    #[must_use]
    pub fn context<'a>(
        &'a self,
        table: &'a TableSchema,
        now: DateTime<Utc>,
        tz: Tz,
    ) -> RecordContext<'a> {
        RecordContext {
            fields: &table.fields,
            cells: &self.cells,
            record_id: &self.id,
            created_time: self.created_at,
            last_modified_time: self.updated_at,
            now,
            time_zone: tz,
        }
    }
}

/// Airtable's timestamp shape: UTC with milliseconds, `2024-01-02T03:04:05.000Z`.
#[must_use]
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Whether Airtable would leave this cell out of a response.
fn is_empty_cell(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// How a response renders records.
pub struct Render<'a> {
    /// The table.
    pub table: &'a TableSchema,
    /// Only these fields (`None`: all), in the table's order.
    pub only: Option<Vec<FieldId>>,
    /// Key cells by field id.
    pub by_id: bool,
    /// JSON or display strings.
    pub format: CellFormat,
    /// Zone for display strings.
    pub tz: Tz,
    /// Locale for display strings.
    pub locale: Locale,
}

impl<'a> Render<'a> {
    /// Every field as JSON keyed by name.
    #[must_use]
    pub fn json(table: &'a TableSchema, by_id: bool) -> Self {
        Self {
            table,
            only: None,
            by_id,
            format: CellFormat::Json,
            tz: chrono_tz::UTC,
            locale: Locale::EnUs,
        }
    }

    /// `{"id", "createdTime", "fields"}`.
    #[must_use]
    pub fn record(&self, row: &Row) -> Value {
        let mut fields = Map::new();
        for field in &self.table.fields {
            if self
                .only
                .as_ref()
                .is_some_and(|only| !only.contains(&field.id))
            {
                continue;
            }
            let Some(cell) = row.cells.get(&field.id) else {
                continue;
            };
            if is_empty_cell(cell) {
                continue;
            }
            let key = if self.by_id {
                field.id.as_str().to_owned()
            } else {
                field.name.clone()
            };
            let value = match self.format {
                CellFormat::Json => cell.clone(),
                CellFormat::String => Value::String(display(field, cell, self.tz, self.locale)),
            };
            fields.insert(key, value);
        }
        json!({"id": row.id, "createdTime": iso(row.created_at), "fields": fields})
    }
}

/// A `userLocale` of `cellFormat=string`: how dates, times and decimals are written.
///
/// Only locales whose conventions are fixed and simple are accepted (see [`Locale::parse`]);
/// the formats are the usual short forms of each (as `Intl.DateTimeFormat` writes them):
///
/// | locale | date | date and time | decimal |
/// |---|---|---|---|
/// | `en`, `en-us` | `1/5/2024` | `1/5/2024 3:04pm` | `1.5` |
/// | `en-gb` | `05/01/2024` | `05/01/2024 15:04` | `1.5` |
/// | `de`, `de-de`, `de-at` | `5.1.2024` | `5.1.2024 15:04` | `1,5` |
/// | `fr`, `fr-fr` | `05/01/2024` | `05/01/2024 15:04` | `1,5` |
///
/// Numbers keep the field's precision and have no thousands separator in every locale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locale {
    /// American English.
    EnUs,
    /// British English.
    EnGb,
    /// German.
    De,
    /// French.
    Fr,
}

impl Locale {
    /// Every accepted `userLocale` value.
    pub const ACCEPTED: [&'static str; 8] = [
        "en", "en-us", "en-gb", "de", "de-de", "de-at", "fr", "fr-fr",
    ];

    /// Reads a `userLocale` (case-insensitive, `-` or `_`); `None` for locales not supported.
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        let tag = raw.trim().to_ascii_lowercase().replace('_', "-");
        Some(match tag.as_str() {
            "en" | "en-us" => Self::EnUs,
            "en-gb" => Self::EnGb,
            "de" | "de-de" | "de-at" => Self::De,
            "fr" | "fr-fr" => Self::Fr,
            _ => return None,
        })
    }

    fn date_format(self) -> &'static str {
        match self {
            Self::EnUs => "%-m/%-d/%Y",
            Self::EnGb | Self::Fr => "%d/%m/%Y",
            Self::De => "%-d.%-m.%Y",
        }
    }

    fn time_format(self) -> &'static str {
        match self {
            Self::EnUs => "%-I:%M%P",
            Self::EnGb | Self::De | Self::Fr => "%H:%M",
        }
    }

    /// A number with `precision` decimals, with the locale's decimal separator.
    fn number(self, n: f64, precision: usize) -> String {
        let text = format!("{n:.precision$}");
        match self {
            Self::EnUs | Self::EnGb => text,
            Self::De | Self::Fr => text.replace('.', ","),
        }
    }
}

/// A cell as Airtable's `cellFormat=string` shows it, in zone `tz` and `locale`.
#[must_use]
pub fn display(field: &FieldDef, cell: &Value, tz: Tz, locale: Locale) -> String {
    let number = |precision: u8| {
        cell.as_f64()
            .map(|n| locale.number(n, usize::from(precision)))
            .unwrap_or_default()
    };
    match &field.field_type {
        FieldType::Number(o) => number(o.precision),
        FieldType::Currency(o) => format!("{}{}", o.symbol, number(o.precision)),
        FieldType::Percent(o) => cell
            .as_f64()
            .map(|n| format!("{}%", locale.number(n * 100.0, usize::from(o.precision))))
            .unwrap_or_default(),
        FieldType::Checkbox(_) => {
            if cell.as_bool() == Some(true) {
                "checked".to_owned()
            } else {
                String::new()
            }
        }
        FieldType::Duration(_) => cell
            .as_f64()
            .map(|secs| {
                let total = secs.round() as i64;
                format!("{}:{:02}", total / 3600, (total % 3600) / 60)
            })
            .unwrap_or_default(),
        FieldType::DateTime(_) | FieldType::CreatedTime | FieldType::LastModifiedTime => {
            match cell.as_str().and_then(formula::parse_datetime) {
                Some(t) => t
                    .with_timezone(&tz)
                    .format(&format!(
                        "{} {}",
                        locale.date_format(),
                        locale.time_format()
                    ))
                    .to_string(),
                None => cell.as_str().unwrap_or_default().to_owned(),
            }
        }
        FieldType::Date(_) => match cell
            .as_str()
            .and_then(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        {
            Some(d) => d.format(locale.date_format()).to_string(),
            None => cell.as_str().unwrap_or_default().to_owned(),
        },
        FieldType::MultipleRecordLinks(_) => match cell.as_array() {
            Some(ids) => ids
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            None => String::new(),
        },
        other => {
            let value = FValue::from_cell(other, cell);
            match value {
                FValue::Array(items) => items
                    .iter()
                    .map(FValue::display_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                v => v.display_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rest::computed::Computed;
    use pyairtable_domain::fields::{FormulaOptions, NumberOptions};
    use pyairtable_domain::ids::{TableId, ViewId};

    fn table() -> TableSchema {
        let f = |id: &str, name: &str, t: FieldType| FieldDef {
            id: FieldId::parse(id).unwrap(),
            name: name.to_owned(),
            description: None,
            field_type: t,
        };
        TableSchema {
            id: TableId::parse("tbl0000000000000a").unwrap(),
            name: "T".to_owned(),
            description: None,
            primary_field_id: FieldId::parse("fld0000000000000a").unwrap(),
            fields: vec![
                f("fld0000000000000a", "Name", FieldType::SingleLineText),
                f(
                    "fld0000000000000b",
                    "N",
                    FieldType::Number(NumberOptions { precision: 2 }),
                ),
                f(
                    "fld0000000000000c",
                    "Twice",
                    FieldType::Formula(FormulaOptions {
                        formula: "{N} * 2".to_owned(),
                        result: None,
                    }),
                ),
            ],
            views: vec![pyairtable_domain::base::ViewDef {
                id: ViewId::parse("viw0000000000000a").unwrap(),
                name: "Grid".to_owned(),
                is_default: true,
                filter_formula: None,
                sorts: Vec::new(),
                visible_field_ids: None,
            }],
        }
    }

    #[test]
    fn records_render_with_names_ids_strings_and_formulas() {
        let table = table();
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut row = Row::from_json_cells(
            "rec0000000000000a".to_owned(),
            &json!({"fld0000000000000a": "", "fld0000000000000b": 1.5}),
            t0,
            t0,
        );
        Computed::of(std::slice::from_ref(&table), &table, t0, chrono_tz::UTC)
            .fill_row(&mut row, &Default::default());
        let out = Render::json(&table, false).record(&row);
        assert_eq!(out["fields"], json!({"N": 1.5, "Twice": 3.0}));
        assert_eq!(out["createdTime"], "2023-11-14T22:13:20.000Z");
        let by_id = Render::json(&table, true).record(&row);
        assert_eq!(by_id["fields"]["fld0000000000000b"], 1.5);
        let strings = Render {
            format: CellFormat::String,
            ..Render::json(&table, false)
        }
        .record(&row);
        assert_eq!(strings["fields"]["N"], "1.50");
        assert_eq!(strings["fields"]["Twice"], "3");
    }

    #[test]
    fn display_strings_follow_the_locale() {
        let field = |t: FieldType| FieldDef {
            id: FieldId::parse("fld0000000000000z").unwrap(),
            name: "X".to_owned(),
            description: None,
            field_type: t,
        };
        let date = field(FieldType::Date(pyairtable_domain::fields::DateOptions {
            date_format: pyairtable_domain::fields::DateFormat::Iso,
        }));
        let created = field(FieldType::CreatedTime);
        let number = field(FieldType::Number(NumberOptions { precision: 2 }));
        let paris = chrono_tz::Europe::Paris;
        let cases = [
            ("en-US", "1/5/2024", "1/5/2024 4:04pm", "1234.50"),
            ("en-gb", "05/01/2024", "05/01/2024 16:04", "1234.50"),
            ("de", "5.1.2024", "5.1.2024 16:04", "1234,50"),
            ("fr_FR", "05/01/2024", "05/01/2024 16:04", "1234,50"),
        ];
        for (tag, d, t, n) in cases {
            let locale = Locale::parse(tag).unwrap();
            assert_eq!(display(&date, &json!("2024-01-05"), paris, locale), d);
            assert_eq!(
                display(&created, &json!("2024-01-05T15:04:05.000Z"), paris, locale),
                t
            );
            assert_eq!(display(&number, &json!(1234.5), paris, locale), n);
        }
        assert_eq!(Locale::parse("xx-yy"), None);
        assert!(Locale::ACCEPTED.iter().all(|l| Locale::parse(l).is_some()));
    }
}
