//! The TLS handshake path of every TLS listener: arbitrary bytes as the
//! first flight of a client, fed to a `rustls::ServerConnection` made from
//! a `ServerTls` (client certificates requested, so a Certificate message
//! reaches the client verifier), then the same bytes as a DER certificate
//! whose subject the principal is read from.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rustls::pki_types::CertificateDer;
use starlog_security::tls::{
    cert_principal, CertPrincipal, ClientAuth, ServerTls, TlsSettings,
};

/// A server configuration from a self-signed certificate written once.
fn server() -> &'static ServerTls {
    static TLS: OnceLock<ServerTls> = OnceLock::new();
    TLS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("starlog-fuzz-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("certificate");
        std::fs::write(dir.join("cert.pem"), ck.cert.pem()).expect("write cert");
        std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).expect("write key");
        std::fs::write(dir.join("ca.pem"), ck.cert.pem()).expect("write ca");
        let settings = TlsSettings {
            cert: "cert.pem".into(),
            key: "key.pem".into(),
            client_ca: Some("ca.pem".into()),
            client_auth: ClientAuth::Requested,
            principal: CertPrincipal::Dn,
        };
        ServerTls::load(&settings, &dir).expect("server TLS")
    })
}

fuzz_target!(|data: &[u8]| {
    let tls = server();
    if let Ok(mut conn) = rustls::ServerConnection::new(tls.config()) {
        let mut rd = data;
        // read_tls takes at most one buffer's worth per call; feed it all.
        while !rd.is_empty() {
            match conn.read_tls(&mut rd) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if conn.process_new_packets().is_err() {
                        break;
                    }
                }
            }
        }
        let mut out = Vec::new();
        while conn.wants_write() {
            if conn.write_tls(&mut out).is_err() {
                break;
            }
        }
        let _ = tls.principal(conn.peer_certificates());
    }
    for how in [CertPrincipal::Dn, CertPrincipal::Cn] {
        let _ = cert_principal(&CertificateDer::from(data), how);
    }
});
