//! The I/O: non-blocking datagram sockets and one `sendto` per event.
//!
//! Everything a send needs (kernel address, descriptor, size limit) is prepared when a socket is
//! subscribed, so the raise path is one bounds check and one syscall, with no allocation unless
//! the send fails.

use crate::uri::{Dest, UNIX_PATH_MAX};
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Largest UDP payload over IPv4: 65535 - 20 (IP header) - 8 (UDP header).
pub const UDP4_MAX: usize = 65507;
/// Largest UDP payload over IPv6 without jumbograms: 65535 - 8 (UDP header).
pub const UDP6_MAX: usize = 65527;

/// The module's shared UDP sockets, created once at `init`.
pub struct Sender {
    v4: OwnedFd,
    /// `Err` holds why IPv6 is unavailable; only sends to IPv6 destinations fail then.
    v6: Result<OwnedFd, String>,
}

/// A subscribed destination, ready to send to.
pub struct Target {
    dest: Dest,
    addr: RawAddr,
    route: Route,
}

enum Route {
    V4,
    V6,
    /// Each unix destination has its own socket. The kernel charges a unix datagram to the
    /// sending socket until the receiver reads it, so with one shared socket a receiver that
    /// stops reading would use up the shared send buffer and every other unix subscriber would
    /// get EAGAIN too. Own sockets keep one stuck subscriber from starving the others.
    Unix(OwnedFd),
}

/// A kernel socket address, built once at subscribe time.
struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl Sender {
    /// Open the shared UDP sockets (unbound; the kernel picks a source port on first send).
    pub fn new() -> Result<Sender, String> {
        let v4 = dgram_socket(libc::AF_INET)
            .map_err(|e| format!("cannot create UDP/IPv4 socket: {e}"))?;
        let v6 = dgram_socket(libc::AF_INET6).map_err(|e| e.to_string());
        if let Err(e) = &v6 {
            log::warn!("IPv6 unavailable ({e}); events to udp:[...] subscribers will fail");
        }
        Ok(Sender { v4, v6 })
    }

    /// Pretend IPv6 is unavailable (tests of that path on hosts that have it).
    #[cfg(test)]
    pub(crate) fn without_ipv6(mut self) -> Sender {
        self.v6 = Err("disabled by test".into());
        self
    }

    /// Prepare `dest` for sending: build its kernel address, and open its own socket if unix.
    pub fn target(&self, dest: Dest) -> Result<Target, String> {
        let (addr, route) = match &dest {
            Dest::Udp { addr, .. } => {
                let route = if addr.is_ipv4() { Route::V4 } else { Route::V6 };
                (RawAddr::inet(*addr), route)
            }
            Dest::Unix { path } => {
                let addr = RawAddr::unix(path)
                    .ok_or_else(|| format!("unix socket path in {dest} is too long"))?;
                let fd = dgram_socket(libc::AF_UNIX)
                    .map_err(|e| format!("{dest}: cannot create unix socket: {e}"))?;
                (addr, Route::Unix(fd))
            }
        };
        Ok(Target { dest, addr, route })
    }

    /// Send `payload` as one datagram. Never blocks and never retries: a full buffer drops the
    /// event and says so.
    pub fn send(&self, t: &Target, payload: &[u8]) -> Result<(), String> {
        if payload.is_empty() {
            return Err(format!(
                "{}: event has no JSON payload, nothing sent",
                t.dest
            ));
        }
        // The kernel would answer EMSGSIZE too; checking first gives the limit in the message.
        let limit = match t.route {
            Route::V4 => Some((UDP4_MAX, "UDP/IPv4")),
            Route::V6 => Some((UDP6_MAX, "UDP/IPv6")),
            Route::Unix(_) => None,
        };
        if let Some((max, kind)) = limit {
            if payload.len() > max {
                return Err(format!(
                    "{}: event of {} bytes exceeds the {kind} datagram limit of {max} bytes, event dropped",
                    t.dest,
                    payload.len()
                ));
            }
        }
        let fd = match &t.route {
            Route::V4 => self.v4.as_raw_fd(),
            Route::V6 => match &self.v6 {
                Ok(fd) => fd.as_raw_fd(),
                Err(why) => {
                    return Err(format!(
                        "{}: IPv6 is unavailable ({why}), event dropped",
                        t.dest
                    ))
                }
            },
            Route::Unix(fd) => fd.as_raw_fd(),
        };
        // MSG_DONTWAIT as well as O_NONBLOCK: the call must not block even if a descriptor's
        // flags were changed behind our back. MSG_NOSIGNAL: never SIGPIPE the daemon.
        // SAFETY: `payload` and `t.addr` are valid for the call; `len` is within the storage.
        let n = unsafe {
            libc::sendto(
                fd,
                payload.as_ptr().cast(),
                payload.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                (&t.addr.storage as *const libc::sockaddr_storage).cast(),
                t.addr.len,
            )
        };
        if n < 0 {
            return Err(describe(io::Error::last_os_error(), t, fd, payload.len()));
        }
        if n as usize != payload.len() {
            return Err(format!(
                "{}: sent {n} of {} bytes, event truncated",
                t.dest,
                payload.len()
            ));
        }
        Ok(())
    }
}

impl Target {
    pub fn dest(&self) -> &Dest {
        &self.dest
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.dest)
    }
}

/// One line naming the destination, the cause and the outcome.
fn describe(e: io::Error, t: &Target, fd: RawFd, len: usize) -> String {
    let unix = matches!(t.route, Route::Unix(_));
    let why = match e.raw_os_error() {
        Some(libc::EAGAIN) if unix => "receiver's socket buffer full".to_string(),
        Some(libc::EAGAIN) => "socket buffer full".to_string(),
        Some(libc::ENOENT) if unix => "no socket at this path (ENOENT)".to_string(),
        Some(libc::ECONNREFUSED) if unix => "nothing is bound to this socket (ECONNREFUSED)".to_string(),
        Some(libc::EMSGSIZE) if unix => match send_buffer(fd) {
            // Linux refuses a unix datagram larger than the send buffer minus 32 bytes.
            Some(buf) => format!(
                "event of {len} bytes exceeds the unix datagram limit of {} bytes (send buffer size)",
                buf.saturating_sub(32)
            ),
            None => format!("event of {len} bytes is too large for a unix datagram (EMSGSIZE)"),
        },
        _ => format!("sendto failed: {e}"),
    };
    format!("{}: {why}, event dropped", t.dest)
}

/// The socket's send buffer size (SO_SNDBUF), for the EMSGSIZE message.
fn send_buffer(fd: RawFd) -> Option<usize> {
    let mut v: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid out-pointers of the sizes given.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (r == 0).then(|| usize::try_from(v).ok()).flatten()
}

/// A non-blocking, close-on-exec datagram socket.
fn dgram_socket(domain: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl RawAddr {
    fn zeroed() -> libc::sockaddr_storage {
        // SAFETY: sockaddr_storage is plain integers; all-zero is a valid value.
        unsafe { mem::zeroed() }
    }

    fn inet(addr: SocketAddr) -> RawAddr {
        let mut storage = Self::zeroed();
        let len = match addr {
            SocketAddr::V4(a) => {
                // SAFETY: sockaddr_storage is larger than and aligned for every sockaddr type.
                let sin = unsafe {
                    &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
                };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                // SAFETY: as above.
                let sin6 = unsafe {
                    &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
                };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_flowinfo = a.flowinfo();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                sin6.sin6_scope_id = a.scope_id();
                mem::size_of::<libc::sockaddr_in6>()
            }
        };
        RawAddr {
            storage,
            len: len as libc::socklen_t,
        }
    }

    /// `None` if the path does not fit `sun_path` with its NUL (the parser already checked).
    fn unix(path: &str) -> Option<RawAddr> {
        let bytes = path.as_bytes();
        if bytes.len() > UNIX_PATH_MAX || bytes.contains(&0) {
            return None;
        }
        let mut storage = Self::zeroed();
        // SAFETY: as in `inet`.
        let sun = unsafe {
            &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_un>()
        };
        sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, s) in sun.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        // The zeroed storage already holds the terminating NUL; count it, as most C code does.
        let len = mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1;
        Some(RawAddr {
            storage,
            len: len as libc::socklen_t,
        })
    }
}
