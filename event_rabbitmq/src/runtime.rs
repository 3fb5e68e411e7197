//! The module's own tokio runtime: one current-thread runtime on one thread the module starts
//! at `init` and joins at `destroy` (a module cannot share the host's tokio, see DESIGN.md).

use std::future::Future;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle as TaskHandle;

/// Bound on waiting for blocking-pool threads (lapin joins) when the runtime stops.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Runtime {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    tasks: Vec<TaskHandle<()>>,
}

impl Runtime {
    pub fn start() -> Result<Runtime, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("evid-rabbitmq-blocking")
            .build()
            .map_err(|e| format!("cannot create the rabbitmq runtime: {e}"))?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready, is_ready) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("evid-rabbitmq".into())
            .spawn(move || {
                let _ = ready.send(());
                // Drives every broker task and lapin's sockets until destroy says stop.
                let _ = rt.block_on(stopped);
                rt.shutdown_timeout(SHUTDOWN_TIMEOUT);
            })
            .map_err(|e| format!("cannot start the rabbitmq thread: {e}"))?;
        let _ = is_ready.recv();
        Ok(Runtime {
            handle,
            stop: Some(stop),
            thread: Some(thread),
            tasks: Vec::new(),
        })
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Run `f` on the runtime; [`Runtime::shutdown`] waits for it.
    pub fn spawn(&mut self, f: impl Future<Output = ()> + Send + 'static) {
        self.tasks.retain(|t| !t.is_finished());
        self.tasks.push(self.handle.spawn(f));
    }

    /// Wait (at most `limit`) for every spawned task, then stop the runtime and join its thread.
    /// The caller asks the tasks to finish first.
    pub fn shutdown(&mut self, limit: Duration) {
        let tasks = std::mem::take(&mut self.tasks);
        let (done, wait) = mpsc::channel::<()>();
        self.handle.spawn(async move {
            for t in tasks {
                let _ = t.await;
            }
            let _ = done.send(());
        });
        if wait.recv_timeout(limit).is_err() {
            log::warn!("rabbitmq: broker tasks did not finish in time; stopping them");
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
