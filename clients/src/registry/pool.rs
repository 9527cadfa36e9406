//! Registry clients by URL, made on first use with the same settings: the
//! broker's server-side schema-id rule talks to whichever upstream registry
//! a topic's config names.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::{HttpError, RegistryClient};

/// One [`RegistryClient`] per base URL (no credentials, public TLS roots).
#[derive(Debug)]
pub struct RegistryPool {
    role: &'static str,
    timeout: Duration,
    clients: Mutex<HashMap<String, Arc<RegistryClient>>>,
}

impl RegistryPool {
    /// An empty pool; `role` names the registries in errors ("upstream"),
    /// `timeout` bounds each request.
    pub fn new(role: &'static str, timeout: Duration) -> Self {
        Self {
            role,
            timeout,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client of the registry at `url`, made on first use.
    pub fn client(&self, url: &str) -> Result<Arc<RegistryClient>, HttpError> {
        if let Some(c) = self.clients.lock().get(url) {
            return Ok(Arc::clone(c));
        }
        let c = Arc::new(RegistryClient::new(
            self.role,
            url,
            None,
            None,
            self.timeout,
        )?);
        self.clients.lock().insert(url.to_owned(), Arc::clone(&c));
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_per_url_and_bad_urls_refused() {
        let pool = RegistryPool::new("upstream", Duration::from_secs(1));
        let a = pool.client("http://127.0.0.1:1").unwrap();
        let b = pool.client("http://127.0.0.1:1").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(
            &a,
            &pool.client("http://127.0.0.1:2").unwrap()
        ));
        assert!(pool.client("ftp://x").is_err());
    }
}
