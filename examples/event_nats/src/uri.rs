//! The socket: `nats:HOST[:PORT]/SUBJECT` (the part after `nats:` is parsed here).

use std::fmt;

/// NATS's default client port.
pub const DEFAULT_PORT: u16 = 4222;

/// A parsed `nats:` socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsUri {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The subject to publish to (no wildcards).
    pub subject: String,
}

impl NatsUri {
    /// Parse `HOST[:PORT]/SUBJECT`; the error names the bad part.
    pub fn parse(body: &str) -> Result<NatsUri, String> {
        let (server, subject) = body
            .split_once('/')
            .ok_or_else(|| format!("nats:{body}: expected nats:HOST:PORT/SUBJECT"))?;
        let (host, port) = split_host_port(server)
            .ok_or_else(|| format!("nats:{body}: bad server {server:?} (expected HOST:PORT)"))?;
        check_subject(subject).map_err(|e| format!("nats:{body}: subject {subject:?} {e}"))?;
        Ok(NatsUri {
            host: host.to_string(),
            port,
            subject: subject.to_string(),
        })
    }

    /// `host:port`, the key of the server's connection (IPv6 in brackets).
    pub fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The socket body, such that `parse(to_string())` gives the same socket.
impl fmt::Display for NatsUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.server(), self.subject)
    }
}

fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':')?)),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
        return None;
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p.parse().ok().filter(|p| *p != 0)?,
    };
    Some((host, port))
}

/// A publishable subject: dot-separated non-empty tokens, no whitespace, no wildcards.
fn check_subject(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("is empty");
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace");
    }
    for token in s.split('.') {
        match token {
            "" => return Err("has an empty token (leading, trailing or double dot)"),
            "*" | ">" => return Err("has a wildcard; publish needs a concrete subject"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_back() {
        for (body, printed) in [
            ("127.0.0.1:4222/evid.events", "127.0.0.1:4222/evid.events"),
            ("nats.example.com/a.b", "nats.example.com:4222/a.b"),
            ("[::1]:4333/x", "[::1]:4333/x"),
            ("[::1]/x", "[::1]:4222/x"),
        ] {
            let u = NatsUri::parse(body).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(u.to_string(), printed);
            assert_eq!(NatsUri::parse(printed).as_ref(), Ok(&u));
        }
        assert_eq!(NatsUri::parse("[::1]/x").map(|u| u.host), Ok("::1".into()));
    }

    #[test]
    fn errors_name_the_bad_part() {
        for (body, want) in [
            ("127.0.0.1:4222", "expected nats:HOST:PORT/SUBJECT"),
            (":4222/x", "bad server \":4222\""),
            ("h:0/x", "bad server \"h:0\""),
            ("h:99999/x", "bad server"),
            ("h:1/", "subject \"\" is empty"),
            ("h:1/a..b", "empty token"),
            ("h:1/a.*", "wildcard"),
            ("h:1/a.>", "wildcard"),
            ("h:1/a b", "whitespace"),
        ] {
            let e = NatsUri::parse(body).err().unwrap_or_default();
            assert!(e.contains(want), "{body}: {e}");
        }
    }
}
