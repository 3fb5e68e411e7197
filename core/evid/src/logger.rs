//! The daemon's one log output on stderr: `2026-11-26T11:52:19.123Z INFO  [module] message`, or
//! with `log_format = "json"` one JSON object per line (`ts`, `level`, `module`, `msg`).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// `log_format = "json"`: one JSON object per line, for log shippers.
static JSON: AtomicBool = AtomicBool::new(false);

/// Switch between the human format and JSON lines.
pub fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let target = r.target();
        // Our own crates log under their module path; modules and the script under their name.
        let target = if target.starts_with("evi_host") || target.starts_with("evid") {
            "core"
        } else {
            target
        };
        let line = if JSON.load(Ordering::Relaxed) {
            let v = serde_json::json!({
                "ts": timestamp(),
                "level": r.level().as_str(),
                "module": target,
                "msg": r.args().to_string(),
            });
            format!("{v}\n")
        } else {
            format!("{} {:<5} [{target}] {}\n", timestamp(), r.level(), r.args())
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

static LOGGER: Stderr = Stderr;

pub fn init(level: log::LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
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
