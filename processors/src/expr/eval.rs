//! Evaluation with three-valued logic.
//!
//! A field is looked up in the record first; if the record has no such
//! field, these common names work for every alert family:
//!
//! | name | value |
//! | --- | --- |
//! | `alert_id` | ZTF `candid` / Rubin `diaSourceId` |
//! | `object_id` | ZTF `objectId` / Rubin `diaObjectId` |
//! | `ra`, `dec` | position, degrees |
//! | `mjd` | observation time, MJD |
//! | `magnitude`, `magnitude_err` | PSF magnitude and error |
//! | `band` | `g`, `r`, ... |
//! | `real_bogus` | ZTF `drb`/`rb`, Rubin `reliability` |
//! | `solar_system` | the associated object's name, or null |
//! | `is_solar_system` | true when associated |
//! | `n_previous` | number of previous detections |
//! | `family` | `"ZTF"` or `"Rubin"` |
//!
//! A field that exists nowhere is null. Note that ZTF's `ssnamenr` holds
//! the *string* `"null"` when there is no association: test
//! `solar_system is null`, not `ssnamenr is null`.

use std::borrow::Cow;
use std::cmp::Ordering;

use apache_avro::types::Value;

use super::ast::{CompareOp, Expr, Literal, Operand};
use crate::candidate::{Candidate, ObjectId};

/// A resolved operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    /// Null or missing.
    Null,
    /// Boolean.
    Bool(bool),
    /// Any number.
    Num(f64),
    /// String or enum symbol.
    Str(Cow<'a, str>),
    /// A record, array, map or bytes: not comparable.
    Other,
}

fn from_value(v: &Value) -> Scalar<'_> {
    match crate::avro_value::unwrap_union(v) {
        Value::Null => Scalar::Null,
        Value::Boolean(b) => Scalar::Bool(*b),
        Value::String(s) | Value::Enum(_, s) => Scalar::Str(Cow::Borrowed(s)),
        Value::TimestampMillis(n)
        | Value::TimestampMicros(n)
        | Value::TimestampNanos(n)
        | Value::LocalTimestampMillis(n)
        | Value::LocalTimestampMicros(n)
        | Value::LocalTimestampNanos(n)
        | Value::TimeMicros(n) =>
        {
            #[allow(clippy::cast_precision_loss)]
            Scalar::Num(*n as f64)
        }
        Value::Date(n) | Value::TimeMillis(n) => Scalar::Num(f64::from(*n)),
        other => crate::avro_value::as_f64(other).map_or(Scalar::Other, Scalar::Num),
    }
}

fn opt_num(v: Option<f64>) -> Scalar<'static> {
    v.map_or(Scalar::Null, Scalar::Num)
}

/// The common names of the table above.
fn common_field<'a>(c: &'a Candidate, name: &str) -> Scalar<'a> {
    #[allow(clippy::cast_precision_loss)]
    match name {
        "alert_id" => Scalar::Num(c.alert_id() as f64),
        "object_id" => match c.object_id() {
            Some(ObjectId::Ztf(s)) => Scalar::Str(Cow::Borrowed(s)),
            Some(ObjectId::Rubin(i)) => Scalar::Num(*i as f64),
            None => Scalar::Null,
        },
        "ra" => Scalar::Num(c.ra()),
        "dec" => Scalar::Num(c.dec()),
        "mjd" => opt_num(c.mjd()),
        "magnitude" => opt_num(c.magnitude()),
        "magnitude_err" => opt_num(c.magnitude_err()),
        "band" => c
            .band()
            .map_or(Scalar::Null, |b| Scalar::Str(Cow::Borrowed(b))),
        "real_bogus" => opt_num(c.real_bogus()),
        "solar_system" => c
            .solar_system()
            .and_then(|s| s.name.as_deref())
            .map_or(Scalar::Null, |n| Scalar::Str(Cow::Borrowed(n))),
        "is_solar_system" => Scalar::Bool(c.is_solar_system()),
        "n_previous" => Scalar::Num(c.previous_detection_count() as f64),
        "family" => Scalar::Str(Cow::Owned(c.family().to_string())),
        _ => Scalar::Null,
    }
}

/// Resolves an operand against a candidate.
#[must_use]
pub fn resolve<'a>(operand: &'a Operand, c: &'a Candidate) -> Scalar<'a> {
    match operand {
        Operand::Literal(Literal::Null) => Scalar::Null,
        Operand::Literal(Literal::Bool(b)) => Scalar::Bool(*b),
        Operand::Literal(Literal::Number(n)) => Scalar::Num(*n),
        Operand::Literal(Literal::Str(s)) => Scalar::Str(Cow::Borrowed(s)),
        Operand::Field(path) => match c.lookup(path) {
            Some(v) => from_value(v),
            None if path.len() == 1 => common_field(c, &path[0]),
            None => Scalar::Null,
        },
    }
}

fn compare(left: &Scalar<'_>, op: CompareOp, right: &Scalar<'_>) -> Option<bool> {
    let ord: Ordering = match (left, right) {
        (Scalar::Num(a), Scalar::Num(b)) => a.partial_cmp(b)?,
        (Scalar::Str(a), Scalar::Str(b)) => a.as_ref().cmp(b.as_ref()),
        (Scalar::Bool(a), Scalar::Bool(b)) => {
            return match op {
                CompareOp::Eq => Some(a == b),
                CompareOp::Ne => Some(a != b),
                _ => None,
            }
        }
        _ => return None,
    };
    Some(match op {
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
    })
}

/// Evaluates `expr`: `Some(true)`, `Some(false)` or `None` (unknown).
#[must_use]
pub fn evaluate(expr: &Expr, c: &Candidate) -> Option<bool> {
    match expr {
        Expr::Or(items) => {
            let mut unknown = false;
            for e in items {
                match evaluate(e, c) {
                    Some(true) => return Some(true),
                    None => unknown = true,
                    Some(false) => {}
                }
            }
            if unknown {
                None
            } else {
                Some(false)
            }
        }
        Expr::And(items) => {
            let mut unknown = false;
            for e in items {
                match evaluate(e, c) {
                    Some(false) => return Some(false),
                    None => unknown = true,
                    Some(true) => {}
                }
            }
            if unknown {
                None
            } else {
                Some(true)
            }
        }
        Expr::Not(e) => evaluate(e, c).map(|b| !b),
        Expr::Compare { left, op, right } => compare(&resolve(left, c), *op, &resolve(right, c)),
        Expr::IsNull { operand, negated } => {
            Some((resolve(operand, c) == Scalar::Null) != *negated)
        }
        Expr::Truth(operand) => match resolve(operand, c) {
            Scalar::Bool(b) => Some(b),
            _ => None,
        },
    }
}
