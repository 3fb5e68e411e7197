//! Scenarios 1-3: the script loop into flatstore, UDP (with the raw `sendto` baseline), both.

use super::{check_flatstore, check_udp, loop_cfg, loop_stats, lost, rate, settle, STALL, TIMEOUT};
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

/// 2: script loop → one UDP receiver, plus the raw `sendto` rate for the same payload.
pub fn loop_udp(o: &Options) -> Result<Vec<Row>, String> {
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
    let mut rows = vec![Row {
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
    }];
    d.stop();
    let payload = rx.first().unwrap_or_default();
    drop(rx);
    rows.push(raw_sendto(n, &payload)?);
    Ok(rows)
}

/// The raw rate of `sendto` of `payload` from one thread to one receiver like scenario 2's.
fn raw_sendto(n: u64, payload: &[u8]) -> Result<Row, String> {
    let mut rx = UdpSink::new(1)?;
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let to = format!("127.0.0.1:{}", rx.ports[0]);
    let k0 = udp_rcvbuf_errors();
    let t0 = Instant::now();
    let mut sent = 0u64;
    for _ in 0..n {
        if tx.send_to(payload, &to).is_ok() {
            sent += 1;
        }
    }
    let sent_at = Instant::now();
    let end = Instant::now() + Duration::from_secs(5);
    while rx.count() < sent && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(2));
    }
    let got = rx.count();
    let last = rx.last().unwrap_or(sent_at);
    Ok(Row {
        id: "2/raw".into(),
        scenario: "raw sendto, same payload (baseline)".into(),
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
