//! Changing a field's type: how much of the existing data survives ([`conversion`]) and what
//! each cell becomes ([`convert_cell`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::FieldType;
use super::validate::normalize;

/// How much of a field's data survives a change of type or options.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Conversion {
    /// Every value is kept (possibly in another form, e.g. a number rendered as text).
    Lossless,
    /// Some values may be cleared or rounded; allowed only when the caller says so.
    Lossy,
    /// The change is not supported (e.g. into or out of a record link).
    Impossible,
}

/// Decimals a numeric field keeps, `None` for non-numeric fields.
fn numeric_precision(t: &FieldType) -> Option<u8> {
    match t {
        FieldType::Number(o) | FieldType::Percent(o) => Some(o.precision),
        FieldType::Currency(o) => Some(o.precision),
        FieldType::Duration(o) => Some(o.duration_format.decimals()),
        FieldType::Rating(_) | FieldType::Checkbox(_) => Some(0),
        _ => None,
    }
}

/// Whether every choice name of `from` exists in `to`.
fn names_kept(from: &FieldType, to: &FieldType) -> bool {
    match (from.choices(), to.choices()) {
        (Some(a), Some(b)) => a.iter().all(|c| b.iter().any(|d| d.name == c.name)),
        _ => false,
    }
}

/// Classifies a change of a field from `from` to `to`.
#[must_use]
pub fn conversion(from: &FieldType, to: &FieldType) -> Conversion {
    use Conversion::{Impossible, Lossless, Lossy};
    use FieldType as T;
    if from == to {
        return Lossless;
    }
    match (from, to) {
        // Computed fields store no cells, so switching among them loses nothing; materialising
        // one into stored cells needs the formula engine, which does not exist yet.
        (f, t) if f.is_computed() => {
            if t.is_computed() {
                Lossless
            } else {
                Impossible
            }
        }
        (_, t) if t.is_computed() => Lossy,
        // Links carry an inverse field in another table: only their flags may change.
        (T::MultipleRecordLinks(a), T::MultipleRecordLinks(b)) => {
            if a.linked_table_id == b.linked_table_id
                && a.inverse_link_field_id == b.inverse_link_field_id
            {
                Lossless
            } else {
                Impossible
            }
        }
        (T::MultipleRecordLinks(_), _) | (_, T::MultipleRecordLinks(_)) => Impossible,
        (T::MultipleAttachments, t) if t.is_text() => Lossy,
        (T::MultipleAttachments, _) | (_, T::MultipleAttachments) => Impossible,
        (T::MultilineText | T::RichText, T::SingleLineText) => Lossy,
        (_, T::SingleLineText | T::MultilineText | T::RichText) => Lossless,
        (_, T::Email | T::Url | T::PhoneNumber) => Lossy,
        (f, T::Number(_) | T::Currency(_) | T::Percent(_) | T::Duration(_)) => {
            match (numeric_precision(f), numeric_precision(to)) {
                (Some(a), Some(b)) if a <= b => Lossless,
                _ => Lossy,
            }
        }
        (T::Rating(a), T::Rating(b)) if a.max <= b.max => Lossless,
        (T::Checkbox(_), T::Checkbox(_)) | (T::Date(_), T::Date(_)) => Lossless,
        (T::Date(_) | T::DateTime(_), T::DateTime(_)) => Lossless,
        (T::SingleSelect(_), T::SingleSelect(_))
        | (T::SingleSelect(_) | T::MultipleSelects(_), T::MultipleSelects(_))
            if names_kept(from, to) =>
        {
            Lossless
        }
        _ => Lossy,
    }
}

/// What a cell holding `value` under `from` holds after the field becomes `to`; `None` clears it.
///
/// Values that `to` cannot hold are cleared. Select targets keep only names that exist among
/// the target's choices: the command that changes the type lists every choice it wants kept.
#[must_use]
pub fn convert_cell(value: &Value, from: &FieldType, to: &FieldType) -> Option<Value> {
    if value.is_null() || from.is_computed() || to.is_computed() {
        return None;
    }
    if conversion(from, to) == Conversion::Impossible {
        return None;
    }
    let input = match (from, to, value) {
        // A name may itself contain a comma: wrap it instead of letting typecast split it.
        (FieldType::SingleSelect(_), FieldType::MultipleSelects(_), Value::String(_)) => {
            Value::Array(vec![value.clone()])
        }
        (_, t, _) if t.is_text() => Value::String(render_text(value, from)),
        _ => value.clone(),
    };
    let cell = normalize(to, &input, true)
        .ok()
        .or_else(|| normalize(to, &Value::String(render_text(value, from)), true).ok())?;
    let kept = match cell.value {
        Value::String(s) if cell.new_choices.contains(&s) => Value::Null,
        Value::Array(items) if !cell.new_choices.is_empty() => {
            let items: Vec<Value> = items
                .into_iter()
                .filter(|v| {
                    v.as_str()
                        .is_none_or(|s| !cell.new_choices.iter().any(|c| c == s))
                })
                .collect();
            if items.is_empty() {
                Value::Null
            } else {
                Value::Array(items)
            }
        }
        other => other,
    };
    (!kept.is_null()).then_some(kept)
}

/// A stored value rendered as the text a user would read.
fn render_text(value: &Value, from: &FieldType) -> String {
    match (from, value) {
        (_, Value::String(s)) => s.clone(),
        (FieldType::Percent(_), Value::Number(n)) => n
            .as_f64()
            .map_or_else(|| n.to_string(), |x| format!("{}%", trim_float(x * 100.0))),
        (FieldType::Currency(o), Value::Number(n)) => format!("{}{}", o.symbol, n),
        (FieldType::Duration(_), Value::Number(n)) => n.as_f64().map_or_else(|| n.to_string(), hms),
        (FieldType::Checkbox(_), Value::Bool(true)) => "checked".to_owned(),
        (_, Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Object(o) => match (o.get("filename"), o.get("url")) {
                    (Some(Value::String(f)), Some(Value::String(u))) => format!("{f} ({u})"),
                    _ => v.to_string(),
                },
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        (_, other) => other.to_string(),
    }
}

/// A float without a trailing `.0` noise from multiplying fractions by 100.
fn trim_float(x: f64) -> String {
    let r = (x * 1e9).round() / 1e9;
    format!("{r}")
}

/// Seconds as `h:mm:ss` (with the fraction kept).
fn hms(secs: f64) -> String {
    let sign = if secs < 0.0 { "-" } else { "" };
    let s = secs.abs();
    let h = (s / 3600.0).floor();
    let m = ((s - h * 3600.0) / 60.0).floor();
    let rest = s - h * 3600.0 - m * 60.0;
    let whole = rest.floor();
    let frac = rest - whole;
    if frac > 1e-9 {
        let frac = trim_float(frac);
        let frac = frac.trim_start_matches('0');
        format!("{sign}{h}:{m:02}:{whole:02}{frac}")
    } else {
        format!("{sign}{h}:{m:02}:{whole:02}")
    }
}
