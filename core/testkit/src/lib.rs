//! # evi-testkit
//!
//! Everything a test needs to check evid the way a user would: the real `evid` binary started
//! on a generated config with the real module `.so` files, MI requests over real HTTP, and real
//! UDP/UNIX receivers. Build the workspace first (`scripts/test` does): the tests load what
//! `cargo build --workspace --all-targets` produced.

mod daemon;
mod receivers;

pub use daemon::{check_config, run_to_exit, Daemon};
pub use evid::mi_client::{MiCallError, Response};
pub use receivers::{UdpReceiver, UnixReceiver};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The cargo output directory the running test binary lives in (`target/debug`).
pub fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/debug/deps/<test> → target/debug
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn require(p: PathBuf) -> PathBuf {
    assert!(
        p.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace --all-targets`, as scripts/test does)",
        p.display()
    );
    p
}

/// The built `evid` binary.
pub fn evid_bin() -> PathBuf {
    require(build_dir().join("evid"))
}

/// The built `evictl` binary.
pub fn evictl_bin() -> PathBuf {
    require(build_dir().join("evictl"))
}

/// Run the built `evictl` with `args`: (exit code, stdout, stderr), as a user sees them.
pub fn evictl(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(evictl_bin())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run evictl: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`evictl`] with `--url URL` first.
pub fn evictl_at(url: &str, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["--url", url];
    all.extend_from_slice(args);
    evictl(&all)
}

/// A built module library, e.g. `module_path("event_flatstore")` → `target/debug/libevent_flatstore.so`.
pub fn module_path(name: &str) -> PathBuf {
    require(build_dir().join(format!("lib{name}.so")))
}

/// A built fixture module (an example of `evi-fixtures`).
pub fn fixture_path(name: &str) -> PathBuf {
    require(build_dir().join("examples").join(format!("lib{name}.so")))
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("evid-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Poll `cond` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A conformance file from `../shared/conformance/opensips/` (bytes exactly as OpenSIPS emitted).
pub fn golden(rel: &str) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/opensips");
    let p = root.join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("golden file {}: {e}", p.display()))
}

/// OpenSIPS's own MI client, `opensips-mi ARGS` (from the `opensips` PyPI package), run in `cwd`
/// (it reads `./.env`); (exit code, stdout, stderr).
pub fn opensips_mi(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(python().with_file_name("opensips-mi"))
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("opensips-mi: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The Python with the test peers (`opensips` package) that `scripts/test-deps` installs.
pub fn python() -> PathBuf {
    let p = std::env::var_os("EVID_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-venv/bin/python")
        });
    require(p)
}
