//! # mi_datagram: the Management Interface over UDP or unix datagrams
//!
//! OpenSIPS 3.x `mi_datagram`: each datagram carries one JSON-RPC 2.0 request, and the reply is
//! sent with `sendto` to the datagram's source address. The daemon's MI engine does all
//! JSON-RPC work ([`evi_sdk::Host::mi_execute`]); this module is only the transport.
//!
//! - [`reply::answer`]: datagram → reply rules (plain-text `400 Parse_error` and
//!   `500 Internal error`, nothing for a notification), no I/O.
//! - [`socket_name::parse`]: the `socket_name` modparam.
//! - [`Server`]: the socket and its threads, all joined on stop.

pub mod reply;
mod server;
pub mod socket_name;

pub use server::{Config, Server};

use evi_sdk::{export_module, param, Host, Module, ParamValue, Params};
use std::sync::Arc;
use std::time::Duration;

/// Default of `socket_name`: OpenSIPS's usual MI datagram address (opensips-cli's default).
pub const DEFAULT_SOCKET: &str = "udp:127.0.0.1:8080";
/// Default of `children_count` (OpenSIPS's).
pub const DEFAULT_CHILDREN: i64 = 1;
/// Default of `socket_timeout` in ms (OpenSIPS's).
pub const DEFAULT_TIMEOUT_MS: i64 = 2000;
/// Default of `socket_buf_size`: OpenSIPS's `DATAGRAM_SOCK_BUF_SIZE`.
pub const DEFAULT_BUF_SIZE: i64 = 65457;
/// Default of `unix_socket_mode`: rw-rw---- (OpenSIPS's).
pub const DEFAULT_MODE: i64 = 0o660;

export_module! {
    module: MiDatagram,
    name: "mi_datagram",
    doc: "MI over UDP or unix datagrams: one JSON-RPC request per datagram, as OpenSIPS mi_datagram",
    params: [
        param::str("socket_name", DEFAULT_SOCKET, "udp:IP:PORT, or the path of a unix datagram socket"),
        param::int("children_count", DEFAULT_CHILDREN, 1, 32, "Threads reading requests"),
        param::int("socket_timeout", DEFAULT_TIMEOUT_MS, 0, 60_000, "Milliseconds a reply is retried while the peer cannot take it"),
        param::int("socket_buf_size", DEFAULT_BUF_SIZE, 1024, 1_048_576, "Largest request and reply in bytes; a larger reply is sent as 500 Internal error"),
        param::int("unix_socket_mode", DEFAULT_MODE, 0, 0o7777, "Permissions of the unix socket file; 0 leaves the umask's"),
    ],
    events: [],
    mi: [],
    transports: [],
}

/// The module instance: the running server until `destroy`.
pub struct MiDatagram {
    server: Option<Server>,
}

impl MiDatagram {
    /// The address served (`None` after `destroy`).
    pub fn local(&self) -> Option<&socket_name::SocketName> {
        self.server.as_ref().map(Server::local)
    }
}

/// An int modparam, checked again so `init` is safe when called directly (tests) and the casts
/// in `init` are exact.
fn int_param(params: &Params, name: &str, default: i64, min: i64, max: i64) -> Result<i64, String> {
    match params.get(name) {
        None => Ok(default),
        Some(ParamValue::Int(v)) if (min..=max).contains(v) => Ok(*v),
        Some(v) => Err(format!(
            "mi_datagram: modparam {name} must be an int in {min}..={max}, not {v:?}"
        )),
    }
}

impl Module for MiDatagram {
    fn init(host: Host, params: &Params) -> Result<Self, String> {
        let name = params.str("socket_name").unwrap_or(DEFAULT_SOCKET);
        let socket = socket_name::parse(name).map_err(|e| format!("mi_datagram: {e}"))?;
        // The range checks make these conversions lossless.
        let cfg = Config {
            socket,
            children: int_param(params, "children_count", DEFAULT_CHILDREN, 1, 32)? as usize,
            send_timeout: Duration::from_millis(int_param(
                params,
                "socket_timeout",
                DEFAULT_TIMEOUT_MS,
                0,
                60_000,
            )? as u64),
            buf_size: int_param(params, "socket_buf_size", DEFAULT_BUF_SIZE, 1024, 1_048_576)?
                as usize,
            unix_mode: int_param(params, "unix_socket_mode", DEFAULT_MODE, 0, 0o7777)? as u32,
        };
        let mi: Arc<reply::MiFn> = Arc::new(move |request: &[u8]| host.mi_execute(request));
        let server = Server::start(cfg, mi).map_err(|e| format!("mi_datagram: {e}"))?;
        match server.local() {
            socket_name::SocketName::Udp(a) => log::info!("MI over datagrams on udp:{a}"),
            socket_name::SocketName::Unix(p) => log::info!("MI over datagrams on {}", p.display()),
        }
        Ok(MiDatagram {
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
