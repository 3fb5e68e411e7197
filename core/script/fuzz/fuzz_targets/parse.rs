//! Any text through the parser, the checks and (bounded) the interpreter: no panic, no hang,
//! no unbounded memory.
#![no_main]

use evi_script::{builtin_functions, parse_str, Interpreter, LogLevel, ScriptHost, ScriptParam};
use libfuzzer_sys::fuzz_target;

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

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // include_file reads whatever path it names: keep the fuzzer away from device files.
    if ["dev/", "proc/", "sys/"].iter().any(|p| text.contains(p)) {
        return;
    }
    let Ok(script) = parse_str("fuzz.cfg", &text) else {
        return;
    };
    if !script.check(&builtin_functions()).is_empty() {
        return;
    }
    let host = Null;
    let mut interp = Interpreter::new(&script, &host);
    interp.set_max_steps(10_000);
    interp.set_max_while_loops(1_000);
    let _ = interp.run_startup();
    let params = [ScriptParam {
        name: Some("ip".into()),
        value: evi_script::ScriptValue::Str("192.0.2.1".into()),
    }];
    for (name, _) in script.event_routes() {
        let _ = interp.run_event_route(&name, &params);
    }
});
