//! The Module impl against a fake host API: init creates the FIFO and serves through
//! `Host::mi_execute`, destroy joins the thread and removes the FIFO.

use evi_sdk::testing::FakeHost;
use evi_sdk::{Host, Module, ParamValue, Params};
use evi_testkit::TempDir;
use mi_fifo::MiFifo;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
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
    let dir = TempDir::new("mi_fifo");
    bad_params_fail_init(&dir);

    let before = threads();
    let fifo = dir.join("evid_fifo");
    let params = Params::from_pairs(&[
        ("fifo_name", ParamValue::Str(fifo.display().to_string())),
        ("fifo_mode", ParamValue::Int(0)),
        (
            "reply_dir",
            ParamValue::Str(dir.path().display().to_string()),
        ),
    ]);
    let mut m = MiFifo::init(host(), &params).expect("init");
    assert_eq!(threads(), before + 1);
    let meta = std::fs::metadata(&fifo).unwrap();
    assert!(meta.file_type().is_fifo());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "mode 0 means 0600"
    );

    // A reply FIFO, opened by a thread that blocks until the module opens the write end.
    let reply = dir.join("r1");
    let c = std::ffi::CString::new(reply.display().to_string()).unwrap();
    // SAFETY: a valid C path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::fs::File::open(&reply)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    });
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(b":r1:{\"id\":1}").unwrap();
    assert_eq!(reader.join().unwrap(), r#"{"len":8}"#);

    m.destroy();
    let t = std::time::Instant::now();
    while threads() != before && t.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(threads(), before, "destroy left threads running");
    assert!(!fifo.exists(), "destroy left the FIFO");
    assert!(!m.running());
    m.destroy(); // idempotent
}

fn bad_params_fail_init(dir: &TempDir) {
    let bad = |pairs: &[(&str, ParamValue)]| {
        MiFifo::init(host(), &Params::from_pairs(pairs))
            .err()
            .expect("rejected")
    };
    let name = |p: &std::path::Path| ("fifo_name", ParamValue::Str(p.display().to_string()));
    let fifo = dir.join("f");
    let e = bad(&[name(&fifo), ("fifo_mode", ParamValue::Int(0o1000))]);
    assert!(e.contains("fifo_mode"), "{e}");
    let e = bad(&[
        name(&fifo),
        ("reply_dir", ParamValue::Str("/no/such/dir".into())),
    ]);
    assert!(e.contains("reply_dir"), "{e}");
    assert!(bad(&[("fifo_name", ParamValue::Str(" ".into()))]).contains("fifo_name"));
    // A regular file at the path is not deleted.
    let file = dir.join("regular");
    std::fs::write(&file, "keep me").unwrap();
    let e = bad(&[name(&file)]);
    assert!(e.contains("not a FIFO"), "{e}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}
