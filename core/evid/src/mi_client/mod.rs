//! A minimal MI JSON-RPC client over the MI transports (used by `evictl` and the tests), with no
//! HTTP stack or async runtime. This file holds the URL parsing, the one JSON-RPC request and
//! reply handling, and the helpers the transports share; each transport has its own file.

mod datagram;
mod fifo;
mod http;

pub use http::{message_len, parse_response, read_message, request, split_url, Response};

use serde_json::{json, Value};
use std::fmt::Display;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The URL `mi_http` serves by default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8888/mi";

/// `mi_fifo`'s default `reply_dir` (OpenSIPS's), used when a `fifo:` URL names none.
pub const DEFAULT_REPLY_DIR: &str = "/tmp/";

/// The URL forms, for error messages and help texts.
pub const URL_FORMS: &str =
    "http://HOST:PORT/PATH, udp:HOST:PORT, unix:PATH or fifo:PATH[?reply_dir=DIR]";

/// Where an MI request goes, parsed from a URL:
///
/// - `http://HOST:PORT/PATH`: `mi_http`, one HTTP/1.1 POST per request;
/// - `udp:HOST:PORT`: `mi_datagram` over UDP, one datagram each way;
/// - `unix:PATH`: `mi_datagram` over a unix datagram socket (the reply comes back to a socket
///   this client binds, in the abstract namespace on Linux);
/// - `fifo:PATH[?reply_dir=DIR]`: `mi_fifo`, as OpenSIPS frames it: the client creates a reply
///   FIFO in the daemon's `reply_dir` (default `/tmp/`), writes `:NAME:REQUEST` to the daemon's
///   FIFO and reads the reply until the daemon closes the reply FIFO.
///
/// [`Transport::call`] builds the one JSON-RPC request and reads the reply the same way
/// whatever carries it.
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
            Transport::Http(url) => return http::exchange(url, body, timeout),
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

// The error texts every transport words the same way (`at` is the URL or the transport).

fn unreachable(at: impl Display, e: impl Display) -> String {
    format!("cannot reach evid at {at}: {e}")
}

fn no_answer(at: impl Display, timeout: Duration) -> String {
    format!("no answer from evid at {at} within {}", secs(timeout))
}

/// `2 s`, or `500 ms` under a second.
fn secs(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// The first address `addr` resolves to; `name` is how errors call it.
fn resolve(addr: impl ToSocketAddrs, name: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {name}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {name}"))
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
}
