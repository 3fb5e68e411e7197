//! The real `evid` process, its MI statistics and `/proc` figures, and waiting on the sinks
//! (`sinks.rs`) the bench counts arrivals on.

use crate::sinks::Sink;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A fresh scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "evid-bench-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        let _ = std::fs::create_dir_all(&p);
        Scratch(p)
    }
}

impl Drop for Scratch {
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

/// A running `evid` on a generated config, with `mi_http` on a free port.
pub struct Daemon {
    child: Option<Child>,
    pub started: Instant,
    pub mi_url: String,
    pub log: PathBuf,
    pub dir: Scratch,
}

impl Daemon {
    /// Write `body` (with `{dir}` replaced by the scratch dir and `{mi_port}` by a free port;
    /// `mi_http` is loaded first unless the body loads it) to a config and start
    /// `bin_dir/evid` on it. `started` is taken just before the spawn.
    pub fn spawn(bin_dir: &Path, tag: &str, body: &str) -> Result<Daemon, String> {
        Daemon::spawn_env(bin_dir, tag, body, &[])
    }

    /// `spawn` with extra environment variables; `{dir}` in a value is the scratch dir.
    pub fn spawn_env(
        bin_dir: &Path,
        tag: &str,
        body: &str,
        env: &[(&str, &str)],
    ) -> Result<Daemon, String> {
        let dir = Scratch::new(tag);
        let port = free_port();
        let body = body
            .replace("{dir}", &dir.0.display().to_string())
            .replace("{mi_port}", &port.to_string());
        let mi = if body.contains("\"mi_http.so\"") {
            String::new()
        } else {
            format!("loadmodule \"mi_http.so\"\nmodparam(\"mi_http\", \"port\", {port})\n")
        };
        let cfg = dir.0.join("evid.cfg");
        std::fs::write(&cfg, format!("{mi}{body}\n")).map_err(|e| e.to_string())?;
        let log = dir.0.join("evid.log");
        let logf = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut cmd = Command::new(bin_dir.join("evid"));
        for (k, v) in env {
            cmd.env(k, v.replace("{dir}", &dir.0.display().to_string()));
        }
        let child = cmd
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().map_err(|e| e.to_string())?)
            .stderr(logf)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin_dir.join("evid").display()))?;
        Ok(Daemon {
            child: Some(child),
            started,
            mi_url: format!("http://127.0.0.1:{port}/mi"),
            log,
            dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// What evid logged so far (the last 4 KiB).
    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let cut = s.len().saturating_sub(4096);
        let cut = (cut..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        s[cut..].to_string()
    }

    pub fn mi(&self, method: &str, params: Value) -> Result<Value, String> {
        evid::mi_client::call(&self.mi_url, method, params, Duration::from_secs(20))
            .map_err(|e| format!("MI {method}: {e}"))
    }

    /// Wait until MI answers (the daemon has started).
    pub fn wait_mi(&mut self, timeout: Duration) -> Result<(), String> {
        let end = Instant::now() + timeout;
        loop {
            if self.exited() {
                return Err(format!("evid exited:\n{}", self.log_tail()));
            }
            if evid::mi_client::call(
                &self.mi_url,
                "version",
                json!([]),
                Duration::from_millis(500),
            )
            .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > end {
                return Err(format!("MI never answered:\n{}", self.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether MI answers right now (one `version` call, 200 ms at most).
    pub fn mi_answers(&self) -> bool {
        evid::mi_client::call(
            &self.mi_url,
            "version",
            json!([]),
            Duration::from_millis(200),
        )
        .is_ok()
    }

    /// Every statistic (`get_statistics all`) as name → value.
    pub fn stats(&self) -> Result<BTreeMap<String, u64>, String> {
        let v = self.mi("get_statistics", json!([["all"]]))?;
        Ok(v.as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_u64().map(|v| (k.clone(), v)))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// SIGTERM and wait (30 s, then kill).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let end = Instant::now() + Duration::from_secs(30);
            while Instant::now() < end {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One statistic, 0 when absent.
pub fn stat(stats: &BTreeMap<String, u64>, name: &str) -> u64 {
    stats.get(name).copied().unwrap_or(0)
}

/// Poll `sinks` until each has `targets[i]` events, or none has moved for `stall` (some were
/// lost: the caller checks what the daemon counted), or the daemon exited. Returns the counts
/// and the time of the last arrival over all sinks.
pub fn wait_sinks(
    d: &mut Daemon,
    sinks: &mut [&mut dyn Sink],
    targets: &[u64],
    stall: Duration,
    timeout: Duration,
) -> (Vec<u64>, Instant) {
    let start = Instant::now();
    let mut moved = Instant::now();
    let mut prev: Vec<u64> = vec![0; sinks.len()];
    loop {
        let now: Vec<u64> = sinks.iter_mut().map(|s| s.count()).collect();
        if now.iter().zip(targets).all(|(c, t)| c >= t) {
            break;
        }
        if now != prev {
            moved = Instant::now();
            prev = now;
        } else if moved.elapsed() > stall || start.elapsed() > timeout || d.exited() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let counts: Vec<u64> = sinks.iter_mut().map(|s| s.count()).collect();
    let last = sinks
        .iter()
        .filter_map(|s| s.last())
        .max()
        .unwrap_or(d.started);
    (counts, last)
}

/// `VmRSS` of a process in KiB.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Number of threads of a process.
pub fn threads(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("Threads:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
