//! Scenarios 1-3: the script loop into flatstore, UDP (with the raw `sendto` baseline), both.

use super::{
    check_flatstore, check_udp, loop_cfg, loop_stats, lost, median, per_round, rate, settle, STALL,
    TIMEOUT,
};
use crate::daemon::{wait_sinks, Daemon};
use crate::sinks::{udp_rcvbuf_errors, LineCounter, Sink, UdpSink};
use crate::{opensips, Options, Row};
use std::time::{Duration, Instant};

/// 1: script loop → one flatstore file.
pub fn loop_flatstore(o: &Options) -> Result<Vec<Row>, String> {
    let n = o.n;
    let what = "scenario 1 (loop → flatstore)";
    let mut d = Daemon::spawn(
        &o.bin_dir,
        "flat",
        &loop_cfg(n, &["event_flatstore"], &["flatstore:{dir}/out.log".into()]),
    )?;
    let mut file = LineCounter::new(d.dir.0.join("out.log"));
    let (c, last) = wait_sinks(&mut d, &mut [&mut file], &[n], STALL, TIMEOUT);
    let st = loop_stats(&mut d, n, what)?;
    let failure = check_flatstore(what, c[0], n, &st, &d)?;
    let row = Row {
        failure,
        lost_counted: lost(&st, "event_flatstore"),
        id: "1".into(),
        scenario: "script loop → flatstore".into(),
        value: rate(n, d.started, last),
        unit: "events/s",
        opensips: Some(opensips::FLATSTORE),
        raised: n,
        delivered: c[0],
        notes: "from process start to the last line of the file".into(),
        ..Row::default()
    };
    d.stop();
    Ok(vec![row])
}

/// 2: script loop → one UDP receiver, plus the raw rates of one thread sending the same
/// payload (`sendto`, `sendmmsg`, `sendmmsg` on a connected socket), in alternating rounds;
/// each row is the round with its median figure.
pub fn loop_udp(o: &Options) -> Result<Vec<Row>, String> {
    let mut evid = Vec::new();
    let mut raw: [Vec<Row>; 3] = Default::default();
    for _ in 0..o.rounds.max(1) {
        let (row, payload) = loop_udp_once(o)?;
        evid.push(row);
        for (rows, how) in raw.iter_mut().zip(Raw::ALL) {
            rows.push(raw_udp(o.n, &payload, how)?);
        }
    }
    let shares: Vec<String> = raw.iter().map(|r| per_round(&evid, r)).collect();
    let mut rows = vec![median(evid)];
    if o.rounds > 1 {
        rows[0].notes += &format!(
            "; per round, evid against raw sendto: {}; sendmmsg: {}; connected sendmmsg: {}",
            shares[0], shares[1], shares[2]
        );
    }
    rows.extend(raw.into_iter().map(median));
    Ok(rows)
}

/// One round of scenario 2: evid's row and the payload its receiver got.
fn loop_udp_once(o: &Options) -> Result<(Row, Vec<u8>), String> {
    let n = o.n;
    let what = "scenario 2 (loop → udp)";
    let mut rx = UdpSink::new(1)?;
    let k0 = udp_rcvbuf_errors();
    let mut d = Daemon::spawn(
        &o.bin_dir,
        "udp",
        &loop_cfg(n, &["event_datagram"], &[rx.uri(0)]),
    )?;
    let (c, last) = wait_sinks(&mut d, &mut [&mut rx], &[n], STALL, TIMEOUT);
    loop_stats(&mut d, n, what)?;
    let st = settle(&d, "event_datagram", n, Duration::from_secs(10))?;
    let received = rx.total().max(c[0]);
    check_udp(what, received, n, &st, udp_rcvbuf_errors() - k0)?;
    let dropped = lost(&st, "event_datagram");
    let row = Row {
        id: "2".into(),
        scenario: "script loop → UDP".into(),
        value: rate(received, d.started, last),
        unit: "events/s",
        opensips: Some(opensips::UDP),
        raised: n,
        delivered: received,
        lost_counted: dropped,
        notes: format!(
            "received/s from process start to the last datagram; evid counted {dropped} dropped (queue full)"
        ),
        ..Row::default()
    };
    d.stop();
    let payload = rx.first().unwrap_or_default();
    Ok((row, payload))
}

/// How the raw baselines of scenario 2 send.
#[derive(Clone, Copy)]
enum Raw {
    /// One `sendto` per datagram, address resolved once.
    SendTo,
    /// `sendmmsg` batches of 64 with the address in each message.
    Mmsg,
    /// The same on a connected socket (no address: the kernel keeps the route), as
    /// event_datagram sends to a busy destination.
    MmsgConnected,
}

impl Raw {
    const ALL: [Raw; 3] = [Raw::SendTo, Raw::Mmsg, Raw::MmsgConnected];
}

/// The raw rate of one thread sending `payload` to one receiver like scenario 2's: the
/// ceilings evid's UDP row is compared with.
fn raw_udp(n: u64, payload: &[u8], how: Raw) -> Result<Row, String> {
    let mut rx = UdpSink::new(1)?;
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], rx.ports[0]));
    let k0 = udp_rcvbuf_errors();
    let t0 = Instant::now();
    let sent = match how {
        Raw::SendTo => (0..n).filter(|_| tx.send_to(payload, to).is_ok()).count() as u64,
        Raw::Mmsg => send_mmsg(&tx, Some(to), payload, n),
        Raw::MmsgConnected => {
            tx.connect(to).map_err(|e| e.to_string())?;
            send_mmsg(&tx, None, payload, n)
        }
    };
    let sent_at = Instant::now();
    let end = Instant::now() + Duration::from_secs(5);
    while rx.count() < sent && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(2));
    }
    let got = rx.count();
    let last = rx.last().unwrap_or(sent_at);
    let (id, what) = match how {
        Raw::SendTo => ("2/raw", "raw sendto, same payload (baseline)"),
        Raw::Mmsg => ("2/raw-mmsg", "raw sendmmsg ×64, same payload (baseline)"),
        Raw::MmsgConnected => (
            "2/raw-conn",
            "raw sendmmsg ×64, connected socket (baseline)",
        ),
    };
    Ok(Row {
        id: id.into(),
        scenario: what.into(),
        value: rate(got, t0, last.max(sent_at)),
        unit: "events/s",
        raised: n,
        delivered: got,
        lost_counted: sent.saturating_sub(got),
        notes: format!(
            "{} bytes/datagram; {} lost in the kernel (receiver too slow)",
            payload.len(),
            udp_rcvbuf_errors() - k0
        ),
        ..Row::default()
    })
}

/// Send `n` copies of `payload` with `sendmmsg`, 64 per call, to `to` (`None`: the socket is
/// connected); returns how many went.
fn send_mmsg(
    tx: &std::net::UdpSocket,
    to: Option<std::net::SocketAddr>,
    payload: &[u8],
    n: u64,
) -> u64 {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed sockaddr_in is valid; the fields are set below.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    if let Some(std::net::SocketAddr::V4(v4)) = to {
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_port = v4.port().to_be();
        addr.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
    } else if to.is_some() {
        return 0;
    }
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    // SAFETY: zeroed mmsghdr is valid; each points at `addr` and `iov`, which outlive the calls.
    let mut msgs: Vec<libc::mmsghdr> = (0..64)
        .map(|_| {
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            if to.is_some() {
                m.msg_hdr.msg_name = &mut addr as *mut _ as *mut libc::c_void;
                m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            m.msg_hdr.msg_iov = &mut iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let mut sent = 0u64;
    while sent < n {
        let batch = (n - sent).min(64) as usize;
        // SAFETY: `msgs` holds `batch` valid headers; the socket is open.
        let r = unsafe { libc::sendmmsg(tx.as_raw_fd(), msgs.as_mut_ptr(), batch as u32, 0) };
        if r <= 0 {
            break;
        }
        sent += r as u64;
    }
    sent
}

/// 3: flatstore and UDP subscribed together.
pub fn loop_flatstore_udp(o: &Options) -> Result<Vec<Row>, String> {
    let n = o.n;
    let what = "scenario 3 (loop → flatstore + udp)";
    let mut rx = UdpSink::new(1)?;
    let k0 = udp_rcvbuf_errors();
    let mut d = Daemon::spawn(
        &o.bin_dir,
        "flatudp",
        &loop_cfg(
            n,
            &["event_flatstore", "event_datagram"],
            &["flatstore:{dir}/out.log".into(), rx.uri(0)],
        ),
    )?;
    let mut file = LineCounter::new(d.dir.0.join("out.log"));
    let (c, last) = wait_sinks(&mut d, &mut [&mut file, &mut rx], &[n, n], STALL, TIMEOUT);
    loop_stats(&mut d, n, what)?;
    let st = settle(&d, "event_datagram", n, Duration::from_secs(10))?;
    let failure = check_flatstore(what, c[0], n, &st, &d)?;
    let received = rx.total();
    check_udp(what, received, n, &st, udp_rcvbuf_errors() - k0)?;
    let dropped = lost(&st, "event_datagram");
    let row = Row {
        failure,
        id: "3".into(),
        scenario: "script loop → flatstore + UDP".into(),
        value: rate(n, d.started, last),
        unit: "events/s",
        opensips: Some(opensips::FLATSTORE_UDP),
        raised: n,
        delivered: c[0] + received,
        lost_counted: dropped,
        notes: format!(
            "raised/s until the last arrival anywhere; flatstore {} lines, udp received {received}, udp dropped {dropped} (counted)",
            c[0]
        ),
        ..Row::default()
    };
    d.stop();
    Ok(vec![row])
}
