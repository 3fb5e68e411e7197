//! Tokens of the config language.
//!
//! `include_file`/`import_file` are expanded here, at token level, like OpenSIPS's cfg.lex does:
//! an included file may hold anything (top-level items, or statements inside a route), and every
//! token remembers which file it came from so errors name the included file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::{Diagnostic, Pos, Source};

/// Deeper than this is almost certainly a cycle the path check missed (symlinks, `..`).
const MAX_INCLUDE_DEPTH: usize = 16;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Int(i64),
    Str(String),
    /// A whole pseudo-variable spec as written, `$` included, e.g. `$avp(n)[1]{s.len}`.
    PVar(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Semi,
    Colon,
    Dot,
    Assign,
    ColonAssign,
    PlusAssign,
    MinusAssign,
    StarAssign,
    SlashAssign,
    PercentAssign,
    AndAssign,
    OrAssign,
    XorAssign,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Match,
    NotMatch,
    Not,
    And,
    Or,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    BitAnd,
    BitOr,
    BitXor,
    BitNot,
    Shl,
    Shr,
    /// Stands where the lexer reported an error; the parser skips it silently.
    Error,
    /// A character the grammar has no use for. Kept as a token (not a lexing error) because raw
    /// global values such as `socket=udp:1.2.3.4:5060` are taken verbatim from the source.
    Other(char),
    Eof,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = |f: &mut fmt::Formatter<'_>, s: &str| write!(f, "'{s}'");
        match self {
            Tok::Ident(s) => write!(f, "'{s}'"),
            Tok::Int(n) => write!(f, "number {n}"),
            Tok::Str(s) => write!(f, "string {s:?}"),
            Tok::PVar(s) => write!(f, "{s}"),
            Tok::LParen => p(f, "("),
            Tok::RParen => p(f, ")"),
            Tok::LBrace => p(f, "{"),
            Tok::RBrace => p(f, "}"),
            Tok::LBracket => p(f, "["),
            Tok::RBracket => p(f, "]"),
            Tok::Comma => p(f, ","),
            Tok::Semi => p(f, ";"),
            Tok::Colon => p(f, ":"),
            Tok::Dot => p(f, "."),
            Tok::Assign => p(f, "="),
            Tok::ColonAssign => p(f, ":="),
            Tok::PlusAssign => p(f, "+="),
            Tok::MinusAssign => p(f, "-="),
            Tok::StarAssign => p(f, "*="),
            Tok::SlashAssign => p(f, "/="),
            Tok::PercentAssign => p(f, "%="),
            Tok::AndAssign => p(f, "&="),
            Tok::OrAssign => p(f, "|="),
            Tok::XorAssign => p(f, "^="),
            Tok::Eq => p(f, "=="),
            Tok::Ne => p(f, "!="),
            Tok::Lt => p(f, "<"),
            Tok::Gt => p(f, ">"),
            Tok::Le => p(f, "<="),
            Tok::Ge => p(f, ">="),
            Tok::Match => p(f, "=~"),
            Tok::NotMatch => p(f, "!~"),
            Tok::Not => p(f, "!"),
            Tok::And => p(f, "&&"),
            Tok::Or => p(f, "||"),
            Tok::Plus => p(f, "+"),
            Tok::Minus => p(f, "-"),
            Tok::Star => p(f, "*"),
            Tok::Slash => p(f, "/"),
            Tok::Percent => p(f, "%"),
            Tok::BitAnd => p(f, "&"),
            Tok::BitOr => p(f, "|"),
            Tok::BitXor => p(f, "^"),
            Tok::BitNot => p(f, "~"),
            Tok::Shl => p(f, "<<"),
            Tok::Shr => p(f, ">>"),
            Tok::Other(c) => write!(f, "'{c}'"),
            Tok::Error => f.write_str("an invalid token"),
            Tok::Eof => f.write_str("end of file"),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Index into [`Lexed::sources`].
    pub src: u32,
    pub line: u32,
    pub col: u32,
    /// Byte span in the source text (quotes included for strings).
    pub start: usize,
    pub end: usize,
}

/// The token stream of a config and all its includes.
pub(crate) struct Lexed {
    pub sources: Vec<Arc<Source>>,
    pub tokens: Vec<Token>,
    pub diags: Vec<Diagnostic>,
}

impl Lexed {
    pub fn pos(&self, t: &Token) -> Pos {
        Pos {
            source: self.sources[t.src as usize].clone(),
            line: t.line,
            col: t.col,
        }
    }
}

/// Lexes `source`, expanding includes relative to `dir` (the directory of `source`).
/// `path` is the file `source` was read from, if any, so that a file including itself is caught.
pub(crate) fn lex(source: Arc<Source>, dir: Option<PathBuf>, path: Option<&Path>) -> Lexed {
    let mut out = Lexed {
        sources: Vec::new(),
        tokens: Vec::new(),
        diags: Vec::new(),
    };
    let mut stack: Vec<PathBuf> = path
        .and_then(|p| p.canonicalize().ok())
        .into_iter()
        .collect();
    lex_into(&mut out, source, dir, &mut stack);
    // The EOF token sits at the end of the main file, the place an "unexpected end" refers to.
    let (src, line, col, end) = match out.tokens.iter().rev().find(|t| t.src == 0) {
        Some(t) => {
            let s = &out.sources[0];
            let (line, col) = advance(&s.text[t.start..t.end], t.line, t.col);
            (0, line, col, t.end)
        }
        None => (0, 1, 1, 0),
    };
    if out.sources.is_empty() {
        out.sources.push(Source::new("<empty>", ""));
    }
    out.tokens.push(Token {
        tok: Tok::Eof,
        src,
        line,
        col,
        start: end,
        end,
    });
    out
}

/// Line/col after walking over `s` from (`line`, `col`).
pub(crate) fn advance(s: &str, mut line: u32, mut col: u32) -> (u32, u32) {
    for c in s.chars() {
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line, col)
}

fn lex_into(out: &mut Lexed, source: Arc<Source>, dir: Option<PathBuf>, stack: &mut Vec<PathBuf>) {
    let src = out.sources.len() as u32;
    out.sources.push(source.clone());
    let mut lx = Lexer {
        text: &source.text,
        i: 0,
        line: 1,
        col: 1,
        errors: Vec::new(),
    };
    let at = |line, col| Pos {
        source: source.clone(),
        line,
        col,
    };
    loop {
        let next = lx.next_token(src);
        for (line, col, msg) in lx.errors.drain(..) {
            out.diags.push(Diagnostic::at(&at(line, col), msg));
        }
        let Some(t) = next else { break };
        let keyword = match &t.tok {
            Tok::Ident(s) if s == "include_file" || s == "import_file" => s.clone(),
            _ => {
                out.tokens.push(t);
                continue;
            }
        };
        let kw_pos = at(t.line, t.col);
        let next = lx.next_token(src);
        for (line, col, msg) in lx.errors.drain(..) {
            out.diags.push(Diagnostic::at(&at(line, col), msg));
        }
        match next {
            Some(Token {
                tok: Tok::Str(path),
                ..
            }) => include(out, &keyword, &path, &kw_pos, dir.as_deref(), stack),
            Some(Token {
                tok: Tok::Error, ..
            }) => {}
            Some(other) => {
                let msg = format!(
                    "expected a quoted file name after {keyword}, found {}",
                    other.tok
                );
                out.diags
                    .push(Diagnostic::at(&at(other.line, other.col), msg));
                out.tokens.push(other);
            }
            None => {
                let msg = format!("expected a quoted file name after {keyword}, found end of file");
                out.diags.push(Diagnostic::at(&kw_pos, msg));
                break;
            }
        }
    }
}

fn include(
    out: &mut Lexed,
    keyword: &str,
    path: &str,
    at: &Pos,
    dir: Option<&Path>,
    stack: &mut Vec<PathBuf>,
) {
    let full = match dir {
        Some(d) if Path::new(path).is_relative() => d.join(path),
        _ => PathBuf::from(path),
    };
    if stack.len() >= MAX_INCLUDE_DEPTH {
        let msg = format!("{keyword} nested more than {MAX_INCLUDE_DEPTH} levels deep");
        out.diags.push(Diagnostic::at(at, msg));
        return;
    }
    let canon = full.canonicalize().unwrap_or_else(|_| full.clone());
    if stack.contains(&canon) {
        let msg =
            format!("{keyword} \"{path}\" includes itself (directly or through another file)");
        out.diags.push(Diagnostic::at(at, msg));
        return;
    }
    let text = match std::fs::read_to_string(&full) {
        Ok(t) => t,
        // import_file is the variant that tolerates a missing file (OpenSIPS semantics).
        Err(e) if keyword == "import_file" && e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            let msg = format!("cannot read {keyword} \"{}\": {e}", full.display());
            out.diags.push(Diagnostic::at(at, msg));
            return;
        }
    };
    let name = full.to_string_lossy().into_owned();
    let sub_dir = full.parent().map(Path::to_path_buf);
    stack.push(canon);
    lex_into(out, Source::new(name, text), sub_dir, stack);
    stack.pop();
}

type LexError = (u32, u32, String);

struct Lexer<'t> {
    text: &'t str,
    i: usize,
    line: u32,
    col: u32,
    /// Errors found while producing the last token; the token is then [`Tok::Error`].
    errors: Vec<LexError>,
}

impl<'t> Lexer<'t> {
    fn peek(&self) -> Option<char> {
        self.text[self.i..].chars().next()
    }

    fn peek2(&self) -> Option<char> {
        let mut it = self.text[self.i..].chars();
        it.next();
        it.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn bump_n(&mut self, bytes: usize) {
        let end = self.i + bytes;
        while self.i < end {
            if self.bump().is_none() {
                break;
            }
        }
    }

    /// Skips whitespace and comments. Reports an unterminated `/* */`.
    fn skip_trivia(&mut self) {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('#') => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                Some('/') if self.peek2() == Some('*') => {
                    let (line, col) = (self.line, self.col);
                    self.bump_n(2);
                    match self.text[self.i..].find("*/") {
                        Some(n) => self.bump_n(n + 2),
                        None => {
                            self.bump_n(self.text.len() - self.i);
                            self.errors
                                .push((line, col, "unterminated /* comment".into()));
                        }
                    }
                }
                _ => return,
            }
        }
    }

    fn next_token(&mut self, src: u32) -> Option<Token> {
        self.skip_trivia();
        let (start, line, col) = (self.i, self.line, self.col);
        let c = self.peek()?;
        let tok = match c {
            '"' | '\'' => self.string(c).unwrap_or_else(|e| self.error(e)),
            '$' => match scan_pvar(&self.text[self.i..]) {
                Ok(0) => {
                    self.bump();
                    Tok::Other('$')
                }
                Ok(n) => {
                    let s = self.text[self.i..self.i + n].to_string();
                    self.bump_n(n);
                    Tok::PVar(s)
                }
                Err((off, msg)) => {
                    // The group never closed on this line: the whole rest of it is unreadable.
                    let rest = self.text[self.i..]
                        .find('\n')
                        .unwrap_or(self.text.len() - self.i);
                    let (eline, ecol) = advance(&self.text[self.i..self.i + off], line, col);
                    self.bump_n(rest);
                    self.error((eline, ecol, msg))
                }
            },
            c if c.is_ascii_digit() => self.number().unwrap_or_else(|e| self.error(e)),
            c if c.is_ascii_alphabetic() || c == '_' => {
                let n = self.text[self.i..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(self.text.len() - self.i);
                let s = self.text[self.i..self.i + n].to_string();
                self.bump_n(n);
                Tok::Ident(s)
            }
            _ => self.punct(c),
        };
        Some(Token {
            tok,
            src,
            line,
            col,
            start,
            end: self.i,
        })
    }

    fn error(&mut self, e: LexError) -> Tok {
        self.errors.push(e);
        Tok::Error
    }

    fn punct(&mut self, c: char) -> Tok {
        let two = |l: &mut Self, t: Tok| {
            l.bump_n(2);
            t
        };
        let n = self.peek2();
        match (c, n) {
            ('=', Some('=')) => two(self, Tok::Eq),
            ('=', Some('~')) => two(self, Tok::Match),
            ('!', Some('=')) => two(self, Tok::Ne),
            ('!', Some('~')) => two(self, Tok::NotMatch),
            ('<', Some('=')) => two(self, Tok::Le),
            ('>', Some('=')) => two(self, Tok::Ge),
            ('&', Some('&')) => two(self, Tok::And),
            ('|', Some('|')) => two(self, Tok::Or),
            (':', Some('=')) => two(self, Tok::ColonAssign),
            ('+', Some('=')) => two(self, Tok::PlusAssign),
            ('-', Some('=')) => two(self, Tok::MinusAssign),
            ('*', Some('=')) => two(self, Tok::StarAssign),
            ('/', Some('=')) => two(self, Tok::SlashAssign),
            ('%', Some('=')) => two(self, Tok::PercentAssign),
            ('&', Some('=')) => two(self, Tok::AndAssign),
            ('|', Some('=')) => two(self, Tok::OrAssign),
            ('^', Some('=')) => two(self, Tok::XorAssign),
            ('<', Some('<')) => two(self, Tok::Shl),
            ('>', Some('>')) => two(self, Tok::Shr),
            _ => {
                self.bump();
                match c {
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    '{' => Tok::LBrace,
                    '}' => Tok::RBrace,
                    '[' => Tok::LBracket,
                    ']' => Tok::RBracket,
                    ',' => Tok::Comma,
                    ';' => Tok::Semi,
                    ':' => Tok::Colon,
                    '.' => Tok::Dot,
                    '=' => Tok::Assign,
                    '<' => Tok::Lt,
                    '>' => Tok::Gt,
                    '!' => Tok::Not,
                    '+' => Tok::Plus,
                    '-' => Tok::Minus,
                    '*' => Tok::Star,
                    '/' => Tok::Slash,
                    '%' => Tok::Percent,
                    '&' => Tok::BitAnd,
                    '|' => Tok::BitOr,
                    '^' => Tok::BitXor,
                    '~' => Tok::BitNot,
                    other => Tok::Other(other),
                }
            }
        }
    }

    fn number(&mut self) -> Result<Tok, LexError> {
        let (line, col) = (self.line, self.col);
        let rest = &self.text[self.i..];
        let (digits, radix, skip) = if rest.starts_with("0x") || rest.starts_with("0X") {
            let n = rest[2..]
                .find(|c: char| !c.is_ascii_hexdigit())
                .unwrap_or(rest.len() - 2);
            (&rest[2..2 + n], 16, 2)
        } else {
            let n = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let d = &rest[..n];
            // OpenSIPS reads `0[0-7]+` as octal (file modes such as 0666).
            let octal = d.len() > 1 && d.starts_with('0') && d.bytes().all(|b| b < b'8');
            (d, if octal { 8 } else { 10 }, 0)
        };
        let len = skip + digits.len();
        let text = &rest[..len];
        let parsed = i64::from_str_radix(digits, radix);
        self.bump_n(len);
        match parsed {
            Ok(n) => Ok(Tok::Int(n)),
            Err(_) => Err((line, col, format!("number {text} is out of range"))),
        }
    }

    fn string(&mut self, quote: char) -> Result<Tok, LexError> {
        let (line, col) = (self.line, self.col);
        self.bump();
        let mut s = String::new();
        loop {
            match self.bump() {
                // A newline ends an unterminated string so that one missing quote does not
                // swallow the rest of the file (a deliberate departure from OpenSIPS, which
                // allows raw newlines in strings; `\n` and backslash-newline still work).
                None | Some('\n') => {
                    let msg = format!("unterminated string: missing closing {quote}");
                    return Err((line, col, msg));
                }
                Some(c) if c == quote => return Ok(Tok::Str(s)),
                Some('\\') => match self.bump() {
                    None => {
                        return Err((
                            line,
                            col,
                            format!("unterminated string: missing closing {quote}"),
                        ))
                    }
                    Some(e) => unescape(e, &mut s),
                },
                Some(c) => s.push(c),
            }
        }
    }
}

/// Appends the meaning of backslash-`e`. Unknown escapes stay as written (backslash included) so
/// regular expressions such as `"^\+49"` reach the regex engine intact, as in OpenSIPS.
pub(crate) fn unescape(e: char, s: &mut String) {
    match e {
        'n' => s.push('\n'),
        't' => s.push('\t'),
        'r' => s.push('\r'),
        '"' | '\'' | '\\' => s.push(e),
        '\n' => {} // line continuation
        other => {
            s.push('\\');
            s.push(other);
        }
    }
}

/// Length in bytes of the pseudo-variable spec at the start of `s` (which starts with `$`), or
/// 0 when the `$` does not start one (a lone `$` in text). The error carries a byte offset.
///
/// Forms: `$name`, `$name(inner)`, then an optional `[index]`, then transformations
/// `{class.op,args}` written right after it; or the bracketed `$(name(inner)[index]{...})`.
pub(crate) fn scan_pvar(s: &str) -> Result<usize, (usize, String)> {
    let b = s.as_bytes();
    let mut i = 1;
    if b.get(1) == Some(&b'(') {
        return balanced(s, 1, b'(', b')');
    }
    if !b
        .get(1)
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
    {
        return Ok(0);
    }
    while b
        .get(i)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    {
        i += 1;
    }
    if b.get(i) == Some(&b'(') {
        i = balanced(s, i, b'(', b')')?;
    }
    if b.get(i) == Some(&b'[') {
        i = balanced(s, i, b'[', b']')?;
    }
    while b.get(i) == Some(&b'{') && looks_like_transformation(&s[i + 1..]) {
        i = balanced(s, i, b'{', b'}')?;
    }
    Ok(i)
}

/// `{s.len}` yes, `{ xlog(...) }` (a block after a condition) no.
fn looks_like_transformation(s: &str) -> bool {
    let class = s.bytes().take_while(u8::is_ascii_alphabetic).count();
    class > 0 && s.as_bytes().get(class) == Some(&b'.')
}

/// End (exclusive) of the bracketed group opening at `open_at`, nesting counted; must close on
/// the same line.
fn balanced(s: &str, open_at: usize, open: u8, close: u8) -> Result<usize, (usize, String)> {
    let mut depth = 0usize;
    for (i, &c) in s.as_bytes().iter().enumerate().skip(open_at) {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return Ok(i + 1);
            }
        } else if c == b'\n' {
            break;
        }
    }
    let what = s[..open_at].to_string();
    Err((
        open_at,
        format!(
            "unterminated pseudo-variable {what}: missing '{}'",
            close as char
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        let l = lex(Source::new("t.cfg", text), None, None);
        assert!(l.diags.is_empty(), "{:?}", l.diags);
        l.tokens.into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn pvars_with_index_and_transformations() {
        assert_eq!(
            toks("$avp(x)[1] $var(y){s.len}{s.int} $(avp(z)[0]) $Ts"),
            vec![
                Tok::PVar("$avp(x)[1]".into()),
                Tok::PVar("$var(y){s.len}{s.int}".into()),
                Tok::PVar("$(avp(z)[0])".into()),
                Tok::PVar("$Ts".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn block_after_pvar_is_not_a_transformation() {
        assert_eq!(
            toks("$var(x){ }"),
            vec![
                Tok::PVar("$var(x)".into()),
                Tok::LBrace,
                Tok::RBrace,
                Tok::Eof
            ]
        );
    }

    #[test]
    fn strings_comments_and_operators() {
        assert_eq!(
            toks("'a\\'b' \"c\\n\\+\" /* x\n y */ # z\n := =~ != 0x1F 0666 09"),
            vec![
                Tok::Str("a'b".into()),
                Tok::Str("c\n\\+".into()),
                Tok::ColonAssign,
                Tok::Match,
                Tok::Ne,
                Tok::Int(31),
                Tok::Int(0o666),
                Tok::Int(9),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn errors_carry_positions() {
        let l = lex(Source::new("t.cfg", "a\n  \"open\n"), None, None);
        assert_eq!(
            l.diags[0].headline(),
            "t.cfg:2:3: unterminated string: missing closing \""
        );
        let l = lex(Source::new("t.cfg", "x = $var(a\n"), None, None);
        assert_eq!(
            l.diags[0].headline(),
            "t.cfg:1:9: unterminated pseudo-variable $var: missing ')'"
        );
    }
}
