//! # evi-sdk: write evid modules in safe Rust
//!
//! Implement [`Module`] (and [`Transport`] for a transport), list what the module exports in one
//! [`export_module!`], and build the crate as a `cdylib`. The SDK writes the ABI declaration,
//! wraps every entry point in `catch_unwind` (a panic fails the call and disables the instance
//! until it is reloaded), forwards `log` to the daemon's log, and turns the raw ABI types into
//! borrowed Rust views.
//!
//! - [`Module`]: `init` with the checked modparams, `destroy`, `flush`, MI commands.
//! - [`Transport`]: OpenSIPS's verbs `parse`, `matches`, `print`, `free`, `raise`.
//! - [`params`]: the modparam table of [`export_module!`], and [`Params::parse`] to fill the
//!   module's own config struct (serde).
//! - [`Host`]: raise and publish events, report async deliveries ([`Raised::Pending`] then
//!   [`Host::delivery_status`]), run MI requests.
//! - [`worker`]: a named thread with a bounded queue, for blocking or async I/O off the
//!   module's thread, joined in `destroy`.
//! - [`destination`]: one such thread and queue per destination server, shared by the sockets
//!   that name it, with counters and the queue bound (event_stream, event_xmlrpc).
//! - [`testing`]: [`TestEvent`](testing::TestEvent) and [`FakeHost`](testing::FakeHost) for
//!   in-process unit tests. Integration tests load the built `.so` into the real `evid`
//!   (`evi-testkit`).
//!
//! `docs/writing-a-module.md` walks from `cargo new` to `loadmodule`.
//!
//! ## Example
//!
//! A transport `echo:NAME` that logs each event, raises `E_ECHOED` back into the daemon, and
//! answers the MI command `echo_count`; then the same code exercised in-process, as a unit test
//! would:
//!
//! ```
//! use evi_sdk::testing::{FakeHost, TestEvent};
//! use evi_sdk::{
//!     export_module, json, param, Delivery, Event, Host, MiError, MiParams, MiResult, Module,
//!     Param, ParamValue, Params, Raised, Transport, Value,
//! };
//!
//! /// The modparams, filled by `params.parse()` (field name = modparam name).
//! #[derive(evi_sdk::serde::Deserialize)]
//! #[serde(crate = "evi_sdk::serde")]
//! struct Config {
//!     prefix: String,
//!     verbose: bool,
//! }
//!
//! struct Echo {
//!     host: Host,
//!     cfg: Config,
//!     echoed: u64,
//! }
//!
//! impl Module for Echo {
//!     fn init(host: Host, params: &Params) -> Result<Self, String> {
//!         host.publish_event("E_ECHOED")?;
//!         Ok(Echo { host, cfg: params.parse()?, echoed: 0 })
//!     }
//!
//!     fn mi_command(&mut self, name: &str, _params: &MiParams) -> MiResult {
//!         match name {
//!             "echo_count" => Ok(json::json!({ "echoed": self.echoed })),
//!             _ => Err(MiError::new(-32601, "Method not found")),
//!         }
//!     }
//! }
//!
//! impl Transport for Echo {
//!     /// What `parse` makes of `echo:NAME`: the NAME.
//!     type Socket = String;
//!
//!     fn parse(&mut self, _proto: &str, body: &str) -> Result<String, String> {
//!         if body.is_empty() {
//!             return Err("echo: needs a name, e.g. echo:alice".into());
//!         }
//!         Ok(body.to_string())
//!     }
//!     fn matches(&self, a: &String, b: &String) -> bool {
//!         a == b
//!     }
//!     fn print(&self, s: &String, out: &mut String) {
//!         out.push_str(s)
//!     }
//!     fn raise(&mut self, s: &mut String, ev: &Event<'_>, _d: Delivery) -> Result<Raised, String> {
//!         self.echoed += 1;
//!         if self.cfg.verbose {
//!             evi_sdk::log::info!("{}{s}: {} ({} params)", self.cfg.prefix, ev.name(), ev.len());
//!         }
//!         let name = Value::Str(ev.name().as_bytes());
//!         self.host.raise_event("E_ECHOED", &[Param::named("event", name)])?;
//!         Ok(Raised::Done)
//!     }
//! }
//!
//! export_module! {
//!     module: Echo,
//!     name: "event_echo",
//!     doc: "echo: transport: logs every event and raises E_ECHOED.",
//!     params: [
//!         param::str("prefix", "echo ", "Written before each log line"),
//!         param::bool("verbose", true, "Log each event"),
//!     ],
//!     events: ["E_ECHOED"],
//!     mi: ["echo_count" [[]] "How many events were echoed"],
//!     transports: ["echo" (evi_sdk::EXPIRES)],
//! }
//!
//! fn main() {
//!     // In-process, with a fake daemon that records what the module does.
//!     let host = FakeHost::new();
//!     let params = Params::from_pairs(&[
//!         ("prefix", ParamValue::Str("> ".into())),
//!         ("verbose", ParamValue::Bool(true)),
//!     ]);
//!     let mut echo = Echo::init(host.host(), &params).expect("init");
//!
//!     let mut socket = echo.parse("echo", "alice").expect("parse");
//!     let mut printed = String::new();
//!     echo.print(&socket, &mut printed);
//!     let again = echo.parse("echo", &printed).expect("re-parse");
//!     assert!(echo.matches(&socket, &again));
//!     assert!(echo.parse("echo", "").is_err());
//!
//!     let ev = TestEvent::new("E_PIKE_BLOCKED").str(Some("ip"), "10.0.0.1");
//!     let r = ev.with(|e| echo.raise(&mut socket, e, Delivery(1)));
//!     assert_eq!(r, Ok(Raised::Done));
//!     assert_eq!(
//!         host.raised(),
//!         [("E_ECHOED".to_string(), vec![(Some("event".to_string()), "E_PIKE_BLOCKED".to_string())])]
//!     );
//!     let count = echo.mi_command("echo_count", &MiParams::default());
//!     assert_eq!(count, Ok(json::json!({ "echoed": 1 })));
//! }
//! ```

#![warn(missing_docs)]

pub mod destination;
pub mod fs;
mod host;
mod mi;
mod module;
pub mod params;
#[cfg(feature = "tokio")]
pub mod runtime;
#[doc(hidden)]
pub mod shim;
pub mod stop;
pub mod testing;
pub mod uri;
mod value;
pub mod worker;

pub use evi_abi as abi;
/// Bounded queues whose memory follows their backlog (what [`worker::Worker`] uses); for a
/// module's own thread pools.
pub use evi_queue as queue;
pub use host::{Host, MemberSocket};
/// The `log` facade: `log::info!` in module code goes to the daemon's log, with the module name.
pub use log;
pub use mi::{ok as mi_ok, MiError, MiParams, MiResult};
pub use module::{Delivery, Module, Raised, Transport};
pub use params::{ParamError, ParamValue, Params};
/// `serde`, for `#[derive(evi_sdk::serde::Deserialize)] #[serde(crate = "evi_sdk::serde")]` on
/// a config struct when the module does not depend on serde itself.
pub use serde;
/// `serde_json`, for MI replies (`json::json!`).
pub use serde_json as json;
pub use value::{Event, OwnedEvent, Param, Value};

/// Param constructors for the `params:` table of [`export_module!`].
pub use params as param;

/// Transport flags for the `transports:` table.
pub use evi_abi::{
    EVI_TRANSPORT_ASYNC as ASYNC, EVI_TRANSPORT_EXPIRES as EXPIRES, EVI_TRANSPORT_JSON as JSON,
};

#[doc(hidden)]
pub const fn build_info() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// Declare a module: its type, name, params, events, MI commands and transports, in one place.
///
/// Emits the one exported symbol (`evi_module`) the host loads. `name` must equal the library's
/// file stem (`event_flatstore` for `libevent_flatstore.so`). Each MI command lists its recipes
/// (accepted parameter-name lists); `transports` lists `"proto" (FLAGS)`, and needs `module` to
/// implement [`Transport`]; the optional `functions` lists script functions as
/// `"name" (MIN..=MAX args) "doc"`, run by [`Module::script_function`].
#[macro_export]
macro_rules! export_module {
    (
        module: $m:ty,
        name: $name:literal,
        doc: $doc:literal,
        params: [$($param:expr),* $(,)?],
        events: [$($event:literal),* $(,)?],
        mi: [$($cmd:literal [$([$($pname:literal),*]),*] $cdoc:literal),* $(,)?],
        transports: [$($proto:literal ($flags:expr)),* $(,)?]
        $(, functions: [$($fname:literal ($fmin:literal ..= $fmax:literal) $fdoc:literal),* $(,)?])? $(,)?
    ) => {
        const _: () = {
            use $crate::abi::{
                EviMiCmd, EviMiRecipe, EviModuleDecl, EviModuleExt, EviParamSpec, EviScriptFn,
                EviStr, EviTransport,
            };

            static PARAMS: &[EviParamSpec] = &[$($param),*];
            static EVENTS: &[EviStr] = &[$(EviStr::from_static($event)),*];
            static MI: &[EviMiCmd] = &[$(EviMiCmd {
                name: EviStr::from_static($cmd),
                doc: EviStr::from_static($cdoc),
                recipes: {
                    const R: &[EviMiRecipe] = &[$(EviMiRecipe {
                        params: { const P: &[EviStr] = &[$(EviStr::from_static($pname)),*]; P.as_ptr() },
                        n_params: { const P: &[&str] = &[$($pname),*]; P.len() },
                    }),*];
                    R.as_ptr()
                },
                n_recipes: { const R: &[&[&str]] = &[$(&[$($pname),*]),*]; R.len() },
                handler: $crate::shim::mi::<$m>,
            }),*];
            static TRANSPORTS: &[EviTransport] = &[$($crate::shim::transport::<$m>($proto, $flags)),*];
            static FUNCTIONS: &[EviScriptFn] =
                &[$($($crate::shim::script_fn::<$m>($fname, $fmin, $fmax, $fdoc)),*)?];
            static EXT: EviModuleExt = EviModuleExt {
                size: ::core::mem::size_of::<EviModuleExt>(),
                script_fns: FUNCTIONS.as_ptr(),
                n_script_fns: FUNCTIONS.len(),
            };

            #[no_mangle]
            pub static evi_module: EviModuleDecl = EviModuleDecl {
                header: $crate::abi::EviHeaderHash($crate::abi::header()),
                name: EviStr::from_static($name),
                version: EviStr::from_static(env!("CARGO_PKG_VERSION")),
                build: EviStr::from_static($crate::build_info()),
                doc: EviStr::from_static($doc),
                params: PARAMS.as_ptr(),
                n_params: PARAMS.len(),
                mi_cmds: MI.as_ptr(),
                n_mi_cmds: MI.len(),
                events: EVENTS.as_ptr(),
                n_events: EVENTS.len(),
                transports: TRANSPORTS.as_ptr(),
                n_transports: TRANSPORTS.len(),
                init: $crate::shim::init::<$m>,
                destroy: $crate::shim::destroy::<$m>,
                flush: Some($crate::shim::flush::<$m>),
                member_status: Some($crate::shim::member_status::<$m>),
                ext: &EXT,
            };
        };
    };
}
