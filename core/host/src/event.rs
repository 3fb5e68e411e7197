//! A raised event: its params copied once into one allocation, and the shared JSON-RPC payload
//! built at most once, on first use by a transport that wants it.

use evi_abi::{EviEvent, EviParam, EviStr, EviValue, EVI_VALUE_INT, EVI_VALUE_NULL, EVI_VALUE_STR};
use std::sync::OnceLock;

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

/// Params and bytes up to these sizes live inside the event itself: one allocation per raise.
const INLINE_PARAMS: usize = 8;
const INLINE_BYTES: usize = 256;

/// One param as offsets into the event's byte buffer.
#[derive(Clone, Copy, Default)]
struct Slot {
    name: (u32, u32),
    kind: u32,
    int: i64,
    value: (u32, u32),
}

// Inline storage is the point: one allocation per raise.
#[allow(clippy::large_enum_variant)]
enum Slots {
    Inline([Slot; INLINE_PARAMS], usize),
    Heap(Vec<Slot>),
}

#[allow(clippy::large_enum_variant)]
enum Bytes {
    Inline([u8; INLINE_BYTES], usize),
    Heap(Vec<u8>),
}

/// One event on its way to subscribers. Immutable once built; shared by every subscriber's job.
pub struct RaisedEvent {
    pub id: u32,
    pub name: &'static str,
    pub raised_at_us: i64,
    /// Script routes this raise is nested in (see `route_depth`).
    pub depth: u32,
    slots: Slots,
    bytes: Bytes,
    json: OnceLock<Box<[u8]>>,
}

impl RaisedEvent {
    pub fn new(
        id: u32,
        name: &'static str,
        params: &[ParamRef<'_>],
        raised_at_us: i64,
        depth: u32,
    ) -> RaisedEvent {
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
        let mut bytes = if size <= INLINE_BYTES {
            Bytes::Inline([0; INLINE_BYTES], 0)
        } else {
            Bytes::Heap(Vec::with_capacity(size))
        };
        let mut slots = if params.len() <= INLINE_PARAMS {
            Slots::Inline([Slot::default(); INLINE_PARAMS], 0)
        } else {
            Slots::Heap(Vec::with_capacity(params.len()))
        };
        for p in params {
            let name = bytes.push(p.name.unwrap_or("").as_bytes());
            let (kind, int, value) = match p.value {
                ValueRef::Null => (EVI_VALUE_NULL, 0, (0, 0)),
                ValueRef::Int(i) => (EVI_VALUE_INT, i, (0, 0)),
                ValueRef::Str(s) => (EVI_VALUE_STR, 0, bytes.push(s)),
            };
            let slot = Slot {
                name,
                kind,
                int,
                value,
            };
            match &mut slots {
                Slots::Inline(a, n) => {
                    a[*n] = slot;
                    *n += 1;
                }
                Slots::Heap(v) => v.push(slot),
            }
        }
        RaisedEvent {
            id,
            name,
            raised_at_us,
            depth,
            slots,
            bytes,
            json: OnceLock::new(),
        }
    }

    fn slots(&self) -> &[Slot] {
        match &self.slots {
            Slots::Inline(a, n) => &a[..*n],
            Slots::Heap(v) => v,
        }
    }

    fn param(&self, s: &Slot) -> EviParam {
        let b = self.bytes.get();
        let at = |(off, len): (u32, u32)| {
            let r = &b[off as usize..(off + len) as usize];
            EviStr::new(r)
        };
        EviParam {
            name: if s.name.1 == 0 {
                EviStr::EMPTY
            } else {
                at(s.name)
            },
            value: match s.kind {
                EVI_VALUE_INT => EviValue::int(s.int),
                EVI_VALUE_STR => EviValue::str(at(s.value)),
                _ => EviValue::NULL,
            },
        }
    }

    pub fn len(&self) -> usize {
        self.slots().len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots().is_empty()
    }

    /// Run `f` with the params as ABI views (built on the stack; valid during `f`).
    pub fn with_params<R>(&self, f: impl FnOnce(&[EviParam]) -> R) -> R {
        let slots = self.slots();
        if slots.len() <= INLINE_PARAMS {
            let mut raw = [EviParam {
                name: EviStr::EMPTY,
                value: EviValue::NULL,
            }; INLINE_PARAMS];
            for (r, s) in raw.iter_mut().zip(slots) {
                *r = self.param(s);
            }
            f(&raw[..slots.len()])
        } else {
            let raw: Vec<EviParam> = slots.iter().map(|s| self.param(s)).collect();
            f(&raw)
        }
    }

    /// The shared JSON-RPC notification (reference §1.8), built on first call.
    pub fn json(&self) -> &[u8] {
        self.json.get_or_init(|| {
            self.with_params(|p| evi_abi::payload::notification(self.name, p, None))
                .into_boxed_slice()
        })
    }

    /// Run `f` with the ABI view for a transport's `raise`.
    pub fn with_view<R>(&self, with_json: bool, f: impl FnOnce(&EviEvent) -> R) -> R {
        let json = if with_json {
            EviStr::new(self.json())
        } else {
            EviStr::EMPTY
        };
        self.with_params(|p| {
            f(&EviEvent {
                id: self.id,
                name: EviStr::new(self.name.as_bytes()),
                params: p.as_ptr(),
                n_params: p.len(),
                json,
                raised_at_us: self.raised_at_us,
                depth: self.depth,
            })
        })
    }
}

impl Bytes {
    /// Append `b` and return its (offset, length).
    fn push(&mut self, b: &[u8]) -> (u32, u32) {
        match self {
            Bytes::Inline(a, n) => {
                let off = *n;
                a[off..off + b.len()].copy_from_slice(b);
                *n += b.len();
                (off as u32, b.len() as u32)
            }
            Bytes::Heap(v) => {
                let off = v.len();
                v.extend_from_slice(b);
                (off as u32, b.len() as u32)
            }
        }
    }

    fn get(&self) -> &[u8] {
        match self {
            Bytes::Inline(a, n) => &a[..*n],
            Bytes::Heap(v) => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ev: &RaisedEvent) {
        ev.with_params(|p| unsafe {
            assert_eq!(p[0].name.as_bytes(), b"id");
            assert_eq!(p[0].value.int, 42);
            assert_eq!(p[1].value.str.as_bytes(), b"alice");
            assert_eq!(p[2].name.as_bytes(), b"");
            assert_eq!(p[2].value.kind, EVI_VALUE_NULL);
        });
    }

    #[test]
    fn params_survive_the_move_into_the_event() {
        let params = [
            ParamRef::named("id", ValueRef::Int(42)),
            ParamRef::named("user", ValueRef::Str(b"alice")),
            ParamRef::positional(ValueRef::Null),
        ];
        let moved = Box::new(RaisedEvent::new(3, "E_X", &params, 0, 0));
        check(&moved);
        assert_eq!(
            moved.json(),
            br#"{"jsonrpc":"2.0","method":"E_X","params":{"id":42,"user":"alice","":null}}"#
        );
    }

    #[test]
    fn large_events_spill_to_the_heap() {
        let big = vec![b'x'; 1000];
        let mut params = vec![
            ParamRef::named("id", ValueRef::Int(42)),
            ParamRef::named("user", ValueRef::Str(b"alice")),
            ParamRef::positional(ValueRef::Null),
        ];
        params.extend((0..20).map(|_| ParamRef::named("big", ValueRef::Str(&big))));
        let ev = RaisedEvent::new(1, "E_Y", &params, 0, 0);
        check(&ev);
        assert_eq!(ev.len(), 23);
        ev.with_params(|p| assert_eq!(unsafe { p[22].value.str.as_bytes() }, &big[..]));
    }
}
