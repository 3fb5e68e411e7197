//! The module as the host sees it: through the exported `evi_module` declaration, with a fake
//! host that records raised events. Also checks that README.md documents exactly what is exported.

use crate::testutil::TempDir;
use evi_sdk::abi::{
    EviEvent, EviHost, EviMiReply, EviModuleDecl, EviParam, EviStatus, EviStr, EviValue, EviWriter,
};
use evi_sdk::testing::FakeHost;
use std::ffi::c_void;
use std::ptr;

extern "C" {
    /// Written by `export_module!` in lib.rs; linked into this test binary.
    static evi_module: EviModuleDecl;
}

fn decl() -> &'static EviModuleDecl {
    // SAFETY: immutable static data defined in this crate.
    unsafe { &*ptr::addr_of!(evi_module) }
}

fn text(s: &EviStr) -> String {
    // SAFETY: strings of the declaration are static; others are valid for the current call.
    String::from_utf8_lossy(unsafe { s.as_bytes() }).into_owned()
}

fn slice<'a, T>(p: *const T, n: usize) -> &'a [T] {
    if p.is_null() {
        &[]
    } else {
        // SAFETY: the declaration's tables hold `n` entries and are static.
        unsafe { std::slice::from_raw_parts(p, n) }
    }
}

/// A host that lives forever and records what the module raises.
fn fake_host() -> (&'static EviHost, &'static FakeHost) {
    let fake = FakeHost::new();
    // SAFETY: the fake host is leaked, so its table is valid for the rest of the process.
    (unsafe { &*fake.api() }, fake)
}

unsafe extern "C" fn collect(ctx: *mut c_void, bytes: EviStr) {
    // SAFETY: ctx is the &mut Vec<u8> given to `writer`, alive for the call.
    let v = unsafe { &mut *(ctx as *mut Vec<u8>) };
    v.extend_from_slice(unsafe { bytes.as_bytes() });
}

fn writer(v: &mut Vec<u8>) -> EviWriter {
    EviWriter {
        ctx: v as *mut Vec<u8> as *mut c_void,
        write: collect,
    }
}

#[derive(Debug, Default, PartialEq)]
struct MiOut {
    result: Option<String>,
    error: Option<(i32, String)>,
}

unsafe extern "C" fn mi_result(ctx: *mut c_void, json: EviStr) {
    // SAFETY: ctx is the &mut MiOut of `mi`.
    unsafe { &mut *(ctx as *mut MiOut) }.result = Some(text(&json));
}
unsafe extern "C" fn mi_error(ctx: *mut c_void, code: i32, msg: EviStr, _: EviStr) {
    // SAFETY: ctx is the &mut MiOut of `mi`.
    unsafe { &mut *(ctx as *mut MiOut) }.error = Some((code, text(&msg)));
}

fn mi(inst: *mut c_void, cmd: &str, path: &str) -> MiOut {
    let entry = slice(decl().mi_cmds, decl().n_mi_cmds)
        .iter()
        .find(|c| text(&c.name) == cmd)
        .expect("command exported");
    let mut out = MiOut::default();
    let reply = EviMiReply {
        ctx: &mut out as *mut MiOut as *mut c_void,
        result: mi_result,
        error: mi_error,
    };
    let params = evi_sdk::json::json!({ "path_to_file": path }).to_string();
    // SAFETY: inst came from init; every pointer is valid for the call.
    let st = unsafe {
        (entry.handler)(
            inst,
            EviStr::new(cmd.as_bytes()),
            EviStr::new(params.as_bytes()),
            &reply,
        )
    };
    assert_eq!(st, EviStatus::OK);
    out
}

fn str_param(name: &'static str, v: &'static str) -> EviParam {
    EviParam {
        name: EviStr::from_static(name),
        value: EviValue::str(EviStr::from_static(v)),
    }
}

fn init(host: &EviHost, params: &[EviParam]) -> Result<*mut c_void, String> {
    let mut inst = ptr::null_mut();
    let mut err = Vec::new();
    // SAFETY: all pointers are valid for the call.
    let st = unsafe {
        (decl().init)(
            host,
            params.as_ptr(),
            params.len(),
            &mut inst,
            writer(&mut err),
        )
    };
    if st == EviStatus::OK {
        Ok(inst)
    } else {
        Err(String::from_utf8_lossy(&err).into_owned())
    }
}

#[test]
fn through_the_exported_declaration() {
    let d = decl();
    assert_eq!(text(&d.name), "event_flatstore");
    let events: Vec<String> = slice(d.events, d.n_events).iter().map(text).collect();
    assert_eq!(events, ["E_FLATSTORE_ROTATION"]);
    let [t] = slice(d.transports, d.n_transports) else {
        panic!("one transport")
    };
    assert_eq!(
        (text(&t.proto).as_str(), t.flags),
        ("flatstore", evi_sdk::EXPIRES | evi_sdk::ASYNC)
    );

    let (host, raised) = fake_host();
    let err = init(host, &[str_param("file_permissions", "rw")]).expect_err("bad mode");
    assert!(err.contains("file_permissions"), "{err}");
    let inst = init(host, &[str_param("delimiter", ";")]).expect("init");

    let dir = TempDir::new("abi");
    let path = dir.path_str("a.log");
    let mut sock = ptr::null_mut();
    let mut err = Vec::new();
    // SAFETY (this block and below): inst and sockets come from the module; pointers are valid.
    let st = unsafe {
        (t.parse)(
            inst,
            EviStr::from_static("flatstore"),
            EviStr::new(path.as_bytes()),
            &mut sock,
            writer(&mut err),
        )
    };
    assert_eq!(st, EviStatus::OK, "{}", String::from_utf8_lossy(&err));
    let mut printed = Vec::new();
    unsafe { (t.print)(inst, sock, writer(&mut printed)) };
    assert_eq!(printed, path.as_bytes());

    let params = [
        EviParam {
            name: EviStr::from_static("n"),
            value: EviValue::int(7),
        },
        EviParam {
            name: EviStr::EMPTY,
            value: EviValue::str(EviStr::from_static("x;y\nz")),
        },
        EviParam {
            name: EviStr::EMPTY,
            value: EviValue::NULL,
        },
    ];
    let ev = EviEvent {
        id: 1,
        name: EviStr::from_static("E_T"),
        params: params.as_ptr(),
        n_params: params.len(),
        json: EviStr::EMPTY,
        raised_at_us: 0,
        depth: 0,
    };
    let st = unsafe { (t.raise)(inst, sock, &ev, 41, writer(&mut err)) };
    assert_eq!(
        st,
        EviStatus::PENDING,
        "the outcome is known once the line is written"
    );
    assert!(raised.statuses().is_empty());
    let flush = d.flush.expect("flush exported");
    unsafe { flush(inst) };
    assert_eq!(dir.read("a.log"), "E_T;7;x y\\nz;\n");
    assert_eq!(raised.statuses(), [(41, Ok(()))]);

    std::fs::rename(&path, dir.path_str("a.log.1")).expect("rename");
    assert_eq!(
        mi(inst, "evi_flat_rotate", &path).result.as_deref(),
        Some("\"OK\"")
    );
    {
        let log = raised.raised();
        let [(name, p)] = log.as_slice() else {
            panic!("one rotation event: {log:?}")
        };
        assert_eq!(name, "E_FLATSTORE_ROTATION");
        let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_deref().unwrap_or("")).collect();
        assert_eq!(keys, ["timestamp", "reason", "filename", "old_filename"]);
        assert!(
            p[0].1.parse::<i64>().is_ok_and(|t| t > 1_600_000_000),
            "{p:?}"
        );
        assert_eq!(
            (p[1].1.as_str(), p[2].1.as_str(), p[3].1.as_str()),
            ("mi", path.as_str(), path.as_str())
        );
    }
    let miss = mi(inst, "event_flatstore:rotate", &dir.path_str("nope.log"));
    assert_eq!(miss.error, Some((400, "File not found".into())));

    unsafe { (t.raise)(inst, sock, &ev, 42, writer(&mut err)) };
    unsafe { (t.free)(inst, sock) };
    assert_eq!(raised.statuses(), [(41, Ok(())), (42, Ok(()))]);
    unsafe { (d.destroy)(inst) };
    assert_eq!(
        dir.read("a.log"),
        "E_T;7;x y\\nz;\n",
        "free wrote the buffered line"
    );
}

#[test]
fn readme_matches_the_export_table() {
    let readme = include_str!("../README.md");
    evi_sdk::testing::check_readme(decl(), readme).unwrap_or_else(|e| panic!("{e}"));
    for cmd in slice(decl().mi_cmds, decl().n_mi_cmds) {
        let params: Vec<String> = slice(cmd.recipes, cmd.n_recipes)
            .iter()
            .flat_map(|r| {
                slice(r.params, r.n_params)
                    .iter()
                    .map(|p| format!("`{}`", text(p)))
            })
            .collect();
        let params = if params.is_empty() {
            "none".to_string()
        } else {
            params.join(", ")
        };
        let row = format!("| `{}` | {params} |", text(&cmd.name));
        assert!(readme.contains(&row), "README lacks {row}");
    }
    assert!(readme.contains("`E_FLATSTORE_ROTATION`"));
}
