//! `starlog-bench security` and `run --security-protocol` end to end at a
//! tiny size, against real `starlog` processes: a PLAINTEXT and a SASL_SSL
//! Starlog (test CA, server certificate and SCRAM-SHA-512 user made by the
//! bench) alternately, both arms acknowledging and delivering every message,
//! the report holding both arms and no password. No timing is asserted: the
//! figures are the benchmark's business, not the test's.
//!
//! The `starlog` binary is the one cargo built beside this test (a
//! workspace build or `cargo build -p starlog` makes it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// `target/<profile>/starlog`, beside this test's `deps/` folder.
fn starlog_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join("starlog");
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p starlog` (a workspace test run does)",
        bin.display()
    );
    bin
}

fn bench(args: &[&str], dir: &Path) -> Output {
    let bin = starlog_bin();
    let out_dir = dir.join("out");
    let data_dir = dir.join("data");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_starlog-bench"));
    cmd.args(args)
        .arg("--starlog-bin")
        .arg(&bin)
        .args(["--no-limits", "--no-progress"])
        .arg("--out-dir")
        .arg(&out_dir)
        .arg("--data-dir")
        .arg(&data_dir)
        .env_remove("STARLOG_BENCH_SASL_PASSWORD");
    cmd.output().expect("running starlog-bench")
}

/// The one JSON report in `dir/out`, and the Markdown beside it.
fn report(dir: &Path) -> (Value, String) {
    let out = dir.join("out");
    let jsons: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(jsons.len(), 1, "{jsons:?}");
    let text = std::fs::read_to_string(&jsons[0]).unwrap();
    let md = std::fs::read_to_string(jsons[0].with_extension("md")).unwrap();
    assert!(!text.contains("sasl.password") && !md.contains("sasl.password"));
    (serde_json::from_str(&text).unwrap(), md)
}

fn assert_delivered(run: &Value) {
    let acked = run["produce"]["acknowledged"].as_u64().unwrap();
    assert!(acked > 0, "{run}");
    assert_eq!(acked, run["produce"]["sent"].as_u64().unwrap(), "{run}");
    assert_eq!(run["complete"], Value::Bool(true), "{run}");
}

#[test]
fn the_security_comparison_runs_plaintext_and_sasl_ssl_alternately() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench(
        &[
            "security",
            "--pairs",
            "1",
            "--rate",
            "200",
            "--rate",
            "max",
            "--messages",
            "40",
            "--groups",
            "1",
            "--partitions",
            "2",
        ],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("targets: SASL_SSL"), "{stderr}");

    let (v, md) = report(dir.path());
    let runs = v["runs"].as_array().unwrap();
    let labels: Vec<&str> = runs
        .iter()
        .map(|r| r["run"]["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["plaintext", "sasl_ssl", "plaintext", "sasl_ssl"]);
    for r in runs {
        assert_delivered(&r["run"]);
    }
    // The secured arm's broker was started with a configuration, the plaintext one with --listen.
    assert!(runs[1]["run"]["broker"]
        .as_str()
        .unwrap()
        .contains("--config"));

    let sec = &v["security"];
    assert_eq!(sec["protocol"], "SASL_SSL");
    assert_eq!(sec["login"], "SASL_SSL SCRAM-SHA-512 as bench");
    let rates = sec["rates"].as_array().unwrap();
    assert_eq!(rates.len(), 2);
    for r in rates {
        let pairs = r["pairs"].as_array().unwrap();
        assert_eq!(pairs.len(), 1);
        for arm in ["plaintext", "secured"] {
            assert!(pairs[0][arm]["acked_per_s"].as_f64().unwrap() > 0.0);
            assert_eq!(pairs[0][arm]["complete"], Value::Bool(true));
        }
        assert!(r["throughput_ratio"]["median"].as_f64().unwrap() > 0.0);
    }
    // Both verdicts were reached (one flat-out rate, one fixed rate).
    assert!(sec["throughput_met"].is_boolean() && sec["latency_met"].is_boolean());
    assert_eq!(v["comparisons"].as_array().unwrap().len(), 2);
    assert!(
        md.contains("#### Security: PLAINTEXT against SASL_SSL"),
        "{md}"
    );

    // The certificates' folder went with the invocation; only the plaintext arm's YAML stays.
    let left: Vec<String> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["starlog-bench.yaml"]);
}

#[test]
fn a_run_over_sasl_ssl_and_refusals_without_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench(
        &[
            "run",
            "--security-protocol",
            "SASL_SSL",
            "--sasl-mechanism",
            "SCRAM-SHA-256",
            "--rate",
            "max",
            "--messages",
            "30",
            "--groups",
            "1",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (v, _) = report(dir.path());
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_delivered(&runs[0]["run"]);

    // --bootstrap with SASL reads the password from the environment, and says so when it is not there.
    let dir = tempfile::tempdir().unwrap();
    let out = bench(
        &[
            "run",
            "--bootstrap",
            "127.0.0.1:9",
            "--security-protocol",
            "SASL_SSL",
            "--sasl-username",
            "someone",
            "--rate",
            "max",
            "--messages",
            "1",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("STARLOG_BENCH_SASL_PASSWORD"), "{stderr}");

    // Securing a broker the bench cannot configure is refused.
    let dir = tempfile::tempdir().unwrap();
    let out = bench(
        &[
            "run",
            "--broker-cmd",
            "true",
            "--security-protocol",
            "SASL_SSL",
            "--rate",
            "max",
            "--messages",
            "1",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--bootstrap with the client settings"),
        "{stderr}"
    );
}
