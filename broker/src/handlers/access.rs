//! What a request's principal may do: one snapshot of the ACLs per request,
//! asked the way Kafka's request handlers ask (`AuthHelper` in Kafka).
//!
//! Every handler takes an [`Access`] made from the connection's
//! [`Peer`](crate::dispatch::Peer) and checks each resource it touches
//! *before* it acts, so a refusal changes nothing. Taking one snapshot per
//! request keeps the answers of one request consistent while an
//! administrator changes ACLs.

use std::sync::Arc;

use starlog_security::acl::{CLUSTER_NAME, WILDCARD};
use starlog_security::{AclOperation, Authorizer, PatternType, Permission, ResourceType};

use crate::broker::Broker;
use crate::dispatch::Peer;

/// The ACL decisions of one request.
#[derive(Debug, Clone)]
pub struct Access<'a> {
    authorizer: Arc<Authorizer>,
    peer: &'a Peer,
}

/// The operations reported in `*_authorized_operations` per resource type
/// (Kafka's `AclEntry.supportedOperations`, less what Starlog lacks).
fn supported_operations(kind: ResourceType) -> &'static [AclOperation] {
    use AclOperation as Op;
    match kind {
        ResourceType::Topic => &[
            Op::Read,
            Op::Write,
            Op::Create,
            Op::Describe,
            Op::Delete,
            Op::Alter,
            Op::DescribeConfigs,
            Op::AlterConfigs,
        ],
        // Kafka adds DescribeConfigs and AlterConfigs since groups have
        // configs (KIP-848); Starlog's groups have none.
        ResourceType::Group => &[Op::Read, Op::Describe, Op::Delete],
        ResourceType::Cluster => &[
            Op::Create,
            Op::ClusterAction,
            Op::DescribeConfigs,
            Op::AlterConfigs,
            Op::IdempotentWrite,
            Op::Alter,
            Op::Describe,
        ],
        ResourceType::TransactionalId => &[Op::Describe, Op::Write],
        ResourceType::DelegationToken => &[Op::Describe],
        ResourceType::User => &[Op::CreateTokens, Op::DescribeTokens],
        ResourceType::Any => &[],
    }
}

impl<'a> Access<'a> {
    /// The decisions for `peer`'s request, on the ACLs in force now.
    pub fn new(broker: &Broker, peer: &'a Peer) -> Self {
        Self {
            authorizer: broker.security.authorizer(),
            peer,
        }
    }

    /// The connection asking (its listener, address and principal).
    pub fn peer(&self) -> &Peer {
        self.peer
    }

    /// Who is asking.
    pub fn principal(&self) -> &starlog_security::Principal {
        &self.peer.principal
    }

    /// Whether the principal may do `op` to `(kind, name)`; a refusal is
    /// logged (at debug).
    pub fn allows(&self, op: AclOperation, kind: ResourceType, name: &str) -> bool {
        let allowed = self.allows_quietly(op, kind, name);
        if !allowed {
            tracing::debug!(
                principal = %self.peer.principal,
                host = %self.peer.ip,
                operation = %op,
                resource = %kind,
                name,
                "refused by the ACLs"
            );
        }
        allowed
    }

    /// Whether the principal may do `op` to `(kind, name)`, without a log
    /// line: for filtering a listing (every topic, every group), where a
    /// refusal is not a request refused (Kafka's `logIfDenied = false`).
    pub fn allows_quietly(&self, op: AclOperation, kind: ResourceType, name: &str) -> bool {
        // The broker's own principal (in-broker mirrors) is allowed everything.
        self.peer.internal
            || self
                .authorizer
                .authorize(&self.peer.principal, &self.peer.ip, op, kind, name)
    }

    /// `op` on a topic.
    pub fn topic(&self, op: AclOperation, name: &str) -> bool {
        self.allows(op, ResourceType::Topic, name)
    }

    /// `op` on a consumer group.
    pub fn group(&self, op: AclOperation, name: &str) -> bool {
        self.allows(op, ResourceType::Group, name)
    }

    /// `op` on the cluster.
    pub fn cluster(&self, op: AclOperation) -> bool {
        self.allows(op, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// `op` on a transactional id.
    pub fn transactional_id(&self, op: AclOperation, name: &str) -> bool {
        self.allows(op, ResourceType::TransactionalId, name)
    }

    /// The bit field of the operations allowed on `(kind, name)`, as the
    /// `*_authorized_operations` fields carry it (bit = operation code).
    pub fn authorized_operations(&self, kind: ResourceType, name: &str) -> i32 {
        supported_operations(kind)
            .iter()
            .filter(|op| self.allows_quietly(**op, kind, name))
            .fold(0i32, |bits, op| bits | (1i32 << op.code()))
    }

    /// Whether the principal may do `op` to at least one resource of `kind`
    /// (Kafka's `authorizeByResourceType`, which InitProducerId asks for
    /// Write on any topic): a super user (or an open policy with no ACL on
    /// the type) may; a DENY on the literal `*` refuses; otherwise an ALLOW
    /// pattern not shadowed by a DENY of the same literal or of one of its
    /// prefixes permits.
    pub fn any_of_type(&self, op: AclOperation, kind: ResourceType) -> bool {
        // A name no ACL is expected to use: super users, and the
        // no-ACL-found policy, answer as they would for any resource.
        if self.peer.internal
            || self.authorizer.authorize(
                &self.peer.principal,
                &self.peer.ip,
                op,
                kind,
                "\u{0}starlog-any",
            )
        {
            return true;
        }
        let mut deny_literal = Vec::new();
        let mut deny_prefix = Vec::new();
        let mut allow: Vec<(PatternType, &str)> = Vec::new();
        for acl in self.authorizer.all() {
            let (p, e) = (&acl.pattern, &acl.entry);
            if p.resource_type != kind
                || !e.principal.covers(&self.peer.principal)
                || (e.host != WILDCARD && e.host != self.peer.ip)
                || (e.operation != op && e.operation != AclOperation::All)
            {
                continue;
            }
            match (e.permission, p.pattern_type) {
                (Permission::Deny, PatternType::Literal) if p.name == WILDCARD => return false,
                (Permission::Deny, PatternType::Literal) => deny_literal.push(p.name.as_str()),
                (Permission::Deny, PatternType::Prefixed) => deny_prefix.push(p.name.as_str()),
                (Permission::Allow, PatternType::Literal) if p.name == WILDCARD => return true,
                (Permission::Allow, t) => allow.push((t, p.name.as_str())),
                _ => {}
            }
        }
        allow.into_iter().any(|(t, name)| {
            let literal_denied = t == PatternType::Literal && deny_literal.contains(&name);
            let prefix_denied = deny_prefix.iter().any(|d| name.starts_with(d));
            !literal_denied && !prefix_denied
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use starlog_security::{AclBinding, AclEntry, Principal, ResourcePattern};

    fn acl(name: &str, pattern: PatternType, op: AclOperation, perm: Permission) -> AclBinding {
        AclBinding {
            pattern: ResourcePattern {
                resource_type: ResourceType::Topic,
                name: name.into(),
                pattern_type: pattern,
            },
            entry: AclEntry {
                principal: Principal::user("p"),
                host: "*".into(),
                operation: op,
                permission: perm,
            },
        }
    }

    fn peer() -> Peer {
        Peer {
            host: "127.0.0.1:1".into(),
            ip: "127.0.0.1".into(),
            listener: Arc::from("test"),
            principal: Principal::user("p"),
            internal: false,
        }
    }

    fn access(acls: Vec<AclBinding>, peer: &Peer) -> Access<'_> {
        let mut a = Authorizer::new([], false);
        a.replace_all(acls);
        Access {
            authorizer: Arc::new(a),
            peer,
        }
    }

    #[test]
    fn any_of_type_follows_kafkas_rule() {
        use AclOperation::Write;
        use PatternType::{Literal, Prefixed};
        use Permission::{Allow, Deny};
        let p = peer();
        assert!(!access(vec![], &p).any_of_type(Write, ResourceType::Topic));
        assert!(access(vec![acl("t", Literal, Write, Allow)], &p)
            .any_of_type(Write, ResourceType::Topic));
        assert!(
            !access(vec![acl("t", Literal, AclOperation::Read, Allow)], &p)
                .any_of_type(Write, ResourceType::Topic)
        );
        assert!(!access(
            vec![
                acl("t", Literal, Write, Allow),
                acl("t", Literal, Write, Deny)
            ],
            &p
        )
        .any_of_type(Write, ResourceType::Topic));
        assert!(!access(
            vec![
                acl("abc", Prefixed, Write, Allow),
                acl("ab", Prefixed, Write, Deny)
            ],
            &p
        )
        .any_of_type(Write, ResourceType::Topic));
        assert!(access(
            vec![
                acl("abc", Prefixed, Write, Allow),
                acl("abd", Prefixed, Write, Deny)
            ],
            &p
        )
        .any_of_type(Write, ResourceType::Topic));
        assert!(!access(
            vec![
                acl("t", Literal, Write, Allow),
                acl("*", Literal, Write, Deny)
            ],
            &p
        )
        .any_of_type(Write, ResourceType::Topic));
    }

    #[test]
    fn authorized_operations_sets_one_bit_per_allowed_operation() {
        let p = peer();
        let a = access(
            vec![acl(
                "t",
                PatternType::Literal,
                AclOperation::Read,
                Permission::Allow,
            )],
            &p,
        );
        // Read (3) and the Describe (8) it implies.
        assert_eq!(
            a.authorized_operations(ResourceType::Topic, "t"),
            (1 << 3) | (1 << 8)
        );
        assert_eq!(a.authorized_operations(ResourceType::Topic, "u"), 0);
    }
}
