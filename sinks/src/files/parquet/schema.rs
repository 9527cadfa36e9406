//! From an alert's Avro writer schema to the Arrow schema of its Parquet
//! file: which columns, where each one's value is in the record, and its
//! Arrow type.
//!
//! Avro `["null", T]` unions become nullable `T`; records become structs,
//! arrays lists, enums and strings UTF-8, bytes and fixed binary, the
//! timestamp and date logical types Arrow timestamps and dates. Types with
//! no faithful Arrow form here (maps, unions of several non-null types,
//! decimals, durations) are left out of the default columns and make a
//! chosen column unusable for that schema.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::schema::{Name, RecordSchema, ResolvedSchema};
use apache_avro::Schema;
use arrow_schema::{DataType, Field, Fields, SchemaRef, TimeUnit};

/// Nesting deeper than this is refused (Avro schemas may be recursive).
const MAX_DEPTH: usize = 12;

/// The Arrow form of one Avro type, with what is needed to read its values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Bool,
    Int32,
    Int64,
    Float32,
    Float64,
    /// Strings, enum symbols, UUIDs.
    Utf8,
    /// Bytes and fixed.
    Binary,
    Date32,
    TimestampMillis,
    TimestampMicros,
    TimestampNanos,
    Struct(Vec<Child>),
    List {
        item_nullable: bool,
        item: Box<Kind>,
    },
}

/// A field of a struct kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Child {
    pub name: String,
    /// Position of the field in the Avro record (a hint; names are checked).
    pub index: usize,
    pub nullable: bool,
    pub kind: Kind,
}

impl Kind {
    pub(crate) fn data_type(&self) -> DataType {
        match self {
            Kind::Bool => DataType::Boolean,
            Kind::Int32 => DataType::Int32,
            Kind::Int64 => DataType::Int64,
            Kind::Float32 => DataType::Float32,
            Kind::Float64 => DataType::Float64,
            Kind::Utf8 => DataType::Utf8,
            Kind::Binary => DataType::Binary,
            Kind::Date32 => DataType::Date32,
            Kind::TimestampMillis => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            Kind::TimestampMicros => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::TimestampNanos => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            Kind::Struct(children) => DataType::Struct(struct_fields(children)),
            Kind::List {
                item_nullable,
                item,
            } => DataType::List(Arc::new(Field::new(
                "item",
                item.data_type(),
                *item_nullable,
            ))),
        }
    }
}

pub(crate) fn struct_fields(children: &[Child]) -> Fields {
    children
        .iter()
        .map(|c| Field::new(&c.name, c.kind.data_type(), c.nullable))
        .collect()
}

/// One step of a column's path: a record field by name, at a known position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    pub name: String,
    pub index: usize,
}

/// One output column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Column {
    pub name: String,
    /// From the alert record's root.
    pub path: Vec<Step>,
    pub nullable: bool,
    pub kind: Kind,
}

/// A column the pipeline chose: its name and dotted path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColumnChoice {
    pub name: String,
    pub path: Vec<String>,
}

/// What columns to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ColumnSelection {
    /// The alert's scalar top-level fields (ids), the detection record's
    /// fields, and the top-level arrays of records (previous detections,
    /// forced photometry) as lists of structs.
    Default,
    /// These paths, each looked up from the record's root, else inside the
    /// detection record.
    Chosen(Vec<ColumnChoice>),
}

/// The columns of one writer schema and their Arrow schema.
#[derive(Debug)]
pub(crate) struct Plan {
    pub columns: Vec<Column>,
    pub arrow: SchemaRef,
    /// Full name of the Avro schema (file metadata, messages).
    pub avro_name: String,
}

/// Why a writer schema cannot be written with the chosen columns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PlanError {
    #[error("schema {schema}: not a record")]
    NotARecord { schema: String },
    #[error("schema {schema}: no field {path} (for column {column})")]
    NoSuchField {
        schema: String,
        column: String,
        path: String,
    },
    #[error("schema {schema}: column {column} ({path}) has an Avro type with no Parquet form here: {reason}")]
    Unsupported {
        schema: String,
        column: String,
        path: String,
        reason: String,
    },
    #[error("schema {schema}: {reason}")]
    Resolve { schema: String, reason: String },
    #[error("schema {schema}: no columns to write")]
    Empty { schema: String },
}

struct Resolver<'s> {
    names: HashMap<Name, &'s Schema>,
}

impl<'s> Resolver<'s> {
    /// Follows references to named types.
    fn deref(&self, schema: &'s Schema) -> Result<&'s Schema, String> {
        let mut s = schema;
        for _ in 0..MAX_DEPTH {
            match s {
                Schema::Ref { name } => {
                    s = self
                        .names
                        .get(name)
                        .copied()
                        .ok_or_else(|| format!("unknown named type {name}"))?;
                }
                other => return Ok(other),
            }
        }
        Err("references nested too deep".to_owned())
    }

    /// The non-null type and whether null is allowed.
    fn nullable(&self, schema: &'s Schema) -> Result<(&'s Schema, bool), String> {
        match self.deref(schema)? {
            Schema::Union(u) => {
                let non_null: Vec<&Schema> = u
                    .variants()
                    .iter()
                    .filter(|v| !matches!(v, Schema::Null))
                    .collect();
                match non_null.as_slice() {
                    [one] => Ok((self.deref(one)?, u.is_nullable())),
                    [] => Err("a union of only null".to_owned()),
                    _ => Err("a union of several non-null types".to_owned()),
                }
            }
            other => Ok((other, false)),
        }
    }

    fn kind(&self, schema: &'s Schema, depth: usize) -> Result<Kind, String> {
        if depth > MAX_DEPTH {
            return Err("nested too deep (recursive type?)".to_owned());
        }
        Ok(match self.deref(schema)? {
            Schema::Boolean => Kind::Bool,
            Schema::Int | Schema::TimeMillis => Kind::Int32,
            Schema::Long
            | Schema::TimeMicros
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Kind::Int64,
            Schema::Float => Kind::Float32,
            Schema::Double => Kind::Float64,
            Schema::String | Schema::Enum(_) | Schema::Uuid(_) => Kind::Utf8,
            Schema::Bytes | Schema::Fixed(_) => Kind::Binary,
            Schema::Date => Kind::Date32,
            Schema::TimestampMillis => Kind::TimestampMillis,
            Schema::TimestampMicros => Kind::TimestampMicros,
            Schema::TimestampNanos => Kind::TimestampNanos,
            Schema::Record(r) => {
                let children = self.children(r, depth)?;
                if children.is_empty() {
                    return Err(format!("record {} has no writable fields", r.name));
                }
                Kind::Struct(children)
            }
            Schema::Array(a) => {
                let (item, item_nullable) = self.nullable(&a.items)?;
                Kind::List {
                    item_nullable,
                    item: Box::new(self.kind(item, depth + 1)?),
                }
            }
            Schema::Union(_) => {
                let (inner, _) = self.nullable(schema)?;
                self.kind(inner, depth + 1)?
            }
            Schema::Null => return Err("a field that is always null".to_owned()),
            Schema::Map(_) => return Err("a map".to_owned()),
            Schema::Decimal(_) | Schema::BigDecimal => return Err("a decimal".to_owned()),
            Schema::Duration(_) => return Err("a duration".to_owned()),
            Schema::Ref { name } => return Err(format!("unresolved reference {name}")),
        })
    }

    /// The writable fields of a record (others are left out).
    fn children(&self, r: &'s RecordSchema, depth: usize) -> Result<Vec<Child>, String> {
        let mut out = Vec::with_capacity(r.fields.len());
        for (index, f) in r.fields.iter().enumerate() {
            let Ok((inner, nullable)) = self.nullable(&f.schema) else {
                continue;
            };
            if let Ok(kind) = self.kind(inner, depth + 1) {
                out.push(Child {
                    name: f.name.clone(),
                    index,
                    nullable,
                    kind,
                });
            }
        }
        Ok(out)
    }

    fn record(&self, schema: &'s Schema) -> Option<&'s RecordSchema> {
        match self.nullable(schema).ok()?.0 {
            Schema::Record(r) => Some(r),
            _ => None,
        }
    }

    /// Follows `path` from record `root`: the steps, the final type, and
    /// whether any step can be null.
    fn follow(
        &self,
        root: &'s RecordSchema,
        path: &[String],
    ) -> Option<(Vec<Step>, &'s Schema, bool)> {
        let mut record = root;
        let mut steps = Vec::with_capacity(path.len());
        let mut nullable = false;
        let mut last: Option<&Schema> = None;
        for (i, name) in path.iter().enumerate() {
            let index = *record.lookup.get(name)?;
            let field = record.fields.get(index)?;
            steps.push(Step {
                name: name.clone(),
                index,
            });
            if i + 1 < path.len() {
                let (inner, n) = self.nullable(&field.schema).ok()?;
                nullable |= n;
                match inner {
                    Schema::Record(r) => record = r,
                    _ => return None,
                }
            } else {
                last = Some(&field.schema);
            }
        }
        last.map(|s| (steps, s, nullable))
    }
}

/// The detection record's field in the alert: ZTF `candidate`, Rubin `diaSource`.
const DETECTION_FIELDS: [&str; 2] = ["candidate", "diaSource"];

fn schema_name(schema: &Schema) -> String {
    schema
        .name()
        .map_or_else(|| "(unnamed)".to_owned(), ToString::to_string)
}

/// Derives the columns of `schema` for `selection`.
///
/// # Errors
/// [`PlanError`] when the schema is not a record, a chosen path is absent,
/// or a chosen column's type has no Parquet form here.
pub(crate) fn plan(schema: &Schema, selection: &ColumnSelection) -> Result<Plan, PlanError> {
    let name = schema_name(schema);
    let resolved = ResolvedSchema::new(schema).map_err(|e| PlanError::Resolve {
        schema: name.clone(),
        reason: e.to_string(),
    })?;
    let resolver = Resolver {
        names: resolved
            .get_names()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
    };
    let root = resolver
        .record(schema)
        .ok_or_else(|| PlanError::NotARecord {
            schema: name.clone(),
        })?;
    let columns = match selection {
        ColumnSelection::Default => default_columns(&resolver, root),
        ColumnSelection::Chosen(choices) => chosen_columns(&resolver, root, choices, &name)?,
    };
    if columns.is_empty() {
        return Err(PlanError::Empty { schema: name });
    }
    let fields: Vec<Field> = columns
        .iter()
        .map(|c| Field::new(&c.name, c.kind.data_type(), c.nullable))
        .collect();
    Ok(Plan {
        columns,
        arrow: Arc::new(arrow_schema::Schema::new(fields)),
        avro_name: name,
    })
}

fn default_columns(resolver: &Resolver<'_>, root: &RecordSchema) -> Vec<Column> {
    let mut columns: Vec<Column> = Vec::new();
    let taken = |columns: &Vec<Column>, n: &str| columns.iter().any(|c| c.name == n);
    let mut detection: Option<(usize, &RecordSchema, bool)> = None;
    let mut lists = Vec::new();
    for (index, f) in root.fields.iter().enumerate() {
        let Ok((inner, nullable)) = resolver.nullable(&f.schema) else {
            continue;
        };
        let step = Step {
            name: f.name.clone(),
            index,
        };
        match inner {
            Schema::Record(r) if DETECTION_FIELDS.contains(&f.name.as_str()) => {
                detection = Some((index, r, nullable));
            }
            Schema::Record(_) | Schema::Bytes | Schema::Fixed(_) | Schema::Map(_) => {}
            Schema::Array(a) => {
                let is_records = matches!(
                    resolver.nullable(&a.items).map(|(s, _)| s),
                    Ok(Schema::Record(_))
                );
                if is_records {
                    if let Ok(kind) = resolver.kind(inner, 0) {
                        lists.push(Column {
                            name: f.name.clone(),
                            path: vec![step],
                            nullable,
                            kind,
                        });
                    }
                }
            }
            other => {
                if let Ok(kind) = resolver.kind(other, 0) {
                    columns.push(Column {
                        name: f.name.clone(),
                        path: vec![step],
                        nullable,
                        kind,
                    });
                }
            }
        }
    }
    if let Some((index, record, record_nullable)) = detection {
        let parent = root.fields[index].name.clone();
        if let Ok(children) = resolver.children(record, 0) {
            for c in children {
                if taken(&columns, &c.name) {
                    continue;
                }
                columns.push(Column {
                    name: c.name.clone(),
                    path: vec![
                        Step {
                            name: parent.clone(),
                            index,
                        },
                        Step {
                            name: c.name,
                            index: c.index,
                        },
                    ],
                    nullable: c.nullable || record_nullable,
                    kind: c.kind,
                });
            }
        }
    }
    for l in lists {
        if !taken(&columns, &l.name) {
            columns.push(l);
        }
    }
    columns
}

fn chosen_columns(
    resolver: &Resolver<'_>,
    root: &RecordSchema,
    choices: &[ColumnChoice],
    schema: &str,
) -> Result<Vec<Column>, PlanError> {
    let detection = DETECTION_FIELDS.iter().find_map(|d| {
        let index = *root.lookup.get(*d)?;
        let record = resolver.record(&root.fields.get(index)?.schema)?;
        Some((d.to_string(), index, record))
    });
    let mut out = Vec::with_capacity(choices.len());
    for choice in choices {
        let dotted = choice.path.join(".");
        let found = resolver.follow(root, &choice.path).or_else(|| {
            let (name, index, record) = detection.as_ref()?;
            let (mut steps, s, n) = resolver.follow(record, &choice.path)?;
            steps.insert(
                0,
                Step {
                    name: name.clone(),
                    index: *index,
                },
            );
            Some((steps, s, n))
        });
        let Some((path, field_schema, through_nullable)) = found else {
            return Err(PlanError::NoSuchField {
                schema: schema.to_owned(),
                column: choice.name.clone(),
                path: dotted,
            });
        };
        let unsupported = |reason: String| PlanError::Unsupported {
            schema: schema.to_owned(),
            column: choice.name.clone(),
            path: dotted.clone(),
            reason,
        };
        let (inner, nullable) = resolver.nullable(field_schema).map_err(unsupported)?;
        let kind = resolver.kind(inner, 0).map_err(unsupported)?;
        out.push(Column {
            name: choice.name.clone(),
            path,
            nullable: nullable || through_nullable,
            kind,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{
      "type": "record", "name": "alert", "namespace": "t",
      "fields": [
        {"name": "alertId", "type": "long"},
        {"name": "note", "type": ["null", "string"]},
        {"name": "diaSource", "type": {"type": "record", "name": "src", "fields": [
            {"name": "diaSourceId", "type": "long"},
            {"name": "alertId", "type": "long"},
            {"name": "flux", "type": ["null", "float"]},
            {"name": "extra", "type": {"type": "map", "values": "int"}}
        ]}},
        {"name": "prvDiaSources", "type": ["null", {"type": "array", "items": "t.src"}]},
        {"name": "cutout", "type": ["null", "bytes"]},
        {"name": "odd", "type": ["int", "string"]}
      ]}"#;

    #[test]
    fn default_columns_are_ids_detection_fields_and_lists_of_structs() {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let p = plan(&schema, &ColumnSelection::Default).unwrap();
        let names: Vec<&str> = p.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["alertId", "note", "diaSourceId", "flux", "prvDiaSources"]
        );
        assert!(!p.columns[0].nullable);
        assert!(p.columns[1].nullable);
        assert_eq!(p.columns[3].kind, Kind::Float32);
        match &p.columns[4].kind {
            Kind::List { item, .. } => match item.as_ref() {
                Kind::Struct(c) => assert_eq!(c.len(), 3, "the map field is left out"),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn chosen_columns_resolve_from_the_root_then_the_detection() {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let choose = |paths: &[&str]| {
            ColumnSelection::Chosen(
                paths
                    .iter()
                    .map(|p| ColumnChoice {
                        name: p.rsplit('.').next().unwrap().to_owned(),
                        path: p.split('.').map(str::to_owned).collect(),
                    })
                    .collect(),
            )
        };
        let p = plan(&schema, &choose(&["diaSource.flux", "diaSourceId"])).unwrap();
        assert_eq!(p.columns[1].path.len(), 2);
        assert_eq!(p.columns[1].path[0].name, "diaSource");
        let e = plan(&schema, &choose(&["candidate.magpsf"])).unwrap_err();
        assert!(e.to_string().contains("no field candidate.magpsf"), "{e}");
        let e = plan(&schema, &choose(&["odd"])).unwrap_err();
        assert!(e.to_string().contains("several non-null"), "{e}");
    }
}
