//! Development reload (`evid --dev`): a transport module replaced by its rebuilt file while
//! events flow, with nothing lost and nothing leaked.

use evi_testkit::{fixture_path, module_path, wait_for, Daemon};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// The names of a process's threads (for a failure message).
fn thread_names(dir: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|t| read(&t.path().join("comm")).trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn maps(pid: u32) -> usize {
    read(std::path::Path::new(&format!("/proc/{pid}/maps")))
        .lines()
        .count()
}

#[test]
fn production_never_reloads() {
    let d = Daemon::start("loadmodule \"event_flatstore.so\"");
    let err = d
        .mi("module_reload", json!(["event_flatstore"]))
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("500 Reload failed: modules are reloaded only in development mode (evid --dev)")
    );
}

/// 100 reloads of event_flatstore while a client raises events: every accepted event is in the
/// file, in order; the thread count and the mappings stay flat.
#[test]
fn reloads_under_load_lose_nothing_and_leak_nothing() {
    let mut d = Daemon::start_with_args(
        "loadmodule \"event_flatstore.so\"\nstartup_route { subscribe_event(\"E_X\", \"flatstore:{dir}/x.log\"); }",
        &["--dev"],
    );
    let file = d.dir.join("x.log");
    let pid = d.pid();
    let tasks = format!("/proc/{pid}/task");
    assert_eq!(
        d.mi("module_reload", json!(["event_flatstore"])).ok(),
        Some(json!("OK")),
        "{}",
        d.log()
    );
    let (threads0, maps0) = (count(&tasks), maps(pid));

    let stop = AtomicBool::new(false);
    let accepted = AtomicU64::new(0);
    let (reopened, refused) = (AtomicU64::new(0), std::sync::Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if d.mi("raise_event", json!(["E_X", [i]])).is_ok() {
                    i += 1;
                    accepted.store(i, Ordering::Relaxed);
                }
            }
        });
        // The module's own MI command answers throughout: a reload swaps the module's
        // commands in one step.
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                match d.mi("event_flatstore:reopen", json!([])) {
                    Ok(_) => reopened.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        refused
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(e.to_string());
                        0
                    }
                };
            }
        });
        for n in 0..100 {
            let r = d.mi("module_reload", json!(["event_flatstore"]));
            assert_eq!(
                r.as_ref().ok(),
                Some(&json!("OK")),
                "reload {n}: {r:?}\n{}",
                d.log()
            );
        }
        stop.store(true, Ordering::Relaxed);
    });
    let raised = accepted.load(Ordering::Relaxed);
    assert!(raised > 100, "the client raised only {raised} events");
    let refused = refused.into_inner().unwrap_or_else(|p| p.into_inner());
    assert!(
        refused.is_empty(),
        "event_flatstore:reopen refused: {refused:?}"
    );
    assert!(
        reopened.load(Ordering::Relaxed) > 10,
        "reopen ran {reopened:?} times"
    );
    // A replaced module thread, or an MI connection thread of the client that just stopped,
    // may still be on its way out: a leaked thread is one that stays.
    assert!(
        wait_for(Duration::from_secs(3), || count(&tasks) <= threads0 + 1),
        "threads {threads0} -> {}: {:?}",
        count(&tasks),
        thread_names(&tasks)
    );
    // A library left mapped costs 4+ mappings per reload (400+ here); the allocator may add a
    // few dozen heap segments under a busy machine.
    assert!(maps(pid) <= maps0 + 50, "mappings {maps0} -> {}", maps(pid));
    assert!(!d.log().contains("still mapped"), "{}", d.log());
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    let text = read(&file);
    let got: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("E_X,")?.parse().ok())
        .collect();
    assert_eq!(
        got,
        (0..raised).collect::<Vec<_>>(),
        "lines in the file (of {raised} raised)"
    );
}

/// A rebuilt file that fails the checks (it declares another name) is refused; the running
/// version keeps delivering.
#[test]
fn a_bad_new_version_keeps_the_old_one_running() {
    let (d, err, file, dir) = reload_into("fixture_wrong_name");
    assert!(
        err.starts_with("500 Reload failed: ")
            && err.contains("declares the name \"event_somebody_else\""),
        "{err}"
    );
    assert_old_version_delivers(&d, &file);

    // The watcher picks up a good rebuild by itself.
    std::fs::copy(
        module_path("event_flatstore"),
        dir.join("libevent_flatstore.so"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wait_for(Duration::from_secs(15), || d
            .log()
            .contains("module event_flatstore reloaded")),
        "{}",
        d.log()
    );
    d.mi("raise_event", json!(["E_X", ["again"]]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wait_for(Duration::from_secs(5), || read(&file)
            == "E_X,before\nE_X,after\nE_X,again\n"),
        "{:?}",
        read(&file)
    );
}

/// event_flatstore loaded under `--dev` from a copy in its own directory, with `E_X` subscribed
/// to `x.log`, and one event already written; then the copy is overwritten by `fixture` and
/// `module_reload` is asked for. Returns the daemon, the MI error, the flatstore file and the
/// module's directory (kept until the test ends).
fn reload_into(fixture: &str) -> (Daemon, String, std::path::PathBuf, evi_testkit::TempDir) {
    let dir = evi_testkit::TempDir::new("reload");
    let so = dir.join("libevent_flatstore.so");
    std::fs::copy(module_path("event_flatstore"), &so).unwrap_or_else(|e| panic!("{e}"));
    let d = Daemon::start_with_args(
        &format!(
            "loadmodule \"{}\"\nstartup_route {{ subscribe_event(\"E_X\", \"flatstore:{{dir}}/x.log\"); }}",
            so.display()
        ),
        &["--dev"],
    );
    let file = d.dir.join("x.log");
    d.mi("raise_event", json!(["E_X", ["before"]]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wait_for(Duration::from_secs(5), || read(&file) == "E_X,before\n"),
        "{:?}",
        read(&file)
    );
    std::fs::copy(fixture_path(fixture), &so).unwrap_or_else(|e| panic!("{e}"));
    let err = d
        .mi("module_reload", json!(["event_flatstore"]))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    (d, err, file, dir)
}

/// After a refused reload the subscriber is still listed and still gets the next event, in the
/// same file, after the line written before.
fn assert_old_version_delivers(d: &Daemon, file: &std::path::Path) {
    let subs = d
        .mi("subscribers_list", json!(["E_X"]))
        .unwrap_or_else(|e| panic!("{e}"));
    let sockets: Vec<&str> = subs["Event"]["Subscribers"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["socket"].as_str()).collect())
        .unwrap_or_default();
    let want = format!("flatstore:{}", file.display());
    assert_eq!(sockets, [want.as_str()], "{subs}");
    d.mi("raise_event", json!(["E_X", ["after"]]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wait_for(Duration::from_secs(5), || read(file)
            == "E_X,before\nE_X,after\n"),
        "{:?}\n{}",
        read(file),
        d.log()
    );
}

/// A rebuild for another ABI major is refused by the loader's checks, before the running
/// instance is touched.
#[test]
fn a_new_version_for_another_abi_is_refused_and_the_old_one_keeps_delivering() {
    let (d, err, file, dir) = reload_into("fixture_abi_major");
    // It names the file that was rebuilt, not the private copy the reload loaded it from.
    let so = dir.join("libevent_flatstore.so");
    assert!(err.contains(&so.display().to_string()), "{err}");
    assert!(
        err.starts_with("500 Reload failed: ")
            && err.contains("module event_flatstore was built for ABI 2.0, this evid speaks ABI 1.3; rebuild the module"),
        "{err}"
    );
    assert_old_version_delivers(&d, &file);
}

/// A rebuild that passes every check but whose init fails: the old instance was already
/// destroyed, so the old library is started again with the same subscriptions.
#[test]
fn a_new_version_whose_init_fails_gives_way_to_the_old_one() {
    let (d, err, file, _dir) = reload_into("fixture_flatstore_init_fails");
    assert!(
        err.starts_with("500 Reload failed: the new version did not start (")
            && err.contains("cannot open /nonexistent/flatstore.conf: No such file or directory")
            && err.ends_with("); the old version keeps running"),
        "{err}"
    );
    assert_old_version_delivers(&d, &file);
}
