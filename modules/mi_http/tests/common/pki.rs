//! Throwaway PEM files (a CA, a server and a client certificate, made by rcgen) and a real TLS
//! client (rustls) that trusts only that CA.

use super::Client;
use mi_http::TlsConfig;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// One CA and what it signed, as files in a directory of their own.
pub struct Pki {
    pub dir: PathBuf,
    /// The CA certificate (PEM): what `tls_ca_list` and the client trust.
    pub ca: PathBuf,
    /// Server chain (leaf, then CA) and key, for `localhost` and 127.0.0.1.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A client certificate signed by the CA, and its key.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    ca_der: CertificateDer<'static>,
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Pki {
    pub fn new() -> Pki {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "mi_http-tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");

        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key"))
            .expect("CA cert");

        let leaf = |names: Vec<String>, usage| {
            let mut p = CertificateParams::new(names).expect("leaf params");
            p.extended_key_usages = vec![usage];
            let key = KeyPair::generate().expect("leaf key");
            let cert = p.signed_by(&key, &ca).expect("leaf cert");
            (cert.pem(), key.serialize_pem())
        };
        let (server_pem, server_key) = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_pem, client_key) = leaf(
            vec!["mi-client".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
        );

        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).expect("write PEM");
            p
        };
        Pki {
            ca: write("ca.pem", &ca.pem()),
            cert: write("server.pem", &format!("{server_pem}{}", ca.pem())),
            key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_pem),
            client_key: write("client.key", &client_key),
            ca_der: ca.der().clone(),
            dir,
        }
    }

    /// The server side of these files; `client_ca` also requires client certificates.
    pub fn server(&self, client_ca: bool) -> TlsConfig {
        TlsConfig::from_pem_files(
            &self.cert,
            &self.key,
            client_ca.then_some(self.ca.as_path()),
        )
        .expect("server TLS config")
    }

    /// A client trusting only this CA, presenting this CA's client certificate if `auth`.
    pub fn client(&self, auth: bool) -> Arc<ClientConfig> {
        self.client_as(auth.then_some(self))
    }

    /// A client trusting only this CA, presenting the client certificate of `cert_from` (which
    /// may be another CA's).
    pub fn client_as(&self, cert_from: Option<&Pki>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca_der.clone())
            .expect("CA is a trust anchor");
        let builder = ClientConfig::builder_with_provider(ring())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots);
        let mut config = if let Some(from) = cert_from {
            use rustls::pki_types::pem::PemObject;
            let chain = CertificateDer::pem_file_iter(&from.client_cert)
                .expect("client cert")
                .collect::<Result<Vec<_>, _>>()
                .expect("client cert PEM");
            let key = PrivateKeyDer::from_pem_file(&from.client_key).expect("client key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client auth")
        } else {
            builder.with_no_client_auth()
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// A TLS connection with the handshake done (or its error).
    pub fn try_connect(
        &self,
        addr: SocketAddr,
        config: Arc<ClientConfig>,
    ) -> std::io::Result<Client<TlsStream>> {
        let mut sock = TcpStream::connect(addr)?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))?;
        let name = ServerName::try_from("localhost").expect("server name");
        let mut conn = ClientConnection::new(config, name).map_err(std::io::Error::other)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)?;
        }
        Ok(Client::over(StreamOwned::new(conn, sock)))
    }

    pub fn connect(&self, addr: SocketAddr) -> Client<TlsStream> {
        self.try_connect(addr, self.client(false))
            .expect("TLS handshake")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
