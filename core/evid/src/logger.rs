//! The daemon's one log output on stderr, through `tracing`: `log` records of the host and of
//! every module (which log through the host API) become `tracing` events (`tracing-log`), and
//! native `tracing` events join them. Formatted as `2026-11-26T11:52:19.123Z INFO  [module] message`
//! for people, or with `log_format = "json"` as one JSON object per line (`ts`, `level`,
//! `module`, `msg`, plus any structured fields) for log shippers.
//!
//! The level is `log`'s max level: MI `log_level` changes it at runtime for both kinds of event.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `log_format = "json"`: one JSON object per line, for log shippers.
static JSON: AtomicBool = AtomicBool::new(false);

/// Switch between the human format and JSON lines.
pub fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// Install the `tracing` subscriber and the `log` bridge, at `level`.
pub fn init(level: log::LevelFilter) {
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(std::io::stderr)
        .event_format(EvidFormat)
        .finish();
    let _ = tracing::subscriber::set_global_default(subscriber);
    let _ = tracing_log::LogTracer::builder()
        .with_max_level(level)
        .init();
    log::set_max_level(level);
}

/// The message and the other fields of one event.
#[derive(Default)]
struct Fields {
    msg: String,
    extra: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.msg = value,
            // What tracing-log keeps of the `log` record; the target is read separately.
            n if n.starts_with("log.") => {}
            n => self.extra.push((n, value)),
        }
    }
}

struct EvidFormat;

impl<S, N> FormatEvent<S, N> for EvidFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut out: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let target = meta.target();
        // Our own crates log under their module path; modules and the script under their name.
        let module = if target.starts_with("evi_host") || target.starts_with("evid") {
            "core"
        } else {
            target
        };
        let mut f = Fields::default();
        event.record(&mut f);
        if JSON.load(Ordering::Relaxed) {
            let mut v = serde_json::json!({
                "ts": timestamp(),
                "level": meta.level().as_str(),
                "module": module,
                "msg": f.msg,
            });
            for (k, val) in f.extra {
                v[k] = serde_json::Value::String(val);
            }
            writeln!(out, "{v}")
        } else {
            let mut line = format!("{} {:<5} [{module}] {}", timestamp(), meta.level(), f.msg);
            for (k, val) in f.extra {
                let _ = write!(line, " {k}={val}");
            }
            writeln!(out, "{line}")
        }
    }
}

/// RFC 3339 UTC with milliseconds, without a date library.
pub fn timestamp() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamp_has_rfc3339_shape() {
        let t = super::timestamp();
        assert_eq!(t.len(), 24, "{t}");
        assert!(
            t.starts_with("20") && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{t}"
        );
    }
}
