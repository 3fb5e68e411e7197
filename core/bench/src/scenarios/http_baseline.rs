//! The ceiling of scenario 7 (`7/raw`): an HTTP/1.1 keep-alive server that does no work, one
//! thread per connection (the fastest of the no-work servers tried on the 2-vCPU VMs: a
//! blocking or spinning epoll loop did less), answering every request with the bytes evid
//! answered to the same request. Measured by the same client in the same round as evid, it
//! shows what this machine's loopback TCP, scheduler and client leave for any MI server.

use evid::mi_client::{message_len, read_message};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A running no-work server; stopped on drop.
pub struct NoWorkServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl NoWorkServer {
    /// Listen on a free loopback port; every request gets `reply` (a whole response).
    pub fn start(reply: Vec<u8>) -> Result<NoWorkServer, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let (reply, stop2) = (Arc::new(reply), stop.clone());
        let acceptor = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Acquire) {
                    return;
                }
                if let Ok(conn) = conn {
                    let reply = reply.clone();
                    // Ends when the client closes the connection.
                    std::thread::spawn(move || serve(conn, &reply));
                }
            }
        });
        Ok(NoWorkServer {
            addr,
            stop,
            acceptor: Some(acceptor),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for NoWorkServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocked accept; it sees the flag and returns. Without a wake-up the thread
        // is left blocked rather than joined forever.
        let woken = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
        if let (true, Some(h)) = (woken, self.acceptor.take()) {
            let _ = h.join();
        }
    }
}

/// Answer each complete request (head, then `Content-Length` bytes of body) with `reply`.
fn serve(mut conn: TcpStream, reply: &[u8]) {
    let _ = conn.set_nodelay(true);
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    loop {
        while let Some(len) = message_len(&buf) {
            if buf.len() < len {
                break;
            }
            if conn.write_all(reply).is_err() {
                return;
            }
            buf.drain(..len);
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Send `request` on `s` and return the whole response, as it came.
pub fn exchange(s: &mut TcpStream, request: &[u8]) -> Result<Vec<u8>, String> {
    s.write_all(request).map_err(|e| e.to_string())?;
    read_message(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_every_request_of_a_keep_alive_connection_with_the_reply() {
        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
        let server = NoWorkServer::start(reply.clone()).unwrap_or_else(|e| panic!("{e}"));
        let mut s = TcpStream::connect(server.addr).unwrap_or_else(|e| panic!("{e}"));
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let req = b"POST /mi HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\n\r\nhello";
        for _ in 0..3 {
            assert_eq!(exchange(&mut s, req), Ok(reply.clone()));
        }
        // Two requests in one write get two replies.
        s.write_all(&[&req[..], &req[..]].concat())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut both = vec![0u8; 2 * reply.len()];
        s.read_exact(&mut both).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(both, [&reply[..], &reply[..]].concat());
    }
}
