//! Pushes the simple parts of a `filterByFormula` down to SQL.
//!
//! The SQL predicate is a *pre-filter*: it may keep rows the formula rejects, never the other
//! way round, and the formula is still evaluated in Rust on what SQL returns. So the answer is
//! the formula engine's whatever this module translates; translating only shrinks the rows read.
//!
//! Translated: comparisons of a field with a literal (`{Name} = 'x'`, `{Age} >= 3`,
//! `{Due} < '2024-01-01'`, either side), `IS_BEFORE`/`IS_AFTER` of a date field and a literal,
//! and `AND`/`OR` of translatable parts (an untranslatable part of an `AND` is simply dropped:
//! dropping a conjunct only widens the set). How a blank cell compares is decided by the
//! formula engine itself at translation time, so SQL agrees with it on empty cells.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use pyairtable_domain::base::TableSchema;
use pyairtable_domain::fields::{FieldDef, FieldType};
use pyairtable_domain::formula::{self, BinaryOp, Expr, Function, Literal, RecordContext};
use serde_json::json;

/// A bound parameter of a pushed-down predicate.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// Text (for the text comparisons).
    Text(String),
    /// A float.
    Number(f64),
    /// A JSON document (for `cells @> $n`).
    Json(serde_json::Value),
}

/// A SQL boolean expression over the records view's `cells`, with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Sql {
    /// The expression, with placeholders `$first..`.
    pub text: String,
    /// Values of the placeholders, in order.
    pub args: Vec<Arg>,
}

struct Builder<'t> {
    table: &'t TableSchema,
    next: usize,
    args: Vec<Arg>,
}

/// Translates `filter` for `table`, numbering placeholders from `first`. `None` when nothing
/// of it translates (every row is a candidate).
#[must_use]
pub fn translate(filter: &Expr, table: &TableSchema, first: usize) -> Option<Sql> {
    let mut b = Builder {
        table,
        next: first,
        args: Vec::new(),
    };
    let text = b.expr(filter)?;
    Some(Sql { text, args: b.args })
}

/// How the formula engine compares a blank cell with `literal` under `op`.
fn blank_result(op: BinaryOp, literal: &Literal) -> bool {
    let expr = Expr::Binary {
        op,
        lhs: Box::new(Expr::Call {
            function: Function::Blank,
            args: Vec::new(),
        }),
        rhs: Box::new(Expr::Literal(literal.clone())),
    };
    let cells = BTreeMap::new();
    let ctx = RecordContext {
        fields: &[],
        cells: &cells,
        record_id: "",
        created_time: DateTime::<Utc>::UNIX_EPOCH,
        last_modified_time: DateTime::<Utc>::UNIX_EPOCH,
        now: DateTime::<Utc>::UNIX_EPOCH,
        time_zone: chrono_tz::UTC,
    };
    formula::eval(&expr, &ctx).is_truthy()
}

fn flip(op: BinaryOp) -> BinaryOp {
    match op {
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::Le => BinaryOp::Ge,
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::Ge => BinaryOp::Le,
        other => other,
    }
}

fn sql_op(op: BinaryOp) -> Option<&'static str> {
    Some(match op {
        BinaryOp::Eq => "=",
        BinaryOp::Ne => "<>",
        BinaryOp::Lt => "<",
        BinaryOp::Le => "<=",
        BinaryOp::Gt => ">",
        BinaryOp::Ge => ">=",
        _ => return None,
    })
}

fn is_text(field: &FieldDef) -> bool {
    matches!(
        field.field_type,
        FieldType::SingleLineText
            | FieldType::MultilineText
            | FieldType::Email
            | FieldType::Url
            | FieldType::PhoneNumber
            | FieldType::SingleSelect(_)
    )
}

fn is_number(field: &FieldDef) -> bool {
    matches!(
        field.field_type,
        FieldType::Number(_)
            | FieldType::Currency(_)
            | FieldType::Percent(_)
            | FieldType::Rating(_)
            | FieldType::Duration(_)
    )
}

impl Builder<'_> {
    fn placeholder(&mut self, arg: Arg) -> String {
        let p = format!("${}", self.next);
        self.next += 1;
        self.args.push(arg);
        p
    }

    fn field(&self, name: &str) -> Option<&FieldDef> {
        formula::resolve_field(&self.table.fields, name)
    }

    fn expr(&mut self, e: &Expr) -> Option<String> {
        match e {
            Expr::Call {
                function: Function::And,
                args,
            } => {
                let parts: Vec<String> = args.iter().filter_map(|a| self.expr(a)).collect();
                (!parts.is_empty()).then(|| format!("({})", parts.join(" AND ")))
            }
            Expr::Call {
                function: Function::Or,
                args,
            } => {
                // Every branch must translate: an untranslated one could hold any row.
                let mut parts = Vec::with_capacity(args.len());
                for a in args {
                    parts.push(self.expr(a)?);
                }
                Some(format!("({})", parts.join(" OR ")))
            }
            Expr::Call {
                function: function @ (Function::IsBefore | Function::IsAfter),
                args,
            } => match args.as_slice() {
                [Expr::Field(name), Expr::Literal(lit @ Literal::Text(_))] => {
                    let op = if *function == Function::IsBefore {
                        BinaryOp::Lt
                    } else {
                        BinaryOp::Gt
                    };
                    let field = self.field(name)?.clone();
                    self.date_compare(&field, op, lit)
                }
                _ => None,
            },
            Expr::Binary { op, lhs, rhs } => {
                let (name, op, lit) = match (lhs.as_ref(), rhs.as_ref()) {
                    (Expr::Field(name), Expr::Literal(lit)) => (name, *op, lit),
                    (Expr::Literal(lit), Expr::Field(name)) => (name, flip(*op), lit),
                    _ => return None,
                };
                sql_op(op)?;
                let field = self.field(name)?.clone();
                match (&field, lit) {
                    (f, Literal::Text(s)) if is_text(f) && op == BinaryOp::Eq && !s.is_empty() => {
                        // A text field equals a text literal exactly (case-sensitive), which the
                        // GIN index on `cells` answers.
                        let doc = json!({ field.id.as_str(): s });
                        let p = self.placeholder(Arg::Json(doc));
                        Some(format!("cells @> {p}::jsonb"))
                    }
                    (f, Literal::Number(n)) if is_number(f) => {
                        let sql = sql_op(op)?;
                        let blank = blank_result(op, lit);
                        let id = field.id.as_str().to_owned();
                        let p = self.placeholder(Arg::Number(*n));
                        Some(format!(
                            "(CASE WHEN cells->'{id}' IS NULL THEN {blank} \
                              WHEN jsonb_typeof(cells->'{id}') = 'number' \
                              THEN (cells->>'{id}')::float8 {sql} {p}::float8 ELSE true END)"
                        ))
                    }
                    (_, Literal::Text(_)) if op != BinaryOp::Eq && op != BinaryOp::Ne => {
                        self.date_compare(&field, op, lit)
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// A date field against a literal date: stored cells are `YYYY-MM-DD`, compared by the
    /// engine as midnight UTC.
    fn date_compare(&mut self, field: &FieldDef, op: BinaryOp, lit: &Literal) -> Option<String> {
        if !matches!(field.field_type, FieldType::Date(_)) {
            return None;
        }
        let Literal::Text(text) = lit else {
            return None;
        };
        let at = formula::parse_datetime(text)?;
        let sql = sql_op(op)?;
        let blank = blank_result(op, lit);
        let id = field.id.as_str().to_owned();
        let p = self.placeholder(Arg::Text(at.to_rfc3339()));
        Some(format!(
            "(CASE WHEN cells->'{id}' IS NULL THEN {blank} \
              WHEN jsonb_typeof(cells->'{id}') = 'string' \
                   AND cells->>'{id}' ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$' \
              THEN ((cells->>'{id}')::date::timestamp AT TIME ZONE 'UTC') {sql} {p}::timestamptz \
              ELSE true END)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyairtable_domain::fields::{DateFormat, DateOptions, NumberOptions};
    use pyairtable_domain::ids::{FieldId, TableId};

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
                    FieldType::Number(NumberOptions { precision: 0 }),
                ),
                f(
                    "fld0000000000000c",
                    "Due",
                    FieldType::Date(DateOptions {
                        date_format: DateFormat::Iso,
                    }),
                ),
            ],
            views: Vec::new(),
        }
    }

    fn sql(src: &str) -> Option<Sql> {
        translate(&formula::parse(src).unwrap(), &table(), 5)
    }

    #[test]
    fn simple_comparisons_translate_with_the_engines_blank_semantics() {
        let s = sql("{Name} = 'a'").unwrap();
        assert_eq!(s.text, "cells @> $5::jsonb");
        assert_eq!(s.args, vec![Arg::Json(json!({"fld0000000000000a": "a"}))]);
        // A blank number is 0: `< 3` keeps blanks, `> 3` drops them.
        assert!(sql("{N} < 3").unwrap().text.contains("IS NULL THEN true"));
        assert!(sql("3 < {N}").unwrap().text.contains("IS NULL THEN false"));
        let both =
            sql("AND({Name} = 'a', LEN({Name}) > 2, IS_AFTER({Due}, '2024-01-01'))").unwrap();
        assert_eq!(both.args.len(), 2);
        assert!(both.text.contains(" AND "));
    }

    #[test]
    fn what_cannot_be_translated_keeps_every_row() {
        assert_eq!(sql("LEN({Name}) > 2"), None);
        assert_eq!(sql("OR({Name} = 'a', LEN({Name}) > 2)"), None);
        assert_eq!(sql("{Name} = ''"), None);
        assert_eq!(sql("NOT({Name} = 'a')"), None);
    }
}
