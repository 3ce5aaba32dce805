//! Index links: one `link-<addr>` thread per index server a peer knows, keeping a
//! persistent session there (hello, sync, heartbeats, publish and withdraw).
//!
//! Each link owns its connection; the rest of the peer talks to it through a
//! crossbeam channel. When the index is unreachable the link retries with backoff;
//! when it reconnects after a broken session or dropped commands, or the index says
//! it does not know the peer (a lease that ran out, an index that lost its state), the
//! link syncs the whole catalog again, so commands lost while it was down need no
//! replay. A batch the index answers `busy` (its publish rate per connection) is sent
//! again on the same session after a pause, so a large folder's sync slows down
//! rather than starting over.

use super::catalog::SharedFile;
use super::PeerEvent;
use super::PeerShared;
use crate::config::NodeAddr;
use crate::net::client::Client;
use crate::net::node::HelloRole;
use crate::net::{NetError, Timeouts};
use crate::protocol::codec;
use crate::protocol::name::{FileName, PeerId};
use crate::protocol::{ErrorCode, MAX_ROWS};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Longest wait for the initial scan before a link first connects; a larger folder
/// is published in batches as it is hashed.
pub const SCAN_GRACE: Duration = Duration::from_secs(3);

/// A change for the indexes.
#[derive(Clone, Debug)]
pub enum LinkCommand {
    Publish(Vec<SharedFile>),
    Withdraw(Vec<FileName>),
    /// Leave the index (files dropped at once) and stop the link.
    Leave,
}

/// What `status` shows of a link.
#[derive(Clone, Debug, Default)]
pub struct LinkState {
    pub index: String,
    pub connected: bool,
    pub files_known: usize,
    pub last_error: Option<String>,
}

/// The set of links of one peer.
pub struct Links {
    senders: Vec<Sender<LinkCommand>>,
    threads: Vec<JoinHandle<()>>,
}

/// How the links reach the indexes.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    pub listen_port: u16,
    pub timeouts: Timeouts,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
}

impl Links {
    /// Starts one link per index. Each waits (at most [`SCAN_GRACE`]) for `scan_gate`
    /// to close, so that a small folder is published whole in the first sync.
    pub fn start(
        indexes: &[NodeAddr],
        shared: Arc<PeerShared>,
        config: LinkConfig,
        events: Sender<PeerEvent>,
        scan_gate: Receiver<()>,
    ) -> std::io::Result<Links> {
        let mut senders = Vec::new();
        let mut threads = Vec::new();
        for (slot, addr) in indexes.iter().enumerate() {
            let (tx, rx) = crossbeam_channel::unbounded();
            let link = Link {
                addr: addr.to_string(),
                addr_key: addr.key().and_then(|k| PeerId::parse(k).ok()),
                slot,
                shared: shared.clone(),
                config: config.clone(),
                events: events.clone(),
                must_sync: true,
            };
            let gate = scan_gate.clone();
            threads.push(
                thread::Builder::new()
                    .name(format!("link-{addr}"))
                    .spawn(move || {
                        let _ = gate.recv_timeout(SCAN_GRACE);
                        link.run(rx)
                    })?,
            );
            senders.push(tx);
        }
        Ok(Links { senders, threads })
    }

    pub fn send(&self, cmd: LinkCommand) {
        self.publisher().send(cmd);
    }

    /// A handle other threads use to send commands to every link.
    pub fn publisher(&self) -> Publisher {
        Publisher {
            senders: self.senders.clone(),
        }
    }

    /// Says `bye` to every index (bounded by the link timeouts) and stops the links.
    pub fn leave(self) {
        self.send(LinkCommand::Leave);
        drop(self.senders);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Sends commands to every link of a peer.
#[derive(Clone)]
pub struct Publisher {
    senders: Vec<Sender<LinkCommand>>,
}

impl Publisher {
    pub fn send(&self, cmd: LinkCommand) {
        for tx in &self.senders {
            let _ = tx.send(cmd.clone());
        }
    }
}

struct Link {
    addr: String,
    /// The index's id, when the index list pins it: the index must answer with it.
    addr_key: Option<PeerId>,
    slot: usize,
    shared: Arc<PeerShared>,
    config: LinkConfig,
    events: Sender<PeerEvent>,
    /// Whether the next session must sync the whole catalog. The first session of this
    /// process always does (the index may remember an older file set from before a
    /// restart), and so does the first after changes were dropped while the index was
    /// unreachable: counting files is not enough, since a renamed or rewritten file
    /// leaves the count as it was.
    must_sync: bool,
}

struct Session {
    client: Client,
    beat_every: Duration,
    /// Heartbeats in a row whose file count differed from what this peer shares.
    miscounts: u32,
}

/// A `publish` or `sync` row: the whole-file SHA-1 is `-` unless this peer computed
/// it (a downloaded file has only what its pieces proved).
fn file_row(f: &SharedFile) -> String {
    let sha1 = f
        .hashes
        .sha1
        .map_or_else(|| "-".to_owned(), |d| d.to_string());
    codec::line(&[
        f.name.as_str(),
        &f.hashes.size.to_string(),
        &f.hashes.id.to_string(),
        &sha1,
    ])
}

/// Pauses before a batch answered `busy` is sent again: doubling from the first, and
/// given up (the session is reconnected) after the last.
const BUSY_PAUSES: [u64; 8] = [100, 200, 400, 800, 1600, 2000, 2000, 2000];

/// Sends one batch and reads its `ok`; a batch answered `err|busy` (the index's
/// publish rate) was not applied, so it is sent again after a pause.
fn send_batch(client: &mut Client, msg: &str, verb: &str) -> Result<Vec<String>, NetError> {
    let mut pauses = BUSY_PAUSES.iter();
    loop {
        client.send(msg.as_bytes(), verb)?;
        match client.read_ok(verb) {
            Err(e) if e.refusal().is_some_and(|r| r.code == ErrorCode::Busy) => {
                let Some(&ms) = pauses.next() else {
                    return Err(e);
                };
                log::debug!("{e}; sending the batch again in {ms} ms");
                thread::sleep(Duration::from_millis(ms));
            }
            other => return other,
        }
    }
}

impl Link {
    fn set_state(&self, f: impl FnOnce(&mut LinkState)) {
        let mut states = self.shared.links.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut states[self.slot]);
    }

    fn run(mut self, rx: Receiver<LinkCommand>) {
        let mut backoff = Duration::from_millis(250);
        let mut reported_down = false;
        loop {
            let session = match self.open() {
                Ok(s) => {
                    backoff = Duration::from_millis(250);
                    s
                }
                Err(e) => {
                    // Every message about a link names its index already.
                    let reason = e.without_addr();
                    self.set_state(|s| {
                        s.connected = false;
                        s.last_error = Some(reason.clone());
                    });
                    if !reported_down {
                        log::warn!("index {}: {reason}; retrying", self.addr);
                        let _ = self.events.send(PeerEvent::IndexDown {
                            index: self.addr.clone(),
                            reason,
                        });
                        reported_down = true;
                    }
                    // Commands that arrive while down are covered by the sync on
                    // reconnection; only Leave matters.
                    match rx.recv_timeout(backoff) {
                        Ok(LinkCommand::Leave) | Err(RecvTimeoutError::Disconnected) => return,
                        Ok(_) => self.must_sync = true,
                        Err(RecvTimeoutError::Timeout) => {}
                    }
                    backoff = (backoff * 2).min(self.config.max_backoff);
                    continue;
                }
            };
            match self.serve(session, &rx) {
                Ok(()) => return, // left
                Err(e) => {
                    // A change in flight may or may not have reached the index.
                    self.must_sync = true;
                    let reason = e.without_addr();
                    log::warn!("index {}: {reason}; reconnecting", self.addr);
                    self.set_state(|s| {
                        s.connected = false;
                        s.last_error = Some(reason.clone());
                    });
                    let _ = self.events.send(PeerEvent::IndexDown {
                        index: self.addr.clone(),
                        reason,
                    });
                    // Reported now; the reconnection attempts stay quiet.
                    reported_down = true;
                }
            }
        }
    }

    /// Connects, says hello, and syncs when the index's view may differ from ours.
    fn open(&mut self) -> Result<Session, NetError> {
        let mut client = Client::connect(&self.addr, &self.config.timeouts)?;
        let expect = self.addr_key.clone();
        let hello = client.hello(
            Some(&self.shared.me),
            HelloRole::Peer,
            self.config.listen_port,
            expect.as_ref(),
        )?;
        let local = self.shared.catalog().len();
        let files = if self.must_sync || hello.files_known as usize != local {
            let n = self.sync(&mut client)?;
            self.must_sync = false;
            n
        } else {
            local
        };
        self.set_state(|s| {
            s.connected = true;
            s.files_known = files;
            s.last_error = None;
        });
        log::info!(
            "index {}: session open, {} published",
            self.addr,
            crate::units::plural(files as u64, "file")
        );
        let _ = self.events.send(PeerEvent::IndexUp {
            index: self.addr.clone(),
            files,
        });
        let lease = Duration::from_secs(hello.lease_secs.max(1));
        Ok(Session {
            client,
            miscounts: 0,
            beat_every: lease / 3,
        })
    }

    /// Replaces the index's view of our files with the catalog, in batches.
    fn sync(&self, client: &mut Client) -> Result<usize, NetError> {
        let rows: Vec<String> = self.shared.catalog().iter().map(file_row).collect();
        let batches: Vec<&[String]> = if rows.is_empty() {
            vec![&[]]
        } else {
            rows.chunks(MAX_ROWS).collect()
        };
        let last = batches.len() - 1;
        let mut known = 0;
        for (i, batch) in batches.into_iter().enumerate() {
            let mut msg = if i == last {
                codec::line(&["sync", &batch.len().to_string()])
            } else {
                codec::line(&["sync", &batch.len().to_string(), "more"])
            };
            for r in batch {
                msg.push_str(r);
            }
            let reply = send_batch(client, &msg, "sync")?;
            if i == last {
                known = reply.first().and_then(|n| n.parse().ok()).unwrap_or(0);
            }
        }
        Ok(known)
    }

    /// The index's file count, from a heartbeat, against what this peer shares: two
    /// heartbeats in a row that disagree (never a change in flight) mean the index's
    /// view drifted, and the session starts over with a full sync.
    fn check_count(&mut self, session: &mut Session, known: usize) -> Result<(), NetError> {
        if known == self.shared.catalog().len() {
            session.miscounts = 0;
            return Ok(());
        }
        session.miscounts += 1;
        if session.miscounts < 2 {
            return Ok(());
        }
        log::warn!(
            "index {} holds {known} files for this peer, not {}: syncing again",
            self.addr,
            self.shared.catalog().len()
        );
        self.must_sync = true;
        Err(NetError::Protocol {
            addr: self.addr.clone(),
            verb: "beat".into(),
            message: format!("the index holds {known} files for this peer"),
        })
    }

    fn serve(&mut self, mut session: Session, rx: &Receiver<LinkCommand>) -> Result<(), NetError> {
        let mut next_beat = Instant::now() + session.beat_every;
        loop {
            let wait = next_beat.saturating_duration_since(Instant::now());
            let outcome = match rx.recv_timeout(wait) {
                Ok(LinkCommand::Publish(files)) => self.batch(
                    &mut session.client,
                    "publish",
                    files.iter().map(file_row).collect(),
                ),
                Ok(LinkCommand::Withdraw(names)) => self.batch(
                    &mut session.client,
                    "withdraw",
                    names.iter().map(|n| codec::line(&[n.as_str()])).collect(),
                ),
                Ok(LinkCommand::Leave) | Err(RecvTimeoutError::Disconnected) => {
                    let _ = session.client.call(&["bye"]);
                    self.set_state(|s| s.connected = false);
                    return Ok(());
                }
                Err(RecvTimeoutError::Timeout) => {
                    next_beat = Instant::now() + session.beat_every;
                    match session.client.call(&["beat"]) {
                        Ok(f) => {
                            let known = f.first().and_then(|n| n.parse().ok()).unwrap_or(0);
                            self.set_state(|s| s.files_known = known);
                            self.check_count(&mut session, known)
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            match outcome {
                Ok(()) => {}
                Err(e)
                    if e.refusal()
                        .is_some_and(|r| r.code == ErrorCode::UnknownPeer) =>
                {
                    // The index forgot us (lease ran out, or it lost its state):
                    // start over with a fresh hello and a full sync.
                    log::info!(
                        "index {} does not know this peer any more; re-publishing",
                        self.addr
                    );
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn batch(&self, client: &mut Client, verb: &str, rows: Vec<String>) -> Result<(), NetError> {
        for chunk in rows.chunks(MAX_ROWS) {
            let mut msg = codec::line(&[verb, &chunk.len().to_string()]);
            for r in chunk {
                msg.push_str(r);
            }
            send_batch(client, &msg, verb)?;
        }
        let known = self.shared.catalog().len();
        self.set_state(|s| s.files_known = known);
        Ok(())
    }
}
