//! The Module impl against a fake host API: init binds and serves through `Host::mi_execute`,
//! destroy leaves no thread behind.

mod common;

use common::Client;
use evi_sdk::testing::FakeHost;
use evi_sdk::{Host, Module, ParamValue, Params};
use mi_http::MiHttp;
use std::net::TcpStream;

/// The fake engine: a notification (no `"id"`) has no reply; otherwise the reply names the
/// request's length.
fn host() -> Host {
    static HOST: std::sync::OnceLock<&'static FakeHost> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        FakeHost::with_mi(|req| {
            String::from_utf8_lossy(req).contains("\"id\"").then(|| {
                format!(
                    "{{\"jsonrpc\":\"2.0\",\"result\":{{\"len\":{}}},\"id\":1}}",
                    req.len()
                )
                .into_bytes()
            })
        })
    })
    .host()
}

/// Threads in this process. (Not counted by name: a new thread names itself only once running.)
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, Iterator::count)
}

// One test, run sequentially, so that no other test's threads come and go while counting.
#[test]
fn module_lifecycle() {
    bad_params_fail_init();
    init_serves_through_the_host_and_destroy_joins_every_thread();
}

fn init_serves_through_the_host_and_destroy_joins_every_thread() {
    let before = threads();
    let port = common::free_port();
    let params = Params::from_pairs(&[
        ("ip", ParamValue::Str("127.0.0.1".into())),
        ("port", ParamValue::Int(port.into())),
        ("root", ParamValue::Str("/api/mi/".into())),
        ("threads", ParamValue::Int(3)),
        ("max_body", ParamValue::Int(2048)),
    ]);
    let mut m = MiHttp::init(host(), &params).expect("init");
    let addr = m.local_addr().unwrap();
    assert_eq!(addr.port(), port);
    // Only the accept thread until a client connects (MI calls run on connection threads).
    assert_eq!(threads(), before + 1);

    let mut c = Client::connect(addr);
    let req = br#"{"jsonrpc":"2.0","id":1,"method":"events_list"}"#;
    c.post("/api/mi", req);
    let r = c.response().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(
        r.body,
        format!(
            r#"{{"jsonrpc":"2.0","result":{{"len":{}}},"id":1}}"#,
            req.len()
        )
        .as_bytes()
    );
    c.post("/api/mi", br#"{"jsonrpc":"2.0","method":"events_list"}"#);
    assert_eq!(c.response().unwrap().status(), 202);
    c.post("/mi", req);
    assert_eq!(c.response().unwrap().status(), 404);
    c.post("/api/mi", &[b' '; 2049]);
    assert_eq!(c.response().unwrap().status(), 413);

    // A second instance on the same port fails init, naming the address and the OS error.
    let err = MiHttp::init(host(), &params).err().expect("port in use");
    assert!(
        err.starts_with(&format!("mi_http: cannot listen on 127.0.0.1:{port}: ")),
        "{err}"
    );
    assert!(err.contains("in use"), "{err}");

    // An open keep-alive connection does not hold destroy up.
    let mut idle = Client::connect(addr);
    idle.post("/api/mi", req);
    assert_eq!(idle.response().unwrap().status(), 200);
    m.destroy();
    // pthread_join returns once a thread has left user space; the kernel may list it in
    // /proc for a moment longer, so allow it that moment. A leaked thread never goes away.
    let t = std::time::Instant::now();
    while threads() != before && t.elapsed() < std::time::Duration::from_secs(1) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(threads(), before, "destroy left threads running");
    assert!(m.local_addr().is_none());
    assert!(idle.closed());
    assert!(TcpStream::connect(addr).is_err());
    m.destroy(); // idempotent
}

fn bad_params_fail_init() {
    let bad = |pairs: &[(&str, ParamValue)]| {
        MiHttp::init(host(), &Params::from_pairs(pairs))
            .err()
            .expect("rejected")
    };
    assert!(bad(&[("port", ParamValue::Int(0))]).contains("port"));
    assert!(bad(&[("threads", ParamValue::Int(65))]).contains("threads"));
    assert!(bad(&[("max_body", ParamValue::Int(10))]).contains("max_body"));
    assert!(bad(&[("port", ParamValue::Str("x".into()))]).contains("port"));
    assert!(bad(&[
        ("root", ParamValue::Str("m i".into())),
        ("port", ParamValue::Int(common::free_port().into()))
    ])
    .contains("root"));
    let e = bad(&[
        ("ip", ParamValue::Str("not an ip!".into())),
        ("port", ParamValue::Int(common::free_port().into())),
    ]);
    assert!(
        e.starts_with("mi_http: cannot listen on not an ip!:"),
        "{e}"
    );
    let e = bad(&[
        ("ip", ParamValue::Str("2001:db8::1".into())),
        ("port", ParamValue::Int(9)),
    ]);
    assert!(
        e.starts_with("mi_http: cannot listen on [2001:db8::1]:9: "),
        "{e}"
    );
}
