//! The listener and its threads.
//!
//! One accept thread; one thread per open connection (at most [`MAX_CONNECTIONS`]; past it the
//! connection that has waited longest without a complete request is closed for the new one, so
//! slow or idle clients cannot lock others out), which parses
//! a request, runs the MI call itself and writes the response: no hand-off to another thread
//! (two context switches per request; removing them doubled requests/s with 4 connections). At
//! most `threads` MI calls run at once; the others wait for a slot. [`Server::stop`] (and drop)
//! wakes every thread and joins it, because the library is unloaded right after `destroy`: a
//! thread still running module code then would crash the daemon.
//!
//! With TLS the handshake also runs on the connection's thread, under the same deadline as a
//! request: until it completes the connection is one more waiting for a request, evictable
//! like any other.

use crate::handler::{Endpoint, MiFn, Reply};
use crate::http::{self, Body, Framing, Persist, ReadError, Reader};
use crate::next_request::{self, NextRequest};
use crate::slots::Slots;
use crate::stream::Stream;
use crate::tls::TlsConfig;
use std::collections::HashMap;
use std::io::{self, ErrorKind, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Open connections served at once. Past it the oldest waiting one makes room; when every one
/// is inside an MI call, the newcomer gets 503.
pub const MAX_CONNECTIONS: usize = 128;
/// Closing a connection, we read and drop at most this much of what the client still sends...
const LINGER_BYTES: usize = 1 << 20;
/// ...for at most this long.
const LINGER_TIME: Duration = Duration::from_secs(2);
/// Stack of a connection thread: it only parses and copies bytes (bodies live on the heap).
const CONN_STACK: usize = 256 * 1024;

/// How the server behaves (the modparams, plus the timeout tests shorten).
#[derive(Clone, Debug)]
pub struct Config {
    /// The `root` modparam.
    pub root: String,
    /// MI calls running at once (at least 1); more wait for a slot.
    pub threads: usize,
    /// Largest request body, bytes.
    pub max_body: usize,
    /// Time a client gets to send a whole request (head and body), and to wait between two
    /// requests on one connection; also the send timeout. OpenSIPS' httpd `conn_timeout`: 30 s.
    pub timeout: Duration,
    /// Required bearer token (`auth_token`); `None` = no authentication.
    pub token: Option<String>,
    /// Serve HTTPS only (`tls_*` modparams); `None` = plain HTTP.
    pub tls: Option<TlsConfig>,
}

impl Config {
    pub fn new(root: &str, threads: usize, max_body: usize) -> Config {
        Config {
            root: root.to_string(),
            threads,
            max_body,
            timeout: Duration::from_secs(30),
            token: None,
            tls: None,
        }
    }
}

/// What every thread of one server shares.
struct Shared {
    endpoint: Endpoint,
    timeout: Duration,
    tls: Option<TlsConfig>,
    listener: TcpListener,
    stopping: AtomicBool,
    conns: Mutex<Conns>,
    mi: Arc<MiFn>,
    /// MI calls running now, at most the `threads` modparam.
    slots: Slots,
    /// Connection threads now open, and the most that may poll for their next request.
    serving: AtomicUsize,
    poll_limit: usize,
    /// The clock of `Activity::waiting_since_ms`.
    started: Instant,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// The open connections: a handle on each socket (to shut it down on stop or eviction) and
/// every connection thread not yet joined.
#[derive(Default)]
struct Conns {
    next_id: u64,
    sockets: HashMap<u64, (TcpStream, Arc<Activity>)>,
    threads: Vec<JoinHandle<()>>,
}

/// What eviction looks at: whether the connection has a complete request in hand, and since
/// when it has been waiting for one (ms on the server's clock).
#[derive(Default)]
struct Activity {
    busy: AtomicBool,
    waiting_since_ms: AtomicU64,
}

/// A running MI-over-HTTP server. Stopped and joined by [`Server::stop`] or on drop.
pub struct Server {
    local: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// Lock, ignoring poisoning: every critical section leaves the data consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Server {
    /// Bind `addr` and start the accept thread. `mi` runs each request body (on the request's
    /// connection thread).
    pub fn start(addr: impl ToSocketAddrs, config: Config, mi: Arc<MiFn>) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        let shared = Arc::new(Shared {
            endpoint: Endpoint::new(&config.root, config.max_body).with_token(config.token.clone()),
            timeout: config.timeout,
            tls: config.tls,
            listener,
            stopping: AtomicBool::new(false),
            conns: Mutex::new(Conns::default()),
            mi,
            slots: Slots::new(config.threads),
            serving: AtomicUsize::new(0),
            poll_limit: next_request::poll_limit(),
            started: Instant::now(),
        });
        // From here on, an early return drops `server`, which stops and joins what did start.
        let mut server = Server {
            local,
            shared: shared.clone(),
            acceptor: None,
        };
        let h = thread::Builder::new()
            .name("mi_http-accept".into())
            .spawn(move || accept_loop(&shared))?;
        server.acceptor = Some(h);
        Ok(server)
    }

    /// The address actually bound (the port is known here when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stop accepting, end every connection (a running MI call finishes first), and join every
    /// thread. Returns only when none is left.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        if let Some(h) = self.acceptor.take() {
            wake_acceptor(&self.shared.listener, self.local);
            join(h);
        }
        // The acceptor is gone, so the list of connections is final. Shutting a socket down
        // ends a blocked read or write on it at once; a connection thread in an MI call finishes
        // it, then fails to send the reply.
        let threads = {
            let mut conns = lock(&self.shared.conns);
            for (s, _) in conns.sockets.values() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            std::mem::take(&mut conns.threads)
        };
        threads.into_iter().for_each(join);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn join(h: JoinHandle<()>) {
    let name = h.thread().name().unwrap_or("mi_http").to_string();
    if h.join().is_err() {
        log::error!("mi_http: thread {name} panicked");
    }
}

/// Unblock the accept thread's `accept()`.
fn wake_acceptor(listener: &TcpListener, local: SocketAddr) {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // On Linux, shutting a listening socket down makes a blocked accept() return EINVAL.
        // SAFETY: the fd belongs to `listener`, which outlives the call; shutdown does not close it.
        if unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) } == 0 {
            return;
        }
    }
    // Elsewhere: connect to ourselves; the acceptor sees the stop flag and drops the connection.
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let _ = TcpStream::connect_timeout(&SocketAddr::new(ip, local.port()), Duration::from_secs(1));
}

fn accept_loop(shared: &Arc<Shared>) {
    let mut failing = false;
    loop {
        let accepted = shared.listener.accept();
        if shared.stopping.load(Ordering::Acquire) {
            return;
        }
        match accepted {
            Ok((stream, peer)) => {
                failing = false;
                admit(shared, stream, peer);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Interrupted | ErrorKind::ConnectionAborted
                ) => {}
            Err(e) => {
                // Typically EMFILE, which repeats until a descriptor frees up: warn once per
                // episode, back off rather than spin, and keep serving.
                if !failing {
                    log::warn!("mi_http: accept failed: {e}");
                }
                failing = true;
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Give an accepted connection its own thread, or turn it away when there are too many.
fn admit(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let mut conns = lock(&shared.conns);
    // Join the threads of connections that have ended, so their stacks are freed.
    let (done, open): (Vec<_>, Vec<_>) = std::mem::take(&mut conns.threads)
        .into_iter()
        .partition(|h| h.is_finished());
    conns.threads = open;
    done.into_iter().for_each(join);
    if conns.sockets.len() >= MAX_CONNECTIONS && !evict_oldest_waiting(&mut conns) {
        drop(conns);
        log::warn!("mi_http: {MAX_CONNECTIONS} connections are all in MI calls; refusing {peer}");
        // A TLS client would need a handshake, on this thread, before it could read a 503:
        // it is just closed.
        if shared.tls.is_none() {
            let mut stream = stream;
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = http::write_response(&mut stream, &Reply::refused(503), Persist::Close, false);
        }
        return;
    }
    let handle = match stream.try_clone() {
        Ok(h) => h,
        Err(e) => {
            log::warn!("mi_http: connection from {peer}: {e}");
            return;
        }
    };
    let id = conns.next_id;
    conns.next_id += 1;
    let activity = Arc::new(Activity::default());
    activity
        .waiting_since_ms
        .store(shared.now_ms(), Ordering::Relaxed);
    conns.sockets.insert(id, (handle, activity.clone()));
    let shared2 = shared.clone();
    let spawned = thread::Builder::new()
        .name("mi_http-conn".into())
        .stack_size(CONN_STACK)
        .spawn(move || {
            serve(stream, peer, &shared2, &activity);
            lock(&shared2.conns).sockets.remove(&id);
        });
    match spawned {
        Ok(h) => conns.threads.push(h),
        Err(e) => {
            conns.sockets.remove(&id);
            log::warn!("mi_http: cannot start a thread for {peer}: {e}");
        }
    }
}

/// Close the connection that has waited longest for a request (idle between requests, or
/// sending one slowly); false when every connection is busy with an MI call.
fn evict_oldest_waiting(conns: &mut Conns) -> bool {
    let oldest = conns
        .sockets
        .iter()
        .filter(|(_, (_, a))| !a.busy.load(Ordering::Acquire))
        .min_by_key(|(_, (_, a))| a.waiting_since_ms.load(Ordering::Relaxed))
        .map(|(id, _)| *id);
    let Some(id) = oldest else {
        return false;
    };
    if let Some((s, _)) = conns.sockets.remove(&id) {
        // Its thread's read fails at once; the thread ends and is joined later.
        let _ = s.shutdown(std::net::Shutdown::Both);
        log::debug!("mi_http: connection limit reached; closed the longest-waiting connection");
    }
    true
}

/// Serve one connection until the client closes it, an error, or stop.
fn serve(stream: TcpStream, peer: SocketAddr, shared: &Shared, activity: &Activity) {
    // Replies go out in one write; without NODELAY a keep-alive client could wait out Nagle.
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(shared.timeout));
    let stream = match Stream::accept(stream, shared.tls.as_ref(), shared.timeout) {
        Ok(s) => s,
        Err(e) => {
            // Scanners and plain-HTTP clients on the HTTPS port are routine: debug only.
            log::debug!("mi_http: TLS handshake with {peer} failed: {e}");
            return;
        }
    };
    let mut conn = Reader::new(stream);
    let mut next = NextRequest::default();
    shared.serving.fetch_add(1, Ordering::Relaxed);
    let _serving = Leave(&shared.serving);
    while !shared.stopping.load(Ordering::Acquire) {
        match serve_one(&mut conn, shared, activity) {
            Ok(true) if !conn.has_pending() => {
                let may_poll = shared.serving.load(Ordering::Relaxed) <= shared.poll_limit;
                next.wait(conn.get_mut().tcp(), may_poll)
            }
            Ok(true) => {}
            Ok(false) => return linger(conn.get_mut()),
            Err(e) => {
                // Resets, timeouts and clients vanishing mid-request are routine: debug only.
                log::debug!("mi_http: connection from {peer}: {e}");
                return;
            }
        }
    }
}

/// Counts a connection thread out of `Shared::serving` however it ends.
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Close gracefully: send FIN, then read and drop what the client still sends (bounded in bytes
/// and time). Closing a socket with unread input makes the kernel send a reset, and a client that
/// was still sending a body we refused would lose our response (the 413) to it.
fn linger(stream: &mut Stream) {
    stream.shutdown_write();
    // Raw socket bytes: whatever the client still sends is dropped unread, TLS or not.
    let mut stream = stream.tcp();
    let deadline = Instant::now() + LINGER_TIME;
    let mut buf = [0u8; 8192];
    let mut total = 0;
    while total < LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match std::io::Read::read(&mut stream, &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => total += n,
        }
    }
}

/// Serve one request; `Ok(true)` when the connection stays open for the next one.
fn serve_one(conn: &mut Reader<Stream>, shared: &Shared, activity: &Activity) -> io::Result<bool> {
    let ep = &shared.endpoint;
    let deadline = Instant::now() + shared.timeout;
    let refuse = |conn: &mut Reader<Stream>, reply: &Reply, head_only: bool| {
        http::write_response(conn.get_mut(), reply, Persist::Close, head_only).map(|()| false)
    };
    let head = match conn.read_head(deadline) {
        Ok(Some(head)) => head,
        Ok(None) => return Ok(false),
        Err(ReadError::Status(code)) => return refuse(conn, &Reply::refused(code), false),
        // A client idle between requests is just closed; one stuck mid-request is told so.
        Err(ReadError::Io(e)) if e.kind() == ErrorKind::TimedOut && conn.has_pending() => {
            return refuse(conn, &Reply::refused(408), false)
        }
        Err(ReadError::Io(e)) => return Err(e),
    };
    let head_only = head.method == "HEAD";
    // A declared body over the limit is refused before a byte of it is read; the connection is
    // then closed, since the unread body would be taken for the next request.
    if matches!(head.framing, Framing::Length(n) if n > ep.max_body() as u64) {
        return refuse(
            conn,
            &ep.refuse_too_large(&head.method, &head.target),
            head_only,
        );
    }
    if head.expect_continue && head.has_body() {
        // Do not invite a body we would refuse anyway.
        if let Err(reply) = ep.check(&head.method, &head.target) {
            return refuse(conn, &reply, head_only);
        }
        conn.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let body = match conn.read_body(head.framing, ep.max_body(), deadline) {
        Ok(Body::Bytes(body)) => body,
        Ok(Body::TooLarge) => {
            return refuse(
                conn,
                &ep.refuse_too_large(&head.method, &head.target),
                head_only,
            )
        }
        Err(ReadError::Status(code)) => return refuse(conn, &Reply::refused(code), false),
        Err(ReadError::Io(e)) if e.kind() == ErrorKind::TimedOut => {
            return refuse(conn, &Reply::refused(408), false)
        }
        Err(ReadError::Io(e)) => return Err(e),
    };
    // A complete request: not evictable until its reply is written.
    activity.busy.store(true, Ordering::Release);
    let reply = run_mi(
        shared,
        &head.method,
        &head.target,
        head.authorization.as_deref(),
        &body,
    );
    let keep = head.keep_alive && !shared.stopping.load(Ordering::Acquire);
    let persist = match (keep, head.http11) {
        (false, _) => Persist::Close,
        (true, true) => Persist::Default,
        (true, false) => Persist::KeepAlive,
    };
    let written = http::write_response(conn.get_mut(), &reply, persist, head_only);
    activity
        .waiting_since_ms
        .store(shared.now_ms(), Ordering::Relaxed);
    activity.busy.store(false, Ordering::Release);
    written?;
    Ok(keep)
}

/// Run one request through the handler on this thread, once one of the `threads` slots is free.
fn run_mi(
    shared: &Shared,
    method: &str,
    target: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Reply {
    let _slot = shared.slots.take();
    catch_unwind(AssertUnwindSafe(|| {
        match shared.endpoint.authorize(authorization) {
            Ok(()) => shared.endpoint.handle(method, target, body, &*shared.mi),
            Err(refused) => refused,
        }
    }))
    .unwrap_or_else(|_| {
        log::error!("mi_http: panic while running an MI request");
        Reply::text(500, "internal error")
    })
}
