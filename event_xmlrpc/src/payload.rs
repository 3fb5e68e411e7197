//! The XML-RPC request body, in OpenSIPS's layout (reference §4.4) with the values escaped.
//!
//! ```text
//! <?xml version="1.0"?>\n<methodCall>\n<methodName>M</methodName>\n<params>\n
//! <param>\n<value><string>EVENT</string></value>\n</param>\n      (always first)
//! <param>\n<name>N</name>\n<value><int>42</int></value>\n</param>\n   (one per event param)
//! </params>\n</methodCall>
//! ```
//!
//! The line breaks and tags are OpenSIPS's byte for byte, so consumers that were written
//! against its output (including the non-standard `<name>` inside `<param>`) keep working.

use evi_sdk::{Event, Value};
use std::io::Write;

/// How named params are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamedParams {
    /// `<param>\n<name>N</name>\n<value>..</value>\n</param>` (OpenSIPS's default).
    NameElement,
    /// `use_struct_param`: `<value><struct><member>\n<name>N</name>\n<value>..</value>\n</member></struct></value>`.
    Struct,
}

/// Build the body for `event` sent to XML-RPC method `method`.
pub fn body(method: &str, event: &Event<'_>, named: NamedParams) -> Vec<u8> {
    let mut out = Vec::with_capacity(200 + event.len() * 64);
    out.extend_from_slice(b"<?xml version=\"1.0\"?>\n<methodCall>\n<methodName>");
    escape(&mut out, method.as_bytes());
    out.extend_from_slice(b"</methodName>\n<params>\n<param>\n<value><string>");
    escape(&mut out, event.name().as_bytes());
    out.extend_from_slice(b"</string></value>\n</param>\n");
    for p in event.params() {
        out.extend_from_slice(b"<param>\n");
        let as_struct = p.name.is_some() && named == NamedParams::Struct;
        if let Some(name) = p.name {
            if as_struct {
                out.extend_from_slice(b"<value><struct><member>\n");
            }
            out.extend_from_slice(b"<name>");
            escape(&mut out, name.as_bytes());
            out.extend_from_slice(b"</name>\n");
        }
        out.extend_from_slice(b"<value>");
        match p.value {
            // Signed: OpenSIPS printed negative ints as unsigned 64-bit (-7 became
            // 18446744073709551609 in the golden capture).
            Value::Int(i) => {
                let _ = write!(out, "<int>{i}</int>");
            }
            Value::Str(s) => {
                out.extend_from_slice(b"<string>");
                escape(&mut out, s);
                out.extend_from_slice(b"</string>");
            }
            // XML-RPC has no standard null (`<nil/>` is an extension many servers reject).
            Value::Null => out.extend_from_slice(b"<string></string>"),
        }
        out.extend_from_slice(b"</value>\n");
        if as_struct {
            out.extend_from_slice(b"</member></struct></value>\n");
        }
        out.extend_from_slice(b"</param>\n");
    }
    out.extend_from_slice(b"</params>\n</methodCall>");
    out
}

/// Text content for XML 1.0: `<` `&` `>` escaped (OpenSIPS escaped nothing, so a `<` in a SIP
/// header made the request invalid), CR as `&#13;` (a parser would turn a raw one into LF),
/// and what XML 1.0 cannot carry at all, invalid UTF-8 and control characters other than tab
/// and LF, U+FFFE and U+FFFF, replaced by U+FFFD.
pub fn escape(out: &mut Vec<u8>, s: &[u8]) {
    let mut rest = s;
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                escape_str(out, valid);
                return;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                // Cannot fail: the first `valid_up_to` bytes are valid UTF-8.
                escape_str(out, std::str::from_utf8(valid).unwrap_or_default());
                out.extend_from_slice("\u{FFFD}".as_bytes());
                let skip = e.error_len().unwrap_or(after.len());
                rest = &after[skip..];
            }
        }
    }
}

fn escape_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let (rep, len): (&[u8], usize) = match bytes[i] {
            b'<' => (b"&lt;", 1),
            b'>' => (b"&gt;", 1),
            b'&' => (b"&amp;", 1),
            b'\r' => (b"&#13;", 1),
            b'\t' | b'\n' => {
                i += 1;
                continue;
            }
            0..=0x1f | 0x7f => ("\u{FFFD}".as_bytes(), 1),
            // U+FFFE and U+FFFF (EF BF BE / EF BF BF) are not XML 1.0 characters either.
            0xef if matches!(bytes.get(i + 1..i + 3), Some([0xbf, 0xbe | 0xbf])) => {
                ("\u{FFFD}".as_bytes(), 3)
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(rep);
        i += len;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use evi_sdk::testing::TestEvent;

    fn text(v: &[u8]) -> String {
        String::from_utf8_lossy(v).into_owned()
    }

    fn esc(s: &[u8]) -> String {
        let mut v = Vec::new();
        escape(&mut v, s);
        text(&v)
    }

    #[test]
    fn escapes_what_xml_needs() {
        assert_eq!(esc(b"a<b>&c \"q\" 'x'"), "a&lt;b&gt;&amp;c \"q\" 'x'");
        assert_eq!(esc("héllo €".as_bytes()), "héllo €");
        assert_eq!(esc(b"l1\nl2\r\tend"), "l1\nl2&#13;\tend");
        assert_eq!(esc(b"x\x00y\x1bz\x7f"), "x\u{FFFD}y\u{FFFD}z\u{FFFD}");
        assert_eq!(esc(b"bad\xff\xfeend"), "bad\u{FFFD}\u{FFFD}end");
        assert_eq!(esc(b"cut\xe2\x82"), "cut\u{FFFD}");
        // Found by fuzz/ (payload): U+FFFE and U+FFFF made the body invalid XML.
        assert_eq!(
            esc("a\u{FFFE}b\u{FFFF}c\u{FFFD}\u{EFBF}".as_bytes()),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}\u{EFBF}"
        );
    }

    #[test]
    fn golden_body_layout() {
        let ev = TestEvent::new("E_GOLDEN")
            .int(Some("id"), 42)
            .str(Some("user"), "alice")
            .str(Some("msg"), "hello world");
        let got = ev.with(|e| body("e_golden_handler", e, NamedParams::NameElement));
        let want = "<?xml version=\"1.0\"?>\n<methodCall>\n<methodName>e_golden_handler</methodName>\n<params>\n<param>\n<value><string>E_GOLDEN</string></value>\n</param>\n<param>\n<name>id</name>\n<value><int>42</int></value>\n</param>\n<param>\n<name>user</name>\n<value><string>alice</string></value>\n</param>\n<param>\n<name>msg</name>\n<value><string>hello world</string></value>\n</param>\n</params>\n</methodCall>";
        assert_eq!(text(&got), want);
        assert_eq!(got.len(), 380, "Content-length of event_xmlrpc_0.http");
    }

    #[test]
    fn struct_form_positional_and_null() {
        let ev = TestEvent::new("E").int(Some("n"), -7).null(Some("z"));
        let got = ev.with(|e| body("m<&>", e, NamedParams::Struct));
        let want = "<?xml version=\"1.0\"?>\n<methodCall>\n<methodName>m&lt;&amp;&gt;</methodName>\n<params>\n<param>\n<value><string>E</string></value>\n</param>\n<param>\n<value><struct><member>\n<name>n</name>\n<value><int>-7</int></value>\n</member></struct></value>\n</param>\n<param>\n<value><struct><member>\n<name>z</name>\n<value><string></string></value>\n</member></struct></value>\n</param>\n</params>\n</methodCall>";
        assert_eq!(text(&got), want);
        let pos = TestEvent::new("E").str(None, "x").int(None, 1);
        let got = pos.with(|e| body("m", e, NamedParams::Struct));
        assert!(text(&got).contains("<param>\n<value><string>x</string></value>\n</param>\n<param>\n<value><int>1</int></value>\n</param>\n</params>"), "{}", text(&got));
    }
}
