//! Subscriber sockets: `tcp:host:port` and `tcp:host:port/method` (reference §4.3).
//!
//! The host ends at the first `:` (IPv6 literals may be bracketed, which OpenSIPS could not
//! do), the port at `/` or the end, and the optional method is everything after the `/`. The
//! host is resolved once, here, so that no sender waits on DNS per event.

use evi_sdk::uri::{parse_port, resolve, split_host, Clean};
use std::fmt;
use std::net::SocketAddr;

/// A parsed `tcp:` destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dest {
    /// As written (brackets kept for IPv6), for `print`.
    pub host: String,
    pub port: u16,
    /// Replaces the event name as the JSON-RPC `method`.
    pub method: Option<String>,
    /// Resolved once at subscribe time; the connection is per address.
    pub addr: SocketAddr,
}

impl Dest {
    /// Parse the body of a `tcp:` URI (the part after `tcp:`).
    pub fn parse(body: &str) -> Result<Dest, String> {
        let uri = Clean(body);
        let (host, rest) = split_host(body).ok_or_else(|| {
            format!("missing port in tcp:{uri} (expected tcp:host:port[/method])")
        })?;
        if host.is_empty() || host == "[]" {
            return Err(format!(
                "missing host in tcp:{uri} (expected tcp:host:port[/method])"
            ));
        }
        let (port_text, method) = match rest.split_once('/') {
            Some((p, m)) => (p, Some(m)),
            None => (rest, None),
        };
        let port = parse_port(port_text).ok_or_else(|| {
            format!(
                "bad port '{}' in tcp:{uri} (expected 1-65535)",
                Clean(port_text)
            )
        })?;
        if method == Some("") {
            return Err(format!("empty method after '/' in tcp:{uri}"));
        }
        let name = host.trim_start_matches('[').trim_end_matches(']');
        let addr = resolve(name, port)
            .map_err(|e| format!("cannot resolve host '{}' in tcp:{uri}: {e}", Clean(name)))?;
        Ok(Dest {
            host: host.to_string(),
            port,
            method: method.map(str::to_string),
            addr,
        })
    }

    /// Same subscription: host (case-insensitive), port and method, as OpenSIPS master matches
    /// (3.6 compared the wrong memory for the method, so sockets with one never matched).
    pub fn same_subscription(&self, other: &Dest) -> bool {
        self.host.eq_ignore_ascii_case(&other.host)
            && self.port == other.port
            && self.method == other.method
    }

    /// `host:port[/method]`, OpenSIPS's print form; it parses back to the same socket.
    pub fn print(&self, out: &mut String) {
        out.push_str(&self.host);
        out.push(':');
        out.push_str(&self.port.to_string());
        if let Some(m) = &self.method {
            out.push('/');
            out.push_str(m);
        }
    }

    /// `host:port`, naming the destination (the connection) in messages and stats.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.print(&mut s);
        write!(f, "tcp:{}", Clean(&s))
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
        let d = ok("127.0.0.1:8080");
        assert_eq!(
            (d.host.as_str(), d.port, d.method.as_deref()),
            ("127.0.0.1", 8080, None)
        );
        let d = ok("127.0.0.1:9000/block_ip");
        assert_eq!(d.method.as_deref(), Some("block_ip"));
        let d = ok("127.0.0.1:9000/a/b:c");
        assert_eq!(d.method.as_deref(), Some("a/b:c"));
        assert_eq!(
            ok("[::1]:9").addr,
            "[::1]:9".parse().unwrap_or_else(|e| panic!("{e}"))
        );
    }

    #[test]
    fn errors_name_the_bad_part() {
        for (body, want) in [
            (
                "127.0.0.1",
                "missing port in tcp:127.0.0.1 (expected tcp:host:port[/method])",
            ),
            (
                ":80",
                "missing host in tcp::80 (expected tcp:host:port[/method])",
            ),
            ("h:0", "bad port '0' in tcp:h:0 (expected 1-65535)"),
            ("h:", "bad port '' in tcp:h: (expected 1-65535)"),
            (
                "h:80x/m",
                "bad port '80x' in tcp:h:80x/m (expected 1-65535)",
            ),
            (
                "127.0.0.1:80/",
                "empty method after '/' in tcp:127.0.0.1:80/",
            ),
        ] {
            assert_eq!(err(body), want, "{body}");
        }
        assert!(err("no-such-host.invalid:80")
            .starts_with("cannot resolve host 'no-such-host.invalid'"));
    }

    #[test]
    fn print_round_trips_and_refresh_matches() {
        for (body, printed) in [
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("127.0.0.1:08080/m", "127.0.0.1:8080/m"),
            ("[::1]:9/x", "[::1]:9/x"),
        ] {
            let d = ok(body);
            let mut out = String::new();
            d.print(&mut out);
            assert_eq!(out, printed);
            assert!(ok(&out).same_subscription(&d), "{out}");
        }
        assert!(ok("LOCALHOST:1/m").same_subscription(&ok("localhost:1/m")));
        for (a, b) in [
            ("localhost:1", "localhost:2"),
            ("localhost:1", "localhost:1/m"),
            ("localhost:1/m", "localhost:1/n"),
            ("127.0.0.1:1", "localhost:1"),
        ] {
            assert!(!ok(a).same_subscription(&ok(b)), "{a} vs {b}");
            assert!(!ok(b).same_subscription(&ok(a)), "{b} vs {a}");
        }
    }
}
