//! Statistics over MI, in OpenSIPS's shape: `get_statistics`, `list_statistics`,
//! `reset_statistics` with `group:name` statistics (`all` and `group:` select many), plus
//! `subscriber_stats` for the per-subscriber counters OpenSIPS does not have, and
//! `delivery_latency` (per-module histograms; mi_http's `/metrics` serves them to Prometheus).
//!
//! Groups: `evi` (totals), `evi_events` (raises per event), and one per module
//! (`event_flatstore:delivered`, `...:failed`, `...:dropped`, `...:queue_len`).

use super::json::{Json, Object};
use super::{MiError, MiResult, MiTable};
use crate::host::Shared;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub(crate) fn register(t: &MiTable) {
    t.add_core(
        "get_statistics",
        "Statistics by name, group: or all",
        &[&["statistics"]],
        get,
    );
    t.add_core(
        "list_statistics",
        "Statistic names and kinds",
        &[&[], &["statistics"]],
        list,
    );
    t.add_core(
        "reset_statistics",
        "Zero incremental statistics",
        &[&["statistics"]],
        reset,
    );
    t.add_core(
        "delivery_latency",
        "Per module: histogram of the time from raise to the transport's outcome (µs buckets)",
        &[&[]],
        delivery_latency,
    );
    t.add_core(
        "subscriber_stats",
        "Delivered, failed and dropped events and the last error of each subscriber",
        &[&[], &["event"]],
        subscriber_stats,
    );
}

/// One statistic: name, current value, and the counter behind it when it can be reset.
struct Stat<'a> {
    name: String,
    value: u64,
    counter: Option<&'a AtomicU64>,
}

/// Every statistic, computed from live counters, passed to `f` (counters borrowed from `s`).
fn with_all<R>(s: &Shared, f: impl FnOnce(Vec<Stat<'_>>) -> R) -> R {
    let events = s.registry.events();
    let modules = s.modules.read().unwrap_or_else(|p| p.into_inner()).clone();
    let now = s.clock.now();
    crate::hold::settle_all(&events);
    let mut out = Vec::new();
    let raised: u64 = events
        .iter()
        .map(|e| e.raised.load(Ordering::Relaxed))
        .sum();
    let subscribers = events
        .iter()
        .map(|e| {
            e.subscribers
                .load()
                .iter()
                .filter(|x| !x.is_expired(now))
                .count()
        })
        .sum::<usize>();
    out.push(Stat {
        name: "evi:events_raised".into(),
        value: raised,
        counter: None,
    });
    out.push(Stat {
        name: "evi:subscribers".into(),
        value: subscribers as u64,
        counter: None,
    });
    for m in &modules {
        let n = &m.name;
        out.push(Stat {
            name: format!("{n}:delivered"),
            value: m.delivered.load(Ordering::Relaxed),
            counter: Some(&m.delivered),
        });
        out.push(Stat {
            name: format!("{n}:failed"),
            value: m.failed.load(Ordering::Relaxed),
            counter: Some(&m.failed),
        });
        out.push(Stat {
            name: format!("{n}:dropped"),
            value: m.queue_drops.load(Ordering::Relaxed),
            counter: Some(&m.queue_drops),
        });
        out.push(Stat {
            name: format!("{n}:queue_len"),
            value: m.queue_len() as u64,
            counter: None,
        });
        // Kept by the host for its subscribers while their destination is down (hold.rs).
        let held: usize = events
            .iter()
            .map(|e| {
                e.subscribers
                    .load()
                    .iter()
                    .filter(|x| Arc::ptr_eq(&x.module, m))
                    .map(|x| x.stats.hold.len())
                    .sum::<usize>()
            })
            .sum();
        out.push(Stat {
            name: format!("{n}:held"),
            value: held as u64,
            counter: None,
        });
    }
    for e in events.iter() {
        out.push(Stat {
            name: format!("evi_events:{}", e.name),
            value: e.raised.load(Ordering::Relaxed),
            counter: Some(&e.raised),
        });
    }
    f(out)
}

/// The statistic selectors of a request: `["all"]`, `["group:"]`, `["group:name"]`, or a string.
fn selectors(p: &Object<'_>) -> Result<Vec<String>, MiError> {
    match p.get("statistics") {
        None => Ok(vec!["all".into()]),
        Some(Json::Str(s)) => Ok(s.split_whitespace().map(str::to_string).collect()),
        Some(Json::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| MiError::invalid_params("Bad type for parameter 'statistics'"))
            })
            .collect(),
        Some(_) => Err(MiError::invalid_params(
            "Bad type for parameter 'statistics'",
        )),
    }
}

fn selected(name: &str, sel: &[String]) -> bool {
    sel.iter()
        .any(|s| s == "all" || s == name || (s.ends_with(':') && name.starts_with(s.as_str())))
}

fn get(s: &Shared, p: &Object<'_>) -> MiResult {
    let sel = selectors(p)?;
    let m: Map<String, Value> = with_all(s, |all| {
        all.into_iter()
            .filter(|st| selected(&st.name, &sel))
            .map(|st| (st.name, json!(st.value)))
            .collect()
    });
    if m.is_empty() {
        return Err(MiError::new(404, "Statistics Not Found"));
    }
    Ok(Value::Object(m))
}

fn list(s: &Shared, p: &Object<'_>) -> MiResult {
    let sel = selectors(p)?;
    let m: Map<String, Value> = with_all(s, |all| {
        all.into_iter()
            .filter(|st| selected(&st.name, &sel))
            .map(|st| {
                (
                    st.name,
                    json!(if st.counter.is_some() {
                        "incremental"
                    } else {
                        "non-incremental"
                    }),
                )
            })
            .collect()
    });
    Ok(Value::Object(m))
}

fn reset(s: &Shared, p: &Object<'_>) -> MiResult {
    let sel = selectors(p)?;
    with_all(s, |all| {
        for st in all.iter().filter(|st| selected(&st.name, &sel)) {
            if let Some(c) = st.counter {
                c.store(0, Ordering::Relaxed);
            }
        }
    });
    Ok(json!("OK"))
}

fn subscriber_stats(s: &Shared, p: &Object<'_>) -> MiResult {
    let only = match p.get("event") {
        Some(_) => Some(super::str_param(p, "event")?),
        None => None,
    };
    if let Some(e) = &only {
        if s.registry.lookup(e).is_none() {
            return Err(MiError::new(404, "Event not published"));
        }
    }
    let mut list = Vec::new();
    for e in s
        .registry
        .events()
        .iter()
        .filter(|e| only.as_deref().is_none_or(|o| o == e.name))
    {
        for sub in e.subscribers.load().iter() {
            crate::hold::settle(sub);
            let st = &sub.stats;
            list.push(json!({
                "event": e.name,
                "socket": sub.socket,
                "delivered": st.delivered.load(Ordering::Relaxed),
                "failed": st.failed.load(Ordering::Relaxed),
                "dropped": st.dropped.load(Ordering::Relaxed),
                "queue_len": st.queued.load(Ordering::Relaxed),
                "module_queue_len": sub.module.queue_len(),
                "held": st.hold.len(),
                "last_error": st.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            }));
        }
    }
    Ok(json!({ "Subscribers": list }))
}

/// `{"Modules": [{"name", "count", "sum_us", "buckets": [[le_us, cumulative], ..., ["+Inf", n]]}]}`
/// for every module that provides a transport.
fn delivery_latency(s: &Shared, _p: &Object<'_>) -> MiResult {
    let modules = s.modules.read().unwrap_or_else(|p| p.into_inner()).clone();
    let list: Vec<Value> = modules
        .iter()
        .filter(|m| !m.info().transports.is_empty())
        .map(|m| {
            let h = m.latency.snapshot();
            let buckets: Vec<Value> = crate::latency::BOUNDS_US
                .iter()
                .map(|b| json!(b))
                .chain(std::iter::once(json!("+Inf")))
                .zip(&h.cumulative)
                .map(|(le, n)| json!([le, n]))
                .collect();
            json!({"name": m.name, "count": h.count, "sum_us": h.sum_us, "buckets": buckets})
        })
        .collect();
    Ok(json!({ "Modules": list }))
}
