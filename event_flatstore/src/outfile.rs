//! One open file and its line buffer.
//!
//! `raise` only appends to the buffer; the buffer goes out in one `write(2)` at `flush` (after
//! each batch of raises) or once it holds [`WRITE_THRESHOLD`] bytes. That is what makes a
//! million events a second possible: a syscall per event would cost more than the formatting.
//! Only whole lines are appended, so a write never starts or ends inside a line unless the kernel
//! itself stops short (then the rest of that line is written next, to the same file).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

/// Write out as soon as this much is buffered, without waiting for `flush`.
pub const WRITE_THRESHOLD: usize = 64 * 1024;
/// Most bytes kept per file while writes fail; whole lines past it are dropped (and counted).
pub const MAX_PENDING: usize = 8 * 1024 * 1024;
/// After a failed write, retry no sooner than this (except at rotation, free and destroy).
const RETRY_AFTER: Duration = Duration::from_millis(100);
/// At most one error line per file per this period.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// Counters of one file, for tests and (later) statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStats {
    /// Lines that could not be buffered (buffer full while writes failed) or were cut by a
    /// rotation after a short write.
    pub lines_dropped: u64,
    /// Failed `write(2)` calls.
    pub write_errors: u64,
    /// Bytes buffered and not yet written.
    pub pending_bytes: usize,
}

pub struct OutFile {
    /// The real name: subscribed path + suffix.
    name: String,
    file: File,
    buf: Vec<u8>,
    /// `buf` starts with the rest of a line whose beginning is already in `file`.
    partial_head: bool,
    failed_at: Option<Instant>,
    last_log: Option<Instant>,
    unlogged: u64,
    lines_dropped: u64,
    write_errors: u64,
}

/// Open for appending, creating it with `mode` (minus the umask).
///
/// `O_NONBLOCK` only matters for a FIFO: without a reader, `open` fails (ENXIO) instead of
/// blocking the module's thread; regular files ignore it.
fn open_append(name: &str, mode: u32) -> Result<File, String> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(mode)
        .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(name)
        .map_err(|e| format!("flatstore: cannot open '{name}': {e}"))
}

impl OutFile {
    pub fn open(name: String, mode: u32) -> Result<OutFile, String> {
        let file = open_append(&name, mode)?;
        Ok(OutFile {
            name,
            file,
            buf: Vec::new(),
            partial_head: false,
            failed_at: None,
            last_log: None,
            unlogged: 0,
            lines_dropped: 0,
            write_errors: 0,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    pub fn stats(&self) -> FileStats {
        FileStats {
            lines_dropped: self.lines_dropped,
            write_errors: self.write_errors,
            pending_bytes: self.buf.len(),
        }
    }

    /// Append one line that `format` writes (it must end with `\n`). `Err` when it could not
    /// be buffered: nothing of it is kept then.
    pub fn push_line(&mut self, format: impl FnOnce(&mut Vec<u8>)) -> Result<(), String> {
        let start = self.buf.len();
        format(&mut self.buf);
        if self.buf.len() > MAX_PENDING {
            let len = self.buf.len() - start;
            self.buf.truncate(start);
            self.lines_dropped += 1;
            let why = if start == 0 {
                format!("the line ({len} bytes) is larger than the {MAX_PENDING}-byte buffer")
            } else {
                format!("{start} bytes are still waiting (writes are failing)")
            };
            let msg = format!(
                "flatstore: '{}': line dropped: {why}; {} dropped so far",
                self.name, self.lines_dropped
            );
            self.log_limited(&msg);
            return Err(msg);
        }
        if self.buf.len() >= WRITE_THRESHOLD {
            self.flush(false);
        }
        Ok(())
    }

    /// Write the buffer out; `force` ignores the retry back-off. Returns whether all of it went.
    pub fn flush(&mut self, force: bool) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        if !force && self.failed_at.is_some_and(|t| t.elapsed() < RETRY_AFTER) {
            return false;
        }
        let mut off = 0;
        let result = loop {
            if off == self.buf.len() {
                break Ok(());
            }
            match self.file.write(&self.buf[off..]) {
                Ok(0) => break Err(std::io::Error::from(ErrorKind::WriteZero)),
                Ok(n) => off += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.consume(off);
        match result {
            Ok(()) => {
                if self.failed_at.take().is_some() {
                    log::info!("flatstore: '{}': writing again", self.name);
                }
                true
            }
            Err(e) => {
                self.write_errors += 1;
                self.failed_at = Some(Instant::now());
                let msg = format!(
                    "flatstore: write to '{}' failed: {e}; {} bytes kept, {} lines dropped so far",
                    self.name,
                    self.buf.len(),
                    self.lines_dropped
                );
                self.log_limited(&msg);
                false
            }
        }
    }

    /// Forget the first `n` written bytes.
    fn consume(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        if n == self.buf.len() {
            self.buf.clear();
            self.partial_head = false;
            // A burst (or an outage) can grow the buffer to MAX_PENDING; don't keep that per file.
            if self.buf.capacity() > 4 * WRITE_THRESHOLD {
                self.buf.shrink_to(2 * WRITE_THRESHOLD);
            }
        } else {
            self.partial_head = self.buf[n - 1] != b'\n';
            self.buf.drain(..n);
        }
    }

    /// Close and reopen as `name` (a rotation). On failure the current file stays open and in
    /// use. Returns the previous name.
    pub fn reopen(&mut self, name: String, mode: u32) -> Result<String, String> {
        let file = open_append(&name, mode)?;
        // Lines buffered so far belong to the old file; and a line begun there must end there.
        self.flush(true);
        if self.partial_head {
            let cut = self
                .buf
                .iter()
                .position(|&b| b == b'\n')
                .map_or(self.buf.len(), |i| i + 1);
            self.buf.drain(..cut);
            self.partial_head = false;
            self.lines_dropped += 1;
            log::error!(
                "flatstore: '{}': the end of a partly written line was dropped at rotation",
                self.name
            );
        }
        self.file = file;
        self.failed_at = None;
        Ok(std::mem::replace(&mut self.name, name))
    }

    fn log_limited(&mut self, msg: &str) {
        let now = Instant::now();
        if self
            .last_log
            .is_some_and(|t| now.duration_since(t) < LOG_EVERY)
        {
            self.unlogged += 1;
            return;
        }
        if self.unlogged > 0 {
            log::error!("{msg} ({} similar messages not logged)", self.unlogged);
        } else {
            log::error!("{msg}");
        }
        self.last_log = Some(now);
        self.unlogged = 0;
    }
}

impl Drop for OutFile {
    /// Closing (free, destroy, unload) writes what is left; what cannot be written is reported.
    fn drop(&mut self) {
        if !self.flush(true) {
            log::error!(
                "flatstore: closing '{}' with {} bytes unwritten",
                self.name,
                self.buf.len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};

    fn line(n: usize) -> impl FnOnce(&mut Vec<u8>) {
        move |b: &mut Vec<u8>| {
            b.resize(b.len() + n - 1, b'x');
            b.push(b'\n');
        }
    }

    #[test]
    fn buffered_until_flush_then_written_whole() {
        let dir = TempDir::new("out-flush");
        let mut f = OutFile::open(dir.path_str("a.log"), 0o644).expect("open");
        f.push_line(|b| b.extend_from_slice(b"one\n"))
            .expect("buffered");
        f.push_line(|b| b.extend_from_slice(b"two\n"))
            .expect("buffered");
        assert_eq!(dir.read("a.log"), "");
        assert!(f.flush(false));
        assert_eq!(dir.read("a.log"), "one\ntwo\n");
        assert_eq!(f.stats(), FileStats::default());
    }

    #[test]
    fn large_buffer_is_written_without_flush() {
        let dir = TempDir::new("out-threshold");
        let mut f = OutFile::open(dir.path_str("a.log"), 0o644).expect("open");
        let n = WRITE_THRESHOLD / 100 + 1;
        for _ in 0..n {
            f.push_line(line(100)).expect("buffered");
        }
        assert_eq!(dir.read("a.log").len(), n * 100);
        assert!(!f.has_pending());
    }

    /// /dev/full fails every write with ENOSPC: lines are kept up to the cap, then dropped.
    #[test]
    fn failing_writes_keep_lines_up_to_the_cap() {
        if !std::path::Path::new("/dev/full").exists() {
            return;
        }
        let mut f = OutFile::open("/dev/full".into(), 0o644).expect("open /dev/full");
        f.push_line(line(10)).expect("buffered");
        assert!(!f.flush(false));
        assert_eq!(f.stats().write_errors, 1);
        // Back-off: an unforced flush right after a failure does not try again.
        assert!(!f.flush(false));
        assert_eq!(f.stats().write_errors, 1);
        assert!(!f.flush(true));
        assert_eq!(f.stats().write_errors, 2);

        let big = 1_000_000;
        let mut dropped = 0;
        for _ in 0..9 {
            if f.push_line(line(big)).is_err() {
                dropped += 1;
            }
        }
        assert_eq!(dropped, 1);
        let st = f.stats();
        assert_eq!((st.lines_dropped, st.pending_bytes), (1, 10 + 8 * big));
        // A line that still fits is kept.
        f.push_line(line(10)).expect("fits under the cap");
        // One line larger than the whole buffer is refused on its own.
        let err = f.push_line(line(MAX_PENDING + 1)).expect_err("too big");
        assert!(err.contains("line dropped"), "{err}");
        assert_eq!(f.stats().pending_bytes, 20 + 8 * big);
    }

    /// A full non-blocking pipe stops a write mid-line; the rest of that line must never start
    /// the next file after a rotation.
    #[test]
    fn short_write_then_rotation_drops_only_the_torn_line() {
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors pipe() returns.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors are fresh and owned here (closed on drop).
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut f = OutFile::open(format!("/proc/self/fd/{}", fds[1]), 0o644).expect("open pipe");
        let total = 100;
        for _ in 0..total {
            let _ = f.push_line(line(1000));
        }
        f.flush(true);
        drop(w);
        let mut piped = Vec::new();
        let mut reader = std::fs::File::from(r);
        // The OutFile still holds a write end, so read only what is there (non-blocking).
        // SAFETY: fcntl on a descriptor `reader` owns.
        unsafe { libc::fcntl(fds[0], libc::F_SETFL, libc::O_NONBLOCK) };
        let _ = reader.read_to_end(&mut piped);
        // No reader left: the rotation's last flush to the pipe fails (EPIPE) instead of adding.
        drop(reader);
        assert!(
            !piped.is_empty() && piped.len() < total * 1000,
            "pipe took {}",
            piped.len()
        );
        // Pipe capacities are powers of two, never a multiple of 1000: a line is always torn.
        let torn = piped.len() % 1000 != 0;
        assert!(torn, "the test needs a short write inside a line");

        let dir = TempDir::new("out-torn");
        let old = f.reopen(dir.path_str("b.log"), 0o644).expect("reopen");
        assert!(old.starts_with("/proc/self/fd/"));
        assert!(f.flush(true));
        let next = dir.read("b.log");
        assert!(
            next.lines().all(|l| l.len() == 999),
            "a torn line reached the new file"
        );
        let lines_in_pipe = piped.len().div_ceil(1000);
        assert_eq!(lines_in_pipe + next.lines().count(), total);
        assert_eq!(f.stats().lines_dropped, u64::from(torn));
    }

    #[test]
    fn reopen_failure_keeps_the_old_file() {
        let dir = TempDir::new("out-reopen-fail");
        let mut f = OutFile::open(dir.path_str("a.log"), 0o644).expect("open");
        f.push_line(|b| b.extend_from_slice(b"kept\n"))
            .expect("buffered");
        let err = f
            .reopen(dir.path_str("missing/b.log"), 0o644)
            .expect_err("no parent");
        assert!(err.contains("missing/b.log"), "{err}");
        assert_eq!(f.name(), dir.path_str("a.log"));
        assert!(f.flush(false));
        assert_eq!(dir.read("a.log"), "kept\n");
    }
}
