//! A connection's byte stream, plain TCP or TLS over it, so the HTTP code is the same for both.
//!
//! TLS is driven by hand rather than with `rustls::StreamOwned`: one `StreamOwned::read` may do
//! any number of socket reads, each waiting the full socket timeout, so a client dripping a byte
//! at a time could hold a connection far past its deadline. Here every socket read is armed with
//! what is left of the deadline.

use crate::http::Source;
use crate::tls::TlsConfig;
use rustls::ServerConnection;
use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

pub struct TlsStream {
    conn: ServerConnection,
    sock: TcpStream,
    deadline: Instant,
}

impl Stream {
    /// Plain TCP, or TLS once the handshake has completed within `timeout`. The handshake runs
    /// on the connection's own thread: a slow or silent client only holds itself up.
    pub fn accept(sock: TcpStream, tls: Option<&TlsConfig>, timeout: Duration) -> io::Result<Self> {
        let Some(tls) = tls else {
            return Ok(Stream::Plain(sock));
        };
        let conn = tls
            .session()
            .map_err(|e| io::Error::other(format!("TLS session: {e}")))?;
        let mut s = TlsStream {
            conn,
            sock,
            deadline: Instant::now() + timeout,
        };
        s.handshake()?;
        Ok(Stream::Tls(Box::new(s)))
    }

    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => &t.sock,
        }
    }

    /// End our side of the stream; TLS first says so with close_notify, so the client can tell
    /// a complete response from a cut one.
    pub fn shutdown_write(&mut self) {
        if let Stream::Tls(t) = self {
            t.conn.send_close_notify();
            let _ = t.write_pending();
        }
        let _ = self.tcp().shutdown(std::net::Shutdown::Write);
    }
}

impl TlsStream {
    fn handshake(&mut self) -> io::Result<()> {
        while self.conn.is_handshaking() {
            if self.pump()? {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "closed during the TLS handshake",
                ));
            }
        }
        // The server's last flight (TLS 1.2 Finished, TLS 1.3 tickets).
        self.write_pending()
    }

    fn write_pending(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut self.sock)? == 0 {
                return Err(ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    /// Send what is due, then one socket read (bounded by the deadline) and its processing;
    /// `Ok(true)` at end of stream.
    fn pump(&mut self) -> io::Result<bool> {
        self.write_pending()?;
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        self.sock.set_read_timeout(Some(left))?;
        let n = match self.conn.read_tls(&mut self.sock) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Err(ErrorKind::TimedOut.into()),
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(true);
        }
        if let Err(e) = self.conn.process_new_packets() {
            // rustls has queued the fatal alert that tells the peer why.
            let _ = self.write_pending();
            return Err(io::Error::new(ErrorKind::InvalidData, e));
        }
        Ok(false)
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                // Most clients close without close_notify; HTTP framing already tells a cut
                // request from a complete one, so this is an ordinary end of stream.
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if self.pump()? {
                return Ok(0);
            }
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.conn.writer().write(buf)?;
        self.write_pending()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.conn.writer().flush()?;
        self.write_pending()?;
        self.sock.flush()
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(t) => t.flush(),
        }
    }
}

impl Source for Stream {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.set_timeout(timeout),
            Stream::Tls(t) => {
                t.deadline = Instant::now() + timeout;
                Ok(())
            }
        }
    }

    fn per_read_timeout(&self) -> bool {
        matches!(self, Stream::Plain(_))
    }
}
