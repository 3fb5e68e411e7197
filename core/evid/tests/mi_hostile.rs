//! Hostile MI clients against the real daemon over mi_http: malformed JSON of every kind, a
//! 10 MB body, slowloris clients and thousands of connections. Each gets a clear error (or is
//! closed), memory and descriptors stay bounded, and other clients keep being served.

use evi_testkit::Daemon;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const CONFIG: &str = "loadmodule \"event_datagram.so\"\n\
    startup_route { subscribe_event(\"E_X\", \"udp:127.0.0.1:9\"); }";

fn addr(d: &Daemon) -> String {
    d.mi_url
        .trim_start_matches("http://")
        .trim_end_matches("/mi")
        .to_string()
}

fn serving(d: &Daemon) -> bool {
    d.mi("version", json!([])).is_ok()
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn malformed_requests_get_json_rpc_errors_and_the_daemon_keeps_serving() {
    let d = Daemon::start(CONFIG);
    let deep = "[".repeat(100_000);
    let cases: Vec<(Vec<u8>, i64, &str)> = vec![
        (br#"{"jsonrpc":"2.0","id":1,"method":"vers"#.to_vec(), -32700, "truncated"),
        (deep.into_bytes(), -32700, "nested 100,000 deep"),
        (
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"version","params":{}1{}}}"#, "[".repeat(40), "]".repeat(40)).into_bytes(),
            -32700,
            "nested 40 deep",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"method":"event_subscribe","params":["E_X","udp:127.0.0.1:9",18446744073709551616]}"#.to_vec(),
            -32602,
            "expire beyond i64",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"method":"event_subscribe","params":["E_X","udp:127.0.0.1:9",1e400]}"#.to_vec(),
            -32700,
            "a number beyond f64",
        ),
        (br#"{"jsonrpc":"2.0","id":1,"method":7}"#.to_vec(), -32600, "method of the wrong type"),
        (br#"{"jsonrpc":"2.0","id":1,"method":"raise_event","params":"E_X"}"#.to_vec(), -32600, "params of the wrong type"),
        (br#"{"jsonrpc":"2.0","id":1,"method":"raise_event","params":[{"a":1},[1]]}"#.to_vec(), -32602, "event of the wrong type"),
        (br#"{"jsonrpc":"2.0","id":{"x":1},"method":"version"}"#.to_vec(), -32600, "id of the wrong type"),
        (b"[]".to_vec(), -32600, "an empty batch"),
        (b"\"just a string\"".to_vec(), -32600, "not an object"),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"raise_event\",\"params\":[\"E_X\",[\"\xff\xfe\"]]}".to_vec(), -32700, "invalid UTF-8 in a string"),
        (b"\xff\xfe\xfd".to_vec(), -32700, "invalid UTF-8"),
    ];
    for (body, code, what) in cases {
        let r = d.mi_raw(&body);
        let reply: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| {
            panic!(
                "{what}: not JSON ({e}): {:?}",
                String::from_utf8_lossy(&r.body)
            )
        });
        assert_eq!(
            (r.status, reply["error"]["code"].as_i64()),
            (200, Some(code)),
            "{what}: {reply}"
        );
        assert!(serving(&d), "{what} stopped the daemon\n{}", d.log());
    }
    // Nothing was subscribed with a bogus expire.
    let subs = d
        .mi("subscribers_list", json!(["E_X"]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        subs["Event"]["Subscribers"].as_array().map(Vec::len),
        Some(1),
        "{subs}"
    );
}

#[test]
fn a_10_mb_body_is_refused_without_being_kept() {
    let d = Daemon::start(CONFIG);
    let rss0 = status_kb(d.pid(), "VmRSS:");
    // Declared: refused from the head, before a byte of the body is read.
    for _ in 0..5 {
        let mut s = TcpStream::connect(addr(&d)).unwrap_or_else(|e| panic!("{e}"));
        let head = format!(
            "POST /mi HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            10 << 20
        );
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(&vec![b' '; 1 << 20]);
        let mut reply = [0u8; 12];
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = s.read_exact(&mut reply);
        assert_eq!(&reply, b"HTTP/1.1 413");
    }
    // Chunked, so the size is only known while reading: refused once past the limit.
    let mut s = TcpStream::connect(addr(&d)).unwrap_or_else(|e| panic!("{e}"));
    let _ = s.write_all(b"POST /mi HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    let chunk = format!("{:x}\r\n{}\r\n", 1 << 16, " ".repeat(1 << 16));
    for _ in 0..160 {
        if s.write_all(chunk.as_bytes()).is_err() {
            break;
        }
    }
    let mut reply = Vec::new();
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.read_to_end(&mut reply);
    assert!(
        reply.starts_with(b"HTTP/1.1 413"),
        "{:?}",
        String::from_utf8_lossy(&reply[..reply.len().min(200)])
    );
    assert!(serving(&d));
    let rss = status_kb(d.pid(), "VmRSS:");
    assert!(rss < rss0 + 16 * 1024, "RSS {rss0} kB -> {rss} kB");
}

/// Slowloris clients trickle a request byte by byte; thousands of connections sit idle. Other
/// clients are still answered, and the daemon's descriptors and memory stay bounded.
#[test]
fn slow_and_idle_connections_by_the_thousand_do_not_lock_others_out() {
    let d = Daemon::start(CONFIG);
    let pid = d.pid();
    let (rss0, fds0) = (status_kb(pid, "VmRSS:"), fds(pid));
    let target = addr(&d);
    let mut after = Vec::new();
    for round in 0..2 {
        let idle: Vec<TcpStream> = (0..2000)
            .map(|i| TcpStream::connect(&target).unwrap_or_else(|e| panic!("connect #{i}: {e}")))
            .collect();
        let mut slow: Vec<TcpStream> = (0..200)
            .filter_map(|_| TcpStream::connect(&target).ok())
            .collect();
        let head = b"POST /mi HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n";
        let start = Instant::now();
        let mut served = 0;
        let mut i = 0;
        while start.elapsed() < Duration::from_secs(3) {
            for s in &mut slow {
                let _ = s.write_all(&head[i % head.len()..][..1]);
            }
            i += 1;
            assert!(
                serving(&d),
                "round {round}: a normal client was not served\n{}",
                d.log()
            );
            served += 1;
        }
        assert!(served > 10, "{served}");
        // At most MAX_CONNECTIONS (128) are open on the daemon's side at any time, each with a
        // second descriptor (the handle that shuts it down at stop or eviction).
        assert!(
            fds(pid) <= fds0 + 2 * 128 + 16,
            "descriptors {fds0} -> {}",
            fds(pid)
        );
        after.push(status_kb(pid, "VmRSS:"));
        drop(idle);
        drop(slow);
    }
    // Bounded: the second wave of 2,200 connections needs no more memory than the first.
    assert!(
        after[1] < after[0] + 16 * 1024,
        "RSS {rss0} kB -> {after:?} kB"
    );
    assert!(
        after[0] < rss0 + 128 * 1024,
        "RSS {rss0} kB -> {after:?} kB"
    );
    assert!(serving(&d));
}
