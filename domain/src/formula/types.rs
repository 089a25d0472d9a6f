//! Static result types: what a formula field's `result` is, decided from the tree and schema.

use super::ast::{BinaryOp, Expr, Function, Literal, MAX_DEPTH};
use super::eval::resolve_field;
use crate::fields::{
    CheckboxOptions, DateFormat, DateOptions, DateTimeOptions, FieldDef, FieldType, NumberOptions,
    TimeFormat,
};

/// The kind of value a formula produces, as far as it can be known before evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResultKind {
    /// A number.
    Number,
    /// Text (also the kind of formulas whose branches disagree, as Airtable shows them).
    Text,
    /// A boolean (comparisons, `AND`, `IS_BEFORE`, ...).
    Boolean,
    /// A calendar date (`TODAY()`, a `date` field).
    Date,
    /// An instant (`NOW()`, `DATEADD`, a `dateTime` field).
    DateTime,
    /// Several values (multiple selects, links, lookups, `ARRAYUNIQUE`).
    Array,
    /// Nothing known: `BLANK()` or `ERROR()` alone.
    Blank,
}

impl ResultKind {
    /// Airtable's type name for the result: `number`, `singleLineText`, `checkbox`, `date`,
    /// `dateTime`, `multipleLookupValues`.
    #[must_use]
    pub fn type_name(self) -> &'static str {
        match self {
            Self::Number => "number",
            Self::Text | Self::Blank => "singleLineText",
            Self::Boolean => "checkbox",
            Self::Date => "date",
            Self::DateTime => "dateTime",
            Self::Array => "multipleLookupValues",
        }
    }

    /// A field type to store as the formula's `result`, or `None` for arrays (Airtable gives
    /// array results no single type). Numbers get 8 decimals so no digit a formula computes is
    /// hidden; dates are ISO in UTC.
    #[must_use]
    pub fn to_field_type(self) -> Option<FieldType> {
        Some(match self {
            Self::Number => FieldType::Number(NumberOptions { precision: 8 }),
            Self::Text | Self::Blank => FieldType::SingleLineText,
            Self::Boolean => FieldType::Checkbox(CheckboxOptions {
                icon: "check".to_owned(),
                color: "greenBright".to_owned(),
            }),
            Self::Date => FieldType::Date(DateOptions {
                date_format: DateFormat::Iso,
            }),
            Self::DateTime => FieldType::DateTime(DateTimeOptions {
                date_format: DateFormat::Iso,
                time_format: TimeFormat::TwentyFourHour,
                time_zone: "utc".to_owned(),
            }),
            Self::Array => return None,
        })
    }

    /// The kind of the values of a field of `field_type`.
    #[must_use]
    pub fn of_field(field_type: &FieldType) -> Self {
        match field_type {
            FieldType::Number(_)
            | FieldType::Currency(_)
            | FieldType::Percent(_)
            | FieldType::Rating(_)
            | FieldType::Duration(_)
            | FieldType::AutoNumber
            | FieldType::Count(_)
            | FieldType::Rollup(_) => Self::Number,
            FieldType::Checkbox(_) => Self::Boolean,
            FieldType::Date(_) => Self::Date,
            FieldType::DateTime(_) | FieldType::CreatedTime | FieldType::LastModifiedTime => {
                Self::DateTime
            }
            FieldType::MultipleSelects(_)
            | FieldType::MultipleRecordLinks(_)
            | FieldType::MultipleAttachments
            | FieldType::MultipleLookupValues(_) => Self::Array,
            FieldType::Formula(o) => match &o.result {
                Some(inner) if !matches!(**inner, FieldType::Formula(_)) => Self::of_field(inner),
                _ => Self::Text,
            },
            FieldType::SingleLineText
            | FieldType::MultilineText
            | FieldType::RichText
            | FieldType::Email
            | FieldType::Url
            | FieldType::PhoneNumber
            | FieldType::SingleSelect(_)
            | FieldType::CreatedBy
            | FieldType::LastModifiedBy => Self::Text,
        }
    }

    /// The kind of a value that is either `self` or `other` (branches of `IF`/`SWITCH`):
    /// blanks adopt the other kind, dates widen to instants, other disagreements become text.
    #[must_use]
    pub fn unify(self, other: Self) -> Self {
        match (self, other) {
            (a, b) if a == b => a,
            (Self::Blank, x) | (x, Self::Blank) => x,
            (Self::Date, Self::DateTime) | (Self::DateTime, Self::Date) => Self::DateTime,
            _ => Self::Text,
        }
    }
}

impl Expr {
    /// The kind of value this formula produces over a table with `schema`; Airtable's formula
    /// field `result`. References to unknown fields count as text.
    #[must_use]
    pub fn result_type(&self, schema: &[FieldDef]) -> ResultKind {
        kind(self, schema, 0)
    }
}

fn kind(e: &Expr, schema: &[FieldDef], depth: usize) -> ResultKind {
    if depth > MAX_DEPTH {
        return ResultKind::Blank;
    }
    let sub = |e: &Expr| kind(e, schema, depth + 1);
    match e {
        Expr::Field(name) => resolve_field(schema, name)
            .map_or(ResultKind::Text, |f| ResultKind::of_field(&f.field_type)),
        Expr::Literal(Literal::Number(_)) | Expr::Unary { .. } => ResultKind::Number,
        Expr::Literal(Literal::Text(_)) => ResultKind::Text,
        Expr::Literal(Literal::Bool(_)) => ResultKind::Boolean,
        Expr::Binary { op, .. } => match op {
            BinaryOp::Concat => ResultKind::Text,
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div => ResultKind::Number,
            _ => ResultKind::Boolean,
        },
        Expr::Call { function, args } => {
            use Function as F;
            match function {
                F::If => args
                    .iter()
                    .skip(1)
                    .map(sub)
                    .fold(ResultKind::Blank, ResultKind::unify),
                F::Switch => {
                    let rest = args.get(1..).unwrap_or_default();
                    let mut out = rest
                        .chunks(2)
                        .filter_map(|c| match c {
                            [_, result] | [result] => Some(sub(result)),
                            _ => None,
                        })
                        .fold(ResultKind::Blank, ResultKind::unify);
                    if rest.is_empty() {
                        out = ResultKind::Blank;
                    }
                    out
                }
                F::Blank | F::Error => ResultKind::Blank,
                F::And
                | F::Or
                | F::Not
                | F::Xor
                | F::IsError
                | F::RegexMatch
                | F::IsBefore
                | F::IsAfter
                | F::IsSame => ResultKind::Boolean,
                F::Lower
                | F::Upper
                | F::Left
                | F::Right
                | F::Mid
                | F::Substitute
                | F::Replace
                | F::Trim
                | F::Concatenate
                | F::Rept
                | F::T
                | F::RegexExtract
                | F::RegexReplace
                | F::DatetimeFormat
                | F::DateStr
                | F::ArrayJoin
                | F::RecordId => ResultKind::Text,
                F::Len
                | F::Find
                | F::Search
                | F::Round
                | F::RoundUp
                | F::RoundDown
                | F::Ceiling
                | F::Floor
                | F::Abs
                | F::Sum
                | F::Average
                | F::Min
                | F::Max
                | F::Count
                | F::CountA
                | F::CountAll
                | F::Int
                | F::Mod
                | F::Power
                | F::Sqrt
                | F::Value
                | F::DatetimeDiff
                | F::Year
                | F::Month
                | F::Day
                | F::Weekday
                | F::Hour
                | F::Minute
                | F::Second => ResultKind::Number,
                F::DatetimeParse | F::DateAdd | F::Now | F::CreatedTime | F::LastModifiedTime => {
                    ResultKind::DateTime
                }
                F::Today => ResultKind::Date,
                F::ArrayCompact | F::ArrayUnique | F::ArrayFlatten => ResultKind::Array,
            }
        }
    }
}
