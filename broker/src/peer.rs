//! [`Peer`]: who sent a request (address, listener, principal), as every
//! handler and the authorization checks see it.

/// Who sent a request: the client's address, the listener it came in on,
/// and its principal (authorization asks about these).
#[derive(Debug, Clone)]
pub struct Peer {
    /// `ip:port` of the client.
    pub host: String,
    /// The client's address alone (what ACLs name as the host).
    pub ip: String,
    /// The listener's name.
    pub listener: std::sync::Arc<str>,
    /// `User:ANONYMOUS` until the connection authenticates.
    pub principal: starlog_security::Principal,
    /// Logged in as the broker's own principal (`User:starlog-internal`,
    /// with this run's password): allowed everything.
    pub internal: bool,
}

impl Peer {
    /// An anonymous client of `listener` at `addr`.
    pub fn anonymous(addr: std::net::SocketAddr, listener: std::sync::Arc<str>) -> Self {
        Self {
            host: addr.to_string(),
            ip: addr.ip().to_string(),
            listener,
            principal: starlog_security::Principal::anonymous(),
            internal: false,
        }
    }
}
