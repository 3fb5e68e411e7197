//! Subscriber sockets: `rabbitmq:[user[:pass]@]host[:port]/[params?]routing_key`.
//!
//! The grammar is OpenSIPS's (reference §4.5): `params` is a `;`-separated list of
//! `exchange=X`, `tls_domain=D`, `persistent`, plus evid's `vhost=V` and `mandatory`. Every
//! field is %-unescaped. [`RabbitUri::print`] writes a form that parses back to an equal socket
//! (OpenSIPS's print dropped the port and the `exchange=` key).

use std::fmt::Write;

/// Default AMQP port.
pub const DEFAULT_PORT: u16 = 5672;
/// Default AMQPS port, for sockets with `tls_domain`.
pub const DEFAULT_TLS_PORT: u16 = 5671;
const DEFAULT_USER: &str = "guest";
const DEFAULT_PASSWORD: &str = "guest";
const DEFAULT_VHOST: &str = "/";

/// A parsed socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RabbitUri {
    pub user: String,
    pub password: String,
    /// Whether the password was written in the socket (printed back only then).
    pub password_given: bool,
    pub host: String,
    pub port: u16,
    pub vhost: String,
    /// `""` is the default exchange (routing key = queue name).
    pub exchange: String,
    pub routing_key: String,
    /// Publish with delivery mode 2.
    pub persistent: bool,
    /// Publish with the mandatory flag (unroutable events are returned and fail).
    pub mandatory: bool,
    pub tls_domain: Option<String>,
}

/// What identifies one broker connection: sockets with the same key share it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BrokerKey {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub vhost: String,
    /// Sockets of different TLS domains (or plain and TLS) never share a connection.
    pub tls_domain: Option<String>,
}

impl BrokerKey {
    /// `user@host:port/vhost` for logs and MI (never the password).
    pub fn label(&self) -> String {
        format!(
            "{}@{}:{}{}{}",
            self.user,
            host_for_print(&self.host),
            self.port,
            if self.vhost.starts_with('/') { "" } else { "/" },
            self.vhost
        )
    }
}

impl RabbitUri {
    /// Parse the part after `rabbitmq:`; the error names the bad part.
    pub fn parse(body: &str) -> Result<RabbitUri, String> {
        let fail = |what: String| one_line(format!("rabbitmq socket '{body}': {what}"));
        let (authority, path) = body
            .split_once('/')
            .ok_or_else(|| fail("missing '/' before the routing key".into()))?;
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password, password_given) = match userinfo {
            None => (
                DEFAULT_USER.to_string(),
                DEFAULT_PASSWORD.to_string(),
                false,
            ),
            Some(u) => {
                let (name, pass) = match u.split_once(':') {
                    Some((n, p)) => (n, Some(p)),
                    None => (u, None),
                };
                let name = unescape(name).map_err(|e| fail(format!("user: {e}")))?;
                if name.is_empty() {
                    return Err(fail("empty user before '@'".into()));
                }
                match pass {
                    Some(p) => (
                        name,
                        unescape(p).map_err(|e| fail(format!("password: {e}")))?,
                        true,
                    ),
                    // OpenSIPS logs in with password "guest" when only a user is given.
                    None => (name, DEFAULT_PASSWORD.to_string(), false),
                }
            }
        };
        let (host, port) = split_host_port(hostport).map_err(&fail)?;
        let (params, key) = match path.split_once('?') {
            Some((p, k)) => (Some(p), k),
            None => (None, path),
        };
        let routing_key = unescape(key).map_err(|e| fail(format!("routing key: {e}")))?;
        if routing_key.is_empty() {
            return Err(fail("empty routing key".into()));
        }
        let mut uri = RabbitUri {
            user,
            password,
            password_given,
            host,
            port: port.unwrap_or(DEFAULT_PORT),
            vhost: DEFAULT_VHOST.into(),
            exchange: String::new(),
            routing_key,
            persistent: false,
            mandatory: false,
            tls_domain: None,
        };
        for param in params.into_iter().flat_map(|p| p.split(';')) {
            uri.apply_param(param).map_err(&fail)?;
        }
        if port.is_none() && uri.tls_domain.is_some() {
            uri.port = DEFAULT_TLS_PORT;
        }
        Ok(uri)
    }

    fn apply_param(&mut self, param: &str) -> Result<(), String> {
        let (name, raw) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v)),
            None => (param.trim(), None),
        };
        let value = |what: &str| -> Result<String, String> {
            let v = raw.ok_or_else(|| format!("parameter '{what}' needs a value ({what}=...)"))?;
            unescape(v).map_err(|e| format!("{what}: {e}"))
        };
        let flag = |what: &str| match raw {
            None => Ok(true),
            Some(_) => Err(format!("parameter '{what}' takes no value")),
        };
        match name {
            "" => {}
            "exchange" => self.exchange = value("exchange")?,
            "vhost" => {
                self.vhost = value("vhost")?;
                if self.vhost.is_empty() {
                    return Err("vhost: empty".into());
                }
            }
            "tls_domain" => {
                let d = value("tls_domain")?;
                if d.is_empty() {
                    return Err("tls_domain: empty".into());
                }
                self.tls_domain = Some(d);
            }
            "persistent" => self.persistent = flag("persistent")?,
            "mandatory" => self.mandatory = flag("mandatory")?,
            other => {
                return Err(format!(
                "unknown parameter '{other}' (expected exchange=, vhost=, tls_domain=, persistent, mandatory)"
            ))
            }
        }
        Ok(())
    }

    /// The connection this socket publishes on.
    pub fn broker(&self) -> BrokerKey {
        BrokerKey {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            password: self.password.clone(),
            vhost: self.vhost.clone(),
            tls_domain: self.tls_domain.clone(),
        }
    }

    fn default_port(&self) -> u16 {
        if self.tls_domain.is_some() {
            DEFAULT_TLS_PORT
        } else {
            DEFAULT_PORT
        }
    }

    /// OpenSIPS's match (host, port, routing key, user, exchange) plus the vhost; password,
    /// flags and TLS domain do not make a different destination.
    pub fn same_destination(&self, other: &RabbitUri) -> bool {
        self.host == other.host
            && self.port == other.port
            && self.routing_key == other.routing_key
            && self.user == other.user
            && self.exchange == other.exchange
            && self.vhost == other.vhost
    }

    /// The canonical input form: `user[:pass]@host[:port]/[params?]routing_key`, with the port
    /// only when it is not the default (5672, or 5671 with TLS) and only non-default params.
    pub fn print(&self, out: &mut String) {
        out.push_str(&escape(&self.user));
        if self.password_given {
            out.push(':');
            out.push_str(&escape(&self.password));
        }
        out.push('@');
        out.push_str(&host_for_print(&self.host));
        if self.port != self.default_port() {
            let _ = write!(out, ":{}", self.port);
        }
        out.push('/');
        let mut params = Vec::new();
        if !self.exchange.is_empty() {
            params.push(format!("exchange={}", escape(&self.exchange)));
        }
        if self.vhost != DEFAULT_VHOST {
            params.push(format!("vhost={}", escape(&self.vhost)));
        }
        if let Some(d) = &self.tls_domain {
            params.push(format!("tls_domain={}", escape(d)));
        }
        if self.persistent {
            params.push("persistent".into());
        }
        if self.mandatory {
            params.push("mandatory".into());
        }
        if !params.is_empty() {
            out.push_str(&params.join(";"));
            out.push('?');
        }
        out.push_str(&escape(&self.routing_key));
    }
}

/// Control characters escaped (`\n`, `\u{1b}`...), so that a socket with a newline in it cannot
/// split the log line or MI error that quotes it, as the other transports' errors do.
pub(crate) fn one_line(msg: String) -> String {
    if !msg.contains(char::is_control) {
        return msg;
    }
    msg.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// An IPv6-like host in brackets (read back raw); any other host %-escaped, which reads back
/// through the unbracketed form whatever it holds (a `]`, `/` or `@` would break the brackets).
fn host_for_print(host: &str) -> String {
    let bracketable = |b: u8| b.is_ascii_alphanumeric() || b":.%-_".contains(&b);
    if host.contains(':') && host.bytes().all(bracketable) {
        format!("[{host}]")
    } else {
        escape(host)
    }
}

fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("host '{hostport}': missing ']'"))?;
        match after {
            "" => (h.to_string(), None),
            p => match p.strip_prefix(':') {
                Some(p) => (h.to_string(), Some(p)),
                None => return Err(format!("host '{hostport}': unexpected '{p}' after ']'")),
            },
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (unescape(h).map_err(|e| format!("host: {e}"))?, Some(p)),
            None => (unescape(hostport).map_err(|e| format!("host: {e}"))?, None),
        }
    };
    if host.is_empty() {
        return Err("empty host".into());
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("bad port '{p}' (expected 1..65535)"))?,
        ),
    };
    Ok((host, port))
}

/// %-unescape; the result must be UTF-8 (AMQP short strings are).
pub fn unescape(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad %-escape at byte {i} of '{s}'"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("'{s}' is not UTF-8 once unescaped"))
}

/// %-escape what the grammar gives a meaning to, so `print` re-parses.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_graphic() && !b"%@:/?;=[]".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
