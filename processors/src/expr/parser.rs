//! Recursive-descent parser: `or` binds loosest, then `and`, then `not`.

use super::ast::{Expr, Literal, Operand};
use super::lexer::{Spanned, Tok};
use super::ExprError;

/// Deepest nesting of parentheses and `not`s accepted (bounds recursion).
const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    tokens: &'a [Spanned],
    pos: usize,
    depth: usize,
}

pub(super) fn parse(tokens: &[Spanned]) -> Result<Expr, ExprError> {
    let mut p = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let e = p.or()?;
    let (tok, col) = p.peek();
    if *tok != Tok::End {
        return Err(ExprError {
            column: col,
            message: format!("expected 'and', 'or' or the end, found {}", tok.describe()),
        });
    }
    Ok(e)
}

impl Parser<'_> {
    fn peek(&self) -> (&Tok, usize) {
        let (t, c) = &self.tokens[self.pos.min(self.tokens.len() - 1)];
        (t, *c)
    }

    fn bump(&mut self) -> (Tok, usize) {
        let (t, c) = self.peek();
        let out = (t.clone(), c);
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        out
    }

    fn error<T>(&self, message: String) -> Result<T, ExprError> {
        Err(ExprError {
            column: self.peek().1,
            message,
        })
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut items = vec![self.and()?];
        while *self.peek().0 == Tok::Or {
            self.bump();
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut items = vec![self.unary()?];
        while *self.peek().0 == Tok::And {
            self.bump();
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, ExprError>,
    ) -> Result<T, ExprError> {
        if self.depth >= MAX_DEPTH {
            return self.error(format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        match self.peek().0 {
            Tok::Not => {
                self.bump();
                self.nested(|p| Ok(Expr::Not(Box::new(p.unary()?))))
            }
            Tok::LParen => {
                self.bump();
                let e = self.nested(Self::or)?;
                if *self.peek().0 != Tok::RParen {
                    return self.error(format!("expected ')', found {}", self.peek().0.describe()));
                }
                self.bump();
                Ok(e)
            }
            _ => self.comparison(),
        }
    }

    fn operand(&mut self) -> Result<Operand, ExprError> {
        let (tok, col) = self.bump();
        Ok(match tok {
            Tok::Ident(name) => Operand::Field(name.split('.').map(str::to_owned).collect()),
            Tok::Number(n) => Operand::Literal(Literal::Number(n)),
            Tok::Str(s) => Operand::Literal(Literal::Str(s)),
            Tok::True => Operand::Literal(Literal::Bool(true)),
            Tok::False => Operand::Literal(Literal::Bool(false)),
            Tok::Null => Operand::Literal(Literal::Null),
            other => {
                return Err(ExprError {
                    column: col,
                    message: format!(
                        "expected a field name or a value, found {}",
                        other.describe()
                    ),
                })
            }
        })
    }

    fn comparison(&mut self) -> Result<Expr, ExprError> {
        let left = self.operand()?;
        match self.peek().0.clone() {
            Tok::Cmp(op) => {
                self.bump();
                let right = self.operand()?;
                Ok(Expr::Compare { left, op, right })
            }
            Tok::Is => {
                self.bump();
                let negated = *self.peek().0 == Tok::Not;
                if negated {
                    self.bump();
                }
                if *self.peek().0 != Tok::Null {
                    return self.error(format!(
                        "expected 'null' after 'is{}', found {}",
                        if negated { " not" } else { "" },
                        self.peek().0.describe()
                    ));
                }
                self.bump();
                Ok(Expr::IsNull {
                    operand: left,
                    negated,
                })
            }
            _ => Ok(Expr::Truth(left)),
        }
    }
}
