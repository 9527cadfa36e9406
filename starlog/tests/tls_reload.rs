//! Certificate rotation on a running `starlog serve`: the HTTP listener's
//! certificate is replaced on disk, SIGHUP reloads it at once (the process
//! keeps running), and a later change is picked up by the file watch alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use starlog_security::tls::{client_config, ClientTlsSettings};
use starlog_testkit::free_port;
use starlog_testkit::pki::TestCa;

/// GET /metrics over TLS trusting `ca`: the status line, or the error.
fn get_metrics(port: u16, ca: &Path) -> Result<String, String> {
    let config = client_config(
        &ClientTlsSettings {
            ca: ca.to_path_buf(),
            cert: None,
            key: None,
        },
        Path::new("."),
    )
    .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn =
        rustls::ClientConnection::new(Arc::clone(&config), name).map_err(|e| e.to_string())?;
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    let text = String::from_utf8_lossy(&raw);
    Ok(text.lines().next().unwrap_or_default().to_string())
}

fn wait_served(port: u16, ca: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if get_metrics(port, ca).is_ok_and(|s| s.contains(" 200")) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kill(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn sighup_and_file_changes_reload_the_http_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cas: Vec<TestCa> = (1..=3)
        .map(|i| TestCa::new(&format!("ca {i}")).unwrap())
        .collect();
    for (i, ca) in cas.iter().enumerate() {
        ca.write_cert(&d.join(format!("ca{}.pem", i + 1))).unwrap();
    }
    cas[0].write_leaf(d, "http", "localhost").unwrap();
    let (kafka, http) = (free_port(), free_port());
    let config = d.join("starlog.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{kafka}\ndata_dir: {}\n\
             http: {{ listen: 127.0.0.1:{http}, tls: {{ cert: http.pem, key: http.key }} }}\n",
            d.join("data").display()
        ),
    )
    .unwrap();
    let log = d.join("starlog.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_starlog"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_served(http, &d.join("ca1.pem"), Duration::from_secs(20)),
        "served with the first certificate: {}",
        log_text()
    );

    // Rotate to CA 2's certificate and send SIGHUP: served at once.
    cas[1].write_leaf(d, "http", "localhost").unwrap();
    kill(child.id(), "HUP");
    assert!(
        wait_served(http, &d.join("ca2.pem"), Duration::from_secs(5)),
        "served with the second certificate after SIGHUP: {}",
        log_text()
    );
    assert!(get_metrics(http, &d.join("ca1.pem")).is_err());
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP does not stop the broker"
    );
    assert!(log_text().contains("SIGHUP: reloading TLS certificates"));

    // Rotate to CA 3's without a signal: the file watch picks it up.
    std::thread::sleep(Duration::from_millis(1100));
    cas[2].write_leaf(d, "http", "localhost").unwrap();
    assert!(
        wait_served(http, &d.join("ca3.pem"), Duration::from_secs(25)),
        "served with the third certificate after the file watch: {}",
        log_text()
    );
    assert!(log_text().contains("TLS files changed"), "{}", log_text());

    kill(child.id(), "TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
