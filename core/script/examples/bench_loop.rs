//! Times the daemon benchmark's script loop against a host that does nothing, i.e. the cost of
//! the interpreter alone: `cargo run --release -p evi-script --example bench_loop [iterations]`.

use std::time::Instant;

use evi_script::{parse_str, Interpreter, LogLevel, ScriptHost, ScriptParam};

struct Null;

impl ScriptHost for Null {
    fn subscribe_event(&self, _: &str, _: &str, _: Option<i64>) -> Result<(), String> {
        Ok(())
    }
    fn raise_event(&self, _: &str, params: &[ScriptParam]) -> Result<(), String> {
        std::hint::black_box(params);
        Ok(())
    }
    fn log(&self, _: LogLevel, msg: &str) {
        eprint!("{msg}");
    }
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let text = format!(
        r#"max_while_loops = {n}
startup_route {{
    $avp(bn) = "msg";  $avp(bv) = "hello world";
    $avp(bn) = "user"; $avp(bv) = "alice";
    $avp(bn) = "id";   $avp(bv) = 42;
    $var(i) = 0;
    while ($var(i) < {n}) {{
        raise_event("E_BENCH", $avp(bn), $avp(bv));
        $var(i) = $var(i) + 1;
    }}
}}"#
    );
    let script = match parse_str("bench.cfg", &text) {
        Ok(s) => s,
        Err(e) => {
            eprint!("{}", evi_script::render(&e));
            std::process::exit(1);
        }
    };
    let host = Null;
    let it = Interpreter::new(&script, &host);
    let t = Instant::now();
    if let Err(e) = it.run_startup() {
        eprintln!("{e}");
        std::process::exit(1);
    }
    let dt = t.elapsed();
    println!(
        "{n} iterations in {:.3} s: {:.0} ns/iteration, {:.2} M raises/s",
        dt.as_secs_f64(),
        dt.as_nanos() as f64 / n as f64,
        n as f64 / dt.as_secs_f64() / 1e6
    );
}
