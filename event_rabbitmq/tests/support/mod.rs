//! The real broker, as the tests see it: a lapin consumer, broker locks, `rabbitmqctl`, and the
//! daemon's MI as these tests use it.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::fs::File;
use std::future::Future;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use evi_testkit::Daemon;
use serde_json::{json, Value};

/// Raise an event over MI; the daemon must answer OK.
pub fn raise(d: &Daemon, params: Value) {
    assert_eq!(
        d.mi("raise_event", params.clone()).ok(),
        Some(json!("OK")),
        "{params}"
    );
}

/// The sum of one `event_rabbitmq:status` counter over every broker; a flag (`connected`,
/// `blocked`) counts the brokers where it is set.
pub fn status(d: &Daemon, field: &str) -> u64 {
    let v = status_json(d);
    let n = |b: &Value| {
        b[field]
            .as_u64()
            .or_else(|| b[field].as_bool().map(u64::from))
    };
    v.as_array()
        .map(|a| a.iter().filter_map(n).sum())
        .unwrap_or(0)
}

pub fn status_json(d: &Daemon) -> Value {
    d.mi("event_rabbitmq:status", json!([]))
        .unwrap_or_else(|e| panic!("status: {e}"))
}

pub const ADDR: &str = "127.0.0.1:5672";
const URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A lock on the broker: shared by tests that only use it, exclusive for tests that stop it or
/// kill its connections. Released on drop (the file lock dies with the process too).
pub struct BrokerLock(#[allow(dead_code)] File);

fn lock(kind: i32) -> BrokerLock {
    let f = File::create(std::env::temp_dir().join("evid-rabbitmq-tests.lock"))
        .unwrap_or_else(|e| panic!("lock file: {e}"));
    // SAFETY: flock on a descriptor we own.
    let r = unsafe { libc::flock(f.as_raw_fd(), kind) };
    assert_eq!(r, 0, "flock: {}", std::io::Error::last_os_error());
    let l = BrokerLock(f);
    require_broker();
    l
}

/// For tests that publish and consume.
pub fn shared() -> BrokerLock {
    lock(libc::LOCK_SH)
}

/// For tests that stop the broker or kill its connections.
pub fn exclusive() -> BrokerLock {
    lock(libc::LOCK_EX)
}

/// Fail at once, and say why, when nothing listens on 5672 (never hang, never skip).
pub fn require_broker() {
    let addr: SocketAddr = ADDR.parse().unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        panic!(
            "RabbitMQ is not reachable at {ADDR} ({e}): run scripts/test-deps, which installs and starts it"
        );
    }
}

/// A queue name no other test uses.
pub fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("evid-test-{tag}-{}-{nanos}", std::process::id())
}

/// Run `rabbitmqctl ARGS`; panics with its output on failure.
pub fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run rabbitmqctl: {e}"));
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Stops the broker app; starts it again on drop, even when the test fails.
pub struct Outage;

impl Outage {
    pub fn begin() -> Outage {
        rabbitmqctl(&["stop_app"]);
        Outage
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").arg("start_app").status();
        let _ = Command::new("rabbitmqctl")
            .args(["await_startup", "--timeout", "120"])
            .status();
    }
}

/// The memory alarm, raised: RabbitMQ blocks every connection that publishes. The watermark in
/// force before is put back on drop, even when the test fails, and the drop waits until the
/// broker reports no alarm, so the next test finds it unblocked.
pub struct MemoryAlarm {
    restore: Vec<String>,
}

/// RabbitMQ's default watermark, used when the current one cannot be read or is itself 0 (an
/// earlier run killed before it could restore).
const DEFAULT_WATERMARK: &str = "0.4";

fn rabbitmqctl_out(args: &[&str]) -> String {
    Command::new("rabbitmqctl")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// `set_vm_memory_high_watermark` arguments that restore the current watermark: a fraction
/// (`0.4`) or `{absolute,BYTES}`.
fn current_watermark() -> Vec<String> {
    let v = rabbitmqctl_out(&[
        "-q",
        "eval",
        "vm_memory_monitor:get_vm_memory_high_watermark().",
    ]);
    if v.parse::<f64>().is_ok_and(|f| f > 0.0) {
        return vec![v];
    }
    let bytes = v
        .strip_prefix("{absolute,")
        .and_then(|r| r.strip_suffix('}'))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .filter(|&n| n > 0);
    match bytes {
        Some(n) => vec!["absolute".into(), n.to_string()],
        None => vec![DEFAULT_WATERMARK.into()],
    }
}

/// Whether the broker reports any resource alarm.
pub fn alarm_active() -> bool {
    let v = rabbitmqctl_out(&["-q", "eval", "rabbit_alarm:get_alarms()."]);
    v.contains("resource_limit")
}

impl MemoryAlarm {
    pub fn raise() -> MemoryAlarm {
        let restore = current_watermark();
        let alarm = MemoryAlarm { restore };
        rabbitmqctl(&["set_vm_memory_high_watermark", "0"]);
        assert!(
            evi_testkit::wait_for(Duration::from_secs(60), alarm_active),
            "the memory alarm did not go on"
        );
        alarm
    }
}

impl Drop for MemoryAlarm {
    fn drop(&mut self) {
        let mut args = vec!["set_vm_memory_high_watermark"];
        args.extend(self.restore.iter().map(String::as_str));
        let _ = Command::new("rabbitmqctl").args(&args).output();
        if !evi_testkit::wait_for(Duration::from_secs(60), || !alarm_active()) {
            // Never leave the broker blocking every other test.
            let _ = Command::new("rabbitmqctl")
                .args(["set_vm_memory_high_watermark", DEFAULT_WATERMARK])
                .output();
        }
    }
}

fn block_on<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
        .block_on(f)
}

/// A fresh connection per call: tests kill connections, and a consumer must survive that.
async fn channel() -> Result<(Connection, Channel), lapin::Error> {
    let props = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    let conn = Connection::connect(URI, props).await?;
    let ch = conn.create_channel().await?;
    Ok((conn, ch))
}

/// Declare `queue` (durable: it must survive a broker restart), optionally bound to an exchange.
pub fn declare(queue: &str, bind: Option<(&str, &str)>) {
    let r: Result<(), lapin::Error> = block_on(async {
        let (conn, ch) = channel().await?;
        let opts = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        ch.queue_declare(queue, opts, FieldTable::default()).await?;
        if let Some((exchange, key)) = bind {
            ch.queue_bind(
                queue,
                exchange,
                key,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        let _ = conn.close(200, "").await;
        Ok(())
    });
    r.unwrap_or_else(|e| panic!("declare {queue}: {e}"));
}

pub fn delete(queue: &str) {
    let _: Result<(), lapin::Error> = block_on(async {
        let (conn, ch) = channel().await?;
        ch.queue_delete(queue, QueueDeleteOptions::default())
            .await?;
        let _ = conn.close(200, "").await;
        Ok(())
    });
}

/// Deletes the queue at the end of the test, pass or fail.
pub struct Queue(pub String);

impl Queue {
    pub fn new(tag: &str, bind: Option<(&str, &str)>) -> Queue {
        let q = unique(tag);
        declare(&q, bind);
        Queue(q)
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        delete(&self.0);
    }
}

/// Take messages from `queue` until `n` arrived or `limit` passed.
pub fn get(queue: &str, n: usize, limit: Duration) -> Vec<(Vec<u8>, BasicProperties)> {
    let end = Instant::now() + limit;
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < end {
        let r: Result<(), lapin::Error> = block_on(async {
            let (conn, ch) = channel().await?;
            while got.len() < n {
                let opts = BasicGetOptions { no_ack: true };
                match ch.basic_get(queue, opts).await? {
                    Some(m) => got.push((m.delivery.data, m.delivery.properties)),
                    None => break,
                }
            }
            let _ = conn.close(200, "").await;
            Ok(())
        });
        if r.is_err() || got.len() < n {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    got
}
