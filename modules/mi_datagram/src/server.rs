//! The socket and the threads that serve it: each reads one datagram, runs it through the MI
//! engine and sends the reply to the datagram's source address.

use crate::reply::{answer, MiFn};
use crate::socket_name::SocketName;
use evi_sdk::stop::{Stop, Woke};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{self, UnixDatagram};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the server runs (the modparams, checked).
#[derive(Clone, Debug)]
pub struct Config {
    pub socket: SocketName,
    /// Threads reading the socket (`children_count`).
    pub children: usize,
    /// Largest request read and largest reply sent (`socket_buf_size`).
    pub buf_size: usize,
    /// How long a reply the peer cannot take yet is retried (`socket_timeout`).
    pub send_timeout: Duration,
    /// Permissions of a unix socket file; 0 leaves them to the umask (`unix_socket_mode`).
    pub unix_mode: u32,
}

enum Sock {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

enum Peer {
    Udp(SocketAddr),
    Unix(net::SocketAddr),
}

impl Sock {
    fn fd(&self) -> RawFd {
        match self {
            Sock::Udp(s) => s.as_raw_fd(),
            Sock::Unix(s) => s.as_raw_fd(),
        }
    }

    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Peer)> {
        match self {
            Sock::Udp(s) => s.recv_from(buf).map(|(n, a)| (n, Peer::Udp(a))),
            Sock::Unix(s) => s.recv_from(buf).map(|(n, a)| (n, Peer::Unix(a))),
        }
    }

    fn send_to(&self, buf: &[u8], to: &Peer) -> io::Result<usize> {
        match (self, to) {
            (Sock::Udp(s), Peer::Udp(a)) => s.send_to(buf, a),
            (Sock::Unix(s), Peer::Unix(a)) => s.send_to_addr(buf, a),
            _ => Err(io::Error::from(io::ErrorKind::InvalidInput)),
        }
    }
}

/// The running server: its threads, joined by [`Server::stop`].
pub struct Server {
    stop: Arc<Stop>,
    threads: Vec<JoinHandle<()>>,
    local: SocketName,
    /// The socket file we created, with its inode, removed on stop if it is still ours.
    unix_file: Option<(PathBuf, u64, u64)>,
}

impl Server {
    /// Bind the socket and start `children` threads. The error names the socket and the cause.
    pub fn start(cfg: Config, mi: Arc<MiFn>) -> Result<Server, String> {
        let (sock, local, unix_file) = match &cfg.socket {
            SocketName::Udp(addr) => {
                let s =
                    UdpSocket::bind(addr).map_err(|e| format!("cannot bind udp:{addr}: {e}"))?;
                let local = s.local_addr().map_err(|e| e.to_string())?;
                (Sock::Udp(s), SocketName::Udp(local), None)
            }
            SocketName::Unix(path) => {
                let (s, file) = bind_unix(path, cfg.unix_mode)
                    .map_err(|e| format!("cannot bind unix socket {}: {e}", path.display()))?;
                (Sock::Unix(s), cfg.socket.clone(), Some(file))
            }
        };
        let set_nb = match &sock {
            Sock::Udp(s) => s.set_nonblocking(true),
            Sock::Unix(s) => s.set_nonblocking(true),
        };
        set_nb.map_err(|e| format!("cannot make the socket non-blocking: {e}"))?;
        let stop = Arc::new(Stop::new().map_err(|e| format!("cannot create a pipe: {e}"))?);
        let sock = Arc::new(sock);
        let mut server = Server {
            stop,
            threads: Vec::new(),
            local,
            unix_file,
        };
        for n in 0..cfg.children.max(1) {
            let (sock, stop, mi, cfg) =
                (sock.clone(), server.stop.clone(), mi.clone(), cfg.clone());
            let t = std::thread::Builder::new()
                .name(format!("mi_datagram-{n}"))
                .spawn(move || serve(&sock, &stop, &*mi, &cfg));
            match t {
                Ok(t) => server.threads.push(t),
                Err(e) => {
                    server.shutdown();
                    return Err(format!("cannot start a thread: {e}"));
                }
            }
        }
        Ok(server)
    }

    /// The address served (with the port the kernel chose, if it was 0).
    pub fn local(&self) -> &SocketName {
        &self.local
    }

    /// Wake and join every thread, then remove the socket file.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.signal();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some((path, dev, ino)) = self.unix_file.take() {
            // Only our own socket: another instance may have replaced it since.
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.dev() == dev && m.ino() == ino) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Bind a unix datagram socket at `path`, replacing a stale socket file left by an earlier run
/// (OpenSIPS deletes whatever is there; a regular file is refused here, as it is not ours).
fn bind_unix(path: &Path, mode: u32) -> io::Result<(UnixDatagram, (PathBuf, u64, u64))> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the path exists and is not a socket",
            ))
        }
        Err(_) => {}
    }
    let s = UnixDatagram::bind(path)?;
    if mode != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    let m = std::fs::symlink_metadata(path)?;
    Ok((s, (path.to_path_buf(), m.dev(), m.ino())))
}

/// One thread: wait for a datagram (or the stop), answer it, repeat. All threads poll the same
/// non-blocking socket; the one that loses the race for a datagram gets `WouldBlock` and waits
/// again.
fn serve(sock: &Sock, stop: &Stop, mi: &MiFn, cfg: &Config) {
    let mut buf = vec![0u8; cfg.buf_size];
    loop {
        match stop.wait(Some(sock.fd()), libc::POLLIN, Duration::from_secs(3600)) {
            Woke::Stopped => return,
            Woke::Timeout => continue,
            Woke::Ready => {}
        }
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                // ECONNREFUSED from an earlier reply's ICMP error, EINTR...: nothing to answer.
                log::debug!("mi_datagram: recvfrom: {e}");
                continue;
            }
        };
        if n == 0 {
            continue;
        }
        if let Some(reply) = answer(&buf[..n], cfg.buf_size, mi) {
            send(sock, stop, &reply, &peer, cfg.send_timeout);
        }
    }
}

/// Send a reply, retrying for up to `timeout` while the peer cannot take it (a full unix
/// receive queue); never longer, so one stuck client cannot hold a thread.
fn send(sock: &Sock, stop: &Stop, reply: &[u8], to: &Peer, timeout: Duration) {
    let start = Instant::now();
    loop {
        match sock.send_to(reply, to) {
            Ok(_) => return,
            Err(e)
                if (e.kind() == io::ErrorKind::WouldBlock
                    || e.raw_os_error() == Some(libc::ENOBUFS))
                    && start.elapsed() < timeout =>
            {
                if stop.sleep(Duration::from_millis(10)) {
                    return;
                }
            }
            Err(e) => {
                log::warn!("mi_datagram: cannot send the reply: {e}");
                return;
            }
        }
    }
}
