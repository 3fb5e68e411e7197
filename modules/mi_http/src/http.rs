//! HTTP/1.1 on the wire: read one request (head, then body) from a connection, write one response.
//!
//! Only what an MI endpoint needs, written for untrusted input in a long-lived daemon: every read
//! is bounded in size and by a deadline, no buffer is sized from a length the client declared, and
//! the caller can shut the socket down from another thread to end a read at once.

use crate::handler::Reply;
use evi_sdk::abi::payload;
use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Largest request head (request line and headers) we buffer; more gets 431.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest chunk-size line of a chunked body (size plus extensions).
const MAX_CHUNK_LINE: usize = 1024;
/// How much we ask the socket for per read.
const READ_CHUNK: usize = 16 * 1024;

/// A byte source whose reads can be given a timeout: a socket, or a byte slice in tests.
pub trait Source: Read {
    /// Make the next reads fail with `WouldBlock`/`TimedOut` after `timeout` without data.
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()>;

    /// Whether the timeout applies to each read on its own (a socket's `SO_RCVTIMEO`), so one
    /// set for a request still fits the next; `false` when it is an absolute deadline.
    fn per_read_timeout(&self) -> bool {
        true
    }
}

impl Source for TcpStream {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        TcpStream::set_read_timeout(self, Some(timeout))
    }
}

impl Source for &[u8] {
    fn set_timeout(&mut self, _: Duration) -> io::Result<()> {
        Ok(())
    }
}

/// How the request's body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (neither `Content-Length` nor `Transfer-Encoding`).
    None,
    /// `Content-Length` bytes (a value too large for `u64` reads as `u64::MAX`).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub target: String,
    /// HTTP/1.1 (else 1.0).
    pub http11: bool,
    pub framing: Framing,
    /// The client allows another request on this connection.
    pub keep_alive: bool,
    /// `Expect: 100-continue` (HTTP/1.1 only): the client waits for a go-ahead before the body.
    pub expect_continue: bool,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

impl Head {
    /// Whether the request announces a body.
    pub fn has_body(&self) -> bool {
        !matches!(self.framing, Framing::None | Framing::Length(0))
    }
}

/// The body, or the news that it is over the limit (then the rest of it is left unread).
#[derive(Debug, PartialEq, Eq)]
pub enum Body {
    Bytes(Vec<u8>),
    TooLarge,
}

/// Why a request could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Malformed or unsupported: answer with this HTTP status, then close.
    Status(u16),
    /// The connection failed, ended early or timed out (`TimedOut`).
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// How much longer than the time left a read's timeout may be before it is set again: setting
/// it costs a system call, and a keep-alive request needs none if the last one still fits.
const TIMEOUT_SLACK: Duration = Duration::from_millis(250);

/// A connection's read side with the bytes read past the current request (pipelining).
pub struct Reader<S> {
    src: S,
    buf: Vec<u8>,
    /// Where reads land, zeroed once per connection (growing `buf` with zeros for each read
    /// cost a 16 KiB memset per request).
    chunk: Box<[u8]>,
    /// The read timeout the source has now.
    timeout: Option<Duration>,
}

impl<S: Source> Reader<S> {
    pub fn new(src: S) -> Self {
        Reader {
            src,
            buf: Vec::new(),
            chunk: vec![0; READ_CHUNK].into_boxed_slice(),
            timeout: None,
        }
    }

    /// The underlying stream (to write the response on).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.src
    }

    /// Whether part of a next request has been read already.
    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Read more into the buffer; `Ok(0)` at end of stream. Fails with `TimedOut` once `deadline`
    /// has passed, so a client dripping bytes cannot hold the connection past it.
    fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        // A read may wait up to TIMEOUT_SLACK past the deadline; it still cannot wait forever.
        let fits = self.src.per_read_timeout()
            && self
                .timeout
                .is_some_and(|t| t >= left && t - left <= TIMEOUT_SLACK);
        if !fits {
            self.src.set_timeout(left)?;
            self.timeout = Some(left);
        }
        let r = loop {
            match self.src.read(&mut self.chunk) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                r => break r,
            }
        };
        if let Ok(n) = r {
            self.buf.extend_from_slice(&self.chunk[..n]);
        }
        // A socket read timeout surfaces as WouldBlock on Unix.
        r.map_err(|e| match e.kind() {
            ErrorKind::WouldBlock => ErrorKind::TimedOut.into(),
            _ => e,
        })
    }

    /// Read the next request head; `Ok(None)` when the client closed cleanly between requests.
    pub fn read_head(&mut self, deadline: Instant) -> Result<Option<Head>, ReadError> {
        let mut scanned = 0;
        loop {
            // RFC 9112 §2.2: ignore empty lines before a request line.
            let blank = self
                .buf
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            if blank > 0 {
                self.buf.drain(..blank);
                scanned = 0;
            }
            if let Some(end) = head_end(&self.buf, scanned) {
                // The head may have arrived in one read together with more than the limit.
                if end > MAX_HEAD {
                    return Err(ReadError::Status(431));
                }
                let head = parse_head(&self.buf[..end]).map_err(ReadError::Status);
                self.buf.drain(..end);
                return head.map(Some);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(ReadError::Status(431));
            }
            scanned = self.buf.len().saturating_sub(3);
            if self.fill(deadline)? == 0 {
                return match self.buf.is_empty() {
                    true => Ok(None),
                    false => Err(ReadError::Io(ErrorKind::UnexpectedEof.into())),
                };
            }
        }
    }

    /// Read the body `framing` announces, stopping once it exceeds `max` bytes.
    pub fn read_body(
        &mut self,
        framing: Framing,
        max: usize,
        deadline: Instant,
    ) -> Result<Body, ReadError> {
        match framing {
            Framing::None => Ok(Body::Bytes(Vec::new())),
            Framing::Length(n) => match usize::try_from(n) {
                Ok(n) if n <= max => {
                    let mut body = Vec::new();
                    self.read_exact_into(&mut body, n, deadline)?;
                    Ok(Body::Bytes(body))
                }
                _ => Ok(Body::TooLarge),
            },
            Framing::Chunked => self.read_chunked(max, deadline),
        }
    }

    /// Append exactly `n` more bytes to `out`, growing it as they arrive (never by `n` up front).
    fn read_exact_into(
        &mut self,
        out: &mut Vec<u8>,
        n: usize,
        deadline: Instant,
    ) -> Result<(), ReadError> {
        let mut left = n;
        loop {
            let take = left.min(self.buf.len());
            out.extend(self.buf.drain(..take));
            left -= take;
            if left == 0 {
                return Ok(());
            }
            if self.fill(deadline)? == 0 {
                return Err(ReadError::Io(ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// One line without its CRLF (or bare LF); 400 when it is longer than `max`.
    fn read_line(&mut self, max: usize, deadline: Instant) -> Result<Vec<u8>, ReadError> {
        let mut scanned = 0;
        loop {
            let window = &self.buf[..self.buf.len().min(max + 2)];
            if let Some(i) = window[scanned..].iter().position(|&b| b == b'\n') {
                let i = scanned + i;
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if window.len() > max + 1 {
                return Err(ReadError::Status(400));
            }
            scanned = window.len();
            if self.fill(deadline)? == 0 {
                return Err(ReadError::Io(ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    fn read_chunked(&mut self, max: usize, deadline: Instant) -> Result<Body, ReadError> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line(MAX_CHUNK_LINE, deadline)?;
            let size = parse_chunk_size(&line).ok_or(ReadError::Status(400))?;
            if size == 0 {
                // Trailer fields: read and ignore, bounded like a head.
                let mut total = 0;
                loop {
                    let line = self.read_line(MAX_HEAD, deadline)?;
                    if line.is_empty() {
                        return Ok(Body::Bytes(body));
                    }
                    total += line.len();
                    if total > MAX_HEAD {
                        return Err(ReadError::Status(431));
                    }
                }
            }
            match usize::try_from(size) {
                Ok(size) if size <= max.saturating_sub(body.len()) => {
                    self.read_exact_into(&mut body, size, deadline)?;
                }
                _ => return Ok(Body::TooLarge),
            }
            if !self.read_line(0, deadline)?.is_empty() {
                return Err(ReadError::Status(400));
            }
        }
    }
}

/// End of the head (just past its blank line) in `buf`, searching from `from`.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(p) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let nl = i + p;
        match buf.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
    None
}

/// RFC 9110 token characters (method and header names), as a table: every byte of every
/// header name is checked, and the search through the punctuation cost ~30 instructions a byte.
const TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let punctuation = b"!#$%&'*+-.^_`|~";
    let mut i = 0;
    while i < punctuation.len() {
        t[punctuation[i] as usize] = true;
        i += 1;
    }
    t
};

fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// `1*DIGIT`; a number too large for `u64` saturates (it is over any limit anyway).
fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// `1*HEXDIG [ ";" ext ]`; sizes too large for `u64` saturate.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
    let hex = trim_ows(&line[..end]);
    if hex.is_empty() {
        return None;
    }
    hex.iter().try_fold(0u64, |n, &b| {
        let d = char::from(b).to_digit(16)?;
        Some(n.saturating_mul(16).saturating_add(u64::from(d)))
    })
}

/// Parse a head (request line, headers, blank line) into [`Head`], or the status to refuse it with.
pub fn parse_head(raw: &[u8]) -> Result<Head, u16> {
    let mut lines = raw
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().ok_or(400u16)?;
    let mut parts = request_line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(400);
    }
    if target.is_empty() || !target.iter().all(|b| b.is_ascii_graphic()) {
        return Err(400);
    }
    let http11 = match version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(505)
        }
        _ => return Err(400),
    };

    let mut length: Option<u64> = None;
    let mut codings: Vec<Vec<u8>> = Vec::new();
    let (mut close, mut keep_alive, mut expect_continue) = (false, false, false);
    let mut authorization = None;
    for line in lines.filter(|l| !l.is_empty()) {
        // Obsolete line folding is refused (RFC 9112 §5.2).
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(400);
        }
        let colon = line.iter().position(|&b| b == b':').ok_or(400u16)?;
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(400);
        }
        let tokens = || {
            value
                .split(|&b| b == b',')
                .map(trim_ows)
                .filter(|t| !t.is_empty())
        };
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_length(value).ok_or(400u16)?;
            // Repeated Content-Length must agree, or the body's end is ambiguous.
            if length.is_some_and(|old| old != n) {
                return Err(400);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            codings.extend(tokens().map(|t| t.to_ascii_lowercase()));
        } else if name.eq_ignore_ascii_case(b"connection") {
            for t in tokens() {
                close |= t.eq_ignore_ascii_case(b"close");
                keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"authorization") {
            authorization = Some(String::from_utf8_lossy(value).into_owned());
        } else if name.eq_ignore_ascii_case(b"expect") {
            if !value.eq_ignore_ascii_case(b"100-continue") {
                return Err(417);
            }
            // RFC 9110 §10.1.1: ignore 100-continue from an HTTP/1.0 client.
            expect_continue = http11;
        }
    }

    let framing = match (&codings[..], length) {
        ([], None) => Framing::None,
        ([], Some(n)) => Framing::Length(n),
        // Transfer-Encoding in HTTP/1.0 means broken framing (RFC 9112 §6.1).
        (_, _) if !http11 => return Err(400),
        ([c], _) if c == b"chunked" => Framing::Chunked,
        _ => return Err(501),
    };
    Ok(Head {
        method: String::from_utf8_lossy(method).into_owned(),
        target: String::from_utf8_lossy(target).into_owned(),
        http11,
        framing,
        // With both Transfer-Encoding and Content-Length the connection must close after the
        // response (RFC 9112 §6.1): a peer may have framed the message differently.
        keep_alive: !close
            && (http11 || keep_alive)
            && !(framing == Framing::Chunked && length.is_some()),
        expect_continue,
        authorization,
    })
}

/// The reason phrase of the statuses we send.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        401 => "Unauthorized",
        413 => "Payload Too Large",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// What the response says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persist {
    /// HTTP/1.1 keep-alive: the default, no header (as OpenSIPS' httpd answers).
    Default,
    /// An HTTP/1.0 client asked for keep-alive: confirm it.
    KeepAlive,
    /// `Connection: close`.
    Close,
}

/// Serialise a response; `head_only` (a HEAD request) leaves the body out but keeps its length.
pub fn format_response(
    reply: &Reply,
    persist: Persist,
    head_only: bool,
    now: SystemTime,
) -> Vec<u8> {
    // Appended piece by piece: `format!` of the head cost ~6k instructions per reply, a sixth
    // of a raise_event request's (callgrind).
    let mut out = Vec::with_capacity(160 + reply.body.len());
    fn header(out: &mut Vec<u8>, name: &str, value: &str) {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // Header order follows OpenSIPS' httpd: Date, Content-Type, Content-Length.
    out.extend_from_slice(b"HTTP/1.1 ");
    payload::int(&mut out, i64::from(reply.status));
    out.push(b' ');
    out.extend_from_slice(reason(reply.status).as_bytes());
    out.extend_from_slice(b"\r\n");
    with_http_date(now, |date| header(&mut out, "Date", date));
    if let Some(allow) = reply.allow {
        header(&mut out, "Allow", allow);
    }
    if reply.status == 401 {
        header(&mut out, "WWW-Authenticate", "Bearer realm=\"evid MI\"");
    }
    if let Some(ct) = reply.content_type {
        header(&mut out, "Content-Type", ct);
    }
    out.extend_from_slice(b"Content-Length: ");
    payload::int(&mut out, reply.body.len() as i64);
    out.extend_from_slice(b"\r\n");
    match persist {
        Persist::Default => {}
        Persist::KeepAlive => header(&mut out, "Connection", "keep-alive"),
        Persist::Close => header(&mut out, "Connection", "close"),
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(&reply.body);
    }
    out
}

/// Hand `put` the `Date` value of `now`, formatted once per second per thread.
fn with_http_date(now: SystemTime, put: impl FnOnce(&str)) {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    LAST.with_borrow_mut(|(at, text)| {
        if *at != secs {
            *at = secs;
            *text = http_date(now);
        }
        put(text);
    });
}

/// Write a response in one `write_all`, so Nagle never holds back a second segment.
pub fn write_response(
    w: &mut impl Write,
    reply: &Reply,
    persist: Persist,
    head_only: bool,
) -> io::Result<()> {
    w.write_all(&format_response(
        reply,
        persist,
        head_only,
        SystemTime::now(),
    ))?;
    w.flush()
}

/// An IMF-fixdate (`Thu, 26 Nov 2026 11:09:57 GMT`), the `Date` header format.
pub fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, sod) = (secs / 86_400, secs % 86_400);
    // 1970-01-01 was a Thursday.
    let weekday = DAYS[((days + 4) % 7) as usize];
    let (y, m, d) = civil_from_days(days);
    format!(
        "{weekday}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        MONTHS[(m - 1) as usize],
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    fn head(raw: &str) -> Result<Head, u16> {
        parse_head(raw.as_bytes())
    }

    #[test]
    fn token_characters_are_rfc_9110s() {
        let tchars: Vec<u8> = (0..=255u8).filter(|&b| is_tchar(b)).collect();
        let mut want: Vec<u8> = b"!#$%&'*+-.^_`|~0123456789".to_vec();
        want.extend(b'A'..=b'Z');
        want.extend(b'a'..=b'z');
        want.sort_unstable();
        assert_eq!(tchars, want);
    }

    #[test]
    fn a_request_line_is_three_parts_with_a_token_method() {
        assert_eq!(head("POST /mi HTTP/1.1 x\r\n\r\n").err(), Some(400));
        assert_eq!(head("POST /mi\r\n\r\n").err(), Some(400));
        assert_eq!(head("PO\"ST /mi HTTP/1.1\r\n\r\n").err(), Some(400));
        assert!(head("POST /mi HTTP/1.1\r\n\r\n").is_ok());
    }

    #[test]
    fn parses_a_post() {
        let h = head("POST /mi?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n").unwrap();
        assert_eq!(h.method, "POST");
        assert_eq!(h.target, "/mi?x=1");
        assert!(h.http11 && h.keep_alive && !h.expect_continue);
        assert_eq!(h.framing, Framing::Length(12));
    }

    #[test]
    fn connection_persistence() {
        assert!(
            !head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(!head("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(
            head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(
            !head("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
    }

    #[test]
    fn framing_rules() {
        let chunked = head("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n").unwrap();
        assert_eq!(chunked.framing, Framing::Chunked);
        assert!(chunked.keep_alive);
        let both =
            head("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap();
        assert_eq!(both.framing, Framing::Chunked);
        assert!(!both.keep_alive);
        assert_eq!(
            head("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Err(501)
        );
        assert_eq!(
            head("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(400)
        );
        assert_eq!(
            head("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            Err(400)
        );
        assert_eq!(
            head("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n")
                .unwrap()
                .framing,
            Framing::Length(3)
        );
        assert_eq!(
            head("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Err(400)
        );
        assert_eq!(
            head("POST / HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n"),
            Err(400)
        );
        let huge =
            head("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n").unwrap();
        assert_eq!(huge.framing, Framing::Length(u64::MAX));
    }

    #[test]
    fn expect() {
        assert!(
            head("POST / HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n")
                .unwrap()
                .expect_continue
        );
        assert!(
            !head("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n")
                .unwrap()
                .expect_continue
        );
        assert_eq!(head("POST / HTTP/1.1\r\nExpect: magic\r\n\r\n"), Err(417));
    }

    #[test]
    fn malformed_heads() {
        for raw in [
            "POST /mi\r\n\r\n",
            "POST  /mi HTTP/1.1\r\n\r\n",
            "POST /mi HTTP/1.1 x\r\n\r\n",
            "PO(ST /mi HTTP/1.1\r\n\r\n",
            "POST /m\x01i HTTP/1.1\r\n\r\n",
            "POST /mi HTTQ/1.1\r\n\r\n",
            "POST /mi HTTP/1.1\r\nNoColon\r\n\r\n",
            "POST /mi HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "POST /mi HTTP/1.1\r\n: x\r\n\r\n",
            "POST /mi HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
        ] {
            assert_eq!(head(raw), Err(400), "{raw:?}");
        }
        assert_eq!(head("POST /mi HTTP/2.0\r\n\r\n"), Err(505));
        assert_eq!(head("POST /mi HTTP/0.9\r\n\r\n"), Err(505));
        assert_eq!(
            parse_head(b"POST /mi HTTP/1.1\r\nX: \xff\xfe\r\n\r\n").map(|h| h.method),
            Ok("POST".into())
        );
    }

    #[test]
    fn reads_pipelined_requests_and_bare_lf() {
        let wire = b"\r\nPOST /a HTTP/1.1\nContent-Length: 2\n\nabPOST /b HTTP/1.1\r\nContent-Length: 1\r\n\r\nc";
        let mut r = Reader::new(&wire[..]);
        let h = r.read_head(far()).unwrap().unwrap();
        assert_eq!(h.target, "/a");
        assert_eq!(
            r.read_body(h.framing, 10, far()).unwrap(),
            Body::Bytes(b"ab".to_vec())
        );
        let h = r.read_head(far()).unwrap().unwrap();
        assert_eq!(h.target, "/b");
        assert_eq!(
            r.read_body(h.framing, 10, far()).unwrap(),
            Body::Bytes(b"c".to_vec())
        );
        assert!(r.read_head(far()).unwrap().is_none());
    }

    #[test]
    fn head_limits_and_truncation() {
        let big = format!("POST / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(
            Reader::new(big.as_bytes()).read_head(far()),
            Err(ReadError::Status(431))
        ));
        let cut = b"POST / HTTP/1.1\r\nHost: x\r\n";
        assert!(matches!(
            Reader::new(&cut[..]).read_head(far()),
            Err(ReadError::Io(_))
        ));
        let past = Instant::now() - Duration::from_millis(1);
        assert!(
            matches!(Reader::new(&b""[..]).read_head(past), Err(ReadError::Io(e)) if e.kind() == ErrorKind::TimedOut)
        );
    }

    #[test]
    fn length_body_limits() {
        let mut r = Reader::new(&b"abc"[..]);
        assert!(
            matches!(r.read_body(Framing::Length(4), 10, far()), Err(ReadError::Io(e)) if e.kind() == ErrorKind::UnexpectedEof)
        );
        let mut r = Reader::new(&b"abcdef"[..]);
        assert_eq!(
            r.read_body(Framing::Length(6), 5, far()).unwrap(),
            Body::TooLarge
        );
        assert_eq!(
            r.read_body(Framing::Length(u64::MAX), 1 << 26, far())
                .unwrap(),
            Body::TooLarge
        );
        assert_eq!(
            r.read_body(Framing::None, 5, far()).unwrap(),
            Body::Bytes(vec![])
        );
    }

    #[test]
    fn chunked_bodies() {
        let wire = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let mut r = Reader::new(&wire[..]);
        assert_eq!(
            r.read_body(Framing::Chunked, 100, far()).unwrap(),
            Body::Bytes(b"Wikipedia in\r\n\r\nchunks.".to_vec())
        );
        assert!(r.has_pending());
        let mut r = Reader::new(&wire[..]);
        assert_eq!(
            r.read_body(Framing::Chunked, 8, far()).unwrap(),
            Body::TooLarge
        );
        let mut r = Reader::new(&b"ffffffffffffffffffff\r\n"[..]);
        assert_eq!(
            r.read_body(Framing::Chunked, 100, far()).unwrap(),
            Body::TooLarge
        );
        for bad in [&b"zz\r\n"[..], b"\r\n", b"2\r\nabX\r\n0\r\n\r\n"] {
            let mut r = Reader::new(bad);
            assert!(
                matches!(
                    r.read_body(Framing::Chunked, 100, far()),
                    Err(ReadError::Status(400))
                ),
                "{bad:?}"
            );
        }
        let long = format!("1;{}\r\n", "e".repeat(MAX_CHUNK_LINE));
        assert!(matches!(
            Reader::new(long.as_bytes()).read_body(Framing::Chunked, 100, far()),
            Err(ReadError::Status(400))
        ));
        let mut r = Reader::new(&b"3\r\nab"[..]);
        assert!(matches!(
            r.read_body(Framing::Chunked, 100, far()),
            Err(ReadError::Io(_))
        ));
    }

    #[test]
    fn dates() {
        let at = |s| http_date(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
    }

    #[test]
    fn response_bytes() {
        let reply = Reply::json(b"{}".to_vec());
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let text =
            String::from_utf8(format_response(&reply, Persist::Default, false, now)).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        );
        let text = String::from_utf8(format_response(&reply, Persist::Close, true, now)).unwrap();
        assert!(
            text.ends_with("Content-Length: 2\r\nConnection: close\r\n\r\n"),
            "{text}"
        );
        let text = String::from_utf8(format_response(
            &Reply::accepted(),
            Persist::KeepAlive,
            false,
            now,
        ))
        .unwrap();
        assert!(text.starts_with("HTTP/1.1 202 Accepted\r\n"));
        assert!(
            text.ends_with("Content-Length: 0\r\nConnection: keep-alive\r\n\r\n"),
            "{text}"
        );
        // The Date is formatted once per second: the next second gets its own.
        let later = now + Duration::from_millis(1500);
        let text = String::from_utf8(format_response(&reply, Persist::Default, false, later))
            .unwrap_or_default();
        assert!(
            text.contains("\r\nDate: Tue, 14 Nov 2023 22:13:21 GMT\r\n"),
            "{text}"
        );
        // A 405 lists what is allowed; a 401 names the scheme.
        let refused = Reply {
            allow: Some("POST"),
            ..Reply::refused(405)
        };
        let text = String::from_utf8(format_response(&refused, Persist::Close, false, now))
            .unwrap_or_default();
        assert!(
            text.starts_with("HTTP/1.1 405 Method Not Allowed\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\nAllow: POST\r\nContent-Type: "),
            "{text}"
        );
        let text = String::from_utf8(format_response(
            &Reply::refused(401),
            Persist::Close,
            false,
            now,
        ))
        .unwrap_or_default();
        assert!(
            text.contains("\r\nWWW-Authenticate: Bearer realm=\"evid MI\"\r\n"),
            "{text}"
        );
    }
}
