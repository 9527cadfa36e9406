//! A principal: who a connection is, as Kafka writes it (`User:alice`).

use std::fmt;

/// Why a principal string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    /// No `type:` prefix.
    #[error("principal `{0}` has no type prefix (write `User:{0}`)")]
    NoType(String),
    /// An empty type or name.
    #[error("principal `{0}` has an empty type or name")]
    Empty(String),
}

/// A principal: a type (`User`) and a name. `User:*` in an ACL matches
/// every user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal {
    kind: String,
    name: String,
}

impl Principal {
    /// The principal type of users.
    pub const USER: &'static str = "User";

    /// `User:name`.
    pub fn user(name: impl Into<String>) -> Self {
        Self {
            kind: Self::USER.to_string(),
            name: name.into(),
        }
    }

    /// `User:ANONYMOUS`: every client of a listener without authentication.
    pub fn anonymous() -> Self {
        Self::user("ANONYMOUS")
    }

    /// `User:*`: in an ACL, every user.
    pub fn wildcard() -> Self {
        Self::user("*")
    }

    /// Parses `Type:name` (the name may itself hold colons, as a
    /// certificate's distinguished name does not, but a user name might).
    pub fn parse(s: &str) -> Result<Self, PrincipalError> {
        let (kind, name) = s
            .split_once(':')
            .ok_or_else(|| PrincipalError::NoType(s.to_string()))?;
        if kind.is_empty() || name.is_empty() {
            return Err(PrincipalError::Empty(s.to_string()));
        }
        Ok(Self {
            kind: kind.to_string(),
            name: name.to_string(),
        })
    }

    /// The type (`User`).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The name (`alice`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this is `User:*`.
    pub fn is_wildcard(&self) -> bool {
        self.kind == Self::USER && self.name == "*"
    }

    /// Whether an ACL written for `self` applies to `who` (`User:*` applies
    /// to every user).
    pub fn covers(&self, who: &Principal) -> bool {
        self == who || (self.is_wildcard() && who.kind == Self::USER)
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

impl std::str::FromStr for Principal {
    type Err = PrincipalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for Principal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Principal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let p = Principal::parse("User:alice").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.kind(), "User");
        assert_eq!(p.name(), "alice");
        assert_eq!(p.to_string(), "User:alice");
        let dn = Principal::parse("User:CN=broker-1,O=Starlog").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dn.name(), "CN=broker-1,O=Starlog");
        assert!(matches!(
            Principal::parse("alice"),
            Err(PrincipalError::NoType(_))
        ));
        assert!(matches!(
            Principal::parse("User:"),
            Err(PrincipalError::Empty(_))
        ));
    }

    #[test]
    fn wildcard_covers_users_only() {
        let alice = Principal::user("alice");
        assert!(Principal::wildcard().covers(&alice));
        assert!(alice.covers(&alice));
        assert!(!Principal::user("bob").covers(&alice));
        let group = Principal::parse("Group:x").unwrap_or_else(|e| panic!("{e}"));
        assert!(!Principal::wildcard().covers(&group));
    }
}
