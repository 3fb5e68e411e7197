//! A tiny XML-RPC server that answers every call with a fault (HTTP 200, keep-alive). The call
//! reached the server and was answered, so event_xmlrpc reports the fault after its `raise`
//! answered Pending, without retrying: an async failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const FAULT: &str = "<?xml version=\"1.0\"?>\n<methodResponse><fault><value><struct>\
<member><name>faultCode</name><value><int>4</int></value></member>\
<member><name>faultString</name><value><string>Too many parameters</string></value></member>\
</struct></value></fault></methodResponse>";

/// Listens on 127.0.0.1 until the test process ends; one thread per connection.
pub struct FaultServer {
    pub port: u16,
    calls: Arc<AtomicUsize>,
}

impl FaultServer {
    pub fn start() -> FaultServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let c = c.clone();
                std::thread::spawn(move || serve(s, &c));
            }
        });
        FaultServer { port, calls }
    }

    pub fn uri(&self, method: &str) -> String {
        format!("xmlrpc:127.0.0.1:{}:{method}", self.port)
    }

    /// Calls answered so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }
}

/// Each request: the head up to its blank line, `Content-Length` bytes of body, then the fault.
fn serve(s: TcpStream, calls: &AtomicUsize) {
    let Ok(mut out) = s.try_clone() else {
        return;
    };
    let mut r = BufReader::new(s);
    loop {
        let mut len = 0;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end().to_ascii_lowercase();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        calls.fetch_add(1, Ordering::Relaxed);
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{FAULT}",
            FAULT.len()
        );
        if out.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}
