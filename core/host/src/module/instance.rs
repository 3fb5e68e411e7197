//! The module side of an instance: the ABI calls made on the module's thread.

use evi_abi::{EviMiReply, EviModuleDecl, EviStatus, EviStr, EviTransport, EviValue, EviWriter};
use evi_script::ScriptValue;
use std::ffi::c_void;

/// One initialised instance of a module library, only ever touched on its thread.
pub(crate) struct Instance {
    pub(super) decl: *const EviModuleDecl,
    pub(super) ptr: *mut c_void,
    /// The declaration's transport table, copied in this ABI's layout (older minors have
    /// shorter entries; see `EviTransport::read`).
    pub(super) transports: Vec<EviTransport>,
}

impl Instance {
    pub(super) fn decl(&self) -> &EviModuleDecl {
        // SAFETY: the library outlives the module thread.
        unsafe { &*self.decl }
    }

    pub(super) fn transport(&self, idx: usize) -> &EviTransport {
        &self.transports[idx]
    }

    pub(super) fn flush(&self) {
        if let Some(f) = self.decl().flush {
            // SAFETY: on the module's thread, with its instance.
            unsafe { f(self.ptr) }
        }
    }

    pub(crate) fn parse(&self, idx: usize, body: &str) -> Result<SocketPtr, String> {
        let t = self.transport(idx);
        let mut out: *mut c_void = std::ptr::null_mut();
        let mut err = Vec::new();
        // SAFETY: arguments valid for the call.
        let st = unsafe {
            (t.parse)(
                self.ptr,
                t.proto,
                EviStr::new(body.as_bytes()),
                &mut out,
                writer(&mut err),
            )
        };
        if st == EviStatus::OK && !out.is_null() {
            Ok(SocketPtr(out))
        } else {
            let why = String::from_utf8_lossy(&err).into_owned();
            Err(if why.is_empty() {
                "invalid socket".into()
            } else {
                why
            })
        }
    }

    pub(crate) fn matches(&self, idx: usize, a: SocketPtr, b: SocketPtr) -> bool {
        let t = self.transport(idx);
        // SAFETY: both sockets are live sockets of this transport.
        unsafe { (t.matches)(self.ptr, a.0, b.0) }
    }

    pub(crate) fn print(&self, idx: usize, s: SocketPtr) -> String {
        let t = self.transport(idx);
        let mut out = Vec::new();
        // SAFETY: s is a live socket of this transport.
        unsafe { (t.print)(self.ptr, s.0, writer(&mut out)) };
        String::from_utf8_lossy(&out).into_owned()
    }

    /// [`Instance::parse`] for a subscription held to `mi_policy` (or trusted, with `None`):
    /// sockets the transport opens while parsing are held to it too, and a socket sending where
    /// the policy forbids is freed and refused.
    pub(crate) fn parse_for(
        &self,
        idx: usize,
        body: &str,
        mi_policy: Option<&std::sync::Arc<crate::policy::Policy>>,
    ) -> Result<SocketPtr, String> {
        let new = crate::policy::parsing_for_mi(mi_policy, || self.parse(idx, body))?;
        if let Some(policy) = mi_policy {
            if let Err(why) = policy.check_destinations(&self.destinations(idx, new)) {
                self.free(idx, new);
                return Err(why);
            }
        }
        Ok(new)
    }

    /// Where the socket sends (`EviTransport::destinations`); empty for transports without
    /// network peers and for modules of ABI 1.0.
    pub(crate) fn destinations(&self, idx: usize, s: SocketPtr) -> Vec<String> {
        let t = self.transport(idx);
        let Some(f) = t.destinations else {
            return Vec::new();
        };
        let mut out = Vec::new();
        // SAFETY: s is a live socket of this transport.
        unsafe { f(self.ptr, s.0, writer(&mut out)) };
        String::from_utf8_lossy(&out)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub(crate) fn free(&self, idx: usize, s: SocketPtr) {
        let t = self.transport(idx);
        // SAFETY: s is a live socket of this transport, freed once.
        unsafe { (t.free)(self.ptr, s.0) }
    }

    /// Run an exported script function: `Ok(true)` for a positive result, `Ok(false)` for a
    /// negative one, `Err(reason)` when it failed.
    pub(crate) fn script_fn(&self, name: &str, args: &[ScriptValue]) -> Result<bool, String> {
        // SAFETY: the declaration passed the loader's checks.
        let table = unsafe { crate::loader::script_fn_table(self.decl()) };
        let f = table
            .iter()
            // SAFETY: static data of the library.
            .find(|f| unsafe { f.name.as_bytes() } == name.as_bytes())
            .ok_or_else(|| format!("the module exports no function {name}"))?;
        let raw: Vec<EviValue> = args
            .iter()
            .map(|a| match a {
                ScriptValue::Null => EviValue::NULL,
                ScriptValue::Int(i) => EviValue::int(*i),
                ScriptValue::Str(s) => EviValue::str(EviStr::new(s.as_bytes())),
            })
            .collect();
        let mut err = Vec::new();
        // SAFETY: on the module's thread; `raw` and the strings it borrows outlive the call.
        let st = unsafe {
            (f.handler)(
                self.ptr,
                EviStr::new(name.as_bytes()),
                raw.as_ptr(),
                raw.len(),
                writer(&mut err),
            )
        };
        match st {
            EviStatus::OK => Ok(true),
            _ if err.is_empty() => Ok(false),
            _ => Err(String::from_utf8_lossy(&err).into_owned()),
        }
    }

    /// Run an exported MI command: `Ok(result json)` or `Err((code, message, data))`.
    pub(crate) fn mi(
        &self,
        name: &str,
        params: &str,
    ) -> Result<String, (i32, String, Option<String>)> {
        let Some(cmd) = (0..self.decl().n_mi_cmds)
            // SAFETY: index within the declaration's table.
            .map(|i| unsafe { &*self.decl().mi_cmds.add(i) })
            .find(|c| unsafe { c.name.as_bytes() } == name.as_bytes())
        else {
            return Err((-32601, "Method not found".into(), None));
        };
        let mut reply = MiOutcome::None;
        let r = EviMiReply {
            ctx: &mut reply as *mut MiOutcome as *mut c_void,
            result: mi_result,
            error: mi_error,
        };
        // SAFETY: arguments valid for the call.
        let st = unsafe {
            (cmd.handler)(
                self.ptr,
                EviStr::new(name.as_bytes()),
                EviStr::new(params.as_bytes()),
                &r,
            )
        };
        match reply {
            MiOutcome::Result(json) if st == EviStatus::OK => Ok(json),
            MiOutcome::Error(code, msg, data) => Err((code, msg, data)),
            _ => Err((
                -32000,
                "Server error".into(),
                Some("Command handler returned null".into()),
            )),
        }
    }
}

/// A module-owned socket pointer, passed between the host's threads but dereferenced only on
/// the module's thread.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct SocketPtr(pub *mut c_void);
// SAFETY: see above.
unsafe impl Send for SocketPtr {}

enum MiOutcome {
    None,
    Result(String),
    Error(i32, String, Option<String>),
}

unsafe extern "C" fn mi_result(ctx: *mut c_void, json: EviStr) {
    // SAFETY: ctx is the MiOutcome of the current call.
    let out = unsafe { &mut *(ctx as *mut MiOutcome) };
    *out = MiOutcome::Result(String::from_utf8_lossy(unsafe { json.as_bytes() }).into_owned());
}

unsafe extern "C" fn mi_error(ctx: *mut c_void, code: i32, msg: EviStr, data: EviStr) {
    // SAFETY: ctx is the MiOutcome of the current call.
    let out = unsafe { &mut *(ctx as *mut MiOutcome) };
    let data = unsafe { data.as_bytes() };
    *out = MiOutcome::Error(
        code,
        String::from_utf8_lossy(unsafe { msg.as_bytes() }).into_owned(),
        (!data.is_empty()).then(|| String::from_utf8_lossy(data).into_owned()),
    );
}

unsafe extern "C" fn write_vec(ctx: *mut c_void, bytes: EviStr) {
    // SAFETY: ctx is the Vec given to writer(), alive for the call.
    let v = unsafe { &mut *(ctx as *mut Vec<u8>) };
    v.extend_from_slice(unsafe { bytes.as_bytes() });
}

/// A writer appending to `v`, valid while `v` is borrowed.
pub(crate) fn writer(v: &mut Vec<u8>) -> EviWriter {
    EviWriter {
        ctx: v as *mut Vec<u8> as *mut c_void,
        write: write_vec,
    }
}

impl Instance {
    /// Tell the module the outcome of one of its `socket_raise`s.
    pub(crate) fn member_status(&self, token: u64, ok: bool, msg: &[u8]) {
        if let Some(f) = self.decl().member_status {
            let st = if ok { EviStatus::OK } else { EviStatus::ERROR };
            // SAFETY: on the module's thread, with its instance; msg is valid for the call.
            unsafe { f(self.ptr, token, st, EviStr::new(msg)) }
        }
    }

    /// The instance's last call: `destroy`.
    pub(super) fn destroy(self) {
        // SAFETY: on its thread, once; nothing calls into the instance afterwards.
        unsafe { (self.decl().destroy)(self.ptr) };
    }
}
