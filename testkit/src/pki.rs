//! [`TestPki`]: a certificate authority for tests, writing PEM files into a
//! directory: server certificates for 127.0.0.1 / localhost, client
//! certificates (for mutual TLS) with a chosen common name, and the faults
//! TLS tests need (an expired certificate, one from another CA).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate chain (leaf only).
    pub cert: PathBuf,
    /// The private key (PKCS#8).
    pub key: PathBuf,
}

/// A test certificate authority (see the module docs).
#[derive(Debug)]
pub struct TestPki {
    dir: PathBuf,
    name: String,
    ca: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate's PEM file (what clients and brokers trust).
    pub ca_pem: PathBuf,
}

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    panic!("test PKI: {what}: {e}")
}

impl TestPki {
    /// A new CA named `name`, its files in `dir`.
    pub fn new(dir: &Path, name: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| fail("create dir", e));
        let key = KeyPair::generate().unwrap_or_else(|e| fail("CA key", e));
        let mut params =
            CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| fail("CA params", e));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("{name} test CA"));
        dn.push(DnType::OrganizationName, "Starlog tests");
        params.distinguished_name = dn;
        let ca = CertifiedIssuer::self_signed(params, key).unwrap_or_else(|e| fail("CA cert", e));
        let ca_pem = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca_pem, ca.pem()).unwrap_or_else(|e| fail("write CA", e));
        Self {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            ca,
            ca_pem,
        }
    }

    fn issue(
        &self,
        file: &str,
        cn: &str,
        sans: Vec<String>,
        usage: ExtendedKeyUsagePurpose,
        expired: bool,
    ) -> CertFiles {
        let key = KeyPair::generate().unwrap_or_else(|e| fail("key", e));
        let mut params = CertificateParams::new(sans).unwrap_or_else(|e| fail("params", e));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        dn.push(DnType::OrganizationName, "Starlog tests");
        params.distinguished_name = dn;
        params.extended_key_usages = vec![usage];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params
            .signed_by(&key, &self.ca)
            .unwrap_or_else(|e| fail("sign", e));
        let files = CertFiles {
            cert: self.dir.join(format!("{}-{file}.pem", self.name)),
            key: self.dir.join(format!("{}-{file}.key", self.name)),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap_or_else(|e| fail("write cert", e));
        std::fs::write(&files.key, key.serialize_pem()).unwrap_or_else(|e| fail("write key", e));
        files
    }

    /// A server certificate for `localhost` and 127.0.0.1 (files named after `cn`).
    pub fn server(&self, cn: &str) -> CertFiles {
        self.issue(
            cn,
            cn,
            vec!["localhost".to_string(), "127.0.0.1".to_string()],
            ExtendedKeyUsagePurpose::ServerAuth,
            false,
        )
    }

    /// A certificate for both ends of mutual TLS (a broker of a cluster):
    /// server and client use, `localhost` / 127.0.0.1.
    pub fn peer(&self, cn: &str) -> CertFiles {
        let key = KeyPair::generate().unwrap_or_else(|e| fail("key", e));
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap_or_else(|e| fail("params", e));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        dn.push(DnType::OrganizationName, "Starlog tests");
        params.distinguished_name = dn;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params
            .signed_by(&key, &self.ca)
            .unwrap_or_else(|e| fail("sign", e));
        let files = CertFiles {
            cert: self.dir.join(format!("{}-{cn}.pem", self.name)),
            key: self.dir.join(format!("{}-{cn}.key", self.name)),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap_or_else(|e| fail("write cert", e));
        std::fs::write(&files.key, key.serialize_pem()).unwrap_or_else(|e| fail("write key", e));
        files
    }

    /// A client certificate with common name `cn` (subject `CN=cn,O=Starlog tests`).
    pub fn client(&self, cn: &str) -> CertFiles {
        self.issue(
            &format!("client-{cn}"),
            cn,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            false,
        )
    }

    /// A client certificate that expired in 2021.
    pub fn expired_client(&self, cn: &str) -> CertFiles {
        self.issue(
            &format!("expired-{cn}"),
            cn,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            true,
        )
    }

    /// A server certificate that expired in 2021.
    pub fn expired_server(&self, cn: &str) -> CertFiles {
        self.issue(
            &format!("expired-{cn}"),
            cn,
            vec!["localhost".to_string(), "127.0.0.1".to_string()],
            ExtendedKeyUsagePurpose::ServerAuth,
            true,
        )
    }
}
