//! A self-pipe that wakes every module thread blocked in `poll`, so `destroy` can join them at
//! once instead of waiting for a read timeout (the MI transports wait on their socket or FIFO
//! and on this pipe together).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// What [`Stop::wait`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke {
    /// The watched descriptor is ready.
    Ready,
    /// [`Stop::signal`] was called.
    Stopped,
    /// The timeout passed.
    Timeout,
}

/// The stop signal: `signal` once, every `wait`/`sleep` (now and later) sees it.
pub struct Stop {
    read: OwnedFd,
    write: OwnedFd,
}

impl Stop {
    /// A fresh, unsignalled stop pipe.
    pub fn new() -> io::Result<Stop> {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid out array of two ints.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 returned two fresh descriptors that nothing else owns.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Stop { read, write })
    }

    /// Wake every waiter, now and later: the byte is never read, so the pipe stays readable.
    pub fn signal(&self) {
        // SAFETY: writing one byte from a live buffer to our own pipe.
        let _ = unsafe { libc::write(self.write.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
    }

    /// Wait until `fd` has `events`, the stop pipe is signalled, or `timeout` passes. Stop wins
    /// over readiness, so a stopping thread takes no new work.
    pub fn wait(&self, fd: Option<RawFd>, events: i16, timeout: Duration) -> Woke {
        let mut pfd = [
            libc::pollfd {
                fd: self.read.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: fd.unwrap_or(-1),
                events,
                revents: 0,
            },
        ];
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: pfd is a valid array of two pollfds; a negative fd is ignored by poll.
        let n = unsafe { libc::poll(pfd.as_mut_ptr(), 2, ms) };
        if n <= 0 {
            // EINTR counts as a timeout: callers loop and look again.
            return Woke::Timeout;
        }
        if pfd[0].revents != 0 {
            Woke::Stopped
        } else if pfd[1].revents != 0 {
            Woke::Ready
        } else {
            Woke::Timeout
        }
    }

    /// Sleep up to `d`; `true` when woken by a stop.
    pub fn sleep(&self, d: Duration) -> bool {
        self.wait(None, 0, d) == Woke::Stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_wakes_every_waiter() {
        let s = Stop::new().expect("a pipe");
        assert!(!s.sleep(Duration::ZERO));
        assert_eq!(s.wait(None, 0, Duration::from_millis(1)), Woke::Timeout);
        s.signal();
        assert!(s.sleep(Duration::from_secs(30)));
        // The byte stays in the pipe: every later wait sees the stop too.
        assert_eq!(s.wait(None, 0, Duration::from_secs(30)), Woke::Stopped);
    }
}
