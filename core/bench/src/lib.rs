//! # evi-bench
//!
//! The benchmark suite of issue 10: the scenarios OpenSIPS was measured with and one per
//! transport (flatstore, UDP, unix, event_route, TCP stream, RabbitMQ with confirms, virtual),
//! MI over HTTP, resident memory (idle, under load, beside dead destinations) and start-up time,
//! run against the real `evid` binary and the real module `.so` files (the raise-latency
//! scenarios 9 and 15 against the host in-process), next to the OpenSIPS figure where the issue
//! has one. The scenarios are listed in `bench/README.md`.
//!
//! Every scenario checks its counts: events delivered equal events raised, or the difference is
//! what the daemon itself reported as dropped/failed. A run that loses an event silently fails
//! with an error naming the scenario and the counts.
//!
//! `evid-bench` (the binary) runs the scenarios and writes `results.csv` and `results.svg`;
//! `scripts/bench` runs it on the release build.

mod chart;
mod daemon;
mod scenarios;
mod sinks;

pub use daemon::Daemon;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

// As in the evid binary: an event is allocated by the raiser and freed on a module thread, which
// serialises glibc malloc (scenario 9 runs the host in this process).
#[global_allocator]
static ALLOC: evi_host::alloc::MiMalloc = evi_host::alloc::MiMalloc;

/// What to run and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// Directory holding `evid` and the module `.so` files (`target/release`).
    pub bin_dir: PathBuf,
    /// Where `results.csv` and `results.svg` go.
    pub out_dir: PathBuf,
    /// Events per script loop (1-6, 10-14, 16), the delivery budget of scenario 9 and the
    /// events per case of 15.
    pub n: u64,
    /// Seconds each MI load run lasts (scenario 7).
    pub mi_secs: u64,
    /// Seconds scenario 17 raises beside dead destinations (60; `--quick`: 15).
    pub dead_secs: u64,
    /// Start-ups scenario 18 takes the median of (11; `--quick`: 5).
    pub startup_runs: usize,
    /// Alternating rounds of scenario 2 and its raw baselines, of scenario 1 and 4-6, and of
    /// scenario 7's two loads; each row reports its median (3; `--quick`: 1). One round each was
    /// at the mercy of a shared VM's swings.
    pub rounds: usize,
    /// Scenario numbers to run (1..=18); empty = all.
    pub only: Vec<u32>,
    /// Print progress lines to stderr.
    pub verbose: bool,
}

impl Options {
    pub fn wants(&self, scenario: u32) -> bool {
        self.only.is_empty() || self.only.contains(&scenario)
    }
}

/// One measured figure, one line of `results.csv`.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// Scenario number and variant, e.g. `7/4` (MI with 4 connections).
    pub id: String,
    pub scenario: String,
    /// evid's figure in `unit`.
    pub value: f64,
    pub unit: &'static str,
    /// OpenSIPS's figure of issue 10 in the same unit, where there is one.
    pub opensips: Option<f64>,
    /// `true` when less is better (memory, latency).
    pub lower_is_better: bool,
    /// Raise latency percentiles in ns, where the raiser is in this process.
    pub p50_ns: Option<u64>,
    pub p99_ns: Option<u64>,
    pub p999_ns: Option<u64>,
    /// Events raised (per subscriber) and what happened to them.
    pub raised: u64,
    pub delivered: u64,
    /// Dropped or failed, as reported by the daemon (MI statistics).
    pub lost_counted: u64,
    pub notes: String,
    /// Samples over time (seconds, value in `unit`) for the chart: VmRSS in 16 and 17.
    pub series: Vec<(f64, f64)>,
    /// Set when the scenario's requirement failed with every loss counted by evid (e.g.
    /// flatstore dropped events beside a dead destination). Uncounted losses are errors instead.
    pub failure: Option<String>,
}

impl Row {
    /// How many times better than OpenSIPS (its figure divided by ours where less is better).
    pub fn ratio(&self) -> Option<f64> {
        let o = self.opensips?;
        if self.value <= 0.0 || o <= 0.0 {
            return None;
        }
        Some(if self.lower_is_better {
            o / self.value
        } else {
            self.value / o
        })
    }
}

/// The figures of issue 10 (OpenSIPS 3.6.8, this machine class, 1M events, 3 params, medians).
pub mod opensips {
    pub const FLATSTORE: f64 = 304_000.0;
    pub const UDP: f64 = 17_800.0;
    pub const FLATSTORE_UDP: f64 = 19_300.0;
    pub const DEAD_RABBITMQ: f64 = 13_000.0;
    pub const DEAD_XMLRPC: f64 = 91_000.0;
    pub const DEAD_STREAM: f64 = 180.0;
    pub const MI_1: f64 = 15_000.0;
    pub const MI_4: f64 = 20_700.0;
    pub const RSS_MB: f64 = 66.0;
}

/// Run the selected scenarios; every count is checked. Returns the rows measured.
pub fn run(opts: &Options) -> Result<Vec<Row>, String> {
    let evid = opts.bin_dir.join("evid");
    if !evid.exists() {
        return Err(format!(
            "{} is missing: build first (`cargo build --release --workspace --bins --lib`)",
            evid.display()
        ));
    }
    // Fail before a long run, not in the middle of it, when the broker of scenario 13 is down.
    if opts.wants(13) {
        scenarios::require_broker()?;
    }
    let mut rows = Vec::new();
    let push = |r: Vec<Row>, rows: &mut Vec<Row>| {
        for row in r {
            if opts.verbose {
                eprintln!("{}", describe(&row));
            }
            rows.push(row);
        }
    };
    let (alone, beside) = if [1, 4, 5, 6].iter().any(|&k| opts.wants(k)) {
        scenarios::flatstore_rounds(opts)?
    } else {
        (Vec::new(), Vec::new())
    };
    push(alone, &mut rows);
    if opts.wants(2) {
        push(scenarios::loop_udp(opts)?, &mut rows);
    }
    if opts.wants(3) {
        push(scenarios::loop_flatstore_udp(opts)?, &mut rows);
    }
    push(beside, &mut rows);
    if opts.wants(7) {
        push(scenarios::mi_http(opts)?, &mut rows);
    }
    if opts.wants(8) {
        push(scenarios::idle_memory(opts)?, &mut rows);
    }
    if opts.wants(9) {
        push(scenarios::scaling(opts)?, &mut rows);
    }
    type Scenario = fn(&Options) -> Result<Vec<Row>, String>;
    let more: [(u32, Scenario); 9] = [
        (10, scenarios::loop_unix),
        (11, scenarios::loop_route),
        (12, scenarios::loop_stream),
        (13, scenarios::loop_rabbitmq),
        (14, scenarios::loop_virtual),
        (15, scenarios::dead_latency),
        (16, scenarios::load_memory),
        (17, scenarios::dead_memory),
        (18, scenarios::startup),
    ];
    for (k, f) in more {
        if opts.wants(k) {
            push(f(opts)?, &mut rows);
        }
    }
    Ok(rows)
}

/// One human-readable line for a row.
pub fn describe(r: &Row) -> String {
    let mut s = format!(
        "{:<6} {:<44} {:>12.0} {:<9}",
        r.id, r.scenario, r.value, r.unit
    );
    if let Some(o) = r.opensips {
        let _ = write!(s, " OpenSIPS {o:>9.0}");
    }
    if let Some(x) = r.ratio() {
        let _ = write!(s, "  x{x:.1}");
    }
    if let (Some(a), Some(b), Some(c)) = (r.p50_ns, r.p99_ns, r.p999_ns) {
        let _ = write!(s, "  p50/p99/p999 {a}/{b}/{c} ns");
    }
    let _ = write!(
        s,
        "  raised {} delivered {} lost(counted) {}",
        r.raised, r.delivered, r.lost_counted
    );
    if !r.notes.is_empty() {
        let _ = write!(s, "  [{}]", r.notes);
    }
    if let Some(f) = &r.failure {
        let _ = write!(s, "  FAIL: {f}");
    }
    s
}

/// The CSV header.
pub const CSV_HEADER: &str = "id,scenario,evid,unit,opensips,times_better,p50_ns,p99_ns,p999_ns,raised,delivered,lost_counted,check,notes";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `results.csv` text.
pub fn to_csv(rows: &[Row]) -> String {
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{:.1},{},{},{},{},{},{},{},{},{},{},{}",
            csv_field(&r.id),
            csv_field(&r.scenario),
            r.value,
            r.unit,
            r.opensips.map(|v| format!("{v:.0}")).unwrap_or_default(),
            r.ratio().map(|v| format!("{v:.2}")).unwrap_or_default(),
            opt(r.p50_ns),
            opt(r.p99_ns),
            opt(r.p999_ns),
            r.raised,
            r.delivered,
            r.lost_counted,
            csv_field(&match &r.failure {
                Some(f) => format!("FAIL: {f}"),
                None => "ok".into(),
            }),
            csv_field(&r.notes),
        );
    }
    out
}

/// Write `results.csv` and `results.svg` into `dir`; returns their paths.
pub fn write_results(dir: &Path, rows: &[Row], title: &str) -> Result<(PathBuf, PathBuf), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let csv = dir.join("results.csv");
    std::fs::write(&csv, to_csv(rows)).map_err(|e| format!("{}: {e}", csv.display()))?;
    let svg = dir.join("results.svg");
    chart::draw(&svg, rows, title)?;
    Ok((csv, svg))
}

/// A line describing this machine for the chart and the README.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{cpus} CPUs, {model}, load {load}")
}
