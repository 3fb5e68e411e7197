//! Pieces of socket URIs that every network transport parses the same way.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

/// Text from a URI, displayed with control characters escaped: a newline in a subscriber's URI
/// must not split a log line or an MI error.
pub struct Clean<'a>(pub &'a str);

impl fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// Split `host:rest` at the colon after the host; an IPv6 literal is bracketed (`[::1]:rest`) and
/// keeps its brackets. `None` when there is no such colon.
pub fn split_host(body: &str) -> Option<(&str, &str)> {
    if body.starts_with('[') {
        let end = body.find(']')?;
        let rest = body[end + 1..].strip_prefix(':')?;
        Some((&body[..=end], rest))
    } else {
        body.split_once(':')
    }
}

/// A port: decimal 1..=65535, digits only (`u16::from_str` would take a `+`).
pub fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|&p| p != 0)
}

/// Resolve `name` once (at subscribe time, as OpenSIPS does), IPv4 first: OpenSIPS only ever
/// used IPv4, and `localhost` consumers usually bind 127.0.0.1.
pub fn resolve(name: &str, port: u16) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = (name, port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| "no address".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_ports_and_names() {
        assert_eq!(split_host("h:1:m"), Some(("h", "1:m")));
        assert_eq!(split_host("[::1]:9"), Some(("[::1]", "9")));
        assert_eq!(split_host("[::1]9"), None);
        assert_eq!(parse_port("8080"), Some(8080));
        for bad in ["", "0", "+80", "65536", "x"] {
            assert_eq!(parse_port(bad), None, "{bad}");
        }
        assert_eq!(
            resolve("127.0.0.1", 9).map(|a| a.to_string()),
            Ok("127.0.0.1:9".into())
        );
    }
}
