//! # mi_fifo: the Management Interface over a named pipe
//!
//! OpenSIPS 3.x `mi_fifo`: clients write `:REPLY_FIFO:JSON-RPC request` to the FIFO at
//! `fifo_name`, and the reply is written to `reply_dir/REPLY_FIFO`, which the client created
//! beforehand. The daemon's MI engine does all JSON-RPC work ([`evi_sdk::Host::mi_execute`]);
//! this module is only the transport.
//!
//! - [`framing::next`]: the request stream rules, no I/O.
//! - [`reply`]: reply FIFO names and the bounded open-and-write.
//! - [`Server`]: the FIFO and its reader thread, joined on stop.

mod fifo;
pub mod framing;
pub mod reply;
mod server;

pub use server::{Config, MiFn, Server, NO_RESPONSE};

use evi_sdk::{export_module, param, Host, Module, ParamValue, Params};
use std::path::PathBuf;
use std::sync::Arc;

/// Default of `fifo_name`: not OpenSIPS's `/tmp/opensips_fifo`, so both can run on one host.
pub const DEFAULT_FIFO: &str = "/tmp/evid_fifo";
/// Default of `fifo_mode`: rw-rw---- (OpenSIPS's).
pub const DEFAULT_MODE: i64 = 0o660;
/// Default of `reply_dir` (OpenSIPS's).
pub const DEFAULT_REPLY_DIR: &str = "/tmp/";

export_module! {
    module: MiFifo,
    name: "mi_fifo",
    doc: "MI over a named pipe: :REPLY_FIFO:JSON-RPC requests, as OpenSIPS mi_fifo",
    params: [
        param::str("fifo_name", DEFAULT_FIFO, "Path of the FIFO clients write requests to"),
        param::int("fifo_mode", DEFAULT_MODE, 0, 0o777, "Permissions of the FIFO; 0 means 0600"),
        param::str("reply_dir", DEFAULT_REPLY_DIR, "Directory of the clients' reply FIFOs"),
    ],
    events: [],
    mi: [],
    transports: [],
}

/// The module instance: the running server until `destroy`.
pub struct MiFifo {
    server: Option<Server>,
}

impl MiFifo {
    /// Whether the server runs (false after `destroy`).
    pub fn running(&self) -> bool {
        self.server.is_some()
    }
}

impl Module for MiFifo {
    fn init(host: Host, params: &Params) -> Result<Self, String> {
        let fifo = params.str("fifo_name").unwrap_or(DEFAULT_FIFO).trim();
        if fifo.is_empty() {
            return Err("mi_fifo: modparam fifo_name is empty".into());
        }
        let mode = match params.get("fifo_mode") {
            None => DEFAULT_MODE,
            Some(ParamValue::Int(m)) if (0..=0o777).contains(m) => *m,
            Some(v) => {
                return Err(format!(
                    "mi_fifo: modparam fifo_mode must be an int in 0..=0777, not {v:?}"
                ))
            }
        };
        let mode = if mode == 0 {
            log::warn!("mi_fifo: fifo_mode 0 would lock everyone out: using 0600");
            0o600
        } else {
            mode as u32 // in 0..=0o777: exact
        };
        let reply_dir = PathBuf::from(params.str("reply_dir").unwrap_or(DEFAULT_REPLY_DIR));
        if !reply_dir.is_dir() {
            return Err(format!(
                "mi_fifo: modparam reply_dir {} is not a directory",
                reply_dir.display()
            ));
        }
        let cfg = Config {
            fifo: PathBuf::from(fifo),
            mode,
            reply_dir,
        };
        let mi: Arc<MiFn> = Arc::new(move |request: &[u8]| host.mi_execute(request));
        let server = Server::start(cfg, mi).map_err(|e| format!("mi_fifo: {e}"))?;
        log::info!("MI over the FIFO {fifo}");
        Ok(MiFifo {
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
