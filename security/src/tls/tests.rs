#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection};

use super::*;

/// A CA that signs leaf certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `localhost` with subject `O=Starlog Test, OU=brokers, east,
    /// CN=cn`, valid from `from` to `to` days from now: (cert PEM, key PEM).
    fn leaf(&self, cn: &str, from: i64, to: i64) -> (String, String) {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Starlog Test");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "brokers, east");
        params.distinguished_name.push(DnType::CommonName, cn);
        // Now plus `days` (negative: in the past), as rcgen's date type.
        let now = rcgen::date_time_ymd(1970, 1, 1) + UNIX_EPOCH.elapsed().unwrap();
        let at = |days: i64| {
            let delta = Duration::from_secs(days.unsigned_abs() * 86_400);
            if days < 0 {
                now - delta
            } else {
                now + delta
            }
        };
        params.not_before = at(from);
        params.not_after = at(to);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// Writes server.pem / server.key / ca.pem for `ca` into `dir`.
fn server_files(dir: &Path, ca: &Ca, cn: &str) {
    let (cert, key) = ca.leaf(cn, -1, 30);
    write(dir, "server.pem", &cert);
    write(dir, "server.key", &key);
    write(dir, "ca.pem", &ca.pem());
}

fn settings(client_auth: ClientAuth, principal: CertPrincipal) -> TlsSettings {
    TlsSettings {
        cert: "server.pem".into(),
        key: "server.key".into(),
        client_ca: (client_auth != ClientAuth::None).then(|| "ca.pem".into()),
        client_auth,
        principal,
    }
}

/// Runs a handshake in memory between a client config and a server config.
/// Returns the server connection on success, the error of whichever side
/// failed otherwise.
fn handshake(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
) -> Result<(ClientConnection, ServerConnection), rustls::Error> {
    let mut c = ClientConnection::new(client, ServerName::try_from("localhost").unwrap()).unwrap();
    let mut s = ServerConnection::new(server).unwrap();
    for _ in 0..20 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
        }
        s.process_new_packets()?;
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
        }
        c.process_new_packets()?;
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok((c, s));
        }
    }
    panic!("handshake did not finish");
}

fn client_settings(dir: &Path, cert: Option<(&str, &str)>) -> ClientTlsSettings {
    ClientTlsSettings {
        ca: dir.join("ca.pem"),
        cert: cert.map(|(c, _)| c.into()),
        key: cert.map(|(_, k)| k.into()),
    }
}

#[test]
fn server_without_client_auth_serves_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test ca");
    server_files(dir.path(), &ca, "broker-1");
    let tls = ServerTls::load(&settings(ClientAuth::None, CertPrincipal::Dn), dir.path()).unwrap();
    let client = client_config(&client_settings(dir.path(), None), dir.path()).unwrap();
    let (c, s) = handshake(client, tls.config()).unwrap();
    let served = c.peer_certificates().unwrap()[0].clone();
    let principal = cert_principal(&served, CertPrincipal::Cn).unwrap();
    assert_eq!(principal, Principal::user("broker-1"));
    assert_eq!(tls.principal(s.peer_certificates()), None);
}

#[test]
fn the_server_picks_aes_128_gcm_even_when_the_client_lists_aes_256_first() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test ca");
    server_files(dir.path(), &ca, "broker-1");
    let tls = ServerTls::load(&settings(ClientAuth::None, CertPrincipal::Dn), dir.path()).unwrap();
    // A client that prefers AES-256-GCM (as OpenSSL's default list does).
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_256_GCM_SHA384);
    assert_eq!(
        provider.cipher_suites[0].suite(),
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
    );
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(
            <rustls::pki_types::CertificateDer<'static> as rustls::pki_types::pem::PemObject>::from_pem_slice(
                ca.pem().as_bytes(),
            )
            .unwrap(),
        )
        .unwrap_or_else(|e: rustls::Error| panic!("{e}"));
    let client = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (c, _) = handshake(Arc::new(client), tls.config()).unwrap();
    assert_eq!(
        c.negotiated_cipher_suite().map(|s| s.suite()),
        Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
    );
}

#[test]
fn principal_is_the_subject_dn_as_kafka_prints_it_or_the_cn() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test ca");
    server_files(dir.path(), &ca, "broker-1");
    let (cert, key) = ca.leaf("alice", -1, 30);
    write(dir.path(), "alice.pem", &cert);
    write(dir.path(), "alice.key", &key);
    let client = client_config(
        &client_settings(dir.path(), Some(("alice.pem", "alice.key"))),
        dir.path(),
    )
    .unwrap();
    for (how, want) in [
        (
            CertPrincipal::Dn,
            "User:CN=alice,OU=brokers\\, east,O=Starlog Test",
        ),
        (CertPrincipal::Cn, "User:alice"),
    ] {
        let tls = ServerTls::load(&settings(ClientAuth::Required, how), dir.path()).unwrap();
        let (_, s) = handshake(Arc::clone(&client), tls.config()).unwrap();
        let p = tls.principal(s.peer_certificates()).unwrap();
        assert_eq!(p.to_string(), want);
    }
}

#[test]
fn required_client_auth_refuses_missing_expired_future_and_foreign_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test ca");
    let other = Ca::new("other ca");
    server_files(dir.path(), &ca, "broker-1");
    let tls = ServerTls::load(
        &settings(ClientAuth::Required, CertPrincipal::Dn),
        dir.path(),
    )
    .unwrap();

    // No certificate at all.
    let none = client_config(&client_settings(dir.path(), None), dir.path()).unwrap();
    let err = handshake(none, tls.config()).unwrap_err();
    assert!(
        matches!(err, rustls::Error::NoCertificatesPresented),
        "{err:?}"
    );

    let cases = [
        ("expired", ca.leaf("old", -30, -1)),
        ("future", ca.leaf("early", 1, 30)),
        ("foreign", other.leaf("mallory", -1, 30)),
    ];
    for (name, (cert, key)) in cases {
        write(dir.path(), &format!("{name}.pem"), &cert);
        write(dir.path(), &format!("{name}.key"), &key);
        let (c, k) = (format!("{name}.pem"), format!("{name}.key"));
        let client =
            client_config(&client_settings(dir.path(), Some((&c, &k))), dir.path()).unwrap();
        let err = handshake(client, tls.config()).unwrap_err();
        let want = match name {
            "expired" => matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::Expired)
                    | rustls::Error::InvalidCertificate(
                        rustls::CertificateError::ExpiredContext { .. }
                    )
            ),
            "future" => matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidYet)
                    | rustls::Error::InvalidCertificate(
                        rustls::CertificateError::NotValidYetContext { .. }
                    )
            ),
            _ => matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
            ),
        };
        assert!(want, "{name}: {err:?}");
    }
}

#[test]
fn requested_client_auth_accepts_a_client_without_certificate_but_not_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test ca");
    let other = Ca::new("other ca");
    server_files(dir.path(), &ca, "broker-1");
    let tls = ServerTls::load(
        &settings(ClientAuth::Requested, CertPrincipal::Cn),
        dir.path(),
    )
    .unwrap();
    let none = client_config(&client_settings(dir.path(), None), dir.path()).unwrap();
    let (_, s) = handshake(none, tls.config()).unwrap();
    assert_eq!(tls.principal(s.peer_certificates()), None);

    let (cert, key) = other.leaf("mallory", -1, 30);
    write(dir.path(), "m.pem", &cert);
    write(dir.path(), "m.key", &key);
    let bad = client_config(
        &client_settings(dir.path(), Some(("m.pem", "m.key"))),
        dir.path(),
    )
    .unwrap();
    assert!(handshake(bad, tls.config()).is_err());
}

#[test]
fn reload_swaps_the_served_certificate_and_keeps_the_old_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test ca");
    server_files(dir.path(), &ca, "first");
    let tls = ServerTls::load(&settings(ClientAuth::None, CertPrincipal::Dn), dir.path()).unwrap();
    let client = client_config(&client_settings(dir.path(), None), dir.path()).unwrap();
    let served = |tls: &ServerTls| {
        let (c, _) = handshake(Arc::clone(&client), tls.config()).unwrap();
        cert_principal(&c.peer_certificates().unwrap()[0], CertPrincipal::Cn).unwrap()
    };
    assert_eq!(served(&tls), Principal::user("first"));
    assert!(!tls.reload_if_changed().unwrap());

    // Rotate: new files on disk, picked up by reload_if_changed (set the
    // modification time forward so a coarse clock still sees a change).
    let (cert, key) = ca.leaf("second", -1, 30);
    write(dir.path(), "server.pem", &cert);
    write(dir.path(), "server.key", &key);
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    for f in ["server.pem", "server.key"] {
        let file = std::fs::File::options()
            .write(true)
            .open(dir.path().join(f))
            .unwrap();
        file.set_modified(later).unwrap();
    }
    assert!(tls.reload_if_changed().unwrap());
    assert_eq!(served(&tls), Principal::user("second"));
    assert!(!tls.reload_if_changed().unwrap());

    // A broken key: the reload fails, naming the file, and the old
    // configuration stays.
    write(dir.path(), "server.key", "not a key\n");
    let err = tls.reload().unwrap_err();
    assert!(err.to_string().contains("server.key"), "{err}");
    assert_eq!(served(&tls), Principal::user("second"));

    // A key that does not match the certificate.
    let (_, other_key) = ca.leaf("third", -1, 30);
    write(dir.path(), "server.key", &other_key);
    let err = tls.reload().unwrap_err();
    assert!(matches!(err, TlsError::Identity { .. }), "{err:?}");
    assert_eq!(served(&tls), Principal::user("second"));
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing =
        ServerTls::load(&settings(ClientAuth::None, CertPrincipal::Dn), dir.path()).unwrap_err();
    assert!(matches!(missing, TlsError::Read { ref path, .. } if path.ends_with("server.pem")));

    let ca = Ca::new("test ca");
    server_files(dir.path(), &ca, "b");
    write(
        dir.path(),
        "server.pem",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    let err =
        ServerTls::load(&settings(ClientAuth::None, CertPrincipal::Dn), dir.path()).unwrap_err();
    assert!(err.to_string().contains("server.pem"), "{err}");

    let no_ca = TlsSettings {
        client_ca: None,
        ..settings(ClientAuth::Required, CertPrincipal::Dn)
    };
    assert!(matches!(
        ServerTls::load(&no_ca, dir.path()),
        Err(TlsError::Settings(_))
    ));
}

#[test]
fn settings_parse_from_yaml_shaped_json_with_defaults() {
    let s: TlsSettings = serde_json::from_str(r#"{"cert": "a.pem", "key": "a.key"}"#).unwrap();
    assert_eq!(s.client_auth, ClientAuth::None);
    assert_eq!(s.principal, CertPrincipal::Dn);
    let s: TlsSettings = serde_json::from_str(
        r#"{"cert": "a.pem", "key": "a.key", "client_ca": "ca.pem", "client_auth": "required", "principal": "cn"}"#,
    )
    .unwrap();
    assert_eq!(s.client_auth, ClientAuth::Required);
    assert_eq!(s.principal, CertPrincipal::Cn);
    assert!(
        serde_json::from_str::<TlsSettings>(r#"{"cert": "a", "key": "b", "ciphers": 1}"#).is_err()
    );
}

#[test]
fn types_without_a_keyword_print_as_oid_and_der_hex_and_bmp_strings_decode() {
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CountryName, "CL");
    params.distinguished_name.push(
        DnType::CommonName,
        rcgen::DnValue::BmpString("alice".try_into().unwrap()),
    );
    params.distinguished_name.push(
        DnType::CustomDnType(vec![1, 2, 840, 113_549, 1, 9, 1]),
        rcgen::DnValue::Ia5String("a@b.org".try_into().unwrap()),
    );
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let p = cert_principal(cert.der(), CertPrincipal::Dn).unwrap();
    // As Java's X500Principal.getName() prints it: IA5String 0x16, 7 bytes.
    assert_eq!(
        p.to_string(),
        "User:1.2.840.113549.1.9.1=#1607614062 2e6f7267,CN=alice,C=CL".replace(' ', "")
    );
}

#[test]
fn rfc2253_escaping() {
    assert_eq!(escape_rfc2253("a,b+c"), "a\\,b\\+c");
    assert_eq!(escape_rfc2253("#x "), "\\#x\\ ");
    assert_eq!(escape_rfc2253("plain"), "plain");
}

/// One server configuration for the property below (certificates are slow
/// to make).
fn shared_server() -> &'static ServerTls {
    static TLS: std::sync::OnceLock<(tempfile::TempDir, ServerTls)> = std::sync::OnceLock::new();
    &TLS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("test ca");
        server_files(dir.path(), &ca, "broker-1");
        let tls = ServerTls::load(
            &settings(ClientAuth::Requested, CertPrincipal::Dn),
            dir.path(),
        )
        .unwrap();
        (dir, tls)
    })
    .1
}

proptest::proptest! {
    /// What the `tls_handshake` fuzz target runs, on every `cargo test`:
    /// garbage as a client's first flight is refused without a panic, and
    /// garbage as a certificate names no principal.
    #[test]
    fn garbage_handshakes_and_certificates_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
        let tls = shared_server();
        let mut conn = ServerConnection::new(tls.config()).unwrap();
        let mut rd = &data[..];
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
        proptest::prop_assert!(conn.is_handshaking());
        proptest::prop_assert_eq!(tls.principal(conn.peer_certificates()), None);
        let garbage = CertificateDer::from(data.clone());
        proptest::prop_assert_eq!(cert_principal(&garbage, CertPrincipal::Dn), None);
    }
}
