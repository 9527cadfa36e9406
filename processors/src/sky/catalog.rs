//! Static source catalogs loaded from CSV (id, ra, dec columns by name).
//!
//! Loading validates every row — a catalog with one unparsable position is
//! rejected with its file, line and column, rather than silently missing a
//! source that a cross-match would then never report.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which CSV columns hold the id and the position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogColumns {
    /// Source id column.
    pub id: String,
    /// Right ascension column (degrees).
    pub ra: String,
    /// Declination column (degrees).
    pub dec: String,
}

impl Default for CatalogColumns {
    fn default() -> Self {
        CatalogColumns {
            id: "id".to_owned(),
            ra: "ra".to_owned(),
            dec: "dec".to_owned(),
        }
    }
}

/// Why a catalog could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The file could not be opened or is not CSV.
    #[error("catalog {path}: {source}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The CSV reader's error.
        #[source]
        source: csv::Error,
    },
    /// A named column is not in the header.
    #[error("catalog {path}: no column {column:?} in the header (columns: {available})")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column asked for.
        column: String,
        /// The header's columns.
        available: String,
    },
    /// A value is not a valid coordinate.
    #[error("catalog {path}, line {line}, column {column:?}: {value:?} is {problem}")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// The column.
        column: String,
        /// The text found.
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The file has no rows.
    #[error("catalog {path} has no sources")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Sources with ids and positions.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    ids: Vec<Arc<str>>,
    positions: Vec<(f64, f64)>,
}

impl Catalog {
    /// A catalog from `(id, ra, dec)` entries.
    #[must_use]
    pub fn from_entries(entries: impl IntoIterator<Item = (String, f64, f64)>) -> Self {
        let mut c = Catalog::default();
        for (id, ra, dec) in entries {
            c.ids.push(Arc::from(id));
            c.positions.push((ra, dec));
        }
        c
    }

    /// Loads a CSV file with a header row.
    ///
    /// # Errors
    /// [`CatalogError`] naming the file, line and column at fault.
    pub fn from_csv(path: &Path, columns: &CatalogColumns) -> Result<Self, CatalogError> {
        let csv_err = |source| CatalogError::Csv {
            path: path.to_owned(),
            source,
        };
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(path)
            .map_err(csv_err)?;
        let header = reader.headers().map_err(csv_err)?.clone();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| CatalogError::MissingColumn {
                    path: path.to_owned(),
                    column: name.to_owned(),
                    available: header.iter().collect::<Vec<_>>().join(", "),
                })
        };
        let (id_col, ra_col, dec_col) = (col(&columns.id)?, col(&columns.ra)?, col(&columns.dec)?);
        let mut catalog = Catalog::default();
        let mut record = csv::StringRecord::new();
        while reader.read_record(&mut record).map_err(csv_err)? {
            let line = record.position().map_or(0, csv::Position::line);
            let bad = |column: &str, value: &str, problem| CatalogError::BadValue {
                path: path.to_owned(),
                line,
                column: column.to_owned(),
                value: value.to_owned(),
                problem,
            };
            let number = |i: usize, column: &str| -> Result<f64, CatalogError> {
                let text = record.get(i).unwrap_or("");
                let v: f64 = text
                    .parse()
                    .map_err(|_| bad(column, text, "not a number"))?;
                if v.is_finite() {
                    Ok(v)
                } else {
                    Err(bad(column, text, "not finite"))
                }
            };
            let ra = number(ra_col, &columns.ra)?;
            let dec = number(dec_col, &columns.dec)?;
            if !(-90.0..=90.0).contains(&dec) {
                return Err(bad(
                    &columns.dec,
                    record.get(dec_col).unwrap_or(""),
                    "outside [-90, 90]",
                ));
            }
            if !(-360.0..=720.0).contains(&ra) {
                return Err(bad(
                    &columns.ra,
                    record.get(ra_col).unwrap_or(""),
                    "outside [-360, 720]",
                ));
            }
            catalog
                .ids
                .push(Arc::from(record.get(id_col).unwrap_or("")));
            catalog.positions.push((ra, dec));
        }
        if catalog.positions.is_empty() {
            return Err(CatalogError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(catalog)
    }

    /// Number of sources.
    #[must_use]
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// True when there are no sources.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Source ids, in file order.
    #[must_use]
    pub fn ids(&self) -> &[Arc<str>] {
        &self.ids
    }

    /// Source positions (ra, dec in degrees), in file order.
    #[must_use]
    pub fn positions(&self) -> &[(f64, f64)] {
        &self.positions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn loads_named_columns_in_any_order() {
        let f = file("dec,name,ra\n-1.5,a,10\n2, b ,359.5\n");
        let cols = CatalogColumns {
            id: "name".into(),
            ..CatalogColumns::default()
        };
        let c = Catalog::from_csv(f.path(), &cols).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(&*c.ids()[1], "b");
        assert_eq!(c.positions(), &[(10.0, -1.5), (359.5, 2.0)]);
    }

    #[test]
    fn bad_rows_name_line_and_column() {
        let f = file("id,ra,dec\n1,10,5\n2,abc,5\n");
        let err = Catalog::from_csv(f.path(), &CatalogColumns::default()).unwrap_err();
        assert!(
            matches!(&err, CatalogError::BadValue { line: 3, column, .. } if column == "ra"),
            "{err}"
        );
        let f = file("id,ra,dec\n1,10,95\n");
        let err = Catalog::from_csv(f.path(), &CatalogColumns::default()).unwrap_err();
        assert!(err.to_string().contains("outside [-90, 90]"), "{err}");
        let f = file("id,ra,dec\n1,NaN,5\n");
        assert!(Catalog::from_csv(f.path(), &CatalogColumns::default())
            .unwrap_err()
            .to_string()
            .contains("not finite"));
    }

    #[test]
    fn missing_column_empty_file_and_ragged_rows() {
        let f = file("id,ra\n1,2\n");
        let err = Catalog::from_csv(f.path(), &CatalogColumns::default()).unwrap_err();
        assert!(
            matches!(&err, CatalogError::MissingColumn { column, available, .. } if column == "dec" && available == "id, ra")
        );
        let f = file("id,ra,dec\n");
        assert!(matches!(
            Catalog::from_csv(f.path(), &CatalogColumns::default()),
            Err(CatalogError::Empty { .. })
        ));
        let f = file("id,ra,dec\n1,2\n");
        assert!(matches!(
            Catalog::from_csv(f.path(), &CatalogColumns::default()),
            Err(CatalogError::Csv { .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Catalog::from_csv(&dir.path().join("none.csv"), &CatalogColumns::default()),
            Err(CatalogError::Csv { .. })
        ));
    }
}
