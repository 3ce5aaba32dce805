//! The peer's server side: piece lists, byte ranges and the classic download.
//!
//! Every file is reached through the [`Catalog`] (never by joining a wire name onto
//! a path) and opened without following a final symlink; before a byte is served the
//! open file is checked against the stamp taken when it was hashed, so a file that
//! changed since is refused instead of being served under a stale content id.

use super::catalog::{open_nofollow, FileStamp, SharedFile};
use super::PeerShared;
use crate::eventlog::EventLog;
use crate::net::node::{self, status_reply};
use crate::net::rate::TokenBucket;
use crate::net::{Reply, Service};
use crate::overlay::runtime::{self, OverlayConn, OverlayHandle, SayError};
use crate::overlay::wire;
use crate::protocol::codec::{self, Classic, Request};
use crate::protocol::commands::{Role, Verb};
use crate::protocol::hash::Sha1Digest;
use crate::protocol::name::FileName;
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
    /// Files pushed to this peer (refused unless it allows them).
    pub uploads: Arc<super::upload::Uploads>,
    /// The event log (`--log-file`), where direct messages are written too.
    pub log: Option<Arc<EventLog>>,
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal::new(code, message)
}

/// Opens a shared file and checks it is still the file that was hashed.
pub(crate) fn open_checked(file: &SharedFile) -> Result<File, Refusal> {
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
    if let Some(d) = shared.dht.get() {
        let (table, estimate) = d.size();
        let (mutable, immutable, announces, _) = d.held_counts();
        let (requests, limited) = d.requests();
        rows.extend(
            [
                ("dht_addr", d.local_addr().to_string()),
                ("dht_nodes", table.to_string()),
                ("dht_size_estimate", estimate.to_string()),
                ("dht_announces", announces.to_string()),
                ("dht_items_held", (mutable + immutable).to_string()),
                ("dht_requests", requests.to_string()),
                ("dht_requests_limited", limited.to_string()),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
    }
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
                    ("messages_dropped_rate", o.dropped_rate),
                    ("messages_dropped_signature", o.dropped_signature),
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

    /// `have|NAME`: the size, content id and whole-file SHA-1 (`-` when unknown) of
    /// the file shared under NAME.
    fn have(&self, args: &[&str]) -> Result<Reply, Refusal> {
        let name = FileName::parse(args[0]).map_err(|e| {
            refuse(
                ErrorCode::BadName,
                format!("'{}': {e}", codec::printable(args[0])),
            )
        })?;
        let catalog = self.shared.catalog();
        let file = catalog
            .get(name.as_str())
            .ok_or_else(|| refuse(ErrorCode::NotFound, format!("no shared file '{name}'")))?;
        let sha1 = file
            .hashes
            .sha1
            .map_or_else(|| "-".to_owned(), |d| d.to_string());
        Ok(Reply::Text(codec::line(&[
            "ok",
            &file.hashes.size.to_string(),
            &file.hashes.id.to_string(),
            &sha1,
        ])))
    }

    fn pieces(&self, args: &[&str]) -> Result<Reply, Refusal> {
        let file = self.lookup(args[0], args[1])?;
        let mut out = codec::data_header(file.hashes.pieces.len() as u64 * 20).into_bytes();
        for p in file.hashes.pieces.iter() {
            out.extend_from_slice(&p.0);
        }
        Ok(Reply::Bytes(out))
    }

    fn fetch(&self, args: &[&str]) -> Result<Reply, Refusal> {
        let file = self.lookup(args[0], args[1])?;
        let number = |text: &str, what: &str| {
            crate::protocol::decimal::<u64>(text).ok_or_else(|| {
                refuse(
                    ErrorCode::BadRequest,
                    format!("{what} '{}' is not a number", codec::printable(text)),
                )
            })
        };
        let offset = number(args[2], "offset")?;
        let len = number(args[3], "length")?;
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

    fn say(&self, args: &[&str]) -> Result<Reply, Refusal> {
        let text = wire::unescape_text(args[0])?;
        if text.trim().is_empty() {
            return Err(refuse(ErrorCode::BadRequest, "nothing to say"));
        }
        let id = self.overlay.say(text).map_err(|e| match e {
            SayError::NotSent(why) => refuse(ErrorCode::NoNeighbours, why.to_string()),
            SayError::Unavailable(why) => refuse(ErrorCode::Internal, why),
        })?;
        Ok(Reply::Text(codec::line(&["ok", &id.to_string()])))
    }

    /// `msg|<text>`: a direct message from the connection's sender, whose key its
    /// `auth` proved; the console shows its name and short id.
    fn message(
        &self,
        args: &[&str],
        remote: SocketAddr,
        conn: &OverlayConn,
    ) -> Result<Reply, Refusal> {
        let (Some(from), Some(name)) = (&conn.from, &conn.name) else {
            return Err(refuse(
                ErrorCode::UnknownPeer,
                "'msg' needs a session: say hello as a peer, and auth, first",
            ));
        };
        let text = wire::unescape_text(args[0])?;
        let now = crate::clock::wall_ms();
        if let Some(l) = &self.log {
            l.write(
                "direct-message",
                &format!(
                    "from={} name={name} addr={remote} text={}",
                    from.id,
                    wire::escape_text(&text)
                ),
            );
        }
        self.shared.remember(super::Recent {
            kind: "message",
            from: name.to_string(),
            id: Some(from.id.to_string()),
            text: text.clone(),
            at_ms: now,
        });
        let _ = self.events.send(super::PeerEvent::Message {
            from: name.to_string(),
            id: from.id.clone(),
            text,
            remote,
        });
        let reply = format!(
            "{} got your message at {}; hello, {name}",
            self.shared.me.name,
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
            Verb::Hello => runtime::hello(&self.shared.me, "peer", &req.args, remote, conn),
            Verb::Auth => runtime::auth(
                &self.shared.me,
                &req.args,
                remote,
                conn,
                self.overlay.seed_keys(),
            ),
            Verb::Ping => Ok(node::pong()),
            Verb::Status => Ok(self.status()),
            Verb::Pieces => self.pieces(&req.args),
            Verb::Fetch => self.fetch(&req.args),
            Verb::Have => self.have(&req.args),
            Verb::Upload => super::upload::wire::request(&self.uploads, &req.args, remote, conn),
            Verb::Say => self.say(&req.args),
            Verb::Msg => self.message(&req.args, remote, conn),
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

/// The service without a socket: requests decoded from their wire text, a catalog
/// holding one file in a temporary folder, and no overlay core (its inbox is dropped,
/// so whatever goes to the core is refused at once instead of waiting).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::node::HelloRole;
    use crate::net::server::ServerStats;
    use crate::net::testing::{status_rows, test_id, test_me, Session};
    use crate::peer::catalog::hash_file;
    use crate::peer::PeerEvent;
    use crossbeam_channel::Receiver;

    struct Fixture {
        service: PeerService,
        events: Receiver<PeerEvent>,
        /// The content of `shared.bin`, and its content id.
        data: Vec<u8>,
        id: Sha1Digest,
        dir: tempfile::TempDir,
    }

    /// A peer `me` sharing `shared.bin`: 10 000 bytes, so one piece of two full
    /// chunks and a short one.
    fn peer() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let path = dir.path().join("shared.bin");
        std::fs::write(&path, &data).unwrap();
        let (stamp, hashes) = hash_file(&path).unwrap();
        let id = hashes.id;
        let shared = Arc::new(PeerShared::new(
            test_me("me"),
            Arc::new(ServerStats::default()),
            &[],
        ));
        shared.catalog_mut().insert(SharedFile {
            name: FileName::parse("shared.bin").unwrap(),
            path,
            stamp,
            hashes,
        });
        let (overlay, _inbox) = OverlayHandle::channel(&[]).unwrap();
        let (events_tx, events) = crossbeam_channel::unbounded();
        let uploads = Arc::new(crate::peer::upload::Uploads::new(
            crate::peer::upload::UploadConfig::default(),
            shared.clone(),
            dir.path(),
            &dir.path().join(".p2pshare"),
            None,
        ));
        Fixture {
            service: PeerService {
                shared,
                upload_limit: None,
                overlay,
                events: events_tx,
                uploads,
                log: Some(Arc::new(
                    EventLog::open(&dir.path().join("events.log")).unwrap(),
                )),
            },
            events,
            data,
            id,
            dir,
        }
    }

    #[test]
    fn hello_ping_and_status_answer_in_the_documented_shapes() {
        let f = peer();
        let mut s = Session::new(&f.service);
        assert_eq!(s.ask("ping"), "ok|pong\n");
        let me = test_id("me");
        assert!(s
            .hello_as(HelloRole::Client, "probe", 0)
            .starts_with(&format!("ok|peer|{me}|me|127.0.0.1|")));
        assert_eq!(s.hello_as(HelloRole::Peer, "p1", 2001), "ok|0|0\n");
        assert!(s
            .ask("hello|1|peer|p1|2001")
            .starts_with("err|bad-version|"));
        let (p1, nonce) = (test_id("p1"), "ab".repeat(16));
        assert!(s
            .ask(&format!("hello|3|peer|../x|2001|x|{nonce}"))
            .starts_with("err|bad-name|"));
        assert!(s
            .ask(&format!("hello|3|peer|{p1}|0|p1|{nonce}"))
            .starts_with("err|bad-request|"));
        // Peers hear from peers, seeds and clients; no other role is taken.
        for role in ["index", "server"] {
            assert_eq!(
                s.ask(&format!("hello|3|{role}|{p1}|2001|x|{nonce}")),
                format!("err|bad-request|role must be 'peer', 'seed' or 'client', not '{role}'\n")
            );
        }
        assert_eq!(s.hello_as(HelloRole::Seed, "s1", 1500), "ok|0|0\n");
        let rows = status_rows(&s.ask("status"));
        for (key, value) in [
            ("role", "peer"),
            ("id", me.as_str()),
            ("name", "me"),
            ("protocol", "3"),
            ("files", "1"),
            ("bytes_shared", "10000"),
            ("bytes_uploaded", "0"),
            ("indexes", "0"),
            // The overlay thread does not answer: the peer says so.
            ("health", "failing"),
        ] {
            assert_eq!(rows[key], value, "{key}: {rows:?}");
        }
        assert!(rows["failing"].starts_with("overlay: "), "{rows:?}");
    }

    #[test]
    fn pieces_and_fetch_serve_the_shared_file_and_its_ranges() {
        let f = peer();
        let mut s = Session::new(&f.service);
        let id = f.id;
        // One piece: its hash is the whole file's, and the content id is the SHA-1 of
        // that hash (the digest of a one-piece list).
        let piece = Sha1Digest::of(&f.data);
        assert_eq!(id, Sha1Digest::of(&piece.0));
        let mut list = b"data|20\n".to_vec();
        list.extend_from_slice(&piece.0);
        assert_eq!(s.ask_bytes(&format!("pieces|shared.bin|{id}")), list);
        let mut first = b"data|4096\n".to_vec();
        first.extend_from_slice(&f.data[..4096]);
        assert_eq!(s.ask_bytes(&format!("fetch|shared.bin|{id}|0|4096")), first);
        // The last range may be short when it reaches the end of the file.
        let mut last = b"data|1808\n".to_vec();
        last.extend_from_slice(&f.data[8192..]);
        assert_eq!(
            s.ask_bytes(&format!("fetch|shared.bin|{id}|8192|1808")),
            last
        );
        let rows = status_rows(&s.ask("status"));
        assert_eq!(rows["bytes_uploaded"], (4096 + 1808).to_string());
    }

    #[test]
    fn pieces_and_fetch_refuse_unknown_names_other_content_and_bad_ranges() {
        let f = peer();
        let mut s = Session::new(&f.service);
        let id = f.id;
        let other = Sha1Digest::of(b"other");
        for verb in ["pieces", "fetch"] {
            let tail = if verb == "fetch" { "|0|4096" } else { "" };
            let ask = |s: &mut Session<'_, PeerService>, name: &str, id: &str| {
                s.ask(&format!("{verb}|{name}|{id}{tail}"))
            };
            assert_eq!(
                ask(&mut s, "nope.bin", &id.to_string()),
                "err|not-found|no shared file 'nope.bin'\n"
            );
            assert!(ask(&mut s, "../shared.bin", &id.to_string()).starts_with("err|bad-name|"));
            assert!(ask(&mut s, ".p2pshare", &id.to_string()).starts_with("err|bad-name|"));
            assert!(ask(&mut s, "shared.bin", &other.to_string())
                .starts_with("err|unknown-id|'shared.bin' here has content"));
            // The whole-file SHA-1 is an attribute, not the id.
            let whole = Sha1Digest::of(&f.data).to_string();
            assert!(ask(&mut s, "shared.bin", &whole).starts_with("err|unknown-id|"));
            assert!(ask(&mut s, "shared.bin", "md5:abc").starts_with("err|bad-request|content id"));
        }
        let fetch = |s: &mut Session<'_, PeerService>, range: &str| {
            s.ask(&format!("fetch|shared.bin|{id}|{range}"))
        };
        assert!(fetch(&mut s, "100|4096").starts_with("err|bad-range|offset 100"));
        assert!(fetch(&mut s, "0|100").starts_with("err|bad-range|length 100"));
        assert!(fetch(&mut s, "0|0").starts_with("err|bad-range|"));
        assert!(fetch(&mut s, "8192|4096").starts_with("err|bad-range|range 8192+4096"));
        assert!(fetch(&mut s, "0|999999999").starts_with("err|too-large|"));
        assert!(fetch(&mut s, "x|4096").starts_with("err|bad-request|offset 'x'"));
        let rows = status_rows(&s.ask("status"));
        assert_eq!(rows["bytes_uploaded"], "0");
    }

    #[test]
    fn what_needs_the_overlay_is_refused_at_once_when_it_does_not_answer() {
        let f = peer();
        let mut s = Session::new(&f.service);
        let started = std::time::Instant::now();
        assert_eq!(
            s.ask("members"),
            "err|internal|the overlay is not responding\n"
        );
        assert!(s
            .ask("say|anyone there?")
            .starts_with("err|internal|the overlay is not responding"));
        assert!(s
            .ask("say|%20")
            .starts_with("err|bad-request|nothing to say"));
        // Overlay messages need a session first; then they go to the core.
        assert!(s.ask("probe|1").starts_with("err|unknown-peer|"));
        assert_eq!(s.hello_as(HelloRole::Peer, "p1", 2001), "ok|0|0\n");
        assert_eq!(s.ask("probe|1"), "err|internal|the overlay has stopped\n");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // What only an index serves is refused by the peer.
        assert_eq!(s.ask("get|x"), "err|unknown-verb|not served by a peer\n");
        assert_eq!(s.ask("search|x"), "err|unknown-verb|not served by a peer\n");
    }

    #[test]
    fn a_direct_message_is_answered_and_handed_to_the_console() {
        let f = peer();
        let mut s = Session::new(&f.service);
        // A message needs a session whose key is proven: its sender is that key.
        assert!(s.ask("msg|hi").starts_with("err|unknown-peer|"));
        assert_eq!(s.hello_as(HelloRole::Peer, "p1", 2001), "ok|0|0\n");
        let reply = s.ask("msg|hello %7C there");
        assert!(
            reply.starts_with("ok|me got your message at ") && reply.ends_with("; hello, p1\n"),
            "{reply}"
        );
        match f.events.try_recv() {
            Ok(PeerEvent::Message {
                from,
                id,
                text,
                remote,
            }) => {
                assert_eq!((from.as_str(), text.as_str()), ("p1", "hello | there"));
                assert_eq!(id, test_id("p1"));
                assert_eq!(remote, "127.0.0.1:40000".parse().unwrap());
            }
            other => panic!("expected the message, got {other:?}"),
        }
        assert!(s.ask("msg|bad %zz").starts_with("err|bad-request|"));
        assert!(f.events.try_recv().is_err());
        // And written to the event log, once, with the sender's proven id.
        let log = std::fs::read_to_string(f.dir.path().join("events.log")).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 1, "{log}");
        assert!(
            lines[0].ends_with(&format!(
                " direct-message from={} name=p1 addr=127.0.0.1:40000 text=hello %7C there",
                test_id("p1")
            )),
            "{log}"
        );
    }
}
