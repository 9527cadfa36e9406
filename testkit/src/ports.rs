//! Loopback ports for brokers started as processes.

use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};

/// A free port on 127.0.0.1 below Linux's ephemeral range (32768 and up).
/// Nodes are killed and restarted on the same ports, and a port from the
/// ephemeral range can be taken in between as the source port of some
/// outgoing connection (peers keep reconnecting to the killed node), so
/// that the restarted node could not bind it.
pub fn try_free_port() -> Result<u16, std::io::Error> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    for _ in 0..1000 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
        h.write_u32(std::process::id());
        let port = 20_000 + (h.finish() % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrNotAvailable,
        "no free port below the ephemeral range",
    ))
}

/// [`try_free_port`] for tests.
///
/// # Panics
///
/// When no port below the ephemeral range is free.
pub fn free_port() -> u16 {
    match try_free_port() {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_bindable_and_below_the_ephemeral_range() {
        let p = free_port();
        assert!((20_000..32_000).contains(&p), "{p}");
        assert!(TcpListener::bind(("127.0.0.1", p)).is_ok());
    }
}
