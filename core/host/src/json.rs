//! The shared JSON-RPC payload (reference §1.8), byte-identical to OpenSIPS's cJSON output:
//! `{"jsonrpc":"2.0","method":NAME,"params":...}`, compact, key order fixed, `params` omitted
//! when empty, an object when the first param is named, else an array.

use evi_abi::{EviParam, EVI_VALUE_INT, EVI_VALUE_STR};
use std::io::Write;

pub fn notification(method: &str, params: &[EviParam]) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + method.len() + params.len() * 24);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","method":"#);
    string(&mut out, method.as_bytes());
    if !params.is_empty() {
        out.extend_from_slice(br#","params":"#);
        // SAFETY: params come from a RaisedEvent and point into its own buffer.
        let named = unsafe { !params[0].name.as_bytes().is_empty() };
        out.push(if named { b'{' } else { b'[' });
        for (i, p) in params.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if named {
                string(&mut out, unsafe { p.name.as_bytes() });
                out.push(b':');
            }
            match p.value.kind {
                EVI_VALUE_INT => {
                    let _ = write!(out, "{}", p.value.int);
                }
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
    out.push(b'"');
    let mut rest = s;
    loop {
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

fn escape(out: &mut Vec<u8>, s: &[u8]) {
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
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
    fn no_params_means_no_params_member() {
        assert_eq!(
            notification("E_GOLDEN", &[]),
            br#"{"jsonrpc":"2.0","method":"E_GOLDEN"}"#
        );
    }
}
