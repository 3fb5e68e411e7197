//! Parsing: items, every syntax error with its exact `FILE:LINE:COL: message`, recovery,
//! include_file.

mod common;

use common::parse_errors;
use evi_script::{parse_file, parse_str, Item, Literal};
use std::path::PathBuf;

fn globals(text: &str) -> Vec<(String, Literal)> {
    let s = parse_str("g.cfg", text).unwrap_or_else(|d| panic!("{}", evi_script::render(&d)));
    s.items
        .iter()
        .filter_map(|i| match i {
            Item::Global { name, value, .. } => Some((name.clone(), value.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn global_values_are_typed_or_verbatim() {
    let s = |v: &str| Literal::Str(v.into());
    assert_eq!(
        globals(
            "a = 1\nb = -3\nc = \"x y\"\nd = yes\ne = off\nf = udp:127.0.0.1:5060\n\
             g = LOG_LOCAL0 ; h = 0x10\ni = 127.0.0.1 # comment\nj = TRUE\n"
        ),
        vec![
            ("a".into(), Literal::Int(1)),
            ("b".into(), Literal::Int(-3)),
            ("c".into(), s("x y")),
            ("d".into(), Literal::Int(1)),
            ("e".into(), Literal::Int(0)),
            ("f".into(), s("udp:127.0.0.1:5060")),
            ("g".into(), s("LOG_LOCAL0")),
            ("h".into(), Literal::Int(16)),
            ("i".into(), s("127.0.0.1")),
            ("j".into(), Literal::Int(1)),
        ]
    );
}

#[test]
fn modparam_and_loadmodule_items_keep_positions() {
    let s = parse_str(
        "m.cfg",
        "loadmodule \"a.so\"\n  modparam(\"a\", \"p\", -5);\nmodparam(\"a\", \"q\", \"v\")\nmodparam(\"a\", \"r\", no)\n",
    )
    .unwrap();
    let shown: Vec<String> = s
        .items
        .iter()
        .map(|i| match i {
            Item::LoadModule { path, pos } => format!("{pos} load {path}"),
            Item::ModParam {
                module,
                param,
                value,
                pos,
            } => format!("{pos} {module}.{param}={value:?}"),
            Item::Global { .. } => unreachable!(),
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            "m.cfg:1:1 load a.so",
            "m.cfg:2:3 a.p=Int(-5)",
            "m.cfg:3:1 a.q=Str(\"v\")",
            "m.cfg:4:1 a.r=Int(0)",
        ]
    );
}

#[test]
fn route_kinds_and_queries() {
    let s = parse_str(
        "r.cfg",
        r#"
startup_route { subscribe_event("E_A", "udp:1.2.3.4:5"); }
timer_route[refresh, 50] { subscribe_event("E_B", "udp:1.2.3.4:5", 60); raise_event("E_A"); }
route { exit; }
route[named] { return(2); }
route["quoted"] { return; }
route[7] { return; }
event_route[E_PIKE_BLOCKED] { xlog("blocked $param(ip)\n"); }
event_route[E_OLD, async] { xlog("x"); }
onreply_route[r] { xlog("reply"); }
failure_route[f] { xlog("fail"); }
branch_route[b] { xlog("branch"); }
error_route { xlog("err"); }
local_route { xlog("local"); }
"#,
    )
    .unwrap();
    assert!(s.has_startup_route());
    let evs: Vec<String> = s
        .event_routes()
        .iter()
        .map(|(n, p)| format!("{n}@{p}"))
        .collect();
    assert_eq!(evs, vec!["E_PIKE_BLOCKED@r.cfg:8:13", "E_OLD@r.cfg:9:13"]);
    assert_eq!(s.timer_routes(), vec![("refresh".to_string(), 50)]);
    let lits: Vec<String> = s
        .literal_events()
        .iter()
        .map(|(n, p)| format!("{n}@{p}"))
        .collect();
    assert_eq!(lits, vec!["E_A@r.cfg:2:33", "E_B@r.cfg:3:44"]);
    assert!(s.has_event_route("E_OLD"));
    assert!(!s.has_event_route("E_NONE"));
}

#[test]
fn statements_parse() {
    // Everything the language has, in one route; parse must succeed.
    common::script(
        r#"
max_while_loops = 100
startup_route {
    $var(i) = 0; $var(s) = "a" + 1 + "b";
    $avp(x) = 1; $avp(x) := 2; $avp(x)[0] = 3; $avp(x) = $null; $avp(x)[*] = NULL;
    $var(i) += 2; $var(i) -= 1; $var(i) *= 3; $var(i) /= 1; $var(i) %= 7;
    $var(i) |= 8; $var(i) &= 12; $var(i) ^= 1;
    if ($var(i) == 1 && !($var(s) != "x") || $var(i) >= 2 and not $var(i) < 0) { xlog("1"); }
    else if ($var(s) =~ "^a.*b$") xlog("2");
    else { log(2, "three"); }
    while ($var(i) < 10) { $var(i) = $var(i) + (1 << 1) - -1 * 2 % 3 / 1; }
    switch ($var(i)) {
        case 1: xlog("one"); break;
        case "two": xlog("two");
        case -3:
        default: xlog("other");
    }
    if (raise_event("E_X")) { exit; }
    route(r);
    { drop; }
    return(1);
}
route[r] { return(-1); }
"#,
    );
}

#[test]
fn every_error_is_reported_with_its_position() {
    let errs = parse_errors(
        "log_level = 3\n\
         modparam(\"mi_fifo\", \"fifo_name\", \"/tmp/x\";\n\
         loadmodule event_flatstore.so\n\
         startup_route {\n\
         \x20   xlog(\"a\")\n\
         \x20   $var(x) = ;\n\
         \x20   if ($var(x) == 1 {\n\
         \x20       xlog(\"b\");\n\
         \x20   }\n\
         \x20   subscribe_event(\"E\", \"udp:1.2.3.4:5\" 10);\n\
         \x20   $Ts = 5;\n\
         }\n\
         timer_route[t1 5] { xlog(\"t\"); }\n\
         route[foo] {\n\
         \x20   else { }\n\
         \x20   xlog(\"unterminated);\n\
         }\n\
         event_route[E_X] {\n\
         \x20   $var(y) = $var(x){s.nope};\n\
         \x20   $var(z) = \"ok\";\n",
    );
    assert_eq!(
        errs,
        vec![
            "test.cfg:2:42: expected ')' after the arguments of modparam, found ';'",
            "test.cfg:3:12: expected a quoted module name after loadmodule, found 'event_flatstore'",
            "test.cfg:5:14: expected ';' after the call to xlog, found $var(x)",
            "test.cfg:6:15: expected an expression, found ';'",
            "test.cfg:7:22: expected ')' after the condition of if, found '{'",
            "test.cfg:10:42: expected ',' or ')' in the arguments of subscribe_event, found number 10",
            "test.cfg:11:5: cannot assign to $Ts: it is read-only",
            "test.cfg:13:16: expected ',' and an interval after the timer_route name, found number 5",
            "test.cfg:15:5: 'else' without a matching 'if'",
            "test.cfg:16:10: unterminated string: missing closing \"",
            "test.cfg:19:22: unknown transformation {s.nope} (supported: s.len, s.int, s.substr, s.tolower, s.toupper)",
            "test.cfg:20:20: expected '}' to close event_route[E_X] (opened at 18:18), found end of file",
        ]
    );
}

#[test]
fn more_syntax_errors() {
    let cases: &[(&str, &str)] = &[
        ("startup_route { xlog(\"a\") }", "test.cfg:1:26: expected ';' after the call to xlog, found '}'"),
        ("x = ", "test.cfg:1:4: expected a value after 'x =', found end of file"),
        ("foo bar", "test.cfg:1:1: expected a global parameter, loadmodule, modparam or a route block, found 'foo'"),
        ("modparam(\"a\", \"b\", $var(x))", "test.cfg:1:20: expected a string or a number as the value of modparam, found $var(x)"),
        ("modparam(\"a\" \"b\", 1)", "test.cfg:1:14: expected ',' after the module name of modparam, found string \"b\""),
        ("timer_route[t] { }", "test.cfg:1:14: expected ',' and an interval after the timer_route name, found ']'"),
        ("event_route { }", "test.cfg:1:13: expected '[' and a name after event_route, found '{'"),
        ("event_route[E, later] { }", "test.cfg:1:16: expected sync or async after the event name, found 'later'"),
        ("route[a] xlog(\"x\");", "test.cfg:1:10: expected '{' to open the body of route[a], found 'xlog'"),
        ("startup_route { $var(x) == 1; }", "test.cfg:1:25: expected '=', ':=' or '+=' after $var(x), found '=='"),
        ("startup_route { $var(x) = foo; }", "test.cfg:1:27: unexpected 'foo' in an expression (strings need quotes, functions parentheses)"),
        ("startup_route { $var(x) = (1 + 2; }", "test.cfg:1:33: expected ')' to close the parenthesis, found ';'"),
        ("startup_route { $var(x) = \"a\" =~ \"(\"; }", "test.cfg:1:34: invalid regular expression: error: unclosed group"),
        ("startup_route { xlog(\"$var(x\"); }", "test.cfg:1:27: unterminated pseudo-variable $var: missing ')'"),
        ("startup_route { xlog(\"a $avp(x)[z] b\"); }", "test.cfg:1:33: the index of $avp(x)[z] must be an integer or '*'"),
        ("startup_route { $var(x) = $param(0); }", "test.cfg:1:34: $param positions start at 1"),
        ("startup_route { $var(x) = $time; }", "test.cfg:1:28: $time needs a name in parentheses: $time(name)"),
        ("startup_route { switch ($var(x)) { xlog(\"a\"); } }", "test.cfg:1:36: expected case, default or '}' in switch, found 'xlog'"),
        ("startup_route { switch ($var(x)) { case $var(y): } }", "test.cfg:1:41: expected a number or a string after case, found $var(y)"),
        ("startup_route { fetch_event_params(\"a=b\"); }", "test.cfg:1:36: fetch_event_params: 'a=b' is not [name=]$var(...) or [name=]$avp(...)"),
        ("/* open", "test.cfg:1:1: unterminated /* comment"),
        ("x = 99999999999999999999", "test.cfg:1:5: number 99999999999999999999 is out of range"),
        ("startup_route { route(); }", "test.cfg:1:23: expected a route name inside route(...), found ')'"),
        ("include_file 5", "test.cfg:1:14: expected a quoted file name after include_file, found number 5"),
    ];
    for (text, want) in cases {
        let errs = parse_errors(text);
        assert_eq!(
            errs.first().map(String::as_str),
            Some(*want),
            "for {text:?}: {errs:?}"
        );
    }
}

#[test]
fn recovery_keeps_going_after_broken_routes() {
    // A route that never closes is cut at the next top-level keyword; the rest still parses.
    let errs = parse_errors(
        "startup_route {\n    xlog(\"a\");\nroute[b] {\n    xlog(\"b\")\n}\nevent_route[E] { $var(x) = ; }\n",
    );
    assert_eq!(
        errs,
        vec![
            "test.cfg:3:1: expected '}' to close startup_route (opened at 1:15), found 'route'",
            "test.cfg:4:14: expected ';' after the call to xlog, found '}'",
            "test.cfg:6:28: expected an expression, found ';'",
        ]
    );
}

#[test]
fn diagnostic_display_quotes_the_line_with_a_caret() {
    let errs = parse_str("d.cfg", "startup_route {\n\t$var(x) = ;\n}\n").unwrap_err();
    assert_eq!(
        errs[0].to_string(),
        "d.cfg:2:12: expected an expression, found ';'\n    \t$var(x) = ;\n    \t          ^"
    );
    assert_eq!(evi_script::render(&errs), format!("{}\n", errs[0]));
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!(
        "startup_route {{ $var(x) = {}1{}; }}",
        "(".repeat(500),
        ")".repeat(500)
    );
    let errs = parse_errors(&deep);
    assert_eq!(
        errs,
        vec!["test.cfg:1:90: nested too deeply (more than 64 levels of blocks and parentheses)"]
    );
    let blocks = format!(
        "startup_route {{ {} }}",
        "if (1) {".repeat(300) + &"}".repeat(300)
    );
    let errs = parse_errors(&blocks);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].ends_with("nested too deeply (more than 64 levels of blocks and parentheses)"),
        "{errs:?}"
    );
    let nots = format!("startup_route {{ $var(x) = {}1; }}", "!".repeat(1000));
    assert_eq!(parse_errors(&nots).len(), 1);
}

#[test]
fn garbage_never_panics() {
    let samples = [
        "",
        "}",
        "{",
        "$",
        "$(",
        "\"",
        "'",
        "route[",
        "route(",
        "startup_route {",
        "x = $var(",
        "startup_route { if ( }",
        "startup_route { switch { } }",
        "modparam(",
        "\u{0}\u{1}\u{2}",
        "startup_route { $avp(x)[ = 1; }",
        "timer_route[a,",
        "event_route[",
        "startup_route{ case 1: }",
        "ünïcödé = \"ß\"",
        "startup_route { xlog(\"$(var(x)\"); }",
        "include_file",
        "startup_route { return( }",
    ];
    for s in samples {
        let _ = parse_str("g.cfg", s);
    }
    // Every prefix of a realistic config.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/conformance/opensips/opensips.cfg"
    ))
    .unwrap();
    for (i, _) in text.char_indices() {
        let _ = parse_str("p.cfg", &text[..i]);
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("evi-script-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("sub")).unwrap();
    d
}

#[test]
fn include_file_expands_in_place_relative_to_the_includer() {
    let d = temp_dir("inc");
    std::fs::write(d.join("main.cfg"), "a = 1\ninclude_file \"sub/mods.cfg\"\nstartup_route {\n    include_file \"sub/body.cfg\"\n}\nz = 9\n").unwrap();
    std::fs::write(
        d.join("sub/mods.cfg"),
        "loadmodule \"m.so\"\ninclude_file \"more.cfg\"\n",
    )
    .unwrap();
    std::fs::write(d.join("sub/more.cfg"), "b = 2\n").unwrap();
    std::fs::write(d.join("sub/body.cfg"), "raise_event(\"E_INC\");\n").unwrap();
    let s =
        parse_file(&d.join("main.cfg")).unwrap_or_else(|e| panic!("{}", evi_script::render(&e)));
    let names: Vec<String> = s
        .items
        .iter()
        .map(|i| match i {
            Item::Global { name, pos, .. } => format!("{name}@{}", pos.line),
            Item::LoadModule { path, pos } => {
                format!("{path}@{}", pos.source.name.rsplit('/').next().unwrap())
            }
            Item::ModParam { .. } => unreachable!(),
        })
        .collect();
    assert_eq!(names, vec!["a@1", "m.so@mods.cfg", "b@1", "z@6"]);
    let lits = s.literal_events();
    assert_eq!(lits[0].0, "E_INC");
    assert!(lits[0].1.source.name.ends_with("sub/body.cfg"));
}

#[test]
fn include_errors_name_the_included_file() {
    let d = temp_dir("incerr");
    std::fs::write(d.join("main.cfg"), "include_file \"bad.cfg\"\nimport_file \"missing.cfg\"\ninclude_file \"gone.cfg\"\ninclude_file \"main.cfg\"\n").unwrap();
    std::fs::write(d.join("bad.cfg"), "\nstartup_route { xlog(\"x\") }\n").unwrap();
    let errs: Vec<String> = parse_file(&d.join("main.cfg"))
        .unwrap_err()
        .iter()
        .map(|e| e.headline())
        .collect();
    let main = d.join("main.cfg").display().to_string();
    let bad = d.join("bad.cfg").display().to_string();
    let gone = d.join("gone.cfg").display().to_string();
    assert_eq!(
        errs,
        vec![
            format!("{main}:3:1: cannot read include_file \"{gone}\": No such file or directory (os error 2)"),
            format!("{main}:4:1: include_file \"main.cfg\" includes itself (directly or through another file)"),
            format!("{bad}:2:26: expected ';' after the call to xlog, found '}}'"),
        ]
    );
}

#[test]
fn unreadable_main_file() {
    let errs = parse_file(std::path::Path::new("/nonexistent/evid.cfg")).unwrap_err();
    assert_eq!(
        errs[0].to_string(),
        "/nonexistent/evid.cfg: cannot read the config file: No such file or directory (os error 2)"
    );
}

#[test]
fn long_operator_chains_are_refused() {
    let chain = format!("startup_route {{ $var(x) = 1{}; }}", " + 1".repeat(100_000));
    let errs = parse_errors(&chain);
    assert_eq!(
        errs,
        vec!["test.cfg:1:1053: expression too long (more than 256 operators)"]
    );
    // 256 operators are fine, and each statement has its own budget.
    let ok = format!(
        "startup_route {{ $var(x) = 1{0}; $var(y) = 1{0}; }}",
        " + 1".repeat(256)
    );
    assert!(parse_errors(&ok).is_empty());
}

#[test]
fn nested_switches_count_as_nesting() {
    let text = format!(
        "startup_route {{ {} }}",
        "switch ($var(x)) { case 1: ".repeat(200) + &"} ".repeat(200)
    );
    let errs = parse_errors(&text);
    assert!(
        !errs.is_empty() && errs[0].contains("nested too deeply"),
        "{errs:?}"
    );
}
