//! The open files, shared by subscribed path and reference counted.
//!
//! Sockets hold a slot index, so `raise` reaches its file without hashing the path. A list of
//! slots with buffered lines keeps `flush` (called after every batch) from visiting every file.

use crate::outfile::{FileStats, OutFile, Outcomes};
use evi_sdk::Delivery;
use std::collections::HashMap;

struct Entry {
    /// The path as subscribed (no suffix): the sharing key and the MI rotate key.
    path: String,
    refs: usize,
    /// Listed in `Files::dirty`.
    dirty: bool,
    out: OutFile,
}

pub struct Files {
    slots: Vec<Option<Entry>>,
    free_slots: Vec<usize>,
    by_path: HashMap<String, usize>,
    /// Slots that may hold buffered lines (may repeat or be stale; `Entry::dirty` decides).
    dirty: Vec<usize>,
    /// Reused by `flush` to avoid an allocation per batch.
    scratch: Vec<usize>,
    max_open: usize,
    mode: u32,
}

impl Files {
    pub fn new(max_open: usize, mode: u32) -> Files {
        Files {
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_path: HashMap::new(),
            dirty: Vec::new(),
            scratch: Vec::new(),
            max_open,
            mode,
        }
    }

    /// Distinct files open.
    pub fn open_count(&self) -> usize {
        self.by_path.len()
    }

    /// Take another reference on the file already open for `path`.
    pub fn share(&mut self, path: &str) -> Option<usize> {
        let slot = *self.by_path.get(path)?;
        let entry = self.entry_mut(slot)?;
        entry.refs += 1;
        Some(slot)
    }

    /// Refuse a new file when `max_open_sockets` are open (checked before touching the disk).
    pub fn check_room(&self, path: &str) -> Result<(), String> {
        if self.open_count() >= self.max_open {
            return Err(format!(
                "flatstore: cannot open '{path}': max_open_sockets ({}) files are already open",
                self.max_open
            ));
        }
        Ok(())
    }

    /// Open `name` (the real file name) for the subscribed `path`, with one reference.
    /// `root`: see [`OutFile::open`].
    pub fn open(
        &mut self,
        path: &str,
        name: String,
        root: Option<std::path::PathBuf>,
    ) -> Result<usize, String> {
        self.check_room(path)?;
        let out = OutFile::open(name, self.mode, root)?;
        let entry = Entry {
            path: path.to_string(),
            refs: 1,
            dirty: false,
            out,
        };
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.slots[s] = Some(entry);
                s
            }
            None => {
                self.slots.push(Some(entry));
                self.slots.len() - 1
            }
        };
        self.by_path.insert(path.to_string(), slot);
        Ok(slot)
    }

    /// Drop one reference; the last one writes what is buffered and closes the file.
    pub fn release(&mut self, slot: usize, out: &mut Outcomes) {
        let Some(entry) = self.entry_mut(slot) else {
            return;
        };
        entry.refs = entry.refs.saturating_sub(1);
        if entry.refs > 0 {
            return;
        }
        if let Some(mut entry) = self.slots[slot].take() {
            entry.out.close(out);
            self.by_path.remove(&entry.path);
            self.free_slots.push(slot);
        }
    }

    /// Append one line, delivered as `ticket`, to the file in `slot`.
    pub fn append(
        &mut self,
        slot: usize,
        ticket: Delivery,
        format: impl FnOnce(&mut Vec<u8>),
        out: &mut Outcomes,
    ) -> Result<(), String> {
        let Some(Some(entry)) = self.slots.get_mut(slot) else {
            return Err("flatstore: the socket's file is closed".into());
        };
        let result = entry.out.push_line(ticket, format, out);
        if !entry.dirty && entry.out.has_pending() {
            entry.dirty = true;
            self.dirty.push(slot);
        }
        result
    }

    /// Write out every buffer.
    pub fn flush(&mut self, out: &mut Outcomes) {
        let mut work = std::mem::take(&mut self.scratch);
        work.clear();
        for slot in self.dirty.drain(..) {
            if let Some(Some(e)) = self.slots.get_mut(slot) {
                if e.dirty {
                    e.dirty = false;
                    work.push(slot);
                }
            }
        }
        for &slot in &work {
            if let Some(Some(e)) = self.slots.get_mut(slot) {
                e.out.flush(out);
                if e.out.has_pending() {
                    e.dirty = true;
                    self.dirty.push(slot);
                }
            }
        }
        self.scratch = work;
    }

    pub fn find(&self, path: &str) -> Option<usize> {
        self.by_path.get(path).copied()
    }

    /// Slots of every open file, in slot order (stable, unlike the map's).
    pub fn slots(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.by_path.values().copied().collect();
        v.sort_unstable();
        v
    }

    pub fn path(&self, slot: usize) -> Option<&str> {
        self.entry(slot).map(|e| e.path.as_str())
    }

    /// The real file name (path + suffix) currently open.
    pub fn name(&self, slot: usize) -> Option<&str> {
        self.entry(slot).map(|e| e.out.name())
    }

    pub fn stats(&self, slot: usize) -> Option<FileStats> {
        self.entry(slot).map(|e| e.out.stats())
    }

    /// Close the file in `slot` and open `name` in its place; returns the previous name.
    pub fn reopen(
        &mut self,
        slot: usize,
        name: String,
        out: &mut Outcomes,
    ) -> Result<String, String> {
        let mode = self.mode;
        let entry = self.entry_mut(slot).ok_or("flatstore: file is not open")?;
        entry.out.reopen(name, mode, out)
    }

    fn entry(&self, slot: usize) -> Option<&Entry> {
        self.slots.get(slot).and_then(Option::as_ref)
    }

    fn entry_mut(&mut self, slot: usize) -> Option<&mut Entry> {
        self.slots.get_mut(slot).and_then(Option::as_mut)
    }
}
