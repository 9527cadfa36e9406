//! Shared helpers for the real-data tests: where the data is, the manifest
//! (an independent record of what each file holds), and reading alerts.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use apache_avro::types::Value;
use apache_avro::Schema;
use starlog_processors::{AlertDecoder, Candidate, InputFormat};

/// The repository's `testdata/` folder (real alerts, schemas and a
/// catalogue; see its README).
pub fn testdata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// One row of `manifest.csv`, by column name.
#[derive(Debug, Clone)]
pub struct ManifestRow(pub BTreeMap<String, String>);

impl ManifestRow {
    pub fn get(&self, column: &str) -> &str {
        self.0.get(column).map_or("", String::as_str)
    }
    pub fn file(&self) -> &str {
        self.get("file")
    }
    pub fn path(&self) -> PathBuf {
        testdata_dir().join(self.file())
    }
    pub fn is_ztf(&self) -> bool {
        self.file().starts_with("ztf/")
    }
    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(self.path()).unwrap_or_else(|e| panic!("{}: {e}", self.file()))
    }
}

/// Every row of the manifest (one per `.avro` file).
pub fn manifest() -> Vec<ManifestRow> {
    let path = testdata_dir().join("manifest.csv");
    let mut reader =
        csv::Reader::from_path(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers = reader.headers().unwrap().clone();
    let rows: Vec<ManifestRow> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            ManifestRow(
                headers
                    .iter()
                    .zip(r.iter())
                    .map(|(h, v)| (h.to_owned(), v.to_owned()))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        rows.len(),
        138,
        "testdata/README.md promises 138 alert files"
    );
    rows
}

/// Decodes a file with the crate's decoder; exactly one candidate.
pub fn candidate(row: &ManifestRow) -> Candidate {
    let mut c = AlertDecoder::new(InputFormat::ObjectContainer)
        .decode(&row.bytes())
        .unwrap_or_else(|e| panic!("{}: {e}", row.file()));
    assert_eq!(c.len(), 1, "{}", row.file());
    c.remove(0)
}

/// Reads a file with apache-avro's own container reader (independent of the
/// crate's container parser): the writer schema and the single record.
pub fn read_with_apache_avro(path: &Path) -> (Schema, Value) {
    let bytes = std::fs::read(path).unwrap();
    let mut reader = apache_avro::Reader::new(&bytes[..]).unwrap();
    let schema = reader.writer_schema().clone();
    let value = reader.next().expect("one record").unwrap();
    assert!(reader.next().is_none());
    (schema, value)
}

/// Encodes `value` as a bare Avro body with `schema`.
pub fn encode_body(schema: &Schema, value: &Value) -> Vec<u8> {
    let writer = apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .unwrap();
    let mut out = Vec::new();
    writer.write_value_ref(&mut out, value).unwrap();
    out
}

/// Value equality where NaN equals NaN (alerts carry NaN floats) and maps
/// compare as maps.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        (Value::Double(x), Value::Double(y)) => x.to_bits() == y.to_bits(),
        (Value::Union(i, x), Value::Union(j, y)) => i == j && same(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Record(x), Value::Record(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((k, p), (l, q))| k == l && same(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| same(p, q)))
        }
        _ => a == b,
    }
}

/// A copy of a real alert moved to (ra, dec).
pub fn moved(c: &Candidate, ra: f64, dec: f64) -> Candidate {
    fn set(v: &mut Value, name: &str, x: f64) {
        if let Value::Record(fields) = v {
            for (n, f) in fields.iter_mut() {
                if n == name {
                    *f = match f {
                        Value::Union(i, _) => Value::Union(*i, Box::new(Value::Double(x))),
                        _ => Value::Double(x),
                    };
                }
            }
        }
    }
    let mut value = c.value().clone();
    if let Value::Record(fields) = &mut value {
        for (n, f) in fields.iter_mut() {
            if n == "candidate" || n == "diaSource" {
                let inner = match f {
                    Value::Union(_, b) => b.as_mut(),
                    other => other,
                };
                set(inner, "ra", ra);
                set(inner, "dec", dec);
            }
        }
    }
    Candidate::new(value, Arc::clone(c.schema())).unwrap()
}
