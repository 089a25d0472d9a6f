//! Formula values, Airtable's coercions between them, and their JSON and text renderings.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, Utc};
use serde_json::json;

use crate::fields::{FieldType, MAX_TEXT_CHARS};

/// Longest text a formula produces, in characters; longer results become
/// [`ErrorKind::TooLong`]. Same as the longest text a cell holds.
pub const MAX_RESULT_CHARS: usize = MAX_TEXT_CHARS;

/// Most elements an array value holds; longer arrays become [`ErrorKind::TooLong`].
pub const MAX_ARRAY_LEN: usize = 10_000;

/// Deepest JSON nesting converted from a cell; deeper parts become text.
const MAX_JSON_DEPTH: usize = 8;

/// Why a formula evaluated to an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// `ERROR()`, or a failure with no more precise kind.
    Error,
    /// A division (or `MOD`) by zero.
    DivisionByZero,
    /// A number that is not a number: `SQRT(-1)`, `VALUE("abc")`, `"a" * 2`.
    NotANumber,
    /// A number too large for a 64-bit float.
    Overflow,
    /// An argument of the wrong kind or out of range: an unparsable date, an unknown unit.
    InvalidArgument,
    /// A text longer than [`MAX_RESULT_CHARS`] or an array longer than [`MAX_ARRAY_LEN`].
    TooLong,
    /// A hand-built tree nested deeper than [`crate::formula::MAX_DEPTH`].
    TooDeep,
    /// A regular expression that does not compile (or is too large).
    InvalidRegex,
    /// `REGEX_EXTRACT` found no match.
    NoMatch,
    /// A `{field}` the evaluation context does not know (see [`crate::formula::check`]).
    UnknownField,
}

impl ErrorKind {
    /// What Airtable shows in the cell: `NaN`, `Infinity` or `#ERROR!`.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::NotANumber => "NaN",
            Self::Overflow => "Infinity",
            _ => "#ERROR!",
        }
    }
}

/// The value of a formula or of one of its parts.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Empty: an empty cell or `BLANK()`. It is 0 in arithmetic and `""` in text.
    Blank,
    /// A finite number.
    Number(f64),
    /// Text.
    Text(String),
    /// `TRUE()`/`FALSE()` and comparison results; 1 and 0 in arithmetic and text.
    Bool(bool),
    /// A calendar date without a time (a `date` field); midnight UTC where an instant is needed.
    Date(NaiveDate),
    /// An instant.
    DateTime(DateTime<Utc>),
    /// Several values: multiple selects, links, lookups.
    Array(Vec<Value>),
    /// An error; it propagates through operators and most functions.
    Error(ErrorKind),
}

/// Formats a number the way JavaScript (and so Airtable) prints it: `3`, `0.1`, `1e+21`.
#[must_use]
pub fn format_number(n: f64) -> String {
    if n == 0.0 {
        return "0".to_owned();
    }
    if !n.is_finite() {
        return if n.is_nan() {
            "NaN".to_owned()
        } else if n > 0.0 {
            "Infinity".to_owned()
        } else {
            "-Infinity".to_owned()
        };
    }
    let abs = n.abs();
    if (1e-6..1e21).contains(&abs) {
        format!("{n}")
    } else {
        let s = format!("{n:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => s,
        }
    }
}

/// Reads a number from text like JavaScript's `Number()`: trimmed, decimal or exponent form,
/// `Infinity` excluded. Empty text is `Some(0)`.
#[must_use]
pub fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return Some(0.0);
    }
    // Rust also accepts `inf`, `NaN` and `infinity`: those are not numbers to Airtable.
    if !t
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
    {
        return None;
    }
    t.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Midnight UTC of a date.
#[must_use]
pub fn date_to_instant(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(NaiveTime::MIN).and_utc()
}

impl Value {
    /// A number, or the error that a non-finite result stands for.
    #[must_use]
    pub fn number(n: f64) -> Self {
        if n.is_nan() {
            Self::Error(ErrorKind::NotANumber)
        } else if n.is_infinite() {
            Self::Error(ErrorKind::Overflow)
        } else {
            Self::Number(n)
        }
    }

    /// Text, or [`ErrorKind::TooLong`] past [`MAX_RESULT_CHARS`].
    #[must_use]
    pub fn text(s: String) -> Self {
        if exceeds_text_cap(&s) {
            Self::Error(ErrorKind::TooLong)
        } else {
            Self::Text(s)
        }
    }

    /// Whether Airtable's `filterByFormula` keeps a record for which the formula gives this
    /// value: false for 0, `""`, blank, `FALSE()`, errors and empty arrays.
    #[must_use]
    pub fn is_truthy(&self) -> bool {
        match self {
            Self::Blank | Self::Error(_) => false,
            Self::Number(n) => *n != 0.0 && !n.is_nan(),
            Self::Text(s) => !s.is_empty(),
            Self::Bool(b) => *b,
            Self::Date(_) | Self::DateTime(_) => true,
            Self::Array(items) => !items.is_empty(),
        }
    }

    /// Whether the value is blank or an empty text or array (what `COUNTA` skips).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Blank => true,
            Self::Text(s) => s.is_empty(),
            Self::Array(items) => items.is_empty(),
            _ => false,
        }
    }

    /// The error this value is, if it is one.
    #[must_use]
    pub fn error(&self) -> Option<ErrorKind> {
        match self {
            Self::Error(e) => Some(*e),
            _ => None,
        }
    }

    /// The value as a number for arithmetic: blank is 0, booleans 1/0, numeric text its number,
    /// a one-element array its element.
    ///
    /// # Errors
    /// The value's own error; [`ErrorKind::NotANumber`] for other text, dates and longer arrays.
    pub fn to_number(&self) -> Result<f64, ErrorKind> {
        match self {
            Self::Blank => Ok(0.0),
            Self::Number(n) => Ok(*n),
            Self::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
            Self::Text(s) => parse_number(s).ok_or(ErrorKind::NotANumber),
            Self::Date(_) | Self::DateTime(_) => Err(ErrorKind::NotANumber),
            Self::Array(items) => match items.as_slice() {
                [] => Ok(0.0),
                [one] => one.to_number(),
                _ => Err(ErrorKind::NotANumber),
            },
            Self::Error(e) => Err(*e),
        }
    }

    /// The value as text: blank is `""`, numbers as JavaScript prints them, booleans `1`/`0`,
    /// dates `YYYY-MM-DD`, instants ISO-8601 in UTC with milliseconds, arrays joined by `", "`.
    ///
    /// # Errors
    /// The value's own error (or the first error in an array); [`ErrorKind::TooLong`] when the
    /// text would pass [`MAX_RESULT_CHARS`].
    pub fn to_text(&self) -> Result<String, ErrorKind> {
        let mut out = String::new();
        self.push_text(&mut out, 0)?;
        Ok(out)
    }

    fn push_text(&self, out: &mut String, depth: usize) -> Result<(), ErrorKind> {
        match self {
            Self::Blank => {}
            Self::Number(n) => out.push_str(&format_number(*n)),
            Self::Text(s) => out.push_str(s),
            Self::Bool(b) => out.push(if *b { '1' } else { '0' }),
            Self::Date(d) => out.push_str(&d.format("%Y-%m-%d").to_string()),
            Self::DateTime(t) => out.push_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            Self::Array(items) => {
                if depth >= MAX_JSON_DEPTH {
                    return Err(ErrorKind::TooDeep);
                }
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.push_text(out, depth + 1)?;
                    if out.len() > MAX_RESULT_CHARS * 4 {
                        return Err(ErrorKind::TooLong);
                    }
                }
            }
            Self::Error(e) => return Err(*e),
        }
        if exceeds_text_cap(out) {
            return Err(ErrorKind::TooLong);
        }
        Ok(())
    }

    /// The text `cellFormat=string` shows: like [`Value::to_text`], with an error shown as its
    /// code (`#ERROR!`, `NaN`, `Infinity`).
    #[must_use]
    pub fn display_string(&self) -> String {
        match self.to_text() {
            Ok(s) => s,
            Err(e) => e.code().to_owned(),
        }
    }

    /// The value as a REST cell (`cellFormat=json`): numbers, strings, booleans (as a checkbox
    /// result: `true`/`false`, so [`Value::from_cell`] reads them back), dates as
    /// `YYYY-MM-DD`, instants as ISO-8601, arrays as arrays, blank as `null`, errors as
    /// `{"error": "#ERROR!"}` and non-finite numbers as `{"specialValue": "NaN"}` /
    /// `{"specialValue": "Infinity"}`, as Airtable returns them.
    #[must_use]
    pub fn to_cell_json(&self) -> serde_json::Value {
        self.cell_json(0)
    }

    fn cell_json(&self, depth: usize) -> serde_json::Value {
        match self {
            Self::Blank => serde_json::Value::Null,
            Self::Number(n) => serde_json::Number::from_f64(*n)
                .map_or_else(|| json!({"specialValue": "NaN"}), serde_json::Value::Number),
            Self::Text(s) => json!(s),
            Self::Bool(b) => json!(b),
            Self::Date(d) => json!(d.format("%Y-%m-%d").to_string()),
            Self::DateTime(t) => json!(t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            Self::Array(_) if depth >= MAX_JSON_DEPTH => json!({"error": "#ERROR!"}),
            Self::Array(items) => {
                serde_json::Value::Array(items.iter().map(|v| v.cell_json(depth + 1)).collect())
            }
            Self::Error(e @ (ErrorKind::NotANumber | ErrorKind::Overflow)) => {
                json!({"specialValue": e.code()})
            }
            Self::Error(e) => json!({"error": e.code()}),
        }
    }

    /// Reads a stored cell as the formula sees it, by the field's type: dates and instants from
    /// ISO strings, selects as text, multiple selects, links and lookups as arrays, checkboxes as
    /// booleans (unchecked is `FALSE()`), collaborators as their name, attachments as
    /// `filename (url)`.
    #[must_use]
    pub fn from_cell(field_type: &FieldType, cell: &serde_json::Value) -> Self {
        from_cell_typed(field_type, cell, 0)
    }

    /// Reads JSON by its shape alone (used for lookups, rollups and formulas whose result type
    /// is unknown).
    #[must_use]
    pub fn from_json(cell: &serde_json::Value) -> Self {
        from_json(cell, 0)
    }

    /// The value as an instant: dates at midnight UTC, ISO and common date texts parsed, a
    /// one-element array its element.
    ///
    /// # Errors
    /// The value's own error; [`ErrorKind::InvalidArgument`] for blanks, numbers, booleans and
    /// text that is no date.
    pub fn to_instant(&self) -> Result<DateTime<Utc>, ErrorKind> {
        match self {
            Self::DateTime(t) => Ok(*t),
            Self::Date(d) => Ok(date_to_instant(*d)),
            Self::Text(s) => super::dates::parse_loose(s).ok_or(ErrorKind::InvalidArgument),
            Self::Array(items) => match items.as_slice() {
                [one] => one.to_instant(),
                _ => Err(ErrorKind::InvalidArgument),
            },
            Self::Error(e) => Err(*e),
            Self::Blank | Self::Number(_) | Self::Bool(_) => Err(ErrorKind::InvalidArgument),
        }
    }
}

fn exceeds_text_cap(s: &str) -> bool {
    // Bytes are at least characters, so the character count is only needed past the cap.
    s.len() > MAX_RESULT_CHARS && s.chars().nth(MAX_RESULT_CHARS).is_some()
}

fn from_cell_typed(field_type: &FieldType, cell: &serde_json::Value, depth: usize) -> Value {
    use serde_json::Value as J;
    match (field_type, cell) {
        (FieldType::Checkbox(_), J::Null) => Value::Bool(false),
        (_, J::Null) => Value::Blank,
        (FieldType::Date(_), J::String(s)) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Value::Date)
            .or_else(|_| {
                super::dates::parse_loose(s)
                    .map(|t| Value::Date(t.date_naive()))
                    .ok_or(())
            })
            .unwrap_or_else(|()| Value::Text(s.clone())),
        (
            FieldType::DateTime(_) | FieldType::CreatedTime | FieldType::LastModifiedTime,
            J::String(s),
        ) => super::dates::parse_loose(s).map_or_else(|| Value::Text(s.clone()), Value::DateTime),
        (FieldType::MultipleAttachments, J::Array(items)) => Value::Array(
            items
                .iter()
                .take(MAX_ARRAY_LEN)
                .map(|a| {
                    let name = a.get("filename").and_then(J::as_str).unwrap_or_default();
                    match a.get("url").and_then(J::as_str) {
                        Some(url) => Value::Text(format!("{name} ({url})")),
                        None => Value::Text(name.to_owned()),
                    }
                })
                .collect(),
        ),
        (FieldType::Formula(o), c) => match &o.result {
            Some(inner) if depth < MAX_JSON_DEPTH && !matches!(**inner, FieldType::Formula(_)) => {
                from_cell_typed(inner, c, depth + 1)
            }
            _ => from_json(c, depth),
        },
        (_, c) => from_json(c, depth),
    }
}

fn from_json(cell: &serde_json::Value, depth: usize) -> Value {
    use serde_json::Value as J;
    match cell {
        J::Null => Value::Blank,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => n
            .as_f64()
            .map_or(Value::Error(ErrorKind::Overflow), Value::number),
        J::String(s) => Value::Text(s.clone()),
        J::Array(_) if depth >= MAX_JSON_DEPTH => Value::Error(ErrorKind::TooDeep),
        J::Array(items) if items.len() > MAX_ARRAY_LEN => Value::Error(ErrorKind::TooLong),
        J::Array(items) => Value::Array(items.iter().map(|i| from_json(i, depth + 1)).collect()),
        J::Object(o) => {
            if o.contains_key("error") {
                return Value::Error(ErrorKind::Error);
            }
            match o.get("specialValue").and_then(J::as_str) {
                Some("NaN") => return Value::Error(ErrorKind::NotANumber),
                Some(_) => return Value::Error(ErrorKind::Overflow),
                None => {}
            }
            // Collaborators, linked-record objects and attachments: their readable part.
            for key in ["name", "email", "filename", "id"] {
                if let Some(s) = o.get(key).and_then(J::as_str) {
                    return Value::Text(s.to_owned());
                }
            }
            Value::Text(cell.to_string())
        }
    }
}

/// Compares two values the way Airtable's comparison operators do. `None` means the two cannot
/// be ordered (a date against a number): every comparison but `!=` is then false.
///
/// Blank compares as 0 to numbers and booleans and as `""` to text; numbers against text
/// compare numerically when the text is a number, else as text; dates against text parse the
/// text; arrays compare as their joined text.
///
/// # Errors
/// The first operand's error, then the second's.
pub fn compare(a: &Value, b: &Value) -> Result<Option<Ordering>, ErrorKind> {
    if let Some(e) = a.error() {
        return Err(e);
    }
    if let Some(e) = b.error() {
        return Err(e);
    }
    let a = flatten_for_compare(a)?;
    let b = flatten_for_compare(b)?;
    use Value as V;
    Ok(match (&a, &b) {
        (V::Blank, V::Blank) => Some(Ordering::Equal),
        (V::Blank | V::Number(_) | V::Bool(_), V::Blank | V::Number(_) | V::Bool(_)) => {
            a.to_number()?.partial_cmp(&b.to_number()?)
        }
        (V::Blank, V::Text(s)) => Some("".cmp(s.as_str())),
        (V::Text(s), V::Blank) => Some(s.as_str().cmp("")),
        (V::Text(x), V::Text(y)) => Some(x.cmp(y)),
        (V::Number(_) | V::Bool(_), V::Text(s)) => match parse_number(s) {
            Some(n) if !s.trim().is_empty() => a.to_number()?.partial_cmp(&n),
            _ => Some(a.to_text()?.cmp(s)),
        },
        (V::Text(s), V::Number(_) | V::Bool(_)) => match parse_number(s) {
            Some(n) if !s.trim().is_empty() => n.partial_cmp(&b.to_number()?),
            _ => Some(s.as_str().cmp(b.to_text()?.as_str())),
        },
        (V::Date(_) | V::DateTime(_), V::Date(_) | V::DateTime(_)) => {
            Some(a.to_instant()?.cmp(&b.to_instant()?))
        }
        (V::Date(_) | V::DateTime(_), V::Text(s)) => match super::dates::parse_loose(s) {
            Some(t) => Some(a.to_instant()?.cmp(&t)),
            None => Some(a.to_text()?.cmp(s)),
        },
        (V::Text(s), V::Date(_) | V::DateTime(_)) => match super::dates::parse_loose(s) {
            Some(t) => Some(t.cmp(&b.to_instant()?)),
            None => Some(s.as_str().cmp(b.to_text()?.as_str())),
        },
        _ => None,
    })
}

/// Arrays compare as their text; a one-element array as its element.
fn flatten_for_compare(v: &Value) -> Result<Value, ErrorKind> {
    let mut v = v;
    while let Value::Array(items) = v {
        match items.as_slice() {
            [] => return Ok(Value::Blank),
            [one] => v = one,
            _ => return Ok(Value::Text(v.to_text()?)),
        }
    }
    Ok(v.clone())
}
