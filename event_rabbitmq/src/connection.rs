//! The broker task: connect, publish with confirms ([`crate::session`]), reconnect with capped
//! exponential backoff. Runs on the module's runtime; the module thread only enqueues (see
//! [`crate::broker`]).

use crate::broker::Broker;
use crate::config::Config;
use crate::session::{self, End};
use lapin::options::ConfirmSelectOptions;
use lapin::tcp::HandshakeResult;
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{Channel, Connection, ConnectionProperties};
use std::future::{poll_fn, Future};
use std::io;
use std::net::ToSocketAddrs;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::time::{sleep, timeout, Instant};

/// Bound on closing a connection and joining lapin's I/O thread.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// A session that lasted this long was healthy, confirms or not (an idle broker).
const HEALTHY_SESSION: Duration = Duration::from_secs(10);

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
                // Before the count: whoever sees the failure counted sees new events held.
                broker.unreachable.store(true, Ordering::Release);
                broker
                    .counters
                    .connect_failures
                    .fetch_add(1, Ordering::Release);
                broker.set_error(&format!("cannot connect: {e}"));
                pause(&broker, backoff, &mut deadline, &cfg).await;
                backoff = cfg.next_backoff(backoff);
            }
            Ok((conn, channel)) => {
                broker.counters.connects.fetch_add(1, Ordering::Relaxed);
                broker.clear_error();
                broker.connected.store(true, Ordering::SeqCst);
                broker.unreachable.store(false, Ordering::Release);
                log::info!("rabbitmq {}: connected", broker.key.label());
                // Events the daemon held while the broker was down come now (see note_hold).
                broker.release_holds();
                let confirmed = broker.counters.confirmed.load(Ordering::Relaxed);
                let began = Instant::now();
                let end = session::run(&broker, &conn, &channel, &cfg, &mut deadline).await;
                broker.connected.store(false, Ordering::Release);
                broker.blocked.store(false, Ordering::Release);
                let again = broker.buffer().requeue();
                broker
                    .counters
                    .resent
                    .fetch_add(again as u64, Ordering::Relaxed);
                close(&broker, conn).await;
                if let End::Done = end {
                    break;
                }
                // A session that got a confirm, or lasted, was healthy: reconnect after the
                // shortest pause. One that broke soon without a confirm backs off like a failed
                // connect: whatever breaks it (a broker closing each new channel, an unknown
                // exchange under steady traffic) would otherwise turn into a reconnect storm.
                let healthy = broker.counters.confirmed.load(Ordering::Relaxed) > confirmed
                    || began.elapsed() >= HEALTHY_SESSION;
                if healthy {
                    backoff = cfg.reconnect_min;
                }
                pause(&broker, backoff, &mut deadline, &cfg).await;
                if !healthy {
                    backoff = cfg.next_backoff(backoff);
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
    b: &Arc<Broker>,
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
    let conn = bounded(
        login,
        "connect",
        Connection::connector(uri, connector(b, cfg.connect_timeout), props),
    )
    .await?;
    let channel = bounded(cfg.timeout, "channel.open", conn.create_channel()).await;
    let channel = match channel {
        Ok(c) => c,
        Err(e) => {
            close(b, conn).await;
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
            close(b, conn).await;
            Err(e)
        }
    }
}

/// Opens the broker's TCP connection (TLS when the socket names a domain) on lapin's I/O
/// thread, keeping a handle on the socket in the broker so that [`close`] can always end it.
// The error type is lapin's (`HandshakeResult`), large or not.
#[allow(clippy::result_large_err)]
fn connector(
    b: &Arc<Broker>,
    limit: Duration,
) -> Box<dyn Fn(&AMQPUri) -> HandshakeResult + Send + Sync> {
    let b = b.clone();
    Box::new(move |uri: &AMQPUri| {
        let host = uri.authority.host.as_str();
        let mut last = None;
        let mut stream = None;
        for addr in (host, uri.authority.port).to_socket_addrs()? {
            match std::net::TcpStream::connect_timeout(&addr, limit) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = stream.ok_or_else(|| {
            last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
        })?;
        stream.set_nodelay(true)?;
        b.set_socket(stream.try_clone().ok());
        let stream = tcp_stream::TcpStream::from_std(stream)?;
        // The handshake blocks (bounded by lapin's connect timeout); lapin's reactor then needs
        // a non-blocking socket.
        let stream = match &b.tls {
            None => stream,
            Some(d) => {
                stream.into_rustls(&d.connector, d.server_name.as_deref().unwrap_or(host))?
            }
        };
        stream.set_nonblocking(true)?;
        Ok(stream)
    })
}

/// Close politely, else cut the socket; then join lapin's I/O thread (it must be joined while
/// this runtime still drives its socket, hence `spawn_blocking` rather than a join after the
/// runtime stops).
async fn close(b: &Broker, conn: Connection) {
    // A connection the broker blocks cannot send connection.close: do not wait for it.
    let polite = conn.status().connected()
        && !conn.status().blocked()
        && matches!(
            timeout(CLOSE_TIMEOUT, conn.close(200, "evid: closing")).await,
            Ok(Ok(()))
        );
    if !polite {
        b.cut();
    }
    let join = tokio::task::spawn_blocking(move || conn.run());
    if timeout(CLOSE_TIMEOUT, join).await.is_err() {
        log::warn!("rabbitmq: lapin's I/O thread did not stop within 5 s");
    }
    b.set_socket(None);
}

/// The exchange named in a broker's NOT_FOUND channel error.
pub fn missing_exchange(err: &str) -> Option<String> {
    let rest = err.split("no exchange '").nth(1)?;
    Some(rest.split('\'').next()?.to_string())
}
