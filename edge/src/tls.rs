//! HTTPS for everything on `http.listen`: the served certificate, where it comes from, and
//! the plain-HTTP listener that only redirects.
//!
//! - `http.tls = "self-signed"`: at the first start an ECDSA P-256 certificate naming
//!   `http.tls_names` (valid about five years) is generated and kept beside the database in
//!   `<db dir>/tls/` (`cert.pem`, `key.pem` readable by the owner only); later starts reuse
//!   it, so handhelds pinned to its fingerprint keep working.
//! - `http.tls = "files"`: the site's own PEM chain and key.
//!
//! Either way the files are checked at start (readable, a certificate and a key that belong
//! together, not expired) and a problem stops the start with the file named. The
//! [`TlsHandle`] holds the configuration in use behind a lock; SIGHUP re-reads the files
//! ([`TlsHandle::reload`]) and a bad new pair is refused while the old one keeps serving.
//! Each connection takes the configuration in force when it opens.
//!
//! The certificate's SHA-256 fingerprint (as `openssl x509 -fingerprint -sha256` prints it)
//! is logged at start and shown by `holdfast status`, so handhelds can be pinned to it.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsSettings;
use crate::status::TlsStatus;

/// Why the HTTPS certificate cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    // `error`, not `source`: the reason belongs in this one line (logs print no chain).
    #[error("cannot read {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: {what}", path.display())]
    Invalid { path: PathBuf, what: String },
    #[error("cannot write {}: {error}", path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
}

/// The certificate served now, with what is shown of it.
#[derive(Debug)]
struct Served {
    config: Arc<ServerConfig>,
    fingerprint_sha256: String,
    /// RFC 3339.
    not_after: String,
}

/// The HTTPS configuration in use, shared by the accept loop, the status and SIGHUP.
#[derive(Clone, Debug)]
pub struct TlsHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    mode: &'static str,
    cert_path: PathBuf,
    key_path: PathBuf,
    served: RwLock<Arc<Served>>,
}

/// Where the self-signed pair lives: `<db dir>/tls/cert.pem` and `key.pem`.
pub fn self_signed_paths(db_path: &Path) -> (PathBuf, PathBuf) {
    let dir = db_path
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("tls");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// The certificate file `settings` serve (what `holdfast status` pins to); `None` when off.
pub fn cert_path(settings: &TlsSettings, db_path: &Path) -> Option<PathBuf> {
    match settings {
        TlsSettings::Off => None,
        TlsSettings::SelfSigned { .. } => Some(self_signed_paths(db_path).0),
        TlsSettings::Files { cert, .. } => Some(cert.clone()),
    }
}

impl TlsHandle {
    /// Reads (or, self-signed, first generates) the certificate; `None` when TLS is off.
    pub fn load(settings: &TlsSettings, db_path: &Path) -> Result<Option<TlsHandle>, TlsError> {
        let (cert_path, key_path) = match settings {
            TlsSettings::Off => return Ok(None),
            TlsSettings::SelfSigned { names } => {
                let (cert, key) = self_signed_paths(db_path);
                match (cert.exists(), key.exists()) {
                    (true, true) => {}
                    (false, false) => generate(names, &cert, &key)?,
                    (has_cert, _) => {
                        let (there, gone) = if has_cert {
                            (&cert, &key)
                        } else {
                            (&key, &cert)
                        };
                        return Err(TlsError::Invalid {
                            path: gone.clone(),
                            what: format!(
                                "is missing while {} is there; restore it, or remove both to generate a new certificate (handhelds pinned to the old one must be pinned again)",
                                there.display()
                            ),
                        });
                    }
                }
                (cert, key)
            }
            TlsSettings::Files { cert, key } => (cert.clone(), key.clone()),
        };
        let served = read_pair(&cert_path, &key_path)?;
        Ok(Some(TlsHandle {
            inner: Arc::new(Inner {
                mode: settings.mode(),
                cert_path,
                key_path,
                served: RwLock::new(Arc::new(served)),
            }),
        }))
    }

    /// Re-reads the files; on any problem the certificate in use stays and the error says why.
    pub fn reload(&self) -> Result<TlsStatus, TlsError> {
        let served = read_pair(&self.inner.cert_path, &self.inner.key_path)?;
        // A poisoned lock only means a panic elsewhere while swapping an `Arc`.
        *self.inner.served.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(served);
        Ok(self.status())
    }

    /// An acceptor with the certificate in use now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current().config.clone())
    }

    /// Mode, fingerprint and expiry of the certificate in use.
    pub fn status(&self) -> TlsStatus {
        let served = self.current();
        TlsStatus {
            mode: self.inner.mode,
            fingerprint_sha256: served.fingerprint_sha256.clone(),
            not_after: served.not_after.clone(),
        }
    }

    /// The certificate file served.
    pub fn cert_path(&self) -> &Path {
        &self.inner.cert_path
    }

    fn current(&self) -> Arc<Served> {
        self.inner
            .served
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The SHA-256 of a certificate's DER, as `AB:CD:…` (openssl's `-fingerprint -sha256`).
pub fn fingerprint_sha256(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let mut out = String::with_capacity(digest.len() * 3);
    for (i, byte) in digest.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{byte:02X}"));
    }
    out
}

/// Reads and checks a PEM chain and its key, and builds the server configuration.
fn read_pair(cert_path: &Path, key_path: &Path) -> Result<Served, TlsError> {
    let invalid = |path: &Path, what: String| TlsError::Invalid {
        path: path.to_owned(),
        what,
    };
    let read = |path: &Path| {
        std::fs::read(path).map_err(|error| TlsError::Read {
            path: path.to_owned(),
            error,
        })
    };
    let cert_pem = read(cert_path)?;
    let key_pem = read(key_path)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(cert_path, format!("is not a PEM certificate chain ({e})")))?;
    let Some(leaf) = chain.first() else {
        return Err(invalid(
            cert_path,
            "holds no certificate (a PEM \"CERTIFICATE\" block)".into(),
        ));
    };
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        invalid(
            key_path,
            format!("holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1) ({e})"),
        )
    })?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf).map_err(|e| {
        invalid(
            cert_path,
            format!("its first certificate is not valid X.509 ({e})"),
        )
    })?;
    let validity = parsed.validity();
    let not_after = validity.not_after.timestamp();
    let not_after_text = crate::status::rfc3339(not_after.saturating_mul(1000));
    let now = jiff::Timestamp::now().as_second();
    if now > not_after {
        return Err(invalid(
            cert_path,
            format!("the certificate expired at {not_after_text}; renew it"),
        ));
    }
    if not_after - now < 30 * 86_400 {
        tracing::warn!(
            file = %cert_path.display(),
            not_after = %not_after_text,
            "the https certificate expires within 30 days; renew it (then systemctl reload holdfast)"
        );
    }
    let not_before = validity.not_before.timestamp();
    if now < not_before {
        // A box that booted without a clock may be behind; the handheld judges for itself.
        tracing::warn!(
            file = %cert_path.display(),
            not_before = %crate::status::rfc3339(not_before.saturating_mul(1000)),
            "the https certificate is not valid yet by this machine's clock"
        );
    }
    let fingerprint = fingerprint_sha256(leaf);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Generate(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => invalid(
                key_path,
                format!(
                    "does not belong to the certificate in {}",
                    cert_path.display()
                ),
            ),
            other => invalid(
                key_path,
                format!(
                    "cannot be used with the certificate in {} ({other})",
                    cert_path.display()
                ),
            ),
        })?;
    // The server speaks HTTP/1.1 only (see `http::conn`).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Served {
        config: Arc::new(config),
        fingerprint_sha256: fingerprint,
        not_after: not_after_text,
    })
}

/// How long a generated certificate is valid: about five years, past a box's service life
/// between replacements, short enough that a leaked key does not stay useful for ever.
const SELF_SIGNED_DAYS: i64 = 5 * 365;

/// Generates the self-signed pair: the key first (owner only), then the certificate, each
/// written to a temporary file and renamed, so a stop half-way leaves no half-written file.
fn generate(names: &[String], cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(
        rcgen::DnType::CommonName,
        names.first().map_or("holdfast", String::as_str),
    );
    dn.push(rcgen::DnType::OrganizationName, "Holdfast appliance");
    params.distinguished_name = dn;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    // A day back: a handheld whose clock is a little behind still accepts it.
    let now = jiff::Timestamp::now().as_second();
    let at = |secs: i64| {
        rcgen::date_time_ymd(1970, 1, 1) + std::time::Duration::from_secs(secs.max(0) as u64)
    };
    params.not_before = at(now - 86_400);
    params.not_after = at(now + SELF_SIGNED_DAYS * 86_400);
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    if let Some(dir) = cert_path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|error| TlsError::Write {
                path: dir.to_owned(),
                error,
            })?;
    }
    write_new(key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(cert_path, cert.pem().as_bytes(), 0o644)?;
    tracing::info!(
        file = %cert_path.display(),
        ?names,
        "generated a self-signed https certificate"
    );
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let error = |error| TlsError::Write {
        path: path.to_owned(),
        error,
    };
    let tmp = path.with_extension("pem.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    file.sync_all().map_err(error)?;
    std::fs::rename(&tmp, path).map_err(error)
}

/// A client configuration that trusts exactly the certificate in `cert_path` (its first, the
/// one served), whatever name it carries: how `holdfast status` reaches the appliance on
/// loopback, and how a handheld pinned to the fingerprint behaves.
pub fn pinned_client_config(cert_path: &Path) -> Result<rustls::ClientConfig, TlsError> {
    let pem = std::fs::read(cert_path).map_err(|error| TlsError::Read {
        path: cert_path.to_owned(),
        error,
    })?;
    let leaf = CertificateDer::pem_slice_iter(&pem)
        .next()
        .and_then(Result::ok)
        .ok_or_else(|| TlsError::Invalid {
            path: cert_path.to_owned(),
            what: "holds no certificate (a PEM \"CERTIFICATE\" block)".into(),
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Pinned {
        leaf,
        schemes: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Generate(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts one certificate, byte for byte; the handshake's signatures are still checked, so
/// only the holder of its key passes.
#[derive(Debug)]
struct Pinned {
    leaf: CertificateDer<'static>,
    schemes: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.schemes)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.schemes)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.schemes.supported_schemes()
    }
}

/// The plain-HTTP listener's only answer: 308 to the same path and query over HTTPS on
/// `https_port`, at the host the client asked for. Nothing is served in plain text.
pub fn redirect_router(https_port: u16) -> Router {
    Router::new().fallback(move |request: axum::extract::Request| async move {
        redirect(https_port, &request)
    })
}

fn redirect(https_port: u16, request: &axum::extract::Request) -> Response {
    let authority = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<axum::http::uri::Authority>().ok());
    let Some(authority) = authority else {
        return (
            StatusCode::BAD_REQUEST,
            "this address only redirects to https; a Host header is needed\n",
        )
            .into_response();
    };
    let host = authority.host();
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = if https_port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{https_port}{path}")
    };
    match header::HeaderValue::from_str(&location) {
        Ok(location) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "bad request target\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_colon_separated_upper_hex() {
        let f = fingerprint_sha256(b"");
        assert!(f.starts_with("E3:B0:C4:42:98:FC:1C:14"), "{f}");
        assert_eq!(f.len(), 32 * 3 - 1);
    }

    #[test]
    fn redirects_keep_host_path_and_query() {
        // (Host, target, https port, expected Location or None for 400)
        for (host, target, port, expected) in [
            (
                Some("hf.lan:8080"),
                "/ui/?a=1",
                8443,
                Some("https://hf.lan:8443/ui/?a=1"),
            ),
            (Some("10.0.0.5"), "/", 443, Some("https://10.0.0.5/")),
            (Some("[::1]:80"), "/x", 8443, Some("https://[::1]:8443/x")),
            (Some("bad host"), "/", 443, None),
            (None, "/", 443, None),
        ] {
            let mut request = axum::http::Request::builder().uri(target);
            if let Some(host) = host {
                request = request.header(header::HOST, host);
            }
            let answer = redirect(port, &request.body(axum::body::Body::empty()).unwrap());
            match expected {
                Some(location) => {
                    assert_eq!(answer.status(), StatusCode::PERMANENT_REDIRECT);
                    assert_eq!(answer.headers()[header::LOCATION], location);
                }
                None => assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{host:?}"),
            }
        }
    }

    #[test]
    fn self_signed_pair_is_generated_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("holdfast.db");
        let settings = TlsSettings::SelfSigned {
            names: vec!["hf.lan".into(), "127.0.0.1".into()],
        };
        let first = TlsHandle::load(&settings, &db).unwrap().unwrap().status();
        let second = TlsHandle::load(&settings, &db).unwrap().unwrap().status();
        assert_eq!(first.fingerprint_sha256, second.fingerprint_sha256);
        let (_, key) = self_signed_paths(&db);
        let mode = std::fs::metadata(&key).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        // A key without its certificate is not silently replaced.
        std::fs::remove_file(self_signed_paths(&db).0).unwrap();
        let e = TlsHandle::load(&settings, &db).unwrap_err().to_string();
        assert!(e.contains("cert.pem: is missing"), "{e}");
    }
}
