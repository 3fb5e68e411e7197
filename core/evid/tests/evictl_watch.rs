//! `evictl watch` beyond one event: it keeps its subscription alive past the expiry it asked
//! for, and it prints indented JSON on a terminal (a real pseudo-terminal).

use evi_testkit::{evictl_bin, wait_for, Daemon};
use serde_json::json;
use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// E_X published by a subscriber of the config's own, which the watcher's socket is not.
const CONFIG: &str = "loadmodule \"event_datagram.so\"\n\
    startup_route { subscribe_event(\"E_X\", \"udp:127.0.0.1:9\"); }";

/// `evictl watch E_X --expire N` with stdout on `out`; what it prints arrives on the channel.
fn watch(d: &Daemon, expire: &str, out: Stdio, read: impl Read + Send + 'static) -> Watch {
    let child = Command::new(evictl_bin())
        .args(["--url", &d.mi_url, "watch", "E_X", "--expire", expire])
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let (tx, text) = mpsc::channel();
    std::thread::spawn(move || {
        let mut read = read;
        let mut buf = [0u8; 4096];
        while let Ok(n) = read.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut socket = None;
    assert!(
        wait_for(WAIT, || {
            socket = d
                .sockets("E_X")
                .into_iter()
                .find(|s| s != "udp:127.0.0.1:9");
            socket.is_some()
        }),
        "evictl watch did not subscribe"
    );
    Watch {
        child,
        text,
        socket: socket.unwrap_or_default(),
    }
}

struct Watch {
    child: Child,
    text: mpsc::Receiver<Vec<u8>>,
    socket: String,
}

impl Watch {
    /// What it printed until `done` holds for the text so far (or WAIT passed).
    fn read_until(&self, done: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + WAIT;
        let mut all = Vec::new();
        while !done(&String::from_utf8_lossy(&all)) && Instant::now() < end {
            if let Ok(chunk) = self.text.recv_timeout(Duration::from_millis(100)) {
                all.extend(chunk);
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
    }
}

#[test]
fn watch_refreshes_its_subscription_before_it_expires() {
    let d = Daemon::start(CONFIG);
    let (read, write) = std::io::pipe().unwrap_or_else(|e| panic!("{e}"));
    let w = watch(&d, "2", Stdio::from(write), read);
    let listed = || {
        let v = d
            .mi("subscribers_list", json!(["E_X", w.socket]))
            .unwrap_or_else(|e| panic!("{e}"));
        v["Event"]["Subscriber"]["ttl"].as_i64()
    };
    assert!(listed().is_some_and(|t| t <= 2));
    // Three lifetimes later it is still there, because it was renewed every second.
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        listed().is_some_and(|t| (0..=2).contains(&t)),
        "the subscription lapsed or grew: {:?}\n{}",
        listed(),
        d.log()
    );
    d.mi("raise_event", json!(["E_X", {"after": 6}]))
        .unwrap_or_else(|e| panic!("{e}"));
    let text = w.read_until(|t| t.contains('\n'));
    assert_eq!(
        text,
        "{\"jsonrpc\":\"2.0\",\"method\":\"E_X\",\"params\":{\"after\":6}}\n"
    );
}

#[test]
fn watch_prints_indented_json_on_a_terminal() {
    let d = Daemon::start(CONFIG);
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two descriptors; null name/termios/winsize are allowed.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned here alone.
    let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let w = watch(&d, "30", Stdio::from(slave), master);
    d.mi("raise_event", json!(["E_X", {"a": 1, "b": "two"}]))
        .unwrap_or_else(|e| panic!("{e}"));
    let text = w.read_until(|t| t.ends_with("}\r\n") && !t.ends_with(" }\r\n"));
    // The terminal turns each \n into \r\n.
    assert_eq!(
        text.replace("\r\n", "\n"),
        "{\n  \"jsonrpc\": \"2.0\",\n  \"method\": \"E_X\",\n  \"params\": {\n    \"a\": 1,\n    \"b\": \"two\"\n  }\n}\n"
    );
}
