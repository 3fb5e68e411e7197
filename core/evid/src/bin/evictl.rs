//! `evictl`: talk to a running evid over MI.
//!
//! The commands are in `evictl/commands.rs`, `evictl watch` in `evictl/watch.rs`; this file
//! parses the global options and reports failures.

// The bin's root is this file (Cargo.toml names it), so its modules are named by path.
#[path = "evictl/commands.rs"]
mod commands;
#[path = "evictl/watch.rs"]
mod watch;

use commands::{Ctl, Fail};
use evid::mi_client::DEFAULT_URL;
use std::process::ExitCode;

const USAGE: &str = "\
usage: evictl [--url URL] [--json] COMMAND [ARG...]

commands:
  events                              the published events
  subscribers [EVENT]                 the subscribers, of every event or of EVENT
  subscribe EVENT SOCKET [--expire N] subscribe SOCKET (e.g. udp:127.0.0.1:9999) to EVENT
  unsubscribe EVENT SOCKET            remove that subscription
  raise EVENT [KEY=VALUE...]          raise EVENT; integer values are sent as numbers
  watch EVENT... [--expire N]         print EVENT's raises as they happen, until Ctrl-C
  stats [GROUP:|NAME...]              statistics (all by default; e.g. event_flatstore:)
  reload MODULE                       reload a transport module from its rebuilt .so (evid --dev)
  mi COMMAND [ARG...]                 run any MI command with positional params

options:
  --url URL   evid's MI over HTTP (default http://127.0.0.1:8888/mi, or $EVID_MI_URL)
  --json      print the MI result as JSON instead of text

`evictl mi` sends integers as numbers, an argument starting with [ or { as that JSON value,
anything else as a string.

examples:
  evictl subscribe E_PIKE_BLOCKED udp:127.0.0.1:9999 --expire 120
  evictl raise E_PIKE_BLOCKED ip=192.0.2.10 count=3
  evictl watch E_PIKE_BLOCKED E_CORE_THRESHOLD | jq .params
  evictl mi event_subscribe E_PIKE_BLOCKED udp:127.0.0.1:9999 120";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail { code, msg }) => {
            if code == 2 {
                eprintln!("evictl: {msg}\n\n{USAGE}");
            } else {
                eprintln!("evictl: {msg}");
            }
            ExitCode::from(code)
        }
    }
}

fn run(args: &[String]) -> Result<(), Fail> {
    let mut ctl = Ctl {
        url: std::env::var("EVID_MI_URL").unwrap_or_else(|_| DEFAULT_URL.to_string()),
        json: false,
    };
    let mut i = 0;
    while let Some(a) = args.get(i) {
        match a.as_str() {
            "--url" => {
                ctl.url = args
                    .get(i + 1)
                    .cloned()
                    .ok_or_else(|| Fail::usage("--url needs a URL"))?;
                i += 2;
            }
            "--json" => {
                ctl.json = true;
                i += 1;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => match a.strip_prefix("--url=") {
                Some(u) => {
                    ctl.url = u.to_string();
                    i += 1;
                }
                None => break,
            },
        }
    }
    let (cmd, rest) = match args.get(i..) {
        Some([cmd, rest @ ..]) => (cmd.as_str(), rest),
        _ => return Err(Fail::usage("missing COMMAND")),
    };
    match cmd {
        "events" => commands::events(&ctl, rest),
        "subscribers" => commands::subscribers(&ctl, rest),
        "subscribe" => commands::subscribe(&ctl, rest),
        "unsubscribe" => commands::unsubscribe(&ctl, rest),
        "raise" => commands::raise(&ctl, rest),
        "watch" => watch::run(&ctl, rest),
        "stats" => commands::stats(&ctl, rest),
        "reload" => commands::reload(&ctl, rest),
        "mi" => commands::mi(&ctl, rest),
        other => Err(Fail::usage(&format!("unknown command {other:?}"))),
    }
}
