//! Starlog security: who a client is and what it may do, with no sockets and
//! no async runtime (the broker wires it to its listeners).
//!
//! * [`Principal`]: `User:alice`, `User:ANONYMOUS` on a plaintext listener.
//! * [`acl`]: Kafka's ACL model (resource types, literal and prefixed
//!   patterns, operations, allow and deny), the filters of DescribeAcls and
//!   DeleteAcls, and [`Authorizer`], the decision Kafka's standard authorizer
//!   makes (super users, deny wins, implied operations, what happens when no
//!   ACL matches).
//!
//! * [`ScramCredential`]: what the server stores for a SCRAM user (salt,
//!   iterations, StoredKey, ServerKey; never the password).
//! * [`sasl`]: the server side of SASL PLAIN, SCRAM-SHA-256 and
//!   SCRAM-SHA-512 ([`SaslServer`], one exchange fed token by token,
//!   checking users through a [`CredentialLookup`]).
//! * [`scram`]: SCRAM's client side ([`scram::ScramClient`]), which
//!   Starlog's client uses, on the same primitives as the server.
//!
//! * [`tls`]: TLS server and client configurations from PEM files (rustls on
//!   `ring`), reloadable, and the principal a client certificate names.
//!
//! Module map: `principal` (the principal type), `acl` (model, filters,
//! authorizer), `credential` (SCRAM credentials and their primitives),
//! `state` (users and ACLs as stored, and the changes applied to them),
//! `sasl` (the server mechanisms: `plain`, `scram`, and `error`), `scram`
//! (the client side and the name escaping both sides share), `tls` (TLS
//! settings, configurations and certificate principals).

pub mod acl;
mod credential;
mod principal;
pub mod sasl;
pub mod scram;
mod state;
pub mod tls;

pub use acl::{
    AclBinding, AclEntry, AclError, AclFilter, AclOperation, Authorizer, PatternType, Permission,
    ResourcePattern, ResourceType,
};
pub use credential::{
    constant_time_eq, CredentialError, ScramCredential, ScramMechanism, DEFAULT_ITERATIONS,
    MAX_ITERATIONS, MIN_ITERATIONS,
};
pub use principal::{Principal, PrincipalError};
pub use sasl::{CredentialLookup, Mechanism, SaslError, SaslServer, Step};
pub use state::{ChangeOutcome, SecurityChange, SecurityState, SECURITY_FORMAT_VERSION};
