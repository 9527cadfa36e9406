//! `ExpressionFilter`: passes the alerts for which an expression is true
//! (see [`crate::expr`] for the language). Unknown (null) results skip.

use crate::candidate::Candidate;
use crate::config::{BuildContext, ConfigError, Params, ProcessorSpec};
use crate::expr::Expression;
use crate::processor::{CandidateProcessor, Response};

/// The filter.
#[derive(Debug, Clone)]
pub struct ExpressionFilter {
    expression: Expression,
}

impl ExpressionFilter {
    /// A filter on a parsed expression.
    #[must_use]
    pub fn new(expression: Expression) -> Self {
        ExpressionFilter { expression }
    }

    /// The expression.
    #[must_use]
    pub fn expression(&self) -> &Expression {
        &self.expression
    }
}

impl CandidateProcessor for ExpressionFilter {
    fn process(&mut self, candidate: &mut Candidate) -> Response {
        Response::pass_if(self.expression.matches(candidate))
    }
}

impl ProcessorSpec for ExpressionFilter {
    fn build(
        &self,
        _ctx: &BuildContext,
        _path: &str,
    ) -> Result<Box<dyn CandidateProcessor>, ConfigError> {
        Ok(Box::new(self.clone()))
    }
}

/// Parameters: `expression` (required string). Syntax errors name the column.
///
/// # Errors
/// Missing parameter or a syntax error.
pub fn parse(p: &mut Params<'_>) -> Result<Box<dyn ProcessorSpec>, ConfigError> {
    let text = p.required_str(
        "expression",
        "a filter expression such as \"magpsf < 18 and drb > 0.9\"",
    )?;
    let expression = Expression::parse(&text).map_err(|e| p.error("expression", e.to_string()))?;
    Ok(Box::new(ExpressionFilter::new(expression)))
}
