//! `event_route[E_X, sync|async]`: the 2.x mode is parsed and exposed to the daemon.

use evi_script::{builtin_functions, parse_str};

#[test]
fn the_sync_flag_of_each_event_route() {
    let s = parse_str(
        "test.cfg",
        "event_route[E_A] { exit; }\n\
         event_route[E_B, sync] { exit; }\n\
         event_route[E_C, async] { exit; }\n\
         event_route[\"E_D\", sync] { exit; }\n",
    )
    .unwrap_or_else(|e| panic!("{}", evi_script::render(&e)));
    assert!(s.check(&builtin_functions()).is_empty());
    assert!(!s.event_route_is_sync("E_A"));
    assert!(s.event_route_is_sync("E_B"));
    assert!(!s.event_route_is_sync("E_C"));
    assert!(s.event_route_is_sync("E_D"));
    assert!(!s.event_route_is_sync("E_NONE"));
    let names: Vec<String> = s.event_routes().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["E_A", "E_B", "E_C", "E_D"]);
}

#[test]
fn a_duplicate_keeps_the_mode_of_the_first_definition() {
    let s = parse_str(
        "test.cfg",
        "event_route[E_A, sync] { exit; }\nevent_route[E_A] { exit; }\n",
    )
    .unwrap_or_else(|e| panic!("{}", evi_script::render(&e)));
    assert!(s.event_route_is_sync("E_A"));
    assert_eq!(s.check(&builtin_functions()).len(), 1);
}
