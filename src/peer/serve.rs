//! The peer's server side: piece lists, byte ranges and the classic download.
//!
//! Every file is reached through the [`Catalog`] (never by joining a wire name onto
//! a path) and opened without following a final symlink; before a byte is served the
//! open file is checked against the stamp taken when it was hashed, so a file that
//! changed since is refused instead of being served under a stale content id.

use super::catalog::{open_nofollow, FileStamp, SharedFile};
use super::PeerShared;
use crate::net::node::{self, status_reply};
use crate::net::rate::TokenBucket;
use crate::net::{Reply, Service};
use crate::overlay::runtime::{self, OverlayConn, OverlayHandle, SayError};
use crate::overlay::wire;
use crate::protocol::codec::{self, Classic, Request};
use crate::protocol::commands::{Role, Verb};
use crate::protocol::hash::Sha1Digest;
use crate::protocol::name::{FileName, PeerId};
use crate::protocol::{ErrorCode, Refusal, CHUNK_SIZE, MAX_FETCH};
use std::fs::File;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The peer's [`Service`].
pub struct PeerService {
    pub shared: Arc<PeerShared>,
    /// Shared limit on the bytes sent per second, if any (modern and classic alike).
    pub upload_limit: Option<Arc<TokenBucket>>,
    pub overlay: OverlayHandle,
    /// Where direct messages go (the console, or the log without one).
    pub events: crossbeam_channel::Sender<super::PeerEvent>,
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal::new(code, message)
}

/// Opens a shared file and checks it is still the file that was hashed.
fn open_checked(file: &SharedFile) -> Result<File, Refusal> {
    let f = open_nofollow(&file.path).map_err(|e| {
        refuse(
            ErrorCode::NotFound,
            format!("'{}' cannot be opened: {e}", file.name),
        )
    })?;
    let now = f
        .metadata()
        .map(|m| FileStamp::of(&m))
        .map_err(|e| refuse(ErrorCode::Internal, e.to_string()))?;
    if now != file.stamp {
        return Err(refuse(
            ErrorCode::UnknownId,
            format!("'{}' changed on disk since it was hashed", file.name),
        ));
    }
    Ok(f)
}

/// The rows of a peer's `status`, for the wire and the console alike.
pub fn status_rows(shared: &PeerShared, overlay: &OverlayHandle) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = shared
        .status_rows()
        .into_iter()
        .filter(|(k, _)| *k != "health")
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    rows.extend(shared.link_rows());
    let mut failing = shared.failing();
    match overlay.status(false) {
        Ok(o) => {
            rows.extend(
                [
                    ("peers", o.peers as u64),
                    ("neighbours", o.neighbours as u64),
                    ("passive", o.passive as u64),
                    ("suspects", o.suspects as u64),
                    ("incarnation", o.incarnation),
                    ("seeds_up", o.seeds_up as u64),
                    ("messages", o.said + o.heard),
                    ("messages_said", o.said),
                    ("messages_heard", o.heard),
                    ("messages_before_start", o.heard_before_start),
                    ("overlay_in", o.messages_in),
                    ("overlay_out", o.messages_out),
                ]
                .map(|(k, v)| (k.to_owned(), v.to_string())),
            );
        }
        Err(e) => failing = Some(format!("overlay: {e}")),
    }
    match failing {
        None => rows.push(("health".into(), "ok".into())),
        Some(why) => {
            rows.push(("health".into(), "failing".into()));
            rows.push(("failing".into(), codec::printable_field(&why)));
        }
    }
    rows
}

impl PeerService {
    fn lookup(&self, name: &str, id: &str) -> Result<SharedFile, Refusal> {
        let name = FileName::parse(name).map_err(|e| {
            refuse(
                ErrorCode::BadName,
                format!("'{}': {e}", codec::printable(name)),
            )
        })?;
        let id = Sha1Digest::parse(id)
            .map_err(|e| refuse(ErrorCode::BadRequest, format!("content id: {e}")))?;
        let catalog = self.shared.catalog();
        let file = catalog
            .get(name.as_str())
            .ok_or_else(|| refuse(ErrorCode::NotFound, format!("no shared file '{name}'")))?;
        if file.hashes.id != id {
            return Err(refuse(
                ErrorCode::UnknownId,
                format!("'{name}' here has content {}, not {id}", file.hashes.id),
            ));
        }
        Ok(file.clone())
    }

    fn pieces(&self, args: &[String]) -> Result<Reply, Refusal> {
        let file = self.lookup(&args[0], &args[1])?;
        let mut out = codec::data_header(file.hashes.pieces.len() as u64 * 20).into_bytes();
        for p in file.hashes.pieces.iter() {
            out.extend_from_slice(&p.0);
        }
        Ok(Reply::Bytes(out))
    }

    fn fetch(&self, args: &[String]) -> Result<Reply, Refusal> {
        let file = self.lookup(&args[0], &args[1])?;
        let number = |text: &str, what: &str| {
            text.parse::<u64>().map_err(|_| {
                refuse(
                    ErrorCode::BadRequest,
                    format!("{what} '{}' is not a number", codec::printable(text)),
                )
            })
        };
        let offset = number(&args[2], "offset")?;
        let len = number(&args[3], "length")?;
        let size = file.hashes.size;
        if len > MAX_FETCH {
            return Err(refuse(
                ErrorCode::TooLarge,
                format!("length {len} is over the cap of {MAX_FETCH}"),
            ));
        }
        if offset % CHUNK_SIZE != 0 {
            return Err(refuse(
                ErrorCode::BadRange,
                format!("offset {offset} is not a multiple of {CHUNK_SIZE}"),
            ));
        }
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= size)
            .ok_or_else(|| {
                refuse(
                    ErrorCode::BadRange,
                    format!(
                        "range {offset}+{len} is past the end of '{}' ({size} bytes)",
                        file.name
                    ),
                )
            })?;
        if len == 0 || (len % CHUNK_SIZE != 0 && end != size) {
            return Err(refuse(
                ErrorCode::BadRange,
                format!("length {len} must be a positive multiple of {CHUNK_SIZE}, or reach the end of the file"),
            ));
        }
        let f = open_checked(&file)?;
        self.shared.bytes_uploaded.fetch_add(len, Ordering::Relaxed);
        Ok(Reply::File {
            header: codec::data_header(len),
            file: f,
            offset,
            len,
            limit: self.upload_limit.clone(),
        })
    }
}

impl PeerService {
    fn status(&self) -> Reply {
        status_reply(&status_rows(&self.shared, &self.overlay))
    }

    fn say(&self, args: &[String]) -> Result<Reply, Refusal> {
        let text = wire::unescape_text(&args[0])?;
        if text.trim().is_empty() {
            return Err(refuse(ErrorCode::BadRequest, "nothing to say"));
        }
        let id = self.overlay.say(text).map_err(|e| match e {
            SayError::NotSent(why) => refuse(ErrorCode::NoNeighbours, why.to_string()),
            SayError::Unavailable(why) => refuse(ErrorCode::Internal, why),
        })?;
        Ok(Reply::Text(codec::line(&["ok", &id.to_string()])))
    }

    fn message(&self, args: &[String], remote: SocketAddr) -> Result<Reply, Refusal> {
        let from = PeerId::parse(&args[0]).map_err(|e| {
            refuse(
                ErrorCode::BadName,
                format!("sender '{}': {e}", codec::printable(&args[0])),
            )
        })?;
        let text = wire::unescape_text(&args[1])?;
        let now = crate::clock::wall_ms();
        let _ = self.events.send(super::PeerEvent::Message {
            from: from.to_string(),
            text,
            remote,
        });
        let reply = format!(
            "{} got your message at {}; hello, {from}",
            self.shared.id,
            crate::clock::utc_timestamp(now)
        );
        Ok(Reply::Text(codec::line(&[
            "ok",
            &wire::escape_text(&reply),
        ])))
    }
}

impl Service for PeerService {
    type Conn = OverlayConn;

    fn role(&self) -> Role {
        Role::Peer
    }

    fn handle(&self, req: Request, remote: SocketAddr, conn: &mut OverlayConn) -> Reply {
        let outcome = match req.verb {
            Verb::Hello => runtime::hello_from(&req.args, remote).map(|from| {
                conn.from = from;
                node::hello_reply("peer", self.shared.id.as_str(), remote, "0", "0")
            }),
            Verb::Ping => Ok(node::pong()),
            Verb::Status => Ok(self.status()),
            Verb::Pieces => self.pieces(&req.args),
            Verb::Fetch => self.fetch(&req.args),
            Verb::Say => self.say(&req.args),
            Verb::Msg => self.message(&req.args, remote),
            Verb::Members => self
                .overlay
                .status(true)
                .map(|s| runtime::members_reply(&s))
                .map_err(|e| refuse(ErrorCode::Internal, e)),
            _ => match runtime::overlay_request(&req, conn.from.as_ref(), &self.overlay) {
                Some(r) => r,
                None => Err(refuse(ErrorCode::UnknownVerb, "not served by a peer")),
            },
        };
        outcome.unwrap_or_else(|r| Reply::Text(r.to_line()))
    }

    fn classic(&self, req: Classic, remote: SocketAddr) -> Reply {
        let Classic::Download { name } = req else {
            return Reply::Close(String::new());
        };
        let found = FileName::parse(&name)
            .map_err(|e| e.to_string())
            .and_then(|n| {
                self.shared
                    .catalog()
                    .get(n.as_str())
                    .cloned()
                    .ok_or_else(|| "not shared here".to_owned())
            })
            .and_then(|file| {
                open_checked(&file)
                    .map(|f| (file, f))
                    .map_err(|r| r.message)
            });
        match found {
            Ok((file, f)) => {
                log::info!("classic download of '{}' by {remote}", file.name);
                self.shared
                    .bytes_uploaded
                    .fetch_add(file.hashes.size, Ordering::Relaxed);
                Reply::File {
                    header: String::new(),
                    file: f,
                    offset: 0,
                    len: file.hashes.size,
                    limit: self.upload_limit.clone(),
                }
            }
            Err(why) => {
                // The classic dialect has no error reply: close without a byte.
                log::warn!(
                    "classic request for '{}' from {remote} refused: {why}",
                    codec::printable(&name)
                );
                Reply::Close(String::new())
            }
        }
    }
}
