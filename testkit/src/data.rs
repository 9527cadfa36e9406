//! The repository's `testdata/` folder (real alert files; see its README).

use std::path::{Path, PathBuf};

/// The repository's `testdata/` folder.
pub fn testdata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// Every `.avro` file under `sub` of the test data (walked recursively),
/// sorted by path.
///
/// # Panics
///
/// When there is none: a test that expects alerts must not pass on none.
pub fn alert_files(sub: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "avro") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&testdata_dir().join(sub), &mut out);
    out.sort();
    assert!(!out.is_empty(), "no alert files under testdata/{sub}");
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_test_data_is_in_the_repository() {
        assert!(testdata_dir().join("README.md").is_file());
        let files = alert_files("ztf");
        assert!(files.windows(2).all(|w| w[0] < w[1]), "sorted");
        assert!(files
            .iter()
            .all(|f| f.extension().is_some_and(|x| x == "avro")));
    }
}
