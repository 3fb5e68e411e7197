//! The sinks the bench counts arrivals on: a flatstore file, UDP and unix datagram receivers,
//! and a TCP consumer of `event_stream`'s back-to-back JSON objects.

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Something the bench counts arrivals on.
pub trait Sink {
    /// Poll: events seen so far.
    fn count(&mut self) -> u64;
    /// When the last one arrived.
    fn last(&self) -> Option<Instant>;
}

/// Counts the lines of a file as it grows (reads only what is new).
pub struct LineCounter {
    path: PathBuf,
    file: Option<std::fs::File>,
    lines: u64,
    last: Option<Instant>,
    buf: Vec<u8>,
}

impl LineCounter {
    pub fn new(path: PathBuf) -> LineCounter {
        LineCounter {
            path,
            file: None,
            lines: 0,
            last: None,
            buf: vec![0; 1 << 20],
        }
    }
}

impl Sink for LineCounter {
    fn count(&mut self) -> u64 {
        if self.file.is_none() {
            self.file = std::fs::File::open(&self.path).ok();
        }
        if let Some(f) = self.file.as_mut() {
            while let Ok(k) = f.read(&mut self.buf) {
                if k == 0 {
                    break;
                }
                self.lines += self.buf[..k].iter().filter(|&&c| c == b'\n').count() as u64;
                self.last = Some(Instant::now());
            }
        }
        self.lines
    }

    fn last(&self) -> Option<Instant> {
        self.last
    }
}

/// UDP sockets on 127.0.0.1 drained by one thread, counting datagrams per socket.
pub struct UdpSink {
    pub ports: Vec<u16>,
    counts: Arc<Vec<AtomicU64>>,
    last: Arc<Mutex<Option<Instant>>>,
    first: Arc<Mutex<Option<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl UdpSink {
    /// `n` receivers, each with a large receive buffer, drained in a non-blocking loop that naps
    /// when every socket is empty (a consumer built for volume).
    pub fn new(n: usize) -> Result<UdpSink, String> {
        let mut socks = Vec::new();
        let mut ports = Vec::new();
        for _ in 0..n {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            set_rcvbuf(&s, if n > 4 { 8 << 20 } else { 64 << 20 });
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
            ports.push(s.local_addr().map_err(|e| e.to_string())?.port());
            socks.push(s);
        }
        let counts: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
        let last = Arc::new(Mutex::new(None));
        let first = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (counts, last, first, stop) =
                (counts.clone(), last.clone(), first.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    let mut got = 0u64;
                    for (i, s) in socks.iter().enumerate() {
                        let mut k = 0u64;
                        while let Ok(len) = s.recv(&mut buf) {
                            if k == 0 && got == 0 {
                                let mut f = first.lock().unwrap_or_else(|p| p.into_inner());
                                if f.is_none() {
                                    *f = Some(buf[..len].to_vec());
                                }
                            }
                            k += 1;
                            if k == 4096 {
                                break;
                            }
                        }
                        if k > 0 {
                            counts[i].fetch_add(k, Ordering::Relaxed);
                            got += k;
                        }
                    }
                    if got > 0 {
                        *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                    } else {
                        std::thread::sleep(Duration::from_micros(300));
                    }
                }
            })
        };
        Ok(UdpSink {
            ports,
            counts,
            last,
            first,
            stop,
            thread: Some(thread),
        })
    }

    pub fn uri(&self, i: usize) -> String {
        format!("udp:127.0.0.1:{}", self.ports[i])
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    pub fn per_socket(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// The first datagram received (the payload evid sends).
    pub fn first(&self) -> Option<Vec<u8>> {
        self.first.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Sink for UdpSink {
    fn count(&mut self) -> u64 {
        self.total()
    }
    fn last(&self) -> Option<Instant> {
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for UdpSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn set_rcvbuf(sock: &std::net::UdpSocket, bytes: i32) {
    use std::os::fd::AsRawFd;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: setsockopt on a socket we own, with a pointer to a local int.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &bytes as *const i32 as *const libc::c_void,
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        if r == 0 {
            return;
        }
    }
}

/// The kernel's count of UDP datagrams dropped for a full receive buffer (all sockets).
pub fn udp_rcvbuf_errors() -> u64 {
    let s = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut lines = s.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(h), Some(v)) = (lines.next(), lines.next()) else {
        return 0;
    };
    h.split_whitespace()
        .zip(v.split_whitespace())
        .find(|(k, _)| *k == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// A unix datagram socket bound in a scratch directory, drained by one thread blocked in `recv`
/// (the kernel queues only `net.unix.max_dgram_qlen` datagrams for it, so it must wake at once:
/// the thread asks for real-time priority, `SCHED_FIFO` 1, when allowed — a consumer built for
/// volume, as the UDP receivers' 64 MB buffers are).
pub struct UnixSink {
    pub path: PathBuf,
    /// Whether the receiver thread got `SCHED_FIFO`.
    pub realtime: bool,
    count: Arc<AtomicU64>,
    last: Arc<Mutex<Option<Instant>>>,
    first: Arc<Mutex<Option<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl UnixSink {
    pub fn new(path: PathBuf) -> Result<UnixSink, String> {
        let _ = std::fs::remove_file(&path);
        let s = std::os::unix::net::UnixDatagram::bind(&path)
            .map_err(|e| format!("bind {}: {e}", path.display()))?;
        s.set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(|e| e.to_string())?;
        let count = Arc::new(AtomicU64::new(0));
        let last = Arc::new(Mutex::new(None));
        let first = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (rt_tx, rt_rx) = std::sync::mpsc::channel();
        let thread = {
            let (count, last, first, stop) =
                (count.clone(), last.clone(), first.clone(), stop.clone());
            std::thread::spawn(move || {
                let _ = rt_tx.send(realtime());
                let mut buf = vec![0u8; 65536];
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let len = match s.recv(&mut buf) {
                        Ok(len) => len,
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock
                                    | std::io::ErrorKind::TimedOut
                                    | std::io::ErrorKind::Interrupted
                            ) =>
                        {
                            continue
                        }
                        // Never spin at real-time priority on a broken socket.
                        Err(_) => return,
                    };
                    if n == 0 {
                        *first.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(buf[..len].to_vec());
                    }
                    n += 1;
                    *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                    count.store(n, Ordering::Relaxed);
                }
            })
        };
        Ok(UnixSink {
            path,
            realtime: rt_rx.recv().unwrap_or(false),
            count,
            last,
            first,
            stop,
            thread: Some(thread),
        })
    }

    pub fn uri(&self) -> String {
        format!("unix:{}", self.path.display())
    }

    pub fn first(&self) -> Option<Vec<u8>> {
        self.first.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Ask for `SCHED_FIFO` priority 1 for the calling thread; false when not allowed.
fn realtime() -> bool {
    let p = libc::sched_param { sched_priority: 1 };
    // SAFETY: sets the scheduling policy of the calling thread, with a pointer to a local.
    unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &p) == 0 }
}

impl Sink for UnixSink {
    fn count(&mut self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
    fn last(&self) -> Option<Instant> {
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for UnixSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Counts the JSON values of a byte stream written back to back with no framing (as
/// `event_stream` writes them): a value ends when its outermost `}`/`]` closes, outside strings.
#[derive(Debug, Default, Clone)]
pub struct JsonSplitter {
    depth: u32,
    in_str: bool,
    esc: bool,
    /// Bytes of the first complete value, kept to check the payload.
    pub first: Vec<u8>,
    done_first: bool,
    /// Bytes that were not inside any value (anything but whitespace there is a framing error).
    pub stray: u64,
}

impl JsonSplitter {
    /// Feed bytes; returns the number of values that ended in them.
    pub fn feed(&mut self, bytes: &[u8]) -> u64 {
        let mut ended = 0;
        for &b in bytes {
            if !self.done_first && (self.depth > 0 || b == b'{' || b == b'[') {
                self.first.push(b);
            }
            if self.in_str {
                if self.esc {
                    self.esc = false;
                } else if b == b'\\' {
                    self.esc = true;
                } else if b == b'"' {
                    self.in_str = false;
                }
                continue;
            }
            match b {
                b'"' if self.depth > 0 => self.in_str = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' if self.depth > 0 => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        ended += 1;
                        self.done_first = true;
                    }
                }
                b' ' | b'\n' | b'\r' | b'\t' => {}
                _ if self.depth == 0 => self.stray += 1,
                _ => {}
            }
        }
        ended
    }
}

/// A TCP consumer on 127.0.0.1: accepts every connection and counts the complete JSON objects
/// read on each (an object cut by a broken connection is not counted; `event_stream` writes it
/// again, whole, on the next one).
pub struct TcpSink {
    pub port: u16,
    count: Arc<AtomicU64>,
    conns: Arc<AtomicU64>,
    stray: Arc<AtomicU64>,
    last: Arc<Mutex<Option<Instant>>>,
    first: Arc<Mutex<Option<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TcpSink {
    pub fn new() -> Result<TcpSink, String> {
        let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = l.local_addr().map_err(|e| e.to_string())?.port();
        l.set_nonblocking(true).map_err(|e| e.to_string())?;
        let count = Arc::new(AtomicU64::new(0));
        let conns = Arc::new(AtomicU64::new(0));
        let stray = Arc::new(AtomicU64::new(0));
        let last = Arc::new(Mutex::new(None));
        let first = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (count, conns, stray, last, first, stop) = (
                count.clone(),
                conns.clone(),
                stray.clone(),
                last.clone(),
                first.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let mut readers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let Ok((s, _)) = l.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    conns.fetch_add(1, Ordering::Relaxed);
                    let (count, stray, last, first, stop) = (
                        count.clone(),
                        stray.clone(),
                        last.clone(),
                        first.clone(),
                        stop.clone(),
                    );
                    readers.push(std::thread::spawn(move || {
                        read_objects(s, &count, &stray, &last, &first, &stop)
                    }));
                }
                for r in readers {
                    let _ = r.join();
                }
            })
        };
        Ok(TcpSink {
            port,
            count,
            conns,
            stray,
            last,
            first,
            stop,
            thread: Some(thread),
        })
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.conns.load(Ordering::Relaxed)
    }

    /// Bytes seen outside any JSON object (a framing error when not 0).
    pub fn stray(&self) -> u64 {
        self.stray.load(Ordering::Relaxed)
    }

    pub fn first(&self) -> Option<Vec<u8>> {
        self.first.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn read_objects(
    mut s: std::net::TcpStream,
    count: &AtomicU64,
    stray: &AtomicU64,
    last: &Mutex<Option<Instant>>,
    first: &Mutex<Option<Vec<u8>>>,
    stop: &AtomicBool,
) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = vec![0u8; 256 << 10];
    let mut split = JsonSplitter::default();
    let mut stray_seen = 0;
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                let ended = split.feed(&buf[..k]);
                if ended > 0 {
                    count.fetch_add(ended, Ordering::Relaxed);
                    *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                    let mut f = first.lock().unwrap_or_else(|p| p.into_inner());
                    if f.is_none() {
                        *f = Some(split.first.clone());
                    }
                }
                if split.stray > stray_seen {
                    stray.fetch_add(split.stray - stray_seen, Ordering::Relaxed);
                    stray_seen = split.stray;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
}

impl Sink for TcpSink {
    fn count(&mut self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
    fn last(&self) -> Option<Instant> {
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for TcpSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::JsonSplitter;

    #[test]
    fn splitter_counts_back_to_back_objects_across_reads() {
        let a = br#"{"jsonrpc":"2.0","method":"E","params":{"s":"a}\"{b","n":[1,{"x":2}]}}"#;
        let mut stream = Vec::new();
        for _ in 0..3 {
            stream.extend_from_slice(a);
        }
        stream.push(b'\n');
        let mut s = JsonSplitter::default();
        let mut n = 0;
        for chunk in stream.chunks(7) {
            n += s.feed(chunk);
        }
        assert_eq!(n, 3);
        assert_eq!(s.first, a.to_vec());
        assert_eq!(s.stray, 0);
        // A cut object is not counted.
        assert_eq!(JsonSplitter::default().feed(&a[..a.len() - 1]), 0);
    }
}
