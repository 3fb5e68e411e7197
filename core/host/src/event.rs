//! A raised event: its params copied once into one allocation, and the shared JSON-RPC payload
//! built at most once, on first use by a transport that wants it.

use evi_abi::{EviEvent, EviParam, EviStr, EviValue, EVI_VALUE_INT, EVI_VALUE_NULL, EVI_VALUE_STR};
use std::mem::MaybeUninit;
use std::ptr::addr_of_mut;
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

/// Anything a raise reads its params from: [`ParamRef`]s, or a caller's own param type viewed
/// in place (the script's `ScriptParam`), so that no array of views is filled per raise (that
/// array was ~70 instructions of a script raise).
pub trait AsParamRef {
    fn param_ref(&self) -> ParamRef<'_>;
}

impl AsParamRef for ParamRef<'_> {
    #[inline(always)]
    fn param_ref(&self) -> ParamRef<'_> {
        *self
    }
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
pub(crate) struct Slot {
    name: (u32, u32),
    kind: u32,
    int: i64,
    value: (u32, u32),
}

/// One event on its way to subscribers. Immutable once built; shared by every subscriber's job.
///
/// Built in place in its `Arc` ([`RaisedEvent::shared`]): the struct is ~650 bytes, mostly inline
/// room for params, and building it on the stack then moving it into the `Arc` (plus zeroing the
/// unused room) was the raiser thread's largest cost in perf (memmove + memset, ~25% of the
/// thread in the loop -> UDP profile). In place, only the bytes a raise uses are written.
pub struct RaisedEvent {
    pub id: u32,
    pub name: &'static str,
    pub raised_at_us: i64,
    /// Script routes this raise is nested in (see `route_depth`).
    pub depth: u32,
    /// Params: the first `n_slots` of `inline_slots`, or `heap_slots` when there are more.
    n_slots: usize,
    inline_slots: [MaybeUninit<Slot>; INLINE_PARAMS],
    heap_slots: Vec<Slot>,
    /// Names and string values: the first `n_bytes` of `inline_bytes`, or `heap_bytes`.
    n_bytes: usize,
    inline_bytes: [MaybeUninit<u8>; INLINE_BYTES],
    heap_bytes: Vec<u8>,
    /// Kept as built (a `Vec`): shrinking it to a boxed slice cost a realloc and a copy.
    json: OnceLock<Vec<u8>>,
}

/// Copy `src` to `dst` without a call to `memcpy` when it is short, as param names and most
/// values are: a raise copies each of them, and the calls (5 per event of 3 params) were
/// ~220 of the raiser's ~1,700 instructions per event (callgrind).
///
/// # Safety
/// `dst` is valid for writes of `src.len()` bytes and does not overlap `src`.
#[inline(always)]
unsafe fn copy_short(src: &[u8], dst: *mut u8) {
    use std::ptr::{read_unaligned as rd, write_unaligned as wr};
    let (n, s) = (src.len(), src.as_ptr());
    // SAFETY: every read is within `src` and every write within `dst[..n]` (the caller's
    // promise); the two words of a range overlap when it is shorter than two words.
    unsafe {
        match n {
            0 => {}
            1..=3 => {
                *dst = *s;
                *dst.add(n / 2) = *s.add(n / 2);
                *dst.add(n - 1) = *s.add(n - 1);
            }
            4..=7 => {
                wr(dst.cast::<u32>(), rd(s.cast::<u32>()));
                wr(dst.add(n - 4).cast::<u32>(), rd(s.add(n - 4).cast::<u32>()));
            }
            8..=16 => {
                wr(dst.cast::<u64>(), rd(s.cast::<u64>()));
                wr(dst.add(n - 8).cast::<u64>(), rd(s.add(n - 8).cast::<u64>()));
            }
            _ => std::ptr::copy_nonoverlapping(s, dst, n),
        }
    }
}

impl RaisedEvent {
    /// The event for `params`, built in its shared allocation.
    pub fn shared<P: AsParamRef>(
        id: u32,
        name: &'static str,
        params: &[P],
        raised_at_us: i64,
        depth: u32,
    ) -> Arc<RaisedEvent> {
        let size: usize = params
            .iter()
            .map(|p| {
                let p = p.param_ref();
                p.name.map_or(0, str::len)
                    + if let ValueRef::Str(s) = p.value {
                        s.len()
                    } else {
                        0
                    }
            })
            .sum();
        let mut heap_bytes = Vec::new();
        if size > INLINE_BYTES {
            heap_bytes.reserve_exact(size);
        }
        let mut heap_slots = Vec::new();
        if params.len() > INLINE_PARAMS {
            heap_slots.reserve_exact(params.len());
        }
        let mut arc = Arc::<RaisedEvent>::new_uninit();
        let Some(uninit) = Arc::get_mut(&mut arc) else {
            unreachable!("a new Arc has no other owner")
        };
        let p = uninit.as_mut_ptr();
        // SAFETY: `p` points at the new Arc's uninitialised value, which nothing else can see.
        // Every field that is not `MaybeUninit` is written exactly once below, before
        // `assume_init`; the inline arrays are written only at the indices `n_slots` and
        // `n_bytes` count, which are the only ones ever read (`slots`, `bytes`).
        unsafe {
            addr_of_mut!((*p).id).write(id);
            addr_of_mut!((*p).name).write(name);
            addr_of_mut!((*p).raised_at_us).write(raised_at_us);
            addr_of_mut!((*p).depth).write(depth);
            addr_of_mut!((*p).json).write(OnceLock::new());
            let inline_bytes = addr_of_mut!((*p).inline_bytes).cast::<u8>();
            let mut n_bytes = 0usize;
            let mut push = |b: &[u8]| -> (u32, u32) {
                let off = n_bytes;
                if size <= INLINE_BYTES {
                    copy_short(b, inline_bytes.add(off));
                } else {
                    heap_bytes.extend_from_slice(b);
                }
                n_bytes += b.len();
                (off as u32, b.len() as u32)
            };
            let inline_slots = addr_of_mut!((*p).inline_slots).cast::<Slot>();
            for (i, param) in params.iter().enumerate() {
                let param = param.param_ref();
                let name = push(param.name.unwrap_or("").as_bytes());
                let (kind, int, value) = match param.value {
                    ValueRef::Null => (EVI_VALUE_NULL, 0, (0, 0)),
                    ValueRef::Int(v) => (EVI_VALUE_INT, v, (0, 0)),
                    ValueRef::Str(s) => (EVI_VALUE_STR, 0, push(s)),
                };
                let slot = Slot {
                    name,
                    kind,
                    int,
                    value,
                };
                if params.len() <= INLINE_PARAMS {
                    inline_slots.add(i).write(slot);
                } else {
                    heap_slots.push(slot);
                }
            }
            addr_of_mut!((*p).n_bytes).write(n_bytes);
            addr_of_mut!((*p).n_slots).write(params.len());
            addr_of_mut!((*p).heap_bytes).write(heap_bytes);
            addr_of_mut!((*p).heap_slots).write(heap_slots);
            arc.assume_init()
        }
    }

    /// Its params as offsets into [`RaisedEvent::bytes`] (a held copy keeps both, `hold.rs`).
    pub(crate) fn slots(&self) -> &[Slot] {
        if self.n_slots > INLINE_PARAMS {
            return &self.heap_slots;
        }
        // SAFETY: `shared` wrote the first `n_slots` inline slots.
        unsafe { std::slice::from_raw_parts(self.inline_slots.as_ptr().cast(), self.n_slots) }
    }

    /// The bytes of its param names and string values.
    pub(crate) fn bytes(&self) -> &[u8] {
        if self.n_bytes > INLINE_BYTES {
            return &self.heap_bytes;
        }
        // SAFETY: `shared` wrote the first `n_bytes` inline bytes.
        unsafe { std::slice::from_raw_parts(self.inline_bytes.as_ptr().cast(), self.n_bytes) }
    }

    fn param(&self, s: &Slot) -> EviParam {
        let b = self.bytes();
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
            // Only the views used are written (this runs for every raise of every subscriber).
            let mut raw = [const { MaybeUninit::<EviParam>::uninit() }; INLINE_PARAMS];
            for (r, s) in raw.iter_mut().zip(slots) {
                r.write(self.param(s));
            }
            // SAFETY: the first `slots.len()` entries were written just above.
            f(unsafe { std::slice::from_raw_parts(raw.as_ptr().cast::<EviParam>(), slots.len()) })
        } else {
            let raw: Vec<EviParam> = slots.iter().map(|s| self.param(s)).collect();
            f(&raw)
        }
    }

    /// The shared JSON-RPC notification (reference §1.8), built on first call.
    pub fn json(&self) -> &[u8] {
        self.json.get_or_init(|| {
            self.with_params(|p| evi_abi::payload::notification(self.name, p, None))
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

/// What building an event again needs besides its slots and bytes: the host keeps a held
/// event (`hold.rs`) too large for a [`Compact`] record as this plus copies of
/// [`RaisedEvent::slots`] and [`RaisedEvent::bytes`] appended to rings (no allocation, where a
/// [`RaisedEvent`] takes ~0.7 KiB). Holding the events themselves kept 100,000 of them alive
/// beside a dead RabbitMQ: +70 MB resident, and the raiser writing every event to cold memory.
#[derive(Clone, Copy)]
pub(crate) struct KeptMeta {
    id: u32,
    depth: u32,
    name: &'static str,
    raised_at_us: i64,
    pub n_slots: u32,
    pub n_bytes: u32,
}

impl RaisedEvent {
    /// The header of a kept copy (see [`KeptMeta`]).
    pub(crate) fn kept_meta(&self) -> KeptMeta {
        KeptMeta {
            id: self.id,
            depth: self.depth,
            name: self.name,
            raised_at_us: self.raised_at_us,
            n_slots: self.n_slots as u32,
            n_bytes: self.n_bytes as u32,
        }
    }

    /// The event again, as it was raised (same params, raise time and depth), from a kept copy:
    /// `slots` and `bytes` are what [`RaisedEvent::slots`] and
    /// [`RaisedEvent::bytes`] gave for it.
    pub(crate) fn revive(meta: &KeptMeta, slots: &[Slot], bytes: &[u8]) -> Arc<RaisedEvent> {
        let at = |(off, len): (u32, u32)| bytes.get(off as usize..(off + len) as usize);
        let params: Vec<ParamRef<'_>> = slots
            .iter()
            .map(|s| ParamRef {
                // Names were `&str`s: their bytes are UTF-8.
                name: (s.name.1 > 0)
                    .then(|| at(s.name).and_then(|b| std::str::from_utf8(b).ok()))
                    .flatten(),
                value: match s.kind {
                    EVI_VALUE_INT => ValueRef::Int(s.int),
                    EVI_VALUE_STR => ValueRef::Str(at(s.value).unwrap_or_default()),
                    _ => ValueRef::Null,
                },
            })
            .collect();
        RaisedEvent::shared(meta.id, meta.name, &params, meta.raised_at_us, meta.depth)
    }

    /// This event as one fixed-size [`Compact`] record, if it is small enough.
    pub(crate) fn compact(&self) -> Option<Compact> {
        if self.n_slots > COMPACT_PARAMS || self.n_bytes > COMPACT_BYTES {
            return None;
        }
        // Fixed-length copies (moves, no `memcpy` call); the room past `n_slots` and `n_bytes`
        // is copied as the uninitialised memory it is and never read.
        let mut slots = [MaybeUninit::uninit(); COMPACT_PARAMS];
        slots.copy_from_slice(&self.inline_slots[..COMPACT_PARAMS]);
        let mut bytes = [MaybeUninit::uninit(); COMPACT_BYTES];
        bytes.copy_from_slice(&self.inline_bytes[..COMPACT_BYTES]);
        Some(Compact {
            meta: self.kept_meta(),
            slots,
            bytes,
        })
    }
}

/// The largest event a [`Compact`] record holds: the usual few short params.
const COMPACT_PARAMS: usize = 4;
const COMPACT_BYTES: usize = 96;
// A record is copied from the inline room, which `revive`'s safety relies on.
const _: () = assert!(COMPACT_PARAMS <= INLINE_PARAMS && COMPACT_BYTES <= INLINE_BYTES);

/// A held event (`hold.rs`) in one fixed-size record, kept and dropped by a move. Why: appended
/// to rings as [`KeptMeta`] + slots + bytes, a held event cost the raiser two `VecDeque`
/// extends and two drains, ~220 of its ~300 instructions, beside a dead destination where
/// every event is held. Cost: ~0.27 KiB per held event where the rings take ~0.15 KiB for 3
/// params; larger events still go to the rings.
#[derive(Clone, Copy)]
pub(crate) struct Compact {
    meta: KeptMeta,
    slots: [MaybeUninit<Slot>; COMPACT_PARAMS],
    bytes: [MaybeUninit<u8>; COMPACT_BYTES],
}

impl Compact {
    /// The event again, as it was raised.
    pub(crate) fn revive(&self) -> Arc<RaisedEvent> {
        let (n_slots, n_bytes) = (self.meta.n_slots as usize, self.meta.n_bytes as usize);
        // SAFETY: `compact` copied an event with at most `COMPACT_PARAMS` slots and
        // `COMPACT_BYTES` bytes, whose first `n_slots` and `n_bytes` `shared` had written.
        let (slots, bytes) = unsafe {
            (
                std::slice::from_raw_parts(self.slots.as_ptr().cast::<Slot>(), n_slots),
                std::slice::from_raw_parts(self.bytes.as_ptr().cast::<u8>(), n_bytes),
            )
        };
        RaisedEvent::revive(&self.meta, slots, bytes)
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
        let moved = RaisedEvent::shared(3, "E_X", &params, 0, 0);
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
        let ev = RaisedEvent::shared(1, "E_Y", &params, 0, 0);
        check(&ev);
        assert_eq!(ev.len(), 23);
        ev.with_params(|p| assert_eq!(unsafe { p[22].value.str.as_bytes() }, &big[..]));
    }

    #[test]
    fn a_kept_event_revives_as_it_was_raised() {
        let big = vec![b'y'; 300];
        let small = [
            ParamRef::named("id", ValueRef::Int(42)),
            ParamRef::named("user", ValueRef::Str(b"alice")),
            ParamRef::positional(ValueRef::Null),
        ];
        let mut large = small.to_vec();
        large.push(ParamRef::named("big", ValueRef::Str(&big)));
        for params in [&small[..], &large[..]] {
            let ev = RaisedEvent::shared(7, "E_K", params, 1_700_000_000_123_456, 2);
            let again = RaisedEvent::revive(&ev.kept_meta(), ev.slots(), ev.bytes());
            check(&again);
            assert_eq!(
                (again.id, again.name, again.raised_at_us, again.depth),
                (7, "E_K", 1_700_000_000_123_456, 2)
            );
            assert_eq!(again.json(), ev.json());
        }
    }

    #[test]
    fn short_copies_write_exactly_their_bytes() {
        let src: Vec<u8> = (1..=40).collect();
        for n in 0..=40 {
            let mut dst = [0u8; 48];
            // SAFETY: `dst` has room for 40 bytes at offset 3.
            unsafe { copy_short(&src[..n], dst.as_mut_ptr().add(3)) };
            assert_eq!(&dst[3..3 + n], &src[..n], "{n} bytes");
            assert!(
                dst[..3].iter().chain(&dst[3 + n..]).all(|&b| b == 0),
                "{n}: spilled"
            );
        }
    }
}
