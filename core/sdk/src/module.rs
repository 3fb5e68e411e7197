//! The traits a module implements.

use crate::{Event, Host, MiError, MiParams, MiResult, Params, Value};

/// A module: created by `init` with its checked params, dropped after `destroy`.
///
/// Every method runs on the module's own thread, one call at a time, so `&mut self` needs no
/// locking. A panic in any method is caught at the boundary, logged, and poisons the instance.
pub trait Module: Sized + Send + 'static {
    /// Create the instance. An `Err` stops the daemon's start-up with this message.
    fn init(host: Host, params: &Params) -> Result<Self, String>;

    /// Stop: release resources and join every thread the module started.
    fn destroy(&mut self) {}

    /// Write out anything buffered (called after each batch of raises and before `destroy`).
    fn flush(&mut self) {}

    /// The outcome of a [`Host::socket_raise`] made with `token` (modules that raise to other
    /// transports' sockets, like event_virtual). Called once per queued raise.
    fn member_status(&mut self, _token: u64, _result: Result<(), &str>) {}

    /// Run one of the MI commands listed in `export_module!`.
    fn mi_command(&mut self, name: &str, _params: &MiParams) -> MiResult {
        Err(MiError::new(-32601, "Method not found").with_data(name.to_string()))
    }

    /// Run one of the script functions listed in `export_module!` (`functions:`), called from
    /// a route of the config. The argument count is already checked against the declared range.
    /// `Ok(true)` is a positive result for the script, `Ok(false)` a negative one; an `Err` is a
    /// negative result whose reason the daemon logs with the call's file:line. Must not block:
    /// the script waits for the answer.
    fn script_function(&mut self, name: &str, _args: &[Value<'_>]) -> Result<bool, String> {
        Err(format!("function {name} is not implemented by this module"))
    }
}

/// A delivery ticket, for transports that answer [`Raised::Pending`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery(pub u64);

/// The outcome of a successful `raise`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Raised {
    /// Delivered (or handed to the kernel).
    Done,
    /// Queued; the module reports the outcome later with [`Host::delivery_status`].
    Pending,
}

/// A module that provides one or more transports (protos listed in `export_module!`).
pub trait Transport: Module {
    /// A parsed subscriber socket. Owned by the module; the host only holds a pointer to it.
    type Socket: Send + 'static;

    /// Parse the part of a socket URI after `proto:`. The error names the bad part.
    fn parse(&mut self, proto: &str, body: &str) -> Result<Self::Socket, String>;

    /// Whether two sockets are the same destination (a re-subscribe refreshes instead of adding).
    fn matches(&self, a: &Self::Socket, b: &Self::Socket) -> bool;

    /// The socket's body (without `proto:`), such that `parse(print(s))` matches `s`.
    fn print(&self, socket: &Self::Socket, out: &mut String);

    /// Deliver one event. Must not block; see [`Raised`].
    fn raise(
        &mut self,
        socket: &mut Self::Socket,
        event: &Event<'_>,
        delivery: Delivery,
    ) -> Result<Raised, String>;

    /// Called when the socket's last subscription is gone, just before it is dropped.
    fn free(&mut self, _socket: &mut Self::Socket) {}

    /// Where the socket sends, one entry per network peer: `ip:port` (`[ip]:port` for IPv6) if
    /// the transport resolved the host and sends to that address, `host:port` if it connects by
    /// name later. The host checks these against `mi_allowed_destinations` for subscriptions
    /// made over MI, so a transport that reaches the network must list every peer here. The
    /// default (nothing) suits transports that write files or hand events to other sockets.
    fn destinations(&self, _socket: &Self::Socket, _out: &mut Vec<String>) {}
}
