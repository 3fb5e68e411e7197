//! The modparams, checked once at `init`. Every bad value stops start-up with a message naming
//! the param (OpenSIPS silently falls back for some; we don't).

use crate::line::LineFormat;
use crate::suffix::Suffix;
use evi_sdk::{ParamValue, Params};

pub const DEFAULT_MAX_OPEN: i64 = 100;
pub const MAX_OPEN_LIMIT: i64 = 65535;
pub const DEFAULT_DELIMITER: &str = ",";
pub const DEFAULT_PERMISSIONS: &str = "644";

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub max_open: usize,
    pub format: LineFormat,
    /// Mode bits for created files (the process umask still applies, as with `open(2)`).
    pub mode: u32,
    pub suffix: Option<Suffix>,
}

impl Config {
    /// Read the params; one that is absent takes its default (the host fills defaults in, but a
    /// test may pass only what it sets).
    pub fn from_params(p: &Params) -> Result<Config, String> {
        let max_open = match p.get("max_open_sockets") {
            None => DEFAULT_MAX_OPEN,
            Some(ParamValue::Int(i)) => *i,
            Some(v) => return Err(format!("max_open_sockets: expected an int, got {v:?}")),
        };
        if !(1..=MAX_OPEN_LIMIT).contains(&max_open) {
            return Err(format!(
                "max_open_sockets: {max_open} is not in 1..={MAX_OPEN_LIMIT}"
            ));
        }
        let delimiter = p.str("delimiter").unwrap_or(DEFAULT_DELIMITER);
        let format = LineFormat::new(
            delimiter,
            p.str("escape_delimiter"),
            p.bool("suppress_event_name"),
        )?;
        let perms = p.str("file_permissions").unwrap_or(DEFAULT_PERMISSIONS);
        let mode = parse_mode(perms)?;
        let suffix = p.str("suffix").map(Suffix::parse).transpose()?;
        Ok(Config {
            max_open: usize::try_from(max_open).unwrap_or(1),
            format,
            mode,
            suffix,
        })
    }
}

/// An octal mode such as `644` or `0640`: 1 to 4 octal digits, at most `7777`.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let ok = !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| (b'0'..=b'7').contains(&b));
    match u32::from_str_radix(s, 8) {
        Ok(m) if ok => Ok(m),
        _ => Err(format!(
            "file_permissions {s:?} is not an octal mode of 1 to 4 digits (e.g. 644, 0640)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> ParamValue {
        ParamValue::Str(v.into())
    }

    #[test]
    fn defaults() {
        let c = Config::from_params(&Params::from_pairs(&[])).expect("defaults are valid");
        assert_eq!((c.max_open, c.mode, c.suffix), (100, 0o644, None));
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("644"), Ok(0o644));
        assert_eq!(parse_mode("0640"), Ok(0o640));
        assert_eq!(parse_mode("7777"), Ok(0o7777));
        for bad in ["", "8", "64a", "-644", "07777", "0o644", " 644"] {
            let err = parse_mode(bad).expect_err(bad);
            assert!(err.starts_with("file_permissions"), "{err}");
        }
    }

    #[test]
    fn invalid_values_fail_init() {
        let cases: &[(&str, ParamValue, &str)] = &[
            ("file_permissions", s("rw-r--r--"), "file_permissions"),
            ("delimiter", s(""), "delimiter must not be empty"),
            ("escape_delimiter", s(""), "escape_delimiter"),
            ("suffix", s("$var(x)"), "suffix"),
            ("max_open_sockets", ParamValue::Int(0), "max_open_sockets"),
            (
                "max_open_sockets",
                ParamValue::Int(65536),
                "max_open_sockets",
            ),
        ];
        for (name, value, want) in cases {
            let err =
                Config::from_params(&Params::from_pairs(&[(name, value.clone())])).expect_err(name);
            assert!(err.contains(want), "{name}: {err}");
        }
    }
}
