//! The shared JSON-RPC payload of `EviEvent::json` (reference §1.8), byte-identical to
//! OpenSIPS's cJSON output: `{"jsonrpc":"2.0","method":M,"params":P}`, compact, keys in this
//! order, `params` omitted when the event has none, an object when the first param is named,
//! else an array. Pure functions, so the host and any module that needs a variant (event_stream's
//! method override and `event_param`) build the same bytes.

use crate::{EviParam, EVI_VALUE_INT, EVI_VALUE_STR};
use std::io::Write;

/// The notification for `method` with `params`. `event_param`: `(key, value)` inserted first in
/// `params` (as `key:value` in an object, as a bare first element in an array); not added when
/// there are no params, as OpenSIPS does.
pub fn notification(
    method: &str,
    params: &[EviParam],
    event_param: Option<(&str, &str)>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + method.len() + params.len() * 24);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","method":"#);
    string(&mut out, method.as_bytes());
    if let Some(first) = params.first() {
        out.extend_from_slice(br#","params":"#);
        // SAFETY (here and below): the caller's params are valid for this call.
        let named = unsafe { !first.name.as_bytes().is_empty() };
        out.push(if named { b'{' } else { b'[' });
        let mut sep = false;
        if let Some((key, value)) = event_param {
            if named {
                string(&mut out, key.as_bytes());
                out.push(b':');
            }
            string(&mut out, value.as_bytes());
            sep = true;
        }
        for p in params {
            if sep {
                out.push(b',');
            }
            sep = true;
            if named {
                // A positional param after a named one has no name: cJSON wrote "".
                string(&mut out, unsafe { p.name.as_bytes() });
                out.push(b':');
            }
            match p.value.kind {
                EVI_VALUE_INT => int(&mut out, p.value.int),
                EVI_VALUE_STR => string(&mut out, unsafe { p.value.str.as_bytes() }),
                _ => out.extend_from_slice(b"null"),
            }
        }
        out.push(if named { b'}' } else { b']' });
    }
    out.push(b'}');
    out
}

/// A JSON string as cJSON prints it: `"` `\` and control characters escaped, `/` and non-ASCII
/// UTF-8 passed through. Invalid UTF-8 becomes U+FFFD, so consumers always get valid JSON.
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    // Event names, param names and most values are a few bytes of printable ASCII: copied in
    // the same pass that checks them, up to the first byte that is not. (A scan for non-ASCII,
    // then an escape scan and a memcpy call per clean run, cost ~1,500 instructions for a
    // 3-param payload's six strings.)
    out.reserve(s.len() + 2);
    let start = out.len();
    let spare = out.spare_capacity_mut();
    spare[0].write(b'"');
    let mut plain = 0;
    for (dst, &b) in spare[1..].iter_mut().zip(s) {
        if !PLAIN[b as usize] {
            break;
        }
        dst.write(b);
        plain += 1;
    }
    // SAFETY: `reserve` made room for the quote and every byte of `s`; the quote and the
    // `plain` bytes after it were written just above.
    unsafe { out.set_len(start + 1 + plain) };
    let mut rest = &s[plain..];
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                escape(out, valid.as_bytes());
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                escape(out, valid);
                out.extend_from_slice("\u{FFFD}".as_bytes());
                let skip = e.error_len().unwrap_or(after.len());
                rest = &after[skip..];
            }
        }
    }
    out.push(b'"');
}

/// Bytes a JSON string must escape: `"`, `\` and the control characters.
static NEEDS_ESCAPE: [bool; 256] = ESCAPED;
const ESCAPED: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Bytes copied as they are without a second look: ASCII that needs no escape.
static PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x80 {
        t[i] = !ESCAPED[i];
        i += 1;
    }
    t
};

/// A decimal integer, without the formatting machinery (this runs once per int param per event;
/// flatstore's lines use it too).
pub fn int(out: &mut Vec<u8>, v: i64) {
    let mut buf = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

fn escape(out: &mut Vec<u8>, s: &[u8]) {
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        if !NEEDS_ESCAPE[b as usize] {
            continue;
        }
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            _ => b"",
        };
        out.extend_from_slice(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EviStr, EviValue};

    fn js(s: &[u8]) -> String {
        let mut v = Vec::new();
        string(&mut v, s);
        String::from_utf8(v).unwrap_or_default()
    }

    #[test]
    fn escapes_like_cjson() {
        assert_eq!(js(br#"bob "the" builder"#), r#""bob \"the\" builder""#);
        assert_eq!(js(b"a/b\\c\n\t\x01"), r#""a/b\\c\n\t\u0001""#);
        assert_eq!(js("héllo €".as_bytes()), "\"héllo €\"");
        assert_eq!(js(b"bad\xff\xfeend"), "\"bad\u{FFFD}\u{FFFD}end\"");
    }

    #[test]
    fn escapes_at_every_offset_of_a_long_string() {
        // Each special byte at each position of a 20-byte string, checked against the rule
        // spelled out byte by byte: none is missed, and whatever follows comes out unchanged.
        for special in [b'"', b'\\', b'\n', 0x01, 0x1f, 0x7f, b'/'] {
            for at in 0..20 {
                let mut s = b"abcdefghijklmnopqrst".to_vec();
                s[at] = special;
                let want = serde_like(&s);
                assert_eq!(js(&s), want, "{special:#x} at {at}");
            }
        }
    }

    /// The escaping rule spelled out byte by byte (the reference for the fast path).
    fn serde_like(s: &[u8]) -> String {
        let mut out = String::from("\"");
        for &b in s {
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                0x08 => out.push_str("\\b"),
                0x0c => out.push_str("\\f"),
                b if b < 0x20 => out.push_str(&format!("\\u{b:04x}")),
                b => out.push(b as char),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn params_and_event_param() {
        assert_eq!(
            notification("E_GOLDEN", &[], Some(("e", "E_GOLDEN"))),
            br#"{"jsonrpc":"2.0","method":"E_GOLDEN"}"#
        );
        let named = [EviParam {
            name: EviStr::from_static("ip"),
            value: EviValue::str(EviStr::from_static("1.2.3.4")),
        }];
        assert_eq!(
            notification("block", &named, Some(("ev", "E_PIKE"))),
            br#"{"jsonrpc":"2.0","method":"block","params":{"ev":"E_PIKE","ip":"1.2.3.4"}}"#
        );
        let positional = [EviParam {
            name: EviStr::EMPTY,
            value: EviValue::int(-7),
        }];
        assert_eq!(
            notification("E_X", &positional, Some(("ev", "E_X"))),
            br#"{"jsonrpc":"2.0","method":"E_X","params":["E_X",-7]}"#
        );
        for v in [0, 9, 10, -10, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            int(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
        }
    }
}
