//! Broker addresses as `host:port` strings (IPv6 hosts in brackets).

/// Splits `host:port` (IPv6 hosts in brackets), or `None` when malformed.
pub fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("a.b:9092"), Some(("a.b", 9092)));
        assert_eq!(split_host_port("[::1]:9092"), Some(("::1", 9092)));
        assert_eq!(split_host_port("a.b"), None);
        assert_eq!(split_host_port(":9092"), None);
        assert_eq!(split_host_port("a:99999"), None);
    }
}
