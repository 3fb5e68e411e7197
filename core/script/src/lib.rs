//! # evi-script: the evid config language
//!
//! A faithful subset of the OpenSIPS 3.x configuration language, parsed once into an AST and
//! then interpreted:
//!
//! * top level: `name = value` globals, `loadmodule "x.so"`, `modparam("mod", "param", value)`,
//!   `include_file "path"` / `import_file "path"` (relative to the including file),
//! * routes: `startup_route`, `timer_route[name, seconds]`, `route` / `route[name]`,
//!   `event_route[E_X]` (also the 2.x `[E_X, sync|async]` form); the SIP-only kinds
//!   (`onreply_route`, `failure_route`, `branch_route`, `error_route`, `local_route`) are parsed
//!   and never run,
//! * statements: calls, `if`/`else`, `while`, `switch`/`case`/`default`/`break`, assignments
//!   (`=`, `:=`, `+=`, ...), `exit`, `return [(n)]`, `drop`, `route(name)`,
//! * expressions: ints, strings, arithmetic, concatenation, comparisons, `=~`/`!~`, `!`, `&&`,
//!   `||`, pseudo-variables (`$var`, `$avp`, `$param`, `$time(fmt)`, `$Ts`, `$pid`, `$rc`,
//!   `$null`) with transformations (`{s.len}`, `{s.int}`, `{s.substr,a,b}`, ...),
//! * builtins: `xlog`, `log`, `raise_event`, `subscribe_event`, `fetch_event_params`.
//!
//! ```
//! use evi_script::{parse_str, builtin_functions};
//! let script = parse_str("evid.cfg", "log_level = 3\nstartup_route { xlog(\"up\\n\"); }\n")
//!     .map_err(|errs| evi_script::render(&errs))
//!     .unwrap();
//! assert!(script.check(&builtin_functions()).is_empty());
//! assert!(script.has_startup_route());
//! ```
//!
//! Errors are [`Diagnostic`]s that print as `FILE:LINE:COL: message` followed by the source
//! line and a caret. Parsing reports every syntax error of a file at once; [`Script::check`]
//! then reports semantic errors (unknown functions, wrong argument counts, unknown routes, ...).
//! The daemon runs routes through an [`Interpreter`], giving it a [`ScriptHost`] that carries
//! out `raise_event`, `subscribe_event` and logging.

mod ast;
mod builtins;
mod check;
mod diag;
mod host;
mod interp;
mod lexer;
mod parser;
mod pvar;
mod value;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use ast::{Builtin, Call, Expr, Func, Route, RouteKind, Visit};

pub use diag::{render, Diagnostic, Pos, Source};
pub use host::{FunctionError, LogLevel, ScriptHost, ScriptParam, ScriptValue};
pub use interp::Interpreter;

/// A literal value of a global parameter or a `modparam`. The words `yes`/`true`/`on` read as
/// `Int(1)` and `no`/`false`/`off` as `Int(0)`, as in OpenSIPS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Literal {
    Int(i64),
    Str(String),
}

/// Top-level statements, in file order, with `include_file` expanded in place.
#[derive(Clone, Debug)]
pub enum Item {
    /// `log_level = 3`, `mpath = "/x/"`; a multi-token value such as `udp:127.0.0.1:5060` is
    /// kept verbatim as a string.
    Global {
        name: String,
        value: Literal,
        pos: Pos,
    },
    /// `loadmodule "event_flatstore.so"`.
    LoadModule { path: String, pos: Pos },
    /// `modparam("module", "param", value)`.
    ModParam {
        module: String,
        param: String,
        value: Literal,
        pos: Pos,
    },
}

/// A parsed config: its top-level items and its routes.
pub struct Script {
    pub items: Vec<Item>,
    pub(crate) routes: Vec<Route>,
    pub(crate) var_names: Vec<String>,
    pub(crate) avp_names: Vec<String>,
    pub(crate) sources: Vec<Arc<Source>>,
    /// Index of the (first) `startup_route`.
    pub(crate) startup: Option<usize>,
    /// `route[name]` → index of its first definition; likewise for events and timers.
    pub(crate) named: HashMap<String, usize>,
    pub(crate) events: HashMap<String, usize>,
    pub(crate) timers: HashMap<String, usize>,
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let routes: Vec<String> = self
            .routes
            .iter()
            .map(|r| match &r.name {
                Some(n) => format!("{}[{n}]", r.kind.keyword()),
                None => r.kind.keyword().to_string(),
            })
            .collect();
        f.debug_struct("Script")
            .field("items", &self.items)
            .field("routes", &routes)
            .finish()
    }
}

/// A function a script may call, with how many arguments it takes (empty arguments count).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionSpec {
    /// Built-in names are static; a module's come from its declaration.
    pub name: std::borrow::Cow<'static, str>,
    pub min_args: usize,
    pub max_args: usize,
}

/// The functions the interpreter implements itself.
pub fn builtin_functions() -> Vec<FunctionSpec> {
    let f = |name: &'static str, min_args, max_args| FunctionSpec {
        name: name.into(),
        min_args,
        max_args,
    };
    vec![
        f("xlog", 1, 2),
        f("log", 1, 2),
        f("raise_event", 1, 3),
        f("subscribe_event", 2, 3),
        f("fetch_event_params", 1, 1),
    ]
}

/// Reads and parses a config file. Returns every syntax error of the file (and of the files it
/// includes), not just the first.
pub fn parse_file(path: &Path) -> Result<Script, Vec<Diagnostic>> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic::at(
            &Pos::nowhere(&name),
            format!("cannot read the config file: {e}"),
        )]
    })?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let lexed = lexer::lex(
        Source::new(name, text),
        dir.map(Path::to_path_buf),
        Some(path),
    );
    parser::parse(&lexed)
}

/// Parses config text. `name` is used in diagnostics; `include_file` paths are resolved relative
/// to its directory (or the current directory when it has none).
/// Like [`parse_file`], but also returns what could be parsed despite errors (`None` only when
/// the file cannot be read), so that the semantic checks can run on it in the same pass.
pub fn parse_file_partial(path: &Path) -> (Option<Script>, Vec<Diagnostic>) {
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            let d = Diagnostic::at(
                &Pos::nowhere(&name),
                format!("cannot read the config file: {e}"),
            );
            return (None, vec![d]);
        }
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let lexed = lexer::lex(
        Source::new(name, text),
        dir.map(Path::to_path_buf),
        Some(path),
    );
    let (script, diags) = parser::parse_partial(&lexed);
    (Some(script), diags)
}

pub fn parse_str(name: &str, text: &str) -> Result<Script, Vec<Diagnostic>> {
    let dir = Path::new(name)
        .parent()
        .filter(|d| !d.as_os_str().is_empty());
    let lexed = lexer::lex(Source::new(name, text), dir.map(Path::to_path_buf), None);
    parser::parse(&lexed)
}

impl Script {
    pub fn has_startup_route(&self) -> bool {
        self.startup.is_some()
    }

    /// Names of the `event_route[...]` blocks, in file order, with where each name is written.
    pub fn event_routes(&self) -> Vec<(String, Pos)> {
        self.routes_of(RouteKind::Event)
            .filter_map(|r| Some((r.name.clone()?, r.name_pos.clone())))
            .collect()
    }

    /// Event names written as literal strings in the first argument of `raise_event` or
    /// `subscribe_event`, each once (first occurrence), in file order. OpenSIPS publishes these
    /// at startup, so a subscriber can attach before the first raise.
    pub fn literal_events(&self) -> Vec<(String, Pos)> {
        struct Collect {
            seen: HashSet<String>,
            out: Vec<(String, Pos)>,
        }
        impl Visit for Collect {
            fn call(&mut self, c: &Call) {
                let is_event_fn = matches!(
                    c.func,
                    Func::Builtin(Builtin::RaiseEvent | Builtin::SubscribeEvent)
                );
                let first = c.args.first();
                if let (true, Some(Expr::Const(value::Value::Str(s)))) =
                    (is_event_fn, first.and_then(|a| a.expr()))
                {
                    if self.seen.insert(s.to_string()) {
                        let pos = first.map_or_else(|| c.pos.clone(), |a| a.pos.clone());
                        self.out.push((s.to_string(), pos));
                    }
                }
            }
        }
        let mut v = Collect {
            seen: HashSet::new(),
            out: Vec::new(),
        };
        for r in &self.routes {
            ast::walk_block(&r.body, &mut v, false);
        }
        v.out
    }

    /// `timer_route[name, seconds]` blocks with a valid interval, in file order.
    pub fn timer_routes(&self) -> Vec<(String, u32)> {
        self.routes_of(RouteKind::Timer)
            .filter_map(|r| {
                let secs = r.interval.as_ref()?.0.as_ref().ok()?;
                let secs = u32::try_from(*secs).ok().filter(|s| *s > 0)?;
                Some((r.name.clone()?, secs))
            })
            .collect()
    }

    /// Whether `event_route[name]` exists.
    pub fn has_event_route(&self, name: &str) -> bool {
        self.events.contains_key(name)
    }

    /// Whether `event_route[name]` is declared in the 2.x `[name, sync]` form: the transport
    /// then runs it inline, in delivery order, instead of handing it to a script worker.
    /// False for `[name, async]`, the plain 3.x form and unknown names.
    pub fn event_route_is_sync(&self, name: &str) -> bool {
        self.events
            .get(name)
            .and_then(|&i| self.routes.get(i))
            .is_some_and(|r| r.sync)
    }

    /// The value of the last `name = value` global, if set.
    pub fn global(&self, name: &str) -> Option<&Literal> {
        self.items.iter().rev().find_map(|i| match i {
            Item::Global { name: n, value, .. } if n == name => Some(value),
            _ => None,
        })
    }

    fn routes_of(&self, kind: RouteKind) -> impl Iterator<Item = &Route> {
        self.routes.iter().filter(move |r| r.kind == kind)
    }
}
