//! Helpers for a module's own unit tests: build an [`Event`] without a host.
//!
//! Integration tests load the real `.so` through the real host (see `evi-testkit`); these only
//! let a module test its formatting and parsing code in-process.

use crate::{Event, OwnedEvent};

/// An event built by a test: a builder over [`OwnedEvent`].
pub struct TestEvent(OwnedEvent);

impl TestEvent {
    /// An event named `name` with no params yet.
    pub fn new(name: &str) -> Self {
        TestEvent(OwnedEvent::new(name))
    }
    /// Add an int param (`name` `None` = positional).
    pub fn int(mut self, name: Option<&str>, v: i64) -> Self {
        self.0.push(name, crate::value::OwnedValue::Int(v));
        self
    }
    /// Add a string param.
    pub fn str(mut self, name: Option<&str>, v: impl AsRef<[u8]>) -> Self {
        self.0
            .push(name, crate::value::OwnedValue::Str(v.as_ref().to_vec()));
        self
    }
    /// Add a null param.
    pub fn null(mut self, name: Option<&str>) -> Self {
        self.0.push(name, crate::value::OwnedValue::Null);
        self
    }
    /// Set the shared JSON payload the host would have built.
    pub fn json(mut self, json: impl AsRef<[u8]>) -> Self {
        self.0.set_json(json.as_ref());
        self
    }

    /// Run `f` with a borrowed [`Event`] view, as a transport's `raise` gets it.
    pub fn with<R>(&self, f: impl FnOnce(&Event<'_>) -> R) -> R {
        self.0.with(f)
    }
}

/// A host for a module's in-process tests: records raised events, delivery reports and log
/// lines, and answers MI requests with a closure. Leaked on purpose: the SDK's `log` facade
/// keeps a pointer to the host of the last `init`, for the life of the process.
pub struct FakeHost {
    api: evi_abi::EviHost,
    mi: Box<MiFn>,
    raised: std::sync::Mutex<Vec<RecordedRaise>>,
    statuses: std::sync::Mutex<Vec<(u64, Result<(), String>)>>,
    suspensions: std::sync::Mutex<Vec<(u64, u32)>>,
    holds: std::sync::Mutex<Vec<(u64, u32)>>,
    logs: std::sync::Mutex<Vec<String>>,
    file_root: std::sync::Mutex<Option<std::path::PathBuf>>,
}

type MiFn = dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync;

/// One `raise_event` a module made: event name, then (param name, value as text).
pub type RecordedRaise = (String, Vec<(Option<String>, String)>);

impl FakeHost {
    /// A host whose MI answers every request with a `-32601` error.
    pub fn new() -> &'static FakeHost {
        Self::with_mi(|_| {
            Some(br#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":null}"#.to_vec())
        })
    }

    /// A host whose `mi_execute` is `mi`.
    pub fn with_mi(
        mi: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> &'static FakeHost {
        let h: &'static mut FakeHost = Box::leak(Box::new(FakeHost {
            api: evi_abi::EviHost {
                size: std::mem::size_of::<evi_abi::EviHost>(),
                ctx: std::ptr::null_mut(),
                log: fake::log,
                log_enabled: fake::log_enabled,
                publish_event: fake::publish_event,
                raise_event: fake::raise_event,
                delivery_status: fake::delivery_status,
                mi_execute: fake::mi_execute,
                has_event_route: fake::has_event_route,
                run_event_route: fake::run_event_route,
                socket_open: fake::socket_open,
                socket_close: fake::socket_close,
                socket_raise: fake::socket_raise,
                delivery_suspend: fake::delivery_suspend,
                mi_file_root: fake::mi_file_root,
                delivery_hold: fake::delivery_hold,
            },
            mi: Box::new(mi),
            raised: Default::default(),
            statuses: Default::default(),
            suspensions: Default::default(),
            holds: Default::default(),
            logs: Default::default(),
            file_root: Default::default(),
        }));
        h.api.ctx = h as *mut FakeHost as *mut std::ffi::c_void;
        h
    }

    /// The ABI table, as `init` receives it.
    pub fn api(&'static self) -> *const evi_abi::EviHost {
        &self.api
    }

    /// A [`crate::Host`] handle on it, for code that takes one.
    pub fn host(&'static self) -> crate::Host {
        // SAFETY: the table is leaked, so valid for the rest of the process.
        unsafe { crate::Host::from_raw(&self.api) }
    }

    /// Every event raised through this host so far.
    pub fn raised(&self) -> Vec<RecordedRaise> {
        self.raised
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every delivery report so far.
    pub fn statuses(&self) -> Vec<(u64, Result<(), String>)> {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What `mi_file_root` answers from now on (as for sockets parsed for an MI subscription
    /// under `mi_flatstore_dir`); `None` = trusted sockets.
    pub fn set_mi_file_root(&self, root: Option<std::path::PathBuf>) {
        *self.file_root.lock().unwrap_or_else(|p| p.into_inner()) = root;
    }

    /// Every `delivery_suspend` so far: (delivery, milliseconds).
    pub fn suspensions(&self) -> Vec<(u64, u32)> {
        self.suspensions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every `delivery_hold` so far: (delivery, max events; 0 = release).
    pub fn holds(&self) -> Vec<(u64, u32)> {
        self.holds.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

mod fake {
    use super::FakeHost;
    use evi_abi::{EviEvent, EviParam, EviStatus, EviStr, EviWriter, EVI_VALUE_INT, EVI_VALUE_STR};
    use std::ffi::c_void;

    fn me<'a>(ctx: *mut c_void) -> &'a FakeHost {
        // SAFETY: ctx is the leaked FakeHost (see `with_mi`).
        unsafe { &*(ctx as *const FakeHost) }
    }

    fn text(s: EviStr) -> String {
        // SAFETY: valid for the call.
        String::from_utf8_lossy(unsafe { s.as_bytes() }).into_owned()
    }

    pub unsafe extern "C" fn log(ctx: *mut c_void, _level: u32, msg: EviStr) {
        me(ctx)
            .logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(text(msg));
    }

    pub unsafe extern "C" fn log_enabled(_: *mut c_void, _: u32) -> bool {
        true
    }

    pub unsafe extern "C" fn publish_event(_: *mut c_void, _: EviStr, _: EviWriter) -> i64 {
        0
    }

    pub unsafe extern "C" fn raise_event(
        ctx: *mut c_void,
        name: EviStr,
        params: *const EviParam,
        n: usize,
        _err: EviWriter,
    ) -> EviStatus {
        let raw = if params.is_null() {
            &[][..]
        } else {
            unsafe { std::slice::from_raw_parts(params, n) }
        };
        let params = raw
            .iter()
            .map(|p| {
                let v = match p.value.kind {
                    EVI_VALUE_INT => p.value.int.to_string(),
                    EVI_VALUE_STR => text(p.value.str),
                    _ => "null".into(),
                };
                let n = text(p.name);
                ((!n.is_empty()).then_some(n), v)
            })
            .collect();
        me(ctx)
            .raised
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((text(name), params));
        EviStatus::OK
    }

    pub unsafe extern "C" fn delivery_suspend(ctx: *mut c_void, d: u64, millis: u32) {
        me(ctx)
            .suspensions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((d, millis));
    }

    pub unsafe extern "C" fn delivery_hold(ctx: *mut c_void, d: u64, max_events: u32) {
        me(ctx)
            .holds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((d, max_events));
    }

    pub unsafe extern "C" fn mi_file_root(ctx: *mut c_void, out: evi_abi::EviWriter) -> bool {
        let root = me(ctx)
            .file_root
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match root {
            Some(r) => {
                use std::os::unix::ffi::OsStrExt;
                unsafe { (out.write)(out.ctx, EviStr::new(r.as_os_str().as_bytes())) };
                true
            }
            None => false,
        }
    }

    pub unsafe extern "C" fn delivery_status(ctx: *mut c_void, d: u64, st: EviStatus, msg: EviStr) {
        let r = if st == EviStatus::OK {
            Ok(())
        } else {
            Err(text(msg))
        };
        me(ctx)
            .statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((d, r));
    }

    pub unsafe extern "C" fn mi_execute(
        ctx: *mut c_void,
        request: EviStr,
        reply: EviWriter,
    ) -> EviStatus {
        match (me(ctx).mi)(unsafe { request.as_bytes() }) {
            Some(r) => {
                unsafe { (reply.write)(reply.ctx, EviStr::new(&r)) };
                EviStatus::OK
            }
            None => EviStatus::NO_REPLY,
        }
    }

    pub unsafe extern "C" fn has_event_route(_: *mut c_void, _: EviStr) -> bool {
        false
    }

    pub unsafe extern "C" fn socket_open(_: *mut c_void, _: EviStr, e: EviWriter) -> u64 {
        unsafe {
            (e.write)(
                e.ctx,
                EviStr::from_static("the fake host has no transports"),
            )
        };
        0
    }

    pub unsafe extern "C" fn socket_close(_: *mut c_void, _: u64) {}

    pub unsafe extern "C" fn socket_raise(
        _: *mut c_void,
        _: u64,
        _: *const EviEvent,
        _: u64,
        e: EviWriter,
    ) -> EviStatus {
        unsafe {
            (e.write)(
                e.ctx,
                EviStr::from_static("the fake host has no transports"),
            )
        };
        EviStatus::ERROR
    }

    pub unsafe extern "C" fn run_event_route(
        _: *mut c_void,
        _: EviStr,
        _: *const EviEvent,
        e: EviWriter,
    ) -> EviStatus {
        unsafe { (e.write)(e.ctx, EviStr::from_static("the fake host has no script")) };
        EviStatus::ERROR
    }
}

/// A module README's params table rows, as `export_module!` declared them:
/// `| `name` | int | `default` | min..=max | doc |` (`unset` for no default, `—` for no range;
/// permission modes in octal).
pub fn readme_param_rows(decl: &evi_abi::EviModuleDecl) -> Vec<String> {
    use evi_abi::{EVI_PARAM_BOOL, EVI_PARAM_INT, EVI_VALUE_NULL, EVI_VALUE_STR};
    // SAFETY: a declaration's strings and tables are static data of the module.
    let text = |s: &evi_abi::EviStr| String::from_utf8_lossy(unsafe { s.as_bytes() }).into_owned();
    let params = if decl.params.is_null() {
        &[][..]
    } else {
        // SAFETY: as above; the table holds `n_params` entries.
        unsafe { std::slice::from_raw_parts(decl.params, decl.n_params) }
    };
    params
        .iter()
        .map(|p| {
            let kind = match p.kind {
                EVI_PARAM_INT => "int",
                EVI_PARAM_BOOL => "bool",
                _ => "str",
            };
            let kind = if p.flags & evi_abi::EVI_PARAM_REPEATABLE != 0 {
                format!("{kind}, repeatable")
            } else {
                kind.to_string()
            };
            // File permission modes (a `*_mode` int whose range reaches 0777) read as in a
            // config and in chmod: octal with a leading 0.
            let octal = text(&p.name).ends_with("_mode") && p.max >= 0o777;
            let int = |i: i64| {
                if octal && i != 0 {
                    format!("0{i:o}")
                } else {
                    i.to_string()
                }
            };
            let default = match p.default.kind {
                EVI_VALUE_NULL => "unset".to_string(),
                EVI_VALUE_STR => format!("`{}`", text(&p.default.str)),
                _ if p.kind == EVI_PARAM_BOOL => format!("`{}`", p.default.int != 0),
                _ => format!("`{}`", int(p.default.int)),
            };
            let range = if p.kind == EVI_PARAM_INT {
                format!("{}..={}", int(p.min), int(p.max))
            } else {
                "—".into()
            };
            format!(
                "| `{}` | {kind} | {default} | {range} | {} |",
                text(&p.name),
                text(&p.doc)
            )
        })
        .collect()
}

/// Check that `readme`'s `## Params` (or `## Modparams`) table is exactly [`readme_param_rows`]
/// (a module without params says "None."), and that every MI command has a row; the error shows
/// what differs.
pub fn check_readme(decl: &evi_abi::EviModuleDecl, readme: &str) -> Result<(), String> {
    let section = if readme.contains("## Params") {
        "## Params"
    } else {
        "## Modparams"
    };
    let body = readme
        .split(section)
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .unwrap_or_default();
    let rows: Vec<&str> = body.lines().filter(|l| l.starts_with("| `")).collect();
    let want = readme_param_rows(decl);
    if want.is_empty() && !body.trim_start().starts_with("None") {
        return Err(format!(
            "README {section} should say \"None.\": the module declares no params"
        ));
    }
    if rows != want {
        return Err(format!(
            "README params table:\n{}\nexpected:\n{}",
            rows.join("\n"),
            want.join("\n")
        ));
    }
    let cmds = if decl.mi_cmds.is_null() {
        &[][..]
    } else {
        // SAFETY: static table of `n_mi_cmds` entries.
        unsafe { std::slice::from_raw_parts(decl.mi_cmds, decl.n_mi_cmds) }
    };
    for c in cmds {
        // SAFETY: static string of the declaration.
        let name = String::from_utf8_lossy(unsafe { c.name.as_bytes() });
        if !readme.contains(&format!("| `{name}` |")) {
            return Err(format!("README has no row for MI command {name}"));
        }
    }
    Ok(())
}
