//! End-to-end smoke run of scenarios 1, 2, 6 and 9 with a small N, on the build the test belongs
//! to (`scripts/test` builds the whole workspace first): every count is checked by the suite,
//! and here again, and the CSV and SVG must be written.

use evi_bench::{run, write_results, Options, CSV_HEADER};
use std::path::{Path, PathBuf};

fn build_dir() -> PathBuf {
    // target/<profile>/deps/<test> → target/<profile>
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

#[test]
fn scenarios_1_2_6_9_count_every_event_and_write_csv_and_svg() {
    let bin_dir = build_dir();
    assert!(
        bin_dir.join("evid").exists() && bin_dir.join("libevent_datagram.so").exists(),
        "build the workspace first (`cargo build --workspace --all-targets`, as scripts/test does): {} has no evid / modules",
        bin_dir.display()
    );
    let out = std::env::temp_dir().join(format!("evid-bench-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let n = 2_000;
    let opts = Options {
        bin_dir,
        out_dir: out.clone(),
        n,
        mi_secs: 1,
        dead_secs: 1,
        startup_runs: 1,
        rounds: 2,
        only: vec![1, 2, 6, 9],
        verbose: false,
    };
    let rows = run(&opts).unwrap_or_else(|e| panic!("{e}"));
    for r in &rows {
        assert_eq!(r.failure, None, "{r:?}");
    }
    // Scenario 2 alternates rounds with its baselines and reports each row's median.
    let udp = rows.iter().find(|r| r.id == "2");
    assert!(
        udp.is_some_and(|r| r.notes.starts_with("median of 2 rounds (")
            && r.notes.contains("per round, evid against raw sendto: ")
            && r.notes.contains("; connected sendmmsg: ")),
        "{udp:?}"
    );
    // Scenarios 1 and 6 alternate rounds too: the dead row is compared within each round.
    let dead = rows.iter().find(|r| r.id == "6");
    assert!(
        dead.is_some_and(|r| r.notes.starts_with("median of 2 rounds (")
            && r.notes
                .contains("per round, share of the flatstore loop alone: ")
            && r.notes.ends_with("%)")
            && r.notes.contains(" (median ")),
        "{dead:?}"
    );
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "1",
            "2",
            "2/raw",
            "2/raw-mmsg",
            "2/raw-conn",
            "6",
            "9/1",
            "9/4",
            "9/16",
            "9/64"
        ]
    );

    let flat = &rows[0];
    assert_eq!((flat.raised, flat.delivered, flat.lost_counted), (n, n, 0));
    assert!(flat.value > 0.0 && flat.ratio().is_some_and(|x| x > 0.0));

    // UDP: whatever was not received was counted by evid, nothing else.
    let udp = &rows[1];
    assert_eq!(udp.raised, n);
    assert_eq!(udp.delivered + udp.lost_counted, n, "{udp:?}");
    assert!(udp.delivered > 0 && udp.value > 0.0);

    for r in &rows[6..] {
        let subs: u64 = r.id[2..].parse().unwrap_or(0);
        // Paced raiser: every datagram to every subscriber arrives.
        assert_eq!(r.delivered, r.raised * subs, "{r:?}");
        assert_eq!(r.lost_counted, 0, "{r:?}");
        let (p50, p99, p999) = (
            r.p50_ns.unwrap_or(0),
            r.p99_ns.unwrap_or(0),
            r.p999_ns.unwrap_or(0),
        );
        assert!(0 < p50 && p50 <= p99 && p99 <= p999, "{r:?}");
    }

    let (csv, svg) = write_results(&out, &rows, "smoke").unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(&csv).unwrap_or_default();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(CSV_HEADER));
    assert_eq!(lines.count(), rows.len());
    assert!(text.contains("\n1,script loop → flatstore,"), "{text}");
    let svg = std::fs::read_to_string(&svg).unwrap_or_default();
    assert!(
        svg.starts_with("<svg") && svg.contains("OpenSIPS") && svg.contains("p99.9"),
        "{}",
        &svg[..svg.len().min(500)]
    );
    let _ = std::fs::remove_dir_all(&out);
}
