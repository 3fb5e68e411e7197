//! Pseudo-variable specs (`$avp(n)[1]{s.len}`) and xlog-style format strings.

use std::collections::HashMap;

use crate::ast::{FmtPart, PVar, ParamKey, PvIndex, PvKind, Trans};
use crate::diag::{Diagnostic, Pos};
use crate::lexer::{scan_pvar, unescape};

/// `$param($param($param(...)))` nests by recursion; real configs use one level.
const MAX_PVAR_NESTING: usize = 4;

/// Interns `$var` and `$avp` names into dense slots so the interpreter indexes a vector.
#[derive(Default, Debug)]
pub(crate) struct Names {
    vars: HashMap<String, u32>,
    avps: HashMap<String, u32>,
    pub var_names: Vec<String>,
    pub avp_names: Vec<String>,
}

impl Names {
    fn intern(map: &mut HashMap<String, u32>, list: &mut Vec<String>, name: &str) -> u32 {
        if let Some(&slot) = map.get(name) {
            return slot;
        }
        let slot = list.len() as u32;
        list.push(name.to_string());
        map.insert(name.to_string(), slot);
        slot
    }

    pub fn var(&mut self, name: &str) -> u32 {
        Self::intern(&mut self.vars, &mut self.var_names, name)
    }

    pub fn avp(&mut self, name: &str) -> u32 {
        Self::intern(&mut self.avps, &mut self.avp_names, name)
    }
}

/// Position `bytes` into `text` written at `pos` (same line: specs never span lines).
fn shifted(pos: &Pos, text: &str, bytes: usize) -> Pos {
    let mut p = pos.clone();
    let n = text.get(..bytes).map_or(0, |s| s.chars().count());
    p.col += n as u32;
    p
}

/// Parses a whole spec as the lexer delimited it (see [`scan_pvar`]); `pos` is where its `$` is.
pub(crate) fn parse_pvar(text: &str, pos: &Pos, names: &mut Names) -> Result<PVar, Diagnostic> {
    parse_nested(text, pos, names, 0)
}

fn parse_nested(
    text: &str,
    pos: &Pos,
    names: &mut Names,
    depth: usize,
) -> Result<PVar, Diagnostic> {
    let err = |at: usize, msg: String| Diagnostic::at(&shifted(pos, text, at), msg);
    if depth > MAX_PVAR_NESTING {
        return Err(err(0, "pseudo-variables nested too deeply".into()));
    }
    // `$(name(inner)[i]{tr})` is the bracketed spelling of `$name(inner)[i]{tr}`.
    let (body, base) = if text.starts_with("$(") && text.ends_with(')') {
        (&text[2..text.len() - 1], 2)
    } else {
        (text.get(1..).unwrap_or(""), 1)
    };
    let b = body.as_bytes();
    let name_len = b
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    if name_len == 0 {
        return Err(err(
            base,
            format!("expected a pseudo-variable name after '$' in {text}"),
        ));
    }
    let name = &body[..name_len];
    let mut i = name_len;
    let mut inner = None;
    if b.get(i) == Some(&b'(') {
        let end = group_end(b, i, b'(', b')')
            .ok_or_else(|| err(base + i, format!("missing ')' in {text}")))?;
        inner = Some((&body[i + 1..end], base + i + 1));
        i = end + 1;
    }
    let mut index = None;
    if b.get(i) == Some(&b'[') {
        let end = group_end(b, i, b'[', b']')
            .ok_or_else(|| err(base + i, format!("missing ']' in {text}")))?;
        let raw = body[i + 1..end].trim();
        index = Some(match raw {
            "*" => PvIndex::All,
            _ => raw.parse::<i64>().map(PvIndex::At).map_err(|_| {
                err(
                    base + i + 1,
                    format!("the index of {text} must be an integer or '*'"),
                )
            })?,
        });
        i = end + 1;
    }
    let mut trans = Vec::new();
    while b.get(i) == Some(&b'{') {
        let end = group_end(b, i, b'{', b'}')
            .ok_or_else(|| err(base + i, format!("missing '}}' in {text}")))?;
        trans.push(parse_trans(&body[i + 1..end]).map_err(|m| err(base + i, m))?);
        i = end + 1;
    }
    if i < body.len() {
        let c = body[i..].chars().next().unwrap_or(' ');
        return Err(err(
            base + i,
            format!("unexpected '{c}' in pseudo-variable {text}"),
        ));
    }

    let need_inner = |what: &str| -> Result<(&str, usize), Diagnostic> {
        match inner {
            Some((s, at)) if !s.trim().is_empty() => Ok((s.trim(), at)),
            _ => Err(err(
                base,
                format!("${what} needs a name in parentheses: ${what}(name)"),
            )),
        }
    };
    let no_inner = |what: &str| -> Result<(), Diagnostic> {
        match inner {
            Some((_, at)) => Err(err(at - 1, format!("${what} takes no argument"))),
            None => Ok(()),
        }
    };
    let kind = match name {
        "var" => PvKind::Var(names.var(need_inner("var")?.0)),
        "avp" => PvKind::Avp(names.avp(need_inner("avp")?.0)),
        "param" => {
            let (key, at) = need_inner("param")?;
            PvKind::Param(if key.starts_with('$') {
                let sub = parse_nested(key, &shifted(pos, text, at), names, depth + 1)?;
                ParamKey::Dynamic(Box::new(sub))
            } else if let Ok(n) = key.parse::<usize>() {
                if n == 0 {
                    return Err(err(at, "$param positions start at 1".into()));
                }
                ParamKey::Position(n)
            } else {
                ParamKey::Name(key.to_string())
            })
        }
        "time" => PvKind::Time(need_inner("time")?.0.to_string()),
        "Ts" => no_inner("Ts").map(|_| PvKind::Ts)?,
        "pid" => no_inner("pid").map(|_| PvKind::Pid)?,
        "null" => no_inner("null").map(|_| PvKind::Null)?,
        "rc" | "retcode" => no_inner(name).map(|_| PvKind::Rc)?,
        other => PvKind::Unknown(other.to_string()),
    };
    if index.is_some() && !matches!(kind, PvKind::Avp(_) | PvKind::Unknown(_)) {
        return Err(err(
            base + name_len,
            format!("${name} does not take an index"),
        ));
    }
    Ok(PVar {
        kind,
        index,
        trans,
        text: text.to_string(),
        pos: pos.clone(),
    })
}

/// Index of the byte closing the group that opens at `open_at`.
fn group_end(b: &[u8], open_at: usize, open: u8, close: u8) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &c) in b.iter().enumerate().skip(open_at) {
        if c == open {
            depth += 1;
        } else if c == close {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

fn parse_trans(spec: &str) -> Result<Trans, String> {
    let mut parts = spec.split(',').map(str::trim);
    let op = parts.next().unwrap_or("");
    let args: Vec<&str> = parts.collect();
    let no_args = |t: Trans| {
        if args.is_empty() {
            Ok(t)
        } else {
            Err(format!("transformation {{{op}}} takes no arguments"))
        }
    };
    match op {
        "s.len" => no_args(Trans::Len),
        "s.int" => no_args(Trans::Int),
        "s.tolower" => no_args(Trans::Lower),
        "s.toupper" => no_args(Trans::Upper),
        "s.substr" => match args.as_slice() {
            [a, b] => match (a.parse(), b.parse()) {
                (Ok(a), Ok(b)) => Ok(Trans::Substr(a, b)),
                _ => Err("{s.substr,offset,length} needs two integers".into()),
            },
            _ => Err("{s.substr,offset,length} needs two integers".into()),
        },
        _ => Err(format!(
            "unknown transformation {{{spec}}} (supported: s.len, s.int, s.substr, s.tolower, s.toupper)"
        )),
    }
}

/// Parses the raw text between the quotes of a string literal (escapes not yet decoded) into
/// literal runs and pseudo-variables. `pos` is the position of the first character after the
/// opening quote. Errors point at the offending pseudo-variable.
pub(crate) fn parse_format(
    raw: &str,
    pos: &Pos,
    names: &mut Names,
) -> Result<Vec<FmtPart>, Diagnostic> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let (mut line, mut col) = (pos.line, pos.col);
    let mut chars = raw.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, e)) = chars.next() {
                    unescape(e, &mut lit);
                    if e == '\n' {
                        line += 1;
                        col = 0;
                    } else {
                        col += 1;
                    }
                }
            }
            '$' => {
                let here = Pos {
                    source: pos.source.clone(),
                    line,
                    col,
                };
                let n = scan_pvar(&raw[i..])
                    .map_err(|(off, msg)| Diagnostic::at(&shifted(&here, &raw[i..], off), msg))?;
                if n == 0 {
                    lit.push('$');
                } else {
                    if !lit.is_empty() {
                        parts.push(FmtPart::Lit(std::mem::take(&mut lit)));
                    }
                    let spec = &raw[i..i + n];
                    parts.push(FmtPart::Var(parse_pvar(spec, &here, names)?));
                    col += spec.chars().count() as u32 - 1;
                    while chars.peek().is_some_and(|(j, _)| *j < i + n) {
                        chars.next();
                    }
                }
            }
            '\n' => {
                lit.push(c);
                line += 1;
                col = 0;
            }
            _ => lit.push(c),
        }
        col += 1;
    }
    if !lit.is_empty() {
        parts.push(FmtPart::Lit(lit));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Source;

    fn pos() -> Pos {
        Pos {
            source: Source::new("t.cfg", "x"),
            line: 3,
            col: 10,
        }
    }

    #[test]
    fn parses_kinds_indexes_and_transformations() {
        let mut n = Names::default();
        let p = parse_pvar("$avp(x)[-1]{s.substr,1,2}{s.len}", &pos(), &mut n).unwrap();
        assert!(matches!(p.kind, PvKind::Avp(0)));
        assert_eq!(p.index, Some(PvIndex::At(-1)));
        assert_eq!(p.trans, vec![Trans::Substr(1, 2), Trans::Len]);
        let p = parse_pvar("$(avp(y)[*])", &pos(), &mut n).unwrap();
        assert!(matches!(p.kind, PvKind::Avp(1)));
        assert_eq!(p.index, Some(PvIndex::All));
        let p = parse_pvar("$param($var(k))", &pos(), &mut n).unwrap();
        assert!(matches!(p.kind, PvKind::Param(ParamKey::Dynamic(_))));
        let p = parse_pvar("$param(2)", &pos(), &mut n).unwrap();
        assert!(matches!(p.kind, PvKind::Param(ParamKey::Position(2))));
        assert_eq!(n.var_names, vec!["k"]);
        assert_eq!(n.avp_names, vec!["x", "y"]);
    }

    #[test]
    fn errors_point_inside_the_spec() {
        let mut n = Names::default();
        let e = parse_pvar("$var(x){s.bogus}", &pos(), &mut n).unwrap_err();
        assert_eq!(e.pos.col, 17);
        assert!(e.message.starts_with("unknown transformation {s.bogus}"));
        let e = parse_pvar("$Ts(1)", &pos(), &mut n).unwrap_err();
        assert_eq!(
            (e.pos.col, e.message.as_str()),
            (13, "$Ts takes no argument")
        );
        let e = parse_pvar("$var(x)[1]", &pos(), &mut n).unwrap_err();
        assert_eq!(e.message, "$var does not take an index");
    }

    #[test]
    fn formats_split_literals_and_variables() {
        let mut n = Names::default();
        let parts = parse_format(r#"IP $avp(ip) blocked\n cost 5$"#, &pos(), &mut n).unwrap();
        assert_eq!(parts.len(), 3);
        assert!(matches!(&parts[0], FmtPart::Lit(s) if s == "IP "));
        assert!(matches!(&parts[1], FmtPart::Var(p) if p.pos.col == 13));
        assert!(matches!(&parts[2], FmtPart::Lit(s) if s == " blocked\n cost 5$"));
    }
}
