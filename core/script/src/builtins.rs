//! The functions the interpreter implements: xlog, log, raise_event, subscribe_event,
//! fetch_event_params; and the hand-off of any other function to the host.

use std::borrow::Cow;

use crate::ast::{Arg, ArgKind, AssignOp, Builtin, Call, Expr};
use crate::host::{FunctionError, LogLevel, ScriptParam, ScriptValue};
use crate::interp::{at, Ctx, Interpreter, RResult};
use crate::value::Value;

impl Interpreter<'_> {
    pub(crate) fn builtin(&self, b: Builtin, c: &Call, ctx: &mut Ctx<'_>) -> RResult<i64> {
        match b {
            Builtin::Xlog => self.log_call(c, ctx, LogLevel::Error),
            // OpenSIPS's core log() defaults to L_DBG and prints its text as is.
            Builtin::Log => self.log_call(c, ctx, LogLevel::Debug),
            Builtin::RaiseEvent => self.raise_event(c, ctx),
            Builtin::SubscribeEvent => self.subscribe_event(c, ctx),
            Builtin::FetchEventParams => self.fetch_event_params(c, ctx),
        }
    }

    /// The expression of argument `i`, which must be present and not empty.
    fn arg<'c>(&self, c: &'c Call, i: usize) -> RResult<&'c Expr> {
        match c.args.get(i) {
            Some(Arg {
                kind: ArgKind::Expr(e),
                ..
            }) => Ok(e),
            Some(a) => Err(at(
                &a.pos,
                format!("{}: argument {} is empty", c.name, i + 1),
            )),
            None => Err(at(
                &c.pos,
                format!("{}: argument {} is missing", c.name, i + 1),
            )),
        }
    }

    /// The text of an argument; literals are borrowed, not copied.
    fn text<'e>(&self, e: &'e Expr, ctx: &mut Ctx<'_>) -> RResult<Cow<'e, str>> {
        Ok(match e {
            Expr::Const(Value::Str(s)) => Cow::Borrowed(&**s),
            Expr::Format(parts) => Cow::Owned(self.format(parts, ctx)?),
            other => {
                let mut s = String::new();
                self.eval(other, ctx)?.concat_into(&mut s);
                Cow::Owned(s)
            }
        })
    }

    fn warn(&self, level: LogLevel, c: &Call, msg: std::fmt::Arguments<'_>) {
        self.host.log(level, &format!("{}: {msg}\n", c.pos));
    }

    /// `xlog([level,] format)` / `log([level,] text)`.
    fn log_call(&self, c: &Call, ctx: &mut Ctx<'_>, default: LogLevel) -> RResult<i64> {
        let (level, text_arg) = match c.args.len() {
            1 => (default, 0),
            2 => (self.level(c, ctx)?, 1),
            n => {
                let msg = format!("{}() takes 1 or 2 arguments, {n} given", c.name);
                return Err(at(&c.pos, msg));
            }
        };
        if self.host.log_enabled(level) {
            let msg = self.text(self.arg(c, text_arg)?, ctx)?;
            self.host.log(level, &msg);
        }
        Ok(1)
    }

    fn level(&self, c: &Call, ctx: &mut Ctx<'_>) -> RResult<LogLevel> {
        let e = self.arg(c, 0)?;
        let level = match self.eval(e, ctx)? {
            Value::Str(s) => LogLevel::from_script_name(&s),
            Value::Int(n) => LogLevel::from_number(n),
            Value::Null => None,
        };
        level.ok_or_else(|| {
            let msg = format!(
                "{}: unknown log level (use L_ERR, L_WARN, L_NOTICE, L_INFO or L_DBG)",
                c.name
            );
            at(&c.args[0].pos, msg)
        })
    }

    /// The AVP slot of argument `i`, `None` when absent or empty.
    fn avp_arg(&self, c: &Call, i: usize) -> RResult<Option<usize>> {
        match c.args.get(i).map(|a| (&a.kind, a)) {
            None | Some((ArgKind::Empty, _)) => Ok(None),
            Some((ArgKind::Expr(Expr::Var(p)), _)) if p.is_avp() && p.index.is_none() => {
                match p.kind {
                    crate::ast::PvKind::Avp(slot) => Ok(Some(slot as usize)),
                    _ => Ok(None),
                }
            }
            Some((_, a)) => {
                let msg = format!(
                    "raise_event: argument {} must be an AVP such as $avp(name)",
                    i + 1
                );
                Err(at(&a.pos, msg))
            }
        }
    }

    /// `raise_event(event [, $avp(names)] [, $avp(values)])` with the OpenSIPS 3.x rules: AVPs
    /// are read newest value first; names and values pair up in that order; with two arguments
    /// the AVP is the names slot, so no parameters are sent; fewer names than values raises
    /// nothing; more names than values is logged and the extra names are ignored.
    fn raise_event(&self, c: &Call, ctx: &mut Ctx<'_>) -> RResult<i64> {
        if c.args.is_empty() || c.args.len() > 3 {
            let msg = format!(
                "raise_event() takes 1 to 3 arguments, {} given",
                c.args.len()
            );
            return Err(at(&c.pos, msg));
        }
        let event = self.text(self.arg(c, 0)?, ctx)?;
        // The same call with unchanged AVPs builds the same parameters: reuse them (the host
        // only borrows them). This is what keeps `raise_event` in a loop cheap.
        let site = c as *const Call as usize;
        let count = match ctx.scratch_key {
            Some((s, epoch, n)) if s == site && epoch == ctx.avp_epoch => n,
            _ => match self.build_params(c, &event, ctx)? {
                Built::Params(n, reusable) => {
                    ctx.scratch_key = reusable.then_some((site, ctx.avp_epoch, n));
                    n
                }
                Built::Refused => return Ok(-1),
            },
        };
        match self.host.raise_event(&event, &ctx.scratch[..count]) {
            Ok(()) => Ok(1),
            Err(e) => {
                let msg = format_args!("raise_event(\"{event}\") failed: {e}");
                self.warn(LogLevel::Error, c, msg);
                Ok(-1)
            }
        }
    }

    /// Fills `ctx.scratch` from the AVPs of a raise_event call.
    fn build_params(&self, c: &Call, event: &str, ctx: &mut Ctx<'_>) -> RResult<Built> {
        let names = self.avp_arg(c, 1)?;
        let values = if c.args.len() == 3 {
            self.avp_arg(c, 2)?
        } else {
            None
        };
        let Some(vs) = values else {
            return Ok(Built::Params(0, true));
        };
        let vals = &ctx.avps[vs];
        let names = names.map(|n| &ctx.avps[n]);
        // A mismatch is logged on every raise, as OpenSIPS does, so it is never reused.
        let mut reusable = true;
        if let Some(ns) = names {
            let (n, v) = (ns.len(), vals.len());
            if n < v {
                let msg = format_args!(
                    "raise_event(\"{event}\"): fewer attribute names ({n}) than values ({v}), event not raised"
                );
                self.warn(LogLevel::Error, c, msg);
                return Ok(Built::Refused);
            }
            if n > v {
                let msg = format_args!(
                    "raise_event(\"{event}\"): more attribute names ({n}) than values ({v}), extra names ignored"
                );
                self.warn(LogLevel::Error, c, msg);
                reusable = false;
            }
        }
        let scratch = &mut ctx.scratch;
        if scratch.len() < vals.len() {
            let empty = ScriptParam {
                name: None,
                value: ScriptValue::Null,
            };
            scratch.resize(vals.len(), empty);
        }
        for (k, v) in vals.iter().rev().enumerate() {
            let p = &mut scratch[k];
            match names {
                Some(ns) => set_name(&mut p.name, &ns[ns.len() - 1 - k]),
                None => p.name = None,
            }
            v.store_into(&mut p.value);
        }
        Ok(Built::Params(vals.len(), reusable))
    }

    /// `subscribe_event(event, socket [, expire])`; no expire or 0 means permanent.
    fn subscribe_event(&self, c: &Call, ctx: &mut Ctx<'_>) -> RResult<i64> {
        let event = self.text(self.arg(c, 0)?, ctx)?;
        let socket = self.text(self.arg(c, 1)?, ctx)?;
        let expire = match c.args.get(2).and_then(Arg::expr) {
            None => None,
            Some(e) => {
                match self.eval(e, ctx)?.as_int() {
                    Some(0) => None,
                    Some(n) if n > 0 => Some(n),
                    _ => {
                        self.warn(
                        LogLevel::Error,
                        c,
                        format_args!("subscribe_event(\"{event}\"): the expire must be a number of seconds"),
                    );
                        return Ok(-1);
                    }
                }
            }
        };
        match self.host.subscribe_event(&event, &socket, expire) {
            Ok(()) => Ok(1),
            Err(e) => {
                self.warn(
                    LogLevel::Error,
                    c,
                    format_args!("subscribe_event(\"{event}\", \"{socket}\") failed: {e}"),
                );
                Ok(-1)
            }
        }
    }

    /// `fetch_event_params("[name=]$pvar;...")`: named entries pick parameters by name, unnamed
    /// ones by their position in the spec (the 2.x event_route module's rules).
    fn fetch_event_params(&self, c: &Call, ctx: &mut Ctx<'_>) -> RResult<i64> {
        if !ctx.event_route {
            let msg = "fetch_event_params: not available outside event_route";
            return Err(at(&c.pos, msg));
        }
        let Some(ArgKind::Fetch(items)) = c.args.first().map(|a| &a.kind) else {
            let msg = "fetch_event_params: the spec must be a literal string";
            return Err(at(&c.pos, msg));
        };
        let mut rc = 1;
        for (k, (name, pv)) in items.iter().enumerate() {
            let found = match name {
                Some(n) => ctx.params.iter().find(|(pn, _)| *pn == Some(n.as_str())),
                None => ctx.params.get(k),
            };
            let Some((_, v)) = found else {
                let what = name
                    .as_deref()
                    .map_or_else(|| format!("#{}", k + 1), str::to_string);
                self.warn(
                    LogLevel::Warn,
                    c,
                    format_args!("fetch_event_params: no event parameter {what}"),
                );
                rc = -1;
                continue;
            };
            let v = v.clone();
            self.assign(pv, AssignOp::Set, v, ctx)
                .map_err(|m| at(&c.pos, m))?;
        }
        Ok(rc)
    }

    /// A function `check` accepted but the interpreter does not implement (a module's): the
    /// host runs it.
    pub(crate) fn host_function(&self, c: &Call, ctx: &mut Ctx<'_>) -> RResult<i64> {
        let mut args = Vec::with_capacity(c.args.len());
        for a in &c.args {
            args.push(match &a.kind {
                ArgKind::Expr(e) => self.eval(e, ctx)?.to_script(),
                ArgKind::Empty | ArgKind::Fetch(_) => ScriptValue::Null,
            });
        }
        // A failed call is a negative result, as in OpenSIPS, with its reason logged at the
        // call's file:line; the route goes on.
        match self.host.call_function(&c.name, &args) {
            Ok(rc) => Ok(rc),
            Err(FunctionError::Failed(m)) => {
                self.warn(LogLevel::Error, c, format_args!("{}: {m}", c.name));
                Ok(-1)
            }
            Err(FunctionError::Missing(m)) => Err(at(&c.pos, m)),
        }
    }
}

enum Built {
    /// `scratch[..n]` holds the parameters; whether they may be reused by the next raise.
    Params(usize, bool),
    /// Nothing to raise (the error is logged).
    Refused,
}

/// Writes an AVP value as a parameter name, reusing the existing buffer.
fn set_name(slot: &mut Option<String>, v: &Value) {
    match slot {
        Some(s) => {
            s.clear();
            v.concat_into(s);
        }
        None => {
            let mut s = String::new();
            v.concat_into(&mut s);
            *slot = Some(s);
        }
    }
}
