//! TLS domains: `modparam("event_rabbitmq", "tls_domain", "[NAME] ca_list=FILE; ...")`, named
//! by sockets with `tls_domain=NAME` (OpenSIPS names a tls_mgm client domain there; evid keeps
//! the few settings a client needs in the module).
//!
//! Settings, `;`-separated: `ca_list=FILE` (PEM CAs the broker's certificate must chain to;
//! required unless `verify_cert=0`), `certificate=FILE` and `private_key=FILE` (PEM, a client
//! certificate, both or neither), `server_name=NAME` (the name checked in the broker's
//! certificate; default the socket's host), `verify_cert=0` (accept any certificate: tests only).
//! Every file is read at start-up, so a bad one stops the daemon with its name.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::collections::BTreeMap;
use std::sync::Arc;
use tcp_stream::RustlsConnector;

/// One client domain, ready to connect.
#[derive(Clone)]
pub struct Domain {
    pub name: String,
    pub connector: Arc<RustlsConnector>,
    /// Checked in the broker's certificate instead of the socket's host.
    pub server_name: Option<String>,
}

impl std::fmt::Debug for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Domain")
            .field("name", &self.name)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Every declared domain by name.
pub type Domains = BTreeMap<String, Domain>;

/// Parse every `tls_domain` modparam value; the error names the domain and the bad setting.
pub fn domains<'a>(specs: impl Iterator<Item = &'a str>) -> Result<Domains, String> {
    let mut all = Domains::new();
    for spec in specs {
        let d = parse(spec)
            .map_err(|e| crate::uri::one_line(format!("modparam tls_domain '{spec}': {e}")))?;
        if all.contains_key(&d.name) {
            return Err(format!(
                "modparam tls_domain '{spec}': domain [{}] is declared twice",
                d.name
            ));
        }
        all.insert(d.name.clone(), d);
    }
    Ok(all)
}

fn parse(spec: &str) -> Result<Domain, String> {
    let rest = spec
        .trim()
        .strip_prefix('[')
        .ok_or("expected '[NAME]' first")?;
    let (name, settings) = rest.split_once(']').ok_or("missing ']' after the name")?;
    let name = name.trim();
    if name.is_empty() {
        return Err("empty domain name".into());
    }
    let (mut ca, mut cert, mut key, mut server_name, mut verify) = (None, None, None, None, true);
    for s in settings.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = s
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .ok_or_else(|| format!("setting '{s}' needs a value (name=value)"))?;
        match k {
            "ca_list" => ca = Some(v.to_string()),
            "certificate" => cert = Some(v.to_string()),
            "private_key" => key = Some(v.to_string()),
            "server_name" => server_name = Some(v.to_string()),
            "verify_cert" => {
                verify = match v {
                    "1" => true,
                    "0" => false,
                    _ => return Err(format!("verify_cert must be 0 or 1, not '{v}'")),
                }
            }
            _ => {
                return Err(format!(
                "unknown setting '{k}' (expected ca_list, certificate, private_key, server_name, verify_cert)"
            ))
            }
        }
    }
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match (ca, verify) {
        (Some(ca), true) => builder.with_root_certificates(roots(&ca)?),
        (None, true) => return Err("ca_list=FILE is required (or verify_cert=0)".into()),
        (_, false) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider))),
    };
    let config = match (cert, key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(c), Some(k)) => builder
            .with_client_auth_cert(certs(&c)?, private_key(&k)?)
            .map_err(|e| format!("certificate {c} with private_key {k}: {e}"))?,
        _ => return Err("certificate and private_key go together".into()),
    };
    Ok(Domain {
        name: name.to_string(),
        connector: Arc::new(RustlsConnector::from(Arc::new(config))),
        server_name,
    })
}

fn certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let all: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{path}: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{path}: {e}"))?;
    if all.is_empty() {
        return Err(format!("{path}: no PEM certificate in it"));
    }
    Ok(all)
}

fn roots(path: &str) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for c in certs(path)? {
        store
            .add(c)
            .map_err(|e| format!("ca_list {path}: a certificate was refused: {e}"))?;
    }
    Ok(store)
}

fn private_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("private_key {path}: {e}"))
}

/// `verify_cert=0`: any certificate is accepted, signatures are still checked.
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
