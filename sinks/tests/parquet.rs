//! `ParquetWriter` on the shipped ZTF and Rubin alerts, through pipelines
//! built from YAML with `starlog_sinks::registry()`: the files are read back
//! by pyarrow and by DuckDB (sinks/tests/python/parquet_check.py) and every
//! value is compared with the source alerts decoded by fastavro. Then the
//! failure paths: a full disk and a read-only folder (a small tmpfs this
//! test mounts, as root or through `sudo -n`), an output folder that
//! disappears, alerts that can never be written (dead-lettered), `.part`
//! files left by a crash, and parameter errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use starlog_processors::config::{BuildContext, PipelineSpec};
use starlog_processors::dead_letter::{OFFSET_HEADER, REASON_HEADER};
use starlog_processors::sink::MemoryTopicSink;
use starlog_processors::{InputRecord, Pipeline, RecordOutcome};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The alert files of `testdata/manifest.csv` whose path starts with `prefix`.
fn alerts(prefix: &str) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(repo().join("testdata/manifest.csv")).unwrap();
    let files: Vec<PathBuf> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .filter(|f| f.starts_with(prefix))
        .map(|f| repo().join("testdata").join(f))
        .collect();
    assert!(!files.is_empty(), "no alerts under {prefix}");
    files
}

fn pipeline(yaml: &str, dir: &Path, sink: Option<Arc<MemoryTopicSink>>) -> Pipeline {
    let spec = PipelineSpec::from_yaml_str(yaml, "test", dir, &starlog_sinks::registry())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ctx = BuildContext::default();
    if let Some(s) = sink {
        ctx = ctx.with_sink(s);
    }
    spec.build(&ctx).unwrap_or_else(|e| panic!("{e}"))
}

fn yaml(params: &str) -> String {
    format!(
        "component:\n  type: processing-node\n  name: pq\n  source: {{ topic: alerts }}\n  dead_letter: {{ topic: pq-dead }}\n  processors:\n    - class: ParquetWriter\n      params:\n{}",
        params
            .lines()
            .map(|l| format!("        {l}\n"))
            .collect::<String>()
    )
}

fn handle(p: &mut Pipeline, offset: usize, file: &Path) -> RecordOutcome {
    let bytes = std::fs::read(file).unwrap();
    p.handle(&InputRecord {
        topic: "alerts",
        partition: 0,
        offset: i64::try_from(offset).unwrap(),
        key: None,
        value: &bytes,
        headers: &[],
    })
}

/// Runs `files` through `p` like a runner: a flush (then a "commit") every
/// `every` records; on a failure, returns the committed count and the error.
fn run(
    p: &mut Pipeline,
    files: &[PathBuf],
    from: usize,
    every: usize,
) -> Result<(), (usize, String)> {
    let mut committed = from;
    for (i, f) in files.iter().enumerate().skip(from) {
        match handle(p, i, f) {
            RecordOutcome::Processed { .. } => {}
            other => return Err((committed, format!("{other:?}"))),
        }
        if (i + 1) % every == 0 || i + 1 == files.len() {
            p.flush().map_err(|e| (committed, e.to_string()))?;
            committed = i + 1;
        }
    }
    Ok(())
}

/// Every file under `dir`, recursively, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let all = files_under(dir);
    assert!(
        all.iter()
            .all(|p| p.extension().is_some_and(|e| e == "parquet")),
        "only finished .parquet files: {all:?}"
    );
    all
}

/// What parquet_check.py reports.
#[derive(Debug)]
struct Check(serde_json::Value);

impl Check {
    fn rows(&self, reader: &str) -> u64 {
        self.0["rows"][reader].as_u64().unwrap()
    }
    fn compared(&self, reader: &str) -> u64 {
        self.0["compared"][reader].as_u64().unwrap()
    }
    fn ids(&self, reader: &str) -> Vec<i64> {
        let mut v: Vec<i64> = self.0["ids"][reader]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        v.sort_unstable();
        v
    }
    fn assert_no_mismatch(&self) {
        assert_eq!(
            self.0["mismatch_count"].as_u64(),
            Some(0),
            "values differ from the source alerts: {:#}",
            self.0["mismatches"]
        );
    }
}

/// Reads `parquet` with pyarrow and DuckDB and compares with `alerts` (fastavro).
fn check(
    root: &Path,
    parquet: &[PathBuf],
    alerts: &[PathBuf],
    columns: Option<&[(&str, &str)]>,
    partitioned: bool,
) -> Check {
    let spec = serde_json::json!({
        "parquet": parquet,
        "alerts": alerts,
        "columns": columns.map(|c| c.iter().map(|(n, p)| [n, p]).collect::<Vec<_>>()),
        "partitioned": partitioned,
        "root": root,
    });
    let spec_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(spec_file.path(), spec.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/parquet_check.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(spec_file.path())
        .output()
        .expect("python3 is needed to read the files back (scripts/test installs it)");
    assert!(
        out.status.success(),
        "pyarrow/DuckDB read-back failed (scripts/deps/parquet.sh installs pyarrow, duckdb and fastavro): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Check(serde_json::from_slice(&out.stdout).unwrap())
}

/// Alert ids of `files` per the manifest.
fn manifest_ids(files: &[PathBuf]) -> Vec<i64> {
    let text = std::fs::read_to_string(repo().join("testdata/manifest.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let id_col = header.iter().position(|h| *h == "alert_id").unwrap();
    let by_file: BTreeMap<PathBuf, i64> = lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .map(|c| {
            (
                repo().join("testdata").join(c[0]),
                c[id_col].parse().unwrap(),
            )
        })
        .collect();
    let mut ids: Vec<i64> = files.iter().map(|f| by_file[f]).collect();
    ids.sort_unstable();
    ids
}

#[test]
fn default_columns_of_every_shipped_alert_read_back_by_pyarrow_and_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let files = alerts("");
    assert_eq!(files.len(), 138);
    let mut p = pipeline(
        &yaml("directory: out\nmax_records: 50\nrow_group_size: 16\ncompression: snappy"),
        dir.path(),
        None,
    );
    run(&mut p, &files, 0, 40).unwrap();
    p.close().unwrap();
    let out = dir.path().join("out");
    let written = parquet_files(&out);
    // 138 alerts of 20 Avro schemas, flushed every 40 and rolled at 50.
    assert!(written.len() >= 20, "{} files", written.len());
    let c = check(&out, &written, &files, None, false);
    c.assert_no_mismatch();
    for reader in ["pyarrow", "duckdb"] {
        assert_eq!(c.rows(reader), 138, "{reader}");
        assert_eq!(
            c.ids(reader),
            manifest_ids(&files),
            "{reader}: every alert once"
        );
        // ZTF candidates have ~100 fields, plus ids and lists of structs.
        assert!(
            c.compared(reader) > 138 * 40,
            "{reader}: {}",
            c.compared(reader)
        );
    }
    // Previous detections are lists of structs.
    let schemas = c.0["schemas"].to_string();
    assert!(schemas.contains("list<item: struct<"), "{schemas}");
}

#[test]
fn chosen_columns_in_date_folders_and_unwritable_alerts_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let ztf = alerts("ztf/");
    let rubin = alerts("lsst/");
    let mut files = ztf.clone();
    files.extend(rubin.iter().cloned());
    let sink = Arc::new(MemoryTopicSink::default());
    let mut p = pipeline(
        &yaml(
            "directory: dated\npartition_by: observation_date\ncompression: zstd\n\
             columns:\n  - objectId\n  - candid\n  - { name: jd, path: candidate.jd }\n  - candidate.magpsf\n  - fid\n  - prv_candidates",
        ),
        dir.path(),
        Some(Arc::clone(&sink)),
    );
    run(&mut p, &files, 0, 30).unwrap();
    p.close().unwrap();

    // Rubin alerts have no objectId: the writer answers DeadLetter, the
    // pipeline sends each record, unchanged, to the dead-letter topic with
    // the reason, and the chain goes on.
    let dead = sink.records();
    assert_eq!(dead.len(), rubin.len());
    let mut dead_files = Vec::new();
    for d in &dead {
        assert_eq!(d.topic, "pq-dead");
        let reason = String::from_utf8(d.header(REASON_HEADER).unwrap().to_vec()).unwrap();
        assert!(
            reason.contains("ParquetWriter: schema") && reason.contains("no field objectId"),
            "{reason}"
        );
        let offset: usize = std::str::from_utf8(d.header(OFFSET_HEADER).unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            d.value,
            std::fs::read(&files[offset]).unwrap(),
            "the original bytes"
        );
        dead_files.push(files[offset].clone());
    }
    dead_files.sort();
    let mut want = rubin.clone();
    want.sort();
    assert_eq!(dead_files, want);

    let out = dir.path().join("dated");
    let written = parquet_files(&out);
    let columns = [
        ("objectId", "objectId"),
        ("candid", "candid"),
        ("jd", "candidate.jd"),
        ("magpsf", "candidate.magpsf"),
        ("fid", "fid"),
        ("prv_candidates", "prv_candidates"),
    ];
    let c = check(&out, &written, &ztf, Some(&columns), true);
    c.assert_no_mismatch();
    for reader in ["pyarrow", "duckdb"] {
        assert_eq!(c.ids(reader), manifest_ids(&ztf), "{reader}");
        assert_eq!(c.compared(reader), 6 * ztf.len() as u64, "{reader}");
    }
    assert_eq!(
        c.0["date_mismatches"].as_u64(),
        Some(0),
        "folder = night of the detection: {}",
        c.0
    );
    // DuckDB reads the Hive folders as columns: the nights of the data
    // (2018-11-29, 2020-01-01, 2020-02-02, 2023-10-12 and the Spark set's).
    let hive = c.0["hive"].as_array().unwrap();
    let total: u64 = hive.iter().map(|r| r[3].as_u64().unwrap()).sum();
    assert_eq!(total, ztf.len() as u64);
    assert!(hive.len() >= 4, "{hive:?}");
    assert!(
        hive.iter()
            .any(|r| r[0] == 2018 && r[1] == 11 && r[2] == 29),
        "{hive:?}"
    );
}

/// A tmpfs of its own, mounted by this test (as root, or through `sudo -n`).
struct Tmpfs {
    dir: tempfile::TempDir,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn privileged(args: &[&str]) {
    let status = if is_root() {
        Command::new(args[0]).args(&args[1..]).status()
    } else {
        Command::new("sudo").arg("-n").args(args).status()
    };
    assert!(
        status.is_ok_and(|s| s.success()),
        "`{}` failed: the full-disk and read-only tests mount a small tmpfs, so they must run as root or with passwordless sudo",
        args.join(" ")
    );
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let uid = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
        let opts = format!("size={size},mode=0755,uid={}", uid.trim());
        privileged(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &opts,
            "tmpfs",
            dir.path().to_str().unwrap(),
        ]);
        Tmpfs { dir }
    }
    fn remount(&self, opts: &str) {
        privileged(&[
            "mount",
            "-o",
            &format!("remount,{opts}"),
            self.dir.path().to_str().unwrap(),
        ]);
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let dir = self.dir.path().to_str().unwrap();
        let _ = if is_root() {
            Command::new("umount").arg(dir).status()
        } else {
            Command::new("sudo").args(["-n", "umount", dir]).status()
        };
    }
}

#[test]
fn full_disk_fails_the_step_then_the_replay_writes_every_alert_once() {
    let fs = Tmpfs::mount("160k");
    // One schema (ZTF 3.1), uncompressed: a file per flush, the disk fills.
    let files = alerts("ztf/alerts/fink-alert-simulator/");
    let mut p = pipeline(
        &yaml("directory: .\ncompression: none\nrow_group_size: 4"),
        fs.path(),
        None,
    );
    let (committed, error) = run(&mut p, &files, 0, 5).expect_err("a 160 KiB disk fills up");
    assert!(
        error.contains("No space left on device"),
        "the failure names the cause: {error}"
    );
    assert!(committed < files.len());
    // Nothing half-written is left: only finished files, all readable.
    let before = parquet_files(fs.path());
    assert!(
        !before.is_empty(),
        "some files were finished before the disk filled"
    );
    let c = check(fs.path(), &before, &files, None, false);
    c.assert_no_mismatch();
    assert_eq!(c.rows("pyarrow"), committed as u64);

    // Room again: the runner replays from its last commit.
    fs.remount("size=64m");
    run(&mut p, &files, committed, 5).unwrap();
    p.close().unwrap();
    let all = parquet_files(fs.path());
    let c = check(fs.path(), &all, &files, None, false);
    c.assert_no_mismatch();
    for reader in ["pyarrow", "duckdb"] {
        assert_eq!(
            c.ids(reader),
            manifest_ids(&files),
            "{reader}: each alert once"
        );
    }
}

#[test]
fn read_only_folder_fails_the_step_then_the_replay_writes_every_alert_once() {
    let fs = Tmpfs::mount("16m");
    let files = alerts("ztf/alerts/kowalski/");
    let mut p = pipeline(&yaml("directory: out"), fs.path(), None);
    run(&mut p, &files[..10], 0, 10).unwrap();
    fs.remount("ro");
    let (committed, error) = run(&mut p, &files, 10, 5).expect_err("a read-only folder");
    assert_eq!(committed, 10);
    assert!(error.contains("Read-only file system"), "{error}");
    fs.remount("rw");
    run(&mut p, &files, committed, 5).unwrap();
    p.close().unwrap();
    let out = fs.path().join("out");
    let c = check(&out, &parquet_files(&out), &files, None, false);
    c.assert_no_mismatch();
    for reader in ["pyarrow", "duckdb"] {
        assert_eq!(
            c.ids(reader),
            manifest_ids(&files),
            "{reader}: each alert once"
        );
    }
}

#[test]
fn output_folder_that_disappears_fails_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let files = alerts("ztf/alerts/fink-broker-local/");
    let mut p = pipeline(&yaml("directory: out\nrow_group_size: 2"), dir.path(), None);
    run(&mut p, &files[..4], 0, 4).unwrap();
    // Row groups are being written to a .part file when the folder goes.
    for (i, f) in files.iter().enumerate().take(7).skip(4) {
        assert!(matches!(
            handle(&mut p, i, f),
            RecordOutcome::Processed { .. }
        ));
    }
    assert!(files_under(&out)
        .iter()
        .any(|f| f.to_string_lossy().ends_with(".parquet.part")));
    std::fs::remove_dir_all(&out).unwrap();
    let e = p.flush().expect_err("the file cannot get its name");
    assert!(e.to_string().contains("No such file or directory"), "{e}");
    // The runner retries from its commit (4): still failing, nothing
    // recreated behind the operator's back.
    match handle(&mut p, 4, &files[4]) {
        RecordOutcome::Failed(e) => assert!(e.to_string().contains("output folder is gone"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(!out.exists());
    // The folder is back (remounted, recreated): the replay succeeds.
    std::fs::create_dir(&out).unwrap();
    run(&mut p, &files, 4, 3).unwrap();
    p.close().unwrap();
    let c = check(&out, &parquet_files(&out), &files, None, false);
    c.assert_no_mismatch();
    assert_eq!(
        c.ids("duckdb"),
        manifest_ids(&files[4..]),
        "once each, after the commit"
    );
    assert_eq!(c.ids("pyarrow"), manifest_ids(&files[4..]));
}

#[test]
fn part_files_of_a_crashed_run_are_removed_and_nothing_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let day = out.join("year=2020/month=01/day=01");
    std::fs::create_dir_all(&day).unwrap();
    let stale = day.join("alerts-0000000000001-1-000000.parquet.part");
    let other = out.join("notes-1.parquet.part");
    std::fs::write(&stale, b"PAR1 no footer").unwrap();
    std::fs::write(&other, b"not ours").unwrap();
    let mut p = pipeline(
        &yaml("directory: out\npartition_by: observation_date"),
        dir.path(),
        None,
    );
    assert!(!stale.exists(), "a crashed run's .part is removed at start");
    assert!(other.exists(), "files of another prefix are left alone");
    let files = alerts("ztf/alerts/fink-broker-local/");
    run(&mut p, &files, 0, 100).unwrap();
    p.close().unwrap();
    std::fs::remove_file(&other).unwrap();
    let written = parquet_files(&out);
    assert_eq!(written.len(), 1, "one schema, one night, one flush");
    assert!(written[0].starts_with(&day), "{written:?}");
}

#[test]
fn parameters_are_checked_at_load_with_their_yaml_path() {
    let dir = tempfile::tempdir().unwrap();
    let registry = starlog_sinks::registry();
    let load = |params: &str| {
        PipelineSpec::from_yaml_str(&yaml(params), "test", dir.path(), &registry)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let e = load("directory: x\ncompression: lz4");
    assert!(
        e.starts_with(
            "component.processors[0].params.compression: expected one of zstd, snappy, none"
        ),
        "{e}"
    );
    let e = load("max_records: 10");
    assert!(
        e.starts_with("component.processors[0].params.directory: missing"),
        "{e}"
    );
    let e = load("directory: x\ncolumns: [candidate..magpsf]");
    assert!(
        e.starts_with("component.processors[0].params.columns[0]: expected a dotted field path"),
        "{e}"
    );
    let e = load("directory: x\ncolumns: [candidate.ra, diaSource.ra]");
    assert!(
        e.contains("columns[1]: column name \"ra\" is used twice"),
        "{e}"
    );
    let e = load("directory: x\ncolumns: [{ name: m, pth: candidate.magpsf }]");
    assert!(
        e.starts_with("component.processors[0].params.columns[0]"),
        "{e}"
    );
    let e = load("directory: x\npartition_by: night");
    assert!(
        e.contains("params.partition_by: expected one of none, observation_date"),
        "{e}"
    );
    let e = load("directory: x\nmax_secs: 5");
    assert!(e.contains("params.max_secs: unknown parameter"), "{e}");
    let e = load("directory: x\nrow_group_size: 0");
    assert!(e.contains("params.row_group_size: expected 1 to"), "{e}");
}

#[test]
fn the_example_pipeline_loads() {
    let file = repo().join("examples/pipelines/parquet.yaml");
    let spec = PipelineSpec::from_file(&file, &starlog_sinks::registry())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.chain.classes(), ["ParquetWriter", "ParquetWriter"]);
}
