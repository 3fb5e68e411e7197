//! A small HTTP/1.1 client for one keep-alive connection: write a POST, read one response.
//!
//! std only. Every read is bounded (headers 16 KiB, body 1 MiB) and every wait has a deadline,
//! so a misbehaving server costs its own destination a timeout and nothing else.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 1024 * 1024;

/// OpenSIPS's `User-Agent`, kept so that servers filtering on it keep working.
pub const USER_AGENT: &str = "OpenSIPS XMLRPC Notifier";

/// Why an exchange failed.
#[derive(Debug, PartialEq, Eq)]
pub enum HttpError {
    /// Connect, write or read failed or timed out. `stale` = the connection was closed by the
    /// server before it sent a byte of the response (an idle keep-alive connection it dropped),
    /// so sending again on a fresh connection is safe.
    Io { what: String, stale: bool },
    /// The response could not be parsed.
    Protocol(String),
    /// A complete response with a non-2xx status.
    Status(u16, String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Io { what, .. } => f.write_str(what),
            HttpError::Protocol(why) => write!(f, "bad HTTP response: {why}"),
            HttpError::Status(code, reason) => write!(f, "HTTP {code} {reason}"),
        }
    }
}

/// One parsed response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// Whether the server lets us send the next request on this connection.
    pub keep_alive: bool,
}

/// The request line and headers: OpenSIPS's, except `Connection: keep-alive` (it opened one
/// connection per event and wrote `Connection: close`) and the same `Host: ` spacing with a
/// custom path (OpenSIPS wrote `Host:h:p` there).
pub fn head(path: &str, authority: &str, body_len: usize) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: keep-alive\r\nUser-Agent: {USER_AGENT}\r\nContent-type: text/xml\r\nContent-length: {body_len}\r\n\r\n"
    )
    .into_bytes()
}

/// A connection to one server, with the bytes read past the last response.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Whether a request was already answered on it (a failure may then be a stale close).
    pub reused: bool,
}

fn io_err(what: &str, e: &io::Error, stale: bool) -> HttpError {
    let why = match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".to_string(),
        _ => e.to_string(),
    };
    HttpError::Io {
        what: format!("{what}: {why}"),
        stale,
    }
}

impl Conn {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Conn, HttpError> {
        let stream =
            TcpStream::connect_timeout(&addr, timeout).map_err(|e| io_err("connect", &e, false))?;
        // Head and body go out in one write anyway; no reason to wait for Nagle.
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            buf: Vec::new(),
            reused: false,
        })
    }

    /// Send one request and read its response, all within `timeout`.
    pub fn exchange(&mut self, request: &[u8], timeout: Duration) -> Result<Response, HttpError> {
        let deadline = Instant::now() + timeout;
        let stale = self.reused;
        self.set_deadline(deadline, false)?;
        self.stream
            .write_all(request)
            .map_err(|e| io_err("write", &e, stale && is_reset(&e)))?;
        let resp = self.read_response(deadline);
        if resp.is_ok() {
            self.reused = true;
        }
        resp
    }

    fn set_deadline(&self, deadline: Instant, read: bool) -> Result<(), HttpError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HttpError::Io {
                what: "request timed out".into(),
                stale: false,
            });
        }
        let r = if read {
            self.stream.set_read_timeout(Some(left))
        } else {
            self.stream.set_write_timeout(Some(left))
        };
        r.map_err(|e| io_err("socket", &e, false))
    }

    /// Read more bytes into `buf`; `Ok(0)` at EOF.
    fn fill(&mut self, deadline: Instant) -> Result<usize, HttpError> {
        self.set_deadline(deadline, true)?;
        let mut chunk = [0u8; 8192];
        let stale = self.reused && self.buf.is_empty();
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("read", &e, stale && is_reset(&e))),
            }
        }
    }

    fn read_response(&mut self, deadline: Instant) -> Result<Response, HttpError> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(HttpError::Protocol(format!(
                    "headers exceed {MAX_HEAD} bytes"
                )));
            }
            if self.fill(deadline)? == 0 {
                return Err(HttpError::Io {
                    what: "server closed the connection before answering".into(),
                    stale: self.reused && self.buf.is_empty(),
                });
            }
        };
        let head = Head::parse(&self.buf[..head_end])?;
        self.buf.drain(..head_end);
        let body = if head.chunked {
            self.read_chunked(deadline)?
        } else if let Some(len) = head.content_length {
            if len > MAX_BODY {
                return Err(HttpError::Protocol(format!(
                    "body of {len} bytes exceeds {MAX_BODY}"
                )));
            }
            while self.buf.len() < len {
                if self.fill(deadline)? == 0 {
                    return Err(HttpError::Protocol(
                        "connection closed inside the body".into(),
                    ));
                }
            }
            self.buf.drain(..len).collect()
        } else {
            // No length: the body ends at EOF, and the connection with it.
            while self.fill(deadline)? > 0 {
                if self.buf.len() > MAX_BODY {
                    return Err(HttpError::Protocol(format!(
                        "body exceeds {MAX_BODY} bytes"
                    )));
                }
            }
            std::mem::take(&mut self.buf)
        };
        let keep_alive = head.keep_alive && (head.chunked || head.content_length.is_some());
        if !(200..300).contains(&head.status) {
            return Err(HttpError::Status(head.status, head.reason));
        }
        Ok(Response {
            status: head.status,
            body,
            keep_alive,
        })
    }

    fn read_chunked(&mut self, deadline: Instant) -> Result<Vec<u8>, HttpError> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buf, b"\r\n") {
                    break i;
                }
                if self.buf.len() > 1024 || self.fill(deadline)? == 0 {
                    return Err(HttpError::Protocol("bad chunk header".into()));
                }
            };
            let line = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| HttpError::Protocol(format!("bad chunk size '{size_text}'")))?;
            self.buf.drain(..line_end + 2);
            if body.len() + size > MAX_BODY {
                return Err(HttpError::Protocol(format!(
                    "body exceeds {MAX_BODY} bytes"
                )));
            }
            if size == 0 {
                return self.skip_trailers(deadline).map(|()| body);
            }
            while self.buf.len() < size + 2 {
                if self.fill(deadline)? == 0 {
                    return Err(HttpError::Protocol(
                        "connection closed inside a chunk".into(),
                    ));
                }
            }
            body.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
        }
    }
}

impl Conn {
    /// After the last chunk: trailer lines (unused by XML-RPC servers) up to the empty line.
    fn skip_trailers(&mut self, deadline: Instant) -> Result<(), HttpError> {
        loop {
            match find(&self.buf, b"\r\n") {
                Some(0) => {
                    self.buf.drain(..2);
                    return Ok(());
                }
                Some(i) => {
                    self.buf.drain(..i + 2);
                }
                None => {
                    if self.buf.len() > MAX_HEAD || self.fill(deadline)? == 0 {
                        return Err(HttpError::Protocol("bad chunked trailer".into()));
                    }
                }
            }
        }
    }
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    )
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The parts of a response head the client acts on.
struct Head {
    status: u16,
    reason: String,
    content_length: Option<usize>,
    chunked: bool,
    keep_alive: bool,
}

impl Head {
    fn parse(raw: &[u8]) -> Result<Head, HttpError> {
        let text = String::from_utf8_lossy(raw);
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let status = parts
            .next()
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|_| version.starts_with("HTTP/1."))
            .ok_or_else(|| {
                HttpError::Protocol(format!(
                    "bad status line '{}'",
                    status_line.escape_default()
                ))
            })?;
        let mut head = Head {
            status,
            reason: parts.next().unwrap_or("").to_string(),
            content_length: None,
            chunked: false,
            keep_alive: version == "HTTP/1.1",
        };
        for line in lines.filter(|l| !l.is_empty()) {
            let Some((name, value)) = line.split_once(':') else {
                return Err(HttpError::Protocol(format!(
                    "bad header line '{}'",
                    line.escape_default()
                )));
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => {
                    head.content_length = Some(value.parse().map_err(|_| {
                        HttpError::Protocol(format!(
                            "bad Content-Length '{}'",
                            value.escape_default()
                        ))
                    })?)
                }
                "transfer-encoding" => {
                    head.chunked = value.to_ascii_lowercase().contains("chunked")
                }
                "connection" => {
                    let v = value.to_ascii_lowercase();
                    if v.contains("close") {
                        head.keep_alive = false;
                    } else if v.contains("keep-alive") {
                        head.keep_alive = true;
                    }
                }
                _ => {}
            }
        }
        Ok(head)
    }
}

/// An XML-RPC fault in a 2xx response body: `Some("fault 4: Too many parameters")`.
pub fn fault(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let at = text.find("<fault>")?;
    let fault = &text[at..];
    let code = member(fault, "faultCode").unwrap_or_default();
    let msg = member(fault, "faultString").unwrap_or_default();
    Some(format!("XML-RPC fault {code}: {msg}"))
}

/// The text of the value of struct member `name` (`<int>`, `<string>` or bare), unescaped.
fn member(xml: &str, name: &str) -> Option<String> {
    let at = xml.find(&format!("<name>{name}</name>"))?;
    let rest = &xml[at..];
    let start = rest.find("<value>")? + "<value>".len();
    let end = rest[start..].find("</value>")? + start;
    let mut v = rest[start..end].trim();
    // Strip one type element, if any (`<int>4</int>`, `<i4>`, `<string>..</string>`).
    if let (Some(open_end), Some(close)) = (v.find('>'), v.rfind("</")) {
        if v.starts_with('<') && close > open_end {
            v = &v[open_end + 1..close];
        }
    }
    let s = v
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    Some(
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_is_opensips_with_keep_alive() {
        let h = head("/RPC2", "127.0.0.1:9997", 380);
        assert_eq!(
            String::from_utf8_lossy(&h),
            "POST /RPC2 HTTP/1.1\r\nHost: 127.0.0.1:9997\r\nConnection: keep-alive\r\nUser-Agent: OpenSIPS XMLRPC Notifier\r\nContent-type: text/xml\r\nContent-length: 380\r\n\r\n"
        );
    }

    #[test]
    fn parses_heads() {
        let h = Head::parse(b"HTTP/1.0 200 OK\r\nServer: x\r\nContent-Length: 12\r\n\r\n");
        let h = h.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (h.status, h.content_length, h.keep_alive, h.chunked),
            (200, Some(12), false, false)
        );
        let h = Head::parse(
            b"HTTP/1.1 503 Busy now\r\nconnection: Close\r\ntransfer-encoding: chunked\r\n\r\n",
        );
        let h = h.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (h.status, h.reason.as_str(), h.keep_alive, h.chunked),
            (503, "Busy now", false, true)
        );
        assert!(Head::parse(b"SIP/2.0 200 OK\r\n\r\n").is_err());
        assert!(Head::parse(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").is_err());
    }

    #[test]
    fn finds_faults() {
        let python = b"<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n<member>\n<name>faultCode</name>\n<value><int>1</int></value>\n</member>\n<member>\n<name>faultString</name>\n<value><string>&lt;class 'ValueError'&gt;:no &amp; way</string></value>\n</member>\n</struct></value>\n</fault>\n</methodResponse>\n";
        assert_eq!(
            fault(python).as_deref(),
            Some("XML-RPC fault 1: <class 'ValueError'>:no & way")
        );
        let ok = b"<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><int>1</int></value>\n</param>\n</params>\n</methodResponse>\n";
        assert_eq!(fault(ok), None);
    }
}
