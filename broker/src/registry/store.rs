//! The registry's durable state: schemas by id, subjects and their versions,
//! compatibility settings.
//!
//! The whole state is one JSON document written atomically (write a new
//! file, fsync it, rename over the old one, fsync the directory), so a
//! `kill -9` at any point leaves either the old or the new state. Schemas
//! are few and small (hundreds of KB for all alert schema versions), so a
//! whole-file rewrite per registration is cheap; ids are never reused.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use apache_avro::Schema;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::compat::{check, Compatibility};
use super::error::RegistryError;

/// One registered schema.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSchema {
    /// The schema text as first registered.
    pub schema: String,
    /// Its normalized JSON (identity for deduplication). Not the Avro
    /// parsing canonical form: that drops defaults, so two schemas that
    /// resolve differently would share an id.
    pub canonical: String,
}

/// One version of a subject.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubjectVersion {
    /// 1-based version number within the subject.
    pub version: i32,
    /// Global schema id.
    pub id: u32,
    /// Soft-deleted (hidden, but its id keeps resolving).
    pub deleted: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    next_id: u32,
    schemas: BTreeMap<u32, StoredSchema>,
    subjects: BTreeMap<String, Vec<SubjectVersion>>,
    global: Option<Compatibility>,
    per_subject: BTreeMap<String, Compatibility>,
}

/// A version as returned to clients.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Subject name.
    pub subject: String,
    /// Version number.
    pub version: i32,
    /// Global id.
    pub id: u32,
    /// Schema text.
    pub schema: String,
}

/// Which version a request names.
#[derive(Debug, Clone, Copy)]
pub enum VersionRef {
    /// A number.
    Number(i32),
    /// `latest` (or -1).
    Latest,
}

/// The durable schema store.
#[derive(Debug)]
pub struct SchemaStore {
    path: PathBuf,
    state: Mutex<State>,
}

/// First id handed out (Confluent starts at 1).
const FIRST_ID: u32 = 1;

fn parse(schema: &str) -> Result<Schema, RegistryError> {
    Schema::parse_str(schema).map_err(|e| RegistryError::InvalidSchema(e.to_string()))
}

/// The identity of a schema: its parsed form written back as JSON (the
/// order of JSON keys and whitespace do not matter; defaults do).
fn normalized(schema: &Schema) -> Result<String, RegistryError> {
    serde_json::to_string(schema).map_err(|e| RegistryError::InvalidSchema(e.to_string()))
}

impl SchemaStore {
    /// Opens (or creates) the store file `path`.
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        let state = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                RegistryError::Storage(format!(
                    "{} is not a valid registry state: {e}",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State {
                next_id: FIRST_ID,
                ..State::default()
            },
            Err(e) => {
                return Err(RegistryError::Storage(format!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            state: Mutex::new(state),
        })
    }

    fn persist(&self, state: &State) -> Result<(), RegistryError> {
        let fail = |what: &str, e: std::io::Error| {
            RegistryError::Storage(format!("{what} {}: {e}", self.path.display()))
        };
        let bytes = serde_json::to_vec(state).map_err(|e| RegistryError::Storage(e.to_string()))?;
        let tmp = self.path.with_extension("json.new");
        let mut f = std::fs::File::create(&tmp).map_err(|e| fail("cannot create", e))?;
        f.write_all(&bytes).map_err(|e| fail("cannot write", e))?;
        f.sync_all().map_err(|e| fail("cannot sync", e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| fail("cannot replace", e))?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| fail("cannot sync the directory of", e))?;
        }
        Ok(())
    }

    /// Registers `schema` under `subject`, returning its global id. The same
    /// schema (by canonical form) always gets the same id.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let parsed = parse(schema)?;
        let canonical = normalized(&parsed)?;
        let mut state = self.state.lock();
        let existing_id = state
            .schemas
            .iter()
            .find(|(_, s)| s.canonical == canonical)
            .map(|(id, _)| *id);
        let versions = state.subjects.get(subject).cloned().unwrap_or_default();
        if let Some(id) = existing_id {
            if versions.iter().any(|v| v.id == id && !v.deleted) {
                return Ok(id);
            }
        }
        let level = state
            .per_subject
            .get(subject)
            .copied()
            .or(state.global)
            .unwrap_or_default();
        let live: Vec<&SubjectVersion> = versions.iter().filter(|v| !v.deleted).collect();
        let against: Vec<Schema> = live
            .iter()
            .rev()
            .take(if level.is_transitive() { usize::MAX } else { 1 })
            .filter_map(|v| state.schemas.get(&v.id))
            .map(|s| parse(&s.schema))
            .collect::<Result<_, _>>()?;
        for old in &against {
            check(level, old, &parsed).map_err(RegistryError::Incompatible)?;
        }
        let id = match existing_id {
            Some(id) => id,
            None => {
                let id = state.next_id;
                state.next_id += 1;
                state.schemas.insert(
                    id,
                    StoredSchema {
                        schema: schema.to_string(),
                        canonical,
                    },
                );
                id
            }
        };
        let version = versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        state
            .subjects
            .entry(subject.to_string())
            .or_default()
            .push(SubjectVersion {
                version,
                id,
                deleted: false,
            });
        self.persist(&state)?;
        tracing::info!(subject, id, version, "registered schema");
        Ok(id)
    }

    /// The schema with this id.
    pub fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        self.state
            .lock()
            .schemas
            .get(&id)
            .map(|s| s.schema.clone())
            .ok_or(RegistryError::SchemaNotFound)
    }

    /// Subjects with at least one live version.
    pub fn subjects(&self) -> Vec<String> {
        self.state
            .lock()
            .subjects
            .iter()
            .filter(|(_, v)| v.iter().any(|v| !v.deleted))
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Live version numbers of a subject.
    pub fn versions(&self, subject: &str) -> Result<Vec<i32>, RegistryError> {
        let state = self.state.lock();
        let live: Vec<i32> = state
            .subjects
            .get(subject)
            .map(|v| v.iter().filter(|v| !v.deleted).map(|v| v.version).collect())
            .unwrap_or_default();
        if live.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        Ok(live)
    }

    /// Resolves one version of a subject.
    pub fn version(&self, subject: &str, v: VersionRef) -> Result<Resolved, RegistryError> {
        let state = self.state.lock();
        let versions = state
            .subjects
            .get(subject)
            .filter(|v| v.iter().any(|v| !v.deleted))
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_string()))?;
        let found = match v {
            VersionRef::Latest => versions.iter().rev().find(|v| !v.deleted),
            VersionRef::Number(n) => versions.iter().find(|x| x.version == n && !x.deleted),
        }
        .ok_or(RegistryError::VersionNotFound)?;
        let schema = state
            .schemas
            .get(&found.id)
            .ok_or(RegistryError::SchemaNotFound)?;
        Ok(Resolved {
            subject: subject.to_string(),
            version: found.version,
            id: found.id,
            schema: schema.schema.clone(),
        })
    }

    /// Finds `schema` among a subject's live versions.
    pub fn lookup(&self, subject: &str, schema: &str) -> Result<Resolved, RegistryError> {
        let canonical = normalized(&parse(schema)?)?;
        let state = self.state.lock();
        let versions = state
            .subjects
            .get(subject)
            .filter(|v| v.iter().any(|v| !v.deleted))
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_string()))?;
        versions
            .iter()
            .rev()
            .filter(|v| !v.deleted)
            .find_map(|v| {
                state
                    .schemas
                    .get(&v.id)
                    .filter(|s| s.canonical == canonical)
                    .map(|s| Resolved {
                        subject: subject.to_string(),
                        version: v.version,
                        id: v.id,
                        schema: s.schema.clone(),
                    })
            })
            .ok_or(RegistryError::SchemaNotFound)
    }

    /// Whether `schema` could be registered under `subject` against version `v`.
    pub fn is_compatible(
        &self,
        subject: &str,
        v: VersionRef,
        schema: &str,
    ) -> Result<bool, RegistryError> {
        let parsed = parse(schema)?;
        let level = self.compatibility(Some(subject));
        let against = match self.version(subject, v) {
            Ok(r) => r,
            // Nothing registered yet: anything is compatible with nothing.
            Err(RegistryError::SubjectNotFound(_)) if matches!(v, VersionRef::Latest) => {
                return Ok(true)
            }
            Err(e) => return Err(e),
        };
        Ok(check(level, &parse(&against.schema)?, &parsed).is_ok())
    }

    /// The effective level for a subject (or the global one).
    pub fn compatibility(&self, subject: Option<&str>) -> Compatibility {
        let state = self.state.lock();
        subject
            .and_then(|s| state.per_subject.get(s).copied())
            .or(state.global)
            .unwrap_or_default()
    }

    /// The subject's own level, if set.
    pub fn subject_compatibility(&self, subject: &str) -> Option<Compatibility> {
        self.state.lock().per_subject.get(subject).copied()
    }

    /// Sets (or with `None` clears) the global or a subject's level.
    pub fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: Option<Compatibility>,
    ) -> Result<(), RegistryError> {
        let mut state = self.state.lock();
        match (subject, level) {
            (None, l) => state.global = l,
            (Some(s), Some(l)) => {
                state.per_subject.insert(s.to_string(), l);
            }
            (Some(s), None) => {
                state.per_subject.remove(s);
            }
        }
        self.persist(&state)
    }

    /// Deletes a subject's versions (soft, or permanent once soft-deleted).
    pub fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<i32>, RegistryError> {
        let mut state = self.state.lock();
        let versions = state
            .subjects
            .get_mut(subject)
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_string()))?;
        let deleted: Vec<i32> = if permanent {
            let all = versions.iter().map(|v| v.version).collect();
            state.subjects.remove(subject);
            state.per_subject.remove(subject);
            all
        } else {
            let live: Vec<i32> = versions
                .iter()
                .filter(|v| !v.deleted)
                .map(|v| v.version)
                .collect();
            if live.is_empty() {
                return Err(RegistryError::SubjectNotFound(subject.to_string()));
            }
            versions.iter_mut().for_each(|v| v.deleted = true);
            live
        };
        self.persist(&state)?;
        Ok(deleted)
    }

    /// Deletes one version (soft, or permanent).
    pub fn delete_version(
        &self,
        subject: &str,
        v: VersionRef,
        permanent: bool,
    ) -> Result<i32, RegistryError> {
        let mut state = self.state.lock();
        let versions = state
            .subjects
            .get_mut(subject)
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_string()))?;
        let index = match v {
            VersionRef::Latest => versions.iter().rposition(|x| !x.deleted),
            VersionRef::Number(n) => versions
                .iter()
                .position(|x| x.version == n && (permanent || !x.deleted)),
        }
        .ok_or(RegistryError::VersionNotFound)?;
        let number = versions[index].version;
        if permanent {
            versions.remove(index);
        } else {
            versions[index].deleted = true;
        }
        self.persist(&state)?;
        Ok(number)
    }
}
