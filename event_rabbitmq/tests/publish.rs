//! `server_id` and the `rabbitmq_publish()` script function (OpenSIPS's rabbitmq module),
//! through the real evid: a module's script function crosses ABI 1.2, the message reaches the
//! real broker, and mistakes are reported at the call's file:line.

mod support;

use evi_testkit::{check_config, run_to_exit, wait_for, Daemon};
use serde_json::json;
use std::time::Duration;
use support::{raise, status, status_json, Queue};

const T: Duration = Duration::from_secs(30);

#[test]
fn rabbitmq_publish_reaches_the_queue_with_the_servers_properties() {
    let _lock = support::shared();
    let q = Queue::new("publish", None);
    let mut d = Daemon::start(&format!(
        "loadmodule \"event_rabbitmq.so\"\n\
         modparam(\"event_rabbitmq\", \"server_id\", \"[local] uri=amqp://guest:guest@127.0.0.1:5672/%2f; retries=2\")\n\
         modparam(\"event_rabbitmq\", \"server_id\", \"[quick] uri=amqp://127.0.0.1; non-persistent; immediate\")\n\
         startup_route {{\n\
         rabbitmq_publish(\"local\", \"{q}\", \"first\", \"text/plain\");\n\
         if (!rabbitmq_publish(\"nope\", \"{q}\", \"never\")) {{ xlog(\"publish refused\\n\"); }}\n\
         }}\n\
         event_route[E_PUB] {{\n\
         fetch_event_params(\"body=$var(b)\");\n\
         rabbitmq_publish(\"quick\", \"{q}\", $var(b));\n\
         }}",
        q = q.0
    ));
    raise(&d, json!(["E_PUB", r#"{"body":"second"}"#]));
    let got = support::get(&q.0, 2, T);
    let seen: Vec<(String, Option<String>, Option<u8>)> = got
        .iter()
        .map(|(b, p)| {
            (
                String::from_utf8_lossy(b).into_owned(),
                p.content_type().as_ref().map(|c| c.to_string()),
                *p.delivery_mode(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("first".into(), Some("text/plain".into()), Some(2)),
            ("second".into(), None, Some(1)),
        ],
        "{}",
        d.log()
    );
    assert!(
        wait_for(T, || status(&d, "confirmed") == 2),
        "{}",
        status_json(&d)
    );
    let log = d.log();
    assert!(log.contains("publish refused"), "{log}");
    let cfg = std::fs::read_to_string(&d.config).unwrap_or_default();
    let line = cfg
        .lines()
        .position(|l| l.contains("\"nope\""))
        .map_or(0, |i| i + 1);
    assert!(
        log.contains(&format!(
            "evid.cfg:{line}:6: rabbitmq_publish: unknown server_id 'nope'"
        )),
        "the failure is logged at the call's file:line ({line}): {log}"
    );
    // One connection: both servers and no event socket share 127.0.0.1:5672 as guest on "/".
    assert_eq!(status_json(&d).as_array().map(Vec::len), Some(1));
    assert!(d.stop().0.success());
}

#[test]
fn describe_module_lists_the_script_function() {
    let out = std::process::Command::new(evi_testkit::evid_bin())
        .arg("--describe-module")
        .arg(evi_testkit::module_path("event_rabbitmq"))
        .output()
        .expect("evid --describe-module");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("script functions:\n  rabbitmq_publish(3..=4 args): "),
        "{text}"
    );
    assert!(text.contains("server_id (str repeatable)"), "{text}");
}

#[test]
fn mistakes_are_config_errors_naming_file_and_line() {
    let (code, _, err, _) = check_config(
        "bad.cfg",
        "loadmodule \"event_rabbitmq.so\"\n\
         modparam(\"event_rabbitmq\", \"server_id\", \"[s] uri=amqp://127.0.0.1\")\n\
         startup_route {\n  rabbitmq_publish(\"s\", \"k\");\n}\n",
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("bad.cfg:4:") && err.contains("rabbitmq_publish"),
        "{err}"
    );
    for (spec, want) in [
        ("s uri=amqp://h", "expected '[ID]'"),
        ("[s] exchange=x", "uri=amqp://... is required"),
        ("[s] uri=http://h", "uri 'http://h'"),
        ("[s] uri=amqps://h", "amqps:// needs tls_domain"),
        (
            "[s] uri=amqp://h; heartbeat=x",
            "heartbeat: 'x' is not a number",
        ),
        ("[s] uri=amqp://h; colour=red", "unknown setting 'colour'"),
        ("[s] uri=amqp://h; tls_domain=t", "unknown tls_domain 't'"),
    ] {
        let (code, out) = run_to_exit(&format!(
            "loadmodule \"event_rabbitmq.so\"\nmodparam(\"event_rabbitmq\", \"server_id\", \"{spec}\")\n"
        ));
        assert_ne!(code, 0, "{spec}: {out}");
        assert!(out.contains(want), "{spec}: wanted '{want}' in: {out}");
    }
}
