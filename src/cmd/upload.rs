//! `p2pshare upload FILE --peer ADDR`: pushes a file to a peer that takes uploads,
//! with a progress bar for the hashing and the sending, and says how it ended.

use super::CmdError;
use crate::cli::UploadArgs;
use crate::console::BarProgress;
use crate::net::Timeouts;
use crate::peer::download::{KeptNotes, Progress};
use crate::peer::upload::push::{push, PushError};
use crate::protocol::name::{FileName, PeerId};
use crate::units::fmt_bytes;
use serde_json::json;

pub fn upload(a: UploadArgs) -> Result<(), CmdError> {
    let name_text = match &a.name {
        Some(n) => n.clone(),
        None => a
            .file
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                CmdError::usage(format!(
                    "{}: no file name to send it under (give one with --name)",
                    a.file.display()
                ))
            })?,
    };
    let name = FileName::parse(&name_text).map_err(|e| {
        CmdError::usage(format!(
            "'{name_text}': {e}; the peer takes plain names only (choose one with --name)"
        ))
    })?;
    let expect = match a.peer.key() {
        Some(k) => Some(PeerId::parse(k).map_err(|e| CmdError::usage(format!("--peer: {e}")))?),
        None => None,
    };
    let timeouts = Timeouts {
        connect: a.timeout,
        io: a.timeout,
    };
    let bar = BarProgress::new();
    let quiet = KeptNotes::default();
    let progress: &dyn Progress = if a.json { &quiet } else { &bar };
    let peer = a.peer.as_str();
    match push(
        peer,
        expect.as_ref(),
        None,
        &a.file,
        &name,
        timeouts,
        progress,
    ) {
        Ok(done) => {
            if a.json {
                println!(
                    "{}",
                    json!({
                        "filename": done.name.as_str(),
                        "status": done.status,
                        "id": done.id.to_string(),
                        "sha1": done.sha1.map(|s| s.to_string()),
                        "size": done.size,
                        "peer": peer,
                        "seconds": done.elapsed.as_secs_f64(),
                    })
                );
            } else if done.status == "exists" {
                println!(
                    "{peer} has {} already ({}, id {}): nothing to send",
                    done.name,
                    fmt_bytes(done.size),
                    done.id.short()
                );
            } else {
                println!(
                    "uploaded {} ({}, id {}) to {peer} in {:.1}s; it is shared there",
                    done.name,
                    fmt_bytes(done.size),
                    done.id.short(),
                    done.elapsed.as_secs_f64()
                );
            }
            Ok(())
        }
        Err(e) => Err(failure(&e, a.json)),
    }
}

/// A failed upload as the user reads it: the peer's reason and what to do about it;
/// with `--json`, one error object on stdout too.
fn failure(e: &PushError, json: bool) -> CmdError {
    let message = match e.hint() {
        Some(hint) => format!("{e}\n{hint}"),
        None => e.to_string(),
    };
    if !json {
        return CmdError::failed(message);
    }
    let code = e.refusal().map(|r| r.code.as_str());
    println!(
        "{}",
        json!({ "error": e.to_string(), "code": code, "hint": e.hint(), "exit_code": 1 })
    );
    CmdError::failed(message).reported()
}
