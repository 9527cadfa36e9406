//! The machine's own limits, measured in the same run as the broker.
//!
//! A broker figure means little without the ceiling it runs under: on a
//! disk that syncs 300 MB/s, 420 MB/s of durable alerts is impossible for any
//! broker. So every run also measures, on the same machine minutes apart:
//! sequential write with one `fdatasync` at the end (in the data directory's
//! filesystem: the broker's disk), loopback TCP throughput (a socket pair in
//! this process: every produced and consumed byte crosses loopback), and
//! memory copy bandwidth. The report divides the broker's figures by these.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::BenchError;
use crate::stats::mb_per_second;

/// One measured ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Throughput {
    /// Bytes moved.
    pub bytes: u64,
    /// Seconds it took.
    pub seconds: f64,
    /// Megabytes (10^6) per second.
    pub mb_per_s: f64,
}

impl Throughput {
    fn of(bytes: u64, elapsed: Duration) -> Self {
        Self {
            bytes,
            seconds: elapsed.as_secs_f64(),
            mb_per_s: mb_per_second(bytes, elapsed),
        }
    }
}

/// The three ceilings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MachineLimits {
    /// Sequential write of 1 MiB blocks, then one fdatasync.
    pub disk_write_fdatasync: Throughput,
    /// One TCP stream over 127.0.0.1 within this process.
    pub loopback_tcp: Throughput,
    /// `copy_from_slice` between two large buffers.
    pub memory_copy: Throughput,
}

/// How big each measurement is.
#[derive(Debug, Clone, Copy)]
pub struct LimitSizes {
    /// Bytes written to disk.
    pub disk_bytes: u64,
    /// Bytes sent over loopback.
    pub tcp_bytes: u64,
    /// Bytes copied in memory.
    pub memcpy_bytes: u64,
}

impl Default for LimitSizes {
    fn default() -> Self {
        Self {
            disk_bytes: 1 << 30,
            tcp_bytes: 4 << 30,
            memcpy_bytes: 8 << 30,
        }
    }
}

/// Measures all three; the disk file goes in `dir` and is removed after.
pub fn measure(dir: &Path, sizes: LimitSizes) -> Result<MachineLimits, BenchError> {
    Ok(MachineLimits {
        disk_write_fdatasync: disk_write(dir, sizes.disk_bytes)?,
        loopback_tcp: loopback_tcp(sizes.tcp_bytes)?,
        memory_copy: memory_copy(sizes.memcpy_bytes),
    })
}

const BLOCK: usize = 1 << 20;

/// Writes `bytes` (rounded up to whole MiB) to a new file in `dir` in 1 MiB
/// blocks, `fdatasync`s once, and deletes it.
pub fn disk_write(dir: &Path, bytes: u64) -> Result<Throughput, BenchError> {
    let err = |source| BenchError::Limit {
        what: "disk write",
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    // Non-zero, varied content so no layer can shortcut zero pages.
    let block: Vec<u8> = (0..BLOCK).map(|i| (i % 251) as u8).collect();
    let blocks = bytes.div_ceil(BLOCK as u64).max(1);
    let start = Instant::now();
    for _ in 0..blocks {
        file.as_file_mut().write_all(&block).map_err(err)?;
    }
    file.as_file().sync_data().map_err(err)?;
    let elapsed = start.elapsed();
    file.close().map_err(err)?;
    Ok(Throughput::of(blocks * BLOCK as u64, elapsed))
}

/// Streams `bytes` (rounded up to whole MiB) from one thread to another over
/// a 127.0.0.1 TCP connection.
pub fn loopback_tcp(bytes: u64) -> Result<Throughput, BenchError> {
    let err = |source| BenchError::Limit {
        what: "loopback TCP",
        source,
    };
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(err)?;
    let addr = listener.local_addr().map_err(err)?;
    let blocks = bytes.div_ceil(BLOCK as u64).max(1);
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut s = TcpStream::connect(addr)?;
        let block = vec![7u8; BLOCK];
        for _ in 0..blocks {
            s.write_all(&block)?;
        }
        s.shutdown(std::net::Shutdown::Write)
    });
    let (mut conn, _) = listener.accept().map_err(err)?;
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(err)?;
    let mut buf = vec![0u8; BLOCK];
    let start = Instant::now();
    let mut got = 0u64;
    loop {
        let n = conn.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    let elapsed = start.elapsed();
    match writer.join() {
        Ok(r) => r.map_err(err)?,
        Err(_) => {
            return Err(err(std::io::Error::other(
                "the loopback writer thread panicked",
            )));
        }
    }
    if got != blocks * BLOCK as u64 {
        return Err(err(std::io::Error::other(format!(
            "received {got} of {} bytes",
            blocks * BLOCK as u64
        ))));
    }
    Ok(Throughput::of(got, elapsed))
}

/// Copies `bytes` (rounded up to whole 64 MiB buffers) between two 64 MiB
/// buffers, larger than any CPU cache.
pub fn memory_copy(bytes: u64) -> Throughput {
    const BUF: usize = 64 << 20;
    let src: Vec<u8> = (0..BUF).map(|i| (i % 253) as u8).collect();
    let mut dst = vec![0u8; BUF];
    dst.copy_from_slice(&src); // fault the pages in before timing
    let rounds = bytes.div_ceil(BUF as u64).max(1);
    let start = Instant::now();
    for r in 0..rounds {
        dst.copy_from_slice(&src);
        // Keep the optimizer from eliding copies whose result is unused.
        std::hint::black_box(&mut dst);
        dst[(r as usize * 4099) % BUF] ^= 1;
    }
    let elapsed = start.elapsed();
    std::hint::black_box(&dst);
    Throughput::of(rounds * BUF as u64, elapsed)
}

/// What fraction of the machine a broker figure used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Fractions {
    /// Produced MB/s ÷ disk write MB/s (every produced byte must reach disk).
    pub disk: f64,
    /// (produced + consumed) MB/s ÷ loopback TCP MB/s.
    pub loopback: f64,
    /// (produced + consumed) MB/s ÷ memory copy MB/s.
    pub memory_copy: f64,
}

/// Fractions of the limits for a run that produced `produced_mb_s` and
/// consumed `consumed_mb_s` (all groups together).
pub fn fractions(limits: &MachineLimits, produced_mb_s: f64, consumed_mb_s: f64) -> Fractions {
    let frac = |x: f64, limit: f64| if limit > 0.0 { x / limit } else { 0.0 };
    let wire = produced_mb_s + consumed_mb_s;
    Fractions {
        disk: frac(produced_mb_s, limits.disk_write_fdatasync.mb_per_s),
        loopback: frac(wire, limits.loopback_tcp.mb_per_s),
        memory_copy: frac(wire, limits.memory_copy.mb_per_s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_measurements_move_what_they_say() {
        let dir = tempfile::tempdir().unwrap();
        let d = disk_write(dir.path(), 3 << 20).unwrap();
        assert_eq!(d.bytes, 3 << 20);
        assert!(d.mb_per_s > 0.0);
        // The temporary file is gone.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let t = loopback_tcp(5 << 20).unwrap();
        assert_eq!(t.bytes, 5 << 20);
        assert!(t.mb_per_s > 0.0);
        let m = memory_copy(1);
        assert_eq!(m.bytes, 64 << 20);
        assert!(m.mb_per_s > 0.0);
    }

    #[test]
    fn unwritable_disk_dir_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let err = disk_write(&file.join("sub"), 1 << 20).unwrap_err();
        assert!(err.to_string().contains("disk write"), "{err}");
    }

    #[test]
    fn fraction_arithmetic() {
        let t = |mb| Throughput {
            bytes: 0,
            seconds: 1.0,
            mb_per_s: mb,
        };
        let limits = MachineLimits {
            disk_write_fdatasync: t(500.0),
            loopback_tcp: t(2000.0),
            memory_copy: t(10_000.0),
        };
        let f = fractions(&limits, 100.0, 200.0);
        assert_eq!(f.disk, 0.2);
        assert_eq!(f.loopback, 0.15);
        assert_eq!(f.memory_copy, 0.03);
        let zero = MachineLimits {
            disk_write_fdatasync: t(0.0),
            ..limits
        };
        assert_eq!(fractions(&zero, 1.0, 0.0).disk, 0.0);
    }
}
