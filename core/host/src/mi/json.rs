//! A JSON value that borrows its strings from the request body.
//!
//! Why not `serde_json::Value`: every string in a `Value` is its own allocation, and every
//! object an `IndexMap` hashed with SipHash. An MI request is parsed, checked and dropped within
//! one call, so its strings can stay in the body (an escaped string is the exception: it is
//! decoded into its own copy) and its objects can be short vectors searched in order. For
//! `raise_event` over HTTP this removed ~10 allocations and ~6 hashes per request.
//!
//! What a client sees is unchanged: the same bodies parse or fail, a later duplicate member
//! replaces an earlier one in the earlier one's place (as in the ordered map), and a value
//! serialises to the same bytes.

use serde_core::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_core::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Number;
use std::borrow::Cow;
use std::fmt;

/// A JSON value; strings and member names borrow from the parsed text where they can.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Json<'a> {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    Str(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Object<'a>),
}

/// A JSON object's members in their order, each name once.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object<'a>(Vec<(Cow<'a, str>, Json<'a>)>);

impl<'a> Json<'a> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as JSON text.
    pub fn to_text(&self) -> String {
        // Serialising into a String cannot fail: no map key is anything but a string.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl<'a> Object<'a> {
    pub fn get(&self, name: &str) -> Option<&Json<'a>> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Json<'a>)> {
        self.0.iter().map(|(k, v)| (&**k, v))
    }

    /// Members in order, duplicates included: keep each name's first place and last value.
    pub fn from_pairs(mut pairs: Vec<(Cow<'a, str>, Json<'a>)>) -> Self {
        let small = pairs.len() <= 8;
        if small && !(1..pairs.len()).any(|i| pairs[..i].iter().any(|p| p.0 == pairs[i].0)) {
            return Object(pairs);
        }
        // Sorting indices keeps a large object with many names O(n log n), not O(n²). The sort
        // is stable: within a name, indices stay in order.
        let mut order: Vec<usize> = (0..pairs.len()).collect();
        order.sort_by(|&a, &b| pairs[a].0.cmp(&pairs[b].0));
        let mut gone = vec![false; pairs.len()];
        let mut moves = Vec::new();
        for run in order.chunk_by(|&a, &b| pairs[a].0 == pairs[b].0) {
            if let [first, .., last] = *run {
                moves.push((first, last));
                for &i in &run[1..] {
                    gone[i] = true;
                }
            }
        }
        for (first, last) in moves {
            pairs[first].1 = std::mem::take(&mut pairs[last].1);
        }
        let mut i = 0;
        pairs.retain(|_| {
            i += 1;
            !gone[i - 1]
        });
        Object(pairs)
    }
}

/// Parse `text` as one JSON value (nothing after it but whitespace), nested at most
/// [`MAX_DEPTH`](super::MAX_DEPTH) levels: the parser recurses per level, and MI runs on
/// threads with small stacks.
pub fn from_slice(text: &[u8]) -> Result<Json<'_>, serde_json::Error> {
    if let Some(depth) = super::too_deep(text) {
        return Err(de::Error::custom(format!(
            "nested deeper than {} levels ({depth}+)",
            super::MAX_DEPTH
        )));
    }
    let mut de = serde_json::Deserializer::from_slice(text);
    let v = Json::deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json<'de>, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Json<'de>, E> {
        // The parser refuses numbers out of range, so this is never NaN or infinite.
        Ok(Number::from_f64(n).map_or(Json::Null, Json::Number))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(16));
        while let Some(Name(k)) = map.next_key()? {
            pairs.push((k, map.next_value()?));
        }
        Ok(Json::Object(Object::from_pairs(pairs)))
    }
}

/// A member name, borrowed where it has no escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Name<'de>, D::Error> {
        d.deserialize_str(NameVisitor)
    }
}

struct NameVisitor;

impl<'de> Visitor<'de> for NameVisitor {
    type Value = Name<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Name<'de>, E> {
        Ok(Name(Cow::Borrowed(s)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Name<'de>, E> {
        Ok(Name(Cow::Owned(s.to_owned())))
    }
}

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Number(n) => n.serialize(s),
            Json::Str(x) => s.serialize_str(x),
            Json::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Json::Object(o) => o.serialize(s),
        }
    }
}

impl Serialize for Object<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Parse with both parsers; they must agree on success and on the serialised bytes.
    fn same_as_value(text: &str) -> Option<String> {
        let ours = from_slice(text.as_bytes()).map(|j| j.to_text());
        let theirs = serde_json::from_str::<Value>(text).map(|v| v.to_string());
        assert_eq!(ours.is_ok(), theirs.is_ok(), "{text:?}");
        if let (Ok(a), Ok(b)) = (&ours, &theirs) {
            assert_eq!(a, b, "{text:?}");
        }
        ours.ok()
    }

    #[test]
    fn parses_and_serialises_as_serde_json_does() {
        for text in [
            r#"{"a":1,"b":[true,false,null,-2,3.5,1e3,18446744073709551615],"c":{"d":"e\u00e9\n"}}"#,
            r#"{"x":1,"y":2,"x":3}"#,
            r#"{"k":1,"k":{"k":2,"k":3},"j":4,"k":5}"#,
            r#"{"\u0061":1,"a":2}"#,
            "[]",
            "{}",
            " \"s\" ",
            "0",
            "-0.0",
            "1e400",
            "{\"a\":}",
            "[1,]",
            "{} {}",
            "\"\\ud800\"",
        ] {
            same_as_value(text);
        }
        assert!(from_slice(b"\"\xff\"").is_err());
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(from_slice(nested(super::super::MAX_DEPTH).as_bytes()).is_ok());
        assert!(from_slice(nested(super::super::MAX_DEPTH + 1).as_bytes()).is_err());
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let text = r#"{"plain":"abc","esc\n":"a\"b"}"#;
        let Ok(Json::Object(o)) = from_slice(text.as_bytes()) else {
            panic!("not an object");
        };
        let members: Vec<_> = o.0.iter().collect();
        assert!(matches!(members[0].0, Cow::Borrowed("plain")));
        assert!(matches!(members[0].1, Json::Str(Cow::Borrowed("abc"))));
        assert!(matches!(members[1].0, Cow::Owned(_)));
        assert_eq!(members[1].1.as_str(), Some("a\"b"));
    }

    #[test]
    fn duplicates_keep_the_first_place_and_the_last_value() {
        // Few members (each found by comparing names), then many (found by sorting).
        assert_eq!(
            same_as_value(r#"{"b":1,"a":2,"b":3,"c":4,"a":5}"#).as_deref(),
            Some(r#"{"b":3,"a":5,"c":4}"#)
        );
        let text: String = std::iter::once("{".to_string())
            .chain((0..40).map(|i| format!("\"k{}\":{i},", i % 7)))
            .chain(std::iter::once("\"z\":0}".to_string()))
            .collect();
        assert_eq!(
            same_as_value(&text).as_deref(),
            Some(r#"{"k0":35,"k1":36,"k2":37,"k3":38,"k4":39,"k5":33,"k6":34,"z":0}"#)
        );
    }
}
