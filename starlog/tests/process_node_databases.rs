//! `starlog process` writing alerts into PostgreSQL and MariaDB (real
//! servers, see sinks/tests/common/databases.rs): the node is killed with
//! SIGKILL while alerts stream in and its batches are half full, then
//! restarted; afterwards every alert is exactly one row in each database,
//! equal to the alert read independently.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../broker/tests/common/mod.rs"]
mod common;
#[path = "../../sinks/tests/common/databases.rs"]
mod databases;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use common::TestBroker;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

const PASSWORD_ENV: &str = "STARLOG_TEST_DB_PASSWORD";

fn pipeline(pg_port: u16, maria_port: u16) -> String {
    format!(
        r#"
component:
  type: processing-node
  name: db-node
  source: {{ topic: alerts-db, group: db-nodes }}
  processors:
    - class: PostgreSQLWriter
      params:
        url: "postgresql://starlog@127.0.0.1:{pg_port}/starlog"
        password_env: {PASSWORD_ENV}
        tls: disable
        table: node_kill9
        batch_size: 7
    - class: MariaDBWriter
      params:
        url: "mysql://starlog@127.0.0.1:{maria_port}/starlog"
        password_env: {PASSWORD_ENV}
        tls: disable
        table: node_kill9
        batch_size: 7
        columns: [objectId, candidate.magpsf]
"#
    )
}

fn spawn_node(pipeline: &Path, bootstrap: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_starlog"))
        .args(["process", "--bootstrap", bootstrap])
        .arg(pipeline)
        .env(PASSWORD_ENV, databases::PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn starlog process")
}

fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    let Value::Record(fields) = v else {
        panic!("not a record")
    };
    match &fields.iter().find(|(n, _)| n == name).unwrap().1 {
        Value::Union(_, inner) => inner,
        other => other,
    }
}

/// candid → (objectId, magpsf), read with apache-avro's own reader.
fn expected(files: &[std::path::PathBuf]) -> BTreeMap<i64, (String, f32)> {
    files
        .iter()
        .map(|f| {
            let mut r = apache_avro::Reader::new(std::fs::File::open(f).unwrap()).unwrap();
            let a = r.next().unwrap().unwrap();
            let c = field(&a, "candidate");
            let (Value::Long(candid), Value::String(obj), Value::Float(mag)) = (
                field(c, "candid"),
                field(&a, "objectId"),
                field(c, "magpsf"),
            ) else {
                panic!("unexpected types in {}", f.display())
            };
            (*candid, (obj.clone(), *mag))
        })
        .collect()
}

/// Rows in PostgreSQL (0 before the writer created the table).
fn pg_count() -> usize {
    match databases::try_psql("SELECT COUNT(*) FROM node_kill9") {
        Ok(rows) => rows[0][0].parse().unwrap(),
        Err(e) if e.contains("does not exist") => 0,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_batch_and_restarted_leaves_every_alert_once_in_both_databases() {
    let pg = databases::postgres();
    let maria = databases::mariadb();
    databases::psql("DROP TABLE IF EXISTS node_kill9");
    databases::mariadb_sql("DROP TABLE IF EXISTS node_kill9");

    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .create()
        .unwrap();
    for r in admin
        .create_topics(
            &[NewTopic::new("alerts-db", 2, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap()
    {
        r.unwrap();
    }
    let files = common::alert_files("ztf/alerts");
    let want = expected(&files);
    let file = broker.dir.path().join("db-node.yaml");
    std::fs::write(&file, pipeline(pg.port, maria.port)).unwrap();
    let mut node = spawn_node(&file, &bs);

    // Alerts stream in while the node writes; it is killed once some rows
    // are in but not all, with a batch under way.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("linger.ms", "0")
        .create()
        .unwrap();
    let mut killed_at = None;
    for (i, f) in files.iter().enumerate() {
        let key = f.file_stem().unwrap().to_string_lossy().into_owned();
        let value = std::fs::read(f).unwrap();
        producer
            .send(
                FutureRecord::to("alerts-db").key(&key).payload(&value),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        if killed_at.is_none() && i % 5 == 0 {
            let n = tokio::task::spawn_blocking(pg_count).await.unwrap();
            if n >= 15 {
                node.kill().unwrap(); // SIGKILL
                killed_at = Some((i + 1, n));
            }
        }
    }
    if killed_at.is_none() {
        node.kill().unwrap();
    }
    node.wait().unwrap();
    let (sent, rows_at_kill) = killed_at.expect("the node wrote 15 rows before the last alert");
    assert!(
        rows_at_kill < want.len(),
        "killed mid-stream: {rows_at_kill} rows of {} after {sent} alerts sent",
        want.len()
    );

    // Restarted, it resumes from its last commit.
    let mut node = spawn_node(&file, &bs);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (p, m) = tokio::task::spawn_blocking(|| {
            (
                pg_count(),
                databases::mariadb_sql("SELECT COUNT(*) FROM node_kill9")[0][0]
                    .parse::<usize>()
                    .unwrap(),
            )
        })
        .await
        .unwrap();
        if p == want.len() && m == want.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the restart: {p} rows in PostgreSQL, {m} in MariaDB, want {}",
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(Command::new("kill")
        .arg("-15")
        .arg(node.id().to_string())
        .status()
        .unwrap()
        .success());
    let status = tokio::task::spawn_blocking(move || node.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));

    // Exactly once, equal to the alerts.
    let pg_rows =
        databases::psql(r#"SELECT candid, "objectId", magpsf FROM node_kill9 ORDER BY 1"#);
    let maria_rows =
        databases::mariadb_sql("SELECT alert_id, objectId, magpsf FROM node_kill9 ORDER BY 1");
    for rows in [&pg_rows, &maria_rows] {
        assert_eq!(rows.len(), want.len());
        for (r, (candid, (obj, mag))) in rows.iter().zip(&want) {
            assert_eq!(r[0].parse::<i64>().unwrap(), *candid);
            assert_eq!(&r[1], obj);
            let got: f64 = r[2].parse().unwrap();
            assert!(
                (got - f64::from(*mag)).abs() < 1e-5,
                "{candid}: {got} vs {mag}"
            );
        }
    }
    drop((producer, admin));
    broker.stop().await;
}
