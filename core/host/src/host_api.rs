//! The `EviHost` table handed to each module's `init`: the module's way back into the host.
//! Every function is callable from any thread and never unwinds.

use crate::event::{ParamRef, ValueRef};
use crate::host::Shared;
use evi_abi::{
    EviEvent, EviHost, EviParam, EviStatus, EviStr, EviWriter, EVI_VALUE_INT, EVI_VALUE_STR,
};
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Weak;

/// What `ctx` points to: one per module instance, owned by its `Module`.
pub(crate) struct ModuleCtx {
    pub shared: Weak<Shared>,
    pub module: String,
}

pub(crate) fn table(ctx: *mut c_void) -> EviHost {
    EviHost {
        size: std::mem::size_of::<EviHost>(),
        ctx,
        log: host_log,
        log_enabled: host_log_enabled,
        publish_event: host_publish,
        raise_event: host_raise,
        delivery_status: host_delivery_status,
        mi_execute: host_mi_execute,
        has_event_route: host_has_event_route,
        run_event_route: host_run_event_route,
        socket_open: host_socket_open,
        socket_close: host_socket_close,
        socket_raise: host_socket_raise,
        delivery_suspend: host_delivery_suspend,
        mi_file_root: host_mi_file_root,
        delivery_hold: host_delivery_hold,
    }
}

/// # Safety
/// `ctx` must be a `ModuleCtx` pointer from `table`, alive for the call.
unsafe fn ctx<'a>(ctx: *mut c_void) -> &'a ModuleCtx {
    unsafe { &*(ctx as *const ModuleCtx) }
}

fn write(w: EviWriter, s: &str) {
    // SAFETY: the writer is valid for the current call.
    unsafe { (w.write)(w.ctx, EviStr::new(s.as_bytes())) }
}

fn level(l: u32) -> log::Level {
    match l {
        0 | 1 => log::Level::Error,
        2 => log::Level::Warn,
        3 => log::Level::Info,
        4 => log::Level::Debug,
        _ => log::Level::Trace,
    }
}

unsafe extern "C" fn host_log(c: *mut c_void, l: u32, msg: EviStr) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see `ctx`; msg is valid for the call.
        let c = unsafe { ctx(c) };
        let msg = String::from_utf8_lossy(unsafe { msg.as_bytes() });
        log::log!(target: &c.module, level(l), "{msg}");
    }));
}

unsafe extern "C" fn host_log_enabled(_c: *mut c_void, l: u32) -> bool {
    level(l) <= log::max_level()
}

unsafe extern "C" fn host_publish(c: *mut c_void, name: EviStr, err: EviWriter) -> i64 {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see `ctx`; name is valid for the call.
        let c = unsafe { ctx(c) };
        let Some(shared) = c.shared.upgrade() else {
            write(err, "host is stopping");
            return -1;
        };
        let Ok(name) = std::str::from_utf8(unsafe { name.as_bytes() }) else {
            write(err, "event name is not UTF-8");
            return -1;
        };
        match shared.registry.publish(name) {
            Ok(id) => i64::from(id),
            Err(why) => {
                write(err, &why);
                -1
            }
        }
    }))
    .unwrap_or(-1)
}

unsafe extern "C" fn host_raise(
    c: *mut c_void,
    name: EviStr,
    params: *const EviParam,
    n: usize,
    err: EviWriter,
) -> EviStatus {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see `ctx`; the arguments are valid for the call.
        let c = unsafe { ctx(c) };
        let Some(shared) = c.shared.upgrade() else {
            write(err, "host is stopping");
            return EviStatus::ERROR;
        };
        let name = String::from_utf8_lossy(unsafe { name.as_bytes() });
        let Some(id) = shared.registry.lookup(&name) else {
            write(err, &format!("unknown event {name}"));
            return EviStatus::ERROR;
        };
        let raw = if params.is_null() || n == 0 {
            &[][..]
        } else {
            unsafe { std::slice::from_raw_parts(params, n) }
        };
        let mut refs = Vec::with_capacity(raw.len());
        for p in raw {
            let pname = unsafe { p.name.as_bytes() };
            let Ok(pname) = std::str::from_utf8(pname) else {
                write(err, "param name is not UTF-8");
                return EviStatus::ERROR;
            };
            refs.push(ParamRef {
                name: (!pname.is_empty()).then_some(pname),
                value: match p.value.kind {
                    EVI_VALUE_INT => ValueRef::Int(p.value.int),
                    EVI_VALUE_STR => ValueRef::Str(unsafe { p.value.str.as_bytes() }),
                    _ => ValueRef::Null,
                },
            });
        }
        match shared.raise(id, &refs) {
            Ok(_) => EviStatus::OK,
            Err(why) => {
                write(err, &why);
                EviStatus::ERROR
            }
        }
    }))
    .unwrap_or(EviStatus::ERROR)
}

unsafe extern "C" fn host_delivery_suspend(c: *mut c_void, delivery: u64, millis: u32) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see `ctx`.
        let c = unsafe { ctx(c) };
        if let Some(shared) = c.shared.upgrade() {
            shared.suspend_delivery(delivery, millis);
        }
    }));
}

unsafe extern "C" fn host_delivery_hold(c: *mut c_void, delivery: u64, max_events: u32) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see `ctx`.
        let c = unsafe { ctx(c) };
        if let Some(shared) = c.shared.upgrade() {
            shared.hold_delivery(delivery, max_events);
        }
    }));
}

unsafe extern "C" fn host_mi_file_root(_c: *mut c_void, out: EviWriter) -> bool {
    catch_unwind(AssertUnwindSafe(|| {
        let Some(dir) = crate::policy::mi_parse_policy().and_then(|p| p.flatstore_dir.clone())
        else {
            return false;
        };
        let dir = dir.as_os_str().as_encoded_bytes();
        // SAFETY: the writer is valid for this call.
        unsafe { (out.write)(out.ctx, EviStr::new(dir)) };
        true
    }))
    .unwrap_or(false)
}

unsafe extern "C" fn host_delivery_status(
    c: *mut c_void,
    delivery: u64,
    status: EviStatus,
    msg: EviStr,
) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see `ctx`; msg is valid for the call.
        let c = unsafe { ctx(c) };
        let Some(shared) = c.shared.upgrade() else {
            return;
        };
        shared.delivery_status(&c.module, delivery, status, unsafe { msg.as_bytes() });
    }));
}

unsafe extern "C" fn host_mi_execute(
    c: *mut c_void,
    request: EviStr,
    reply: EviWriter,
) -> EviStatus {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see `ctx`; request is valid for the call.
        let c = unsafe { ctx(c) };
        let Some(shared) = c.shared.upgrade() else {
            write(reply, r#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Server error","data":"evid is stopping"},"id":null}"#);
            return EviStatus::OK;
        };
        match crate::mi::execute(&shared, unsafe { request.as_bytes() }) {
            Some(r) => {
                // SAFETY: the writer is valid for the call.
                unsafe { (reply.write)(reply.ctx, EviStr::new(&r)) };
                EviStatus::OK
            }
            None => EviStatus::NO_REPLY,
        }
    }))
    .unwrap_or(EviStatus::ERROR)
}

unsafe extern "C" fn host_has_event_route(c: *mut c_void, name: EviStr) -> bool {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see `ctx`; name is valid for the call.
        let c = unsafe { ctx(c) };
        let name = String::from_utf8_lossy(unsafe { name.as_bytes() });
        c.shared.upgrade().is_some_and(|s| s.has_event_route(&name))
    }))
    .unwrap_or(false)
}

unsafe extern "C" fn host_run_event_route(
    c: *mut c_void,
    name: EviStr,
    event: *const EviEvent,
    err: EviWriter,
) -> EviStatus {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see `ctx`; name and event are valid for the call.
        let c = unsafe { ctx(c) };
        let Some(shared) = c.shared.upgrade() else {
            write(err, "host is stopping");
            return EviStatus::ERROR;
        };
        if event.is_null() {
            write(err, "no event");
            return EviStatus::ERROR;
        }
        let name = String::from_utf8_lossy(unsafe { name.as_bytes() });
        match shared.run_event_route(&name, unsafe { &*event }) {
            Ok(()) => EviStatus::OK,
            Err(d) => {
                write(err, &d.to_string());
                EviStatus::ERROR
            }
        }
    }))
    .unwrap_or(EviStatus::ERROR)
}

unsafe extern "C" fn host_socket_open(c: *mut c_void, uri: EviStr, err: EviWriter) -> u64 {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see `ctx`; uri is valid for the call.
        let c = unsafe { ctx(c) };
        let Some(shared) = c.shared.upgrade() else {
            write(err, "host is stopping");
            return 0;
        };
        let uri = String::from_utf8_lossy(unsafe { uri.as_bytes() });
        match shared.member_open(&c.module, &uri) {
            Ok(id) => id,
            Err(why) => {
                write(err, &why);
                0
            }
        }
    }))
    .unwrap_or(0)
}

unsafe extern "C" fn host_socket_close(c: *mut c_void, socket: u64) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see `ctx`.
        let c = unsafe { ctx(c) };
        if let Some(shared) = c.shared.upgrade() {
            shared.member_close(&c.module, socket);
        }
    }));
}

unsafe extern "C" fn host_socket_raise(
    c: *mut c_void,
    socket: u64,
    event: *const EviEvent,
    token: u64,
    err: EviWriter,
) -> EviStatus {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see `ctx`; event is valid for the call.
        let c = unsafe { ctx(c) };
        let Some(shared) = c.shared.upgrade() else {
            write(err, "host is stopping");
            return EviStatus::ERROR;
        };
        if event.is_null() {
            write(err, "no event");
            return EviStatus::ERROR;
        }
        match shared.member_raise(&c.module, socket, unsafe { &*event }, token) {
            Ok(()) => EviStatus::OK,
            Err(why) => {
                write(err, &why);
                EviStatus::ERROR
            }
        }
    }))
    .unwrap_or(EviStatus::ERROR)
}
