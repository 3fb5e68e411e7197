//! The script workers: a bounded queue of (route, event) and threads that run them.

use evi_sdk::queue::{self, Receiver, Sender};
use evi_sdk::{Host, OwnedEvent};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

type Job = (Arc<str>, OwnedEvent);

/// How long `raise` waits for room in the workers' queue before the event fails.
pub const SUBMIT_WAIT: Duration = Duration::from_millis(100);

pub struct Pool {
    tx: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    capacity: usize,
}

impl Pool {
    pub fn start(host: Host, workers: usize, capacity: usize) -> Result<Pool, String> {
        // The queue's memory follows its backlog; every worker takes from it directly.
        let (tx, rx) = queue::bounded::<Job>(capacity);
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers {
            let rx = rx.clone();
            let h = std::thread::Builder::new()
                .name(format!("evid:route{i}"))
                .spawn(move || work(host, &rx))
                .map_err(|e| format!("cannot start script worker {i}: {e}"))?;
            handles.push(h);
        }
        Ok(Pool {
            tx: Some(tx),
            workers: handles,
            capacity,
        })
    }

    /// Queue one event for `route`, waiting up to [`SUBMIT_WAIT`] while the workers are behind.
    pub fn submit(&self, route: &Arc<str>, event: OwnedEvent) -> Result<(), String> {
        let Some(tx) = &self.tx else {
            return Err("event_route is stopping".into());
        };
        // Waiting here holds this module's thread, so its host queue fills and the script or MI
        // raisers wait (`evi_raise_wait`) instead of routes being dropped: backpressure down the
        // chain. No cycle can form: a route raising back into this module waits at most its
        // own bounded time.
        tx.send_timeout((route.clone(), event), SUBMIT_WAIT)
            .map_err(|_| {
                format!(
                "event_route queue full ({} events): event dropped (raise workers or queue_size)",
                self.capacity
            )
            })
    }

    /// Let the workers finish what is queued, then join them.
    pub fn stop(&mut self) {
        self.tx = None;
        for w in self.workers.drain(..) {
            if w.join().is_err() {
                log::error!("a script worker panicked");
            }
        }
    }
}

fn work(host: Host, rx: &Receiver<Job>) {
    while let Some((route, event)) = rx.recv() {
        if let Err(why) = event.with(|ev| host.run_event_route(&route, ev)) {
            log::error!("event_route[{route}] failed for {}: {why}", event.name());
        }
    }
}
