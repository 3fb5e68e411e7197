//! Development reload: replace a transport module by the rebuilt file without losing events.
//!
//! Steps (each failure leaves the running version in place): copy the file to a unique path
//! (dlopen of the same path would return the still-mapped old image), check the copy like any
//! module, check the config's modparams against its params, then — under the registry's write
//! lock, so no subscription changes meanwhile — let the old instance free its sockets after the
//! events queued before, destroy it and join its thread, start the new instance on the same
//! queue, parse every socket again, and only then unload the old library. Events raised during
//! the reload wait in the queue. Production (without `evid --dev`) never unloads a module.

use crate::host::{Host, Shared};
use crate::loader::Library;
use crate::modparam::{self, ConfigValue, ModparamValue};
use crate::module::Module;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

impl Shared {
    pub(crate) fn reload_module(&self, name: &str) -> Result<String, String> {
        if !self.dev.load(Ordering::Relaxed) {
            return Err("modules are reloaded only in development mode (evid --dev)".into());
        }
        let module = self
            .modules
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|m| m.name == name)
            .cloned()
            .ok_or_else(|| format!("no module named {name:?} is loaded"))?;
        let old = module.info();
        if old.transports.is_empty() {
            return Err(format!(
                "module {name} has no transport; only transport modules can be reloaded"
            ));
        }
        let lib = open_copy(module.path())?;
        let new = lib.info();
        let protos = |i: &crate::loader::ModuleInfo| {
            i.transports
                .iter()
                .map(|t| t.proto.clone())
                .collect::<Vec<_>>()
        };
        if protos(&new) != protos(&old) {
            return Err(format!(
                "the new {name} provides {:?} instead of {:?}; restart evid to change protos",
                protos(&new),
                protos(&old)
            ));
        }
        for (param, v) in &module.config_params {
            let v = match v {
                ModparamValue::Int(i) => ConfigValue::Int(*i),
                ModparamValue::Bool(b) => ConfigValue::Int(i64::from(*b)),
                ModparamValue::Str(s) => ConfigValue::Str(s.clone()),
            };
            modparam::check(&new, param, &v)
                .map_err(|why| format!("the new version refuses the config: {why}"))?;
        }
        for e in &new.events {
            self.registry.publish(e)?;
        }
        let old_lib = {
            let _w = self
                .registry
                .write
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let subs: Vec<_> = self
                .registry
                .events()
                .iter()
                .flat_map(|e| {
                    e.subscribers
                        .load()
                        .iter()
                        .filter(|s| Arc::ptr_eq(&s.module, &module))
                        .cloned()
                        .collect::<Vec<_>>()
                })
                .collect();
            let replaced = module.replace(lib, subs.clone());
            // Holds were asked by the old instance: the instance now serving (new, or the old
            // one restarted) gets the held events and decides again.
            for sub in &subs {
                crate::hold::release(sub);
            }
            replaced?
        };
        self.mi.set_module_commands(&module, &new.mi_cmds);
        let old_path = old_lib.path.clone();
        drop(old_lib);
        if still_mapped(&old_path) {
            log::warn!(
                "module {name}: the old library {} is still mapped after unloading (a thread-local destructor may pin it)",
                old_path.display()
            );
        }
        let msg = format!("module {name} reloaded: {} -> {}", old.version, new.version);
        log::info!("{msg}");
        Ok(msg)
    }
}

/// Load `path` from a fresh copy: a unique path gives a fresh image, and the running image does
/// not change when a build rewrites `path` in place.
pub(crate) fn open_copy(path: &Path) -> Result<Library, String> {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("evid-reload-{}-{n}", std::process::id()));
    let file = path
        .file_name()
        .ok_or_else(|| format!("{} is not a file", path.display()))?;
    let origin_stamp = stamp(path);
    let copy = dir.join(file);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let lib = std::fs::copy(path, &copy)
        .map_err(|e| format!("cannot copy {}: {e}", path.display()))
        // The copy is gone once this returns: errors name the file the operator rebuilt.
        .and_then(|_| {
            Library::open(&copy).map_err(|e| {
                e.to_string()
                    .replace(&copy.display().to_string(), &path.display().to_string())
            })
        })
        .map(|mut lib| {
            lib.origin = path.to_path_buf();
            lib.origin_stamp = origin_stamp;
            lib
        });
    // The mapping outlives the file; nothing is left behind on disk.
    let _ = std::fs::remove_file(&copy);
    let _ = std::fs::remove_dir(&dir);
    lib
}

/// Whether `path` still appears in this process's memory mappings.
fn still_mapped(path: &Path) -> bool {
    let p = path.display().to_string();
    std::fs::read_to_string("/proc/self/maps").is_ok_and(|m| m.lines().any(|l| l.contains(&p)))
}

impl Host {
    /// Allow `module_reload` and start watching module files (`evid --dev`).
    pub fn set_dev_mode(&mut self) {
        self.shared.dev.store(true, Ordering::Relaxed);
        let weak = Arc::downgrade(&self.shared);
        self.watcher = std::thread::Builder::new()
            .name("evid:dev-watch".into())
            .spawn(move || watch(weak))
            .map_err(|e| log::error!("cannot start the module watcher: {e}"))
            .ok();
    }

    /// Reload a transport module from its (rebuilt) file; see the module docs.
    pub fn reload_module(&self, name: &str) -> Result<String, String> {
        self.shared.reload_module(name)
    }
}

fn stamp(p: &Path) -> Option<(u64, SystemTime)> {
    std::fs::metadata(p)
        .ok()
        .map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
}

/// `evid --dev`: reload a transport module whose file differs from the one its running copy was
/// made from (once its size and time settled). A refused file is not tried again until it
/// changes.
fn watch(shared: Weak<Shared>) {
    let mut refused: Vec<(PathBuf, Option<(u64, SystemTime)>)> = Vec::new();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let Some(s) = shared.upgrade() else { return };
        if s.stopping.load(Ordering::Relaxed) {
            return;
        }
        let modules: Vec<Arc<Module>> = s.modules.read().unwrap_or_else(|p| p.into_inner()).clone();
        for m in modules.iter().filter(|m| !m.info().transports.is_empty()) {
            let now = stamp(m.path());
            let running = m.origin_stamp();
            if now.is_none()
                || now == running
                || refused.iter().any(|(p, s)| p == m.path() && *s == now)
            {
                continue;
            }
            // Wait one more round if the file is still being written.
            std::thread::sleep(Duration::from_millis(300));
            if stamp(m.path()) != now {
                continue;
            }
            refused.retain(|(p, _)| p != m.path());
            if let Err(why) = s.reload_module(&m.name) {
                log::error!("module {}: reload refused: {why}", m.name);
                refused.push((m.path().to_path_buf(), now));
            }
        }
    }
}
