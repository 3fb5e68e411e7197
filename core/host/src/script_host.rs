//! The host as the script sees it: `subscribe_event`, `raise_event`, `xlog`, and running
//! `event_route` blocks for the route transport.

use crate::dispatch::in_route;
use crate::event::{AsParamRef, ParamRef, ValueRef};
use crate::host::Shared;
use crate::loader::ModuleInfo;
use evi_abi::{EviEvent, EVI_VALUE_INT, EVI_VALUE_STR};
use evi_script::{
    Diagnostic, FunctionError, FunctionSpec, Interpreter, LogLevel, ScriptHost, ScriptParam,
    ScriptValue,
};
use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::{Duration, Instant};

/// A script's params are raised as they are: the event copies them once, with no views built.
impl AsParamRef for ScriptParam {
    #[inline(always)]
    fn param_ref(&self) -> ParamRef<'_> {
        ParamRef {
            name: self.name.as_deref(),
            value: match &self.value {
                ScriptValue::Null => ValueRef::Null,
                ScriptValue::Int(i) => ValueRef::Int(*i),
                ScriptValue::Str(s) => ValueRef::Str(s.as_bytes()),
            },
        }
    }
}

/// What `check` knows: the interpreter's functions and those the loaded modules export.
pub fn functions<'a>(modules: impl IntoIterator<Item = &'a ModuleInfo>) -> Vec<FunctionSpec> {
    let mut all = evi_script::builtin_functions();
    for m in modules {
        all.extend(m.functions.iter().map(|f| FunctionSpec {
            name: f.name.clone().into(),
            min_args: f.min_args,
            max_args: f.max_args,
        }));
    }
    all
}

impl Shared {
    /// Run `f` with an interpreter over the config's script (`None` without a script).
    pub(crate) fn with_interpreter<R>(&self, f: impl FnOnce(&Interpreter<'_>) -> R) -> Option<R> {
        let state = self.script.get()?;
        let mut interp = Interpreter::new(&state.script, self);
        if let Some(n) = state.max_while_loops {
            interp.set_max_while_loops(n);
        }
        Some(f(&interp))
    }

    pub(crate) fn has_event_route(&self, name: &str) -> bool {
        self.script
            .get()
            .is_some_and(|s| s.script.has_event_route(name))
    }

    /// Run `event_route[name]` for `event` on this thread; its raises nest one level deeper.
    pub(crate) fn run_event_route(&self, name: &str, event: &EviEvent) -> Result<(), Diagnostic> {
        let raw = if event.params.is_null() || event.n_params == 0 {
            &[][..]
        } else {
            // SAFETY: the caller's event is valid for this call.
            unsafe { std::slice::from_raw_parts(event.params, event.n_params) }
        };
        let params: Vec<ScriptParam> = raw
            .iter()
            .map(|p| {
                // SAFETY: as above.
                let (n, v) = unsafe { (p.name.as_bytes(), p.value.str.as_bytes()) };
                ScriptParam {
                    name: (!n.is_empty()).then(|| String::from_utf8_lossy(n).into_owned()),
                    value: match p.value.kind {
                        EVI_VALUE_INT => ScriptValue::Int(p.value.int),
                        EVI_VALUE_STR => ScriptValue::Str(String::from_utf8_lossy(v).into_owned()),
                        _ => ScriptValue::Null,
                    },
                }
            })
            .collect();
        let t0 = std::time::Instant::now();
        let r = in_route(event.depth, || {
            self.with_interpreter(|i| i.run_event_route(name, &params))
        })
        .unwrap_or_else(|| {
            Err(Diagnostic::at(
                &evi_script::Pos::nowhere("evid"),
                "evid has no script",
            ))
        });
        if let Some(limit) = self.delivery_threshold() {
            if t0.elapsed() > limit {
                self.slow_route(name, t0.elapsed());
            }
        }
        r
    }
}

impl ScriptHost for Shared {
    fn subscribe_event(
        &self,
        event: &str,
        socket: &str,
        expire: Option<i64>,
    ) -> Result<(), String> {
        let expire = expire.filter(|e| *e > 0);
        self.subscribe(event, socket, expire)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn raise_event(&self, event: &str, params: &[ScriptParam]) -> Result<(), String> {
        let id = self
            .registry
            .lookup(event)
            .ok_or_else(|| format!("unknown event {event}"))?;
        self.raise(id, params).map(|_| ())
    }

    /// A module's script function, run on the module's thread (this thread waits, bounded).
    fn call_function(&self, name: &str, args: &[ScriptValue]) -> Result<i64, FunctionError> {
        let module = self
            .modules
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|m| m.info().functions.iter().any(|f| f.name == name))
            .cloned()
            .ok_or_else(|| {
                FunctionError::Missing(format!(
                    "function '{name}' is not exported by any loaded module"
                ))
            })?;
        let (name, args) = (name.to_string(), args.to_vec());
        match module.call(move |inst| inst.script_fn(&name, &args)) {
            Ok(Ok(true)) => Ok(1),
            Ok(Ok(false)) => Ok(-1),
            Ok(Err(why)) | Err(why) => Err(FunctionError::Failed(why)),
        }
    }

    fn log(&self, level: LogLevel, msg: &str) {
        log::log!(target: "script", to_log(level), "{}", msg.trim_end_matches('\n'));
    }

    fn log_enabled(&self, level: LogLevel) -> bool {
        to_log(level) <= log::max_level()
    }
}

fn to_log(level: LogLevel) -> log::Level {
    match level {
        LogLevel::Error => log::Level::Error,
        LogLevel::Warn => log::Level::Warn,
        LogLevel::Notice | LogLevel::Info => log::Level::Info,
        LogLevel::Debug => log::Level::Debug,
    }
}

/// The timer_route loop: each route runs every `secs` seconds, first `secs` after start.
pub(crate) fn run_timer_routes(shared: Weak<Shared>, routes: Vec<(String, u32)>) {
    let start = Instant::now();
    let mut next: Vec<Instant> = routes
        .iter()
        .map(|(_, s)| start + Duration::from_secs(u64::from(*s)))
        .collect();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let Some(s) = shared.upgrade() else { return };
        if s.stopping.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        for ((name, secs), due) in routes.iter().zip(next.iter_mut()) {
            if now < *due {
                continue;
            }
            *due += Duration::from_secs(u64::from(*secs));
            if let Some(Err(d)) = s.with_interpreter(|i| i.run_timer(name)) {
                log::error!("timer_route[{name}] failed: {d}");
            }
        }
    }
}
