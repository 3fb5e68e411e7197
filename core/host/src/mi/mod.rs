//! The MI engine: JSON-RPC 2.0 exactly as OpenSIPS 3.x validates, binds and replies
//! (reference §2.1), shared by every MI transport module.

pub mod core;
pub(crate) mod json;
mod request;
mod stats;

use crate::host::Shared;
use crate::loader::MiCmdInfo;
use crate::module::Module;
use arc_swap::ArcSwap;
use json::{Json, Object};
use serde_json::Value;
use std::borrow::Cow;
use std::sync::Arc;

/// An MI error: OpenSIPS code, message and optional data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiError {
    pub code: i64,
    pub message: String,
    pub data: Option<String>,
}

impl MiError {
    pub fn new(code: i64, message: &str) -> Self {
        MiError {
            code,
            message: message.into(),
            data: None,
        }
    }
    pub fn data(mut self, data: impl Into<String>) -> Self {
        self.data = Some(data.into());
        self
    }
    pub fn invalid_params(data: &str) -> Self {
        MiError::new(-32602, "Invalid params").data(data)
    }
    fn parse_error() -> Self {
        MiError::new(-32700, "Parse error")
    }
    pub(crate) fn invalid_request() -> Self {
        MiError::new(-32600, "Invalid Request")
    }
}

pub type MiResult = Result<Value, MiError>;
/// A core command: its params are bound to names and borrow from the request.
pub(crate) type CoreHandler = fn(&Shared, &Object<'_>) -> MiResult;

enum Handler {
    Core(CoreHandler),
    Module(Arc<Module>),
}

struct Command {
    name: String,
    doc: String,
    recipes: Vec<Vec<String>>,
    handler: Handler,
}

/// Every MI command: core ones and those modules export.
#[derive(Default)]
pub struct MiTable {
    // Read per request without a lock or a reference count (connection threads on both CPUs
    // would all write those words); replaced whole when modules come and go.
    cmds: ArcSwap<Vec<Arc<Command>>>,
}

impl MiTable {
    pub(crate) fn add_core(&self, name: &str, doc: &str, recipes: &[&[&str]], h: CoreHandler) {
        self.push(Command {
            name: name.into(),
            doc: doc.into(),
            recipes: recipes
                .iter()
                .map(|r| r.iter().map(|s| s.to_string()).collect())
                .collect(),
            handler: Handler::Core(h),
        });
    }

    /// Make `cmds` module `m`'s commands, in place of those it had (none at its first load), in
    /// one edit: a reload never leaves a moment where its commands are missing. A name another
    /// module or the core already has keeps its first owner.
    pub(crate) fn set_module_commands(&self, m: &Arc<Module>, cmds: &[MiCmdInfo]) {
        let mine = |c: &Command| matches!(&c.handler, Handler::Module(x) if Arc::ptr_eq(x, m));
        let new: Vec<Arc<Command>> = cmds
            .iter()
            .map(|c| {
                Arc::new(Command {
                    name: c.name.clone(),
                    doc: c.doc.clone(),
                    recipes: c.recipes.clone(),
                    handler: Handler::Module(m.clone()),
                })
            })
            .collect();
        self.edit(|v| {
            v.retain(|c| !mine(c));
            for c in &new {
                if !v.iter().any(|o| o.name == c.name) {
                    v.push(c.clone());
                }
            }
        });
        let table = self.cmds.load();
        for c in new
            .iter()
            .filter(|c| !table.iter().any(|o| Arc::ptr_eq(o, c)))
        {
            log::warn!(
                "module {}: MI command {} already exists; keeping the first",
                m.name,
                c.name
            );
        }
    }

    pub(crate) fn clear_module_commands(&self) {
        self.edit(|v| v.retain(|c| matches!(c.handler, Handler::Core(_))));
    }

    fn push(&self, c: Command) {
        let c = Arc::new(c);
        self.edit(|v| v.push(c.clone()));
    }

    /// Replace the table with an edited copy (module load, reload, unload: rare). `f` runs
    /// again on a fresh copy if another edit landed meanwhile.
    fn edit(&self, f: impl Fn(&mut Vec<Arc<Command>>)) {
        self.cmds.rcu(|old| {
            let mut v = Vec::clone(old);
            f(&mut v);
            v
        });
    }

    /// Run `f` on the command called `name`, borrowed from the table's snapshot, which stays
    /// loaded while `f` runs: keep `f` short (a module's call is made after it returns).
    fn with_command<R>(&self, name: &str, f: impl FnOnce(Option<&Command>) -> R) -> R {
        f(self
            .cmds
            .load()
            .iter()
            .find(|c| c.name == name)
            .map(|c| &**c))
    }

    /// Every command name, in registration order.
    pub fn names(&self) -> Vec<String> {
        self.cmds.load().iter().map(|c| c.name.clone()).collect()
    }

    /// A command's recipes and doc, and the module that exports it (None = core).
    pub fn describe(&self, name: &str) -> Option<(Vec<Vec<String>>, String, Option<String>)> {
        self.with_command(name, |c| {
            c.map(|c| {
                let by = match &c.handler {
                    Handler::Core(_) => None,
                    Handler::Module(m) => Some(m.name.clone()),
                };
                (c.recipes.clone(), c.doc.clone(), by)
            })
        })
    }
}

/// Deepest JSON nesting a request may have. MI params are at most a few levels deep; the
/// parser recurses per level, and MI transports run it on threads with small stacks.
pub const MAX_DEPTH: usize = 32;

/// The depth reached when a request nests arrays/objects deeper than [`MAX_DEPTH`] (brackets
/// inside strings do not count).
pub(crate) fn too_deep(body: &[u8]) -> Option<usize> {
    // Nesting needs an opening bracket per level: with few, no scan is due. This count is one
    // vectorised pass; the scan below branches per byte (~8 instructions a byte).
    let opening = body.iter().filter(|&&b| b == b'[' || b == b'{').count();
    if opening <= MAX_DEPTH {
        return None;
    }
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_str {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(depth);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Execute one request body; `None` when no reply is due (a notification).
pub(crate) fn execute(shared: &Shared, body: &[u8]) -> Option<Vec<u8>> {
    let (max_request, max_params, max_param_len) = {
        let p = shared.policy.load();
        (p.max_request, p.max_params, p.max_param_len)
    };
    if body.len() > max_request {
        let e = MiError::invalid_request().data(format!(
            "request of {} bytes is larger than {max_request} (mi_max_request)",
            body.len()
        ));
        return Some(reply(&Json::Null, Err(e)));
    }
    if let Some(depth) = too_deep(body) {
        let e = MiError::parse_error().data(format!(
            "JSON nested deeper than {MAX_DEPTH} levels ({depth}+)"
        ));
        return Some(reply(&Json::Null, Err(e)));
    }
    let req = match request::parse(body) {
        Ok(Some(req)) => req,
        Ok(None) => return Some(reply(&Json::Null, Err(MiError::invalid_request()))),
        Err(_) => return Some(reply(&Json::Null, Err(MiError::parse_error()))),
    };
    let id_ok = matches!(
        req.id,
        None | Some(Json::Str(_) | Json::Number(_) | Json::Null)
    );
    if !id_ok {
        return Some(reply(&Json::Null, Err(MiError::invalid_request())));
    }
    let id = req.id.map(normalize_id);
    let valid = req.jsonrpc.as_ref().and_then(Json::as_str) == Some("2.0")
        && req.method.as_ref().and_then(Json::as_str).is_some()
        && matches!(req.params, None | Some(Json::Array(_) | Json::Object(_)));
    if !valid {
        return Some(reply(
            id.as_ref().unwrap_or(&Json::Null),
            Err(MiError::invalid_request()),
        ));
    }
    // Moved out of the request: binding takes the params instead of copying them.
    let params = req.params;
    let method = req
        .method
        .as_ref()
        .and_then(Json::as_str)
        .unwrap_or_default();
    let result = match limits(params.as_ref(), max_params, max_param_len) {
        Ok(()) => dispatch(shared, method, params),
        Err(e) => Err(e),
    };
    // A notification gets no reply, even for an error (OpenSIPS answers only -32700/-32600).
    let id = id?;
    Some(reply(&id, result))
}

/// At most `max_params` params, no string longer than `max_len` bytes (nested ones included).
fn limits(params: Option<&Json>, max_params: usize, max_len: usize) -> Result<(), MiError> {
    let n = match params {
        Some(Json::Array(a)) => a.len(),
        Some(Json::Object(o)) => o.len(),
        _ => 0,
    };
    if n > max_params {
        return Err(MiError::invalid_params(&format!(
            "{n} parameters, at most {max_params} (mi_max_params)"
        )));
    }
    fn longest(v: &Json) -> usize {
        match v {
            Json::Str(s) => s.len(),
            Json::Array(a) => a.iter().map(longest).max().unwrap_or(0),
            Json::Object(o) => o
                .iter()
                .map(|(k, v)| k.len().max(longest(v)))
                .max()
                .unwrap_or(0),
            _ => 0,
        }
    }
    let len = params.map_or(0, longest);
    if len > max_len {
        return Err(MiError::invalid_params(&format!(
            "a parameter of {len} bytes, at most {max_len} (mi_max_param_len)"
        )));
    }
    Ok(())
}

/// Ids are echoed with their JSON type; numbers come back as integers.
fn normalize_id(id: Json<'_>) -> Json<'_> {
    match id {
        Json::Number(n) if !n.is_i64() && !n.is_u64() => {
            Json::Number(n.as_f64().map_or(0, |f| f as i64).into())
        }
        other => other,
    }
}

fn dispatch(shared: &Shared, method: &str, params: Option<Json<'_>>) -> MiResult {
    if !shared.wait_ready(std::time::Duration::from_secs(60)) {
        return Err(MiError::new(-32000, "Server error").data("evid is starting or stopping"));
    }
    let bound = shared.mi.with_command(method, |cmd| {
        let cmd = cmd.ok_or_else(|| MiError::new(-32601, "Method not found"))?;
        let bound = bind(&cmd.recipes, params)?;
        Ok(match &cmd.handler {
            Handler::Core(h) => Bound::Done(h(shared, &bound)),
            Handler::Module(m) => Bound::Module(m.clone(), Json::Object(bound).to_text()),
        })
    })?;
    match bound {
        Bound::Done(result) => result,
        Bound::Module(m, params) => call_module(&m, method, params),
    }
}

/// A command bound to its params: a core command has run; a module's waits for its thread,
/// which may take seconds, so it runs after the table's snapshot is let go.
enum Bound {
    Done(MiResult),
    /// The module and its params as JSON text.
    Module(Arc<Module>, String),
}

fn call_module(m: &Module, method: &str, params: String) -> MiResult {
    let name = method.to_string();
    match m.call(move |inst| inst.mi(&name, &params)) {
        Ok(Ok(json)) => serde_json::from_str(&json)
            .map_err(|_| MiError::new(-32000, "Server error").data("module returned invalid JSON")),
        Ok(Err((code, msg, data))) => Err(MiError {
            code: code.into(),
            message: msg,
            data,
        }),
        Err(why) => Err(MiError::new(-32000, "Server error").data(why)),
    }
}

/// Bind JSON-RPC params to one of the command's recipes (OpenSIPS's rules).
fn bind<'a>(recipes: &'a [Vec<String>], params: Option<Json<'a>>) -> Result<Object<'a>, MiError> {
    let count_mismatch = || MiError::invalid_params("Too few or too many parameters");
    match params {
        Some(Json::Array(a)) if !a.is_empty() => {
            let mut fit = recipes.iter().filter(|r| r.len() == a.len());
            let r = fit.next().ok_or_else(count_mismatch)?;
            if fit.next().is_some() {
                return Err(MiError::invalid_params(
                    "Ambiguous call, use named parameters instead",
                ));
            }
            let names = r.iter().map(|n| Cow::Borrowed(n.as_str()));
            Ok(Object::from_pairs(names.zip(a).collect()))
        }
        Some(Json::Object(o)) if !o.is_empty() => {
            let same_count: Vec<_> = recipes.iter().filter(|r| r.len() == o.len()).collect();
            if same_count.is_empty() {
                return Err(count_mismatch());
            }
            if same_count
                .iter()
                .any(|r| r.iter().all(|n| o.contains_key(n)))
            {
                Ok(o)
            } else {
                Err(MiError::invalid_params("Named parameters do not match"))
            }
        }
        _ => {
            if recipes.is_empty() || recipes.iter().any(Vec::is_empty) {
                Ok(Object::default())
            } else {
                Err(count_mismatch())
            }
        }
    }
}

/// The reply's bytes, written directly (the same bytes as serialising a JSON object of these
/// members: building that object first cost a map and a hash per member, per request).
fn reply(id: &Json, result: MiResult) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","#);
    // Writing JSON into a Vec cannot fail: these results are ignored.
    match result {
        Ok(r) => {
            out.extend_from_slice(br#""result":"#);
            let _ = serde_json::to_writer(&mut out, &r);
        }
        Err(e) => {
            out.extend_from_slice(br#""error":{"code":"#);
            evi_abi::payload::int(&mut out, e.code);
            out.extend_from_slice(br#","message":"#);
            let _ = serde_json::to_writer(&mut out, &e.message);
            if let Some(d) = e.data {
                out.extend_from_slice(br#","data":"#);
                let _ = serde_json::to_writer(&mut out, &d);
            }
            out.push(b'}');
        }
    }
    out.extend_from_slice(br#","id":"#);
    let _ = serde_json::to_writer(&mut out, id);
    out.push(b'}');
    out
}

/// A string param: JSON strings, or numbers printed in decimal (OpenSIPS coercion).
pub(crate) fn str_param<'p>(p: &'p Object<'_>, name: &str) -> Result<Cow<'p, str>, MiError> {
    match p.get(name) {
        Some(Json::Str(s)) => Ok(Cow::Borrowed(s)),
        Some(Json::Number(n)) => Ok(Cow::Owned(n.to_string())),
        Some(_) => Err(MiError::invalid_params(&format!(
            "Bad type for parameter '{name}'"
        ))),
        None => Err(MiError::invalid_params("Too few or too many parameters")),
    }
}

/// An int param: numbers (truncated) or decimal strings.
pub(crate) fn int_param(p: &Object<'_>, name: &str) -> Result<i64, MiError> {
    let bad = || MiError::invalid_params(&format!("Bad type for parameter '{name}'"));
    match p.get(name) {
        // Like OpenSIPS (cJSON), a fractional number is truncated; unlike it, one outside the
        // i64 range is refused instead of saturating into "forever".
        Some(Json::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 9.2e18)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| {
                MiError::invalid_params(&format!("Parameter '{name}' is out of range ({n})"))
            }),
        Some(Json::Str(s)) => s.trim().parse().map_err(|_| bad()),
        Some(_) => Err(bad()),
        None => Err(MiError::invalid_params("Too few or too many parameters")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(v: &[&[&str]]) -> Vec<Vec<String>> {
        v.iter()
            .map(|r| r.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    #[test]
    fn calls_are_refused_once_evid_is_stopping() {
        let host = crate::Host::new(16);
        host.set_ready();
        let version = br#"{"jsonrpc":"2.0","method":"version","id":1}"#;
        let reply = |h: &crate::Host| -> Value {
            serde_json::from_slice(&h.mi_execute(version).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"))
        };
        assert!(reply(&host).get("result").is_some(), "{}", reply(&host));
        let shared = host.shared.clone();
        shared
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            reply(&host)["error"],
            json!({"code":-32000,"message":"Server error","data":"evid is starting or stopping"})
        );
        // Let `drop` stop the host as usual.
        shared
            .stopping
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    fn j(text: &'static str) -> Json<'static> {
        json::from_slice(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn a_params_string_is_as_shallow_as_a_request() {
        let host = crate::Host::new(16);
        host.set_ready();
        let call = |params: &str| -> Value {
            let body = json!({"jsonrpc":"2.0","method":"raise_event","params":["E_CORE_THRESHOLD",params],"id":1});
            let reply = host
                .mi_execute(body.to_string().as_bytes())
                .unwrap_or_default();
            serde_json::from_slice(&reply).unwrap_or_else(|e| panic!("{e}"))
        };
        let deep = format!(
            "{}1{}",
            r#"{"a":"#.repeat(MAX_DEPTH + 1),
            "}".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(
            call(&deep)["error"],
            json!({"code":400,"message":"Bad Params"})
        );
        // As deep as allowed, it is parsed: the event has no subscriber.
        let ok = format!("{}1{}", r#"{"a":"#.repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert_eq!(call(&ok)["error"]["code"], json!(480));
    }

    #[test]
    fn nesting_is_measured_outside_strings() {
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(too_deep(nested(MAX_DEPTH).as_bytes()), None);
        assert_eq!(
            too_deep(nested(MAX_DEPTH + 1).as_bytes()),
            Some(MAX_DEPTH + 1)
        );
        // Many brackets, but side by side or inside strings (an escaped quote does not end one).
        let flat = format!("[{}]", vec!["[]"; 100].join(","));
        assert_eq!(too_deep(flat.as_bytes()), None);
        let quoted = format!(r#"["\"{}"]"#, "[{".repeat(100));
        assert_eq!(too_deep(quoted.as_bytes()), None);
    }

    #[test]
    fn binding_follows_opensips_rules() {
        let recipes = r(&[&["event", "socket"], &["event", "socket", "expire"]]);
        assert!(bind(&recipes, Some(j(r#"["E", "udp:1.2.3.4:5"]"#))).is_ok());
        assert_eq!(
            bind(&recipes, Some(j(r#"["E"]"#)))
                .unwrap_err()
                .data
                .as_deref(),
            Some("Too few or too many parameters")
        );
        assert_eq!(
            bind(&recipes, Some(j(r#"{"event":"E","sock":"x"}"#)))
                .unwrap_err()
                .data
                .as_deref(),
            Some("Named parameters do not match")
        );
        let amb = r(&[&["a"], &["b"]]);
        assert_eq!(
            bind(&amb, Some(j(r#"["x"]"#))).unwrap_err().data.as_deref(),
            Some("Ambiguous call, use named parameters instead")
        );
        assert!(bind(&r(&[]), Some(j("[]"))).is_ok());
        assert!(bind(&r(&[]), Some(j(r#"["x"]"#))).is_err());
    }
}
