//! The server-side schema-id rule: on a topic whose config names an upstream
//! registry (`starlog.schema.upstream.registry`), every produced batch's
//! Confluent schema ids are rewritten to this broker's registry ids before
//! the append — the rule the mirror applies, for batches that plain
//! producers send.
//!
//! Each upstream id is resolved once (its schema fetched from the upstream
//! registry through the [`UpstreamRegistry`] the embedding program plugs
//! in — the `starlog` binary's is the clients' registry client — and
//! registered locally under `<topic>-value`) and cached. The
//! rewrite itself is `starlog-wire`'s pure bytes → bytes function: 4 bytes per
//! value patched, the batch CRC recomputed, compressed batches recompressed,
//! untouched batches kept as the same bytes. A batch that cannot be
//! rewritten (an unknown id, a value without magic byte 0, the upstream
//! registry down) is refused with `INVALID_RECORD` and nothing is stored.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use starlog_wire::{rewrite_batch, schema_ids, BatchRewrite, RewriteOptions};

use crate::batch;
use crate::extensions::UpstreamRegistry;
use crate::registry::SchemaStore;

/// The topic config key naming the upstream registry.
pub const UPSTREAM_REGISTRY_KEY: &str = "starlog.schema.upstream.registry";

/// Checks a rule's value: `http://host[:port][/prefix]` or `https://...`,
/// without credentials in it.
pub fn check_url(url: &str) -> Result<(), String> {
    let bad = |reason: &str| Err(format!("{UPSTREAM_REGISTRY_KEY}={url}: {reason}"));
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return bad("must start with http:// or https://");
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return bad("no host");
    }
    if authority.contains('@') {
        return bad("credentials do not go in the URL");
    }
    let port = match authority.rsplit_once(':') {
        // `[::1]` alone: the colons are the address's, not a port.
        Some((host, port)) if !port.ends_with(']') => Some((host, port)),
        _ => None,
    };
    if let Some((host, port)) = port {
        if host.is_empty() {
            return bad("no host");
        }
        if port.parse::<u16>().is_err() {
            return bad("port is not a number from 0 to 65535");
        }
    }
    Ok(())
}

/// Upstream → local id mappings, shared by all topics.
#[derive(Debug)]
pub struct SchemaRule {
    local: Arc<SchemaStore>,
    upstream: Option<Arc<dyn UpstreamRegistry>>,
    ids: Mutex<HashMap<(String, String, u32), u32>>,
}

impl SchemaRule {
    /// A rule registering into `local`, with no upstream registry client
    /// yet (see [`SchemaRule::with_upstream`]).
    pub fn new(local: Arc<SchemaStore>) -> Self {
        Self {
            local,
            upstream: None,
            ids: Mutex::new(HashMap::new()),
        }
    }

    /// The rule with `upstream` as its source of upstream schemas; without
    /// one every batch of a topic with the rule is refused.
    #[must_use]
    pub fn with_upstream(mut self, upstream: Option<Arc<dyn UpstreamRegistry>>) -> Self {
        self.upstream = upstream;
        self
    }

    async fn local_id(&self, topic: &str, url: &str, upstream: u32) -> Result<u32, String> {
        let key = (url.to_string(), topic.to_string(), upstream);
        if let Some(id) = self.ids.lock().get(&key) {
            return Ok(*id);
        }
        let Some(registry) = &self.upstream else {
            return Err(format!(
                "schema id {upstream}: this broker has no upstream registry client"
            ));
        };
        let text = registry
            .schema_text(url, upstream)
            .await
            .map_err(|e| format!("schema id {upstream}: {e}"))?;
        let store = Arc::clone(&self.local);
        let subject = format!("{topic}-value");
        let local = tokio::task::spawn_blocking(move || store.register(&subject, &text))
            .await
            .map_err(|e| format!("registering schema id {upstream}: {e}"))?
            .map_err(|e| format!("registering upstream schema id {upstream} locally: {e}"))?;
        self.ids.lock().insert(key, local);
        tracing::info!(topic, upstream, local, "schema id rule: mapped upstream id");
        Ok(local)
    }

    /// Rewrites the batches of one produce to `topic` (records as sent).
    pub async fn apply(&self, topic: &str, url: &str, records: Bytes) -> Result<Bytes, String> {
        let opts = RewriteOptions::default();
        let headers = batch::headers(&records).map_err(|e| e.to_string())?;
        let mut out = BytesMut::with_capacity(records.len());
        let mut changed = false;
        let mut at = 0usize;
        for h in headers {
            let slice = records.slice(at..at + h.total_len);
            at += h.total_len;
            let ids = schema_ids(&slice, &opts).map_err(|e| e.to_string())?;
            let mut map = HashMap::with_capacity(ids.len());
            for id in ids {
                map.insert(id, self.local_id(topic, url, id).await?);
            }
            match rewrite_batch(&slice, &map, &opts).map_err(|e| e.to_string())? {
                BatchRewrite::Unchanged => out.extend_from_slice(&slice),
                BatchRewrite::Rewritten { bytes, .. } => {
                    changed = true;
                    out.extend_from_slice(&bytes);
                }
            }
        }
        Ok(if changed { out.freeze() } else { records })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_urls_are_checked_like_the_registry_client_parses_them() {
        for good in [
            "http://127.0.0.1:8081",
            "https://reg.example.org/api/v1/",
            "http://[::1]",
            "http://[::1]:8081/x",
        ] {
            assert!(check_url(good).is_ok(), "{good}");
        }
        for bad in [
            "ftp://x",
            "http://",
            "http://u:p@h:1",
            "http://h:99999",
            "http://h:",
            "h:1",
        ] {
            let e = check_url(bad).unwrap_err();
            assert!(e.starts_with(UPSTREAM_REGISTRY_KEY), "{e}");
        }
    }

    #[tokio::test]
    async fn without_an_upstream_registry_a_framed_batch_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SchemaStore::open(&dir.path().join("schemas.json")).unwrap());
        let rule = SchemaRule::new(store).with_upstream(None);
        let e = rule
            .local_id("t", "http://127.0.0.1:1", 7)
            .await
            .unwrap_err();
        assert!(e.contains("no upstream registry client"), "{e}");
    }
}
