//! `evictl watch EVENT...`: subscribe a local UDP socket, print what arrives, refresh the
//! subscriptions before they expire, and unsubscribe on SIGINT/SIGTERM.

use crate::commands::{Ctl, Fail};
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Default subscription lifetime: long enough that refreshes are rare, short enough that a
/// watcher killed with SIGKILL stops costing evid a subscriber soon.
const DEFAULT_EXPIRE: u64 = 120;

pub fn run(ctl: &Ctl, events: &[String], expire: Option<u64>) -> Result<(), Fail> {
    let expire = expire.unwrap_or(DEFAULT_EXPIRE);
    if events.is_empty() {
        return Err(Fail::usage("watch needs at least one EVENT"));
    }
    if expire == 0 {
        return Err(Fail::usage("--expire must be at least 1 for watch"));
    }
    // Before any thread starts, so every thread inherits the mask and the signals wait for
    // the main thread's sigtimedwait.
    let signals = StopSignals::block().map_err(|e| Fail::failed(format!("signals: {e}")))?;
    let sock = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| {
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .map(|()| s)
        })
        .map_err(|e| Fail::failed(format!("cannot bind a local UDP socket: {e}")))?;
    let uri = match sock.local_addr() {
        Ok(a) => format!("udp:{a}"),
        Err(e) => return Err(Fail::failed(format!("local UDP socket: {e}"))),
    };

    let subscribe = |event: &str, expire: u64| {
        ctl.call(
            "event_subscribe",
            Value::Array(vec![event.into(), uri.as_str().into(), expire.into()]),
        )
    };
    for (i, event) in events.iter().enumerate() {
        if let Err(e) = subscribe(event, expire) {
            for done in &events[..i] {
                let _ = subscribe(done, 0);
            }
            return Err(e);
        }
    }
    eprintln!(
        "evictl: watching {} on {uri} (Ctrl-C to stop)",
        events.join(", ")
    );

    let stop = Arc::new(AtomicBool::new(false));
    let printer = {
        let stop = stop.clone();
        std::thread::spawn(move || print_events(&sock, &stop))
    };
    // Refresh at half the lifetime: one lost refresh still leaves time for the next.
    let refresh = Duration::from_secs((expire / 2).max(1));
    while signals.wait(refresh).is_none() {
        for event in events {
            if let Err(e) = subscribe(event, expire) {
                eprintln!("evictl: refreshing {event}: {}", e.msg);
            }
        }
    }
    let mut failed = None;
    for event in events {
        if let Err(e) = subscribe(event, 0) {
            failed = Some(Fail::failed(format!("unsubscribing {event}: {}", e.msg)));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = printer.join();
    failed.map_or(Ok(()), Err)
}

/// Print each datagram: one JSON per line when piped, indented on a terminal. A closed stdout
/// (`| head`) stops the watch as Ctrl-C would.
fn print_events(sock: &UdpSocket, stop: &AtomicBool) {
    let pretty = std::io::stdout().is_terminal();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let Ok(n) = sock.recv(&mut buf) else {
            continue; // the read timeout: look at `stop` again
        };
        let text = match serde_json::from_slice::<Value>(&buf[..n]) {
            Ok(v) if pretty => serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string()),
            Ok(v) => v.to_string(),
            Err(_) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        };
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
            // SAFETY: signalling our own process; the main thread is waiting for it.
            unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
            return;
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP, blocked and taken synchronously by the main thread.
struct StopSignals {
    set: libc::sigset_t,
}

impl StopSignals {
    fn block() -> std::io::Result<StopSignals> {
        // SAFETY: plain libc calls on a local sigset.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::sigaddset(&mut set, s);
            }
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(std::io::Error::from_raw_os_error(rc));
            }
            Ok(StopSignals { set })
        }
    }

    /// The signal that arrived within `timeout`, if any.
    fn wait(&self, timeout: Duration) -> Option<i32> {
        let ts = libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        loop {
            // SAFETY: set is initialised; a null siginfo pointer is allowed.
            let sig = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &ts) };
            if sig > 0 {
                return Some(sig);
            }
            // EAGAIN: the timeout passed. EINTR (another signal): wait again.
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return None;
            }
        }
    }
}
