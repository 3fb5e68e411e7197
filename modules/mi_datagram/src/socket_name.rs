//! The `socket_name` modparam: `udp:IP:PORT` or the path of a unix datagram socket.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// Longest unix socket path the kernel takes (`sun_path` is 108 bytes with the NUL).
pub const MAX_UNIX_PATH: usize = 107;

/// Where mi_datagram listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketName {
    Udp(SocketAddr),
    Unix(PathBuf),
}

/// Parse `udp:IP:PORT` (IPv6 as `udp:[::1]:PORT` or `udp:::1:PORT`, a host name is resolved)
/// or a unix path. As in OpenSIPS, anything that does not start with `udp:` is a path.
pub fn parse(s: &str) -> Result<SocketName, String> {
    let s = s.trim();
    let Some(rest) = s.strip_prefix("udp:") else {
        if s.is_empty() {
            return Err("socket_name is empty: expected udp:IP:PORT or a unix socket path".into());
        }
        if s.len() > MAX_UNIX_PATH {
            return Err(format!(
                "unix socket path {s:?} is {} bytes; the limit is {MAX_UNIX_PATH}",
                s.len()
            ));
        }
        return Ok(SocketName::Unix(PathBuf::from(s)));
    };
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?}: expected udp:IP:PORT"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{s:?}: bad port {port:?} (1..65535)"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(format!("{s:?}: missing IP"));
    }
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{s:?}: cannot resolve {host:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{s:?}: {host:?} has no address"))?;
    Ok(SocketName::Udp(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn udp_forms() {
        assert_eq!(
            parse("udp:127.0.0.1:8080"),
            Ok(SocketName::Udp(udp("127.0.0.1:8080")))
        );
        assert_eq!(parse("udp:[::1]:9"), Ok(SocketName::Udp(udp("[::1]:9"))));
        assert_eq!(parse("udp:::1:9"), Ok(SocketName::Udp(udp("[::1]:9"))));
        assert_eq!(
            parse(" udp:0.0.0.0:1 "),
            Ok(SocketName::Udp(udp("0.0.0.0:1")))
        );
    }

    #[test]
    fn paths() {
        assert_eq!(
            parse("/run/evid/mi.sock"),
            Ok(SocketName::Unix("/run/evid/mi.sock".into()))
        );
        assert!(parse(&format!("/{}", "a".repeat(MAX_UNIX_PATH))).is_err());
    }

    #[test]
    fn bad_ones_say_why() {
        for (s, want) in [
            ("", "empty"),
            ("udp:127.0.0.1", "expected udp:IP:PORT"),
            ("udp:127.0.0.1:0", "bad port"),
            ("udp:127.0.0.1:x", "bad port"),
            ("udp::80", "missing IP"),
        ] {
            let e = parse(s).unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
    }
}
