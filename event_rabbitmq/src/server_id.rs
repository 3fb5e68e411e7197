//! `server_id`: named broker connections for the `rabbitmq_publish()` script function
//! (OpenSIPS's rabbitmq module), `[ID] uri=amqp[s]://user:pass@host:port/vhost; frames=N;
//! retries=N; exchange=X; heartbeat=N; immediate; mandatory; non-persistent; tls_domain=D`.
//!
//! A server is a broker like an event socket's (same buffer, confirms, reconnects; the same
//! connection when the address, credentials, vhost and TLS domain are the same), so a script
//! publish never blocks and is resent after a reconnect.

use crate::uri::BrokerKey;
use lapin::uri::{AMQPScheme, AMQPUri};

/// One declared server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerId {
    pub id: String,
    pub key: BrokerKey,
    pub exchange: String,
    /// Delivery mode 2 unless `non-persistent` (OpenSIPS inverted this; its README did not).
    pub persistent: bool,
    pub mandatory: bool,
    pub heartbeat: Option<u16>,
    pub frame_max: Option<u32>,
}

/// The smallest frame OpenSIPS accepts for `frames=`.
const MIN_FRAMES: u32 = 4096;

impl ServerId {
    /// Parse one `server_id` modparam value; the error names the bad part.
    pub fn parse(spec: &str) -> Result<ServerId, String> {
        let fail =
            |what: String| crate::uri::one_line(format!("modparam server_id '{spec}': {what}"));
        let rest = spec
            .trim()
            .strip_prefix('[')
            .ok_or_else(|| fail("expected '[ID]' first".into()))?;
        let (id, settings) = rest
            .split_once(']')
            .ok_or_else(|| fail("missing ']' after the id".into()))?;
        let id = id.trim();
        if id.is_empty() {
            return Err(fail("empty id".into()));
        }
        let mut uri: Option<AMQPUri> = None;
        let mut s = ServerId {
            id: id.to_string(),
            key: BrokerKey::default(),
            exchange: String::new(),
            persistent: true,
            mandatory: false,
            heartbeat: None,
            frame_max: None,
        };
        let mut tls_domain = None;
        for item in settings.split(';').map(str::trim).filter(|i| !i.is_empty()) {
            let (k, v) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item, None),
            };
            let need = || v.ok_or_else(|| fail(format!("'{k}' needs a value")));
            let number = |max: u64| -> Result<u64, String> {
                let t = need()?;
                t.parse::<u64>()
                    .ok()
                    .filter(|n| *n <= max)
                    .ok_or_else(|| fail(format!("{k}: '{t}' is not a number in 0..={max}")))
            };
            match k {
                "uri" => {
                    let t = need()?;
                    uri = Some(
                        t.parse::<AMQPUri>()
                            .map_err(|e| fail(format!("uri '{t}': {e}")))?,
                    );
                }
                "exchange" => s.exchange = need()?.to_string(),
                "tls_domain" => tls_domain = Some(need()?.to_string()),
                "heartbeat" => s.heartbeat = Some(number(65535)? as u16),
                "frames" => {
                    let n = number(u64::from(u32::MAX))? as u32;
                    s.frame_max = Some(n.max(MIN_FRAMES));
                }
                // Publishes are retried until confirmed or dropped from the buffer (counted).
                "retries" => {
                    number(1_000_000)?;
                }
                "mandatory" | "immediate" | "non-persistent" if v.is_some() => {
                    return Err(fail(format!("'{k}' takes no value")))
                }
                "mandatory" => s.mandatory = true,
                "non-persistent" => s.persistent = false,
                // RabbitMQ closes the channel of an `immediate` publish (unsupported since 3.0):
                // accepted so that OpenSIPS configs load, never sent.
                "immediate" => {}
                _ => {
                    return Err(fail(format!(
                    "unknown setting '{k}' (expected uri, exchange, tls_domain, heartbeat, frames, retries, mandatory, immediate, non-persistent)"
                )))
                }
            }
        }
        let uri = uri.ok_or_else(|| fail("uri=amqp://... is required".into()))?;
        if uri.scheme == AMQPScheme::AMQPS && tls_domain.is_none() {
            return Err(fail(
                "amqps:// needs tls_domain=NAME (a tls_domain modparam of event_rabbitmq)".into(),
            ));
        }
        s.key = BrokerKey {
            host: uri.authority.host,
            port: uri.authority.port,
            user: uri.authority.userinfo.username,
            password: uri.authority.userinfo.password,
            vhost: uri.vhost,
            tls_domain,
        };
        if s.key.host.is_empty() {
            return Err(fail("the uri has no host".into()));
        }
        Ok(s)
    }
}
