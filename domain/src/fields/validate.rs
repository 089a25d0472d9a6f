//! Cell validation: checks one value against one field and returns it normalised, the way
//! Airtable's REST API accepts it, with the best-effort `typecast` conversions from strings.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::{Map, Number, Value};

use super::{DateFormat, FieldDef, FieldType, Zone, parse_time_zone};
use crate::ids::{AttachmentId, FieldId, RecordId};

/// Longest text a cell accepts, in characters (Airtable's long-text limit).
pub const MAX_TEXT_CHARS: usize = 100_000;

/// How many characters of a rejected value an error repeats.
const ERROR_VALUE_CHARS: usize = 100;

/// A value that passed validation.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct NormalizedCell {
    /// The value to store; `Value::Null` clears the cell.
    pub value: Value,
    /// Select choices the value uses that the field does not have yet (typecast only): the
    /// command layer adds them to the schema (`ChoicesAdded`) before writing the record.
    pub new_choices: Vec<String>,
    /// Attachments in the value that carry no id yet: the command layer assigns that many with
    /// [`assign_attachment_ids`] before writing the record.
    pub missing_attachment_ids: usize,
}

impl NormalizedCell {
    fn of(value: Value) -> Self {
        Self {
            value,
            ..Self::default()
        }
    }
}

/// Why a cell value was rejected.
#[derive(Clone, Debug, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum CellErrorReason {
    /// No field of the table has this name or id.
    #[error("the table has no field with this name or id")]
    UnknownField,
    /// The same field was given twice (once by name, once by id, say).
    #[error("the field is given more than once")]
    DuplicateField,
    /// The field is computed by the platform.
    #[error("the field is computed ({field_type}) and cannot be written")]
    ComputedField {
        /// The field's type name.
        field_type: &'static str,
    },
    /// The value has the wrong shape or format.
    #[error("expected {expected}")]
    Expected {
        /// What the field accepts, in words.
        expected: &'static str,
    },
    /// The text is too long.
    #[error("the text is longer than {max_chars} characters")]
    TooLong {
        /// The limit.
        max_chars: usize,
    },
    /// A rating outside `1..=max`.
    #[error("a rating must be a whole number from 1 to {max}")]
    RatingOutOfRange {
        /// The field's highest rating.
        max: u8,
    },
    /// Select options the field does not have (and typecast was off).
    #[error("unknown select options {names:?}; pass typecast to create them")]
    UnknownChoices {
        /// The unknown names.
        names: Vec<String>,
    },
    /// A link that is not a record id.
    #[error("{value:?} is not a record id (`rec` followed by 14 letters or digits)")]
    InvalidRecordId {
        /// The rejected item.
        value: String,
    },
    /// An attachment object that is malformed.
    #[error("invalid attachment: {problem}")]
    InvalidAttachment {
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// A rejected cell: which field, which value (truncated), and why.
#[derive(Clone, Debug, PartialEq, Serialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("field {field_name:?} cannot accept the value {value}: {reason}")]
pub struct CellError {
    /// The field's id, when the field exists.
    pub field_id: Option<FieldId>,
    /// The field's name (or the unknown name as given).
    pub field_name: String,
    /// The rejected value as JSON, cut to 100 characters.
    pub value: String,
    /// Why it was rejected.
    pub reason: CellErrorReason,
}

impl CellError {
    /// Builds an error for `field`, truncating the value.
    #[must_use]
    pub fn new(field: &FieldDef, value: &Value, reason: CellErrorReason) -> Self {
        Self {
            field_id: Some(field.id.clone()),
            field_name: field.name.clone(),
            value: truncate_json(value),
            reason,
        }
    }

    /// An error for a key that names no field of the table.
    #[must_use]
    pub fn unknown_field(key: &str, value: &Value) -> Self {
        Self {
            field_id: None,
            field_name: key.chars().take(ERROR_VALUE_CHARS).collect(),
            value: truncate_json(value),
            reason: CellErrorReason::UnknownField,
        }
    }

    /// Airtable's error type string for this rejection.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self.reason {
            CellErrorReason::UnknownField => "UNKNOWN_FIELD_NAME",
            CellErrorReason::UnknownChoices { .. } => "INVALID_MULTIPLE_CHOICE_OPTIONS",
            CellErrorReason::DuplicateField => "INVALID_REQUEST_UNKNOWN",
            _ => "INVALID_VALUE_FOR_COLUMN",
        }
    }
}

fn truncate_json(value: &Value) -> String {
    let s = value.to_string();
    if s.chars().count() <= ERROR_VALUE_CHARS {
        s
    } else {
        let mut t: String = s.chars().take(ERROR_VALUE_CHARS).collect();
        t.push('…');
        t
    }
}

/// Validates and normalises one cell value for `field`.
///
/// `null`, `""`, `false` (checkbox) and `[]` clear the cell (the normalised value is `null`).
/// With `typecast`, strings are converted best-effort (`"42"` into a number, `"yes"` into a
/// checked box, `"a, b"` into two select options, unknown options into [`NormalizedCell::new_choices`]).
///
/// # Errors
/// A [`CellError`] naming the field, the value and the reason. Computed fields reject every
/// write, `null` included, since they cannot be written at all.
pub fn validate_cell(
    field: &FieldDef,
    value: &Value,
    typecast: bool,
) -> Result<NormalizedCell, CellError> {
    normalize(&field.field_type, value, typecast).map_err(|r| CellError::new(field, value, r))
}

type Reason = CellErrorReason;

const fn expected(what: &'static str) -> Reason {
    Reason::Expected { expected: what }
}

/// The type-driven core of [`validate_cell`], also used by conversions.
pub(crate) fn normalize(
    ft: &FieldType,
    value: &Value,
    typecast: bool,
) -> Result<NormalizedCell, Reason> {
    if ft.is_computed() {
        return Err(Reason::ComputedField {
            field_type: ft.type_name(),
        });
    }
    if value.is_null() {
        return Ok(NormalizedCell::default());
    }
    let v = match ft {
        FieldType::SingleLineText => text(value, typecast)?
            .map(|s| s.replace("\r\n", " ").replace(['\n', '\r'], " "))
            .map(Value::String),
        FieldType::MultilineText | FieldType::RichText => text(value, typecast)?.map(Value::String),
        FieldType::Email => checked_text(
            value,
            typecast,
            is_email,
            "an email address such as name@example.com",
        )?,
        FieldType::Url => {
            checked_text(value, typecast, is_url, "a URL such as https://example.com")?
        }
        FieldType::PhoneNumber => checked_text(value, typecast, is_phone, "a phone number")?,
        FieldType::Number(o) => {
            number(value, typecast, None)?.map(|x| number_json(round_to(x, o.precision)))
        }
        FieldType::Currency(o) => {
            number(value, typecast, Some(&o.symbol))?.map(|x| number_json(round_to(x, o.precision)))
        }
        FieldType::Percent(o) => percent(value, typecast)?
            .map(|x| number_json(round_to(x, o.precision.saturating_add(2)))),
        FieldType::Rating(o) => rating(value, typecast, o.max)?,
        FieldType::Duration(o) => duration(value, typecast)?
            .map(|x| number_json(round_to(x, o.duration_format.decimals()))),
        FieldType::Checkbox(_) => checkbox(value, typecast)?,
        FieldType::Date(o) => date(value, typecast, o.date_format)?
            .map(|d| Value::String(d.format("%Y-%m-%d").to_string())),
        FieldType::DateTime(o) => {
            let zone = parse_time_zone(&o.time_zone).unwrap_or(Zone::Utc);
            date_time(value, typecast, o.date_format, zone)?
                .map(|t| Value::String(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()))
        }
        FieldType::SingleSelect(o) => return single_select(value, typecast, &o.choices),
        FieldType::MultipleSelects(o) => return multiple_selects(value, typecast, &o.choices),
        FieldType::MultipleRecordLinks(_) => links(value, typecast)?,
        FieldType::MultipleAttachments => return attachments(value, typecast),
        // Computed types returned above; listed so a new type cannot slip through unhandled.
        FieldType::CreatedTime
        | FieldType::LastModifiedTime
        | FieldType::CreatedBy
        | FieldType::LastModifiedBy
        | FieldType::AutoNumber
        | FieldType::Formula(_)
        | FieldType::MultipleLookupValues(_)
        | FieldType::Rollup(_)
        | FieldType::Count(_) => {
            return Err(Reason::ComputedField {
                field_type: ft.type_name(),
            });
        }
    };
    Ok(NormalizedCell::of(v.unwrap_or(Value::Null)))
}

/// A scalar rendered as text (typecast), or the string itself. `None` clears the cell.
fn text(value: &Value, typecast: bool) -> Result<Option<String>, Reason> {
    let s = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) if typecast => n.to_string(),
        Value::Bool(b) if typecast => b.to_string(),
        Value::Array(items) if typecast => {
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => parts.push(s.clone()),
                    Value::Number(n) => parts.push(n.to_string()),
                    Value::Bool(b) => parts.push(b.to_string()),
                    Value::Null => {}
                    _ => return Err(expected("a string")),
                }
            }
            parts.join(", ")
        }
        _ => return Err(expected("a string")),
    };
    if s.chars().count() > MAX_TEXT_CHARS {
        return Err(Reason::TooLong {
            max_chars: MAX_TEXT_CHARS,
        });
    }
    Ok((!s.is_empty()).then_some(s))
}

fn checked_text(
    value: &Value,
    typecast: bool,
    check: fn(&str) -> bool,
    what: &'static str,
) -> Result<Option<Value>, Reason> {
    let Some(s) = text(value, typecast)? else {
        return Ok(None);
    };
    // Surrounding blanks are never part of an address; dropping them is not a guess.
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if check(s) {
        Ok(Some(Value::String(s.to_owned())))
    } else {
        Err(expected(what))
    }
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !local.contains('@')
        && !s.chars().any(char::is_whitespace)
        && domain.contains('.')
        && domain
            .split('.')
            .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'))
}

fn is_url(s: &str) -> bool {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    if let Some((scheme, rest)) = s.split_once("://") {
        let scheme_ok = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        return scheme_ok && !host.is_empty();
    }
    if s.starts_with("mailto:") || s.starts_with("tel:") {
        return s.len() > 7;
    }
    // Without a scheme, Airtable still accepts `example.com/path`: ask for a dotted host.
    let host = s.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = host.split(':').next().unwrap_or("");
    host.contains('.') && host.split('.').all(|l| !l.is_empty())
}

fn is_phone(s: &str) -> bool {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    s.chars().count() <= 40
        && digits >= 3
        && s.chars().all(|c| {
            c.is_ascii_digit() || c == ' ' || "+-().,/#*".contains(c) || "xXeEtT".contains(c)
        })
}

/// A JSON number, or with typecast a numeric string (thousands separators and the currency
/// symbol allowed) or a boolean. `None` clears the cell.
fn number(value: &Value, typecast: bool, symbol: Option<&str>) -> Result<Option<f64>, Reason> {
    const WHAT: &str = "a number";
    match value {
        Value::Number(n) => n
            .as_f64()
            .filter(|x| x.is_finite())
            .map(Some)
            .ok_or(expected(WHAT)),
        Value::String(s) if typecast => {
            let mut t = s.trim().to_owned();
            for sym in symbol.into_iter().chain(["$", "€", "£", "¥"]) {
                if !sym.is_empty() {
                    t = t.replace(sym, "");
                }
            }
            let t: String = t
                .chars()
                .filter(|c| !matches!(c, ',' | '_' | ' '))
                .collect();
            if t.is_empty() {
                return Ok(None);
            }
            parse_finite(&t).map(Some).ok_or(expected(WHAT))
        }
        Value::Bool(b) if typecast => Ok(Some(if *b { 1.0 } else { 0.0 })),
        _ => Err(expected(WHAT)),
    }
}

/// Parses a decimal number, refusing `inf`, `NaN` and the like that Rust's parser accepts.
fn parse_finite(t: &str) -> Option<f64> {
    let plain = t
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'));
    if !plain {
        return None;
    }
    t.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// A percent is stored as a fraction; typecast reads `"50%"` as 0.5 and `"0.5"` as 0.5.
fn percent(value: &Value, typecast: bool) -> Result<Option<f64>, Reason> {
    if let (Value::String(s), true) = (value, typecast)
        && let Some(p) = s.trim().strip_suffix('%')
    {
        return number(&Value::String(p.to_owned()), true, None).map(|x| x.map(|x| x / 100.0));
    }
    number(value, typecast, None)
}

fn rating(value: &Value, typecast: bool, max: u8) -> Result<Option<Value>, Reason> {
    let Some(x) = number(value, typecast, None)? else {
        return Ok(None);
    };
    if x == 0.0 {
        // Airtable shows a rating of 0 as an empty cell.
        return Ok(None);
    }
    if x.fract() != 0.0 || x < 1.0 || x > f64::from(max) {
        return Err(Reason::RatingOutOfRange { max });
    }
    Ok(Some(number_json(x)))
}

/// Seconds, or with typecast `h:mm`, `h:mm:ss` or `h:mm:ss.fff` (optionally negative).
fn duration(value: &Value, typecast: bool) -> Result<Option<f64>, Reason> {
    const WHAT: &str = "a duration in seconds";
    if let (Value::String(s), true) = (value, typecast)
        && s.contains(':')
    {
        let s = s.trim();
        let (sign, body) = match s.strip_prefix('-') {
            Some(rest) => (-1.0, rest),
            None => (1.0, s),
        };
        let parts: Vec<&str> = body.split(':').collect();
        let unit = |p: &str| -> Option<f64> {
            (!p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || c == '.'))
                .then(|| p.parse::<f64>().ok())
                .flatten()
                .filter(|x| x.is_finite())
        };
        let total = match parts.as_slice() {
            [h, m] if !h.contains('.') && !m.contains('.') => unit(h)
                .zip(unit(m))
                .filter(|(_, m)| *m < 60.0)
                .map(|(h, m)| h * 3600.0 + m * 60.0),
            [h, m, sec] if !h.contains('.') && !m.contains('.') => unit(h)
                .zip(unit(m))
                .zip(unit(sec))
                .filter(|((_, m), s)| *m < 60.0 && *s < 60.0)
                .map(|((h, m), s)| h * 3600.0 + m * 60.0 + s),
            _ => None,
        };
        return total.map(|t| Some(sign * t)).ok_or(expected(WHAT));
    }
    number(value, typecast, None).map_err(|_| expected(WHAT))
}

fn checkbox(value: &Value, typecast: bool) -> Result<Option<Value>, Reason> {
    const WHAT: &str = "true or false";
    let checked = match value {
        Value::Bool(b) => *b,
        Value::String(s) if typecast => match s.trim().to_lowercase().as_str() {
            "true" | "yes" | "y" | "1" | "checked" | "on" | "x" | "✓" | "✔" => true,
            "false" | "no" | "n" | "0" | "unchecked" | "off" | "" => false,
            _ => return Err(expected(WHAT)),
        },
        Value::Number(n) if typecast => n.as_f64().is_some_and(|x| x != 0.0),
        _ => return Err(expected(WHAT)),
    };
    // Airtable stores an unchecked box as an empty cell.
    Ok(checked.then_some(Value::Bool(true)))
}

/// Date formats typecast tries, in order; `M/D` or `D/M` first depending on the field's format.
fn typecast_date_formats(fmt: DateFormat) -> [&'static str; 8] {
    let (first, second) = if fmt == DateFormat::European {
        ("%d/%m/%Y", "%m/%d/%Y")
    } else {
        ("%m/%d/%Y", "%d/%m/%Y")
    };
    [
        "%Y-%m-%d",
        "%Y/%m/%d",
        first,
        second,
        "%B %d, %Y",
        "%b %d, %Y",
        "%d %B %Y",
        "%d %b %Y",
    ]
}

fn date(value: &Value, typecast: bool, fmt: DateFormat) -> Result<Option<NaiveDate>, Reason> {
    const WHAT: &str = "a date such as 2024-05-01";
    let Value::String(s) = value else {
        return Err(expected(WHAT));
    };
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(Some(d));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc).date_naive()));
    }
    if typecast {
        if let Some(d) = typecast_date_formats(fmt)
            .iter()
            .find_map(|f| NaiveDate::parse_from_str(s, f).ok())
        {
            return Ok(Some(d));
        }
        if let Some(t) = parse_naive_date_time(s, fmt) {
            return Ok(Some(t.date()));
        }
    }
    Err(expected(WHAT))
}

/// `date time` with the date in a typecast format and the time as `HH:MM[:SS[.f]]` with an
/// optional am/pm.
fn parse_naive_date_time(s: &str, fmt: DateFormat) -> Option<NaiveDateTime> {
    let (d, t) = s.split_once(['T', ' '])?;
    let date = typecast_date_formats(fmt)
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(d.trim(), f).ok())?;
    let t = t.trim();
    let time = [
        "%H:%M:%S%.f",
        "%H:%M",
        "%I:%M %p",
        "%I:%M%p",
        "%I:%M:%S %p",
        "%I:%M:%S%p",
    ]
    .iter()
    .find_map(|f| NaiveTime::parse_from_str(t, f).ok())?;
    Some(date.and_time(time))
}

fn in_zone(naive: NaiveDateTime, zone: Zone) -> Option<DateTime<Utc>> {
    match zone {
        Zone::Utc => Some(naive.and_utc()),
        // A time skipped by a DST change has no instant; an ambiguous one takes the earlier.
        Zone::Named(tz) => tz
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.with_timezone(&Utc)),
    }
}

fn date_time(
    value: &Value,
    typecast: bool,
    fmt: DateFormat,
    zone: Zone,
) -> Result<Option<DateTime<Utc>>, Reason> {
    const WHAT: &str = "an ISO-8601 date and time such as 2024-05-01T10:00:00.000Z";
    let Value::String(s) = value else {
        return Err(expected(WHAT));
    };
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_time(NaiveTime::MIN))
        })
        .or_else(|| {
            typecast
                .then(|| {
                    parse_naive_date_time(s, fmt).or_else(|| {
                        typecast_date_formats(fmt)
                            .iter()
                            .find_map(|f| NaiveDate::parse_from_str(s, f).ok())
                            .map(|d| d.and_time(NaiveTime::MIN))
                    })
                })
                .flatten()
        });
    naive
        .and_then(|n| in_zone(n, zone))
        .map(Some)
        .ok_or(expected(WHAT))
}

/// Rounds half away from zero to `decimals` places; values too large to scale are already
/// integral at that precision and are kept.
fn round_to(x: f64, decimals: u8) -> f64 {
    let factor = 10f64.powi(i32::from(decimals));
    let scaled = x * factor;
    if !scaled.is_finite() || scaled.abs() >= 9.0e15 {
        return x;
    }
    let r = scaled.round() / factor;
    // Normalise -0 so stored values compare equal.
    if r == 0.0 { 0.0 } else { r }
}

/// Whole numbers are stored as JSON integers, like Airtable returns them.
fn number_json(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        #[allow(clippy::cast_possible_truncation)] // integral and within i64 range, checked above
        return Value::from(x as i64);
    }
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// Select option names from a value: a string (typecast: comma-separated for multi) or an array.
fn option_names(value: &Value, typecast: bool, multi: bool) -> Result<Vec<String>, Reason> {
    const WHAT_ONE: &str = "the name of a select option";
    const WHAT_MANY: &str = "an array of select option names";
    let what = if multi { WHAT_MANY } else { WHAT_ONE };
    let scalar = |v: &Value| -> Result<Option<String>, Reason> {
        match v {
            Value::String(s) => Ok(Some(s.clone())),
            Value::Number(n) if typecast => Ok(Some(n.to_string())),
            Value::Bool(b) if typecast => Ok(Some(b.to_string())),
            Value::Null => Ok(None),
            _ => Err(expected(what)),
        }
    };
    let raw: Vec<String> = match value {
        Value::Array(items) if multi || typecast => {
            let mut out = Vec::new();
            for item in items {
                out.extend(scalar(item)?);
            }
            if !multi {
                // Typecasting a list into a single select keeps its first option.
                out.truncate(1);
            }
            out
        }
        Value::String(s) if multi && typecast => s.split(',').map(str::to_owned).collect(),
        v if !multi => scalar(v)?.into_iter().collect(),
        _ => return Err(expected(what)),
    };
    let mut names: Vec<String> = Vec::new();
    for n in raw {
        let n = n.trim();
        if n.chars().count() > 255 {
            return Err(Reason::TooLong { max_chars: 255 });
        }
        if !n.is_empty() && !names.iter().any(|m| m == n) {
            names.push(n.to_owned());
        }
    }
    Ok(names)
}

fn resolve_choices(
    names: Vec<String>,
    typecast: bool,
    choices: &[super::Choice],
) -> Result<(Vec<String>, Vec<String>), Reason> {
    let unknown: Vec<String> = names
        .iter()
        .filter(|n| !choices.iter().any(|c| &c.name == *n))
        .cloned()
        .collect();
    if !unknown.is_empty() && !typecast {
        return Err(Reason::UnknownChoices { names: unknown });
    }
    Ok((names, unknown))
}

fn single_select(
    value: &Value,
    typecast: bool,
    choices: &[super::Choice],
) -> Result<NormalizedCell, Reason> {
    let names = option_names(value, typecast, false)?;
    let (names, new_choices) = resolve_choices(names, typecast, choices)?;
    Ok(NormalizedCell {
        value: names.into_iter().next().map_or(Value::Null, Value::String),
        new_choices,
        missing_attachment_ids: 0,
    })
}

fn multiple_selects(
    value: &Value,
    typecast: bool,
    choices: &[super::Choice],
) -> Result<NormalizedCell, Reason> {
    let names = option_names(value, typecast, true)?;
    let (names, new_choices) = resolve_choices(names, typecast, choices)?;
    let value = if names.is_empty() {
        Value::Null
    } else {
        Value::Array(names.into_iter().map(Value::String).collect())
    };
    Ok(NormalizedCell {
        value,
        new_choices,
        missing_attachment_ids: 0,
    })
}

/// An array of record ids (or `{"id": …}` objects); typecast also takes one string, which may
/// be comma-separated.
fn links(value: &Value, typecast: bool) -> Result<Option<Value>, Reason> {
    const WHAT: &str = "an array of record ids";
    let items: Vec<String> = match value {
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    Value::Object(o) => match o.get("id") {
                        Some(Value::String(s)) => out.push(s.clone()),
                        _ => return Err(expected(WHAT)),
                    },
                    _ => return Err(expected(WHAT)),
                }
            }
            out
        }
        Value::String(s) if typecast => s.split(',').map(str::to_owned).collect(),
        _ => return Err(expected(WHAT)),
    };
    let mut ids: Vec<Value> = Vec::with_capacity(items.len());
    for item in items {
        let item = item.trim();
        if item.is_empty() && typecast {
            continue;
        }
        let id = RecordId::parse(item).map_err(|e| Reason::InvalidRecordId { value: e.value })?;
        let v = Value::String(id.as_str().to_owned());
        if !ids.contains(&v) {
            ids.push(v);
        }
    }
    Ok((!ids.is_empty()).then_some(Value::Array(ids)))
}

fn attachments(value: &Value, typecast: bool) -> Result<NormalizedCell, Reason> {
    const WHAT: &str = "an array of attachment objects {url, filename}";
    let items: Vec<Value> = match value {
        Value::Array(items) => items.clone(),
        Value::String(_) | Value::Object(_) if typecast => vec![value.clone()],
        _ => return Err(expected(WHAT)),
    };
    let mut out = Vec::with_capacity(items.len());
    let mut missing = 0;
    for item in items {
        let obj = match item {
            Value::Object(o) => o,
            Value::String(url) if typecast => {
                let mut o = Map::new();
                o.insert("url".to_owned(), Value::String(url));
                o
            }
            _ => return Err(expected(WHAT)),
        };
        let a = attachment(&obj)?;
        if !a.contains_key("id") {
            missing += 1;
        }
        out.push(Value::Object(a));
    }
    Ok(NormalizedCell {
        value: if out.is_empty() {
            Value::Null
        } else {
            Value::Array(out)
        },
        new_choices: Vec::new(),
        missing_attachment_ids: missing,
    })
}

fn attachment(obj: &Map<String, Value>) -> Result<Map<String, Value>, Reason> {
    let bad = |problem| Reason::InvalidAttachment { problem };
    let mut out = Map::new();
    let id = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            AttachmentId::parse(s)
                .map_err(|_| bad("`id` must be an attachment id (`att` + 14 characters)"))?,
        ),
        Some(_) => return Err(bad("`id` must be a string")),
    };
    if let Some(id) = &id {
        out.insert("id".to_owned(), Value::String(id.to_string()));
    }
    let url = match obj.get("url") {
        Some(Value::String(u)) => u.trim().to_owned(),
        None | Some(Value::Null) if id.is_some() => {
            // `{id}` alone keeps an attachment the cell already holds; see merge_attachment_refs.
            return Ok(out);
        }
        _ => return Err(bad("`url` is required and must be a string")),
    };
    let lower = url.to_ascii_lowercase();
    let valid_url = (lower.starts_with("https://") || lower.starts_with("http://"))
        && url.len() > "https://".len()
        && !url.chars().any(char::is_whitespace)
        && url.len() <= 8192;
    if !valid_url {
        return Err(bad("`url` must be an http(s) URL"));
    }
    let filename = match obj.get("filename") {
        Some(Value::String(f)) if !f.trim().is_empty() => f.trim().to_owned(),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            let path = url.split(['?', '#']).next().unwrap_or("");
            let last = path.rsplit('/').next().unwrap_or("");
            if last.is_empty() || last.contains(':') {
                "file".to_owned()
            } else {
                last.to_owned()
            }
        }
        Some(_) => return Err(bad("`filename` must be a string")),
    };
    if filename.chars().count() > 1024 {
        return Err(bad("`filename` is longer than 1024 characters"));
    }
    out.insert("url".to_owned(), Value::String(url));
    out.insert("filename".to_owned(), Value::String(filename));
    match obj.get("size") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_u64().is_some() => {
            out.insert("size".to_owned(), Value::Number(n.clone()));
        }
        Some(_) => return Err(bad("`size` must be a non-negative whole number of bytes")),
    }
    match obj.get("type") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t.len() <= 255 => {
            out.insert("type".to_owned(), Value::String(t.clone()));
        }
        Some(_) => return Err(bad("`type` must be a MIME type string")),
    }
    Ok(out)
}

/// Gives an id to every attachment of a normalised `multipleAttachments` value that has none,
/// drawing from `ids` in order; returns how many were assigned.
pub fn assign_attachment_ids(
    value: &mut Value,
    ids: &mut impl Iterator<Item = AttachmentId>,
) -> usize {
    let mut assigned = 0;
    if let Value::Array(items) = value {
        for item in items {
            if let Value::Object(o) = item
                && !o.contains_key("id")
                && let Some(id) = ids.next()
            {
                o.insert("id".to_owned(), Value::String(id.to_string()));
                assigned += 1;
            }
        }
    }
    assigned
}

/// Replaces `{id}`-only attachment references in `new` with the full metadata held in
/// `current` (the cell's value before the write); references to unknown ids are dropped, as
/// Airtable keeps only attachments it knows.
#[must_use]
pub fn merge_attachment_refs(new: &Value, current: &Value) -> Value {
    let Value::Array(items) = new else {
        return new.clone();
    };
    let known: &[Value] = current.as_array().map_or(&[], Vec::as_slice);
    let merged: Vec<Value> = items
        .iter()
        .filter_map(|item| {
            let o = item.as_object()?;
            if o.contains_key("url") {
                return Some(item.clone());
            }
            let id = o.get("id")?;
            known.iter().find(|k| k.get("id") == Some(id)).cloned()
        })
        .collect();
    if merged.is_empty() {
        Value::Null
    } else {
        Value::Array(merged)
    }
}
