//! The `extern "C"` layer under the traits: every entry point catches panics, and a panicking
//! instance is poisoned so that every later call fails closed.

use crate::host::{install_logger, remove_logger, write};
use crate::mi::MiParams;
use crate::{Delivery, Event, Host, Module, Params, Raised, Transport};
use evi_abi::{
    EviEvent, EviHost, EviMiReply, EviParam, EviScriptFn, EviStatus, EviStr, EviTransport,
    EviValue, EviWriter,
};
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What the host's instance pointer points to.
struct Instance<M> {
    module: M,
    poisoned: Option<String>,
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".into()
    }
}

/// Run `f` on the instance unless it is poisoned; a panic poisons it.
///
/// # Safety
/// `inst` must be the pointer `shim_init::<M>` produced and not yet destroyed.
unsafe fn guard<M, R>(
    inst: *mut c_void,
    on_fail: impl FnOnce(&str) -> R,
    f: impl FnOnce(&mut M) -> R,
) -> R {
    let inst = unsafe { &mut *(inst as *mut Instance<M>) };
    if let Some(why) = &inst.poisoned {
        return on_fail(&format!("module is disabled after a panic: {why}"));
    }
    match catch_unwind(AssertUnwindSafe(|| f(&mut inst.module))) {
        Ok(r) => r,
        Err(p) => {
            let msg = format!("module panicked: {}", panic_message(&*p));
            log::error!("{msg}");
            inst.poisoned = Some(panic_message(&*p));
            on_fail(&msg)
        }
    }
}

pub unsafe extern "C" fn init<M: Module>(
    host: *const EviHost,
    params: *const EviParam,
    n_params: usize,
    out: *mut *mut c_void,
    err: EviWriter,
) -> EviStatus {
    install_logger(host);
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the host passes valid params and host api for this call.
        let params = unsafe { Params::from_raw(params, n_params) };
        M::init(unsafe { Host::from_raw(host) }, &params)
    }));
    match r {
        Ok(Ok(m)) => {
            let b = Box::new(Instance {
                module: m,
                poisoned: None,
            });
            // SAFETY: out is a valid out-pointer for this call.
            unsafe { *out = Box::into_raw(b) as *mut c_void };
            EviStatus::OK
        }
        Ok(Err(e)) => {
            write(err, &e);
            remove_logger();
            EviStatus::ERROR
        }
        Err(p) => {
            write(err, &format!("init panicked: {}", panic_message(&*p)));
            remove_logger();
            EviStatus::PANICKED
        }
    }
}

pub unsafe extern "C" fn destroy<M: Module>(inst: *mut c_void) {
    if inst.is_null() {
        return;
    }
    // SAFETY: inst came from init and is destroyed once.
    unsafe { guard::<M, ()>(inst, |_| (), |m| m.destroy()) };
    let b = unsafe { Box::from_raw(inst as *mut Instance<M>) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(b)));
    remove_logger();
}

pub unsafe extern "C" fn member_status<M: Module>(
    inst: *mut c_void,
    token: u64,
    status: EviStatus,
    msg: EviStr,
) {
    // SAFETY: msg is valid for the call.
    let msg = String::from_utf8_lossy(unsafe { msg.as_bytes() }).into_owned();
    let result = if status == EviStatus::OK {
        Ok(())
    } else {
        Err(msg.as_str())
    };
    unsafe { guard::<M, ()>(inst, |_| (), |m| m.member_status(token, result)) }
}

pub unsafe extern "C" fn flush<M: Module>(inst: *mut c_void) {
    unsafe { guard::<M, ()>(inst, |_| (), |m| m.flush()) }
}

pub unsafe extern "C" fn mi<M: Module>(
    inst: *mut c_void,
    name: EviStr,
    params: EviStr,
    reply: *const EviMiReply,
) -> EviStatus {
    // SAFETY: all pointers are valid for the call.
    let reply = unsafe { &*reply };
    let name = String::from_utf8_lossy(unsafe { name.as_bytes() }).into_owned();
    let params = MiParams::parse(unsafe { params.as_bytes() });
    let send_err = |code: i32, msg: &str, data: Option<&str>| unsafe {
        (reply.error)(
            reply.ctx,
            code,
            EviStr::new(msg.as_bytes()),
            data.map_or(EviStr::EMPTY, |d| EviStr::new(d.as_bytes())),
        )
    };
    let r = unsafe {
        guard::<M, _>(
            inst,
            |why| Err(crate::MiError::new(500, why)),
            |m| m.mi_command(&name, &params),
        )
    };
    match r {
        Ok(v) => {
            let text = v.to_string();
            unsafe { (reply.result)(reply.ctx, EviStr::new(text.as_bytes())) };
        }
        Err(e) => send_err(e.code, &e.message, e.data.as_deref()),
    }
    EviStatus::OK
}

/// One entry of the `functions:` table of `export_module!`.
pub const fn script_fn<M: Module>(
    name: &'static str,
    min_args: u32,
    max_args: u32,
    doc: &'static str,
) -> EviScriptFn {
    EviScriptFn {
        name: EviStr::from_static(name),
        doc: EviStr::from_static(doc),
        min_args,
        max_args,
        handler: call_script_fn::<M>,
    }
}

unsafe extern "C" fn call_script_fn<M: Module>(
    inst: *mut c_void,
    name: EviStr,
    args: *const EviValue,
    n_args: usize,
    err: EviWriter,
) -> EviStatus {
    // SAFETY: all pointers are valid for the call; `args` holds `n_args` values.
    let name = String::from_utf8_lossy(unsafe { name.as_bytes() }).into_owned();
    let raw = if args.is_null() || n_args == 0 {
        &[][..]
    } else {
        unsafe { std::slice::from_raw_parts(args, n_args) }
    };
    let args: Vec<crate::Value<'_>> = raw
        .iter()
        .map(|v| unsafe { crate::Value::from_raw(v) })
        .collect();
    let r = unsafe {
        guard::<M, _>(
            inst,
            |why| Err(why.to_string()),
            |m| m.script_function(&name, &args),
        )
    };
    match r {
        Ok(true) => EviStatus::OK,
        Ok(false) => EviStatus::ERROR,
        Err(e) => {
            write(err, &e);
            EviStatus::ERROR
        }
    }
}

unsafe extern "C" fn parse<M: Transport>(
    inst: *mut c_void,
    proto: EviStr,
    body: EviStr,
    out: *mut *mut c_void,
    err: EviWriter,
) -> EviStatus {
    // SAFETY: valid for the call.
    let (proto, body) = unsafe { (proto.as_bytes(), body.as_bytes()) };
    let (Ok(proto), Ok(body)) = (std::str::from_utf8(proto), std::str::from_utf8(body)) else {
        write(err, "socket is not valid UTF-8");
        return EviStatus::ERROR;
    };
    let fail = |m: &str| {
        write(err, m);
        EviStatus::PANICKED
    };
    unsafe {
        guard::<M, _>(inst, fail, |m| match m.parse(proto, body) {
            Ok(s) => {
                *out = Box::into_raw(Box::new(s)) as *mut c_void;
                EviStatus::OK
            }
            Err(e) => {
                write(err, &e);
                EviStatus::ERROR
            }
        })
    }
}

unsafe extern "C" fn matches<M: Transport>(
    inst: *mut c_void,
    a: *const c_void,
    b: *const c_void,
) -> bool {
    // SAFETY: both sockets came from parse and are not freed.
    unsafe {
        guard::<M, _>(
            inst,
            |_| false,
            |m| m.matches(&*(a as *const M::Socket), &*(b as *const M::Socket)),
        )
    }
}

unsafe extern "C" fn print<M: Transport>(inst: *mut c_void, socket: *const c_void, out: EviWriter) {
    unsafe {
        guard::<M, _>(
            inst,
            |_| (),
            |m| {
                let mut s = String::new();
                m.print(&*(socket as *const M::Socket), &mut s);
                write(out, &s);
            },
        )
    }
}

unsafe extern "C" fn destinations<M: Transport>(
    inst: *mut c_void,
    socket: *const c_void,
    out: EviWriter,
) {
    unsafe {
        guard::<M, _>(
            inst,
            |_| (),
            |m| {
                let mut all = Vec::new();
                m.destinations(&*(socket as *const M::Socket), &mut all);
                write(out, &all.join("\n"));
            },
        )
    }
}

unsafe extern "C" fn free<M: Transport>(inst: *mut c_void, socket: *mut c_void) {
    if socket.is_null() {
        return;
    }
    // SAFETY: socket came from parse and is freed once.
    let mut b = unsafe { Box::from_raw(socket as *mut M::Socket) };
    unsafe { guard::<M, _>(inst, |_| (), |m| m.free(&mut b)) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(b)));
}

unsafe extern "C" fn raise<M: Transport>(
    inst: *mut c_void,
    socket: *mut c_void,
    event: *const EviEvent,
    delivery: u64,
    err: EviWriter,
) -> EviStatus {
    let fail = |m: &str| {
        write(err, m);
        EviStatus::PANICKED
    };
    // SAFETY: socket came from parse; event is valid for the call.
    unsafe {
        guard::<M, _>(inst, fail, |m| {
            let ev = Event::from_raw(&*event);
            match m.raise(&mut *(socket as *mut M::Socket), &ev, Delivery(delivery)) {
                Ok(Raised::Done) => EviStatus::OK,
                Ok(Raised::Pending) => EviStatus::PENDING,
                Err(e) => {
                    write(err, &e);
                    EviStatus::ERROR
                }
            }
        })
    }
}

/// The vtable of one proto of transport module `M`.
pub const fn transport<M: Transport>(proto: &'static str, flags: u32) -> EviTransport {
    EviTransport {
        size: std::mem::size_of::<EviTransport>(),
        proto: EviStr::from_static(proto),
        flags,
        parse: parse::<M>,
        matches: matches::<M>,
        print: print::<M>,
        free: free::<M>,
        raise: raise::<M>,
        destinations: Some(destinations::<M>),
    }
}
