//! event_stream loaded by the real evid, writing to real TCP consumers: the PyPI `opensips`
//! package's consumer (one connection per read, closed after it) and a persistent consumer
//! that parses incrementally and, in reliable mode, answers with results, errors or nothing.

use evi_testkit::{wait_for, Daemon};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// evid with event_stream; `E_GOLDEN` is published by the literal in a route never run.
fn daemon(modparams: &str) -> Daemon {
    Daemon::start(&format!(
        "loadmodule \"event_stream.so\"\n{modparams}\nroute[publish] {{ raise_event(\"E_GOLDEN\"); }}"
    ))
}

/// A consumer process from tests/peers, its stdout lines collected; killed on drop.
struct Peer {
    child: Child,
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Peer {
    fn start(python: std::path::PathBuf, script: &str, args: &[&str]) -> Peer {
        let path = format!("{}/tests/peers/{script}", env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new(python)
            .arg(path)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let mut reader = BufReader::new(stdout);
        let mut first = String::new();
        let _ = reader.read_line(&mut first);
        let port = first
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{script} said {first:?}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                l.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        Peer { child, port, lines }
    }

    fn opensips() -> Peer {
        Peer::start(evi_testkit::python(), "opensips_consumer.py", &[])
    }

    fn persistent(args: &[&str]) -> Peer {
        Peer::start("python3".into(), "stream_consumer.py", args)
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every line parsed as JSON (a line that is not JSON fails the test).
    fn values(&self) -> Vec<Value> {
        self.lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    fn wait_n(&self, n: usize) -> Vec<Value> {
        wait_for(T, || self.lines().len() >= n);
        self.values()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stat(d: &Daemon, port: u16, what: &str) -> u64 {
    let r = d
        .mi("event_stream:stats", json!([]))
        .unwrap_or_else(|e| panic!("{e}"));
    r["Destinations"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["destination"] == json!(format!("127.0.0.1:{port}")))
        .and_then(|s| s[what].as_u64())
        .unwrap_or(0)
}

/// A subscriber's counters as the daemon keeps them (MI `subscriber_stats`).
fn host_stat(d: &Daemon, socket: &str, what: &str) -> u64 {
    let r = d
        .mi("subscriber_stats", json!(["E_GOLDEN"]))
        .unwrap_or_else(|e| panic!("{e}"));
    r["Subscribers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["socket"] == json!(socket))
        .and_then(|s| s[what].as_u64())
        .unwrap_or(0)
}

fn subscribe(d: &Daemon, socket: &str) {
    d.mi("event_subscribe", json!(["E_GOLDEN", socket]))
        .unwrap_or_else(|e| panic!("{socket}: {e}"));
}

fn raise(d: &Daemon, params: Value) {
    assert_eq!(
        d.mi("raise_event", params.clone()).ok(),
        Some(json!("OK")),
        "{params}"
    );
}

#[test]
fn the_opensips_package_consumer_gets_every_event_although_it_closes_after_each_read() {
    let d = daemon("");
    let peer = Peer::opensips();
    subscribe(&d, &format!("tcp:127.0.0.1:{}", peer.port));
    let events = [
        json!([
            "E_GOLDEN",
            r#"{"id":42,"user":"alice","msg":"hello world"}"#
        ]),
        json!([
            "E_GOLDEN",
            r#"{"id":-7,"user":"bob \"the\" builder","msg":"a,b;c <&> é"}"#
        ]),
        json!(["E_GOLDEN"]),
        json!({"event": "E_GOLDEN", "params": ["x", "1"]}),
    ];
    let want = [
        json!({"jsonrpc":"2.0","method":"E_GOLDEN","params":{"id":42,"user":"alice","msg":"hello world"}}),
        json!({"jsonrpc":"2.0","method":"E_GOLDEN","params":{"id":-7,"user":"bob \"the\" builder","msg":"a,b;c <&> é"}}),
        json!({"jsonrpc":"2.0","method":"E_GOLDEN"}),
        json!({"jsonrpc":"2.0","method":"E_GOLDEN","params":["x","1"]}),
    ];
    // One at a time: this consumer closes after every read, so each event is its own
    // connection, and the sender must notice each close before writing the next one.
    for (i, e) in events.iter().enumerate() {
        raise(&d, e.clone());
        assert_eq!(
            peer.wait_n(i + 1).len(),
            i + 1,
            "event {i}; log:\n{}",
            d.log()
        );
    }
    assert_eq!(peer.values(), want.to_vec());
    assert!(wait_for(T, || stat(&d, peer.port, "delivered") == 4));
    assert_eq!(stat(&d, peer.port, "failed"), 0);
    assert_eq!(stat(&d, peer.port, "connections"), 4);
}

#[test]
fn a_burst_arrives_whole_and_in_order_on_one_connection() {
    // A generous timeout: on a loaded machine no event may fail for waiting in the queue.
    let d = daemon(
        "modparam(\"event_stream\", \"event_param\", \"opensips_event\")\nmodparam(\"event_stream\", \"timeout\", 60000)",
    );
    let peer = Peer::persistent(&[]);
    subscribe(&d, &format!("tcp:127.0.0.1:{}/on_event", peer.port));
    let n = 300;
    for i in 0..n {
        raise(
            &d,
            json!([
                "E_GOLDEN",
                json!({"i": i, "s": "x\"y\\z\n日本"}).to_string()
            ]),
        );
    }
    let got = peer.wait_n(n);
    assert_eq!(got.len(), n, "log:\n{}", d.log());
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g["conn"], json!(1));
        assert_eq!(
            g["obj"],
            json!({"jsonrpc":"2.0","method":"on_event","params":{"opensips_event":"E_GOLDEN","i":i,"s":"x\"y\\z\n日本"}})
        );
    }
    assert!(wait_for(T, || stat(&d, peer.port, "delivered") == n as u64));
    assert_eq!(stat(&d, peer.port, "connections"), 1);
}

#[test]
fn reliable_mode_reports_results_errors_and_timeouts() {
    let d = daemon(
        "modparam(\"event_stream\", \"reliable_mode\", 1)\nmodparam(\"event_stream\", \"timeout\", 5000)",
    );
    let peer = Peer::persistent(&["--reply"]);
    subscribe(&d, &format!("tcp:127.0.0.1:{}", peer.port));
    for p in ["ok1", "fail", "ignore", "ok2"] {
        raise(&d, json!(["E_GOLDEN", [p]]));
    }
    let got = peer.wait_n(4);
    let ids: Vec<u64> = got.iter().filter_map(|g| g["obj"]["id"].as_u64()).collect();
    assert_eq!(ids.len(), 4, "{got:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]) && ids[0] > 0, "{ids:?}");
    assert_eq!(
        got[1]["obj"],
        json!({"id": ids[1], "jsonrpc":"2.0","method":"E_GOLDEN","params":["fail"]})
    );
    assert!(
        wait_for(T, || stat(&d, peer.port, "delivered") == 2
            && stat(&d, peer.port, "failed") == 2),
        "delivered {} failed {}\n{}",
        stat(&d, peer.port, "delivered"),
        stat(&d, peer.port, "failed"),
        d.log()
    );
    // A reply without a numeric id is skipped, not fatal: still the first connection.
    assert_eq!(stat(&d, peer.port, "connections"), 1);
    let sock = format!("tcp:127.0.0.1:{}", peer.port);
    for want in [
        format!("delivery to {sock} failed"),
        "error reply -32000: refused by consumer".to_string(),
        "no reply within timeout (5000 ms)".to_string(),
    ] {
        assert!(
            wait_for(T, || d.log().contains(&want)),
            "{want} not in:\n{}",
            d.log()
        );
    }
}

#[test]
fn a_dead_consumer_fails_fast_and_does_not_delay_a_live_one() {
    let d = daemon("");
    let live = Peer::persistent(&[]);
    let dead = evi_testkit::free_port();
    subscribe(&d, &format!("tcp:127.0.0.1:{dead}"));
    subscribe(&d, &format!("tcp:127.0.0.1:{}", live.port));
    for i in 0..5 {
        raise(&d, json!(["E_GOLDEN", [i]]));
    }
    assert_eq!(live.wait_n(5).len(), 5);
    // Every event to the dead one is a counted failure (some failed by the daemon itself once
    // the module reported the destination down).
    let dead_socket = format!("tcp:127.0.0.1:{dead}");
    assert!(
        wait_for(T, || host_stat(&d, &dead_socket, "failed") == 5),
        "{}",
        d.log()
    );
    assert_eq!(host_stat(&d, &dead_socket, "delivered"), 0);
    assert_eq!(stat(&d, dead, "delivered"), 0);
    assert!(
        d.log().contains("connect: Connection refused"),
        "{}",
        d.log()
    );
}

#[test]
fn refresh_matches_host_port_and_method() {
    let d = daemon("");
    let peer = Peer::persistent(&[]);
    let a = format!("tcp:127.0.0.1:{}", peer.port);
    let b = format!("tcp:127.0.0.1:{}/m", peer.port);
    for s in [&a, &a, &b, &b] {
        subscribe(&d, s);
    }
    let list = d
        .mi("subscribers_list", json!(["E_GOLDEN"]))
        .unwrap_or_else(|e| panic!("{e}"));
    let socks: Vec<Value> = list["Event"]["Subscribers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["socket"].clone())
        .collect();
    assert_eq!(socks, vec![json!(b), json!(a)]);
    raise(&d, json!(["E_GOLDEN", ["one"]]));
    let got = peer.wait_n(2);
    let mut methods: Vec<_> = got.iter().map(|g| g["obj"]["method"].clone()).collect();
    methods.sort_by_key(|m| m.to_string());
    assert_eq!(methods, vec![json!("E_GOLDEN"), json!("m")]);
    // Both sockets share the consumer's one connection.
    assert!(wait_for(T, || stat(&d, peer.port, "delivered") == 2));
    assert_eq!(stat(&d, peer.port, "connections"), 1);
}

/// A destination that refuses connections is reported down: the daemon fails its events itself
/// (counted), only a probe every 100 ms reaches the module, and once the consumer is listening
/// again, a probe connects and events flow.
#[test]
fn a_down_destination_is_failed_by_the_daemon_until_a_probe_connects() {
    let d = daemon("");
    let port = evi_testkit::free_port();
    let socket = format!("tcp:127.0.0.1:{port}");
    subscribe(&d, &socket);
    let mut raised = 0;
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        raise(&d, json!(["E_GOLDEN", [raised]]));
        raised += 1;
    }
    assert!(
        wait_for(T, || host_stat(&d, &socket, "failed") == raised),
        "{raised} raised: {}",
        host_stat(&d, &socket, "failed")
    );
    // What reached the module: its own per-destination counts.
    let handled = stat(&d, port, "failed") + stat(&d, port, "dropped");
    assert!(
        handled * 4 < raised,
        "the module handled {handled} of {raised}: the daemon did not fail them itself"
    );
    let listener =
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{e}"));
    let reader = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap_or_else(|e| panic!("{e}"));
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let mut buf = vec![0u8; 1 << 16];
        let mut got = Vec::new();
        while let Ok(n) = std::io::Read::read(&mut conn, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&got).contains("\"recovered\"") {
                break;
            }
        }
        got
    });
    assert!(
        wait_for(T, || {
            raise(&d, json!(["E_GOLDEN", ["recovered"]]));
            std::thread::sleep(Duration::from_millis(50));
            host_stat(&d, &socket, "delivered") > 0
        }),
        "{}",
        d.log()
    );
    let got = reader.join().unwrap_or_default();
    assert!(String::from_utf8_lossy(&got).contains("\"recovered\""));
}
