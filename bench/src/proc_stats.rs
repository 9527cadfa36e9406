//! The broker process's CPU time and memory, from Linux's `/proc`.
//!
//! `/proc/<pid>/stat` fields 14 and 15 (user and system time, in clock
//! ticks) give CPU seconds; `/proc/<pid>/status` gives `VmRSS` and `VmHWM`
//! (the peak resident set, which the kernel keeps for us, so a short spike
//! between two samples is not missed). The runner samples before and after a
//! workload and reports the difference in CPU seconds and the peak.

use serde::Serialize;

use crate::error::BenchError;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProcSample {
    /// User + system CPU seconds since the process started.
    pub cpu_seconds: f64,
    /// Resident set now, bytes.
    pub rss_bytes: u64,
    /// Peak resident set since start (`VmHWM`), bytes.
    pub peak_rss_bytes: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
pub fn sample(pid: u32, clock_ticks: u64) -> Result<ProcSample, BenchError> {
    let read = |file: &'static str| {
        std::fs::read_to_string(format!("/proc/{pid}/{file}")).map_err(|e| BenchError::ProcStats {
            pid,
            file,
            reason: e.to_string(),
        })
    };
    let cpu_seconds = parse_stat_cpu_seconds(&read("stat")?, clock_ticks).map_err(|reason| {
        BenchError::ProcStats {
            pid,
            file: "stat",
            reason,
        }
    })?;
    let (rss_bytes, peak_rss_bytes) =
        parse_status_memory(&read("status")?).map_err(|reason| BenchError::ProcStats {
            pid,
            file: "status",
            reason,
        })?;
    Ok(ProcSample {
        cpu_seconds,
        rss_bytes,
        peak_rss_bytes,
    })
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 if unknown,
/// which is what every mainstream Linux build uses).
pub fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t: &u64| t > 0)
        .unwrap_or(100)
}

/// utime + stime of a `stat` line, in seconds.
pub fn parse_stat_cpu_seconds(stat: &str, clock_ticks: u64) -> Result<f64, String> {
    // The command name (field 2) is in parentheses and may itself contain
    // spaces and parentheses: the fields we want follow the *last* ')'.
    let close = stat
        .rfind(')')
        .ok_or_else(|| "no `)` closing the command name".to_string())?;
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // rest[0] is field 3 (state), so field n is rest[n - 3].
    let field = |n: usize| -> Result<u64, String> {
        let s = rest
            .get(n - 3)
            .ok_or_else(|| format!("only {} fields after the command name", rest.len()))?;
        s.parse()
            .map_err(|_| format!("field {n} is `{s}`, not a tick count"))
    };
    let ticks = field(14)? + field(15)?;
    if clock_ticks == 0 {
        return Err("clock ticks per second is zero".into());
    }
    Ok(ticks as f64 / clock_ticks as f64)
}

/// `(VmRSS, VmHWM)` of a `status` file, in bytes.
pub fn parse_status_memory(status: &str) -> Result<(u64, u64), String> {
    let kib = |key: &str| -> Result<u64, String> {
        let line = status
            .lines()
            .find(|l| l.starts_with(key))
            .ok_or_else(|| format!("no `{key}` line"))?;
        let mut parts = line[key.len()..].split_whitespace();
        let n = parts
            .next()
            .ok_or_else(|| format!("`{key}` has no value"))?;
        let unit = parts.next().unwrap_or("");
        if unit != "kB" {
            return Err(format!("`{key}` unit is `{unit}`, expected kB"));
        }
        n.parse::<u64>()
            .map(|v| v * 1024)
            .map_err(|_| format!("`{key}` value `{n}` is not a number"))
    };
    Ok((kib("VmRSS:")?, kib("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (star (log) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 123456 1000000 5000 18446744073709551615";

    #[test]
    fn cpu_seconds_after_a_tricky_command_name() {
        assert_eq!(parse_stat_cpu_seconds(STAT, 100).unwrap(), 3.25);
        assert_eq!(parse_stat_cpu_seconds(STAT, 1000).unwrap(), 0.325);
    }

    #[test]
    fn truncated_or_garbled_stat_is_refused() {
        assert!(parse_stat_cpu_seconds("4242 star S 1", 100).is_err());
        let short = "1 (x) S 1 2 3";
        assert!(parse_stat_cpu_seconds(short, 100)
            .unwrap_err()
            .contains("fields"));
        let garbled = STAT.replace(" 250 ", " abc ");
        assert!(parse_stat_cpu_seconds(&garbled, 100)
            .unwrap_err()
            .contains("field 14"));
        assert!(parse_stat_cpu_seconds(STAT, 0).is_err());
    }

    #[test]
    fn memory_lines() {
        let status = "Name:\tstarlog\nVmPeak:\t 900 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n";
        assert_eq!(
            parse_status_memory(status).unwrap(),
            (1024 * 1024, 2048 * 1024)
        );
        assert!(parse_status_memory("Name: x\n")
            .unwrap_err()
            .contains("VmRSS"));
        assert!(parse_status_memory("VmRSS: 1 MB\nVmHWM: 1 kB\n")
            .unwrap_err()
            .contains("unit"));
        assert!(parse_status_memory("VmRSS: x kB\nVmHWM: 1 kB\n").is_err());
    }

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample(std::process::id(), clock_ticks()).unwrap();
        assert!(s.peak_rss_bytes >= s.rss_bytes && s.rss_bytes > 0);
        assert!(s.cpu_seconds >= 0.0);
    }

    #[test]
    fn a_missing_process_is_named() {
        // Above the kernel's pid_max ceiling (4194304), so never a live pid.
        let err = sample(4_194_305 + 7, 100).unwrap_err();
        assert!(err.to_string().contains("/proc/4194312/stat"), "{err}");
    }
}
