//! Subscriber sockets: `xmlrpc:host:port:method` and `xmlrpc:host:port/path:method`.
//!
//! The grammar is OpenSIPS's (reference §4.4): the host ends at the first `:`, the port at `/`
//! or `:`, the path (no `:` allowed) at the next `:`, and the method is everything after it
//! (so it may contain colons). IPv6 literals may be written in brackets, which OpenSIPS could
//! not do. The host is resolved once, here, so that no sender waits on DNS per event.

use evi_sdk::uri::{parse_port, resolve, split_host, Clean};
use std::fmt;
use std::net::SocketAddr;

/// The HTTP path OpenSIPS always used (and still the default).
pub const DEFAULT_PATH: &str = "/RPC2";

/// A parsed `xmlrpc:` destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dest {
    /// As written (brackets kept for IPv6): used in `Host:` and in `print`.
    pub host: String,
    pub port: u16,
    /// The HTTP path, `/RPC2` unless the URI gave one.
    pub path: String,
    /// The XML-RPC `methodName`.
    pub method: String,
    /// Resolved once at subscribe time.
    pub addr: SocketAddr,
}

impl Dest {
    /// Parse the body of an `xmlrpc:` URI (the part after `xmlrpc:`).
    pub fn parse(body: &str) -> Result<Dest, String> {
        let uri = Clean(body);
        let (host, rest) = split_host(body).ok_or_else(|| {
            format!("missing port in xmlrpc:{uri} (expected xmlrpc:host:port:method)")
        })?;
        if host.is_empty() || host == "[]" {
            return Err(format!(
                "missing host in xmlrpc:{uri} (expected xmlrpc:host:port:method)"
            ));
        }
        let port_end = rest.find(['/', ':']).unwrap_or(rest.len());
        let port_text = &rest[..port_end];
        let port = parse_port(port_text).ok_or_else(|| {
            format!(
                "bad port '{}' in xmlrpc:{uri} (expected 1-65535)",
                Clean(port_text)
            )
        })?;
        let rest = &rest[port_end..];
        let (path, rest) = match rest.strip_prefix('/') {
            Some(p) => {
                let end = p.find(':').unwrap_or(p.len());
                (&rest[..end + 1], &p[end..])
            }
            None => (DEFAULT_PATH, rest),
        };
        if path
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(format!(
                "bad path '{}' in xmlrpc:{uri} (no spaces or control characters)",
                Clean(path)
            ));
        }
        let method = rest.strip_prefix(':').unwrap_or("");
        if method.is_empty() {
            return Err(format!(
                "missing method in xmlrpc:{uri} (expected xmlrpc:host:port:method)"
            ));
        }
        let name = host.trim_start_matches('[').trim_end_matches(']');
        let addr = resolve(name, port)
            .map_err(|e| format!("cannot resolve host '{}' in xmlrpc:{uri}: {e}", Clean(name)))?;
        Ok(Dest {
            host: host.to_string(),
            port,
            path: path.to_string(),
            method: method.to_string(),
            addr,
        })
    }

    /// Same subscription: host (case-insensitive), port, path and method. OpenSIPS compared
    /// internal pointers, so every refresh added a duplicate subscriber (§6 item 15).
    pub fn same_subscription(&self, other: &Dest) -> bool {
        self.host.eq_ignore_ascii_case(&other.host)
            && self.port == other.port
            && self.path == other.path
            && self.method == other.method
    }

    /// `host:port[/path]:method`; the path is shown only when it is not `/RPC2`, so the printed
    /// form is OpenSIPS's for every socket OpenSIPS could print, and still parses back.
    pub fn print(&self, out: &mut String) {
        out.push_str(&self.host);
        out.push(':');
        out.push_str(&self.port.to_string());
        if self.path != DEFAULT_PATH {
            out.push_str(&self.path);
        }
        out.push(':');
        out.push_str(&self.method);
    }

    /// `host:port` for the `Host:` header and for naming the destination in messages.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.print(&mut s);
        write!(f, "xmlrpc:{}", Clean(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> Dest {
        Dest::parse(body).unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    fn err(body: &str) -> String {
        match Dest::parse(body) {
            Ok(d) => panic!("{body} parsed as {d:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_opensips_forms() {
        let d = ok("127.0.0.1:8080:block_ip");
        assert_eq!(
            (d.host.as_str(), d.port, d.path.as_str(), d.method.as_str()),
            ("127.0.0.1", 8080, "/RPC2", "block_ip")
        );
        let d = ok("127.0.0.1:8080/api/ev:ns:handler");
        assert_eq!(
            (d.path.as_str(), d.method.as_str()),
            ("/api/ev", "ns:handler")
        );
        let d = ok("[::1]:8080:m");
        assert_eq!(
            (d.host.as_str(), d.addr),
            (
                "[::1]",
                "[::1]:8080".parse().unwrap_or_else(|e| panic!("{e}"))
            )
        );
        assert!(ok("localhost:1:m").addr.ip().is_loopback());
    }

    #[test]
    fn errors_name_the_bad_part() {
        let cases = [
            (
                "127.0.0.1",
                "missing port in xmlrpc:127.0.0.1 (expected xmlrpc:host:port:method)",
            ),
            (
                ":80:m",
                "missing host in xmlrpc::80:m (expected xmlrpc:host:port:method)",
            ),
            ("h:0:m", "bad port '0' in xmlrpc:h:0:m (expected 1-65535)"),
            ("h:x:m", "bad port 'x' in xmlrpc:h:x:m (expected 1-65535)"),
            (
                "127.0.0.1:80",
                "missing method in xmlrpc:127.0.0.1:80 (expected xmlrpc:host:port:method)",
            ),
            (
                "127.0.0.1:80:",
                "missing method in xmlrpc:127.0.0.1:80: (expected xmlrpc:host:port:method)",
            ),
            (
                "127.0.0.1:80/p",
                "missing method in xmlrpc:127.0.0.1:80/p (expected xmlrpc:host:port:method)",
            ),
            (
                "127.0.0.1:80/a b:m",
                "bad path '/a b' in xmlrpc:127.0.0.1:80/a b:m (no spaces or control characters)",
            ),
            (
                "a\nb:0:m",
                "bad port '0' in xmlrpc:a\\nb:0:m (expected 1-65535)",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(err(body), want, "{body}");
        }
        assert!(err("no-such-host.invalid:80:m")
            .starts_with("cannot resolve host 'no-such-host.invalid'"));
    }

    #[test]
    fn print_round_trips_and_refresh_matches() {
        for (body, printed) in [
            ("127.0.0.1:8080:block_ip", "127.0.0.1:8080:block_ip"),
            ("127.0.0.1:08080:m", "127.0.0.1:8080:m"),
            ("127.0.0.1:8080/RPC2:m", "127.0.0.1:8080:m"),
            ("127.0.0.1:8080/x:a:b", "127.0.0.1:8080/x:a:b"),
            ("[::1]:9:m", "[::1]:9:m"),
        ] {
            let d = ok(body);
            let mut out = String::new();
            d.print(&mut out);
            assert_eq!(out, printed);
            assert!(ok(&out).same_subscription(&d), "{out}");
        }
        assert!(ok("LOCALHOST:1:m").same_subscription(&ok("localhost:1:m")));
        for (a, b) in [
            ("localhost:1:m", "localhost:2:m"),
            ("localhost:1:m", "localhost:1:n"),
            ("localhost:1/a:m", "localhost:1/b:m"),
            ("127.0.0.1:1:m", "localhost:1:m"),
        ] {
            let (a, b) = (ok(a), ok(b));
            assert!(!a.same_subscription(&b), "{a} vs {b}");
            assert!(!b.same_subscription(&a), "{b} vs {a}");
        }
    }
}
