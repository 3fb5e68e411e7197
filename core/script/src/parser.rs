//! Recursive-descent parser: top-level items and route headers here, statements in
//! `parser/stmt.rs`, expressions in `parser/expr.rs`. Every error is recorded and parsing
//! resumes at the next statement or top-level item, so one run reports all the mistakes of a
//! file.

mod expr;
mod stmt;

pub(crate) use expr::compile_regex;

use std::collections::HashMap;
use std::sync::Arc;

use crate::ast::{for_each_call_mut, Func, Route, RouteKind};
use crate::diag::{Diagnostic, Pos};
use crate::lexer::{Lexed, Tok, Token};
use crate::pvar::Names;
use crate::{Item, Literal, Script};

/// Blocks and parentheses nested deeper than this are refused instead of risking the stack.
pub(crate) const MAX_NESTING: usize = 64;
/// Operators in one expression; bounds the depth the interpreter recurses to evaluate it.
pub(crate) const MAX_EXPR_NODES: usize = 256;

/// The message for input nested beyond [`MAX_NESTING`].
pub(crate) fn too_deep() -> String {
    format!("nested too deeply (more than {MAX_NESTING} levels of blocks and parentheses)")
}

/// The error was recorded already; the caller resynchronises.
pub(crate) type PResult<T> = Result<T, ()>;

pub(crate) struct Parser<'l> {
    pub lx: &'l Lexed,
    pub i: usize,
    pub diags: Vec<Diagnostic>,
    pub names: Names,
    pub depth: usize,
    /// `expr()` calls in progress, and operator nodes built by the outermost one: a
    /// left-deep chain such as `1+1+1+...` is as deep as it is long when evaluated.
    pub expr_level: usize,
    pub nodes: usize,
}

pub(crate) fn parse(lx: &Lexed) -> Result<Script, Vec<Diagnostic>> {
    let (script, diags) = parse_partial(lx);
    if diags.is_empty() {
        Ok(script)
    } else {
        Err(diags)
    }
}

/// Parse what can be parsed: the script without the items that failed, and every error. Lets a
/// caller run the semantic checks too, so one `evid -c` run reports both kinds.
pub(crate) fn parse_partial(lx: &Lexed) -> (Script, Vec<Diagnostic>) {
    let mut p = Parser {
        lx,
        i: 0,
        diags: Vec::new(),
        names: Names::default(),
        depth: 0,
        expr_level: 0,
        nodes: 0,
    };
    let mut items = Vec::new();
    let mut routes = Vec::new();
    while !p.at_eof() {
        let start = p.i;
        match p.top_item(&mut items, &mut routes) {
            Ok(()) => {}
            Err(()) => p.sync_top(start),
        }
    }
    let mut diags = lx.diags.clone();
    diags.append(&mut p.diags);
    if !diags.is_empty() {
        // Lexing errors come first in the list but may sit after parse errors in the file.
        diags.sort_by_key(|d| {
            let src = lx
                .sources
                .iter()
                .position(|s| Arc::ptr_eq(s, &d.pos.source));
            (src, d.pos.line, d.pos.col)
        });
    }
    (finish(items, routes, p.names, lx), diags)
}

/// Indexes the routes and points every `route(name)` at its target.
fn finish(items: Vec<Item>, mut routes: Vec<Route>, names: Names, lx: &Lexed) -> Script {
    let mut named = HashMap::new();
    let mut events = HashMap::new();
    let mut timers = HashMap::new();
    let mut startup = None;
    for (i, r) in routes.iter().enumerate() {
        match (r.kind, &r.name) {
            (RouteKind::Startup, _) => {
                startup.get_or_insert(i);
            }
            (RouteKind::Request, Some(n)) => {
                named.entry(n.clone()).or_insert(i);
            }
            (RouteKind::Event, Some(n)) => {
                events.entry(n.clone()).or_insert(i);
            }
            (RouteKind::Timer, Some(n)) => {
                timers.entry(n.clone()).or_insert(i);
            }
            _ => {}
        }
    }
    for r in &mut routes {
        for_each_call_mut(&mut r.body, &mut |c| {
            if let Func::Route { name, target, .. } = &mut c.func {
                *target = named.get(name.as_str()).copied();
            }
        });
    }
    Script {
        items,
        routes,
        var_names: names.var_names,
        avp_names: names.avp_names,
        sources: lx.sources.clone(),
        startup,
        named,
        events,
        timers,
    }
}

const TOP_KEYWORDS: &[&str] = &[
    "loadmodule",
    "modparam",
    "startup_route",
    "timer_route",
    "route",
    "event_route",
    "onreply_route",
    "failure_route",
    "branch_route",
    "error_route",
    "local_route",
];

impl<'l> Parser<'l> {
    // ----- token helpers -------------------------------------------------------------------

    pub fn peek(&self) -> &'l Token {
        let last = self.lx.tokens.len() - 1;
        &self.lx.tokens[self.i.min(last)]
    }

    pub fn peek_at(&self, n: usize) -> &'l Token {
        let last = self.lx.tokens.len() - 1;
        &self.lx.tokens[(self.i + n).min(last)]
    }

    pub fn bump(&mut self) -> &'l Token {
        let t = self.peek();
        if t.tok != Tok::Eof {
            self.i += 1;
        }
        t
    }

    pub fn at(&self, t: &Tok) -> bool {
        &self.peek().tok == t
    }

    pub fn at_eof(&self) -> bool {
        self.at(&Tok::Eof)
    }

    pub fn at_ident(&self, s: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(x) if x == s)
    }

    pub fn pos(&self, t: &Token) -> Pos {
        self.lx.pos(t)
    }

    pub fn here(&self) -> Pos {
        self.pos(self.peek())
    }

    pub fn error_at(&mut self, pos: &Pos, msg: impl Into<String>) {
        self.diags.push(Diagnostic::at(pos, msg));
    }

    /// Records "expected WHAT, found TOKEN" at the current token.
    pub fn expected(&mut self, what: &str) {
        let t = self.peek();
        if t.tok == Tok::Error {
            return; // the lexer said what is wrong with it
        }
        let msg = format!("expected {what}, found {}", t.tok);
        let pos = self.pos(t);
        self.error_at(&pos, msg);
    }

    /// Consumes `t` or records "expected WHAT, found ..." and fails.
    pub fn expect(&mut self, t: &Tok, what: &str) -> PResult<&'l Token> {
        if self.at(t) {
            Ok(self.bump())
        } else {
            self.expected(what);
            Err(())
        }
    }

    /// A missing `;` is reported without consuming anything: the next token most likely starts
    /// the next statement, so parsing continues cleanly from it.
    fn semi(&mut self, after: &str) {
        if self.at(&Tok::Semi) {
            self.bump();
            return;
        }
        // Point just after the statement, where the `;` belongs, not at the next line's token.
        let found = &self.peek().tok;
        let pos = match self.i.checked_sub(1).map(|i| &self.lx.tokens[i]) {
            Some(prev) => {
                let text = &self.lx.sources[prev.src as usize].text;
                let (line, col) =
                    crate::lexer::advance(&text[prev.start..prev.end], prev.line, prev.col);
                Pos {
                    source: self.lx.sources[prev.src as usize].clone(),
                    line,
                    col,
                }
            }
            None => self.here(),
        };
        let msg = format!("expected ';' after {after}, found {found}");
        self.error_at(&pos, msg);
    }

    fn first_on_line(&self, idx: usize) -> bool {
        idx == 0 || {
            let (a, b) = (&self.lx.tokens[idx - 1], &self.lx.tokens[idx]);
            a.src != b.src || a.line != b.line
        }
    }

    /// A token that can only start a top-level item: where a broken route body ends.
    fn at_top_keyword(&self) -> bool {
        let Tok::Ident(s) = &self.peek().tok else {
            return false;
        };
        match s.as_str() {
            "route" => matches!(self.peek_at(1).tok, Tok::LBrace | Tok::LBracket),
            s => TOP_KEYWORDS.contains(&s) && !matches!(self.peek_at(1).tok, Tok::LParen),
        }
    }

    // ----- recovery --------------------------------------------------------------------------

    /// Skips to the next top-level item: a keyword or `name =` starting a line outside braces.
    fn sync_top(&mut self, start: usize) {
        if self.i == start {
            self.bump();
        }
        let mut depth = 0usize;
        while !self.at_eof() {
            let t = self.peek();
            if depth == 0 && self.first_on_line(self.i) {
                if let Tok::Ident(s) = &t.tok {
                    if TOP_KEYWORDS.contains(&s.as_str()) || self.peek_at(1).tok == Tok::Assign {
                        return;
                    }
                }
            }
            match t.tok {
                Tok::LBrace => depth += 1,
                Tok::RBrace if depth <= 1 => {
                    self.bump();
                    if depth == 1 {
                        return;
                    }
                    continue;
                }
                Tok::RBrace => depth -= 1,
                _ => {}
            }
            self.bump();
        }
    }

    /// Skips the rest of a broken statement: through its `;` or its closing `}`, stopping before
    /// the `}` of the enclosing block.
    fn sync_stmt(&mut self, start: usize) {
        let mut depth = 0usize;
        if self.i == start && !self.at(&Tok::RBrace) {
            depth = usize::from(self.at(&Tok::LBrace));
            self.bump();
        }
        while !self.at_eof() {
            match self.peek().tok {
                Tok::Semi if depth == 0 => {
                    self.bump();
                    return;
                }
                Tok::RBrace if depth == 0 => return,
                Tok::RBrace => {
                    depth -= 1;
                    self.bump();
                    if depth == 0 {
                        return;
                    }
                    continue;
                }
                Tok::LBrace => depth += 1,
                _ if depth == 0 && self.at_top_keyword() && self.first_on_line(self.i) => return,
                _ => {}
            }
            self.bump();
        }
    }

    // ----- top level -----------------------------------------------------------------------

    fn top_item(&mut self, items: &mut Vec<Item>, routes: &mut Vec<Route>) -> PResult<()> {
        let t = self.peek();
        let Tok::Ident(word) = &t.tok else {
            if t.tok == Tok::Semi {
                self.bump();
                return Ok(());
            }
            self.expected("a global parameter, loadmodule, modparam or a route block");
            return Err(());
        };
        let pos = self.pos(t);
        if let Some(kind) = RouteKind::from_keyword(word) {
            self.bump();
            routes.push(self.route(kind, pos)?);
            return Ok(());
        }
        match word.as_str() {
            "loadmodule" => {
                self.bump();
                let path = self.string("a quoted module name after loadmodule")?;
                self.opt_semi();
                items.push(Item::LoadModule { path, pos });
            }
            "modparam" => {
                self.bump();
                items.push(self.modparam(pos)?);
            }
            _ if self.peek_at(1).tok == Tok::Assign => {
                self.bump();
                self.bump();
                let value = self.global_value(word)?;
                self.opt_semi();
                items.push(Item::Global {
                    name: word.clone(),
                    value,
                    pos,
                });
            }
            _ => {
                self.expected("a global parameter, loadmodule, modparam or a route block");
                return Err(());
            }
        }
        Ok(())
    }

    fn opt_semi(&mut self) {
        if self.at(&Tok::Semi) {
            self.bump();
        }
    }

    fn string(&mut self, what: &str) -> PResult<String> {
        match &self.peek().tok {
            Tok::Str(s) => {
                self.bump();
                Ok(s.clone())
            }
            _ => {
                self.expected(what);
                Err(())
            }
        }
    }

    fn modparam(&mut self, pos: Pos) -> PResult<Item> {
        self.expect(&Tok::LParen, "'(' after modparam")?;
        let module =
            self.string("the module name (a quoted string) as the 1st argument of modparam")?;
        self.expect(&Tok::Comma, "',' after the module name of modparam")?;
        let param =
            self.string("the parameter name (a quoted string) as the 2nd argument of modparam")?;
        self.expect(&Tok::Comma, "',' after the parameter name of modparam")?;
        let value = match self.literal() {
            Some(v) => v,
            None => {
                self.expected("a string or a number as the value of modparam");
                return Err(());
            }
        };
        self.expect(&Tok::RParen, "')' after the arguments of modparam")?;
        self.opt_semi();
        Ok(Item::ModParam {
            module,
            param,
            value,
            pos,
        })
    }

    /// A string, a possibly negative number, or `yes`/`no` and friends.
    fn literal(&mut self) -> Option<Literal> {
        let v = match (&self.peek().tok, &self.peek_at(1).tok) {
            (Tok::Str(s), _) => Literal::Str(s.clone()),
            (Tok::Int(n), _) => Literal::Int(*n),
            (Tok::Minus, Tok::Int(n)) => {
                self.bump();
                Literal::Int(n.wrapping_neg())
            }
            (Tok::Ident(s), _) => Literal::Int(bool_word(s)?),
            _ => return None,
        };
        self.bump();
        Some(v)
    }

    /// `name = value`: a single literal token is typed; anything longer on the line (addresses
    /// such as `udp:127.0.0.1:5060`) is kept verbatim as a string.
    fn global_value(&mut self, name: &str) -> PResult<Literal> {
        let first = self.i;
        let line_end = |p: &Self, idx: usize| {
            let t = &p.lx.tokens[idx];
            t.tok == Tok::Eof || t.tok == Tok::Semi || p.first_on_line(idx)
        };
        if line_end(self, first) {
            self.expected(&format!("a value after '{name} ='"));
            return Err(());
        }
        let mut last = first;
        while !line_end(self, last + 1) && self.lx.tokens[last + 1].src == self.lx.tokens[first].src
        {
            last += 1;
        }
        let single = match (last - first, &self.lx.tokens[first].tok) {
            (0, _) | (1, Tok::Minus) => self.literal(),
            _ => None,
        };
        if let Some(v) = single {
            return Ok(v);
        }
        let (a, b) = (&self.lx.tokens[first], &self.lx.tokens[last]);
        let text = &self.lx.sources[a.src as usize].text[a.start..b.end];
        self.i = last + 1;
        Ok(Literal::Str(text.to_string()))
    }

    // ----- routes ----------------------------------------------------------------------------

    fn route(&mut self, kind: RouteKind, pos: Pos) -> PResult<Route> {
        let kw = kind.keyword();
        let mut name = None;
        let mut name_pos = pos.clone();
        let mut interval = None;
        let mut sync = false;
        let needs_name = matches!(kind, RouteKind::Timer | RouteKind::Event);
        if self.at(&Tok::LBracket) || needs_name {
            self.expect(&Tok::LBracket, &format!("'[' and a name after {kw}"))?;
            name_pos = self.here();
            name = Some(self.route_name(&format!("a name inside {kw}[...]"))?);
            match kind {
                RouteKind::Timer => {
                    self.expect(
                        &Tok::Comma,
                        "',' and an interval after the timer_route name",
                    )?;
                    interval = Some(self.timer_interval()?);
                }
                RouteKind::Event if self.at(&Tok::Comma) => {
                    // The 1.x/2.x `[E_X, sync|async]` form; async is what 3.x always does.
                    self.bump();
                    if !(self.at_ident("sync") || self.at_ident("async")) {
                        self.expected("sync or async after the event name");
                        return Err(());
                    }
                    sync = self.at_ident("sync");
                    self.bump();
                }
                _ => {}
            }
            self.expect(&Tok::RBracket, &format!("']' after the name of {kw}"))?;
        }
        let what = match &name {
            Some(n) => format!("{kw}[{n}]"),
            None => kw.to_string(),
        };
        let open = self.here();
        self.expect(&Tok::LBrace, &format!("'{{' to open the body of {what}"))?;
        let body = self.block_body(&what, &open);
        Ok(Route {
            kind,
            name,
            name_pos,
            interval,
            sync,
            body,
        })
    }

    /// Route names may be identifiers, numbers or quoted strings, as in OpenSIPS.
    pub fn route_name(&mut self, what: &str) -> PResult<String> {
        let s = match &self.peek().tok {
            Tok::Ident(s) | Tok::Str(s) => s.clone(),
            Tok::Int(n) => n.to_string(),
            _ => {
                self.expected(what);
                return Err(());
            }
        };
        self.bump();
        Ok(s)
    }

    fn timer_interval(&mut self) -> PResult<(Result<i64, String>, Pos)> {
        let pos = self.here();
        let v = match (&self.peek().tok, &self.peek_at(1).tok) {
            (Tok::Int(n), _) => Ok(*n),
            (Tok::Minus, Tok::Int(n)) => {
                self.bump();
                Ok(n.wrapping_neg())
            }
            (Tok::RBracket | Tok::Eof, _) => {
                self.expected("the timer_route interval in seconds");
                return Err(());
            }
            (t, _) => Err(t.to_string()),
        };
        self.bump();
        Ok((v, pos))
    }
}

/// OpenSIPS's boolean words.
fn bool_word(s: &str) -> Option<i64> {
    match s.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "enable" => Some(1),
        "no" | "false" | "off" | "disable" => Some(0),
        _ => None,
    }
}
