//! The event log (`--log-file`), for every role: one line per join, death, departure
//! or message, with a UTC timestamp, appended and flushed as it happens, so that a
//! crash loses nothing already written and `tail -f` follows the network.
//!
//! Lock order: the file mutex is a leaf.

use crate::clock;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// An append-only event log file, shared by the threads of one node.
pub struct EventLog {
    file: Mutex<File>,
}

impl EventLog {
    pub fn open(path: &Path) -> std::io::Result<EventLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(EventLog {
            file: Mutex::new(file),
        })
    }

    /// Appends `<timestamp> <kind> <text>`.
    pub fn write(&self, kind: &str, text: &str) {
        let line = format!("{} {kind} {text}\n", clock::utc_timestamp(clock::wall_ms()));
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = f.write_all(line.as_bytes()) {
            log::warn!("event log: {e}");
        }
    }
}
