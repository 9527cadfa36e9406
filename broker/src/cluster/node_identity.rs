//! `node_id: auto`: a broker takes its node id from where it runs, so that
//! one configuration (a Kubernetes StatefulSet's ConfigMap) serves every
//! broker of the cluster.
//!
//! The rule, in this order:
//! 1. `STARLOG_NODE_ID`, when set: an integer, at least 1.
//! 2. Else the host name's ordinal plus one. The host name's first label
//!    must end in `-N` (decimal digits), as a StatefulSet names its pods
//!    `<name>-0`, `<name>-1`, ...: `starlog-0` is node 1, `starlog-2` node 3
//!    (node ids start at 1, ordinals at 0). Any other host name is refused.
//!
//! The host name is the kernel's (uname(2)'s node name, which is the pod's
//! name in Kubernetes and the `hostname:` of a compose service; it needs no
//! `/proc`, absent from an empty container root), else `HOSTNAME` from the
//! environment.

use std::fmt;

use serde::de::{self, Visitor};
use serde::Deserializer;

/// The environment variable `node_id: auto` reads first.
pub const NODE_ID_ENV: &str = "STARLOG_NODE_ID";

/// Why `node_id: auto` found no node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeIdError {
    /// `STARLOG_NODE_ID` is set to something else than a node id.
    #[error("{NODE_ID_ENV}={value:?} is not a node id (an integer, at least 1)")]
    BadEnv {
        /// The variable's value.
        value: String,
    },
    /// The host name has no ordinal.
    #[error(
        "the host name {host:?} does not end in `-N` (a StatefulSet pod's ordinal, as in \
         `starlog-2`, which is node 3): set {NODE_ID_ENV} or give node_id a number"
    )]
    NoOrdinal {
        /// The host name.
        host: String,
    },
    /// The ordinal is too large for a node id.
    #[error("the host name {host:?} has an ordinal too large for a node id")]
    TooLarge {
        /// The host name.
        host: String,
    },
    /// Neither the kernel nor the environment gave a host name.
    #[error(
        "cannot tell this machine's host name (uname gives none, no HOSTNAME): set {NODE_ID_ENV}"
    )]
    NoHostName,
}

/// The node id of the host named `host`: its ordinal plus one (see the
/// module docs).
pub fn id_from_hostname(host: &str) -> Result<i32, NodeIdError> {
    let no_ordinal = || NodeIdError::NoOrdinal {
        host: host.to_string(),
    };
    let first = host.split('.').next().unwrap_or_default();
    let (name, ordinal) = first.rsplit_once('-').ok_or_else(no_ordinal)?;
    if name.is_empty() || ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
        return Err(no_ordinal());
    }
    ordinal
        .parse::<i32>()
        .ok()
        .and_then(|n| n.checked_add(1))
        .ok_or_else(|| NodeIdError::TooLarge {
            host: host.to_string(),
        })
}

/// The node id from `env` (the value of `STARLOG_NODE_ID`, if set), else
/// from the host name `host` gives.
pub fn id_from(
    env: Option<&str>,
    host: impl FnOnce() -> Option<String>,
) -> Result<i32, NodeIdError> {
    if let Some(value) = env {
        return match value.trim().parse::<i32>() {
            Ok(id) if id >= 1 => Ok(id),
            _ => Err(NodeIdError::BadEnv {
                value: value.to_string(),
            }),
        };
    }
    let host = host().ok_or(NodeIdError::NoHostName)?;
    id_from_hostname(&host)
}

/// This process's node id under `node_id: auto`.
pub fn auto_node_id() -> Result<i32, NodeIdError> {
    let env = std::env::var(NODE_ID_ENV).ok();
    id_from(env.as_deref(), host_name)
}

/// The kernel's host name, else `HOSTNAME`.
fn host_name() -> Option<String> {
    let kernel = rustix::system::uname()
        .nodename()
        .to_str()
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    kernel
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// Reads `node_id:` from YAML: a number, or `auto` (resolved now).
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    d.deserialize_any(NodeIdVisitor)
}

struct NodeIdVisitor;

impl Visitor<'_> for NodeIdVisitor {
    type Value = i32;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a node id (an integer) or `auto`")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i32, E> {
        i32::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i32, E> {
        i32::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<i32, E> {
        if v != "auto" {
            return Err(E::invalid_value(de::Unexpected::Str(v), &self));
        }
        auto_node_id().map_err(|e| E::custom(format!("node_id: auto: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ordinal_plus_one_is_the_node_id() {
        for (host, id) in [
            ("starlog-0", 1),
            ("starlog-2", 3),
            ("alerts-buffer-11", 12),
            ("starlog-1.starlog.alerts.svc.cluster.local", 2),
        ] {
            assert_eq!(id_from_hostname(host), Ok(id), "{host}");
        }
    }

    #[test]
    fn host_names_without_an_ordinal_are_refused_clearly() {
        for host in [
            "starlog",
            "starlog-",
            "-2",
            "starlog-x",
            "starlog-2a",
            "a.starlog-2",
            "",
        ] {
            let e = id_from_hostname(host).unwrap_err();
            assert_eq!(
                e,
                NodeIdError::NoOrdinal {
                    host: host.to_string()
                }
            );
            let text = e.to_string();
            assert!(
                text.contains(&format!("{host:?}")) && text.contains(NODE_ID_ENV),
                "{text}"
            );
        }
        assert!(matches!(
            id_from_hostname("starlog-99999999999"),
            Err(NodeIdError::TooLarge { .. })
        ));
    }

    #[test]
    fn the_environment_wins_over_the_host_name() {
        assert_eq!(id_from(Some("7"), || Some("starlog-0".into())), Ok(7));
        assert_eq!(id_from(None, || Some("starlog-0".into())), Ok(1));
        for bad in ["0", "-1", "two", ""] {
            assert_eq!(
                id_from(Some(bad), || Some("starlog-0".into())),
                Err(NodeIdError::BadEnv { value: bad.into() })
            );
        }
        assert_eq!(id_from(None, || None), Err(NodeIdError::NoHostName));
    }

    #[test]
    fn the_kernel_names_this_machine() {
        let name = host_name().unwrap();
        let kernel = std::process::Command::new("hostname").output().unwrap();
        assert_eq!(name, String::from_utf8_lossy(&kernel.stdout).trim());
    }

    #[derive(Debug, serde::Deserialize)]
    struct Doc {
        #[serde(deserialize_with = "deserialize")]
        node_id: i32,
    }

    #[test]
    fn yaml_takes_a_number_and_refuses_other_words() {
        let d: Doc = serde_yaml::from_str("node_id: 3").unwrap();
        assert_eq!(d.node_id, 3);
        let e = serde_yaml::from_str::<Doc>("node_id: automatic").unwrap_err();
        assert!(e.to_string().contains("`auto`"), "{e}");
        let e = serde_yaml::from_str::<Doc>("node_id: 4294967296").unwrap_err();
        assert!(e.to_string().contains("node_id"), "{e}");
    }
}
