//! `Params::parse`: a serde `Deserializer` over the checked modparam values, so that a module
//! declares its configuration once, as a struct, and gets it filled.
//!
//! Mapping: each struct field is the modparam of the same name (use `#[serde(rename = "...")]`
//! for another name). `int` → any integer type (range-checked by serde), `str` → `String`,
//! `&str`, `char` or a unit-variant enum, `bool` → `bool`. A repeatable param → `Vec<T>` (every
//! value, in config order). A param that is unset and has no default → `Option<T>` is `None`,
//! `#[serde(default)]` takes the field's default, anything else is an error naming the param.

use super::{ParamValue, Params};
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use std::fmt;

/// Why [`Params::parse`] failed: names the modparam and says what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    param: Option<String>,
    message: String,
}

impl ParamError {
    /// The modparam the error is about, when there is one.
    pub fn param(&self) -> Option<&str> {
        self.param.as_deref()
    }

    fn in_param(mut self, name: &str) -> Self {
        if self.param.is_none() {
            self.param = Some(name.to_string());
        }
        self
    }
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.param {
            Some(p) => write!(f, "modparam {p:?}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ParamError {}

impl de::Error for ParamError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ParamError {
            param: None,
            message: msg.to_string(),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        ParamError {
            param: Some(field.to_string()),
            message: "is not set and has no default (set it with modparam, or make the field an \
                      Option or #[serde(default)])"
                .into(),
        }
    }
}

/// So that `params.parse()?` works in [`crate::Module::init`], which returns `Result<_, String>`.
impl From<ParamError> for String {
    fn from(e: ParamError) -> String {
        e.to_string()
    }
}

impl Params {
    /// Fill the module's own config struct from the checked modparams.
    ///
    /// ```
    /// use evi_sdk::{ParamValue, Params};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Config {
    ///     max_open_sockets: u32,
    ///     delimiter: String,
    ///     /// A repeatable param: every `modparam` line, in order.
    ///     #[serde(default)]
    ///     server: Vec<String>,
    ///     /// Unset (no default in the spec) → None.
    ///     suffix: Option<String>,
    /// }
    ///
    /// let params = Params::from_pairs(&[
    ///     ("max_open_sockets", ParamValue::Int(100)),
    ///     ("delimiter", ParamValue::Str(",".into())),
    ///     ("server", ParamValue::Str("a".into())),
    ///     ("server", ParamValue::Str("b".into())),
    /// ]);
    /// let cfg: Config = params.parse()?;
    /// assert_eq!(cfg.max_open_sockets, 100);
    /// assert_eq!(cfg.server, ["a", "b"]);
    /// assert_eq!(cfg.suffix, None);
    ///
    /// // Errors name the param.
    /// let bad = Params::from_pairs(&[("max_open_sockets", ParamValue::Int(-1))]);
    /// let err = bad.parse::<Config>().err().unwrap();
    /// assert_eq!(err.param(), Some("max_open_sockets"));
    /// # Ok::<(), evi_sdk::params::ParamError>(())
    /// ```
    pub fn parse<'de, T: serde::Deserialize<'de>>(&'de self) -> Result<T, ParamError> {
        let mut groups: Vec<(&str, Vec<&ParamValue>)> = Vec::new();
        for (name, v) in &self.values {
            match groups.iter_mut().find(|(n, _)| n == name) {
                Some((_, vs)) => vs.push(v),
                None => groups.push((name, vec![v])),
            }
        }
        T::deserialize(ParamsDe {
            groups: groups.into_iter(),
            value: None,
        })
    }
}

/// The whole param list, as a map from name to values.
struct ParamsDe<'de> {
    groups: std::vec::IntoIter<(&'de str, Vec<&'de ParamValue>)>,
    value: Option<(&'de str, Vec<&'de ParamValue>)>,
}

impl<'de> de::Deserializer<'de> for ParamsDe<'de> {
    type Error = ParamError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ParamError> {
        v.visit_map(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

impl<'de> de::MapAccess<'de> for ParamsDe<'de> {
    type Error = ParamError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ParamError> {
        match self.groups.next() {
            Some((name, values)) => {
                self.value = Some((name, values));
                seed.deserialize(BorrowedStrDeserializer::new(name))
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, ParamError> {
        let (name, values) = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("value requested before its key"))?;
        seed.deserialize(FieldDe { values })
            .map_err(|e| e.in_param(name))
    }
}

/// Every value of one param (one, unless the param is repeatable).
struct FieldDe<'de> {
    values: Vec<&'de ParamValue>,
}

impl<'de> FieldDe<'de> {
    fn single(self) -> Result<ValueDe<'de>, ParamError> {
        match self.values[..] {
            [v] => Ok(ValueDe(v)),
            _ => Err(de::Error::custom(format_args!(
                "is set {} times; declare the field as a Vec to take every value",
                self.values.len()
            ))),
        }
    }
}

impl<'de> de::Deserializer<'de> for FieldDe<'de> {
    type Error = ParamError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ParamError> {
        self.single()?.deserialize_any(v)
    }
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ParamError> {
        self.single()?.deserialize_bool(v)
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ParamError> {
        v.visit_some(self)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, ParamError> {
        v.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ParamError> {
        v.visit_seq(de::value::SeqDeserializer::new(
            self.values.into_iter().map(ValueDe),
        ))
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, ParamError> {
        self.single()?.deserialize_enum(name, variants, v)
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct tuple tuple_struct map struct identifier ignored_any
    }
}

/// One modparam value.
struct ValueDe<'de>(&'de ParamValue);

impl<'de> IntoDeserializer<'de, ParamError> for ValueDe<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> de::Deserializer<'de> for ValueDe<'de> {
    type Error = ParamError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ParamError> {
        match self.0 {
            ParamValue::Int(i) => v.visit_i64(*i),
            ParamValue::Str(s) => v.visit_borrowed_str(s),
            ParamValue::Bool(b) => v.visit_bool(*b),
        }
    }
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ParamError> {
        match self.0 {
            ParamValue::Int(i @ (0 | 1)) => v.visit_bool(*i == 1),
            _ => self.deserialize_any(v),
        }
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ParamError> {
        v.visit_some(self)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, ParamError> {
        v.visit_newtype_struct(self)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, ParamError> {
        match self.0 {
            ParamValue::Str(s) => v.visit_enum(BorrowedStrDeserializer::new(s)),
            _ => self.deserialize_any(v),
        }
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn s(v: &str) -> ParamValue {
        ParamValue::Str(v.into())
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "SCREAMING-KEBAB-CASE")]
    enum Mode {
        Parallel,
        RoundRobin,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Config<'a> {
        port: u16,
        name: String,
        borrowed: &'a str,
        verbose: bool,
        #[serde(default)]
        server: Vec<String>,
        suffix: Option<String>,
        mode: Mode,
        #[serde(default = "ten")]
        workers: u8,
    }

    fn ten() -> u8 {
        10
    }

    fn full() -> Params {
        Params::from_pairs(&[
            ("port", ParamValue::Int(4222)),
            ("name", s("n")),
            ("borrowed", s("b")),
            ("verbose", ParamValue::Bool(true)),
            ("server", s("a")),
            ("server", s("b")),
            ("mode", s("ROUND-ROBIN")),
            ("unknown", ParamValue::Int(1)),
        ])
    }

    #[test]
    fn fills_every_kind_of_field() {
        let p = full();
        let c: Config<'_> = p.parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c,
            Config {
                port: 4222,
                name: "n".into(),
                borrowed: "b",
                verbose: true,
                server: vec!["a".into(), "b".into()],
                suffix: None,
                mode: Mode::RoundRobin,
                workers: 10,
            }
        );
        let _ = Mode::Parallel;
    }

    fn err<T: for<'de> Deserialize<'de> + fmt::Debug>(pairs: &[(&str, ParamValue)]) -> String {
        Params::from_pairs(pairs)
            .parse::<T>()
            .map(|v| panic!("parsed {v:?}"))
            .unwrap_or_else(|e| e.to_string())
    }

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Small {
        port: u16,
        name: Option<String>,
    }

    #[test]
    fn errors_name_the_param() {
        assert_eq!(
            err::<Small>(&[("port", ParamValue::Int(70000))]),
            "modparam \"port\": invalid value: integer `70000`, expected u16"
        );
        assert_eq!(
            err::<Small>(&[("port", s("x"))]),
            "modparam \"port\": invalid type: string \"x\", expected u16"
        );
        assert!(err::<Small>(&[]).starts_with("modparam \"port\": is not set and has no default"));
        assert_eq!(
            err::<Small>(&[
                ("port", ParamValue::Int(1)),
                ("name", s("a")),
                ("name", s("b"))
            ]),
            "modparam \"name\": is set 2 times; declare the field as a Vec to take every value"
        );
    }

    #[test]
    fn ints_zero_and_one_are_bools() {
        #[derive(Deserialize)]
        struct B {
            on: bool,
        }
        let p = Params::from_pairs(&[("on", ParamValue::Int(1))]);
        assert!(p.parse::<B>().map(|b| b.on).unwrap_or(false));
    }
}
