//! One connected session: publishes the buffer's events in raise order through a window of
//! unconfirmed publishes, and reports each broker answer.
//!
//! Why a hand-written poll loop: awaiting each `basic_publish` before the next one costs a
//! round trip to lapin's I/O thread per event, and a task per confirm costs a spawn per event.
//! Instead every publish future is polled once as soon as it is created, in raise order (that
//! first poll queues its frames and takes its delivery tag), then kept in a FIFO window. Only
//! the head is polled again: the broker confirms (almost always) in order, and a later answer
//! waits inside its own promise until it reaches the head.

use crate::broker::Broker;
use crate::buffer::Message;
use crate::config::Config;
use crate::connection::{finished, missing_exchange};
use lapin::options::BasicPublishOptions;
use lapin::publisher_confirm::Confirmation;
use lapin::{BasicProperties, Channel, Connection};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::{sleep, Instant, Sleep};

/// Most events taken from the buffer under one lock.
const BATCH: usize = 256;
/// Answers plus sends handled in one poll before yielding to lapin's tasks on this runtime.
const BUDGET: usize = 2048;
/// How often a session looks at its connection when nothing else wakes it (lapin reports a
/// dead or blocked connection through its status), and logs pending drops.
const CHECK: Duration = Duration::from_millis(200);
/// How long a session whose channel is no longer open waits for lapin to fail the publishes in
/// its window: lapin marks the channel closing before it hands the broker's reason to the
/// pending confirms, and that reason decides whether the events are resent or failed for good.
const LOST_GRACE: Duration = Duration::from_secs(1);

/// Why a connected session ended.
pub enum End {
    Broken,
    Done,
}

type Answer = lapin::Result<Confirmation>;
type Publishing<'a> = Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;

struct Slot<'a> {
    seq: u64,
    fut: Publishing<'a>,
    /// Kept once ready: a finished future must not be polled again.
    done: Option<Answer>,
}

impl Slot<'_> {
    fn ready(&mut self, cx: &mut Context<'_>) -> bool {
        if self.done.is_none() {
            if let Poll::Ready(a) = self.fut.as_mut().poll(cx) {
                self.done = Some(a);
            }
        }
        self.done.is_some()
    }
}

/// Publish `m`: its frames are queued at the first poll, then the broker's answer is awaited.
fn send(channel: &Channel, m: Message) -> Publishing<'_> {
    Box::pin(async move {
        let mut props =
            BasicProperties::default().with_delivery_mode(if m.target.persistent { 2 } else { 1 });
        if let Some(ct) = &m.target.content_type {
            props = props.with_content_type(ct.as_str().into());
        }
        let opts = BasicPublishOptions {
            mandatory: m.target.mandatory,
            immediate: false,
        };
        let confirm = channel
            .basic_publish(
                m.target.exchange.as_str(),
                m.target.routing_key.as_str(),
                opts,
                &m.body,
                props,
            )
            .await?;
        confirm.await
    })
}

struct Session<'a> {
    b: &'a Broker,
    conn: &'a Connection,
    channel: &'a Channel,
    cfg: &'a Config,
    deadline: &'a mut Option<Instant>,
    window: VecDeque<Slot<'a>>,
    /// Scratch lists, reused so a busy session allocates nothing per batch.
    taken: Vec<(u64, Message)>,
    answered: Vec<(u64, Confirmation)>,
    resolved: Vec<(Message, Confirmation)>,
    check: Pin<Box<Sleep>>,
    /// `stopping || retired` as last seen, so a change wakes the loop exactly once.
    seen_stop: bool,
    /// When the connection or channel was first seen no longer open.
    lost_at: Option<Instant>,
}

/// Publish until the connection breaks or the broker's work is done.
pub async fn run(
    b: &Broker,
    conn: &Connection,
    channel: &Channel,
    cfg: &Config,
    deadline: &mut Option<Instant>,
) -> End {
    let mut s = Session {
        b,
        conn,
        channel,
        cfg,
        deadline,
        window: VecDeque::new(),
        taken: Vec::with_capacity(BATCH),
        answered: Vec::new(),
        resolved: Vec::new(),
        check: Box::pin(sleep(CHECK)),
        seen_stop: false,
        lost_at: None,
    };
    poll_fn(|cx| s.poll(cx)).await
}

impl Session<'_> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<End> {
        let mut budget = BUDGET;
        loop {
            if finished(self.b, self.deadline, self.cfg) {
                return Poll::Ready(End::Done);
            }
            if !self.conn.status().connected() || !self.channel.status().connected() {
                return self.lost(cx);
            }
            // Polled on every round, not only when idle: a busy session must notice an unblock.
            if self.check.as_mut().poll(cx).is_ready() {
                self.check.as_mut().reset(Instant::now() + CHECK);
                self.note_blocked();
                self.b.log_drops();
                continue;
            }
            let answered = match self.collect(cx, budget) {
                Ok(n) => n,
                Err(e) => {
                    self.fail(cx, &e);
                    return Poll::Ready(End::Broken);
                }
            };
            let work = answered + self.fill();
            if work > 0 {
                if work >= budget {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                budget -= work;
                continue;
            }
            if self
                .b
                .park(cx.waker(), self.window.len() < self.cfg.publish_window)
            {
                continue;
            }
            let stop =
                self.b.stopping.load(Ordering::Acquire) || self.b.retired.load(Ordering::Acquire);
            if stop != self.seen_stop {
                self.seen_stop = stop;
                continue;
            }
            return Poll::Pending;
        }
    }

    /// Take the answered publishes at the head of the window, in order, and report them.
    /// `Err` when the channel or connection failed.
    fn collect(&mut self, cx: &mut Context<'_>, budget: usize) -> Result<usize, lapin::Error> {
        let mut n = 0;
        let mut failed = None;
        while n < budget {
            let Some(head) = self.window.front_mut() else {
                break;
            };
            if !head.ready(cx) {
                break;
            }
            let Some(Slot { seq, done, .. }) = self.window.pop_front() else {
                break;
            };
            match done {
                Some(Ok(c)) => {
                    self.answered.push((seq, c));
                    // Keeps each hold of the buffer lock short: raises contend on it.
                    if self.answered.len() >= BATCH {
                        self.report();
                    }
                }
                // The event stays in flight: it is sent again after the reconnect.
                Some(Err(e)) => {
                    failed = Some(e);
                    break;
                }
                None => {}
            }
            n += 1;
        }
        self.report();
        match failed {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    /// The channel or connection is no longer open. Waits (bounded by [`LOST_GRACE`]) for the
    /// window's publishes to learn why, so that an event the broker refuses for good (an
    /// unknown exchange closes the channel) is failed rather than resent on every reconnect.
    fn lost(&mut self, cx: &mut Context<'_>) -> Poll<End> {
        let since = *self.lost_at.get_or_insert_with(Instant::now);
        if let Err(e) = self.collect(cx, usize::MAX) {
            self.fail(cx, &e);
            return Poll::Ready(End::Broken);
        }
        if self.window.is_empty() || since.elapsed() >= LOST_GRACE {
            self.b.set_error("connection lost");
            return Poll::Ready(End::Broken);
        }
        // `collect` left the head's waker with lapin; the timer bounds the wait.
        let left = LOST_GRACE.saturating_sub(since.elapsed());
        self.check.as_mut().reset(Instant::now() + CHECK.min(left));
        if self.check.as_mut().poll(cx).is_ready() {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }

    /// The channel or connection failed. Answers that came before the failure still count (a
    /// confirmed event is not sent again); the rest stays in flight and is requeued, except
    /// events the broker refused for good.
    fn fail(&mut self, cx: &mut Context<'_>, e: &lapin::Error) {
        for mut slot in std::mem::take(&mut self.window) {
            if slot.ready(cx) {
                if let Some(Ok(c)) = slot.done {
                    self.answered.push((slot.seq, c));
                }
            }
        }
        self.report();
        let err = e.to_string();
        refused_by_broker(self.b, &err);
        self.b.set_error(&format!("connection lost: {err}"));
    }

    /// Move up to a batch of unsent events into the window and start their publishes, in raise
    /// order. Returns how many.
    fn fill(&mut self) -> usize {
        let room = self
            .cfg
            .publish_window
            .saturating_sub(self.window.len())
            .min(BATCH);
        if room == 0 {
            return 0;
        }
        {
            let mut buf = self.b.buffer();
            while self.taken.len() < room {
                match buf.next_unsent() {
                    Some(x) => self.taken.push(x),
                    None => break,
                }
            }
        }
        let n = self.taken.len();
        // The first poll only starts the publish; with a real waker lapin's I/O thread would
        // wake this task once per written event. Only the head needs waking, and `collect`
        // polls it with the real waker before the session parks.
        let mut start = Context::from_waker(Waker::noop());
        for (seq, m) in self.taken.drain(..) {
            let mut slot = Slot {
                seq,
                fut: send(self.channel, m),
                done: None,
            };
            slot.ready(&mut start);
            self.window.push_back(slot);
        }
        n
    }

    /// Report the collected answers: one buffer lock for the batch, the host outside it.
    fn report(&mut self) {
        if self.answered.is_empty() {
            return;
        }
        {
            let mut buf = self.b.buffer();
            for (seq, c) in self.answered.drain(..) {
                // None: dropped (buffer full) meanwhile, already reported.
                if let Some(m) = buf.resolve(seq) {
                    self.resolved.push((m, c));
                }
            }
        }
        for (m, c) in self.resolved.drain(..) {
            outcome(self.b, &m, c);
        }
    }

    fn note_blocked(&self) {
        let now = self.conn.status().blocked();
        if self.b.blocked.swap(now, Ordering::Relaxed) != now {
            if now {
                log::warn!(
                    "rabbitmq {}: the broker blocks publishing (resource alarm); events stay buffered",
                    self.b.key.label()
                );
            } else {
                log::info!(
                    "rabbitmq {}: the broker unblocked publishing",
                    self.b.key.label()
                );
            }
        }
    }
}

fn outcome(b: &Broker, m: &Message, c: Confirmation) {
    match c {
        Confirmation::Ack(None) | Confirmation::NotRequested => b.report(m, Ok(())),
        Confirmation::Ack(Some(ret)) | Confirmation::Nack(Some(ret)) => {
            b.counters.returned.fetch_add(1, Ordering::Relaxed);
            let why = format!(
                "returned by the broker: {} {}",
                ret.reply_code,
                ret.reply_text.as_str()
            );
            b.report(m, Err(&why));
        }
        Confirmation::Nack(None) => b.report(m, Err("nacked by the broker")),
    }
}

/// A channel closed with "NOT_FOUND - no exchange 'X' ..." would fail the same way every time:
/// fail the in-flight events to that exchange instead of resending them forever.
fn refused_by_broker(b: &Broker, err: &str) {
    let Some(exchange) = missing_exchange(err) else {
        return;
    };
    let failed: Vec<Message> = b.buffer().take_in_flight(|m| m.target.exchange == exchange);
    for m in failed {
        b.report(&m, Err(err));
    }
}
