//! The shared state every connection works against.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::clock::now_ms;
use crate::config::BrokerConfig;
use crate::control::Control;
use crate::dispatch::Peer;
use crate::groups::GroupCoordinator;
use crate::registry::SchemaStore;
use crate::schema_rule::SchemaRule;
use crate::security::{InternalLogin, SecurityStore};
use crate::topics::TopicRegistry;

/// The broker: configuration, topics, groups and producer ids.
#[derive(Debug)]
pub struct Broker {
    /// The configuration it was started with.
    pub config: BrokerConfig,
    /// Topics and partitions.
    pub topics: Arc<TopicRegistry>,
    /// The consumer-group coordinator.
    pub groups: Arc<GroupCoordinator>,
    /// The local schema registry, when enabled.
    pub schemas: Option<Arc<SchemaStore>>,
    /// The server-side schema-id rule (needs the local registry).
    pub schema_rule: Option<SchemaRule>,
    /// What depends on the mode (a broker alone, or a cluster member),
    /// picked once at start-up.
    pub control: Arc<dyn Control>,
    /// Users and ACLs (a file alone, the metadata log in a cluster),
    /// picked once at start-up.
    pub security: Arc<dyn SecurityStore>,
    /// The login of in-broker clients (`User:starlog-internal`), random per run.
    pub internal: InternalLogin,
    next_producer_id: AtomicI64,
}

impl Broker {
    /// Assembles a broker from its parts.
    pub fn new(
        config: BrokerConfig,
        topics: Arc<TopicRegistry>,
        groups: Arc<GroupCoordinator>,
        schemas: Option<Arc<SchemaStore>>,
        control: Arc<dyn Control>,
        security: Arc<dyn SecurityStore>,
        internal: InternalLogin,
    ) -> Self {
        // Producer ids must not repeat across restarts: start from the clock
        // (milliseconds << 8 leaves room for 256 ids a millisecond of uptime).
        let first_pid = now_ms().saturating_mul(256) & (i64::MAX >> 1);
        Self {
            config,
            topics,
            groups,
            schema_rule: schemas.as_ref().map(|s| SchemaRule::new(Arc::clone(s))),
            schemas,
            control,
            security,
            internal,
            next_producer_id: AtomicI64::new(first_pid),
        }
    }

    /// A fresh producer id.
    pub fn allocate_producer_id(&self) -> i64 {
        self.next_producer_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether `peer` may do `op` to the resource `(kind, name)`.
    pub fn allowed(
        &self,
        peer: &Peer,
        op: starlog_security::AclOperation,
        kind: starlog_security::ResourceType,
        name: &str,
    ) -> bool {
        peer.internal
            || self
                .security
                .authorizer()
                .authorize(&peer.principal, &peer.ip, op, kind, name)
    }

    /// This broker's node id.
    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }
}
