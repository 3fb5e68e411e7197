//! A JSON-RPC request read straight into its four members.
//!
//! Why not an object first: parsing the top-level object into a map cost four key allocations
//! and four hashed inserts per request, then a hashed lookup per member read (callgrind: ~15% of
//! a `raise_event` over HTTP). Only the members' values are parsed, as [`Json`] borrowing from
//! the body; what the engine checks of them is unchanged, and so are the replies: a later
//! duplicate member replaces an earlier one, as in a map, and any other member is parsed and
//! dropped. Parsed, not skipped: serde's skipping neither validates UTF-8 and escapes nor
//! range-checks numbers, and a body the old parse refused as not JSON must still be refused.

use super::json::Json;
use serde_core::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A request object's JSON-RPC members, each `None` if missing.
#[derive(Default)]
pub(crate) struct Request<'a> {
    pub jsonrpc: Option<Json<'a>>,
    pub method: Option<Json<'a>>,
    pub params: Option<Json<'a>>,
    pub id: Option<Json<'a>>,
}

/// Parse `body`: `Ok(None)` when it is JSON but not an object, `Err` when it is not JSON (one
/// value, nothing after it but whitespace).
pub(crate) fn parse(body: &[u8]) -> Result<Option<Request<'_>>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = de.deserialize_any(Top)?;
    de.end()?;
    Ok(parsed)
}

struct Top;

impl<'de> Visitor<'de> for Top {
    type Value = Option<Request<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Request<'de>>, A::Error> {
        let mut req = Request::default();
        while let Some(member) = map.next_key::<Member>()? {
            let slot = match member {
                Member::Jsonrpc => &mut req.jsonrpc,
                Member::Method => &mut req.method,
                Member::Params => &mut req.params,
                Member::Id => &mut req.id,
                Member::Other => {
                    map.next_value::<Json>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value()?);
        }
        Ok(Some(req))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<Request<'de>>, A::Error> {
        while seq.next_element::<Json>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Option<Request<'de>>, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Option<Request<'de>>, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Option<Request<'de>>, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Option<Request<'de>>, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Option<Request<'de>>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<Request<'de>>, E> {
        Ok(None)
    }
}

/// A member name, matched without allocating it.
enum Member {
    Jsonrpc,
    Method,
    Params,
    Id,
    Other,
}

impl<'de> de::Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Member, D::Error> {
        d.deserialize_identifier(MemberName)
    }
}

struct MemberName;

impl<'de> Visitor<'de> for MemberName {
    type Value = Member;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Member, E> {
        Ok(match name {
            "jsonrpc" => Member::Jsonrpc,
            "method" => Member::Method,
            "params" => Member::Params,
            "id" => Member::Id,
            _ => Member::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(body: &str) -> Request<'_> {
        match parse(body.as_bytes()) {
            Ok(Some(r)) => r,
            _ => panic!("not an object: {body}"),
        }
    }

    #[test]
    fn members_are_read_and_others_skipped() {
        let r = object(
            r#"{"x":{"method":"no"},"jsonrpc":"2.0","method":"m","params":[1,{"a":2}],"id":7}"#,
        );
        let text = |v: &Option<Json>| v.as_ref().map(Json::to_text);
        assert_eq!(text(&r.jsonrpc).as_deref(), Some(r#""2.0""#));
        assert_eq!(text(&r.method).as_deref(), Some(r#""m""#));
        assert_eq!(text(&r.params).as_deref(), Some(r#"[1,{"a":2}]"#));
        assert_eq!(text(&r.id).as_deref(), Some("7"));
        // A later duplicate replaces the earlier one, as in a map; `null` is present.
        let r = object(r#"{"method":"a","method":"b","id":null}"#);
        assert_eq!(r.method.as_ref().and_then(Json::as_str), Some("b"));
        assert_eq!(r.id, Some(Json::Null));
        assert!(object(r#"{"me\u0074hod":"escaped"}"#).method.is_some());
    }

    #[test]
    fn other_values_and_bad_json() {
        for body in ["[1,[2]]", "1", "-1", "1.5", "\"s\"", "true", "null", " [] "] {
            assert!(matches!(parse(body.as_bytes()), Ok(None)), "{body}");
        }
        for body in ["", "{", "{\"a\":}", "{} {}", "[1,]", "\u{0}", "{\"a\":1,}"] {
            assert!(parse(body.as_bytes()).is_err(), "{body:?}");
        }
        // Not JSON anywhere, in a member the engine reads or not, or in a top-level array:
        // invalid UTF-8, a lone surrogate, a number out of range.
        for bad in [&b"\"\xff\""[..], br#""\ud800""#, b"1e400"] {
            for body in [
                [
                    &br#"{"jsonrpc":"2.0","id":1,"method":"version","x":"#[..],
                    bad,
                    b"}",
                ]
                .concat(),
                [&br#"{"id":"#[..], bad, b"}"].concat(),
                [&b"["[..], bad, b"]"].concat(),
            ] {
                assert!(parse(&body).is_err(), "{}", String::from_utf8_lossy(&body));
            }
        }
    }
}
