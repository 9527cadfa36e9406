//! Builds one self-contained schema from a set of `.avsc` files that refer
//! to each other by full name (ZTF: `cutout`, `candidate`, `prv_candidate`,
//! `fp_hist`, `alert`; LSST: the record types, then `alert`).
//!
//! Every named type is inlined at its first use and referred to by name
//! afterwards, which is what a single-file schema (an OCF header, a registry
//! entry) looks like. The result is what bare Avro bodies are decoded with,
//! and what writers put in their output headers.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use apache_avro::Schema;
use serde_json::{Map, Value as Json};

/// Why a named schema could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum NamedSchemaError {
    /// A schema file could not be read.
    #[error("cannot read schema file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A schema file is not JSON.
    #[error("schema {origin} is not JSON: {reason}")]
    Json {
        /// File name or position in the list.
        origin: String,
        /// The parser's message.
        reason: String,
    },
    /// The requested top-level name is defined nowhere.
    #[error("no schema named {name:?} among the given files (defined: {defined})")]
    UnknownTop {
        /// The name asked for.
        name: String,
        /// Names that are defined.
        defined: String,
    },
    /// A type refers to a name that no file defines.
    #[error("type {name:?} (used in {context}) is defined in none of the given files")]
    UnknownReference {
        /// The missing name.
        name: String,
        /// The named type that uses it.
        context: String,
    },
    /// The assembled JSON is not a valid Avro schema.
    #[error("schema {name:?} is not valid Avro: {reason}")]
    Invalid {
        /// The top-level name.
        name: String,
        /// The parser's message.
        reason: String,
    },
}

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// Reads `.avsc` files and assembles the schema named `name`.
///
/// # Errors
/// See [`NamedSchemaError`].
pub fn from_files(
    files: &[impl AsRef<Path>],
    name: &str,
) -> Result<(Schema, Json), NamedSchemaError> {
    let mut texts = Vec::with_capacity(files.len());
    for f in files {
        let path = f.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| NamedSchemaError::Read {
            path: path.to_owned(),
            source,
        })?;
        texts.push((path.display().to_string(), text));
    }
    from_texts(&texts, name)
}

/// Assembles the schema named `name` from `(origin, json text)` pairs.
///
/// # Errors
/// See [`NamedSchemaError`].
pub fn from_texts(
    texts: &[(String, String)],
    name: &str,
) -> Result<(Schema, Json), NamedSchemaError> {
    let mut defs: HashMap<String, (Json, Option<String>)> = HashMap::new();
    for (origin, text) in texts {
        let json: Json = serde_json::from_str(text).map_err(|e| NamedSchemaError::Json {
            origin: origin.clone(),
            reason: e.to_string(),
        })?;
        collect_definitions(&json, None, &mut defs);
    }
    let top = resolve_name(name, None, &defs).ok_or_else(|| {
        let mut defined: Vec<&str> = defs.keys().map(String::as_str).collect();
        defined.sort_unstable();
        NamedSchemaError::UnknownTop {
            name: name.to_owned(),
            defined: defined.join(", "),
        }
    })?;
    let mut inliner = Inliner {
        defs: &defs,
        done: HashSet::new(),
    };
    let json = inliner.named(&top)?;
    let schema = Schema::parse(&json).map_err(|e| NamedSchemaError::Invalid {
        name: name.to_owned(),
        reason: e.to_string(),
    })?;
    Ok((schema, json))
}

fn full_name(obj: &Map<String, Json>, enclosing: Option<&str>) -> Option<(String, Option<String>)> {
    let name = obj.get("name")?.as_str()?;
    if let Some((ns, _)) = name.rsplit_once('.') {
        return Some((name.to_owned(), Some(ns.to_owned())));
    }
    let ns = obj
        .get("namespace")
        .and_then(Json::as_str)
        .map(str::to_owned)
        .or_else(|| enclosing.map(str::to_owned))
        .filter(|s| !s.is_empty());
    let full = ns
        .as_ref()
        .map_or_else(|| name.to_owned(), |ns| format!("{ns}.{name}"));
    Some((full, ns))
}

fn is_named_type(obj: &Map<String, Json>) -> bool {
    matches!(
        obj.get("type").and_then(Json::as_str),
        Some("record" | "error" | "enum" | "fixed")
    )
}

fn collect_definitions(
    json: &Json,
    enclosing: Option<&str>,
    defs: &mut HashMap<String, (Json, Option<String>)>,
) {
    match json {
        Json::Array(items) => items
            .iter()
            .for_each(|i| collect_definitions(i, enclosing, defs)),
        Json::Object(obj) => {
            let mut ns = enclosing.map(str::to_owned);
            if is_named_type(obj) {
                if let Some((full, own_ns)) = full_name(obj, enclosing) {
                    ns.clone_from(&own_ns);
                    defs.entry(full).or_insert_with(|| (json.clone(), own_ns));
                }
            }
            for key in ["type", "items", "values"] {
                if let Some(v) = obj.get(key) {
                    collect_definitions(v, ns.as_deref(), defs);
                }
            }
            if let Some(Json::Array(fields)) = obj.get("fields") {
                fields
                    .iter()
                    .for_each(|f| collect_definitions(f, ns.as_deref(), defs));
            }
        }
        _ => {}
    }
}

fn resolve_name(
    name: &str,
    enclosing: Option<&str>,
    defs: &HashMap<String, (Json, Option<String>)>,
) -> Option<String> {
    if defs.contains_key(name) {
        return Some(name.to_owned());
    }
    let qualified = format!("{}.{name}", enclosing?);
    defs.contains_key(&qualified).then_some(qualified)
}

struct Inliner<'a> {
    defs: &'a HashMap<String, (Json, Option<String>)>,
    done: HashSet<String>,
}

impl Inliner<'_> {
    /// Inlines the definition of `full` (not yet emitted).
    fn named(&mut self, full: &str) -> Result<Json, NamedSchemaError> {
        let Some((def, ns)) = self.defs.get(full) else {
            return Err(NamedSchemaError::UnknownReference {
                name: full.to_owned(),
                context: "(top level)".to_owned(),
            });
        };
        self.done.insert(full.to_owned());
        let mut out = def.clone();
        if let Json::Object(obj) = &mut out {
            // Make the namespace explicit: the definition may have inherited it
            // from a file it no longer sits in.
            let short = full.rsplit_once('.').map_or(full, |(_, s)| s);
            obj.insert("name".to_owned(), Json::String(short.to_owned()));
            if let Some(ns) = ns {
                obj.insert("namespace".to_owned(), Json::String(ns.clone()));
            }
            self.object_children(obj, ns.as_deref(), full)?;
        }
        Ok(out)
    }

    fn object_children(
        &mut self,
        obj: &mut Map<String, Json>,
        ns: Option<&str>,
        context: &str,
    ) -> Result<(), NamedSchemaError> {
        if let Some(Json::Array(fields)) = obj.get_mut("fields") {
            for f in fields {
                if let Some(t) = f.get_mut("type") {
                    self.expand(t, ns, context)?;
                }
            }
        }
        for key in ["items", "values"] {
            if let Some(t) = obj.get_mut(key) {
                self.expand(t, ns, context)?;
            }
        }
        Ok(())
    }

    fn expand(
        &mut self,
        json: &mut Json,
        ns: Option<&str>,
        context: &str,
    ) -> Result<(), NamedSchemaError> {
        match json {
            Json::String(s) => {
                if PRIMITIVES.contains(&s.as_str()) {
                    return Ok(());
                }
                let full = resolve_name(s, ns, self.defs).ok_or_else(|| {
                    NamedSchemaError::UnknownReference {
                        name: s.clone(),
                        context: context.to_owned(),
                    }
                })?;
                *json = if self.done.contains(&full) {
                    Json::String(full)
                } else {
                    self.named(&full)?
                };
            }
            Json::Array(items) => {
                for i in items {
                    self.expand(i, ns, context)?;
                }
            }
            Json::Object(obj) => {
                if is_named_type(obj) {
                    let (full, own_ns) = full_name(obj, ns).unwrap_or_default();
                    if !full.is_empty() {
                        self.done.insert(full.clone());
                    }
                    self.object_children(obj, own_ns.as_deref().or(ns), &full)?;
                } else if let Some(t) = obj.get_mut("type") {
                    if !t.is_string() || !matches!(t.as_str(), Some("array" | "map")) {
                        self.expand(t, ns, context)?;
                    }
                    self.object_children(obj, ns, context)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, text: &str) -> (String, String) {
        (name.to_owned(), text.to_owned())
    }

    #[test]
    fn inlines_first_use_and_references_later_ones() {
        let cutout = t(
            "c",
            r#"{"namespace":"x.a","name":"cutout","type":"record","fields":[{"name":"b","type":"bytes"}]}"#,
        );
        let alert = t(
            "a",
            r#"{"namespace":"x","name":"a","type":"record","fields":[
                {"name":"s","type":["null","x.a.cutout"]},
                {"name":"t","type":["null","x.a.cutout"]},
                {"name":"l","type":{"type":"array","items":"x.a.cutout"}}]}"#,
        );
        let (schema, json) = from_texts(&[cutout, alert], "x.a").unwrap();
        assert_eq!(schema.name().unwrap().to_string(), "x.a");
        let fields = json["fields"].as_array().unwrap();
        assert!(fields[0]["type"][1].is_object(), "first use inlined");
        assert_eq!(fields[1]["type"][1], "x.a.cutout");
        assert_eq!(fields[2]["type"]["items"], "x.a.cutout");
    }

    #[test]
    fn unknown_names_are_reported() {
        let alert = t(
            "a",
            r#"{"name":"a","type":"record","fields":[{"name":"s","type":"nope"}]}"#,
        );
        let err = from_texts(std::slice::from_ref(&alert), "a").unwrap_err();
        assert!(
            matches!(&err, NamedSchemaError::UnknownReference { name, context } if name == "nope" && context == "a"),
            "{err}"
        );
        let err = from_texts(&[alert], "b").unwrap_err();
        assert!(matches!(err, NamedSchemaError::UnknownTop { .. }));
        let err = from_texts(&[t("bad", "{")], "a").unwrap_err();
        assert!(matches!(err, NamedSchemaError::Json { origin, .. } if origin == "bad"));
        let dir = tempfile::tempdir().unwrap();
        let err = from_files(&[dir.path().join("missing.avsc")], "a").unwrap_err();
        assert!(matches!(err, NamedSchemaError::Read { .. }));
    }
}
