//! The message values a workload replays: real alerts or synthetic bytes.
//!
//! The science requirement is stated in alerts, so the default workload sends
//! the real files of the repository's `testdata/` byte for byte (each is a one-record Avro
//! container, the form ZTF distributes): Rubin's sample alerts (33-56 KB,
//! ~42 KB for the current schema) or the real ZTF alerts (~30-100 KB).
//! Message `seq` carries payload `seq % len`, so a consumer can check the
//! content of every record it reads without the producer remembering
//! anything. Synthetic payloads (deterministic pseudo-random bytes, which do
//! not compress) serve the plain "N messages of S bytes" throughput test.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::error::BenchError;

/// The Avro object container file magic.
const AVRO_MAGIC: &[u8; 4] = b"Obj\x01";

/// Which values to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum PayloadSource {
    /// Rubin's sample alerts, `lsst/schema/*/*/sample_data/fakeAlert.avro`.
    RubinSamples,
    /// Every real ZTF alert under `ztf/alerts/`.
    ZtfAlerts,
    /// Rubin samples and ZTF alerts together.
    AllAlerts,
    /// `distinct` different pseudo-random values of `bytes` bytes each.
    Synthetic {
        /// Size of each value.
        bytes: usize,
        /// How many different values to cycle through.
        distinct: usize,
    },
}

/// One value and where it came from.
#[derive(Debug, Clone)]
pub struct Payload {
    /// File name relative to the data folder, or `synthetic-<i>`.
    pub name: String,
    /// The bytes sent as the record value.
    pub bytes: Arc<[u8]>,
}

/// The cycle of values a workload sends.
#[derive(Debug, Clone)]
pub struct Payloads {
    items: Vec<Payload>,
}

/// The repository's `testdata/` folder (the test kit's).
pub use starlog_testkit::testdata_dir;

impl Payloads {
    /// Loads the values of `source`; alert files are read from `data_dir`.
    pub fn load(source: &PayloadSource, data_dir: &Path) -> Result<Self, BenchError> {
        match source {
            PayloadSource::RubinSamples => Self::rubin_samples(data_dir),
            PayloadSource::ZtfAlerts => Self::ztf_alerts(data_dir),
            PayloadSource::AllAlerts => {
                let mut all = Self::rubin_samples(data_dir)?;
                all.items.extend(Self::ztf_alerts(data_dir)?.items);
                Ok(all)
            }
            PayloadSource::Synthetic { bytes, distinct } => Self::synthetic(*bytes, *distinct),
        }
    }

    /// Rubin's sample alert of every schema version, sorted by path.
    pub fn rubin_samples(data_dir: &Path) -> Result<Self, BenchError> {
        let schema_dir = data_dir.join("lsst/schema");
        let mut files: Vec<PathBuf> = avro_files_under(&schema_dir)?
            .into_iter()
            .filter(|p| p.ends_with("sample_data/fakeAlert.avro"))
            .collect();
        files.sort();
        Self::from_files(
            data_dir,
            &files,
            &schema_dir,
            "*/*/sample_data/fakeAlert.avro",
        )
    }

    /// Every real ZTF alert, sorted by path.
    pub fn ztf_alerts(data_dir: &Path) -> Result<Self, BenchError> {
        let dir = data_dir.join("ztf/alerts");
        let mut files = avro_files_under(&dir)?;
        files.sort();
        Self::from_files(data_dir, &files, &dir, "**/*.avro")
    }

    /// Reads `files`, each of which must be an Avro container file.
    fn from_files(
        data_dir: &Path,
        files: &[PathBuf],
        searched: &Path,
        pattern: &'static str,
    ) -> Result<Self, BenchError> {
        if files.is_empty() {
            return Err(BenchError::NoAlerts {
                dir: searched.to_path_buf(),
                pattern,
            });
        }
        let mut items = Vec::with_capacity(files.len());
        for path in files {
            let bytes = std::fs::read(path).map_err(|source| BenchError::ReadAlert {
                path: path.clone(),
                source,
            })?;
            if !bytes.starts_with(AVRO_MAGIC) {
                return Err(BenchError::NotAvro { path: path.clone() });
            }
            let name = path
                .strip_prefix(data_dir)
                .unwrap_or(path)
                .display()
                .to_string();
            items.push(Payload {
                name,
                bytes: bytes.into(),
            });
        }
        Ok(Self { items })
    }

    /// `distinct` deterministic pseudo-random values of `bytes` bytes.
    pub fn synthetic(bytes: usize, distinct: usize) -> Result<Self, BenchError> {
        if bytes == 0 || distinct == 0 {
            return Err(BenchError::InvalidWorkload(format!(
                "synthetic payloads need a size and a count above zero (got {bytes} bytes x {distinct})"
            )));
        }
        let items = (0..distinct)
            .map(|i| {
                // xorshift64*, seeded per value: incompressible, reproducible.
                let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ (i as u64).wrapping_mul(0xA24B_AED4);
                let mut v = Vec::with_capacity(bytes + 8);
                while v.len() < bytes {
                    state ^= state >> 12;
                    state ^= state << 25;
                    state ^= state >> 27;
                    v.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
                }
                v.truncate(bytes);
                Payload {
                    name: format!("synthetic-{i}"),
                    bytes: v.into(),
                }
            })
            .collect();
        Ok(Self { items })
    }

    /// The value message `seq` carries.
    pub fn for_seq(&self, seq: u64) -> &Payload {
        // `items` is never empty: every constructor refuses an empty set.
        let len = self.items.len() as u64;
        &self.items[(seq % len) as usize]
    }

    /// How many different values there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Always false (kept for the `len` convention).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Mean value size in bytes.
    pub fn mean_bytes(&self) -> f64 {
        let total: usize = self.items.iter().map(|p| p.bytes.len()).sum();
        total as f64 / self.items.len().max(1) as f64
    }

    /// Total value bytes of messages `0..count`.
    pub fn bytes_of_first(&self, count: u64) -> u64 {
        let len = self.items.len() as u64;
        let per_cycle: u64 = self.items.iter().map(|p| p.bytes.len() as u64).sum();
        let full = count / len;
        let rest: u64 = self.items[..(count % len) as usize]
            .iter()
            .map(|p| p.bytes.len() as u64)
            .sum();
        full * per_cycle + rest
    }
}

/// Every `.avro` file below `dir` (recursively).
fn avro_files_under(dir: &Path) -> Result<Vec<PathBuf>, BenchError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| BenchError::ReadAlert {
            path: d.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| BenchError::ReadAlert {
                path: d.clone(),
                source,
            })?;
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "avro") {
                out.push(path);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rubin_samples_are_the_fifteen_sample_alerts() {
        let p = Payloads::rubin_samples(&testdata_dir()).unwrap();
        assert_eq!(p.len(), 15);
        assert!(p.items.iter().all(|i| i.name.ends_with("fakeAlert.avro")));
        let mean = p.mean_bytes();
        assert!((33_000.0..57_000.0).contains(&mean), "mean {mean}");
        let newest = p
            .items
            .iter()
            .find(|i| i.name == "lsst/schema/11/1/sample_data/fakeAlert.avro")
            .unwrap();
        assert_eq!(newest.bytes.len(), 42_139);
    }

    #[test]
    fn ztf_alerts_are_the_real_ones() {
        let p = Payloads::ztf_alerts(&testdata_dir()).unwrap();
        assert_eq!(p.len(), 114, "the ZTF alerts of testdata/manifest.csv");
        assert!(p.items.iter().all(|i| i.bytes.starts_with(AVRO_MAGIC)));
    }

    #[test]
    fn all_alerts_is_both_sets() {
        let p = Payloads::load(&PayloadSource::AllAlerts, &testdata_dir()).unwrap();
        assert_eq!(p.len(), 15 + 114);
    }

    #[test]
    fn seq_cycles_through_values_and_byte_totals_follow() {
        let p = Payloads::synthetic(10, 3).unwrap();
        assert_eq!(p.for_seq(0).name, "synthetic-0");
        assert_eq!(p.for_seq(4).name, "synthetic-1");
        assert_eq!(p.bytes_of_first(7), 70);
        assert_ne!(p.for_seq(0).bytes, p.for_seq(1).bytes);
        // Deterministic across calls.
        assert_eq!(
            Payloads::synthetic(10, 3).unwrap().for_seq(2).bytes,
            p.for_seq(2).bytes
        );
    }

    #[test]
    fn byte_totals_of_uneven_values() {
        let p = Payloads {
            items: [3usize, 5, 11]
                .iter()
                .map(|&n| Payload {
                    name: n.to_string(),
                    bytes: vec![0u8; n].into(),
                })
                .collect(),
        };
        assert_eq!(p.bytes_of_first(0), 0);
        assert_eq!(p.bytes_of_first(2), 8);
        assert_eq!(p.bytes_of_first(3), 19);
        assert_eq!(p.bytes_of_first(5), 19 + 8);
        assert!((p.mean_bytes() - 19.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn empty_synthetic_is_refused() {
        assert!(matches!(
            Payloads::synthetic(0, 3),
            Err(BenchError::InvalidWorkload(_))
        ));
        assert!(matches!(
            Payloads::synthetic(3, 0),
            Err(BenchError::InvalidWorkload(_))
        ));
    }

    #[test]
    fn a_non_avro_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("ztf/alerts/x/bad.avro");
        std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
        std::fs::write(&bad, b"not avro at all").unwrap();
        match Payloads::ztf_alerts(dir.path()) {
            Err(BenchError::NotAvro { path }) => assert_eq!(path, bad),
            other => panic!("expected NotAvro, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_or_empty_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        match Payloads::rubin_samples(dir.path()) {
            Err(BenchError::ReadAlert { path, .. }) => {
                assert_eq!(path, dir.path().join("lsst/schema"));
            }
            other => panic!("expected ReadAlert, got {other:?}"),
        }
        std::fs::create_dir_all(dir.path().join("ztf/alerts")).unwrap();
        match Payloads::ztf_alerts(dir.path()) {
            Err(BenchError::NoAlerts { dir: d, .. }) => {
                assert_eq!(d, dir.path().join("ztf/alerts"))
            }
            other => panic!("expected NoAlerts, got {other:?}"),
        }
    }
}
