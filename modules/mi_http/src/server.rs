//! The listener and its threads.
//!
//! One accept thread; one thread per open connection (at most [`MAX_CONNECTIONS`]), which parses
//! requests and writes responses; `threads` workers, which run the MI calls. Idle keep-alive
//! clients therefore tie up a cheap connection thread, never a worker. [`Server::stop`] (and drop)
//! wakes every thread and joins it, because the library is unloaded right after `destroy`: a
//! thread still running module code then would crash the daemon.

use crate::handler::{Endpoint, MiFn, Reply};
use crate::http::{self, Body, Framing, Persist, ReadError, Reader};
use std::collections::HashMap;
use std::io::{self, ErrorKind, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Open connections served at once; the next one gets 503 and is closed.
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
    /// Worker threads running MI requests (at least 1).
    pub threads: usize,
    /// Largest request body, bytes.
    pub max_body: usize,
    /// Time a client gets to send a whole request (head and body), and to wait between two
    /// requests on one connection; also the send timeout. OpenSIPS' httpd `conn_timeout`: 30 s.
    pub timeout: Duration,
    /// Required bearer token (`auth_token`); `None` = no authentication.
    pub token: Option<String>,
}

impl Config {
    pub fn new(root: &str, threads: usize, max_body: usize) -> Config {
        Config {
            root: root.to_string(),
            threads,
            max_body,
            timeout: Duration::from_secs(30),
            token: None,
        }
    }
}

/// One MI call handed from a connection thread to a worker.
struct Job {
    method: String,
    target: String,
    authorization: Option<String>,
    body: Vec<u8>,
    reply: SyncSender<Reply>,
}

/// What every thread of one server shares.
struct Shared {
    endpoint: Endpoint,
    timeout: Duration,
    listener: TcpListener,
    stopping: AtomicBool,
    conns: Mutex<Conns>,
}

/// The open connections: a handle on each socket (to shut it down on stop) and every
/// connection thread not yet joined.
#[derive(Default)]
struct Conns {
    next_id: u64,
    sockets: HashMap<u64, TcpStream>,
    threads: Vec<JoinHandle<()>>,
}

/// A running MI-over-HTTP server. Stopped and joined by [`Server::stop`] or on drop.
pub struct Server {
    local: SocketAddr,
    shared: Arc<Shared>,
    jobs: Option<SyncSender<Job>>,
    acceptor: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

/// Lock, ignoring poisoning: every critical section leaves the data consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Server {
    /// Bind `addr` and start the threads. `mi` runs each request body (on a worker thread).
    pub fn start(addr: impl ToSocketAddrs, config: Config, mi: Arc<MiFn>) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        let shared = Arc::new(Shared {
            endpoint: Endpoint::new(&config.root, config.max_body).with_token(config.token.clone()),
            timeout: config.timeout,
            listener,
            stopping: AtomicBool::new(false),
            conns: Mutex::new(Conns::default()),
        });
        let threads = config.threads.max(1);
        // Bounded: when every worker is busy, connection threads wait here (backpressure).
        let (tx, rx) = mpsc::sync_channel::<Job>(threads);
        let rx = Arc::new(Mutex::new(rx));
        // From here on, an early return drops `server`, which stops and joins what did start; it
        // must then hold the only job sender, or the workers would never see the channel close.
        let mut server = Server {
            local,
            shared: shared.clone(),
            jobs: Some(tx),
            acceptor: None,
            workers: Vec::new(),
        };
        for i in 0..threads {
            let (rx, shared, mi) = (rx.clone(), shared.clone(), mi.clone());
            let h = thread::Builder::new()
                .name(format!("mi_http-w{i}"))
                .spawn(move || work(&rx, &shared, &*mi))?;
            server.workers.push(h);
        }
        let jobs = server.jobs.clone();
        let h = thread::Builder::new()
            .name("mi_http-accept".into())
            .spawn(move || {
                if let Some(jobs) = jobs {
                    accept_loop(&shared, &jobs);
                }
            })?;
        server.acceptor = Some(h);
        Ok(server)
    }

    /// The address actually bound (the port is known here when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stop accepting, end every connection, let the workers finish their current call, and join
    /// every thread. Returns only when none is left.
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
        // ends a blocked read or write on it at once; a connection thread waiting for a worker
        // gets its reply first, then fails to send it.
        let threads = {
            let mut conns = lock(&self.shared.conns);
            for s in conns.sockets.values() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            std::mem::take(&mut conns.threads)
        };
        threads.into_iter().for_each(join);
        // The last job sender: once it is gone the workers drain the queue and return.
        self.jobs = None;
        self.workers.drain(..).for_each(join);
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

fn accept_loop(shared: &Arc<Shared>, jobs: &SyncSender<Job>) {
    let mut failing = false;
    loop {
        let accepted = shared.listener.accept();
        if shared.stopping.load(Ordering::Acquire) {
            return;
        }
        match accepted {
            Ok((stream, peer)) => {
                failing = false;
                admit(shared, stream, peer, jobs);
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
fn admit(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr, jobs: &SyncSender<Job>) {
    let mut conns = lock(&shared.conns);
    // Join the threads of connections that have ended, so their stacks are freed.
    let (done, open): (Vec<_>, Vec<_>) = std::mem::take(&mut conns.threads)
        .into_iter()
        .partition(|h| h.is_finished());
    conns.threads = open;
    done.into_iter().for_each(join);
    if conns.sockets.len() >= MAX_CONNECTIONS {
        drop(conns);
        log::warn!("mi_http: {MAX_CONNECTIONS} connections open; refusing {peer}");
        let mut stream = stream;
        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
        let _ = http::write_response(&mut stream, &Reply::refused(503), Persist::Close, false);
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
    conns.sockets.insert(id, handle);
    let (shared2, jobs) = (shared.clone(), jobs.clone());
    let spawned = thread::Builder::new()
        .name("mi_http-conn".into())
        .stack_size(CONN_STACK)
        .spawn(move || {
            serve(stream, peer, &shared2, &jobs);
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

/// Serve one connection until the client closes it, an error, or stop.
fn serve(stream: TcpStream, peer: SocketAddr, shared: &Shared, jobs: &SyncSender<Job>) {
    // Replies go out in one write; without NODELAY a keep-alive client could wait out Nagle.
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(shared.timeout));
    let mut conn = Reader::new(stream);
    while !shared.stopping.load(Ordering::Acquire) {
        match serve_one(&mut conn, shared, jobs) {
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

/// Close gracefully: send FIN, then read and drop what the client still sends (bounded in bytes
/// and time). Closing a socket with unread input makes the kernel send a reset, and a client that
/// was still sending a body we refused would lose our response (the 413) to it.
fn linger(stream: &mut TcpStream) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let deadline = Instant::now() + LINGER_TIME;
    let mut buf = [0u8; 8192];
    let mut total = 0;
    while total < LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match std::io::Read::read(stream, &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => total += n,
        }
    }
}

/// Serve one request; `Ok(true)` when the connection stays open for the next one.
fn serve_one(
    conn: &mut Reader<TcpStream>,
    shared: &Shared,
    jobs: &SyncSender<Job>,
) -> io::Result<bool> {
    let ep = &shared.endpoint;
    let deadline = Instant::now() + shared.timeout;
    let refuse = |conn: &mut Reader<TcpStream>, reply: &Reply, head_only: bool| {
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
    // Every request goes through a worker, so the handler stays the one place with the rules.
    let (tx, rx) = mpsc::sync_channel(1);
    let job = Job {
        method: head.method.clone(),
        target: head.target.clone(),
        authorization: head.authorization.clone(),
        body,
        reply: tx,
    };
    let reply = match jobs.send(job).ok().and_then(|()| rx.recv().ok()) {
        Some(reply) => reply,
        None => Reply::text(500, "MI workers are gone"),
    };
    let keep = head.keep_alive && !shared.stopping.load(Ordering::Acquire);
    let persist = match (keep, head.http11) {
        (false, _) => Persist::Close,
        (true, true) => Persist::Default,
        (true, false) => Persist::KeepAlive,
    };
    http::write_response(conn.get_mut(), &reply, persist, head_only)?;
    Ok(keep)
}

/// A worker: take jobs until every sender is gone, run each through the handler.
fn work(rx: &Mutex<Receiver<Job>>, shared: &Shared, mi: &MiFn) {
    loop {
        // Holding the lock while blocked in recv() is the point: it makes the channel
        // multi-consumer, one idle worker waits in recv() and the others wait for the lock.
        let job = lock(rx).recv();
        let Ok(job) = job else { return };
        let reply = catch_unwind(AssertUnwindSafe(|| {
            match shared.endpoint.authorize(job.authorization.as_deref()) {
                Ok(()) => shared
                    .endpoint
                    .handle(&job.method, &job.target, &job.body, mi),
                Err(refused) => refused,
            }
        }))
        .unwrap_or_else(|_| {
            log::error!("mi_http: panic while running an MI request");
            Reply::text(500, "internal error")
        });
        // The connection may have gone away meanwhile; nothing to do then.
        let _ = job.reply.send(reply);
    }
}
