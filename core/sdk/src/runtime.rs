//! A module's own tokio runtime (feature `tokio`): one current-thread runtime driven by one
//! thread the module starts in `init` and joins in `destroy`.
//!
//! A module cannot use the host's runtime: each `.so` has its own copy of every crate, tokio's
//! thread-locals included. And like every thread of a module (see [`worker`](crate::worker)),
//! the runtime's thread must be joined before `destroy` returns, since a dev reload unloads the
//! library right after. [`Runtime::shutdown`] does that; dropping the [`Runtime`] is the safety
//! net. `raise` hands work to the runtime with [`Runtime::spawn`] (or a channel a task reads)
//! and answers `Raised::Pending`; the task reports with `Host::delivery_status`.
//!
//! ```
//! use evi_sdk::runtime::{tokio, Runtime};
//! use std::time::Duration;
//!
//! let mut rt = Runtime::start("demo")?;
//! let (tx, rx) = std::sync::mpsc::channel();
//! rt.spawn(async move {
//!     tokio::time::sleep(Duration::from_millis(5)).await;
//!     let _ = tx.send("done");
//! });
//! assert_eq!(rx.recv().ok(), Some("done"));
//! rt.shutdown(Duration::from_secs(1)); // waits for the tasks, then joins the thread
//! # Ok::<(), String>(())
//! ```

pub use tokio;

use std::future::Future;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle as TaskHandle;

/// Bound on waiting for blocking-pool threads (`spawn_blocking` work) when the runtime stops.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// The runtime and its thread (`evid-NAME`). Owned by the module instance.
pub struct Runtime {
    name: String,
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    tasks: Vec<TaskHandle<()>>,
}

impl Runtime {
    /// Start the runtime (every driver tokio was built with: I/O, time) on a thread named
    /// `evid-NAME`; returns once that thread runs. Errors name the module.
    pub fn start(name: &str) -> Result<Runtime, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name(format!("evid-{name}-blocking"))
            .build()
            .map_err(|e| format!("cannot create the {name} runtime: {e}"))?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready, is_ready) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("evid-{name}"))
            .spawn(move || {
                let _ = ready.send(());
                // Drives every task and socket until `shutdown` says stop.
                let _ = rt.block_on(stopped);
                rt.shutdown_timeout(SHUTDOWN_TIMEOUT);
            })
            .map_err(|e| format!("cannot start the {name} thread: {e}"))?;
        let _ = is_ready.recv();
        Ok(Runtime {
            name: name.to_owned(),
            handle,
            stop: Some(stop),
            thread: Some(thread),
            tasks: Vec::new(),
        })
    }

    /// The runtime's handle, for libraries that take one (valid until [`Runtime::shutdown`]).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Run `f` on the runtime; [`Runtime::shutdown`] waits for it.
    pub fn spawn(&mut self, f: impl Future<Output = ()> + Send + 'static) {
        self.tasks.retain(|t| !t.is_finished());
        self.tasks.push(self.handle.spawn(f));
    }

    /// Wait (at most `limit`) for every spawned task, then stop the runtime and join its thread.
    /// The caller asks the tasks to finish first; tasks still running after `limit` are dropped.
    pub fn shutdown(&mut self, limit: Duration) {
        let tasks = std::mem::take(&mut self.tasks);
        let (done, wait) = mpsc::channel::<()>();
        self.handle.spawn(async move {
            for t in tasks {
                let _ = t.await;
            }
            let _ = done.send(());
        });
        if wait.recv_timeout(limit).is_err() && !limit.is_zero() {
            log::warn!("{}: tasks did not finish in time; stopping them", self.name);
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown(Duration::ZERO);
        }
    }
}
