//! The request stream: `:REPLY_FIFO_NAME:JSON` frames, back to back, as OpenSIPS mi_fifo reads
//! them. Pure functions over the bytes read so far, so the rules are testable alone.

/// Most bytes buffered while waiting for the end of a request (OpenSIPS: 4096).
pub const MAX_BUFFER: usize = 65536;

/// What the front of the buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole request: the reply FIFO name (`None` for `::`, no reply wanted) and its JSON.
    Request {
        reply: Option<&'a [u8]>,
        json: &'a [u8],
    },
    /// Bytes that can never become a request; everything buffered is dropped. `reply` is the
    /// reply FIFO name if one was read before the bad part.
    Malformed {
        reply: Option<&'a [u8]>,
        why: &'static str,
    },
}

/// The next frame in `buf` and how many bytes it used; `None` when more bytes are needed (the
/// count then covers only leading whitespace, which is skipped as OpenSIPS does).
pub fn next(buf: &[u8]) -> (Option<Frame<'_>>, usize) {
    let skip = buf
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(buf.len());
    let rest = &buf[skip..];
    if rest.len() < 3 {
        return (None, skip);
    }
    if rest[0] != b':' {
        let why = "a request must start with ':'";
        return (Some(Frame::Malformed { reply: None, why }), buf.len());
    }
    let Some(sep) = rest[1..].iter().position(|b| *b == b':') else {
        return (None, skip);
    };
    let name = &rest[1..1 + sep];
    let body = &rest[2 + sep..];
    let reply = (!name.is_empty()).then_some(name);
    if body.iter().all(u8::is_ascii_whitespace) {
        return (None, skip);
    }
    let mut values =
        evi_sdk::json::Deserializer::from_slice(body).into_iter::<evi_sdk::json::Value>();
    match values.next() {
        Some(Ok(_)) => {
            let end = values.byte_offset();
            let json = &body[..end];
            (Some(Frame::Request { reply, json }), skip + 2 + sep + end)
        }
        Some(Err(e)) if e.is_eof() => (None, skip),
        _ => {
            let why = "the request is not JSON";
            (Some(Frame::Malformed { reply, why }), buf.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(reply: Option<&'a [u8]>, json: &'a [u8]) -> Option<Frame<'a>> {
        Some(Frame::Request { reply, json })
    }

    #[test]
    fn one_request() {
        let b = br#":r1:{"id":1}"#;
        assert_eq!(next(b), (req(Some(b"r1"), br#"{"id":1}"#), b.len()));
        // Leading whitespace and a trailing newline are skipped.
        let b = b"\n  :r1:{\"id\":1}\n";
        assert_eq!(next(b), (req(Some(b"r1"), br#"{"id":1}"#), b.len() - 1));
        assert_eq!(next(b"\n"), (None, 1));
    }

    #[test]
    fn no_reply_name() {
        assert_eq!(next(b"::{}"), (req(None, b"{}"), 4));
    }

    #[test]
    fn several_in_one_write() {
        let b = br#":a:{"id":1}:b:{"id":2} ::[]"#;
        let (f, n) = next(b);
        assert_eq!(f, req(Some(b"a"), br#"{"id":1}"#));
        let (f, m) = next(&b[n..]);
        assert_eq!(f, req(Some(b"b"), br#"{"id":2}"#));
        let (f, k) = next(&b[n + m..]);
        assert_eq!(f, req(None, b"[]"));
        assert_eq!(n + m + k, b.len());
    }

    #[test]
    fn incomplete_waits_for_more() {
        for b in [
            &b":"[..],
            b":a",
            b":abc",
            b":abc:",
            b":abc:  ",
            br#":a:{"id":"#,
            br#":a:{"x":[1,"#,
        ] {
            assert_eq!(next(b), (None, 0), "{:?}", String::from_utf8_lossy(b));
        }
        assert_eq!(next(b"  :a:{"), (None, 2));
    }

    #[test]
    fn garbage_drops_everything() {
        let b = br#"x:a:{"id":1}"#;
        let (f, n) = next(b);
        assert!(matches!(f, Some(Frame::Malformed { reply: None, .. })));
        assert_eq!(n, b.len());
        let b = br#":a:{"id":}:b:{}"#;
        let (f, n) = next(b);
        assert!(matches!(
            f,
            Some(Frame::Malformed {
                reply: Some(b"a"),
                ..
            })
        ));
        assert_eq!(n, b.len());
    }
}
