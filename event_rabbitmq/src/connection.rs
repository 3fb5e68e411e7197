//! The broker task: connect, publish with confirms ([`crate::session`]), reconnect with capped
//! exponential backoff. Runs on the module's runtime; the module thread only enqueues (see
//! [`crate::broker`]).

use crate::broker::Broker;
use crate::config::Config;
use crate::session::{self, End};
use lapin::options::ConfirmSelectOptions;
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{Channel, Connection, ConnectionProperties};
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::time::{sleep, timeout, Instant};

/// Bound on closing a connection and joining lapin's I/O thread.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Drive one broker until it is retired and empty, or the module stops.
pub async fn run(broker: Arc<Broker>, cfg: Config, handle: Handle) {
    let mut backoff = cfg.reconnect_min;
    let mut deadline: Option<Instant> = None;
    loop {
        if finished(&broker, &mut deadline, &cfg) {
            break;
        }
        match connect(&broker, &cfg, &handle).await {
            Err(e) => {
                broker
                    .counters
                    .connect_failures
                    .fetch_add(1, Ordering::Relaxed);
                broker.set_error(&format!("cannot connect: {e}"));
                pause(&broker, backoff, &mut deadline, &cfg).await;
                backoff = cfg.next_backoff(backoff);
            }
            Ok((conn, channel)) => {
                backoff = cfg.reconnect_min;
                broker.counters.connects.fetch_add(1, Ordering::Relaxed);
                broker.clear_error();
                broker.connected.store(true, Ordering::Release);
                log::info!("rabbitmq {}: connected", broker.key.label());
                let end = session::run(&broker, &conn, &channel, &cfg, &mut deadline).await;
                broker.connected.store(false, Ordering::Release);
                broker.blocked.store(false, Ordering::Release);
                let again = broker.buffer().requeue();
                broker
                    .counters
                    .resent
                    .fetch_add(again as u64, Ordering::Relaxed);
                close(conn).await;
                if let End::Done = end {
                    break;
                }
            }
        }
    }
    broker.log_drops();
    let left = broker.buffer().drain();
    if !left.is_empty() {
        log::warn!(
            "rabbitmq {}: {} event(s) not confirmed before shutdown",
            broker.key.label(),
            left.len()
        );
    }
    for m in left {
        broker.report(&m, Err("not confirmed by the broker before shutdown"));
    }
}

/// Whether the task should end now: retired with nothing left, or stopping past the drain
/// deadline (or with nothing left).
pub fn finished(b: &Broker, deadline: &mut Option<Instant>, cfg: &Config) -> bool {
    let empty = b.buffer().is_empty();
    if b.stopping.load(Ordering::Acquire) {
        let d = *deadline.get_or_insert_with(|| Instant::now() + cfg.drain_timeout);
        return empty || Instant::now() >= d;
    }
    b.retired.load(Ordering::Acquire) && empty
}

/// Sleep for the backoff, waking early only to stop. Raises do not wake it: while the broker is
/// down an event costs its enqueue and nothing more.
async fn pause(b: &Broker, backoff: Duration, deadline: &mut Option<Instant>, cfg: &Config) {
    let mut nap = pin!(sleep(backoff));
    poll_fn(|cx| {
        if nap.as_mut().poll(cx).is_ready() || finished(b, deadline, cfg) {
            return Poll::Ready(());
        }
        b.park(cx.waker(), false);
        // stop() and retire() set their flag before waking the parked waker: look again.
        if finished(b, deadline, cfg) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    b.log_drops();
}

async fn bounded<T, E: std::fmt::Display>(
    limit: Option<Duration>,
    what: &str,
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match limit {
        None => f.await.map_err(|e| format!("{what}: {e}")),
        Some(t) => match timeout(t, f).await {
            Ok(r) => r.map_err(|e| format!("{what}: {e}")),
            Err(_) => Err(format!("{what}: no answer within {} ms", t.as_millis())),
        },
    }
}

async fn connect(
    b: &Broker,
    cfg: &Config,
    handle: &Handle,
) -> Result<(Connection, Channel), String> {
    let uri = AMQPUri {
        scheme: AMQPScheme::AMQP,
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo {
                username: b.key.user.clone(),
                password: b.key.password.clone(),
            },
            host: b.key.host.clone(),
            port: b.key.port,
        },
        vhost: b.key.vhost.clone(),
        query: AMQPQueryString {
            frame_max: Some(cfg.frame_max),
            heartbeat: Some(cfg.heartbeat),
            connection_timeout: Some(cfg.connect_timeout.as_millis() as u64),
            ..AMQPQueryString::default()
        },
    };
    // lapin's I/O thread drives its socket through these; binding the executor to our handle
    // keeps every task on the module's runtime (no global runtime, no thread we cannot join).
    let props = ConnectionProperties::default()
        .with_connection_name("evid event_rabbitmq".into())
        .with_executor(tokio_executor_trait::Tokio::default().with_handle(handle.clone()))
        .with_reactor(tokio_reactor_trait::Tokio);
    // The TCP connect is bounded by connect_timeout, the AMQP handshake by timeout.
    let login = cfg.timeout.map(|t| t + cfg.connect_timeout);
    let conn = bounded(login, "connect", Connection::connect_uri(uri, props)).await?;
    let channel = bounded(cfg.timeout, "channel.open", conn.create_channel()).await;
    let channel = match channel {
        Ok(c) => c,
        Err(e) => {
            close(conn).await;
            return Err(e);
        }
    };
    let confirms = bounded(
        cfg.timeout,
        "confirm.select",
        channel.confirm_select(ConfirmSelectOptions::default()),
    )
    .await;
    match confirms {
        Ok(()) => Ok((conn, channel)),
        Err(e) => {
            close(conn).await;
            Err(e)
        }
    }
}

/// Close politely, then join lapin's I/O thread (it must be joined while this runtime still
/// drives its socket, hence `spawn_blocking` rather than a join after the runtime stops).
async fn close(conn: Connection) {
    // A connection the broker blocks cannot send connection.close: do not wait for it.
    if conn.status().connected() && !conn.status().blocked() {
        let _ = timeout(CLOSE_TIMEOUT, conn.close(200, "evid: closing")).await;
    }
    let join = tokio::task::spawn_blocking(move || conn.run());
    if timeout(CLOSE_TIMEOUT, join).await.is_err() {
        log::warn!("rabbitmq: lapin's I/O thread did not stop within 5 s");
    }
}

/// The exchange named in a broker's NOT_FOUND channel error.
pub fn missing_exchange(err: &str) -> Option<String> {
    let rest = err.split("no exchange '").nth(1)?;
    Some(rest.split('\'').next()?.to_string())
}
