//! `parse`: any text through the config parser, the checks and (bounded) the interpreter: no
//! panic, no hang, no unbounded memory; a refused config has at least one diagnostic, and the
//! diagnostics render (source excerpts and carets over any text).

use evi_script::{
    builtin_functions, parse_str, render, Interpreter, LogLevel, ScriptHost, ScriptParam,
    ScriptValue,
};

struct Null;

impl ScriptHost for Null {
    fn subscribe_event(&self, _: &str, _: &str, _: Option<i64>) -> Result<(), String> {
        Ok(())
    }
    fn raise_event(&self, _: &str, _: &[ScriptParam]) -> Result<(), String> {
        Ok(())
    }
    fn log(&self, _: LogLevel, _: &str) {}
}

pub fn check(data: &[u8]) {
    let text = crate::text(data);
    // include_file reads whatever path it names: keep the fuzzer away from device files.
    if ["dev/", "proc/", "sys/"].iter().any(|p| text.contains(p)) {
        return;
    }
    let script = match parse_str("fuzz.cfg", &text) {
        Ok(s) => s,
        Err(diags) => {
            assert!(!diags.is_empty(), "a refused config must say why");
            let _ = render(&diags);
            return;
        }
    };
    let diags = script.check(&builtin_functions());
    if !diags.is_empty() {
        let _ = render(&diags);
        return;
    }
    let host = Null;
    let mut interp = Interpreter::new(&script, &host);
    interp.set_max_steps(10_000);
    interp.set_max_while_loops(1_000);
    let _ = interp.run_startup();
    let params = [ScriptParam {
        name: Some("ip".into()),
        value: ScriptValue::Str("192.0.2.1".into()),
    }];
    for (name, _) in script.event_routes() {
        let _ = interp.run_event_route(&name, &params);
    }
}
