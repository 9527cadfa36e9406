//! Where Confluent schema ids are resolved, and where output schemas are
//! registered.
//!
//! The processors crate never talks HTTP: the broker's built-in registry and
//! the clients' HTTP registry client implement [`SchemaSource`] (lookup by
//! id) and [`SchemaRegistry`] (register under a subject). [`SchemaCache`]
//! sits in front of any source so that each id is fetched and parsed once —
//! Confluent ids are immutable, so the cache never needs invalidation.
//! [`MemorySchemaRegistry`] is the in-process implementation used by tests
//! and by runs that need no shared registry.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use apache_avro::Schema;
use parking_lot::RwLock;

/// Why a schema could not be fetched or registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaSourceError {
    /// No schema has this id.
    #[error("schema id {id} is not registered")]
    NotFound {
        /// The id asked for.
        id: u32,
    },
    /// The registry could not be reached or answered with an error.
    #[error("schema registry unavailable: {reason}")]
    Unavailable {
        /// What went wrong.
        reason: String,
    },
    /// The registry refused to register the schema for good (it is
    /// incompatible with the subject's earlier schemas): retrying cannot help.
    #[error("the registry refused the schema for subject {subject}: {reason}")]
    Refused {
        /// The subject.
        subject: String,
        /// The registry's message.
        reason: String,
    },
    /// The schema text is not a valid Avro schema.
    #[error("schema {what} is not a valid Avro schema: {reason}")]
    Invalid {
        /// Which schema (an id or a subject).
        what: String,
        /// The parser's message.
        reason: String,
    },
}

/// Looks schemas up by Confluent id.
pub trait SchemaSource: Send + Sync + fmt::Debug {
    /// The schema text (Avro JSON) registered under `id`.
    ///
    /// # Errors
    /// [`SchemaSourceError::NotFound`] for an unknown id,
    /// [`SchemaSourceError::Unavailable`] when the registry cannot answer.
    fn schema_text(&self, id: u32) -> Result<String, SchemaSourceError>;
}

/// A registry that also accepts new schemas (for writers that publish an
/// annotated schema).
pub trait SchemaRegistry: SchemaSource {
    /// Registers `schema_text` under `subject` and returns its id; registering
    /// the same schema again returns the same id.
    ///
    /// # Errors
    /// [`SchemaSourceError::Invalid`], [`SchemaSourceError::Refused`] (for
    /// good) or [`SchemaSourceError::Unavailable`] (may succeed later).
    fn register(&self, subject: &str, schema_text: &str) -> Result<u32, SchemaSourceError>;
}

/// Parsed schemas by id, in front of a [`SchemaSource`].
#[derive(Debug)]
pub struct SchemaCache {
    source: Arc<dyn SchemaSource>,
    parsed: RwLock<HashMap<u32, Arc<Schema>>>,
}

impl SchemaCache {
    /// A cache over `source`.
    #[must_use]
    pub fn new(source: Arc<dyn SchemaSource>) -> Self {
        SchemaCache {
            source,
            parsed: RwLock::new(HashMap::new()),
        }
    }

    /// The parsed schema for `id`, fetching it on first use. Failures are not
    /// cached: a schema registered later is found on the next call.
    ///
    /// # Errors
    /// The source's error, or [`SchemaSourceError::Invalid`].
    pub fn get(&self, id: u32) -> Result<Arc<Schema>, SchemaSourceError> {
        if let Some(s) = self.parsed.read().get(&id) {
            return Ok(Arc::clone(s));
        }
        let text = self.source.schema_text(id)?;
        let schema = Schema::parse_str(&text).map_err(|e| SchemaSourceError::Invalid {
            what: format!("id {id}"),
            reason: e.to_string(),
        })?;
        let schema = Arc::new(schema);
        let mut parsed = self.parsed.write();
        Ok(Arc::clone(parsed.entry(id).or_insert(schema)))
    }

    /// Number of cached schemas.
    #[must_use]
    pub fn len(&self) -> usize {
        self.parsed.read().len()
    }

    /// True when nothing is cached yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Default)]
struct Registry {
    by_id: BTreeMap<u32, String>,
    by_canonical: HashMap<String, u32>,
    subjects: BTreeMap<String, Vec<u32>>,
    next_id: u32,
}

/// An in-memory registry with Confluent's id semantics: one id per distinct
/// schema (by Parsing Canonical Form), shared across subjects.
#[derive(Debug, Default)]
pub struct MemorySchemaRegistry {
    inner: RwLock<Registry>,
}

impl MemorySchemaRegistry {
    /// An empty registry; the first registered schema gets id 1.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts a schema under a fixed id (as an upstream registry would have
    /// assigned it, e.g. Rubin's `major*100 + minor`).
    ///
    /// # Errors
    /// [`SchemaSourceError::Invalid`] when the text does not parse.
    pub fn insert_with_id(&self, id: u32, schema_text: &str) -> Result<(), SchemaSourceError> {
        let canonical = canonical(&format!("id {id}"), schema_text)?;
        let mut r = self.inner.write();
        r.by_id.insert(id, schema_text.to_owned());
        r.by_canonical.entry(canonical).or_insert(id);
        r.next_id = r.next_id.max(id);
        Ok(())
    }

    /// The ids registered under `subject`, oldest first.
    #[must_use]
    pub fn versions(&self, subject: &str) -> Vec<u32> {
        self.inner
            .read()
            .subjects
            .get(subject)
            .cloned()
            .unwrap_or_default()
    }
}

fn canonical(what: &str, text: &str) -> Result<String, SchemaSourceError> {
    Schema::parse_str(text)
        .map(|s| s.canonical_form())
        .map_err(|e| SchemaSourceError::Invalid {
            what: what.to_owned(),
            reason: e.to_string(),
        })
}

impl SchemaSource for MemorySchemaRegistry {
    fn schema_text(&self, id: u32) -> Result<String, SchemaSourceError> {
        self.inner
            .read()
            .by_id
            .get(&id)
            .cloned()
            .ok_or(SchemaSourceError::NotFound { id })
    }
}

impl SchemaRegistry for MemorySchemaRegistry {
    fn register(&self, subject: &str, schema_text: &str) -> Result<u32, SchemaSourceError> {
        let canonical = canonical(&format!("for subject {subject:?}"), schema_text)?;
        let mut r = self.inner.write();
        let id = if let Some(&id) = r.by_canonical.get(&canonical) {
            id
        } else {
            r.next_id += 1;
            let id = r.next_id;
            r.by_id.insert(id, schema_text.to_owned());
            r.by_canonical.insert(canonical, id);
            id
        };
        let versions = r.subjects.entry(subject.to_owned()).or_default();
        if !versions.contains(&id) {
            versions.push(id);
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const A: &str = r#"{"type":"record","name":"a","fields":[{"name":"x","type":"long"}]}"#;
    const A_SPACED: &str = r#"{ "type": "record", "name": "a", "doc": "same", "fields": [ {"name": "x", "type": "long"} ] }"#;
    const B: &str = r#"{"type":"record","name":"b","fields":[{"name":"y","type":"string"}]}"#;

    #[test]
    fn register_dedupes_by_canonical_form_across_subjects() {
        let r = MemorySchemaRegistry::new();
        let a = r.register("t-value", A).unwrap();
        assert_eq!(r.register("other-value", A_SPACED).unwrap(), a);
        let b = r.register("t-value", B).unwrap();
        assert_ne!(a, b);
        assert_eq!(r.versions("t-value"), vec![a, b]);
        assert_eq!(r.versions("other-value"), vec![a]);
        assert_eq!(r.schema_text(b).unwrap(), B);
        assert_eq!(
            r.schema_text(999),
            Err(SchemaSourceError::NotFound { id: 999 })
        );
    }

    #[test]
    fn invalid_schema_is_rejected_with_subject() {
        let r = MemorySchemaRegistry::new();
        let err = r.register("t-value", "{\"type\":\"recrod\"}").unwrap_err();
        assert!(
            matches!(&err, SchemaSourceError::Invalid { what, .. } if what.contains("t-value")),
            "{err}"
        );
        assert!(r.insert_with_id(5, "not json").is_err());
    }

    #[test]
    fn fixed_ids_and_next_id_do_not_collide() {
        let r = MemorySchemaRegistry::new();
        r.insert_with_id(900, A).unwrap();
        let b = r.register("s", B).unwrap();
        assert_eq!(b, 901);
    }

    #[derive(Debug, Default)]
    struct Counting {
        calls: AtomicUsize,
        inner: MemorySchemaRegistry,
    }
    impl SchemaSource for Counting {
        fn schema_text(&self, id: u32) -> Result<String, SchemaSourceError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.inner.schema_text(id)
        }
    }

    #[test]
    fn cache_fetches_each_id_once_and_does_not_cache_misses() {
        let source = Arc::new(Counting::default());
        let cache = SchemaCache::new(source.clone());
        assert!(cache.get(7).is_err());
        source.inner.insert_with_id(7, A).unwrap();
        let s1 = cache.get(7).unwrap();
        let s2 = cache.get(7).unwrap();
        assert!(Arc::ptr_eq(&s1, &s2));
        assert_eq!(
            source.calls.load(Ordering::SeqCst),
            2,
            "one miss, one fetch"
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn cache_reports_invalid_schema_text() {
        #[derive(Debug)]
        struct Bad;
        impl SchemaSource for Bad {
            fn schema_text(&self, _id: u32) -> Result<String, SchemaSourceError> {
                Ok("{".to_owned())
            }
        }
        let cache = SchemaCache::new(Arc::new(Bad));
        assert!(
            matches!(cache.get(3), Err(SchemaSourceError::Invalid { what, .. }) if what == "id 3")
        );
    }
}
