//! The `upload` verb (docs/PROTOCOL.md): the request names the file, its size and its
//! content id; the peer answers `ok|send|<size>` (or refuses, or `ok|exists|...` when
//! it has that content under that name already), the client sends exactly the bytes,
//! and the peer answers once they are proven and placed.

use super::{Begun, Offer, Outcome, Placed, Promise, Receiver, UploadError, Uploads};
use crate::net::{PayloadSink, Reply};
use crate::overlay::runtime::OverlayConn;
use crate::protocol::codec;
use crate::protocol::hash::Sha1Digest;
use crate::protocol::Refusal;
use std::net::SocketAddr;
use std::sync::Arc;

/// `upload|<name>|<size>|<content-id>` on a connection whose session `conn` holds.
pub fn request(
    uploads: &Arc<Uploads>,
    args: &[&str],
    remote: SocketAddr,
    conn: &OverlayConn,
) -> Result<Reply, Refusal> {
    let refuse = |e: UploadError| {
        let e = uploads.refused(e, remote);
        Refusal::new(e.code(), e.to_string())
    };
    if !uploads.allowed() {
        return Err(refuse(UploadError::NotAllowed));
    }
    // The hello names the protocol version, and with it what a content id means.
    let Some(name) = &conn.name else {
        return Err(refuse(UploadError::Malformed(
            "'upload' needs a session: say hello first (as a client, or as a peer with auth)"
                .into(),
        )));
    };
    let who = match &conn.from {
        Some(sender) => format!("{name}, id {}", sender.id),
        None => format!("'{name}', a client"),
    };
    let size = crate::protocol::decimal::<u64>(args[1]).ok_or_else(|| {
        refuse(UploadError::Malformed(format!(
            "size '{}' is not a number",
            codec::printable(args[1])
        )))
    })?;
    let id = Sha1Digest::parse(args[2])
        .map_err(|e| refuse(UploadError::Malformed(format!("content id: {e}"))))?;
    let offer = Offer {
        name: args[0].to_owned(),
        size: Some(size),
        at_most: None,
        promise: Promise::ContentId(id),
        from: remote,
        who,
    };
    match uploads.begin(offer) {
        Err(e) => Err(Refusal::new(e.code(), e.to_string())),
        Ok(Begun::Exists(placed)) => Ok(Reply::Text(done("exists", &placed))),
        Ok(Begun::Receiving(receiver)) => Ok(Reply::Receive {
            header: codec::line(&["ok", "send", &size.to_string()]),
            len: size,
            sink: Box::new(Sink(receiver)),
        }),
    }
}

/// `ok|<status>|<name>|<content-id>|<sha1>`.
fn done(status: &str, placed: &Placed) -> String {
    let sha1 = placed
        .hashes
        .sha1
        .map_or_else(|| "-".to_owned(), |s| s.to_string());
    codec::line(&[
        "ok",
        status,
        placed.name.as_str(),
        &placed.hashes.id.to_string(),
        &sha1,
    ])
}

/// The bytes of an `upload`, as the server hands them over.
struct Sink(Receiver);

impl PayloadSink for Sink {
    fn write(&mut self, bytes: &[u8]) -> Result<(), Refusal> {
        self.0
            .write(bytes)
            .map_err(|e| Refusal::new(e.code(), e.to_string()))
    }

    fn finish(self: Box<Self>) -> Reply {
        Reply::Text(match self.0.finish() {
            Ok(Outcome::Uploaded(placed)) => done("uploaded", &placed),
            Ok(Outcome::Exists(placed)) => done("exists", &placed),
            Err(e) => Refusal::new(e.code(), e.to_string()).to_line(),
        })
    }
}
