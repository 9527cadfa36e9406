//! The filter expression language of `ExpressionFilter`.
//!
//! ```text
//! magpsf < 18 and drb > 0.9
//! (band == 'g' or band == "r") && not (ssnamenr is not null)
//! candidate.isdiffpos = 't' and diaSource.reliability is null
//! ```
//!
//! Comparisons (`< <= > >= == = != <>`), `and`/`&&`, `or`/`||`,
//! `not`/`!`, parentheses, and `is [not] null`, over numbers, quoted
//! strings, `true`/`false`/`null` and field names. Field names are dotted
//! paths looked up by [`Candidate::lookup`] (top level, then inside the
//! detection record), then the common names of every alert (`mjd`,
//! `magnitude`, `band`, ...; see [`eval`]). Logic is SQL's three-valued
//! one: a comparison with a null or missing field, or between a number
//! and a string, is *unknown*, and an unknown result skips the alert.
//!
//! Syntax errors are found when the pipeline is loaded and name the
//! 1-based column of the fault.
//!
//! [`Candidate::lookup`]: crate::candidate::Candidate::lookup

pub mod ast;
pub mod eval;
mod lexer;
mod parser;

pub use ast::{CompareOp, Expr, Literal, Operand};

use crate::candidate::Candidate;

/// A syntax error, with the 1-based column (in characters) where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ExprError {
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    source: String,
    root: Expr,
}

impl Expression {
    /// Parses `source`.
    ///
    /// # Errors
    /// [`ExprError`] with the column of the fault.
    pub fn parse(source: &str) -> Result<Self, ExprError> {
        let tokens = lexer::tokenize(source)?;
        let root = parser::parse(&tokens)?;
        Ok(Expression {
            source: source.to_owned(),
            root,
        })
    }

    /// The text it was parsed from.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The syntax tree.
    #[must_use]
    pub fn root(&self) -> &Expr {
        &self.root
    }

    /// Evaluates against a candidate: `Some(true)`, `Some(false)`, or `None` (unknown).
    #[must_use]
    pub fn evaluate(&self, candidate: &Candidate) -> Option<bool> {
        eval::evaluate(&self.root, candidate)
    }

    /// True only when the expression is definitely true.
    #[must_use]
    pub fn matches(&self, candidate: &Candidate) -> bool {
        self.evaluate(candidate) == Some(true)
    }
}
