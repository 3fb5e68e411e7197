//! The I/O: non-blocking datagram sockets, and a batch that goes out with one `sendmmsg` per
//! kernel socket.
//!
//! Everything a send needs (kernel address, descriptor, size limit) is prepared when a socket is
//! subscribed. [`Sender::send`] checks the event and copies it into a reusable buffer;
//! [`Sender::flush`] hands the buffer to the kernel and reports each message's outcome. In steady
//! state neither allocates, except to word an error.

use crate::uri::{Dest, UNIX_PATH_MAX};
use evi_sdk::Delivery;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// Largest UDP payload over IPv4: 65535 - 20 (IP header) - 8 (UDP header).
pub const UDP4_MAX: usize = 65507;
/// Largest UDP payload over IPv6 without jumbograms: 65535 - 8 (UDP header).
pub const UDP6_MAX: usize = 65527;

/// Messages per batch. Past a few dozen the syscall entry is already a small share of a
/// datagram's cost, and a larger batch only makes bursts longer for receivers with short
/// queues (a unix socket's default `max_dgram_qlen` is 10).
pub const BATCH_MSGS: usize = 64;
/// Payload bytes per batch, allocated once. Every UDP datagram fits; a larger (unix) event is
/// sent on its own, after the batch, so the buffer never grows.
pub const BATCH_BYTES: usize = 64 * 1024;
/// Messages one UDP destination needs in a batch to go out on its own connected socket. A
/// connected socket keeps its route: the kernel skips the route lookup of every datagram
/// (+15-30% datagrams/s for one thread with `sendmmsg` on the session-5 VM), at the price of
/// one `sendmmsg` per busy destination instead of one for all of them.
pub const CONNECTED_FROM: u32 = 8;
/// Most connected sockets open at once (all module instances): each is a descriptor.
const MAX_CONNECTED: usize = 256;
/// Connected sockets open now.
static CONNECTED: AtomicUsize = AtomicUsize::new(0);

/// How a send went: see [`Sender::send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// In the batch; a later [`Sender::flush`] reports the outcome.
    Queued,
    /// Too large for the batch, so handed to the kernel already.
    Now,
}

/// The module's shared UDP sockets, created once at `init`, and the batch not yet sent.
pub struct Sender {
    v4: OwnedFd,
    /// `Err` holds why IPv6 is unavailable; only sends to IPv6 destinations fail then.
    v6: Result<OwnedFd, String>,
    /// The queued payloads, back to back.
    bytes: Vec<u8>,
    /// One entry per queued payload, in raise order.
    queued: Vec<Queued>,
}

/// A subscribed destination, ready to send to.
pub struct Target {
    /// Shared with the batch entries, so a destination (and a unix socket's descriptor) stays
    /// valid until its queued messages are sent, whatever the host does with the `Target`.
    peer: Arc<Peer>,
}

struct Peer {
    dest: Dest,
    addr: RawAddr,
    route: Route,
    /// Messages queued for this peer in the current batch (only the module thread touches it).
    in_batch: AtomicU32,
    /// A UDP socket connected to `addr`, opened the first time the peer is busy (see
    /// [`CONNECTED_FROM`]); `None` if that failed, and then the shared socket serves it.
    connected: OnceLock<Option<OwnedFd>>,
    /// A unix receiver whose queue stayed full for a whole [`UNIX_FULL_WAIT`]: its sends fail at
    /// once until one gets through (one stuck reader must not slow every other destination).
    stalled: AtomicBool,
}

/// How long a batch waits for a unix receiver's full queue to drain before failing the rest of
/// its messages. Linux queues at most `net.unix.max_dgram_qlen` datagrams (10 by default) per
/// receiving socket, and a batch holds what arrived during the module thread's doze (up to 256):
/// a receiver that reads as they come drains that in microseconds, so a short wait turns what
/// used to be dropped events (EAGAIN) into delivered ones.
const UNIX_FULL_WAIT: std::time::Duration = std::time::Duration::from_millis(5);
/// The pause between two tries while waiting.
const UNIX_FULL_PAUSE: std::time::Duration = std::time::Duration::from_micros(20);

enum Route {
    V4,
    V6,
    /// Each unix destination has its own socket. The kernel charges a unix datagram to the
    /// sending socket until the receiver reads it, so with one shared socket a receiver that
    /// stops reading would use up the shared send buffer and every other unix subscriber would
    /// get EAGAIN too. Own sockets keep one stuck subscriber from starving the others.
    Unix(OwnedFd),
}

/// A kernel socket address, built once at subscribe time.
struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

/// A payload in the batch.
struct Queued {
    peer: Arc<Peer>,
    /// The kernel socket it goes out on (one of the sender's or the peer's own), unless the
    /// peer is busy enough to use its connected socket.
    fd: RawFd,
    start: usize,
    len: usize,
    delivery: Delivery,
}

impl Sender {
    /// Open the shared UDP sockets (unbound; the kernel picks a source port on first send).
    pub fn new() -> Result<Sender, String> {
        let v4 = dgram_socket(libc::AF_INET)
            .map_err(|e| format!("cannot create UDP/IPv4 socket: {e}"))?;
        let v6 = dgram_socket(libc::AF_INET6).map_err(|e| e.to_string());
        if let Err(e) = &v6 {
            log::warn!("IPv6 unavailable ({e}); events to udp:[...] subscribers will fail");
        }
        Ok(Sender {
            v4,
            v6,
            bytes: Vec::with_capacity(BATCH_BYTES),
            queued: Vec::with_capacity(BATCH_MSGS),
        })
    }

    /// Pretend IPv6 is unavailable (tests of that path on hosts that have it).
    #[cfg(test)]
    pub(crate) fn without_ipv6(mut self) -> Sender {
        self.v6 = Err("disabled by test".into());
        self
    }

    /// Prepare `dest` for sending: build its kernel address, and open its own socket if unix.
    pub fn target(&self, dest: Dest) -> Result<Target, String> {
        let (addr, route) = match &dest {
            Dest::Udp { addr, .. } => {
                let route = if addr.is_ipv4() { Route::V4 } else { Route::V6 };
                (RawAddr::inet(*addr), route)
            }
            Dest::Unix { path } => {
                let addr = RawAddr::unix(path)
                    .ok_or_else(|| format!("unix socket path in {dest} is too long"))?;
                let fd = dgram_socket(libc::AF_UNIX)
                    .map_err(|e| format!("{dest}: cannot create unix socket: {e}"))?;
                (addr, Route::Unix(fd))
            }
        };
        Ok(Target {
            peer: Arc::new(Peer {
                dest,
                addr,
                route,
                in_batch: AtomicU32::new(0),
                connected: OnceLock::new(),
                stalled: AtomicBool::new(false),
            }),
        })
    }

    /// Send `payload` as one datagram to `t`. Never blocks and never retries: a full buffer drops
    /// the event and says so.
    ///
    /// `Err` is an event refused before any send (empty, over the UDP size limit, no IPv6) or,
    /// for [`Sent::Now`], the kernel's refusal. [`Sent::Queued`] means the outcome comes later
    /// through `report`, exactly once, from the `flush` that sends it; `report` here receives
    /// the outcomes of the batch this call had to send to make room.
    pub fn send(
        &mut self,
        t: &Target,
        payload: &[u8],
        delivery: Delivery,
        report: &mut impl FnMut(Delivery, Result<(), &str>),
    ) -> Result<Sent, String> {
        let fd = self.check(&t.peer, payload)?;
        if payload.len() > BATCH_BYTES {
            // Whatever is queued goes first: per-destination order is kept.
            self.flush(report);
            send_now(fd, &t.peer, payload)?;
            return Ok(Sent::Now);
        }
        // Sending the full batch before queueing (rather than after) means an outcome is never
        // reported before its own raise has returned.
        if self.queued.len() == BATCH_MSGS || self.bytes.len() + payload.len() > BATCH_BYTES {
            self.flush(report);
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        let counted = &t.peer.in_batch;
        counted.store(counted.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        self.queued.push(Queued {
            peer: Arc::clone(&t.peer),
            fd,
            start,
            len: payload.len(),
            delivery,
        });
        Ok(Sent::Queued)
    }

    /// Send everything queued, one `sendmmsg` per kernel socket in raise order, and report each
    /// message's outcome through `report`.
    pub fn flush(&mut self, report: &mut impl FnMut(Delivery, Result<(), &str>)) {
        let n = self.queued.len();
        // Decided once per peer for the whole batch: all of a destination's messages leave on
        // one socket, so their order holds.
        for q in &mut self.queued {
            if let Some(fd) = q.peer.connected_fd() {
                q.fd = fd;
            }
        }
        let mut done = [false; BATCH_MSGS];
        let mut group = [0usize; BATCH_MSGS];
        for first in 0..n {
            if done[first] {
                continue;
            }
            // Messages to one destination always use the same socket, so sending each
            // socket's messages in raise order keeps every destination's order.
            let fd = self.queued[first].fd;
            let mut len = 0;
            for (i, q) in self.queued.iter().enumerate().skip(first) {
                if !done[i] && q.fd == fd {
                    done[i] = true;
                    group[len] = i;
                    len += 1;
                }
            }
            self.send_group(fd, &group[..len], report);
        }
        for q in &self.queued {
            q.peer.in_batch.store(0, Ordering::Relaxed);
        }
        self.queued.clear();
        self.bytes.clear();
    }

    /// Send now whatever is queued for `t` (it is about to be freed: its outcomes must reach
    /// the host while the subscriber still exists).
    pub fn release(&mut self, t: &Target, report: &mut impl FnMut(Delivery, Result<(), &str>)) {
        if self.queued.iter().any(|q| Arc::ptr_eq(&q.peer, &t.peer)) {
            self.flush(report);
        }
    }

    /// The descriptor `payload` goes out on, or why it cannot be sent at all.
    fn check(&self, peer: &Peer, payload: &[u8]) -> Result<RawFd, String> {
        if payload.is_empty() {
            return Err(format!(
                "{}: event has no JSON payload, nothing sent",
                peer.dest
            ));
        }
        // The kernel would answer EMSGSIZE too; checking first gives the limit in the message.
        let limit = match peer.route {
            Route::V4 => Some((UDP4_MAX, "UDP/IPv4")),
            Route::V6 => Some((UDP6_MAX, "UDP/IPv6")),
            Route::Unix(_) => None,
        };
        if let Some((max, kind)) = limit {
            if payload.len() > max {
                return Err(format!(
                    "{}: event of {} bytes exceeds the {kind} datagram limit of {max} bytes, event dropped",
                    peer.dest,
                    payload.len()
                ));
            }
        }
        match &peer.route {
            Route::V4 => Ok(self.v4.as_raw_fd()),
            Route::V6 => match &self.v6 {
                Ok(fd) => Ok(fd.as_raw_fd()),
                Err(why) => Err(format!(
                    "{}: IPv6 is unavailable ({why}), event dropped",
                    peer.dest
                )),
            },
            Route::Unix(fd) => Ok(fd.as_raw_fd()),
        }
    }

    /// Send the queued messages `group` (indices into `queued`, in order) on `fd`.
    fn send_group(
        &self,
        fd: RawFd,
        group: &[usize],
        report: &mut impl FnMut(Delivery, Result<(), &str>),
    ) {
        // On the stack: a Vec of these would hold raw pointers and make the module !Send. Only
        // the entries sent are initialised: zeroing all 64 (5 KB) cost as much as a small
        // batch's own work.
        let mut iov = [const { mem::MaybeUninit::<libc::iovec>::uninit() }; BATCH_MSGS];
        let mut msgs = [const { mem::MaybeUninit::<libc::mmsghdr>::uninit() }; BATCH_MSGS];
        let total = group.len();
        for (k, &i) in group.iter().enumerate() {
            let q = &self.queued[i];
            let payload = &self.bytes[q.start..q.start + q.len];
            iov[k].write(libc::iovec {
                iov_base: payload.as_ptr().cast_mut().cast(),
                iov_len: payload.len(),
            });
        }
        // One base pointer for all the headers, taken after the last write to `iov`.
        let iov = iov.as_mut_ptr().cast::<libc::iovec>();
        // A connected socket belongs to one peer and needs no address (giving one would cost
        // the route lookup it saves).
        let connected = self.queued[group[0]].peer.is_connected_fd(fd);
        for (k, &i) in group.iter().enumerate() {
            let addr = &self.queued[i].peer.addr;
            // SAFETY: mmsghdr is a plain C struct; all-zero (null pointers) is valid.
            let mut m: libc::mmsghdr = unsafe { mem::zeroed() };
            if !connected {
                // The kernel only reads through these pointers (sendmmsg takes no `const`).
                m.msg_hdr.msg_name = (&addr.storage as *const libc::sockaddr_storage)
                    .cast_mut()
                    .cast();
                m.msg_hdr.msg_namelen = addr.len;
            }
            m.msg_hdr.msg_iov = iov.wrapping_add(k);
            m.msg_hdr.msg_iovlen = 1;
            msgs[k].write(m);
        }
        let msgs = msgs.as_mut_ptr().cast::<libc::mmsghdr>();
        let mut k = 0;
        // The message already given a second try after an ICMP error (see below).
        let mut retried = usize::MAX;
        // Until when a full unix receiver queue is waited for (see `UNIX_FULL_WAIT`).
        let mut full_until: Option<std::time::Instant> = None;
        while k < total {
            // MSG_DONTWAIT as well as O_NONBLOCK: the call must not block even if a descriptor's
            // flags were changed behind our back. MSG_NOSIGNAL: never SIGPIPE the daemon.
            // SAFETY: msgs[k..total] are filled in above; the payloads, addresses and iovecs they
            // point to are borrowed from `self` and this frame, unchanged during the call.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    msgs.add(k),
                    (total - k) as libc::c_uint,
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            if r > 0 {
                let sent = (r as usize).min(total - k);
                self.queued[group[k]]
                    .peer
                    .stalled
                    .store(false, Ordering::Relaxed);
                for (j, &i) in group.iter().enumerate().skip(k).take(sent) {
                    let q = &self.queued[i];
                    // SAFETY: entry j < total was written above; the kernel set its msg_len.
                    let msg_len = unsafe { (*msgs.add(j)).msg_len };
                    if msg_len as usize == q.len {
                        report(q.delivery, Ok(()));
                    } else {
                        let why = format!(
                            "{}: sent {} of {} bytes, event truncated",
                            q.peer.dest, msg_len, q.len
                        );
                        report(q.delivery, Err(&why));
                    }
                }
                k += sent;
                // A short count means message k failed, but sendmmsg drops the errno of a
                // failure after the first message. The next round starts at message k: it
                // either fails at once with k's own errno, or sends it if the cause is gone.
                continue;
            }
            let e = if r == 0 {
                io::Error::other("sendmmsg sent nothing")
            } else {
                io::Error::last_os_error()
            };
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // A connected UDP socket reports an ICMP error caused by an earlier datagram (port
            // or host unreachable, a smaller path MTU) on its next send, which the kernel then
            // drops. That earlier datagram was fire-and-forget like any other; this one gets
            // the chance the shared socket would have given it (a real refusal fails again).
            if connected && k != retried && e.kind() != io::ErrorKind::WouldBlock {
                retried = k;
                continue;
            }
            let q = &self.queued[group[k]];
            if e.kind() == io::ErrorKind::WouldBlock
                && matches!(q.peer.route, Route::Unix(_))
                && !q.peer.stalled.load(Ordering::Relaxed)
            {
                let now = std::time::Instant::now();
                let until = *full_until.get_or_insert(now + UNIX_FULL_WAIT);
                if now < until {
                    std::thread::sleep(UNIX_FULL_PAUSE);
                    continue;
                }
                q.peer.stalled.store(true, Ordering::Relaxed);
            }
            report(q.delivery, Err(&describe(e, &q.peer, fd, q.len)));
            k += 1;
        }
    }
}

/// One `sendto` of `payload` (an event too large for the batch).
fn send_now(fd: RawFd, peer: &Peer, payload: &[u8]) -> Result<(), String> {
    // Flags as in `send_group`.
    // SAFETY: `payload` and `peer.addr` are valid for the call; `len` is within the storage.
    let n = unsafe {
        libc::sendto(
            fd,
            payload.as_ptr().cast(),
            payload.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            (&peer.addr.storage as *const libc::sockaddr_storage).cast(),
            peer.addr.len,
        )
    };
    if n < 0 {
        return Err(describe(
            io::Error::last_os_error(),
            peer,
            fd,
            payload.len(),
        ));
    }
    if n as usize != payload.len() {
        return Err(format!(
            "{}: sent {n} of {} bytes, event truncated",
            peer.dest,
            payload.len()
        ));
    }
    Ok(())
}

impl Peer {
    /// The peer's connected socket: opened (once) the first time the UDP peer is busy in a
    /// batch, then used for all its messages, busy or not: switching sockets would make two
    /// flows of one destination, which hashing on the way (RSS, ECMP) may reorder.
    fn connected_fd(&self) -> Option<RawFd> {
        if let Some(fd) = self.connected.get() {
            return fd.as_ref().map(AsRawFd::as_raw_fd);
        }
        if matches!(self.route, Route::Unix(_))
            || self.in_batch.load(Ordering::Relaxed) < CONNECTED_FROM
        {
            return None;
        }
        let fd = self.connected.get_or_init(|| {
            // A bound on descriptors: past it the shared socket serves busy peers too.
            if CONNECTED.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTED {
                CONNECTED.fetch_sub(1, Ordering::Relaxed);
                return None;
            }
            match self.connect() {
                Ok(fd) => Some(fd),
                Err(e) => {
                    CONNECTED.fetch_sub(1, Ordering::Relaxed);
                    log::debug!(
                        "{}: no connected socket ({e}); the shared one serves it",
                        self.dest
                    );
                    None
                }
            }
        });
        fd.as_ref().map(AsRawFd::as_raw_fd)
    }

    fn is_connected_fd(&self, fd: RawFd) -> bool {
        matches!(self.connected.get(), Some(Some(own)) if own.as_raw_fd() == fd)
    }

    /// A new UDP socket connected to the peer's address (UDP's connect sends nothing).
    fn connect(&self) -> io::Result<OwnedFd> {
        let family = match self.route {
            Route::V6 => libc::AF_INET6,
            _ => libc::AF_INET,
        };
        let fd = dgram_socket(family)?;
        // SAFETY: `addr` holds a valid socket address of `len` bytes for this family.
        let r = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&self.addr.storage as *const libc::sockaddr_storage).cast(),
                self.addr.len,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if matches!(self.connected.get(), Some(Some(_))) {
            CONNECTED.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Target {
    pub fn dest(&self) -> &Dest {
        &self.peer.dest
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.peer.dest)
    }
}

/// One line naming the destination, the cause and the outcome.
fn describe(e: io::Error, peer: &Peer, fd: RawFd, len: usize) -> String {
    let unix = matches!(peer.route, Route::Unix(_));
    let why = match e.raw_os_error() {
        Some(libc::EAGAIN) if unix => "receiver's socket buffer full".to_string(),
        Some(libc::EAGAIN) => "socket buffer full".to_string(),
        Some(libc::ENOENT) if unix => "no socket at this path (ENOENT)".to_string(),
        Some(libc::ECONNREFUSED) if unix => "nothing is bound to this socket (ECONNREFUSED)".to_string(),
        Some(libc::EMSGSIZE) if unix => match send_buffer(fd) {
            // Linux refuses a unix datagram larger than the send buffer minus 32 bytes.
            Some(buf) => format!(
                "event of {len} bytes exceeds the unix datagram limit of {} bytes (send buffer size)",
                buf.saturating_sub(32)
            ),
            None => format!("event of {len} bytes is too large for a unix datagram (EMSGSIZE)"),
        },
        _ => format!("send failed: {e}"),
    };
    format!("{}: {why}, event dropped", peer.dest)
}

/// The socket's send buffer size (SO_SNDBUF), for the EMSGSIZE message.
fn send_buffer(fd: RawFd) -> Option<usize> {
    let mut v: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid out-pointers of the sizes given.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (r == 0).then(|| usize::try_from(v).ok()).flatten()
}

/// A non-blocking, close-on-exec datagram socket.
fn dgram_socket(domain: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl RawAddr {
    fn zeroed() -> libc::sockaddr_storage {
        // SAFETY: sockaddr_storage is plain integers; all-zero is a valid value.
        unsafe { mem::zeroed() }
    }

    fn inet(addr: SocketAddr) -> RawAddr {
        let mut storage = Self::zeroed();
        let len = match addr {
            SocketAddr::V4(a) => {
                // SAFETY: sockaddr_storage is larger than and aligned for every sockaddr type.
                let sin = unsafe {
                    &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
                };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                // SAFETY: as above.
                let sin6 = unsafe {
                    &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
                };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_flowinfo = a.flowinfo();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                sin6.sin6_scope_id = a.scope_id();
                mem::size_of::<libc::sockaddr_in6>()
            }
        };
        RawAddr {
            storage,
            len: len as libc::socklen_t,
        }
    }

    /// `None` if the path does not fit `sun_path` with its NUL (the parser already checked).
    fn unix(path: &str) -> Option<RawAddr> {
        let bytes = path.as_bytes();
        if bytes.len() > UNIX_PATH_MAX || bytes.contains(&0) {
            return None;
        }
        let mut storage = Self::zeroed();
        // SAFETY: as in `inet`.
        let sun = unsafe {
            &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_un>()
        };
        sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, s) in sun.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        // The zeroed storage already holds the terminating NUL; count it, as most C code does.
        let len = mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1;
        Some(RawAddr {
            storage,
            len: len as libc::socklen_t,
        })
    }
}
