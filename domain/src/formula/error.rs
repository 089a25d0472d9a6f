//! Errors of formula parsing and checking, each naming the problem and where it is.

use serde::Serialize;

/// What is wrong with a formula's text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum FormulaErrorKind {
    /// The formula is empty or only whitespace.
    #[error("the formula is empty")]
    Empty,
    /// The formula is longer than the engine accepts.
    #[error("the formula is longer than {max} characters")]
    TooLong {
        /// The limit, in characters.
        max: usize,
    },
    /// Parentheses, calls or operators are nested deeper than the engine accepts.
    #[error("the formula is nested more than {max} levels deep")]
    TooDeep {
        /// The limit, in levels.
        max: usize,
    },
    /// A character that starts no token.
    #[error("unexpected character {found:?}")]
    UnexpectedChar {
        /// The character.
        found: char,
    },
    /// A string literal without its closing quote.
    #[error("unterminated string: missing closing {quote}")]
    UnterminatedString {
        /// The quote that opened it.
        quote: char,
    },
    /// A `{field}` reference without its closing brace.
    #[error("unterminated field reference: missing closing }}")]
    UnterminatedFieldRef,
    /// `{}`: a field reference with no name.
    #[error("empty field reference {{}}")]
    EmptyFieldRef,
    /// A number that does not fit a 64-bit float or is malformed.
    #[error("invalid number {text:?}")]
    InvalidNumber {
        /// The number as written.
        text: String,
    },
    /// A token the grammar does not allow here.
    #[error("unexpected {found}, expected {expected}")]
    UnexpectedToken {
        /// The token found, as written.
        found: String,
        /// What would have been valid, in words.
        expected: &'static str,
    },
    /// The formula ends where more was expected.
    #[error("unexpected end of formula, expected {expected}")]
    UnexpectedEnd {
        /// What would have been valid, in words.
        expected: &'static str,
    },
    /// A bare word that is not `TRUE`/`FALSE` and is not called like a function.
    #[error("unknown identifier {name}: field names must be wrapped in braces, like {{{name}}}")]
    BareIdentifier {
        /// The word.
        name: String,
    },
    /// A call of a function the engine does not know.
    #[error("unknown function {name}")]
    UnknownFunction {
        /// The name as written.
        name: String,
    },
    /// A call with too few or too many arguments.
    #[error("wrong number of arguments for {function}: expected {expected}, got {found}")]
    WrongArgumentCount {
        /// The function's canonical name.
        function: &'static str,
        /// The accepted counts, e.g. `1`, `2..3` or `at least 1`.
        expected: String,
        /// How many were given.
        found: usize,
    },
    /// References to fields the table does not have (see [`crate::formula::check`]).
    #[error("Unknown field names: {}", names.join(", "))]
    UnknownFieldNames {
        /// The unknown names, in order of first appearance, without duplicates.
        names: Vec<String>,
    },
}

/// A formula that cannot be parsed or does not fit its table, with the position of the problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{kind} at line {line}, column {column}")]
pub struct FormulaError {
    /// What is wrong.
    pub kind: FormulaErrorKind,
    /// Byte offset into the formula text where the problem starts.
    pub offset: usize,
    /// 1-based line of `offset`.
    pub line: usize,
    /// 1-based column of `offset`, counted in characters.
    pub column: usize,
}

impl FormulaError {
    /// An error of `kind` at byte `offset` of `source`; line and column are derived from it.
    #[must_use]
    pub fn at(kind: FormulaErrorKind, source: &str, offset: usize) -> Self {
        let offset = offset.min(source.len());
        let mut line = 1;
        let mut column = 1;
        for (i, c) in source.char_indices() {
            if i >= offset {
                break;
            }
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        Self {
            kind,
            offset,
            line,
            column,
        }
    }

    /// An error that belongs to no single position (unknown field names): offset 0, line 1,
    /// column 1. Its message has no position either.
    #[must_use]
    pub fn without_position(kind: FormulaErrorKind) -> Self {
        Self {
            kind,
            offset: 0,
            line: 1,
            column: 1,
        }
    }

    /// The message without the position, e.g. `Unknown field names: x, y`, for an API answer
    /// such as Airtable's `The formula for filtering records is invalid: ...`.
    #[must_use]
    pub fn message(&self) -> String {
        match &self.kind {
            FormulaErrorKind::UnknownFieldNames { .. } | FormulaErrorKind::Empty => {
                self.kind.to_string()
            }
            _ => self.to_string(),
        }
    }
}
