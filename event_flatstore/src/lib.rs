//! # event_flatstore: the `flatstore:` transport
//!
//! Appends one text line per event to a file: `EVENT,value1,value2\n` (OpenSIPS's
//! `event_flatstore` format, byte for byte, with its escaping defects fixed). Lines are buffered
//! and written once per batch of raises. See README.md for params, MI commands and differences.
//!
//! Layout: [`uri`] checks socket paths, [`line`](mod@line) formats a record, [`outfile`] owns
//! one file and its buffer, [`files`] shares files between sockets, [`store`] is the transport's
//! logic, and this file declares the module and forwards the SDK calls to [`Flatstore`].

pub mod config;
pub mod files;
pub mod line;
pub mod outfile;
pub mod store;
pub mod suffix;
pub mod uri;

#[cfg(test)]
mod abi_tests;
#[cfg(test)]
mod testutil;

pub use outfile::FileStats;
pub use store::{Flatstore, RotateError, Rotation, Socket};

use evi_sdk::{
    export_module, param, Delivery, Event, Host, MiError, MiParams, MiResult, Module, Param,
    Params, Raised, Transport, Value,
};

/// Raised after every rotation (MI or [`EventFlatstore::reopen_all`]).
pub const ROTATION_EVENT: &str = "E_FLATSTORE_ROTATION";

/// The module instance: the host handle plus the transport logic.
pub struct EventFlatstore {
    host: Host,
    store: Flatstore,
}

impl EventFlatstore {
    /// Reopen every open file (for SIGHUP / logrotate), re-evaluating the suffix, and raise
    /// `E_FLATSTORE_ROTATION` with `reason` for each. `Err` lists the files that could not be
    /// reopened (they keep writing to their current file).
    pub fn reopen_all(&mut self, reason: &str) -> Result<(), String> {
        let mut failed = Vec::new();
        let results = self.store.reopen_all();
        self.report();
        for result in results {
            match result {
                Ok(rotation) => self.announce(&rotation, reason),
                Err(e) => failed.push(e),
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }

    /// The transport logic (counters, open files).
    pub fn store(&self) -> &Flatstore {
        &self.store
    }

    /// Report every line whose write decided its outcome: written = delivered, else failed.
    fn report(&mut self) {
        let out = self.store.outcomes();
        if out.is_empty() {
            return;
        }
        for &d in &out.written {
            self.host.delivery_status(d, Ok(()));
        }
        for &(d, why) in &out.failed {
            let why = out
                .reasons
                .get(why)
                .map_or("flatstore: write failed", String::as_str);
            self.host.delivery_status(d, Err(why));
        }
        out.clear();
    }

    fn announce(&self, r: &Rotation, reason: &str) {
        let timestamp = r.timestamp.to_string();
        let params = [
            Param::named("timestamp", Value::Str(timestamp.as_bytes())),
            Param::named("reason", Value::Str(reason.as_bytes())),
            Param::named("filename", Value::Str(r.filename.as_bytes())),
            Param::named("old_filename", Value::Str(r.old_filename.as_bytes())),
        ];
        if let Err(e) = self.host.raise_event(ROTATION_EVENT, &params) {
            log::warn!(
                "flatstore: cannot raise {ROTATION_EVENT} for '{}': {e}",
                r.filename
            );
        }
    }

    fn mi_rotate(&mut self, params: &MiParams) -> MiResult {
        let path = params.str("path_to_file")?;
        let rotated = self.store.rotate(&path);
        self.report();
        match rotated {
            Ok(rotation) => {
                self.announce(&rotation, "mi");
                evi_sdk::mi_ok()
            }
            Err(RotateError::NotFound) => Err(MiError::new(400, "File not found")),
            Err(RotateError::Reopen(e)) => {
                Err(MiError::new(500, "Cannot reopen file").with_data(e))
            }
        }
    }
}

impl Module for EventFlatstore {
    fn init(host: Host, params: &Params) -> Result<Self, String> {
        Ok(EventFlatstore {
            host,
            store: Flatstore::new(params)?,
        })
    }

    fn destroy(&mut self) {
        self.store.flush();
        self.report();
    }

    fn flush(&mut self) {
        self.store.flush();
        self.report();
    }

    fn mi_command(&mut self, name: &str, params: &MiParams) -> MiResult {
        match name {
            "evi_flat_rotate" | "event_flatstore:rotate" => self.mi_rotate(params),
            "event_flatstore:reopen" => match self.reopen_all("reopen") {
                Ok(()) => evi_sdk::mi_ok(),
                Err(why) => Err(MiError::new(500, "Cannot reopen file").with_data(why)),
            },
            _ => Err(MiError::new(-32601, "Method not found").with_data(name.to_string())),
        }
    }
}

impl Transport for EventFlatstore {
    type Socket = Socket;

    fn parse(&mut self, _proto: &str, body: &str) -> Result<Socket, String> {
        self.store.parse(body, self.host.mi_file_root())
    }

    fn matches(&self, a: &Socket, b: &Socket) -> bool {
        Flatstore::matches(a, b)
    }

    fn print(&self, socket: &Socket, out: &mut String) {
        Flatstore::print(socket, out);
    }

    fn raise(
        &mut self,
        socket: &mut Socket,
        event: &Event<'_>,
        delivery: Delivery,
    ) -> Result<Raised, String> {
        // A line's outcome is known once it is written (after this batch, or now if the buffer
        // reached the write threshold): report what is decided, and answer Pending for this one.
        let taken = self.store.raise(socket, event, delivery);
        self.report();
        taken.map(|()| Raised::Pending)
    }

    fn free(&mut self, socket: &mut Socket) {
        self.store.free(socket);
        self.report();
    }
}

export_module! {
    module: EventFlatstore,
    name: "event_flatstore",
    doc: "flatstore: transport: appends one delimited text line per event to a file.",
    params: [
        param::int("max_open_sockets", config::DEFAULT_MAX_OPEN, 1, config::MAX_OPEN_LIMIT,
            "Most distinct files open at once; a subscription that needs one more fails"),
        param::str("delimiter", config::DEFAULT_DELIMITER,
            "Written before each value (any length, no CR or LF)"),
        param::str_unset("escape_delimiter",
            "Replaces the delimiter inside string values; unset = one space per delimiter character"),
        param::str("file_permissions", config::DEFAULT_PERMISSIONS,
            "Octal mode of created files (minus the umask); an invalid value stops start-up"),
        param::str_unset("suffix",
            "Appended to the path to form the file name: text, $time(strftime format), $Ts; re-evaluated at each rotation"),
        param::bool("suppress_event_name", false,
            "Do not write the event name; the line starts with the first value"),
    ],
    events: ["E_FLATSTORE_ROTATION"],
    mi: [
        "evi_flat_rotate" [["path_to_file"]]
            "Flush, close and reopen a subscribed file (path without suffix), re-evaluating the suffix",
        "event_flatstore:rotate" [["path_to_file"]]
            "Same as evi_flat_rotate",
        "event_flatstore:reopen" [[]]
            "Reopen every file (after logrotate); evid runs it on SIGHUP",
    ],
    transports: ["flatstore" (evi_sdk::EXPIRES | evi_sdk::ASYNC)],
}
