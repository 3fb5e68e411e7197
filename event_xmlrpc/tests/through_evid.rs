//! event_xmlrpc loaded by the real evid, delivering to real servers: a raw TCP capture (bytes
//! on the wire against OpenSIPS's golden requests) and Python's standard `xmlrpc.server`
//! (method and arguments as an XML-RPC application sees them), including slow, faulting,
//! wrong-path and dead servers.

use evi_testkit::{golden, wait_for, Daemon, TempDir};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// evid with event_xmlrpc; `E_GOLDEN` is published by the literal in a route never run.
fn daemon(modparams: &str) -> Daemon {
    Daemon::start(&format!(
        "loadmodule \"event_xmlrpc.so\"\n{modparams}\nroute[publish] {{ raise_event(\"E_GOLDEN\"); }}"
    ))
}

/// Python's `xmlrpc.server` (tests/peers/xmlrpc_server.py), killed on drop.
struct PyServer {
    child: Child,
    port: u16,
    out: std::path::PathBuf,
    _dir: TempDir,
}

impl PyServer {
    fn start(args: &[&str]) -> PyServer {
        let dir = TempDir::new("xmlrpc-peer");
        let out = dir.join("calls.jsonl");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/xmlrpc_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(&out)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("peer said {line:?}"));
        PyServer {
            child,
            port,
            out,
            _dir: dir,
        }
    }

    fn socket(&self, method: &str) -> String {
        format!("xmlrpc:127.0.0.1:{}:{method}", self.port)
    }

    fn calls(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn wait_calls(&self, n: usize) -> Vec<Value> {
        wait_for(T, || self.calls().len() >= n);
        self.calls()
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw HTTP server that records each request's bytes and answers 200 with a methodResponse.
struct Capture {
    port: u16,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
    connections: Arc<Mutex<usize>>,
}

impl Capture {
    fn start() -> Capture {
        let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (r, c) = (requests.clone(), connections.clone());
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                *c.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                let r = r.clone();
                std::thread::spawn(move || serve_raw(s, &r));
            }
        });
        Capture {
            port,
            requests,
            connections,
        }
    }

    fn requests(&self) -> Vec<Vec<u8>> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn serve_raw(mut s: TcpStream, out: &Mutex<Vec<Vec<u8>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4) else {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + len {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let req: Vec<u8> = buf.drain(..end + len).collect();
        out.lock().unwrap_or_else(|p| p.into_inner()).push(req);
        let body = "<?xml version=\"1.0\"?>\n<methodResponse><params><param><value><boolean>1</boolean></value></param></params></methodResponse>";
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if s.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

fn stats(d: &Daemon) -> Vec<Value> {
    let r = d
        .mi("event_xmlrpc:stats", json!([]))
        .unwrap_or_else(|e| panic!("{e}"));
    r["Destinations"].as_array().cloned().unwrap_or_default()
}

/// Counter `what` of the destination on `port`, 0 when it has none yet.
fn stat(d: &Daemon, port: u16, what: &str) -> u64 {
    stats(d)
        .iter()
        .find(|s| s["destination"] == json!(format!("127.0.0.1:{port}")))
        .and_then(|s| s[what].as_u64())
        .unwrap_or(0)
}

fn subscribe(d: &Daemon, socket: &str) {
    d.mi("event_subscribe", json!(["E_GOLDEN", socket]))
        .unwrap_or_else(|e| panic!("{socket}: {e}"));
}

fn raise(d: &Daemon, params: Value) {
    let r = d.mi("raise_event", params.clone());
    assert_eq!(r.ok(), Some(json!("OK")), "{params}");
}

/// The golden request with evid's two documented differences: keep-alive, and ints signed.
fn expected_golden(i: usize) -> String {
    let raw = String::from_utf8_lossy(&golden(&format!("event_xmlrpc_{i}.http"))).into_owned();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("golden {i}"));
    let body = body.replace("18446744073709551609", "-7");
    let head: Vec<String> = head
        .split("\r\n")
        .map(|l| match l {
            "Connection: close" => "Connection: keep-alive".to_string(),
            l if l.starts_with("Content-length: ") => format!("Content-length: {}", body.len()),
            l => l.replace("9997", "{port}"),
        })
        .collect();
    format!("{}\r\n\r\n{body}", head.join("\r\n"))
}

#[test]
fn requests_match_opensips_golden_bytes_on_one_connection() {
    let mut d = daemon("");
    let cap = Capture::start();
    subscribe(
        &d,
        &format!("xmlrpc:127.0.0.1:{}:e_golden_handler", cap.port),
    );
    for r in [
        json!([
            "E_GOLDEN",
            r#"{"id":42,"user":"alice","msg":"hello world"}"#
        ]),
        json!([
            "E_GOLDEN",
            r#"{"id":-7,"user":"bob \"the\" builder","msg":"a,b;c"}"#
        ]),
        json!(["E_GOLDEN"]),
        json!(["E_GOLDEN", []]),
        json!({"event": "E_GOLDEN", "params": ["x", "1"]}),
    ] {
        raise(&d, r);
    }
    assert!(
        wait_for(T, || cap.requests().len() >= 5),
        "log:\n{}",
        d.log()
    );
    let got = cap.requests();
    assert_eq!(got.len(), 5);
    for (i, g) in got.iter().enumerate() {
        let want = expected_golden(i).replace("{port}", &cap.port.to_string());
        assert_eq!(String::from_utf8_lossy(g), want, "request {i}");
    }
    assert!(
        wait_for(T, || stat(&d, cap.port, "delivered") == 5),
        "{:?}",
        stats(&d)
    );
    assert_eq!(
        *cap.connections.lock().unwrap_or_else(|p| p.into_inner()),
        1,
        "keep-alive reuses one connection"
    );
    assert!(d.stop().0.success());
}

#[test]
fn python_xmlrpc_server_receives_exact_methods_and_arguments() {
    let d = daemon("");
    let py = PyServer::start(&[]);
    subscribe(&d, &py.socket("ns:on_event"));
    let tricky = "<b>R&D</b> \"quoted\" 'single' ]]> café 日本 €";
    raise(
        &d,
        json!(["E_GOLDEN", json!({"id": 1, "msg": tricky}).to_string()]),
    );
    raise(&d, json!(["E_GOLDEN", [tricky, 7, "tab\tand\nnewline"]]));
    raise(&d, json!(["E_GOLDEN"]));
    let calls = py.wait_calls(3);
    let strip = |c: &Value| json!({"method": c["method"], "params": c["params"]});
    assert_eq!(
        calls.iter().map(strip).collect::<Vec<_>>(),
        vec![
            json!({"method": "ns:on_event", "params": ["E_GOLDEN", "id", 1, "msg", tricky]}),
            json!({"method": "ns:on_event", "params": ["E_GOLDEN", tricky, 7, "tab\tand\nnewline"]}),
            json!({"method": "ns:on_event", "params": ["E_GOLDEN"]}),
        ],
        "log:\n{}",
        d.log()
    );
    assert!(
        wait_for(T, || stat(&d, py.port, "delivered") == 3),
        "{:?}",
        stats(&d)
    );
    assert_eq!(stat(&d, py.port, "failed"), 0);
    assert_eq!(
        stat(&d, py.port, "connections"),
        1,
        "HTTP/1.1 server: one kept-alive connection"
    );
    let ports: std::collections::HashSet<_> =
        calls.iter().map(|c| c["client_port"].clone()).collect();
    assert_eq!(ports.len(), 1, "{calls:?}");
}

#[test]
fn struct_params_and_http10_servers() {
    let d = daemon("modparam(\"event_xmlrpc\", \"use_struct_param\", 1)");
    let py = PyServer::start(&["--http10"]);
    subscribe(&d, &py.socket("m"));
    for i in 0..3 {
        raise(
            &d,
            json!(["E_GOLDEN", json!({"n": i, "s": "a&b"}).to_string()]),
        );
    }
    let calls = py.wait_calls(3);
    let params: Vec<_> = calls.iter().map(|c| c["params"].clone()).collect();
    assert_eq!(
        params,
        (0..3)
            .map(|i| json!(["E_GOLDEN", {"n": i}, {"s": "a&b"}]))
            .collect::<Vec<_>>()
    );
    // HTTP/1.0 closes after each response: every call gets a fresh connection, none fails.
    assert!(
        wait_for(T, || stat(&d, py.port, "delivered") == 3),
        "{:?}",
        stats(&d)
    );
    assert_eq!(stat(&d, py.port, "connections"), 3);
    assert_eq!(stat(&d, py.port, "failed"), 0);
}

#[test]
fn faults_http_errors_and_dead_servers_are_failed_deliveries() {
    let d = daemon("modparam(\"event_xmlrpc\", \"retries\", 2)");
    let faulty = PyServer::start(&["--fault"]);
    let wrong_path = PyServer::start(&[]);
    let dead = evi_testkit::free_port();
    subscribe(&d, &faulty.socket("m"));
    subscribe(&d, &format!("xmlrpc:127.0.0.1:{}/nope:m", wrong_path.port));
    subscribe(&d, &format!("xmlrpc:127.0.0.1:{dead}:m"));
    raise(&d, json!(["E_GOLDEN", ["x"]]));
    raise(&d, json!(["E_GOLDEN", ["y"]]));
    assert!(
        wait_for(T, || stat(&d, faulty.port, "failed") == 2
            && stat(&d, wrong_path.port, "failed") == 2
            && stat(&d, dead, "failed") == 2),
        "{:?}\n{}",
        stats(&d),
        d.log()
    );
    // The fault server got both calls once each: a fault is an answer, not retried.
    assert_eq!(faulty.calls().len(), 2);
    assert_eq!(stat(&d, faulty.port, "retries"), 0);
    assert_eq!(
        stat(&d, wrong_path.port, "retries"),
        0,
        "4xx is not retried"
    );
    assert_eq!(stat(&d, dead, "retries"), 4, "2 retries per event");
    assert_eq!(stat(&d, dead, "delivered"), 0);
    let log = d.log();
    for want in [
        format!("delivery to xmlrpc:127.0.0.1:{}:m failed", faulty.port),
        "XML-RPC fault 4: no <way> & never".to_string(),
        "HTTP 404".to_string(),
        "(after 3 attempts)".to_string(),
    ] {
        assert!(
            wait_for(T, || d.log().contains(&want)),
            "{want} not in:\n{log}"
        );
    }
}

#[test]
fn a_slow_server_delays_only_its_own_queue() {
    let d = daemon("");
    let slow = PyServer::start(&["--slow", "3"]);
    let fast = PyServer::start(&[]);
    subscribe(&d, &slow.socket("m"));
    subscribe(&d, &fast.socket("m"));
    for i in 0..3 {
        raise(&d, json!(["E_GOLDEN", [i]]));
    }
    // The slow server needs 9 s for its three calls; the fast one has all of them long before.
    assert_eq!(fast.wait_calls(3).len(), 3, "{}", d.log());
    assert!(
        slow.calls().len() < 3,
        "slow server already done: {:?}",
        slow.calls()
    );
    assert!(wait_for(Duration::from_secs(40), || slow.calls().len() == 3));
    assert!(
        wait_for(T, || stat(&d, slow.port, "delivered") == 3),
        "{:?}",
        stats(&d)
    );
}

#[test]
fn full_queue_drops_are_counted_and_refresh_matches() {
    let d = daemon("modparam(\"event_xmlrpc\", \"queue_size\", 1)");
    let slow = PyServer::start(&["--slow", "2"]);
    let sock = slow.socket("m");
    // The same socket twice (and once with the default path spelled out) is one subscriber.
    subscribe(&d, &sock);
    subscribe(&d, &sock);
    subscribe(&d, &format!("xmlrpc:127.0.0.1:{}/RPC2:m", slow.port));
    let list = d
        .mi("subscribers_list", json!(["E_GOLDEN"]))
        .unwrap_or_else(|e| panic!("{e}"));
    let subs = list["Event"]["Subscribers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(subs.len(), 1, "{list}");
    assert_eq!(subs[0]["socket"], json!(sock));
    for i in 0..6 {
        raise(&d, json!(["E_GOLDEN", [i]]));
    }
    assert!(
        wait_for(Duration::from_secs(40), || {
            stat(&d, slow.port, "delivered") + stat(&d, slow.port, "dropped") == 6
                && stat(&d, slow.port, "queued") == 0
        }),
        "{:?}",
        stats(&d)
    );
    let dropped = stat(&d, slow.port, "dropped");
    assert!(dropped >= 1, "{:?}", stats(&d));
    assert_eq!(slow.calls().len() as u64, 6 - dropped);
    assert!(
        d.log()
            .contains("queue full (1 events waiting), event dropped"),
        "{}",
        d.log()
    );
}

fn sender_threads(d: &Daemon) -> usize {
    std::fs::read_dir(format!("/proc/{}/task", d.pid()))
        .map(|tasks| {
            tasks
                .filter_map(|t| t.ok())
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.trim() == "evid-xmlrpc")
                })
                .count()
        })
        .unwrap_or(0)
}

/// A dead server's last subscriber leaves with events still queued: they are tried once, fail
/// (counted), and the sender thread ends, instead of retrying each one with back-off for minutes
/// while subscribers to other dead ports pile up threads (found by scripts/soak).
#[test]
fn a_dead_server_left_by_its_last_subscriber_ends_its_sender_soon() {
    let d = daemon("modparam(\"event_xmlrpc\", \"retries\", 5)");
    let port = evi_testkit::free_port();
    let socket = format!("xmlrpc:127.0.0.1:{port}:m");
    subscribe(&d, &socket);
    for i in 0..300 {
        raise(&d, json!(["E_GOLDEN", [i]]));
    }
    assert_eq!(sender_threads(&d), 1);
    d.mi("event_subscribe", json!(["E_GOLDEN", socket, 0]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wait_for(Duration::from_secs(5), || sender_threads(&d) == 0),
        "the sender of a dead server still runs: {}",
        d.log()
    );
    let all = d
        .mi("get_statistics", json!([["event_xmlrpc:"]]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all["event_xmlrpc:failed"], 300, "{all}");
}
