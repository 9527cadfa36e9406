//! The schema-id rule's source of upstream schemas: the broker's
//! [`UpstreamRegistry`] on the clients' registry client, one client per
//! registry URL.

use std::time::Duration;

use starlog_broker::extensions::{BoxFuture, ExtensionError, UpstreamRegistry};
use starlog_clients::registry::RegistryPool;

/// Timeout of one upstream registry request.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(10);

/// Upstream registries by URL.
#[derive(Debug)]
pub struct Upstream(RegistryPool);

impl Default for Upstream {
    fn default() -> Self {
        Self(RegistryPool::new("upstream", REGISTRY_TIMEOUT))
    }
}

impl UpstreamRegistry for Upstream {
    fn schema_text<'a>(
        &'a self,
        url: &'a str,
        id: u32,
    ) -> BoxFuture<'a, Result<String, ExtensionError>> {
        Box::pin(async move {
            let client = self
                .0
                .client(url)
                .map_err(|e| format!("upstream registry {url}: {e}"))?;
            Ok(client.schema_text(id).await?)
        })
    }
}
