//! Semantic checks run after a successful parse: what OpenSIPS's fix-ups reject at startup.

use std::collections::HashMap;
use std::sync::Arc;

use crate::ast::{
    walk_block, ArgKind, Builtin, Call, Expr, Func, PVar, PvKind, RouteKind, Stmt, Visit,
};
use crate::diag::{Diagnostic, Pos};
use crate::host::LogLevel;
use crate::value::Value;
use crate::{FunctionSpec, Script};

impl Script {
    /// Semantic errors: unknown functions (names not in `functions`), wrong argument counts,
    /// `route(x)` to an undefined route, duplicate routes, `raise_event` arguments that are not
    /// AVPs, bad log levels, unknown pseudo-variables, `break` outside a loop or switch, and
    /// `timer_route` intervals that are not a positive number of seconds. Sorted by position.
    pub fn check(&self, functions: &[FunctionSpec]) -> Vec<Diagnostic> {
        let mut c = Checker {
            functions: functions.iter().map(|f| (f.name.as_ref(), f)).collect(),
            diags: Vec::new(),
        };
        let mut first: HashMap<(&str, &str), &Pos> = HashMap::new();
        for r in &self.routes {
            let kw = r.kind.keyword();
            let name = r.name.as_deref().unwrap_or("");
            if let Some(prev) = first.get(&(kw, name)) {
                let what = match &r.name {
                    Some(n) => format!("{kw}[{n}]"),
                    None => kw.to_string(),
                };
                c.error(
                    &r.name_pos,
                    format!("duplicate {what}: first defined at {prev}"),
                );
            } else {
                first.insert((kw, name), &r.name_pos);
            }
            if r.kind == RouteKind::Timer {
                if let Some((value, pos)) = &r.interval {
                    let found = match value {
                        Ok(n) if *n > 0 && u32::try_from(*n).is_ok() => None,
                        Ok(n) => Some(n.to_string()),
                        Err(text) => Some(text.clone()),
                    };
                    if let Some(found) = found {
                        let msg = format!(
                            "the timer_route interval must be a positive number of seconds, found {found}"
                        );
                        c.error(pos, msg);
                    }
                }
            }
            walk_block(&r.body, &mut c, false);
        }
        let order = |p: &Pos| {
            let src = self.sources.iter().position(|s| Arc::ptr_eq(s, &p.source));
            (src, p.line, p.col)
        };
        c.diags.sort_by_key(|d| order(&d.pos));
        c.diags
    }
}

struct Checker<'f> {
    functions: HashMap<&'f str, &'f FunctionSpec>,
    diags: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, pos: &Pos, msg: impl Into<String>) {
        self.diags.push(Diagnostic::at(pos, msg));
    }

    fn check_builtin(&mut self, b: Builtin, c: &Call) {
        let name = &c.name;
        for (i, a) in c.args.iter().enumerate() {
            // raise_event's attribute-names slot is the one place an empty argument means something.
            let may_be_empty = b == Builtin::RaiseEvent && i == 1;
            if matches!(a.kind, ArgKind::Empty) && !may_be_empty {
                self.error(&a.pos, format!("{name}: argument {} is empty", i + 1));
            }
        }
        match b {
            Builtin::RaiseEvent => {
                for (i, a) in c.args.iter().enumerate().skip(1) {
                    let ok = match &a.kind {
                        ArgKind::Empty => true,
                        ArgKind::Expr(Expr::Var(p)) => p.is_avp() && p.index.is_none(),
                        _ => false,
                    };
                    if !ok {
                        let role = if i == 1 { "attribute names" } else { "values" };
                        let msg = format!(
                            "raise_event: argument {} ({role}) must be an AVP such as $avp(name), found {}",
                            i + 1,
                            describe(a.expr())
                        );
                        self.error(&a.pos, msg);
                    }
                }
            }
            Builtin::SubscribeEvent => {
                if let Some(Expr::Const(v)) = c.args.get(2).and_then(|a| a.expr()) {
                    if !matches!(v.as_int(), Some(n) if n >= 0) {
                        let pos = &c.args[2].pos;
                        let msg = "subscribe_event: the expire must be a number of seconds (0 = permanent)";
                        self.error(pos, msg);
                    }
                }
            }
            // An empty level was reported above as an empty argument.
            Builtin::Xlog | Builtin::Log
                if c.args.len() == 2 && !matches!(c.args[0].kind, ArgKind::Empty) =>
            {
                let a = &c.args[0];
                let ok = match a.expr() {
                    Some(Expr::Const(Value::Str(s))) => LogLevel::from_script_name(s).is_some(),
                    Some(Expr::Const(Value::Int(n))) => {
                        b == Builtin::Log && LogLevel::from_number(*n).is_some()
                    }
                    _ => false,
                };
                if !ok {
                    let found = match a.expr() {
                        Some(Expr::Const(Value::Str(s))) => format!("{s:?}"),
                        other => describe(other),
                    };
                    let msg = format!(
                        "{name}: unknown log level {found} (use L_ERR, L_WARN, L_NOTICE, L_INFO or L_DBG)"
                    );
                    self.error(&a.pos, msg);
                }
            }
            Builtin::FetchEventParams => {
                if let Some(a) = c.args.first() {
                    if !matches!(a.kind, ArgKind::Fetch(_)) {
                        let msg = "fetch_event_params: the spec must be a literal string such as \"ip=$avp(ip);$var(n)\"";
                        self.error(&a.pos, msg);
                    }
                }
            }
            Builtin::Xlog | Builtin::Log => {}
        }
    }
}

impl Visit for Checker<'_> {
    fn call(&mut self, c: &Call) {
        if let Func::Route {
            name,
            name_pos,
            target,
        } = &c.func
        {
            if target.is_none() {
                self.error(name_pos, format!("route '{name}' is not defined"));
            }
            return;
        }
        let Some(spec) = self.functions.get(c.name.as_str()).map(|f| (*f).clone()) else {
            self.error(&c.pos, format!("unknown function '{}'", c.name));
            return;
        };
        let n = c.args.len();
        if n < spec.min_args || n > spec.max_args {
            let takes = match (spec.min_args, spec.max_args) {
                (a, b) if a == b => format!("{a} argument{}", if a == 1 { "" } else { "s" }),
                (a, b) => format!("{a} to {b} arguments"),
            };
            self.error(&c.pos, format!("{}() takes {takes}, {n} given", c.name));
            return;
        }
        if let Func::Builtin(b) = c.func {
            self.check_builtin(b, c);
        }
    }

    fn pvar(&mut self, p: &PVar) {
        if let PvKind::Unknown(name) = &p.kind {
            self.error(&p.pos, format!("unknown pseudo-variable ${name}"));
        }
    }

    fn stmt(&mut self, s: &Stmt, breakable: bool) {
        if let (Stmt::Break(pos), false) = (s, breakable) {
            self.error(pos, "'break' outside of a while or switch");
        }
    }
}

/// How an argument reads in a message.
fn describe(e: Option<&Expr>) -> String {
    match e {
        None => "nothing".into(),
        Some(Expr::Const(Value::Str(s))) => format!("string {s:?}"),
        Some(Expr::Const(Value::Int(n))) => format!("number {n}"),
        Some(Expr::Const(Value::Null)) => "NULL".into(),
        Some(Expr::Format(_)) => "a formatted string".into(),
        Some(Expr::Var(p)) => p.text.clone(),
        Some(_) => "an expression".into(),
    }
}
