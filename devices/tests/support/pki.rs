//! A site PKI for one test: made with rcgen, written to a temporary directory. Also compiled
//! into the top-level telemetry tests (`#[path]`).

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

/// A site PKI made for one test: a CA, the broker's certificate (for 127.0.0.1), a client
/// certificate for the appliance, and a second CA that signed neither.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    broker: (rcgen::Certificate, rcgen::KeyPair),
}

impl Pki {
    pub fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Site CA (test)");
        let ca = rcgen::CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &ca).unwrap();
        let pki = Pki {
            dir,
            ca,
            broker: (cert, key),
        };
        std::fs::write(pki.path("ca.pem"), pki.ca.pem()).unwrap();
        let mut other = CertificateParams::new(Vec::<String>::new()).unwrap();
        other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let other = other.self_signed(&KeyPair::generate().unwrap()).unwrap();
        std::fs::write(pki.path("other-ca.pem"), other.pem()).unwrap();
        pki
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Writes the broker's certificate and key (`broker.pem`, `broker.key`) for a broker
    /// with its own TLS listener.
    pub fn broker_files(&self) -> (std::path::PathBuf, std::path::PathBuf) {
        let (c, k) = (self.path("broker.pem"), self.path("broker.key"));
        std::fs::write(&c, self.broker.0.pem()).unwrap();
        std::fs::write(&k, self.broker.1.serialize_pem()).unwrap();
        (c, k)
    }

    /// Writes a client certificate signed by `issuer` (the site CA unless given) and its key.
    pub fn client(&self, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let (c, k) = (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    /// The broker's TLS side: its certificate, and client certificates from the site CA
    /// required.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.into(),
            provider.clone(),
        )
        .build()
        .unwrap();
        let chain: Vec<CertificateDer<'static>> = vec![self.broker.0.der().clone()];
        let key = PrivateKeyDer::try_from(self.broker.1.serialize_der()).unwrap();
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_client_cert_verifier(clients)
                .with_single_cert(chain, key)
                .unwrap(),
        )
    }
}
