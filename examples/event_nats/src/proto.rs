//! A tiny NATS client over `std::net::TcpStream`: the text protocol's CONNECT, PUB, SUB,
//! PING/PONG, and parsing what the server sends (INFO, MSG, PING, PONG, +OK, -ERR).
//! See <https://docs.nats.io/reference/reference-protocols/nats-protocol>.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// One message from the server.
#[derive(Debug, PartialEq, Eq)]
pub enum Op {
    /// `INFO {...}`: server information (JSON).
    Info(String),
    /// `MSG subject sid [reply] n`: a message on one of our subscriptions.
    Msg {
        /// The subject it was published to.
        subject: String,
        /// Its payload.
        payload: Vec<u8>,
    },
    /// The server's keep-alive; answer with PONG.
    Ping,
    /// The answer to one of our PINGs: everything we sent before it was processed.
    Pong,
    /// `+OK` (only in verbose mode).
    Ok,
    /// `-ERR 'reason'`: the server refused something (most close the connection).
    Err(String),
}

/// Parse one op from the start of `buf`: `Some((op, bytes used))`, or `None` when more bytes
/// are needed. An unknown op is an error.
pub fn parse_op(buf: &[u8]) -> Result<Option<(Op, usize)>, String> {
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = String::from_utf8_lossy(&buf[..eol]);
    let used = eol + 2;
    let mut words = line.split_ascii_whitespace();
    let verb = words.next().unwrap_or("").to_ascii_uppercase();
    let op = match verb.as_str() {
        "MSG" => {
            let args: Vec<&str> = words.collect();
            let (subject, n) = match args[..] {
                [s, _sid, n] | [s, _sid, _, n] => (s, n),
                _ => return Err(format!("bad MSG line {line:?}")),
            };
            let n: usize = n.parse().map_err(|_| format!("bad MSG size in {line:?}"))?;
            if buf.len() < used + n + 2 {
                return Ok(None);
            }
            let op = Op::Msg {
                subject: subject.to_string(),
                payload: buf[used..used + n].to_vec(),
            };
            return Ok(Some((op, used + n + 2)));
        }
        "PING" => Op::Ping,
        "PONG" => Op::Pong,
        "+OK" => Op::Ok,
        "-ERR" => Op::Err(line[4..].trim().trim_matches('\'').to_string()),
        "INFO" => Op::Info(line[4..].trim().to_string()),
        _ => return Err(format!("unknown op {line:?}")),
    };
    Ok(Some((op, used)))
}

/// One client connection.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Connect to `server` (`host:port`), read INFO, send CONNECT and a PING, and wait for the
    /// PONG (the server accepted us), all within `timeout`.
    pub fn connect(server: &str, name: &str, timeout: Duration) -> io::Result<Conn> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        let mut stream = None;
        for addr in server.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let stream = stream.ok_or(last)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(timeout))?;
        let mut c = Conn {
            stream,
            buf: Vec::with_capacity(64 * 1024),
        };
        let end = Instant::now() + timeout;
        match c.next_op(end)? {
            Some(Op::Info(_)) => {}
            other => return Err(proto_err(format!("expected INFO, got {other:?}"))),
        }
        let connect = format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"lang\":\"rust\",\"version\":\"{}\",\"name\":{},\"protocol\":1,\"headers\":false}}\r\nPING\r\n",
            env!("CARGO_PKG_VERSION"),
            evi_sdk::json::Value::from(name)
        );
        c.stream.write_all(connect.as_bytes())?;
        loop {
            match c.next_op(end)? {
                Some(Op::Pong) => return Ok(c),
                Some(Op::Err(e)) => return Err(proto_err(format!("server refused CONNECT: {e}"))),
                Some(Op::Ping) => c.stream.write_all(b"PONG\r\n")?,
                Some(_) => {}
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no PONG after CONNECT",
                    ))
                }
            }
        }
    }

    /// Send raw protocol bytes (several ops at once).
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Wait up to `wait` for data, then return every complete op received (maybe none).
    pub fn poll(&mut self, wait: Duration) -> io::Result<Vec<Op>> {
        let mut ops = Vec::new();
        if let Some(op) = self.take_op()? {
            ops.push(op);
        } else {
            self.fill(wait.max(Duration::from_millis(1)))?;
        }
        while let Some(op) = self.take_op()? {
            ops.push(op);
        }
        Ok(ops)
    }

    fn next_op(&mut self, end: Instant) -> io::Result<Option<Op>> {
        loop {
            if let Some(op) = self.take_op()? {
                return Ok(Some(op));
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.fill(left)?;
        }
    }

    fn take_op(&mut self) -> io::Result<Option<Op>> {
        match parse_op(&self.buf).map_err(proto_err)? {
            Some((op, used)) => {
                self.buf.drain(..used);
                Ok(Some(op))
            }
            None => Ok(None),
        }
    }

    /// Read what is available within `wait`; a closed connection is an error.
    fn fill(&mut self, wait: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(wait))?;
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed by the server",
            )),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

fn proto_err(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// `PUB subject [reply] n\r\npayload\r\n` appended to `out`.
pub fn pub_op(out: &mut Vec<u8>, subject: &str, reply: Option<&str>, payload: &[u8]) {
    out.extend_from_slice(b"PUB ");
    out.extend_from_slice(subject.as_bytes());
    if let Some(r) = reply {
        out.push(b' ');
        out.extend_from_slice(r.as_bytes());
    }
    out.extend_from_slice(format!(" {}\r\n", payload.len()).as_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_op_and_waits_for_complete_ones() {
        let wire = b"INFO {\"a\":1}\r\nPING\r\npong\r\n+OK\r\n-ERR 'Stale Connection'\r\nMSG a.b 1 3\r\nabc\r\nMSG x 1 r.1 0\r\n\r\n";
        let mut ops = Vec::new();
        let mut at = 0;
        while let Some((op, used)) = parse_op(&wire[at..]).unwrap_or_else(|e| panic!("{e}")) {
            ops.push(op);
            at += used;
        }
        assert_eq!(at, wire.len());
        assert_eq!(
            ops,
            [
                Op::Info("{\"a\":1}".into()),
                Op::Ping,
                Op::Pong,
                Op::Ok,
                Op::Err("Stale Connection".into()),
                Op::Msg {
                    subject: "a.b".into(),
                    payload: b"abc".to_vec()
                },
                Op::Msg {
                    subject: "x".into(),
                    payload: vec![]
                },
            ]
        );
        assert_eq!(parse_op(b"MSG a 1 5\r\nab"), Ok(None));
        assert_eq!(parse_op(b"PIN"), Ok(None));
        assert!(parse_op(b"WHAT\r\n").is_err());
    }

    #[test]
    fn pub_op_frames_the_payload() {
        let mut out = Vec::new();
        pub_op(&mut out, "s", Some("r.1"), b"{}");
        pub_op(&mut out, "t", None, b"");
        assert_eq!(out, b"PUB s r.1 2\r\n{}\r\nPUB t 0\r\n\r\n");
    }
}
