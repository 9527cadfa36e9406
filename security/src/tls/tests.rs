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
fn rfc2253_escaping() {
    assert_eq!(escape_rfc2253("a,b+c"), "a\\,b\\+c");
    assert_eq!(escape_rfc2253("#x "), "\\#x\\ ");
    assert_eq!(escape_rfc2253("plain"), "plain");
}
