//! EmailNotifier against a real SMTP server on loopback: aiosmtpd (PyPI)
//! requiring STARTTLS (a certificate of the test's own CA) and AUTH (the
//! password comes from the environment variable named by `password_env`).
//! Every message's recipients, subject and body are checked; a 550 refusal
//! dead-letters the alert, and a digest gathers the alerts of its interval.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{build, candidate, eventually, feed, handle_all, reasons, ztf_files, Process};
use starlog_testkit::pki::TestCa;

const PASSWORD_ENV: &str = "STARLOG_TEST_SMTP_PASSWORD";

struct Smtp {
    port: u16,
    ca: PathBuf,
    out: PathBuf,
    _dir: tempfile::TempDir,
    _process: Process,
}

impl Smtp {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("Starlog SMTP test CA").unwrap();
        let ca_file = ca.write_cert(&dir.path().join("ca.pem")).unwrap();
        let leaf = ca.write_leaf(dir.path(), "smtp", "localhost").unwrap();
        let out = dir.path().join("messages.jsonl");
        let port = common::free_port();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/smtp_server.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(&leaf.cert)
            .arg(&leaf.key)
            .arg(&out)
            .args(["observer", "s3cret-pass"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "the aiosmtpd server did not start (is aiosmtpd installed? scripts/deps/notify.sh)"
        );
        Smtp {
            port,
            ca: ca_file,
            out,
            _dir: dir,
            _process: Process { child },
        }
    }

    fn messages(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn pipeline(smtp: &Smtp, to: &[&str], extra: &str) -> String {
    std::env::set_var(PASSWORD_ENV, "s3cret-pass");
    format!(
        r#"
type: processing-node
name: email-test
source: {{ topic: alerts }}
input: {{ format: ocf }}
processors:
  - class: EmailNotifier
    params:
      survey: ztf
      smtp:
        host: 127.0.0.1
        port: {}
        username: observer
        password_env: {PASSWORD_ENV}
        ca_file: {}
      from: "Starlog <alerts@starlog.test>"
      to: [{}]
      filter_name: nearby-sn
      subject: "[{{filter}}] {{objectId}} at mag {{candidate.magpsf:.2f}}"
      body: "Object {{objectId}} (candid {{candid}})\nRA {{ra:.6f}} Dec {{dec:.6f}}\nBand {{band}}, JD {{jd:.5f}}\n"
{extra}
"#,
        smtp.port,
        smtp.ca.display(),
        to.join(", ")
    )
}

/// The message's header value (unfolded) and body.
fn header(data: &str, name: &str) -> String {
    let mut value = String::new();
    let mut inside = false;
    for line in data.lines() {
        if line.is_empty() {
            break;
        }
        if inside && (line.starts_with(' ') || line.starts_with('\t')) {
            value.push_str(line.trim_start());
            continue;
        }
        inside = false;
        if let Some(v) = line.strip_prefix(&format!("{name}: ")) {
            value = v.to_owned();
            inside = true;
        }
    }
    value
}

fn body(data: &str) -> String {
    let text = data
        .split_once("\r\n\r\n")
        .or_else(|| data.split_once("\n\n"))
        .unwrap()
        .1;
    text.replace("\r\n", "\n")
}

#[test]
fn one_message_per_alert_over_starttls_with_login() {
    let smtp = Smtp::start();
    let files = ztf_files(3);
    let (mut p, sink) = build(&pipeline(
        &smtp,
        &["a@observers.test", "'\"B\" <b@observers.test>'"],
        "",
    ));
    feed(&mut p, &files);
    assert!(sink.records().is_empty(), "{:?}", reasons(&sink.records()));
    let messages = smtp.messages();
    assert_eq!(messages.len(), 3);
    for (m, f) in messages.iter().zip(&files) {
        let c = candidate(f);
        let id = c.object_id().unwrap().to_string();
        assert_eq!(m["tls"], true);
        assert_eq!(m["authenticated"], true);
        assert_eq!(m["mail_from"], "alerts@starlog.test");
        assert_eq!(
            m["rcpt_tos"],
            serde_json::json!(["a@observers.test", "b@observers.test"])
        );
        let data = m["data"].as_str().unwrap();
        assert_eq!(
            header(data, "Subject"),
            format!("[nearby-sn] {id} at mag {:.2}", c.magnitude().unwrap())
        );
        assert!(header(data, "To").contains("b@observers.test"), "{data}");
        let jd = c.mjd().unwrap() + 2_400_000.5;
        // SMTP ends the data with a line break of its own.
        assert_eq!(
            body(data).trim_end(),
            format!(
                "Object {id} (candid {})\nRA {:.6} Dec {:.6}\nBand {}, JD {jd:.5}\n",
                c.alert_id(),
                c.ra(),
                c.dec(),
                c.band().unwrap()
            )
            .trim_end()
        );
    }
}

#[test]
fn a_550_refusal_dead_letters_the_alert() {
    let smtp = Smtp::start();
    let files = ztf_files(2);
    let (mut p, sink) = build(&pipeline(
        &smtp,
        &["refuse-me@observers.test"],
        "      max_retries: 3",
    ));
    feed(&mut p, &files);
    assert!(smtp.messages().is_empty());
    let dead = sink.records_for("notify-dead-letter");
    assert_eq!(dead.len(), 2);
    for (r, f) in reasons(&dead).iter().zip(&files) {
        assert!(r.contains("550"), "{r}");
        assert!(
            !r.contains("gave up"),
            "a permanent refusal is not retried: {r}"
        );
        let _ = f;
    }
    assert_eq!(p.counters().chain.passed, 2);
}

#[test]
fn a_wrong_password_is_not_delivered() {
    let smtp = Smtp::start();
    let yaml = pipeline(
        &smtp,
        &["a@observers.test"],
        "      max_retries: 1\n      retry_backoff_ms: 10",
    )
    .replace(PASSWORD_ENV, "STARLOG_TEST_SMTP_WRONG_PASSWORD");
    std::env::set_var("STARLOG_TEST_SMTP_WRONG_PASSWORD", "wrong");
    let (mut p, sink) = build(&yaml);
    feed(&mut p, &ztf_files(1));
    assert!(smtp.messages().is_empty());
    let dead = sink.records_for("notify-dead-letter");
    assert_eq!(dead.len(), 1);
    assert!(reasons(&dead)[0].contains("535"), "{:?}", reasons(&dead));
}

#[test]
fn a_digest_gathers_the_alerts_of_its_interval() {
    let smtp = Smtp::start();
    let files = ztf_files(5);
    // A digest every 1.5 s.
    let (mut p, sink) = build(&pipeline(
        &smtp,
        &["a@observers.test"],
        "      mode: digest\n      digest_minutes: 0.025",
    ));
    handle_all(&mut p, &files[..3]);
    p.flush().unwrap();
    eventually("the first digest", || smtp.messages().len() == 1);
    handle_all(&mut p, &files[3..]);
    // Closing sends what the open digest holds.
    p.close().unwrap();
    assert!(sink.records().is_empty(), "{:?}", reasons(&sink.records()));
    let messages = smtp.messages();
    assert_eq!(messages.len(), 2);
    for (m, chunk) in messages.iter().zip([&files[..3], &files[3..]]) {
        let data = m["data"].as_str().unwrap();
        assert_eq!(
            header(data, "Subject"),
            format!("[nearby-sn] digest: {} alerts", chunk.len())
        );
        let text = body(data);
        for f in chunk {
            let c = candidate(f);
            assert!(
                text.contains(&format!("(candid {})", c.alert_id())),
                "{text}"
            );
        }
    }
}
