//! Helpers for a module's own unit tests: build an [`Event`] without a host.
//!
//! Integration tests load the real `.so` through the real host (see `evi-testkit`); these only
//! let a module test its formatting and parsing code in-process.

use crate::Event;
use evi_abi::{EviEvent, EviParam, EviStr, EviValue};

enum OwnedValue {
    Null,
    Int(i64),
    Str(Vec<u8>),
}

/// An event owned by a test.
pub struct TestEvent {
    name: String,
    params: Vec<(Option<String>, OwnedValue)>,
    json: Vec<u8>,
}

impl TestEvent {
    pub fn new(name: &str) -> Self {
        TestEvent {
            name: name.into(),
            params: Vec::new(),
            json: Vec::new(),
        }
    }
    /// Add an int param (`name` `None` = positional).
    pub fn int(mut self, name: Option<&str>, v: i64) -> Self {
        self.params.push((name.map(Into::into), OwnedValue::Int(v)));
        self
    }
    /// Add a string param.
    pub fn str(mut self, name: Option<&str>, v: impl AsRef<[u8]>) -> Self {
        self.params
            .push((name.map(Into::into), OwnedValue::Str(v.as_ref().to_vec())));
        self
    }
    /// Add a null param.
    pub fn null(mut self, name: Option<&str>) -> Self {
        self.params.push((name.map(Into::into), OwnedValue::Null));
        self
    }
    /// Set the shared JSON payload the host would have built.
    pub fn json(mut self, json: impl AsRef<[u8]>) -> Self {
        self.json = json.as_ref().to_vec();
        self
    }

    /// Run `f` with a borrowed [`Event`] view, as a transport's `raise` gets it.
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
            id: 0,
            name: EviStr::new(self.name.as_bytes()),
            params: raw.as_ptr(),
            n_params: raw.len(),
            json: EviStr::new(&self.json),
            raised_at_us: 0,
            depth: 0,
        };
        // SAFETY: `ev` and everything it points to outlive the call.
        f(&unsafe { Event::from_raw(&ev) })
    }
}
