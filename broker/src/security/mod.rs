//! Who a connection is and what it may do: the broker's side of
//! `starlog-security`.
//!
//! Every request carries the connection's [`Peer`](crate::dispatch::Peer):
//! its address, the listener it came in on and its principal
//! (`User:ANONYMOUS` on a listener without authentication, the SASL user or
//! the client certificate's subject otherwise). Handlers ask
//! [`Broker::allowed`](crate::broker::Broker::allowed) before they act; the
//! users and ACLs live in a [`SecurityStore`] picked once at start-up (a
//! file for a broker alone, the metadata log in a cluster), the way the
//! group coordinator's backend is.
//!
//! `tls_reload`: [`TlsReloader`], every TLS configuration of the broker,
//! reloaded when its files change and on `SIGHUP`.

mod internal;
mod store;
mod tls_reload;

pub use internal::{InternalLogin, INTERNAL_MECHANISM, INTERNAL_USER};

pub use store::{
    read_state, write_state, LocalSecurityStore, Policy, SecurityStore, StoreError, SECURITY_FILE,
};
pub use tls_reload::{TlsReloader, TLS_POLL_INTERVAL};
