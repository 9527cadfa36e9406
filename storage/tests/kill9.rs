//! Crash safety under `kill -9`: a child process appends (flush policy `Always`) and commits
//! group offsets, printing each acknowledgement; the parent SIGKILLs it at a random moment,
//! reopens, and checks that every acknowledged record and commit survived and that the log is a
//! valid prefix that accepts new appends. Runs without the libtest harness so the same binary
//! can act as the child (selected by an environment variable).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{batch, concat, decode};
use starlog_storage::{CommittedOffset, FlushPolicy, LogConfig, MetaStore, PartitionLog};

const CHILD_ENV: &str = "STARLOG_KILL9_CHILD_DIR";

fn config() -> LogConfig {
    LogConfig {
        flush: FlushPolicy::Always,
        segment_bytes: 16 * 1024,
        index_interval_bytes: 1024,
        ..LogConfig::default()
    }
}

fn value(offset: i64) -> Vec<u8> {
    format!("record-{offset}-").repeat(20).into_bytes()
}

fn commit(offset: i64) -> CommittedOffset {
    CommittedOffset {
        topic: "t".to_owned(),
        partition: 0,
        offset,
        leader_epoch: 0,
        metadata: None,
        commit_timestamp_ms: offset,
    }
}

/// Child: append and commit forever (bounded), acknowledging on stdout.
fn child(dir: &Path) {
    let log = PartitionLog::open(&dir.join("t-0"), "t", 0, config()).unwrap();
    let meta = MetaStore::open(&dir.join("__meta")).unwrap();
    let mut out = std::io::stdout().lock();
    for _ in 0..1_000_000 {
        let next = log.log_end_offset();
        let info = log.append(&batch(next, &[&value(next)]), 0).unwrap();
        writeln!(out, "log {}", info.base_offset).unwrap();
        meta.commit_offsets("g", &[commit(info.base_offset)])
            .unwrap();
        writeln!(out, "meta {}", info.base_offset).unwrap();
        out.flush().unwrap();
    }
}

/// Parent: one crash round; returns the log end after recovery.
fn crash_round(dir: &Path, acks_before_kill: usize) -> i64 {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut last_log = -1i64;
    let mut last_meta = -1i64;
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = 0;
    while seen < acks_before_kill {
        let Some(line) = lines.next() else { break };
        let line = line.unwrap();
        let (kind, n) = line.split_once(' ').unwrap();
        let n: i64 = n.parse().unwrap();
        match kind {
            "log" => last_log = n,
            "meta" => last_meta = n,
            _ => panic!("unexpected line {line}"),
        }
        seen += 1;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(last_log >= 0, "child acknowledged nothing");

    let log = PartitionLog::open(&dir.join("t-0"), "t", 0, config()).unwrap();
    assert!(
        log.log_end_offset() > last_log,
        "acknowledged offset {last_log} lost"
    );
    let recs = decode(&concat(&log.read(0, usize::MAX, i64::MAX).unwrap()));
    assert_eq!(recs.len() as i64, log.log_end_offset());
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(r.value, value(r.offset));
    }
    let meta = MetaStore::open(&dir.join("__meta")).unwrap();
    let committed = meta.committed_offsets("g");
    if last_meta >= 0 {
        assert!(
            committed[0].offset >= last_meta,
            "acknowledged commit {last_meta} lost"
        );
    }
    // The recovered log accepts appends.
    let end = log.log_end_offset();
    let mut c = config();
    c.flush = FlushPolicy::Never;
    log.set_config(c);
    assert_eq!(
        log.append(&batch(end, &[&value(end)]), 0)
            .unwrap()
            .base_offset,
        end
    );
    end + 1
}

fn main() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut end = 0;
    for (round, acks) in [150usize, 401, 77, 260].into_iter().enumerate() {
        let new_end = crash_round(dir.path(), acks);
        assert!(new_end > end);
        end = new_end;
        println!("kill9 round {round}: log end {end}");
    }
    println!("test kill9 ... ok");
}
