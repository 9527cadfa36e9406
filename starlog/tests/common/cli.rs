//! Runs the `starlog` binary under test with arguments and a standard
//! input (the password lines of `starlog users` / `starlog acls`), and
//! returns its exit status and output. (Each test binary uses a part.)
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// `starlog ARGS` with `stdin` written to it; its whole output.
pub fn run_starlog(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_starlog"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning starlog {args:?}: {e}"));
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.as_bytes())
            .unwrap_or_else(|e| panic!("writing starlog's stdin: {e}"));
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for starlog {args:?}: {e}"))
}

/// Its stdout when it succeeds, else its stderr as the error.
pub fn starlog(args: &[&str], stdin: &str) -> Result<String, String> {
    let out = run_starlog(args, stdin);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "starlog {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
