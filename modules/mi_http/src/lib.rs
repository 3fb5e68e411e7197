//! # mi_http: the Management Interface over HTTP
//!
//! OpenSIPS 3.x `mi_http` (with the listener of its `httpd` module): JSON-RPC 2.0 requests are
//! POSTed to `http://IP:PORT/ROOT` and answered with the JSON-RPC reply. The daemon's MI engine
//! does all JSON-RPC work ([`evi_sdk::Host::mi_execute`]); this module is only the HTTP transport.
//!
//! - [`Endpoint::handle`]: the request → reply rules (404, 405, 400, 413, 200, 202), no I/O.
//! - [`Server`]: the listener and its connection threads (which run the MI calls), all joined on
//!   stop.
//! - `http` (private): the bounded HTTP/1.1 reader and writer.
//! - [`TlsConfig`]: HTTPS, when `tls_certificate` and `tls_private_key` are set; `stream`
//!   (private) lets the same HTTP code run over TCP or TLS.

mod handler;
mod http;
mod metrics;
mod next_request;
mod server;
mod slots;
mod stream;
mod tls;

pub use handler::{Endpoint, MiFn, Reply};
pub use server::{Config, Server, MAX_CONNECTIONS};
pub use tls::TlsConfig;

use evi_sdk::{export_module, param, Host, Module, ParamValue, Params};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// Default of the `ip` modparam: loopback, unlike OpenSIPS 3.x httpd (all interfaces).
pub const DEFAULT_IP: &str = "127.0.0.1";
/// Default of the `port` modparam (OpenSIPS httpd's).
pub const DEFAULT_PORT: i64 = 8888;
/// Default of the `root` modparam (OpenSIPS mi_http's).
pub const DEFAULT_ROOT: &str = "mi";
/// Default of the `threads` modparam.
pub const DEFAULT_THREADS: i64 = 2;
/// Default of the `max_body` modparam: 1 MiB.
pub const DEFAULT_MAX_BODY: i64 = 1 << 20;

export_module! {
    module: MiHttp,
    name: "mi_http",
    doc: "MI over HTTP: JSON-RPC 2.0 requests POSTed to http://IP:PORT/ROOT, as OpenSIPS mi_http + httpd",
    params: [
        param::str("ip", DEFAULT_IP, "Address to listen on; 0.0.0.0 or :: for every interface"),
        param::int("port", DEFAULT_PORT, 1, 65535, "TCP port to listen on"),
        param::str("root", DEFAULT_ROOT, "URL path of the MI: /ROOT and everything under /ROOT/"),
        param::int("threads", DEFAULT_THREADS, 1, 64, "MI requests run at once (each on its connection thread); more wait"),
        param::int("max_body", DEFAULT_MAX_BODY, 1024, 67_108_864, "Largest request body in bytes; larger gets HTTP 413"),
        param::str_unset("auth_token", "If set, every request must carry Authorization: Bearer TOKEN, else HTTP 401"),
        param::str_unset("tls_certificate", "PEM certificate chain, server certificate first; with tls_private_key set too, only HTTPS is served"),
        param::str_unset("tls_private_key", "PEM private key of tls_certificate"),
        param::str_unset("tls_ca_list", "PEM CA certificates; if set, HTTPS clients must present a certificate signed by one of them"),
    ],
    events: [],
    mi: [],
    transports: [],
}

/// The module instance: the running server until `destroy`.
pub struct MiHttp {
    server: Option<Server>,
}

impl MiHttp {
    /// The address the listener is bound to (`None` after `destroy`).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(Server::local_addr)
    }
}

/// An int modparam. The host has already applied the default and checked the range; checking
/// again keeps `init` safe when it is called directly (tests) and makes the casts below exact.
fn int_param(params: &Params, name: &str, default: i64, min: i64, max: i64) -> Result<i64, String> {
    match params.get(name) {
        None => Ok(default),
        Some(ParamValue::Int(v)) if (min..=max).contains(v) => Ok(*v),
        Some(v) => Err(format!(
            "mi_http: modparam {name} must be an int in {min}..={max}, not {v:?}"
        )),
    }
}

/// The `tls_*` modparams: `None` for plain HTTP. Checked before anything binds, so a bad file
/// fails `init` without a listener ever opening.
fn tls_config(params: &Params) -> Result<Option<TlsConfig>, String> {
    let set = |name| params.str(name).map(str::trim).filter(|p| !p.is_empty());
    let ca = set("tls_ca_list");
    match (set("tls_certificate"), set("tls_private_key")) {
        (Some(cert), Some(key)) => {
            TlsConfig::from_pem_files(Path::new(cert), Path::new(key), ca.map(Path::new)).map(Some)
        }
        (None, None) if ca.is_some() => Err(
            "mi_http: modparam tls_ca_list needs tls_certificate and tls_private_key set too"
                .into(),
        ),
        (None, None) => Ok(None),
        (cert, _) => Err(format!(
            "mi_http: modparams tls_certificate and tls_private_key must be set together \
             (only {} is set)",
            if cert.is_some() {
                "tls_certificate"
            } else {
                "tls_private_key"
            }
        )),
    }
}

impl Module for MiHttp {
    fn init(host: Host, params: &Params) -> Result<Self, String> {
        let ip = params.str("ip").unwrap_or(DEFAULT_IP).trim();
        let root = params.str("root").unwrap_or(DEFAULT_ROOT);
        // The range checks make these conversions lossless.
        let port = int_param(params, "port", DEFAULT_PORT, 1, 65535)? as u16;
        let threads = int_param(params, "threads", DEFAULT_THREADS, 1, 64)? as usize;
        let max_body = int_param(params, "max_body", DEFAULT_MAX_BODY, 1024, 67_108_864)? as usize;
        // A root that cannot appear in a request path would make every request a 404.
        if root
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
        {
            return Err(format!(
                "mi_http: modparam root {root:?} must be a URL path"
            ));
        }

        // An IPv6 literal is written bracketed in addresses and URLs.
        let shown = if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        };
        let tls = tls_config(params)?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mi: Arc<MiFn> = Arc::new(move |request: &[u8]| host.mi_execute(request));
        let mut config = Config::new(root, threads, max_body);
        config.token = params.str("auth_token").map(str::to_string);
        config.tls = tls;
        let server = Server::start((ip, port), config, mi)
            .map_err(|e| format!("mi_http: cannot listen on {shown}: {e}"))?;
        let endpoint = Endpoint::new(root, max_body);
        log::info!(
            "MI over HTTP on {scheme}://{}/{}",
            server.local_addr(),
            endpoint.root()
        );
        Ok(MiHttp {
            server: Some(server),
        })
    }

    fn destroy(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use evi_sdk::abi::EviModuleDecl;

    extern "C" {
        /// The declaration `export_module!` wrote (it lives in an unnamed const block).
        static evi_module: EviModuleDecl;
    }

    #[test]
    fn readme_modparams_table_is_the_export_table() {
        // SAFETY: immutable static data defined in this crate.
        let decl = unsafe { &*std::ptr::addr_of!(evi_module) };
        evi_sdk::testing::check_readme(decl, include_str!("../README.md"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
