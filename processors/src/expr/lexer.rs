//! Tokens of the expression language, each with its 1-based column.

use super::ast::CompareOp;
use super::ExprError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Number(f64),
    Str(String),
    LParen,
    RParen,
    Cmp(CompareOp),
    And,
    Or,
    Not,
    Is,
    Null,
    True,
    False,
    End,
}

impl Tok {
    pub(super) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("field {s:?}"),
            Tok::Number(n) => format!("number {n}"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::LParen => "'('".to_owned(),
            Tok::RParen => "')'".to_owned(),
            Tok::Cmp(op) => format!("operator {op:?}"),
            Tok::And => "'and'".to_owned(),
            Tok::Or => "'or'".to_owned(),
            Tok::Not => "'not'".to_owned(),
            Tok::Is => "'is'".to_owned(),
            Tok::Null => "'null'".to_owned(),
            Tok::True => "'true'".to_owned(),
            Tok::False => "'false'".to_owned(),
            Tok::End => "the end of the expression".to_owned(),
        }
    }
}

/// A token and its 1-based column.
pub(super) type Spanned = (Tok, usize);

fn err(column: usize, message: impl Into<String>) -> ExprError {
    ExprError {
        column,
        message: message.into(),
    }
}

pub(super) fn tokenize(src: &str) -> Result<Vec<Spanned>, ExprError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((Tok::LParen, col));
                i += 1;
            }
            ')' => {
                out.push((Tok::RParen, col));
                i += 1;
            }
            '<' | '>' | '=' | '!' => {
                let (tok, len) = match (c, next) {
                    ('<', Some('=')) => (Tok::Cmp(CompareOp::Le), 2),
                    ('<', Some('>')) => (Tok::Cmp(CompareOp::Ne), 2),
                    ('<', _) => (Tok::Cmp(CompareOp::Lt), 1),
                    ('>', Some('=')) => (Tok::Cmp(CompareOp::Ge), 2),
                    ('>', _) => (Tok::Cmp(CompareOp::Gt), 1),
                    ('=', Some('=')) => (Tok::Cmp(CompareOp::Eq), 2),
                    ('=', _) => (Tok::Cmp(CompareOp::Eq), 1),
                    ('!', Some('=')) => (Tok::Cmp(CompareOp::Ne), 2),
                    _ => (Tok::Not, 1),
                };
                out.push((tok, col));
                i += len;
            }
            '&' | '|' => {
                if next != Some(c) {
                    return Err(err(col, format!("'{c}' must be doubled ('{c}{c}')")));
                }
                out.push((if c == '&' { Tok::And } else { Tok::Or }, col));
                i += 2;
            }
            '\'' | '"' => {
                let mut s = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => return Err(err(col, "unterminated string")),
                        Some('\\') if matches!(chars.get(j + 1), Some(&q) if q == c || q == '\\') =>
                        {
                            s.push(chars[j + 1]);
                            j += 2;
                        }
                        Some(&q) if q == c => break,
                        Some(&other) => {
                            s.push(other);
                            j += 1;
                        }
                    }
                }
                out.push((Tok::Str(s), col));
                i = j + 1;
            }
            c if c.is_ascii_digit()
                || (c == '.' && next.is_some_and(|n| n.is_ascii_digit()))
                || ((c == '-' || c == '+')
                    && next.is_some_and(|n| n.is_ascii_digit() || n == '.')) =>
            {
                let mut j = i + 1;
                while j < chars.len() {
                    let d = chars[j];
                    let exp_sign = (d == '-' || d == '+') && matches!(chars[j - 1], 'e' | 'E');
                    if d.is_ascii_alphanumeric() || d == '.' || exp_sign {
                        j += 1;
                    } else {
                        break;
                    }
                }
                let text: String = chars[i..j].iter().collect();
                let n: f64 = text
                    .parse()
                    .map_err(|_| err(col, format!("{text:?} is not a number")))?;
                out.push((Tok::Number(n), col));
                i = j;
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut j = i + 1;
                while j < chars.len()
                    && (chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == '.')
                {
                    j += 1;
                }
                let word: String = chars[i..j].iter().collect();
                if word.ends_with('.') || word.contains("..") {
                    return Err(err(col, format!("{word:?} is not a valid field path")));
                }
                let tok = match word.to_ascii_lowercase().as_str() {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    "is" => Tok::Is,
                    "null" => Tok::Null,
                    "true" => Tok::True,
                    "false" => Tok::False,
                    _ => Tok::Ident(word),
                };
                out.push((tok, col));
                i = j;
            }
            other => return Err(err(col, format!("unexpected character {other:?}"))),
        }
    }
    out.push((Tok::End, chars.len() + 1));
    Ok(out)
}
