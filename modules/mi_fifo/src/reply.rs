//! Reply FIFOs: the name rules, and the bounded open-and-write, so a client that never opens its
//! reply FIFO (or never reads it) cannot hold the module.

use evi_sdk::stop::{Stop, Woke};
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest reply FIFO path: OpenSIPS's `MAX_MI_FILENAME` (128) with its NUL.
pub const MAX_PATH: usize = 127;
/// Opens retried while the client has not opened its end yet, and the wait between them
/// (OpenSIPS's `FIFO_REPLY_RETRIES` and `FIFO_REPLY_WAIT`).
pub const OPEN_RETRIES: u32 = 4;
pub const OPEN_WAIT: Duration = Duration::from_millis(80);
/// Longest wait for a client that opened its reply FIFO but does not read it.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// `reply_dir` joined with a reply FIFO name from a request. The name may not contain `.`, `/`
/// or `\` (so it cannot leave `reply_dir`), nor NUL, and the whole path is at most 127 bytes.
pub fn path(reply_dir: &Path, name: &[u8]) -> Result<PathBuf, String> {
    let shown = String::from_utf8_lossy(name);
    if name.iter().any(|b| matches!(b, b'.' | b'/' | b'\\' | 0)) {
        return Err(format!("forbidden reply FIFO name {shown:?}"));
    }
    let p = reply_dir.join(std::ffi::OsStr::from_bytes(name));
    if p.as_os_str().len() > MAX_PATH {
        return Err(format!(
            "reply FIFO path {} is over {MAX_PATH} bytes",
            p.display()
        ));
    }
    Ok(p)
}

/// Open the reply FIFO (retrying while nobody reads it yet), write `reply` with no newline, close.
pub fn send(path: &Path, reply: &[u8], stop: &Stop) -> Result<(), String> {
    let mut f =
        open(path, stop).map_err(|e| format!("cannot open reply FIFO {}: {e}", path.display()))?;
    let m = f.metadata().map_err(|e| e.to_string())?;
    // The checks OpenSIPS makes: a FIFO, not hard-linked (O_NOFOLLOW refused a symlink).
    if !m.file_type().is_fifo() || m.nlink() > 1 {
        return Err(format!("{} is not a plain FIFO", path.display()));
    }
    let deadline = Instant::now() + WRITE_TIMEOUT;
    let mut left = reply;
    while !left.is_empty() {
        match f.write(left) {
            Ok(n) => left = &left[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let wait = deadline.saturating_duration_since(Instant::now());
                match stop.wait(Some(f.as_raw_fd()), libc::POLLOUT, wait) {
                    Woke::Ready => {}
                    Woke::Stopped => return Err("stopping".into()),
                    Woke::Timeout => {
                        return Err(format!("{}: the client does not read", path.display()))
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("cannot write to {}: {e}", path.display())),
        }
    }
    Ok(())
}

/// Non-blocking open for writing: a FIFO with no reader fails with ENXIO at once, so retry a
/// few times while the client gets to its `open`.
fn open(path: &Path, stop: &Stop) -> io::Result<std::fs::File> {
    let mut retries = OPEN_RETRIES;
    loop {
        let r = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(path);
        match r {
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) && retries > 0 => {
                retries -= 1;
                if stop.sleep(OPEN_WAIT) {
                    return Err(e);
                }
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let dir = Path::new("/tmp/");
        assert_eq!(path(dir, b"r_1"), Ok(PathBuf::from("/tmp/r_1")));
        assert_eq!(
            path(Path::new("/tmp"), b"r_1"),
            Ok(PathBuf::from("/tmp/r_1"))
        );
        for bad in [&b"a.b"[..], b"../x", b"a/b", b"a\\b", b"a\0b"] {
            assert!(
                path(dir, bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(path(dir, &[b'x'; 122]).is_ok());
        assert!(path(dir, &[b'x'; 123]).is_err());
    }

    #[test]
    fn no_reader_gives_up() {
        let dir = std::env::temp_dir().join(format!("mi_fifo_reply_{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let p = dir.join("r");
        let _ = std::fs::remove_file(&p);
        let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid C path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let stop = Stop::new().unwrap();
        let e = send(&p, b"x", &stop).unwrap_err();
        assert!(e.contains("cannot open reply FIFO"), "{e}");
        // A regular file is refused.
        let f = dir.join("file");
        std::fs::write(&f, "").unwrap();
        assert!(send(&f, b"x", &stop)
            .unwrap_err()
            .contains("not a plain FIFO"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
