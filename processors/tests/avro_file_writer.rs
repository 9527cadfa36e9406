//! `AvroFileWriter` on real alerts: rolling container files read back by
//! two independent readers (apache-avro's container reader, and Python's
//! fastavro, installed by `scripts/test`), schema-change rolls, and
//! recovery of a file left open by a crash.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use apache_avro::types::Value;
use common::{manifest, testdata_dir};
use starlog_processors::avro_value::{as_array, as_i64, field};
use starlog_processors::builtins::avro_file_writer::RollPolicy;
use starlog_processors::builtins::{AvroFileWriter, CatalogIndex, CrossmatchProcessor};
use starlog_processors::output::ocf_file::OcfCodec;
use starlog_processors::sky::{Catalog, CatalogColumns};
use starlog_processors::{Candidate, CandidateProcessor, Response};

fn finished_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// (alert id, number of matches) per record, in file order, read with apache-avro.
fn read_back_rust(files: &[PathBuf]) -> Vec<(i64, usize)> {
    let mut out = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).unwrap();
        for v in apache_avro::Reader::new(&bytes[..]).unwrap() {
            let v: Value = v.unwrap();
            let id = field(&v, "candid")
                .or_else(|| field(&v, "diaSourceId"))
                .or_else(|| field(&v, "alertId"))
                .and_then(as_i64)
                .unwrap();
            let n = field(&v, "starlog_matches")
                .and_then(as_array)
                .unwrap()
                .len();
            out.push((id, n));
        }
    }
    out
}

const FASTAVRO_READER: &str = r#"
import json, sys, fastavro
out = []
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        reader = fastavro.reader(f)
        name = reader.writer_schema.get("name")
        for rec in reader:
            rid = rec.get("candid") or rec.get("diaSourceId") or rec.get("alertId")
            out.append([path, name, rid, len(rec["starlog_matches"]), [m["sourceid"] for m in rec["starlog_matches"]]])
print(json.dumps(out))
"#;

/// The same, read by fastavro (an independent implementation).
fn read_back_fastavro(files: &[PathBuf]) -> Vec<serde_json::Value> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(FASTAVRO_READER)
        .args(files)
        .output()
        .expect("python3 is needed for this test (scripts/test installs it)");
    assert!(
        out.status.success(),
        "fastavro failed (scripts/test installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn rolling_files_of_annotated_alerts_read_back_by_fastavro() {
    let catalog = Catalog::from_csv(
        &testdata_dir().join("catalogs/mangrove_radec.csv"),
        &CatalogColumns::default(),
    )
    .unwrap();
    let index = Arc::new(CatalogIndex::new(catalog, 0.5));
    let mut xm = CrossmatchProcessor::new("mangrove", index, 1800.0, false);
    let dir = tempfile::tempdir().unwrap();
    let policy = RollPolicy {
        prefix: "night".into(),
        max_records: 40,
        max_bytes: 4 << 20,
        codec: OcfCodec::Null,
    };
    let mut writer = AvroFileWriter::open(dir.path(), policy).unwrap();
    let mut expected: Vec<(i64, usize, Vec<String>)> = Vec::new();
    for row in manifest() {
        let mut c: Candidate = common::candidate(&row);
        assert!(matches!(xm.process(&mut c), Response::Pass));
        assert!(matches!(writer.process(&mut c), Response::Pass));
        expected.push((
            c.alert_id(),
            c.matches().count(),
            c.matches().map(|m| m.sourceid.to_string()).collect(),
        ));
    }
    writer.flush().unwrap();
    assert!(
        finished_files(dir.path())
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".part")),
        "the open file is still .part"
    );
    writer.close().unwrap();
    let files = finished_files(dir.path());
    assert!(
        files
            .iter()
            .all(|p| p.extension().is_some_and(|e| e == "avro")),
        "{files:?}"
    );
    assert_eq!(files, writer.finished_files().to_vec());
    assert!(expected.iter().any(|e| e.1 > 0), "some matches to carry");

    let rust = read_back_rust(&files);
    assert_eq!(
        rust,
        expected.iter().map(|e| (e.0, e.1)).collect::<Vec<_>>()
    );

    let py = read_back_fastavro(&files);
    assert_eq!(py.len(), expected.len());
    let mut per_file: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for (rec, want) in py.iter().zip(&expected) {
        assert_eq!(rec[2].as_i64(), Some(want.0));
        assert_eq!(rec[3].as_u64(), Some(want.1 as u64));
        let ids: Vec<String> = rec[4]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, want.2);
        let entry = per_file
            .entry(rec[0].as_str().unwrap().to_owned())
            .or_insert((rec[1].as_str().unwrap().to_owned(), 0));
        entry.1 += 1;
    }
    // Each file holds at most max_records, and one schema; the input mixes
    // schema versions, so schema changes roll files too.
    assert!(per_file.values().all(|(_, n)| *n <= 40));
    assert!(
        files.len() > expected.len() / 40 + 1,
        "schema changes roll files: {} files",
        files.len()
    );
}

#[test]
fn max_bytes_rolls_and_numbering_continues_across_writers() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<_> = manifest()
        .into_iter()
        .filter(|r| r.get("matches_shipped_schema") == "3.1")
        .take(12)
        .collect();
    let policy = RollPolicy {
        prefix: "a".into(),
        max_records: 1000,
        max_bytes: 150_000,
        codec: OcfCodec::Null,
    };
    let deflate = RollPolicy {
        codec: OcfCodec::Deflate,
        max_bytes: 10 << 20,
        ..policy.clone()
    };
    {
        let mut w = AvroFileWriter::open(dir.path(), policy.clone()).unwrap();
        for r in &rows[..6] {
            assert!(matches!(
                w.process(&mut common::candidate(r)),
                Response::Pass
            ));
        }
        w.close().unwrap();
    }
    let first = finished_files(dir.path());
    assert!(first.len() >= 2, "~65 kB alerts in 150 kB files: {first:?}");
    for f in &first {
        assert!(
            std::fs::metadata(f).unwrap().len() <= 150_000 + 70_000,
            "a file exceeds its limit by more than one alert"
        );
    }
    let mut w = AvroFileWriter::open(dir.path(), policy).unwrap();
    for r in &rows[6..] {
        assert!(matches!(
            w.process(&mut common::candidate(r)),
            Response::Pass
        ));
    }
    drop(w); // dropping finishes the file too
    let all = finished_files(dir.path());
    assert!(all.len() > first.len());
    assert_eq!(
        &all[..first.len()],
        &first[..],
        "earlier files untouched, numbering continues"
    );
    let ids: Vec<i64> = read_back_rust(&all).into_iter().map(|(id, _)| id).collect();
    let want: Vec<i64> = rows
        .iter()
        .map(|r| r.get("alert_id").parse().unwrap())
        .collect();
    assert_eq!(ids, want);

    // Deflate-compressed files read back by both readers.
    let zdir = tempfile::tempdir().unwrap();
    let mut w = AvroFileWriter::open(zdir.path(), deflate).unwrap();
    for r in &rows[..3] {
        assert!(matches!(
            w.process(&mut common::candidate(r)),
            Response::Pass
        ));
    }
    w.close().unwrap();
    let files = finished_files(zdir.path());
    assert_eq!(files.len(), 1);
    assert!(std::fs::read(&files[0])
        .unwrap()
        .windows(7)
        .any(|w| w == b"deflate"));
    let ids: Vec<i64> = read_back_rust(&files)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, want[..3].to_vec());
    assert_eq!(read_back_fastavro(&files).len(), 3);
}

#[test]
fn a_crashed_writers_file_is_cut_to_its_flushed_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<_> = manifest()
        .into_iter()
        .filter(|r| r.get("matches_shipped_schema") == "3.3")
        .take(8)
        .collect();
    let mut w = AvroFileWriter::open(dir.path(), RollPolicy::default()).unwrap();
    for r in &rows[..5] {
        assert!(matches!(
            w.process(&mut common::candidate(r)),
            Response::Pass
        ));
    }
    w.flush().unwrap();
    for r in &rows[5..] {
        assert!(matches!(
            w.process(&mut common::candidate(r)),
            Response::Pass
        ));
    }
    // Crash: the process dies without finishing the file or writing the
    // pending block; a torn block start is left at the end of the file.
    std::mem::forget(w);
    let part = finished_files(dir.path()).pop().unwrap();
    assert!(part.to_string_lossy().ends_with(".avro.part"));
    let mut bytes = std::fs::read(&part).unwrap();
    bytes.extend_from_slice(&[0x0a, 0xff, 0xff, 0x01, 0x02]);
    std::fs::write(&part, &bytes).unwrap();

    let w = AvroFileWriter::open(dir.path(), RollPolicy::default()).unwrap();
    let files = finished_files(dir.path());
    assert_eq!(files.len(), 1);
    assert!(files[0]
        .to_string_lossy()
        .ends_with("alerts-0000000000.avro"));
    let ids: Vec<i64> = read_back_rust(&files)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let want: Vec<i64> = rows[..5]
        .iter()
        .map(|r| r.get("alert_id").parse().unwrap())
        .collect();
    assert_eq!(ids, want, "exactly the flushed alerts survive");
    assert_eq!(read_back_fastavro(&files).len(), 5);
    drop(w);

    // A part file without even a complete header is removed.
    std::fs::write(
        dir.path().join("alerts-0000000001.avro.part"),
        b"Obj\x01\x04",
    )
    .unwrap();
    let _w = AvroFileWriter::open(dir.path(), RollPolicy::default()).unwrap();
    assert_eq!(finished_files(dir.path()).len(), 1);
}

#[test]
fn unwritable_directory_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let err = AvroFileWriter::open(file.join("sub"), RollPolicy::default()).unwrap_err();
    assert!(err.to_string().contains("plain-file"), "{err}");
}
