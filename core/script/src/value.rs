//! Runtime values and the OpenSIPS rules for operating on them.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::ast::{BinOp, CmpOp, Trans};
use crate::host::ScriptValue;

/// A pseudo-variable's value. Strings are shared so reading a variable never copies its text.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Str(Arc<str>),
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Str(Arc::from(s))
    }

    /// Truth of a value used alone as a condition: set and non-zero / non-empty.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Int(n) => *n != 0,
            Value::Str(s) => !s.is_empty(),
        }
    }

    /// The form pseudo-variables take when printed by `xlog`: `$null` prints as `<null>`.
    pub fn print_into(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("<null>"),
            Value::Int(n) => push_int(out, *n),
            Value::Str(s) => out.push_str(s),
        }
    }

    /// The form used by string concatenation: `$null` is empty.
    pub fn concat_into(&self, out: &mut String) {
        match self {
            Value::Null => {}
            Value::Int(n) => push_int(out, *n),
            Value::Str(s) => out.push_str(s),
        }
    }

    /// An integer view: ints as they are, strings only when they are a whole decimal number.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Null => None,
            Value::Int(n) => Some(*n),
            Value::Str(s) => parse_int(s),
        }
    }

    pub fn to_script(&self) -> ScriptValue {
        match self {
            Value::Null => ScriptValue::Null,
            Value::Int(n) => ScriptValue::Int(*n),
            Value::Str(s) => ScriptValue::Str(s.to_string()),
        }
    }

    /// Overwrites `dst`, reusing its string buffer (the raise path calls this per parameter per
    /// event, so it must not allocate once warm).
    pub fn store_into(&self, dst: &mut ScriptValue) {
        match (self, dst) {
            (Value::Str(s), ScriptValue::Str(d)) => {
                d.clear();
                d.push_str(s);
            }
            (v, d) => *d = v.to_script(),
        }
    }

    pub fn from_script(v: &ScriptValue) -> Value {
        match v {
            ScriptValue::Null => Value::Null,
            ScriptValue::Int(n) => Value::Int(*n),
            ScriptValue::Str(s) => Value::str(s),
        }
    }
}

fn push_int(out: &mut String, n: i64) {
    use std::fmt::Write;
    let _ = write!(out, "{n}");
}

/// A whole decimal number with an optional sign, as OpenSIPS's `str2sint` accepts.
pub(crate) fn parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `+ - * / % & | ^ << >>` with OpenSIPS semantics: `+` concatenates when either side is a string
/// (even a numeric one: `"1" + 2` is `"12"`); ints wrap on overflow like the C arithmetic did;
/// `$null` counts as 0, or as empty text in a concatenation.
pub(crate) fn arith(op: BinOp, a: &Value, b: &Value) -> Result<Value, String> {
    if op == BinOp::Add && (matches!(a, Value::Str(_)) || matches!(b, Value::Str(_))) {
        let mut s = String::new();
        a.concat_into(&mut s);
        b.concat_into(&mut s);
        return Ok(Value::Str(Arc::from(s)));
    }
    let x = num(a, op)?;
    let y = num(b, op)?;
    Ok(Value::Int(match op {
        BinOp::Add => x.wrapping_add(y),
        BinOp::Sub => x.wrapping_sub(y),
        BinOp::Mul => x.wrapping_mul(y),
        BinOp::Div | BinOp::Mod if y == 0 => return Err("division by zero".into()),
        BinOp::Div => x.wrapping_div(y),
        BinOp::Mod => x.wrapping_rem(y),
        BinOp::BitAnd => x & y,
        BinOp::BitOr => x | y,
        BinOp::BitXor => x ^ y,
        BinOp::Shl => x.wrapping_shl(y as u32),
        BinOp::Shr => x.wrapping_shr(y as u32),
    }))
}

fn num(v: &Value, op: BinOp) -> Result<i64, String> {
    match v {
        Value::Null => Ok(0),
        Value::Int(n) => Ok(*n),
        Value::Str(s) => parse_int(s).ok_or_else(|| {
            format!(
                "operator '{}' needs numbers, found string {s:?}",
                op.symbol()
            )
        }),
    }
}

/// Comparisons as OpenSIPS does them: numerically when both sides are numbers, otherwise as
/// text compared case-insensitively (strncasecmp); `$null` only equals `$null`.
pub(crate) fn compare(op: CmpOp, a: &Value, b: &Value) -> bool {
    let ord = match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) | (_, Value::Null) => return op == CmpOp::Ne,
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Int(x), Value::Str(s)) => match parse_int(s) {
            Some(y) => x.cmp(&y),
            None => cmp_text(&x.to_string(), s),
        },
        (Value::Str(s), Value::Int(y)) => match parse_int(s) {
            Some(x) => x.cmp(y),
            None => cmp_text(s, &y.to_string()),
        },
        (Value::Str(x), Value::Str(y)) => cmp_text(x, y),
    };
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    }
}

fn cmp_text(a: &str, b: &str) -> Ordering {
    let lower = |s: &str| {
        s.bytes()
            .map(|c| c.to_ascii_lowercase())
            .collect::<Vec<u8>>()
    };
    if a.eq_ignore_ascii_case(b) {
        Ordering::Equal
    } else {
        lower(a).cmp(&lower(b))
    }
}

/// Applies one string transformation. A transformation that cannot apply (`{s.int}` of
/// `"abc"`, an offset past the end) yields `$null`, as a failed transformation does in OpenSIPS.
pub(crate) fn transform(t: &Trans, v: Value) -> Value {
    let text = |v: &Value| {
        let mut s = String::new();
        v.concat_into(&mut s);
        s
    };
    match t {
        Trans::Len => match &v {
            Value::Null => Value::Int(0),
            Value::Str(s) => Value::Int(s.len() as i64),
            Value::Int(_) => Value::Int(text(&v).len() as i64),
        },
        Trans::Int => match &v {
            Value::Int(_) => v,
            Value::Str(s) => parse_int(s).map_or(Value::Null, Value::Int),
            Value::Null => Value::Null,
        },
        Trans::Lower | Trans::Upper if v == Value::Null => Value::Null,
        Trans::Lower => Value::Str(Arc::from(text(&v).to_ascii_lowercase())),
        Trans::Upper => Value::Str(Arc::from(text(&v).to_ascii_uppercase())),
        Trans::Substr(_, _) if v == Value::Null => Value::Null,
        Trans::Substr(off, len) => {
            substr(&text(&v), *off, *len).map_or(Value::Null, |s| Value::str(&s))
        }
    }
}

/// `{s.substr,offset,length}`: a negative offset counts from the end; length 0 means "to the
/// end", a negative length stops that many bytes before the end. Byte-based like OpenSIPS; a cut
/// inside a UTF-8 character is repaired rather than refused.
fn substr(s: &str, off: i64, len: i64) -> Option<String> {
    let n = s.len() as i64;
    let start = if off < 0 { n + off } else { off };
    if start < 0 || start > n {
        return None;
    }
    let end = match len {
        0 => n,
        l if l > 0 => start.saturating_add(l).min(n),
        l => n + l,
    };
    if end < start {
        return None;
    }
    let bytes = &s.as_bytes()[start as usize..end as usize];
    Some(String::from_utf8_lossy(bytes).into_owned())
}

/// Seconds since the Unix epoch (`$Ts`).
pub(crate) fn unix_now() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(_) => 0,
    }
}

/// `$time(fmt)`: strftime over local time, as OpenSIPS does.
pub(crate) fn strftime_local(fmt: &str, t: i64) -> Result<String, String> {
    if fmt.is_empty() {
        return Ok(String::new());
    }
    let cfmt =
        std::ffi::CString::new(fmt).map_err(|_| "$time format contains a NUL byte".to_string())?;
    let tt = t as libc::time_t;
    // SAFETY: `tm` is plain old data; localtime_r only writes into it and reports failure by
    // returning NULL, which we check before reading it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&tt, &mut tm) }.is_null() {
        return Err("localtime_r failed".into());
    }
    let mut cap = 128usize;
    // strftime returns 0 both for "too small" and for an empty result: grow a few times, then
    // accept the empty string.
    while cap <= 16 * 1024 {
        let mut buf = vec![0u8; cap];
        // SAFETY: buf is writable for `cap` bytes, cfmt is NUL-terminated, tm is initialised;
        // strftime writes at most `cap` bytes and returns how many it wrote (excluding NUL).
        let n = unsafe {
            libc::strftime(
                buf.as_mut_ptr().cast::<libc::c_char>(),
                cap,
                cfmt.as_ptr(),
                &tm,
            )
        };
        if n > 0 {
            buf.truncate(n);
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
        cap *= 4;
    }
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    #[test]
    fn plus_concatenates_when_a_side_is_a_string() {
        assert_eq!(arith(BinOp::Add, &s("a"), &Value::Int(1)), Ok(s("a1")));
        assert_eq!(arith(BinOp::Add, &s("1"), &Value::Int(2)), Ok(s("12")));
        assert_eq!(
            arith(BinOp::Add, &Value::Int(1), &Value::Int(2)),
            Ok(Value::Int(3))
        );
        assert_eq!(
            arith(BinOp::Mul, &s("3"), &Value::Int(2)),
            Ok(Value::Int(6))
        );
        assert_eq!(
            arith(BinOp::Add, &Value::Null, &Value::Int(2)),
            Ok(Value::Int(2))
        );
        assert_eq!(
            arith(BinOp::Div, &Value::Int(1), &Value::Int(0)),
            Err("division by zero".into())
        );
        assert_eq!(
            arith(BinOp::Sub, &s("x"), &Value::Int(0)),
            Err("operator '-' needs numbers, found string \"x\"".into())
        );
        assert_eq!(
            arith(BinOp::Add, &Value::Int(i64::MAX), &Value::Int(1)),
            Ok(Value::Int(i64::MIN))
        );
    }

    #[test]
    fn comparisons() {
        assert!(compare(CmpOp::Eq, &s("ABC"), &s("abc")));
        assert!(compare(CmpOp::Eq, &s("10"), &Value::Int(10)));
        assert!(compare(CmpOp::Lt, &Value::Int(9), &s("10")));
        assert!(compare(CmpOp::Lt, &s("abc"), &s("abd")));
        assert!(compare(CmpOp::Ne, &Value::Null, &Value::Int(0)));
        assert!(!compare(CmpOp::Eq, &Value::Null, &s("")));
        assert!(compare(CmpOp::Eq, &Value::Null, &Value::Null));
        assert!(!compare(CmpOp::Lt, &Value::Null, &Value::Int(1)));
    }

    #[test]
    fn transformations() {
        assert_eq!(transform(&Trans::Len, s("hello")), Value::Int(5));
        assert_eq!(transform(&Trans::Len, Value::Int(-42)), Value::Int(3));
        assert_eq!(transform(&Trans::Int, s("-17")), Value::Int(-17));
        assert_eq!(transform(&Trans::Int, s("17a")), Value::Null);
        assert_eq!(transform(&Trans::Substr(1, 3), s("abcdef")), s("bcd"));
        assert_eq!(transform(&Trans::Substr(2, 0), s("abcdef")), s("cdef"));
        assert_eq!(transform(&Trans::Substr(-2, 0), s("abcdef")), s("ef"));
        assert_eq!(transform(&Trans::Substr(1, -1), s("abcdef")), s("bcde"));
        assert_eq!(transform(&Trans::Substr(9, 1), s("abc")), Value::Null);
        assert_eq!(transform(&Trans::Upper, s("aB")), s("AB"));
    }

    #[test]
    fn strftime_formats_fields() {
        // 2001-09-09 01:46:40 UTC; the hour depends on the local zone, the year does not here.
        let out = strftime_local("%Y|%%", 1_000_000_000).unwrap();
        assert_eq!(out, "2001|%");
        assert_eq!(strftime_local("", 0).unwrap(), "");
    }
}
