//! `mi_fifo`, framed as OpenSIPS does: the client makes a reply FIFO in the daemon's
//! `reply_dir`, writes `:NAME:REQUEST` to the daemon's FIFO and reads the reply until the daemon
//! closes the reply FIFO. Everything is non-blocking so a missing daemon cannot hang the client.

use super::{no_answer, unique_name, unreachable, Transport};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest reply FIFO path `mi_fifo` accepts (OpenSIPS's `MAX_MI_FILENAME` less its NUL).
const MAX_REPLY_PATH: usize = 127;

impl Transport {
    pub(super) fn fifo(
        &self,
        fifo: &Path,
        reply_dir: &Path,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + timeout;
        // Non-blocking: a FIFO nobody reads fails at once (ENXIO) instead of hanging.
        let mut req = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENXIO) => unreachable(self, "nobody reads the FIFO"),
                _ => unreachable(self, e),
            })?;
        // Never write a request into a regular file someone named by mistake.
        let is_fifo = req.metadata().is_ok_and(|m| m.file_type().is_fifo());
        if !is_fifo {
            return Err(unreachable(
                self,
                format!("{} is not a FIFO", fifo.display()),
            ));
        }
        let reply = ReplyFifo::create(reply_dir)?;
        let mut frame = Vec::with_capacity(body.len() + reply.name.len() + 2);
        frame.push(b':');
        frame.extend_from_slice(reply.name.as_bytes());
        frame.push(b':');
        frame.extend_from_slice(body);
        write_all_until(&mut req, &frame, deadline).map_err(|e| match e {
            Waited::Timeout => no_answer(self, timeout),
            Waited::Failed(e) => unreachable(self, e),
        })?;
        drop(req);
        read_to_eof_until(&reply.file, deadline).map_err(|e| match e {
            Waited::Timeout => no_answer(self, timeout),
            Waited::Failed(e) => format!("reading the reply FIFO {}: {e}", reply.path.display()),
        })
    }
}

/// The reply FIFO in the daemon's `reply_dir`, open for reading; removed on drop.
struct ReplyFifo {
    name: String,
    path: PathBuf,
    file: File,
}

impl ReplyFifo {
    fn create(reply_dir: &Path) -> Result<ReplyFifo, String> {
        let name = unique_name();
        let path = reply_dir.join(&name);
        if path.as_os_str().len() > MAX_REPLY_PATH {
            return Err(format!(
                "the reply FIFO path {} is over {MAX_REPLY_PATH} bytes: use a shorter reply_dir",
                path.display()
            ));
        }
        // A FIFO left by an earlier evictl with the same pid.
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_fifo()) {
            let _ = std::fs::remove_file(&path);
        }
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| format!("NUL in the reply FIFO path {}", path.display()))?;
        // SAFETY: c is a valid NUL-terminated path.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(format!(
                "cannot create the reply FIFO {} (is mi_fifo's reply_dir {}?): {}",
                path.display(),
                reply_dir.display(),
                io::Error::last_os_error()
            ));
        }
        // Writable by the daemon even when it runs as another user (it only writes), as
        // OpenSIPS's clients make theirs.
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o622));
        // Opened before the request is sent, so the daemon's non-blocking open finds a reader.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path);
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(format!(
                    "cannot open the reply FIFO {}: {e}",
                    path.display()
                ));
            }
        };
        Ok(ReplyFifo { name, path, file })
    }
}

impl Drop for ReplyFifo {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

enum Waited {
    Timeout,
    Failed(io::Error),
}

/// Wait until `fd` is ready for `events` or `deadline` passes.
fn wait_fd(fd: i32, events: libc::c_short, deadline: Instant) -> Result<(), Waited> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Waited::Timeout);
        }
        let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut p, 1, ms) };
        if rc > 0 {
            return Ok(());
        }
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(Waited::Failed(e));
            }
        }
    }
}

/// Write all of `buf` to a non-blocking file by `deadline`.
fn write_all_until(f: &mut File, mut buf: &[u8], deadline: Instant) -> Result<(), Waited> {
    while !buf.is_empty() {
        match f.write(buf) {
            Ok(0) => return Err(Waited::Failed(io::ErrorKind::WriteZero.into())),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_fd(f.as_raw_fd(), libc::POLLOUT, deadline)?
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Waited::Failed(e)),
        }
    }
    Ok(())
}

/// Read a non-blocking FIFO until its writer closes it, by `deadline`. Before any writer has
/// opened it, `poll` does not report it readable (Linux), so this waits for the daemon.
fn read_to_eof_until(mut f: &File, deadline: Instant) -> Result<Vec<u8>, Waited> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        wait_fd(f.as_raw_fd(), libc::POLLIN, deadline)?;
        loop {
            match f.read(&mut chunk) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Waited::Failed(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_that_is_a_regular_file_is_left_alone() {
        let p = std::env::temp_dir().join(format!("evictl_not_a_fifo_{}", std::process::id()));
        std::fs::write(&p, "keep").unwrap_or_else(|e| panic!("{e}"));
        let t = Transport::Fifo {
            fifo: p.clone(),
            reply_dir: std::env::temp_dir(),
        };
        let e = t.exchange(b"{}", Duration::from_secs(1)).unwrap_err();
        assert!(e.ends_with("is not a FIFO"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).ok().as_deref(), Some("keep"));
        let _ = std::fs::remove_file(&p);
    }
}
