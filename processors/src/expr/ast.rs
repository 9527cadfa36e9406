//! The syntax tree of filter expressions.

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==` or `=`
    Eq,
    /// `!=` or `<>`
    Ne,
}

/// A constant.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number.
    Number(f64),
    /// A quoted string.
    Str(String),
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A field, as its dotted path.
    Field(Vec<String>),
    /// A constant.
    Literal(Literal),
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Any of the operands is true.
    Or(Vec<Expr>),
    /// All of the operands are true.
    And(Vec<Expr>),
    /// Negation.
    Not(Box<Expr>),
    /// `left op right`.
    Compare {
        /// Left side.
        left: Operand,
        /// Operator.
        op: CompareOp,
        /// Right side.
        right: Operand,
    },
    /// `operand is null` (or `is not null` when `negated`).
    IsNull {
        /// What is tested.
        operand: Operand,
        /// `is not null`.
        negated: bool,
    },
    /// A bare operand used as a condition (a boolean field or `true`).
    Truth(Operand),
}
