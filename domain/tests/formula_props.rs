//! Properties: parsing never panics, evaluation never panics, printing round-trips.

mod formula_support;

use formula_support::Fixture;
use proptest::prelude::*;
use pyairtable_domain::formula::{self, BinaryOp, Expr, Function, Literal, UnaryOp};

const FIELD_NAMES: [&str; 8] = [
    "Name", "Price", "Empty", "Due", "Start", "Tags", "Lookup", "Nope",
];

const BINARY_OPS: [BinaryOp; 11] = [
    BinaryOp::Eq,
    BinaryOp::Ne,
    BinaryOp::Lt,
    BinaryOp::Le,
    BinaryOp::Gt,
    BinaryOp::Ge,
    BinaryOp::Concat,
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
];

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        prop::sample::select(FIELD_NAMES.to_vec()).prop_map(|n| Expr::Field(n.to_owned())),
        "[^\\x00]{1,12}".prop_map(Expr::Field),
        (0.0f64..1e6).prop_map(|n| Expr::Literal(Literal::Number(n))),
        prop::sample::select(vec![0.0, 1.0, 2.0, 0.5, 1e21, 1e300, 5e-324])
            .prop_map(|n| Expr::Literal(Literal::Number(n))),
        any::<String>().prop_map(|s| Expr::Literal(Literal::Text(s))),
        prop::sample::select(vec![
            "",
            "2024-03-15",
            "days",
            "months",
            "M",
            "[0-9]+",
            "(a|b)*",
            "YYYY-MM-DD LL",
            "Monday",
            "$1",
            "1e3",
            " 42 ",
        ])
        .prop_map(|s| Expr::Literal(Literal::Text(s.to_owned()))),
        any::<bool>().prop_map(|b| Expr::Literal(Literal::Bool(b))),
    ]
}

/// Random trees whose every call has an accepted number of arguments.
fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Unary {
                op: UnaryOp::Neg,
                operand: Box::new(e)
            }),
            (
                prop::sample::select(BINARY_OPS.to_vec()),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(op, l, r)| Expr::Binary {
                    op,
                    lhs: Box::new(l),
                    rhs: Box::new(r)
                }),
            (
                prop::sample::select(Function::ALL.to_vec()),
                prop::collection::vec(inner, 0..5)
            )
                .prop_filter_map("arity", |(function, mut args)| {
                    let (min, max) = function.arity();
                    if args.len() < min {
                        return None;
                    }
                    args.truncate(max.unwrap_or(args.len()));
                    Some(Expr::Call { function, args })
                }),
        ]
    })
}

/// Formula-looking text: tokens of the language glued in random order.
fn token_soup() -> impl Strategy<Value = String> {
    let tokens = prop::sample::select(vec![
        "(",
        ")",
        ",",
        "+",
        "-",
        "*",
        "/",
        "&",
        "=",
        "!=",
        "<>",
        "<",
        "<=",
        ">",
        ">=",
        "1",
        "0",
        "2.5",
        "1e3",
        ".",
        "\"",
        "'",
        "\"x\"",
        "'y'",
        "\\",
        "{",
        "}",
        "{Name}",
        "{Price}",
        "{Tags}",
        "{Due}",
        "{Nope}",
        "TRUE",
        "FALSE()",
        "BLANK()",
        "IF(",
        "SWITCH(",
        "AND(",
        "LEN(",
        "MID(",
        "REPT(",
        "REGEX_REPLACE(",
        "DATEADD(",
        "DATETIME_FORMAT(",
        "DATETIME_DIFF(",
        "ARRAYJOIN(",
        "SUM(",
        "ROUND(",
        "VALUE(",
        "NOW()",
        " ",
        "\n",
    ]);
    prop::collection::vec(tokens, 0..40).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_never_panics_on_any_text(src in any::<String>()) {
        let _ = formula::parse(&src);
    }

    #[test]
    fn parse_and_eval_never_panic_on_formula_like_text(src in token_soup()) {
        let fx = Fixture::new();
        if let Ok(e) = formula::parse(&src) {
            let v = formula::eval(&e, &fx.ctx());
            let _ = v.to_cell_json();
            let _ = v.display_string();
            let _ = v.is_truthy();
            let _ = e.result_type(&fx.fields);
            prop_assert_eq!(formula::parse(&e.to_string()), Ok(e));
        }
    }

    #[test]
    fn generated_trees_evaluate_and_print_back(e in expr()) {
        let fx = Fixture::new();
        let v = formula::eval(&e, &fx.ctx());
        let _ = v.to_cell_json();
        let _ = v.display_string();
        let _ = e.result_type(&fx.fields);
        let _ = formula::check(&e, &fx.field_names());
        let printed = e.to_string();
        prop_assert_eq!(formula::parse(&printed), Ok(e), "printed as {}", printed);
    }

    #[test]
    fn evaluation_is_deterministic(e in expr()) {
        let fx = Fixture::new();
        let a = formula::eval(&e, &fx.ctx());
        let b = formula::eval(&e, &fx.ctx());
        // NaN never reaches a value (non-finite results are errors), so equality is total.
        prop_assert_eq!(a, b);
    }
}
