//! A minimal MI JSON-RPC client over the three MI transports (used by `evictl` and the tests),
//! with no HTTP stack or async runtime:
//!
//! - `http://HOST:PORT/PATH`: `mi_http`, one HTTP/1.1 POST per request;
//! - `udp:HOST:PORT`: `mi_datagram` over UDP, one datagram each way;
//! - `unix:PATH`: `mi_datagram` over a unix datagram socket (the reply comes back to a socket
//!   this client binds, in the abstract namespace on Linux);
//! - `fifo:PATH[?reply_dir=DIR]`: `mi_fifo`, as OpenSIPS frames it: the client creates a reply
//!   FIFO in the daemon's `reply_dir` (default `/tmp/`), writes `:NAME:REQUEST` to the daemon's
//!   FIFO and reads the reply until the daemon closes the reply FIFO.
//!
//! [`Transport`] parses these URLs; [`Transport::call`] builds the one JSON-RPC request and
//! reads the reply the same way whatever carries it.

use serde_json::{json, Value};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The URL `mi_http` serves by default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8888/mi";

/// `mi_fifo`'s default `reply_dir` (OpenSIPS's), used when a `fifo:` URL names none.
pub const DEFAULT_REPLY_DIR: &str = "/tmp/";

/// The URL forms, for error messages and help texts.
pub const URL_FORMS: &str =
    "http://HOST:PORT/PATH, udp:HOST:PORT, unix:PATH or fifo:PATH[?reply_dir=DIR]";

/// Longest reply FIFO path `mi_fifo` accepts (OpenSIPS's `MAX_MI_FILENAME` less its NUL).
const MAX_REPLY_PATH: usize = 127;

/// Largest datagram reply read (`mi_datagram`'s largest `socket_buf_size`).
const MAX_DATAGRAM: usize = 1 << 20;

/// Where an MI request goes, parsed from a URL (see the module doc for the forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `mi_http`: the whole URL.
    Http(String),
    /// `mi_datagram` over UDP: host (an IPv6 address without brackets) and port.
    Udp { host: String, port: u16 },
    /// `mi_datagram` over a unix datagram socket at this path.
    Unix(PathBuf),
    /// `mi_fifo`: the daemon's FIFO and its `reply_dir`.
    Fifo { fifo: PathBuf, reply_dir: PathBuf },
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Http(url) => f.write_str(url),
            Transport::Udp { host, port } if host.contains(':') => {
                write!(f, "udp:[{host}]:{port}")
            }
            Transport::Udp { host, port } => write!(f, "udp:{host}:{port}"),
            Transport::Unix(path) => write!(f, "unix:{}", path.display()),
            Transport::Fifo { fifo, reply_dir } => {
                write!(f, "fifo:{}", fifo.display())?;
                if reply_dir != Path::new(DEFAULT_REPLY_DIR) {
                    write!(f, "?reply_dir={}", reply_dir.display())?;
                }
                Ok(())
            }
        }
    }
}

impl std::str::FromStr for Transport {
    type Err = String;

    fn from_str(url: &str) -> Result<Transport, String> {
        Transport::parse(url)
    }
}

impl Transport {
    /// Parse `http://HOST:PORT/PATH`, `udp:HOST:PORT`, `unix:PATH` or `fifo:PATH[?reply_dir=DIR]`.
    pub fn parse(url: &str) -> Result<Transport, String> {
        let bad = |why: &str| format!("bad MI URL {url:?}: {why}");
        if url.starts_with("http://") {
            split_url(url)?;
            return Ok(Transport::Http(url.to_string()));
        }
        if let Some(rest) = url.strip_prefix("udp:") {
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| bad("expected udp:HOST:PORT"))?;
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad(&format!("{port:?} is not a port")))?;
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            if host.is_empty() {
                return Err(bad("expected udp:HOST:PORT"));
            }
            return Ok(Transport::Udp {
                host: host.to_string(),
                port,
            });
        }
        if let Some(path) = url.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad("expected unix:PATH"));
            }
            return Ok(Transport::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = url.strip_prefix("fifo:") {
            let (fifo, reply_dir) = match rest.split_once("?reply_dir=") {
                Some((fifo, dir)) if !dir.is_empty() => (fifo, dir),
                Some(_) => return Err(bad("reply_dir= needs a directory")),
                None => (rest, DEFAULT_REPLY_DIR),
            };
            if fifo.is_empty() {
                return Err(bad("expected fifo:PATH"));
            }
            return Ok(Transport::Fifo {
                fifo: PathBuf::from(fifo),
                reply_dir: PathBuf::from(reply_dir),
            });
        }
        Err(format!("unsupported MI URL {url:?} (expected {URL_FORMS})"))
    }

    /// The evid module that serves this transport.
    pub fn module(&self) -> &'static str {
        match self {
            Transport::Http(_) => "mi_http",
            Transport::Udp { .. } | Transport::Unix(_) => "mi_datagram",
            Transport::Fifo { .. } => "mi_fifo",
        }
    }

    /// What to check when no answer came: a question for the user.
    pub fn hint(&self) -> String {
        match self {
            // mi_http is in the default config, so evid not running is the likely cause.
            Transport::Http(_) => "is evid running? see --url".to_string(),
            Transport::Fifo { reply_dir, .. } => format!(
                "is evid running with mi_fifo loaded (reply_dir {})? see --url",
                reply_dir.display()
            ),
            t => format!("is evid running with {} loaded? see --url", t.module()),
        }
    }

    /// Call one MI command and return its `result`.
    pub fn call(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, MiCallError> {
        let body =
            json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let v = self
            .exchange(body.as_bytes(), timeout)
            .map_err(MiCallError::Transport)?;
        if let Some(e) = v.get("error") {
            return Err(MiCallError::Rpc {
                code: e.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                data: e.get("data").and_then(Value::as_str).map(str::to_string),
            });
        }
        v.get("result")
            .cloned()
            .ok_or_else(|| MiCallError::Transport("reply without result".into()))
    }

    /// Send one JSON-RPC request and return the JSON reply.
    pub fn exchange(&self, body: &[u8], timeout: Duration) -> Result<Value, String> {
        let raw = match self {
            Transport::Http(url) => {
                let r = request(url, "POST", body, timeout)?;
                if r.status == 401 {
                    return Err(format!(
                        "evid at {url} wants a bearer token (set EVID_MI_TOKEN to mi_http's auth_token)"
                    ));
                }
                return serde_json::from_slice(&r.body)
                    .map_err(|_| format!("HTTP {} with a body that is not JSON", r.status));
            }
            Transport::Udp { host, port } => self.udp(host, *port, body, timeout)?,
            Transport::Unix(path) => self.unix(path, body, timeout)?,
            Transport::Fifo { fifo, reply_dir } => self.fifo(fifo, reply_dir, body, timeout)?,
        };
        // mi_datagram and mi_fifo answer engine failures in plain text ("400 Parse_error").
        serde_json::from_slice(&raw).map_err(|_| {
            let text = String::from_utf8_lossy(&raw);
            format!("evid at {self} answered {:?}, not JSON", text.trim())
        })
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> String {
        format!("cannot reach evid at {self}: {e}")
    }

    fn no_answer(&self, timeout: Duration) -> String {
        format!("no answer from evid at {self} within {}", secs(timeout))
    }

    fn udp(
        &self,
        host: &str,
        port: u16,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, String> {
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("cannot resolve {host}"))?;
        let local = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let s = UdpSocket::bind(local).map_err(|e| format!("cannot bind a UDP socket: {e}"))?;
        // Connected: only the daemon's datagrams arrive, and a closed port is reported
        // (ECONNREFUSED) instead of waiting for the timeout.
        s.connect(addr).map_err(|e| self.unreachable(e))?;
        s.send(body).map_err(|e| self.unreachable(e))?;
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.no_answer(timeout));
            }
            s.set_read_timeout(Some(left))
                .map_err(|e| format!("UDP socket: {e}"))?;
            match s.recv(&mut buf) {
                Ok(n) => return Ok(buf[..n].to_vec()),
                Err(e) if is_timeout(&e) => return Err(self.no_answer(timeout)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.unreachable(e)),
            }
        }
    }

    fn unix(&self, path: &Path, body: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
        let client = UnixClient::bind()?;
        let s = &client.sock;
        s.connect(path).map_err(|e| self.unreachable(e))?;
        let deadline = Instant::now() + timeout;
        let _ = s.set_write_timeout(Some(timeout));
        s.send(body).map_err(|e| {
            if is_timeout(&e) {
                self.no_answer(timeout)
            } else {
                self.unreachable(e)
            }
        })?;
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.no_answer(timeout));
            }
            s.set_read_timeout(Some(left))
                .map_err(|e| format!("unix socket: {e}"))?;
            match s.recv(&mut buf) {
                Ok(n) => return Ok(buf[..n].to_vec()),
                Err(e) if is_timeout(&e) => return Err(self.no_answer(timeout)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.unreachable(e)),
            }
        }
    }

    fn fifo(
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
                Some(libc::ENXIO) => self.unreachable("nobody reads the FIFO"),
                _ => self.unreachable(e),
            })?;
        // Never write a request into a regular file someone named by mistake.
        let is_fifo = req.metadata().is_ok_and(|m| m.file_type().is_fifo());
        if !is_fifo {
            return Err(self.unreachable(format!("{} is not a FIFO", fifo.display())));
        }
        let reply = ReplyFifo::create(reply_dir)?;
        let mut frame = Vec::with_capacity(body.len() + reply.name.len() + 2);
        frame.push(b':');
        frame.extend_from_slice(reply.name.as_bytes());
        frame.push(b':');
        frame.extend_from_slice(body);
        write_all_until(&mut req, &frame, deadline).map_err(|e| match e {
            Waited::Timeout => self.no_answer(timeout),
            Waited::Failed(e) => self.unreachable(e),
        })?;
        drop(req);
        read_to_eof_until(&reply.file, deadline).map_err(|e| match e {
            Waited::Timeout => self.no_answer(timeout),
            Waited::Failed(e) => format!("reading the reply FIFO {}: {e}", reply.path.display()),
        })
    }
}

/// `2 s`, or `500 ms` under a second.
fn secs(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A unique name for this process's next client socket or reply FIFO: no `.`, `/` or `\`.
fn unique_name() -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("evictl_{}_{n}", std::process::id())
}

/// The client end of a unix datagram exchange, bound so the daemon can reply: to an abstract
/// name on Linux (no file, no permissions to get wrong), else to a file removed on drop.
struct UnixClient {
    sock: UnixDatagram,
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    path: Option<PathBuf>,
}

impl UnixClient {
    #[cfg(target_os = "linux")]
    fn bind() -> Result<UnixClient, String> {
        use std::os::linux::net::SocketAddrExt;
        let mut last = None;
        for _ in 0..8 {
            let name = unique_name();
            let r = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .and_then(|a| UnixDatagram::bind_addr(&a));
            match r {
                Ok(sock) => return Ok(UnixClient { sock, path: None }),
                Err(e) => last = Some(e),
            }
        }
        Err(format!(
            "cannot bind a unix datagram socket: {}",
            last.map_or_else(String::new, |e| e.to_string())
        ))
    }

    #[cfg(not(target_os = "linux"))]
    fn bind() -> Result<UnixClient, String> {
        let path = std::env::temp_dir().join(unique_name());
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path)
            .map_err(|e| format!("cannot bind a unix socket at {}: {e}", path.display()))?;
        // The daemon may run as another user: it must be able to send the reply.
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o622));
        Ok(UnixClient {
            sock,
            path: Some(path),
        })
    }
}

impl Drop for UnixClient {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
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

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `http://host:port/path` → (`host:port`, `/path`).
pub fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("unsupported URL {url:?} (expected http://HOST:PORT/PATH)"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let authority = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_string()))
}

/// Send one HTTP request and read the whole response (the connection is closed afterwards).
pub fn request(
    url: &str,
    method: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<Response, String> {
    let (authority, path) = split_url(url)?;
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {authority}"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot reach evid at {url}: {e}"))?;
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    // mi_http's `auth_token`: sent when $EVID_MI_TOKEN is set.
    let auth = std::env::var("EVID_MI_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|_| s.write_all(body))
        .map_err(|e| format!("cannot send to {url}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| {
        if is_timeout(&e) {
            format!("no answer from evid at {url} within {}", secs(timeout))
        } else {
            format!("no answer from {url}: {e}")
        }
    })?;
    parse_response(&raw).ok_or_else(|| format!("malformed HTTP answer from {url}"))
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let len = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok());
    if let Some(len) = len {
        body.truncate(len);
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

/// Why an MI call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum MiCallError {
    /// Transport trouble: not running, bad URL, no answer, an answer that is not JSON-RPC.
    Transport(String),
    /// A JSON-RPC error reply.
    Rpc {
        code: i64,
        message: String,
        data: Option<String>,
    },
}

impl std::fmt::Display for MiCallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MiCallError::Transport(s) => f.write_str(s),
            MiCallError::Rpc {
                code,
                message,
                data: Some(d),
            } => write!(f, "{code} {message}: {d}"),
            MiCallError::Rpc {
                code,
                message,
                data: None,
            } => write!(f, "{code} {message}"),
        }
    }
}

/// Call one MI command at `url` (any of the [`Transport`] forms) and return its `result`.
pub fn call(
    url: &str,
    method: &str,
    params: Value,
    timeout: Duration,
) -> Result<Value, MiCallError> {
    Transport::parse(url)
        .map_err(MiCallError::Transport)?
        .call(method, params, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let ok = |u: &str| Transport::parse(u).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ok("http://127.0.0.1:8888/mi"),
            Transport::Http("http://127.0.0.1:8888/mi".into())
        );
        assert_eq!(
            ok("udp:127.0.0.1:8080"),
            Transport::Udp {
                host: "127.0.0.1".into(),
                port: 8080
            }
        );
        assert_eq!(
            ok("udp:[::1]:8080"),
            Transport::Udp {
                host: "::1".into(),
                port: 8080
            }
        );
        assert_eq!(
            ok("unix:/run/evid/mi.sock"),
            Transport::Unix("/run/evid/mi.sock".into())
        );
        assert_eq!(
            ok("fifo:/tmp/evid_fifo"),
            Transport::Fifo {
                fifo: "/tmp/evid_fifo".into(),
                reply_dir: "/tmp/".into()
            }
        );
        assert_eq!(
            ok("fifo:/run/evid/fifo?reply_dir=/run/evid/"),
            Transport::Fifo {
                fifo: "/run/evid/fifo".into(),
                reply_dir: "/run/evid/".into()
            }
        );
        // Display gives the URL back.
        for u in [
            "http://127.0.0.1:8888/mi",
            "udp:127.0.0.1:8080",
            "udp:[::1]:8080",
            "unix:/run/evid/mi.sock",
            "fifo:/tmp/evid_fifo",
            "fifo:/run/evid/fifo?reply_dir=/run/evid/",
        ] {
            assert_eq!(ok(u).to_string(), u);
        }
    }

    #[test]
    fn refuses_bad_urls() {
        for u in [
            "ftp://x",
            "127.0.0.1:8080",
            "udp:127.0.0.1",
            "udp:127.0.0.1:x",
            "udp:127.0.0.1:0",
            "udp::8080",
            "unix:",
            "fifo:",
            "fifo:/tmp/f?reply_dir=",
        ] {
            assert!(Transport::parse(u).is_err(), "{u}");
        }
        let e = Transport::parse("ftp://x").unwrap_err();
        assert!(
            e.contains("udp:HOST:PORT") && e.contains("fifo:PATH"),
            "{e}"
        );
    }

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
