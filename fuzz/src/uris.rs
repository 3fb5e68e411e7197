//! `uris`: the first byte picks a transport's socket parser, the rest (lossy UTF-8) is the body
//! after `proto:`. No panic; errors are one line; a parsed socket prints (its MI and log form)
//! on one line, and its print form parses back to an equal socket. Hosts that are not IP
//! literals fail without DNS (see [`crate::no_dns`]).

use crate::one_line;

/// The parsers, in first-byte order (`data[0] % PARSERS.len()`); `scripts/fuzz` seeds one
/// corpus file per entry.
pub const PARSERS: &[&str] = &[
    "udp",
    "unix",
    "datagram-any",
    "flatstore",
    "xmlrpc",
    "tcp",
    "rabbitmq",
    "virtual",
    "route",
];

pub fn check(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let body = crate::text(body);
    match PARSERS[usize::from(sel) % PARSERS.len()] {
        "udp" => datagram("udp", &body),
        "unix" => datagram("unix", &body),
        // Any proto: only udp and unix are accepted.
        "datagram-any" => {
            let (proto, rest) = body.split_once(':').unwrap_or((&body, ""));
            datagram(proto, rest)
        }
        "flatstore" => flatstore(&body),
        "xmlrpc" => xmlrpc(&body),
        "tcp" => stream(&body),
        "rabbitmq" => rabbitmq(&body),
        "virtual" => virtual_(&body),
        "route" => route(&body),
        _ => unreachable!(),
    }
}

fn err_one_line(what: &str, body: &str, e: &str) {
    assert!(
        one_line(e),
        "{what} error for {body:?} is not one line: {e:?}"
    );
    assert!(!e.is_empty(), "{what}: empty error for {body:?}");
}

fn datagram(proto: &str, body: &str) {
    use event_datagram::uri::Dest;
    match Dest::parse(proto, body) {
        Ok(d) => {
            assert!(proto == "udp" || proto == "unix");
            assert_eq!(d.proto(), proto);
            let mut printed = String::new();
            d.print(&mut printed);
            let again = Dest::parse(proto, &printed)
                .unwrap_or_else(|e| panic!("{proto}:{body:?} printed as {printed:?}: {e}"));
            assert!(again == d, "{proto}:{body:?} -> {printed:?} -> {again:?}");
            assert!(again.same_destination(&d));
            assert!(one_line(&d.to_string()), "{d:?}");
            let _ = format!("{d:?}");
        }
        Err(e) => err_one_line(proto, body, &e),
    }
}

fn flatstore(body: &str) {
    match event_flatstore::uri::parse_body(body) {
        Ok(p) => {
            assert_eq!(p, body);
            assert!(!p.is_empty() && !p.contains('\0'));
        }
        Err(e) => {
            assert!(body.is_empty() || body.contains('\0'), "{body:?}: {e}");
            let _ = e;
        }
    }
}

fn xmlrpc(body: &str) {
    use event_xmlrpc::uri::Dest;
    match Dest::parse(body) {
        Ok(d) => {
            assert!(!d.method.is_empty() && d.port != 0 && d.path.starts_with('/'));
            let mut printed = String::new();
            d.print(&mut printed);
            let again = Dest::parse(&printed)
                .unwrap_or_else(|e| panic!("xmlrpc:{body:?} printed as {printed:?}: {e}"));
            assert_eq!(again, d, "xmlrpc:{body:?} -> {printed:?}");
            assert!(again.same_subscription(&d));
            assert!(one_line(&d.to_string()), "{d:?}");
            let _ = d.authority();
        }
        Err(e) => err_one_line("xmlrpc", body, &e),
    }
}

fn stream(body: &str) {
    use event_stream::uri::Dest;
    match Dest::parse(body) {
        Ok(d) => {
            assert!(d.port != 0 && d.method.as_deref() != Some(""));
            let mut printed = String::new();
            d.print(&mut printed);
            let again = Dest::parse(&printed)
                .unwrap_or_else(|e| panic!("tcp:{body:?} printed as {printed:?}: {e}"));
            assert_eq!(again, d, "tcp:{body:?} -> {printed:?}");
            assert!(again.same_subscription(&d));
            assert!(one_line(&d.to_string()), "{d:?}");
            let _ = d.authority();
        }
        Err(e) => err_one_line("tcp", body, &e),
    }
}

fn rabbitmq(body: &str) {
    use event_rabbitmq::uri::{escape, unescape, RabbitUri};
    match RabbitUri::parse(body) {
        Ok(u) => {
            let mut printed = String::new();
            u.print(&mut printed);
            let again = RabbitUri::parse(&printed)
                .unwrap_or_else(|e| panic!("rabbitmq:{body:?} printed as {printed:?}: {e}"));
            assert_eq!(again, u, "rabbitmq:{body:?} -> {printed:?}");
            assert!(again.same_destination(&u));
            assert!(one_line(&printed), "{printed:?}");
            let _ = u.broker().label();
        }
        Err(e) => err_one_line("rabbitmq", body, &e),
    }
    // The same text as a `server_id` modparam (rabbitmq_publish's brokers): errors on one line.
    if let Err(e) = event_rabbitmq::server_id::ServerId::parse(body) {
        err_one_line("server_id", body, &e);
    }
    // escape and unescape are inverses on any text.
    assert_eq!(unescape(&escape(body)).as_deref(), Ok(body));
}

fn virtual_(body: &str) {
    use event_virtual::uri::VirtualUri;
    match VirtualUri::parse(body) {
        Ok(u) => {
            assert!(!u.members.is_empty() && u.members.iter().all(|m| !m.is_empty()));
            let printed = u.to_string();
            let again = VirtualUri::parse(&printed)
                .unwrap_or_else(|e| panic!("virtual:{body:?} printed as {printed:?}: {e}"));
            assert_eq!(again, u, "virtual:{body:?} -> {printed:?}");
            assert!(again.same_group(&u));
        }
        Err(e) => err_one_line("virtual", body, &e),
    }
}

fn route(body: &str) {
    match event_route::parse_body(body) {
        Ok((name, sync)) => {
            assert!(!name.is_empty() && name == name.trim());
            let mut printed = String::new();
            event_route::print_body(name, sync, &mut printed);
            let again = event_route::parse_body(&printed)
                .unwrap_or_else(|e| panic!("route:{body:?} printed as {printed:?}: {e}"));
            assert_eq!(again, (name, sync), "route:{body:?} -> {printed:?}");
        }
        Err(e) => err_one_line("route", body, &e),
    }
}
