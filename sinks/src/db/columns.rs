//! The column mapping shared by the database writers: which field of an
//! alert goes to which column, with which SQL type, and the row values.
//!
//! A column is a name, a dotted field path and a type. Paths are looked up
//! like [`Candidate::lookup`]: from the top of the alert (`objectId`,
//! `candidate.magpsf`), then inside the detection record (`magpsf`,
//! `psfFlux`); `alert_id` and `object_id` name the candidate's ids when the
//! alert has no field of that name. A type left out is taken from the
//! alert's Avro schema when the first alert arrives.
//!
//! With no `columns:` the mapping is the survey's default, taken from the
//! first alert: ZTF `objectId` and every scalar field of `candidate`
//! (key `candid`); Rubin every scalar field of `diaSource` (key
//! `diaSourceId`).

use std::collections::HashMap;
use std::fmt;

use apache_avro::schema::{Name, ResolvedSchema};
use apache_avro::types::Value;
use apache_avro::Schema;
use serde_yaml::Value as Yaml;
use starlog_processors::avro_value::unwrap_union;
use starlog_processors::config::params::{describe, expected};
use starlog_processors::config::{ConfigError, Params};
use starlog_processors::{AlertFamily, Candidate, ObjectId};

/// The SQL types a column can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SqlType {
    /// 64-bit integer.
    BigInt,
    /// 32-bit integer.
    Integer,
    /// 64-bit float.
    Double,
    /// 32-bit float.
    Real,
    /// Text.
    Text,
    /// Boolean.
    Boolean,
    /// Binary.
    Bytes,
}

impl SqlType {
    const NAMES: [&'static str; 7] = [
        "bigint", "integer", "double", "real", "text", "boolean", "bytes",
    ];

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "bigint" => Self::BigInt,
            "integer" => Self::Integer,
            "double" => Self::Double,
            "real" => Self::Real,
            "text" => Self::Text,
            "boolean" => Self::Boolean,
            "bytes" => Self::Bytes,
            _ => return None,
        })
    }

    /// The type of an Avro scalar schema (unions seen through), if scalar.
    fn of_schema(schema: &Schema, names: &HashMap<Name, &Schema>) -> Option<Self> {
        match schema {
            Schema::Boolean => Some(Self::Boolean),
            Schema::Int | Schema::Date | Schema::TimeMillis => Some(Self::Integer),
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Some(Self::BigInt),
            Schema::Float => Some(Self::Real),
            Schema::Double => Some(Self::Double),
            Schema::String | Schema::Enum(_) | Schema::Uuid(_) => Some(Self::Text),
            Schema::Bytes | Schema::Fixed(_) => Some(Self::Bytes),
            Schema::Union(u) => {
                let mut non_null = u.variants().iter().filter(|v| **v != Schema::Null);
                let first = non_null.next()?;
                if non_null.next().is_some() {
                    return None;
                }
                Self::of_schema(first, names)
            }
            Schema::Ref { name } => names.get(name).and_then(|s| Self::of_schema(s, names)),
            _ => None,
        }
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BigInt => "bigint",
            Self::Integer => "integer",
            Self::Double => "double",
            Self::Real => "real",
            Self::Text => "text",
            Self::Boolean => "boolean",
            Self::Bytes => "bytes",
        })
    }
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SqlValue {
    /// SQL NULL.
    Null,
    /// An integer (bigint or integer columns).
    Int(i64),
    /// A float (double or real columns).
    Float(f64),
    /// Text.
    Text(String),
    /// A boolean.
    Bool(bool),
    /// Binary.
    Bytes(Vec<u8>),
}

impl SqlValue {
    /// The value as JSON (for dead letters).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Null => serde_json::Value::Null,
            Self::Int(i) => (*i).into(),
            Self::Float(f) => serde_json::Number::from_f64(*f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Self::Text(s) => s.clone().into(),
            Self::Bool(b) => (*b).into(),
            Self::Bytes(b) => format!("<{} bytes>", b.len()).into(),
        }
    }
}

/// A column as configured (type possibly still unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColumnSpec {
    pub name: String,
    pub path: Vec<String>,
    pub ty: Option<SqlType>,
}

/// The mapping as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mapping {
    /// The survey's default, from the first alert.
    Default,
    /// Explicit columns.
    Columns(Vec<ColumnSpec>),
}

/// A column with its type settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub name: String,
    pub path: Vec<String>,
    pub ty: SqlType,
}

/// The table's layout, settled at the first alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Table name, possibly `schema.table`.
    pub table: String,
    pub columns: Vec<Column>,
    /// Index of the key column.
    pub key: usize,
    /// True when the mapping is the default one (columns the table lacks are dropped).
    pub default_mapping: bool,
}

/// True for a plain SQL identifier: a letter or `_`, then letters, digits, `_`; at most 63 bytes.
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 63
}

/// A table name: an identifier or `schema.table`.
pub(crate) fn is_table_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() <= 2 && parts.iter().all(|p| is_identifier(p))
}

/// Parses `columns:`: a list of field paths (`candidate.magpsf`, column
/// `magpsf`) or mappings `{ name, path, type }`.
pub(crate) fn parse_columns(p: &mut Params<'_>) -> Result<Mapping, ConfigError> {
    let path = p.path_of("columns");
    let Some(node) = p.get("columns") else {
        return Ok(Mapping::Default);
    };
    let Yaml::Sequence(items) = node else {
        return Err(expected(&path, "a list of columns", node));
    };
    if items.is_empty() {
        return Err(p.error(
            "columns",
            "expected at least one column, found an empty list",
        ));
    }
    let mut columns: Vec<ColumnSpec> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let col = match item {
            Yaml::String(s) => {
                let segments = split_path(s).ok_or_else(|| ConfigError::Invalid {
                    path: item_path.clone(),
                    message: format!("expected a dotted field path, found {s:?}"),
                })?;
                let name = segments.last().cloned().unwrap_or_default();
                ColumnSpec {
                    name,
                    path: segments,
                    ty: None,
                }
            }
            Yaml::Mapping(_) => {
                let mut m = Params::new(item_path.clone(), Some(item), p.base_dir())?;
                let field = m.required_str("path", "a dotted field path")?;
                let segments = split_path(&field).ok_or_else(|| {
                    m.error(
                        "path",
                        format!("expected a dotted field path, found {field:?}"),
                    )
                })?;
                let name = m
                    .optional_str("name", "a column name")?
                    .unwrap_or_else(|| segments.last().cloned().unwrap_or_default());
                let ty = match m.get("type") {
                    None => None,
                    Some(Yaml::String(t)) => Some(SqlType::parse(t).ok_or_else(|| {
                        m.error(
                            "type",
                            format!("expected one of {}, found {t:?}", SqlType::NAMES.join(", ")),
                        )
                    })?),
                    Some(other) => {
                        return Err(m.error(
                            "type",
                            format!(
                                "expected one of {}, found {}",
                                SqlType::NAMES.join(", "),
                                describe(other)
                            ),
                        ))
                    }
                };
                m.finish()?;
                ColumnSpec {
                    name,
                    path: segments,
                    ty,
                }
            }
            other => {
                return Err(expected(
                    &item_path,
                    "a field path or a mapping { name, path, type }",
                    other,
                ))
            }
        };
        if !is_identifier(&col.name) {
            return Err(ConfigError::Invalid {
                path: item_path,
                message: format!(
                    "column name {:?} is not a plain SQL identifier (letters, digits, _; at most 63)",
                    col.name
                ),
            });
        }
        if columns
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(&col.name))
        {
            return Err(ConfigError::Invalid {
                path: item_path,
                message: format!("column {:?} appears twice", col.name),
            });
        }
        columns.push(col);
    }
    Ok(Mapping::Columns(columns))
}

fn split_path(s: &str) -> Option<Vec<String>> {
    let segments: Vec<String> = s.split('.').map(str::to_owned).collect();
    segments.iter().all(|x| !x.is_empty()).then_some(segments)
}

/// The names of the virtual paths.
const ALERT_ID: &str = "alert_id";
const OBJECT_ID: &str = "object_id";

/// Walks `path` through the schema of the alert (top-level first, then the
/// detection record, as [`Candidate::lookup`]) to its scalar type.
fn schema_type(c: &Candidate, path: &[String]) -> Option<SqlType> {
    let schema: &Schema = c.schema();
    let resolved = ResolvedSchema::new(schema).ok()?;
    let names = resolved.get_names();
    let walk = |start: &Schema| -> Option<SqlType> {
        let mut s = start;
        for seg in path {
            s = resolve_record_field(s, seg, names)?;
        }
        SqlType::of_schema(s, names)
    };
    walk(schema).or_else(|| {
        let detection = detection_schema(c, schema, names)?;
        walk(detection)
    })
}

fn resolve<'a>(s: &'a Schema, names: &HashMap<Name, &'a Schema>) -> &'a Schema {
    match s {
        Schema::Ref { name } => names.get(name).copied().unwrap_or(s),
        Schema::Union(u) => {
            let mut non_null = u.variants().iter().filter(|v| **v != Schema::Null);
            match (non_null.next(), non_null.next()) {
                (Some(only), None) => resolve(only, names),
                _ => s,
            }
        }
        other => other,
    }
}

fn resolve_record_field<'a>(
    s: &'a Schema,
    field: &str,
    names: &HashMap<Name, &'a Schema>,
) -> Option<&'a Schema> {
    match resolve(s, names) {
        Schema::Record(r) => r.fields.iter().find(|f| f.name == field).map(|f| &f.schema),
        _ => None,
    }
}

fn detection_schema<'a>(
    c: &Candidate,
    schema: &'a Schema,
    names: &HashMap<Name, &'a Schema>,
) -> Option<&'a Schema> {
    let field = match c.family() {
        AlertFamily::Ztf => "candidate",
        AlertFamily::Rubin => "diaSource",
    };
    resolve_record_field(schema, field, names)
}

/// The default columns for the first alert's survey: ZTF `objectId` and
/// `candidate`'s scalar fields, key `candid`; Rubin `diaSource`'s scalar
/// fields, key `diaSourceId`.
fn default_columns(c: &Candidate) -> (Vec<Column>, String) {
    let schema: &Schema = c.schema();
    let mut columns = Vec::new();
    let key = match c.family() {
        AlertFamily::Ztf => {
            columns.push(Column {
                name: "objectId".to_owned(),
                path: vec!["objectId".to_owned()],
                ty: SqlType::Text,
            });
            "candid"
        }
        AlertFamily::Rubin => "diaSourceId",
    };
    let Ok(resolved) = ResolvedSchema::new(schema) else {
        return (columns, key.to_owned());
    };
    let names = resolved.get_names();
    if let Some(Schema::Record(r)) = detection_schema(c, schema, names).map(|s| resolve(s, names)) {
        let prefix = match c.family() {
            AlertFamily::Ztf => "candidate",
            AlertFamily::Rubin => "diaSource",
        };
        for f in &r.fields {
            let Some(ty) = SqlType::of_schema(&f.schema, names) else {
                continue;
            };
            if !is_identifier(&f.name)
                || columns
                    .iter()
                    .any(|c: &Column| c.name.eq_ignore_ascii_case(&f.name))
            {
                continue;
            }
            columns.push(Column {
                name: f.name.clone(),
                path: vec![prefix.to_owned(), f.name.clone()],
                ty,
            });
        }
    }
    if !columns.iter().any(|c| c.name == key) {
        // The alert id under the survey's name, from the candidate itself.
        columns.insert(
            0,
            Column {
                name: key.to_owned(),
                path: vec![ALERT_ID.to_owned()],
                ty: SqlType::BigInt,
            },
        );
    }
    (columns, key.to_owned())
}

/// Why the layout cannot be settled.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LayoutError {
    /// A column's type is not given and the alert's schema has no scalar there.
    #[error("column {column}: the alert's schema has no scalar field {path}; give its `type`")]
    UnknownType { column: String, path: String },
    /// The key names no column.
    #[error("key {key:?} is not one of the columns ({columns})")]
    UnknownKey { key: String, columns: String },
}

impl Layout {
    /// Settles the layout from the configured mapping and the first alert.
    pub(crate) fn settle(
        table: &str,
        mapping: &Mapping,
        key: Option<&str>,
        first: &Candidate,
    ) -> Result<Self, LayoutError> {
        let (columns, default_key, default_mapping) = match mapping {
            Mapping::Default => {
                let (cols, k) = default_columns(first);
                (cols, k, true)
            }
            Mapping::Columns(specs) => {
                let mut cols = Vec::with_capacity(specs.len() + 1);
                for s in specs {
                    let ty = match s.ty {
                        Some(t) => t,
                        None => virtual_type(first, &s.path)
                            .or_else(|| schema_type(first, &s.path))
                            .ok_or_else(|| LayoutError::UnknownType {
                                column: s.name.clone(),
                                path: s.path.join("."),
                            })?,
                    };
                    cols.push(Column {
                        name: s.name.clone(),
                        path: s.path.clone(),
                        ty,
                    });
                }
                if key.is_none() && !cols.iter().any(|c| c.name == ALERT_ID) {
                    cols.insert(
                        0,
                        Column {
                            name: ALERT_ID.to_owned(),
                            path: vec![ALERT_ID.to_owned()],
                            ty: SqlType::BigInt,
                        },
                    );
                }
                (cols, ALERT_ID.to_owned(), false)
            }
        };
        let key_name = key.map_or(default_key, str::to_owned);
        let key = columns
            .iter()
            .position(|c| c.name == key_name)
            .ok_or_else(|| LayoutError::UnknownKey {
                key: key_name.clone(),
                columns: columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        Ok(Layout {
            table: table.to_owned(),
            columns,
            key,
            default_mapping,
        })
    }

    /// Keeps only the columns the existing table has (default mapping), or
    /// reports the first missing one (explicit mapping).
    pub(crate) fn fit_to(&mut self, existing: &[String]) -> Result<(), String> {
        let has = |name: &str| existing.iter().any(|e| e.eq_ignore_ascii_case(name));
        let key_name = self.columns[self.key].name.clone();
        if !has(&key_name) {
            return Err(format!("table {} has no key column {key_name}", self.table));
        }
        if self.default_mapping {
            let before = self.columns.len();
            self.columns.retain(|c| has(&c.name));
            if self.columns.len() < before {
                tracing::warn!(table = %self.table, dropped = before - self.columns.len(), "the existing table lacks some of the default columns; they are not written");
            }
            self.key = self
                .columns
                .iter()
                .position(|c| c.name == key_name)
                .unwrap_or(0);
            Ok(())
        } else if let Some(missing) = self.columns.iter().find(|c| !has(&c.name)) {
            Err(format!(
                "table {} has no column {}",
                self.table, missing.name
            ))
        } else {
            Ok(())
        }
    }

    /// The row of `c`, or why it cannot be written.
    pub(crate) fn row(&self, c: &Candidate) -> Result<Vec<SqlValue>, String> {
        let mut row = Vec::with_capacity(self.columns.len());
        for (i, col) in self.columns.iter().enumerate() {
            let v = value_of(c, &col.path).map_err(|e| format!("column {}: {e}", col.name))?;
            if i == self.key && v == SqlValue::Null {
                return Err(format!(
                    "key column {} ({}) is missing or null",
                    col.name,
                    col.path.join(".")
                ));
            }
            row.push(convert(v, col.ty).map_err(|e| format!("column {}: {e}", col.name))?);
        }
        Ok(row)
    }

    /// The key column's name.
    pub(crate) fn key_name(&self) -> &str {
        &self.columns[self.key].name
    }
}

fn virtual_type(c: &Candidate, path: &[String]) -> Option<SqlType> {
    if c.lookup(path).is_some() || path.len() != 1 {
        return None;
    }
    match path[0].as_str() {
        ALERT_ID => Some(SqlType::BigInt),
        OBJECT_ID => Some(match c.object_id() {
            Some(ObjectId::Rubin(_)) => SqlType::BigInt,
            _ => SqlType::Text,
        }),
        _ => None,
    }
}

/// The raw value at `path` as a [`SqlValue`] (before conversion to the column type).
fn value_of(c: &Candidate, path: &[String]) -> Result<SqlValue, String> {
    if let Some(v) = c.lookup(path) {
        return avro_scalar(v);
    }
    if path.len() == 1 {
        match path[0].as_str() {
            ALERT_ID => return Ok(SqlValue::Int(c.alert_id())),
            OBJECT_ID => {
                return Ok(match c.object_id() {
                    Some(ObjectId::Ztf(s)) => SqlValue::Text(s.clone()),
                    Some(ObjectId::Rubin(i)) => SqlValue::Int(*i),
                    None => SqlValue::Null,
                })
            }
            _ => {}
        }
    }
    // A field this alert's schema version does not have.
    Ok(SqlValue::Null)
}

fn avro_scalar(v: &Value) -> Result<SqlValue, String> {
    Ok(match unwrap_union(v) {
        Value::Null => SqlValue::Null,
        Value::Boolean(b) => SqlValue::Bool(*b),
        Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => SqlValue::Int(i64::from(*i)),
        Value::Long(i)
        | Value::TimeMicros(i)
        | Value::TimestampMillis(i)
        | Value::TimestampMicros(i)
        | Value::TimestampNanos(i)
        | Value::LocalTimestampMillis(i)
        | Value::LocalTimestampMicros(i)
        | Value::LocalTimestampNanos(i) => SqlValue::Int(*i),
        Value::Float(f) => SqlValue::Float(f64::from(*f)),
        Value::Double(f) => SqlValue::Float(*f),
        Value::String(s) | Value::Enum(_, s) => SqlValue::Text(s.clone()),
        Value::Uuid(u) => SqlValue::Text(u.to_string()),
        Value::Bytes(b) | Value::Fixed(_, b) => SqlValue::Bytes(b.clone()),
        Value::Record(_) => return Err("is a record, not a scalar".to_owned()),
        Value::Array(_) => return Err("is a list, not a scalar".to_owned()),
        Value::Map(_) => return Err("is a map, not a scalar".to_owned()),
        other => return Err(format!("unsupported value {other:?}")),
    })
}

/// Converts a value to the column's type.
fn convert(v: SqlValue, ty: SqlType) -> Result<SqlValue, String> {
    Ok(match (ty, v) {
        (_, SqlValue::Null) => SqlValue::Null,
        (SqlType::BigInt, v @ SqlValue::Int(_)) => v,
        (SqlType::Integer, SqlValue::Int(i)) => {
            if i32::try_from(i).is_err() {
                return Err(format!("{i} does not fit a 32-bit integer"));
            }
            SqlValue::Int(i)
        }
        #[allow(clippy::cast_precision_loss)]
        (SqlType::Double | SqlType::Real, SqlValue::Int(i)) => SqlValue::Float(i as f64),
        (SqlType::Double | SqlType::Real, v @ SqlValue::Float(_)) => v,
        (SqlType::Text, v @ SqlValue::Text(_)) => v,
        (SqlType::Text, SqlValue::Int(i)) => SqlValue::Text(i.to_string()),
        (SqlType::Text, SqlValue::Float(f)) => SqlValue::Text(f.to_string()),
        (SqlType::Text, SqlValue::Bool(b)) => SqlValue::Text(b.to_string()),
        (SqlType::Boolean, v @ SqlValue::Bool(_)) => v,
        (SqlType::Bytes, v @ SqlValue::Bytes(_)) => v,
        (SqlType::Bytes, SqlValue::Text(s)) => SqlValue::Bytes(s.into_bytes()),
        (ty, v) => return Err(format!("cannot store {v:?} in a {ty} column")),
    })
}

#[cfg(test)]
mod tests {
    use super::{convert, is_identifier, is_table_name, SqlType, SqlValue};

    #[test]
    fn identifiers_are_plain() {
        assert!(is_identifier("magpsf") && is_identifier("_x1") && is_identifier("objectId"));
        assert!(!is_identifier("1x") && !is_identifier("a-b") && !is_identifier("a\"b"));
        assert!(!is_identifier(&"a".repeat(64)));
        assert!(
            is_table_name("alerts.ztf") && !is_table_name("a.b.c") && !is_table_name("t; drop")
        );
    }

    #[test]
    fn values_convert_to_the_column_type_or_say_why_not() {
        assert_eq!(
            convert(SqlValue::Int(3), SqlType::Double),
            Ok(SqlValue::Float(3.0))
        );
        assert_eq!(
            convert(SqlValue::Int(7), SqlType::Text),
            Ok(SqlValue::Text("7".into()))
        );
        assert_eq!(convert(SqlValue::Null, SqlType::BigInt), Ok(SqlValue::Null));
        assert!(convert(SqlValue::Int(1 << 40), SqlType::Integer).is_err());
        assert!(convert(SqlValue::Text("x".into()), SqlType::BigInt).is_err());
    }
}
