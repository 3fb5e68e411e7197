//! Subscriber sockets: `udp:host:port`, `udp:[v6]:port` and `unix:/path`.
//!
//! Parsing is pure apart from name resolution, which happens once here (at subscribe time) so
//! that `raise` never waits on DNS. Every error is one line naming the bad part and the URI.

use evi_sdk::uri::{parse_port, Clean};
use std::fmt;
use std::net::{Ipv6Addr, SocketAddr, ToSocketAddrs};

/// Longest unix socket path: `sun_path` is 108 bytes and needs a terminating NUL.
pub const UNIX_PATH_MAX: usize = 107;

/// A parsed destination. Pure data; the sender attaches the kernel address and descriptors.
#[derive(Clone, PartialEq, Eq)]
pub enum Dest {
    /// A UDP destination, resolved at parse time.
    Udp {
        /// The host as written in the URI, brackets included for IPv6 (kept for `print`).
        host: String,
        port: u16,
        /// The resolved address that datagrams go to.
        addr: SocketAddr,
    },
    /// A unix datagram socket path, as written (relative paths resolve against the daemon's
    /// working directory at each send, as in OpenSIPS).
    Unix { path: String },
}

impl Dest {
    /// Parse the body of a `udp:` or `unix:` URI.
    pub fn parse(proto: &str, body: &str) -> Result<Dest, String> {
        let uri = Uri { proto, body };
        match proto {
            "udp" => parse_udp(uri),
            "unix" => parse_unix(uri),
            _ => Err(format!(
                "unknown proto '{}' (event_datagram serves udp and unix)",
                Clean(proto)
            )),
        }
    }

    /// Whether `self` and `other` are the same destination: exact address and port (udp), or
    /// exact path (unix). OpenSIPS compared a byte prefix, so `127.0.0.1` refreshed a stored
    /// `127.0.0.10`; comparing whole values is the fix.
    pub fn same_destination(&self, other: &Dest) -> bool {
        match (self, other) {
            (Dest::Udp { addr: a, .. }, Dest::Udp { addr: b, .. }) => a == b,
            (Dest::Unix { path: a }, Dest::Unix { path: b }) => a == b,
            _ => false,
        }
    }

    /// `udp` or `unix`.
    pub fn proto(&self) -> &'static str {
        match self {
            Dest::Udp { .. } => "udp",
            Dest::Unix { .. } => "unix",
        }
    }

    /// The body without the proto, in input syntax so that it parses back to a match.
    pub fn print(&self, out: &mut String) {
        match self {
            Dest::Udp { host, port, .. } => {
                out.push_str(host);
                out.push(':');
                out.push_str(&port.to_string());
            }
            Dest::Unix { path } => out.push_str(path),
        }
    }
}

/// `proto:body`, with control characters escaped so that error lines stay one line.
impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut body = String::new();
        self.print(&mut body);
        write!(
            f,
            "{}",
            Uri {
                proto: self.proto(),
                body: &body
            }
        )
    }
}

impl fmt::Debug for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dest::Udp { addr, .. } => write!(f, "{self} ({addr})"),
            Dest::Unix { .. } => write!(f, "{self}"),
        }
    }
}

/// The URI being parsed, for error messages.
#[derive(Clone, Copy)]
struct Uri<'a> {
    proto: &'a str,
    body: &'a str,
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", Clean(self.proto), Clean(self.body))
    }
}

fn parse_udp(uri: Uri<'_>) -> Result<Dest, String> {
    let body = uri.body;
    // IPv6 literals need brackets: OpenSIPS split at the first ':' and so had no way to write
    // one (§6 item 12).
    let (host, name, port) = if let Some(rest) = body.strip_prefix('[') {
        let Some((inner, after)) = rest.split_once(']') else {
            return Err(format!("missing ']' in {uri}"));
        };
        let Some(port) = after.strip_prefix(':') else {
            return Err(if after.is_empty() {
                format!("missing port in {uri} (expected udp:[address]:port)")
            } else {
                format!("expected ':port' after ']' in {uri}")
            });
        };
        // An optional `%zone` (link-local scope) is left to the resolver.
        let addr = inner.split_once('%').map_or(inner, |(a, _)| a);
        if addr.parse::<Ipv6Addr>().is_err() {
            return Err(format!("bad IPv6 address '{}' in {uri}", Clean(inner)));
        }
        (&body[..inner.len() + 2], inner, port)
    } else {
        let Some((host, port)) = body.rsplit_once(':') else {
            return Err(format!("missing port in {uri} (expected udp:host:port)"));
        };
        if host.is_empty() {
            return Err(format!("missing host in {uri} (expected udp:host:port)"));
        }
        if host.contains(':') {
            return Err(format!(
                "host '{}' in {uri} contains ':'; write IPv6 addresses in brackets, e.g. udp:[::1]:9000",
                Clean(host)
            ));
        }
        (host, host, port)
    };
    let port = parse_port(port)
        .ok_or_else(|| format!("bad port '{}' in {uri} (expected 1-65535)", Clean(port)))?;
    let addr = resolve(name, port, host.starts_with('['), uri)?;
    Ok(Dest::Udp {
        host: host.to_string(),
        port,
        addr,
    })
}

/// Resolve once. IPv4 is preferred for names with both kinds of address, as OpenSIPS only ever
/// used IPv4 and a subscriber that binds `localhost` usually binds 127.0.0.1.
fn resolve(name: &str, port: u16, v6_only: bool, uri: Uri<'_>) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = (name, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host '{}' in {uri}: {e}", Clean(name)))?
        .filter(|a| !v6_only || a.is_ipv6())
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("host '{}' in {uri} resolved to no address", Clean(name)))
}

fn parse_unix(uri: Uri<'_>) -> Result<Dest, String> {
    let path = uri.body;
    if path.is_empty() {
        return Err(format!(
            "missing path in {uri} (expected unix:/path/to/socket)"
        ));
    }
    // Abstract sockets (leading NUL) are not supported, and a NUL anywhere else would truncate.
    if path.contains('\0') {
        return Err(format!("unix socket path in {uri} contains a NUL byte"));
    }
    if path.len() > UNIX_PATH_MAX {
        return Err(format!(
            "unix socket path in {uri} is {} bytes, longer than the {UNIX_PATH_MAX}-byte limit of sun_path",
            path.len()
        ));
    }
    Ok(Dest::Unix {
        path: path.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(proto: &str, body: &str) -> String {
        match Dest::parse(proto, body) {
            Ok(d) => panic!("{proto}:{body} parsed as {d:?}"),
            Err(e) => e,
        }
    }

    fn ok(proto: &str, body: &str) -> Dest {
        Dest::parse(proto, body).unwrap_or_else(|e| panic!("{proto}:{body}: {e}"))
    }

    #[test]
    fn error_messages_are_exact() {
        let long = format!("/{}", "a".repeat(UNIX_PATH_MAX));
        let cases: &[(&str, &str, String)] = &[
            ("udp", "127.0.0.1:0", "bad port '0' in udp:127.0.0.1:0 (expected 1-65535)".into()),
            ("udp", "127.0.0.1:65536", "bad port '65536' in udp:127.0.0.1:65536 (expected 1-65535)".into()),
            ("udp", "127.0.0.1:+80", "bad port '+80' in udp:127.0.0.1:+80 (expected 1-65535)".into()),
            ("udp", "127.0.0.1:http", "bad port 'http' in udp:127.0.0.1:http (expected 1-65535)".into()),
            ("udp", "127.0.0.1:", "bad port '' in udp:127.0.0.1: (expected 1-65535)".into()),
            ("udp", "127.0.0.1:9000/x", "bad port '9000/x' in udp:127.0.0.1:9000/x (expected 1-65535)".into()),
            ("udp", "127.0.0.1", "missing port in udp:127.0.0.1 (expected udp:host:port)".into()),
            ("udp", "", "missing port in udp: (expected udp:host:port)".into()),
            ("udp", ":9000", "missing host in udp::9000 (expected udp:host:port)".into()),
            (
                "udp",
                "::1:9000",
                "host '::1' in udp:::1:9000 contains ':'; write IPv6 addresses in brackets, e.g. udp:[::1]:9000"
                    .into(),
            ),
            ("udp", "[::1:9000", "missing ']' in udp:[::1:9000".into()),
            ("udp", "[::1]", "missing port in udp:[::1] (expected udp:[address]:port)".into()),
            ("udp", "[::1]9000", "expected ':port' after ']' in udp:[::1]9000".into()),
            ("udp", "[::1]:0", "bad port '0' in udp:[::1]:0 (expected 1-65535)".into()),
            ("udp", "[localhost]:9000", "bad IPv6 address 'localhost' in udp:[localhost]:9000".into()),
            ("udp", "[127.0.0.1]:9000", "bad IPv6 address '127.0.0.1' in udp:[127.0.0.1]:9000".into()),
            ("udp", "a\nb:0", "bad port '0' in udp:a\\nb:0 (expected 1-65535)".into()),
            ("unix", "", "missing path in unix: (expected unix:/path/to/socket)".into()),
            ("unix", "/tmp/a\0b", "unix socket path in unix:/tmp/a\\u{0}b contains a NUL byte".into()),
            (
                "unix",
                &long,
                format!("unix socket path in unix:{long} is 108 bytes, longer than the 107-byte limit of sun_path"),
            ),
            ("tcp", "127.0.0.1:9000", "unknown proto 'tcp' (event_datagram serves udp and unix)".into()),
        ];
        for (proto, body, want) in cases {
            assert_eq!(&err(proto, body), want, "{proto}:{body}");
        }
    }

    #[test]
    fn unresolvable_host_is_named() {
        let e = err("udp", "no-such-host.invalid:9000");
        assert!(
            e.starts_with(
                "cannot resolve host 'no-such-host.invalid' in udp:no-such-host.invalid:9000: "
            ),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn accepts_valid_uris() {
        let d = ok("udp", "127.0.0.1:9000");
        assert_eq!(
            d,
            Dest::Udp {
                host: "127.0.0.1".into(),
                port: 9000,
                addr: "127.0.0.1:9000".parse().unwrap()
            }
        );
        let d = ok("udp", "[::1]:65535");
        assert_eq!(
            d,
            Dest::Udp {
                host: "[::1]".into(),
                port: 65535,
                addr: "[::1]:65535".parse().unwrap()
            }
        );
        let d = ok("udp", "localhost:1");
        assert!(matches!(d, Dest::Udp { addr, .. } if addr.ip().is_loopback() && addr.port() == 1));
        let max = format!("/{}", "a".repeat(UNIX_PATH_MAX - 1));
        assert_eq!(ok("unix", &max), Dest::Unix { path: max.clone() });
        assert_eq!(
            ok("unix", "rel/ev.sock"),
            Dest::Unix {
                path: "rel/ev.sock".into()
            }
        );
    }

    #[test]
    fn print_round_trips() {
        for (proto, body, printed) in [
            ("udp", "127.0.0.1:9000", "127.0.0.1:9000"),
            ("udp", "localhost:09000", "localhost:9000"),
            ("udp", "[::1]:9000", "[::1]:9000"),
            ("udp", "[0:0::1]:9000", "[0:0::1]:9000"),
            ("unix", "/run/app/ev.sock", "/run/app/ev.sock"),
            ("unix", "ev.sock", "ev.sock"),
        ] {
            let d = ok(proto, body);
            let mut out = String::new();
            d.print(&mut out);
            assert_eq!(out, printed);
            assert!(ok(proto, &out).same_destination(&d), "{proto}:{out}");
            assert_eq!(d.to_string(), format!("{proto}:{printed}"));
        }
    }

    #[test]
    fn match_is_exact() {
        let cases = [
            ("udp:127.0.0.1:9000", "udp:127.0.0.1:9000", true),
            ("udp:127.0.0.1:9000", "udp:127.0.0.10:9000", false),
            ("udp:127.0.0.10:9000", "udp:127.0.0.1:9000", false),
            ("udp:127.0.0.1:9000", "udp:127.0.0.1:9001", false),
            ("udp:127.0.0.1:900", "udp:127.0.0.1:9000", false),
            ("udp:127.0.0.1:9000", "udp:localhost:9000", true),
            ("udp:127.0.0.1:9000", "udp:127.1:9000", true),
            ("udp:[::1]:9000", "udp:[0:0::1]:9000", true),
            ("udp:[::1]:9000", "udp:127.0.0.1:9000", false),
            ("unix:/tmp/a", "unix:/tmp/a", true),
            ("unix:/tmp/a", "unix:/tmp/ab", false),
            ("unix:/tmp/ab", "unix:/tmp/a", false),
            ("unix:/tmp/a", "unix:/tmp/a/", false),
            ("unix:127.0.0.1:9000", "udp:127.0.0.1:9000", false),
        ];
        for (a, b, want) in cases {
            let (pa, ba) = a.split_once(':').unwrap();
            let (pb, bb) = b.split_once(':').unwrap();
            let (da, db) = (ok(pa, ba), ok(pb, bb));
            assert_eq!(da.same_destination(&db), want, "{a} vs {b}");
            assert_eq!(db.same_destination(&da), want, "{b} vs {a} (symmetry)");
            assert!(da.same_destination(&da), "{a} reflexive");
        }
    }
}
