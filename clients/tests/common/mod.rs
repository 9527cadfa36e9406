//! Helpers specific to the client's integration tests: alert payloads and a
//! time limit; the test broker (with client configurations pointing at it)
//! and the test data come from `starlog-testkit`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

#[allow(unused_imports)] // each test binary uses a part
pub use starlog_testkit::{alert_files, init_tracing, testdata_dir, TestBroker};

/// Real alert payloads (whole OCF files as message values).
pub fn alerts(sub: &str, n: usize) -> Vec<bytes::Bytes> {
    alert_files(sub)
        .into_iter()
        .take(n)
        .map(|p| bytes::Bytes::from(std::fs::read(&p).expect("read alert")))
        .collect()
}

/// Runs `f` with a hard time limit so no test can hang.
pub async fn bounded<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("test step finished within its time limit")
}

/// A test binary that starts a broker here decodes outside bytes as the
/// binaries do, so it declares the same guarded global allocator.
#[global_allocator]
static GLOBAL: starlog_alloc::GuardedAllocator = starlog_alloc::GuardedAllocator;
