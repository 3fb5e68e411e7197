//! `mi_datagram` over UDP and over unix datagram sockets: one datagram each way. Both wait for
//! the reply the same way; a unix client must also bind a socket of its own to be answered.

use super::{is_timeout, no_answer, resolve, unique_name, unreachable, Transport};
use std::io;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[cfg(not(target_os = "linux"))]
use std::os::unix::fs::PermissionsExt;

/// Largest datagram reply read (`mi_datagram`'s largest `socket_buf_size`).
const MAX_DATAGRAM: usize = 1 << 20;

impl Transport {
    pub(super) fn udp(
        &self,
        host: &str,
        port: u16,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, String> {
        let addr = resolve((host, port), host)?;
        let local = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let s = UdpSocket::bind(local).map_err(|e| format!("cannot bind a UDP socket: {e}"))?;
        // Connected: only the daemon's datagrams arrive, and a closed port is reported
        // (ECONNREFUSED) instead of waiting for the timeout.
        s.connect(addr).map_err(|e| unreachable(self, e))?;
        s.send(body).map_err(|e| unreachable(self, e))?;
        let deadline = Instant::now() + timeout;
        self.recv_until(
            deadline,
            timeout,
            "UDP socket",
            |t| s.set_read_timeout(t),
            |buf| s.recv(buf),
        )
    }

    pub(super) fn unix(
        &self,
        path: &Path,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, String> {
        let client = UnixClient::bind()?;
        let s = &client.sock;
        s.connect(path).map_err(|e| unreachable(self, e))?;
        let deadline = Instant::now() + timeout;
        let _ = s.set_write_timeout(Some(timeout));
        s.send(body).map_err(|e| {
            if is_timeout(&e) {
                no_answer(self, timeout)
            } else {
                unreachable(self, e)
            }
        })?;
        self.recv_until(
            deadline,
            timeout,
            "unix socket",
            |t| s.set_read_timeout(t),
            |buf| s.recv(buf),
        )
    }

    /// Receive the one reply datagram on a connected socket by `deadline` (`what` names the
    /// socket in errors; `timeout` is the whole wait, for the message).
    fn recv_until(
        &self,
        deadline: Instant,
        timeout: Duration,
        what: &str,
        set_read_timeout: impl Fn(Option<Duration>) -> io::Result<()>,
        mut recv: impl FnMut(&mut [u8]) -> io::Result<usize>,
    ) -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(no_answer(self, timeout));
            }
            set_read_timeout(Some(left)).map_err(|e| format!("{what}: {e}"))?;
            match recv(&mut buf) {
                Ok(n) => return Ok(buf[..n].to_vec()),
                Err(e) if is_timeout(&e) => return Err(no_answer(self, timeout)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(unreachable(self, e)),
            }
        }
    }
}

/// The client end of a unix datagram exchange, bound so the daemon can reply: to an abstract
/// name on Linux (no file, no permissions to get wrong), else to a file removed on drop.
struct UnixClient {
    sock: UnixDatagram,
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    path: Option<PathBuf>,
}

impl UnixClient {
    #[cfg(target_os = "linux")]
    fn bind() -> Result<UnixClient, String> {
        use std::os::linux::net::SocketAddrExt;
        let mut last = None;
        for _ in 0..8 {
            let name = unique_name();
            let r = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .and_then(|a| UnixDatagram::bind_addr(&a));
            match r {
                Ok(sock) => return Ok(UnixClient { sock, path: None }),
                Err(e) => last = Some(e),
            }
        }
        Err(format!(
            "cannot bind a unix datagram socket: {}",
            last.map_or_else(String::new, |e| e.to_string())
        ))
    }

    #[cfg(not(target_os = "linux"))]
    fn bind() -> Result<UnixClient, String> {
        let path = std::env::temp_dir().join(unique_name());
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path)
            .map_err(|e| format!("cannot bind a unix socket at {}: {e}", path.display()))?;
        // The daemon may run as another user: it must be able to send the reply.
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o622));
        Ok(UnixClient {
            sock,
            path: Some(path),
        })
    }
}

impl Drop for UnixClient {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}
