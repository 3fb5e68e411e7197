//! Modparams: declared once in a const table, checked by the host, read by `init`.
//!
//! The table in [`export_module!`](crate::export_module) (built with [`int`], [`str`](fn@str),
//! [`str_unset`], [`bool`](fn@bool) and [`repeatable`]) is what the host checks every
//! `modparam` line against, and what `evid --describe-module` prints. `init` then gets the
//! checked values as [`Params`]: read them one by one ([`Params::int`], [`Params::str`], ...) or
//! all at once into the module's own config struct with [`Params::parse`].

mod de;

pub use de::ParamError;

use evi_abi::{
    EviParam, EviParamSpec, EviStr, EviValue, EVI_PARAM_BOOL, EVI_PARAM_INT, EVI_PARAM_REPEATABLE,
    EVI_PARAM_STR, EVI_VALUE_INT, EVI_VALUE_STR,
};

/// An `int` modparam with a default and an inclusive range.
pub const fn int(
    name: &'static str,
    default: i64,
    min: i64,
    max: i64,
    doc: &'static str,
) -> EviParamSpec {
    EviParamSpec {
        name: EviStr::from_static(name),
        kind: EVI_PARAM_INT,
        flags: 0,
        default: EviValue::int(default),
        min,
        max,
        doc: EviStr::from_static(doc),
    }
}

/// A `str` modparam with a default.
pub const fn str(name: &'static str, default: &'static str, doc: &'static str) -> EviParamSpec {
    EviParamSpec {
        name: EviStr::from_static(name),
        kind: EVI_PARAM_STR,
        flags: 0,
        default: EviValue::str(EviStr::from_static(default)),
        min: 0,
        max: 0,
        doc: EviStr::from_static(doc),
    }
}

/// A `str` modparam that is unset unless the config sets it.
pub const fn str_unset(name: &'static str, doc: &'static str) -> EviParamSpec {
    EviParamSpec {
        name: EviStr::from_static(name),
        kind: EVI_PARAM_STR,
        flags: 0,
        default: EviValue::NULL,
        min: 0,
        max: 0,
        doc: EviStr::from_static(doc),
    }
}

/// A `bool` modparam (`yes`/`no`, `true`/`false`, `1`/`0` in the config).
pub const fn bool(name: &'static str, default: bool, doc: &'static str) -> EviParamSpec {
    EviParamSpec {
        name: EviStr::from_static(name),
        kind: EVI_PARAM_BOOL,
        flags: 0,
        default: EviValue::bool(default),
        min: 0,
        max: 1,
        doc: EviStr::from_static(doc),
    }
}

/// Mark a param as repeatable: each `modparam` line adds a value.
pub const fn repeatable(mut spec: EviParamSpec) -> EviParamSpec {
    spec.flags |= EVI_PARAM_REPEATABLE;
    spec
}

/// The checked modparam values handed to `init`: every declared param in spec order, defaults
/// filled in; a repeatable param appears once per value; an unset param without a default is
/// absent.
#[derive(Clone, Debug)]
pub struct Params {
    values: Vec<(String, ParamValue)>,
}

/// One modparam value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamValue {
    /// An `int` param.
    Int(i64),
    /// A `str` param.
    Str(String),
    /// A `bool` param.
    Bool(bool),
}

impl Params {
    /// # Safety
    /// `raw` must point to `n` valid params (the `init` arguments).
    pub(crate) unsafe fn from_raw(raw: *const EviParam, n: usize) -> Params {
        let raw = if raw.is_null() {
            &[][..]
        } else {
            std::slice::from_raw_parts(raw, n)
        };
        let values = raw
            .iter()
            .map(|p| {
                let name = String::from_utf8_lossy(p.name.as_bytes()).into_owned();
                let v = match p.value.kind {
                    EVI_VALUE_INT => ParamValue::Int(p.value.int),
                    EVI_VALUE_STR => ParamValue::Str(
                        String::from_utf8_lossy(p.value.str.as_bytes()).into_owned(),
                    ),
                    _ => ParamValue::Bool(p.value.int != 0),
                };
                (name, v)
            })
            .collect();
        Params { values }
    }

    /// Build params directly (for unit tests of a module's `init`).
    pub fn from_pairs(pairs: &[(&str, ParamValue)]) -> Params {
        Params {
            values: pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect(),
        }
    }

    /// The (first) value of param `name`; `None` when it is unset.
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Every value of a repeatable param, in config order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a ParamValue> + 'a {
        self.values
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// An `int` param (its default when the config does not set it); 0 when undeclared.
    pub fn int(&self, name: &str) -> i64 {
        match self.get(name) {
            Some(ParamValue::Int(i)) => *i,
            Some(ParamValue::Bool(b)) => *b as i64,
            _ => 0,
        }
    }

    /// A `str` param; `None` when unset.
    pub fn str(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(ParamValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// A `bool` param (an `int` param counts as true when non-zero); false when unset.
    pub fn bool(&self, name: &str) -> bool {
        matches!(self.get(name), Some(ParamValue::Bool(true))) || self.int(name) != 0
    }
}
