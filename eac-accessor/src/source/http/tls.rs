//! TLS for `https://` documents: rustls with the ring provider, trusting webpki's roots
//! and, per source, the CA certificates of PEM files.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, TrustAnchor};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::ErrorKind;

/// The roots a source trusts beyond webpki's, and the client configuration built
/// from them once (not per request).
#[derive(Clone, Default)]
pub(super) struct Roots {
    /// Checked when added.
    extra: Vec<TrustAnchor<'static>>,
    files: Vec<PathBuf>,
    config: Option<Arc<ClientConfig>>,
}

impl Roots {
    /// Adds the certificates of the PEM file at `path`; each one is checked now.
    pub(super) fn add_pem_file(&mut self, path: &Path) -> Result<(), (ErrorKind, String)> {
        let pem = std::fs::read(path)
            .map_err(|e| (ErrorKind::Io, format!("the file cannot be read: {e}")))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| (ErrorKind::Parse, format!("not valid PEM: {e}")))?;
        if certs.is_empty() {
            return Err((
                ErrorKind::Parse,
                "no `BEGIN CERTIFICATE` block: expected the PEM of one or more CA certificates"
                    .into(),
            ));
        }
        let mut check = RootCertStore::empty();
        for (n, cert) in certs.iter().enumerate() {
            check.add(cert.clone()).map_err(|e| {
                (
                    ErrorKind::Parse,
                    format!("certificate {} cannot be a root: {e}", n + 1),
                )
            })?;
        }
        self.extra.extend(check.roots);
        self.files.push(path.to_owned());
        self.config = Some(client_config(&self.extra).map_err(|why| (ErrorKind::Io, why))?);
        Ok(())
    }

    /// The files the extra roots came from, for `Debug`.
    pub(super) fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

fn client_config(extra: &[TrustAnchor<'static>]) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    roots.roots.extend_from_slice(extra);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
        .map_err(|e| format!("TLS cannot be set up: {e}"))
}

/// The configuration of every source without extra roots, built once.
fn shared() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG.get_or_init(|| client_config(&[])).clone()
}

pub(super) async fn connect(
    roots: Option<&Roots>,
    host: &str,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, String> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| format!("`{host}` is not a valid TLS server name"))?;
    let config = match roots.and_then(|r| r.config.clone()) {
        Some(config) => config,
        None => shared()?,
    };
    TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(
            |e| match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                Some(rustls::Error::InvalidCertificate(why)) => format!(
                    "TLS handshake failed: the server's certificate is not trusted: {why} \
                     (a private CA can be trusted with `Http::ca_file`)"
                ),
                _ => format!("TLS handshake failed: {e}"),
            },
        )
}
