//! The tree-walking interpreter: control flow, variables and expressions. The builtin functions
//! are in `builtins.rs`.

use std::sync::{Arc, Mutex};

use crate::ast::{
    AssignOp, BinOp, Block, Call, CmpOp, Expr, FmtPart, Func, MatchRe, PVar, ParamKey, PvIndex,
    PvKind, Stmt,
};
use crate::diag::{Diagnostic, Pos};
use crate::host::{ScriptHost, ScriptParam};
use crate::parser::compile_regex;
use crate::value::{self, arith, compare, transform, Value};
use crate::{Literal, Script};

/// OpenSIPS's default for the `max_while_loops` global.
const DEFAULT_MAX_WHILE_LOOPS: u64 = 10_000;
/// OpenSIPS's ROUTE_MAX_REC_LEV.
const MAX_ROUTE_DEPTH: u32 = 100;
/// Blocks open at once across all active routes. One route nests at most
/// `parser::MAX_NESTING` blocks, but route() recursion multiplies that; this bound keeps the
/// interpreter's recursion well inside a 2 MiB thread stack (even in debug builds).
const MAX_OPEN_BLOCKS: u32 = 512;
/// Default runaway guard: far above any sane route (the 1M-raise benchmark loop takes 3M steps),
/// low enough to stop a runaway within a couple of seconds.
const DEFAULT_MAX_STEPS: u64 = 100_000_000;

/// Runs the routes of one [`Script`] against a [`ScriptHost`].
///
/// `$var` values persist from one run to the next, like OpenSIPS script variables persist in a
/// worker process; `$avp` values live for one run (one "message"). Runs may happen concurrently
/// from several threads: each concurrent run gets its own set of `$var`s, as each OpenSIPS
/// worker process has its own.
pub struct Interpreter<'a> {
    pub(crate) script: &'a Script,
    pub(crate) host: &'a dyn ScriptHost,
    max_steps: u64,
    max_while_loops: u64,
    var_sets: Mutex<Vec<Vec<Value>>>,
}

/// What a statement asks its enclosing blocks to do.
pub(crate) enum Flow {
    Next,
    Break,
    Return(i64),
    Exit,
}

/// The state of one run.
pub(crate) struct Ctx<'p> {
    pub vars: Vec<Value>,
    /// Per AVP slot, oldest value first (the newest is `last()`).
    pub avps: Vec<Vec<Value>>,
    /// The parameters of the event that started an event_route.
    pub params: Vec<(Option<&'p str>, Value)>,
    pub event_route: bool,
    pub steps: u64,
    /// `$rc`: return code of the last function or route.
    pub rc: i64,
    /// Set when something deep inside an expression ends the script (a function returning 0).
    pub exit: bool,
    /// route() calls in progress (see `MAX_ROUTE_DEPTH`).
    pub depth: u32,
    /// Blocks currently being executed (see `MAX_OPEN_BLOCKS`).
    pub open_blocks: u32,
    /// Reused parameter buffers for `raise_event`, so a raise in a loop does not allocate.
    pub scratch: Vec<ScriptParam>,
    /// Bumped on every AVP write: what `scratch` was built from is still current while the
    /// epoch is unchanged.
    pub avp_epoch: u64,
    /// (call site, AVP epoch, parameter count) of what `scratch` holds.
    pub scratch_key: Option<(usize, u64, usize)>,
}

/// A run-time error at `pos`.
pub(crate) fn at(pos: &Pos, msg: impl Into<String>) -> Box<Diagnostic> {
    Box::new(Diagnostic::at(pos, msg))
}

/// Boxed so the `Result`s threaded through every evaluation stay two words wide.
pub(crate) type RResult<T> = Result<T, Box<Diagnostic>>;

impl<'a> Interpreter<'a> {
    pub fn new(script: &'a Script, host: &'a dyn ScriptHost) -> Self {
        let max_while_loops = match script.global("max_while_loops") {
            Some(Literal::Int(n)) if *n > 0 => *n as u64,
            _ => DEFAULT_MAX_WHILE_LOOPS,
        };
        Interpreter {
            script,
            host,
            max_steps: DEFAULT_MAX_STEPS,
            max_while_loops,
            var_sets: Mutex::new(Vec::new()),
        }
    }

    /// Caps the work of one run (statements, calls and loop iterations counted together).
    pub fn set_max_steps(&mut self, n: u64) {
        self.max_steps = n;
    }

    /// Overrides the `max_while_loops` global: how many times one `while` may iterate.
    pub fn set_max_while_loops(&mut self, n: u64) {
        self.max_while_loops = n;
    }

    /// Runs `startup_route`, if the script has one.
    pub fn run_startup(&self) -> Result<(), Diagnostic> {
        match self.script.startup {
            Some(i) => self.run(i, &[], false).map_err(|e| *e),
            None => Ok(()),
        }
    }

    /// Runs `timer_route[name, ...]`.
    pub fn run_timer(&self, name: &str) -> Result<(), Diagnostic> {
        match self.script.timers.get(name) {
            Some(&i) => self.run(i, &[], false).map_err(|e| *e),
            None => Err(self.nowhere(format!("no timer_route named '{name}'"))),
        }
    }

    /// Runs `event_route[event]` with the raised event's parameters (read by `$param`).
    pub fn run_event_route(&self, event: &str, params: &[ScriptParam]) -> Result<(), Diagnostic> {
        match self.script.events.get(event) {
            Some(&i) => self.run(i, params, true).map_err(|e| *e),
            None => Err(self.nowhere(format!("no event_route[{event}]"))),
        }
    }

    /// Runs `route[name]` as if called by `route(name)`.
    pub fn run_route(&self, name: &str) -> Result<(), Diagnostic> {
        match self.script.named.get(name) {
            Some(&i) => self.run(i, &[], false).map_err(|e| *e),
            None => Err(self.nowhere(format!("no route[{name}]"))),
        }
    }

    fn nowhere(&self, msg: String) -> Diagnostic {
        let source = match self.script.sources.first() {
            Some(s) => s.clone(),
            None => crate::Source::new("<config>", ""),
        };
        Diagnostic {
            pos: Pos {
                source,
                line: 0,
                col: 0,
            },
            message: msg,
        }
    }

    fn run(&self, route: usize, params: &[ScriptParam], event_route: bool) -> RResult<()> {
        let n_vars = self.script.var_names.len();
        let vars = self.lock_vars().pop().unwrap_or_default();
        let mut ctx = Ctx {
            vars,
            avps: vec![Vec::new(); self.script.avp_names.len()],
            params: params
                .iter()
                .map(|p| (p.name.as_deref(), Value::from_script(&p.value)))
                .collect(),
            event_route,
            steps: 0,
            rc: 1,
            exit: false,
            depth: 0,
            open_blocks: 0,
            scratch: Vec::new(),
            avp_epoch: 0,
            scratch_key: None,
        };
        // An unset $var reads as 0 in OpenSIPS, not as $null.
        ctx.vars.resize(n_vars, Value::Int(0));
        let r = self.exec_route(route, &mut ctx);
        self.lock_vars().push(ctx.vars);
        r.map(|_| ())
    }

    fn lock_vars(&self) -> std::sync::MutexGuard<'_, Vec<Vec<Value>>> {
        // A panic elsewhere cannot leave the pool inconsistent: it only holds finished sets.
        self.var_sets.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn exec_route(&self, route: usize, ctx: &mut Ctx<'_>) -> RResult<Flow> {
        let Some(r) = self.script.routes.get(route) else {
            return Ok(Flow::Next);
        };
        if ctx.depth >= MAX_ROUTE_DEPTH {
            let msg = format!("too many nested route() calls (more than {MAX_ROUTE_DEPTH})");
            return Err(at(&r.name_pos, msg));
        }
        if ctx.open_blocks + crate::parser::MAX_NESTING as u32 > MAX_OPEN_BLOCKS {
            let msg = format!(
                "route() calls nested too deeply inside blocks (more than {MAX_OPEN_BLOCKS} open blocks)"
            );
            return Err(at(&r.name_pos, msg));
        }
        ctx.depth += 1;
        let f = self.block(&r.body, ctx);
        ctx.depth -= 1;
        f
    }

    #[inline]
    pub(crate) fn step(&self, ctx: &mut Ctx<'_>, pos: &Pos) -> RResult<()> {
        ctx.steps += 1;
        if ctx.steps > self.max_steps {
            let msg = format!(
                "route stopped after {} steps (runaway script guard)",
                self.max_steps
            );
            return Err(at(pos, msg));
        }
        Ok(())
    }

    fn block(&self, b: &Block, ctx: &mut Ctx<'_>) -> RResult<Flow> {
        ctx.open_blocks += 1;
        let f = self.block_inner(b, ctx);
        ctx.open_blocks -= 1;
        f
    }

    fn block_inner(&self, b: &Block, ctx: &mut Ctx<'_>) -> RResult<Flow> {
        for s in b {
            let f = self.stmt(s, ctx)?;
            if ctx.exit {
                return Ok(Flow::Exit);
            }
            if !matches!(f, Flow::Next) {
                return Ok(f);
            }
        }
        Ok(Flow::Next)
    }

    fn stmt(&self, s: &Stmt, ctx: &mut Ctx<'_>) -> RResult<Flow> {
        match s {
            Stmt::Call(c) => {
                let rc = self.call(c, ctx)?;
                ctx.rc = rc;
                // A function (or route) returning 0 stops the script, as in OpenSIPS.
                Ok(if rc == 0 { Flow::Exit } else { Flow::Next })
            }
            Stmt::If { cond, then, els } => {
                let c = self.cond(cond, ctx)?;
                if ctx.exit {
                    return Ok(Flow::Exit);
                }
                self.block(if c { then } else { els }, ctx)
            }
            Stmt::While { cond, body, pos } => self.while_loop(cond, body, pos, ctx),
            Stmt::Switch {
                subject,
                cases,
                pos,
            } => {
                self.step(ctx, pos)?;
                let v = self.eval(subject, ctx)?;
                let matched = cases
                    .iter()
                    .position(|c| c.label.as_ref().is_some_and(|l| case_matches(l, &v)))
                    .or_else(|| cases.iter().position(|c| c.label.is_none()));
                let Some(start) = matched else {
                    return Ok(Flow::Next);
                };
                for c in &cases[start..] {
                    match self.block(&c.body, ctx)? {
                        Flow::Next => {}
                        Flow::Break => break,
                        other => return Ok(other),
                    }
                }
                Ok(Flow::Next)
            }
            Stmt::Assign {
                target,
                op,
                value,
                pos,
            } => {
                self.step(ctx, pos)?;
                let v = self.eval(value, ctx)?;
                if let (PvKind::Var(slot), AssignOp::Set) = (&target.kind, op) {
                    ctx.vars[*slot as usize] = v;
                    return Ok(Flow::Next);
                }
                self.assign(target, *op, v, ctx).map_err(|m| at(pos, m))?;
                Ok(Flow::Next)
            }
            Stmt::Block(b) => self.block(b, ctx),
            Stmt::Exit | Stmt::Drop => Ok(Flow::Exit),
            Stmt::Return(v, pos) => {
                let rc = match v {
                    None => 1,
                    Some(e) => match self.eval(e, ctx)? {
                        Value::Int(n) => n,
                        Value::Null => -1,
                        other => other
                            .as_int()
                            .ok_or_else(|| at(pos, "return needs a number"))?,
                    },
                };
                Ok(Flow::Return(rc))
            }
            Stmt::Break(_) => Ok(Flow::Break),
        }
    }

    fn while_loop(&self, cond: &Expr, body: &Block, pos: &Pos, ctx: &mut Ctx<'_>) -> RResult<Flow> {
        let mut n = 0u64;
        loop {
            let c = self.cond(cond, ctx)?;
            if ctx.exit {
                return Ok(Flow::Exit);
            }
            if !c {
                return Ok(Flow::Next);
            }
            if n >= self.max_while_loops {
                let msg = format!(
                    "runaway while loop: more than {} iterations (raise max_while_loops)",
                    self.max_while_loops
                );
                return Err(at(pos, msg));
            }
            n += 1;
            self.step(ctx, pos)?;
            match self.block(body, ctx)? {
                Flow::Next => {}
                Flow::Break => return Ok(Flow::Next),
                other => return Ok(other),
            }
        }
    }

    /// `$var`/`$avp` assignment with OpenSIPS semantics: `=` adds a value on top of an AVP,
    /// `:=` replaces all its values, assigning `$null` deletes (the newest value, the indexed
    /// one, or with `:=`/`[*]` all of them).
    pub(crate) fn assign(
        &self,
        target: &PVar,
        op: AssignOp,
        v: Value,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), String> {
        match target.kind {
            PvKind::Var(slot) => {
                let cur = &mut ctx.vars[slot as usize];
                *cur = match op {
                    AssignOp::Set | AssignOp::Replace => v,
                    AssignOp::Op(o) => arith(o, cur, &v)?,
                };
                Ok(())
            }
            PvKind::Avp(slot) => {
                ctx.avp_epoch += 1;
                let list = &mut ctx.avps[slot as usize];
                let all = op == AssignOp::Replace || target.index == Some(PvIndex::All);
                let at = match target.index {
                    Some(PvIndex::At(i)) => Some(
                        avp_position(list.len(), i)
                            .ok_or_else(|| format!("{} has no value at index {i}", target.text))?,
                    ),
                    _ => None,
                };
                if v == Value::Null && !matches!(op, AssignOp::Op(_)) {
                    match (all, at) {
                        (true, _) => list.clear(),
                        (false, Some(p)) => {
                            list.remove(p);
                        }
                        (false, None) => {
                            list.pop();
                        }
                    }
                    return Ok(());
                }
                match (op, at) {
                    (AssignOp::Op(o), _) => {
                        let p = at.or(list.len().checked_sub(1));
                        match p {
                            Some(p) => list[p] = arith(o, &list[p], &v)?,
                            None => list.push(arith(o, &Value::Null, &v)?),
                        }
                    }
                    (_, _) if all => {
                        list.clear();
                        list.push(v);
                    }
                    (_, Some(p)) => list[p] = v,
                    (_, None) => list.push(v),
                }
                Ok(())
            }
            _ => Err(format!("cannot assign to {}", target.text)),
        }
    }

    // ----- expressions ---------------------------------------------------------------------

    /// Truth of a condition. Calls count as true when they return a positive code (OpenSIPS).
    pub(crate) fn cond(&self, e: &Expr, ctx: &mut Ctx<'_>) -> RResult<bool> {
        Ok(match e {
            Expr::And(a, b) => self.cond(a, ctx)? && !ctx.exit && self.cond(b, ctx)?,
            Expr::Or(a, b) => (self.cond(a, ctx)? || ctx.exit) || self.cond(b, ctx)?,
            Expr::Not(x) => !self.cond(x, ctx)?,
            Expr::Cmp(op, a, b) => {
                if let (Some(x), Some(y)) = (int_operand(a, ctx), int_operand(b, ctx)) {
                    return Ok(compare_ints(*op, x, y));
                }
                let (x, y) = (self.eval(a, ctx)?, self.eval(b, ctx)?);
                compare(*op, &x, &y)
            }
            Expr::Match {
                subject,
                re,
                negate,
                pos,
            } => {
                let subject = self.eval(subject, ctx)?;
                if subject == Value::Null {
                    return Ok(false);
                }
                let mut text = String::new();
                subject.concat_into(&mut text);
                let hit = match re {
                    MatchRe::Static(r) => r.is_match(text.as_bytes()),
                    MatchRe::Dynamic(p) => {
                        let mut pat = String::new();
                        self.eval(p, ctx)?.concat_into(&mut pat);
                        let r = compile_regex(&pat).map_err(|m| {
                            at(pos, format!("invalid regular expression {pat:?}: {m}"))
                        })?;
                        r.is_match(text.as_bytes())
                    }
                };
                hit != *negate
            }
            Expr::Call(c) => self.call_value(c, ctx)? > 0,
            other => self.eval(other, ctx)?.truthy(),
        })
    }

    pub(crate) fn eval(&self, e: &Expr, ctx: &mut Ctx<'_>) -> RResult<Value> {
        Ok(match e {
            Expr::Const(v) => v.clone(),
            Expr::Var(p) => self.pvar(p, ctx)?,
            Expr::Format(parts) => Value::Str(Arc::from(self.format(parts, ctx)?)),
            Expr::Arith(op, a, b, pos) => {
                if let (Some(x), Some(y), BinOp::Add | BinOp::Sub) =
                    (int_operand(a, ctx), int_operand(b, ctx), op)
                {
                    return Ok(Value::Int(if *op == BinOp::Add {
                        x.wrapping_add(y)
                    } else {
                        x.wrapping_sub(y)
                    }));
                }
                let (x, y) = (self.eval(a, ctx)?, self.eval(b, ctx)?);
                arith(*op, &x, &y).map_err(|m| at(pos, m))?
            }
            Expr::Neg(x, pos) => {
                let v = self.eval(x, ctx)?;
                arith(BinOp::Sub, &Value::Int(0), &v).map_err(|m| at(pos, m))?
            }
            Expr::BitNot(x, pos) => match self.eval(x, ctx)? {
                Value::Str(s) if value::parse_int(&s).is_none() => {
                    return Err(at(
                        pos,
                        format!("operator '~' needs a number, found string {s:?}"),
                    ))
                }
                v => Value::Int(!v.as_int().unwrap_or(0)),
            },
            Expr::Call(c) => Value::Int(self.call_value(c, ctx)?),
            Expr::Not(_) | Expr::And(..) | Expr::Or(..) | Expr::Cmp(..) | Expr::Match { .. } => {
                Value::Int(i64::from(self.cond(e, ctx)?))
            }
        })
    }

    /// A call used as a value: its return code, which also becomes `$rc`.
    fn call_value(&self, c: &Call, ctx: &mut Ctx<'_>) -> RResult<i64> {
        let rc = self.call(c, ctx)?;
        ctx.rc = rc;
        if rc == 0 {
            ctx.exit = true;
        }
        Ok(rc)
    }

    /// Expands an xlog-style format; `$null` prints as `<null>` like OpenSIPS's pv_printf.
    pub(crate) fn format(&self, parts: &[FmtPart], ctx: &mut Ctx<'_>) -> RResult<String> {
        let mut s = String::new();
        for p in parts {
            match p {
                FmtPart::Lit(l) => s.push_str(l),
                FmtPart::Var(v) => self.pvar(v, ctx)?.print_into(&mut s),
            }
        }
        Ok(s)
    }

    pub(crate) fn pvar(&self, p: &PVar, ctx: &mut Ctx<'_>) -> RResult<Value> {
        let v = match &p.kind {
            PvKind::Var(slot) => ctx.vars[*slot as usize].clone(),
            PvKind::Avp(slot) => {
                let list = &ctx.avps[*slot as usize];
                match p.index {
                    None | Some(PvIndex::All) => list.last().cloned().unwrap_or(Value::Null),
                    Some(PvIndex::At(i)) => {
                        avp_position(list.len(), i).map_or(Value::Null, |k| list[k].clone())
                    }
                }
            }
            PvKind::Param(key) => self.param(key, p, ctx)?,
            PvKind::Time(fmt) => match value::strftime_local(fmt, value::unix_now()) {
                Ok(s) => Value::Str(Arc::from(s)),
                Err(m) => return Err(at(&p.pos, format!("{}: {m}", p.text))),
            },
            PvKind::Ts => Value::Int(value::unix_now()),
            PvKind::Pid => Value::Int(i64::from(std::process::id())),
            PvKind::Null => Value::Null,
            PvKind::Rc => Value::Int(ctx.rc),
            PvKind::Unknown(name) => {
                let msg = format!("pseudo-variable ${name} is not available in evid");
                return Err(at(&p.pos, msg));
            }
        };
        Ok(p.trans.iter().fold(v, |v, t| transform(t, v)))
    }

    /// `$param(name)` / `$param(N)`: missing → `$null` and a warning, as in OpenSIPS.
    fn param(&self, key: &ParamKey, p: &PVar, ctx: &mut Ctx<'_>) -> RResult<Value> {
        let found = match key {
            ParamKey::Name(n) => ctx.params.iter().find(|(k, _)| *k == Some(n.as_str())),
            ParamKey::Position(i) => ctx.params.get(i - 1),
            ParamKey::Dynamic(inner) => match self.pvar(inner, ctx)? {
                Value::Int(i) if i >= 1 => ctx.params.get(i as usize - 1),
                Value::Str(s) => ctx.params.iter().find(|(k, _)| *k == Some(&*s)),
                _ => None,
            },
        };
        match found {
            Some((_, v)) => Ok(v.clone()),
            None => {
                let why = if ctx.event_route {
                    "the event has no such parameter"
                } else {
                    "not in an event_route"
                };
                let msg = format!("{}: {}: {why}\n", p.pos, p.text);
                self.host.log(crate::LogLevel::Warn, &msg);
                Ok(Value::Null)
            }
        }
    }

    pub(crate) fn call(&self, c: &Call, ctx: &mut Ctx<'_>) -> RResult<i64> {
        self.step(ctx, &c.pos)?;
        match &c.func {
            Func::Route {
                name,
                name_pos,
                target,
            } => {
                let Some(t) = target else {
                    return Err(at(name_pos, format!("route '{name}' is not defined")));
                };
                Ok(match self.exec_route(*t, ctx)? {
                    Flow::Exit => {
                        ctx.exit = true;
                        1
                    }
                    Flow::Return(n) => n,
                    Flow::Next | Flow::Break => 1,
                })
            }
            Func::Builtin(b) => self.builtin(*b, c, ctx),
            Func::Other => self.host_function(c, ctx),
        }
    }
}

/// The value of a constant or plain `$var` operand when it is an int: lets loop counters and
/// comparisons skip building values.
#[inline]
fn int_operand(e: &Expr, ctx: &Ctx<'_>) -> Option<i64> {
    match e {
        Expr::Const(Value::Int(n)) => Some(*n),
        Expr::Var(p) => match (&p.kind, p.trans.is_empty()) {
            (PvKind::Var(slot), true) => match ctx.vars[*slot as usize] {
                Value::Int(n) => Some(n),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

fn compare_ints(op: CmpOp, x: i64, y: i64) -> bool {
    match op {
        CmpOp::Eq => x == y,
        CmpOp::Ne => x != y,
        CmpOp::Lt => x < y,
        CmpOp::Gt => x > y,
        CmpOp::Le => x <= y,
        CmpOp::Ge => x >= y,
    }
}

/// Vector position of AVP index `i` (0 = newest, -1 = oldest) in a list of `len` values.
fn avp_position(len: usize, i: i64) -> Option<usize> {
    let k = if i >= 0 {
        len.checked_sub(1)?.checked_sub(usize::try_from(i).ok()?)?
    } else {
        usize::try_from(-(i + 1)).ok()?
    };
    (k < len).then_some(k)
}

/// `case` labels: an int label needs an int value; a string label matches the text of the
/// value case-insensitively (ints have a text form too), as OpenSIPS's switch does.
fn case_matches(label: &Value, v: &Value) -> bool {
    match (label, v) {
        (Value::Int(a), Value::Int(b)) => a == b,
        (Value::Str(l), Value::Int(_) | Value::Str(_)) => {
            let mut text = String::new();
            v.concat_into(&mut text);
            l.eq_ignore_ascii_case(&text)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::avp_position;

    #[test]
    fn avp_indexes() {
        assert_eq!(avp_position(3, 0), Some(2));
        assert_eq!(avp_position(3, 2), Some(0));
        assert_eq!(avp_position(3, 3), None);
        assert_eq!(avp_position(3, -1), Some(0));
        assert_eq!(avp_position(3, -3), Some(2));
        assert_eq!(avp_position(3, -4), None);
        assert_eq!(avp_position(0, 0), None);
        assert_eq!(avp_position(3, i64::MIN), None);
    }
}
