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

mod handler;
mod http;
mod metrics;
mod server;

pub use handler::{Endpoint, MiFn, Reply};
pub use server::{Config, Server, MAX_CONNECTIONS};

use evi_sdk::{export_module, param, Host, Module, ParamValue, Params};
use std::net::SocketAddr;
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
        let mi: Arc<MiFn> = Arc::new(move |request: &[u8]| host.mi_execute(request));
        let mut config = Config::new(root, threads, max_body);
        config.token = params.str("auth_token").map(str::to_string);
        let server = Server::start((ip, port), config, mi)
            .map_err(|e| format!("mi_http: cannot listen on {shown}: {e}"))?;
        let endpoint = Endpoint::new(root, max_body);
        log::info!(
            "MI over HTTP on http://{}/{}",
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
