//! # event_virtual: the `virtual:` transport
//!
//! `virtual:MODE member member ...` groups sockets of other transports (reference §4.7):
//! PARALLEL sends every event to every member, FAILOVER to the first healthy member and on to
//! the next when it fails, ROUND-ROBIN to the members in turn, skipping failed ones. Members are
//! opened through the host when subscribing ([`Host::socket_open`]) and raised to without
//! blocking ([`Host::socket_raise`]); each member's outcome, synchronous or async, comes back
//! through [`Module::member_status`], and the group's outcome goes to the host once with
//! [`Host::delivery_status`]. See README.md for the grammar, params and differences.
//!
//! Layout: [`uri`] parses sockets, [`policy`] picks members, [`state`] tracks groups and events
//! in flight, [`stats`] holds the counters, [`config`] reads modparams; this file declares the
//! module and forwards SDK calls.

pub mod config;
pub mod policy;
pub mod state;
pub mod stats;
pub mod uri;

#[cfg(test)]
mod tests;

use evi_sdk::json::{json, Value};
use evi_sdk::{
    export_module, param, Delivery, Event, Host, MemberSocket, MiError, MiParams, MiResult, Module,
    Params, Raised, Transport,
};
use state::{Engine, Net};
use std::time::Instant;
use uri::VirtualUri;

/// A subscriber socket: the id of its group in the engine.
pub struct GroupId(u64);

/// The module instance.
pub struct EventVirtual {
    host: Host,
    engine: Engine,
}

/// The host, as the engine sees it.
struct HostNet(Host);

impl Net for HostNet {
    fn raise(&mut self, member: MemberSocket, event: &Event<'_>, token: u64) -> Result<(), String> {
        self.0.socket_raise(member, event, token)
    }
    fn report(&mut self, delivery: Delivery, result: Result<(), &str>) {
        self.0.delivery_status(delivery, result)
    }
    fn close(&mut self, member: MemberSocket) {
        self.0.socket_close(member)
    }
}

impl EventVirtual {
    /// Open every member through the host; on the first failure close those already opened and
    /// say which member is wrong.
    fn open_members(&self, uri: &VirtualUri) -> Result<Vec<MemberSocket>, String> {
        let mut open = Vec::with_capacity(uri.members.len());
        for (i, m) in uri.members.iter().enumerate() {
            match self.host.socket_open(m) {
                Ok(s) => open.push(s),
                Err(e) => {
                    for s in open {
                        self.host.socket_close(s);
                    }
                    // The host refuses a module calling itself: a virtual member of a virtual
                    // socket (uri.rs catches the plain form; this covers any other spelling).
                    let e = if e.contains("called itself") {
                        "nested virtual sockets are not supported".to_string()
                    } else {
                        e
                    };
                    return Err(format!("member {} {m:?}: {e}", i + 1));
                }
            }
        }
        Ok(open)
    }

    /// Per group and member counters (MI `event_virtual:stats`).
    pub fn stats(&self) -> Value {
        let now = Instant::now();
        let rest = self.engine.timing.rest;
        Value::Array(
            self.engine
                .groups()
                .map(|g| {
                    let members: Vec<Value> = g
                        .members
                        .iter()
                        .map(|m| {
                            let state = m.health.state(now, rest).name();
                            m.stats.json(&m.uri, state, m.in_flight.len())
                        })
                        .collect();
                    json!({
                        "socket": format!("virtual:{}", g.uri),
                        "mode": g.uri.mode.keyword(),
                        "raised": g.stats.raised,
                        "delivered": g.stats.delivered,
                        "failed": g.stats.failed,
                        "pending": g.flights,
                        "held": g.held.len(),
                        "members": members,
                    })
                })
                .collect(),
        )
    }
}

impl Module for EventVirtual {
    fn init(host: Host, params: &Params) -> Result<Self, String> {
        Ok(EventVirtual {
            host,
            engine: Engine::new(config::timing(params)),
        })
    }

    fn destroy(&mut self) {
        self.engine.shutdown(&mut HostNet(self.host));
    }

    /// Runs after every batch of jobs: the moment to notice members that stopped answering.
    fn flush(&mut self) {
        self.engine.expire(&mut HostNet(self.host), Instant::now());
    }

    fn member_status(&mut self, token: u64, result: Result<(), &str>) {
        self.engine
            .member_status(token, result, &mut HostNet(self.host), Instant::now());
    }

    fn mi_command(&mut self, name: &str, _params: &MiParams) -> MiResult {
        match name {
            "event_virtual:stats" => {
                self.engine.expire(&mut HostNet(self.host), Instant::now());
                Ok(self.stats())
            }
            _ => Err(MiError::new(-32601, "Method not found").with_data(name.to_string())),
        }
    }
}

impl Transport for EventVirtual {
    type Socket = GroupId;

    fn parse(&mut self, _proto: &str, body: &str) -> Result<GroupId, String> {
        let uri = VirtualUri::parse(body)?;
        let sockets = self.open_members(&uri)?;
        Ok(GroupId(self.engine.add_group(uri, sockets)))
    }

    fn matches(&self, a: &GroupId, b: &GroupId) -> bool {
        match (self.engine.group(a.0), self.engine.group(b.0)) {
            (Some(a), Some(b)) => a.uri.same_group(&b.uri),
            _ => false,
        }
    }

    fn print(&self, socket: &GroupId, out: &mut String) {
        if let Some(g) = self.engine.group(socket.0) {
            out.push_str(&g.uri.to_string());
        }
    }

    fn raise(
        &mut self,
        socket: &mut GroupId,
        event: &Event<'_>,
        delivery: Delivery,
    ) -> Result<Raised, String> {
        let now = Instant::now();
        let net = &mut HostNet(self.host);
        self.engine.expire(net, now);
        self.engine.raise(socket.0, event, delivery, net, now)?;
        Ok(Raised::Pending)
    }

    fn free(&mut self, socket: &mut GroupId) {
        self.engine
            .close_group(socket.0, &mut HostNet(self.host), Instant::now());
    }
}

export_module! {
    module: EventVirtual,
    name: "event_virtual",
    doc: "virtual: transport: PARALLEL, FAILOVER and ROUND-ROBIN groups of other transports' sockets.",
    params: [
        param::int("failover_timeout", config::DEFAULT_FAILOVER_TIMEOUT, 0, 86_400,
            "Seconds a failed member is skipped before an event probes it again"),
        param::int("member_timeout", config::DEFAULT_MEMBER_TIMEOUT_MS, 0, 3_600_000,
            "Milliseconds a member may leave an event unanswered before it counts as failed; 0 = wait for ever"),
    ],
    events: [],
    mi: [
        "event_virtual:stats" [[]]
            "Per virtual socket and member: state, in flight, delivered, failed, failed over, timeouts, late answers",
    ],
    transports: ["virtual" (evi_sdk::EXPIRES | evi_sdk::ASYNC)],
}
