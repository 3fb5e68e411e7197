//! A ScriptHost that records what the script asked for.

#![allow(dead_code)]

use std::sync::Mutex;

use evi_script::{
    builtin_functions, parse_str, Diagnostic, Interpreter, LogLevel, Script, ScriptHost,
    ScriptParam, ScriptValue,
};

#[derive(Default)]
pub struct Recorder {
    /// One line per subscribe/raise, in call order.
    pub calls: Mutex<Vec<String>>,
    /// Raised events with their exact parameters.
    pub raised: Mutex<Vec<(String, Vec<ScriptParam>)>>,
    pub logs: Mutex<Vec<(LogLevel, String)>>,
    /// When set, raise_event/subscribe_event fail with this message.
    pub fail: Option<String>,
}

/// `name=value` pairs joined by commas; positional params print their value only.
pub fn render_params(params: &[ScriptParam]) -> String {
    params
        .iter()
        .map(|p| {
            let v = match &p.value {
                ScriptValue::Null => "<null>".to_string(),
                ScriptValue::Int(n) => n.to_string(),
                ScriptValue::Str(s) => s.clone(),
            };
            match &p.name {
                Some(n) => format!("{n}={v}"),
                None => v,
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl ScriptHost for Recorder {
    fn subscribe_event(
        &self,
        event: &str,
        socket: &str,
        expire: Option<i64>,
    ) -> Result<(), String> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("subscribe {event} {socket} {expire:?}"));
        match &self.fail {
            Some(m) => Err(m.clone()),
            None => Ok(()),
        }
    }

    fn raise_event(&self, event: &str, params: &[ScriptParam]) -> Result<(), String> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("raise {event} {}", render_params(params)));
        self.raised
            .lock()
            .unwrap()
            .push((event.to_string(), params.to_vec()));
        match &self.fail {
            Some(m) => Err(m.clone()),
            None => Ok(()),
        }
    }

    fn log(&self, level: LogLevel, msg: &str) {
        self.logs.lock().unwrap().push((level, msg.to_string()));
    }
}

impl Recorder {
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .map(|(l, m)| format!("{l:?}: {m}"))
            .collect()
    }
}

/// Parses, checks against the builtins, and panics with the rendered diagnostics on failure.
pub fn script(text: &str) -> Script {
    let s = parse_str("test.cfg", text).unwrap_or_else(|d| panic!("{}", evi_script::render(&d)));
    let errs = s.check(&builtin_functions());
    assert!(errs.is_empty(), "{}", evi_script::render(&errs));
    s
}

/// Runs the startup_route of `text`; returns the host and the run's result.
pub fn run_startup(text: &str) -> (Recorder, Result<(), Diagnostic>) {
    let s = script(text);
    let host = Recorder::default();
    let r = Interpreter::new(&s, &host).run_startup();
    (host, r)
}

/// Parse errors as `FILE:LINE:COL: message` lines.
pub fn parse_errors(text: &str) -> Vec<String> {
    match parse_str("test.cfg", text) {
        Ok(_) => Vec::new(),
        Err(d) => d.iter().map(Diagnostic::headline).collect(),
    }
}

/// Check errors as `FILE:LINE:COL: message` lines.
pub fn check_errors(text: &str) -> Vec<String> {
    let s = parse_str("test.cfg", text).unwrap_or_else(|d| panic!("{}", evi_script::render(&d)));
    s.check(&builtin_functions())
        .iter()
        .map(Diagnostic::headline)
        .collect()
}
