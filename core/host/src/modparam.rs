//! Checking `modparam` lines against a module's declared params, and building the values `init`
//! receives. Runs before any module code.

use crate::loader::{ModuleInfo, ParamDefault, ParamKind};
use evi_abi::{EviParam, EviStr, EviValue};

/// A value as written in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigValue {
    Int(i64),
    Str(String),
}

/// One checked modparam value, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModparamValue {
    Int(i64),
    Str(String),
    Bool(bool),
}

/// Check one `modparam(module, name, value)` line; the error is the message without position.
pub fn check(info: &ModuleInfo, name: &str, value: &ConfigValue) -> Result<ModparamValue, String> {
    let Some(spec) = info.params.iter().find(|p| p.name == name) else {
        let known: Vec<_> = info.params.iter().map(|p| p.name.as_str()).collect();
        return Err(format!(
            "module {} has no param {name:?} (it has: {})",
            info.name,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ));
    };
    match (spec.kind, value) {
        (ParamKind::Int, ConfigValue::Int(i)) => {
            if *i < spec.min || *i > spec.max {
                Err(format!(
                    "{}.{name} = {i} is out of range {}..={}",
                    info.name, spec.min, spec.max
                ))
            } else {
                Ok(ModparamValue::Int(*i))
            }
        }
        (ParamKind::Str, ConfigValue::Str(s)) => Ok(ModparamValue::Str(s.clone())),
        (ParamKind::Bool, ConfigValue::Int(i @ (0 | 1))) => Ok(ModparamValue::Bool(*i == 1)),
        (ParamKind::Bool, ConfigValue::Str(s)) => match s.to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" | "1" => Ok(ModparamValue::Bool(true)),
            "no" | "false" | "off" | "0" => Ok(ModparamValue::Bool(false)),
            _ => Err(format!(
                "{}.{name} is a bool: use yes/no, true/false or 1/0, not {s:?}",
                info.name
            )),
        },
        (ParamKind::Bool, ConfigValue::Int(i)) => Err(format!(
            "{}.{name} is a bool: use yes/no, true/false or 1/0, not {i}",
            info.name
        )),
        (ParamKind::Int, ConfigValue::Str(s)) => Err(format!(
            "{}.{name} is an int, got the string {s:?} (write it without quotes)",
            info.name
        )),
        (ParamKind::Str, ConfigValue::Int(i)) => Err(format!(
            "{}.{name} is a string, got the int {i} (write it in quotes)",
            info.name
        )),
    }
}

/// Whether a param already set may be set again.
pub fn repeatable(info: &ModuleInfo, name: &str) -> bool {
    info.params.iter().any(|p| p.name == name && p.repeatable)
}

/// The full value list for `init`: every declared param in spec order, config values first,
/// else the default; unset params without default are absent.
pub fn resolve(info: &ModuleInfo, set: &[(String, ModparamValue)]) -> Vec<(String, ModparamValue)> {
    let mut out = Vec::new();
    for spec in &info.params {
        let given: Vec<_> = set.iter().filter(|(n, _)| *n == spec.name).collect();
        if given.is_empty() {
            match (&spec.default, spec.kind) {
                (Some(ParamDefault::Int(i)), ParamKind::Bool) => {
                    out.push((spec.name.clone(), ModparamValue::Bool(*i != 0)))
                }
                (Some(ParamDefault::Int(i)), _) => {
                    out.push((spec.name.clone(), ModparamValue::Int(*i)))
                }
                (Some(ParamDefault::Str(s)), _) => {
                    out.push((spec.name.clone(), ModparamValue::Str(s.clone())))
                }
                (None, _) => {}
            }
        } else {
            out.extend(given.into_iter().cloned());
        }
    }
    out
}

/// Borrowed ABI views of `values`, valid while `values` lives.
pub fn to_raw(values: &[(String, ModparamValue)]) -> Vec<EviParam> {
    values
        .iter()
        .map(|(n, v)| EviParam {
            name: EviStr::new(n.as_bytes()),
            value: match v {
                ModparamValue::Int(i) => EviValue::int(*i),
                ModparamValue::Bool(b) => EviValue::bool(*b),
                ModparamValue::Str(s) => EviValue::str(EviStr::new(s.as_bytes())),
            },
        })
        .collect()
}
