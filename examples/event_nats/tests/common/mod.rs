//! Test support for event_nats: a raw NATS client as the consumer, and the real evid daemon
//! from the evid workspace loading this crate's `.so`. (A module inside the evid workspace
//! would use `evi-testkit` for the daemon; this crate depends only on evi-sdk, as a third-party
//! module would.)
#![allow(dead_code)]

use evi_sdk::json::{self, json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The NATS server the tests use (scripts/test-deps starts it).
pub const NATS: &str = "127.0.0.1:4222";

/// Poll `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A name unique to this test run.
pub fn unique(tag: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{tag}_{}_{t}_{n}", std::process::id())
}

/// A plain NATS client: SUB to receive, request/reply for the JetStream API.
pub struct NatsClient {
    s: TcpStream,
    buf: Vec<u8>,
    sid: u32,
}

impl NatsClient {
    pub fn connect() -> NatsClient {
        let s = TcpStream::connect(NATS).unwrap_or_else(|e| {
            panic!("NATS is not running at {NATS} ({e}): run scripts/test-deps")
        });
        let mut c = NatsClient {
            s,
            buf: Vec::new(),
            sid: 0,
        };
        c.send("CONNECT {\"verbose\":false,\"name\":\"event_nats test\"}\r\n");
        c.sync();
        c
    }

    fn send(&mut self, text: &str) {
        self.s
            .write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("NATS write: {e}"));
    }

    /// PING and wait for the PONG: the server has processed everything sent before.
    pub fn sync(&mut self) {
        self.send("PING\r\n");
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Some(pos) = find(&self.buf, b"PONG\r\n") {
                self.buf.drain(..pos + 6);
                return;
            }
            self.fill(Duration::from_millis(100));
        }
        panic!("no PONG from NATS");
    }

    /// Subscribe to `subject`; returns the sid.
    pub fn sub(&mut self, subject: &str) -> u32 {
        self.sid += 1;
        let sid = self.sid;
        self.send(&format!("SUB {subject} {sid}\r\n"));
        self.sync();
        sid
    }

    fn fill(&mut self, wait: Duration) {
        let _ = self.s.set_read_timeout(Some(wait));
        let mut chunk = [0u8; 65536];
        if let Ok(n) = self.s.read(&mut chunk) {
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next MSG (subject, payload), answering server PINGs; `None` after `timeout`.
    pub fn next_msg(&mut self, timeout: Duration) -> Option<(String, Vec<u8>)> {
        let end = Instant::now() + timeout;
        loop {
            while let Some(eol) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..eol]).into_owned();
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.first().copied() {
                    Some("MSG") => {
                        let n: usize = words.last().and_then(|n| n.parse().ok()).unwrap_or(0);
                        if self.buf.len() < eol + 2 + n + 2 {
                            break;
                        }
                        let payload = self.buf[eol + 2..eol + 2 + n].to_vec();
                        self.buf.drain(..eol + 2 + n + 2);
                        return Some((words[1].to_string(), payload));
                    }
                    Some("PING") => {
                        self.buf.drain(..eol + 2);
                        self.send("PONG\r\n");
                    }
                    _ => {
                        self.buf.drain(..eol + 2);
                    }
                }
            }
            if Instant::now() > end {
                return None;
            }
            self.fill(Duration::from_millis(50));
        }
    }

    /// `n` message payloads (fewer if they do not come within `timeout`).
    pub fn recv_n(&mut self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let end = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < n {
            let left = end.saturating_duration_since(Instant::now());
            match self.next_msg(left) {
                Some((_, p)) => out.push(p),
                None => break,
            }
        }
        out
    }

    /// A request/reply (for the JetStream API): the reply as JSON.
    pub fn request(&mut self, subject: &str, body: &Value) -> Value {
        let inbox = unique("_INBOX.test");
        self.sub(&inbox);
        let body = body.to_string();
        self.send(&format!(
            "PUB {subject} {inbox} {}\r\n{body}\r\n",
            body.len()
        ));
        let end = Instant::now() + Duration::from_secs(10);
        while let Some((s, p)) = self.next_msg(end.saturating_duration_since(Instant::now())) {
            if s == inbox {
                return json::from_slice(&p).unwrap_or(Value::Null);
            }
        }
        panic!("no reply to {subject}")
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A JetStream stream capturing `subject`, deleted on drop.
pub struct Stream {
    pub name: String,
}

impl Stream {
    /// `extra` is merged into the stream config (e.g. `{"max_msgs":2,"discard":"new"}`).
    pub fn create(subject: &str, extra: Value) -> Stream {
        let name = unique("EVID").replace('.', "_");
        let mut cfg = json!({"name": name, "subjects": [subject], "storage": "memory"});
        if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        let r = NatsClient::connect().request(&format!("$JS.API.STREAM.CREATE.{name}"), &cfg);
        assert!(r.get("error").is_none(), "cannot create stream: {r}");
        Stream { name }
    }

    /// How many messages the stream holds.
    pub fn messages(&self) -> u64 {
        let r = NatsClient::connect()
            .request(&format!("$JS.API.STREAM.INFO.{}", self.name), &json!({}));
        r["state"]["messages"].as_u64().unwrap_or(0)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        NatsClient::connect().request(&format!("$JS.API.STREAM.DELETE.{}", self.name), &json!({}));
    }
}

/// The evid workspace's build directory (`target/debug` next to this example's folder), or
/// `EVID_BUILD_DIR`.
pub fn evid_build_dir() -> PathBuf {
    std::env::var_os("EVID_BUILD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug"))
}

/// This crate's module as `cargo test` built it: `deps/libevent_nats.so` next to the test
/// binary (`cargo build` also copies it one level up; `cargo test` alone does not).
pub fn module_so() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let deps = exe.parent().unwrap_or(Path::new("."));
    let candidates = [
        deps.join("libevent_nats.so"),
        deps.join("../libevent_nats.so"),
    ];
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{} is missing (cargo test builds it)",
                candidates[0].display()
            )
        })
}

/// The real evid, with mi_http on a free port and this crate's module loaded by absolute path.
pub struct Daemon {
    child: Child,
    port: u16,
    pub dir: PathBuf,
}

impl Daemon {
    /// Start evid on `body` (more config after the loadmodule lines); waits until MI answers.
    pub fn start(body: &str) -> Daemon {
        let evid = evid_build_dir().join("evid");
        assert!(
            evid.exists(),
            "{} is missing: build the evid workspace first (cargo build --workspace)",
            evid.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let dir = std::env::temp_dir().join(unique("event_nats"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let cfg = format!(
            "log_level = 3\nloadmodule \"mi_http.so\"\nmodparam(\"mi_http\", \"port\", {port})\nloadmodule \"{}\"\n{body}\n",
            module_so().display()
        );
        std::fs::write(dir.join("evid.cfg"), cfg).unwrap_or_else(|e| panic!("{e}"));
        let log = std::fs::File::create(dir.join("evid.log")).unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new(&evid)
            .arg("-f")
            .arg(dir.join("evid.cfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap_or_else(|e| panic!("{e}")))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", evid.display()));
        let mut d = Daemon { child, port, dir };
        let up = wait_for(Duration::from_secs(30), || {
            matches!(d.child.try_wait(), Ok(Some(_))) || d.mi("version", json!([])).is_ok()
        });
        assert!(
            up && d.child.try_wait().ok().flatten().is_none(),
            "evid did not start:\n{}",
            d.log()
        );
        d
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("evid.log")).unwrap_or_default()
    }

    /// One MI call over HTTP: the result, or the error object as text.
    pub fn mi(&self, method: &str, params: Value) -> Result<Value, String> {
        let body =
            json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}).to_string();
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        let req = format!(
            "POST /mi HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).map_err(|e| e.to_string())?;
        let at = find(&resp, b"\r\n\r\n").ok_or("no HTTP body")?;
        let v: Value = json::from_slice(&resp[at + 4..]).map_err(|e| e.to_string())?;
        match v.get("error") {
            Some(e) => Err(e.to_string()),
            None => Ok(v["result"].clone()),
        }
    }

    /// `subscriber_stats` entry of `socket` for event `event`.
    pub fn sub_stats(&self, event: &str, socket: &str) -> Value {
        let s = self
            .mi("subscriber_stats", json!([event]))
            .unwrap_or_else(|e| panic!("{e}"));
        s["Subscribers"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["socket"] == socket).cloned())
            .unwrap_or(Value::Null)
    }

    /// SIGTERM and wait; returns whether it exited cleanly, and the log.
    pub fn stop(mut self) -> (bool, String) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let mut ok = false;
        wait_for(Duration::from_secs(30), || match self.child.try_wait() {
            Ok(Some(st)) => {
                ok = st.success();
                true
            }
            _ => false,
        });
        (ok, self.log())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The Python with the test peers (the `opensips` and `nats-py` packages) that
/// `scripts/test-deps` installs: `EVID_TEST_PYTHON`, or the evid workspace's
/// `target/test-venv/bin/python` (as `evi_testkit::python()` finds it).
pub fn python() -> PathBuf {
    let p = std::env::var_os("EVID_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-venv/bin/python")
        });
    assert!(
        p.exists(),
        "{} is missing: run scripts/test-deps (it creates the venv with the opensips and nats-py packages)",
        p.display()
    );
    p
}

/// tests/consumer.py: the real NATS client (nats-py) consuming a subject, or reading a
/// JetStream stream it creates; its stdout lines come through a channel.
pub struct PyConsumer {
    child: Child,
    lines: std::sync::mpsc::Receiver<Vec<u8>>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl PyConsumer {
    /// Start consumer.py for `n` messages on `subject` (through the JetStream stream `stream`
    /// when given) and wait until it says it is subscribed.
    pub fn start(subject: &str, n: usize, timeout: Duration, stream: Option<&str>) -> PyConsumer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/consumer.py");
        let py = python();
        let mut cmd = Command::new(&py);
        cmd.arg(&script)
            .arg(subject)
            .arg(n.to_string())
            .arg(timeout.as_secs_f64().to_string());
        if let Some(s) = stream {
            cmd.arg(s);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", py.display()));
        let (tx, lines) = std::sync::mpsc::channel();
        let mut out = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        std::thread::spawn(move || loop {
            let mut line = Vec::new();
            match std::io::BufRead::read_until(&mut out, b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            if let Ok(mut g) = sink.lock() {
                g.push_str(&s);
            }
        });
        let mut c = PyConsumer {
            child,
            lines,
            stderr,
        };
        match c.lines.recv_timeout(Duration::from_secs(30)) {
            Ok(l) if l == b"ready" => c,
            other => {
                let _ = c.child.kill();
                let _ = c.child.wait();
                panic!(
                    "{} did not say ready (got {:?}): {}",
                    script.display(),
                    other.map(|l| String::from_utf8_lossy(&l).into_owned()),
                    c.stderr()
                )
            }
        }
    }

    /// Up to `n` payload lines, waiting at most `timeout` in all.
    pub fn recv_n(&mut self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let end = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < n {
            match self
                .lines
                .recv_timeout(end.saturating_duration_since(Instant::now()))
            {
                Ok(l) => out.push(l),
                Err(_) => break,
            }
        }
        out
    }

    /// Wait for it to exit: whether it succeeded (0: it got its `n` messages).
    pub fn wait(&mut self, timeout: Duration) -> bool {
        let mut ok = false;
        wait_for(timeout, || match self.child.try_wait() {
            Ok(Some(st)) => {
                ok = st.success();
                true
            }
            _ => false,
        });
        ok
    }

    /// What it wrote to stderr so far (once it exited: all of it).
    pub fn stderr(&self) -> String {
        // The reader thread fills it when the pipe closes; give it a moment.
        std::thread::sleep(Duration::from_millis(50));
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for PyConsumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
