//! The `suffix` modparam: appended to a subscribed path to form the real file name.
//!
//! OpenSIPS evaluates any script format there; we support what rotation needs and refuse the
//! rest at start-up instead of writing to a surprising name: literal text, `$time(fmt)` (local
//! time through `strftime(3)`) and `$Ts` (unix seconds).

use std::ffi::CString;
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest `$time(...)` format we accept; real formats are a few characters.
const MAX_FORMAT: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Time(CString),
    UnixSeconds,
}

/// A parsed suffix, rendered at every open (parse, rotation, reopen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suffix {
    parts: Vec<Part>,
}

impl Suffix {
    pub fn parse(text: &str) -> Result<Suffix, String> {
        let bad = |why: &str| Err(format!("suffix {text:?}: {why}"));
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(dollar) = rest.find('$') {
            if dollar > 0 {
                parts.push(Part::Literal(rest[..dollar].to_string()));
            }
            let var = &rest[dollar..];
            if let Some(after) = var.strip_prefix("$time(") {
                let Some(close) = after.find(')') else {
                    return bad("`$time(` has no closing `)`");
                };
                let format = &after[..close];
                if format.is_empty() || format.len() > MAX_FORMAT {
                    return bad("`$time(...)` needs a strftime format of 1 to 256 bytes");
                }
                let Ok(c) = CString::new(format) else {
                    return bad("NUL byte in `$time(...)`");
                };
                parts.push(Part::Time(c));
                rest = &after[close + 1..];
            } else if let Some(after) = var.strip_prefix("$Ts") {
                parts.push(Part::UnixSeconds);
                rest = after;
            } else {
                return bad("only literal text, `$time(format)` and `$Ts` are supported");
            }
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        if text.contains('\0') {
            return bad("NUL byte");
        }
        Ok(Suffix { parts })
    }

    /// The suffix for the moment `unix_secs`.
    pub fn render(&self, unix_secs: i64) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::UnixSeconds => out.push_str(&unix_secs.to_string()),
                Part::Time(fmt) => out.push_str(&strftime_local(fmt, unix_secs)),
            }
        }
        out
    }
}

/// Seconds since the epoch now (0 if the clock is before 1970).
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `strftime(3)` in local time; empty when the time cannot be converted or the result is huge.
fn strftime_local(fmt: &CString, unix_secs: i64) -> String {
    // `.ok()`: the conversion is infallible where time_t is 64-bit, fallible elsewhere.
    let Some(t) = libc::time_t::try_from(unix_secs).ok() else {
        return String::new();
    };
    // SAFETY: `tm` is plain data; localtime_r fills it or returns null.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return String::new();
    }
    // strftime returns 0 both for "did not fit" and for an empty result; a bigger buffer tells.
    for size in [256usize, 4096] {
        let mut buf = vec![0u8; size];
        // SAFETY: buf has `size` bytes, fmt is NUL-terminated, tm was filled above.
        let n = unsafe { libc::strftime(buf.as_mut_ptr().cast(), size, fmt.as_ptr(), &tm) };
        if n > 0 {
            buf.truncate(n);
            return String::from_utf8_lossy(&buf).into_owned();
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2023-11-14T22:13:20Z: the same year and month in every time zone.
    const T: i64 = 1_700_000_000;

    #[test]
    fn literal_only() {
        assert_eq!(
            Suffix::parse(".log").map(|s| s.render(T)),
            Ok(".log".into())
        );
        assert_eq!(Suffix::parse("").map(|s| s.render(T)), Ok(String::new()));
    }

    #[test]
    fn time_and_seconds() {
        let s = Suffix::parse(".$time(%Y-%m).$Ts.log").expect("valid");
        assert_eq!(s.render(T), ".2023-11.1700000000.log");
        let s = Suffix::parse("$time(%%)").expect("valid");
        assert_eq!(s.render(T), "%");
    }

    #[test]
    fn refused_forms() {
        for bad in ["$time(%Y", "$time()", "$var(x)", ".$", "$T", "a\0b"] {
            let err = Suffix::parse(bad).expect_err(bad);
            assert!(err.starts_with("suffix "), "{err}");
        }
        let long = format!("$time({})", "%Y".repeat(200));
        assert!(Suffix::parse(&long).is_err());
    }

    #[test]
    fn unconvertible_time_renders_empty() {
        // localtime_r fails for a year past i32; the literal parts still come out.
        let s = Suffix::parse("x$time(%Y)y").expect("valid");
        assert_eq!(s.render(i64::MAX), "xy");
    }
}
