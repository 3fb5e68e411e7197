//! Sockets one module raises to directly (event_virtual's members): opened by parsing a socket of
//! any loaded transport, raised to through that transport's queue, with each outcome — sync or
//! async — handed back to the owner module's `member_status` on its own thread.

use crate::event::{ParamRef, RaisedEvent, ValueRef};
use crate::host::{free_later, Shared};
use crate::module::{MemberRaise, Module};
use crate::registry::{Subscriber, NEVER};
use evi_abi::{EviEvent, EviStatus, EVI_VALUE_INT, EVI_VALUE_STR};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Delivery ids of member raises have this bit set; subscriber ids never do.
const MEMBER_DELIVERY: u64 = 1 << 63;

/// Where the outcome of one member raise goes: the owner, its token, and the member socket
/// (whose counters record it).
type Due = (Arc<Module>, u64, Arc<Subscriber>);

/// Open member sockets and member raises whose async outcome is still due.
#[derive(Default)]
pub(crate) struct Members {
    /// Handle → (owner module name, the socket as a detached subscriber).
    open: Mutex<HashMap<u64, (String, Arc<Subscriber>)>>,
    /// Delivery id → where its outcome goes.
    due: Mutex<HashMap<u64, Due>>,
    next_delivery: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn module_named(&self, name: &str) -> Option<Arc<Module>> {
        self.modules
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|m| m.name == name)
            .cloned()
    }

    /// `socket_open` for module `owner`.
    pub(crate) fn member_open(&self, owner: &str, uri: &str) -> Result<u64, String> {
        let (proto, body) = uri
            .split_once(':')
            .ok_or_else(|| format!("{uri:?} is not a socket (expected proto:...)"))?;
        let (module, tidx) = self
            .transport(proto)
            .ok_or_else(|| format!("unknown proto {proto:?} in {uri:?}"))?;
        // Opened while parsing an MI subscription (a virtual socket): its members are held to
        // the same policy as a socket the client subscribed directly.
        let mi_policy = crate::policy::mi_parse_policy();
        if let Some(policy) = &mi_policy {
            policy.check_subscription(uri, 0)?;
        }
        let body = body.to_string();
        let policy = mi_policy.clone();
        let (handle, printed) = module
            .call(move |inst| {
                let h = inst.parse_for(tidx, &body, policy.as_ref())?;
                Ok::<_, String>((h, inst.print(tidx, h)))
            })?
            .map_err(|why| format!("{proto}: {why}"))?;
        let sub = Arc::new(Subscriber {
            id: self.registry.next_subscriber_id(),
            event: u32::MAX,
            socket: format!("{proto}:{printed}"),
            module,
            transport: tidx,
            // A member's event is queued by `socket_raise`, whose caller already holds it.
            wants_json: false,
            handle: AtomicPtr::new(handle.0),
            freed: AtomicBool::new(false),
            expire: AtomicI64::new(NEVER),
            subscribed_at: AtomicI64::new(self.clock.now()),
            stats: Default::default(),
            mi_policy,
        });
        let id = sub.id;
        lock(&self.members.open).insert(id, (owner.to_string(), sub));
        Ok(id)
    }

    /// `socket_close`: only the owner may close its sockets.
    pub(crate) fn member_close(&self, owner: &str, id: u64) {
        let mut open = lock(&self.members.open);
        if open.get(&id).is_some_and(|(o, _)| o == owner) {
            if let Some((_, sub)) = open.remove(&id) {
                free_later(sub);
            }
        }
    }

    /// `socket_raise`: queue `event` on the member's transport; the outcome goes to `owner`.
    pub(crate) fn member_raise(
        &self,
        owner: &str,
        id: u64,
        event: &EviEvent,
        token: u64,
    ) -> Result<(), String> {
        let sub = lock(&self.members.open)
            .get(&id)
            .filter(|(o, _)| o == owner)
            .map(|(_, s)| s.clone())
            .ok_or_else(|| format!("socket {id} is not open"))?;
        let owner = self
            .module_named(owner)
            .ok_or_else(|| format!("module {owner} is not running"))?;
        let name = self
            .registry
            .with_event(event.id, |e| e.name)
            .ok_or_else(|| format!("event id {} is not published", event.id))?;
        let raw = if event.params.is_null() || event.n_params == 0 {
            &[][..]
        } else {
            // SAFETY: the caller's event is valid for this call.
            unsafe { std::slice::from_raw_parts(event.params, event.n_params) }
        };
        let params: Vec<ParamRef<'_>> = raw
            .iter()
            .map(|p| {
                // SAFETY: as above; names are UTF-8 by the ABI contract.
                let (n, v) = unsafe { (p.name.as_bytes(), p.value.str.as_bytes()) };
                ParamRef {
                    name: std::str::from_utf8(n).ok().filter(|n| !n.is_empty()),
                    value: match p.value.kind {
                        EVI_VALUE_INT => ValueRef::Int(p.value.int),
                        EVI_VALUE_STR => ValueRef::Str(v),
                        _ => ValueRef::Null,
                    },
                }
            })
            .collect();
        let ev = RaisedEvent::shared(event.id, name, &params, event.raised_at_us, event.depth);
        let delivery = MEMBER_DELIVERY | self.members.next_delivery.fetch_add(1, Ordering::Relaxed);
        lock(&self.members.due).insert(delivery, (owner.clone(), token, sub.clone()));
        let target = sub.module.clone();
        if target.enqueue_member_raise(
            ev,
            sub.clone(),
            MemberRaise {
                owner,
                token,
                delivery,
            },
        ) {
            Ok(())
        } else {
            lock(&self.members.due).remove(&delivery);
            Err(format!(
                "the queue of module {} is full: {} not reached",
                target.name, sub.socket
            ))
        }
    }

    /// A member raise ended synchronously: its async outcome will never come.
    pub(crate) fn forget_member_delivery(&self, delivery: u64) {
        lock(&self.members.due).remove(&delivery);
    }

    /// An async outcome for a member raise; false if `delivery` is not one.
    pub(crate) fn member_delivery_status(
        &self,
        delivery: u64,
        status: EviStatus,
        msg: &[u8],
    ) -> bool {
        if delivery & MEMBER_DELIVERY == 0 {
            return false;
        }
        if let Some((owner, token, sub)) = lock(&self.members.due).remove(&delivery) {
            crate::dispatch::record(&sub, status, msg);
            owner.post_member_status(token, status == EviStatus::OK, msg.to_vec());
        }
        true
    }

    /// Close every member socket (shutdown).
    pub(crate) fn close_all_members(&self) {
        for (_, (_, sub)) in lock(&self.members.open).drain() {
            free_later(sub);
        }
    }
}
