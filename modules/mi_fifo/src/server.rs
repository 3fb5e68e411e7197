//! The reader thread: reads the request FIFO, cuts requests off the stream, runs each through
//! the MI engine and writes its reply to the client's reply FIFO, one at a time as OpenSIPS.

use crate::fifo::RequestFifo;
use crate::framing::{self, Frame, MAX_BUFFER};
use crate::reply;
use evi_sdk::stop::{Stop, Woke};
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The MI engine: one JSON-RPC request in, the reply out, `None` for a notification. In the
/// daemon this is `Host::mi_execute`.
pub type MiFn = dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync;

/// Sent as plain text when the engine built no reply (OpenSIPS's words).
pub const NO_RESPONSE: &[u8] = b"failed to build response";
/// How often the FIFO is checked for deletion (OpenSIPS: every 30 s or on SIGHUP).
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// A partial request this old is dropped: its writer is gone, and the bytes would corrupt the
/// next client's request.
const STALE_AFTER: Duration = Duration::from_secs(5);

/// How the server runs (the modparams, checked).
#[derive(Clone, Debug)]
pub struct Config {
    pub fifo: PathBuf,
    pub mode: u32,
    pub reply_dir: PathBuf,
}

/// The running server: one thread, joined by [`Server::stop`].
pub struct Server {
    stop: Arc<Stop>,
    thread: Option<JoinHandle<RequestFifo>>,
}

impl Server {
    /// Create the FIFO and start the reader thread. The error names the FIFO and the cause.
    pub fn start(cfg: Config, mi: Arc<MiFn>) -> Result<Server, String> {
        let fifo = RequestFifo::create(&cfg.fifo, cfg.mode)
            .map_err(|e| format!("cannot create FIFO {}: {e}", cfg.fifo.display()))?;
        let stop = Arc::new(Stop::new().map_err(|e| format!("cannot create a pipe: {e}"))?);
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("mi_fifo".into())
            .spawn(move || serve(fifo, &cfg, &s, &*mi))
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        Ok(Server {
            stop,
            thread: Some(thread),
        })
    }

    /// Wake and join the thread, then delete the FIFO.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.signal();
        if let Some(t) = self.thread.take() {
            if let Ok(fifo) = t.join() {
                fifo.remove();
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(mut fifo: RequestFifo, cfg: &Config, stop: &Stop, mi: &MiFn) -> RequestFifo {
    let mut buf = Vec::new();
    let mut last_data = Instant::now();
    let mut last_check = Instant::now();
    let mut recreate_failed = false;
    loop {
        let woke = stop.wait(Some(fifo.fd()), libc::POLLIN, CHECK_EVERY);
        if woke == Woke::Stopped {
            return fifo;
        }
        if last_check.elapsed() >= CHECK_EVERY {
            last_check = Instant::now();
            if !fifo.is_current() {
                match RequestFifo::create(&cfg.fifo, cfg.mode) {
                    Ok(f) => {
                        log::info!(
                            "mi_fifo: {} was deleted or replaced: created again",
                            cfg.fifo.display()
                        );
                        fifo = f;
                        buf.clear();
                        recreate_failed = false;
                        continue;
                    }
                    Err(e) if !recreate_failed => {
                        log::error!("mi_fifo: cannot create {} again: {e}", cfg.fifo.display());
                        recreate_failed = true;
                    }
                    Err(_) => {}
                }
            }
            if !buf.is_empty() && last_data.elapsed() >= STALE_AFTER {
                log::warn!(
                    "mi_fifo: dropping {} bytes of an unfinished request",
                    buf.len()
                );
                buf.clear();
            }
        }
        if woke != Woke::Ready {
            continue;
        }
        if read_available(&fifo, &mut buf) {
            last_data = Instant::now();
        }
        run_frames(&mut buf, cfg, stop, mi);
        if buf.len() >= MAX_BUFFER {
            log::warn!("mi_fifo: dropping a request longer than {MAX_BUFFER} bytes");
            buf.clear();
        }
    }
}

/// Append what the FIFO holds, up to [`MAX_BUFFER`] buffered; whether anything was read.
fn read_available(fifo: &RequestFifo, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    let mut got = false;
    while buf.len() < MAX_BUFFER {
        let room = (MAX_BUFFER - buf.len()).min(chunk.len());
        match fifo.reader().read(&mut chunk[..room]) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                got = true;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                if e.kind() != io::ErrorKind::WouldBlock {
                    log::warn!("mi_fifo: read {}: {e}", fifo.path().display());
                }
                break;
            }
        }
    }
    got
}

/// Run every whole request at the front of `buf` and remove it (and any garbage).
fn run_frames(buf: &mut Vec<u8>, cfg: &Config, stop: &Stop, mi: &MiFn) {
    loop {
        let (frame, used) = framing::next(buf);
        let wait_for_more = frame.is_none();
        match frame {
            Some(Frame::Request { reply, json }) => run(reply, json, cfg, stop, mi),
            Some(Frame::Malformed { reply, why }) => {
                log::warn!("mi_fifo: {why}: dropping {} bytes", buf.len());
                // A client that named a reply FIFO gets the engine's answer to unparseable
                // JSON (-32700) rather than waiting forever (OpenSIPS sends nothing).
                if let (Some(name), Some(out)) = (reply, mi(b"")) {
                    send_reply(cfg, name, &out, stop);
                }
            }
            None => {}
        }
        buf.drain(..used);
        if wait_for_more || buf.is_empty() {
            return;
        }
    }
}

fn run(reply: Option<&[u8]>, json: &[u8], cfg: &Config, stop: &Stop, mi: &MiFn) {
    // A bad reply name stops the request before it runs, as in OpenSIPS.
    if let Some(Err(e)) = reply.map(|n| reply::path(&cfg.reply_dir, n)) {
        log::warn!("mi_fifo: {e}: request dropped");
        return;
    }
    if let (Some(name), Some(out)) = (reply, mi(json)) {
        let out = if out.is_empty() {
            NO_RESPONSE.to_vec()
        } else {
            out
        };
        send_reply(cfg, name, &out, stop);
    }
}

fn send_reply(cfg: &Config, name: &[u8], out: &[u8], stop: &Stop) {
    let sent = reply::path(&cfg.reply_dir, name).and_then(|p| reply::send(&p, out, stop));
    if let Err(e) = sent {
        log::warn!("mi_fifo: reply not sent: {e}");
    }
}
