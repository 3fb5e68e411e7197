//! `evictl`: talk to a running evid over MI.

use evid::mi_client::{call, MiCallError, DEFAULT_URL};
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "\
usage: evictl [--url URL] mi COMMAND [ARG...]

  --url URL   evid's MI over HTTP (default http://127.0.0.1:8888/mi, or $EVID_MI_URL)

Arguments are sent as positional JSON-RPC params: integers as numbers, anything
else as strings; an argument starting with [ or { is sent as that JSON value.

examples:
  evictl mi events_list
  evictl mi event_subscribe E_PIKE_BLOCKED udp:127.0.0.1:9999 120
  evictl mi raise_event E_PIKE_BLOCKED '{\"ip\":\"192.0.2.10\"}'";

fn arg_value(a: &str) -> Value {
    if let Ok(i) = a.parse::<i64>() {
        return Value::from(i);
    }
    if a.starts_with('[') || a.starts_with('{') {
        if let Ok(v) = serde_json::from_str(a) {
            return v;
        }
    }
    Value::from(a)
}

fn main() -> ExitCode {
    let mut url = std::env::var("EVID_MI_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--url") {
        if args.len() < 2 {
            eprintln!("evictl: --url needs a URL");
            return ExitCode::from(2);
        }
        url = args[1].clone();
        args.drain(..2);
    }
    match args.first().map(String::as_str) {
        Some("mi") if args.len() >= 2 => {}
        Some("-h") | Some("--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    }
    let method = &args[1];
    let params: Vec<Value> = args[2..].iter().map(|a| arg_value(a)).collect();
    match call(&url, method, Value::Array(params), Duration::from_secs(10)) {
        Ok(v) => {
            let text = serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string());
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(MiCallError::Transport(e)) => {
            eprintln!("evictl: {e} (is evid running? see --url)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("evictl: {method}: {e}");
            ExitCode::FAILURE
        }
    }
}
