//! Test certificates: a CA made with `rcgen`, and leaf certificates it
//! signs for `localhost` and 127.0.0.1, written as PEM files (what the
//! broker's `tls:` settings name).

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// Why a test certificate could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused.
    #[error("making a test certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The clock is before 1970.
    #[error("the system clock is before 1970")]
    Clock,
}

/// A test certificate authority.
#[derive(Debug)]
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate's files.
#[derive(Debug, Clone)]
pub struct LeafFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: PathBuf,
}

impl TestCa {
    /// A self-signed CA with common name `name`.
    pub fn new(name: &str) -> Result<Self, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Self { issuer })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes the CA certificate to `path`.
    pub fn write_cert(&self, path: &Path) -> Result<PathBuf, PkiError> {
        write(path, &self.cert_pem())?;
        Ok(path.to_path_buf())
    }

    /// A leaf for `localhost` and 127.0.0.1 with subject `CN=cn,O=Starlog
    /// Test`, valid from `from_days` to `to_days` days from now (negative:
    /// in the past): (certificate PEM, key PEM).
    pub fn leaf_pem(
        &self,
        cn: &str,
        from_days: i64,
        to_days: i64,
    ) -> Result<(String, String), PkiError> {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Starlog Test");
        params.distinguished_name.push(DnType::CommonName, cn);
        let now =
            rcgen::date_time_ymd(1970, 1, 1) + UNIX_EPOCH.elapsed().map_err(|_| PkiError::Clock)?;
        let at = |days: i64| {
            let delta = Duration::from_secs(days.unsigned_abs() * 86_400);
            if days < 0 {
                now - delta
            } else {
                now + delta
            }
        };
        params.not_before = at(from_days);
        params.not_after = at(to_days);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// A leaf valid from yesterday for a year, written as `dir/stem.pem`
    /// and `dir/stem.key`.
    pub fn write_leaf(&self, dir: &Path, stem: &str, cn: &str) -> Result<LeafFiles, PkiError> {
        self.write_leaf_valid(dir, stem, cn, -1, 365)
    }

    /// A leaf valid from `from_days` to `to_days`, written as
    /// `dir/stem.pem` and `dir/stem.key`.
    pub fn write_leaf_valid(
        &self,
        dir: &Path,
        stem: &str,
        cn: &str,
        from_days: i64,
        to_days: i64,
    ) -> Result<LeafFiles, PkiError> {
        let (cert, key) = self.leaf_pem(cn, from_days, to_days)?;
        let files = LeafFiles {
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
        };
        write(&files.cert, &cert)?;
        write(&files.key, &key)?;
        Ok(files)
    }
}

fn write(path: &Path, text: &str) -> Result<(), PkiError> {
    std::fs::write(path, text).map_err(|source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    })
}
