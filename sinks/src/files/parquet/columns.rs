//! Alert values into Arrow arrays, column by column.
//!
//! A row is first checked against the plan ([`check_row`]): a value of the
//! wrong type, or a null where the column cannot hold one, rejects the
//! whole alert before anything is appended, so the builders never hold half
//! a row. Appending ([`RowBuilders::append`]) then cannot fail.

use std::sync::Arc;

use apache_avro::types::Value;
use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder, Int32Builder,
    Int64Builder, StringBuilder, TimestampMicrosecondBuilder, TimestampMillisecondBuilder,
    TimestampNanosecondBuilder,
};
use arrow_array::{ArrayRef, ListArray, RecordBatch, StructArray};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{ArrowError, Field};
use starlog_processors::avro_value::unwrap_union;

use super::schema::{struct_fields, Child, Column, Kind, Plan, Step};

/// The field `name` of a record value, trying position `index` first.
fn child<'v>(value: &'v Value, name: &str, index: usize) -> Option<&'v Value> {
    match unwrap_union(value) {
        Value::Record(fields) => fields
            .get(index)
            .filter(|(n, _)| n == name)
            .or_else(|| fields.iter().find(|(n, _)| n == name))
            .map(|(_, v)| unwrap_union(v)),
        _ => None,
    }
}

/// The value at `path` from the root; `Null` when a record on the way is null.
fn at_path<'v>(root: &'v Value, path: &[Step]) -> Option<&'v Value> {
    let mut v = unwrap_union(root);
    for step in path {
        if matches!(v, Value::Null) {
            return Some(v);
        }
        v = child(v, &step.name, step.index)?;
    }
    Some(v)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Boolean(_) => "boolean",
        Value::Int(_) => "int",
        Value::Long(_) => "long",
        Value::Float(_) => "float",
        Value::Double(_) => "double",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "string",
        Value::Fixed(..) => "fixed",
        Value::Enum(..) => "enum",
        Value::Union(..) => "union",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        Value::Record(_) => "record",
        _ => "logical type",
    }
}

/// Why a value does not fit its column: the message, and the path to the
/// value (innermost first), built only when a check fails.
struct Misfit {
    message: String,
    path: Vec<String>,
}

impl Misfit {
    fn at(mut self, segment: String) -> Self {
        self.path.push(segment);
        self
    }
}

fn check(kind: &Kind, nullable: bool, v: &Value) -> Result<(), Misfit> {
    let v = unwrap_union(v);
    let misfit = |message: String| Misfit {
        message,
        path: Vec::new(),
    };
    let ok = match (kind, v) {
        (_, Value::Null) => {
            return if nullable {
                Ok(())
            } else {
                Err(misfit("null in a column that cannot be null".to_owned()))
            }
        }
        (Kind::Bool, Value::Boolean(_))
        | (Kind::Int32, Value::Int(_) | Value::TimeMillis(_))
        | (
            Kind::Int64,
            Value::Long(_)
            | Value::TimeMicros(_)
            | Value::LocalTimestampMillis(_)
            | Value::LocalTimestampMicros(_)
            | Value::LocalTimestampNanos(_),
        )
        | (Kind::Float32, Value::Float(_))
        | (Kind::Float64, Value::Double(_))
        | (Kind::Utf8, Value::String(_) | Value::Enum(..) | Value::Uuid(_))
        | (Kind::Binary, Value::Bytes(_) | Value::Fixed(..))
        | (Kind::Date32, Value::Date(_))
        | (Kind::TimestampMillis, Value::TimestampMillis(_))
        | (Kind::TimestampMicros, Value::TimestampMicros(_))
        | (Kind::TimestampNanos, Value::TimestampNanos(_)) => true,
        (Kind::Struct(children), Value::Record(_)) => {
            for c in children {
                let cv = child(v, &c.name, c.index)
                    .ok_or_else(|| misfit(format!("record has no field {}", c.name)))?;
                check(&c.kind, c.nullable, cv).map_err(|m| m.at(format!(".{}", c.name)))?;
            }
            true
        }
        (
            Kind::List {
                item_nullable,
                item,
            },
            Value::Array(items),
        ) => {
            for (i, it) in items.iter().enumerate() {
                check(item, *item_nullable, it).map_err(|m| m.at(format!("[{i}]")))?;
            }
            i32::try_from(items.len()).is_ok()
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(misfit(format!(
            "expected {:?}, found {}",
            kind.data_type(),
            type_name(v)
        )))
    }
}

/// Checks that `root` can be appended as one row of `plan`.
///
/// # Errors
/// Why not (the column and what is wrong), for the dead-letter reason.
pub(crate) fn check_row(plan: &Plan, root: &Value) -> Result<(), String> {
    for c in &plan.columns {
        let v = at_path(root, &c.path)
            .ok_or_else(|| format!("column {}: the alert has no such field", c.name))?;
        check(&c.kind, c.nullable, v).map_err(|m| {
            let inner: String = m.path.iter().rev().map(String::as_str).collect();
            format!("column {}{inner}: {}", c.name, m.message)
        })?;
    }
    Ok(())
}

/// Builders of one column (and its children).
#[derive(Debug)]
enum Builder {
    Bool(BooleanBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Date32(Date32Builder),
    TsMillis(TimestampMillisecondBuilder),
    TsMicros(TimestampMicrosecondBuilder),
    TsNanos(TimestampNanosecondBuilder),
    Struct {
        children: Vec<(Child, Builder)>,
        valid: Vec<bool>,
    },
    List {
        field: Arc<Field>,
        offsets: Vec<i32>,
        valid: Vec<bool>,
        item: Box<Builder>,
    },
}

impl Builder {
    fn new(kind: &Kind) -> Builder {
        match kind {
            Kind::Bool => Builder::Bool(BooleanBuilder::new()),
            Kind::Int32 => Builder::Int32(Int32Builder::new()),
            Kind::Int64 => Builder::Int64(Int64Builder::new()),
            Kind::Float32 => Builder::Float32(Float32Builder::new()),
            Kind::Float64 => Builder::Float64(Float64Builder::new()),
            Kind::Utf8 => Builder::Utf8(StringBuilder::new()),
            Kind::Binary => Builder::Binary(BinaryBuilder::new()),
            Kind::Date32 => Builder::Date32(Date32Builder::new()),
            Kind::TimestampMillis => {
                Builder::TsMillis(TimestampMillisecondBuilder::new().with_timezone("UTC"))
            }
            Kind::TimestampMicros => {
                Builder::TsMicros(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
            Kind::TimestampNanos => {
                Builder::TsNanos(TimestampNanosecondBuilder::new().with_timezone("UTC"))
            }
            Kind::Struct(children) => Builder::Struct {
                children: children
                    .iter()
                    .map(|c| (c.clone(), Builder::new(&c.kind)))
                    .collect(),
                valid: Vec::new(),
            },
            Kind::List {
                item_nullable,
                item,
            } => Builder::List {
                field: Arc::new(Field::new("item", item.data_type(), *item_nullable)),
                offsets: vec![0],
                valid: Vec::new(),
                item: Box::new(Builder::new(item)),
            },
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Bool(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::Float32(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Utf8(b) => b.append_null(),
            Builder::Binary(b) => b.append_null(),
            Builder::Date32(b) => b.append_null(),
            Builder::TsMillis(b) => b.append_null(),
            Builder::TsMicros(b) => b.append_null(),
            Builder::TsNanos(b) => b.append_null(),
            Builder::Struct { children, valid } => {
                for (_, b) in children {
                    b.append_null();
                }
                valid.push(false);
            }
            Builder::List { offsets, valid, .. } => {
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last);
                valid.push(false);
            }
        }
    }

    /// Appends a value that [`check`] accepted (anything else becomes null).
    fn append(&mut self, v: &Value) {
        let v = unwrap_union(v);
        match (self, v) {
            (Builder::Bool(b), Value::Boolean(x)) => b.append_value(*x),
            (Builder::Int32(b), Value::Int(x) | Value::TimeMillis(x)) => b.append_value(*x),
            (
                Builder::Int64(b),
                Value::Long(x)
                | Value::TimeMicros(x)
                | Value::LocalTimestampMillis(x)
                | Value::LocalTimestampMicros(x)
                | Value::LocalTimestampNanos(x),
            ) => b.append_value(*x),
            (Builder::Float32(b), Value::Float(x)) => b.append_value(*x),
            (Builder::Float64(b), Value::Double(x)) => b.append_value(*x),
            (Builder::Utf8(b), Value::String(s) | Value::Enum(_, s)) => b.append_value(s),
            (Builder::Utf8(b), Value::Uuid(u)) => b.append_value(u.hyphenated().to_string()),
            (Builder::Binary(b), Value::Bytes(x) | Value::Fixed(_, x)) => b.append_value(x),
            (Builder::Date32(b), Value::Date(x)) => b.append_value(*x),
            (Builder::TsMillis(b), Value::TimestampMillis(x)) => b.append_value(*x),
            (Builder::TsMicros(b), Value::TimestampMicros(x)) => b.append_value(*x),
            (Builder::TsNanos(b), Value::TimestampNanos(x)) => b.append_value(*x),
            (Builder::Struct { children, valid }, Value::Record(_)) => {
                for (c, b) in children.iter_mut() {
                    match child(v, &c.name, c.index) {
                        Some(cv) => b.append(cv),
                        None => b.append_null(),
                    }
                }
                valid.push(true);
            }
            (
                Builder::List {
                    offsets,
                    valid,
                    item,
                    ..
                },
                Value::Array(items),
            ) => {
                for it in items {
                    item.append(it);
                }
                let last = offsets.last().copied().unwrap_or(0);
                // check() refused arrays longer than i32::MAX.
                offsets.push(last + i32::try_from(items.len()).unwrap_or(0));
                valid.push(true);
            }
            (b, _) => b.append_null(),
        }
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        Ok(match self {
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Int32(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Float32(b) => Arc::new(b.finish()),
            Builder::Float64(b) => Arc::new(b.finish()),
            Builder::Utf8(b) => Arc::new(b.finish()),
            Builder::Binary(b) => Arc::new(b.finish()),
            Builder::Date32(b) => Arc::new(b.finish()),
            Builder::TsMillis(b) => Arc::new(b.finish()),
            Builder::TsMicros(b) => Arc::new(b.finish()),
            Builder::TsNanos(b) => Arc::new(b.finish()),
            Builder::Struct { children, valid } => {
                let kinds: Vec<Child> = children.iter().map(|(c, _)| c.clone()).collect();
                let arrays = children
                    .iter_mut()
                    .map(|(_, b)| b.finish())
                    .collect::<Result<Vec<_>, _>>()?;
                let nulls = nulls(std::mem::take(valid));
                Arc::new(StructArray::try_new(struct_fields(&kinds), arrays, nulls)?)
            }
            Builder::List {
                field,
                offsets,
                valid,
                item,
            } => {
                let values = item.finish()?;
                let offsets = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                let nulls = nulls(std::mem::take(valid));
                Arc::new(ListArray::try_new(
                    Arc::clone(field),
                    offsets,
                    values,
                    nulls,
                )?)
            }
        })
    }
}

fn nulls(valid: Vec<bool>) -> Option<NullBuffer> {
    if valid.iter().all(|v| *v) {
        None
    } else {
        Some(NullBuffer::from(valid))
    }
}

/// The rows of one file not yet handed to the Parquet writer.
#[derive(Debug)]
pub(crate) struct RowBuilders {
    columns: Vec<(Column, Builder)>,
    rows: usize,
}

impl RowBuilders {
    pub(crate) fn new(plan: &Plan) -> Self {
        RowBuilders {
            columns: plan
                .columns
                .iter()
                .map(|c| (c.clone(), Builder::new(&c.kind)))
                .collect(),
            rows: 0,
        }
    }

    /// Rows held.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Appends a row that [`check_row`] accepted for the same plan.
    pub(crate) fn append(&mut self, root: &Value) {
        for (c, b) in &mut self.columns {
            match at_path(root, &c.path) {
                Some(v) => b.append(v),
                None => b.append_null(),
            }
        }
        self.rows += 1;
    }

    /// The rows held as a batch of `plan`'s schema; the builders start over.
    ///
    /// # Errors
    /// Arrow's, when the arrays do not fit the schema (a bug, not bad data).
    pub(crate) fn finish(&mut self, plan: &Plan) -> Result<RecordBatch, ArrowError> {
        let arrays = self
            .columns
            .iter_mut()
            .map(|(_, b)| b.finish())
            .collect::<Result<Vec<_>, _>>()?;
        self.rows = 0;
        RecordBatch::try_new(Arc::clone(&plan.arrow), arrays)
    }
}

#[cfg(test)]
mod tests {
    use apache_avro::Schema;

    use super::*;
    use crate::files::parquet::schema::{plan, ColumnSelection};

    const SCHEMA: &str = r#"{
      "type": "record", "name": "alert",
      "fields": [
        {"name": "alertId", "type": "long"},
        {"name": "diaSource", "type": {"type": "record", "name": "src", "fields": [
            {"name": "flux", "type": ["null", "float"]}]}},
        {"name": "prv", "type": ["null", {"type": "array", "items": "src"}]}
      ]}"#;

    fn rec(fields: Vec<(&str, Value)>) -> Value {
        Value::Record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    fn src(flux: Value) -> Value {
        rec(vec![("flux", Value::Union(1, Box::new(flux)))])
    }

    #[test]
    fn rows_are_checked_then_built_into_a_batch() {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let p = plan(&schema, &ColumnSelection::Default).unwrap();
        let good = rec(vec![
            ("alertId", Value::Long(7)),
            ("diaSource", src(Value::Float(1.5))),
            (
                "prv",
                Value::Union(
                    1,
                    Box::new(Value::Array(vec![src(Value::Float(1.0)), src(Value::Null)])),
                ),
            ),
        ]);
        let no_prv = rec(vec![
            ("alertId", Value::Long(8)),
            ("diaSource", src(Value::Null)),
            ("prv", Value::Union(0, Box::new(Value::Null))),
        ]);
        check_row(&p, &good).unwrap();
        check_row(&p, &no_prv).unwrap();
        let mut b = RowBuilders::new(&p);
        b.append(&good);
        b.append(&no_prv);
        let batch = b.finish(&p).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(
            batch.column(2).null_count(),
            1,
            "the second row has no list"
        );
        assert_eq!(b.rows(), 0, "the builders start over");

        let bad = rec(vec![
            ("alertId", Value::Long(9)),
            ("diaSource", src(Value::Float(1.5))),
            (
                "prv",
                Value::Array(vec![src(Value::Float(1.0)), src(Value::String("x".into()))]),
            ),
        ]);
        let e = check_row(&p, &bad).unwrap_err();
        assert_eq!(e, "column prv[1].flux: expected Float32, found string");
        let e = check_row(&p, &rec(vec![("alertId", Value::Null)])).unwrap_err();
        assert_eq!(e, "column alertId: null in a column that cannot be null");
    }
}
