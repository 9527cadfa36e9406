//! VOEventWriter against the real Comet VOEvent broker (PyPI `comet`),
//! started by each test on loopback: every event must be logged as received
//! and accepted (Comet validates each against the VOEvent 2.0 schema and
//! acks it), and the packets Comet saved are validated again, independently,
//! with `xmllint --schema VOEvent-v2.0.xsd` (the schema Comet ships).
//! Unreachable receivers, receivers that close mid-packet and refusals
//! (nak) dead-letter the alert and the chain goes on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{build, candidate, eventually, feed, reasons, rubin_files, ztf_files, Comet};

/// The VOEvent 2.0 schema shipped inside the comet package.
fn schema() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import comet, os; print(os.path.join(os.path.dirname(comet.__file__), 'schema', 'VOEvent-v2.0.xsd'))",
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "the comet package is not installed (scripts/deps/notify.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(p.is_file(), "{} missing", p.display());
    p
}

fn xmllint_valid(files: &[PathBuf]) {
    common::require_program("xmllint", "libxml2-utils (Debian)");
    assert!(!files.is_empty());
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schema())
        .args(files)
        .output()
        .expect("xmllint");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "xmllint: {err}");
    for f in files {
        assert!(
            err.contains(&format!("{} validates", f.display())),
            "{} not validated: {err}",
            f.display()
        );
    }
}

fn pipeline(survey: &str, receivers: &[String], extra: &str) -> String {
    format!(
        r#"
type: processing-node
name: voevent-test
source: {{ topic: alerts }}
input: {{ format: ocf }}
processors:
  - class: VOEventWriter
    params:
      survey: {survey}
      authority: starlog.test
      stream: {survey}-alerts
      filter_name: test-filter
      receivers: [{}]
      contact_name: Starlog Tests
      contact_email: tests@starlog.invalid
      description: "{{object_id}} at {{ra:hms}} {{dec:dms}}, mag {{magnitude:.2f}}"
{extra}
"#,
        receivers.join(", ")
    )
}

fn received_ivorns(comet: &Comet) -> Vec<String> {
    comet
        .log_text()
        .lines()
        .filter_map(|l| {
            let rest = l.split("VOEvent ").nth(1)?;
            let (ivorn, tail) = rest.split_once(' ')?;
            tail.starts_with("received from").then(|| ivorn.to_owned())
        })
        .collect()
}

#[test]
fn every_alert_reaches_two_comet_receivers_as_a_valid_voevent() {
    let a = Comet::start();
    let b = Comet::start();
    let files = ztf_files(6);
    // A watch-list target on the first alert: its packet carries a cross-match Inference.
    let first = candidate(&files[0]);
    let watch = format!(
        r#"  - class: WatchlistFilter
    params: {{ list_id: followup, targets: [{{ name: target-1, ra: {}, dec: {}, radius: 2 }}] }}
"#,
        first.ra(),
        first.dec()
    );
    let yaml = pipeline(
        "ztf",
        &[a.address(), b.address()],
        "      fields: [objectId, candidate.magpsf, candidate.sigmapsf, candidate.fid, jd, drb]",
    );
    // Put the watch list before the writer (it only annotates matching alerts... and
    // skips the others, so run it in its own pipeline for the first file).
    let (mut p, sink) = build(&yaml);
    feed(&mut p, &files[1..]);
    let with_watch = yaml.replace("processors:\n", &format!("processors:\n{watch}"));
    let (mut pw, sink_w) = build(&with_watch);
    feed(&mut pw, &files[..1]);
    p.close().unwrap();
    pw.close().unwrap();
    assert!(sink.records().is_empty(), "{:?}", reasons(&sink.records()));
    assert!(sink_w.records().is_empty());

    let expected: Vec<String> = files
        .iter()
        .map(|f| format!("ivo://starlog.test/ztf-alerts#{}", candidate(f).alert_id()))
        .collect();
    for comet in [&a, &b] {
        eventually("comet saved every event", || {
            comet.saved().len() == files.len()
        });
        let mut got = received_ivorns(comet);
        got.sort();
        let mut want = expected.clone();
        want.sort();
        assert_eq!(got, want, "comet log:\n{}", comet.log_text());
        let log = comet.log_text();
        assert_eq!(
            log.matches("Event accepted; sending ACK").count(),
            files.len(),
            "{log}"
        );
        assert!(!log.contains("Event rejected"), "{log}");
        xmllint_valid(&comet.saved());
    }
    // The content: position, time, params, Why with the filter and the match.
    let packet_of = |id: i64| {
        a.saved()
            .into_iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .find(|t| t.contains(&format!("#{id}\"")))
            .unwrap()
    };
    let text = packet_of(first.alert_id());
    assert!(text.contains(&format!("<C1>{}</C1>", first.ra())), "{text}");
    assert!(
        text.contains(&format!("<C2>{}</C2>", first.dec())),
        "{text}"
    );
    let objid = first.object_id().unwrap().to_string();
    assert!(
        text.contains(&format!(
            "<Param name=\"objectId\" value=\"{objid}\" dataType=\"string\"/>"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "<Param name=\"candidate.magpsf\" value=\"{}\" dataType=\"float\"/>",
            first.magnitude().unwrap()
        )),
        "{text}"
    );
    assert!(text.contains("<Name>test-filter</Name>"), "{text}");
    assert!(
        text.contains("<Inference relation=\"associated\">"),
        "{text}"
    );
    assert!(text.contains("<Name>target-1</Name>"), "{text}");
    assert!(text.contains("<Concept>followup</Concept>"), "{text}");
    assert!(
        text.contains("<AuthorIVORN>ivo://starlog.test</AuthorIVORN>"),
        "{text}"
    );
    let second = candidate(&files[1]);
    let text2 = packet_of(second.alert_id());
    assert!(!text2.contains("<Inference"), "{text2}");
    // ISO time of the detection (JD - 2400000.5 = MJD).
    let mjd = second.mjd().unwrap();
    let days = mjd.floor();
    let iso_day = {
        // 1970-01-01 is MJD 40587
        let out = Command::new("date")
            .args([
                "-u",
                "-d",
                &format!("@{}", ((days - 40_587.0) * 86_400.0) as i64),
                "+%Y-%m-%d",
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    assert!(
        text2.contains(&format!("<ISOTime>{iso_day}T")),
        "{iso_day}: {text2}"
    );
}

#[test]
fn rubin_alerts_make_valid_voevents() {
    let comet = Comet::start();
    let files = rubin_files(3);
    let yaml = pipeline(
        "rubin",
        &[comet.address()],
        "      fields: [diaSourceId, psfFlux, psfFluxErr, band, diaObject.nDiaSources, magnitude]",
    );
    let (mut p, sink) = build(&yaml);
    feed(&mut p, &files);
    p.close().unwrap();
    assert!(sink.records().is_empty(), "{:?}", reasons(&sink.records()));
    eventually("comet saved every event", || {
        comet.saved().len() == files.len()
    });
    assert_eq!(received_ivorns(&comet).len(), files.len());
    xmllint_valid(&comet.saved());
}

#[test]
fn an_unreachable_receiver_dead_letters_and_the_chain_goes_on() {
    let port = common::free_port();
    let yaml = pipeline(
        "ztf",
        &[format!("127.0.0.1:{port}")],
        "      max_retries: 2\n      retry_backoff_ms: 10\n      timeout_ms: 500\n      dead_letter_topic: vo-dead",
    );
    let (mut p, sink) = build(&yaml);
    let files = ztf_files(3);
    feed(&mut p, &files);
    let dead = sink.records_for("vo-dead");
    assert_eq!(dead.len(), 3, "{:?}", sink.records());
    for (r, f) in dead.iter().zip(&files) {
        let reason = String::from_utf8_lossy(r.header("starlog.error").unwrap()).into_owned();
        assert!(reason.contains(&format!("127.0.0.1:{port}")), "{reason}");
        assert!(reason.starts_with("gave up after 3 attempts"), "{reason}");
        assert_eq!(r.header("starlog.notifier").unwrap(), b"VOEventWriter");
        let c = candidate(f);
        assert_eq!(
            r.header("starlog.alert_id").unwrap(),
            c.alert_id().to_string().as_bytes()
        );
        // The value is the alert as JSON, without cutouts.
        let json: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
        assert_eq!(json["candid"], c.alert_id());
        assert!(json.get("cutoutScience").is_none());
    }
    assert_eq!(p.counters().chain.passed, 3);
}

/// A TCP proxy to `target` that cuts the first `cut` connections after
/// `after` bytes of the first packet; counts connections.
fn cutting_proxy(target: Option<String>, cut: usize, after: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut client) = conn else { return };
            let n = c.fetch_add(1, Ordering::SeqCst);
            if n < cut || target.is_none() {
                let mut buf = vec![0u8; after];
                let _ = client.read_exact(&mut buf);
                drop(client);
                continue;
            }
            let Ok(server) = TcpStream::connect(target.as_deref().unwrap()) else {
                return;
            };
            let (mut c1, mut s1) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c1, &mut s1);
                let _ = s1.shutdown(std::net::Shutdown::Write);
            });
            let (mut s2, mut c2) = (server, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s2, &mut c2);
                let _ = c2.flush();
                let _ = c2.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    (addr, count)
}

#[test]
fn a_receiver_closing_mid_packet_gets_the_event_again_on_a_new_connection() {
    let comet = Comet::start();
    let (proxy, connections) = cutting_proxy(Some(comet.address()), 1, 100);
    let yaml = pipeline("ztf", &[proxy], "      retry_backoff_ms: 50");
    let (mut p, sink) = build(&yaml);
    let files = ztf_files(2);
    feed(&mut p, &files);
    p.close().unwrap();
    assert!(sink.records().is_empty(), "{:?}", reasons(&sink.records()));
    eventually("comet saved both events", || comet.saved().len() == 2);
    assert_eq!(received_ivorns(&comet).len(), 2, "{}", comet.log_text());
    // The cut connection, then one per event (Comet closes after each ack).
    assert_eq!(connections.load(Ordering::SeqCst), 3);
}

#[test]
fn a_receiver_that_always_closes_mid_packet_dead_letters_the_alert() {
    let (proxy, connections) = cutting_proxy(None, usize::MAX, 64);
    let yaml = pipeline(
        "ztf",
        &[proxy],
        "      max_retries: 2\n      retry_backoff_ms: 10",
    );
    let (mut p, sink) = build(&yaml);
    feed(&mut p, &ztf_files(1));
    let dead = sink.records_for("notify-dead-letter");
    assert_eq!(dead.len(), 1);
    let reason = &reasons(&dead)[0];
    assert!(
        reason.contains("closed the connection before acknowledging")
            || reason.contains("reset")
            || reason.contains("Broken pipe"),
        "{reason}"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 3);
}

/// A proxy to `target` that, on its first connection, forwards the event
/// but drops the receiver's answer (a lost ack) and closes; later
/// connections pass through.
fn ack_dropping_proxy(target: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(client) = conn else { return };
            let Ok(server) = TcpStream::connect(&target) else {
                return;
            };
            let (mut c1, mut s1) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c1, &mut s1);
            });
            let (mut s2, mut c2) = (server, client);
            std::thread::spawn(move || {
                if n == 0 {
                    // Wait for the answer, then drop it.
                    let mut b = [0u8; 4];
                    let _ = s2.read_exact(&mut b);
                    let _ = c2.shutdown(std::net::Shutdown::Both);
                } else {
                    let _ = std::io::copy(&mut s2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Both);
                }
            });
        }
    });
    addr
}

/// A lost ack makes the writer send the same packet again; Comet refuses
/// an event it has seen (same bytes) with a nak, which dead-letters the
/// alert at once, without further retries.
#[test]
fn a_nak_dead_letters_without_retrying() {
    let comet = Comet::start();
    let proxy = ack_dropping_proxy(comet.address());
    let yaml = pipeline(
        "ztf",
        &[proxy],
        "      max_retries: 5\n      retry_backoff_ms: 50",
    );
    let files = ztf_files(1);
    let (mut p, sink) = build(&yaml);
    feed(&mut p, &files);
    let dead = sink.records_for("notify-dead-letter");
    assert_eq!(dead.len(), 1, "{}", comet.log_text());
    let reason = &reasons(&dead)[0];
    assert!(
        reason.contains("nak: Event rejected: Previously seen"),
        "{reason}"
    );
    assert!(!reason.contains("gave up"), "{reason}");
    // Comet got the packet twice, accepted it once.
    assert_eq!(received_ivorns(&comet).len(), 2, "{}", comet.log_text());
    assert_eq!(comet.saved().len(), 1);
}
