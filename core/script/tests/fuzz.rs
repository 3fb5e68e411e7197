//! Token soup through parse, check and run: whatever the input, no panic and no hang.

mod common;

use common::Recorder;
use evi_script::{builtin_functions, parse_str, Interpreter, ScriptParam, ScriptValue};

const VOCAB: &[&str] = &[
    "startup_route",
    "route",
    "route[r]",
    "event_route[E]",
    "timer_route[t, 1]",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ";",
    ",",
    ":",
    "if",
    "else",
    "while",
    "switch",
    "case",
    "default",
    "break",
    "exit",
    "return",
    "drop",
    "=",
    ":=",
    "+=",
    "==",
    "!=",
    "<",
    ">=",
    "=~",
    "!~",
    "!",
    "&&",
    "||",
    "+",
    "-",
    "*",
    "/",
    "%",
    "|",
    "&",
    "^",
    "~",
    "<<",
    ">>",
    "1",
    "0",
    "-7",
    "0x10",
    "\"s\"",
    "\"$var(a)\"",
    "\"^a.*\"",
    "\"(\"",
    "'q'",
    "$var(a)",
    "$var(b)",
    "$avp(x)",
    "$avp(x)[1]",
    "$avp(y)[*]",
    "$param(1)",
    "$param(p)",
    "$time(%Y)",
    "$Ts",
    "$pid",
    "$rc",
    "$null",
    "NULL",
    "$var(a){s.len}",
    "$var(a){s.substr,1,2}",
    "xlog",
    "log",
    "raise_event",
    "subscribe_event",
    "fetch_event_params",
    "route(r)",
    "t_relay",
    "\"L_WARN\"",
    "\"udp:1.2.3.4:5\"",
    "\"p=$var(a);$avp(x)\"",
    "loadmodule",
    "modparam",
    "x",
    "=",
    "yes",
    "/*",
    "*/",
    "#",
    "\n",
    "\"",
    "$",
    "$(",
    "include_file",
];

/// Deterministic xorshift, so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn soup(rng: &mut Rng) -> String {
    let n = (rng.next() % 60) as usize;
    let mut s = String::from("startup_route { ");
    for _ in 0..n {
        s.push_str(VOCAB[(rng.next() % VOCAB.len() as u64) as usize]);
        s.push(' ');
    }
    s.push_str(
        " }\nroute[r] { $var(a) += 1; return(1); }\nevent_route[E] { xlog(\"$param(1)\"); }",
    );
    s
}

/// A shape that parses more often: statements built from the vocabulary's useful parts.
fn statements(rng: &mut Rng) -> String {
    const STMTS: &[&str] = &[
        "$var(a) = $var(a) + 1;",
        "$avp(x) = $var(a);",
        "$avp(x) := \"v\";",
        "$avp(y) = \"n\";",
        "raise_event(\"E\", $avp(y), $avp(x));",
        "raise_event(\"E\", , $avp(x));",
        "subscribe_event(\"E\", \"udp:1.2.3.4:5\", $var(a));",
        "xlog(\"$var(a) $avp(x)[1] $time(%S)\");",
        "if ($var(a) > 3) { route(r); } else { $var(b) = $var(a){s.len}; }",
        "while ($var(a) < 50) { $var(a) += 7; }",
        "switch ($var(a)) { case 1: break; default: exit; }",
        "$var(b) = $var(a) / ($var(a) - 3);",
        "if ($avp(x) =~ \"^v\") { drop; }",
        "fetch_event_params(\"p=$var(b)\");",
        "$avp(x)[*] = $null;",
        "$avp(x)[3] = 1;",
        "$var(b) = \"s\" - 1;",
        "return(0);",
        "route(r);",
    ];
    let n = (rng.next() % 12) as usize;
    let mut s = String::from("max_while_loops = 20\nstartup_route {\n");
    for _ in 0..n {
        s.push_str(STMTS[(rng.next() % STMTS.len() as u64) as usize]);
        s.push('\n');
    }
    s.push_str("}\nroute[r] { $var(a) += 1; route(r); }\nevent_route[E] { xlog(\"$param(1)\"); }");
    s
}

#[test]
fn random_inputs_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let host = Recorder::default();
    let params = [ScriptParam {
        name: None,
        value: ScriptValue::Int(1),
    }];
    let (mut parsed, mut ran_ok) = (0, 0);
    for i in 0..4000 {
        let text = if i % 2 == 0 {
            soup(&mut rng)
        } else {
            statements(&mut rng)
        };
        let Ok(script) = parse_str("fuzz.cfg", &text) else {
            continue;
        };
        parsed += 1;
        let _ = script.check(&builtin_functions());
        let _ = script.literal_events();
        let mut it = Interpreter::new(&script, &host);
        it.set_max_steps(20_000);
        if it.run_startup().is_ok() {
            ran_ok += 1;
        }
        let _ = it.run_event_route("E", &params);
        let _ = it.run_timer("t");
    }
    // The generator must exercise the interpreter, not just the error paths.
    assert!(parsed > 1000, "only {parsed} inputs parsed");
    assert!(ran_ok > 200, "only {ran_ok} runs succeeded");
}
