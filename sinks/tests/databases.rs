//! PostgreSQLWriter and MariaDBWriter against real servers (started once
//! for this binary, see `common/databases.rs`): the rows equal the alerts of
//! `testdata/` decoded independently (apache-avro's own reader; rows read
//! back with `psql` / `mariadb`), a replay writes each row once, a refused
//! row is dead-lettered with the server's message while the rest of its
//! batch is written, an unreachable database is retried and then fails the
//! record until it is back, and a wrong password is a load error naming the
//! YAML path and the URL, without the password.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/databases.rs"]
mod databases;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use databases::{mariadb, mariadb_sql, postgres, psql, Proxy, PASSWORD};
use starlog_processors::config::{BuildContext, PipelineSpec};
use starlog_processors::dead_letter::REASON_HEADER;
use starlog_processors::sink::MemoryTopicSink;
use starlog_processors::{InputRecord, Pipeline, RecordOutcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Db {
    Postgres,
    MariaDb,
}

impl Db {
    fn class(self) -> &'static str {
        match self {
            Db::Postgres => "PostgreSQLWriter",
            Db::MariaDb => "MariaDBWriter",
        }
    }
    fn port(self) -> u16 {
        match self {
            Db::Postgres => postgres().port,
            Db::MariaDb => mariadb().port,
        }
    }
    fn password_file(self) -> PathBuf {
        match self {
            Db::Postgres => postgres().password_file.clone(),
            Db::MariaDb => mariadb().password_file.clone(),
        }
    }
    fn url(self, port: u16) -> String {
        match self {
            Db::Postgres => format!("postgresql://starlog@127.0.0.1:{port}/starlog"),
            Db::MariaDb => format!("mysql://starlog@127.0.0.1:{port}/starlog"),
        }
    }
    /// A quoted identifier.
    fn q(self, ident: &str) -> String {
        match self {
            Db::Postgres => format!("\"{ident}\""),
            Db::MariaDb => format!("`{ident}`"),
        }
    }
    fn sql(self, sql: &str) -> Vec<Vec<String>> {
        match self {
            Db::Postgres => psql(sql),
            Db::MariaDb => mariadb_sql(sql),
        }
    }
    fn count(self, table: &str) -> usize {
        self.sql(&format!("SELECT COUNT(*) FROM {table}"))[0][0]
            .parse()
            .unwrap()
    }
    fn drop_table(self, table: &str) {
        self.sql(&format!("DROP TABLE IF EXISTS {table}"));
    }
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

fn avro_files(sub: &str) -> Vec<PathBuf> {
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
    let mut out = Vec::new();
    walk(&testdata().join(sub), &mut out);
    out.sort();
    assert!(!out.is_empty(), "no alerts under testdata/{sub}");
    out
}

/// The single record of an alert file, read with apache-avro's reader.
fn read_alert(path: &Path) -> Value {
    let file = std::fs::File::open(path).unwrap();
    let mut reader = apache_avro::Reader::new(file).unwrap();
    reader.next().unwrap().unwrap()
}

fn get<'a>(v: &'a Value, name: &str) -> &'a Value {
    let v = match v {
        Value::Union(_, inner) => inner,
        other => other,
    };
    let Value::Record(fields) = v else {
        panic!("not a record: {v:?}")
    };
    let found = &fields
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no field {name}"))
        .1;
    match found {
        Value::Union(_, inner) => inner,
        other => other,
    }
}

fn num(v: &Value) -> f64 {
    match v {
        Value::Int(i) => f64::from(*i),
        #[allow(clippy::cast_precision_loss)]
        Value::Long(i) => *i as f64,
        Value::Float(f) => f64::from(*f),
        Value::Double(f) => *f,
        other => panic!("not a number: {other:?}"),
    }
}

fn long(v: &Value) -> i64 {
    match v {
        Value::Long(i) => *i,
        Value::Int(i) => i64::from(*i),
        other => panic!("not a long: {other:?}"),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => panic!("not a string: {other:?}"),
    }
}

/// What the ZTF alerts say, by candid: objectId, ra, dec, magpsf, fid, jd.
#[derive(Debug, Clone, PartialEq)]
struct ZtfRow {
    object_id: String,
    ra: f64,
    dec: f64,
    magpsf: f64,
    fid: i64,
    jd: f64,
}

fn ztf_expected() -> BTreeMap<i64, ZtfRow> {
    avro_files("ztf/alerts")
        .iter()
        .map(|f| {
            let a = read_alert(f);
            let c = get(&a, "candidate");
            (
                long(get(c, "candid")),
                ZtfRow {
                    object_id: text(get(&a, "objectId")),
                    ra: num(get(c, "ra")),
                    dec: num(get(c, "dec")),
                    magpsf: num(get(c, "magpsf")),
                    fid: long(get(c, "fid")),
                    jd: num(get(c, "jd")),
                },
            )
        })
        .collect()
}

fn pipeline_yaml(db: Db, port: u16, params: &str) -> String {
    format!(
        "component:\n  type: processing-node\n  source: {{ topic: alerts, group: g }}\n  processors:\n    - class: {class}\n      params:\n        url: \"{url}\"\n        password_file: \"{pw}\"\n        tls: disable\n{params}",
        class = db.class(),
        url = db.url(port),
        pw = db.password_file().display(),
    )
}

fn build(yaml: &str, sink: &Arc<MemoryTopicSink>) -> Pipeline {
    let spec = PipelineSpec::from_yaml_str(
        yaml,
        "test.yaml",
        Path::new("."),
        &starlog_sinks::registry(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    spec.build(&BuildContext::default().with_sink(sink.clone()))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn record(value: &[u8], offset: i64) -> InputRecord<'_> {
    InputRecord {
        topic: "alerts",
        partition: 0,
        offset,
        key: None,
        value,
        headers: &[],
    }
}

/// Feeds every file; every record must be processed.
fn feed(pipeline: &mut Pipeline, files: &[PathBuf]) {
    for (i, f) in files.iter().enumerate() {
        let bytes = std::fs::read(f).unwrap();
        match pipeline.handle(&record(&bytes, i as i64)) {
            RecordOutcome::Processed { passed: 1, .. } => {}
            other => panic!("{}: {other:?}", f.display()),
        }
    }
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-300)
}

/// Reads the ZTF rows of `table` and compares them with the alerts.
fn check_ztf_rows(db: Db, table: &str, expected: &BTreeMap<i64, ZtfRow>) {
    let cols = ["candid", "objectId", "ra", "dec", "magpsf", "fid", "jd"]
        .map(|c| db.q(c))
        .join(", ");
    let rows = db.sql(&format!("SELECT {cols} FROM {table} ORDER BY 1"));
    assert_eq!(rows.len(), expected.len(), "one row per distinct candid");
    for (row, (candid, want)) in rows.iter().zip(expected) {
        let got_candid: i64 = row[0].parse().unwrap();
        assert_eq!(got_candid, *candid);
        assert_eq!(row[1], want.object_id, "objectId of {candid}");
        let f = |i: usize| -> f64 { row[i].parse().unwrap() };
        assert!(
            close(f(2), want.ra, 1e-12),
            "ra of {candid}: {} vs {}",
            row[2],
            want.ra
        );
        assert!(close(f(3), want.dec, 1e-12), "dec of {candid}");
        // magpsf is a float in the alert: a REAL / FLOAT column.
        assert!(
            close(f(4), want.magpsf, 1e-6),
            "magpsf of {candid}: {} vs {}",
            row[4],
            want.magpsf
        );
        assert_eq!(row[5].parse::<i64>().unwrap(), want.fid, "fid of {candid}");
        assert!(close(f(6), want.jd, 1e-12), "jd of {candid}");
    }
}

fn default_mapping_writes_every_alert_once(db: Db, table: &str) {
    db.drop_table(table);
    let files = avro_files("ztf/alerts");
    let expected = ztf_expected();
    let yaml = pipeline_yaml(
        db,
        db.port(),
        &format!("        table: {table}\n        batch_size: 25\n"),
    );
    let sink = Arc::new(MemoryTopicSink::new());
    let mut p = build(&yaml, &sink);
    feed(&mut p, &files);
    p.flush().unwrap();
    check_ztf_rows(db, table, &expected);
    // Every scalar field of `candidate`, plus objectId, is a column.
    let schema_fields = match get(&read_alert(&files[0]), "candidate") {
        Value::Record(f) => f.len(),
        _ => unreachable!(),
    };
    let columns = db.sql(&format!(
        "SELECT COUNT(*) FROM information_schema.columns WHERE table_name = '{table}'"
    ))[0][0]
        .parse::<usize>()
        .unwrap();
    assert_eq!(
        columns,
        schema_fields + 1,
        "candidate's fields and objectId"
    );

    // A replay (a new instance, as after a crash) writes each row once.
    drop(p);
    let mut again = build(&yaml, &sink);
    feed(&mut again, &files);
    again.close().unwrap();
    assert_eq!(db.count(table), expected.len());
    check_ztf_rows(db, table, &expected);
    assert!(sink.records().is_empty(), "nothing dead-lettered");
}

#[test]
fn postgresql_default_mapping_rows_equal_the_ztf_alerts_and_a_replay_writes_them_once() {
    default_mapping_writes_every_alert_once(Db::Postgres, "ztf_default");
}

#[test]
fn mariadb_default_mapping_rows_equal_the_ztf_alerts_and_a_replay_writes_them_once() {
    default_mapping_writes_every_alert_once(Db::MariaDb, "ztf_default");
}

fn rubin_default_mapping(db: Db, table: &str) {
    db.drop_table(table);
    let files = avro_files("lsst/alerts");
    let mut expected: BTreeMap<i64, f64> = BTreeMap::new();
    for f in &files {
        let a = read_alert(f);
        let s = get(&a, "diaSource");
        expected.insert(long(get(s, "diaSourceId")), num(get(s, "ra")));
    }
    let yaml = pipeline_yaml(db, db.port(), &format!("        table: {table}\n"));
    let sink = Arc::new(MemoryTopicSink::new());
    let mut p = build(&yaml, &sink);
    feed(&mut p, &files);
    p.close().unwrap();
    let rows = db.sql(&format!(
        "SELECT {}, {} FROM {table} ORDER BY 1",
        db.q("diaSourceId"),
        db.q("ra")
    ));
    let got: BTreeMap<i64, f64> = rows
        .iter()
        .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap()))
        .collect();
    assert_eq!(got.len(), expected.len());
    for (id, ra) in &expected {
        assert!(close(got[id], *ra, 1e-12), "ra of {id}");
    }
}

#[test]
fn postgresql_default_mapping_of_rubin_alerts_is_keyed_by_dia_source_id() {
    rubin_default_mapping(Db::Postgres, "rubin_default");
}

#[test]
fn mariadb_default_mapping_of_rubin_alerts_is_keyed_by_dia_source_id() {
    rubin_default_mapping(Db::MariaDb, "rubin_default");
}

fn explicit_columns(db: Db, table: &str) {
    db.drop_table(table);
    let files = avro_files("ztf/alerts/kowalski");
    let yaml = pipeline_yaml(
        db,
        db.port(),
        &format!(
            "        table: {table}\n        batch_size: 7\n        columns:\n          - objectId\n          - candidate.magpsf\n          - {{ name: band, path: candidate.fid, type: text }}\n          - {{ name: obj, path: object_id }}\n"
        ),
    );
    let sink = Arc::new(MemoryTopicSink::new());
    let mut p = build(&yaml, &sink);
    feed(&mut p, &files);
    p.close().unwrap();
    let expected: BTreeMap<i64, (String, f64, String)> = files
        .iter()
        .map(|f| {
            let a = read_alert(f);
            let c = get(&a, "candidate");
            (
                long(get(c, "candid")),
                (
                    text(get(&a, "objectId")),
                    num(get(c, "magpsf")),
                    long(get(c, "fid")).to_string(),
                ),
            )
        })
        .collect();
    let rows = db.sql(&format!(
        "SELECT alert_id, {}, magpsf, band, obj FROM {table} ORDER BY 1",
        db.q("objectId")
    ));
    assert_eq!(rows.len(), expected.len());
    for (r, (id, (obj, mag, band))) in rows.iter().zip(&expected) {
        assert_eq!(r[0].parse::<i64>().unwrap(), *id);
        assert_eq!(&r[1], obj);
        assert!(close(r[2].parse().unwrap(), *mag, 1e-6));
        assert_eq!(&r[3], band);
        assert_eq!(&r[4], obj, "object_id names the candidate's object id");
    }
    let columns = db.sql(&format!(
        "SELECT COUNT(*) FROM information_schema.columns WHERE table_name = '{table}'"
    ));
    assert_eq!(
        columns[0][0], "5",
        "alert_id (the key) and the four columns"
    );
}

#[test]
fn postgresql_explicit_columns_with_names_paths_and_types() {
    explicit_columns(Db::Postgres, "ztf_explicit");
}

#[test]
fn mariadb_explicit_columns_with_names_paths_and_types() {
    explicit_columns(Db::MariaDb, "ztf_explicit");
}

/// A table whose CHECK refuses faint detections: those rows are
/// dead-lettered with the server's message, the others are written.
fn refused_rows_are_dead_lettered(db: Db, table: &str) {
    db.drop_table(table);
    let double = if db == Db::Postgres {
        "DOUBLE PRECISION"
    } else {
        "DOUBLE"
    };
    db.sql(&format!(
        "CREATE TABLE {table} (alert_id BIGINT NOT NULL PRIMARY KEY, magpsf {double}, \
         CONSTRAINT bright_only CHECK (magpsf < 19))"
    ));
    let files = avro_files("ztf/alerts");
    let expected = ztf_expected();
    let yaml = pipeline_yaml(
        db,
        db.port(),
        &format!(
            "        table: {table}\n        batch_size: 40\n        dead_letter_topic: refused\n        columns: [candidate.magpsf]\n"
        ),
    );
    let sink = Arc::new(MemoryTopicSink::new());
    let mut p = build(&yaml, &sink);
    feed(&mut p, &files);
    p.flush().unwrap();
    let bright: Vec<i64> = expected
        .iter()
        .filter(|(_, r)| r.magpsf < 19.0)
        .map(|(k, _)| *k)
        .collect();
    let faint: Vec<i64> = expected
        .iter()
        .filter(|(_, r)| r.magpsf >= 19.0)
        .map(|(k, _)| *k)
        .collect();
    assert!(!bright.is_empty() && !faint.is_empty(), "the data has both");
    let written: Vec<i64> = db
        .sql(&format!("SELECT alert_id FROM {table} ORDER BY 1"))
        .iter()
        .map(|r| r[0].parse().unwrap())
        .collect();
    assert_eq!(written, bright, "every accepted row written");
    let mut dead: Vec<i64> = sink
        .records_for("refused")
        .iter()
        .map(|r| {
            let reason = String::from_utf8_lossy(r.header(REASON_HEADER).unwrap()).into_owned();
            assert!(
                reason.contains("bright_only"),
                "the server's message names the constraint: {reason}"
            );
            let row: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
            assert!(row["magpsf"].as_f64().unwrap() >= 19.0);
            String::from_utf8(r.key.clone().unwrap())
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    dead.sort_unstable();
    dead.dedup();
    assert_eq!(dead, faint, "exactly the refused rows dead-lettered");
}

#[test]
fn postgresql_refused_rows_are_dead_lettered_and_the_rest_of_the_batch_written() {
    refused_rows_are_dead_lettered(Db::Postgres, "ztf_refused");
}

#[test]
fn mariadb_refused_rows_are_dead_lettered_and_the_rest_of_the_batch_written() {
    refused_rows_are_dead_lettered(Db::MariaDb, "ztf_refused");
}

/// The database becomes unreachable (a proxy in between is cut): a flush
/// retries with back-off and succeeds when it comes back in time; past the
/// retry time it fails (the runner retries the records), and the same
/// records written again once it is back leave every row once.
fn unreachable_database(db: Db, table: &str) {
    db.drop_table(table);
    let proxy = Proxy::start(db.port());
    let files = avro_files("ztf/alerts/fink-alert-simulator");
    let (first, second) = files.split_at(files.len() / 2);
    let yaml = pipeline_yaml(
        db,
        proxy.port,
        &format!(
            "        table: {table}\n        batch_size: 1000\n        columns: [objectId]\n        retry_backoff_ms: 50\n        retry_max_backoff_ms: 400\n        retry_timeout_ms: 6000\n"
        ),
    );
    let sink = Arc::new(MemoryTopicSink::new());
    let mut p = build(&yaml, &sink);
    feed(&mut p, first);
    p.flush().unwrap();
    assert_eq!(db.count(table), first.len());

    // Down for about a second: the flush waits it out.
    proxy.cut();
    feed(&mut p, second);
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(1000));
            proxy.restore();
        });
        p.flush().unwrap();
    });
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "it did wait"
    );
    assert_eq!(db.count(table), files.len());

    // Down for longer than the retry time: the flush fails, nothing is lost
    // (the records are re-delivered), and once back the pipeline goes on.
    db.sql(&format!("DELETE FROM {table}"));
    proxy.cut();
    feed(&mut p, &files);
    let err = p.flush().unwrap_err().to_string();
    assert!(err.contains(table) && err.contains("unavailable"), "{err}");
    proxy.restore();
    feed(&mut p, &files); // the runner's re-delivery from its last commit
    p.flush().unwrap();
    assert_eq!(db.count(table), files.len());
    let objects = db.sql(&format!(
        "SELECT COUNT(DISTINCT {}) FROM {table}",
        db.q("objectId")
    ));
    let want: std::collections::BTreeSet<String> = files
        .iter()
        .map(|f| text(get(&read_alert(f), "objectId")))
        .collect();
    assert_eq!(objects[0][0], want.len().to_string());
    assert!(sink.records().is_empty(), "nothing dead-lettered");
}

#[test]
fn postgresql_unreachable_database_is_retried_then_fails_the_record_until_back() {
    unreachable_database(Db::Postgres, "ztf_unreachable");
}

#[test]
fn mariadb_unreachable_database_is_retried_then_fails_the_record_until_back() {
    unreachable_database(Db::MariaDb, "ztf_unreachable");
}

fn wrong_password(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let wrong = "not-the-password-42";
    std::fs::write(dir.path().join("pw"), wrong).unwrap();
    let yaml = format!(
        "component:\n  type: processing-node\n  source: {{ topic: alerts, group: g }}\n  processors:\n    - class: {}\n      params: {{ url: \"{}\", password_file: pw, tls: disable, table: t }}\n",
        db.class(),
        db.url(db.port())
    );
    let spec =
        PipelineSpec::from_yaml_str(&yaml, "test.yaml", dir.path(), &starlog_sinks::registry())
            .unwrap();
    let err = spec
        .build(&BuildContext::default())
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("component.processors[0].params.password_file"),
        "names the YAML path: {err}"
    );
    assert!(err.contains(&db.url(db.port())), "names the URL: {err}");
    assert!(
        !err.contains(wrong) && !err.contains(PASSWORD),
        "no password: {err}"
    );
}

#[test]
fn postgresql_wrong_password_is_a_load_error_naming_the_yaml_path_and_url() {
    wrong_password(Db::Postgres);
}

#[test]
fn mariadb_wrong_password_is_a_load_error_naming_the_yaml_path_and_url() {
    wrong_password(Db::MariaDb);
}

#[test]
fn parameter_faults_carry_their_yaml_path() {
    let cases: [(&str, &str, &str); 7] = [
        (
            "url: \"postgresql://u:pw@h/db\", table: t",
            "params.url",
            "password_env or password_file",
        ),
        (
            "url: \"http://h/db\", table: t",
            "params.url",
            "postgresql://",
        ),
        (
            "url: \"postgresql://u@h/db\", table: \"t; drop\"",
            "params.table",
            "plain SQL table name",
        ),
        (
            "url: \"postgresql://u@h/db\", table: t, columns: [{ path: a.b, type: float128 }]",
            "params.columns[0].type",
            "bigint",
        ),
        (
            "url: \"postgresql://u@h/db\", table: t, columns: [a], key: b",
            "params.key",
            "not one of the columns",
        ),
        (
            "url: \"postgresql://u@h/db\", table: t, batch_size: 0",
            "params.batch_size",
            "from 1",
        ),
        (
            "url: \"postgresql://u@h/db\", table: t, tablee: x",
            "params.tablee",
            "unknown parameter",
        ),
    ];
    for (params, path, message) in cases {
        let yaml = format!(
            "component:\n  type: processing-node\n  source: {{ topic: a, group: g }}\n  processors:\n    - class: PostgreSQLWriter\n      params: {{ {params} }}\n"
        );
        let err = PipelineSpec::from_yaml_str(
            &yaml,
            "t.yaml",
            Path::new("."),
            &starlog_sinks::registry(),
        )
        .map(|_| ())
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(&format!("component.processors[0].{path}")) && err.contains(message),
            "{params}: {err}"
        );
    }
}

#[test]
fn the_example_pipelines_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pipelines");
    for name in ["postgresql.yaml", "mariadb.yaml"] {
        let file = dir.join(name);
        let spec = PipelineSpec::from_file(&file, &starlog_sinks::registry())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(
            spec.chain.classes().last().copied(),
            Some(if name == "postgresql.yaml" {
                "PostgreSQLWriter"
            } else {
                "MariaDBWriter"
            }),
            "{name}"
        );
    }
}

impl Db {
    fn server(self) -> &'static databases::Server {
        match self {
            Db::Postgres => postgres(),
            Db::MariaDb => mariadb(),
        }
    }
}

/// `tls: require` with the server's CA: rows written by a user the server
/// admits over TLS only; with an unrelated CA the certificate is rejected
/// and the records fail (retried), nothing is written.
fn tls_required(db: Db, table: &str) {
    db.drop_table(table);
    let s = db.server();
    let url = db
        .url(s.port)
        .replace("starlog@", &format!("{}@", databases::TLS_USER));
    let files = avro_files("ztf/alerts/kowalski/20200202");
    let yaml = |ca: &Path| {
        format!(
            "component:\n  type: processing-node\n  source: {{ topic: alerts, group: g }}\n  processors:\n    - class: {}\n      params:\n        url: \"{url}\"\n        password_file: \"{}\"\n        tls: require\n        ca: \"{}\"\n        table: {table}\n        columns: [objectId]\n        retry_timeout_ms: 300\n",
            db.class(),
            s.password_file.display(),
            ca.display()
        )
    };
    let sink = Arc::new(MemoryTopicSink::new());
    let mut p = build(&yaml(&s.ca), &sink);
    feed(&mut p, &files);
    p.close().unwrap();
    assert_eq!(db.count(table), files.len());

    db.sql(&format!("DELETE FROM {table}"));
    let mut wrong = build(&yaml(&s.other_ca), &sink);
    let bytes = std::fs::read(&files[0]).unwrap();
    match wrong.handle(&record(&bytes, 0)) {
        RecordOutcome::Failed(e) => {
            let err = e.to_string();
            assert!(err.contains("invalid peer certificate"), "{err}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(db.count(table), 0);
}

#[test]
fn postgresql_tls_required_with_the_servers_ca_and_refused_with_another() {
    tls_required(Db::Postgres, "ztf_tls");
}

#[test]
fn mariadb_tls_required_with_the_servers_ca_and_refused_with_another() {
    tls_required(Db::MariaDb, "ztf_tls");
}

/// An alert whose value cannot go into its column (text into a bigint) is
/// never writable: the pipeline dead-letters the original record with the
/// reason, and the chain goes on.
#[test]
fn an_alert_that_cannot_be_mapped_goes_to_the_pipelines_dead_letter_topic() {
    let db = Db::Postgres;
    db.drop_table("ztf_unmappable");
    let yaml = pipeline_yaml(
        db,
        db.port(),
        "        table: ztf_unmappable\n        columns: [{ name: ss, path: candidate.ssnamenr, type: bigint }]\n",
    );
    let sink = Arc::new(MemoryTopicSink::new());
    let mut p = build(&yaml, &sink);
    let files = avro_files("ztf/alerts/kowalski/20200202");
    for (i, f) in files.iter().enumerate() {
        let bytes = std::fs::read(f).unwrap();
        match p.handle(&record(&bytes, i as i64)) {
            RecordOutcome::Processed {
                passed: 0,
                dead_lettered: 1,
                ..
            } => {}
            other => panic!("{}: {other:?}", f.display()),
        }
    }
    p.flush().unwrap();
    let dead = sink.records_for("alerts-dead-letter");
    assert_eq!(dead.len(), files.len());
    for (r, f) in dead.iter().zip(&files) {
        assert_eq!(r.value, std::fs::read(f).unwrap(), "the original record");
        let reason = String::from_utf8_lossy(r.header(REASON_HEADER).unwrap()).into_owned();
        assert!(
            reason.contains("PostgreSQLWriter") && reason.contains("column ss"),
            "{reason}"
        );
    }
    assert_eq!(db.count("ztf_unmappable"), 0);
}
