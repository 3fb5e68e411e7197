//! The MI commands behind `evictl events|subscribers|subscribe|unsubscribe|raise|mi`, and how
//! their results are shown.

use evid::mi_client::{MiCallError, Transport};
use serde_json::{Map, Value};
use std::time::Duration;

/// Why evictl stops: the message for stderr and the exit code (2 = usage, 1 = failure).
pub struct Fail {
    pub code: u8,
    pub msg: String,
}

impl Fail {
    pub fn usage(msg: &str) -> Fail {
        Fail {
            code: 2,
            msg: msg.to_string(),
        }
    }
    pub fn failed(msg: String) -> Fail {
        Fail { code: 1, msg }
    }
}

/// Where evid is, how long to wait for it, and how to print.
pub struct Ctl {
    pub transport: Transport,
    pub json: bool,
    pub timeout: Duration,
}

impl Ctl {
    /// Run one MI command; a failure says whether evid is unreachable or what it answered.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, Fail> {
        self.transport
            .call(method, params, self.timeout)
            .map_err(|e| match e {
                MiCallError::Transport(e) => {
                    Fail::failed(format!("{e} ({})", self.transport.hint()))
                }
                e => Fail::failed(format!("{method}: {e}")),
            })
    }

    /// Print `v` as JSON with `--json`, else `text()`.
    fn show(&self, v: &Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{v}");
        } else {
            println!("{}", text());
        }
    }
}

pub fn events(ctl: &Ctl) -> Result<(), Fail> {
    let v = ctl.call("events_list", Value::Array(vec![]))?;
    ctl.show(&v, || {
        list(&v, "Events")
            .iter()
            .map(|e| format!("{:>4}  {}", plain(&e["id"]), str_of(&e["name"])))
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

pub fn subscribers(ctl: &Ctl, event: Option<&str>) -> Result<(), Fail> {
    let params: Vec<Value> = event.map(Value::from).into_iter().collect();
    let v = ctl.call("subscribers_list", Value::Array(params))?;
    ctl.show(&v, || match event {
        Some(event) => match v.get("Event") {
            Some(e) if e.get("name").is_some() => event_text(e),
            _ => format!("{event}: no subscribers"),
        },
        None => {
            let text: Vec<String> = list(&v, "Events").iter().map(event_text).collect();
            if text.is_empty() {
                "no subscribers".to_string()
            } else {
                text.join("\n")
            }
        }
    });
    Ok(())
}

/// `E_X` and one indented line per subscriber: socket, expire and time left.
fn event_text(e: &Value) -> String {
    let mut out = str_of(&e["name"]).to_string();
    for s in list(e, "Subscribers") {
        out.push_str(&format!(
            "\n  {}  expire {}",
            str_of(&s["socket"]),
            plain(&s["expire"])
        ));
        if let Some(ttl) = s.get("ttl") {
            out.push_str(&format!(", ttl {}", plain(ttl)));
        }
    }
    out
}

pub fn subscribe(ctl: &Ctl, event: &str, socket: &str, expire: Option<u64>) -> Result<(), Fail> {
    let mut params = vec![Value::from(event), Value::from(socket)];
    params.extend(expire.map(Value::from));
    let v = ctl.call("event_subscribe", Value::Array(params))?;
    ctl.show(&v, || match expire {
        Some(n) => format!("subscribed {socket} to {event} for {n} s"),
        None => format!("subscribed {socket} to {event}"),
    });
    Ok(())
}

pub fn unsubscribe(ctl: &Ctl, event: &str, socket: &str) -> Result<(), Fail> {
    // Expire 0 removes the subscription (the unsubscribe of OpenSIPS's clients).
    let params = vec![Value::from(event), Value::from(socket), Value::from(0)];
    let v = ctl.call("event_subscribe", Value::Array(params))?;
    ctl.show(&v, || format!("unsubscribed {socket} from {event}"));
    Ok(())
}

pub fn raise(ctl: &Ctl, event: &str, pairs: &[String]) -> Result<(), Fail> {
    let mut params = vec![Value::from(event)];
    if !pairs.is_empty() {
        params.push(Value::Object(key_values(pairs)?));
    }
    let v = ctl.call("raise_event", Value::Array(params))?;
    ctl.show(&v, || format!("raised {event}"));
    Ok(())
}

/// `KEY=VALUE` pairs as a JSON object: a value that is an integer becomes a JSON number (an
/// int event param), anything else a string.
pub fn key_values(pairs: &[String]) -> Result<Map<String, Value>, Fail> {
    let mut map = Map::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| Fail::usage(&format!("{p:?} is not KEY=VALUE")))?;
        let v = v
            .parse::<i64>()
            .map_or_else(|_| Value::from(v), Value::from);
        map.insert(k.to_string(), v);
    }
    Ok(map)
}

pub fn mi(ctl: &Ctl, method: &str, args: &[String]) -> Result<(), Fail> {
    let params: Vec<Value> = args.iter().map(|a| mi_arg(a)).collect();
    let v = ctl.call(method, Value::Array(params))?;
    if ctl.json {
        println!("{v}");
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
        );
    }
    Ok(())
}

fn mi_arg(a: &str) -> Value {
    if let Ok(i) = a.parse::<i64>() {
        return Value::from(i);
    }
    if a.starts_with('[') || a.starts_with('{') {
        if let Ok(v) = serde_json::from_str(a) {
            return v;
        }
    }
    Value::from(a)
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// A scalar without JSON quotes.
fn plain(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// `evictl stats [GROUP:|NAME...]`: statistics (all by default), one `name value` per line.
pub fn stats(ctl: &Ctl, names: &[String]) -> Result<(), Fail> {
    let sel: Vec<Value> = if names.is_empty() {
        vec![Value::from("all")]
    } else {
        names.iter().map(|a| Value::from(a.as_str())).collect()
    };
    let v = ctl.call("get_statistics", Value::Array(vec![Value::Array(sel)]))?;
    ctl.show(&v, || {
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, x)| format!("{k} {}", plain(x)))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    });
    Ok(())
}

/// `evictl reload MODULE`: reload a transport module from its rebuilt file (`evid --dev`).
pub fn reload(ctl: &Ctl, module: &str) -> Result<(), Fail> {
    let v = ctl.call("module_reload", Value::Array(vec![Value::from(module)]))?;
    ctl.show(&v, || format!("{module} reloaded"));
    Ok(())
}
