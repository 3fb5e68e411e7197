//! Semantic checks: each error with its exact `FILE:LINE:COL: message`.

mod common;

use common::check_errors;
use evi_script::{parse_str, FunctionSpec};

#[test]
fn semantic_errors_are_all_reported_in_file_order() {
    let errs = check_errors(
        r#"loadmodule "x.so"
startup_route {
    t_relay();
    xlog("a", "b", "c");
    route(nowhere);
    raise_event("E_X", "names", $avp(v));
    raise_event("E_X", $avp(n), $var(v));
    raise_event("E_Y", $avp(n)[1]);
    xlog("L_BOGUS", "x");
    subscribe_event("E", "udp:1.1.1.1:1", "soon");
    xlog("from $fU\n");
    break;
    fetch_event_params($var(x));
    raise_event();
    xlog("a", );
    log(7, "x");
}
timer_route[t, 0] { exit; }
timer_route[t, "x"] { exit; }
timer_route[u, -5] { exit; }
route[r] { return; }
route[r] { return(1); }
event_route[E_A] { switch ($var(x)) { case 1: break; default: xlog("d"); } }
event_route[E_A, sync] { while (1) { break; } }
startup_route { }
"#,
    );
    assert_eq!(
        errs,
        vec![
            "test.cfg:3:5: unknown function 't_relay'",
            "test.cfg:4:5: xlog() takes 1 to 2 arguments, 3 given",
            "test.cfg:5:11: route 'nowhere' is not defined",
            "test.cfg:6:24: raise_event: argument 2 (attribute names) must be an AVP such as $avp(name), found string \"names\"",
            "test.cfg:7:33: raise_event: argument 3 (values) must be an AVP such as $avp(name), found $var(v)",
            "test.cfg:8:24: raise_event: argument 2 (attribute names) must be an AVP such as $avp(name), found $avp(n)[1]",
            "test.cfg:9:10: xlog: unknown log level \"L_BOGUS\" (use L_ERR, L_WARN, L_NOTICE, L_INFO or L_DBG)",
            "test.cfg:10:43: subscribe_event: the expire must be a number of seconds (0 = permanent)",
            "test.cfg:11:16: unknown pseudo-variable $fU",
            "test.cfg:12:5: 'break' outside of a while or switch",
            "test.cfg:13:24: fetch_event_params: the spec must be a literal string such as \"ip=$avp(ip);$var(n)\"",
            "test.cfg:14:5: raise_event() takes 1 to 3 arguments, 0 given",
            "test.cfg:15:10: xlog: unknown log level \"a\" (use L_ERR, L_WARN, L_NOTICE, L_INFO or L_DBG)",
            "test.cfg:15:15: xlog: argument 2 is empty",
            "test.cfg:16:9: log: unknown log level number 7 (use L_ERR, L_WARN, L_NOTICE, L_INFO or L_DBG)",
            "test.cfg:18:16: the timer_route interval must be a positive number of seconds, found 0",
            "test.cfg:19:13: duplicate timer_route[t]: first defined at test.cfg:18:13",
            "test.cfg:19:16: the timer_route interval must be a positive number of seconds, found string \"x\"",
            "test.cfg:20:16: the timer_route interval must be a positive number of seconds, found -5",
            "test.cfg:22:7: duplicate route[r]: first defined at test.cfg:21:7",
            "test.cfg:24:13: duplicate event_route[E_A]: first defined at test.cfg:23:13",
            "test.cfg:25:1: duplicate startup_route: first defined at test.cfg:2:1",
        ]
    );
}

#[test]
fn valid_scripts_check_clean() {
    let errs = check_errors(
        r#"
startup_route {
    raise_event("E_A");
    raise_event("E_A", $avp(n));
    raise_event("E_A", , $avp(v));
    raise_event("E_A", $avp(n), $avp(v));
    subscribe_event("E_A", "udp:127.0.0.1:9", 0);
    subscribe_event("E_A", "udp:127.0.0.1:9", $var(exp));
    xlog("L_INFO", "x $var(a) $avp(b)[1] $param(1) $time(%H) $Ts $pid $rc $retcode $null\n");
    log(-1, "err");
    log("L_WARN", "warn");
    route(r);
}
route[r] { switch ($var(x)) { case 1: break; } while (0) { break; } }
event_route[E_A] { fetch_event_params("ip=$avp(ip);$var(n)"); }
"#,
    );
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn the_function_table_is_the_callers() {
    let s = parse_str(
        "f.cfg",
        "startup_route { sl_send_reply(404, \"x\"); t_relay(); }",
    )
    .unwrap();
    let mut table = evi_script::builtin_functions();
    table.push(FunctionSpec {
        name: "sl_send_reply".into(),
        min_args: 2,
        max_args: 2,
    });
    let errs: Vec<String> = s.check(&table).iter().map(|d| d.headline()).collect();
    assert_eq!(errs, vec!["f.cfg:1:42: unknown function 't_relay'"]);
    table.push(FunctionSpec {
        name: "t_relay".into(),
        min_args: 1,
        max_args: 1,
    });
    let errs: Vec<String> = s.check(&table).iter().map(|d| d.headline()).collect();
    assert_eq!(
        errs,
        vec!["f.cfg:1:42: t_relay() takes 1 argument, 0 given"]
    );
}

#[test]
fn checks_reach_into_expressions_and_included_files() {
    let errs =
        check_errors("startup_route { if (nope(1) && $var(x) == $ru) { $var(y) = route(gone); } }");
    assert_eq!(
        errs,
        vec![
            "test.cfg:1:21: unknown function 'nope'",
            "test.cfg:1:43: unknown pseudo-variable $ru",
            "test.cfg:1:66: route 'gone' is not defined",
        ]
    );
}
