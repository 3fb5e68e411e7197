//! The real `evid` process, started on a generated config and stopped with a real signal.

use crate::{evid_bin, free_port, wait_for, TempDir};
use evid::mi_client::{self, MiCallError, Response};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// A running evid with `mi_http` on a free port; killed on drop if not stopped.
pub struct Daemon {
    child: Option<Child>,
    pub dir: TempDir,
    pub mi_url: String,
    pub config: PathBuf,
    log: PathBuf,
}

impl Daemon {
    /// Start evid with `mi_http` loaded on a free port, then `body` (more `loadmodule`s,
    /// `modparam`s, a `startup_route`...). Waits until MI answers.
    pub fn start(body: &str) -> Daemon {
        Self::try_start(body).unwrap_or_else(|log| panic!("evid did not start:\n{log}"))
    }

    /// Like `start`, with extra command-line arguments (e.g. `--dev`).
    pub fn start_with_args(body: &str, args: &[&str]) -> Daemon {
        Self::try_start_with_args(body, args)
            .unwrap_or_else(|log| panic!("evid did not start:\n{log}"))
    }

    /// Like `start`, but returns the log when evid exits or never answers.
    pub fn try_start(body: &str) -> Result<Daemon, String> {
        Self::try_start_with_args(body, &[])
    }

    fn try_start_with_args(body: &str, args: &[&str]) -> Result<Daemon, String> {
        let dir = TempDir::new("daemon");
        let port = free_port();
        let cfg = format!(
            "log_level = 3\nloadmodule \"mi_http.so\"\nmodparam(\"mi_http\", \"port\", {port})\n{}\n",
            body.replace("{dir}", &dir.path().display().to_string())
        );
        let config = dir.join("evid.cfg");
        std::fs::write(&config, cfg).map_err(|e| e.to_string())?;
        let log = dir.join("evid.log");
        let logf = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let child = Command::new(evid_bin())
            .arg("-f")
            .arg(&config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().map_err(|e| e.to_string())?)
            .stderr(logf)
            .spawn()
            .map_err(|e| format!("cannot run evid: {e}"))?;
        let mut d = Daemon {
            child: Some(child),
            dir,
            mi_url: format!("http://127.0.0.1:{port}/mi"),
            config,
            log,
        };
        let up = wait_for(Duration::from_secs(20), || {
            if d.exited() {
                return true;
            }
            mi_client::call(
                &d.mi_url,
                "version",
                Value::Array(vec![]),
                Duration::from_millis(500),
            )
            .is_ok()
        });
        if !up || d.exited() {
            d.kill();
            return Err(d.log());
        }
        Ok(d)
    }

    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Call an MI command; `params` is the JSON-RPC `params` (array or object).
    pub fn mi(&self, method: &str, params: Value) -> Result<Value, MiCallError> {
        mi_client::call(&self.mi_url, method, params, Duration::from_secs(20))
    }

    /// POST a raw body to the MI URL and return the raw HTTP response.
    pub fn mi_raw(&self, body: &[u8]) -> Response {
        mi_client::request(&self.mi_url, "POST", body, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("MI request failed: {e}\nlog:\n{}", self.log()))
    }

    /// The sockets subscribed to `event`, newest first, as MI `subscribers_list` gives them.
    pub fn sockets(&self, event: &str) -> Vec<String> {
        let v = self
            .mi("subscribers_list", serde_json::json!([event]))
            .unwrap_or_else(|e| panic!("{e}"));
        v["Event"]["Subscribers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s["socket"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What evid logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Send `sig` and wait for evid to exit (at most 30 s, then kill). The daemon's directory
    /// stays until the `Daemon` is dropped, so its files can be read afterwards.
    pub fn stop_with(&mut self, sig: i32) -> (ExitStatus, String) {
        let mut child = self
            .child
            .take()
            .unwrap_or_else(|| panic!("evid already stopped"));
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(child.id() as i32, sig) };
        let mut status = None;
        wait_for(Duration::from_secs(30), || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        let status = status.unwrap_or_else(|| {
            let _ = child.kill();
            child.wait().unwrap_or_else(|e| panic!("wait: {e}"))
        });
        (status, self.log())
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) -> (ExitStatus, String) {
        self.stop_with(libc::SIGTERM)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Run `evid -c -f` on `text` (written to a temp file named `name`); returns (exit code, stdout,
/// stderr, the config path).
pub fn check_config(name: &str, text: &str) -> (i32, String, String, PathBuf) {
    let dir = TempDir::new("check");
    let path = dir.join(name);
    std::fs::write(
        &path,
        text.replace("{dir}", &dir.path().display().to_string()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(evid_bin())
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    // Keep the directory's files readable in the returned strings only.
    let r = (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        path,
    );
    drop(dir);
    r
}

/// Run `evid -f` on `text` and wait for it to exit by itself (at most 20 s); returns (exit code,
/// everything it printed). For configs that must fail at start-up.
pub fn run_to_exit(text: &str) -> (i32, String) {
    let dir = TempDir::new("run");
    let path = dir.join("evid.cfg");
    std::fs::write(
        &path,
        text.replace("{dir}", &dir.path().display().to_string()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out_path = dir.join("out.log");
    let out = std::fs::File::create(&out_path).unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(evid_bin())
        .arg("-f")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap_or_else(|e| panic!("{e}")))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run evid: {e}"));
    let mut status = None;
    wait_for(Duration::from_secs(20), || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    let text = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    match status {
        Some(s) => (s.code().unwrap_or(-1), text(&out_path)),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("evid did not exit:\n{}", text(&out_path))
        }
    }
}
