//! The error corpus: every `tests/config_errors/NN_name.cfg` is a broken config, and
//! `NN_name.expected` is exactly what `evid -c` prints on stderr for it (each error as
//! `FILE:LINE:COL: message` with the offending line, then the count). Files ending in `.inc` are
//! included by a case and are not cases themselves.
//!
//! Each case runs the real binary on a copy of the directory in a fresh temp dir; in the output
//! that dir reads `{dir}` and the build directory (the default `mpath`) reads `{build}`.
//! `EVID_BLESS=1` rewrites the `.expected` files from the current output (review the diff).

use evi_testkit::{build_dir, evid_bin, TempDir};
use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config_errors")
}

fn cases() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(corpus())
        .unwrap_or_else(|e| panic!("{}: {e}", corpus().display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".cfg").map(str::to_string))
        .collect();
    v.sort();
    v
}

/// (exit code, stdout, normalised stderr) of `evid -c` on case `name`.
fn check(name: &str) -> (i32, String, String) {
    let dir = TempDir::new("config-errors");
    for e in std::fs::read_dir(corpus()).unwrap_or_else(|e| panic!("{e}")) {
        let e = e.unwrap_or_else(|e| panic!("{e}"));
        let file = e.file_name();
        let is_input = file
            .to_str()
            .is_some_and(|f| f.ends_with(".cfg") || f.ends_with(".inc"));
        if is_input {
            std::fs::copy(e.path(), dir.path().join(&file)).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let out = Command::new(evid_bin())
        .arg("-c")
        .arg("-f")
        .arg(dir.join(&format!("{name}.cfg")))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let err = String::from_utf8_lossy(&out.stderr)
        .replace(&dir.path().display().to_string(), "{dir}")
        .replace(&build_dir().display().to_string(), "{build}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        err,
    )
}

#[test]
fn every_broken_config_gets_its_exact_errors() {
    let names = cases();
    assert!(names.len() >= 30, "only {} cases", names.len());
    let bless = std::env::var_os("EVID_BLESS").is_some();
    let mut failures = Vec::new();
    for name in &names {
        let (code, out, err) = check(name);
        let expected_path = corpus().join(format!("{name}.expected"));
        if bless {
            std::fs::write(&expected_path, &err).unwrap_or_else(|e| panic!("{e}"));
        }
        let want = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if code != 1 || !out.is_empty() || err != want {
            failures.push(format!(
                "--- {name}: exit {code}, stdout {out:?}\n--- expected:\n{want}--- got:\n{err}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}

/// Each case names its first error at a real place: `{dir}/FILE:LINE:COL: ` with LINE > 0.
#[test]
fn every_expected_output_starts_with_a_file_line_col() {
    for name in cases() {
        let want = std::fs::read_to_string(corpus().join(format!("{name}.expected")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let first = want.lines().next().unwrap_or_default();
        let rest = first
            .strip_prefix("{dir}/")
            .unwrap_or_else(|| panic!("{name}: {first}"));
        let mut parts = rest.splitn(4, ':');
        let (file, line, col) = (parts.next(), parts.next(), parts.next());
        assert!(
            file.is_some_and(|f| f.ends_with(".cfg") || f.ends_with(".inc")),
            "{name}: {first}"
        );
        assert!(
            line.and_then(|l| l.parse::<u32>().ok())
                .is_some_and(|l| l > 0)
                && col.and_then(|c| c.parse::<u32>().ok()).is_some(),
            "{name}: {first}"
        );
        assert!(
            want.trim_end()
                .lines()
                .last()
                .is_some_and(|l| l.starts_with("evid: ")),
            "{name}: no summary line"
        );
    }
}
