//! Statements and route bodies.

use crate::ast::{AssignOp, BinOp, Block, Case, Expr, Stmt};
use crate::diag::Pos;
use crate::lexer::Tok;
use crate::value::Value;
use crate::Literal;

use super::{too_deep, PResult, Parser, MAX_NESTING};

impl Parser<'_> {
    /// Statements up to the closing `}` (consumed). `open` is where the `{` was, for the message
    /// when it never closes.
    pub fn block_body(&mut self, what: &str, open: &Pos) -> Block {
        let mut out = Vec::new();
        if self.depth >= MAX_NESTING {
            self.error_at(open, too_deep());
            self.sync_stmt_block();
            return out;
        }
        self.depth += 1;
        loop {
            if self.at(&Tok::RBrace) {
                self.bump();
                break;
            }
            if self.at_eof() || self.at_top_keyword() {
                let msg = format!(
                    "expected '}}' to close {what} (opened at {}:{}), found {}",
                    open.line,
                    open.col,
                    self.peek().tok
                );
                let pos = self.here();
                self.error_at(&pos, msg);
                break;
            }
            self.stmt_into(&mut out);
        }
        self.depth -= 1;
        out
    }

    /// After an over-deep `{`: skip to its matching `}`.
    fn sync_stmt_block(&mut self) {
        let mut depth = 1usize;
        while !self.at_eof() && depth > 0 {
            match self.bump().tok {
                Tok::LBrace => depth += 1,
                Tok::RBrace => depth -= 1,
                _ => {}
            }
        }
    }

    /// Parses one statement into `out`, resynchronising after an error.
    fn stmt_into(&mut self, out: &mut Block) {
        let start = self.i;
        if self.at(&Tok::Semi) {
            self.bump();
            return;
        }
        match self.stmt() {
            Ok(s) => out.push(s),
            Err(()) => self.sync_stmt(start),
        }
    }

    /// `{ ... }` or a single statement (the bodies of `if`/`else`).
    fn body(&mut self, what: &str) -> PResult<Block> {
        if self.at(&Tok::LBrace) {
            let open = self.here();
            self.bump();
            return Ok(self.block_body(what, &open));
        }
        if self.depth >= MAX_NESTING {
            let pos = self.here();
            self.error_at(&pos, too_deep());
            return Err(());
        }
        self.depth += 1;
        let r = self.stmt();
        self.depth -= 1;
        r.map(|s| vec![s])
    }

    fn stmt(&mut self) -> PResult<Stmt> {
        let t = self.peek();
        let pos = self.pos(t);
        match &t.tok {
            Tok::LBrace => {
                self.bump();
                Ok(Stmt::Block(self.block_body("the block", &pos)))
            }
            Tok::PVar(_) => self.assignment(),
            Tok::Ident(w) => match w.as_str() {
                "if" => self.if_stmt(),
                "while" => {
                    self.bump();
                    let cond = self.condition("while")?;
                    let body = self.body("the body of while")?;
                    Ok(Stmt::While { cond, body, pos })
                }
                "switch" => {
                    // Case bodies are not blocks: count the switch itself as a nesting level.
                    if self.depth >= MAX_NESTING {
                        self.error_at(&pos, too_deep());
                        return Err(());
                    }
                    self.depth += 1;
                    let r = self.switch(pos);
                    self.depth -= 1;
                    r
                }
                "exit" | "drop" | "break" | "esac" => {
                    self.bump();
                    self.semi(&format!("'{w}'"));
                    Ok(match w.as_str() {
                        "exit" => Stmt::Exit,
                        "drop" => Stmt::Drop,
                        _ => Stmt::Break(pos),
                    })
                }
                "return" => {
                    self.bump();
                    let value = if self.at(&Tok::Semi) {
                        None
                    } else {
                        Some(self.expr()?)
                    };
                    self.semi("'return'");
                    Ok(Stmt::Return(value, pos))
                }
                "else" => {
                    self.error_at(&pos, "'else' without a matching 'if'");
                    Err(())
                }
                _ if self.peek_at(1).tok == Tok::LParen => {
                    let call = self.call()?;
                    self.semi(&format!("the call to {}", call.name));
                    Ok(Stmt::Call(call))
                }
                // OpenSIPS lets a function without arguments be called without parentheses.
                _ if self.peek_at(1).tok == Tok::Semi => {
                    let call = self.call_no_parens();
                    self.bump();
                    Ok(Stmt::Call(call))
                }
                _ => {
                    self.expected("a statement");
                    Err(())
                }
            },
            _ => {
                self.expected("a statement");
                Err(())
            }
        }
    }

    fn condition(&mut self, what: &str) -> PResult<Expr> {
        self.expect(&Tok::LParen, &format!("'(' after {what}"))?;
        let e = self.expr()?;
        self.expect(&Tok::RParen, &format!("')' after the condition of {what}"))?;
        Ok(e)
    }

    fn if_stmt(&mut self) -> PResult<Stmt> {
        self.bump();
        let cond = self.condition("if")?;
        let then = self.body("the body of if")?;
        let els = if self.at_ident("else") {
            self.bump();
            self.body("the body of else")?
        } else {
            Vec::new()
        };
        Ok(Stmt::If { cond, then, els })
    }

    fn switch(&mut self, pos: Pos) -> PResult<Stmt> {
        self.bump();
        let subject = self.condition("switch")?;
        let open = self.here();
        self.expect(&Tok::LBrace, "'{' to open the body of switch")?;
        let mut cases: Vec<Case> = Vec::new();
        loop {
            let t = self.peek();
            let tpos = self.pos(t);
            match &t.tok {
                Tok::RBrace => {
                    self.bump();
                    break;
                }
                Tok::Ident(w) if w == "case" || w == "default" => {
                    self.bump();
                    let label = if w == "case" {
                        match self.literal() {
                            Some(Literal::Int(n)) => Some(Value::Int(n)),
                            Some(Literal::Str(s)) => Some(Value::str(&s)),
                            None => {
                                self.expected("a number or a string after case");
                                self.sync_stmt(self.i);
                                continue;
                            }
                        }
                    } else {
                        if cases.iter().any(|c| c.label.is_none()) {
                            self.error_at(&tpos, "a switch may have only one default");
                        }
                        None
                    };
                    if self.expect(&Tok::Colon, &format!("':' after {w}")).is_err() {
                        self.sync_stmt(self.i);
                    }
                    let mut body = Vec::new();
                    while !(self.at(&Tok::RBrace)
                        || self.at_eof()
                        || self.at_ident("case")
                        || self.at_ident("default")
                        || self.at_top_keyword())
                    {
                        self.stmt_into(&mut body);
                    }
                    cases.push(Case { label, body });
                }
                _ if self.at_eof() || self.at_top_keyword() => {
                    let msg = format!(
                        "expected '}}' to close switch (opened at {}:{}), found {}",
                        open.line, open.col, t.tok
                    );
                    self.error_at(&tpos, msg);
                    break;
                }
                _ => {
                    self.expected("case, default or '}' in switch");
                    let start = self.i;
                    self.sync_stmt(start);
                }
            }
        }
        Ok(Stmt::Switch {
            subject,
            cases,
            pos,
        })
    }

    fn assignment(&mut self) -> PResult<Stmt> {
        let t = self.bump();
        let pos = self.pos(t);
        let target = self.pvar_token(t)?;
        if !target.writable() {
            let msg = format!("cannot assign to {}: it is read-only", target.text);
            self.error_at(&pos, msg);
            return Err(());
        }
        let op = match self.peek().tok {
            Tok::Assign => AssignOp::Set,
            Tok::ColonAssign => AssignOp::Replace,
            Tok::PlusAssign => AssignOp::Op(BinOp::Add),
            Tok::MinusAssign => AssignOp::Op(BinOp::Sub),
            Tok::StarAssign => AssignOp::Op(BinOp::Mul),
            Tok::SlashAssign => AssignOp::Op(BinOp::Div),
            Tok::PercentAssign => AssignOp::Op(BinOp::Mod),
            Tok::AndAssign => AssignOp::Op(BinOp::BitAnd),
            Tok::OrAssign => AssignOp::Op(BinOp::BitOr),
            Tok::XorAssign => AssignOp::Op(BinOp::BitXor),
            _ => {
                self.expected(&format!("'=', ':=' or '+=' after {}", target.text));
                return Err(());
            }
        };
        self.bump();
        let value = self.expr()?;
        self.semi("the assignment");
        Ok(Stmt::Assign {
            target,
            op,
            value,
            pos,
        })
    }
}
