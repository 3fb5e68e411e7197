//! The run corpus: every statement and variable kind of the config language, run by the real
//! daemon. Each `tests/run_corpus/NN_name.cfg` subscribes `flatstore:{dir}/out.log` to `E_OUT`
//! and finally raises `E_OUT` with the value `E_DONE`; then
//! * `NN_name.out` is exactly the flatstore file,
//! * `NN_name.log` is exactly the script's log lines (`xlog`, `log` and the interpreter's
//!   warnings), one per line as `LEVEL text`, with the daemon's dir as `{dir}` and its pid as
//!   `{pid}`.
//!
//! `EVID_BLESS=1` rewrites the expected files from the current output (review the diff).

use evi_testkit::{wait_for, Daemon};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/run_corpus")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// The script's lines of a daemon log as `LEVEL text`.
fn script_lines(log: &str) -> String {
    let mut out = String::new();
    for line in log.lines() {
        let Some(i) = line.find(" [script] ") else {
            continue;
        };
        let level = line[..i].split_whitespace().last().unwrap_or_default();
        out.push_str(level);
        out.push(' ');
        out.push_str(&line[i + " [script] ".len()..]);
        out.push('\n');
    }
    out
}

fn run(name: &str) {
    let cfg = read(&corpus().join(format!("{name}.cfg")));
    assert!(!cfg.is_empty(), "{name}.cfg is missing");
    let mut d = Daemon::start(&cfg);
    let out_path = d.dir.join("out.log");
    let done = wait_for(Duration::from_secs(20), || {
        read(&out_path).ends_with("E_OUT,E_DONE\n")
    });
    // A clean stop: every queued event and log line is out before the files are read.
    let (status, log) = d.stop();
    assert!(done, "{name}: no E_DONE in {:?}\n{log}", read(&out_path));
    assert!(status.success(), "{name}: {status:?}\n{log}");
    let dir = d.dir.path().display().to_string();
    let normalise = |s: String| {
        s.replace(&dir, "{dir}")
            .replace(&format!("pid={}", d.pid_seen(&log)), "pid={pid}")
            .replace(&format!("E_OUT,{}\n", d.pid_seen(&log)), "E_OUT,{pid}\n")
    };
    let got_out = normalise(read(&out_path));
    let got_log = normalise(script_lines(&log));
    let (out_file, log_file) = (
        corpus().join(format!("{name}.out")),
        corpus().join(format!("{name}.log")),
    );
    if std::env::var_os("EVID_BLESS").is_some() {
        std::fs::write(&out_file, &got_out).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&log_file, &got_log).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(got_out, read(&out_file), "{name}: flatstore file\n{log}");
    assert_eq!(got_log, read(&log_file), "{name}: script log\n{log}");
}

/// The pid the daemon ran as (`Daemon::pid` is 0 once stopped), from the corpus' `pid=` line.
trait PidSeen {
    fn pid_seen(&self, log: &str) -> String;
}

impl PidSeen for Daemon {
    fn pid_seen(&self, log: &str) -> String {
        log.split("pid=")
            .nth(1)
            .map(|s| s.chars().take_while(char::is_ascii_digit).collect())
            .filter(|s: &String| !s.is_empty())
            .unwrap_or_else(|| "no-pid".into())
    }
}

macro_rules! cases {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                run($name);
            }
        )*

        /// Every `.cfg` of the corpus has a test above, and every test its expected files.
        #[test]
        fn every_case_is_listed() {
            let listed = [$($name),*];
            let mut found: Vec<String> = std::fs::read_dir(corpus())
                .unwrap_or_else(|e| panic!("{e}"))
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter_map(|n| n.strip_suffix(".cfg").map(str::to_string))
                .collect();
            found.sort();
            assert_eq!(found, listed, "add the new case to cases! in run_corpus.rs");
            for n in listed {
                for ext in ["out", "log"] {
                    assert!(corpus().join(format!("{n}.{ext}")).exists(), "{n}.{ext}");
                }
            }
        }
    };
}

cases! {
    if_else => "01_if_else",
    while_loops => "02_while",
    switch_case_default_break => "03_switch",
    assignments => "04_assignments",
    exit_return_and_route_calls => "05_exit_return_route",
    avp_stacks_and_indexes => "06_avp_stack",
    event_route_params => "07_event_route_params",
    builtin_variables => "08_builtin_vars",
    transformations => "09_transformations",
    regex_matches => "10_regex",
}
