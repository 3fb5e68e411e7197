//! A real evid with mi_fifo, driven by the PyPI `opensips` package's MI client
//! (`opensips-mi -t fifo`) and by hand-made reply FIFOs for the exact wire bytes.

use evi_testkit::{wait_for, Daemon, UdpReceiver};
use serde_json::{json, Value};
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

const CONFIG: &str = r#"
loadmodule "event_datagram.so"
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "{dir}/evid_fifo")
modparam("mi_fifo", "fifo_mode", 0600)
modparam("mi_fifo", "reply_dir", "{dir}/")
startup_route { subscribe_event("E_X", "udp:127.0.0.1:9"); }
"#;

/// `opensips-mi -t fifo` against the daemon's FIFO; (exit code, stdout, stderr).
fn opensips_mi(d: &Daemon, cmd: &[&str]) -> (i32, String, String) {
    let fifo = d.dir.join("evid_fifo").display().to_string();
    let reply_dir = format!("{}/", d.dir.path().display());
    let mut args = vec!["-t", "fifo", "-f", &fifo, "-fb", &fifo, "-fd", &reply_dir];
    args.extend_from_slice(cmd);
    evi_testkit::opensips_mi(d.dir.path(), &args)
}

fn mi_ok(d: &Daemon, cmd: &[&str]) -> Value {
    let (code, out, err) = opensips_mi(d, cmd);
    assert_eq!(code, 0, "{cmd:?}: {out}{err}\nevid log:\n{}", d.log());
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{cmd:?}: {e}: {out}"))
}

/// A reply FIFO made by the test, opened for reading before the request is written.
struct ReplyFifo {
    file: File,
}

impl ReplyFifo {
    fn new(dir: &Path, name: &str) -> ReplyFifo {
        let path = dir.join(name);
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid C path.
        assert_eq!(
            unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
            0,
            "mkfifo {path:?}"
        );
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        ReplyFifo { file }
    }

    /// Everything written until the writer closes. Linux reports POLLHUP on a FIFO only once a
    /// writer has come and gone, so a reader opened first waits for the whole reply.
    fn read_reply(&mut self) -> String {
        let end = Instant::now() + WAIT;
        let mut out = Vec::new();
        let mut seen_writer = false;
        loop {
            let mut p = libc::pollfd {
                fd: self.file.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let left = end.saturating_duration_since(Instant::now()).as_millis() as i32;
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut p, 1, left) };
            assert!(
                n > 0,
                "no reply within {WAIT:?}; got {:?}",
                String::from_utf8_lossy(&out)
            );
            let mut buf = [0u8; 4096];
            match self.file.read(&mut buf) {
                Ok(0) if seen_writer || p.revents & libc::POLLHUP != 0 => break,
                Ok(0) => std::thread::sleep(Duration::from_millis(10)),
                Ok(n) => {
                    seen_writer = true;
                    out.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("read: {e}"),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn write_fifo(d: &Daemon, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .write(true)
        .open(d.dir.join("evid_fifo"))
        .unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn fifo_with_the_opensips_client() {
    let d = Daemon::start(CONFIG);
    let fifo = d.dir.join("evid_fifo");
    let meta = std::fs::metadata(&fifo).unwrap();
    assert!(meta.file_type().is_fifo());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let events = mi_ok(&d, &["events_list"]);
    assert!(events.to_string().contains(r#""name":"E_X""#), "{events}");
    let rx = UdpReceiver::new();
    assert_eq!(
        mi_ok(&d, &["event_subscribe", "E_X", &rx.uri(), "60"]),
        json!("OK")
    );
    let raise = r#"{"event":"E_X","params":{"n":3,"s":"abc"}}"#;
    assert_eq!(mi_ok(&d, &["raise_event", "-j", raise]), json!("OK"));
    assert_eq!(
        rx.recv_n(1, WAIT),
        vec![br#"{"jsonrpc":"2.0","method":"E_X","params":{"n":3,"s":"abc"}}"#.to_vec()]
    );
    let (code, out, _) = opensips_mi(&d, &["raise_event", "E_NOPE"]);
    assert_eq!(
        (code, out.trim()),
        (
            1,
            "ERROR:  Error executing command: 404: Event not registered"
        )
    );
}

#[test]
fn framing_on_the_wire() {
    let mut d = Daemon::start(CONFIG);
    let dir: PathBuf = d.dir.path().to_path_buf();
    let mut a = ReplyFifo::new(&dir, "reply_a");
    let mut b = ReplyFifo::new(&dir, "reply_b");
    let mut c = ReplyFifo::new(&dir, "reply_c");
    // In one write: a request with a forbidden reply name (dropped, not run), a notification
    // (run, no reply), two requests, and one whose JSON is broken.
    let batch = concat!(
        r#":bad.name:{"jsonrpc":"2.0","id":1,"method":"event_subscribe","params":["E_X","udp:127.0.0.1:5555"]}"#,
        "\n",
        r#"::{"jsonrpc":"2.0","method":"event_subscribe","params":["E_X","udp:127.0.0.1:6666",60]}"#,
        r#" :reply_a:{"jsonrpc":"2.0","id":"a","method":"subscribers_list","params":["E_X"]}"#,
        r#":reply_b:{"jsonrpc":"2.0","id":2,"method":"nope"}"#,
        r#":reply_c:{"jsonrpc":"2.0","id":3,]"#,
    );
    write_fifo(&d, batch.as_bytes());
    let ra = a.read_reply();
    assert!(
        ra.starts_with(r#"{"jsonrpc":"2.0","result":{"Event":{"name":"E_X""#),
        "{ra}"
    );
    assert!(ra.ends_with(r#","id":"a"}"#), "no trailing newline: {ra:?}");
    assert!(
        ra.contains("udp:127.0.0.1:6666") && !ra.contains("5555"),
        "{ra}"
    );
    assert_eq!(
        b.read_reply(),
        r#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":2}"#
    );
    assert_eq!(
        c.read_reply(),
        r#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}"#
    );

    // Deleted: created again, and served.
    let fifo = dir.join("evid_fifo");
    std::fs::remove_file(&fifo).unwrap();
    assert!(
        wait_for(WAIT, || std::fs::metadata(&fifo)
            .is_ok_and(|m| m.file_type().is_fifo())),
        "the FIFO was not created again"
    );
    assert_eq!(mi_ok(&d, &["raise_event", "E_X"]), json!("OK"));

    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    assert!(!fifo.exists(), "the FIFO is left behind");
}
