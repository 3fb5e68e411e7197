//! Real datagram receivers for transport tests.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// A bound UDP socket on 127.0.0.1 collecting datagrams.
pub struct UdpReceiver {
    pub sock: std::net::UdpSocket,
    pub port: u16,
}

impl UdpReceiver {
    pub fn new() -> UdpReceiver {
        Self::bind("127.0.0.1:0")
    }

    pub fn bind(addr: &str) -> UdpReceiver {
        let sock = std::net::UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let port = sock.local_addr().map(|a| a.port()).unwrap_or(0);
        UdpReceiver { sock, port }
    }

    /// The socket URI to subscribe (`udp:127.0.0.1:PORT`).
    pub fn uri(&self) -> String {
        match self.sock.local_addr() {
            Ok(std::net::SocketAddr::V6(a)) => format!("udp:[{}]:{}", a.ip(), a.port()),
            Ok(a) => format!("udp:{a}"),
            Err(_) => String::new(),
        }
    }

    /// Receive up to `n` datagrams, waiting at most `timeout` for each.
    pub fn recv_n(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let _ = self.sock.set_read_timeout(Some(timeout));
        let mut out = Vec::new();
        let mut buf = vec![0u8; 70_000];
        while out.len() < n {
            match self.sock.recv(&mut buf) {
                Ok(len) => out.push(buf[..len].to_vec()),
                Err(_) => break,
            }
        }
        out
    }
}

impl Default for UdpReceiver {
    fn default() -> Self {
        Self::new()
    }
}

/// A bound unix datagram socket collecting datagrams.
pub struct UnixReceiver {
    pub sock: UnixDatagram,
    pub path: PathBuf,
}

impl UnixReceiver {
    pub fn bind(path: PathBuf) -> UnixReceiver {
        let _ = std::fs::remove_file(&path);
        let sock =
            UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        UnixReceiver { sock, path }
    }

    pub fn uri(&self) -> String {
        format!("unix:{}", self.path.display())
    }

    pub fn recv_n(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let _ = self.sock.set_read_timeout(Some(timeout));
        let mut out = Vec::new();
        let mut buf = vec![0u8; 300_000];
        while out.len() < n {
            match self.sock.recv(&mut buf) {
                Ok(len) => out.push(buf[..len].to_vec()),
                Err(_) => break,
            }
        }
        out
    }
}
