//! # evi-sdk: write evid modules in safe Rust
//!
//! Implement [`Module`] (and [`Transport`] for a transport), list what the module exports in one
//! [`export_module!`], and build the crate as a `cdylib`. The SDK writes the ABI declaration,
//! wraps every entry point in `catch_unwind`, forwards `log` to the daemon's log, and turns the
//! raw ABI types into borrowed Rust views.
//!
//! ```ignore
//! use evi_sdk::{export_module, param, Delivery, Event, Host, Module, Params, Raised, Transport};
//!
//! struct Echo;
//! impl Module for Echo {
//!     fn init(_host: Host, _params: &Params) -> Result<Self, String> { Ok(Echo) }
//! }
//! impl Transport for Echo {
//!     type Socket = String;
//!     fn parse(&mut self, _proto: &str, body: &str) -> Result<String, String> { Ok(body.into()) }
//!     fn matches(&self, a: &String, b: &String) -> bool { a == b }
//!     fn print(&self, s: &String, out: &mut String) { out.push_str(s) }
//!     fn raise(&mut self, s: &mut String, ev: &Event<'_>, _d: Delivery) -> Result<Raised, String> {
//!         log::info!("{s}: {}", ev.name());
//!         Ok(Raised::Done)
//!     }
//! }
//! export_module! {
//!     module: Echo,
//!     name: "event_echo",
//!     doc: "Logs every event.",
//!     params: [param::bool("verbose", false, "Log the params too")],
//!     events: [],
//!     mi: [],
//!     transports: ["echo" (0)],
//! }
//! ```

mod host;
mod mi;
mod module;
pub mod params;
#[doc(hidden)]
pub mod shim;
pub mod testing;
mod value;

pub use evi_abi as abi;
pub use host::Host;
pub use mi::{ok as mi_ok, MiError, MiParams, MiResult};
pub use module::{Delivery, Module, Raised, Transport};
pub use params::{ParamValue, Params};
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
/// implement [`Transport`].
#[macro_export]
macro_rules! export_module {
    (
        module: $m:ty,
        name: $name:literal,
        doc: $doc:literal,
        params: [$($param:expr),* $(,)?],
        events: [$($event:literal),* $(,)?],
        mi: [$($cmd:literal [$([$($pname:literal),*]),*] $cdoc:literal),* $(,)?],
        transports: [$($proto:literal ($flags:expr)),* $(,)?] $(,)?
    ) => {
        const _: () = {
            use $crate::abi::{EviMiCmd, EviMiRecipe, EviModuleDecl, EviParamSpec, EviStr, EviTransport};

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
                ext: ::core::ptr::null(),
            };
        };
    };
}
