//! The script workers: a bounded queue of (route, event) and threads that run them.

use evi_sdk::{Host, OwnedEvent};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

type Job = (Arc<str>, OwnedEvent);

pub struct Pool {
    tx: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    capacity: usize,
}

impl Pool {
    pub fn start(host: Host, workers: usize, capacity: usize) -> Result<Pool, String> {
        let (tx, rx) = sync_channel::<Job>(capacity);
        let rx = Arc::new(Mutex::new(rx));
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

    /// Queue one event for `route`; never blocks.
    pub fn submit(&self, route: &Arc<str>, event: OwnedEvent) -> Result<(), String> {
        let Some(tx) = &self.tx else {
            return Err("event_route is stopping".into());
        };
        match tx.try_send((route.clone(), event)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(format!(
                "event_route queue full ({} events): event dropped (raise workers or queue_size)",
                self.capacity
            )),
            Err(TrySendError::Disconnected(_)) => Err("event_route workers are gone".into()),
        }
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

fn work(host: Host, rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok((route, event)) = job else { return };
        if let Err(why) = event.with(|ev| host.run_event_route(&route, ev)) {
            log::error!("event_route[{route}] failed for {}: {why}", event.name());
        }
    }
}
