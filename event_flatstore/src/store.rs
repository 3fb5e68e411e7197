//! The transport's logic without the host: sockets, raise, flush, rotation.
//!
//! [`crate::EventFlatstore`] wraps this with the [`evi_sdk::Host`] (to raise
//! `E_FLATSTORE_ROTATION`); tests drive it directly.

use crate::config::Config;
use crate::files::Files;
use crate::line::LineFormat;
use crate::outfile::{FileStats, Outcomes};
use crate::suffix::{now_secs, Suffix};
use crate::uri;
use evi_sdk::{Delivery, Event, Params};
use std::path::PathBuf;

/// A `flatstore:` subscriber: the path as given and its shared open file.
#[derive(Debug)]
pub struct Socket {
    path: String,
    /// `None` once freed, so a stray second `free` or late `raise` is harmless.
    slot: Option<usize>,
}

impl Socket {
    /// The path as subscribed (without the suffix).
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// One completed rotation (reopen) of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The subscribed path (without suffix).
    pub path: String,
    /// Full name of the file closed.
    pub old_filename: String,
    /// Full name of the file now open.
    pub filename: String,
    /// Unix seconds of the rotation.
    pub timestamp: i64,
}

/// Why a rotation did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateError {
    /// No subscribed file has this path.
    NotFound,
    /// The new file could not be opened; the old one stays in use.
    Reopen(String),
}

/// The flatstore transport's state.
pub struct Flatstore {
    format: LineFormat,
    suffix: Option<Suffix>,
    files: Files,
    /// Lines whose outcome is known and not yet reported (see [`Flatstore::outcomes`]).
    outcomes: Outcomes,
}

impl Flatstore {
    /// Check the modparams and start with no file open.
    pub fn new(params: &Params) -> Result<Flatstore, String> {
        Config::from_params(params).map(Flatstore::from_config)
    }

    pub fn from_config(c: Config) -> Flatstore {
        Flatstore {
            format: c.format,
            suffix: c.suffix,
            files: Files::new(c.max_open, c.mode),
            outcomes: Outcomes::default(),
        }
    }

    /// The real file name for `path` now.
    fn file_name(&self, path: &str, now: i64) -> String {
        match &self.suffix {
            Some(s) => format!("{path}{}", s.render(now)),
            None => path.to_string(),
        }
    }

    /// Parse a socket body: share the file if the path is open, else check and open it
    /// (beneath `root` for an MI subscription under `mi_flatstore_dir`).
    pub fn parse(&mut self, body: &str, root: Option<PathBuf>) -> Result<Socket, String> {
        let path = uri::parse_body(body)?;
        let slot = match self.files.share(path) {
            Some(slot) => slot,
            None => {
                self.files.check_room(path)?;
                let name = self.file_name(path, now_secs());
                uri::check_target(&name)?;
                self.files.open(path, name, root)?
            }
        };
        Ok(Socket {
            path: path.to_string(),
            slot: Some(slot),
        })
    }

    /// Same destination = same path string (as in OpenSIPS).
    pub fn matches(a: &Socket, b: &Socket) -> bool {
        a.path == b.path
    }

    pub fn print(socket: &Socket, out: &mut String) {
        out.push_str(&socket.path);
    }

    /// Release the socket's reference; the file closes with its last socket.
    pub fn free(&mut self, socket: &mut Socket) {
        if let Some(slot) = socket.slot.take() {
            self.files.release(slot, &mut self.outcomes);
        }
    }

    /// Buffer one record for the socket's file (written at the next flush); its outcome goes
    /// to [`Flatstore::outcomes`] once the write decides it.
    pub fn raise(
        &mut self,
        socket: &Socket,
        event: &Event<'_>,
        ticket: Delivery,
    ) -> Result<(), String> {
        let slot = socket.slot.ok_or("flatstore: socket already freed")?;
        let format = &self.format;
        self.files.append(
            slot,
            ticket,
            |buf| format.append(event, buf),
            &mut self.outcomes,
        )
    }

    /// Write buffered lines out (after each batch of raises).
    pub fn flush(&mut self) {
        self.files.flush(&mut self.outcomes);
    }

    /// Outcomes decided since the last call: the module reports each one once, then clears.
    pub fn outcomes(&mut self) -> &mut Outcomes {
        &mut self.outcomes
    }

    /// Flush, close and reopen the file subscribed as `path`, re-evaluating the suffix.
    pub fn rotate(&mut self, path: &str) -> Result<Rotation, RotateError> {
        let slot = self.files.find(path).ok_or(RotateError::NotFound)?;
        self.reopen_slot(slot).map_err(RotateError::Reopen)
    }

    /// Reopen every open file (SIGHUP-style, e.g. after logrotate moved them away). Files that
    /// cannot be reopened keep their current file and are reported as `Err`.
    pub fn reopen_all(&mut self) -> Vec<Result<Rotation, String>> {
        self.files
            .slots()
            .into_iter()
            .map(|slot| self.reopen_slot(slot))
            .collect()
    }

    fn reopen_slot(&mut self, slot: usize) -> Result<Rotation, String> {
        let path = self
            .files
            .path(slot)
            .ok_or("flatstore: file is not open")?
            .to_string();
        let timestamp = now_secs();
        let name = self.file_name(&path, timestamp);
        uri::check_target(&name)?;
        let old_filename = self.files.reopen(slot, name.clone(), &mut self.outcomes)?;
        Ok(Rotation {
            path,
            old_filename,
            filename: name,
            timestamp,
        })
    }

    /// Distinct files open.
    pub fn open_files(&self) -> usize {
        self.files.open_count()
    }

    /// The real file name open for a subscribed path.
    pub fn file_name_of(&self, path: &str) -> Option<&str> {
        self.files.find(path).and_then(|slot| self.files.name(slot))
    }

    /// Counters of the file subscribed as `path`.
    pub fn stats(&self, path: &str) -> Option<FileStats> {
        self.files
            .find(path)
            .and_then(|slot| self.files.stats(slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{umask, TempDir};
    use evi_sdk::testing::TestEvent;
    use evi_sdk::ParamValue;
    use std::os::unix::fs::PermissionsExt;

    fn store(pairs: &[(&str, ParamValue)]) -> Flatstore {
        Flatstore::new(&Params::from_pairs(pairs)).expect("valid params")
    }

    fn raise(fs: &mut Flatstore, s: &Socket, ev: &TestEvent) {
        ev.with(|e| fs.raise(s, e, Delivery(0))).expect("raise");
    }

    fn ev(v: &str) -> TestEvent {
        TestEvent::new("E").str(None, v)
    }

    #[test]
    fn lines_appear_after_flush_in_raise_order() {
        let dir = TempDir::new("store-flush");
        let mut fs = store(&[]);
        let s = fs.parse(&dir.path_str("a.log"), None).expect("parse");
        for v in ["1", "2", "3"] {
            raise(&mut fs, &s, &ev(v));
        }
        assert_eq!(dir.read("a.log"), "");
        fs.flush();
        assert_eq!(dir.read("a.log"), "E,1\nE,2\nE,3\n");
        raise(&mut fs, &s, &ev("4"));
        fs.flush();
        assert_eq!(dir.read("a.log"), "E,1\nE,2\nE,3\nE,4\n");
    }

    #[test]
    fn same_path_shares_one_file_until_the_last_free() {
        let dir = TempDir::new("store-share");
        let path = dir.path_str("a.log");
        let mut fs = store(&[]);
        let mut a = fs.parse(&path, None).expect("parse a");
        let mut b = fs.parse(&path, None).expect("parse b");
        assert!(Flatstore::matches(&a, &b));
        assert_eq!(fs.open_files(), 1);
        raise(&mut fs, &a, &ev("a"));
        raise(&mut fs, &b, &ev("b"));
        raise(&mut fs, &a, &ev("c"));
        fs.free(&mut a);
        assert_eq!(fs.open_files(), 1);
        raise(&mut fs, &b, &ev("d"));
        assert!(a.path() == path && ev("x").with(|e| fs.raise(&a, e, Delivery(0))).is_err());
        fs.free(&mut a); // a second free is harmless
        fs.free(&mut b);
        assert_eq!(fs.open_files(), 0);
        // Closing wrote what was buffered, in raise order across both sockets.
        assert_eq!(dir.read("a.log"), "E,a\nE,b\nE,c\nE,d\n");
    }

    #[test]
    fn print_is_the_path_as_given() {
        let dir = TempDir::new("store-print");
        let mut fs = store(&[]);
        let body = format!("{}/./a.log", dir.path_str("").trim_end_matches('/'));
        let s = fs.parse(&body, None).expect("parse");
        let mut out = String::new();
        Flatstore::print(&s, &mut out);
        assert_eq!(out, body);
        let other = fs.parse(&dir.path_str("a.log"), None).expect("parse");
        assert!(
            !Flatstore::matches(&s, &other),
            "different path strings are different sockets"
        );
    }

    #[test]
    fn max_open_sockets_limits_distinct_files() {
        let dir = TempDir::new("store-max");
        let mut fs = store(&[("max_open_sockets", ParamValue::Int(2))]);
        let mut a = fs.parse(&dir.path_str("a.log"), None).expect("a");
        let _b = fs.parse(&dir.path_str("b.log"), None).expect("b");
        let _a2 = fs
            .parse(&dir.path_str("a.log"), None)
            .expect("sharing needs no new file");
        let err = fs
            .parse(&dir.path_str("c.log"), None)
            .expect_err("third file");
        assert!(
            err.contains("max_open_sockets (2)") && err.contains("c.log"),
            "{err}"
        );
        assert!(
            !std::path::Path::new(&dir.path_str("c.log")).exists(),
            "refused before open"
        );
        fs.free(&mut a);
        assert_eq!(fs.open_files(), 2, "a.log still has a socket");
    }

    #[test]
    fn bad_paths_fail_to_parse() {
        let dir = TempDir::new("store-bad");
        let mut fs = store(&[]);
        assert!(fs.parse("", None).is_err());
        let err = fs.parse(&dir.path_str(""), None).expect_err("directory");
        assert!(err.contains("is a directory"), "{err}");
        let missing = dir.path_str("no/such/dir/a.log");
        let err = fs.parse(&missing, None).expect_err("missing parent");
        assert!(
            err.contains(&missing) && err.contains("No such file or directory"),
            "{err}"
        );
        assert_eq!(fs.open_files(), 0);
    }

    #[test]
    fn file_permissions_are_applied() {
        let dir = TempDir::new("store-perms");
        for mode in ["600", "640", "0444"] {
            let mut fs = store(&[("file_permissions", ParamValue::Str(mode.into()))]);
            let name = dir.path_str(&format!("m{mode}.log"));
            let _s = fs.parse(&name, None).expect("parse");
            let got = std::fs::metadata(&name)
                .expect("created")
                .permissions()
                .mode()
                & 0o7777;
            let want = u32::from_str_radix(mode, 8).expect("octal") & !umask();
            assert_eq!(got, want, "mode {mode}");
        }
    }

    #[test]
    fn rotate_reopens_after_the_file_was_renamed_away() {
        let dir = TempDir::new("store-rotate");
        let path = dir.path_str("a.log");
        let mut fs = store(&[]);
        let s = fs.parse(&path, None).expect("parse");
        raise(&mut fs, &s, &ev("old"));
        fs.flush();
        std::fs::rename(&path, dir.path_str("a.log.1")).expect("rename");
        raise(&mut fs, &s, &ev("buffered before rotate"));
        let r = fs.rotate(&path).expect("rotate");
        assert_eq!(
            (r.old_filename.as_str(), r.filename.as_str()),
            (path.as_str(), path.as_str())
        );
        assert!(r.timestamp > 1_600_000_000);
        raise(&mut fs, &s, &ev("new"));
        fs.flush();
        assert_eq!(dir.read("a.log.1"), "E,old\nE,buffered before rotate\n");
        assert_eq!(dir.read("a.log"), "E,new\n");
    }

    #[test]
    fn rotate_unknown_path_is_not_found() {
        let dir = TempDir::new("store-rotate-404");
        let mut fs = store(&[]);
        let _s = fs.parse(&dir.path_str("a.log"), None).expect("parse");
        assert_eq!(
            fs.rotate(&dir.path_str("b.log")),
            Err(RotateError::NotFound)
        );
    }

    #[test]
    fn suffix_forms_the_file_name_and_is_reevaluated() {
        let dir = TempDir::new("store-suffix");
        let path = dir.path_str("ev");
        let suffix = ParamValue::Str(".$Ts.log".into());
        let mut fs = store(&[("suffix", suffix)]);
        let s = fs.parse(&path, None).expect("parse");
        let first = fs.file_name_of(&path).expect("open").to_string();
        assert!(first.starts_with(&path) && first.ends_with(".log") && first != path);
        raise(&mut fs, &s, &ev("1"));
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let r = fs.rotate(&path).expect("rotate by the path without suffix");
        assert_eq!(r.old_filename, first);
        assert_eq!(r.filename, format!("{path}.{}.log", r.timestamp));
        raise(&mut fs, &s, &ev("2"));
        fs.flush();
        assert_eq!(std::fs::read_to_string(&first).expect("old file"), "E,1\n");
        assert_eq!(
            std::fs::read_to_string(&r.filename).expect("new file"),
            "E,2\n"
        );
        assert_eq!(fs.rotate(&r.filename), Err(RotateError::NotFound));
    }

    #[test]
    fn reopen_all_reopens_every_file() {
        let dir = TempDir::new("store-reopen-all");
        let mut fs = store(&[]);
        let a = fs.parse(&dir.path_str("a.log"), None).expect("a");
        let b = fs.parse(&dir.path_str("b.log"), None).expect("b");
        for name in ["a.log", "b.log"] {
            std::fs::rename(dir.path_str(name), dir.path_str(&format!("{name}.1"))).expect("mv");
        }
        let done = fs.reopen_all();
        assert_eq!(done.len(), 2);
        assert!(done.iter().all(Result::is_ok), "{done:?}");
        raise(&mut fs, &a, &ev("a"));
        raise(&mut fs, &b, &ev("b"));
        fs.flush();
        assert_eq!(
            (dir.read("a.log"), dir.read("b.log")),
            ("E,a\n".into(), "E,b\n".into())
        );
    }

    #[test]
    fn sockets_of_different_events_share_a_file() {
        let dir = TempDir::new("store-events");
        let mut fs = store(&[("delimiter", ParamValue::Str(";".into()))]);
        let s1 = fs.parse(&dir.path_str("a.log"), None).expect("1");
        let s2 = fs.parse(&dir.path_str("a.log"), None).expect("2");
        raise(&mut fs, &s1, &TestEvent::new("E_ONE").int(Some("n"), 1));
        raise(&mut fs, &s2, &TestEvent::new("E_TWO").str(Some("s"), "x;y"));
        fs.flush();
        assert_eq!(dir.read("a.log"), "E_ONE;1\nE_TWO;x y\n");
    }

    /// `cargo test -p event_flatstore --release -- --ignored --nocapture throughput`
    #[test]
    #[ignore = "timing; run in release"]
    fn throughput() {
        let dir = TempDir::new("store-bench");
        let mut fs = store(&[]);
        let s = fs.parse(&dir.path_str("bench.log"), None).expect("parse");
        let ev = TestEvent::new("E_DLG_STATE_CHANGED")
            .str(Some("callid"), "1a2b3c4d5e6f@10.0.0.1")
            .int(Some("hash_entry"), 7425)
            .str(Some("from_tag"), "f1a2b3")
            .int(Some("state"), 4);
        let n = 2_000_000;
        let start = std::time::Instant::now();
        ev.with(|e| {
            for i in 0..n {
                let _ = fs.raise(&s, e, Delivery(0));
                if i % 256 == 255 {
                    fs.flush(); // the host flushes after each batch
                }
            }
        });
        fs.flush();
        let secs = start.elapsed().as_secs_f64();
        let bytes = std::fs::metadata(dir.path_str("bench.log")).map_or(0, |m| m.len());
        eprintln!(
            "{n} events in {secs:.3}s = {:.0} events/s, {bytes} bytes",
            n as f64 / secs
        );
        assert_eq!(bytes, n as u64 * 56); // "E_DLG_STATE_CHANGED,1a2b3c4d5e6f@10.0.0.1,7425,f1a2b3,4\n"
    }
}
