//! `payload`: an event with any params (names, byte strings, ints, nulls) through every payload
//! builder: the shared JSON-RPC notification (`evi_abi::payload`, as the host and event_stream
//! build it), event_stream's method override / `event_param` / reliable-mode id, the flatstore
//! line and the XML-RPC body. JSON must parse and carry exactly the values (invalid UTF-8 as
//! U+FFFD); a flatstore record is exactly one line with one field per value; the XML-RPC body
//! must be well-formed XML 1.0 and carry the values.

use arbitrary::Arbitrary;
use evi_sdk::testing::TestEvent;
use evi_sdk::{Event, Value as EvValue};
use serde_json::{Map, Value};

#[derive(Arbitrary, Debug)]
pub struct Input {
    /// Mapped to a valid event name (1..=64 printable ASCII bytes), as the registry enforces.
    name: Vec<u8>,
    params: Vec<Param>,
    method: Option<String>,
    event_param: Option<String>,
    id: u64,
    delimiter: String,
    escape: Option<String>,
    suppress_name: bool,
    xml_method: String,
    xml_struct: bool,
}

#[derive(Arbitrary, Debug)]
pub struct Param {
    name: Option<String>,
    value: Val,
}

#[derive(Arbitrary, Debug)]
pub enum Val {
    Int(i64),
    Str(Vec<u8>),
    Null,
}

/// What the SDK hands a module: an empty name is a positional param.
fn param_name(p: &Param) -> Option<&str> {
    p.name.as_deref().filter(|n| !n.is_empty())
}

fn event_name(raw: &[u8]) -> String {
    let s: String = raw
        .iter()
        .filter(|b| b.is_ascii_graphic())
        .take(64)
        .map(|&b| char::from(b))
        .collect();
    if s.is_empty() {
        "E".into()
    } else {
        s
    }
}

pub fn check(input: &Input) {
    let name = event_name(&input.name);
    let mut ev = TestEvent::new(&name);
    for p in &input.params {
        let n = p.name.as_deref();
        ev = match &p.value {
            Val::Int(i) => ev.int(n, *i),
            Val::Str(s) => ev.str(n, s),
            Val::Null => ev.null(n),
        };
    }
    ev.with(|e| {
        assert_eq!(e.len(), input.params.len());
        json(input, &name, e);
        flatstore(input, &name, e);
        xmlrpc(input, &name, e);
    });
}

fn json_value(v: &Val) -> Value {
    match v {
        Val::Int(i) => Value::from(*i),
        Val::Str(s) => Value::from(String::from_utf8_lossy(s).into_owned()),
        Val::Null => Value::Null,
    }
}

/// The notification `payload::notification` must produce, as serde_json reads it (a later
/// duplicate key replaces the earlier value in place, on both sides).
fn expected(input: &Input, method: &str, event_param: Option<(&str, &str)>) -> Value {
    let mut top = Map::new();
    top.insert("jsonrpc".into(), "2.0".into());
    top.insert("method".into(), method.into());
    if let Some(first) = input.params.first() {
        let params = if param_name(first).is_some() {
            let mut m = Map::new();
            if let Some((k, v)) = event_param {
                m.insert(k.into(), v.into());
            }
            for p in &input.params {
                m.insert(param_name(p).unwrap_or("").into(), json_value(&p.value));
            }
            Value::Object(m)
        } else {
            let mut a = Vec::new();
            if let Some((_, v)) = event_param {
                a.push(Value::from(v));
            }
            a.extend(input.params.iter().map(|p| json_value(&p.value)));
            Value::Array(a)
        };
        top.insert("params".into(), params);
    }
    Value::Object(top)
}

fn parse_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        panic!(
            "payload is not JSON ({e}): {}",
            String::from_utf8_lossy(bytes)
        )
    })
}

fn json(input: &Input, name: &str, e: &Event<'_>) {
    // The host's shared payload, as every JSON transport gets it.
    let raw = evi_sdk::abi::payload::notification(name, e.raw_params(), None);
    assert!(!raw.contains(&b'\n'), "the payload is one line");
    assert_eq!(parse_json(&raw), expected(input, name, None));

    // event_stream: method override and event_param.
    let method = input.method.as_deref();
    let ep = input.event_param.as_deref();
    let built = event_stream::payload::notification(e, method, ep);
    let want = expected(
        input,
        method.unwrap_or(name),
        ep.filter(|_| !input.params.is_empty()).map(|k| (k, name)),
    );
    assert_eq!(parse_json(&built), want);

    // Reliable mode: `"id":N` first, the rest unchanged.
    let mut with_id = Vec::new();
    event_stream::payload::with_id(&mut with_id, input.id, &built);
    let Value::Object(got) = parse_json(&with_id) else {
        panic!("not an object");
    };
    let mut got = got.into_iter();
    assert_eq!(got.next(), Some(("id".to_string(), Value::from(input.id))));
    let Value::Object(want) = want else {
        unreachable!()
    };
    // Then the same object, in the same order.
    assert!(got.eq(want.into_iter().filter(|(k, _)| k != "id")));
}

fn flatstore(input: &Input, name: &str, e: &Event<'_>) {
    let Ok(fmt) = event_flatstore::line::LineFormat::new(
        &input.delimiter,
        input.escape.as_deref(),
        input.suppress_name,
    ) else {
        return;
    };
    let mut out = b"previous record\n".to_vec();
    let before = out.len();
    fmt.append(e, &mut out);
    let line = &out[before..];
    assert_eq!(line.last(), Some(&b'\n'), "a record ends with LF");
    let body = &line[..line.len() - 1];
    assert!(
        !body.contains(&b'\n') && !body.contains(&b'\r'),
        "a record is exactly one line: {:?}",
        String::from_utf8_lossy(line)
    );
    if !input.suppress_name {
        assert!(body.starts_with(name.as_bytes()));
    }
    // One field per value, when fields cannot contain the delimiter on their own: a one-byte
    // delimiter that is not in the event name or an int's digits (values are escaped), nor
    // one of `\`, `n`, `r`, which the CR/LF escapes write, nor a space without
    // `escape_delimiter` (the default replacement is a space). Both are OpenSIPS's format.
    let d = input.delimiter.as_bytes();
    let fields = input.params.len() + usize::from(!input.suppress_name);
    let in_ints = input.params.iter().any(|p| match p.value {
        Val::Int(i) => i.to_string().as_bytes().contains(&d[0]),
        _ => false,
    });
    let in_name = !input.suppress_name && name.as_bytes().contains(&d[0]);
    let in_escapes = b"\\nr".contains(&d[0]) || (d[0] == b' ' && input.escape.is_none());
    if d.len() == 1 && fields > 0 && !in_ints && !in_name && !in_escapes {
        let n = body.split(|&b| b == d[0]).count();
        assert_eq!(n, fields, "{:?}", String::from_utf8_lossy(line));
    }
}

/// What a string becomes in XML-RPC text, once an XML parser has read it back: invalid UTF-8
/// and characters XML 1.0 cannot carry are U+FFFD (CR survives as `&#13;`).
fn xml_text(s: &[u8]) -> String {
    String::from_utf8_lossy(s)
        .chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            '\0'..='\x1f' | '\x7f' | '\u{fffe}' | '\u{ffff}' => '\u{fffd}',
            c => c,
        })
        .collect()
}

fn kids<'a, 'i>(n: roxmltree::Node<'a, 'i>) -> Vec<roxmltree::Node<'a, 'i>> {
    n.children().filter(|c| c.is_element()).collect()
}

/// An element's text; `&#13;` and the entities are decoded by the parser.
fn text_of(n: roxmltree::Node<'_, '_>) -> String {
    n.children().filter_map(|c| c.text()).collect()
}

fn xmlrpc(input: &Input, name: &str, e: &Event<'_>) {
    use event_xmlrpc::payload::{body, NamedParams};
    let named = if input.xml_struct {
        NamedParams::Struct
    } else {
        NamedParams::NameElement
    };
    let out = body(&input.xml_method, e, named);
    let text = std::str::from_utf8(&out).expect("the XML-RPC body is UTF-8");
    let doc = roxmltree::Document::parse(text)
        .unwrap_or_else(|err| panic!("the XML-RPC body is not XML ({err}):\n{text}"));
    let root = doc.root_element();
    assert!(root.has_tag_name("methodCall"));
    let top = kids(root);
    assert_eq!(top.len(), 2);
    assert!(top[0].has_tag_name("methodName"));
    assert_eq!(text_of(top[0]), xml_text(input.xml_method.as_bytes()));
    let params = kids(top[1]);
    assert_eq!(params.len(), input.params.len() + 1);
    // The event name, first.
    let v = kids(params[0]);
    assert_eq!(text_of(kids(v[0])[0]), name);
    for (p, el) in input.params.iter().zip(&params[1..]) {
        let mut parts = kids(*el);
        if let (Some(_), NamedParams::Struct) = (param_name(p), named) {
            // <value><struct><member><name/><value/></member></struct></value>
            let member = kids(kids(parts[0])[0])[0];
            parts = kids(member);
        }
        let value = match param_name(p) {
            Some(n) => {
                assert!(parts[0].has_tag_name("name"));
                assert_eq!(text_of(parts[0]), xml_text(n.as_bytes()));
                parts[1]
            }
            None => {
                assert_eq!(parts.len(), 1);
                parts[0]
            }
        };
        let typed = kids(value)[0];
        match &p.value {
            Val::Int(i) => {
                assert!(typed.has_tag_name("int"));
                assert_eq!(text_of(typed), i.to_string());
            }
            Val::Str(s) => {
                assert!(typed.has_tag_name("string"));
                assert_eq!(text_of(typed), xml_text(s));
            }
            Val::Null => {
                assert!(typed.has_tag_name("string"));
                assert_eq!(text_of(typed), "");
            }
        }
    }
    // Values as the module sees them (EvValue) line up with what was built.
    for (p, got) in input.params.iter().zip(e.params()) {
        match (&p.value, got.value) {
            (Val::Int(a), EvValue::Int(b)) => assert_eq!(*a, b),
            (Val::Str(a), EvValue::Str(b)) => assert_eq!(a.as_slice(), b),
            (Val::Null, EvValue::Null) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(param_name(p), got.name);
    }
}
