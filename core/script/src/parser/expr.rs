//! Expressions, function calls and their arguments.
//!
//! Precedence, loosest first: `||` (`or`), `&&` (`and`), `|`, `^`, `&`, comparisons and
//! `=~`/`!~` (non-associative), `<< >>`, `+ -`, `* / %`, unary `!` (`not`), `-`, `~`.

use super::{too_deep, PResult, Parser, MAX_EXPR_NODES, MAX_NESTING};
use crate::ast::{Arg, ArgKind, BinOp, Builtin, Call, CmpOp, Expr, FmtPart, Func, MatchRe, PVar};
use crate::diag::Pos;
use crate::lexer::{Tok, Token};
use crate::pvar::{parse_format, parse_pvar};
use crate::value::Value;

impl Parser<'_> {
    pub fn expr(&mut self) -> PResult<Expr> {
        if self.depth >= MAX_NESTING {
            let pos = self.here();
            self.error_at(&pos, too_deep());
            return Err(());
        }
        if self.expr_level == 0 {
            self.nodes = 0;
        }
        self.depth += 1;
        self.expr_level += 1;
        let r = self.or_expr();
        self.expr_level -= 1;
        self.depth -= 1;
        r
    }

    /// Accounts for one more operator node of the current expression.
    fn node(&mut self) -> PResult<()> {
        self.nodes += 1;
        if self.nodes > MAX_EXPR_NODES {
            let pos = self.here();
            let msg = format!("expression too long (more than {MAX_EXPR_NODES} operators)");
            self.error_at(&pos, msg);
            return Err(());
        }
        Ok(())
    }

    fn or_expr(&mut self) -> PResult<Expr> {
        let mut l = self.and_expr()?;
        while self.at(&Tok::Or) || self.at_ident("or") {
            self.node()?;
            self.bump();
            l = Expr::Or(Box::new(l), Box::new(self.and_expr()?));
        }
        Ok(l)
    }

    fn and_expr(&mut self) -> PResult<Expr> {
        let mut l = self.bit_expr(0)?;
        while self.at(&Tok::And) || self.at_ident("and") {
            self.node()?;
            self.bump();
            l = Expr::And(Box::new(l), Box::new(self.bit_expr(0)?));
        }
        Ok(l)
    }

    /// Levels 0..3 are `|`, `^`, `&`; level 3 is comparisons.
    fn bit_expr(&mut self, level: u8) -> PResult<Expr> {
        const OPS: [(Tok, BinOp); 3] = [
            (Tok::BitOr, BinOp::BitOr),
            (Tok::BitXor, BinOp::BitXor),
            (Tok::BitAnd, BinOp::BitAnd),
        ];
        if level == 3 {
            return self.cmp_expr();
        }
        let (tok, op) = &OPS[level as usize];
        let mut l = self.bit_expr(level + 1)?;
        while self.at(tok) {
            self.node()?;
            let pos = self.here();
            self.bump();
            let r = self.bit_expr(level + 1)?;
            l = Expr::Arith(*op, Box::new(l), Box::new(r), pos);
        }
        Ok(l)
    }

    fn cmp_expr(&mut self) -> PResult<Expr> {
        let l = self.shift_expr()?;
        let pos = self.here();
        let op = match self.peek().tok {
            Tok::Eq => CmpOp::Eq,
            Tok::Ne => CmpOp::Ne,
            Tok::Lt => CmpOp::Lt,
            Tok::Gt => CmpOp::Gt,
            Tok::Le => CmpOp::Le,
            Tok::Ge => CmpOp::Ge,
            Tok::Match | Tok::NotMatch => {
                self.node()?;
                let negate = self.at(&Tok::NotMatch);
                self.bump();
                let rpos = self.here();
                let r = self.shift_expr()?;
                let re = match r {
                    Expr::Const(Value::Str(s)) => match compile_regex(&s) {
                        Ok(re) => MatchRe::Static(re),
                        Err(e) => {
                            self.error_at(&rpos, format!("invalid regular expression: {e}"));
                            return Err(());
                        }
                    },
                    other => MatchRe::Dynamic(Box::new(other)),
                };
                return Ok(Expr::Match {
                    subject: Box::new(l),
                    re,
                    negate,
                    pos,
                });
            }
            _ => return Ok(l),
        };
        self.node()?;
        self.bump();
        let r = self.shift_expr()?;
        Ok(Expr::Cmp(op, Box::new(l), Box::new(r)))
    }

    fn shift_expr(&mut self) -> PResult<Expr> {
        let mut l = self.add_expr()?;
        loop {
            let op = match self.peek().tok {
                Tok::Shl => BinOp::Shl,
                Tok::Shr => BinOp::Shr,
                _ => return Ok(l),
            };
            self.node()?;
            let pos = self.here();
            self.bump();
            let r = self.add_expr()?;
            l = Expr::Arith(op, Box::new(l), Box::new(r), pos);
        }
    }

    fn add_expr(&mut self) -> PResult<Expr> {
        let mut l = self.mul_expr()?;
        loop {
            let op = match self.peek().tok {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => return Ok(l),
            };
            self.node()?;
            let pos = self.here();
            self.bump();
            let r = self.mul_expr()?;
            l = Expr::Arith(op, Box::new(l), Box::new(r), pos);
        }
    }

    fn mul_expr(&mut self) -> PResult<Expr> {
        let mut l = self.unary()?;
        loop {
            let op = match self.peek().tok {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                Tok::Percent => BinOp::Mod,
                _ => return Ok(l),
            };
            self.node()?;
            let pos = self.here();
            self.bump();
            let r = self.unary()?;
            l = Expr::Arith(op, Box::new(l), Box::new(r), pos);
        }
    }

    fn unary(&mut self) -> PResult<Expr> {
        let pos = self.here();
        let word_not = self.at_ident("not");
        let wrap: fn(Expr, Pos) -> Expr = match self.peek().tok {
            Tok::Not => |e, _| Expr::Not(Box::new(e)),
            _ if word_not => |e, _| Expr::Not(Box::new(e)),
            Tok::Minus => |e, p| match e {
                Expr::Const(Value::Int(n)) => Expr::Const(Value::Int(i64::wrapping_neg(n))),
                e => Expr::Neg(Box::new(e), p),
            },
            Tok::BitNot => |e, p| Expr::BitNot(Box::new(e), p),
            _ => return self.primary(),
        };
        self.node()?;
        self.bump();
        // Unary chains (`!!!!x`) nest like parentheses do.
        let inner = self.expr_nested(Self::unary)?;
        Ok(wrap(inner, pos))
    }

    fn expr_nested(&mut self, f: fn(&mut Self) -> PResult<Expr>) -> PResult<Expr> {
        if self.depth >= MAX_NESTING {
            let pos = self.here();
            self.error_at(&pos, too_deep());
            return Err(());
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn primary(&mut self) -> PResult<Expr> {
        let t = self.peek();
        match &t.tok {
            Tok::Int(n) => {
                self.bump();
                Ok(Expr::Const(Value::Int(*n)))
            }
            Tok::Str(s) => {
                self.bump();
                Ok(Expr::Const(Value::str(s)))
            }
            Tok::PVar(_) => {
                self.bump();
                Ok(Expr::Var(Box::new(self.pvar_token(t)?)))
            }
            Tok::LParen => {
                self.bump();
                let e = self.expr()?;
                self.expect(&Tok::RParen, "')' to close the parenthesis")?;
                Ok(e)
            }
            Tok::Ident(s) if s == "NULL" || s == "null" => {
                self.bump();
                Ok(Expr::Const(Value::Null))
            }
            Tok::Ident(_) if self.peek_at(1).tok == Tok::LParen => {
                Ok(Expr::Call(Box::new(self.call()?)))
            }
            Tok::Ident(s) => {
                let pos = self.pos(t);
                let msg = format!(
                    "unexpected '{s}' in an expression (strings need quotes, functions parentheses)"
                );
                self.error_at(&pos, msg);
                Err(())
            }
            _ => {
                self.expected("an expression");
                Err(())
            }
        }
    }

    /// Parses the pseudo-variable of a `Tok::PVar` token.
    pub fn pvar_token(&mut self, t: &Token) -> PResult<PVar> {
        let Tok::PVar(text) = &t.tok else {
            self.expected("a pseudo-variable");
            return Err(());
        };
        let pos = self.pos(t);
        parse_pvar(text, &pos, &mut self.names).map_err(|d| self.diags.push(d))
    }

    /// `name(arg, arg, ...)` with the name as the current token.
    pub fn call(&mut self) -> PResult<Call> {
        let t = self.bump();
        let pos = self.pos(t);
        let name = match &t.tok {
            Tok::Ident(s) => s.clone(),
            _ => String::new(),
        };
        self.expect(&Tok::LParen, &format!("'(' after {name}"))?;
        if name == "route" {
            let name_pos = self.here();
            let target = self.route_name("a route name inside route(...)")?;
            self.expect(&Tok::RParen, "')' after the route name")?;
            return Ok(Call {
                name,
                func: Func::Route {
                    name: target,
                    name_pos,
                    target: None,
                },
                args: Vec::new(),
                pos,
            });
        }
        let builtin = Builtin::from_name(&name);
        let mut args = Vec::new();
        if self.at(&Tok::RParen) {
            self.bump();
        } else {
            loop {
                args.push(self.arg(builtin)?);
                match self.peek().tok {
                    Tok::Comma => {
                        self.bump();
                    }
                    Tok::RParen => {
                        self.bump();
                        break;
                    }
                    _ => {
                        self.expected(&format!("',' or ')' in the arguments of {name}"));
                        return Err(());
                    }
                }
            }
        }
        Ok(Call {
            name,
            func: builtin.map_or(Func::Other, Func::Builtin),
            args,
            pos,
        })
    }

    /// `name;` — a call without parentheses.
    pub fn call_no_parens(&mut self) -> Call {
        let t = self.bump();
        let name = match &t.tok {
            Tok::Ident(s) => s.clone(),
            _ => String::new(),
        };
        Call {
            func: Builtin::from_name(&name).map_or(Func::Other, Func::Builtin),
            name,
            args: Vec::new(),
            pos: self.pos(t),
        }
    }

    fn arg(&mut self, builtin: Option<Builtin>) -> PResult<Arg> {
        let t = self.peek();
        let pos = self.pos(t);
        if matches!(t.tok, Tok::Comma | Tok::RParen) {
            return Ok(Arg {
                kind: ArgKind::Empty,
                pos,
            });
        }
        // A lone string argument is a format (pseudo-variables expanded on each call), except
        // where OpenSIPS takes the text as is: log() and the fetch_event_params spec.
        let lone_string =
            matches!(t.tok, Tok::Str(_)) && matches!(self.peek_at(1).tok, Tok::Comma | Tok::RParen);
        if lone_string {
            let Tok::Str(s) = &t.tok else { return Err(()) };
            self.bump();
            let kind = match builtin {
                Some(Builtin::Log) => ArgKind::Expr(Expr::Const(Value::str(s))),
                Some(Builtin::FetchEventParams) => ArgKind::Fetch(self.fetch_spec(s, &pos)?),
                _ => ArgKind::Expr(self.format_arg(t, s)?),
            };
            return Ok(Arg { kind, pos });
        }
        Ok(Arg {
            kind: ArgKind::Expr(self.expr()?),
            pos,
        })
    }

    fn format_arg(&mut self, t: &Token, decoded: &str) -> PResult<Expr> {
        if !decoded.contains('$') {
            return Ok(Expr::Const(Value::str(decoded)));
        }
        let src = &self.lx.sources[t.src as usize];
        let raw = src.text.get(t.start + 1..t.end - 1).unwrap_or("");
        let mut pos = self.pos(t);
        pos.col += 1;
        let parts = parse_format(raw, &pos, &mut self.names).map_err(|d| self.diags.push(d))?;
        if parts.iter().all(|p| matches!(p, FmtPart::Lit(_))) {
            return Ok(Expr::Const(Value::str(decoded)));
        }
        Ok(Expr::Format(parts))
    }

    /// `[name=]$pvar;[name=]$pvar...` (the 2.x event_route module's fetch_event_params).
    fn fetch_spec(&mut self, spec: &str, pos: &Pos) -> PResult<Vec<(Option<String>, PVar)>> {
        let mut out = Vec::new();
        for item in spec.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, var) = match item.split_once('=') {
                Some((n, v)) => (Some(n.trim().to_string()), v.trim()),
                None => (None, item),
            };
            let p = match parse_pvar(var, pos, &mut self.names) {
                Ok(p) if p.writable() && var.starts_with('$') => p,
                Ok(_) | Err(_) => {
                    let msg = format!(
                        "fetch_event_params: '{item}' is not [name=]$var(...) or [name=]$avp(...)"
                    );
                    self.error_at(pos, msg);
                    return Err(());
                }
            };
            out.push((name, p));
        }
        Ok(out)
    }
}

/// POSIX `regcomp(REG_EXTENDED|REG_ICASE)` as OpenSIPS uses for `=~`: case-insensitive, over
/// bytes, `.` matching newlines too.
pub(crate) fn compile_regex(pattern: &str) -> Result<regex::bytes::Regex, String> {
    regex::bytes::RegexBuilder::new(pattern)
        .case_insensitive(true)
        .unicode(false)
        .dot_matches_new_line(true)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| match e {
            regex::Error::Syntax(s) => s
                .lines()
                .last()
                .unwrap_or("syntax error")
                .trim()
                .to_string(),
            other => other.to_string(),
        })
}
