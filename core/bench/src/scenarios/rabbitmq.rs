//! Scenario 13: the script loop into a real RabbitMQ queue, with publisher confirms. The broker
//! (127.0.0.1:5672, guest/guest) must be up: without it the scenario fails, naming it.

use super::{accounted, check_payload, loop_cfg_ext, loop_stats, lost, rate, settle, TIMEOUT};
use crate::daemon::{stat, wait_sinks, Daemon};
use crate::sinks::Sink;
use crate::{Options, Row};
use futures_core::Stream;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use serde_json::{json, Value};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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

/// A queue of the broker, declared by the bench through its own AMQP connection and drained by
/// a consumer on its own thread (as a billing or monitoring app would), counted as a `Sink`, and
/// deleted on drop. Every delivery is counted; the first body is kept for the payload check.
struct BenchQueue {
    name: String,
    rt: tokio::runtime::Runtime,
    conn: Connection,
    ch: Channel,
    consumed: Arc<Consumed>,
    /// The base of `Consumed::last_ns`.
    base: Instant,
    consumer: Option<std::thread::JoinHandle<()>>,
    deleted: bool,
}

/// What the consumer thread saw.
#[derive(Default)]
struct Consumed {
    count: AtomicU64,
    /// Nanoseconds after `base` of the last delivery.
    last_ns: AtomicU64,
    first: Mutex<Option<Vec<u8>>>,
    stop: AtomicBool,
}

fn amqp_err(what: &str, e: lapin::Error) -> String {
    format!("scenario 13: RabbitMQ at {ADDR}: {what}: {e}")
}

async fn connect() -> Result<(Connection, Channel), String> {
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
    Ok((conn, ch))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("scenario 13: tokio runtime: {e}"))
}

impl BenchQueue {
    fn declare(base: Instant) -> Result<BenchQueue, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("evid-bench-{}-{nanos}", std::process::id());
        let rt = runtime()?;
        let (conn, ch) = rt.block_on(async {
            let (conn, ch) = connect().await?;
            // Classic queue v2: RabbitMQ's default since 3.12 (v1 is gone in 4.0); the 3.10
            // broker of this machine still defaults to v1, which costs it ~25% more CPU per
            // message (38-46k/s instead of 53-58k/s here).
            let mut args = FieldTable::default();
            args.insert(
                "x-queue-version".into(),
                lapin::types::AMQPValue::LongInt(2),
            );
            ch.queue_declare(&name, QueueDeclareOptions::default(), args)
                .await
                .map_err(|e| amqp_err(&format!("declare queue {name}"), e))?;
            Ok::<_, String>((conn, ch))
        })?;
        let consumed = Arc::new(Consumed::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let consumer = {
            let (name, consumed) = (name.clone(), consumed.clone());
            std::thread::Builder::new()
                .name("bench-consumer".into())
                .spawn(move || {
                    let run = || -> Result<(), String> {
                        let rt = runtime()?;
                        rt.block_on(consume(&name, &consumed, base, &ready_tx))
                    };
                    if let Err(e) = run() {
                        eprintln!("{e}");
                    }
                })
                .map_err(|e| format!("scenario 13: consumer thread: {e}"))?
        };
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| "scenario 13: the bench's consumer did not start".to_string())??;
        Ok(BenchQueue {
            name,
            rt,
            conn,
            ch,
            consumed,
            base,
            consumer: Some(consumer),
            deleted: false,
        })
    }

    /// Messages ready in the queue (a passive declare): what the consumer has not taken.
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

    fn first_body(&self) -> Result<Vec<u8>, String> {
        self.consumed
            .first
            .lock()
            .map_err(|_| "scenario 13: consumer state poisoned".to_string())?
            .clone()
            .ok_or_else(|| format!("scenario 13: nothing was consumed from {}", self.name))
    }

    /// Stop the consumer, delete the queue; returns the messages it still held.
    fn delete(&mut self) -> Result<u64, String> {
        self.consumed.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.consumer.take() {
            let _ = t.join();
        }
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

/// The consumer: no-ack deliveries, counted until `stop`.
async fn consume(
    queue: &str,
    seen: &Consumed,
    base: Instant,
    ready: &std::sync::mpsc::Sender<Result<(), String>>,
) -> Result<(), String> {
    let started = async {
        let (conn, ch) = connect().await?;
        let consumer = ch
            .basic_consume(
                queue,
                "evid-bench",
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| amqp_err(&format!("consume {queue}"), e))?;
        Ok::<_, String>((conn, consumer))
    }
    .await;
    let (conn, mut consumer) = match started {
        Ok(c) => {
            let _ = ready.send(Ok(()));
            c
        }
        Err(e) => {
            let _ = ready.send(Err(e.clone()));
            return Err(e);
        }
    };
    while !seen.stop.load(Ordering::Relaxed) {
        let next = std::future::poll_fn(|cx| Pin::new(&mut consumer).poll_next(cx));
        match tokio::time::timeout(Duration::from_millis(100), next).await {
            Ok(Some(Ok(delivery))) => {
                if seen.count.load(Ordering::Relaxed) == 0 {
                    if let Ok(mut f) = seen.first.lock() {
                        *f = Some(delivery.data);
                    }
                }
                seen.count.fetch_add(1, Ordering::Relaxed);
                let ns = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
                seen.last_ns.store(ns, Ordering::Relaxed);
            }
            Ok(Some(Err(e))) => return Err(amqp_err("delivery", e)),
            Ok(None) => break,
            Err(_) => {}
        }
    }
    let _ = conn.close(200, "evid-bench done").await;
    Ok(())
}

impl Sink for BenchQueue {
    fn count(&mut self) -> u64 {
        self.consumed.count.load(Ordering::Relaxed)
    }
    fn last(&self) -> Option<Instant> {
        let ns = self.consumed.last_ns.load(Ordering::Relaxed);
        (ns > 0).then(|| self.base + Duration::from_nanos(ns))
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
/// key), publisher confirms, drained by a consumer as an application would. The module's buffer
/// is raised to hold the whole loop (a burst outruns the confirms; by default the oldest of
/// 100,000 would be dropped, counted). Every event must be confirmed (event_rabbitmq
/// `delivered` and its own `confirmed` = N), and the consumer must receive exactly N messages.
pub fn loop_rabbitmq(o: &Options) -> Result<Vec<Row>, String> {
    let n = o.n;
    let what = "scenario 13 (loop → RabbitMQ, confirmed)";
    require_broker()?;
    let mut q = BenchQueue::declare(Instant::now())?;
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
    // A late duplicate (a resend after a reconnect) would show up within a moment.
    std::thread::sleep(Duration::from_millis(200));
    d.stop();
    let consumed = q.count();
    let left = q.messages()?;
    check_payload(what, &q.first_body()?)?;
    q.delete()?;
    if accounted(&st, "event_rabbitmq") != n
        || own("confirmed") != confirmed
        || consumed + left < confirmed
        || consumed + left > confirmed + own("resent")
    {
        return Err(format!(
            "{what}: {n} raised; evid delivered (confirmed) {confirmed}, failed {}, dropped {}; the module's status {broker}; the consumer received {consumed} and {left} were left in the queue: events lost or duplicated without a count\n{}",
            stat(&st, "event_rabbitmq:failed"),
            stat(&st, "event_rabbitmq:dropped"),
            d.log_tail()
        ));
    }
    let dropped = lost(&st, "event_rabbitmq");
    let failure = (dropped > 0 || confirmed != n)
        .then(|| format!("{confirmed} of {n} confirmed: evid counted {dropped} failed/dropped"));
    Ok(vec![Row {
        failure,
        id: "13".into(),
        scenario: "script loop → RabbitMQ, confirmed".into(),
        value: rate(c[0], d.started, last),
        unit: "events/s",
        raised: n,
        delivered: consumed,
        lost_counted: dropped,
        notes: format!(
            "from process start until a consumer (no-ack) received all; classic queue v2; {confirmed} confirmed, {} resent, {} connects; buffer_events {buffer}; queue deleted",
            own("resent"),
            own("connects")
        ),
        ..Row::default()
    }])
}
