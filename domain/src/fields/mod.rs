//! Field types and their options, serialised in Airtable's metadata-API shape
//! (`{"type": "singleSelect", "options": {"choices": [...]}}`), plus cell validation
//! ([`validate_cell`]) and type conversion ([`conversion`], [`convert_cell`]).
//!
//! The schema (which fields a table has) lives in the base aggregate; this module only knows a
//! single field at a time, so it stays usable from the base decider, the record command path and
//! the read models alike.

mod convert;
mod validate;

pub use convert::{Conversion, conversion, convert_cell};
pub use validate::{
    CellError, CellErrorReason, MAX_TEXT_CHARS, NormalizedCell, assign_attachment_ids,
    merge_attachment_refs, validate_cell,
};

use serde::{Deserialize, Serialize};

use crate::ids::{ChoiceId, FieldId, TableId};

/// A field of a table: its id, its name (unique per table, case-insensitively), an optional
/// description and its type with the type's options.
///
/// Serialises like an entry of Airtable's `tables[].fields[]`:
/// `{"id": "fld…", "name": "Status", "type": "singleSelect", "options": {...}}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct FieldDef {
    /// The field's id (`fld…`), stable across renames.
    pub id: FieldId,
    /// The field's display name.
    pub name: String,
    /// Free-text description shown to users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The type and its options.
    #[serde(flatten)]
    pub field_type: FieldType,
}

/// Every field type PyAirtable knows, with the options each one takes.
///
/// Computed types (formula, lookup, rollup, count and the system fields such as `createdTime`)
/// are declared so schemas can hold them; writes to them are rejected (see
/// [`FieldType::is_computed`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(tag = "type", content = "options", rename_all = "camelCase")]
pub enum FieldType {
    /// One line of text.
    SingleLineText,
    /// Text that may span several lines.
    MultilineText,
    /// Text with Markdown formatting.
    RichText,
    /// An email address.
    Email,
    /// A URL.
    Url,
    /// A phone number.
    PhoneNumber,
    /// A number with a fixed count of decimals.
    Number(NumberOptions),
    /// An amount of money.
    Currency(CurrencyOptions),
    /// A percentage, stored as a fraction (`0.5` is 50%).
    Percent(NumberOptions),
    /// A whole number from 1 to `max`.
    Rating(RatingOptions),
    /// A duration in seconds.
    Duration(DurationOptions),
    /// A checkbox: checked (`true`) or empty.
    Checkbox(CheckboxOptions),
    /// A calendar date (`YYYY-MM-DD`).
    Date(DateOptions),
    /// An instant, stored in UTC as ISO-8601.
    DateTime(DateTimeOptions),
    /// One choice out of a list.
    SingleSelect(SelectOptions),
    /// Any number of choices out of a list.
    MultipleSelects(SelectOptions),
    /// Links to records of a table of the same base.
    MultipleRecordLinks(LinkOptions),
    /// Files: `{id, url, filename, size, type}` objects.
    MultipleAttachments,
    /// Computed: when the record was created.
    CreatedTime,
    /// Computed: when the record was last modified.
    LastModifiedTime,
    /// Computed: who created the record.
    CreatedBy,
    /// Computed: who last modified the record.
    LastModifiedBy,
    /// Computed: a number that increases with each new record.
    AutoNumber,
    /// Computed: a formula over the record's other fields.
    Formula(FormulaOptions),
    /// Computed: values of a field of the linked records.
    MultipleLookupValues(LookupOptions),
    /// Computed: an aggregate over a field of the linked records.
    Rollup(RollupOptions),
    /// Computed: how many records are linked.
    Count(CountOptions),
}

/// Options of `number` and `percent`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct NumberOptions {
    /// Decimals kept, `0..=8`.
    pub precision: u8,
}

/// Options of `currency`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct CurrencyOptions {
    /// Decimals kept, `0..=7`.
    pub precision: u8,
    /// The currency symbol shown before amounts, e.g. `$`.
    pub symbol: String,
}

/// Options of `rating`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct RatingOptions {
    /// Highest rating, `1..=10`.
    pub max: u8,
    /// One of `star`, `heart`, `thumbsUp`, `flag`, `dot`.
    pub icon: String,
    /// A bright color such as `yellowBright`.
    pub color: String,
}

/// Options of `checkbox`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct CheckboxOptions {
    /// One of `check`, `xCheckbox`, `star`, `heart`, `thumbsUp`, `flag`, `dot`.
    pub icon: String,
    /// A bright color such as `greenBright`.
    pub color: String,
}

/// Options of `duration`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DurationOptions {
    /// How durations are shown, which also fixes the decimals of seconds kept.
    pub duration_format: DurationFormat,
}

/// How a duration is shown.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum DurationFormat {
    /// Hours and minutes.
    #[serde(rename = "h:mm")]
    HMm,
    /// Hours, minutes and seconds.
    #[serde(rename = "h:mm:ss")]
    HMmSs,
    /// With tenths of a second.
    #[serde(rename = "h:mm:ss.S")]
    HMmSsS,
    /// With hundredths of a second.
    #[serde(rename = "h:mm:ss.SS")]
    HMmSsSs,
    /// With milliseconds.
    #[serde(rename = "h:mm:ss.SSS")]
    HMmSsSss,
}

impl DurationFormat {
    /// Decimals of a second this format keeps.
    #[must_use]
    pub fn decimals(self) -> u8 {
        match self {
            Self::HMm | Self::HMmSs => 0,
            Self::HMmSsS => 1,
            Self::HMmSsSs => 2,
            Self::HMmSsSss => 3,
        }
    }
}

/// Options of `date`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DateOptions {
    /// How dates are shown; also decides whether typecast reads `1/2/2024` as US or European.
    pub date_format: DateFormat,
}

/// Options of `dateTime`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DateTimeOptions {
    /// How the date part is shown.
    pub date_format: DateFormat,
    /// How the time part is shown.
    pub time_format: TimeFormat,
    /// `utc`, `client` or an IANA name such as `Europe/Paris`: the zone in which inputs that carry
    /// no offset are read (`client` reads them as UTC on the server).
    pub time_zone: String,
}

/// A date display format, serialised as Airtable's `{"name": "iso", "format": "YYYY-MM-DD"}`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(into = "NamedFormat", try_from = "NamedFormat")]
pub enum DateFormat {
    /// The viewer's locale (`l`).
    Local,
    /// `LL`, e.g. "May 1, 2024".
    Friendly,
    /// `M/D/YYYY`.
    Us,
    /// `D/M/YYYY`.
    European,
    /// `YYYY-MM-DD`.
    Iso,
}

/// A time display format, serialised as `{"name": "24hour", "format": "HH:mm"}`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(into = "NamedFormat", try_from = "NamedFormat")]
pub enum TimeFormat {
    /// `h:mma`.
    TwelveHour,
    /// `HH:mm`.
    TwentyFourHour,
}

/// Wire shape shared by date and time formats: the `format` string is derived from the name, so
/// it is optional on input.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct NamedFormat {
    name: String,
    #[serde(default)]
    format: String,
}

impl DateFormat {
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Self::Local => ("local", "l"),
            Self::Friendly => ("friendly", "LL"),
            Self::Us => ("us", "M/D/YYYY"),
            Self::European => ("european", "D/M/YYYY"),
            Self::Iso => ("iso", "YYYY-MM-DD"),
        }
    }
}

impl From<DateFormat> for NamedFormat {
    fn from(f: DateFormat) -> Self {
        let (name, format) = f.names();
        Self {
            name: name.to_owned(),
            format: format.to_owned(),
        }
    }
}

impl TryFrom<NamedFormat> for DateFormat {
    type Error = String;
    fn try_from(n: NamedFormat) -> Result<Self, String> {
        [
            Self::Local,
            Self::Friendly,
            Self::Us,
            Self::European,
            Self::Iso,
        ]
        .into_iter()
        .find(|f| f.names().0 == n.name)
        .ok_or_else(|| format!("unknown date format {:?}", n.name))
    }
}

impl From<TimeFormat> for NamedFormat {
    fn from(f: TimeFormat) -> Self {
        let (name, format) = match f {
            TimeFormat::TwelveHour => ("12hour", "h:mma"),
            TimeFormat::TwentyFourHour => ("24hour", "HH:mm"),
        };
        Self {
            name: name.to_owned(),
            format: format.to_owned(),
        }
    }
}

impl TryFrom<NamedFormat> for TimeFormat {
    type Error = String;
    fn try_from(n: NamedFormat) -> Result<Self, String> {
        match n.name.as_str() {
            "12hour" => Ok(Self::TwelveHour),
            "24hour" => Ok(Self::TwentyFourHour),
            other => Err(format!("unknown time format {other:?}")),
        }
    }
}

/// Options of `singleSelect` and `multipleSelects`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
pub struct SelectOptions {
    /// The choices, in display order. Names are unique within a field.
    pub choices: Vec<Choice>,
}

/// One option of a select field.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct Choice {
    /// The choice's id (`sel…`), stable across renames.
    pub id: ChoiceId,
    /// The name cells hold.
    pub name: String,
    /// A color such as `blueLight2`; none lets clients pick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// Options of `multipleRecordLinks`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkOptions {
    /// The table linked to; always in the same base.
    pub linked_table_id: TableId,
    /// The field in the linked table that holds the links back, if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inverse_link_field_id: Option<FieldId>,
    /// A UI hint that one link is expected; the API still accepts several, like Airtable.
    #[serde(default)]
    pub prefers_single_record_link: bool,
}

/// Options of `formula`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct FormulaOptions {
    /// The formula text.
    pub formula: String,
    /// The type of the formula's result, once known (Airtable's `result`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Box<FieldType>>,
}

/// Options of `multipleLookupValues`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LookupOptions {
    /// The link field of this table to follow.
    pub record_link_field_id: FieldId,
    /// The field of the linked table whose values are shown.
    pub field_id_in_linked_table: FieldId,
}

/// Options of `rollup`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollupOptions {
    /// The link field of this table to follow.
    pub record_link_field_id: FieldId,
    /// The field of the linked table to aggregate.
    pub field_id_in_linked_table: FieldId,
    /// The aggregation formula over `values`, e.g. `SUM(values)`.
    pub formula: String,
}

/// Options of `count`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CountOptions {
    /// The link field whose links are counted.
    pub record_link_field_id: FieldId,
}

/// Base colors of Airtable's palette; choice colors add a shade suffix.
const COLORS: [&str; 10] = [
    "blue", "cyan", "teal", "green", "yellow", "orange", "red", "pink", "purple", "gray",
];
const CHOICE_SHADES: [&str; 4] = ["Light2", "Light1", "Bright", "Dark1"];
const RATING_ICONS: [&str; 5] = ["star", "heart", "thumbsUp", "flag", "dot"];
const CHECKBOX_ICONS: [&str; 7] = [
    "check",
    "xCheckbox",
    "star",
    "heart",
    "thumbsUp",
    "flag",
    "dot",
];

fn is_color(c: &str, shades: &[&str]) -> bool {
    COLORS.iter().any(|base| {
        c.strip_prefix(base)
            .is_some_and(|shade| shades.contains(&shade))
    })
}

impl FieldType {
    /// Whether cells of this type are plain text (one string, no choices): the types text
    /// conversions and text sorting treat alike.
    #[must_use]
    pub fn is_text(&self) -> bool {
        matches!(
            self,
            Self::SingleLineText
                | Self::MultilineText
                | Self::RichText
                | Self::Email
                | Self::Url
                | Self::PhoneNumber
        )
    }

    /// Airtable's name of the type, as in the `type` key (`singleLineText`, ...).
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::SingleLineText => "singleLineText",
            Self::MultilineText => "multilineText",
            Self::RichText => "richText",
            Self::Email => "email",
            Self::Url => "url",
            Self::PhoneNumber => "phoneNumber",
            Self::Number(_) => "number",
            Self::Currency(_) => "currency",
            Self::Percent(_) => "percent",
            Self::Rating(_) => "rating",
            Self::Duration(_) => "duration",
            Self::Checkbox(_) => "checkbox",
            Self::Date(_) => "date",
            Self::DateTime(_) => "dateTime",
            Self::SingleSelect(_) => "singleSelect",
            Self::MultipleSelects(_) => "multipleSelects",
            Self::MultipleRecordLinks(_) => "multipleRecordLinks",
            Self::MultipleAttachments => "multipleAttachments",
            Self::CreatedTime => "createdTime",
            Self::LastModifiedTime => "lastModifiedTime",
            Self::CreatedBy => "createdBy",
            Self::LastModifiedBy => "lastModifiedBy",
            Self::AutoNumber => "autoNumber",
            Self::Formula(_) => "formula",
            Self::MultipleLookupValues(_) => "multipleLookupValues",
            Self::Rollup(_) => "rollup",
            Self::Count(_) => "count",
        }
    }

    /// Whether the platform computes the value: such fields never accept writes.
    #[must_use]
    pub fn is_computed(&self) -> bool {
        matches!(
            self,
            Self::CreatedTime
                | Self::LastModifiedTime
                | Self::CreatedBy
                | Self::LastModifiedBy
                | Self::AutoNumber
                | Self::Formula(_)
                | Self::MultipleLookupValues(_)
                | Self::Rollup(_)
                | Self::Count(_)
        )
    }

    /// Whether a field of this type may be a table's primary field. Follows Airtable: links,
    /// attachments, checkboxes, selects, ratings, collaborators and lookups/rollups/counts may not.
    #[must_use]
    pub fn can_be_primary(&self) -> bool {
        self.is_text()
            || matches!(
                self,
                Self::Number(_)
                    | Self::Currency(_)
                    | Self::Percent(_)
                    | Self::Duration(_)
                    | Self::Date(_)
                    | Self::DateTime(_)
                    | Self::CreatedTime
                    | Self::LastModifiedTime
                    | Self::AutoNumber
                    | Self::Formula(_)
            )
    }

    /// The choices of a select field, `None` for other types.
    #[must_use]
    pub fn choices(&self) -> Option<&[Choice]> {
        match self {
            Self::SingleSelect(o) | Self::MultipleSelects(o) => Some(&o.choices),
            _ => None,
        }
    }

    /// The link options of a `multipleRecordLinks` field.
    #[must_use]
    pub fn link(&self) -> Option<&LinkOptions> {
        match self {
            Self::MultipleRecordLinks(o) => Some(o),
            _ => None,
        }
    }

    /// Checks the options are within their allowed ranges and lists.
    ///
    /// # Errors
    /// A sentence naming the option, the rejected value and the allowed range.
    pub fn check_options(&self) -> Result<(), String> {
        match self {
            Self::Number(o) | Self::Percent(o) if o.precision > 8 => {
                Err(format!("precision {} is out of range 0..=8", o.precision))
            }
            Self::Currency(o) if o.precision > 7 => {
                Err(format!("precision {} is out of range 0..=7", o.precision))
            }
            Self::Currency(o) if o.symbol.chars().count() > 16 || o.symbol.trim().is_empty() => {
                Err(format!(
                    "currency symbol {:?} must be 1 to 16 characters",
                    o.symbol
                ))
            }
            Self::Rating(o) => {
                if !(1..=10).contains(&o.max) {
                    Err(format!("rating max {} is out of range 1..=10", o.max))
                } else if !RATING_ICONS.contains(&o.icon.as_str()) {
                    Err(format!(
                        "rating icon {:?} is not one of {RATING_ICONS:?}",
                        o.icon
                    ))
                } else if !is_color(&o.color, &["Bright"]) {
                    Err(format!(
                        "rating color {:?} is not a bright color such as yellowBright",
                        o.color
                    ))
                } else {
                    Ok(())
                }
            }
            Self::Checkbox(o) => {
                if !CHECKBOX_ICONS.contains(&o.icon.as_str()) {
                    Err(format!(
                        "checkbox icon {:?} is not one of {CHECKBOX_ICONS:?}",
                        o.icon
                    ))
                } else if !is_color(&o.color, &["Bright"]) {
                    Err(format!(
                        "checkbox color {:?} is not a bright color such as greenBright",
                        o.color
                    ))
                } else {
                    Ok(())
                }
            }
            Self::DateTime(o) => parse_time_zone(&o.time_zone).map(|_| ()).ok_or_else(|| {
                format!(
                    "time zone {:?} is not `utc`, `client` or an IANA time zone name",
                    o.time_zone
                )
            }),
            Self::SingleSelect(o) | Self::MultipleSelects(o) => check_choices(&o.choices),
            Self::Formula(o) if o.formula.trim().is_empty() => {
                Err("formula must not be empty".to_owned())
            }
            Self::Rollup(o) if o.formula.trim().is_empty() => {
                Err("rollup formula must not be empty".to_owned())
            }
            Self::Rollup(o) => crate::formula::parse_rollup(&o.formula)
                .map(|_| ())
                .map_err(|e| format!("rollup formula: {e}")),
            _ => Ok(()),
        }
    }
}

/// Checks choice names (trimmed, non-empty, unique) and ids (unique) and colors.
///
/// # Errors
/// A sentence naming the offending choice.
pub fn check_choices(choices: &[Choice]) -> Result<(), String> {
    for (i, c) in choices.iter().enumerate() {
        if c.name.trim().is_empty() {
            return Err(format!("choice {} has an empty name", c.id));
        }
        if c.name.chars().count() > 255 {
            return Err(format!(
                "choice {} name is longer than 255 characters",
                c.id
            ));
        }
        if let Some(color) = &c.color
            && !is_color(color, &CHOICE_SHADES)
        {
            return Err(format!(
                "choice {:?} color {color:?} is not a palette color such as blueLight2",
                c.name
            ));
        }
        for other in &choices[..i] {
            if other.id == c.id {
                return Err(format!("choice id {} is used twice", c.id));
            }
            if other.name == c.name {
                return Err(format!("choice name {:?} is used twice", c.name));
            }
        }
    }
    Ok(())
}

/// A time zone a `dateTime` field reads offset-less input in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Zone {
    Utc,
    Named(chrono_tz::Tz),
}

/// Parses a `timeZone` option; `client` is read as UTC because the server has no client clock.
pub(crate) fn parse_time_zone(s: &str) -> Option<Zone> {
    match s {
        "utc" | "UTC" | "client" => Some(Zone::Utc),
        _ => s.parse::<chrono_tz::Tz>().ok().map(Zone::Named),
    }
}
