//! `starlog users` and `starlog acls` offline (`--config`, the broker
//! stopped): the binary run as an operator runs it, the password on stdin,
//! and what it leaves in the data directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cli.rs"]
mod cli;

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_starlog");

/// A configuration whose data directory is inside `dir`, on a free port.
fn config(dir: &Path) -> std::path::PathBuf {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = dir.join("starlog.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:{port}\ndata_dir: {}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    path
}

fn run(args: &[&str], stdin: &str) -> Output {
    cli::run_starlog(args, stdin)
}

fn ok(args: &[&str], stdin: &str) -> String {
    let out = run(args, stdin);
    assert!(
        out.status.success(),
        "starlog {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn refused(args: &[&str], stdin: &str) -> String {
    let out = run(args, stdin);
    assert!(
        !out.status.success(),
        "starlog {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn users_are_set_from_stdin_listed_without_secrets_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let cfg = cfg.to_str().unwrap();
    let password = "correct horse battery staple";
    let out = ok(
        &[
            "users",
            "set",
            "admin",
            "--mechanism",
            "SCRAM-SHA-512",
            "--password-stdin",
            "--config",
            cfg,
        ],
        &format!("{password}\n"),
    );
    assert!(out.contains("admin"), "{out}");
    ok(
        &[
            "users",
            "set",
            "alice",
            "--mechanism",
            "scram-sha-256",
            "--iterations",
            "4096",
            "--password-stdin",
            "--config",
            cfg,
        ],
        "alice-pw\n",
    );

    let list = ok(&["users", "list", "--config", cfg], "");
    let lines: Vec<Vec<&str>> = list
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        vec![
            vec!["admin", "SCRAM-SHA-512", "8192"],
            vec!["alice", "SCRAM-SHA-256", "4096"]
        ],
        "{list}"
    );

    // What is stored: the salted keys, never the password; and the listing
    // shows none of them.
    let file = std::fs::read_to_string(dir.path().join("data/__meta/security.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&file).unwrap();
    let cred = &state["users"]["admin"]["SCRAM-SHA-512"];
    for secret in ["salt", "stored_key", "server_key"] {
        let value = cred[secret].as_str().unwrap();
        assert!(value.len() >= 20, "{secret}: {value}");
        assert!(!list.contains(value), "the listing shows {secret}");
    }
    assert!(!file.contains(password) && !file.contains("alice-pw"));
    assert!(!list.contains(password));
    // The stored credential is the password's (PLAIN and SCRAM check it).
    let stored: starlog_security::ScramCredential = serde_json::from_value(cred.clone()).unwrap();
    assert!(stored.verify_password(password));

    // Setting again replaces the credential.
    ok(
        &["users", "set", "admin", "--password-stdin", "--config", cfg],
        "new-admin-pw\n",
    );
    let file = std::fs::read_to_string(dir.path().join("data/__meta/security.json")).unwrap();
    let state: starlog_security::SecurityState = serde_json::from_str(&file).unwrap();
    let admin = state
        .credential("admin", starlog_security::ScramMechanism::Sha512)
        .unwrap();
    assert!(admin.verify_password("new-admin-pw") && !admin.verify_password(password));

    let out = ok(&["users", "delete", "alice", "--config", cfg], "");
    assert!(out.contains("SCRAM-SHA-256"), "{out}");
    let list = ok(&["users", "list", "--config", cfg], "");
    assert!(!list.contains("alice") && list.contains("admin"), "{list}");
    let err = refused(&["users", "delete", "alice", "--config", cfg], "");
    assert!(err.contains("user alice has no"), "{err}");

    // No --password-stdin, an empty password, too few iterations: refused,
    // saying why, nothing written.
    let before = std::fs::read(dir.path().join("data/__meta/security.json")).unwrap();
    let err = refused(&["users", "set", "bob", "--config", cfg], "pw\n");
    assert!(err.contains("--password-stdin"), "{err}");
    let err = refused(
        &["users", "set", "bob", "--password-stdin", "--config", cfg],
        "\n",
    );
    assert!(err.contains("empty"), "{err}");
    let err = refused(
        &[
            "users",
            "set",
            "bob",
            "--iterations",
            "10",
            "--password-stdin",
            "--config",
            cfg,
        ],
        "pw\n",
    );
    assert!(err.contains("iteration count 10"), "{err}");
    let err = refused(
        &[
            "users",
            "set",
            "bob",
            "--mechanism",
            "SCRAM-SHA-1",
            "--password-stdin",
            "--config",
            cfg,
        ],
        "pw\n",
    );
    assert!(err.contains("--mechanism"), "{err}");
    let after = std::fs::read(dir.path().join("data/__meta/security.json")).unwrap();
    assert_eq!(before, after);
}

#[test]
fn acls_are_added_listed_and_removed_in_kafkas_terms() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let cfg = cfg.to_str().unwrap();
    let out = ok(
        &[
            "acls",
            "add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--operation",
            "Describe",
            "--topic",
            "alerts-",
            "--resource-pattern-type",
            "prefixed",
            "--config",
            cfg,
        ],
        "",
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("Allow")).count(),
        2,
        "two ACLs: {out}"
    );
    ok(
        &[
            "acls",
            "add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "read",
            "--group",
            "alice",
            "--resource-pattern-type",
            "PREFIXED",
            "--config",
            cfg,
        ],
        "",
    );
    ok(
        &[
            "acls",
            "add",
            "--deny-principal",
            "User:*",
            "--host",
            "10.0.0.9",
            "--operation",
            "All",
            "--cluster",
            "--config",
            cfg,
        ],
        "",
    );
    ok(
        &[
            "acls",
            "add",
            "--allow-principal",
            "User:svc",
            "--operation",
            "Write",
            "--transactional-id",
            "tx-1",
            "--config",
            cfg,
        ],
        "",
    );
    let rows = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("Allow") || l.starts_with("Deny"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let all = ok(&["acls", "list", "--config", cfg], "");
    assert_eq!(
        rows(&all),
        vec![
            "Allow User:alice * Read Topic Prefixed alerts-",
            "Allow User:alice * Describe Topic Prefixed alerts-",
            "Allow User:alice * Read Group Prefixed alice",
            "Deny User:* 10.0.0.9 All Cluster Literal kafka-cluster",
            "Allow User:svc * Write TransactionalId Literal tx-1",
        ],
        "{all}"
    );
    // Listing one resource, and one principal.
    let topic = ok(&["acls", "list", "--topic", "alerts-", "--config", cfg], "");
    assert_eq!(rows(&topic).len(), 2, "{topic}");
    let svc = ok(
        &["acls", "list", "--principal", "User:svc", "--config", cfg],
        "",
    );
    assert_eq!(
        rows(&svc),
        vec!["Allow User:svc * Write TransactionalId Literal tx-1"]
    );
    // Removing one operation, then everything on a resource.
    let out = ok(
        &[
            "acls",
            "remove",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Describe",
            "--topic",
            "alerts-",
            "--resource-pattern-type",
            "prefixed",
            "--config",
            cfg,
        ],
        "",
    );
    assert_eq!(
        rows(&out),
        vec!["Allow User:alice * Describe Topic Prefixed alerts-"]
    );
    ok(&["acls", "remove", "--cluster", "--config", cfg], "");
    let all = ok(&["acls", "list", "--config", cfg], "");
    assert_eq!(
        rows(&all),
        vec![
            "Allow User:alice * Read Topic Prefixed alerts-",
            "Allow User:alice * Read Group Prefixed alice",
            "Allow User:svc * Write TransactionalId Literal tx-1",
        ],
        "{all}"
    );
    // The file holds the same ACLs (what a broker starting on it reads).
    let file = std::fs::read_to_string(dir.path().join("data/__meta/security.json")).unwrap();
    let state: starlog_security::SecurityState = serde_json::from_str(&file).unwrap();
    assert_eq!(state.acls.len(), 3);
}

#[test]
fn bad_arguments_are_named_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let cfg = cfg.to_str().unwrap();
    let add = |extra: &[&str]| {
        let mut args = vec!["acls", "add"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--config", cfg]);
        refused(&args, "")
    };
    let err = add(&[
        "--allow-principal",
        "alice",
        "--operation",
        "Read",
        "--topic",
        "t",
    ]);
    assert!(
        err.contains("--allow-principal") && err.contains("User:alice"),
        "{err}"
    );
    let err = add(&[
        "--deny-principal",
        "User:",
        "--operation",
        "Read",
        "--topic",
        "t",
    ]);
    assert!(err.contains("--deny-principal"), "{err}");
    let err = add(&[
        "--allow-principal",
        "User:alice",
        "--operation",
        "Reed",
        "--topic",
        "t",
    ]);
    assert!(
        err.contains("--operation") && err.contains("Reed") && err.contains("Read"),
        "{err}"
    );
    let err = add(&[
        "--allow-principal",
        "User:alice",
        "--operation",
        "Read",
        "--topic",
        "t",
        "--resource-pattern-type",
        "regex",
    ]);
    assert!(err.contains("--resource-pattern-type"), "{err}");
    let err = add(&["--allow-principal", "User:alice", "--topic", "t"]);
    assert!(err.contains("--operation"), "{err}");
    let err = add(&["--allow-principal", "User:alice", "--operation", "Read"]);
    assert!(err.contains("--topic"), "{err}");
    let err = add(&["--operation", "Read", "--topic", "t"]);
    assert!(err.contains("--allow-principal"), "{err}");
    let err = add(&[
        "--allow-principal",
        "User:alice",
        "--operation",
        "Read",
        "--topic",
        "*",
        "--resource-pattern-type",
        "prefixed",
    ]);
    assert!(err.contains("prefixed pattern cannot be `*`"), "{err}");
    // Neither --config nor --bootstrap-server, or both.
    let err = refused(&["acls", "list"], "");
    assert!(
        err.contains("--config") && err.contains("--bootstrap-server"),
        "{err}"
    );
    let err = refused(
        &[
            "acls",
            "list",
            "--config",
            cfg,
            "--bootstrap-server",
            "127.0.0.1:1",
        ],
        "",
    );
    assert!(err.contains("--bootstrap-server"), "{err}");
    assert!(
        !dir.path().join("data/__meta/security.json").exists(),
        "nothing was written"
    );
}

#[test]
fn a_running_broker_is_not_changed_behind_its_back() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let text = std::fs::read_to_string(&cfg).unwrap();
    let listen = text
        .lines()
        .find_map(|l| l.strip_prefix("listen: "))
        .unwrap()
        .to_string();
    // Something (the broker) holds the configured address.
    let _held = std::net::TcpListener::bind(&listen).unwrap();
    let err = refused(
        &[
            "users",
            "set",
            "admin",
            "--password-stdin",
            "--config",
            cfg.to_str().unwrap(),
        ],
        "pw-pw-pw\n",
    );
    assert!(err.contains("running") && err.contains(&listen), "{err}");
    assert!(!dir.path().join("data/__meta/security.json").exists());
}

/// A `starlog serve` process, killed when dropped.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn online_users_and_acls_go_through_a_running_broker_with_a_sasl_login() {
    let dir = tempfile::tempdir().unwrap();
    let (sasl, public) = (free_port(), free_port());
    let cfg = dir.path().join("starlog.yaml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir: {data}\n\
             listeners:\n\
             \x20 - {{ name: internal, listen: 127.0.0.1:{sasl}, security: SASL_PLAINTEXT, sasl_mechanisms: [SCRAM-SHA-512, SCRAM-SHA-256] }}\n\
             \x20 - {{ name: public, listen: 127.0.0.1:{public}, security: PLAINTEXT }}\n\
             security: {{ super_users: [User:admin], allow_everyone_if_no_acl_found: false }}\n\
             http: {{ enabled: false }}\n",
            data = dir.path().join("data").display()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    // The first administrator, before the first start.
    ok(
        &["users", "set", "admin", "--password-stdin", "--config", cfg],
        "admin-pw\n",
    );
    let log = std::fs::File::create(dir.path().join("broker.log")).unwrap();
    let _broker = Served(
        Command::new(BIN)
            .args(["serve", "--config", cfg])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", sasl)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the broker did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let server = format!("127.0.0.1:{sasl}");
    let as_admin = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| (*s).to_string()).collect();
        v.extend(
            [
                "--bootstrap-server",
                &server,
                "--sasl-mechanism",
                "SCRAM-SHA-512",
                "--user",
                "admin",
                "--password-stdin",
            ]
            .map(String::from),
        );
        v
    };

    // A user set online: the login's password first, then the new one.
    let args = as_admin(&[
        "users",
        "set",
        "alice",
        "--mechanism",
        "SCRAM-SHA-256",
        "--iterations",
        "4096",
    ]);
    ok(&strs(&args), "admin-pw\nalice-pw\n");
    let list = ok(&strs(&as_admin(&["users", "list"])), "admin-pw\n");
    let rows: Vec<Vec<&str>> = list
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["admin", "SCRAM-SHA-512", "8192"],
            vec!["alice", "SCRAM-SHA-256", "4096"]
        ],
        "{list}"
    );

    // ACLs online.
    let acl = [
        "--allow-principal",
        "User:alice",
        "--operation",
        "Read",
        "--topic",
        "alerts-",
        "--resource-pattern-type",
        "prefixed",
    ];
    let mut add = vec!["acls", "add"];
    add.extend_from_slice(&acl);
    ok(&strs(&as_admin(&add)), "admin-pw\n");
    let listed = ok(&strs(&as_admin(&["acls", "list"])), "admin-pw\n");
    let acl_rows: Vec<String> = listed
        .lines()
        .filter(|l| l.starts_with("Allow"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        acl_rows,
        vec!["Allow User:alice * Read Topic Prefixed alerts-"],
        "{listed}"
    );

    // Alice logs in with her new password, but may not manage ACLs; an
    // anonymous client of the public listener neither; a wrong password
    // does not log in.
    let as_alice = [
        "acls",
        "list",
        "--bootstrap-server",
        &server,
        "--sasl-mechanism",
        "SCRAM-SHA-256",
        "--user",
        "alice",
        "--password-stdin",
    ];
    let err = refused(&as_alice, "alice-pw\n");
    assert!(err.to_lowercase().contains("authorization"), "{err}");
    let public_server = format!("127.0.0.1:{public}");
    let err = refused(&["acls", "list", "--bootstrap-server", &public_server], "");
    assert!(err.to_lowercase().contains("authorization"), "{err}");
    let err = refused(&strs(&as_admin(&["users", "list"])), "wrong-pw\n");
    assert!(err.contains("SASL"), "{err}");

    let mut remove = vec!["acls", "remove"];
    remove.extend_from_slice(&acl);
    let out = ok(&strs(&as_admin(&remove)), "admin-pw\n");
    assert!(out.contains("alerts-"), "{out}");
    let listed = ok(&strs(&as_admin(&["acls", "list"])), "admin-pw\n");
    assert!(!listed.contains("alice"), "{listed}");

    // Deleted online: alice can no longer log in.
    ok(
        &strs(&as_admin(&["users", "delete", "alice"])),
        "admin-pw\n",
    );
    let err = refused(&as_alice, "alice-pw\n");
    assert!(err.contains("SASL"), "{err}");
    let list = ok(&strs(&as_admin(&["users", "list"])), "admin-pw\n");
    assert!(!list.contains("alice"), "{list}");
}
