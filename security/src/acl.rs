//! Kafka's ACL model and the decision its standard authorizer makes.
//!
//! An ACL binds a resource pattern (a topic, group, the cluster or a
//! transactional id; named literally, `*`, or by prefix) to an entry: a
//! principal (`User:alice`, `User:*`), a host (`*` or an address), an
//! operation and allow or deny. The numeric codes are the Kafka protocol's,
//! so the broker's DescribeAcls / CreateAcls / DeleteAcls handlers convert
//! without tables of their own.
//!
//! The decision ([`Authorizer::authorize`]), as Kafka makes it:
//! 1. a super user may do anything;
//! 2. a matching DENY (its operation, or `All`) refuses;
//! 3. a matching ALLOW permits: its operation, `All`, or one that implies
//!    the one asked (Read, Write, Delete and Alter imply Describe;
//!    AlterConfigs implies DescribeConfigs);
//! 4. when no ACL at all names the resource, `allow_everyone_if_no_acl_found`
//!    decides; otherwise refused.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::principal::Principal;

/// The cluster resource's only name.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// The literal name that matches every resource of a type.
pub const WILDCARD: &str = "*";

/// Why an ACL, filter or code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// A code that is not one of Kafka's for this field.
    #[error("unknown {field} code {code}")]
    UnknownCode {
        /// Which field.
        field: &'static str,
        /// The code.
        code: i8,
    },
    /// A name that is not one of Kafka's for this field.
    #[error("unknown {field} `{name}` (expected one of: {expected})")]
    UnknownName {
        /// Which field.
        field: &'static str,
        /// The name given.
        name: String,
        /// The names accepted.
        expected: &'static str,
    },
    /// A filter-only value (ANY, MATCH) in an ACL to create, or an
    /// otherwise invalid binding.
    #[error("invalid ACL: {0}")]
    Invalid(String),
}

macro_rules! kafka_enum {
    ($(#[$doc:meta])* $name:ident, $field:literal { $($(#[$vdoc:meta])* $variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Kafka's protocol code.
            pub fn code(self) -> i8 {
                match self { $(Self::$variant => $code,)* }
            }

            /// From Kafka's protocol code.
            pub fn from_code(code: i8) -> Result<Self, AclError> {
                match code {
                    $($code => Ok(Self::$variant),)*
                    _ => Err(AclError::UnknownCode { field: $field, code }),
                }
            }

            /// The name Kafka's tools print (`Read`, `DescribeConfigs`).
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text,)* }
            }

            /// Parses a name as Kafka's tools write it, in any case, with
            /// or without underscores (`read`, `DESCRIBE_CONFIGS`, `DescribeConfigs`).
            pub fn parse(name: &str) -> Result<Self, AclError> {
                let squashed: String = name
                    .chars()
                    .filter(|c| *c != '_' && *c != '-')
                    .flat_map(char::to_lowercase)
                    .collect();
                $(
                    if squashed == $text.to_lowercase() {
                        return Ok(Self::$variant);
                    }
                )*
                Err(AclError::UnknownName {
                    field: $field,
                    name: name.to_string(),
                    expected: concat!($($text, " "),*),
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

kafka_enum!(
    /// What kind of thing an ACL protects. `Any` only in filters.
    ResourceType, "resource type" {
        /// Filters: every type.
        Any = 1, "Any";
        /// A topic.
        Topic = 2, "Topic";
        /// A consumer group.
        Group = 3, "Group";
        /// The cluster (named `kafka-cluster`).
        Cluster = 4, "Cluster";
        /// A transactional id.
        TransactionalId = 5, "TransactionalId";
        /// A delegation token.
        DelegationToken = 6, "DelegationToken";
        /// A user (for quotas and credentials).
        User = 7, "User";
    }
);

kafka_enum!(
    /// How an ACL's resource name matches. `Any` and `Match` only in filters.
    PatternType, "pattern type" {
        /// Filters: any pattern type, names compared exactly.
        Any = 1, "Any";
        /// Filters: the patterns that would apply to the named resource
        /// (its literal name, the literal `*`, and every prefix of it).
        Match = 2, "Match";
        /// The name itself, or `*` for every resource of the type.
        Literal = 3, "Literal";
        /// Every resource whose name starts with this.
        Prefixed = 4, "Prefixed";
    }
);

kafka_enum!(
    /// What a principal does to a resource. `Any` only in filters.
    AclOperation, "operation" {
        /// Filters: every operation.
        Any = 1, "Any";
        /// Every operation.
        All = 2, "All";
        /// Fetch, consume, commit offsets.
        Read = 3, "Read";
        /// Produce.
        Write = 4, "Write";
        /// Create topics.
        Create = 5, "Create";
        /// Delete topics, records, groups.
        Delete = 6, "Delete";
        /// Add partitions, reassign, alter ACLs.
        Alter = 7, "Alter";
        /// Metadata, offsets, group and ACL descriptions.
        Describe = 8, "Describe";
        /// Broker-to-broker requests.
        ClusterAction = 9, "ClusterAction";
        /// Read configurations.
        DescribeConfigs = 10, "DescribeConfigs";
        /// Change configurations.
        AlterConfigs = 11, "AlterConfigs";
        /// Idempotent produce.
        IdempotentWrite = 12, "IdempotentWrite";
        /// Create delegation tokens.
        CreateTokens = 13, "CreateTokens";
        /// Describe delegation tokens.
        DescribeTokens = 14, "DescribeTokens";
    }
);

kafka_enum!(
    /// Allow or deny. `Any` only in filters.
    Permission, "permission type" {
        /// Filters: both.
        Any = 1, "Any";
        /// Refuse (wins over any allow).
        Deny = 2, "Deny";
        /// Permit.
        Allow = 3, "Allow";
    }
);

impl AclOperation {
    /// Whether an ACL for `self` covers a request for `asked`, for an
    /// ALLOW (`implied`: Read, Write, Delete, Alter imply Describe;
    /// AlterConfigs implies DescribeConfigs) or a DENY (exact or `All`).
    fn covers(self, asked: AclOperation, implied: bool) -> bool {
        if self == asked || self == AclOperation::All {
            return true;
        }
        if !implied {
            return false;
        }
        match asked {
            AclOperation::Describe => matches!(
                self,
                AclOperation::Read
                    | AclOperation::Write
                    | AclOperation::Delete
                    | AclOperation::Alter
            ),
            AclOperation::DescribeConfigs => self == AclOperation::AlterConfigs,
            _ => false,
        }
    }
}

/// What an ACL protects: a resource type and a name, literal or prefixed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourcePattern {
    /// Topic, group, cluster, transactional id, ...
    pub resource_type: ResourceType,
    /// The name, `*` (literal: every resource of the type) or a prefix.
    pub name: String,
    /// Literal or prefixed.
    pub pattern_type: PatternType,
}

impl ResourcePattern {
    /// Whether this pattern applies to the resource `(kind, name)`.
    pub fn applies_to(&self, kind: ResourceType, name: &str) -> bool {
        self.resource_type == kind
            && match self.pattern_type {
                PatternType::Literal => self.name == name || self.name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&self.name),
                PatternType::Any | PatternType::Match => false,
            }
    }
}

impl fmt::Display for ResourcePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.resource_type, self.pattern_type, self.name
        )
    }
}

/// Who may (or may not) do what from where.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclEntry {
    /// `User:alice`, or `User:*` for every user.
    pub principal: Principal,
    /// `*`, or the client's address.
    pub host: String,
    /// The operation.
    pub operation: AclOperation,
    /// Allow or deny.
    pub permission: Permission,
}

impl AclEntry {
    fn applies_to(&self, who: &Principal, host: &str) -> bool {
        self.principal.covers(who) && (self.host == WILDCARD || self.host == host)
    }
}

/// One ACL: a resource pattern and an entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    /// What it protects.
    pub pattern: ResourcePattern,
    /// Who, from where, what, allow or deny.
    pub entry: AclEntry,
}

impl AclBinding {
    /// Checks that a binding to create holds no filter-only value and names
    /// the cluster correctly.
    pub fn validate(&self) -> Result<(), AclError> {
        let p = &self.pattern;
        if matches!(p.resource_type, ResourceType::Any) {
            return Err(AclError::Invalid(
                "resource type ANY is only for filters".into(),
            ));
        }
        if matches!(p.pattern_type, PatternType::Any | PatternType::Match) {
            return Err(AclError::Invalid(format!(
                "pattern type {} is only for filters (use Literal or Prefixed)",
                p.pattern_type
            )));
        }
        if p.name.is_empty() {
            return Err(AclError::Invalid("empty resource name".into()));
        }
        if p.resource_type == ResourceType::Cluster && p.name != CLUSTER_NAME {
            return Err(AclError::Invalid(format!(
                "the cluster resource is named `{CLUSTER_NAME}`, not `{}`",
                p.name
            )));
        }
        if p.pattern_type == PatternType::Prefixed && p.name == WILDCARD {
            return Err(AclError::Invalid(
                "a prefixed pattern cannot be `*` (use a literal `*`)".into(),
            ));
        }
        if matches!(self.entry.operation, AclOperation::Any) {
            return Err(AclError::Invalid(
                "operation ANY is only for filters".into(),
            ));
        }
        if matches!(self.entry.permission, Permission::Any) {
            return Err(AclError::Invalid(
                "permission ANY is only for filters".into(),
            ));
        }
        if self.entry.host.is_empty() {
            return Err(AclError::Invalid("empty host (use `*`)".into()));
        }
        Ok(())
    }
}

impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} on {} from {}",
            self.entry.permission,
            self.entry.principal,
            self.entry.operation,
            self.pattern,
            self.entry.host
        )
    }
}

/// A DescribeAcls / DeleteAcls filter: `None` and the `Any` values match
/// everything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    /// Resource type, or `Any`.
    pub resource_type: ResourceType,
    /// Resource name, or `None` for any.
    pub name: Option<String>,
    /// `Any`, `Match`, `Literal` or `Prefixed`.
    pub pattern_type: PatternType,
    /// Principal, or `None` for any.
    pub principal: Option<Principal>,
    /// Host, or `None` for any.
    pub host: Option<String>,
    /// Operation, or `Any`.
    pub operation: AclOperation,
    /// Permission, or `Any`.
    pub permission: Permission,
}

impl AclFilter {
    /// The filter that matches every ACL.
    pub fn any() -> Self {
        Self {
            resource_type: ResourceType::Any,
            name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: Permission::Any,
        }
    }

    /// Whether `acl` is one this filter selects.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let p = &acl.pattern;
        if self.resource_type != ResourceType::Any && self.resource_type != p.resource_type {
            return false;
        }
        let name_ok = match (self.pattern_type, &self.name) {
            (PatternType::Match, Some(name)) => p.applies_to(p.resource_type, name),
            (PatternType::Match, None) | (PatternType::Any, None) => true,
            (PatternType::Any, Some(name)) => &p.name == name,
            (kind, name) => kind == p.pattern_type && name.as_ref().is_none_or(|n| n == &p.name),
        };
        if !name_ok {
            return false;
        }
        let e = &acl.entry;
        self.principal.as_ref().is_none_or(|w| w == &e.principal)
            && self.host.as_ref().is_none_or(|h| h == &e.host)
            && (self.operation == AclOperation::Any || self.operation == e.operation)
            && (self.permission == Permission::Any || self.permission == e.permission)
    }
}

/// The ACLs in force and the policy around them.
#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    acls: BTreeSet<AclBinding>,
    super_users: BTreeSet<Principal>,
    allow_everyone_if_no_acl_found: bool,
}

impl Authorizer {
    /// An authorizer with no ACLs.
    pub fn new(super_users: impl IntoIterator<Item = Principal>, allow_if_no_acl: bool) -> Self {
        Self {
            acls: BTreeSet::new(),
            super_users: super_users.into_iter().collect(),
            allow_everyone_if_no_acl_found: allow_if_no_acl,
        }
    }

    /// Whether `who`, connected from `host`, may do `op` to the resource
    /// `(kind, name)` (see the module docs for the rule).
    pub fn authorize(
        &self,
        who: &Principal,
        host: &str,
        op: AclOperation,
        kind: ResourceType,
        name: &str,
    ) -> bool {
        if self.super_users.contains(who) {
            return true;
        }
        let mut any_for_resource = false;
        let mut allowed = false;
        for acl in self
            .acls
            .iter()
            .filter(|a| a.pattern.applies_to(kind, name))
        {
            any_for_resource = true;
            if !acl.entry.applies_to(who, host) {
                continue;
            }
            match acl.entry.permission {
                Permission::Deny if acl.entry.operation.covers(op, false) => return false,
                Permission::Allow if acl.entry.operation.covers(op, true) => allowed = true,
                _ => {}
            }
        }
        allowed || (!any_for_resource && self.allow_everyone_if_no_acl_found)
    }

    /// Whether `who` is a super user.
    pub fn is_super_user(&self, who: &Principal) -> bool {
        self.super_users.contains(who)
    }

    /// Adds an ACL; false when it was already there (not an error, as in Kafka).
    pub fn add(&mut self, acl: AclBinding) -> Result<bool, AclError> {
        acl.validate()?;
        Ok(self.acls.insert(acl))
    }

    /// Removes and returns the ACLs `filter` selects.
    pub fn remove_matching(&mut self, filter: &AclFilter) -> Vec<AclBinding> {
        let gone: Vec<AclBinding> = self
            .acls
            .iter()
            .filter(|a| filter.matches(a))
            .cloned()
            .collect();
        for a in &gone {
            self.acls.remove(a);
        }
        gone
    }

    /// The ACLs `filter` selects.
    pub fn matching(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.acls
            .iter()
            .filter(|a| filter.matches(a))
            .cloned()
            .collect()
    }

    /// Every ACL, in a stable order.
    pub fn all(&self) -> impl Iterator<Item = &AclBinding> {
        self.acls.iter()
    }

    /// Replaces the ACLs (as loaded from storage); invalid ones are returned, not kept.
    pub fn replace_all(
        &mut self,
        acls: impl IntoIterator<Item = AclBinding>,
    ) -> Vec<(AclBinding, AclError)> {
        self.acls.clear();
        let mut refused = Vec::new();
        for a in acls {
            match a.validate() {
                Ok(()) => {
                    self.acls.insert(a);
                }
                Err(e) => refused.push((a, e)),
            }
        }
        refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        kind: ResourceType,
        name: &str,
        pattern: PatternType,
        who: &str,
        op: AclOperation,
        perm: Permission,
    ) -> AclBinding {
        AclBinding {
            pattern: ResourcePattern {
                resource_type: kind,
                name: name.to_string(),
                pattern_type: pattern,
            },
            entry: AclEntry {
                principal: Principal::parse(who).unwrap_or_else(|e| panic!("{e}")),
                host: WILDCARD.to_string(),
                operation: op,
                permission: perm,
            },
        }
    }

    fn add(a: &mut Authorizer, b: AclBinding) {
        assert!(a.add(b).unwrap_or_else(|e| panic!("{e}")));
    }

    use AclOperation as Op;
    use PatternType as Pat;
    use ResourceType as R;

    #[test]
    fn codes_round_trip_and_names_parse_in_any_case() {
        for code in 1..=14 {
            let op = AclOperation::from_code(code).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(op.code(), code);
            assert_eq!(AclOperation::parse(op.as_str()), Ok(op));
        }
        assert_eq!(
            AclOperation::parse("DESCRIBE_CONFIGS"),
            Ok(Op::DescribeConfigs)
        );
        assert_eq!(AclOperation::parse("read"), Ok(Op::Read));
        assert_eq!(
            ResourceType::parse("transactional-id"),
            Ok(R::TransactionalId)
        );
        assert!(AclOperation::from_code(0).is_err());
        assert!(AclOperation::from_code(15).is_err());
        assert!(matches!(
            Permission::parse("maybe"),
            Err(AclError::UnknownName { .. })
        ));
    }

    #[test]
    fn the_rubin_pattern_read_only_topic_and_group_prefix() {
        let mut a = Authorizer::new([Principal::user("admin")], false);
        add(
            &mut a,
            acl(
                R::Topic,
                "alerts-",
                Pat::Prefixed,
                "User:fink",
                Op::Read,
                Permission::Allow,
            ),
        );
        add(
            &mut a,
            acl(
                R::Group,
                "fink",
                Pat::Prefixed,
                "User:fink",
                Op::Read,
                Permission::Allow,
            ),
        );
        let fink = Principal::user("fink");
        assert!(a.authorize(&fink, "10.0.0.1", Op::Read, R::Topic, "alerts-ztf"));
        assert!(
            a.authorize(&fink, "10.0.0.1", Op::Describe, R::Topic, "alerts-ztf"),
            "Read implies Describe"
        );
        assert!(!a.authorize(&fink, "10.0.0.1", Op::Write, R::Topic, "alerts-ztf"));
        assert!(!a.authorize(&fink, "10.0.0.1", Op::Read, R::Topic, "private"));
        assert!(a.authorize(&fink, "h", Op::Read, R::Group, "fink-night-1"));
        assert!(!a.authorize(&fink, "h", Op::Read, R::Group, "lasair-1"));
        assert!(!a.authorize(&fink, "h", Op::Create, R::Cluster, CLUSTER_NAME));
        assert!(a.authorize(
            &Principal::user("admin"),
            "h",
            Op::Alter,
            R::Cluster,
            CLUSTER_NAME
        ));
    }

    #[test]
    fn the_lasair_pattern_anonymous_reads_one_prefix() {
        let mut a = Authorizer::new([], false);
        add(
            &mut a,
            acl(
                R::Topic,
                "lasair_",
                Pat::Prefixed,
                "User:*",
                Op::Read,
                Permission::Allow,
            ),
        );
        let anon = Principal::anonymous();
        assert!(a.authorize(&anon, "h", Op::Read, R::Topic, "lasair_2_sn"));
        assert!(!a.authorize(&anon, "h", Op::Read, R::Topic, "ztf_raw"));
        assert!(!a.authorize(&anon, "h", Op::Write, R::Topic, "lasair_2_sn"));
    }

    #[test]
    fn deny_wins_and_is_not_implied() {
        let mut a = Authorizer::new([], false);
        add(
            &mut a,
            acl(
                R::Topic,
                "*",
                Pat::Literal,
                "User:*",
                Op::All,
                Permission::Allow,
            ),
        );
        add(
            &mut a,
            acl(
                R::Topic,
                "secret",
                Pat::Literal,
                "User:eve",
                Op::Read,
                Permission::Deny,
            ),
        );
        let eve = Principal::user("eve");
        assert!(!a.authorize(&eve, "h", Op::Read, R::Topic, "secret"));
        assert!(
            a.authorize(&eve, "h", Op::Describe, R::Topic, "secret"),
            "a Read deny does not deny Describe"
        );
        assert!(a.authorize(&eve, "h", Op::Read, R::Topic, "public"));
        add(
            &mut a,
            acl(
                R::Topic,
                "sec",
                Pat::Prefixed,
                "User:eve",
                Op::All,
                Permission::Deny,
            ),
        );
        assert!(!a.authorize(&eve, "h", Op::Describe, R::Topic, "secret"));
    }

    #[test]
    fn host_is_matched() {
        let mut a = Authorizer::new([], false);
        let mut b = acl(
            R::Topic,
            "t",
            Pat::Literal,
            "User:bob",
            Op::Read,
            Permission::Allow,
        );
        b.entry.host = "10.1.1.1".into();
        add(&mut a, b);
        let bob = Principal::user("bob");
        assert!(a.authorize(&bob, "10.1.1.1", Op::Read, R::Topic, "t"));
        assert!(!a.authorize(&bob, "10.1.1.2", Op::Read, R::Topic, "t"));
    }

    #[test]
    fn no_acl_found_follows_the_setting() {
        let anyone = Principal::user("x");
        let open = Authorizer::new([], true);
        assert!(open.authorize(&anyone, "h", Op::Write, R::Topic, "t"));
        let closed = Authorizer::new([], false);
        assert!(!closed.authorize(&anyone, "h", Op::Write, R::Topic, "t"));
        // Once any ACL names the resource, the setting no longer applies.
        let mut open = open;
        add(
            &mut open,
            acl(
                R::Topic,
                "t",
                Pat::Literal,
                "User:other",
                Op::Read,
                Permission::Allow,
            ),
        );
        assert!(!open.authorize(&anyone, "h", Op::Write, R::Topic, "t"));
        assert!(open.authorize(&anyone, "h", Op::Write, R::Topic, "u"));
    }

    #[test]
    fn alter_configs_implies_describe_configs() {
        let mut a = Authorizer::new([], false);
        add(
            &mut a,
            acl(
                R::Topic,
                "t",
                Pat::Literal,
                "User:o",
                Op::AlterConfigs,
                Permission::Allow,
            ),
        );
        let o = Principal::user("o");
        assert!(a.authorize(&o, "h", Op::DescribeConfigs, R::Topic, "t"));
        assert!(!a.authorize(&o, "h", Op::Describe, R::Topic, "t"));
    }

    #[test]
    fn filters_select_as_kafka_does() {
        let mut a = Authorizer::new([], false);
        let lit = acl(
            R::Topic,
            "alerts",
            Pat::Literal,
            "User:a",
            Op::Read,
            Permission::Allow,
        );
        let star = acl(
            R::Topic,
            "*",
            Pat::Literal,
            "User:b",
            Op::Read,
            Permission::Allow,
        );
        let pre = acl(
            R::Topic,
            "al",
            Pat::Prefixed,
            "User:c",
            Op::Write,
            Permission::Deny,
        );
        let grp = acl(
            R::Group,
            "alerts",
            Pat::Literal,
            "User:a",
            Op::Read,
            Permission::Allow,
        );
        for b in [&lit, &star, &pre, &grp] {
            add(&mut a, b.clone());
        }
        assert_eq!(a.matching(&AclFilter::any()).len(), 4);
        let mut f = AclFilter::any();
        f.resource_type = R::Topic;
        f.name = Some("alerts".into());
        f.pattern_type = Pat::Match;
        assert_eq!(a.matching(&f), {
            let mut v = vec![lit.clone(), star.clone(), pre.clone()];
            v.sort();
            v
        });
        f.pattern_type = Pat::Any;
        assert_eq!(a.matching(&f), vec![lit.clone()]);
        f.pattern_type = Pat::Prefixed;
        f.name = None;
        assert_eq!(a.matching(&f), vec![pre.clone()]);
        let mut by_user = AclFilter::any();
        by_user.principal = Some(Principal::user("a"));
        let gone = a.remove_matching(&by_user);
        assert_eq!(gone.len(), 2);
        assert_eq!(a.all().count(), 2);
        assert!(
            !a.add(star).unwrap_or_else(|e| panic!("{e}")),
            "a second identical ACL is not added"
        );
    }

    #[test]
    fn filter_values_are_refused_in_acls() {
        let mut a = Authorizer::new([], false);
        for bad in [
            acl(
                R::Any,
                "t",
                Pat::Literal,
                "User:a",
                Op::Read,
                Permission::Allow,
            ),
            acl(
                R::Topic,
                "t",
                Pat::Match,
                "User:a",
                Op::Read,
                Permission::Allow,
            ),
            acl(
                R::Topic,
                "t",
                Pat::Literal,
                "User:a",
                Op::Any,
                Permission::Allow,
            ),
            acl(
                R::Topic,
                "t",
                Pat::Literal,
                "User:a",
                Op::Read,
                Permission::Any,
            ),
            acl(
                R::Cluster,
                "c",
                Pat::Literal,
                "User:a",
                Op::Alter,
                Permission::Allow,
            ),
            acl(
                R::Topic,
                "*",
                Pat::Prefixed,
                "User:a",
                Op::Read,
                Permission::Allow,
            ),
        ] {
            assert!(matches!(a.add(bad), Err(AclError::Invalid(_))));
        }
    }
}
