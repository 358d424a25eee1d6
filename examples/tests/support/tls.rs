//! A private CA made at test time, and a server certificate it signed for `localhost`
//! and 127.0.0.1: what a config service inside a company presents.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::PrivatePkcs8KeyDer;

/// A CA and a server's TLS configuration with a certificate it signed.
#[derive(Debug)]
pub struct PrivateCa {
    /// The CA's certificate, PEM.
    pub pem: String,
    /// For `DocServer::start_tls`: the server's certificate (and the CA's), its key.
    pub server: Arc<rustls::ServerConfig>,
}

impl PrivateCa {
    /// A new CA, named `name`, and a server certificate for `localhost` and 127.0.0.1.
    pub fn new(name: &str) -> PrivateCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();

        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone(), ca.der().clone()],
                PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )
            .unwrap();
        PrivateCa {
            pem: ca.pem(),
            server: Arc::new(server),
        }
    }

    /// Writes the CA's certificate to `dir/ca.pem`, for `Http::ca_file`.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.pem).unwrap();
        path
    }
}
