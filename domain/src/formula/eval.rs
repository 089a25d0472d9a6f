//! The evaluator: walks a tree against a record and returns a [`Value`]. It never fails and
//! never panics: every problem becomes [`Value::Error`].

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use regex::{Regex, RegexBuilder};

use super::ast::{BinaryOp, Expr, Function, Literal, MAX_DEPTH, UnaryOp};
use super::dates::{self, Unit};
use super::value::{ErrorKind, MAX_ARRAY_LEN, MAX_RESULT_CHARS, Value, compare};
use crate::fields::{FieldDef, FieldType};
use crate::ids::FieldId;

/// What a formula can see of its record and the world. The domain is pure, so the current time
/// comes from here too.
pub trait FormulaContext {
    /// The field called `name` (as written between braces) and the record's cell for it
    /// (`null` when empty), or `None` when the table has no such field.
    fn field(&self, name: &str) -> Option<(&FieldType, &serde_json::Value)>;
    /// The record's id, for `RECORD_ID()`.
    fn record_id(&self) -> &str;
    /// When the record was created, for `CREATED_TIME()`.
    fn created_time(&self) -> DateTime<Utc>;
    /// When the record last changed, for `LAST_MODIFIED_TIME()`.
    fn last_modified_time(&self) -> DateTime<Utc>;
    /// The current instant, for `NOW()` and `TODAY()`.
    fn now(&self) -> DateTime<Utc>;
    /// The zone in which `TODAY()` decides which day it is.
    fn time_zone(&self) -> Tz;
}

/// The field of `fields` a formula reference names: the exact name first, then the name ignoring
/// case (names are unique case-insensitively), then the field id.
#[must_use]
pub fn resolve_field<'a>(fields: &'a [FieldDef], name: &str) -> Option<&'a FieldDef> {
    fields
        .iter()
        .find(|f| f.name == name)
        .or_else(|| {
            fields
                .iter()
                .find(|f| f.name.to_lowercase() == name.to_lowercase())
        })
        .or_else(|| fields.iter().find(|f| f.id.as_str() == name))
}

static NULL: serde_json::Value = serde_json::Value::Null;

/// A [`FormulaContext`] over a table's fields and one record's cells.
#[derive(Clone, Copy, Debug)]
pub struct RecordContext<'a> {
    /// The table's fields.
    pub fields: &'a [FieldDef],
    /// The record's cells by field id; missing cells are empty.
    pub cells: &'a BTreeMap<FieldId, serde_json::Value>,
    /// The record's id.
    pub record_id: &'a str,
    /// When the record was created.
    pub created_time: DateTime<Utc>,
    /// When the record last changed.
    pub last_modified_time: DateTime<Utc>,
    /// The current instant.
    pub now: DateTime<Utc>,
    /// The zone `TODAY()` uses.
    pub time_zone: Tz,
}

impl FormulaContext for RecordContext<'_> {
    fn field(&self, name: &str) -> Option<(&FieldType, &serde_json::Value)> {
        let def = resolve_field(self.fields, name)?;
        Some((&def.field_type, self.cells.get(&def.id).unwrap_or(&NULL)))
    }
    fn record_id(&self) -> &str {
        self.record_id
    }
    fn created_time(&self) -> DateTime<Utc> {
        self.created_time
    }
    fn last_modified_time(&self) -> DateTime<Utc> {
        self.last_modified_time
    }
    fn now(&self) -> DateTime<Utc> {
        self.now
    }
    fn time_zone(&self) -> Tz {
        self.time_zone
    }
}

/// Evaluates a formula for one record. Errors (division by zero, bad arguments, unknown fields,
/// over-long results) come back as [`Value::Error`]; nothing panics.
#[must_use]
pub fn eval(expr: &Expr, ctx: &dyn FormulaContext) -> Value {
    Evaluator { ctx }.eval(expr, 0)
}

/// Largest compiled regular expression, in bytes, so a pattern cannot exhaust memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Longest pattern accepted, in bytes.
const MAX_PATTERN_BYTES: usize = 10_000;

type R = Result<Value, ErrorKind>;

struct Evaluator<'a> {
    ctx: &'a dyn FormulaContext,
}

/// Byte budget for a text under construction: characters are at most 4 bytes.
const MAX_RESULT_BYTES: usize = MAX_RESULT_CHARS * 4;

fn check_len(bytes: usize) -> Result<(), ErrorKind> {
    if bytes > MAX_RESULT_BYTES {
        Err(ErrorKind::TooLong)
    } else {
        Ok(())
    }
}

/// Flattens nested arrays into their leaves; an empty array stands for one blank when
/// `empty_as_blank` (so `AND({empty lookup})` sees a blank), else for nothing.
fn flatten(values: &[Value], empty_as_blank: bool) -> Result<Vec<Value>, ErrorKind> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = values.iter().rev().collect();
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) if items.is_empty() && empty_as_blank => out.push(Value::Blank),
            Value::Array(items) => stack.extend(items.iter().rev()),
            Value::Error(e) => return Err(*e),
            other => out.push(other.clone()),
        }
        if out.len() > MAX_ARRAY_LEN {
            return Err(ErrorKind::TooLong);
        }
    }
    Ok(out)
}

/// A whole count from a number argument (truncated toward zero); negative counts are invalid.
fn count_arg(v: &Value) -> Result<usize, ErrorKind> {
    let n = v.to_number()?.trunc();
    if n < 0.0 {
        return Err(ErrorKind::InvalidArgument);
    }
    // Counts past any text length mean "all"; saturate instead of overflowing.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(if n >= usize::MAX as f64 {
        usize::MAX
    } else {
        n as usize
    })
}

/// How rounding functions break ties and direction.
#[derive(Clone, Copy)]
enum Rounding {
    /// Nearest, ties toward positive infinity (`ROUND`).
    HalfUp,
    /// Away from zero (`ROUNDUP`).
    Up,
    /// Toward zero (`ROUNDDOWN`).
    Down,
}

fn round(v: f64, places: f64, mode: Rounding) -> Result<f64, ErrorKind> {
    let p = places.trunc().clamp(-400.0, 400.0);
    if p > 300.0 {
        return Ok(v);
    }
    let factor = 10f64.powi(p.abs() as i32);
    let mut scaled = if p >= 0.0 { v * factor } else { v / factor };
    if !scaled.is_finite() {
        // More decimals than a float holds: the value is already exact at that precision.
        return Ok(v);
    }
    // Binary floats store 1.005 as 1.00499999...: snap values within rounding noise of an
    // integer or of a tie, so results match decimal arithmetic as users expect.
    let tolerance = 1e-9 * scaled.abs().max(1.0);
    if (scaled - scaled.round()).abs() <= tolerance {
        scaled = scaled.round();
    } else if (scaled - scaled.floor() - 0.5).abs() <= tolerance {
        scaled = scaled.floor() + 0.5;
    }
    let r = match mode {
        Rounding::HalfUp => (scaled + 0.5).floor(),
        Rounding::Up => {
            if scaled >= 0.0 {
                scaled.ceil()
            } else {
                scaled.floor()
            }
        }
        Rounding::Down => scaled.trunc(),
    };
    let out = if p >= 0.0 { r / factor } else { r * factor };
    if out.is_finite() {
        Ok(out)
    } else {
        Err(ErrorKind::Overflow)
    }
}

fn compile_regex(pattern: &str) -> Result<Regex, ErrorKind> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(ErrorKind::InvalidRegex);
    }
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(64)
        .build()
        .map_err(|_| ErrorKind::InvalidRegex)
}

/// Character index → byte offset in `s` (the end when past it).
fn byte_at(s: &str, chars: usize) -> usize {
    s.char_indices().nth(chars).map_or(s.len(), |(i, _)| i)
}

fn substitute(text: &str, old: &str, new: &str, index: Option<usize>) -> R {
    if old.is_empty() {
        return Ok(Value::Text(text.to_owned()));
    }
    match index {
        Some(n) => {
            let Some((at, _)) = text.match_indices(old).nth(n.saturating_sub(1)) else {
                return Ok(Value::Text(text.to_owned()));
            };
            check_len(text.len() - old.len() + new.len())?;
            let mut out = String::with_capacity(text.len() - old.len() + new.len());
            out.push_str(text.get(..at).unwrap_or_default());
            out.push_str(new);
            out.push_str(text.get(at + old.len()..).unwrap_or_default());
            Ok(Value::text(out))
        }
        None => {
            let count = text.matches(old).count();
            let grown = count
                .checked_mul(new.len())
                .and_then(|g| (text.len() - count * old.len()).checked_add(g))
                .ok_or(ErrorKind::TooLong)?;
            check_len(grown)?;
            Ok(Value::text(text.replace(old, new)))
        }
    }
}

fn regex_replace(text: &str, pattern: &str, replacement: &str) -> R {
    let re = compile_regex(pattern)?;
    // Every `$` of the replacement can copy at most the whole match (groups lie inside it), so
    // this bounds one expansion before it allocates.
    let dollars = replacement.matches('$').count();
    let mut out = String::new();
    let mut last = 0;
    for caps in re.captures_iter(text) {
        let Some(m) = caps.get(0) else { continue };
        let bound = dollars
            .checked_mul(m.len())
            .and_then(|b| b.checked_add(replacement.len()))
            .and_then(|b| b.checked_add(out.len()))
            .ok_or(ErrorKind::TooLong)?;
        check_len(bound)?;
        out.push_str(text.get(last..m.start()).unwrap_or_default());
        caps.expand(replacement, &mut out);
        last = m.end();
        check_len(out.len())?;
    }
    out.push_str(text.get(last..).unwrap_or_default());
    check_len(out.len())?;
    Ok(Value::text(out))
}

fn join(items: &[Value], sep: &str) -> R {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(&item.to_text()?);
        check_len(out.len())?;
    }
    Ok(Value::text(out))
}

fn array_items(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        Value::Blank => Vec::new(),
        other => vec![other.clone()],
    }
}

fn equal(a: &Value, b: &Value) -> Result<bool, ErrorKind> {
    Ok(compare(a, b)? == Some(std::cmp::Ordering::Equal))
}

impl Evaluator<'_> {
    fn eval(&self, e: &Expr, depth: usize) -> Value {
        self.try_eval(e, depth).unwrap_or_else(Value::Error)
    }

    fn try_eval(&self, e: &Expr, depth: usize) -> R {
        if depth >= MAX_DEPTH {
            return Err(ErrorKind::TooDeep);
        }
        match e {
            Expr::Field(name) => {
                let (field_type, cell) = self.ctx.field(name).ok_or(ErrorKind::UnknownField)?;
                Ok(Value::from_cell(field_type, cell))
            }
            Expr::Literal(Literal::Number(n)) => Ok(Value::number(*n)),
            Expr::Literal(Literal::Text(s)) => Ok(Value::text(s.clone())),
            Expr::Literal(Literal::Bool(b)) => Ok(Value::Bool(*b)),
            Expr::Unary {
                op: UnaryOp::Neg,
                operand,
            } => Ok(Value::number(-self.eval(operand, depth + 1).to_number()?)),
            Expr::Binary { op, lhs, rhs } => {
                let a = self.eval(lhs, depth + 1);
                let b = self.eval(rhs, depth + 1);
                binary(*op, &a, &b)
            }
            Expr::Call { function, args } => self.call(*function, args, depth + 1),
        }
    }

    fn call(&self, f: Function, args: &[Expr], depth: usize) -> R {
        // Lazy functions: only the branch taken is evaluated, as in Airtable.
        match f {
            Function::If => {
                let cond = self.eval(args.first().ok_or(ErrorKind::Error)?, depth);
                if let Some(e) = cond.error() {
                    return Err(e);
                }
                let branch = if cond.is_truthy() {
                    args.get(1)
                } else {
                    args.get(2)
                };
                return Ok(branch.map_or(Value::Blank, |b| self.eval(b, depth)));
            }
            Function::Switch => {
                let (head, rest) = args.split_first().ok_or(ErrorKind::Error)?;
                let subject = self.eval(head, depth);
                if let Some(e) = subject.error() {
                    return Err(e);
                }
                let mut pairs = rest.chunks_exact(2);
                for pair in pairs.by_ref() {
                    if let [pattern, result] = pair
                        && equal(&subject, &self.eval(pattern, depth))?
                    {
                        return Ok(self.eval(result, depth));
                    }
                }
                return Ok(match pairs.remainder() {
                    [default] => self.eval(default, depth),
                    _ => Value::Blank,
                });
            }
            Function::IsError => {
                let v = args.first().map_or(Value::Blank, |a| self.eval(a, depth));
                return Ok(Value::Bool(v.error().is_some()));
            }
            _ => {}
        }
        let vals: Vec<Value> = args.iter().map(|a| self.eval(a, depth)).collect();
        if let Some(e) = vals.iter().find_map(Value::error) {
            return Err(e);
        }
        self.apply(f, &vals)
    }

    fn apply(&self, f: Function, vals: &[Value]) -> R {
        static BLANK: Value = Value::Blank;
        let arg = |i: usize| vals.get(i).unwrap_or(&BLANK);
        let text = |i: usize| arg(i).to_text();
        let num = |i: usize| arg(i).to_number();
        let opt = |i: usize| vals.get(i).filter(|v| !matches!(v, Value::Blank));
        let instant = |i: usize| arg(i).to_instant();
        match f {
            Function::If | Function::Switch | Function::IsError => Err(ErrorKind::Error),
            Function::And => Ok(Value::Bool(
                flatten(vals, true)?.iter().all(Value::is_truthy),
            )),
            Function::Or => Ok(Value::Bool(
                flatten(vals, true)?.iter().any(Value::is_truthy),
            )),
            Function::Xor => Ok(Value::Bool(
                flatten(vals, true)?
                    .iter()
                    .filter(|v| v.is_truthy())
                    .count()
                    % 2
                    == 1,
            )),
            Function::Not => Ok(Value::Bool(!arg(0).is_truthy())),
            Function::Blank => Ok(Value::Blank),
            Function::Error => Err(ErrorKind::Error),

            Function::Len => Ok(Value::Number(text(0)?.chars().count() as f64)),
            Function::Lower => Ok(Value::text(text(0)?.to_lowercase())),
            Function::Upper => Ok(Value::text(text(0)?.to_uppercase())),
            Function::Find | Function::Search => {
                let insensitive = f == Function::Search;
                let (mut needle, mut hay) = (text(0)?, text(1)?);
                if insensitive {
                    needle = needle.to_lowercase();
                    hay = hay.to_lowercase();
                }
                // Positions 0 and 1 both mean "from the start" (Airtable documents 0 as the
                // default, spreadsheets use 1).
                let from = match opt(2) {
                    Some(v) => count_arg(v)?.saturating_sub(1),
                    None => 0,
                };
                let start = byte_at(&hay, from);
                let found = hay
                    .get(start..)
                    .and_then(|h| h.find(&needle))
                    .map(|i| hay.get(..start + i).map_or(0, |p| p.chars().count()) + 1);
                Ok(match (found, insensitive) {
                    (Some(pos), _) => Value::Number(pos as f64),
                    (None, false) => Value::Number(0.0),
                    (None, true) => Value::Blank,
                })
            }
            Function::Left => {
                let s = text(0)?;
                let n = count_arg(arg(1))?;
                Ok(Value::Text(s.chars().take(n).collect()))
            }
            Function::Right => {
                let s = text(0)?;
                let n = count_arg(arg(1))?;
                let len = s.chars().count();
                Ok(Value::Text(s.chars().skip(len.saturating_sub(n)).collect()))
            }
            Function::Mid => {
                let s = text(0)?;
                let start = count_arg(arg(1))?;
                if start == 0 {
                    return Err(ErrorKind::InvalidArgument);
                }
                let n = count_arg(arg(2))?;
                Ok(Value::Text(s.chars().skip(start - 1).take(n).collect()))
            }
            Function::Substitute => {
                let index = match opt(3) {
                    Some(v) => match count_arg(v)? {
                        0 => return Err(ErrorKind::InvalidArgument),
                        n => Some(n),
                    },
                    None => None,
                };
                substitute(&text(0)?, &text(1)?, &text(2)?, index)
            }
            Function::Replace => {
                let s = text(0)?;
                let start = count_arg(arg(1))?;
                if start == 0 {
                    return Err(ErrorKind::InvalidArgument);
                }
                let n = count_arg(arg(2))?;
                let replacement = text(3)?;
                let head = byte_at(&s, start - 1);
                let tail = byte_at(&s, (start - 1).saturating_add(n));
                let mut out = String::new();
                out.push_str(s.get(..head).unwrap_or_default());
                out.push_str(&replacement);
                out.push_str(s.get(tail..).unwrap_or_default());
                Ok(Value::text(out))
            }
            Function::Trim => Ok(Value::Text(text(0)?.trim().to_owned())),
            Function::Concatenate => {
                let mut out = String::new();
                for v in vals {
                    out.push_str(&v.to_text()?);
                    check_len(out.len())?;
                }
                Ok(Value::text(out))
            }
            Function::Rept => {
                let s = text(0)?;
                let n = count_arg(arg(1))?;
                check_len(s.len().checked_mul(n).ok_or(ErrorKind::TooLong)?)?;
                Ok(Value::text(s.repeat(n)))
            }
            Function::T => Ok(match arg(0) {
                Value::Text(s) => Value::Text(s.clone()),
                _ => Value::Blank,
            }),
            Function::RegexMatch => Ok(Value::Bool(compile_regex(&text(1)?)?.is_match(&text(0)?))),
            Function::RegexExtract => {
                let s = text(0)?;
                let re = compile_regex(&text(1)?)?;
                re.find(&s)
                    .map(|m| Value::Text(m.as_str().to_owned()))
                    .ok_or(ErrorKind::NoMatch)
            }
            Function::RegexReplace => regex_replace(&text(0)?, &text(1)?, &text(2)?),

            Function::Round | Function::RoundUp | Function::RoundDown => {
                let mode = match f {
                    Function::RoundUp => Rounding::Up,
                    Function::RoundDown => Rounding::Down,
                    _ => Rounding::HalfUp,
                };
                Ok(Value::number(round(num(0)?, num(1)?, mode)?))
            }
            Function::Ceiling | Function::Floor => {
                let v = num(0)?;
                let sig = match opt(1) {
                    Some(s) => s.to_number()?,
                    None => 1.0,
                };
                if sig == 0.0 {
                    return Ok(Value::Number(0.0));
                }
                let q = v / sig;
                let r = if f == Function::Ceiling {
                    q.ceil()
                } else {
                    q.floor()
                };
                Ok(Value::number(r * sig))
            }
            Function::Abs => Ok(Value::number(num(0)?.abs())),
            Function::Sum | Function::Average | Function::Min | Function::Max => {
                let nums = numbers(vals)?;
                Ok(match f {
                    Function::Sum => Value::number(nums.iter().sum()),
                    Function::Average if nums.is_empty() => {
                        return Err(ErrorKind::DivisionByZero);
                    }
                    Function::Average => {
                        Value::number(nums.iter().sum::<f64>() / nums.len() as f64)
                    }
                    Function::Min => {
                        Value::Number(nums.iter().copied().reduce(f64::min).unwrap_or(0.0))
                    }
                    _ => Value::Number(nums.iter().copied().reduce(f64::max).unwrap_or(0.0)),
                })
            }
            Function::Count => Ok(Value::Number(
                flatten(vals, false)?
                    .iter()
                    .filter(|v| matches!(v, Value::Number(_)))
                    .count() as f64,
            )),
            Function::CountA => Ok(Value::Number(
                flatten(vals, false)?
                    .iter()
                    .filter(|v| !v.is_empty())
                    .count() as f64,
            )),
            Function::CountAll => Ok(Value::Number(flatten(vals, false)?.len() as f64)),
            Function::Int => Ok(Value::number(num(0)?.floor())),
            Function::Mod => {
                let d = num(1)?;
                if d == 0.0 {
                    return Err(ErrorKind::DivisionByZero);
                }
                Ok(Value::number(num(0)? % d))
            }
            Function::Power => Ok(Value::number(num(0)?.powf(num(1)?))),
            Function::Sqrt => Ok(Value::number(num(0)?.sqrt())),
            Function::Value => value_of(arg(0)),

            Function::DatetimeParse => {
                if let Value::Date(_) | Value::DateTime(_) = arg(0) {
                    return Ok(Value::DateTime(instant(0)?));
                }
                let s = text(0)?;
                let parsed = match opt(1).map(Value::to_text).transpose()? {
                    Some(fmt) if !fmt.is_empty() => {
                        dates::parse_with_format(&s, &fmt, self.ctx.now(), false)
                    }
                    _ => dates::parse_loose(&s),
                };
                parsed
                    .map(Value::DateTime)
                    .ok_or(ErrorKind::InvalidArgument)
            }
            Function::DatetimeFormat => {
                let t = instant(0)?;
                let fmt = match opt(1) {
                    Some(v) => v.to_text()?,
                    None => dates::DEFAULT_FORMAT.to_owned(),
                };
                Ok(Value::text(dates::format(t, &fmt)?))
            }
            Function::DateAdd => {
                let unit = Unit::parse(&text(2)?).ok_or(ErrorKind::InvalidArgument)?;
                Ok(Value::DateTime(dates::add(instant(0)?, num(1)?, unit)?))
            }
            Function::DatetimeDiff => {
                let unit = match opt(2) {
                    Some(v) => Unit::parse(&v.to_text()?).ok_or(ErrorKind::InvalidArgument)?,
                    None => Unit::Second,
                };
                Ok(Value::number(dates::diff(instant(0)?, instant(1)?, unit)?))
            }
            Function::IsBefore => Ok(Value::Bool(instant(0)? < instant(1)?)),
            Function::IsAfter => Ok(Value::Bool(instant(0)? > instant(1)?)),
            Function::IsSame => {
                let (a, b) = (instant(0)?, instant(1)?);
                Ok(Value::Bool(match opt(2) {
                    Some(v) => {
                        let unit = Unit::parse(&v.to_text()?).ok_or(ErrorKind::InvalidArgument)?;
                        dates::start_of(a, unit) == dates::start_of(b, unit)
                    }
                    None => a.timestamp_millis() == b.timestamp_millis(),
                }))
            }
            Function::Today => Ok(Value::Date(
                self.ctx
                    .now()
                    .with_timezone(&self.ctx.time_zone())
                    .date_naive(),
            )),
            Function::Now => Ok(Value::DateTime(self.ctx.now())),
            Function::Year => Ok(Value::Number(f64::from(instant(0)?.year()))),
            Function::Month => Ok(Value::Number(f64::from(instant(0)?.month()))),
            Function::Day => Ok(Value::Number(f64::from(instant(0)?.day()))),
            Function::Hour => Ok(Value::Number(f64::from(instant(0)?.hour()))),
            Function::Minute => Ok(Value::Number(f64::from(instant(0)?.minute()))),
            Function::Second => Ok(Value::Number(f64::from(instant(0)?.second()))),
            Function::Weekday => {
                let t = instant(0)?;
                let monday_first = match opt(1) {
                    Some(v) => match v.to_text()?.trim().to_ascii_lowercase().as_str() {
                        "sunday" => false,
                        "monday" => true,
                        _ => return Err(ErrorKind::InvalidArgument),
                    },
                    None => false,
                };
                let wd = if monday_first {
                    t.weekday().num_days_from_monday()
                } else {
                    t.weekday().num_days_from_sunday()
                };
                Ok(Value::Number(f64::from(wd)))
            }
            Function::DateStr => Ok(Value::Text(
                instant(0)?.date_naive().format("%Y-%m-%d").to_string(),
            )),

            Function::ArrayJoin => {
                let sep = match vals.get(1) {
                    Some(v) => v.to_text()?,
                    None => ", ".to_owned(),
                };
                join(&flatten(&array_items(arg(0)), false)?, &sep)
            }
            Function::ArrayCompact => Ok(Value::Array(
                array_items(arg(0))
                    .into_iter()
                    .filter(|v| !matches!(v, Value::Blank) && *v != Value::Text(String::new()))
                    .collect(),
            )),
            Function::ArrayUnique => {
                let mut seen = HashSet::new();
                Ok(Value::Array(
                    array_items(arg(0))
                        .into_iter()
                        .filter(|v| seen.insert(format!("{v:?}")))
                        .collect(),
                ))
            }
            Function::ArrayFlatten => Ok(Value::Array(flatten(&array_items(arg(0)), false)?)),
            Function::RecordId => Ok(Value::Text(self.ctx.record_id().to_owned())),
            Function::CreatedTime => Ok(Value::DateTime(self.ctx.created_time())),
            Function::LastModifiedTime => Ok(Value::DateTime(self.ctx.last_modified_time())),
        }
    }
}

/// The numbers among the (flattened) arguments: numbers, booleans and numeric text; blanks,
/// other text and dates are skipped, as spreadsheets do over ranges.
fn numbers(vals: &[Value]) -> Result<Vec<f64>, ErrorKind> {
    Ok(flatten(vals, false)?
        .iter()
        .filter_map(|v| match v {
            Value::Number(n) => Some(*n),
            Value::Text(s) if s.trim().is_empty() => None,
            Value::Bool(_) | Value::Text(_) => v.to_number().ok(),
            _ => None,
        })
        .collect())
}

/// `VALUE`: the number in a text, ignoring currency signs, thousands separators and spaces.
fn value_of(v: &Value) -> R {
    match v {
        Value::Number(_) | Value::Blank => Ok(v.clone()),
        Value::Bool(_) => Ok(Value::Number(v.to_number()?)),
        other => {
            let s = other.to_text()?;
            if s.trim().is_empty() {
                return Ok(Value::Blank);
            }
            if let Some(n) = super::value::parse_number(&s) {
                return Ok(Value::Number(n));
            }
            let kept: String = s
                .chars()
                .filter(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E'))
                .collect();
            if kept.is_empty() {
                return Err(ErrorKind::NotANumber);
            }
            super::value::parse_number(&kept)
                .map(Value::Number)
                .ok_or(ErrorKind::NotANumber)
        }
    }
}

fn binary(op: BinaryOp, a: &Value, b: &Value) -> R {
    use std::cmp::Ordering as O;
    match op {
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div => {
            let (x, y) = (a.to_number()?, b.to_number()?);
            let r = match op {
                BinaryOp::Add => x + y,
                BinaryOp::Sub => x - y,
                BinaryOp::Mul => x * y,
                _ if y == 0.0 => return Err(ErrorKind::DivisionByZero),
                _ => x / y,
            };
            Ok(Value::number(r))
        }
        BinaryOp::Concat => {
            let (x, y) = (a.to_text()?, b.to_text()?);
            check_len(x.len().saturating_add(y.len()))?;
            Ok(Value::text(x + &y))
        }
        _ => {
            let ord = compare(a, b)?;
            Ok(Value::Bool(match op {
                BinaryOp::Eq => ord == Some(O::Equal),
                BinaryOp::Ne => ord != Some(O::Equal),
                BinaryOp::Lt => ord == Some(O::Less),
                BinaryOp::Le => matches!(ord, Some(O::Less | O::Equal)),
                BinaryOp::Gt => ord == Some(O::Greater),
                _ => matches!(ord, Some(O::Greater | O::Equal)),
            }))
        }
    }
}
