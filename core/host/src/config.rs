//! Turning a parsed config into a running host: global params, `loadmodule`, `modparam`, the
//! script's checks, module start-up and `startup_route`. Every error carries FILE:LINE:COL, and
//! all of them are collected before anything starts.

use crate::host::{Host, DEFAULT_QUEUE_SIZE};
use crate::loader::{find_module, Library};
use crate::modparam::{self, ConfigValue, ModparamValue};
use evi_script::{Diagnostic, Item, Literal, Pos, Script};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Global params evid understands.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mpath: Vec<PathBuf>,
    /// OpenSIPS numbering: -3 alert .. 4 debug.
    pub log_level: Option<i64>,
    pub queue_size: usize,
    pub max_while_loops: Option<u64>,
    /// `evid --dev`: modules may be reloaded (MI `module_reload`, file watcher).
    pub dev: bool,
    /// What MI clients may subscribe, and MI request limits.
    pub policy: crate::policy::Policy,
    /// `evi_raise_wait` in ms.
    pub raise_wait_ms: u64,
    /// `log_format = "json"`: JSON lines instead of the human format.
    pub log_json: bool,
    /// `exec_delivery_threshold` (µs) and `evi_queue_threshold` (%); 0 = off.
    pub delivery_threshold_us: u64,
    pub queue_threshold_pct: u64,
}

/// OpenSIPS globals that mean nothing to evid: accepted with a warning so configs run unchanged.
const IGNORED_GLOBALS: &[&str] = &[
    "log_stderror",
    "stderror_enabled",
    "syslog_enabled",
    "log_facility",
    "log_name",
    "debug_mode",
    "udp_workers",
    "tcp_workers",
    "children",
    "socket",
    "listen",
    "xlog_level",
    "dns",
    "rev_dns",
    "auto_aliases",
    "memdump",
    "memlog",
    "server_header",
    "user_agent_header",
    "server_signature",
    "tcp_children",
    "disable_tcp",
    "open_files_limit",
    "db_default_url",
    "xlog_buf_size",
];

/// A config ready to run: settings, checked libraries with their params, the script.
pub struct Prepared {
    pub settings: Settings,
    pub modules: Vec<PreparedModule>,
    pub script: Script,
}

/// A checked module library, the modparams the config sets for it, and its `loadmodule` line.
pub struct PreparedModule {
    pub lib: Library,
    pub params: Vec<(String, ModparamValue)>,
    pub pos: Pos,
}

/// Everything `evid -c` checks: globals, module files (without running module code), every
/// modparam against its module's spec, and the script. All errors, in file order.
pub fn prepare(script: Script, default_mpath: &[PathBuf]) -> Result<Prepared, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut settings = Settings {
        mpath: Vec::new(),
        log_level: None,
        queue_size: DEFAULT_QUEUE_SIZE,
        max_while_loops: None,
        dev: false,
        policy: Default::default(),
        raise_wait_ms: crate::host::DEFAULT_RAISE_WAIT_MS,
        log_json: false,
        delivery_threshold_us: 0,
        queue_threshold_pct: 0,
    };
    for item in &script.items {
        if let Item::Global { name, value, pos } = item {
            if let Err(why) = global(&mut settings, name, value, pos) {
                errors.push(Diagnostic::at(pos, why));
            }
        }
    }
    settings.mpath.extend(default_mpath.iter().cloned());

    let mut modules: Vec<PreparedModule> = Vec::new();
    for item in &script.items {
        let Item::LoadModule { path, pos } = item else {
            continue;
        };
        let lib = find_module(path, &settings.mpath).and_then(|p| Library::open(&p));
        match lib {
            Ok(lib) => {
                if let Some(PreparedModule { pos: first, .. }) =
                    modules.iter().find(|m| m.lib.name == lib.name)
                {
                    errors.push(Diagnostic::at(
                        pos,
                        format!(
                            "module {} is already loaded (at {}:{})",
                            lib.name, first.source.name, first.line
                        ),
                    ));
                } else {
                    modules.push(PreparedModule {
                        lib,
                        params: Vec::new(),
                        pos: pos.clone(),
                    });
                }
            }
            Err(e) => errors.push(Diagnostic::at(pos, e.to_string())),
        }
    }
    // OpenSIPS 3.x has the route transport in its core, so its configs never load it: evid
    // loads event_route.so itself when the script has event_route blocks.
    if let Some((_, pos)) = script.event_routes().first() {
        if !modules.iter().any(|m| m.lib.name == "event_route") {
            match find_module("event_route", &settings.mpath).and_then(|p| Library::open(&p)) {
                Ok(lib) => modules.push(PreparedModule {
                    lib,
                    params: Vec::new(),
                    pos: pos.clone(),
                }),
                Err(e) => errors.push(Diagnostic::at(
                    pos,
                    format!("event_route blocks need the event_route module: {e}"),
                )),
            }
        }
    }
    for item in &script.items {
        let Item::ModParam {
            module,
            param,
            value,
            pos,
        } = item
        else {
            continue;
        };
        let Some(PreparedModule {
            lib,
            params: values,
            ..
        }) = modules.iter_mut().find(|m| &m.lib.name == module)
        else {
            // A module that failed to load already has its error.
            if !errors
                .iter()
                .any(|d| d.message.contains(&format!("module {module} ")))
            {
                errors.push(Diagnostic::at(
                    pos,
                    format!("modparam for module {module:?}, which is not loaded"),
                ));
            }
            continue;
        };
        let info = lib.info();
        let v = match value {
            Literal::Int(i) => ConfigValue::Int(*i),
            Literal::Str(s) => ConfigValue::Str(s.clone()),
        };
        match modparam::check(&info, param, &v) {
            Ok(v) => {
                if values.iter().any(|(n, _)| n == param) && !modparam::repeatable(&info, param) {
                    errors.push(Diagnostic::at(
                        pos,
                        format!("{module}.{param} is set twice"),
                    ));
                } else {
                    values.push((param.clone(), v));
                }
            }
            Err(why) => errors.push(Diagnostic::at(pos, why)),
        }
    }
    let infos: Vec<_> = modules
        .iter()
        .map(|m| (m.lib.info(), m.pos.clone()))
        .collect();
    let builtins = evi_script::builtin_functions();
    for (i, (info, pos)) in infos.iter().enumerate() {
        for f in &info.functions {
            let taken_by = builtins
                .iter()
                .any(|b| b.name == f.name.as_str())
                .then(|| "evid itself".to_string())
                .or_else(|| {
                    infos[..i]
                        .iter()
                        .find(|(o, _)| o.functions.iter().any(|g| g.name == f.name))
                        .map(|(o, _)| format!("module {}", o.name))
                });
            if let Some(other) = taken_by {
                errors.push(Diagnostic::at(
                    pos,
                    format!(
                        "module {} exports the script function {}, which {other} already has",
                        info.name, f.name
                    ),
                ));
            }
        }
    }
    errors.extend(script.check(&crate::script_host::functions(infos.iter().map(|(i, _)| i))));
    if errors.is_empty() {
        Ok(Prepared {
            settings,
            modules,
            script,
        })
    } else {
        errors.sort_by_key(|d| (d.pos.source.name.to_string(), d.pos.line, d.pos.col));
        Err(errors)
    }
}

fn global(s: &mut Settings, name: &str, value: &Literal, _pos: &Pos) -> Result<(), String> {
    match (name, value) {
        ("mpath", Literal::Str(p)) => {
            s.mpath
                .extend(p.split(':').filter(|x| !x.is_empty()).map(PathBuf::from));
            Ok(())
        }
        ("log_level", Literal::Int(l)) if (-3..=4).contains(l) => {
            s.log_level = Some(*l);
            Ok(())
        }
        ("log_level", _) => Err("log_level must be an int from -3 (alert) to 4 (debug)".into()),
        ("evi_queue_size", Literal::Int(n)) if (16..=16_777_216).contains(n) => {
            s.queue_size = *n as usize;
            Ok(())
        }
        ("evi_queue_size", _) => Err("evi_queue_size must be an int from 16 to 16777216".into()),
        ("exec_delivery_threshold", Literal::Int(n)) if *n >= 0 => {
            s.delivery_threshold_us = *n as u64;
            Ok(())
        }
        ("exec_delivery_threshold", _) => {
            Err("exec_delivery_threshold must be microseconds (0 = off)".into())
        }
        ("evi_queue_threshold", Literal::Int(n)) if (0..=100).contains(n) => {
            s.queue_threshold_pct = *n as u64;
            Ok(())
        }
        ("evi_queue_threshold", _) => {
            Err("evi_queue_threshold must be a percentage from 0 (off) to 100".into())
        }
        ("log_format", Literal::Str(f)) if f == "json" || f == "text" => {
            s.log_json = f == "json";
            Ok(())
        }
        ("log_format", _) => Err("log_format must be \"text\" or \"json\"".into()),
        ("evi_raise_wait", Literal::Int(n)) if (0..=60_000).contains(n) => {
            s.raise_wait_ms = *n as u64;
            Ok(())
        }
        ("evi_raise_wait", _) => Err("evi_raise_wait must be an int from 0 to 60000 (ms)".into()),
        ("max_while_loops", Literal::Int(n)) if *n > 0 => {
            s.max_while_loops = Some(*n as u64);
            Ok(())
        }
        ("max_while_loops", _) => Err("max_while_loops must be a positive int".into()),
        (n, v) if n.starts_with("mi_") => policy_param(&mut s.policy, n, v),
        (n, _) if IGNORED_GLOBALS.contains(&n) => {
            log::warn!("global parameter {n} has no meaning in evid; ignored");
            Ok(())
        }
        ("mpath", _) => Err("mpath must be a string".into()),
        (n, _) => Err(format!("unknown global parameter {n:?}")),
    }
}

/// The `mi_*` globals: the MI subscription policy and request limits.
fn policy_param(p: &mut crate::policy::Policy, name: &str, value: &Literal) -> Result<(), String> {
    let positive = |v: &Literal| match v {
        Literal::Int(n) if *n > 0 => Ok(*n),
        _ => Err(format!("{name} must be a positive int")),
    };
    match name {
        "mi_allowed_protos" => match value {
            Literal::Str(s) => {
                p.allowed_protos = Some(
                    s.split([',', ' '])
                        .filter(|x| !x.is_empty())
                        .map(str::to_string)
                        .collect(),
                );
                Ok(())
            }
            Literal::Int(_) => {
                Err("mi_allowed_protos must be a string like \"udp,flatstore\"".into())
            }
        },
        "mi_allowed_destinations" => match value {
            Literal::Str(s) => {
                let entries = s
                    .split([',', ' '])
                    .filter(|x| !x.is_empty())
                    .map(crate::policy::Allow::parse)
                    .collect::<Result<Vec<_>, _>>()?;
                p.allowed_destinations = Some(entries);
                Ok(())
            }
            Literal::Int(_) => Err(
                "mi_allowed_destinations must be a string like \"192.0.2.0/24, mq.example.com\""
                    .into(),
            ),
        },
        "mi_flatstore_dir" => match value {
            Literal::Str(s) if s.starts_with('/') => {
                p.flatstore_dir = Some(PathBuf::from(s.trim_end_matches('/')));
                Ok(())
            }
            _ => Err("mi_flatstore_dir must be an absolute directory path in quotes".into()),
        },
        "mi_max_expire" => positive(value).map(|n| p.max_expire = Some(n)),
        "mi_max_subscribers_per_event" => positive(value).map(|n| p.max_per_event = n as usize),
        "mi_max_subscribers" => positive(value).map(|n| p.max_total = n as usize),
        "mi_max_request" => positive(value).map(|n| p.max_request = n as usize),
        "mi_max_params" => positive(value).map(|n| p.max_params = n as usize),
        "mi_max_param_len" => positive(value).map(|n| p.max_param_len = n as usize),
        "mi_max_socket_len" => positive(value).map(|n| p.max_socket_len = n as usize),
        _ => Err(format!("unknown global parameter {name:?}")),
    }
}

/// Map OpenSIPS's numeric log level to the `log` crate's filter.
pub fn level_filter(l: i64) -> log::LevelFilter {
    match l {
        i64::MIN..=-1 => log::LevelFilter::Error,
        0 | 1 => log::LevelFilter::Warn,
        2 | 3 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    }
}

impl Prepared {
    /// Start every module in load order, publish script events, run `startup_route`.
    /// On any failure, what already started is stopped again.
    pub fn start(self) -> Result<Host, Vec<Diagnostic>> {
        let host = Host::new(self.settings.queue_size);
        host.set_policy(self.settings.policy.clone());
        host.set_raise_wait_ms(self.settings.raise_wait_ms);
        let script = Arc::new(self.script);
        // Before any module starts: the route transport checks `route:NAME` against the script.
        host.set_script(script.clone(), self.settings.max_while_loops);
        let fail = |host: Host, pos: &Pos, why: String| {
            host.shutdown();
            Err(vec![Diagnostic::at(pos, why)])
        };
        for PreparedModule { lib, params, pos } in self.modules {
            // In development every module runs from its own copy, so a rebuild cannot change
            // the code under a running instance.
            let lib = if self.settings.dev {
                match crate::reload::open_copy(&lib.path) {
                    Ok(copy) => copy,
                    Err(why) => return fail(host, &pos, why),
                }
            } else {
                lib
            };
            if let Err(why) = host.start_module(lib, &params) {
                return fail(host, &pos, why);
            }
        }
        for (name, pos) in script
            .event_routes()
            .into_iter()
            .chain(script.literal_events())
        {
            if let Err(why) = host.publish(&name) {
                return fail(host, &pos, why);
            }
        }
        // OpenSIPS subscribes every event_route block to its event, permanently. The 2.x
        // `[E_X, sync]` form asks the transport to run the route inline (`route:E_X;sync`).
        for (name, pos) in script.event_routes() {
            // The mode is always written: a route name may contain `;` (`event_route["a;b"]`).
            let mode = if script.event_route_is_sync(&name) {
                ";sync"
            } else {
                ";async"
            };
            if let Err(why) = host.subscribe(&name, &format!("route:{name}{mode}"), None) {
                return fail(host, &pos, why.to_string());
            }
        }
        if script.has_startup_route() {
            if let Err(d) = host.run_startup() {
                host.shutdown();
                return Err(vec![d]);
            }
        }
        if let Err(why) = host.set_thresholds(
            self.settings.delivery_threshold_us,
            self.settings.queue_threshold_pct,
        ) {
            host.shutdown();
            return Err(vec![Diagnostic::at(&Pos::nowhere("evid"), why)]);
        }
        let mut host = host;
        host.start_timer_routes();
        if self.settings.dev {
            host.set_dev_mode();
        }
        host.set_ready();
        Ok(host)
    }
}

/// The default module path: the directory of the running binary.
pub fn exe_dir() -> Vec<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .into_iter()
        .collect()
}
