//! A raised event: its params copied once into one buffer, the ABI view built once, and the
//! shared JSON-RPC payload built at most once, on first use by a transport that wants it.

use evi_abi::{EviEvent, EviParam, EviStr, EviValue};
use std::sync::{Arc, OnceLock};

/// A parameter value as a raiser hands it over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueRef<'a> {
    Null,
    Int(i64),
    Str(&'a [u8]),
}

/// A parameter as a raiser hands it over; `name` `None` = positional.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamRef<'a> {
    pub name: Option<&'a str>,
    pub value: ValueRef<'a>,
}

impl<'a> ParamRef<'a> {
    pub fn named(name: &'a str, value: ValueRef<'a>) -> Self {
        ParamRef {
            name: Some(name),
            value,
        }
    }
    pub fn positional(value: ValueRef<'a>) -> Self {
        ParamRef { name: None, value }
    }
}

/// One event on its way to subscribers. Immutable once built; shared by every subscriber's job.
pub struct RaisedEvent {
    pub id: u32,
    pub name: Arc<str>,
    /// Names and string values, back to back; `raw` points into it.
    _bytes: Box<[u8]>,
    raw: Box<[EviParam]>,
    json: OnceLock<Box<[u8]>>,
    pub raised_at_us: i64,
}

// SAFETY: `raw` points only into `_bytes` (heap, never moved or mutated) and static memory.
unsafe impl Send for RaisedEvent {}
unsafe impl Sync for RaisedEvent {}

impl RaisedEvent {
    pub fn new(id: u32, name: Arc<str>, params: &[ParamRef<'_>], raised_at_us: i64) -> RaisedEvent {
        let size: usize = params
            .iter()
            .map(|p| {
                p.name.map_or(0, str::len)
                    + if let ValueRef::Str(s) = p.value {
                        s.len()
                    } else {
                        0
                    }
            })
            .sum();
        let mut bytes = Vec::with_capacity(size);
        // Offsets first; pointers only once `bytes` has its final address.
        let spans: Vec<_> = params
            .iter()
            .map(|p| {
                let n0 = bytes.len();
                bytes.extend_from_slice(p.name.unwrap_or("").as_bytes());
                let v0 = bytes.len();
                if let ValueRef::Str(s) = p.value {
                    bytes.extend_from_slice(s);
                }
                (n0, v0, bytes.len())
            })
            .collect();
        let bytes = bytes.into_boxed_slice();
        let at = |a: usize, b: usize| EviStr {
            ptr: bytes[a..b].as_ptr(),
            len: b - a,
        };
        let raw = params
            .iter()
            .zip(spans)
            .map(|(p, (n0, v0, end))| EviParam {
                name: if v0 == n0 { EviStr::EMPTY } else { at(n0, v0) },
                value: match p.value {
                    ValueRef::Null => EviValue::NULL,
                    ValueRef::Int(i) => EviValue::int(i),
                    ValueRef::Str(_) => EviValue::str(at(v0, end)),
                },
            })
            .collect();
        RaisedEvent {
            id,
            name,
            _bytes: bytes,
            raw,
            json: OnceLock::new(),
            raised_at_us,
        }
    }

    pub fn params(&self) -> &[EviParam] {
        &self.raw
    }

    /// The shared JSON-RPC notification (reference §1.8), built on first call.
    pub fn json(&self) -> &[u8] {
        self.json
            .get_or_init(|| crate::json::notification(&self.name, &self.raw).into_boxed_slice())
    }

    /// The ABI view for a transport's `raise`; valid while `self` lives.
    pub fn view(&self, with_json: bool) -> EviEvent {
        EviEvent {
            id: self.id,
            name: EviStr::new(self.name.as_bytes()),
            params: self.raw.as_ptr(),
            n_params: self.raw.len(),
            json: if with_json {
                EviStr::new(self.json())
            } else {
                EviStr::EMPTY
            },
            raised_at_us: self.raised_at_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_survive_the_move_into_the_event() {
        let ev = RaisedEvent::new(
            3,
            "E_X".into(),
            &[
                ParamRef::named("id", ValueRef::Int(42)),
                ParamRef::named("user", ValueRef::Str(b"alice")),
                ParamRef::positional(ValueRef::Null),
            ],
            0,
        );
        let moved = Box::new(ev);
        let p = moved.params();
        unsafe {
            assert_eq!(p[0].name.as_bytes(), b"id");
            assert_eq!(p[0].value.int, 42);
            assert_eq!(p[1].value.str.as_bytes(), b"alice");
            assert_eq!(p[2].name.as_bytes(), b"");
        }
        assert_eq!(
            moved.json(),
            br#"{"jsonrpc":"2.0","method":"E_X","params":{"id":42,"user":"alice","":null}}"#
        );
    }
}
