//! Airtable's formula language: parse ([`parse`]), check against a table ([`check`]), type
//! ([`Expr::result_type`]) and evaluate ([`eval`]) formulas such as
//! `IF({Due} < TODAY(), "late", "ok")`, for formula fields and `filterByFormula`.
//!
//! The tree ([`Expr`]) is public so other layers can translate it (to SQL, say). Evaluation is
//! pure: the record, the clock and the time zone come in through a [`FormulaContext`]. Nothing
//! here panics on any input: trees are depth-limited, texts capped at [`MAX_RESULT_CHARS`],
//! regular expressions run in linear time under a size limit. `docs/formulas.md` lists the
//! functions, the coercions and where they differ from Airtable.
//!
//! ```
//! use pyairtable_domain::formula::{self, Value};
//! # use pyairtable_domain::formula::FormulaContext;
//! # struct Ctx;
//! # impl FormulaContext for Ctx {
//! #     fn field(&self, _: &str) -> Option<(&pyairtable_domain::fields::FieldType, &serde_json::Value)> { None }
//! #     fn record_id(&self) -> &str { "rec00000000000001" }
//! #     fn created_time(&self) -> chrono::DateTime<chrono::Utc> { chrono::DateTime::UNIX_EPOCH }
//! #     fn last_modified_time(&self) -> chrono::DateTime<chrono::Utc> { chrono::DateTime::UNIX_EPOCH }
//! #     fn now(&self) -> chrono::DateTime<chrono::Utc> { chrono::DateTime::UNIX_EPOCH }
//! #     fn time_zone(&self) -> chrono_tz::Tz { chrono_tz::UTC }
//! # }
//! let expr = formula::parse(r#"UPPER("a") & ROUND(1.5)"#)?;
//! assert_eq!(formula::eval(&expr, &Ctx), Value::Text("A2".to_owned()));
//! # Ok::<(), formula::FormulaError>(())
//! ```

mod ast;
mod dates;
mod error;
mod eval;
mod parser;
mod types;
mod value;

pub use ast::{BinaryOp, Expr, Function, Literal, MAX_DEPTH, UnaryOp};
pub use dates::{Unit, format as format_datetime, parse_loose as parse_datetime};
pub use error::{FormulaError, FormulaErrorKind};
pub use eval::{FormulaContext, RecordContext, eval, resolve_field};
pub use parser::{MAX_FORMULA_CHARS, MAX_NESTING, ROLLUP_VALUES, parse, parse_rollup};
pub use types::ResultKind;
pub use value::{
    ErrorKind, MAX_ARRAY_LEN, MAX_RESULT_CHARS, Value, compare, format_number, parse_number,
};

/// Checks that every field the formula references is among `field_names` (compared ignoring
/// case, as field names are unique case-insensitively).
///
/// # Errors
/// [`FormulaErrorKind::UnknownFieldNames`] listing each unknown name once, in order of first
/// appearance; its message reads like Airtable's: `Unknown field names: x, y`.
pub fn check<S: AsRef<str>>(expr: &Expr, field_names: &[S]) -> Result<(), FormulaError> {
    let lowered: Vec<String> = field_names
        .iter()
        .map(|n| n.as_ref().to_lowercase())
        .collect();
    let unknown: Vec<String> = expr
        .referenced_fields()
        .into_iter()
        .filter(|name| !lowered.contains(&name.to_lowercase()))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(FormulaError::without_position(
            FormulaErrorKind::UnknownFieldNames { names: unknown },
        ))
    }
}

/// Parses `src` and checks its field references against `fields` (by name or id), the whole
/// validation a formula field or a `filterByFormula` parameter needs.
///
/// # Errors
/// The parse error, or the unknown field names.
pub fn parse_for_table(
    src: &str,
    fields: &[crate::fields::FieldDef],
) -> Result<Expr, FormulaError> {
    let expr = parse(src)?;
    let unknown: Vec<String> = expr
        .referenced_fields()
        .into_iter()
        .filter(|name| resolve_field(fields, name).is_none())
        .collect();
    if unknown.is_empty() {
        Ok(expr)
    } else {
        Err(FormulaError::without_position(
            FormulaErrorKind::UnknownFieldNames { names: unknown },
        ))
    }
}
