//! `GET /metrics`: the daemon's statistics in Prometheus text format, read through the MI engine
//! (`list_statistics` for the kinds, `get_statistics all` for the values).

use crate::handler::Reply;
use evi_sdk::json::{self, Map, Value};

/// The path Prometheus scrapes.
pub const PATH: &str = "/metrics";

fn call(
    mi: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
    method: &str,
    params: Value,
) -> Option<Map<String, Value>> {
    let req =
        json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let reply: Value = json::from_slice(&mi(req.as_bytes())?).ok()?;
    match reply.get("result") {
        Some(Value::Object(m)) => Some(m.clone()),
        _ => None,
    }
}

/// A metric name and label for one evid statistic (`group:name`).
fn metric(stat: &str) -> (String, Option<(&'static str, String)>) {
    let (group, name) = stat.split_once(':').unwrap_or(("evi", stat));
    let clean = |s: &str| {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect::<String>()
    };
    match (group, name) {
        ("evi", "events_raised") => ("evid_events_raised_total".into(), None),
        ("evi", n) => (format!("evid_{}", clean(n)), None),
        ("evi_events", e) => (
            "evid_event_raised_total".into(),
            Some(("event", e.to_string())),
        ),
        (m, "queue_len") => (
            "evid_module_queue_len".into(),
            Some(("module", m.to_string())),
        ),
        (m, "held") => ("evid_module_held".into(), Some(("module", m.to_string()))),
        (m, n) => (
            format!("evid_module_{}_total", clean(n)),
            Some(("module", m.to_string())),
        ),
    }
}

/// Render every statistic; 500 when the engine does not answer.
pub fn render(mi: &dyn Fn(&[u8]) -> Option<Vec<u8>>) -> Reply {
    let (Some(kinds), Some(values)) = (
        call(mi, "list_statistics", Value::Array(vec![])),
        call(mi, "get_statistics", json::json!([["all"]])),
    ) else {
        return Reply::text(500, "statistics are not available");
    };
    let mut out = String::new();
    let mut typed: Vec<String> = Vec::new();
    for (stat, value) in &values {
        let (name, label) = metric(stat);
        if !typed.contains(&name) {
            // Raise totals are monotonic even where evid cannot reset them as one counter.
            let counter = kinds.get(stat).and_then(Value::as_str) == Some("incremental")
                || name.ends_with("_total");
            out.push_str(&format!(
                "# TYPE {name} {}\n",
                if counter { "counter" } else { "gauge" }
            ));
            typed.push(name.clone());
        }
        let label = label.map_or(String::new(), |(k, v)| {
            format!(
                "{{{k}=\"{}\"}}",
                v.replace('\\', "\\\\").replace('"', "\\\"")
            )
        });
        out.push_str(&format!("{name}{label} {}\n", value.as_u64().unwrap_or(0)));
    }
    if let Some(latency) = call(mi, "delivery_latency", Value::Array(vec![])) {
        histograms(&latency, &mut out);
    }
    Reply {
        status: 200,
        content_type: Some("text/plain; version=0.0.4"),
        allow: None,
        body: out.into_bytes(),
    }
}

/// `evid_delivery_latency_seconds`, one histogram per module, from MI `delivery_latency`.
fn histograms(latency: &Map<String, Value>, out: &mut String) {
    const NAME: &str = "evid_delivery_latency_seconds";
    let Some(modules) = latency.get("Modules").and_then(Value::as_array) else {
        return;
    };
    out.push_str(&format!("# TYPE {NAME} histogram\n"));
    for m in modules {
        let module = m["name"].as_str().unwrap_or_default();
        for b in m["buckets"].as_array().into_iter().flatten() {
            let le = match &b[0] {
                Value::Number(us) => format!("{}", us.as_f64().unwrap_or(0.0) / 1e6),
                _ => "+Inf".into(),
            };
            let n = b[1].as_u64().unwrap_or(0);
            out.push_str(&format!(
                "{NAME}_bucket{{module=\"{module}\",le=\"{le}\"}} {n}\n"
            ));
        }
        let sum = m["sum_us"].as_u64().unwrap_or(0) as f64 / 1e6;
        let count = m["count"].as_u64().unwrap_or(0);
        out.push_str(&format!("{NAME}_sum{{module=\"{module}\"}} {sum}\n"));
        out.push_str(&format!("{NAME}_count{{module=\"{module}\"}} {count}\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_become_prometheus_metrics() {
        let mi = |req: &[u8]| {
            let req = String::from_utf8_lossy(req);
            let result = if req.contains("delivery_latency") {
                r#"{"Modules":[{"name":"event_flatstore","count":3,"sum_us":1500,"buckets":[[10,1],[1000,3],["+Inf",3]]}]}"#
            } else if req.contains("list_statistics") {
                r#"{"evi:events_raised":"non-incremental","evi_events:E_X":"incremental","event_flatstore:delivered":"incremental","event_flatstore:queue_len":"non-incremental"}"#
            } else {
                r#"{"evi:events_raised":5,"evi_events:E_X":5,"event_flatstore:delivered":4,"event_flatstore:queue_len":1}"#
            };
            Some(format!(r#"{{"jsonrpc":"2.0","result":{result},"id":1}}"#).into_bytes())
        };
        let r = render(&mi);
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, Some("text/plain; version=0.0.4"));
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            "# TYPE evid_events_raised_total counter\nevid_events_raised_total 5\n\
             # TYPE evid_event_raised_total counter\nevid_event_raised_total{event=\"E_X\"} 5\n\
             # TYPE evid_module_delivered_total counter\nevid_module_delivered_total{module=\"event_flatstore\"} 4\n\
             # TYPE evid_module_queue_len gauge\nevid_module_queue_len{module=\"event_flatstore\"} 1\n\
             # TYPE evid_delivery_latency_seconds histogram\n\
             evid_delivery_latency_seconds_bucket{module=\"event_flatstore\",le=\"0.00001\"} 1\n\
             evid_delivery_latency_seconds_bucket{module=\"event_flatstore\",le=\"0.001\"} 3\n\
             evid_delivery_latency_seconds_bucket{module=\"event_flatstore\",le=\"+Inf\"} 3\n\
             evid_delivery_latency_seconds_sum{module=\"event_flatstore\"} 0.0015\n\
             evid_delivery_latency_seconds_count{module=\"event_flatstore\"} 3\n"
        );
    }
}
