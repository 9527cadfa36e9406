//! What machine and code a run measured: kept with every figure.
//!
//! A throughput figure without the machine (cores, memory, filesystem of
//! the data directory, kernel) and the commit it was measured at cannot be
//! compared with a later one, so every report starts with these. Each field
//! is optional: a missing `/proc` file or `git` leaves a gap, not a failure.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// The machine and code under measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineInfo {
    /// When the report was made, UTC (`YYYY-MM-DD HH:MM:SSZ`).
    pub date_utc: String,
    /// Cores available to this process.
    pub nproc: usize,
    /// The CPU model name.
    pub cpu_model: Option<String>,
    /// Total memory, bytes.
    pub memory_bytes: Option<u64>,
    /// Kernel release.
    pub kernel: Option<String>,
    /// `/proc/loadavg`'s 1, 5 and 15 minute load when described: how busy
    /// the machine already was (other work shares the cores).
    pub load_average: Option<String>,
    /// Filesystem type of the data directory.
    pub filesystem: Option<String>,
    /// `git rev-parse --short=12 HEAD` in the working directory.
    pub commit: Option<String>,
    /// Whether tracked files differ from that commit.
    pub dirty: Option<bool>,
}

/// Describes this machine; `data_dir` is where brokers keep their data.
pub fn describe(data_dir: &Path) -> MachineInfo {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    MachineInfo {
        date_utc: utc_date_time(SystemTime::now()),
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model: cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string()),
        memory_bytes: meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|s| s.trim().to_string()),
        load_average: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
        filesystem: output("df", &["--output=fstype", &data_dir.display().to_string()])
            .and_then(|s| s.lines().last().map(|l| l.trim().to_string())),
        commit: output("git", &["rev-parse", "--short=12", "HEAD"]),
        dirty: Command::new("git")
            .args(["status", "--porcelain", "--untracked-files=no"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| !o.stdout.is_empty()),
    }
}

/// A command's trimmed stdout, when it succeeds and prints something.
fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(cmd).args(args).output().ok()?;
    if !o.status.success() {
        return None;
    }
    let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// `YYYY-MM-DD HH:MM:SSZ` for a time (UTC; the epoch for times before it).
pub fn utc_date_time(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's
/// well-known algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096); // 2024-02-29 12:34:56
        assert_eq!(utc_date_time(t), "2024-02-29 12:34:56Z");
    }

    #[test]
    fn this_machine_is_described() {
        let m = describe(Path::new("."));
        assert!(m.nproc >= 1);
        assert!(m.memory_bytes.unwrap_or(0) > 0);
        assert_eq!(m.date_utc.len(), "2024-02-29 12:34:56Z".len());
    }
}
