//! A minimal HTTP/1.1 client over `std::net::TcpStream` (or TLS, see [`pki`]), for asserting
//! exact wire bytes.

#![allow(dead_code)]

pub mod pki;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub struct Client<S = TcpStream> {
    pub reader: BufReader<S>,
}

#[derive(Debug)]
pub struct Response {
    pub status_line: String,
    /// Header (name, value) pairs in wire order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn names(&self) -> Vec<&str> {
        self.headers.iter().map(|(n, _)| n.as_str()).collect()
    }
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Client {
            reader: BufReader::new(s),
        }
    }
}

impl<S: Read + Write> Client<S> {
    pub fn over(stream: S) -> Client<S> {
        Client {
            reader: BufReader::new(stream),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        let w = self.reader.get_mut();
        w.write_all(bytes).and_then(|()| w.flush()).expect("send");
    }

    pub fn post(&mut self, path: &str, body: &[u8]) {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.send(head.as_bytes());
        self.send(body);
    }

    /// Read one response (`Content-Length` framing); `None` at EOF before a status line.
    pub fn response(&mut self) -> Option<Response> {
        let mut status_line = String::new();
        if self.reader.read_line(&mut status_line).ok()? == 0 {
            return None;
        }
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("header line");
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                break;
            }
            let (n, v) = line.split_once(':').expect("header colon");
            headers.push((n.to_string(), v.trim().to_string()));
        }
        let mut r = Response {
            status_line: status_line.trim_end().to_string(),
            headers,
            body: Vec::new(),
        };
        let len: usize = r
            .header("Content-Length")
            .map_or(0, |v| v.parse().expect("length"));
        r.body = vec![0; len];
        self.reader.read_exact(&mut r.body).expect("body");
        Some(r)
    }

    /// The raw bytes of one response, head and body (`Content-Length` framing).
    pub fn raw_response(&mut self) -> Vec<u8> {
        let r = self.response().expect("a response");
        let mut out = format!("{}\r\n", r.status_line);
        for (n, v) in &r.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(&r.body);
        out
    }

    /// Whether the server closed the connection (EOF, or reset, with no more data).
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0) | Err(_))
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}
