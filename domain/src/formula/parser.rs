//! Tokenizer and recursive-descent parser for Airtable formulas.

use super::ast::{BinaryOp, Expr, Function, Literal, MAX_DEPTH, UnaryOp};
use super::error::{FormulaError, FormulaErrorKind};

/// Longest formula accepted, in characters.
pub const MAX_FORMULA_CHARS: usize = 100_000;

/// Deepest nesting of parentheses, calls and unary minus the parser accepts. Lower than
/// [`MAX_DEPTH`] (the tree height) because each level costs the recursive-descent parser several
/// stack frames, while long flat chains such as `a & b & c & ...` cost none.
pub const MAX_NESTING: usize = 100;

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Number(f64),
    Text(String),
    Field(String),
    Ident(String),
    LParen,
    RParen,
    Comma,
    Op(BinaryOp),
    Minus,
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Number(n) => format!("number {n}"),
            Tok::Text(s) => format!("string {s:?}"),
            Tok::Field(name) => format!("field reference {{{name}}}"),
            Tok::Ident(name) => format!("identifier {name}"),
            Tok::LParen => "`(`".to_owned(),
            Tok::RParen => "`)`".to_owned(),
            Tok::Comma => "`,`".to_owned(),
            Tok::Op(op) => format!("`{}`", op.symbol()),
            Tok::Minus => "`-`".to_owned(),
            Tok::Eof => "end of formula".to_owned(),
        }
    }
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn err(&self, kind: FormulaErrorKind, at: usize) -> FormulaError {
        FormulaError::at(kind, self.src, at)
    }

    fn peek_char(&self) -> Option<char> {
        self.src.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn tokenize(mut self) -> Result<Vec<(Tok, usize)>, FormulaError> {
        let mut toks = Vec::new();
        loop {
            while self.peek_char().is_some_and(char::is_whitespace) {
                self.bump();
            }
            let start = self.pos;
            let Some(c) = self.bump() else {
                toks.push((Tok::Eof, start));
                return Ok(toks);
            };
            let tok = match c {
                '(' => Tok::LParen,
                ')' => Tok::RParen,
                ',' => Tok::Comma,
                '+' => Tok::Op(BinaryOp::Add),
                '-' => Tok::Minus,
                '*' => Tok::Op(BinaryOp::Mul),
                '/' => Tok::Op(BinaryOp::Div),
                '&' => Tok::Op(BinaryOp::Concat),
                '=' => {
                    // `==` is accepted as `=`, which spreadsheet users often type.
                    if self.peek_char() == Some('=') {
                        self.bump();
                    }
                    Tok::Op(BinaryOp::Eq)
                }
                '!' if self.peek_char() == Some('=') => {
                    self.bump();
                    Tok::Op(BinaryOp::Ne)
                }
                '<' => match self.peek_char() {
                    Some('=') => {
                        self.bump();
                        Tok::Op(BinaryOp::Le)
                    }
                    Some('>') => {
                        self.bump();
                        Tok::Op(BinaryOp::Ne)
                    }
                    _ => Tok::Op(BinaryOp::Lt),
                },
                '>' => {
                    if self.peek_char() == Some('=') {
                        self.bump();
                        Tok::Op(BinaryOp::Ge)
                    } else {
                        Tok::Op(BinaryOp::Gt)
                    }
                }
                '"' | '\'' => Tok::Text(self.string(c, start)?),
                '{' => Tok::Field(self.field(start)?),
                c if c.is_ascii_digit() || c == '.' => self.number(start, c == '.')?,
                c if c.is_ascii_alphabetic() || c == '_' => {
                    while self
                        .peek_char()
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        self.bump();
                    }
                    Tok::Ident(self.src.get(start..self.pos).unwrap_or_default().to_owned())
                }
                found => {
                    return Err(self.err(FormulaErrorKind::UnexpectedChar { found }, start));
                }
            };
            toks.push((tok, start));
        }
    }

    fn string(&mut self, quote: char, start: usize) -> Result<String, FormulaError> {
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(self.err(FormulaErrorKind::UnterminatedString { quote }, start));
                }
                Some(c) if c == quote => return Ok(out),
                Some('\\') => match self.bump() {
                    None => {
                        return Err(self.err(FormulaErrorKind::UnterminatedString { quote }, start));
                    }
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some(c @ ('"' | '\'' | '\\')) => out.push(c),
                    // Other escapes keep their backslash, so regex patterns such as "\d" mean
                    // what their authors expect.
                    Some(c) => {
                        out.push('\\');
                        out.push(c);
                    }
                },
                Some(c) => out.push(c),
            }
        }
    }

    fn field(&mut self, start: usize) -> Result<String, FormulaError> {
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(self.err(FormulaErrorKind::UnterminatedFieldRef, start)),
                Some('}') => break,
                Some('\\') => match self.peek_char() {
                    Some(c @ ('}' | '\\')) => {
                        self.bump();
                        out.push(c);
                    }
                    _ => out.push('\\'),
                },
                Some(c) => out.push(c),
            }
        }
        if out.is_empty() {
            return Err(self.err(FormulaErrorKind::EmptyFieldRef, start));
        }
        Ok(out)
    }

    fn number(&mut self, start: usize, leading_dot: bool) -> Result<Tok, FormulaError> {
        while self.peek_char().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        if !leading_dot && self.peek_char() == Some('.') {
            self.bump();
            while self.peek_char().is_some_and(|c| c.is_ascii_digit()) {
                self.bump();
            }
        }
        if matches!(self.peek_char(), Some('e' | 'E')) {
            let mark = self.pos;
            self.bump();
            if matches!(self.peek_char(), Some('+' | '-')) {
                self.bump();
            }
            if self.peek_char().is_some_and(|c| c.is_ascii_digit()) {
                while self.peek_char().is_some_and(|c| c.is_ascii_digit()) {
                    self.bump();
                }
            } else {
                // `2e` is a number followed by an identifier; let the parser report that.
                self.pos = mark;
            }
        }
        let text = self.src.get(start..self.pos).unwrap_or_default();
        match text.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Tok::Number(n)),
            _ => Err(self.err(
                FormulaErrorKind::InvalidNumber {
                    text: text.to_owned(),
                },
                start,
            )),
        }
    }
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<(Tok, usize)>,
    at: usize,
    nesting: usize,
    /// Whether the bare identifier `values` stands for a rollup's values.
    rollup: bool,
}

/// A parsed subtree with its height, so over-deep trees are refused while they are built.
type Node = (Expr, usize);

impl Parser<'_> {
    fn peek(&self) -> (&Tok, usize) {
        match self.toks.get(self.at) {
            Some((t, o)) => (t, *o),
            None => (&Tok::Eof, self.src.len()),
        }
    }

    fn advance(&mut self) -> (Tok, usize) {
        let (t, o) = self.peek();
        let out = (t.clone(), o);
        if self.at < self.toks.len() {
            self.at += 1;
        }
        out
    }

    fn err(&self, kind: FormulaErrorKind, at: usize) -> FormulaError {
        FormulaError::at(kind, self.src, at)
    }

    fn unexpected(&self, tok: &Tok, at: usize, expected: &'static str) -> FormulaError {
        match tok {
            Tok::Eof => self.err(FormulaErrorKind::UnexpectedEnd { expected }, at),
            t => self.err(
                FormulaErrorKind::UnexpectedToken {
                    found: t.describe(),
                    expected,
                },
                at,
            ),
        }
    }

    fn too_deep(&self, at: usize) -> FormulaError {
        self.err(FormulaErrorKind::TooDeep { max: MAX_DEPTH }, at)
    }

    fn enter(&mut self, at: usize) -> Result<(), FormulaError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(self.err(FormulaErrorKind::TooDeep { max: MAX_NESTING }, at));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Node, FormulaError> {
        let (_, at) = self.peek();
        self.enter(at)?;
        let out = self.binary(1);
        self.nesting -= 1;
        out
    }

    /// Parses operators of precedence `min` and tighter, left-associatively (precedence
    /// climbing: one loop per level reached, so nesting costs few stack frames).
    fn binary(&mut self, min: u8) -> Result<Node, FormulaError> {
        let mut lhs = self.unary()?;
        loop {
            let (tok, at) = self.peek();
            let op = match tok {
                Tok::Op(op) => *op,
                Tok::Minus => BinaryOp::Sub,
                _ => return Ok(lhs),
            };
            if op.precedence() < min {
                return Ok(lhs);
            }
            self.advance();
            let rhs = self.binary(op.precedence() + 1)?;
            let height = lhs.1.max(rhs.1) + 1;
            if height > MAX_DEPTH {
                return Err(self.too_deep(at));
            }
            lhs = (
                Expr::Binary {
                    op,
                    lhs: Box::new(lhs.0),
                    rhs: Box::new(rhs.0),
                },
                height,
            );
        }
    }

    fn unary(&mut self) -> Result<Node, FormulaError> {
        let (tok, at) = self.peek();
        if *tok == Tok::Minus {
            self.advance();
            self.enter(at)?;
            let operand = self.unary();
            self.nesting -= 1;
            let (operand, h) = operand?;
            if h + 1 > MAX_DEPTH {
                return Err(self.too_deep(at));
            }
            return Ok((
                Expr::Unary {
                    op: UnaryOp::Neg,
                    operand: Box::new(operand),
                },
                h + 1,
            ));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Node, FormulaError> {
        let (tok, at) = self.advance();
        match tok {
            Tok::Number(n) => Ok((Expr::Literal(Literal::Number(n)), 1)),
            Tok::Text(s) => Ok((Expr::Literal(Literal::Text(s)), 1)),
            Tok::Field(name) => Ok((Expr::Field(name), 1)),
            Tok::LParen => {
                let inner = self.expr()?;
                let (close, close_at) = self.advance();
                if close != Tok::RParen {
                    return Err(self.unexpected(&close, close_at, "`)`"));
                }
                Ok(inner)
            }
            Tok::Ident(name) => self.call_or_constant(name, at),
            other => Err(self.unexpected(&other, at, "a value, field reference or function")),
        }
    }

    fn call_or_constant(&mut self, name: String, at: usize) -> Result<Node, FormulaError> {
        let constant = if name.eq_ignore_ascii_case("TRUE") {
            Some(true)
        } else if name.eq_ignore_ascii_case("FALSE") {
            Some(false)
        } else {
            None
        };
        if *self.peek().0 != Tok::LParen {
            return match constant {
                Some(b) => Ok((Expr::Literal(Literal::Bool(b)), 1)),
                None if self.rollup && name.eq_ignore_ascii_case(ROLLUP_VALUES) => {
                    Ok((Expr::Field(ROLLUP_VALUES.to_owned()), 1))
                }
                None => Err(self.err(FormulaErrorKind::BareIdentifier { name }, at)),
            };
        }
        let function = match constant {
            Some(_) => None,
            None => Some(Function::from_name(&name).ok_or_else(|| {
                self.err(FormulaErrorKind::UnknownFunction { name: name.clone() }, at)
            })?),
        };
        self.advance();
        // Each argument is an `expr`, which counts the nesting.
        let (args, height) = self.args()?;
        match (function, constant) {
            (None, Some(b)) if args.is_empty() => Ok((Expr::Literal(Literal::Bool(b)), 1)),
            (None, _) => Err(self.err(
                FormulaErrorKind::WrongArgumentCount {
                    function: if constant == Some(true) {
                        "TRUE"
                    } else {
                        "FALSE"
                    },
                    expected: "0".to_owned(),
                    found: args.len(),
                },
                at,
            )),
            (Some(function), _) => {
                if !function.accepts(args.len()) {
                    return Err(self.err(
                        FormulaErrorKind::WrongArgumentCount {
                            function: function.name(),
                            expected: function.arity_text(),
                            found: args.len(),
                        },
                        at,
                    ));
                }
                if height + 1 > MAX_DEPTH {
                    return Err(self.too_deep(at));
                }
                Ok((Expr::Call { function, args }, height + 1))
            }
        }
    }

    /// Arguments after `(` up to and including `)`, with the height of the tallest.
    fn args(&mut self) -> Result<(Vec<Expr>, usize), FormulaError> {
        let mut args = Vec::new();
        let mut height = 0;
        if *self.peek().0 == Tok::RParen {
            self.advance();
            return Ok((args, height));
        }
        loop {
            let (arg, h) = self.expr()?;
            args.push(arg);
            height = height.max(h);
            let (tok, at) = self.advance();
            match tok {
                Tok::Comma => {}
                Tok::RParen => return Ok((args, height)),
                other => return Err(self.unexpected(&other, at, "`,` or `)`")),
            }
        }
    }
}

/// Parses an Airtable formula.
///
/// # Errors
/// A [`FormulaError`] naming the first problem and its line and column: an empty or over-long
/// formula, an unexpected character or token, an unterminated string or field reference, an
/// unknown function, a wrong argument count, a bare identifier, nesting deeper than
/// [`MAX_NESTING`] or a tree taller than [`MAX_DEPTH`].
pub fn parse(src: &str) -> Result<Expr, FormulaError> {
    parse_with(src, false)
}

/// The name a rollup formula's values go by: the bare identifier `values` (any case), parsed
/// as a reference to a field of this name that a rollup's context supplies.
pub const ROLLUP_VALUES: &str = "values";

/// Parses a rollup's aggregation formula, such as `SUM(values)` or `ARRAYJOIN(values, "; ")`:
/// the bare identifier `values` stands for the linked records' values, and no other field may
/// be referenced (a rollup sees only its linked values, as in Airtable).
///
/// # Errors
/// What [`parse`] refuses, and a field reference other than `values`
/// ([`FormulaErrorKind::UnknownFieldNames`]).
pub fn parse_rollup(src: &str) -> Result<Expr, FormulaError> {
    let expr = parse_with(src, true)?;
    let others: Vec<String> = expr
        .referenced_fields()
        .into_iter()
        .filter(|name| name != ROLLUP_VALUES)
        .collect();
    if others.is_empty() {
        Ok(expr)
    } else {
        Err(FormulaError::without_position(
            FormulaErrorKind::UnknownFieldNames { names: others },
        ))
    }
}

fn parse_with(src: &str, rollup: bool) -> Result<Expr, FormulaError> {
    if src.chars().nth(MAX_FORMULA_CHARS).is_some() {
        return Err(FormulaError::at(
            FormulaErrorKind::TooLong {
                max: MAX_FORMULA_CHARS,
            },
            src,
            0,
        ));
    }
    if src.trim().is_empty() {
        return Err(FormulaError::at(FormulaErrorKind::Empty, src, 0));
    }
    let toks = Lexer { src, pos: 0 }.tokenize()?;
    let mut p = Parser {
        src,
        toks,
        at: 0,
        nesting: 0,
        rollup,
    };
    // The top level is not nested: only parentheses, arguments and minus signs count.
    let (expr, _) = p.binary(1)?;
    let (tok, at) = p.advance();
    if tok != Tok::Eof {
        return Err(p.unexpected(&tok, at, "an operator or end of formula"));
    }
    Ok(expr)
}
