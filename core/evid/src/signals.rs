//! Stop signals delivered synchronously to the main thread (`sigwait`), so no handler runs in an
//! arbitrary thread and shutdown is ordinary code.

use std::io;

pub struct Signals {
    set: libc::sigset_t,
}

/// Block SIGINT, SIGTERM and SIGHUP in the calling thread (and every thread it starts later).
pub fn block() -> io::Result<Signals> {
    // SAFETY: plain libc calls on a local sigset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(Signals { set })
    }
}

impl Signals {
    /// Wait for the next blocked signal and return its number.
    pub fn wait(&self) -> i32 {
        let mut sig = 0;
        // SAFETY: set is initialised; sig is a valid out pointer.
        let rc = unsafe { libc::sigwait(&self.set, &mut sig) };
        if rc != 0 {
            libc::SIGTERM
        } else {
            sig
        }
    }
}
