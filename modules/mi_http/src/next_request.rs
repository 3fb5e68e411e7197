//! Waiting for a keep-alive client's next request: a short poll before the blocking read.
//!
//! Why: a client that sends its next request as soon as it has the reply (one connection, one
//! request at a time) finds the connection thread asleep, and on a VM waking a thread whose
//! virtual CPU went idle costs tens of µs: with one connection, 18.7k requests/s against 44k
//! when the CPUs were kept busy (2-vCPU VM, wrk -c1). Polling the socket for a few µs catches
//! that request while the thread still runs. A client that takes longer (a human, a busy
//! machine) makes polls miss; after a miss the connection stops polling for a growing number of
//! requests.
//!
//! A poll spins a CPU, so it pays only while each connection and its client can have a CPU to
//! themselves: with more connections open than half the CPUs, none polls (idle ones count too:
//! an open keep-alive connection can send at any time). The CPUs are busy
//! then anyway, and the spin took them from the clients: with 4 connections on 2 vCPUs, not
//! polling served 11% more requests (alternating 4 s wrk runs, 6 of 8 pairs).

use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Longest poll for the next request.
const POLL: Duration = Duration::from_micros(100);
/// After `k` misses in a row, the next `2^k - 1` requests are waited for without polling.
const MAX_MISSES: u32 = 6;

/// The per-connection polling state.
#[derive(Default)]
pub struct NextRequest {
    misses: u32,
    skip: u32,
}

impl NextRequest {
    /// Return once `sock` has input (or an end or error the next read reports), or after
    /// [`POLL`]; returns at once while recent polls missed, or if `allowed` is false.
    pub fn wait(&mut self, sock: &TcpStream, allowed: bool) {
        if !allowed {
            return;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return;
        }
        let end = Instant::now() + POLL;
        while Instant::now() < end {
            if has_input(sock) {
                self.misses = 0;
                return;
            }
            std::hint::spin_loop();
        }
        self.misses = (self.misses + 1).min(MAX_MISSES);
        self.skip = (1 << self.misses) - 1;
    }
}

/// The most connections that may be open for any to poll: half the CPUs, so that each has its
/// client a CPU beside it (none on one CPU; two CPUs assumed when the count is unknown).
pub fn poll_limit() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) / 2
}

/// Whether a read on `sock` would not block.
fn has_input(sock: &TcpStream) -> bool {
    let mut byte = 0u8;
    // SAFETY: a socket this thread owns and a one-byte buffer on its stack; MSG_PEEK leaves the
    // byte in the socket and MSG_DONTWAIT never blocks.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    #[test]
    fn a_poll_sees_input_and_misses_back_off() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let mut client = TcpStream::connect(l.local_addr().unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
        let (server, _) = l.accept().unwrap_or_else(|e| panic!("{e}"));
        let mut next = NextRequest::default();
        // Nothing sent: the poll misses, and the next request is not polled for.
        assert!(!has_input(&server));
        next.wait(&server, true);
        assert_eq!((next.misses, next.skip), (1, 1));
        next.wait(&server, true);
        assert_eq!((next.misses, next.skip), (1, 0));
        next.wait(&server, true);
        assert_eq!((next.misses, next.skip), (2, 3));
        // Input waiting: a poll hits and polling resumes in full.
        client.write_all(b"GET").unwrap_or_else(|e| panic!("{e}"));
        let t0 = Instant::now();
        while !has_input(&server) && t0.elapsed() < Duration::from_secs(5) {
            std::thread::yield_now();
        }
        next.skip = 0;
        next.wait(&server, true);
        assert_eq!((next.misses, next.skip), (0, 0));
        // Not allowed: returns at once, and the state is left as it was.
        next.misses = 3;
        next.wait(&server, false);
        assert_eq!((next.misses, next.skip), (3, 0));
        // A closed peer counts as input: the read reports it.
        drop(client);
        let mut buf = [0u8; 8];
        let _ = std::io::Read::read(&mut &server, &mut buf);
        assert!(has_input(&server));
    }
}
