//! The server-side schema-id rule: on a topic whose config names an upstream
//! registry (`starlog.schema.upstream.registry`), every produced batch's
//! Confluent schema ids are rewritten to this broker's registry ids before
//! the append — the rule the mirror applies, for batches that plain
//! producers send.
//!
//! Each upstream id is resolved once (its schema fetched from the upstream
//! registry and registered locally under `<topic>-value`) and cached. The
//! rewrite itself is `starlog-wire`'s pure bytes → bytes function: 4 bytes per
//! value patched, the batch CRC recomputed, compressed batches recompressed,
//! untouched batches kept as the same bytes. A batch that cannot be
//! rewritten (an unknown id, a value without magic byte 0, the upstream
//! registry down) is refused with `INVALID_RECORD` and nothing is stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use starlog_mirror::registry::client::RegistryClient;
use starlog_wire::{rewrite_batch, schema_ids, BatchRewrite, RewriteOptions};

use crate::batch;
use crate::registry::SchemaStore;

/// The topic config key naming the upstream registry.
pub const UPSTREAM_REGISTRY_KEY: &str = "starlog.schema.upstream.registry";

/// Timeout of one upstream registry request.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks a rule's value (an `http://host:port` URL).
pub fn check_url(url: &str) -> Result<(), String> {
    starlog_mirror::registry::http::BaseUrl::parse(url)
        .map(|_| ())
        .map_err(|e| format!("{UPSTREAM_REGISTRY_KEY}={url}: {e}"))
}

/// Upstream → local id mappings and registry clients, shared by all topics.
#[derive(Debug)]
pub struct SchemaRule {
    local: Arc<SchemaStore>,
    clients: Mutex<HashMap<String, Arc<RegistryClient>>>,
    ids: Mutex<HashMap<(String, String, u32), u32>>,
}

impl SchemaRule {
    /// A rule registering into `local`.
    pub fn new(local: Arc<SchemaStore>) -> Self {
        Self {
            local,
            clients: Mutex::new(HashMap::new()),
            ids: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, url: &str) -> Result<Arc<RegistryClient>, String> {
        if let Some(c) = self.clients.lock().get(url) {
            return Ok(Arc::clone(c));
        }
        let c = Arc::new(
            RegistryClient::new("upstream", url, None, None, REGISTRY_TIMEOUT)
                .map_err(|e| format!("upstream registry {url}: {e}"))?,
        );
        self.clients.lock().insert(url.to_string(), Arc::clone(&c));
        Ok(c)
    }

    async fn local_id(&self, topic: &str, url: &str, upstream: u32) -> Result<u32, String> {
        let key = (url.to_string(), topic.to_string(), upstream);
        if let Some(id) = self.ids.lock().get(&key) {
            return Ok(*id);
        }
        let text = self
            .client(url)?
            .schema_text(upstream)
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
