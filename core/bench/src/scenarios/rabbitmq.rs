//! Scenario 13: the script loop into a real RabbitMQ queue, with publisher confirms. The broker
//! (127.0.0.1:5672, guest/guest) must be up: without it the scenario fails, naming it.

use super::{accounted, check_payload, loop_cfg_ext, loop_stats, lost, rate, settle, TIMEOUT};
use crate::daemon::{stat, wait_sinks, Daemon};
use crate::sinks::Sink;
use crate::{Options, Row};
use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const ADDR: &str = "127.0.0.1:5672";
const URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Fail at once, naming the broker, when nothing listens on 5672.
pub fn require_broker() -> Result<(), String> {
    let addr: std::net::SocketAddr = ADDR.parse().map_err(|e| format!("{ADDR}: {e}"))?;
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map(|_| ())
        .map_err(|e| {
            format!(
                "scenario 13 (loop → RabbitMQ, confirmed) needs the RabbitMQ broker at {ADDR} (guest/guest), which is not reachable ({e}): start it (scripts/test-deps installs and starts it), or leave 13 out with --only"
            )
        })
}

/// A queue of the broker, declared by the bench through its own AMQP connection, counted with
/// passive declares (a `Sink`), and deleted on drop.
struct BenchQueue {
    name: String,
    rt: tokio::runtime::Runtime,
    conn: Connection,
    ch: Channel,
    count: u64,
    last: Option<Instant>,
    /// When `count` last asked the broker (it asks at most every `POLL`).
    polled: Option<Instant>,
    deleted: bool,
}

/// How often the queue is counted while the loop runs (the rate's resolution).
const POLL: Duration = Duration::from_millis(20);

fn amqp_err(what: &str, e: lapin::Error) -> String {
    format!("scenario 13: RabbitMQ at {ADDR}: {what}: {e}")
}

impl BenchQueue {
    fn declare() -> Result<BenchQueue, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("evid-bench-{}-{nanos}", std::process::id());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("scenario 13: tokio runtime: {e}"))?;
        let (conn, ch) = rt.block_on(async {
            let props = ConnectionProperties::default()
                .with_executor(tokio_executor_trait::Tokio::current())
                .with_reactor(tokio_reactor_trait::Tokio);
            let conn = Connection::connect(URI, props)
                .await
                .map_err(|e| amqp_err("connect", e))?;
            let ch = conn
                .create_channel()
                .await
                .map_err(|e| amqp_err("channel", e))?;
            ch.queue_declare(&name, QueueDeclareOptions::default(), FieldTable::default())
                .await
                .map_err(|e| amqp_err(&format!("declare queue {name}"), e))?;
            Ok::<_, String>((conn, ch))
        })?;
        Ok(BenchQueue {
            name,
            rt,
            conn,
            ch,
            count: 0,
            last: None,
            polled: None,
            deleted: false,
        })
    }

    /// Messages ready in the queue (a passive declare).
    fn messages(&self) -> Result<u64, String> {
        let opts = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        self.rt
            .block_on(
                self.ch
                    .queue_declare(&self.name, opts, FieldTable::default()),
            )
            .map(|q| u64::from(q.message_count()))
            .map_err(|e| amqp_err(&format!("passive declare of {}", self.name), e))
    }

    /// Take one message off the queue (acknowledged): its body.
    fn take_one(&self) -> Result<Vec<u8>, String> {
        let got = self
            .rt
            .block_on(
                self.ch
                    .basic_get(&self.name, BasicGetOptions { no_ack: true }),
            )
            .map_err(|e| amqp_err("basic.get", e))?;
        got.map(|m| m.delivery.data)
            .ok_or_else(|| format!("scenario 13: queue {} is empty", self.name))
    }

    /// Delete the queue; returns the messages it still held.
    fn delete(&mut self) -> Result<u64, String> {
        self.deleted = true;
        self.rt
            .block_on(
                self.ch
                    .queue_delete(&self.name, QueueDeleteOptions::default()),
            )
            .map(u64::from)
            .map_err(|e| amqp_err(&format!("delete queue {}", self.name), e))
    }
}

impl Sink for BenchQueue {
    fn count(&mut self) -> u64 {
        if self.polled.is_some_and(|t| t.elapsed() < POLL) {
            return self.count;
        }
        self.polled = Some(Instant::now());
        if let Ok(c) = self.messages() {
            if c != self.count {
                self.count = c;
                self.last = Some(Instant::now());
            }
        }
        self.count
    }
    fn last(&self) -> Option<Instant> {
        self.last
    }
}

impl Drop for BenchQueue {
    fn drop(&mut self) {
        if !self.deleted {
            let _ = self.delete();
        }
        let _ = self.rt.block_on(self.conn.close(200, "evid-bench done"));
    }
}

/// 13: script loop → a queue of the local broker (default exchange, the queue's name as routing
/// key), publisher confirms. The module's buffer is raised to hold the whole loop (a burst
/// outruns the confirms; by default the oldest of 100,000 would be dropped, counted). Every event
/// must be confirmed (event_rabbitmq `delivered` and its own `confirmed` = N), and the queue must
/// hold exactly N messages.
pub fn loop_rabbitmq(o: &Options) -> Result<Vec<Row>, String> {
    let n = o.n;
    let what = "scenario 13 (loop → RabbitMQ, confirmed)";
    require_broker()?;
    let mut q = BenchQueue::declare()?;
    let buffer = n.max(100_000);
    let params = format!(
        "modparam(\"event_rabbitmq\", \"buffer_events\", {buffer})\nmodparam(\"event_rabbitmq\", \"buffer_bytes\", {})\n",
        (buffer * 1024).max(64 << 20)
    );
    let sock = format!("rabbitmq:guest:guest@{ADDR}/{}", q.name);
    let mut d = Daemon::spawn(
        &o.bin_dir,
        "rmq",
        &loop_cfg_ext(
            n,
            &["event_rabbitmq"],
            &params,
            &[("E_BENCH", sock.as_str())],
            "",
        ),
    )?;
    let (c, last) = wait_sinks(
        &mut d,
        &mut [&mut q],
        &[n],
        Duration::from_secs(10),
        TIMEOUT,
    );
    loop_stats(&mut d, n, what)?;
    let st = settle(&d, "event_rabbitmq", n, Duration::from_secs(30))?;
    let confirmed = stat(&st, "event_rabbitmq:delivered");
    let status = d.mi("event_rabbitmq:status", json!([]))?;
    // One object per broker: a list, or an object holding the list.
    let list = match &status {
        Value::Object(m) => m.values().next().cloned().unwrap_or_default(),
        v => v.clone(),
    };
    let broker = list
        .as_array()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or_default();
    let own = |k: &str| broker[k].as_u64().unwrap_or(0);
    // The broker may count a moment later than it confirms.
    let mut held = c[0];
    let end = Instant::now() + Duration::from_secs(5);
    while held != confirmed && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
        held = q.messages()?;
    }
    if accounted(&st, "event_rabbitmq") != n || held != confirmed || own("confirmed") != confirmed {
        return Err(format!(
            "{what}: {n} raised; evid delivered (confirmed) {confirmed}, failed {}, dropped {}; the module's status {broker}; the queue holds {held}: events lost or duplicated without a count\n{}",
            stat(&st, "event_rabbitmq:failed"),
            stat(&st, "event_rabbitmq:dropped"),
            d.log_tail()
        ));
    }
    d.stop();
    check_payload(what, &q.take_one()?)?;
    let left = q.delete()?;
    if left + 1 != held {
        return Err(format!(
            "{what}: the queue held {held} messages, but {left} were left to delete after taking one"
        ));
    }
    let dropped = lost(&st, "event_rabbitmq");
    let failure = (dropped > 0 || confirmed != n)
        .then(|| format!("{confirmed} of {n} confirmed: evid counted {dropped} failed/dropped"));
    Ok(vec![Row {
        failure,
        id: "13".into(),
        scenario: "script loop → RabbitMQ, confirmed".into(),
        value: rate(held, d.started, last),
        unit: "events/s",
        raised: n,
        delivered: held,
        lost_counted: dropped,
        notes: format!(
            "from process start until the queue held all (passive declare every 20 ms); {confirmed} confirmed, {} resent, {} connects; buffer_events {buffer}; queue deleted",
            own("resent"),
            own("connects")
        ),
        ..Row::default()
    }])
}
