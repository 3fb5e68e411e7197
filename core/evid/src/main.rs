//! `evid`: the OpenSIPS Event Interface as a daemon.

use evi_host::config::{exe_dir, level_filter, prepare};
use evi_host::loader::Library;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc (see `evi_host::alloc` for why).
#[global_allocator]
static ALLOC: evi_host::alloc::MiMalloc = evi_host::alloc::MiMalloc;

const USAGE: &str = "\
usage: evid [-f FILE] [-c] [--dev] [-V] [--describe-module FILE.so]

  -f FILE                  config file (default: evid.cfg)
  -c                       check the config and exit: 0 if valid, else every error as FILE:LINE:COL
  --dev                    development mode: reload a transport module when its .so changes
                           (and allow MI module_reload); production never unloads a module
  -V                       print the version and the module ABI version
  --describe-module FILE   print a module's name, version, ABI, params and MI commands
  -h, --help               this help

evid runs in the foreground; SIGINT or SIGTERM stops it cleanly (queues drained, files flushed).";

enum Mode {
    Run,
    Check,
    Version,
    Describe(PathBuf),
    Help,
}

struct Args {
    mode: Mode,
    file: PathBuf,
    dev: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut dev = false;
    let mut mode = Mode::Run;
    let mut file = PathBuf::from("evid.cfg");
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("-f") => file = args.next().ok_or("-f needs a file")?.into(),
            Some("-c") => mode = Mode::Check,
            Some("-V") | Some("--version") => mode = Mode::Version,
            Some("-h") | Some("--help") => mode = Mode::Help,
            Some("-F") => {} // OpenSIPS's "foreground": evid always is.
            Some("--dev") => dev = true,
            Some("--describe-module") => {
                mode = Mode::Describe(
                    args.next()
                        .ok_or("--describe-module needs a .so file")?
                        .into(),
                )
            }
            _ => return Err(format!("unknown argument {}", a.to_string_lossy())),
        }
    }
    Ok(Args { mode, file, dev })
}

fn main() -> ExitCode {
    evi_host::alloc::tune();
    let Args { mode, file, dev } = match parse_args() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("evid: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match mode {
        Mode::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Mode::Version => {
            println!("{}", evi_host::version_string());
            ExitCode::SUCCESS
        }
        Mode::Describe(path) => match Library::open(&path) {
            Ok(lib) => {
                print!("{}", lib.info().describe());
                // Describing never runs module code, and a library is never unloaded.
                std::mem::forget(lib);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("evid: {e}");
                ExitCode::FAILURE
            }
        },
        Mode::Check => check(&file),
        Mode::Run => run(&file, dev),
    }
}

fn load(file: &std::path::Path) -> Result<evi_host::config::Prepared, ExitCode> {
    // Parse errors, then whatever the checks find in the parts that did parse: one run, every error.
    let (script, mut errs) = evi_script::parse_file_partial(file);
    let Some(script) = script else {
        return Err(report(file, &errs));
    };
    match prepare(script, &exe_dir()) {
        Ok(p) if errs.is_empty() => Ok(p),
        Ok(p) => {
            for m in p.modules {
                std::mem::forget(m.lib);
            }
            Err(report(file, &errs))
        }
        Err(more) => {
            errs.extend(more);
            errs.sort_by_key(|d| (d.pos.source.name.to_string(), d.pos.line, d.pos.col));
            errs.dedup_by(|a, b| {
                a.pos.line == b.pos.line
                    && a.pos.col == b.pos.col
                    && a.message == b.message
                    && a.pos.source.name == b.pos.source.name
            });
            Err(report(file, &errs))
        }
    }
}

fn report(file: &std::path::Path, errs: &[evi_script::Diagnostic]) -> ExitCode {
    for d in errs {
        eprintln!("{d}");
    }
    let n = errs.len();
    eprintln!(
        "evid: {n} error{} in {}",
        if n == 1 { "" } else { "s" },
        file.display()
    );
    ExitCode::FAILURE
}

fn check(file: &std::path::Path) -> ExitCode {
    match load(file) {
        Ok(p) => {
            for m in p.modules {
                std::mem::forget(m.lib);
            }
            println!("evid: {} is valid", file.display());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn run(file: &std::path::Path, dev: bool) -> ExitCode {
    evid::logger::init(log::LevelFilter::Info);
    // Block the stop signals before any thread exists, so every thread inherits the mask and
    // only `sigwait` below sees them.
    let signals = match evid::signals::block() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("evid: cannot set up signal handling: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut prepared = match load(file) {
        Ok(p) => p,
        Err(code) => return code,
    };
    prepared.settings.dev = dev;
    evid::logger::set_json(prepared.settings.log_json);
    if let Some(l) = prepared.settings.log_level {
        log::set_max_level(level_filter(l));
    }
    let host = match prepared.start() {
        Ok(x) => x,
        Err(errs) => return report(file, &errs),
    };
    log::info!(
        "{} started with {}",
        evi_host::version_string(),
        file.display()
    );
    evid::notify::notify(&format!("READY=1\nMAINPID={}", std::process::id()));
    loop {
        match signals.wait() {
            libc::SIGHUP => {
                log::info!("SIGHUP received: reopening files");
                host.reopen();
            }
            sig => {
                log::info!("signal {sig} received, stopping");
                break;
            }
        }
    }
    evid::notify::notify("STOPPING=1");
    host.shutdown();
    ExitCode::SUCCESS
}
