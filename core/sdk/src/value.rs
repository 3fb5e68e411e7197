//! Event parameters and the event a transport delivers.

use evi_abi::{EviEvent, EviParam, EviStr, EviValue, EVI_VALUE_INT, EVI_VALUE_STR};

/// An event parameter value: OpenSIPS's int or string (ints widened to 64 bits), or null.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    /// No value (OpenSIPS's null param).
    Null,
    /// An integer.
    Int(i64),
    /// Raw bytes; usually UTF-8, but nothing guarantees it.
    Str(&'a [u8]),
}

/// One event parameter; `name` is `None` for a positional parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param<'a> {
    /// The name; `None` for a positional parameter.
    pub name: Option<&'a str>,
    /// The value.
    pub value: Value<'a>,
}

impl<'a> Param<'a> {
    /// A named parameter.
    pub fn named(name: &'a str, value: Value<'a>) -> Self {
        Param {
            name: Some(name),
            value,
        }
    }
    /// A positional (unnamed) parameter.
    pub fn positional(value: Value<'a>) -> Self {
        Param { name: None, value }
    }

    /// A borrowed ABI view, valid while `self` is.
    pub(crate) fn to_raw(self) -> EviParam {
        EviParam {
            name: self
                .name
                .map_or(EviStr::EMPTY, |n| EviStr::new(n.as_bytes())),
            value: match self.value {
                Value::Null => EviValue::NULL,
                Value::Int(i) => EviValue::int(i),
                Value::Str(s) => EviValue::str(EviStr::new(s)),
            },
        }
    }

    /// # Safety
    /// `raw` must be valid for `'a`.
    pub(crate) unsafe fn from_raw(raw: &EviParam) -> Param<'a> {
        let value = unsafe { Value::from_raw(&raw.value) };
        let name = raw.name.as_bytes();
        debug_assert!(std::str::from_utf8(name).is_ok());
        Param {
            name: if name.is_empty() {
                None
            } else {
                // SAFETY: the ABI guarantees UTF-8 names in events (see `EviParam`): the host
                // checks them when they are raised. Read per parameter per event, hence no
                // second check here.
                Some(unsafe { std::str::from_utf8_unchecked(name) })
            },
            value,
        }
    }
}

impl<'a> Value<'a> {
    /// # Safety
    /// `raw` (and the bytes it points to) must be valid for `'a`.
    pub(crate) unsafe fn from_raw(raw: &EviValue) -> Value<'a> {
        match raw.kind {
            EVI_VALUE_INT => Value::Int(raw.int),
            EVI_VALUE_STR => Value::Str(unsafe { raw.str.as_bytes() }),
            _ => Value::Null,
        }
    }
}

/// One raised event, borrowed for the duration of a transport's `raise`.
#[derive(Clone, Copy)]
pub struct Event<'a> {
    raw: &'a EviEvent,
}

impl<'a> Event<'a> {
    /// # Safety
    /// `raw` and everything it points to must be valid for `'a` (the host guarantees it for the
    /// duration of `raise`).
    pub unsafe fn from_raw(raw: &'a EviEvent) -> Self {
        Event { raw }
    }

    /// The event name, e.g. `E_PIKE_BLOCKED`.
    pub fn name(&self) -> &'a str {
        // SAFETY: valid for the call, and UTF-8 by the ABI contract (see `EviEvent`).
        unsafe { std::str::from_utf8_unchecked(self.raw.name.as_bytes()) }
    }

    /// The event's id in the daemon's registry (stable for the daemon's lifetime).
    pub fn id(&self) -> u32 {
        self.raw.id
    }

    /// How many parameters the event has.
    pub fn len(&self) -> usize {
        self.raw.n_params
    }

    /// Whether the event has no parameters.
    pub fn is_empty(&self) -> bool {
        self.raw.n_params == 0
    }

    /// The parameters in the order the producer added them.
    pub fn params(&self) -> impl ExactSizeIterator<Item = Param<'a>> + 'a {
        let raw: &'a [EviParam] = if self.raw.params.is_null() {
            &[]
        } else {
            // SAFETY: see `from_raw`.
            unsafe { std::slice::from_raw_parts(self.raw.params, self.raw.n_params) }
        };
        // SAFETY: see `from_raw`.
        raw.iter().map(|p| unsafe { Param::from_raw(p) })
    }

    /// The shared JSON-RPC notification; empty unless the transport declared `JSON`.
    pub fn json(&self) -> &'a [u8] {
        // SAFETY: see `from_raw`.
        unsafe { self.raw.json.as_bytes() }
    }

    /// Wall-clock time of the raise, microseconds since the Unix epoch.
    pub fn raised_at_us(&self) -> i64 {
        self.raw.raised_at_us
    }

    /// How many script routes this raise is nested in (0 outside any `event_route`).
    pub fn depth(&self) -> u32 {
        self.raw.depth
    }

    /// The params as the ABI hands them over (for `evi_abi::payload` and other raw consumers).
    pub fn raw_params(&self) -> &'a [EviParam] {
        if self.raw.params.is_null() {
            &[]
        } else {
            // SAFETY: see `from_raw`.
            unsafe { std::slice::from_raw_parts(self.raw.params, self.raw.n_params) }
        }
    }

    pub(crate) fn raw(&self) -> &'a EviEvent {
        self.raw
    }

    /// Copy the event, to deliver it after `raise` returns (e.g. from the module's own worker).
    pub fn to_owned(&self) -> OwnedEvent {
        OwnedEvent {
            id: self.id(),
            name: self.name().to_string(),
            params: self
                .params()
                .map(|p| {
                    let v = match p.value {
                        Value::Null => OwnedValue::Null,
                        Value::Int(i) => OwnedValue::Int(i),
                        Value::Str(s) => OwnedValue::Str(s.to_vec()),
                    };
                    (p.name.map(str::to_string), v)
                })
                .collect(),
            json: self.json().to_vec(),
            raised_at_us: self.raised_at_us(),
            depth: self.depth(),
        }
    }
}

pub(crate) enum OwnedValue {
    Null,
    Int(i64),
    Str(Vec<u8>),
}

/// An event copied out of a `raise` call; [`OwnedEvent::with`] lends it out as an [`Event`] again.
pub struct OwnedEvent {
    id: u32,
    name: String,
    params: Vec<(Option<String>, OwnedValue)>,
    json: Vec<u8>,
    raised_at_us: i64,
    depth: u32,
}

impl OwnedEvent {
    pub(crate) fn new(name: &str) -> Self {
        OwnedEvent {
            id: 0,
            name: name.into(),
            params: Vec::new(),
            json: Vec::new(),
            raised_at_us: 0,
            depth: 0,
        }
    }

    pub(crate) fn push(&mut self, name: Option<&str>, v: OwnedValue) {
        self.params.push((name.map(Into::into), v));
    }

    pub(crate) fn set_json(&mut self, json: &[u8]) {
        self.json = json.to_vec();
    }

    /// The event name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run `f` with a borrowed [`Event`] view of the copy.
    pub fn with<R>(&self, f: impl FnOnce(&Event<'_>) -> R) -> R {
        let raw: Vec<EviParam> = self
            .params
            .iter()
            .map(|(n, v)| EviParam {
                name: n
                    .as_ref()
                    .map_or(EviStr::EMPTY, |n| EviStr::new(n.as_bytes())),
                value: match v {
                    OwnedValue::Null => EviValue::NULL,
                    OwnedValue::Int(i) => EviValue::int(*i),
                    OwnedValue::Str(s) => EviValue::str(EviStr::new(s)),
                },
            })
            .collect();
        let ev = EviEvent {
            id: self.id,
            name: EviStr::new(self.name.as_bytes()),
            params: raw.as_ptr(),
            n_params: raw.len(),
            json: EviStr::new(&self.json),
            raised_at_us: self.raised_at_us,
            depth: self.depth,
        };
        // SAFETY: `ev` and everything it points to outlive the call.
        f(&unsafe { Event::from_raw(&ev) })
    }
}
