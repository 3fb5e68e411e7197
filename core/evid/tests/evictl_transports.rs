//! `evictl` over mi_datagram (UDP and unix) and mi_fifo: every command against the real daemon,
//! the errors a user sees when nothing answers, and the shell completions.

use evi_testkit::{evictl, evictl_at, evictl_bin, free_port, wait_for, Daemon, TempDir};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// E_X is published by the startup route's subscription; `watch` needs event_datagram.
const EVENTS: &str = "loadmodule \"event_flatstore.so\"\nloadmodule \"event_datagram.so\"\n\
    startup_route { subscribe_event(\"E_X\", \"flatstore:{dir}/boot.log\"); }";

/// Run `evictl` and require exit 0; its stdout.
fn ok(url: &str, args: &[&str]) -> String {
    let (code, out, err) = evictl_at(url, args);
    assert_eq!(code, 0, "evictl --url {url} {args:?}: {err}");
    out
}

/// The sockets subscribed to `event`, asked over mi_http.
fn dir(d: &Daemon) -> String {
    d.dir.path().display().to_string()
}

/// Every evictl command over `url`, checked by what it prints and what it changes.
fn every_command(d: &Daemon, url: &str) {
    // events: the same lines as over mi_http.
    let out = ok(url, &["events"]);
    assert!(out.lines().any(|l| l.ends_with("  E_X")), "{out}");
    assert_eq!(out, ok(&d.mi_url, &["events"]));

    // subscribe / subscribers / raise into a file / unsubscribe.
    let sock = format!("flatstore:{}/x.log", dir(d));
    let out = ok(url, &["subscribe", "E_X", &sock, "--expire", "60"]);
    assert_eq!(out.trim(), format!("subscribed {sock} to E_X for 60 s"));
    let out = ok(url, &["subscribers", "E_X"]);
    assert!(out.starts_with("E_X\n"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("  {sock}  expire 60, ttl "))),
        "{out}"
    );
    let out = ok(url, &["raise", "E_X", "n=3", "s=abc"]);
    assert_eq!(out.trim(), "raised E_X");
    let log = d.dir.join("x.log");
    assert!(
        wait_for(WAIT, || std::fs::read_to_string(&log)
            .is_ok_and(|s| !s.is_empty())),
        "nothing written to {}",
        log.display()
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap_or_default(),
        "E_X,3,abc\n"
    );
    let out = ok(url, &["unsubscribe", "E_X", &sock]);
    assert_eq!(out.trim(), format!("unsubscribed {sock} from E_X"));
    assert!(!ok(url, &["subscribers", "E_X"]).contains(&sock));
    assert!(!d.sockets("E_X").contains(&sock));

    // mi: any command, with a JSON argument; --json prints the result as one line.
    let out = ok(url, &["mi", "get_statistics", r#"["evi_events:E_X"]"#]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v, json!({"evi_events:E_X": 1}));
    let out = ok(url, &["--json", "mi", "version"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).ok(),
        d.mi("version", json!([])).ok()
    );
    // stats.
    let out = ok(url, &["stats", "evi_events:E_X"]);
    assert_eq!(out.trim(), "evi_events:E_X 1");

    // A JSON-RPC error comes back as over HTTP.
    let (code, out, err) = evictl_at(url, &["raise", "E_NOPE"]);
    assert_eq!(
        (code, out.as_str(), err.trim()),
        (1, "", "evictl: raise_event: 404 Event not registered")
    );

    watch(d, url);
}

/// `evictl watch` over `url`: subscribes, prints a raise, unsubscribes on SIGINT.
fn watch(d: &Daemon, url: &str) {
    let mut child = Command::new(evictl_bin())
        .args(["--url", url, "watch", "E_X", "--expire", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let (tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut watcher = None;
    let subscribed = wait_for(WAIT, || {
        watcher = d.sockets("E_X").into_iter().find(|s| s.starts_with("udp:"));
        watcher.is_some()
    });
    if !subscribed {
        let _ = child.kill();
        let out = child.wait_with_output();
        let err = out.map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
        panic!("evictl watch over {url} did not subscribe: {err:?}");
    }
    assert_eq!(ok(url, &["raise", "E_X", "a=1"]).trim(), "raised E_X");
    let line = lines.recv_timeout(WAIT);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut status = None;
    wait_for(WAIT, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("evictl watch did not exit on SIGINT")
    });
    let _ = reader.join();
    assert_eq!(
        line.ok().as_deref(),
        Some(r#"{"jsonrpc":"2.0","method":"E_X","params":{"a":1}}"#)
    );
    assert_eq!(status.code(), Some(0));
    let watcher = watcher.unwrap_or_default();
    assert!(!d.sockets("E_X").contains(&watcher), "still subscribed");
}

#[test]
fn evictl_over_udp() {
    let port = free_port();
    let d = Daemon::start(&format!(
        "loadmodule \"mi_datagram.so\"\n\
         modparam(\"mi_datagram\", \"socket_name\", \"udp:127.0.0.1:{port}\")\n{EVENTS}"
    ));
    every_command(&d, &format!("udp:127.0.0.1:{port}"));
}

#[test]
fn evictl_over_unix() {
    let d = Daemon::start(&format!(
        "loadmodule \"mi_datagram.so\"\n\
         modparam(\"mi_datagram\", \"socket_name\", \"{{dir}}/mi.sock\")\n{EVENTS}"
    ));
    every_command(&d, &format!("unix:{}/mi.sock", dir(&d)));
}

#[test]
fn evictl_over_fifo() {
    let d = Daemon::start(&format!(
        "loadmodule \"mi_fifo.so\"\n\
         modparam(\"mi_fifo\", \"fifo_name\", \"{{dir}}/evid_fifo\")\n\
         modparam(\"mi_fifo\", \"fifo_mode\", 0600)\n\
         modparam(\"mi_fifo\", \"reply_dir\", \"{{dir}}/\")\n{EVENTS}"
    ));
    let dir = dir(&d);
    every_command(&d, &format!("fifo:{dir}/evid_fifo?reply_dir={dir}/"));
    // No reply FIFO is left behind.
    let left: Vec<String> = std::fs::read_dir(&dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("evictl_"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn evictl_over_fifo_with_the_default_reply_dir() {
    let d = Daemon::start(&format!(
        "loadmodule \"mi_fifo.so\"\n\
         modparam(\"mi_fifo\", \"fifo_name\", \"{{dir}}/evid_fifo\")\n{EVENTS}"
    ));
    let url = format!("fifo:{}/evid_fifo", dir(&d));
    assert_eq!(ok(&url, &["events"]), ok(&d.mi_url, &["events"]));
    assert_eq!(ok(&url, &["raise", "E_X"]).trim(), "raised E_X");
}

/// What a user sees when nothing answers at `url`: exit 1, nothing on stdout, one line on
/// stderr that names the URL and says what to check.
fn assert_human_error(url: &str, args: &[&str], starts: &str, module: &str) {
    let t = Instant::now();
    let (code, out, err) = evictl_at(url, args);
    assert_eq!((code, out.as_str()), (1, ""), "{url} {args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with(&format!("evictl: {starts}")), "{err}");
    assert!(err.contains(url), "{err}");
    assert!(
        err.contains(&format!("is evid running with {module} loaded")),
        "{err}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "{args:?} took {:?}",
        t.elapsed()
    );
}

const COMMANDS: [&[&str]; 4] = [
    &["events"],
    &["raise", "E_X", "a=1"],
    &["mi", "version"],
    &["watch", "E_X"],
];

#[test]
fn udp_errors_when_nothing_answers() {
    // Nothing bound: the port is closed, said at once.
    let url = format!("udp:127.0.0.1:{}", free_port());
    for args in COMMANDS {
        assert_human_error(
            &url,
            args,
            &format!("cannot reach evid at {url}: "),
            "mi_datagram",
        );
    }
    // A peer that never answers: the timeout.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let url = format!(
        "udp:{}",
        silent.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    assert_human_error(
        &url,
        &["--timeout", "1", "events"],
        &format!("no answer from evid at {url} within 1 s "),
        "mi_datagram",
    );
}

#[test]
fn unix_errors_when_nothing_answers() {
    let tmp = TempDir::new("evictl-unix");
    let url = format!("unix:{}", tmp.join("none.sock").display());
    for args in COMMANDS {
        assert_human_error(
            &url,
            args,
            &format!("cannot reach evid at {url}: "),
            "mi_datagram",
        );
    }
    let path = tmp.join("silent.sock");
    let _silent = UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("{e}"));
    let url = format!("unix:{}", path.display());
    assert_human_error(
        &url,
        &["--timeout", "1", "events"],
        &format!("no answer from evid at {url} within 1 s "),
        "mi_datagram",
    );
}

fn mkfifo(p: &Path) {
    let c =
        std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap_or_else(|e| panic!("{e}"));
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn fifo_errors_when_nothing_answers() {
    let tmp = TempDir::new("evictl-fifo");
    let url = format!("fifo:{}", tmp.join("none").display());
    for args in COMMANDS {
        assert_human_error(
            &url,
            args,
            &format!("cannot reach evid at {url}: "),
            "mi_fifo",
        );
    }
    // A FIFO left behind by a daemon that is gone: nobody reads it.
    let stale = tmp.join("stale");
    mkfifo(&stale);
    let url = format!("fifo:{}", stale.display());
    assert_human_error(
        &url,
        &["events"],
        &format!("cannot reach evid at {url}: nobody reads the FIFO "),
        "mi_fifo",
    );
    // Read, never answered (e.g. a reply_dir that is not the daemon's): the timeout.
    let silent = tmp.join("silent");
    mkfifo(&silent);
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&silent)
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!(
        "fifo:{}?reply_dir={}",
        silent.display(),
        tmp.path().display()
    );
    assert_human_error(
        &url,
        &["--timeout", "1", "events"],
        &format!("no answer from evid at {url} within 1 s "),
        "mi_fifo",
    );
    // A regular file is never written to.
    let file = tmp.join("file");
    std::fs::write(&file, "keep").unwrap_or_else(|e| panic!("{e}"));
    let url = format!("fifo:{}", file.display());
    assert_human_error(
        &url,
        &["events"],
        &format!(
            "cannot reach evid at {url}: {} is not a FIFO ",
            file.display()
        ),
        "mi_fifo",
    );
    assert_eq!(std::fs::read_to_string(&file).ok().as_deref(), Some("keep"));
}

#[test]
fn a_bad_url_is_a_usage_error() {
    for url in ["ftp://x", "udp:127.0.0.1", "unix:", "fifo:"] {
        let (code, out, err) = evictl_at(url, &["events"]);
        assert_eq!((code, out.as_str()), (2, ""), "{url}");
        assert!(
            err.starts_with("evictl: ") && err.contains("usage: evictl"),
            "{url}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn evictl_completions_print_a_script() {
    let (code, bash, err) = evictl(&["completions", "bash"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        bash.contains("_evictl()") && bash.contains("complete "),
        "{bash}"
    );
    for word in [
        "events",
        "subscribers",
        "subscribe",
        "unsubscribe",
        "raise",
        "watch",
        "stats",
        "reload",
        "mi",
        "completions",
        "--url",
        "--json",
        "--timeout",
        "--expire",
    ] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    let (code, zsh, _) = evictl(&["completions", "zsh"]);
    assert_eq!(code, 0);
    assert!(zsh.starts_with("#compdef evictl"), "{zsh}");
    assert!(zsh.contains("subscribers") && zsh.contains("--url"));
    let (code, fish, _) = evictl(&["completions", "fish"]);
    assert_eq!(code, 0);
    assert!(fish.contains("complete -c evictl") && fish.contains("subscribers"));
    // An unknown shell is a usage error; completions need no daemon and no valid $EVID_MI_URL.
    let (code, out, err) = evictl(&["completions", "tcsh"]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    let out = Command::new(evictl_bin())
        .args(["completions", "bash"])
        .env("EVID_MI_URL", "nonsense")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success());
}

#[test]
fn evictl_help_shows_every_url_form() {
    let (code, out, _) = evictl(&["--help"]);
    assert_eq!(code, 0);
    for form in [
        "http://HOST:PORT/PATH",
        "udp:HOST:PORT",
        "unix:PATH",
        "fifo:PATH[?reply_dir=DIR]",
        "completions SHELL",
        "--timeout SECS",
    ] {
        assert!(out.contains(form), "--help lacks {form}:\n{out}");
    }
}
