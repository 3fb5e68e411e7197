//! The core MI commands of the Event Interface (reference §2.3) and the generic ones clients use.
//! 3.x names, plus the 4.x `evi:` spellings as aliases.

use super::json::{self, Json, Object};
use super::{int_param, str_param, MiError, MiResult, MiTable};
use crate::event::{ParamRef, ValueRef};
use crate::host::{Shared, SubscribeError};
use crate::registry::{EventEntry, Subscriber};
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::sync::Arc;

/// MI subscriptions without `expire` last this long (OpenSIPS's default).
pub const DEFAULT_EXPIRE: i64 = 3600;

pub(crate) fn register(t: &MiTable) {
    const SUB: &[&[&str]] = &[&["event", "socket"], &["event", "socket", "expire"]];
    const LIST: &[&[&str]] = &[&[], &["event"], &["event", "socket"]];
    const RAISE: &[&[&str]] = &[&["event"], &["event", "params"]];
    for name in ["event_subscribe", "evi:subscribe"] {
        t.add_core(
            name,
            "Subscribe a socket to an event (expire 0 unsubscribes)",
            SUB,
            event_subscribe,
        );
    }
    for name in ["events_list", "evi:list"] {
        t.add_core(name, "List every published event", &[], events_list);
    }
    for name in ["subscribers_list", "evi:subscribers"] {
        t.add_core(
            name,
            "List the subscribers of every event, one event, or one socket",
            LIST,
            subscribers_list,
        );
    }
    for name in ["raise_event", "evi:raise"] {
        t.add_core(
            name,
            "Raise an event with an array or a JSON-object string of params",
            RAISE,
            raise_event,
        );
    }
    t.add_core(
        "which",
        "List the MI commands, or the recipes of one",
        &[&[], &["command"]],
        which,
    );
    t.add_core("help", "Describe an MI command", &[&["mi_cmd"]], help);
    t.add_core("version", "Print the evid version", &[], version);
    t.add_core("uptime", "Print the start time and uptime", &[], uptime);
    super::stats::register(t);
    t.add_core(
        "log_level",
        "Show or set the log level (-3 alert .. 4 debug)",
        &[&[], &["level"]],
        log_level,
    );
    t.add_core(
        "module_reload",
        "Reload a transport module from its rebuilt file (evid --dev only)",
        &[&["module"]],
        module_reload,
    );
}

fn bad_value(why: impl Into<String>) -> MiError {
    MiError::new(400, "Bad parameter value").data(why)
}

fn event_subscribe(s: &Shared, p: &Object<'_>) -> MiResult {
    let event = str_param(p, "event")?;
    let socket = str_param(p, "socket")?;
    let expire = if p.contains_key("expire") {
        int_param(p, "expire")?
    } else {
        DEFAULT_EXPIRE
    };
    if expire < 0 {
        return Err(MiError::invalid_params("Negative expire value"));
    }
    if event.is_empty() || socket.is_empty() {
        return Err(MiError::invalid_params("Empty parameter"));
    }
    let mut mi_policy = None;
    if expire > 0 {
        let policy = s.policy.load_full();
        policy
            .check_subscription(&socket, expire)
            .map_err(bad_value)?;
        check_room(s, &policy, &event, &socket)?;
        mi_policy = Some(policy);
    }
    match s.subscribe_as(&event, &socket, Some(expire), mi_policy) {
        Ok(_) => Ok(json!("OK")),
        Err(SubscribeError::Internal(why)) => Err(MiError::new(-32000, "Server error").data(why)),
        Err(e) => Err(bad_value(e.to_string())),
    }
}

/// A new subscription must fit the per-event and total limits (a refresh always may).
fn check_room(
    s: &Shared,
    policy: &std::sync::Arc<crate::policy::Policy>,
    event: &str,
    socket: &str,
) -> Result<(), MiError> {
    let Some(entry) = s.registry.by_name(event) else {
        return Ok(());
    };
    let now = s.clock.now();
    let here = live(&entry, now).len();
    let total: usize = s.registry.events().iter().map(|e| live(e, now).len()).sum();
    if here < policy.max_per_event && total < policy.max_total {
        return Ok(());
    }
    if s.find_subscriber(&entry, socket, Some(policy.clone()))
        .is_some()
    {
        return Ok(());
    }
    Err(bad_value(if here >= policy.max_per_event {
        format!("{event} already has {here} subscribers (mi_max_subscribers_per_event)")
    } else {
        format!("evid already has {total} subscribers (mi_max_subscribers)")
    }))
}

fn events_list(s: &Shared, _p: &Object<'_>) -> MiResult {
    let events: Vec<Value> = s
        .registry
        .events()
        .iter()
        .map(|e| json!({"name": e.name, "id": e.id}))
        .collect();
    Ok(json!({ "Events": events }))
}

fn subscriber_json(sub: &Subscriber, now: i64) -> Value {
    let mut m = Map::new();
    m.insert("socket".into(), json!(sub.socket));
    match sub.ttl(now) {
        None => {
            m.insert("expire".into(), json!("never"));
        }
        Some(ttl) => {
            m.insert(
                "expire".into(),
                json!(sub.expire.load(std::sync::atomic::Ordering::Relaxed)),
            );
            m.insert(
                "ttl".into(),
                if ttl > 0 {
                    json!(ttl)
                } else {
                    json!("expired")
                },
            );
        }
    }
    Value::Object(m)
}

fn live(e: &EventEntry, now: i64) -> Vec<Arc<Subscriber>> {
    e.subscribers
        .load()
        .iter()
        .filter(|s| !s.is_expired(now))
        .cloned()
        .collect()
}

fn subscribers_list(s: &Shared, p: &Object<'_>) -> MiResult {
    let now = s.clock.now();
    if !p.contains_key("event") {
        let events: Vec<Value> = s
            .registry
            .events()
            .iter()
            .filter_map(|e| {
                let subs = live(e, now);
                (!subs.is_empty()).then(|| {
                    let list: Vec<_> = subs.iter().map(|x| subscriber_json(x, now)).collect();
                    json!({"name": e.name, "id": e.id, "Subscribers": list})
                })
            })
            .collect();
        return Ok(json!({ "Events": events }));
    }
    let name = str_param(p, "event")?;
    let e = s
        .registry
        .by_name(&name)
        .ok_or_else(|| MiError::new(404, "Event not published"))?;
    if p.contains_key("socket") {
        let socket = str_param(p, "socket")?;
        let sub = s
            .find_subscriber(&e, &socket, Some(s.policy.load_full()))
            .filter(|x| !x.is_expired(now))
            .ok_or_else(|| MiError::new(404, "Subscriber does not exist"))?;
        return Ok(
            json!({"Event": {"name": e.name, "id": e.id, "Subscriber": subscriber_json(&sub, now)}}),
        );
    }
    let subs = live(&e, now);
    if subs.is_empty() {
        return Ok(json!({"Event": {}}));
    }
    let list: Vec<_> = subs.iter().map(|x| subscriber_json(x, now)).collect();
    Ok(json!({"Event": {"name": e.name, "id": e.id, "Subscribers": list}}))
}

/// A param decoded from MI: borrowed from the request where it can be.
enum Arg<'a> {
    Int(i64),
    Str(Cow<'a, str>),
}

fn raise_event(s: &Shared, p: &Object<'_>) -> MiResult {
    let name = str_param(p, "event")?;
    // The entry is read by id, not cloned: cloning its `Arc` per request made connection
    // threads on both CPUs write one reference count.
    let id = s
        .registry
        .lookup(&name)
        .ok_or_else(|| MiError::new(404, "Event not registered"))?;
    let bad = || MiError::new(400, "Bad Params");
    let from_text: Json;
    let params: Vec<(Option<&str>, Arg<'_>)> = match p.get("params") {
        None => Vec::new(),
        // Positional: strings stay strings; numbers stay numbers (OpenSIPS turned them into text).
        Some(Json::Array(a)) => a
            .iter()
            .map(|v| match v {
                Json::Str(x) => Ok((None, Arg::Str(Cow::Borrowed(x)))),
                Json::Number(n) => Ok((
                    None,
                    n.as_i64()
                        .map_or_else(|| Arg::Str(Cow::Owned(n.to_string())), Arg::Int),
                )),
                _ => Err(bad()),
            })
            .collect::<Result<_, _>>()?,
        Some(Json::Str(text)) => {
            from_text = json::from_slice(text.as_bytes()).map_err(|_| bad())?;
            match &from_text {
                Json::Object(o) => named(o),
                _ => return Err(bad()),
            }
        }
        // A real JSON object: OpenSIPS refuses it ("No Params"); evid takes it as named params.
        Some(Json::Object(o)) => named(o),
        Some(_) => return Err(MiError::new(400, "No Params")),
    };
    let now = s.clock.now();
    let listened = s
        .registry
        .with_event(id, |e| {
            e.subscribers.load().iter().any(|x| !x.is_expired(now))
        })
        .ok_or_else(|| MiError::new(404, "Event not registered"))?;
    if !listened {
        return Err(MiError::new(480, "Temporarily Unavailable"));
    }
    let refs: Vec<ParamRef<'_>> = params
        .iter()
        .map(|(n, v)| ParamRef {
            name: *n,
            value: match v {
                Arg::Int(i) => ValueRef::Int(*i),
                Arg::Str(x) => ValueRef::Str(x.as_bytes()),
            },
        })
        .collect();
    s.raise(id, &refs)
        .map_err(|why| MiError::new(500, "Cannot Raise Event").data(why))?;
    Ok(json!("OK"))
}

fn named<'p>(o: &'p Object<'_>) -> Vec<(Option<&'p str>, Arg<'p>)> {
    o.iter()
        .map(|(k, v)| {
            let val = match v {
                Json::Number(n) => n
                    .as_i64()
                    .map_or_else(|| Arg::Int(n.as_f64().map_or(0, |f| f as i64)), Arg::Int),
                Json::Str(x) => Arg::Str(Cow::Borrowed(x)),
                other => Arg::Str(Cow::Owned(other.to_text())),
            };
            (Some(k), val)
        })
        .collect()
}

fn which(s: &Shared, p: &Object<'_>) -> MiResult {
    if !p.contains_key("command") {
        return Ok(json!(s.mi.names()));
    }
    let cmd = str_param(p, "command")?;
    let (recipes, _, _) =
        s.mi.describe(&cmd)
            .ok_or_else(|| MiError::new(404, "unknown MI command"))?;
    Ok(json!(recipes))
}

fn help(s: &Shared, p: &Object<'_>) -> MiResult {
    let cmd = str_param(p, "mi_cmd")?;
    let (_, doc, by) =
        s.mi.describe(&cmd)
            .ok_or_else(|| MiError::new(404, "unknown MI command"))?;
    Ok(json!({"Help": doc, "Exported by": by.unwrap_or_else(|| "core".into())}))
}

fn version(_s: &Shared, _p: &Object<'_>) -> MiResult {
    Ok(json!({ "Server": crate::version_string() }))
}

fn uptime(s: &Shared, _p: &Object<'_>) -> MiResult {
    let now = std::time::SystemTime::now();
    let up = now.duration_since(s.started).map_or(0, |d| d.as_secs());
    Ok(json!({
        "Now": ctime(now),
        "Up since": ctime(s.started),
        "Up time": format!("{up} [sec]"),
    }))
}

/// `Thu Nov 26 11:09:57 2026`, local time, as OpenSIPS prints it.
fn ctime(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as libc::time_t;
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let mut buf = [0u8; 64];
    // SAFETY: valid pointers to local buffers; the format is a static C string.
    let n = unsafe {
        libc::localtime_r(&secs, &mut tm);
        libc::strftime(
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
            c"%a %b %e %H:%M:%S %Y".as_ptr(),
            &tm,
        )
    };
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn module_reload(s: &Shared, p: &Object<'_>) -> MiResult {
    let name = str_param(p, "module")?;
    s.reload_module(&name)
        .map_err(|why| MiError::new(500, "Reload failed").data(why))?;
    Ok(json!("OK"))
}

/// OpenSIPS's numbering of the current `log` filter.
fn current_level() -> i64 {
    match log::max_level() {
        log::LevelFilter::Off | log::LevelFilter::Error => -1,
        log::LevelFilter::Warn => 1,
        log::LevelFilter::Info => 3,
        _ => 4,
    }
}

fn log_level(_s: &Shared, p: &Object<'_>) -> MiResult {
    if p.contains_key("level") {
        let l = int_param(p, "level")?;
        if !(-3..=4).contains(&l) {
            return Err(MiError::invalid_params(
                "level must be from -3 (alert) to 4 (debug)",
            ));
        }
        log::set_max_level(crate::config::level_filter(l));
        log::warn!("log level set to {l} over MI");
    }
    Ok(json!({ "log_level": current_level() }))
}
