//! `mi_http`: one HTTP/1.1 request per connection, hand-rolled so the client needs no HTTP
//! stack. [`request`] is public too: the tests and benches also GET `mi_http`'s other paths.

use super::{is_timeout, no_answer, resolve, unreachable};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

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

/// POST one JSON-RPC request to `mi_http` and return the JSON reply.
pub(super) fn exchange(url: &str, body: &[u8], timeout: Duration) -> Result<Value, String> {
    let r = request(url, "POST", body, timeout)?;
    if r.status == 401 {
        return Err(format!(
            "evid at {url} wants a bearer token (set EVID_MI_TOKEN to mi_http's auth_token)"
        ));
    }
    serde_json::from_slice(&r.body)
        .map_err(|_| format!("HTTP {} with a body that is not JSON", r.status))
}

/// Send one HTTP request and read the whole response (the connection is closed afterwards).
pub fn request(
    url: &str,
    method: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<Response, String> {
    let (authority, path) = split_url(url)?;
    let addr = resolve(authority.as_str(), &authority)?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| unreachable(url, e))?;
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
            no_answer(url, timeout)
        } else {
            format!("no answer from {url}: {e}")
        }
    })?;
    parse_response(&raw).ok_or_else(|| format!("malformed HTTP answer from {url}"))
}

/// The length of the HTTP message (request or response) at the start of `buf`: its head, then
/// `Content-Length` bytes of body (none when absent); `None` until the head is complete.
pub fn message_len(buf: &[u8]) -> Option<usize> {
    let end = head_len(buf)?;
    Some(end + content_length(&String::from_utf8_lossy(&buf[..end])).unwrap_or(0))
}

/// Where the head (with its blank line) ends.
fn head_len(buf: &[u8]) -> Option<usize> {
    Some(buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4)
}

fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}

/// Read one whole response from a keep-alive connection: for a client that sends its next
/// request only after this answer (whatever follows the message in a read is dropped).
pub fn read_message(s: &mut impl Read) -> Result<Vec<u8>, String> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(len) = message_len(&buf).filter(|&len| buf.len() >= len) {
            buf.truncate(len);
            return Ok(buf);
        }
        match s.read(&mut chunk).map_err(|e| e.to_string())? {
            0 => return Err("the server closed the connection".into()),
            k => buf.extend_from_slice(&chunk[..k]),
        }
    }
}

/// Parse a whole response (the body cut at `Content-Length` when there is one).
pub fn parse_response(raw: &[u8]) -> Option<Response> {
    let end = head_len(raw)?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.lines();
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[end..].to_vec();
    if let Some(len) = content_length(head) {
        body.truncate(len);
    }
    Some(Response {
        status,
        headers,
        body,
    })
}
