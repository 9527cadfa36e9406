//! Reading an alert's id from its Avro body without decoding the alert.
//!
//! Records with a null key are spread over the target partitions by a hash
//! of the alert id (ZTF `candid`, Rubin `diaSourceId` / `alertId`), so the
//! same alert always lands in the same partition whatever upstream
//! partition or topic it came from. Decoding a 40-100 KB alert to find one
//! long would cost more than the rest of the mirror's work per record, so
//! instead the schema is inspected once: if the id field is a top-level
//! field preceded only by fields whose encoded size can be skipped cheaply
//! (numbers, strings, bytes, fixed, enums and unions of those — true of
//! every ZTF and Rubin alert schema, where the id is among the first four
//! fields), [`AlertIdReader`] skips them and reads the id's varint. When a
//! schema does not allow that, the caller falls back to a hash of the
//! value bytes.

use apache_avro::Schema;

/// One skippable field on the way to the id.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Skip {
    Nothing,
    Fixed(usize),
    Varint,
    LengthPrefixed,
    Union(Vec<Skip>),
}

/// How to reach and read the id field of one schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertIdReader {
    field: String,
    before: Vec<Skip>,
    /// The id itself: a long/int, possibly inside a union (branch index
    /// first; a null branch means "no id").
    id: Skip,
}

fn skip_of(s: &Schema) -> Option<Skip> {
    Some(match s {
        Schema::Null => Skip::Nothing,
        Schema::Boolean => Skip::Fixed(1),
        Schema::Float => Skip::Fixed(4),
        Schema::Double => Skip::Fixed(8),
        Schema::Int
        | Schema::Long
        | Schema::Date
        | Schema::TimeMillis
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos
        | Schema::Enum(_) => Skip::Varint,
        Schema::String | Schema::Bytes | Schema::BigDecimal => Skip::LengthPrefixed,
        Schema::Fixed(f) | Schema::Duration(f) => Skip::Fixed(f.size),
        Schema::Union(u) => Skip::Union(u.variants().iter().map(skip_of).collect::<Option<_>>()?),
        _ => return None,
    })
}

fn is_integer(s: &Schema) -> bool {
    matches!(s, Schema::Int | Schema::Long)
}

impl AlertIdReader {
    /// A reader for the first of `fields` (in order of preference) that is
    /// a top-level integer (or nullable integer) field reachable by
    /// skipping; `None` when the schema has no such field.
    pub fn for_schema(schema: &Schema, fields: &[String]) -> Option<Self> {
        let Schema::Record(r) = schema else {
            return None;
        };
        for wanted in fields {
            let Some(pos) = r.fields.iter().position(|f| &f.name == wanted) else {
                continue;
            };
            let target = &r.fields[pos].schema;
            let id = match target {
                s if is_integer(s) => Skip::Varint,
                Schema::Union(u)
                    if u.variants()
                        .iter()
                        .all(|v| is_integer(v) || matches!(v, Schema::Null)) =>
                {
                    Skip::Union(u.variants().iter().filter_map(skip_of).collect())
                }
                _ => continue,
            };
            let Some(before) = r.fields[..pos]
                .iter()
                .map(|f| skip_of(&f.schema))
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            return Some(Self {
                field: wanted.clone(),
                before,
                id,
            });
        }
        None
    }

    /// The id field's name.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The id in `body`, or `None` when the body is too short, malformed,
    /// or the id is null.
    pub fn read(&self, body: &[u8]) -> Option<i64> {
        let mut pos = 0usize;
        for s in &self.before {
            skip(s, body, &mut pos)?;
        }
        match &self.id {
            Skip::Varint => varint(body, &mut pos),
            Skip::Union(branches) => {
                let i = usize::try_from(varint(body, &mut pos)?).ok()?;
                match branches.get(i)? {
                    Skip::Varint => varint(body, &mut pos),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

fn skip(s: &Skip, b: &[u8], pos: &mut usize) -> Option<()> {
    match s {
        Skip::Nothing => {}
        Skip::Fixed(n) => {
            *pos = pos.checked_add(*n).filter(|p| *p <= b.len())?;
        }
        Skip::Varint => {
            varint(b, pos)?;
        }
        Skip::LengthPrefixed => {
            let n = usize::try_from(varint(b, pos)?).ok()?;
            *pos = pos.checked_add(n).filter(|p| *p <= b.len())?;
        }
        Skip::Union(branches) => {
            let i = usize::try_from(varint(b, pos)?).ok()?;
            skip(branches.get(i)?, b, pos)?;
        }
    }
    Some(())
}

fn varint(b: &[u8], pos: &mut usize) -> Option<i64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            // Zigzag decoding: the low bit is the sign.
            return Some(((v >> 1) as i64) ^ -((v & 1) as i64));
        }
    }
    None
}

/// The default id fields: ZTF, then Rubin (v8+), then Rubin (up to v7).
pub fn default_fields() -> Vec<String> {
    ["candid", "diaSourceId", "alertId"]
        .into_iter()
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Record;

    #[test]
    fn reads_the_id_after_skippable_fields() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"a","fields":[
                {"name":"s","type":"string"},
                {"name":"u","type":["null","string"]},
                {"name":"d","type":"double"},
                {"name":"f","type":{"type":"fixed","name":"f4","size":4}},
                {"name":"candid","type":["null","long"]},
                {"name":"rest","type":{"type":"array","items":"int"}}]}"#,
        )
        .unwrap();
        let r = AlertIdReader::for_schema(&schema, &default_fields()).unwrap();
        assert_eq!(r.field(), "candid");
        for (u, id) in [(None, Some(1_234_567_890_123_i64)), (Some("x"), None)] {
            let mut rec = Record::new(&schema).unwrap();
            rec.put("s", "hello");
            rec.put(
                "u",
                apache_avro::types::Value::Union(
                    u8::from(u.is_some()).into(),
                    Box::new(u.map_or(apache_avro::types::Value::Null, |s| s.into())),
                ),
            );
            rec.put("d", 1.5f64);
            rec.put("f", apache_avro::types::Value::Fixed(4, vec![1, 2, 3, 4]));
            rec.put(
                "candid",
                apache_avro::types::Value::Union(
                    u32::from(id.is_some()),
                    Box::new(id.map_or(
                        apache_avro::types::Value::Null,
                        apache_avro::types::Value::Long,
                    )),
                ),
            );
            rec.put("rest", apache_avro::types::Value::Array(vec![]));
            let body = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
                .build()
                .unwrap()
                .write_value_to_vec(rec)
                .unwrap();
            assert_eq!(r.read(&body), id);
            assert_eq!(r.read(&body[..3]), None, "truncated body");
        }
    }

    #[test]
    fn unreachable_ids_give_no_reader() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"a","fields":[
                {"name":"arr","type":{"type":"array","items":"int"}},
                {"name":"candid","type":"long"}]}"#,
        )
        .unwrap();
        assert_eq!(AlertIdReader::for_schema(&schema, &default_fields()), None);
        let s = Schema::parse_str(
            r#"{"type":"record","name":"b","fields":[{"name":"candid","type":"string"}]}"#,
        )
        .unwrap();
        assert_eq!(AlertIdReader::for_schema(&s, &default_fields()), None);
        assert_eq!(
            AlertIdReader::for_schema(&Schema::Long, &default_fields()),
            None
        );
    }
}
