//! `evid-bench`: run the benchmark suite of issue 10 and write `results.csv` and `results.svg`.
//!
//! ```text
//! evid-bench [--quick] [--out DIR] [--only 1,2,9]
//! ```
//! `EVID_BENCH_N` sets the events per script loop (default 1,000,000; `--quick`: 100,000),
//! `EVID_BENCH_MI_SECS` the seconds per MI load run (default 10; `--quick`: 3),
//! `EVID_BENCH_DEAD_SECS` how long scenario 17 runs beside dead destinations (default 60;
//! `--quick`: 15),
//! `EVID_BENCH_CLIENT=rust` uses the built-in HTTP client for scenario 7 even when `wrk` is
//! installed. Exits non-zero if any scenario's counts are wrong.

use evi_bench::{describe, machine, run, write_results, Options};
use std::path::PathBuf;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace(['_', ','], "").parse().ok())
}

fn main() {
    evi_host::alloc::tune();
    let mut quick = false;
    let mut out = None;
    let mut only = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--out" => out = args.next().map(PathBuf::from).or(out),
            "--only" => {
                only = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|s| s.trim().parse().ok())
                    .collect()
            }
            "-h" | "--help" => {
                println!("evid-bench [--quick] [--out DIR] [--only 1,2,9]   (env EVID_BENCH_N, EVID_BENCH_ROUNDS, EVID_BENCH_MI_SECS, EVID_BENCH_DEAD_SECS, EVID_BENCH_CLIENT=rust)\nResults go to bench/ for a full run, to target/bench-partial/ for --quick or --only, unless --out DIR.");
                return;
            }
            other => {
                eprintln!("evid-bench: unknown argument {other:?} (see --help)");
                std::process::exit(2);
            }
        }
    }
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|p| p.to_path_buf()))
        .unwrap_or_default();
    // A partial run (--only, --quick) must not replace the committed full results in bench/.
    let out = out.unwrap_or_else(|| {
        PathBuf::from(if only.is_empty() && !quick {
            "bench"
        } else {
            "target/bench-partial"
        })
    });
    let opts = Options {
        bin_dir,
        out_dir: out,
        n: env_u64("EVID_BENCH_N").unwrap_or(if quick { 100_000 } else { 1_000_000 }),
        mi_secs: env_u64("EVID_BENCH_MI_SECS").unwrap_or(if quick { 3 } else { 10 }),
        dead_secs: env_u64("EVID_BENCH_DEAD_SECS").unwrap_or(if quick { 15 } else { 60 }),
        startup_runs: if quick { 5 } else { 11 },
        rounds: env_u64("EVID_BENCH_ROUNDS")
            .map_or(if quick { 1 } else { 3 }, |r| r.max(1) as usize),
        only,
        verbose: true,
    };
    let m = machine();
    eprintln!("evid-bench: N = {} events per loop, {m}", opts.n);
    let rows = match run(&opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("evid-bench: FAILED: {e}");
            std::process::exit(1);
        }
    };
    let title = format!("evid vs OpenSIPS — N = {} events, 3 params; {m}", opts.n);
    match write_results(&opts.out_dir, &rows, &title) {
        Ok((csv, svg)) => {
            println!();
            for r in &rows {
                println!("{}", describe(r));
            }
            println!("\nwrote {} and {}", csv.display(), svg.display());
            let failed: Vec<&str> = rows
                .iter()
                .filter(|r| r.failure.is_some())
                .map(|r| r.id.as_str())
                .collect();
            if !failed.is_empty() {
                eprintln!("evid-bench: FAILED requirements (losses counted by evid) in scenario(s) {failed:?}");
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("evid-bench: {e}");
            std::process::exit(1);
        }
    }
}
