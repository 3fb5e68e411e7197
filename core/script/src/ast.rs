//! The parsed form of routes. Variable names are already resolved to slots and builtin
//! functions to an enum, so the interpreter never hashes a name while running.

use crate::diag::Pos;
use crate::value::Value;

pub(crate) type Block = Vec<Stmt>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RouteKind {
    Startup,
    Timer,
    /// `route { }` (the main SIP request route) and `route[name] { }`.
    Request,
    Event,
    /// SIP-only route kinds: parsed (so their syntax is checked) but never run.
    OnReply,
    Failure,
    Branch,
    Error,
    Local,
}

impl RouteKind {
    pub fn keyword(self) -> &'static str {
        match self {
            RouteKind::Startup => "startup_route",
            RouteKind::Timer => "timer_route",
            RouteKind::Request => "route",
            RouteKind::Event => "event_route",
            RouteKind::OnReply => "onreply_route",
            RouteKind::Failure => "failure_route",
            RouteKind::Branch => "branch_route",
            RouteKind::Error => "error_route",
            RouteKind::Local => "local_route",
        }
    }

    pub fn from_keyword(s: &str) -> Option<RouteKind> {
        Some(match s {
            "startup_route" => RouteKind::Startup,
            "timer_route" => RouteKind::Timer,
            "route" => RouteKind::Request,
            "event_route" => RouteKind::Event,
            "onreply_route" => RouteKind::OnReply,
            "failure_route" => RouteKind::Failure,
            "branch_route" => RouteKind::Branch,
            "error_route" => RouteKind::Error,
            "local_route" => RouteKind::Local,
            _ => return None,
        })
    }
}

#[derive(Debug)]
pub(crate) struct Route {
    pub kind: RouteKind,
    /// `None` for the unnamed forms (`route { }`, `startup_route { }`).
    pub name: Option<String>,
    /// Where the name is written (the keyword when there is none).
    pub name_pos: Pos,
    /// `timer_route[name, interval]`: the interval if it is an integer, else what was written.
    pub interval: Option<(Result<i64, String>, Pos)>,
    /// `event_route[E_X, sync]` (the 2.x form): run inline by the transport, not on a worker.
    pub sync: bool,
    pub body: Block,
}

#[derive(Debug)]
pub(crate) enum Stmt {
    Call(Call),
    If {
        cond: Expr,
        then: Block,
        els: Block,
    },
    While {
        cond: Expr,
        body: Block,
        pos: Pos,
    },
    Switch {
        subject: Expr,
        cases: Vec<Case>,
        pos: Pos,
    },
    Assign {
        target: PVar,
        op: AssignOp,
        value: Expr,
        pos: Pos,
    },
    Block(Block),
    Exit,
    Drop,
    Return(Option<Expr>, Pos),
    Break(Pos),
}

/// A `case LABEL:` (or `default:` when `label` is `None`). Bodies fall through to the next case
/// until a `break`, as in OpenSIPS (and C).
#[derive(Debug)]
pub(crate) struct Case {
    pub label: Option<Value>,
    pub body: Block,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AssignOp {
    /// `=`: sets a `$var`, adds a value on top of an AVP.
    Set,
    /// `:=`: replaces every value of an AVP.
    Replace,
    /// `+=`, `-=`, ...: `x = x OP value`.
    Op(BinOp),
}

#[derive(Debug)]
pub(crate) struct Call {
    pub name: String,
    pub func: Func,
    pub args: Vec<Arg>,
    /// Where the function name is written.
    pub pos: Pos,
}

#[derive(Debug)]
pub(crate) enum Func {
    Builtin(Builtin),
    /// `route(name)`; `target` is filled in once all routes are known.
    Route {
        name: String,
        name_pos: Pos,
        target: Option<usize>,
    },
    /// Not implemented here: `check` decides whether it exists, the host may run it.
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Builtin {
    Xlog,
    Log,
    RaiseEvent,
    SubscribeEvent,
    FetchEventParams,
}

impl Builtin {
    pub fn from_name(s: &str) -> Option<Builtin> {
        Some(match s {
            "xlog" => Builtin::Xlog,
            "log" => Builtin::Log,
            "raise_event" => Builtin::RaiseEvent,
            "subscribe_event" => Builtin::SubscribeEvent,
            "fetch_event_params" => Builtin::FetchEventParams,
            _ => return None,
        })
    }
}

#[derive(Debug)]
pub(crate) struct Arg {
    pub kind: ArgKind,
    pub pos: Pos,
}

#[derive(Debug)]
pub(crate) enum ArgKind {
    /// Nothing between two commas: `raise_event("E", , $avp(v))`.
    Empty,
    Expr(Expr),
    /// The `[name=]$pvar;...` spec of `fetch_event_params`, parsed once.
    Fetch(Vec<(Option<String>, PVar)>),
}

impl Arg {
    pub fn expr(&self) -> Option<&Expr> {
        match &self.kind {
            ArgKind::Expr(e) => Some(e),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(crate) enum Expr {
    Const(Value),
    /// A string argument with pseudo-variables in it (xlog style), expanded on each use.
    Format(Vec<FmtPart>),
    Var(Box<PVar>),
    Not(Box<Expr>),
    Neg(Box<Expr>, Pos),
    BitNot(Box<Expr>, Pos),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Arith(BinOp, Box<Expr>, Box<Expr>, Pos),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    Match {
        subject: Box<Expr>,
        re: MatchRe,
        negate: bool,
        pos: Pos,
    },
    Call(Box<Call>),
}

#[derive(Debug)]
pub(crate) enum MatchRe {
    /// A literal pattern, compiled while parsing.
    Static(regex::bytes::Regex),
    /// A pattern computed at run time (compiled on each evaluation, like OpenSIPS).
    Dynamic(Box<Expr>),
}

#[derive(Debug)]
pub(crate) enum FmtPart {
    Lit(String),
    Var(PVar),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    BitAnd,
    BitOr,
    BitXor,
    Shl,
    Shr,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::BitAnd => "&",
            BinOp::BitOr => "|",
            BinOp::BitXor => "^",
            BinOp::Shl => "<<",
            BinOp::Shr => ">>",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

/// A pseudo-variable reference such as `$avp(n)[1]{s.len}`.
#[derive(Debug)]
pub(crate) struct PVar {
    pub kind: PvKind,
    pub index: Option<PvIndex>,
    pub trans: Vec<Trans>,
    /// As written, for messages.
    pub text: String,
    pub pos: Pos,
}

#[derive(Debug)]
pub(crate) enum PvKind {
    /// `$var(name)`: slot in the script-variable table.
    Var(u32),
    /// `$avp(name)`: slot in the AVP table.
    Avp(u32),
    Param(ParamKey),
    Time(String),
    Ts,
    Pid,
    Null,
    /// `$rc` / `$retcode`: return code of the last function or route.
    Rc,
    /// A pseudo-variable OpenSIPS has (SIP message fields, ...) but evid does not.
    Unknown(String),
}

#[derive(Debug)]
pub(crate) enum ParamKey {
    Name(String),
    /// 1-based position.
    Position(usize),
    Dynamic(Box<PVar>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PvIndex {
    /// 0 is the newest value; negative counts from the oldest (-1 = oldest).
    At(i64),
    /// `[*]`: every value.
    All,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Trans {
    Len,
    Int,
    Substr(i64, i64),
    Lower,
    Upper,
}

impl PVar {
    /// Whether a script may assign to it.
    pub fn writable(&self) -> bool {
        matches!(self.kind, PvKind::Var(_) | PvKind::Avp(_)) && self.trans.is_empty()
    }

    pub fn is_avp(&self) -> bool {
        matches!(self.kind, PvKind::Avp(_)) && self.trans.is_empty()
    }
}

/// Read-only traversal used by `check` and the script queries.
pub(crate) trait Visit {
    fn call(&mut self, _c: &Call) {}
    fn pvar(&mut self, _p: &PVar) {}
    /// `breakable` is true inside a `while` or a `switch`.
    fn stmt(&mut self, _s: &Stmt, _breakable: bool) {}
}

pub(crate) fn walk_block(b: &Block, v: &mut impl Visit, breakable: bool) {
    for s in b {
        walk_stmt(s, v, breakable);
    }
}

fn walk_stmt(s: &Stmt, v: &mut impl Visit, breakable: bool) {
    v.stmt(s, breakable);
    match s {
        Stmt::Call(c) => walk_call(c, v),
        Stmt::If { cond, then, els } => {
            walk_expr(cond, v);
            walk_block(then, v, breakable);
            walk_block(els, v, breakable);
        }
        Stmt::While { cond, body, .. } => {
            walk_expr(cond, v);
            walk_block(body, v, true);
        }
        Stmt::Switch { subject, cases, .. } => {
            walk_expr(subject, v);
            for c in cases {
                walk_block(&c.body, v, true);
            }
        }
        Stmt::Assign { target, value, .. } => {
            walk_pvar(target, v);
            walk_expr(value, v);
        }
        Stmt::Block(b) => walk_block(b, v, breakable),
        Stmt::Return(Some(e), _) => walk_expr(e, v),
        Stmt::Return(None, _) | Stmt::Exit | Stmt::Drop | Stmt::Break(_) => {}
    }
}

fn walk_call(c: &Call, v: &mut impl Visit) {
    v.call(c);
    for a in &c.args {
        match &a.kind {
            ArgKind::Expr(e) => walk_expr(e, v),
            ArgKind::Fetch(items) => items.iter().for_each(|(_, p)| walk_pvar(p, v)),
            ArgKind::Empty => {}
        }
    }
}

fn walk_pvar(p: &PVar, v: &mut impl Visit) {
    v.pvar(p);
    if let PvKind::Param(ParamKey::Dynamic(inner)) = &p.kind {
        walk_pvar(inner, v);
    }
}

fn walk_expr(e: &Expr, v: &mut impl Visit) {
    match e {
        Expr::Const(_) => {}
        Expr::Format(parts) => {
            for p in parts {
                if let FmtPart::Var(pv) = p {
                    walk_pvar(pv, v);
                }
            }
        }
        Expr::Var(p) => walk_pvar(p, v),
        Expr::Not(x) | Expr::Neg(x, _) | Expr::BitNot(x, _) => walk_expr(x, v),
        Expr::And(a, b) | Expr::Or(a, b) | Expr::Arith(_, a, b, _) | Expr::Cmp(_, a, b) => {
            walk_expr(a, v);
            walk_expr(b, v);
        }
        Expr::Match { subject, re, .. } => {
            walk_expr(subject, v);
            if let MatchRe::Dynamic(r) = re {
                walk_expr(r, v);
            }
        }
        Expr::Call(c) => walk_call(c, v),
    }
}

/// Mutable traversal over every call, for resolving `route(name)` targets after parsing.
pub(crate) fn for_each_call_mut(b: &mut Block, f: &mut impl FnMut(&mut Call)) {
    for s in b {
        match s {
            Stmt::Call(c) => call_mut(c, f),
            Stmt::If { cond, then, els } => {
                expr_calls_mut(cond, f);
                for_each_call_mut(then, f);
                for_each_call_mut(els, f);
            }
            Stmt::While { cond, body, .. } => {
                expr_calls_mut(cond, f);
                for_each_call_mut(body, f);
            }
            Stmt::Switch { subject, cases, .. } => {
                expr_calls_mut(subject, f);
                for c in cases {
                    for_each_call_mut(&mut c.body, f);
                }
            }
            Stmt::Assign { value, .. } => expr_calls_mut(value, f),
            Stmt::Block(b) => for_each_call_mut(b, f),
            Stmt::Return(Some(e), _) => expr_calls_mut(e, f),
            Stmt::Return(None, _) | Stmt::Exit | Stmt::Drop | Stmt::Break(_) => {}
        }
    }
}

fn call_mut(c: &mut Call, f: &mut impl FnMut(&mut Call)) {
    f(c);
    for a in &mut c.args {
        if let ArgKind::Expr(e) = &mut a.kind {
            expr_calls_mut(e, f);
        }
    }
}

fn expr_calls_mut(e: &mut Expr, f: &mut impl FnMut(&mut Call)) {
    match e {
        Expr::Const(_) | Expr::Format(_) | Expr::Var(_) => {}
        Expr::Not(x) | Expr::Neg(x, _) | Expr::BitNot(x, _) => expr_calls_mut(x, f),
        Expr::And(a, b) | Expr::Or(a, b) | Expr::Arith(_, a, b, _) | Expr::Cmp(_, a, b) => {
            expr_calls_mut(a, f);
            expr_calls_mut(b, f);
        }
        Expr::Match { subject, re, .. } => {
            expr_calls_mut(subject, f);
            if let MatchRe::Dynamic(r) = re {
                expr_calls_mut(r, f);
            }
        }
        Expr::Call(c) => call_mut(c, f),
    }
}
