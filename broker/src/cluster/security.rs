//! Users and ACLs in a cluster: [`ClusterSecurityStore`], the broker's
//! [`SecurityStore`] when it is a cluster member, and the bootstrap of the
//! users and ACLs written before the cluster first started.
//!
//! The state is the metadata log's (`ClusterState::security`): every broker
//! applies the same `Security` commands in the same order, so each answers
//! from its own applied copy. A change, from any broker, is forwarded to
//! the metadata group and resolves once this broker has applied it (with
//! what it did there, which is what it did everywhere).
//!
//! Bootstrap: `starlog users set … --config` and `starlog acls add …
//! --config` with the broker stopped write `data_dir/__meta/security.json`.
//! A cluster member that finds that file proposes its contents
//! (`SecurityBootstrap`) once a controller is known, and again every few
//! seconds until the applied state shows the cluster has users (and ACLs,
//! for the ACLs). The command decides when it is applied, the same way on
//! every broker: the file's users are taken only if the cluster has never
//! had a user, its ACLs only if it has never had an ACL. So several brokers
//! with files, a proposal repeated after a leader change, or a restart with
//! the file still there, change nothing once the first one is in.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use parking_lot::RwLock;
use starlog_security::{
    Authorizer, ChangeOutcome, ScramCredential, ScramMechanism, SecurityChange, SecurityState,
};
use tokio::sync::oneshot;

use super::inbox::Input;
use super::metadata::{self, MetaCommand, METADATA_GROUP};
use super::node::Cluster;
use super::offsets::rand_token;
use crate::security::{Policy, SecurityStore, StoreError};

/// How often a pending bootstrap is proposed again.
const BOOTSTRAP_EVERY: Duration = Duration::from_secs(2);

impl Cluster {
    /// Proposes this broker's bootstrap users and ACLs while the cluster
    /// has never had any (see the module docs); called by the applier after
    /// each catch-up.
    pub(super) fn maybe_bootstrap_security(&self) {
        let mut guard = self.bootstrap.lock();
        let b = &mut *guard;
        let Some(file) = &b.pending else {
            return;
        };
        let seen = self.state.lock().security_seen;
        let users = !file.users.is_empty() && !seen.users;
        let acls = !file.acls.is_empty() && !seen.acls;
        if !users && !acls {
            tracing::info!(
                "the cluster has users and ACLs; the bootstrap file is not needed any more"
            );
            b.pending = None;
            return;
        }
        if self.controller().is_none() || b.last.is_some_and(|t| t.elapsed() < BOOTSTRAP_EVERY) {
            return;
        }
        b.last = Some(Instant::now());
        let records = match MetaCommand::security_bootstrap(file).and_then(|c| metadata::encode(&c))
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode the bootstrap users and ACLs");
                b.pending = None;
                return;
            }
        };
        tracing::info!(
            users = file.users.len(),
            acls = file.acls.len(),
            "proposing the users and ACLs written before the first start to the cluster"
        );
        let (reply, _) = oneshot::channel();
        let _ = self.inbox.send(Input::Forward {
            group: METADATA_GROUP,
            records,
            reply,
        });
    }
}

/// The cluster's [`SecurityStore`] (see the module docs).
#[derive(Debug)]
pub(super) struct ClusterSecurityStore {
    cluster: Arc<Cluster>,
    policy: Policy,
    /// The authorizer built for a generation of the state.
    cache: RwLock<(u64, Arc<Authorizer>)>,
}

impl ClusterSecurityStore {
    /// A store reading `cluster`'s applied state under `policy`.
    pub(super) fn new(cluster: Arc<Cluster>, policy: Policy) -> Self {
        let generation = cluster.security.generation();
        let authorizer = policy.authorizer(&cluster.state.lock().security);
        Self {
            cluster,
            policy,
            cache: RwLock::new((generation, authorizer)),
        }
    }
}

impl SecurityStore for ClusterSecurityStore {
    fn authorizer(&self) -> Arc<Authorizer> {
        let generation = self.cluster.security.generation();
        {
            let cache = self.cache.read();
            if cache.0 == generation {
                return Arc::clone(&cache.1);
            }
        }
        // Read after the generation: a change in between only makes the
        // next call rebuild again.
        let authorizer = self.policy.authorizer(&self.cluster.state.lock().security);
        *self.cache.write() = (generation, Arc::clone(&authorizer));
        authorizer
    }

    fn credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.cluster
            .state
            .lock()
            .security
            .credential(user, mechanism)
            .cloned()
    }

    fn state(&self) -> SecurityState {
        self.cluster.state.lock().security.clone()
    }

    fn change(&self, change: SecurityChange) -> BoxFuture<'_, Result<ChangeOutcome, StoreError>> {
        Box::pin(async move {
            let token = rand_token();
            let cmd = MetaCommand::security(&change, token).map_err(StoreError::NotCommitted)?;
            let cluster = &self.cluster;
            cluster
                .propose_until_applied(&cmd, || cluster.security.find(token))
                .await
                .map_err(StoreError::NotCommitted)?
                .map_err(StoreError::NotCommitted)
        })
    }
}
