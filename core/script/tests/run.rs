//! Running routes: AVP rules of raise_event, subscribe_event, control flow, guards, variables.

mod common;

use common::{run_startup, script, Recorder};
use evi_script::{Interpreter, LogLevel, ScriptParam, ScriptValue};

fn xlogs(host: &Recorder) -> Vec<String> {
    host.logs
        .lock()
        .unwrap()
        .iter()
        .map(|(_, m)| m.clone())
        .collect()
}

#[test]
fn raise_event_pairs_avps_newest_first() {
    let (host, r) = run_startup(
        r#"startup_route {
    $avp(n) = "msg";  $avp(v) = "hello world";
    $avp(n) = "user"; $avp(v) = "alice";
    $avp(n) = "id";   $avp(v) = 42;
    raise_event("E_GOLDEN", $avp(n), $avp(v));
    raise_event("E_POS", , $avp(v));
    raise_event("E_ATTRS_ONLY", $avp(n));
    raise_event("E_NONE");
    $avp(v) := "only";
    raise_event("E_REPLACED", , $avp(v));
}"#,
    );
    r.unwrap();
    assert_eq!(
        host.calls(),
        vec![
            "raise E_GOLDEN id=42,user=alice,msg=hello world",
            "raise E_POS 42,alice,hello world",
            "raise E_ATTRS_ONLY ",
            "raise E_NONE ",
            "raise E_REPLACED only",
        ]
    );
    let raised = host.raised.lock().unwrap();
    assert_eq!(
        raised[1].1[0],
        ScriptParam {
            name: None,
            value: ScriptValue::Int(42)
        }
    );
    assert_eq!(
        raised[0].1[2],
        ScriptParam {
            name: Some("msg".into()),
            value: ScriptValue::Str("hello world".into())
        }
    );
}

#[test]
fn raise_event_name_and_value_count_rules() {
    let (host, r) = run_startup(
        r#"startup_route {
    $avp(n) = "a"; $avp(v) = 1; $avp(v) = 2;
    if (!raise_event("E_FEWER", $avp(n), $avp(v))) { xlog("L_INFO", "fewer failed rc=$rc\n"); }
    $avp(m) = "x"; $avp(m) = "y"; $avp(m) = "z";
    raise_event("E_MORE", $avp(m), $avp(v));
}"#,
    );
    r.unwrap();
    // Fewer names than values: nothing raised. More names: the newest names pair up.
    assert_eq!(host.calls(), vec!["raise E_MORE z=2,y=1"]);
    assert_eq!(
        host.logs(),
        vec![
            "Error: test.cfg:3:10: raise_event(\"E_FEWER\"): fewer attribute names (1) than values (2), event not raised\n",
            "Info: fewer failed rc=-1\n",
            "Error: test.cfg:5:5: raise_event(\"E_MORE\"): more attribute names (3) than values (2), extra names ignored\n",
        ]
    );
}

#[test]
fn host_failures_make_functions_false_and_are_logged() {
    let s = script(
        r#"startup_route {
    if (!subscribe_event("E_A", "bogus:x")) { xlog("L_WARN", "sub failed\n"); }
    if (raise_event("E_A")) { xlog("raised\n"); } else { xlog("L_WARN", "raise failed\n"); }
}"#,
    );
    let host = Recorder {
        fail: Some("no such socket".into()),
        ..Recorder::default()
    };
    Interpreter::new(&s, &host).run_startup().unwrap();
    assert_eq!(
        host.logs(),
        vec![
            "Error: test.cfg:2:10: subscribe_event(\"E_A\", \"bogus:x\") failed: no such socket\n",
            "Warn: sub failed\n",
            "Error: test.cfg:3:9: raise_event(\"E_A\") failed: no such socket\n",
            "Warn: raise failed\n",
        ]
    );
}

#[test]
fn subscribe_event_expire_forms() {
    let (host, r) = run_startup(
        r#"startup_route {
    $var(host) = "10.0.0.1"; $var(exp) = 120;
    subscribe_event("E_A", "udp:127.0.0.1:9");
    subscribe_event("E_A", "udp:127.0.0.1:9", 0);
    subscribe_event("E_A", "udp:$var(host):9", 60);
    subscribe_event("E_$var(host)", "tcp:h:1", $var(exp));
    subscribe_event("E_A", "udp:127.0.0.1:9", $var(exp) - 200);
}"#,
    );
    r.unwrap();
    assert_eq!(
        host.calls(),
        vec![
            "subscribe E_A udp:127.0.0.1:9 None",
            "subscribe E_A udp:127.0.0.1:9 None",
            "subscribe E_A udp:10.0.0.1:9 Some(60)",
            "subscribe E_10.0.0.1 tcp:h:1 Some(120)",
        ]
    );
    assert_eq!(
        host.logs(),
        vec!["Error: test.cfg:7:5: subscribe_event(\"E_A\"): the expire must be a number of seconds\n"]
    );
}

#[test]
fn while_loops_are_bounded_by_max_while_loops() {
    let text =
        "startup_route {\n    $var(i) = 0;\n    while ($var(i) < 20000) { $var(i) += 1; }\n}";
    let (_, r) = run_startup(text);
    assert_eq!(
        r.unwrap_err().headline(),
        "test.cfg:3:5: runaway while loop: more than 10000 iterations (raise max_while_loops)"
    );
    // Exactly the limit is fine; the global raises it.
    let (_, r) = run_startup("startup_route { while ($var(i) < 10000) { $var(i) += 1; } }");
    r.unwrap();
    let (host, r) = run_startup(
        "max_while_loops = 30000\nstartup_route { while ($var(i) < 20000) { $var(i) += 1; } xlog(\"$var(i)\"); }",
    );
    r.unwrap();
    assert_eq!(xlogs(&host), vec!["20000"]);
    let s = script("startup_route { while (1) { } }");
    let host = Recorder::default();
    let mut it = Interpreter::new(&s, &host);
    it.set_max_while_loops(5);
    assert!(it
        .run_startup()
        .unwrap_err()
        .message
        .contains("more than 5 iterations"));
}

#[test]
fn runaway_recursion_and_step_limit() {
    let s = script("route[r] { route(r); }\nstartup_route { route(r); }");
    let host = Recorder::default();
    let e = Interpreter::new(&s, &host).run_startup().unwrap_err();
    assert_eq!(
        e.headline(),
        "test.cfg:1:7: too many nested route() calls (more than 100)"
    );

    // Branching recursion stays within the depth limit but explodes: the step guard stops it.
    let s = script("route[r] { if ($var(d) < 60) { $var(d) += 1; route(r); route(r); $var(d) -= 1; } }\nstartup_route { route(r); }");
    let mut it = Interpreter::new(&s, &host);
    it.set_max_steps(10_000);
    let e = it.run_startup().unwrap_err();
    assert!(
        e.message.starts_with("route stopped after 10000 steps"),
        "{e}"
    );
}

#[test]
fn switch_case_default_break_and_fallthrough() {
    let (host, r) = run_startup(
        r#"startup_route {
    $var(k) = 0;
    while ($var(k) < 5) {
        switch ($var(k)) {
            case 0: xlog("zero "); break;
            case 1: xlog("one ");
            case 2: xlog("one-or-two "); break;
            case "3": xlog("three ");
            default: xlog("default ");
        }
        $var(k) += 1;
    }
    $var(s) = "HeLLo";
    switch ($var(s)) { case "hello": xlog("ci-match "); break; default: xlog("no "); }
    switch ($var(s)) { case 1: xlog("never "); }
}"#,
    );
    r.unwrap();
    assert_eq!(
        xlogs(&host).concat(),
        "zero one one-or-two one-or-two three default default ci-match "
    );
}

#[test]
fn transformations_and_expressions() {
    let (host, r) = run_startup(
        r#"startup_route {
    $var(s) = "abcdef";
    xlog("$var(s){s.len} $(var(s){s.substr,1,3}) $var(s){s.substr,-2,0}{s.toupper}\n");
    $var(n) = "42";
    $var(n) = $var(n){s.int};
    $var(n) = $var(n) + 1;
    xlog("$var(n) ${s.len}\n");
    $var(c) = "x" + 1 + 2;
    $var(m) = 7 % 3 * 10 - 2 / 2;
    $var(b) = (1 << 4) | 3 & ~1;
    xlog("$var(c) $var(m) $var(b) $var(unset) $null $avp(none)\n");
    if ($var(s) =~ "^ABC" && $var(s) !~ "z$" && "Sip" == "SIP") { xlog("regex-ci\n"); }
    $var(re) = "d.f$";
    if ($var(s) =~ $var(re)) { xlog("dynamic\n"); }
    if ($var(n) > 42 && $var(n) >= "43" && "10" > 9 && $null == NULL && $var(s) != $null) { xlog("cmp\n"); }
    log("L_INFO", "log is verbatim $var(s)\n");
    log("default level\n");
}"#,
    );
    r.unwrap();
    assert_eq!(
        host.logs(),
        vec![
            "Error: 6 bcd EF\n",
            "Error: 43 ${s.len}\n",
            "Error: x12 9 18 0 <null> <null>\n",
            "Error: regex-ci\n",
            "Error: dynamic\n",
            "Error: cmp\n",
            "Info: log is verbatim $var(s)\n",
            "Debug: default level\n",
        ]
    );
}

#[test]
fn avp_stack_indexes_and_deletion() {
    let (host, r) = run_startup(
        r#"startup_route {
    $avp(a) = 1; $avp(a) = 2; $avp(a) = 3;
    xlog("$avp(a) $avp(a)[0] $avp(a)[2] $avp(a)[-1] $avp(a)[9]|");
    $avp(a)[1] = 20;
    $avp(a) = $null;
    xlog("$avp(a) $avp(a)[1]|");
    $avp(a) += 5;
    xlog("$avp(a)|");
    $avp(a)[*] = $null;
    xlog("$avp(a)|");
}"#,
    );
    r.unwrap();
    assert_eq!(xlogs(&host).concat(), "3 3 1 1 <null>|20 1|25|<null>|");
}

#[test]
fn routes_return_codes_exit_and_rc() {
    let (host, r) = run_startup(
        r#"route[two] { return(2); }
route[neg] { return(-1); }
route[stop] { xlog("in stop\n"); exit; }
route[zero] { return(0); }
startup_route {
    route(two); xlog("rc=$rc\n");
    if (route(neg)) { xlog("wrong\n"); } else { xlog("neg is false rc=$retcode\n"); }
    $var(r) = route(two) + 1; xlog("r=$var(r)\n");
    route(stop);
    xlog("not reached\n");
}
startup_route { }"#
            .replace("startup_route { }", "")
            .as_str(),
    );
    r.unwrap();
    assert_eq!(
        xlogs(&host),
        vec!["rc=2\n", "neg is false rc=-1\n", "r=3\n", "in stop\n"]
    );
    // return(0) from a route ends the whole script, like exit.
    let (host, r) =
        run_startup("route[zero] { return(0); }\nstartup_route { route(zero); xlog(\"after\"); }");
    r.unwrap();
    assert!(xlogs(&host).is_empty());
}

#[test]
fn vars_persist_between_runs_avps_do_not() {
    let s = script(
        "timer_route[tick, 5] { $var(count) += 1; $avp(seen) = 1; xlog(\"$var(count)/$avp(seen)[1]\"); }",
    );
    let host = Recorder::default();
    let it = Interpreter::new(&s, &host);
    it.run_timer("tick").unwrap();
    it.run_timer("tick").unwrap();
    assert_eq!(xlogs(&host), vec!["1/<null>", "2/<null>"]);
    assert_eq!(
        it.run_timer("nope").unwrap_err().to_string(),
        "test.cfg: no timer_route named 'nope'"
    );
}

#[test]
fn event_routes_read_params() {
    let s = script(
        r#"event_route[E_PIKE_BLOCKED] {
    $var(k) = "ip";
    xlog("blocked $param(ip) n=$param(2) k=$param($var(k)) missing=$param(nope)\n");
    # Unnamed entries take the parameter at their own position in the spec (the 2nd here).
    fetch_event_params("ip=$avp(ip);$var(first)");
    xlog("fetched $avp(ip) $var(first)\n");
}
startup_route { fetch_event_params("x=$var(x)"); }"#,
    );
    let host = Recorder::default();
    let it = Interpreter::new(&s, &host);
    let params = vec![
        ScriptParam {
            name: Some("ip".into()),
            value: ScriptValue::Str("192.0.2.10".into()),
        },
        ScriptParam {
            name: Some("count".into()),
            value: ScriptValue::Int(7),
        },
    ];
    it.run_event_route("E_PIKE_BLOCKED", &params).unwrap();
    assert_eq!(
        host.logs(),
        vec![
            "Warn: test.cfg:3:68: $param(nope): the event has no such parameter\n",
            "Error: blocked 192.0.2.10 n=7 k=192.0.2.10 missing=<null>\n",
            "Error: fetched 192.0.2.10 7\n",
        ]
    );
    assert_eq!(
        it.run_startup().unwrap_err().headline(),
        "test.cfg:8:17: fetch_event_params: not available outside event_route"
    );
    assert_eq!(
        it.run_event_route("E_OTHER", &[]).unwrap_err().headline(),
        "test.cfg: no event_route[E_OTHER]"
    );
}

#[test]
fn runtime_errors_carry_the_failing_position() {
    let cases = [
        (
            "startup_route {\n  $var(z) = 0;\n  $var(x) = 1 / $var(z);\n}",
            "test.cfg:3:15: division by zero",
        ),
        (
            "startup_route { $var(x) = \"a\" - 1; }",
            "test.cfg:1:31: operator '-' needs numbers, found string \"a\"",
        ),
        (
            "startup_route { $var(re) = \"(\"; if (\"a\" =~ $var(re)) { } }",
            "test.cfg:1:41: invalid regular expression \"(\": error: unclosed group",
        ),
        (
            "startup_route { xlog(\"$var(x)\"); route(r); }\nroute[r] { return(\"x\"); }",
            "test.cfg:2:12: return needs a number",
        ),
    ];
    for (text, want) in cases {
        let (_, r) = run_startup(text);
        assert_eq!(r.unwrap_err().headline(), want, "for {text:?}");
    }
}

#[test]
fn unchecked_scripts_fail_at_run_time_not_by_panicking() {
    // No check(): unknown functions, routes and pseudo-variables surface as run-time errors.
    let host = Recorder::default();
    let cases = [
        (
            "startup_route { t_relay(); }",
            "test.cfg:1:17: function 't_relay' is not available",
        ),
        (
            "startup_route { route(gone); }",
            "test.cfg:1:23: route 'gone' is not defined",
        ),
        (
            "startup_route { xlog(\"$ru\"); }",
            "test.cfg:1:23: pseudo-variable $ru is not available in evid",
        ),
        (
            "startup_route { raise_event(\"E\", \"n\", $avp(v)); }",
            "test.cfg:1:34: raise_event: argument 2 must be an AVP such as $avp(name)",
        ),
        (
            "startup_route { xlog(\"L_NOPE\", \"x\"); }",
            "test.cfg:1:22: xlog: unknown log level (use L_ERR, L_WARN, L_NOTICE, L_INFO or L_DBG)",
        ),
        (
            "startup_route { subscribe_event(\"E\"); }",
            "test.cfg:1:17: subscribe_event: argument 2 is missing",
        ),
    ];
    for (text, want) in cases {
        let s = evi_script::parse_str("test.cfg", text).unwrap();
        let e = Interpreter::new(&s, &host).run_startup().unwrap_err();
        assert_eq!(e.headline(), want);
    }
}

#[test]
fn time_and_process_variables() {
    let (host, r) = run_startup(
        r#"startup_route { xlog("$time(%Y-%m-%d %H:%M:%S)|$Ts|$pid|$time(%%)"); $var(t) = $Ts; }"#,
    );
    r.unwrap();
    let line = xlogs(&host).remove(0);
    let parts: Vec<&str> = line.split('|').collect();
    let stamp = parts[0].as_bytes();
    assert_eq!(stamp.len(), 19, "{line}");
    for (i, c) in stamp.iter().enumerate() {
        match i {
            4 | 7 => assert_eq!(*c, b'-'),
            10 => assert_eq!(*c, b' '),
            13 | 16 => assert_eq!(*c, b':'),
            _ => assert!(c.is_ascii_digit(), "{line}"),
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ts: i64 = parts[1].parse().unwrap();
    assert!((now - ts).abs() <= 2, "{ts} vs {now}");
    assert_eq!(parts[2], std::process::id().to_string());
    assert_eq!(parts[3], "%");
}

#[test]
fn xlog_respects_log_enabled() {
    struct Quiet(Recorder);
    impl evi_script::ScriptHost for Quiet {
        fn subscribe_event(&self, e: &str, s: &str, x: Option<i64>) -> Result<(), String> {
            self.0.subscribe_event(e, s, x)
        }
        fn raise_event(&self, e: &str, p: &[ScriptParam]) -> Result<(), String> {
            self.0.raise_event(e, p)
        }
        fn log(&self, l: LogLevel, m: &str) {
            self.0.log(l, m)
        }
        fn log_enabled(&self, l: LogLevel) -> bool {
            l <= LogLevel::Warn
        }
    }
    let s = script(
        "startup_route { xlog(\"L_DBG\", \"$ru-free debug\"); xlog(\"L_WARN\", \"w\"); }"
            .replace("$ru-free ", "")
            .as_str(),
    );
    let host = Quiet(Recorder::default());
    Interpreter::new(&s, &host).run_startup().unwrap();
    assert_eq!(host.0.logs(), vec!["Warn: w"]);
}

#[test]
fn interpreter_is_shareable_across_threads() {
    fn assert_sync<T: Sync>() {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_sync::<Interpreter<'static>>();
    assert_send_sync::<evi_script::Script>();
    assert_send_sync::<evi_script::Diagnostic>();
    let s = script("timer_route[t, 1] { $var(n) += 1; raise_event(\"E_T\"); }");
    let host = Recorder::default();
    let it = Interpreter::new(&s, &host);
    std::thread::scope(|sc| {
        for _ in 0..4 {
            sc.spawn(|| {
                for _ in 0..100 {
                    it.run_timer("t").unwrap();
                }
            });
        }
    });
    assert_eq!(host.calls().len(), 400);
}

#[test]
fn the_benchmark_loop_runs() {
    // The shape of the daemon benchmark, at a size a debug test can afford.
    let (host, r) = run_startup(
        r#"max_while_loops = 2000000
startup_route {
    $avp(bn) = "user"; $avp(bv) = "alice";
    $avp(bn) = "id";   $avp(bv) = 1;
    $var(i) = 0;
    while ($var(i) < 20000) { raise_event("E_BENCH", $avp(bn), $avp(bv)); $var(i) = $var(i) + 1; }
}"#,
    );
    r.unwrap();
    let calls = host.calls();
    assert_eq!(calls.len(), 20000);
    assert_eq!(calls[19999], "raise E_BENCH id=1,user=alice");
}

#[test]
fn reused_raise_parameters_follow_every_avp_change() {
    let (host, r) = run_startup(
        r#"startup_route {
    $avp(n) = "k"; $avp(v) = 0;
    $var(i) = 0;
    while ($var(i) < 3) {
        raise_event("E_A", $avp(n), $avp(v));
        raise_event("E_B", , $avp(v));
        raise_event("E_A", $avp(n), $avp(v));
        $avp(v)[0] = $var(i) + 1;
        $var(i) += 1;
    }
    $avp(n) := "name";
    raise_event("E_A", $avp(n), $avp(v));
    $avp(n) = "extra";
    raise_event("E_A", $avp(n), $avp(v));
    raise_event("E_A", $avp(n), $avp(v));
}"#,
    );
    r.unwrap();
    assert_eq!(
        host.calls(),
        vec![
            "raise E_A k=0",
            "raise E_B 0",
            "raise E_A k=0",
            "raise E_A k=1",
            "raise E_B 1",
            "raise E_A k=1",
            "raise E_A k=2",
            "raise E_B 2",
            "raise E_A k=2",
            "raise E_A name=3",
            "raise E_A extra=3",
            "raise E_A extra=3",
        ]
    );
    // The names/values mismatch is reported on every raise, not just the first.
    assert_eq!(host.logs.lock().unwrap().len(), 2);
}

#[test]
fn deep_run_time_nesting_is_an_error_not_a_stack_overflow() {
    // route() recursion where every level sits 60 blocks deep, on a 2 MiB thread.
    let ifs_open = "if (1) { ".repeat(60);
    let ifs_close = "} ".repeat(60);
    let text = format!(
        "route[r] {{ {ifs_open} $var(d) += 1; route(r); {ifs_close} }}\nstartup_route {{ route(r); }}"
    );
    let s = script(&text);
    let r = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let host = Recorder::default();
            Interpreter::new(&s, &host)
                .run_startup()
                .map_err(|e| e.headline())
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(
        r.unwrap_err(),
        "test.cfg:1:7: route() calls nested too deeply inside blocks (more than 512 open blocks)"
    );
    // Plain recursion reaches OpenSIPS's limit of 100 first.
    let s = script("route[r] { if (1) { if (1) { route(r); } } }\nstartup_route { route(r); }");
    let r = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let host = Recorder::default();
            Interpreter::new(&s, &host)
                .run_startup()
                .map_err(|e| e.headline())
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(
        r.unwrap_err(),
        "test.cfg:1:7: too many nested route() calls (more than 100)"
    );
}
