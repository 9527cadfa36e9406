//! SlackNotifier against a local HTTP receiver standing in for Slack's
//! incoming webhooks (the one permitted stand-in: Slack is out of reach).
//! The receiver checks every payload and answers as scripted: 200, a 429
//! with Retry-After (honoured), a 500 (retried, then dead-lettered), or a
//! held answer so that alerts pile up into a batch.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{build, candidate, eventually, feed, handle_all, reasons, ztf_files};

// The in-broker test starts a broker in this binary.
#[global_allocator]
static GLOBAL: starlog_alloc::GuardedAllocator = starlog_alloc::GuardedAllocator;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Request {
    at: Instant,
    path: String,
    content_type: String,
    body: serde_json::Value,
}

/// An answer: status, extra header, and an optional gate to wait on first.
struct Answer {
    status: u16,
    header: Option<String>,
    gate: Option<mpsc::Receiver<()>>,
}

impl Answer {
    fn status(status: u16) -> Self {
        Answer {
            status,
            header: None,
            gate: None,
        }
    }
}

struct Receiver {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/services/T000/B000/secret",
            listener.local_addr().unwrap()
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Mutex<VecDeque<Answer>>> = Arc::new(Mutex::new(VecDeque::new()));
        let (r, s) = (requests.clone(), script.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(stream) = conn else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let path = line.split(' ').nth(1).unwrap_or("").to_owned();
                assert!(line.starts_with("POST "), "{line}");
                let (mut len, mut content_type) = (0usize, String::new());
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    let (k, v) = h.split_once(':').unwrap();
                    match k.to_ascii_lowercase().as_str() {
                        "content-length" => len = v.trim().parse().unwrap(),
                        "content-type" => content_type = v.trim().to_owned(),
                        _ => {}
                    }
                }
                let mut body = vec![0u8; len];
                reader.read_exact(&mut body).unwrap();
                r.lock().unwrap().push(Request {
                    at: Instant::now(),
                    path,
                    content_type,
                    body: serde_json::from_slice(&body).expect("the payload is JSON"),
                });
                let answer = s.lock().unwrap().pop_front().unwrap_or(Answer::status(200));
                if let Some(gate) = answer.gate {
                    let _ = gate.recv();
                }
                let mut out = stream;
                let reason = match answer.status {
                    200 => "OK",
                    429 => "Too Many Requests",
                    _ => "Error",
                };
                let text = if answer.status == 200 {
                    "ok"
                } else {
                    "no_service"
                };
                let extra = answer
                    .header
                    .map(|h| format!("{h}\r\n"))
                    .unwrap_or_default();
                let _ = write!(
                    out,
                    "HTTP/1.1 {} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{text}",
                    answer.status,
                    text.len()
                );
            }
        });
        Receiver {
            url,
            requests,
            script,
        }
    }

    fn push(&self, answer: Answer) {
        self.script.lock().unwrap().push_back(answer);
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    fn texts(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| r.body["text"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn pipeline(url: &str, extra: &str) -> String {
    format!(
        r#"
type: processing-node
name: slack-test
source: {{ topic: alerts }}
input: {{ format: ocf }}
processors:
  - class: SlackNotifier
    params:
      survey: ztf
      webhook_url: "{url}"
      filter_name: bright-ones
      username: starlog-bot
      text: "{{objectId}} mag {{candidate.magpsf:.2f}} at {{ra:.5f}} {{dec:.5f}} ({{jd:iso}})"
      link: "https://lasair-ztf.lsst.ac.uk/objects/{{objectId}}/"
{extra}
"#
    )
}

fn expected_text(c: &starlog_processors::Candidate) -> String {
    let id = c.object_id().unwrap().to_string();
    format!(
        "{id} mag {:.2} at {:.5} {:.5} (",
        c.magnitude().unwrap(),
        c.ra(),
        c.dec()
    )
}

#[test]
fn one_message_per_alert_with_the_templated_text_and_link() {
    let rx = Receiver::start();
    let files = ztf_files(4);
    let (mut p, sink) = build(&pipeline(&rx.url, ""));
    feed(&mut p, &files);
    assert!(sink.records().is_empty(), "{:?}", reasons(&sink.records()));
    let requests = rx.requests();
    assert_eq!(requests.len(), 4);
    let mut texts: Vec<String> = rx.texts();
    texts.sort();
    let mut want: Vec<String> = files
        .iter()
        .map(|f| candidate(f))
        .map(|c| {
            let id = c.object_id().unwrap().to_string();
            format!(
                "{}<https://lasair-ztf.lsst.ac.uk/objects/{id}/>",
                expected_text(&c)
            )
        })
        .collect();
    want.sort();
    for (got, want) in texts.iter().zip(&want) {
        let (head, tail) = want.split_once('<').unwrap();
        assert!(got.starts_with(head), "{got} vs {want}");
        assert!(got.ends_with(&format!("<{tail}")), "{got} vs {want}");
        // The time, ISO: `(YYYY-MM-DDTHH:MM:SS.sss)`.
        let iso = &got[head.len()..head.len() + 23];
        assert_eq!(&iso[4..5], "-");
        assert_eq!(&iso[10..11], "T");
    }
    for r in &requests {
        assert_eq!(r.path, "/services/T000/B000/secret");
        assert_eq!(r.content_type, "application/json");
        assert_eq!(r.body["username"], "starlog-bot");
    }
}

#[test]
fn a_429_retry_after_is_honoured() {
    let rx = Receiver::start();
    rx.push(Answer {
        status: 429,
        header: Some("Retry-After: 2".to_owned()),
        gate: None,
    });
    let (mut p, sink) = build(&pipeline(&rx.url, "      retry_backoff_ms: 10"));
    feed(&mut p, &ztf_files(1));
    assert!(sink.records().is_empty(), "{:?}", reasons(&sink.records()));
    let r = rx.requests();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].body, r[1].body);
    let waited = r[1].at.duration_since(r[0].at);
    assert!(
        waited >= Duration::from_secs(2),
        "retried after {waited:?}, not after Retry-After"
    );
}

#[test]
fn a_500_is_retried_then_dead_lettered_and_the_chain_goes_on() {
    let rx = Receiver::start();
    for _ in 0..3 {
        rx.push(Answer::status(500));
    }
    let yaml = pipeline(
        &rx.url,
        "      max_retries: 2\n      retry_backoff_ms: 10\n      dead_letter_topic: slack-dead",
    );
    let (mut p, sink) = build(&yaml);
    let files = ztf_files(2);
    feed(&mut p, &files);
    // Three attempts for the first alert, then the second alert goes through.
    assert_eq!(rx.requests().len(), 4);
    let dead = sink.records_for("slack-dead");
    assert_eq!(dead.len(), 1);
    let reason = &reasons(&dead)[0];
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    assert!(reason.contains("HTTP 500"), "{reason}");
    let c = candidate(&files[0]);
    assert_eq!(
        dead[0].header("starlog.alert_id").unwrap(),
        c.alert_id().to_string().as_bytes()
    );
    assert_eq!(
        dead[0].key.as_deref(),
        Some(c.object_id().unwrap().to_string().as_bytes())
    );
    assert!(rx.texts()[3].starts_with(&expected_text(&candidate(&files[1]))));
}

#[test]
fn a_404_is_dead_lettered_without_retrying() {
    let rx = Receiver::start();
    rx.push(Answer::status(404));
    let (mut p, sink) = build(&pipeline(&rx.url, "      max_retries: 5"));
    feed(&mut p, &ztf_files(1));
    assert_eq!(rx.requests().len(), 1);
    let dead = sink.records_for("notify-dead-letter");
    assert_eq!(dead.len(), 1);
    assert!(reasons(&dead)[0].contains("HTTP 404"));
}

#[test]
fn batches_rate_limit_and_summary() {
    let rx = Receiver::start();
    let (open, gate) = mpsc::channel();
    rx.push(Answer {
        status: 200,
        header: None,
        gate: Some(gate),
    });
    // Two messages at once, then one every 10 s.
    let yaml = pipeline(
        &rx.url,
        "      max_batch: 10\n      rate_limit_per_minute: 6\n      burst: 2\n      dead_letter_topic: slack-dead",
    );
    let (mut p, sink) = build(&yaml);
    let files = ztf_files(9);
    // The first alert's message is held by the receiver while five more queue up.
    handle_all(&mut p, &files[..1]);
    eventually("the first message arrives", || rx.requests().len() == 1);
    handle_all(&mut p, &files[1..6]);
    open.send(()).unwrap();
    p.flush().unwrap();
    let texts = rx.texts();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts[0].starts_with(&expected_text(&candidate(&files[0]))));
    // The five waiting alerts went as one batch message.
    assert!(
        texts[1].starts_with("5 alerts from bright-ones:"),
        "{}",
        texts[1]
    );
    for f in &files[1..6] {
        assert!(
            texts[1].contains(&expected_text(&candidate(f))),
            "{}",
            texts[1]
        );
    }
    // The bucket is empty: the next alerts are over the limit, dead-lettered...
    handle_all(&mut p, &files[6..]);
    p.flush().unwrap();
    let dead = sink.records_for("slack-dead");
    assert_eq!(dead.len(), 3);
    for r in reasons(&dead) {
        assert_eq!(r, "rate limit of 6 messages a minute exceeded");
    }
    // ...and a summary is posted once the limit lifts.
    eventually("the summary message", || rx.requests().len() == 3);
    let summary = &rx.texts()[2];
    assert!(
        summary.contains("rate limit of 6 messages a minute reached, 3 alert(s) not posted")
            && summary.contains("slack-dead"),
        "{summary}"
    );
}

/// An https webhook with a certificate of the test's own CA (`ca_file`):
/// the TLS path of the client, against a rustls server in the test.
#[test]
fn an_https_webhook_with_an_extra_ca() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let dir = tempfile::tempdir().unwrap();
    let ca = starlog_testkit::pki::TestCa::new("Starlog webhook test CA").unwrap();
    let ca_file = ca.write_cert(&dir.path().join("ca.pem")).unwrap();
    let leaf = ca.write_leaf(dir.path(), "hook", "localhost").unwrap();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&leaf.cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&leaf.key).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(tcp) = conn else { return };
            let tls = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut stream = rustls::StreamOwned::new(tls, tcp);
            let mut reader = BufReader::new(&mut stream);
            let mut head = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
            stream.conn.send_close_notify();
            let _ = stream.flush();
            tx.send((head, body)).unwrap();
        }
    });
    let yaml = pipeline(
        &format!("https://localhost:{port}/services/T/B/X"),
        &format!("      ca_file: {}", ca_file.display()),
    );
    let (mut p, sink) = build(&yaml);
    let files = ztf_files(1);
    feed(&mut p, &files);
    assert!(sink.records().is_empty(), "{:?}", reasons(&sink.records()));
    let (head, body) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        head.starts_with("POST /services/T/B/X HTTP/1.1\r\n"),
        "{head}"
    );
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(json["text"]
        .as_str()
        .unwrap()
        .starts_with(&expected_text(&candidate(&files[0]))));
    // Without the extra CA the server's certificate is not trusted: dead-lettered.
    let untrusted = pipeline(
        &format!("https://localhost:{port}/services/T/B/X"),
        "      max_retries: 0",
    );
    let (mut p, sink) = build(&untrusted);
    feed(&mut p, &files);
    let dead = sink.records_for("notify-dead-letter");
    assert_eq!(dead.len(), 1);
    assert!(
        reasons(&dead)[0].to_lowercase().contains("certificate"),
        "{:?}",
        reasons(&dead)
    );
}

/// The chain never waits for a receiver: with the receiver holding its
/// answer, alerts beyond the bounded queue are dead-lettered at once
/// (`process` returns while the delivery thread is still blocked).
#[test]
fn a_stalled_receiver_never_blocks_the_chain() {
    let rx = Receiver::start();
    let (open, gate) = mpsc::channel();
    rx.push(Answer {
        status: 200,
        header: None,
        gate: Some(gate),
    });
    let yaml = pipeline(
        &rx.url,
        "      queue_capacity: 2\n      rate_limit_per_minute: 0\n      dead_letter_topic: slack-dead",
    );
    let (mut p, sink) = build(&yaml);
    let files = ztf_files(5);
    handle_all(&mut p, &files[..1]);
    eventually("the first message is being answered", || {
        rx.requests().len() == 1
    });
    // Two fit in the queue, two do not; the receiver is still holding the first.
    handle_all(&mut p, &files[1..]);
    let dead = sink.records_for("slack-dead");
    assert_eq!(dead.len(), 2);
    for (r, f) in dead.iter().zip(&files[3..]) {
        assert_eq!(
            r.header("starlog.error").unwrap(),
            b"delivery queue full (2 alerts waiting)"
        );
        assert_eq!(
            r.header("starlog.alert_id").unwrap(),
            candidate(f).alert_id().to_string().as_bytes()
        );
    }
    assert_eq!(rx.requests().len(), 1);
    open.send(()).unwrap();
    p.flush().unwrap();
    assert_eq!(rx.requests().len(), 3);
}

fn kafka_python(args: &[String]) -> String {
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python/produce_consume.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kafka-python (scripts/test installs it):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// In the broker: a SlackNotifier in an in-broker pipeline (classes from the
/// `starlog` binary's registry) whose receiver holds its first answer. The
/// broker's produce and fetch paths still serve a kafka-python round trip of
/// every alert; once the receiver answers, each alert is either posted or
/// in the dead-letter topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_broker_a_stalled_receiver_blocks_neither_produce_nor_fetch() {
    let rx = Receiver::start();
    let (open, gate) = mpsc::channel();
    rx.push(Answer {
        status: 200,
        header: None,
        gate: Some(gate),
    });
    let yaml = format!(
        "type: in-broker\nname: slack-in-broker\nsource: {{ topic: ztf-buffer }}\nprocessors:\n  - class: SlackNotifier\n    params:\n      survey: ztf\n      webhook_url: \"{}\"\n      text: \"{{objectId}} {{candid}}\"\n      rate_limit_per_minute: 0\n      queue_capacity: 2\n      timeout_ms: 120000\n      dead_letter_topic: slack-dead\n",
        rx.url
    );
    let node: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    let extensions = starlog_broker::Extensions {
        processors: Some(starlog_sinks::registry()),
        ..starlog_broker::Extensions::default()
    };
    let broker =
        starlog_testkit::TestBroker::start_extended(extensions, |c| c.pipelines = vec![node]).await;
    let bootstrap = broker.bootstrap();
    let files = ztf_files(10);
    let mut args = vec![
        bootstrap.clone(),
        "roundtrip".to_owned(),
        "ztf-buffer".to_owned(),
    ];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let out = tokio::task::spawn_blocking(move || kafka_python(&args))
        .await
        .unwrap();
    assert!(out.contains("roundtrip ok: 10"), "{out}");
    // The receiver is still holding its first answer.
    assert_eq!(rx.requests().len(), 1);
    open.send(()).unwrap();
    // records_in and lag are published after the runner's flush, which
    // waits until every alert is posted or dead-lettered.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = broker.server().pipeline_status();
        if st[0].records_in >= 10 && st[0].lag == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "pipeline stalled: {st:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = rx.requests().len();
    let args = vec![
        bootstrap.clone(),
        "count".to_owned(),
        "slack-dead".to_owned(),
        (10 - delivered).to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || kafka_python(&args))
        .await
        .unwrap();
    assert_eq!(out.trim(), format!("count: {}", 10 - delivered));
    // The first alert and at least the two that fitted in the queue were posted.
    assert!(delivered >= 3, "{delivered}");
    broker.stop().await;
}
