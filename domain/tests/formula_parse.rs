//! Parsing: precedence, literals and escapes, canonical printing, errors with positions, and
//! schema checks.

mod formula_support;

use formula_support::Fixture;
use pyairtable_domain::formula::{
    self, BinaryOp, Expr, FormulaErrorKind, Function, Literal, MAX_DEPTH, MAX_NESTING, ResultKind,
    UnaryOp,
};

fn num(n: f64) -> Expr {
    Expr::Literal(Literal::Number(n))
}

fn text(s: &str) -> Expr {
    Expr::Literal(Literal::Text(s.to_owned()))
}

fn bin(op: BinaryOp, lhs: Expr, rhs: Expr) -> Expr {
    Expr::Binary {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
    }
}

fn parse(src: &str) -> Expr {
    formula::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn err(src: &str) -> formula::FormulaError {
    match formula::parse(src) {
        Ok(e) => panic!("{src} parsed as {e:?}"),
        Err(e) => e,
    }
}

#[test]
fn precedence_and_associativity() {
    use BinaryOp::*;
    assert_eq!(
        parse("1 + 2 * 3"),
        bin(Add, num(1.0), bin(Mul, num(2.0), num(3.0)))
    );
    assert_eq!(
        parse("1 - 2 - 3"),
        bin(Sub, bin(Sub, num(1.0), num(2.0)), num(3.0))
    );
    assert_eq!(
        parse("\"a\" & 1 + 2"),
        bin(Concat, text("a"), bin(Add, num(1.0), num(2.0)))
    );
    assert_eq!(
        parse("1 & 2 = \"12\""),
        bin(Eq, bin(Concat, num(1.0), num(2.0)), text("12"))
    );
    assert_eq!(
        parse("-2 * 3"),
        bin(
            Mul,
            Expr::Unary {
                op: UnaryOp::Neg,
                operand: Box::new(num(2.0))
            },
            num(3.0)
        )
    );
    assert_eq!(
        parse("(1 + 2) * 3"),
        bin(Mul, bin(Add, num(1.0), num(2.0)), num(3.0))
    );
    assert_eq!(parse("1 <> 2"), bin(Ne, num(1.0), num(2.0)));
    assert_eq!(parse("1 != 2"), bin(Ne, num(1.0), num(2.0)));
    assert_eq!(
        parse("1 <= 2 >= 3"),
        bin(Ge, bin(Le, num(1.0), num(2.0)), num(3.0))
    );
}

#[test]
fn literals_fields_and_calls() {
    assert_eq!(parse("1.5e3"), num(1500.0));
    assert_eq!(parse(".5"), num(0.5));
    assert_eq!(parse("2E-2"), num(0.02));
    assert_eq!(parse("TRUE"), Expr::Literal(Literal::Bool(true)));
    assert_eq!(parse("false()"), Expr::Literal(Literal::Bool(false)));
    assert_eq!(parse("\"a\\\"b\""), text("a\"b"));
    assert_eq!(parse("'it\\'s'"), text("it's"));
    assert_eq!(parse("\"it's\""), text("it's"));
    assert_eq!(parse("'say \"hi\"'"), text("say \"hi\""));
    assert_eq!(parse("\"\\n\\t\\\\\""), text("\n\t\\"));
    assert_eq!(parse("\"\\d+\""), text("\\d+"));
    assert_eq!(parse("{Field Name}"), Expr::Field("Field Name".into()));
    assert_eq!(parse("{a\\}b}"), Expr::Field("a}b".into()));
    assert_eq!(parse("{a\\\\}"), Expr::Field("a\\".into()));
    assert_eq!(parse("{a\\b}"), Expr::Field("a\\b".into()));
    assert_eq!(
        parse("if(\n  {Name},\r\n\t1\n)"),
        Expr::Call {
            function: Function::If,
            args: vec![Expr::Field("Name".into()), num(1.0)],
        }
    );
    assert_eq!(
        parse("NOW()"),
        Expr::Call {
            function: Function::Now,
            args: vec![]
        }
    );
    assert_eq!(parse("\u{a0}1\u{a0}"), num(1.0));
}

#[test]
fn display_is_canonical_and_round_trips() {
    let cases = [
        ("1+2*3", "1 + 2 * 3"),
        ("(1+2)*3", "(1 + 2) * 3"),
        ("1-(2-3)", "1 - (2 - 3)"),
        ("(1-2)-3", "1 - 2 - 3"),
        ("-(1+2)", "-(1 + 2)"),
        ("--1", "--1"),
        ("if({a\\}b},'x\"y',true)", "IF({a\\}b}, \"x\\\"y\", TRUE())"),
        ("\"line\\nbreak\"", "\"line\\nbreak\""),
        ("(1 = 2) = (3 = 4)", "1 = 2 = (3 = 4)"),
        ("1 & (2 & 3)", "1 & (2 & 3)"),
        ("0.1", "0.1"),
        ("1e21", "1000000000000000000000"),
    ];
    for (src, want) in cases {
        let e = parse(src);
        assert_eq!(e.to_string(), want, "{src}");
        assert_eq!(parse(want), e, "{want} re-parses");
    }
}

#[test]
fn errors_name_the_problem_and_position() {
    let cases: [(&str, FormulaErrorKind, usize, usize); 13] = [
        (
            "\"abc",
            FormulaErrorKind::UnterminatedString { quote: '"' },
            1,
            1,
        ),
        (
            "1 & 'abc",
            FormulaErrorKind::UnterminatedString { quote: '\'' },
            1,
            5,
        ),
        ("{abc", FormulaErrorKind::UnterminatedFieldRef, 1, 1),
        ("{}", FormulaErrorKind::EmptyFieldRef, 1, 1),
        (
            "1 + FOO(1)",
            FormulaErrorKind::UnknownFunction { name: "FOO".into() },
            1,
            5,
        ),
        (
            "IF(1)",
            FormulaErrorKind::WrongArgumentCount {
                function: "IF",
                expected: "2 to 3".into(),
                found: 1,
            },
            1,
            1,
        ),
        (
            "TRUE(1)",
            FormulaErrorKind::WrongArgumentCount {
                function: "TRUE",
                expected: "0".into(),
                found: 1,
            },
            1,
            1,
        ),
        (
            "1 +",
            FormulaErrorKind::UnexpectedEnd {
                expected: "a value, field reference or function",
            },
            1,
            4,
        ),
        (
            "1 + )",
            FormulaErrorKind::UnexpectedToken {
                found: "`)`".into(),
                expected: "a value, field reference or function",
            },
            1,
            5,
        ),
        (
            "Name",
            FormulaErrorKind::BareIdentifier {
                name: "Name".into(),
            },
            1,
            1,
        ),
        (
            "1 +\n  #",
            FormulaErrorKind::UnexpectedChar { found: '#' },
            2,
            3,
        ),
        ("   ", FormulaErrorKind::Empty, 1, 1),
        (
            "(1 2)",
            FormulaErrorKind::UnexpectedToken {
                found: "number 2".into(),
                expected: "`)`",
            },
            1,
            4,
        ),
    ];
    for (src, kind, line, column) in cases {
        let e = err(src);
        assert_eq!(
            (e.kind.clone(), e.line, e.column),
            (kind, line, column),
            "{src}"
        );
    }
    assert_eq!(
        err("IF(1)").to_string(),
        "wrong number of arguments for IF: expected 2 to 3, got 1 at line 1, column 1"
    );
    assert_eq!(
        err("LEN(1,)").message(),
        "unexpected `)`, expected a value, field reference or function at line 1, column 7"
    );
    assert_eq!(
        err("Price * 2").message(),
        "unknown identifier Price: field names must be wrapped in braces, like {Price} at line 1, column 1"
    );
    assert!(matches!(
        err("1e999").kind,
        FormulaErrorKind::InvalidNumber { .. }
    ));
    assert!(matches!(
        err("1 2").kind,
        FormulaErrorKind::UnexpectedToken { .. }
    ));
    assert!(matches!(
        err("1e").kind,
        FormulaErrorKind::UnexpectedToken { .. }
    ));
}

#[test]
fn nesting_is_bounded() {
    let nested = |open: &str, n: usize| format!("{}1{}", open.repeat(n), ")".repeat(n));
    let too_nested = FormulaErrorKind::TooDeep { max: MAX_NESTING };
    assert_eq!(err(&nested("(", MAX_NESTING + 1)).kind, too_nested);
    assert_eq!(err(&nested("ABS(", MAX_NESTING + 1)).kind, too_nested);
    assert_eq!(
        err(&format!("{}1", "-".repeat(MAX_NESTING + 1))).kind,
        too_nested
    );
    // Flat chains are not nested, but their trees are tall.
    let chain = |n: usize| format!("1{}", "+1".repeat(n));
    assert_eq!(
        err(&chain(MAX_DEPTH)).kind,
        FormulaErrorKind::TooDeep { max: MAX_DEPTH }
    );
    let fx = Fixture::new();
    assert_eq!(fx.show(&chain(MAX_DEPTH - 1)), MAX_DEPTH.to_string());
    assert_eq!(fx.show(&nested("ABS(", MAX_NESTING)), "1");
    let too_long = "1".repeat(formula::MAX_FORMULA_CHARS + 1);
    assert!(matches!(
        err(&too_long).kind,
        FormulaErrorKind::TooLong { .. }
    ));
}

#[test]
fn check_lists_unknown_fields_once_in_order() {
    let fx = Fixture::new();
    let e = parse("{Name} & {Nope} & {Nope2} & {Nope} & {name}");
    assert_eq!(e.referenced_fields(), vec!["Name", "Nope", "Nope2", "name"]);
    let error = formula::check(&e, &fx.field_names()).expect_err("unknown fields");
    assert_eq!(
        error.kind,
        FormulaErrorKind::UnknownFieldNames {
            names: vec!["Nope".into(), "Nope2".into()]
        }
    );
    assert_eq!(error.message(), "Unknown field names: Nope, Nope2");
    assert!(formula::check(&parse("{Price} * {QTY}"), &fx.field_names()).is_ok());
    let by_id = format!("{{{}}}", fx.fields[0].id);
    assert!(formula::parse_for_table(&by_id, &fx.fields).is_ok());
    assert!(formula::parse_for_table("{Nope}", &fx.fields).is_err());
}

#[test]
fn result_types() {
    let fx = Fixture::new();
    let cases = [
        ("1 + 1", ResultKind::Number),
        ("{Due}", ResultKind::Date),
        ("{Start}", ResultKind::DateTime),
        ("IF({Done}, \"a\", 1)", ResultKind::Text),
        ("IF(1, NOW())", ResultKind::DateTime),
        ("IF(1, TODAY(), NOW())", ResultKind::DateTime),
        ("{Tags}", ResultKind::Array),
        ("1 = 1", ResultKind::Boolean),
        ("DATEADD({Due}, 1, 'days')", ResultKind::DateTime),
        ("SWITCH(1, 1, 2, 3)", ResultKind::Number),
        ("SWITCH(1, 1, 2, 'x')", ResultKind::Text),
        ("{Name} & 1", ResultKind::Text),
        ("LEN({Name})", ResultKind::Number),
        ("BLANK()", ResultKind::Blank),
        ("{Unknown}", ResultKind::Text),
    ];
    for (src, want) in cases {
        assert_eq!(parse(src).result_type(&fx.fields), want, "{src}");
    }
    assert_eq!(ResultKind::Boolean.type_name(), "checkbox");
    assert!(ResultKind::Array.to_field_type().is_none());
    assert_eq!(
        ResultKind::Number.to_field_type().map(|t| t.type_name()),
        Some("number")
    );
}

#[test]
fn every_function_has_a_unique_name_and_sane_arity() {
    for f in Function::ALL {
        assert_eq!(Function::from_name(&f.name().to_lowercase()), Some(*f));
        let (min, max) = f.arity();
        assert!(max.is_none_or(|m| m >= min), "{}", f.name());
    }
    assert_eq!(Function::from_name("NOPE"), None);
}

#[test]
fn formulas_at_the_depth_limit_fit_a_small_stack() {
    // Half of a test thread's default stack (in unoptimised builds): parse, eval, display and typing of trees at
    // the depth limit must not come near a stack overflow.
    let worker = std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(|| {
            let fx = Fixture::new();
            let shapes = [
                ("(", ")"),
                ("ABS(", ")"),
                ("IF(1,", ")"),
                ("SWITCH(1,1,", ")"),
                ("AND(1,", ")"),
                ("1+(", ")"),
                ("1&(", ")"),
            ];
            let mut parsed = 0;
            for (open, close) in shapes {
                for n in [MAX_NESTING / 2, MAX_NESTING, MAX_NESTING + 1] {
                    let src = format!("{}1{}", open.repeat(n), close.repeat(n));
                    if let Ok(e) = formula::parse(&src) {
                        parsed += 1;
                        let v = formula::eval(&e, &fx.ctx());
                        assert!(!matches!(
                            v,
                            formula::Value::Error(formula::ErrorKind::TooDeep)
                        ));
                        assert_eq!(formula::parse(&e.to_string()).as_ref(), Ok(&e));
                        let _ = e.result_type(&fx.fields);
                    }
                }
            }
            let chain = formula::parse(&format!("1{}", "&1".repeat(MAX_DEPTH - 1))).expect("chain");
            assert_eq!(
                formula::eval(&chain, &fx.ctx()).display_string().len(),
                MAX_DEPTH
            );
            assert_eq!(formula::parse(&chain.to_string()).as_ref(), Ok(&chain));
            parsed
        });
    let parsed = worker.expect("spawn").join().expect("no overflow");
    // Each shape parses at half and at full nesting, and is refused one level deeper.
    assert_eq!(parsed, 14);
}
