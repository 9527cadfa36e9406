//! The command refuses an in-broker chain it cannot run honestly: against a
//! peer (`compare`), against a broker it does not configure (`--bootstrap`,
//! `--broker-cmd`), and a chain it does not know. Each refusal names why and
//! happens before any broker is started or any message sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn bench(args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_starlog-bench"))
        .current_dir(dir.path())
        .args(args)
        .args(["--no-limits", "--no-progress"])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn compare_refuses_a_chain_for_the_peer() {
    let (code, err) = bench(&[
        "compare",
        "--peer-cmd",
        "true",
        "--peer-name",
        "tansu",
        "--in-broker-chain",
        "pass-all",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("refused for `compare`"), "{err}");
    assert!(err.contains("tansu"), "{err}");
}

#[test]
fn run_refuses_a_chain_on_a_broker_it_does_not_configure() {
    for target in [["--bootstrap", "127.0.0.1:1"], ["--broker-cmd", "true"]] {
        let (code, err) = bench(&["run", target[0], target[1], "--in-broker-chain", "pass-all"]);
        assert_ne!(code, 0, "{target:?}");
        assert!(
            err.contains("needs a Starlog that starlog-bench starts"),
            "{err}"
        );
    }
}

#[test]
fn an_unknown_chain_is_refused_with_the_known_names() {
    let (code, err) = bench(&["run", "--in-broker-chain", "solar-system"]);
    assert_eq!(code, 2, "clap's usage error: {err}");
    assert!(err.contains("solar-system"), "{err}");
    assert!(err.contains("known: pass-all"), "{err}");
}
