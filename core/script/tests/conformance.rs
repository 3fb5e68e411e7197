//! The OpenSIPS config that produced the golden samples must parse and run as OpenSIPS ran it.

mod common;

use common::Recorder;
use evi_script::{builtin_functions, parse_file, Diagnostic, Interpreter, Item, Literal};
use std::path::Path;

fn conformance_cfg() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/conformance/opensips/opensips.cfg"
    ))
}

#[test]
fn parses_and_runs_the_golden_config() {
    let path = conformance_cfg();
    let script = parse_file(path).unwrap_or_else(|d| panic!("{}", evi_script::render(&d)));
    let name = path.display().to_string();

    let globals: Vec<(String, Literal)> = script
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Global { name, value, .. } => Some((name.clone(), value.clone())),
            _ => None,
        })
        .collect();
    let s = |v: &str| Literal::Str(v.into());
    assert_eq!(
        globals,
        vec![
            ("log_level".into(), Literal::Int(2)),
            ("xlog_level".into(), Literal::Int(2)),
            ("stderror_enabled".into(), Literal::Int(1)),
            ("syslog_enabled".into(), Literal::Int(0)),
            ("udp_workers".into(), Literal::Int(2)),
            ("socket".into(), s("udp:127.0.0.1:5060")),
            (
                "mpath".into(),
                s("/usr/lib/x86_64-linux-gnu/opensips/modules/")
            ),
        ]
    );
    let modules: Vec<&str> = script
        .items
        .iter()
        .filter_map(|i| match i {
            Item::LoadModule { path, .. } => Some(path.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(modules.len(), 17);
    assert_eq!(modules[0], "proto_udp.so");
    assert_eq!(modules[16], "event_rabbitmq.so");
    let modparams: Vec<(String, String, Literal)> = script
        .items
        .iter()
        .filter_map(|i| match i {
            Item::ModParam {
                module,
                param,
                value,
                ..
            } => Some((module.clone(), param.clone(), value.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        modparams[1],
        ("mi_fifo".into(), "fifo_mode".into(), Literal::Int(0o666))
    );
    assert_eq!(
        modparams[4],
        ("httpd".into(), "port".into(), Literal::Int(8888))
    );
    assert_eq!(modparams.len(), 6);

    assert!(script.has_startup_route());
    assert!(script.event_routes().is_empty());
    assert!(script.timer_routes().is_empty());
    let events: Vec<String> = script
        .literal_events()
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    assert_eq!(events, vec!["E_GOLDEN", "E_BENCH"]);

    // The SIP request route uses a function evid does not have: check says so, precisely.
    let errs: Vec<String> = script
        .check(&builtin_functions())
        .iter()
        .map(Diagnostic::headline)
        .collect();
    assert_eq!(
        errs,
        vec![format!("{name}:76:5: unknown function 'sl_send_reply'")]
    );

    let host = Recorder::default();
    Interpreter::new(&script, &host).run_startup().unwrap();
    assert_eq!(
        host.calls(),
        vec![
            "subscribe E_GOLDEN udp:127.0.0.1:9999 None",
            "subscribe E_GOLDEN flatstore:/tmp/golden_flat_A.log None",
            "subscribe E_GOLDEN xmlrpc:127.0.0.1:9997:e_golden_handler None",
            "subscribe E_GOLDEN rabbitmq:guest:guest@127.0.0.1:5672/ebench None",
            "subscribe E_BENCH flatstore:/tmp/mi_bench.log None",
            "raise E_GOLDEN id=42,user=alice,msg=hello world",
            "raise E_GOLDEN id=-7,user=bob \"the\" builder,msg=a,b;c",
            // One AVP = the attribute-names slot in 3.x: no parameters (golden sample 2).
            "raise E_GOLDEN ",
            "raise E_GOLDEN ",
        ]
    );
    // Types survive: 42 is an int, the rest strings.
    let raised = host.raised.lock().unwrap();
    assert_eq!(raised[0].1[0].value, evi_script::ScriptValue::Int(42));
    assert_eq!(
        raised[0].1[1].value,
        evi_script::ScriptValue::Str("alice".into())
    );
    assert_eq!(host.logs(), vec!["Notice: GOLDEN raised\n"]);
}
