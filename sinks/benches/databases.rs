//! Throughput of the database writers against local servers (started as
//! the tests start them, `tests/common/databases.rs`), with each server's
//! own bulk-load limit on the same rows in the same run.
//!
//! The ZTF alerts of `testdata/` are cycled into `ROWS` distinct alerts
//! (their `candid` renumbered), then written by a pipeline whose only step
//! is the writer (default mapping: `objectId` and the 100-odd scalar fields
//! of `candidate`), for several batch sizes. Reported: rows/s (wall) and
//! rows per CPU-second of this process (the writer's side: mapping,
//! encoding, the client). The server's limit: the same table's rows
//! exported, then loaded into an empty copy of the table with PostgreSQL
//! `COPY ... FROM` / MariaDB `LOAD DATA INFILE`, timed by the server's own
//! client. Run: `cargo bench -p starlog-sinks --bench databases`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../tests/common/databases.rs"]
mod databases;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use apache_avro::types::Value;
use starlog_processors::config::{BuildContext, PipelineSpec};
use starlog_processors::sink::MemoryTopicSink;
use starlog_processors::{AlertDecoder, Candidate, InputFormat, Pipeline};

const ROWS: usize = 20_000;

fn ztf_alerts() -> Vec<Candidate> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "avro") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/ztf/alerts"),
        &mut files,
    );
    files.sort();
    files
        .iter()
        .map(|f| {
            AlertDecoder::new(InputFormat::ObjectContainer)
                .decode(&std::fs::read(f).unwrap())
                .unwrap()
                .remove(0)
        })
        .collect()
}

/// `c` with its `candidate.candid` set to `candid`.
fn renumbered(c: &Candidate, candid: i64) -> Candidate {
    let mut value = c.value().clone();
    if let Value::Record(fields) = &mut value {
        for (name, v) in fields.iter_mut() {
            if name != "candidate" {
                continue;
            }
            let rec = match v {
                Value::Union(_, inner) => inner.as_mut(),
                other => other,
            };
            if let Value::Record(cf) = rec {
                for (n, x) in cf.iter_mut() {
                    if n == "candid" {
                        *x = Value::Long(candid);
                    }
                }
            }
        }
    }
    Candidate::new(value, Arc::clone(c.schema())).unwrap()
}

/// CPU seconds (user + system) of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    // fields 14 and 15 of stat (utime, stime), counted from field 3 here
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[derive(Clone, Copy)]
enum Db {
    Postgres,
    MariaDb,
}

impl Db {
    fn name(self) -> &'static str {
        match self {
            Db::Postgres => "PostgreSQLWriter",
            Db::MariaDb => "MariaDBWriter",
        }
    }
    fn server(self) -> &'static databases::Server {
        match self {
            Db::Postgres => databases::postgres(),
            Db::MariaDb => databases::mariadb(),
        }
    }
    fn sql(self, sql: &str) -> Vec<Vec<String>> {
        match self {
            Db::Postgres => databases::psql(sql),
            Db::MariaDb => databases::mariadb_sql(sql),
        }
    }
    fn pipeline(self, table: &str, batch: usize) -> Pipeline {
        let s = self.server();
        let url = match self {
            Db::Postgres => format!("postgresql://starlog@127.0.0.1:{}/starlog", s.port),
            Db::MariaDb => format!("mysql://starlog@127.0.0.1:{}/starlog", s.port),
        };
        let yaml = format!(
            "component:\n  type: processing-node\n  source: {{ topic: a, group: g }}\n  processors:\n    - class: {}\n      params: {{ url: \"{url}\", password_file: \"{}\", tls: disable, table: {table}, batch_size: {batch} }}\n",
            self.name(),
            s.password_file.display()
        );
        PipelineSpec::from_yaml_str(
            &yaml,
            "bench.yaml",
            Path::new("."),
            &starlog_sinks::registry(),
        )
        .unwrap()
        .build(&BuildContext::default().with_sink(Arc::new(MemoryTopicSink::new())))
        .unwrap()
    }
}

fn write_all(db: Db, table: &str, batch: usize, alerts: &[Candidate]) -> (f64, f64) {
    db.sql(&format!("DROP TABLE IF EXISTS {table}"));
    let mut p = db.pipeline(table, batch);
    // The table is created with the first alert: not timed.
    let _ = p.run(vec![alerts[0].clone()]).unwrap();
    p.flush().unwrap();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    for chunk in alerts[1..].chunks(1000) {
        let ran = p.run(chunk.to_vec()).unwrap();
        assert_eq!(ran.passed, chunk.len());
    }
    p.flush().unwrap();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let n = db.sql(&format!("SELECT COUNT(*) FROM {table}"))[0][0]
        .parse::<usize>()
        .unwrap();
    assert_eq!(n, alerts.len());
    #[allow(clippy::cast_precision_loss)]
    let rows = (alerts.len() - 1) as f64;
    (rows / wall, rows / cpu.max(0.01))
}

/// The server's bulk load of the rows of `table` into an empty copy.
fn bulk_load(db: Db, table: &str) -> f64 {
    let s = db.server();
    let file = s.dir.join(format!("{table}.dump"));
    let _ = std::fs::remove_file(&file);
    let copy = format!("{table}_bulk");
    db.sql(&format!("DROP TABLE IF EXISTS {copy}"));
    let load = match db {
        Db::Postgres => {
            db.sql(&format!("CREATE TABLE {copy} (LIKE {table} INCLUDING ALL)"));
            db.sql(&format!("COPY {table} TO '{}'", file.display()));
            format!("COPY {copy} FROM '{}'", file.display())
        }
        Db::MariaDb => {
            db.sql(&format!("CREATE TABLE {copy} LIKE {table}"));
            db.sql(&format!(
                "SELECT * FROM {table} INTO OUTFILE '{}'",
                file.display()
            ));
            format!("LOAD DATA INFILE '{}' INTO TABLE {copy}", file.display())
        }
    };
    let t0 = Instant::now();
    db.sql(&load);
    let wall = t0.elapsed().as_secs_f64();
    let n = db.sql(&format!("SELECT COUNT(*) FROM {copy}"))[0][0]
        .parse::<usize>()
        .unwrap();
    #[allow(clippy::cast_precision_loss)]
    let rate = n as f64 / wall;
    db.sql(&format!("DROP TABLE {copy}"));
    let _ = std::fs::remove_file(&file);
    rate
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let base = ztf_alerts();
    let alerts: Vec<Candidate> = (0..ROWS)
        .map(|i| renumbered(&base[i % base.len()], 1_000_000_000_000 + i as i64))
        .collect();
    println!(
        "writers: databases — {ROWS} ZTF rows (default mapping, {} source alerts cycled)",
        base.len()
    );
    println!("| writer | batch_size | rows/s (wall) | rows per CPU-second of the writer process |");
    println!("| --- | ---: | ---: | ---: |");
    for db in [Db::Postgres, Db::MariaDb] {
        for batch in [100, 500, 2000] {
            let (wall, per_cpu) = write_all(db, "bench_rows", batch, &alerts);
            println!("| {} | {batch} | {wall:.0} | {per_cpu:.0} |", db.name());
        }
        let bulk = bulk_load(db, "bench_rows");
        let how = match db {
            Db::Postgres => "COPY FROM (server-side file)",
            Db::MariaDb => "LOAD DATA INFILE",
        };
        println!("| server limit: {how} | — | {bulk:.0} | — |");
    }
}
