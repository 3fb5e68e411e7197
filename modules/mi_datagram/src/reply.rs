//! Datagram in, reply out: the OpenSIPS 3.x mi_datagram rules with no socket, so they are
//! testable alone.

/// Sent, as plain text, for a datagram that does not start with a JSON value (OpenSIPS's
/// `MI_PARSE_ERROR`, no newline).
pub const PARSE_ERROR: &[u8] = b"400 Parse_error";
/// Sent, as plain text, when no reply could be built or it does not fit in `socket_buf_size`
/// (OpenSIPS's `MI_INTERNAL_ERROR`).
pub const INTERNAL_ERROR: &[u8] = b"500 Internal error";

/// The MI engine: one JSON-RPC request in, the reply out, `None` for a notification. In the
/// daemon this is `Host::mi_execute`.
pub type MiFn = dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync;

/// The request in a datagram: the first JSON value, leading whitespace skipped, anything after
/// it ignored. OpenSIPS reads the datagram as a C string with cJSON, which stops at a NUL and
/// ignores what follows the value; clients that pad or terminate their datagrams rely on it.
pub fn request(datagram: &[u8]) -> Option<&[u8]> {
    let text = datagram.split(|b| *b == 0).next().unwrap_or_default();
    let start = text.iter().position(|b| !b.is_ascii_whitespace())?;
    let text = &text[start..];
    let mut values =
        evi_sdk::json::Deserializer::from_slice(text).into_iter::<evi_sdk::json::Value>();
    match values.next() {
        Some(Ok(_)) => Some(&text[..values.byte_offset()]),
        _ => None,
    }
}

/// What to send back for one datagram; `None` sends nothing (a notification).
pub fn answer(datagram: &[u8], max_reply: usize, mi: &MiFn) -> Option<Vec<u8>> {
    let Some(req) = request(datagram) else {
        return Some(PARSE_ERROR.to_vec());
    };
    match mi(req)? {
        r if r.is_empty() || r.len() > max_reply => Some(INTERNAL_ERROR.to_vec()),
        r => Some(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(req: &[u8]) -> Option<Vec<u8>> {
        let text = String::from_utf8_lossy(req);
        text.contains("\"id\"").then(|| req.to_vec())
    }

    #[test]
    fn the_first_json_value_is_the_request() {
        assert_eq!(request(b"  {\"a\":1}\n"), Some(&b"{\"a\":1}"[..]));
        assert_eq!(request(b"{\"a\":1} trailing junk"), Some(&b"{\"a\":1}"[..]));
        assert_eq!(request(b"{\"a\":1}\0{garbage"), Some(&b"{\"a\":1}"[..]));
        assert_eq!(request(b"[1,2]"), Some(&b"[1,2]"[..]));
        for bad in [
            &b""[..],
            b"  ",
            b"{",
            b"{\"a\":}",
            b"not json",
            b"\0{\"a\":1}",
        ] {
            assert_eq!(request(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn replies() {
        let req = br#"{"jsonrpc":"2.0","id":1,"method":"m"}"#;
        assert_eq!(answer(req, 1000, &echo), Some(req.to_vec()));
        // A notification: nothing at all.
        assert_eq!(
            answer(br#"{"jsonrpc":"2.0","method":"m"}"#, 1000, &echo),
            None
        );
        // Unparseable: plain text, even when the engine would answer.
        assert_eq!(answer(b"{oops", 1000, &echo), Some(PARSE_ERROR.to_vec()));
        // A reply that does not fit, or no reply built: plain text.
        assert_eq!(answer(req, 10, &echo), Some(INTERNAL_ERROR.to_vec()));
        assert_eq!(
            answer(req, 1000, &|_| Some(Vec::new())),
            Some(INTERNAL_ERROR.to_vec())
        );
    }
}
