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
    }
}
