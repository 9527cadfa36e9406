//! Small, allocation-free helpers over `apache_avro::types::Value`.
//!
//! Alert schemas wrap most fields in unions (`["null", T]` in the official
//! schemas, `[T, "null"]` in Spark-rewritten ones), so every lookup here sees
//! through unions first. Keeping these helpers in one place means the
//! per-family accessors (`candidate::ztf`, `candidate::rubin`) read like the
//! field lists they implement.

use apache_avro::types::Value;

/// The value inside any number of union wrappers.
#[must_use]
pub fn unwrap_union(value: &Value) -> &Value {
    let mut v = value;
    while let Value::Union(_, inner) = v {
        v = inner;
    }
    v
}

/// True for an Avro null (also inside a union).
#[must_use]
pub fn is_null(value: &Value) -> bool {
    matches!(unwrap_union(value), Value::Null)
}

/// The fields of a record (seen through unions), or `None` if it is not one.
#[must_use]
pub fn record_fields(value: &Value) -> Option<&[(String, Value)]> {
    match unwrap_union(value) {
        Value::Record(fields) => Some(fields),
        _ => None,
    }
}

/// The named field of a record, seen through unions; `None` when the value is
/// not a record, the field does not exist, or the field holds null.
#[must_use]
pub fn field<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    let fields = record_fields(value)?;
    let (_, v) = fields.iter().find(|(n, _)| n == name)?;
    let v = unwrap_union(v);
    if matches!(v, Value::Null) {
        None
    } else {
        Some(v)
    }
}

/// Like [`field`] but distinguishes "absent from the schema" (`None`) from
/// "present and null" (`Some(&Value::Null)`).
#[must_use]
pub fn field_raw<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    let fields = record_fields(value)?;
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| unwrap_union(v))
}

/// Follows a dotted path of record field names from `value`.
#[must_use]
pub fn path<'a, S: AsRef<str>>(value: &'a Value, segments: &[S]) -> Option<&'a Value> {
    let mut v = unwrap_union(value);
    for s in segments {
        v = field_raw(v, s.as_ref())?;
    }
    Some(v)
}

/// A numeric value as `f64` (int, long, float, double); `None` otherwise.
#[must_use]
pub fn as_f64(value: &Value) -> Option<f64> {
    match unwrap_union(value) {
        Value::Int(i) => Some(f64::from(*i)),
        // Precision loss above 2^53 is accepted: this is for comparisons
        // and coordinates, ids go through `as_i64`.
        #[allow(clippy::cast_precision_loss)]
        Value::Long(i) => Some(*i as f64),
        Value::Float(f) => Some(f64::from(*f)),
        Value::Double(f) => Some(*f),
        _ => None,
    }
}

/// An integral value as `i64` (int or long); `None` otherwise.
#[must_use]
pub fn as_i64(value: &Value) -> Option<i64> {
    match unwrap_union(value) {
        Value::Int(i) => Some(i64::from(*i)),
        Value::Long(i) => Some(*i),
        _ => None,
    }
}

/// A string (or enum symbol) value.
#[must_use]
pub fn as_str(value: &Value) -> Option<&str> {
    match unwrap_union(value) {
        Value::String(s) | Value::Enum(_, s) => Some(s),
        _ => None,
    }
}

/// Bytes (or fixed) content.
#[must_use]
pub fn as_bytes(value: &Value) -> Option<&[u8]> {
    match unwrap_union(value) {
        Value::Bytes(b) | Value::Fixed(_, b) => Some(b),
        _ => None,
    }
}

/// The items of an array value.
#[must_use]
pub fn as_array(value: &Value) -> Option<&[Value]> {
    match unwrap_union(value) {
        Value::Array(items) => Some(items),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(fields: Vec<(&str, Value)>) -> Value {
        Value::Record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    #[test]
    fn field_sees_through_unions_and_treats_null_as_absent() {
        let v = Value::Union(
            0,
            Box::new(rec(vec![
                ("a", Value::Union(1, Box::new(Value::Double(1.5)))),
                ("b", Value::Union(0, Box::new(Value::Null))),
            ])),
        );
        assert_eq!(field(&v, "a").and_then(as_f64), Some(1.5));
        assert!(field(&v, "b").is_none());
        assert_eq!(field_raw(&v, "b"), Some(&Value::Null));
        assert!(field_raw(&v, "c").is_none());
        assert!(field(&Value::Long(3), "a").is_none());
    }

    #[test]
    fn path_follows_nested_records() {
        let v = rec(vec![("x", rec(vec![("y", Value::Long(7))]))]);
        assert_eq!(path(&v, &["x", "y"]).and_then(as_i64), Some(7));
        assert!(path(&v, &["x", "z"]).is_none());
        assert!(path(&v, &["x", "y", "w"]).is_none());
    }

    #[test]
    fn scalar_conversions_reject_other_types() {
        assert_eq!(as_f64(&Value::Int(2)), Some(2.0));
        assert_eq!(as_f64(&Value::Float(0.5)), Some(0.5));
        assert_eq!(as_f64(&Value::String("1".into())), None);
        assert_eq!(as_i64(&Value::Double(1.0)), None);
        assert_eq!(as_str(&Value::Enum(0, "g".into())), Some("g"));
        assert_eq!(as_bytes(&Value::Fixed(2, vec![1, 2])), Some(&[1u8, 2][..]));
        assert_eq!(as_array(&Value::Null), None);
    }
}
