//! Checking that a framed value's body really is one Avro datum of its
//! writer schema ("a non-Avro body" is one of the bad inputs the mirror
//! must catch rather than pass on to every downstream consumer).
//!
//! `apache-avro` decodes a datum cut short by the end of input as nulls
//! rather than failing, so the reader is wrapped in a guard that notices a
//! read past the end; leftover bytes after the datum are an error too; and
//! a panic inside the library on hostile bytes becomes an error instead of
//! taking the mirror down.

use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::Schema;

struct EofGuard<'a> {
    rest: &'a [u8],
    read_past_end: bool,
}

impl Read for EofGuard<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !buf.is_empty() && self.rest.is_empty() {
            self.read_past_end = true;
            return Ok(0);
        }
        let n = buf.len().min(self.rest.len());
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        Ok(n)
    }
}

/// A schema compiled for walking a body without decoding it into values:
/// every length, union branch, enum index, boolean and string (UTF-8) is
/// checked and the datum must end exactly at the body's end, but nothing
/// is allocated. About the cost of reading the bytes once, where
/// apache-avro's decoder builds a value tree (~200 µs per ZTF alert).
#[derive(Debug, Clone)]
pub struct Walker {
    nodes: Vec<Node>,
    root: usize,
}

#[derive(Debug, Clone)]
enum Node {
    Null,
    Boolean,
    Varint,
    Fixed(usize),
    Bytes,
    Str,
    Enum(usize),
    Array(usize),
    Map(usize),
    Union(Vec<usize>),
    Record(Vec<usize>),
    /// A named type whose node is being compiled (filled in afterwards).
    Pending,
}

const MAX_DEPTH: usize = 64;

impl Walker {
    /// Compiles `schema`; `None` for constructs it does not walk (decimals,
    /// uuids, unresolved names): those bodies go to the full decoder.
    pub fn new(schema: &Schema) -> Option<Self> {
        let mut w = Self {
            nodes: Vec::new(),
            root: 0,
        };
        let mut names = std::collections::HashMap::new();
        w.root = w.compile(schema, &mut names, 0)?;
        Some(w)
    }

    fn push(&mut self, n: Node) -> usize {
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    fn compile(
        &mut self,
        s: &Schema,
        names: &mut std::collections::HashMap<String, usize>,
        depth: usize,
    ) -> Option<usize> {
        if depth > MAX_DEPTH {
            return None;
        }
        let node = match s {
            Schema::Null => Node::Null,
            Schema::Boolean => Node::Boolean,
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
            | Schema::LocalTimestampNanos => Node::Varint,
            Schema::Float => Node::Fixed(4),
            Schema::Double => Node::Fixed(8),
            Schema::Bytes => Node::Bytes,
            Schema::String => Node::Str,
            Schema::Duration(f) => Node::Fixed(f.size),
            Schema::Fixed(f) => {
                let i = self.push(Node::Fixed(f.size));
                names.insert(f.name.fullname(None), i);
                return Some(i);
            }
            Schema::Enum(e) => {
                let i = self.push(Node::Enum(e.symbols.len()));
                names.insert(e.name.fullname(None), i);
                return Some(i);
            }
            Schema::Array(a) => {
                let i = self.push(Node::Pending);
                let item = self.compile(&a.items, names, depth + 1)?;
                self.nodes[i] = Node::Array(item);
                return Some(i);
            }
            Schema::Map(m) => {
                let i = self.push(Node::Pending);
                let v = self.compile(&m.types, names, depth + 1)?;
                self.nodes[i] = Node::Map(v);
                return Some(i);
            }
            Schema::Union(u) => {
                let i = self.push(Node::Pending);
                let branches = u
                    .variants()
                    .iter()
                    .map(|v| self.compile(v, names, depth + 1))
                    .collect::<Option<Vec<_>>>()?;
                self.nodes[i] = Node::Union(branches);
                return Some(i);
            }
            Schema::Record(r) => {
                let i = self.push(Node::Pending);
                names.insert(r.name.fullname(None), i);
                let fields = r
                    .fields
                    .iter()
                    .map(|f| self.compile(&f.schema, names, depth + 1))
                    .collect::<Option<Vec<_>>>()?;
                self.nodes[i] = Node::Record(fields);
                return Some(i);
            }
            Schema::Ref { name } => return names.get(&name.fullname(None)).copied(),
            _ => return None,
        };
        Some(self.push(node))
    }

    /// `Ok` when `body` is exactly one datum; otherwise where it breaks.
    pub fn walk(&self, body: &[u8]) -> Result<(), String> {
        let mut pos = 0usize;
        self.node(self.root, body, &mut pos, 0)?;
        if pos != body.len() {
            return Err(format!(
                "{} bytes left over after the Avro datum",
                body.len() - pos
            ));
        }
        Ok(())
    }

    fn node(&self, i: usize, b: &[u8], pos: &mut usize, depth: usize) -> Result<(), String> {
        let short = || format!("Avro body of {} bytes ends before the datum does", b.len());
        if depth > MAX_DEPTH {
            return Err("Avro datum nested too deeply".into());
        }
        let Some(node) = self.nodes.get(i) else {
            return Err("schema walker node missing".into());
        };
        match node {
            Node::Null => {}
            Node::Boolean => {
                match b.get(*pos) {
                    Some(0 | 1) => {}
                    Some(v) => return Err(format!("boolean byte {v} at {pos}")),
                    None => return Err(short()),
                }
                *pos += 1;
            }
            Node::Varint => {
                varint(b, pos).ok_or_else(short)?;
            }
            Node::Fixed(n) => take(b, pos, *n).ok_or_else(short).map(|_| ())?,
            Node::Bytes | Node::Str => {
                let at = *pos;
                let n = varint(b, pos).ok_or_else(short)?;
                let n = usize::try_from(n).map_err(|_| format!("negative length {n} at {at}"))?;
                let v = take(b, pos, n).ok_or_else(short)?;
                if matches!(node, Node::Str) && std::str::from_utf8(v).is_err() {
                    return Err(format!("string at {at} is not UTF-8"));
                }
            }
            Node::Enum(n) => {
                let at = *pos;
                let v = varint(b, pos).ok_or_else(short)?;
                if usize::try_from(v).map_or(true, |v| v >= *n) {
                    return Err(format!("enum index {v} at {at} out of {n} symbols"));
                }
            }
            Node::Array(item) | Node::Map(item) => loop {
                let at = *pos;
                let mut count = varint(b, pos).ok_or_else(short)?;
                if count == 0 {
                    break;
                }
                if count < 0 {
                    // A negative count is followed by the block's byte size.
                    varint(b, pos).ok_or_else(short)?;
                    count = count
                        .checked_neg()
                        .ok_or_else(|| format!("bad block count at {at}"))?;
                }
                // Each item takes at least one byte unless it is null-like;
                // never loop past what the body could hold.
                let count =
                    usize::try_from(count).map_err(|_| format!("bad block count at {at}"))?;
                if count > b.len().saturating_mul(8) + 1 {
                    return Err(format!("block of {count} items at {at} exceeds the body"));
                }
                for _ in 0..count {
                    if matches!(node, Node::Map(_)) {
                        let n = varint(b, pos).ok_or_else(short)?;
                        let n = usize::try_from(n)
                            .map_err(|_| format!("negative key length at {pos}"))?;
                        let k = take(b, pos, n).ok_or_else(short)?;
                        if std::str::from_utf8(k).is_err() {
                            return Err(format!("map key before {pos} is not UTF-8"));
                        }
                    }
                    self.node(*item, b, pos, depth + 1)?;
                }
            },
            Node::Union(branches) => {
                let at = *pos;
                let v = varint(b, pos).ok_or_else(short)?;
                let branch = usize::try_from(v)
                    .ok()
                    .and_then(|v| branches.get(v))
                    .ok_or_else(|| format!("union branch {v} at {at} out of {}", branches.len()))?;
                self.node(*branch, b, pos, depth + 1)?;
            }
            Node::Record(fields) => {
                for f in fields {
                    self.node(*f, b, pos, depth + 1)?;
                }
            }
            Node::Pending => return Err("schema walker node incomplete".into()),
        }
        Ok(())
    }
}

fn take<'a>(b: &'a [u8], pos: &mut usize, n: usize) -> Option<&'a [u8]> {
    let end = pos.checked_add(n).filter(|e| *e <= b.len())?;
    let v = &b[*pos..end];
    *pos = end;
    Some(v)
}

fn varint(b: &[u8], pos: &mut usize) -> Option<i64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((v >> 1) as i64) ^ -((v & 1) as i64));
        }
    }
    None
}

/// [`check`] through `walker` when the schema compiled to one, else the
/// full decoder.
pub fn check_with(walker: Option<&Walker>, schema: &Schema, body: &[u8]) -> Result<(), String> {
    match walker {
        Some(w) => w
            .walk(body)
            .map_err(|e| format!("not an Avro datum of the writer schema: {e}")),
        None => check(schema, body),
    }
}

/// `Ok` when `body` is exactly one datum of `schema`; otherwise why not.
pub fn check(schema: &Schema, body: &[u8]) -> Result<(), String> {
    let run = || -> Result<(usize, bool), apache_avro::Error> {
        let mut guard = EofGuard {
            rest: body,
            read_past_end: false,
        };
        let reader = GenericDatumReader::builder(schema).build()?;
        reader.read_value(&mut guard)?;
        Ok((guard.rest.len(), guard.read_past_end))
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok((_, true))) => Err(format!(
            "Avro body of {} bytes ends before the datum does",
            body.len()
        )),
        Ok(Ok((0, false))) => Ok(()),
        Ok(Ok((left, false))) => Err(format!("{left} bytes left over after the Avro datum")),
        Ok(Err(e)) => Err(format!("not an Avro datum of the writer schema: {e}")),
        Err(_) => Err("the Avro decoder failed on this body".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_short_long_and_garbage_bodies() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"r","fields":[{"name":"a","type":"long"},{"name":"s","type":"string"}]}"#,
        )
        .unwrap();
        let mut rec = apache_avro::types::Record::new(&schema).unwrap();
        rec.put("a", 7i64);
        rec.put("s", "hello");
        let body = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_value_to_vec(rec)
            .unwrap();
        assert_eq!(check(&schema, &body), Ok(()));
        assert!(check(&schema, &body[..body.len() - 2])
            .unwrap_err()
            .contains("ends before"));
        let mut long = body.clone();
        long.push(1);
        assert!(check(&schema, &long).unwrap_err().contains("left over"));
        assert!(check(&schema, b"{\"json\": true}").is_err());
        let w = Walker::new(&schema).unwrap();
        assert_eq!(w.walk(&body), Ok(()));
        assert!(w
            .walk(&body[..body.len() - 2])
            .unwrap_err()
            .contains("ends before"));
        assert!(w.walk(&long).unwrap_err().contains("left over"));
        assert!(w.walk(b"{\"json\": true}").is_err());
    }

    /// Real ZTF alerts of several schema versions: the walker accepts
    /// every body the full decoder accepts, and refuses cut or padded ones.
    #[test]
    fn the_walker_agrees_with_the_decoder_on_real_alerts() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/ztf/alerts");
        let mut seen = 0;
        for sub in [
            "fink-alert-simulator",
            "kowalski/20200202",
            "kowalski/20231012",
            "fink-broker-local",
        ] {
            let Ok(dir) = std::fs::read_dir(root.join(sub)) else {
                continue;
            };
            for f in dir.flatten().map(|e| e.path()).take(5) {
                let reader = apache_avro::Reader::new(std::fs::File::open(&f).unwrap()).unwrap();
                let schema = reader.writer_schema().clone();
                let value = reader.into_iter().next().unwrap().unwrap();
                let body = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
                    .build()
                    .unwrap()
                    .write_value_to_vec(value)
                    .unwrap();
                let w = Walker::new(&schema).unwrap_or_else(|| panic!("{} compiles", f.display()));
                assert_eq!(w.walk(&body), Ok(()), "{}", f.display());
                assert_eq!(check(&schema, &body), Ok(()));
                assert!(w.walk(&body[..body.len() / 2]).is_err());
                let mut padded = body.clone();
                padded.push(0);
                assert!(w.walk(&padded).is_err());
                seen += 1;
            }
        }
        assert!(seen > 0, "no alerts under {}", root.display());
    }
}
