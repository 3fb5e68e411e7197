//! event_flatstore loaded by the real evid: lines in real files, as a user would read them.

use evi_testkit::{golden, wait_for, Daemon, UdpReceiver};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn raise(d: &Daemon, params: Value) {
    assert_eq!(
        d.mi("raise_event", params.clone()).ok(),
        Some(json!("OK")),
        "{params}"
    );
}

/// The golden raises of ../shared/conformance (samples 0-4; 2 and 3 have no params).
fn raise_golden(d: &Daemon, with_mi_array: bool) {
    raise(
        d,
        json!([
            "E_GOLDEN",
            r#"{"id":42,"user":"alice","msg":"hello world"}"#
        ]),
    );
    raise(
        d,
        json!([
            "E_GOLDEN",
            r#"{"id":-7,"user":"bob \"the\" builder","msg":"a,b;c"}"#
        ]),
    );
    raise(d, json!(["E_GOLDEN"]));
    raise(d, json!(["E_GOLDEN"]));
    if with_mi_array {
        raise(d, json!({"event": "E_GOLDEN", "params": ["x", "1"]}));
    }
}

fn golden_run(modparams: &str, with_mi_array: bool) -> String {
    let mut d = Daemon::start(&format!(
        "loadmodule \"event_flatstore.so\"\n{modparams}\nstartup_route {{ subscribe_event(\"E_GOLDEN\", \"flatstore:{{dir}}/golden.log\"); }}"
    ));
    raise_golden(&d, with_mi_array);
    let path = d.dir.join("golden.log");
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    read(&path)
}

#[test]
fn lines_match_opensips_golden_files() {
    assert_eq!(
        golden_run("", true),
        String::from_utf8_lossy(&golden("event_flatstore_default.log"))
    );
    assert_eq!(
        golden_run("modparam(\"event_flatstore\", \"delimiter\", \";\")", false),
        String::from_utf8_lossy(&golden("event_flatstore_delim_semicolon.log"))
    );
    // OpenSIPS never applied escape_delimiter (it wrote "a b;c"); evid does.
    let want = String::from_utf8_lossy(&golden("event_flatstore_delim_comma_escape_pipe.log"))
        .replace("a b;c", "a|b;c");
    assert_eq!(
        golden_run("modparam(\"event_flatstore\", \"delimiter\", \",\")\nmodparam(\"event_flatstore\", \"escape_delimiter\", \"|\")", true),
        want
    );
}

#[test]
fn sigterm_and_sigint_flush_everything_accepted() {
    for sig in [libc_sigterm(), libc_sigint()] {
        let mut d = Daemon::start("loadmodule \"event_flatstore.so\"\nstartup_route { subscribe_event(\"E_X\", \"flatstore:{dir}/x.log\"); }");
        for i in 0..1000 {
            raise(&d, json!(["E_X", [i, "payload"]]));
        }
        let path = d.dir.join("x.log");
        let (status, log) = d.stop_with(sig);
        assert!(status.success(), "{log}");
        let text = read(&path);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 1000, "signal {sig}");
        assert_eq!(lines[999], "E_X,999,payload");
        assert!(log.contains("stopped"), "{log}");
    }
}

fn libc_sigterm() -> i32 {
    15
}

fn libc_sigint() -> i32 {
    2
}

#[test]
fn newlines_never_break_a_record_and_values_are_not_mutated_for_others() {
    let mut d = Daemon::start("loadmodule \"event_flatstore.so\"\nloadmodule \"event_datagram.so\"\nstartup_route { subscribe_event(\"E_X\", \"flatstore:{dir}/x.log\"); }");
    let rx = UdpReceiver::new();
    d.mi("event_subscribe", json!(["E_X", rx.uri()]))
        .unwrap_or_else(|e| panic!("{e}"));
    raise(&d, json!(["E_X", r#"{"msg":"line1\nline2,x\r"}"#]));
    assert_eq!(
        rx.recv_n(1, T),
        vec![br#"{"jsonrpc":"2.0","method":"E_X","params":{"msg":"line1\nline2,x\r"}}"#.to_vec()]
    );
    let path = d.dir.join("x.log");
    assert!(d.stop().0.success());
    assert_eq!(read(&path), "E_X,line1\\nline2 x\\r\n");
}

#[test]
fn concurrent_raisers_never_interleave_lines() {
    let mut d = Daemon::start("loadmodule \"event_flatstore.so\"\nstartup_route { subscribe_event(\"E_X\", \"flatstore:{dir}/x.log\"); }");
    std::thread::scope(|s| {
        for t in 0..4 {
            let d = &d;
            s.spawn(move || {
                for i in 0..250 {
                    raise(d, json!(["E_X", [format!("t{t}"), i, "z".repeat(200)]]));
                }
            });
        }
    });
    let path = d.dir.join("x.log");
    assert!(d.stop().0.success());
    let text = read(&path);
    assert_eq!(text.lines().count(), 1000);
    let z = "z".repeat(200);
    for line in text.lines() {
        let f: Vec<_> = line.split(',').collect();
        assert!(
            f.len() == 4 && f[0] == "E_X" && f[1].starts_with('t') && f[3] == z,
            "torn line {line:?}"
        );
    }
    for t in 0..4 {
        let seq: Vec<i64> = text
            .lines()
            .filter(|l| l.starts_with(&format!("E_X,t{t},")))
            .filter_map(|l| l.split(',').nth(2)?.parse().ok())
            .collect();
        assert_eq!(seq, (0..250).collect::<Vec<_>>(), "order of raiser {t}");
    }
}

#[test]
fn rotate_reopens_and_announces_itself() {
    let d = Daemon::start("loadmodule \"event_flatstore.so\"\nloadmodule \"event_datagram.so\"\nstartup_route { subscribe_event(\"E_X\", \"flatstore:{dir}/x.log\"); }");
    let rx = UdpReceiver::new();
    d.mi("event_subscribe", json!(["E_FLATSTORE_ROTATION", rx.uri()]))
        .unwrap_or_else(|e| panic!("{e}"));
    let path = d.dir.join("x.log");
    let moved = d.dir.join("x.log.1");
    raise(&d, json!(["E_X", ["before"]]));
    assert!(wait_for(T, || read(&path) == "E_X,before\n"));
    std::fs::rename(&path, &moved).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        d.mi("evi_flat_rotate", json!([path.display().to_string()]))
            .ok(),
        Some(json!("OK"))
    );
    raise(&d, json!(["E_X", ["after"]]));
    assert!(
        wait_for(T, || read(&path) == "E_X,after\n"),
        "{:?}",
        read(&path)
    );
    assert_eq!(read(&moved), "E_X,before\n");
    let ev: Value = rx
        .recv_n(1, T)
        .first()
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or_default();
    assert_eq!(ev["method"], "E_FLATSTORE_ROTATION");
    assert_eq!(ev["params"]["reason"], "mi");
    assert_eq!(ev["params"]["filename"], path.display().to_string());
    assert!(
        ev["params"]["timestamp"]
            .as_str()
            .is_some_and(|t| t.parse::<i64>().is_ok()),
        "{ev}"
    );
    // The 4.x name works too; an unknown path is OpenSIPS's 400.
    assert_eq!(
        d.mi(
            "event_flatstore:rotate",
            json!([path.display().to_string()])
        )
        .ok(),
        Some(json!("OK"))
    );
    assert_eq!(
        d.mi("evi_flat_rotate", json!(["/no/such.log"]))
            .err()
            .map(|e| e.to_string()),
        Some("400 File not found".to_string())
    );
}

#[test]
fn permissions_and_open_file_limit_apply() {
    let d = Daemon::start(
        "loadmodule \"event_flatstore.so\"\nmodparam(\"event_flatstore\", \"file_permissions\", \"600\")\nmodparam(\"event_flatstore\", \"max_open_sockets\", 1)\nstartup_route { subscribe_event(\"E_X\", \"flatstore:{dir}/a.log\"); }",
    );
    let mode = std::fs::metadata(d.dir.join("a.log"))
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0);
    assert_eq!(mode, 0o600);
    // The same file again is fine (shared); a second file is over the limit.
    assert!(d
        .mi(
            "event_subscribe",
            json!([
                "E_FLATSTORE_ROTATION",
                format!("flatstore:{}", d.dir.join("a.log").display())
            ])
        )
        .is_ok());
    let err = d
        .mi(
            "event_subscribe",
            json!([
                "E_X",
                format!("flatstore:{}", d.dir.join("b.log").display())
            ]),
        )
        .err();
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        text.starts_with("400 Bad parameter value: flatstore:")
            && text.contains("max_open_sockets"),
        "{text}"
    );
}

#[test]
fn sighup_reopens_files_after_logrotate() {
    let d = Daemon::start("loadmodule \"event_flatstore.so\"\nstartup_route { subscribe_event(\"E_X\", \"flatstore:{dir}/x.log\"); }");
    let path = d.dir.join("x.log");
    let moved = d.dir.join("x.log.1");
    raise(&d, json!(["E_X", ["before"]]));
    assert!(wait_for(T, || read(&path) == "E_X,before\n"));
    std::fs::rename(&path, &moved).unwrap_or_else(|e| panic!("{e}"));
    // SAFETY: signalling the daemon this test started.
    unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
    assert!(
        wait_for(T, || d.log().contains("event_flatstore:reopen")),
        "{}",
        d.log()
    );
    raise(&d, json!(["E_X", ["after"]]));
    assert!(
        wait_for(T, || read(&path) == "E_X,after\n"),
        "{:?}\n{}",
        read(&path),
        d.log()
    );
    assert_eq!(read(&moved), "E_X,before\n");
}

/// A small filesystem (tmpfs) for the disk-full test, unmounted on drop.
struct SmallFs(std::path::PathBuf);

impl SmallFs {
    /// Mount `bytes` of tmpfs at `dir`. Needs root (CI runs as root); elsewhere this test
    /// cannot make a filesystem fill up, and says so by failing.
    fn mount(dir: &Path, bytes: usize) -> SmallFs {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
        assert!(
            out.status.success(),
            "mounting a {bytes}-byte tmpfs at {} failed (this test needs root): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        SmallFs(dir.to_path_buf())
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The counters of E_X's subscriber on the small filesystem.
fn sub_stats(d: &Daemon) -> Value {
    let s = d
        .mi("subscriber_stats", json!(["E_X"]))
        .unwrap_or_else(|e| panic!("{e}"));
    s["Subscribers"]
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|x| x["socket"].as_str().is_some_and(|k| k.contains("/small/")))
        })
        .cloned()
        .unwrap_or_default()
}

/// The disk fills up under load: the lines that do not fit fail (counted, with the error), the
/// file never holds a torn line, and once space is freed the lines come again.
#[test]
fn a_full_disk_fails_lines_cleanly_and_recovers_when_space_frees() {
    let d = Daemon::start(
        "loadmodule \"event_flatstore.so\"\nstartup_route { subscribe_event(\"E_X\", \"flatstore:{dir}/big.log\"); }",
    );
    let small = d.dir.join("small");
    let fs = SmallFs::mount(&small, 64 * 1024);
    let socket = format!("flatstore:{}", small.join("x.log").display());
    d.mi("event_subscribe", json!(["E_X", socket, 3600]))
        .unwrap_or_else(|e| panic!("{e}\n{}", d.log()));
    let filler = small.join("filler");
    std::fs::write(&filler, vec![b'f'; 32 * 1024]).unwrap_or_else(|e| panic!("{e}"));
    let path = small.join("x.log");
    let value = "v".repeat(200);
    let mut raised = 0;
    while raised < 400 {
        raise(&d, json!(["E_X", [raised, value]]));
        raised += 1;
    }
    let settled = |d: &Daemon| {
        let s = sub_stats(d);
        s["delivered"].as_u64().unwrap_or(0) + s["failed"].as_u64().unwrap_or(0)
    };
    // Every line has its outcome, except at most one that the kernel wrote in part when the
    // disk filled: its end is kept and written once there is room, never dropped.
    assert!(
        wait_for(T, || settled(&d) + 1 >= raised),
        "{}",
        sub_stats(&d)
    );
    let s = sub_stats(&d);
    assert!(s["failed"].as_u64() > Some(0), "the disk never filled: {s}");
    assert!(
        s["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("No space left on device")),
        "{s}"
    );
    let check_file = |delivered: u64, torn_allowed: bool| {
        let text = read(&path);
        let (whole, rest) = text.split_at(text.rfind('\n').map_or(0, |i| i + 1));
        assert!(rest.is_empty() || torn_allowed, "a torn last line {rest:?}");
        for l in whole.lines() {
            let v: Vec<&str> = l.split(',').collect();
            assert!(
                v.len() == 3 && v[0] == "E_X" && v[2] == value,
                "torn line {l:?}"
            );
        }
        assert_eq!(whole.lines().count() as u64, delivered);
    };
    check_file(s["delivered"].as_u64().unwrap_or(0), settled(&d) < raised);

    // Space comes back: after the back-off the next lines are written again.
    std::fs::remove_file(&filler).unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_millis(200));
    let delivered_before = s["delivered"].as_u64().unwrap_or(0);
    for _ in 0..20 {
        raise(&d, json!(["E_X", [raised, value]]));
        raised += 1;
    }
    assert!(wait_for(T, || settled(&d) == raised), "{}", sub_stats(&d));
    let s = sub_stats(&d);
    assert!(
        s["delivered"].as_u64().unwrap_or(0) >= delivered_before + 19,
        "no recovery: {s}"
    );
    check_file(s["delivered"].as_u64().unwrap_or(0), false);
    drop(d);
    drop(fs);
}
