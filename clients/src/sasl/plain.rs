//! SASL/PLAIN (RFC 4616): one message, `authzid NUL authcid NUL password`.

/// The single client message; the authorization identity is left empty.
pub fn initial_response(username: &str, password: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(username.len() + password.len() + 2);
    out.push(0);
    out.extend_from_slice(username.as_bytes());
    out.push(0);
    out.extend_from_slice(password.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn layout_is_nul_user_nul_password() {
        assert_eq!(super::initial_response("alice", "pw"), b"\0alice\0pw");
    }
}
