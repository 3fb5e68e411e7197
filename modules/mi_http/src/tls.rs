//! HTTPS setup: the `tls_certificate`, `tls_private_key` and `tls_ca_list` modparams turned into
//! a rustls server configuration, with errors that name the file and what is wrong with it.

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// A loaded certificate chain and key (and client CAs, if any), shared by every connection.
#[derive(Clone)]
pub struct TlsConfig {
    config: Arc<ServerConfig>,
    client_auth: bool,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Load a PEM certificate chain (server certificate first), its PEM private key, and
    /// optionally a PEM list of CAs that every client certificate must chain to (then clients
    /// without one are refused in the handshake).
    pub fn from_pem_files(
        certificate: &Path,
        private_key: &Path,
        client_ca: Option<&Path>,
    ) -> Result<TlsConfig, String> {
        let chain = read_certs("tls_certificate", certificate)?;
        let key = read_key(private_key)?;
        // Explicit provider: the process-wide default is whatever the daemon or another module
        // installed first, and may be none at all.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("mi_http: TLS setup failed: {e}"))?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for (i, cert) in read_certs("tls_ca_list", ca)?.into_iter().enumerate() {
                    roots.add(cert).map_err(|e| {
                        file_error(
                            "tls_ca_list",
                            ca,
                            &format!("certificate #{} is not a usable CA: {e}", i + 1),
                        )
                    })?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| file_error("tls_ca_list", ca, &e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "mi_http: tls_private_key {} is not the key of the first certificate in \
                 tls_certificate {}",
                private_key.display(),
                certificate.display()
            ),
            rustls::Error::InvalidCertificate(e) => file_error(
                "tls_certificate",
                certificate,
                &format!("the first certificate is not a valid X.509 certificate: {e:?}"),
            ),
            e => file_error(
                "tls_private_key",
                private_key,
                &format!("unusable key: {e}"),
            ),
        })?;
        // Only what the hand-written server speaks; a client insisting on h2 fails the handshake
        // instead of sending frames we would answer with 400.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConfig {
            config: Arc::new(config),
            client_auth: client_ca.is_some(),
        })
    }

    /// A new server-side session for one accepted connection.
    pub(crate) fn session(&self) -> Result<ServerConnection, rustls::Error> {
        ServerConnection::new(self.config.clone())
    }
}

fn file_error(param: &str, path: &Path, what: &str) -> String {
    format!("mi_http: {param} {}: {what}", path.display())
}

fn read_file(param: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| file_error(param, path, &format!("cannot read it: {e}")))
}

fn read_certs(param: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_file(param, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(param, path, &format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(
            param,
            path,
            "no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read_file("tls_private_key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        let what = match e {
            pem::Error::NoItemsFound => "no PEM private key in it (expected -----BEGIN PRIVATE \
                                         KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)"
                .to_string(),
            e => format!("not valid PEM: {e}"),
        };
        file_error("tls_private_key", path, &what)
    })
}
