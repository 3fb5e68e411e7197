//! One open file and its line buffer.
//!
//! `raise` only appends to the buffer; the buffer goes out in one `write(2)` at `flush` (after
//! each batch of raises) or once it holds [`WRITE_THRESHOLD`] bytes. That is what makes a
//! million events a second possible: a syscall per event would cost more than the formatting.
//! Only whole lines are appended, so a write never starts or ends inside a line unless the kernel
//! itself stops short (then the rest of that line is written next, to the same file).
//!
//! Each line carries its delivery ticket until its outcome is known: written (all of its bytes
//! reached the file) or failed (the write failed, the buffer was full, or the file closed with it
//! unwritten). A failed write fails every whole line waiting and drops them, so the subscriber's
//! counters, and event_virtual's failover, learn it within one batch. After a failure new lines
//! are refused at once for [`RETRY_AFTER`]; the first line after it probes the file again.

use evi_sdk::Delivery;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Write out as soon as this much is buffered, without waiting for `flush`.
pub const WRITE_THRESHOLD: usize = 64 * 1024;
/// Most bytes kept per file while writes fail; whole lines past it are dropped (and counted).
pub const MAX_PENDING: usize = 8 * 1024 * 1024;
/// After a failed write, lines are refused for this long; then the next one probes the file.
pub const RETRY_AFTER: Duration = Duration::from_millis(100);
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

/// Outcomes decided by writes, for the module to report (`delivery_status`) after each call.
#[derive(Debug, Default)]
pub struct Outcomes {
    pub written: Vec<Delivery>,
    /// Failed deliveries and an index into `reasons`.
    pub failed: Vec<(Delivery, usize)>,
    pub reasons: Vec<String>,
}

impl Outcomes {
    fn fail_all(&mut self, tickets: impl Iterator<Item = Delivery>, why: String) {
        let r = self.reasons.len();
        let before = self.failed.len();
        self.failed.extend(tickets.map(|t| (t, r)));
        if self.failed.len() > before {
            self.reasons.push(why);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.written.is_empty() && self.failed.is_empty()
    }

    pub fn clear(&mut self) {
        self.written.clear();
        self.failed.clear();
        self.reasons.clear();
    }
}

pub struct OutFile {
    /// The real name: subscribed path + suffix.
    name: String,
    /// The directory every (re)open stays beneath, for MI subscriptions (see `open_append`).
    root: Option<PathBuf>,
    file: File,
    buf: Vec<u8>,
    /// `buf` starts with the rest of a line whose beginning is already in `file`.
    partial_head: bool,
    failed_at: Option<Instant>,
    last_log: Option<Instant>,
    unlogged: u64,
    lines_dropped: u64,
    write_errors: u64,
    /// Each buffered line's ticket and the stream offset just past its end.
    tickets: VecDeque<(Delivery, u64)>,
    /// Bytes ever taken off the front of `buf` (written, or cut at a rotation): the stream
    /// offset of `buf[0]`, so a line's end offset is `consumed + its end in buf`.
    consumed: u64,
    last_error: String,
}

/// Open for appending, creating it with `mode` (minus the umask).
///
/// `O_NONBLOCK` only matters for a FIFO: without a reader, `open` fails (ENXIO) instead of
/// blocking the module's thread; regular files ignore it.
///
/// With a `root` (an MI subscription under the daemon's `mi_flatstore_dir`) the kernel resolves
/// the name beneath it, refusing `..` and every symlink, at this open and every reopen.
fn open_append(name: &str, mode: u32, root: Option<&Path>) -> Result<File, String> {
    match root {
        None => OpenOptions::new()
            .append(true)
            .create(true)
            .mode(mode)
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(name),
        Some(r) => evi_sdk::fs::open_beneath(r, Path::new(name), mode, libc::O_NONBLOCK),
    }
    .map_err(|e| match root {
        Some(r) if matches!(e.raw_os_error(), Some(libc::EXDEV | libc::ELOOP)) => format!(
            "flatstore: cannot open '{name}': it leads outside {} or through a symlink ({e})",
            r.display()
        ),
        _ => format!("flatstore: cannot open '{name}': {e}"),
    })
}

impl OutFile {
    pub fn open(name: String, mode: u32, root: Option<PathBuf>) -> Result<OutFile, String> {
        let file = open_append(&name, mode, root.as_deref())?;
        Ok(OutFile {
            name,
            root,
            file,
            buf: Vec::new(),
            partial_head: false,
            failed_at: None,
            last_log: None,
            unlogged: 0,
            lines_dropped: 0,
            write_errors: 0,
            tickets: VecDeque::new(),
            consumed: 0,
            last_error: String::new(),
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

    /// Append one line that `format` writes (it must end with `\n`), delivered as `ticket`.
    /// `Err` when it is not taken (nothing of it is kept): writes are failing, or the buffer is
    /// full.
    pub fn push_line(
        &mut self,
        ticket: Delivery,
        format: impl FnOnce(&mut Vec<u8>),
        out: &mut Outcomes,
    ) -> Result<(), String> {
        if self.failed_at.is_some_and(|t| t.elapsed() < RETRY_AFTER) {
            return Err(format!(
                "flatstore: '{}' is failing: {}",
                self.name, self.last_error
            ));
        }
        let start = self.buf.len();
        format(&mut self.buf);
        if self.buf.len() > MAX_PENDING {
            let len = self.buf.len() - start;
            self.buf.truncate(start);
            self.lines_dropped += 1;
            let why = if start == 0 {
                format!("the line ({len} bytes) is larger than the {MAX_PENDING}-byte buffer")
            } else {
                format!("{start} bytes are still waiting to be written")
            };
            let msg = format!(
                "flatstore: '{}': line dropped: {why}; {} dropped so far",
                self.name, self.lines_dropped
            );
            self.log_limited(&msg);
            return Err(msg);
        }
        self.tickets
            .push_back((ticket, self.consumed + self.buf.len() as u64));
        if self.buf.len() >= WRITE_THRESHOLD {
            self.flush(out);
        }
        Ok(())
    }

    /// Write the buffer out. Returns whether all of it went; on a failure the whole lines that
    /// were waiting are failed and dropped (a partly written line keeps its rest, to finish it).
    pub fn flush(&mut self, out: &mut Outcomes) -> bool {
        match self.write_out(out) {
            Ok(()) => {
                if self.failed_at.take().is_some() {
                    log::info!("flatstore: '{}': writing again", self.name);
                }
                true
            }
            Err(e) => {
                self.write_errors += 1;
                self.failed_at = Some(Instant::now());
                self.last_error = e.to_string();
                let why = format!("flatstore: write to '{}' failed: {e}", self.name);
                let failed = self.drop_whole_lines(out, why);
                let msg = format!(
                    "flatstore: write to '{}' failed: {e}; {failed} line(s) failed, {} so far",
                    self.name, self.lines_dropped
                );
                self.log_limited(&msg);
                false
            }
        }
    }

    /// Write as much of the buffer as the file takes.
    fn write_out(&mut self, out: &mut Outcomes) -> std::io::Result<()> {
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
        self.consume(off, out);
        result
    }

    /// Bytes at the front of `buf` that end a line begun in the file (0 when none was).
    fn torn_len(&self) -> usize {
        if !self.partial_head {
            return 0;
        }
        self.buf
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.buf.len(), |i| i + 1)
    }

    /// Fail and drop every buffered line not yet begun in the file; returns how many.
    fn drop_whole_lines(&mut self, out: &mut Outcomes, why: String) -> u64 {
        // A line whose start is in the file already must be finished, or the file is torn.
        let keep = self.torn_len();
        let keep_tickets = usize::from(keep > 0).min(self.tickets.len());
        let failed = self.tickets.len() - keep_tickets;
        out.fail_all(self.tickets.drain(keep_tickets..).map(|(t, _)| t), why);
        self.buf.truncate(keep);
        self.lines_dropped += failed as u64;
        failed as u64
    }

    /// Write what is buffered before the file closes (free, destroy): lines that cannot be
    /// written are failed. Returns whether everything was written.
    pub fn close(&mut self, out: &mut Outcomes) -> bool {
        if self.flush(out) {
            return true;
        }
        if !self.buf.is_empty() {
            self.cut_torn_line(out);
        }
        false
    }

    /// The rest of a line whose start is in the file can never be finished there (the file is
    /// closing): fail it and drop its bytes, so it never starts another file.
    fn cut_torn_line(&mut self, out: &mut Outcomes) {
        let cut = self.torn_len();
        if cut == 0 {
            return;
        }
        self.buf.drain(..cut);
        self.consumed += cut as u64;
        self.partial_head = false;
        self.lines_dropped += 1;
        let why = format!(
            "flatstore: '{}' closed with the line partly written",
            self.name
        );
        out.fail_all(self.tickets.pop_front().into_iter().map(|(t, _)| t), why);
        log::error!(
            "flatstore: '{}': the end of a partly written line was dropped",
            self.name
        );
    }

    /// Forget the first `n` written bytes; lines now wholly in the file are written.
    fn consume(&mut self, n: usize, out: &mut Outcomes) {
        if n == 0 {
            return;
        }
        self.consumed += n as u64;
        while let Some(&(t, end)) = self.tickets.front() {
            if end > self.consumed {
                break;
            }
            out.written.push(t);
            self.tickets.pop_front();
        }
        if n == self.buf.len() {
            self.buf.clear();
            self.partial_head = false;
            // A burst can grow the buffer to MAX_PENDING; don't keep that per file.
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
    pub fn reopen(
        &mut self,
        name: String,
        mode: u32,
        out: &mut Outcomes,
    ) -> Result<String, String> {
        let file = open_append(&name, mode, self.root.as_deref())?;
        // Lines go to the old file while it takes them; the rest start the new one, except the
        // end of a line begun in the old file.
        let _ = self.write_out(out);
        self.cut_torn_line(out);
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
    /// Files are closed with [`OutFile::close`], which reports every line; this only catches a
    /// path that forgot to (the lines are written if possible, their outcomes are lost).
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            let mut lost = Outcomes::default();
            if !self.flush(&mut lost) || !self.tickets.is_empty() {
                log::error!(
                    "flatstore: '{}' dropped with {} bytes unwritten",
                    self.name,
                    self.buf.len()
                );
            }
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

    fn text(t: &'static [u8]) -> impl FnOnce(&mut Vec<u8>) {
        move |b: &mut Vec<u8>| b.extend_from_slice(t)
    }

    fn ids(d: &[Delivery]) -> Vec<u64> {
        d.iter().map(|d| d.0).collect()
    }

    #[test]
    fn buffered_until_flush_then_written_whole_and_reported() {
        let dir = TempDir::new("out-flush");
        let mut out = Outcomes::default();
        let mut f = OutFile::open(dir.path_str("a.log"), 0o644, None).expect("open");
        f.push_line(Delivery(1), text(b"one\n"), &mut out)
            .expect("buffered");
        f.push_line(Delivery(2), text(b"two\n"), &mut out)
            .expect("buffered");
        assert_eq!(dir.read("a.log"), "");
        assert!(out.is_empty(), "nothing is written yet");
        assert!(f.flush(&mut out));
        assert_eq!(dir.read("a.log"), "one\ntwo\n");
        assert_eq!(ids(&out.written), [1, 2]);
        assert!(out.failed.is_empty());
        assert_eq!(f.stats(), FileStats::default());
    }

    #[test]
    fn large_buffer_is_written_without_flush() {
        let dir = TempDir::new("out-threshold");
        let mut out = Outcomes::default();
        let mut f = OutFile::open(dir.path_str("a.log"), 0o644, None).expect("open");
        let n = WRITE_THRESHOLD / 100 + 1;
        for i in 0..n {
            f.push_line(Delivery(i as u64), line(100), &mut out)
                .expect("buffered");
        }
        assert_eq!(dir.read("a.log").len(), n * 100);
        assert!(!f.has_pending());
        assert_eq!(out.written.len(), n);
    }

    /// /dev/full fails every write with ENOSPC: the waiting lines fail at once, new ones are
    /// refused during the back-off, and the first one after it probes the file again.
    #[test]
    fn failing_writes_fail_the_waiting_lines_then_refuse_until_the_probe() {
        if !std::path::Path::new("/dev/full").exists() {
            return;
        }
        let mut out = Outcomes::default();
        let mut f = OutFile::open("/dev/full".into(), 0o644, None).expect("open /dev/full");
        for t in 1..=3 {
            f.push_line(Delivery(t), line(10), &mut out)
                .expect("buffered");
        }
        assert!(!f.flush(&mut out));
        let failed: Vec<u64> = out.failed.iter().map(|(d, _)| d.0).collect();
        assert_eq!(failed, [1, 2, 3]);
        assert!(
            out.reasons[0].contains("No space left on device"),
            "{:?}",
            out.reasons
        );
        assert_eq!(
            f.stats(),
            FileStats {
                lines_dropped: 3,
                write_errors: 1,
                pending_bytes: 0
            }
        );
        let err = f
            .push_line(Delivery(4), line(10), &mut out)
            .expect_err("backing off");
        assert!(err.contains("is failing: No space left on device"), "{err}");
        std::thread::sleep(RETRY_AFTER);
        out.clear();
        f.push_line(Delivery(5), line(10), &mut out)
            .expect("the probe");
        assert!(!f.flush(&mut out));
        assert_eq!(out.failed.iter().map(|(d, _)| d.0).collect::<Vec<_>>(), [5]);
        assert_eq!(f.stats().write_errors, 2);
        // One line larger than the whole buffer is refused on its own.
        std::thread::sleep(RETRY_AFTER);
        let err = f
            .push_line(Delivery(6), line(MAX_PENDING + 1), &mut out)
            .expect_err("too big");
        assert!(err.contains("line dropped"), "{err}");
    }

    /// A full non-blocking pipe stops a write mid-line; the rest of that line must never start
    /// the next file after a rotation, and every line gets exactly one outcome.
    #[test]
    fn short_write_then_rotation_drops_only_the_torn_line() {
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors pipe() returns.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors are fresh and owned here (closed on drop).
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut out = Outcomes::default();
        let mut f =
            OutFile::open(format!("/proc/self/fd/{}", fds[1]), 0o644, None).expect("open pipe");
        let total = 100;
        let mut refused = 0;
        for t in 0..total {
            // The pipe fills at WRITE_THRESHOLD flushes: later lines are refused at once.
            if f.push_line(Delivery(t), line(1000), &mut out).is_err() {
                refused += 1;
            }
        }
        drop(w);
        let mut piped = Vec::new();
        let mut reader = std::fs::File::from(r);
        // The OutFile still holds a write end, so read only what is there (non-blocking).
        // SAFETY: fcntl on a descriptor `reader` owns.
        unsafe { libc::fcntl(fds[0], libc::F_SETFL, libc::O_NONBLOCK) };
        let _ = reader.read_to_end(&mut piped);
        drop(reader);
        assert!(
            !piped.is_empty() && piped.len() < total as usize * 1000,
            "pipe took {}",
            piped.len()
        );
        // Pipe capacities are powers of two, never a multiple of 1000: a line is always torn.
        assert!(
            piped.len() % 1000 != 0,
            "the test needs a short write inside a line"
        );

        let dir = TempDir::new("out-torn");
        let old = f
            .reopen(dir.path_str("b.log"), 0o644, &mut out)
            .expect("reopen");
        assert!(old.starts_with("/proc/self/fd/"));
        assert!(f.flush(&mut out));
        let next = dir.read("b.log");
        assert!(
            next.lines().all(|l| l.len() == 999),
            "a torn line reached the new file"
        );
        let whole_in_pipe = piped.len() / 1000;
        assert_eq!(out.written.len(), whole_in_pipe + next.lines().count());
        // Every line got exactly one answer: refused at once, written, or failed (the torn one
        // among them, counted as dropped).
        assert_eq!(
            out.written.len() + out.failed.len() + refused,
            total as usize
        );
        assert!(!out.failed.is_empty());
        assert!(f.stats().lines_dropped >= 1);
    }

    #[test]
    fn reopen_failure_keeps_the_old_file() {
        let dir = TempDir::new("out-reopen-fail");
        let mut out = Outcomes::default();
        let mut f = OutFile::open(dir.path_str("a.log"), 0o644, None).expect("open");
        f.push_line(Delivery(1), text(b"kept\n"), &mut out)
            .expect("buffered");
        let err = f
            .reopen(dir.path_str("missing/b.log"), 0o644, &mut out)
            .expect_err("no parent");
        assert!(err.contains("missing/b.log"), "{err}");
        assert_eq!(f.name(), dir.path_str("a.log"));
        assert!(f.flush(&mut out));
        assert_eq!(dir.read("a.log"), "kept\n");
        assert_eq!(ids(&out.written), [1]);
    }
}
