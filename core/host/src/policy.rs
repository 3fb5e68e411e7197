//! What an MI client may subscribe (config-file subscriptions are trusted), and the size limits
//! of MI requests. Set by global params; see `config.rs`.

use std::cell::RefCell;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// The subscription policy and request limits.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Protos MI may subscribe (`mi_allowed_protos`); `None` = every loaded proto.
    pub allowed_protos: Option<Vec<String>>,
    /// Longest expire MI may ask for, seconds (`mi_max_expire`); `None` = no limit.
    pub max_expire: Option<i64>,
    /// Subscribers one event may have (`mi_max_subscribers_per_event`).
    pub max_per_event: usize,
    /// Subscribers in total (`mi_max_subscribers`).
    pub max_total: usize,
    /// Directory MI-created flatstore files must be in (`mi_flatstore_dir`); `None` = anywhere.
    pub flatstore_dir: Option<PathBuf>,
    /// Largest MI request body, bytes (`mi_max_request`).
    pub max_request: usize,
    /// Most params in one MI request, and the longest string param (`mi_max_params`,
    /// `mi_max_param_len`).
    pub max_params: usize,
    pub max_param_len: usize,
    /// Longest socket URI (`mi_max_socket_len`).
    pub max_socket_len: usize,
    /// Network peers MI-created sockets may send to (`mi_allowed_destinations`); `None` = any.
    pub allowed_destinations: Option<Vec<Allow>>,
}

/// One `mi_allowed_destinations` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow {
    /// An address range (a single address is a /32 or /128).
    Net(IpAddr, u8),
    /// A host name, lower case; `*.example.com` matches every name under example.com.
    Name(String),
}

impl Allow {
    /// Parse `10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32`, `mq.example.com` or `*.example.com`.
    pub fn parse(entry: &str) -> Result<Allow, String> {
        let bad = |why: &str| Err(format!("mi_allowed_destinations entry {entry:?}: {why}"));
        let (addr, prefix) = match entry.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (entry, None),
        };
        if let Ok(ip) = addr.trim_matches(['[', ']']).parse::<IpAddr>() {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match prefix {
                None => max,
                Some(p) => match p.parse::<u8>() {
                    Ok(b) if b <= max => b,
                    _ => return bad(&format!("prefix length must be 0..={max}")),
                },
            };
            return Ok(Allow::Net(ip, bits));
        }
        if prefix.is_some() {
            return bad("not an IP address range");
        }
        let name = entry.strip_prefix("*.").unwrap_or(entry);
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if name.len() > 253 || !name.split('.').all(label_ok) {
            return bad("neither an IP address, a CIDR range nor a host name");
        }
        Ok(Allow::Name(entry.to_ascii_lowercase()))
    }

    fn admits_ip(&self, ip: IpAddr) -> bool {
        let Allow::Net(net, bits) = *self else {
            return false;
        };
        // Loopback, private and link-local peers need an entry inside such a range: a broad
        // entry like 0.0.0.0/0 must not open the host's own network to MI clients.
        let whole_internet = net.is_unspecified() && bits < 8;
        if internal(ip) && (whole_internet || !internal(net)) {
            return false;
        }
        match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => same_prefix(&n.octets(), &a.octets(), bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => same_prefix(&n.octets(), &a.octets(), bits),
            _ => false,
        }
    }

    fn admits_name(&self, name: &str) -> bool {
        match self {
            Allow::Name(n) => match n.strip_prefix("*.") {
                Some(domain) => name
                    .strip_suffix(domain)
                    .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
                None => n == name,
            },
            Allow::Net(..) => false,
        }
    }
}

fn same_prefix(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = ((bits / 8) as usize, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
}

/// Loopback, private, link-local, shared (CGNAT) and unspecified addresses.
fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => internal(IpAddr::V4(v4)),
            None => {
                let s = a.segments();
                a.is_loopback()
                    || a.is_unspecified()
                    || (s[0] & 0xfe00) == 0xfc00
                    || (s[0] & 0xffc0) == 0xfe80
            }
        },
    }
}

thread_local! {
    /// The policy of the MI subscription whose socket this thread is parsing, so that sockets a
    /// transport opens while parsing (event_virtual's members) are held to it too.
    static MI_PARSE: RefCell<Option<Arc<Policy>>> = const { RefCell::new(None) };
}

/// Run `f` (a transport's parse) with `policy` as the MI policy of what it opens.
pub(crate) fn parsing_for_mi<R>(policy: Option<&Arc<Policy>>, f: impl FnOnce() -> R) -> R {
    let before = MI_PARSE.with(|p| p.replace(policy.cloned()));
    let r = f();
    MI_PARSE.with(|p| *p.borrow_mut() = before);
    r
}

/// The MI policy of the parse running on this thread, if it serves an MI subscription.
pub(crate) fn mi_parse_policy() -> Option<Arc<Policy>> {
    MI_PARSE.with(|p| p.borrow().clone())
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allowed_protos: None,
            max_expire: None,
            max_per_event: 1000,
            max_total: 10_000,
            flatstore_dir: None,
            max_request: 1 << 20,
            max_params: 64,
            max_param_len: 64 * 1024,
            max_socket_len: 1024,
            allowed_destinations: None,
        }
    }
}

impl Policy {
    /// Whether MI may subscribe `socket` with `expire`; the error says which rule refused it.
    pub fn check_subscription(&self, socket: &str, expire: i64) -> Result<(), String> {
        if socket.len() > self.max_socket_len {
            return Err(format!(
                "socket longer than {} bytes (mi_max_socket_len)",
                self.max_socket_len
            ));
        }
        let (proto, body) = socket.split_once(':').unwrap_or((socket, ""));
        if let Some(allowed) = &self.allowed_protos {
            if !allowed.iter().any(|p| p == proto) {
                return Err(format!(
                    "proto {proto:?} is not allowed over MI (mi_allowed_protos: {})",
                    allowed.join(",")
                ));
            }
        }
        if let Some(max) = self.max_expire {
            if expire > max {
                return Err(format!(
                    "expire {expire} is above the maximum of {max} seconds (mi_max_expire)"
                ));
            }
        }
        if proto == "flatstore" {
            if let Some(dir) = &self.flatstore_dir {
                beneath(dir, Path::new(body))?;
            }
        }
        Ok(())
    }
}

impl Policy {
    /// Whether a socket may send to these peers (`Transport::destinations` lines: `ip:port`,
    /// `[ip]:port` or `host:port`).
    pub fn check_destinations(&self, peers: &[String]) -> Result<(), String> {
        let Some(allowed) = &self.allowed_destinations else {
            return Ok(());
        };
        for peer in peers {
            let host = match peer.rsplit_once(':') {
                Some((h, port)) if port.parse::<u16>().is_ok() => h,
                _ => peer.as_str(),
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let ok = match host.parse::<IpAddr>() {
                Ok(ip) => {
                    let ip = match ip {
                        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                        v4 => v4,
                    };
                    allowed.iter().any(|a| a.admits_ip(ip))
                }
                Err(_) => {
                    let name = host.trim_end_matches('.').to_ascii_lowercase();
                    allowed.iter().any(|a| a.admits_name(&name))
                }
            };
            if !ok {
                return Err(format!(
                    "destination {peer} is not allowed over MI (mi_allowed_destinations)"
                ));
            }
        }
        Ok(())
    }
}

/// `path` must be an absolute path inside `dir`, with no `..` and no symlink on the way: an
/// early, clear refusal. It is not the guard: a link created after this check is caught by the
/// module's own open (`mi_file_root`, `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`).
fn beneath(dir: &Path, path: &Path) -> Result<(), String> {
    let refuse = |why: &str| {
        Err(format!(
            "flatstore path {} {why} (mi_flatstore_dir is {})",
            path.display(),
            dir.display()
        ))
    };
    if !path.is_absolute() {
        return refuse("is not absolute");
    }
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return refuse("contains . or ..");
    }
    let Ok(rest) = path.strip_prefix(dir) else {
        return refuse("is outside the allowed directory");
    };
    let mut at = dir.to_path_buf();
    for c in rest.components() {
        at.push(c);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return refuse("goes through a symbolic link");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_name_what_refused() {
        let p = Policy {
            allowed_protos: Some(vec!["udp".into(), "flatstore".into()]),
            max_expire: Some(600),
            flatstore_dir: Some(PathBuf::from("/var/log/evid")),
            ..Policy::default()
        };
        assert!(p.check_subscription("udp:127.0.0.1:9", 60).is_ok());
        assert!(p
            .check_subscription("flatstore:/var/log/evid/a.log", 60)
            .is_ok());
        let err = |s: &str, e: i64| p.check_subscription(s, e).err().unwrap_or_default();
        assert!(err("tcp:1.2.3.4:5", 60).contains("proto \"tcp\" is not allowed"));
        assert!(err("udp:127.0.0.1:9", 601).contains("above the maximum of 600"));
        assert!(err("flatstore:/etc/passwd", 60).contains("outside the allowed directory"));
        assert!(err("flatstore:/var/log/evid/../../etc/x", 60).contains(". or .."));
        assert!(err("flatstore:x.log", 60).contains("not absolute"));
        assert!(err(&format!("udp:{}", "a".repeat(2000)), 60).contains("mi_max_socket_len"));
    }

    #[test]
    fn destinations_need_an_entry_and_internal_ones_an_internal_entry() {
        let list = "0.0.0.0/0 ::/0 127.0.0.1 10.1.0.0/16 mq.example.com *.events.example.org";
        let p = Policy {
            allowed_destinations: Some(
                list.split(' ')
                    .map(|e| Allow::parse(e).unwrap_or_else(|e| panic!("{e}")))
                    .collect(),
            ),
            ..Policy::default()
        };
        let ok = |peer: &str| p.check_destinations(&[peer.to_string()]).is_ok();
        assert!(ok("192.0.2.7:9"));
        assert!(ok("[2001:db8::1]:9"));
        assert!(ok("127.0.0.1:8080"));
        assert!(ok("10.1.200.3:5672"));
        assert!(ok("MQ.example.com:5672"));
        assert!(ok("a.events.example.org:80"));
        assert!(!ok("events.example.org:80"), "the wildcard needs a label");
        assert!(!ok("evil.com:80"));
        assert!(!ok("127.0.0.2:9"), "0.0.0.0/0 does not admit loopback");
        assert!(!ok("10.2.0.1:9"));
        assert!(!ok("192.168.1.1:9"));
        assert!(!ok("169.254.169.254:80"), "cloud metadata is link-local");
        assert!(!ok("[::1]:9"));
        assert!(!ok("[fe80::1]:9"));
        assert!(!ok("[::ffff:10.2.0.1]:9"), "v4-mapped is checked as v4");
        let e = p.check_destinations(&["evil.com:80".into()]).err();
        assert_eq!(
            e.as_deref(),
            Some("destination evil.com:80 is not allowed over MI (mi_allowed_destinations)")
        );
        assert!(Allow::parse("10.0.0.0/33").is_err());
        assert!(Allow::parse("bad_name!").is_err());
        assert_eq!(
            Allow::parse("[::1]").ok(),
            Some(Allow::Net(
                "::1".parse().unwrap_or(IpAddr::V4(0.into())),
                128
            ))
        );
    }
}
