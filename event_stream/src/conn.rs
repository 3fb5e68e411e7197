//! One destination's TCP connection and its output buffer of whole JSON objects.
//!
//! Objects enter the output buffer of a [`Conn`] whole and leave it only once written
//! completely, so a timeout never cuts an object (OpenSIPS's timeout sweep could free a
//! half-written request and corrupt the stream, §6 item 14). If the connection dies
//! mid-object, that object is written again from its first byte on the next connection.

use evi_sdk::Delivery;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// One object in the output buffer.
pub struct Frame {
    pub delivery: Delivery,
    /// Reliable mode: the request id; 0 in notification mode.
    pub id: u64,
    /// Reliable: the reply must arrive by then. Both modes: a frame not started by then fails.
    pub deadline: Instant,
    /// End offset of the object in `out`.
    end: usize,
}

/// What a poll found.
#[derive(Default)]
pub struct Ready {
    pub readable: bool,
    pub writable: bool,
    pub hangup: bool,
}

/// Output buffer plus an optional connection.
#[derive(Default)]
pub struct Conn {
    pub stream: Option<TcpStream>,
    out: Vec<u8>,
    /// Bytes of `out` already written on the current connection.
    written: usize,
    frames: VecDeque<Frame>,
}

impl Conn {
    /// Bytes queued but not yet written.
    pub fn unwritten(&self) -> usize {
        self.out.len() - self.written
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Append one whole object.
    pub fn push(&mut self, bytes: impl FnOnce(&mut Vec<u8>), frame: (Delivery, u64, Instant)) {
        bytes(&mut self.out);
        self.frames.push_back(Frame {
            delivery: frame.0,
            id: frame.1,
            deadline: frame.2,
            end: self.out.len(),
        });
    }

    pub fn connect(&mut self, addr: SocketAddr, timeout: Duration) -> io::Result<()> {
        let s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_nonblocking(true)?;
        let _ = s.set_nodelay(true);
        self.stream = Some(s);
        Ok(())
    }

    /// Drop the connection; a partly written object will be rewritten whole on the next one.
    /// (`out` always starts at the first frame: `write` removes finished ones.)
    pub fn close(&mut self) {
        self.stream = None;
        self.written = 0;
    }

    /// Remove frames not started yet whose deadline passed (whole objects only: safe).
    pub fn expire_unstarted(&mut self, now: Instant) -> Vec<Frame> {
        // Only the first frame can be partly written.
        let first = usize::from(self.written > 0).min(self.frames.len());
        if !self.frames.iter().skip(first).any(|f| f.deadline <= now) {
            return Vec::new();
        }
        let cut = if first == 1 { self.frames[0].end } else { 0 };
        let tail: Vec<Frame> = self.frames.drain(first..).collect();
        let tail_bytes = self.out.split_off(cut);
        let mut expired = Vec::new();
        let mut start = 0;
        for f in tail {
            let end = f.end - cut;
            if f.deadline <= now {
                expired.push(f);
            } else {
                self.out.extend_from_slice(&tail_bytes[start..end]);
                self.frames.push_back(Frame {
                    end: self.out.len(),
                    ..f
                });
            }
            start = end;
        }
        expired
    }

    /// Take every frame (connect failed, or shutting down).
    pub fn take_all(&mut self) -> Vec<Frame> {
        self.out.clear();
        self.written = 0;
        self.frames.drain(..).collect()
    }

    /// Wait up to `timeout` for the connection to be readable or (if there is output)
    /// writable.
    pub fn poll(&self, timeout: Duration) -> Ready {
        let Some(s) = &self.stream else {
            return Ready::default();
        };
        let mut events = libc::POLLIN;
        if self.unwritten() > 0 {
            events |= libc::POLLOUT;
        }
        let mut pfd = libc::pollfd {
            fd: s.as_raw_fd(),
            events,
            revents: 0,
        };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n <= 0 {
            return Ready::default();
        }
        Ready {
            readable: pfd.revents & libc::POLLIN != 0,
            writable: pfd.revents & libc::POLLOUT != 0,
            hangup: pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0,
        }
    }

    /// Read what is available into `buf`; `Ok(0)` is EOF.
    pub fn read(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let Some(s) = &mut self.stream else {
            return Ok(0);
        };
        let mut chunk = [0u8; 16384];
        let mut total = 0;
        loop {
            match s.read(&mut chunk) {
                Ok(0) if total == 0 => return Ok(0),
                Ok(0) => return Ok(total),
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return if total == 0 { Err(e) } else { Ok(total) }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Write as much as the socket takes; returns the frames now completely written.
    pub fn write(&mut self) -> io::Result<Vec<Frame>> {
        let Some(s) = &mut self.stream else {
            return Ok(Vec::new());
        };
        while self.written < self.out.len() {
            match s.write(&self.out[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        let mut done = Vec::new();
        while self.frames.front().is_some_and(|f| f.end <= self.written) {
            if let Some(f) = self.frames.pop_front() {
                done.push(f);
            }
        }
        // Keep `out` starting at the first unfinished frame.
        if let Some(cut) = done.last().map(|f| f.end) {
            self.out.drain(..cut);
            for f in &mut self.frames {
                f.end -= cut;
            }
            self.written -= cut;
        }
        Ok(done)
    }
}
