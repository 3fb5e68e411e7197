//! `evictl`: talk to a running evid over MI (mi_http, mi_datagram or mi_fifo).
//!
//! The commands are in `evictl/commands.rs`, `evictl watch` in `evictl/watch.rs`; this file
//! parses the arguments (clap, which also writes the shell completions) and reports failures.

// The bin's root is this file (Cargo.toml names it), so its modules are named by path.
#[path = "evictl/commands.rs"]
mod commands;
#[path = "evictl/watch.rs"]
mod watch;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use commands::{Ctl, Fail};
use evid::mi_client::{Transport, DEFAULT_URL};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// The help: written by hand (clap's would not show each command's arguments on one line).
/// A unit test checks that it names every subcommand clap knows.
const USAGE: &str = "\
usage: evictl [--url URL] [--json] [--timeout SECS] COMMAND [ARG...]

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
  completions SHELL                   print the completion script for bash, zsh, fish,
                                      elvish or powershell

options:
  --url URL        where evid's MI is (default http://127.0.0.1:8888/mi, or $EVID_MI_URL):
                     http://HOST:PORT/PATH       mi_http
                     udp:HOST:PORT               mi_datagram over UDP
                     unix:PATH                   mi_datagram over a unix datagram socket
                     fifo:PATH[?reply_dir=DIR]   mi_fifo; DIR is its reply_dir (default /tmp/)
  --json           print the MI result as JSON instead of text
  --timeout SECS   how long to wait for each answer from evid (default 10)
  -h, --help       this help (COMMAND --help: that command's)

`evictl mi` sends integers as numbers, an argument starting with [ or { as that JSON value,
anything else as a string.

examples:
  evictl subscribe E_PIKE_BLOCKED udp:127.0.0.1:9999 --expire 120
  evictl raise E_PIKE_BLOCKED ip=192.0.2.10 count=3
  evictl watch E_PIKE_BLOCKED E_CORE_THRESHOLD | jq .params
  evictl mi event_subscribe E_PIKE_BLOCKED udp:127.0.0.1:9999 120
  evictl --url udp:127.0.0.1:8080 events
  evictl --url fifo:/tmp/evid_fifo subscribers
  evictl completions bash > /etc/bash_completion.d/evictl";

/// How long an MI answer is waited for by default.
const DEFAULT_TIMEOUT: u64 = 10;

#[derive(Parser)]
#[command(
    name = "evictl",
    about = "Talk to a running evid over MI",
    override_help = USAGE,
    disable_help_subcommand = true
)]
struct Cli {
    /// Where evid's MI is: http://HOST:PORT/PATH, udp:HOST:PORT, unix:PATH or
    /// fifo:PATH[?reply_dir=DIR] (default http://127.0.0.1:8888/mi, or $EVID_MI_URL)
    #[arg(long, value_name = "URL", value_parser = Transport::parse, value_hint = clap::ValueHint::Url)]
    url: Option<Transport>,
    /// Print the MI result as JSON instead of text
    #[arg(long)]
    json: bool,
    /// How long to wait for each answer from evid, in seconds
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: Option<u64>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The published events
    Events,
    /// The subscribers, of every event or of EVENT
    Subscribers {
        /// Only this event's subscribers
        event: Option<String>,
    },
    /// Subscribe SOCKET (e.g. udp:127.0.0.1:9999) to EVENT
    Subscribe {
        /// The event's name, e.g. E_PIKE_BLOCKED
        event: String,
        /// The subscriber, as its transport writes it: udp:HOST:PORT, flatstore:/path, ...
        socket: String,
        /// Lifetime of the subscription in seconds (none: never expires)
        #[arg(long, value_name = "N")]
        expire: Option<u64>,
    },
    /// Remove the subscription of SOCKET to EVENT
    Unsubscribe {
        /// The event's name
        event: String,
        /// The subscriber, as it was subscribed
        socket: String,
    },
    /// Raise EVENT; integer values are sent as numbers
    Raise {
        /// The event's name
        event: String,
        /// The event's params, in order
        #[arg(value_name = "KEY=VALUE", allow_hyphen_values = true)]
        pairs: Vec<String>,
    },
    /// Print EVENT's raises as they happen, until Ctrl-C
    Watch {
        /// The events to print
        #[arg(value_name = "EVENT", required = true)]
        events: Vec<String>,
        /// Lifetime of the subscriptions in seconds, refreshed at half of it
        #[arg(long, value_name = "N")]
        expire: Option<u64>,
    },
    /// Statistics (all by default; e.g. event_flatstore:)
    Stats {
        /// A group (with its ':') or one statistic
        #[arg(value_name = "GROUP:|NAME")]
        names: Vec<String>,
    },
    /// Reload a transport module from its rebuilt .so (evid --dev)
    Reload {
        /// The module's name, e.g. event_flatstore
        module: String,
    },
    /// Run any MI command with positional params
    Mi {
        /// The MI command, e.g. events_list
        command: String,
        /// Integers are sent as numbers, [..] and {..} as JSON, anything else as a string
        #[arg(
            value_name = "ARG",
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        args: Vec<String>,
    },
    /// Print the completion script for a shell
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: Shell,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            eprintln!("evictl: {}\n\n{USAGE}", clap_message(&e));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
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

/// A clap error as one line, without clap's own usage and hint lines.
fn clap_message(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match e.kind() {
        // The derive makes a bare `evictl` show the help; it is a usage error, as before.
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            return "missing COMMAND".to_string()
        }
        ErrorKind::InvalidSubcommand => {
            if let Some(ContextValue::String(s)) = e.get(ContextKind::InvalidSubcommand) {
                return format!("unknown command {s:?}");
            }
        }
        _ => {}
    }
    let text = e.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    let text = text.split("\n\n").next().unwrap_or_default();
    text.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}

fn run(cli: Cli) -> Result<(), Fail> {
    if let Cmd::Completions { shell } = cli.cmd {
        return completions(shell);
    }
    let transport = match cli.url {
        Some(t) => t,
        None => {
            let url = std::env::var("EVID_MI_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
            Transport::parse(&url).map_err(|e| Fail::usage(&format!("$EVID_MI_URL: {e}")))?
        }
    };
    let ctl = Ctl {
        transport,
        json: cli.json,
        timeout: Duration::from_secs(cli.timeout.unwrap_or(DEFAULT_TIMEOUT)),
    };
    match cli.cmd {
        Cmd::Events => commands::events(&ctl),
        Cmd::Subscribers { event } => commands::subscribers(&ctl, event.as_deref()),
        Cmd::Subscribe {
            event,
            socket,
            expire,
        } => commands::subscribe(&ctl, &event, &socket, expire),
        Cmd::Unsubscribe { event, socket } => commands::unsubscribe(&ctl, &event, &socket),
        Cmd::Raise { event, pairs } => commands::raise(&ctl, &event, &pairs),
        Cmd::Watch { events, expire } => watch::run(&ctl, &events, expire),
        Cmd::Stats { names } => commands::stats(&ctl, &names),
        Cmd::Reload { module } => commands::reload(&ctl, &module),
        Cmd::Mi { command, args } => commands::mi(&ctl, &command, &args),
        Cmd::Completions { shell } => completions(shell),
    }
}

/// `evictl completions SHELL`: the script on stdout. Written whole, so a closed pipe is an
/// error message, not a panic in the generator.
fn completions(shell: Shell) -> Result<(), Fail> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "evictl", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .map_err(|e| Fail::failed(format!("cannot write the script: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_help_names_every_command() {
        for c in Cli::command().get_subcommands() {
            let name = c.get_name();
            assert!(
                USAGE.contains(&format!("\n  {name} ")),
                "the help does not show {name}"
            );
        }
    }

    #[test]
    fn cli_shapes() {
        let p = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("evictl").chain(args.iter().copied()))
        };
        // Negative ints and dashes reach `mi` as arguments.
        match p(&["mi", "log_level", "-1", "--x"]).map(|c| c.cmd) {
            Ok(Cmd::Mi { command, args }) => {
                assert_eq!(
                    (command.as_str(), args),
                    ("log_level", vec!["-1".to_string(), "--x".to_string()])
                )
            }
            _ => panic!("mi"),
        }
        // --expire before, between or after the positionals.
        for args in [
            &["subscribe", "--expire", "5", "E", "S"][..],
            &["subscribe", "E", "S", "--expire=5"],
        ] {
            assert!(
                matches!(
                    p(args).map(|c| c.cmd),
                    Ok(Cmd::Subscribe {
                        expire: Some(5),
                        ..
                    })
                ),
                "{args:?}"
            );
        }
        let e = p(&["--url", "ftp://x", "events"])
            .err()
            .map(|e| clap_message(&e));
        assert!(e.is_some_and(|e| e.contains("unsupported MI URL")));
        let e = p(&["frobnicate"]).err().map(|e| clap_message(&e));
        assert_eq!(e.as_deref(), Some("unknown command \"frobnicate\""));
        let e = p(&["subscribe", "E"]).err().map(|e| clap_message(&e));
        assert!(
            e.as_deref()
                .is_some_and(|e| !e.contains('\n') && e.contains("<SOCKET>")),
            "{e:?}"
        );
    }
}
