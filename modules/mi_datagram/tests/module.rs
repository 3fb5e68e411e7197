//! The Module impl against a fake host API: init binds and serves through `Host::mi_execute`,
//! destroy joins every thread and removes the socket file.

use evi_sdk::testing::FakeHost;
use evi_sdk::{Host, Module, ParamValue, Params};
use evi_testkit::TempDir;
use mi_datagram::MiDatagram;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// The fake engine: a notification (no `"id"`) has no reply; otherwise the reply names the
/// request's length.
fn host() -> Host {
    static HOST: std::sync::OnceLock<&'static FakeHost> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        FakeHost::with_mi(|req| {
            String::from_utf8_lossy(req)
                .contains("\"id\"")
                .then(|| format!("{{\"len\":{}}}", req.len()).into_bytes())
        })
    })
    .host()
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, Iterator::count)
}

// One test, so that no other test's threads come and go while counting.
#[test]
fn module_lifecycle() {
    let dir = TempDir::new("mi_datagram");
    bad_params_fail_init(&dir);

    let before = threads();
    let path = dir.join("mi.sock");
    let params = Params::from_pairs(&[
        ("socket_name", ParamValue::Str(path.display().to_string())),
        ("children_count", ParamValue::Int(3)),
        ("unix_socket_mode", ParamValue::Int(0o600)),
    ]);
    let mut m = MiDatagram::init(host(), &params).expect("init");
    assert_eq!(threads(), before + 3);
    let meta = std::fs::metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);

    let client = UnixDatagram::bind(dir.join("client.sock")).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 1024];
    // A notification first: it gets nothing, so the first reply is the request's.
    client.send_to(br#"{"method":"x"}"#, &path).unwrap();
    client.send_to(br#" {"id":1} junk"#, &path).unwrap();
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], br#"{"len":8}"#);
    client.send_to(b"{", &path).unwrap();
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"400 Parse_error");

    m.destroy();
    let t = std::time::Instant::now();
    while threads() != before && t.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(threads(), before, "destroy left threads running");
    assert!(!path.exists(), "destroy left the socket file");
    assert!(m.local().is_none());
    m.destroy(); // idempotent
}

fn bad_params_fail_init(dir: &TempDir) {
    let bad = |pairs: &[(&str, ParamValue)]| {
        MiDatagram::init(host(), &Params::from_pairs(pairs))
            .err()
            .expect("rejected")
    };
    let sock = |p: &std::path::Path| ("socket_name", ParamValue::Str(p.display().to_string()));
    let path = dir.join("x.sock");
    assert!(bad(&[sock(&path), ("children_count", ParamValue::Int(0))]).contains("children_count"));
    assert!(
        bad(&[sock(&path), ("socket_buf_size", ParamValue::Int(10))]).contains("socket_buf_size")
    );
    assert!(
        bad(&[sock(&path), ("unix_socket_mode", ParamValue::Int(0o10000))])
            .contains("unix_socket_mode")
    );
    assert!(
        bad(&[("socket_name", ParamValue::Str("udp:1.2.3.4".into()))]).starts_with("mi_datagram: ")
    );
    // A regular file at the path is not deleted.
    let file = dir.join("regular");
    std::fs::write(&file, "keep me").unwrap();
    let e = bad(&[sock(&file)]);
    assert!(e.contains("not a socket"), "{e}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    let e = bad(&[sock(&dir.join("no/such/dir/s.sock"))]);
    assert!(
        e.starts_with("mi_datagram: cannot bind unix socket "),
        "{e}"
    );
}
