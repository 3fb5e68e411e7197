//! Start-up as a user meets it: `-V`, `-c`, `--describe-module`, and every loader and config
//! error, each named with FILE:LINE:COL, the file and the module, and evid exiting non-zero
//! without crashing.

use evi_testkit::{build_dir, check_config, evid_bin, fixture_path, module_path, run_to_exit};
use std::process::Command;

fn load(fixture: &str) -> String {
    format!("loadmodule \"{}\"\n", fixture_path(fixture).display())
}

#[test]
fn version_names_the_abi() {
    let out = Command::new(evid_bin())
        .arg("-V")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("evid 0.1.0 (") && text.trim_end().ends_with("abi 1.3"),
        "{text}"
    );
}

#[test]
fn the_default_config_is_valid() {
    let cfg = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/evid.cfg");
    let out = Command::new(evid_bin())
        .arg("-c")
        .arg("-f")
        .arg(&cfg)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("is valid"));
}

/// Each broken fixture: `evid -c` exits 1 with one error at the loadmodule line naming the file.
#[test]
fn broken_modules_are_refused_before_any_module_code_runs() {
    let cases = [
        ("fixture_no_symbol", "not an evid module (no `evi_module` symbol"),
        ("fixture_bad_magic", "bad magic 0x0bad0bad0bad0bad"),
        ("fixture_abi_major", "was built for ABI 2.0, this evid speaks ABI 1.3; rebuild the module"),
        ("fixture_abi_minor", "needs ABI 1.4, newer than this evid's 1.3"),
        ("fixture_layout", "declares ABI 1.3 but its layout of EviTransport differs from that version's"),
        ("fixture_wrong_name", "module declares the name \"event_somebody_else\" but the file is named for \"fixture_wrong_name\""),
    ];
    for (fixture, msg) in cases {
        let (code, _, err, path) = check_config(
            "broken.cfg",
            &format!("# a broken module\n{}", load(fixture)),
        );
        assert_eq!(code, 1, "{fixture}: {err}");
        let file = fixture_path(fixture).display().to_string();
        let want = format!("{}:2:1: {file}: ", path.display());
        assert!(
            err.starts_with(&want),
            "{fixture}: expected {want:?} in:\n{err}"
        );
        assert!(err.contains(msg), "{fixture}: expected {msg:?} in:\n{err}");
        assert!(err.contains("evid: 1 error in"), "{fixture}: {err}");
    }
}

#[test]
fn modparam_errors_are_all_reported_in_one_run() {
    let cfg = format!(
        "{}modparam(\"fixture_params\", \"colour\", \"red\")\n\
         modparam(\"fixture_params\", \"level\", \"high\")\n\
         modparam(\"fixture_params\", \"level\", 11)\n\
         modparam(\"fixture_params\", \"name\", 3)\n\
         modparam(\"fixture_params\", \"verbose\", \"maybe\")\n\
         modparam(\"no_such_module\", \"x\", 1)\n{}",
        load("fixture_params"),
        load("fixture_params")
    );
    let (code, _, err, path) = check_config("params.cfg", &cfg);
    assert_eq!(code, 1, "{err}");
    let p = path.display();
    for want in [
        format!("{p}:2:1: module fixture_params has no param \"colour\" (it has: level, name, verbose)"),
        format!("{p}:3:1: fixture_params.level is an int, got the string \"high\" (write it without quotes)"),
        format!("{p}:4:1: fixture_params.level = 11 is out of range 1..=10"),
        format!("{p}:5:1: fixture_params.name is a string, got the int 3 (write it in quotes)"),
        format!("{p}:6:1: fixture_params.verbose is a bool: use yes/no, true/false or 1/0, not \"maybe\""),
        format!("{p}:7:1: modparam for module \"no_such_module\", which is not loaded"),
        format!("{p}:8:1: module fixture_params is already loaded (at {p}:1)"),
    ] {
        assert!(err.contains(&want), "expected {want:?} in:\n{err}");
    }
    assert!(err.contains("evid: 7 errors in"), "{err}");
}

#[test]
fn good_modparams_pass_the_check() {
    let cfg = format!(
        "{}modparam(\"fixture_params\", \"level\", 10)\nmodparam(\"fixture_params\", \"verbose\", yes)\n",
        load("fixture_params")
    );
    let (code, out, err, _) = check_config("ok.cfg", &cfg);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is valid"));
}

#[test]
fn init_failures_stop_start_up_with_the_module_named() {
    for (fixture, msg) in [
        ("fixture_init_fails", "module fixture_init_fails: init failed: cannot open /nonexistent/device: No such file or directory"),
        ("fixture_init_panics", "module fixture_init_panics: init failed: init panicked: fixture init exploded"),
    ] {
        let (code, out) = run_to_exit(&format!("log_level = 3\n{}", load(fixture)));
        assert_eq!(code, 1, "{fixture}: {out}");
        assert!(out.contains(&format!("evid.cfg:2:1: {msg}")), "{fixture}: expected {msg:?} in:\n{out}");
    }
}

#[test]
fn missing_modules_list_where_evid_looked() {
    let (code, _, err, path) = check_config("missing.cfg", "loadmodule \"event_nope.so\"\n");
    assert_eq!(code, 1);
    let dir = build_dir().display().to_string();
    assert!(err.starts_with(&format!("{}:1:1: module event_nope not found; tried {dir}/event_nope.so, {dir}/libevent_nope.so, {dir}/event_nope/event_nope.so", path.display())), "{err}");
}

#[test]
fn describe_module_reads_the_declaration() {
    let out = Command::new(evid_bin())
        .arg("--describe-module")
        .arg(module_path("event_flatstore"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let version = format!("version:   {} ({profile})", env!("CARGO_PKG_VERSION"));
    for want in [
        "module:    event_flatstore",
        &version,
        "abi:       1.3",
        "protos:    flatstore:",
        "events:    E_FLATSTORE_ROTATION",
        "  max_open_sockets (int) default 100 range 1..=65535: ",
        "  evi_flat_rotate [path_to_file]: ",
    ] {
        assert!(text.contains(want), "expected {want:?} in:\n{text}");
    }
}

#[test]
fn config_syntax_errors_are_all_reported() {
    let cfg = "log_level = 3\nloadmodule \"event_flatstore.so\"\nmodparam(\"event_flatstore\" \"delimiter\", \";\")\nnosuch_global = 1\nstartup_route {\n    subscribe_event(\"E_X\";\n}\n";
    let (code, _, err, path) = check_config("syntax.cfg", cfg);
    assert_eq!(code, 1, "{err}");
    let p = path.display();
    assert!(err.contains(&format!("{p}:3:")), "{err}");
    assert!(err.contains(&format!("{p}:6:")), "{err}");
}
