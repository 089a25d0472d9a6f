//! The formula syntax tree: public so other layers (SQL pushdown, result typing) can walk it.

use std::fmt;

/// Deepest tree [`crate::formula::parse`] builds and the evaluator walks: deeper formulas are
/// rejected at parse time, deeper hand-built trees evaluate to an error.
pub const MAX_DEPTH: usize = 200;

/// A parsed formula.
///
/// Field references keep the name as written between the braces (escapes resolved); resolving
/// it to a field is the job of [`crate::formula::check`] and the evaluation context.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// `{Field Name}`.
    Field(String),
    /// A number, string or `TRUE`/`FALSE`.
    Literal(Literal),
    /// `-x`.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// Its operand.
        operand: Box<Expr>,
    },
    /// `a op b`.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
    },
    /// `FUNC(args...)`; the argument count has been checked against [`Function::arity`].
    Call {
        /// The function.
        function: Function,
        /// Its arguments, in order.
        args: Vec<Expr>,
    },
}

/// A constant written in the formula.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// A number such as `1`, `2.5` or `1e3`; never negative when parsed (`-1` is a unary minus).
    Number(f64),
    /// A string in single or double quotes.
    Text(String),
    /// `TRUE`, `TRUE()`, `FALSE` or `FALSE()`.
    Bool(bool),
}

/// Prefix operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x`: arithmetic negation.
    Neg,
}

/// Infix operators, by Airtable's precedence from loosest to tightest: comparisons, `&`,
/// `+ -`, `* /`. All are left-associative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `=`.
    Eq,
    /// `!=` or `<>`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `&`: text concatenation.
    Concat,
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
}

impl BinaryOp {
    /// Binding strength: higher binds tighter.
    #[must_use]
    pub fn precedence(self) -> u8 {
        match self {
            Self::Eq | Self::Ne | Self::Lt | Self::Le | Self::Gt | Self::Ge => 1,
            Self::Concat => 2,
            Self::Add | Self::Sub => 3,
            Self::Mul | Self::Div => 4,
        }
    }

    /// The operator as written (`!=` for both `!=` and `<>`).
    #[must_use]
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Concat => "&",
            Self::Add => "+",
            Self::Sub => "-",
            Self::Mul => "*",
            Self::Div => "/",
        }
    }

    /// Whether this is one of the six comparisons.
    #[must_use]
    pub fn is_comparison(self) -> bool {
        self.precedence() == 1
    }
}

/// Precedence of a unary minus and of atoms, above every binary operator.
const UNARY_PRECEDENCE: u8 = 5;
const ATOM_PRECEDENCE: u8 = 6;

macro_rules! functions {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $min:literal, $max:expr; )*) => {
        /// Every function the engine knows. Names are matched case-insensitively.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Function {
            $( $(#[$doc])* $variant, )*
        }

        impl Function {
            /// All functions, in documentation order.
            pub const ALL: &'static [Function] = &[$(Function::$variant),*];

            /// The canonical (upper-case) name.
            #[must_use]
            pub fn name(self) -> &'static str {
                match self { $( Self::$variant => $name, )* }
            }

            /// Accepted argument counts: at least `.0`, at most `.1` (`None`: no upper bound).
            #[must_use]
            pub fn arity(self) -> (usize, Option<usize>) {
                match self { $( Self::$variant => ($min, $max), )* }
            }
        }
    };
}

functions! {
    /// `AND(a, b, ...)`: true when every argument (arrays flattened) is truthy.
    And = "AND", 1, None;
    /// `OR(a, b, ...)`: true when any argument is truthy.
    Or = "OR", 1, None;
    /// `NOT(a)`.
    Not = "NOT", 1, Some(1);
    /// `XOR(a, b, ...)`: true when an odd number of arguments are truthy.
    Xor = "XOR", 1, None;
    /// `IF(condition, then, [else])`; `else` defaults to blank.
    If = "IF", 2, Some(3);
    /// `SWITCH(expr, pattern1, result1, ..., [default])`.
    Switch = "SWITCH", 2, None;
    /// `BLANK()`: the empty value.
    Blank = "BLANK", 0, Some(0);
    /// `ERROR()`: an error value.
    Error = "ERROR", 0, Some(0);
    /// `ISERROR(expr)`: whether `expr` is an error.
    IsError = "ISERROR", 1, Some(1);
    /// `LEN(text)`: length in characters.
    Len = "LEN", 1, Some(1);
    /// `LOWER(text)`.
    Lower = "LOWER", 1, Some(1);
    /// `UPPER(text)`.
    Upper = "UPPER", 1, Some(1);
    /// `FIND(needle, haystack, [start])`: 1-based position, 0 when absent; case-sensitive.
    Find = "FIND", 2, Some(3);
    /// `SEARCH(needle, haystack, [start])`: like FIND but case-insensitive; blank when absent.
    Search = "SEARCH", 2, Some(3);
    /// `LEFT(text, count)`.
    Left = "LEFT", 2, Some(2);
    /// `RIGHT(text, count)`.
    Right = "RIGHT", 2, Some(2);
    /// `MID(text, start, count)`: `start` is 1-based.
    Mid = "MID", 3, Some(3);
    /// `SUBSTITUTE(text, old, new, [index])`: every occurrence, or only the `index`-th.
    Substitute = "SUBSTITUTE", 3, Some(4);
    /// `REPLACE(text, start, count, replacement)`: `start` is 1-based.
    Replace = "REPLACE", 4, Some(4);
    /// `TRIM(text)`: strips leading and trailing whitespace.
    Trim = "TRIM", 1, Some(1);
    /// `CONCATENATE(a, b, ...)`.
    Concatenate = "CONCATENATE", 1, None;
    /// `REPT(text, count)`.
    Rept = "REPT", 2, Some(2);
    /// `T(value)`: the value when it is text, else blank.
    T = "T", 1, Some(1);
    /// `REGEX_MATCH(text, pattern)`: whether the pattern matches anywhere.
    RegexMatch = "REGEX_MATCH", 2, Some(2);
    /// `REGEX_EXTRACT(text, pattern)`: the first match; an error when there is none.
    RegexExtract = "REGEX_EXTRACT", 2, Some(2);
    /// `REGEX_REPLACE(text, pattern, replacement)`: replaces every match.
    RegexReplace = "REGEX_REPLACE", 3, Some(3);
    /// `ROUND(value, [precision])`: ties toward positive infinity.
    Round = "ROUND", 1, Some(2);
    /// `ROUNDUP(value, [precision])`: away from zero.
    RoundUp = "ROUNDUP", 1, Some(2);
    /// `ROUNDDOWN(value, [precision])`: toward zero.
    RoundDown = "ROUNDDOWN", 1, Some(2);
    /// `CEILING(value, [significance])`.
    Ceiling = "CEILING", 1, Some(2);
    /// `FLOOR(value, [significance])`.
    Floor = "FLOOR", 1, Some(2);
    /// `ABS(value)`.
    Abs = "ABS", 1, Some(1);
    /// `SUM(a, b, ...)`.
    Sum = "SUM", 1, None;
    /// `AVERAGE(a, b, ...)`.
    Average = "AVERAGE", 1, None;
    /// `MIN(a, b, ...)`.
    Min = "MIN", 1, None;
    /// `MAX(a, b, ...)`.
    Max = "MAX", 1, None;
    /// `COUNT(a, b, ...)`: how many numbers.
    Count = "COUNT", 1, None;
    /// `COUNTA(a, b, ...)`: how many non-empty values.
    CountA = "COUNTA", 1, None;
    /// `COUNTALL(a, b, ...)`: how many values, empty ones included.
    CountAll = "COUNTALL", 1, None;
    /// `INT(value)`: the greatest integer not above `value`.
    Int = "INT", 1, Some(1);
    /// `MOD(value, divisor)`: remainder with the sign of `value`.
    Mod = "MOD", 2, Some(2);
    /// `POWER(base, exponent)`.
    Power = "POWER", 2, Some(2);
    /// `SQRT(value)`.
    Sqrt = "SQRT", 1, Some(1);
    /// `VALUE(text)`: the number in a text such as `$1,000.50`.
    Value = "VALUE", 1, Some(1);
    /// `DATETIME_PARSE(text, [format], [locale])`.
    DatetimeParse = "DATETIME_PARSE", 1, Some(3);
    /// `DATETIME_FORMAT(date, [format])`: moment.js-style tokens, in UTC.
    DatetimeFormat = "DATETIME_FORMAT", 1, Some(2);
    /// `DATEADD(date, count, unit)`.
    DateAdd = "DATEADD", 3, Some(3);
    /// `DATETIME_DIFF(date1, date2, [unit])`: `date1 - date2`, truncated, in `unit` (seconds).
    DatetimeDiff = "DATETIME_DIFF", 2, Some(3);
    /// `IS_BEFORE(date1, date2)`.
    IsBefore = "IS_BEFORE", 2, Some(2);
    /// `IS_AFTER(date1, date2)`.
    IsAfter = "IS_AFTER", 2, Some(2);
    /// `IS_SAME(date1, date2, [unit])`: equal down to `unit` (default: the millisecond).
    IsSame = "IS_SAME", 2, Some(3);
    /// `TODAY()`: today's date in the context's time zone.
    Today = "TODAY", 0, Some(0);
    /// `NOW()`: the context's current instant.
    Now = "NOW", 0, Some(0);
    /// `YEAR(date)`.
    Year = "YEAR", 1, Some(1);
    /// `MONTH(date)`: 1 to 12.
    Month = "MONTH", 1, Some(1);
    /// `DAY(date)`: day of the month, 1 to 31.
    Day = "DAY", 1, Some(1);
    /// `WEEKDAY(date, [start])`: 0 to 6 from Sunday, or from Monday with `"Monday"`.
    Weekday = "WEEKDAY", 1, Some(2);
    /// `HOUR(date)`: 0 to 23, UTC.
    Hour = "HOUR", 1, Some(1);
    /// `MINUTE(date)`.
    Minute = "MINUTE", 1, Some(1);
    /// `SECOND(date)`.
    Second = "SECOND", 1, Some(1);
    /// `DATESTR(date)`: `YYYY-MM-DD`.
    DateStr = "DATESTR", 1, Some(1);
    /// `ARRAYJOIN(values, [separator])`: separator defaults to `", "`.
    ArrayJoin = "ARRAYJOIN", 1, Some(2);
    /// `ARRAYCOMPACT(values)`: drops blanks and empty strings.
    ArrayCompact = "ARRAYCOMPACT", 1, Some(1);
    /// `ARRAYUNIQUE(values)`: drops repeated values.
    ArrayUnique = "ARRAYUNIQUE", 1, Some(1);
    /// `ARRAYFLATTEN(values)`: flattens nested arrays.
    ArrayFlatten = "ARRAYFLATTEN", 1, Some(1);
    /// `RECORD_ID()`.
    RecordId = "RECORD_ID", 0, Some(0);
    /// `CREATED_TIME()`.
    CreatedTime = "CREATED_TIME", 0, Some(0);
    /// `LAST_MODIFIED_TIME()`.
    LastModifiedTime = "LAST_MODIFIED_TIME", 0, Some(0);
}

impl Function {
    /// The function called `name`, ignoring case.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// Whether `count` arguments are accepted.
    #[must_use]
    pub fn accepts(self, count: usize) -> bool {
        let (min, max) = self.arity();
        count >= min && max.is_none_or(|max| count <= max)
    }

    /// The accepted counts in words: `0`, `1`, `2 to 3`, `at least 1`.
    #[must_use]
    pub fn arity_text(self) -> String {
        match self.arity() {
            (min, Some(max)) if min == max => min.to_string(),
            (min, Some(max)) => format!("{min} to {max}"),
            (min, None) => format!("at least {min}"),
        }
    }
}

impl Expr {
    /// The names of the fields the formula references, in order of first appearance, each once.
    #[must_use]
    pub fn referenced_fields(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        // An explicit stack, so hand-built trees of any depth are walked without recursion.
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            match e {
                Expr::Field(name) => {
                    if !names.iter().any(|n| n == name) {
                        names.push(name.clone());
                    }
                }
                Expr::Literal(_) => {}
                Expr::Unary { operand, .. } => stack.push(operand),
                Expr::Binary { lhs, rhs, .. } => {
                    stack.push(rhs);
                    stack.push(lhs);
                }
                Expr::Call { args, .. } => stack.extend(args.iter().rev()),
            }
        }
        names
    }

    /// Height of the tree: 1 for a leaf.
    #[must_use]
    pub fn depth(&self) -> usize {
        let mut max = 0;
        let mut stack = vec![(self, 1usize)];
        while let Some((e, d)) = stack.pop() {
            max = max.max(d);
            match e {
                Expr::Field(_) | Expr::Literal(_) => {}
                Expr::Unary { operand, .. } => stack.push((operand, d + 1)),
                Expr::Binary { lhs, rhs, .. } => {
                    stack.push((lhs, d + 1));
                    stack.push((rhs, d + 1));
                }
                Expr::Call { args, .. } => stack.extend(args.iter().map(|a| (a, d + 1))),
            }
        }
        max
    }

    fn precedence(&self) -> u8 {
        match self {
            Expr::Binary { op, .. } => op.precedence(),
            Expr::Unary { .. } => UNARY_PRECEDENCE,
            // A negative number prints as `-n`, which reads back as a unary minus.
            Expr::Literal(Literal::Number(n)) if n.is_sign_negative() => UNARY_PRECEDENCE,
            _ => ATOM_PRECEDENCE,
        }
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        if depth > MAX_DEPTH {
            // Hand-built trees deeper than any parsed one: print something that parses and
            // evaluates to an error rather than recursing without bound.
            return f.write_str("ERROR()");
        }
        match self {
            Expr::Field(name) => {
                f.write_str("{")?;
                for c in name.chars() {
                    match c {
                        '}' => f.write_str("\\}")?,
                        '\\' => f.write_str("\\\\")?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("}")
            }
            Expr::Literal(lit) => write!(f, "{lit}"),
            Expr::Unary {
                op: UnaryOp::Neg,
                operand,
            } => {
                f.write_str("-")?;
                write_child(operand, f, depth, operand.precedence() < UNARY_PRECEDENCE)
            }
            Expr::Binary { op, lhs, rhs } => {
                let p = op.precedence();
                write_child(lhs, f, depth, lhs.precedence() < p)?;
                write!(f, " {} ", op.symbol())?;
                write_child(rhs, f, depth, rhs.precedence() <= p)
            }
            Expr::Call { function, args } => {
                write!(f, "{}(", function.name())?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    a.write(f, depth + 1)?;
                }
                f.write_str(")")
            }
        }
    }
}

fn write_child(e: &Expr, f: &mut fmt::Formatter<'_>, depth: usize, parens: bool) -> fmt::Result {
    if parens {
        f.write_str("(")?;
        e.write(f, depth + 1)?;
        f.write_str(")")
    } else {
        e.write(f, depth + 1)
    }
}

/// Prints the formula in canonical form (upper-case function names, `{}` around every field,
/// double-quoted strings, the fewest parentheses); parsing the text gives the same tree back.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, 1)
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Number(n) if !n.is_finite() => f.write_str("ERROR()"),
            // Rust's shortest round-trip form, never exponent notation, so it re-parses exactly.
            Literal::Number(n) => write!(f, "{n}"),
            Literal::Bool(true) => f.write_str("TRUE()"),
            Literal::Bool(false) => f.write_str("FALSE()"),
            Literal::Text(s) => {
                f.write_str("\"")?;
                for c in s.chars() {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        '\n' => f.write_str("\\n")?,
                        '\r' => f.write_str("\\r")?,
                        '\t' => f.write_str("\\t")?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"")
            }
        }
    }
}
