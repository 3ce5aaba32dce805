//! The index service: decoded requests in, replies out, around one [`IndexStore`].
//!
//! Threads: the server's connection threads call [`IndexService::handle`]; one
//! `index-sweep` thread expires lapsed leases every second.
//!
//! Locks: the store sits behind one `RwLock`. Reads (`get`, `search`, `status`) share
//! it; writes (`hello`, `publish`, ...) take it briefly. No I/O happens under it.

use super::durable::{Change, DbError, Durable, Restored, Ticket};
use super::quota::Quotas;
use super::search::Query;
use super::store::{Endpoint, FileMeta, IndexStore, PeerKind, StoreError};
use crate::clock::Clock;
use crate::metrics;
use crate::net::node::{self, HelloRole, Me};
use crate::net::server::ServerStats;
use crate::net::{Reply, Service};
use crate::protocol::codec::{self, Classic, Request};
use crate::protocol::commands::{Role, Verb};
use crate::protocol::hash::Sha1Digest;
use crate::protocol::name::{FileName, PeerId};
use crate::protocol::{ErrorCode, Refusal, MAX_FILE_SIZE, VERSION};
use rand::seq::SliceRandom;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::Duration;

/// Limits and timings of an index server.
#[derive(Clone, Debug)]
pub struct IndexConfig {
    /// A modern peer that does not beat for this long is dropped with its files.
    pub lease: Duration,
    /// Classic peers cannot beat; each `set` renews their entries for this long.
    pub classic_lease: Duration,
    /// Search results returned when the client names no limit.
    pub default_results: usize,
    /// Largest limit a client may ask for.
    pub max_results: usize,
    /// Most holders returned by one `get`.
    pub max_holders: usize,
    /// Most files one peer id may hold (`--max-files-per-peer`).
    pub max_files_per_peer: usize,
    /// Most files the peer ids of one address may hold together
    /// (`--max-files-per-address`; an IPv6 /64 counts as one address).
    pub max_files_per_address: usize,
    /// Most peer ids registered at once from one source address
    /// (`--max-peers-per-address`).
    pub max_peers_per_address: usize,
    /// Rows (published, synced or withdrawn) one peer id may send per second, over all
    /// its connections, and how many it may send at once after a rest
    /// (`--publish-rate`; the burst is twice that).
    pub publish_rate: u64,
    pub publish_burst: u64,
    /// The same over every peer id of one source address (an IPv6 /64 counts as one)
    /// (`--publish-rate-per-address`; the burst is twice that).
    pub address_rate: u64,
    pub address_burst: u64,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            lease: Duration::from_secs(30),
            classic_lease: Duration::from_secs(600),
            default_results: 100,
            max_results: 1000,
            max_holders: 200,
            max_files_per_peer: 100_000,
            max_files_per_address: 1_000_000,
            max_peers_per_address: 64,
            publish_rate: 100_000,
            publish_burst: 200_000,
            address_rate: 400_000,
            address_burst: 800_000,
        }
    }
}

/// Per-connection state: the peer that said hello and an open `sync`.
#[derive(Default)]
pub struct IndexConn {
    /// A `hello` as a peer waiting for its `auth`.
    pending: Option<node::Pending>,
    peer: Option<PeerId>,
    sync_seen: Option<HashSet<String>>,
}

pub struct IndexService {
    me: Me,
    store: RwLock<IndexStore>,
    clock: Clock,
    config: IndexConfig,
    stats: Arc<ServerStats>,
    /// Where changes are logged; `None` for a throwaway index (`--db :memory:`).
    durable: Option<Durable>,
    /// The event log (`--log-file`): joins, departures, expired leases.
    events: Option<Arc<crate::eventlog::EventLog>>,
    /// What one peer or one address may make the index hold and do.
    quotas: Quotas,
}

/// What a verb's handler answers: a reply, or a refusal sent back as `err|...`.
type Answer = Result<Reply, Refusal>;

fn refuse(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal::new(code, message)
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        let code = match e {
            StoreError::Conflict { .. } => ErrorCode::Conflict,
            StoreError::UnknownPeer(_) => ErrorCode::UnknownPeer,
            StoreError::Full => ErrorCode::TooLarge,
        };
        Refusal::new(code, e.to_string())
    }
}

fn parse_name(text: &str, row: Option<usize>) -> Result<FileName, Refusal> {
    FileName::parse(text).map_err(|e| {
        let at = row.map(|r| format!("row {r}: ")).unwrap_or_default();
        refuse(
            ErrorCode::BadName,
            format!("{at}'{}': {e}", codec::printable(text)),
        )
    })
}

fn parse_file_row(row: &[&str], n: usize) -> Result<(FileName, FileMeta), Refusal> {
    let name = parse_name(row[0], Some(n))?;
    let size: u64 = crate::protocol::decimal(row[1]).ok_or_else(|| {
        refuse(
            ErrorCode::BadRequest,
            format!(
                "row {n}: size '{}' is not a number",
                codec::printable(row[1])
            ),
        )
    })?;
    if size > MAX_FILE_SIZE {
        return Err(refuse(
            ErrorCode::TooLarge,
            format!("row {n}: {size} bytes is over the limit of {MAX_FILE_SIZE}"),
        ));
    }
    let hash = |text: &str, what: &str| {
        Sha1Digest::parse(text)
            .map_err(|e| refuse(ErrorCode::BadRequest, format!("row {n}: {what}: {e}")))
    };
    let id = hash(row[2], "content id")?;
    // The whole-file SHA-1 is the publisher's claim, `-` when it has none.
    let sha1 = match row[3] {
        "-" => None,
        text => Some(hash(text, "sha1")?),
    };
    Ok((
        name,
        FileMeta {
            size: Some(size),
            id: Some(id),
            sha1,
        },
    ))
}

fn opt_field<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".to_owned())
}

impl IndexService {
    pub fn new(me: Me, config: IndexConfig, stats: Arc<ServerStats>) -> IndexService {
        IndexService {
            me,
            store: RwLock::new(IndexStore::new()),
            clock: Clock::new(),
            config,
            stats,
            durable: None,
            events: None,
            quotas: Quotas::default(),
        }
    }

    /// Makes the index durable: opens (or creates) the database at `path`, loads what
    /// it holds straight into the store (each restored peer gets one lease period to
    /// come back), and logs every later change to it. Returns the number of peers and
    /// files restored.
    pub fn open_database(mut self, path: &Path) -> Result<(IndexService, usize, usize), DbError> {
        let now = self.clock.now();
        let (lease, classic_lease) = (self.config.lease, self.config.classic_lease);
        let store = self.store.get_mut().unwrap_or_else(|e| e.into_inner());
        let (mut peers, mut files) = (0, 0);
        let mut current: Option<PeerId> = None;
        let durable = Durable::open(path, &mut |row| match row {
            Restored::Peer {
                id,
                name,
                endpoint,
                kind,
            } => {
                let Ok(id) = PeerId::parse(&id) else {
                    log::warn!(
                        "database: skipping peer with bad id '{}'",
                        codec::printable(&id)
                    );
                    return;
                };
                let lease = match kind {
                    PeerKind::Modern => lease,
                    PeerKind::Classic => classic_lease,
                };
                if store.hello(&id, endpoint, kind, now, lease).is_ok() {
                    if let Ok(name) = PeerId::parse(&name) {
                        store.name_peer(&id, name);
                    }
                    peers += 1;
                }
            }
            Restored::File { peer, name, meta } => {
                if current.as_ref().is_none_or(|c| c.as_str() != peer) {
                    current = PeerId::parse(&peer).ok();
                }
                let (Some(id), Ok(name)) = (&current, FileName::parse(&name)) else {
                    return;
                };
                if store.publish(id, &[(name, meta)], now).is_ok() {
                    files += 1;
                }
            }
        })?;
        store.shrink_to_fit();
        release_free_memory();
        self.durable = Some(durable);
        Ok((self, peers, files))
    }

    /// Logs a change made under the store's write lock (so the log's order is the
    /// store's order). Wait on the ticket after releasing the lock.
    fn log(&self, change: impl FnOnce() -> Change) -> Option<Ticket> {
        self.durable.as_ref().map(|d| d.log(change()))
    }

    /// Waits until a logged change is durable.
    fn durable(&self, ticket: Option<Ticket>) -> Result<(), Refusal> {
        match ticket {
            Some(t) => t
                .wait()
                .map_err(|e| refuse(ErrorCode::Internal, format!("not saved: {e}"))),
            None => Ok(()),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, IndexStore> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, IndexStore> {
        self.store.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the `index-sweep` thread that drops peers whose lease ran out.
    /// Writes joins, departures and expired leases to an event log.
    pub fn with_event_log(mut self, log: Arc<crate::eventlog::EventLog>) -> Self {
        self.events = Some(log);
        self
    }

    fn event(&self, kind: &str, text: &str) {
        if let Some(l) = &self.events {
            l.write(kind, text);
        }
    }

    pub fn start_sweeper(self: &Arc<Self>) -> std::io::Result<()> {
        let weak = Arc::downgrade(self);
        let period =
            (self.config.lease / 10).clamp(Duration::from_millis(100), Duration::from_secs(1));
        thread::Builder::new()
            .name("index-sweep".into())
            .spawn(move || loop {
                thread::sleep(period);
                let Some(service) = weak.upgrade() else {
                    return;
                };
                let now = service.clock.now();
                let mut store = service.write();
                let expired = store.expire(now);
                let size = store.counts();
                metrics::global().index_size(size.peers, size.names, size.entries);
                for id in expired {
                    log::info!("lease of peer '{id}' ran out; its files are withdrawn");
                    service.event("expired", &format!("peer={id}"));
                    if let Some(d) = &service.durable {
                        d.log_quietly(Change::RemovePeer {
                            peer: id.to_string(),
                        });
                    }
                }
            })?;
        Ok(())
    }

    fn session_peer<'a>(&self, conn: &'a IndexConn) -> Result<&'a PeerId, Refusal> {
        conn.peer.as_ref().ok_or_else(|| {
            refuse(
                ErrorCode::UnknownPeer,
                "say hello as a peer on this connection first",
            )
        })
    }

    /// `hello`: answers with this index's signed challenge. A peer's session begins
    /// only with the `auth` that proves its key; a new hello ends the old session.
    fn hello(&self, args: &[&str], remote: SocketAddr, conn: &mut IndexConn) -> Answer {
        let hello = node::parse_hello(args, "this index", &[HelloRole::Peer, HelloRole::Client])?;
        // A sync begun under another hello does not carry over to this one.
        conn.sync_seen = None;
        conn.peer = None;
        let (reply, pending) = node::challenge(&self.me, "index", hello, remote);
        conn.pending = pending;
        Ok(reply)
    }

    /// `auth`: the peer proved its key; it is registered (or renewed) under it, at the
    /// connection's source host and the port its hello announced.
    fn auth(&self, args: &[&str], remote: SocketAddr, conn: &mut IndexConn) -> Answer {
        let hello = node::authenticate(conn.pending.take(), args, &self.me)?;
        let id = hello.id.expect("a proven hello has an id");
        let host = node::source_host(remote);
        let endpoint = Endpoint {
            host,
            port: hello.port,
        };
        let (known, ticket) = {
            let mut store = self.write();
            self.quotas.peers_on(&self.config, &store, &id, host)?;
            let known = store.hello(
                &id,
                endpoint,
                PeerKind::Modern,
                self.clock.now(),
                self.config.lease,
            )?;
            store.name_peer(&id, hello.name.clone());
            let ticket = self.log(|| Change::Peer {
                id: id.to_string(),
                name: hello.name.to_string(),
                endpoint,
                kind: PeerKind::Modern,
            });
            (known, ticket)
        };
        self.durable(ticket)?;
        let port = hello.port;
        let name = hello.name;
        log::info!("peer '{name}' ({id}) at {host}:{port} said hello ({known} files known)");
        self.event(
            "join",
            &format!(
                "peer={id} name={name} addr={} files={known}",
                SocketAddr::new(host, port)
            ),
        );
        conn.peer = Some(id);
        let lease = self.config.lease.as_secs().max(1).to_string();
        Ok(node::auth_reply(&lease, &known.to_string()))
    }

    fn publish(&self, req: &Request, remote: SocketAddr, conn: &mut IndexConn) -> Answer {
        let peer = self.session_peer(conn)?.clone();
        self.quotas.rows(
            &self.config,
            &peer,
            remote,
            req.rows.len(),
            self.clock.now(),
        )?;
        // Taken now, and put back only when this batch succeeds: an error abandons
        // the sync in progress, and the peer starts it over.
        let mut seen = match req.verb {
            Verb::Sync => conn.sync_seen.take().unwrap_or_default(),
            _ => HashSet::new(),
        };
        let more = match req.args.get(1).copied() {
            None => false,
            Some("more") => true,
            Some(other) => {
                return Err(refuse(
                    ErrorCode::BadRequest,
                    format!(
                        "the field after a sync's row count must be 'more', not '{}'",
                        codec::printable(other)
                    ),
                ))
            }
        };
        let files = req
            .rows
            .iter()
            .enumerate()
            .map(|(i, row)| parse_file_row(row, i + 1))
            .collect::<Result<Vec<_>, _>>()?;
        let now = self.clock.now();
        let ending_sync = req.verb == Verb::Sync && !more;
        if req.verb == Verb::Sync {
            seen.extend(files.iter().map(|(n, _)| n.to_string()));
        }
        // The last batch of a sync publishes and drops what the peer no longer has
        // under one lock, so no reader ever sees the old and the new names together.
        let (reply, published, withdrawn) = {
            let mut store = self.write();
            let syncing = (req.verb == Verb::Sync).then_some(&seen);
            self.quotas.files(
                &self.config,
                &store,
                &peer,
                node::source_host(remote),
                &files,
                syncing,
            )?;
            let applied = store.publish(&peer, &files, now)?;
            let published = self.log(|| Change::Publish {
                peer: peer.to_string(),
                files: files.iter().map(|(n, m)| (n.to_string(), *m)).collect(),
            });
            if ending_sync {
                let (known, removed) = store.retain(&peer, &std::mem::take(&mut seen), now)?;
                let withdrawn = (!removed.is_empty())
                    .then(|| {
                        self.log(|| Change::Withdraw {
                            peer: peer.to_string(),
                            names: removed,
                        })
                    })
                    .flatten();
                (known, published, withdrawn)
            } else {
                (applied, published, None)
            }
        };
        self.durable(published)?;
        self.durable(withdrawn)?;
        if req.verb == Verb::Sync && more {
            conn.sync_seen = Some(seen);
        }
        if ending_sync {
            log::info!("peer '{peer}' synced {reply} files");
        }
        Ok(Reply::Text(codec::line(&["ok", &reply.to_string()])))
    }

    fn withdraw(&self, req: &Request, remote: SocketAddr, conn: &mut IndexConn) -> Answer {
        let peer = self.session_peer(conn)?;
        self.quotas
            .rows(&self.config, peer, remote, req.rows.len(), self.clock.now())?;
        let names = req
            .rows
            .iter()
            .enumerate()
            .map(|(i, row)| parse_name(row[0], Some(i + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        let (removed, ticket) = {
            let mut store = self.write();
            let removed = store.withdraw(peer, &names, self.clock.now())?;
            let ticket = self.log(|| Change::Withdraw {
                peer: peer.to_string(),
                names: names.iter().map(|n| n.to_string()).collect(),
            });
            (removed, ticket)
        };
        self.durable(ticket)?;
        Ok(Reply::Text(codec::line(&["ok", &removed.to_string()])))
    }

    fn get(&self, args: &[&str]) -> Answer {
        let name = parse_name(args[0], None)?;
        let id = match args.get(1) {
            Some(text) => Some(
                Sha1Digest::parse(text)
                    .map_err(|e| refuse(ErrorCode::BadRequest, format!("content id: {e}")))?,
            ),
            None => None,
        };
        let store = self.read();
        let mut holders = store.holder_refs(name.as_str(), id, self.clock.now());
        holders.shuffle(&mut rand::thread_rng());
        holders.truncate(self.config.max_holders);
        // Rows are written straight into the reply under the read lock, from each
        // holder's preformatted `host|port|id|`: no copies, no formatter.
        let mut out = String::with_capacity(16 + holders.len() * 192);
        out.push_str("ok|");
        codec::push_decimal(&mut out, holders.len() as u64);
        out.push('\n');
        for h in holders {
            out.push_str(h.head);
            match h.meta.size {
                Some(size) => codec::push_decimal(&mut out, size),
                None => out.push('-'),
            }
            for digest in [h.meta.id, h.meta.sha1] {
                out.push('|');
                match digest {
                    Some(d) => d.push_to(&mut out),
                    None => out.push('-'),
                }
            }
            out.push('|');
            out.push_str(h.name.as_str());
            out.push('\n');
        }
        Ok(Reply::Text(out))
    }

    fn search(&self, args: &[&str]) -> Answer {
        // `sha1:<40 hex>` alone finds the files whose holders claim that whole-file
        // SHA-1; anything else is words.
        let by_sha1 = args[0]
            .trim()
            .strip_prefix("sha1:")
            .map(|_| Sha1Digest::parse(args[0].trim()))
            .transpose()
            .map_err(|e| refuse(ErrorCode::BadRequest, format!("search by sha1: {e}")))?;
        let query = match by_sha1 {
            Some(_) => None,
            None => Some(
                Query::parse(args[0]).map_err(|e| refuse(ErrorCode::BadRequest, e.to_string()))?,
            ),
        };
        let limit = match args.get(1) {
            Some(text) => crate::protocol::decimal::<usize>(text)
                .filter(|&n| n >= 1 && n <= self.config.max_results)
                .ok_or_else(|| {
                    refuse(
                        ErrorCode::BadRequest,
                        format!(
                            "limit must be a number from 1 to {}",
                            self.config.max_results
                        ),
                    )
                })?,
            None => self.config.default_results,
        };
        let now = self.clock.now();
        let results = match (&query, by_sha1) {
            (Some(query), _) => self.read().search(query, limit, now),
            (None, Some(sha1)) => self.read().search_sha1(sha1, limit, now),
            (None, None) => unreachable!("a search is by words or by sha1"),
        };
        let more = if results.more { "1" } else { "0" };
        let mut out = codec::line(&["ok", &results.rows.len().to_string(), more]);
        for r in &results.rows {
            out.push_str(&codec::line(&[
                &r.name,
                &opt_field(r.meta.size),
                &opt_field(r.meta.id),
                &r.holders.to_string(),
                &opt_field(r.meta.sha1),
            ]));
        }
        Ok(Reply::Text(out))
    }

    fn status(&self) -> Reply {
        let counts = self.read().counts();
        let rows: Vec<(&str, String)> = vec![
            ("role", "index".into()),
            ("id", self.me.id().to_string()),
            ("name", self.me.name.to_string()),
            ("version", env!("CARGO_PKG_VERSION").into()),
            ("protocol", VERSION.to_string()),
            ("uptime_secs", self.clock.uptime().as_secs().to_string()),
            ("peers", counts.peers.to_string()),
            ("files", counts.names.to_string()),
            ("entries", counts.entries.to_string()),
            ("words", counts.words.to_string()),
            (
                "connections",
                self.stats.live.load(Ordering::Relaxed).to_string(),
            ),
            (
                "requests",
                self.stats.requests.load(Ordering::Relaxed).to_string(),
            ),
            (
                "messages",
                self.stats.requests.load(Ordering::Relaxed).to_string(),
            ),
            (
                "refused_busy",
                self.stats.refused_busy.load(Ordering::Relaxed).to_string(),
            ),
            ("refused_quota", self.quotas.refused().to_string()),
            (
                "request_memory",
                self.stats
                    .request_memory
                    .load(Ordering::Relaxed)
                    .to_string(),
            ),
            ("lease_secs", self.config.lease.as_secs().to_string()),
        ];
        let mut rows = rows;
        // Healthy means serving *and* saving: an index whose last commit failed answers
        // reads, but refuses writes with `err|internal`.
        match self.durable.as_ref().and_then(Durable::failing) {
            None => rows.push(("health", "ok".into())),
            Some(why) => {
                rows.push(("health", "failing".into()));
                rows.push(("failing", codec::printable_field(&why)));
            }
        }
        node::status_reply(&rows)
    }
}

/// Hands memory freed during a bulk load back to the system, so the resident size
/// reflects what the index holds.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Service for IndexService {
    type Conn = IndexConn;

    fn role(&self) -> Role {
        Role::Index
    }

    fn handle(&self, req: Request, remote: SocketAddr, conn: &mut IndexConn) -> Reply {
        let outcome = match req.verb {
            Verb::Hello => self.hello(&req.args, remote, conn),
            Verb::Auth => self.auth(&req.args, remote, conn),
            Verb::Ping => Ok(node::pong()),
            Verb::Status => Ok(self.status()),
            Verb::Beat => self.session_peer(conn).cloned().and_then(|peer| {
                let known = self
                    .write()
                    .beat(&peer, self.clock.now(), self.config.lease)?;
                Ok(Reply::Text(codec::line(&["ok", &known.to_string()])))
            }),
            Verb::Publish | Verb::Sync => {
                metrics::timed(&metrics::global().index_publish_seconds, || {
                    self.publish(&req, remote, conn)
                })
            }
            Verb::Withdraw => self.withdraw(&req, remote, conn),
            Verb::Bye => {
                let mut ticket = None;
                if let Some(peer) = conn.peer.take() {
                    let mut store = self.write();
                    store.remove_peer(&peer);
                    ticket = self.log(|| Change::RemovePeer {
                        peer: peer.to_string(),
                    });
                    log::info!("peer '{peer}' left");
                    self.event("left", &format!("peer={peer}"));
                }
                self.durable(ticket)
                    .map(|()| Reply::Text("ok|bye\n".into()))
            }
            Verb::Get => self.get(&req.args),
            Verb::Search => metrics::timed(&metrics::global().index_search_seconds, || {
                self.search(&req.args)
            }),
            _ => Err(refuse(ErrorCode::UnknownVerb, "not served by an index")),
        };
        outcome.unwrap_or_else(|r| Reply::Text(r.to_line()))
    }

    fn classic_at_once(&self, req: &Classic) -> Option<String> {
        // Only a lookup, and only when no writer holds the store: the accept thread
        // must never wait (a `set` waits for the disk; a large batch holds the lock).
        let Classic::Get { name } = req else {
            return None;
        };
        let store = self.store.try_read().ok()?;
        Some(self.classic_get(&store, name))
    }

    fn classic(&self, req: Classic, remote: SocketAddr) -> Reply {
        let text = match req {
            Classic::Get { name } => self.classic_get(&self.read(), &name),
            Classic::Set {
                name,
                peer_id,
                port,
            } => match self.classic_set(&name, &peer_id, &port, remote) {
                Ok(()) => "Successfully Updated".to_owned(),
                Err(e) => format!("Error: {e}"),
            },
            Classic::Malformed(why) => format!("Error: {why}"),
            Classic::Download { .. } => "Error: this is an index server".to_owned(),
        };
        Reply::Close(text)
    }
}

impl IndexService {
    /// The classic answer to `get|name`: one live holder at random, or `notfound`.
    fn classic_get(&self, store: &IndexStore, name: &str) -> String {
        let Ok(name) = FileName::parse(name) else {
            return "notfound".to_owned();
        };
        let holders = store.holder_refs(name.as_str(), None, self.clock.now());
        match holders.choose(&mut rand::thread_rng()) {
            Some(h) => format!("{}|{}|{}", h.endpoint.host, h.name, h.endpoint.port),
            None => "notfound".to_owned(),
        }
    }

    fn classic_set(
        &self,
        name: &str,
        peer_id: &str,
        port: &str,
        remote: SocketAddr,
    ) -> Result<(), String> {
        let name = FileName::parse(name).map_err(|e| format!("bad name: {e}"))?;
        let id = PeerId::parse(peer_id).map_err(|e| format!("bad peer id: {e}"))?;
        let port: u16 = crate::protocol::decimal(port)
            .filter(|&p| p != 0)
            .ok_or("bad port")?;
        let endpoint = Endpoint {
            host: node::source_host(remote),
            port,
        };
        let now = self.clock.now();
        let ticket = {
            let mut store = self.write();
            // A classic client cannot re-point a live modern peer's entries at another
            // port: it could never heartbeat for them, and the peer would not notice.
            if store.peer_kind(&id, now) == Some(PeerKind::Modern) {
                return Err(format!(
                    "peer id '{id}' belongs to a live peer that speaks the modern protocol"
                ));
            }
            let batch = [(name.clone(), FileMeta::UNKNOWN)];
            let c = &self.config;
            self.quotas
                .peers_on(c, &store, &id, endpoint.host)
                .and_then(|()| {
                    self.quotas
                        .files(c, &store, &id, endpoint.host, &batch, None)
                })
                .map_err(|r| r.message)?;
            store
                .hello(
                    &id,
                    endpoint,
                    PeerKind::Classic,
                    now,
                    self.config.classic_lease,
                )
                .map_err(|e| e.to_string())?;
            store
                .publish(&id, &[(name.clone(), FileMeta::UNKNOWN)], now)
                .map_err(|e| e.to_string())?;
            self.log(|| Change::Peer {
                id: id.to_string(),
                name: id.to_string(),
                endpoint,
                kind: PeerKind::Classic,
            });
            self.log(|| Change::Publish {
                peer: id.to_string(),
                files: vec![(name.to_string(), FileMeta::UNKNOWN)],
            })
        };
        self.durable(ticket).map_err(|r| r.message)?;
        log::info!(
            "classic peer '{id}' at {}:{port} set '{name}'",
            endpoint.host
        );
        Ok(())
    }
}

/// The service without a socket: requests decoded from their wire text, replies
/// compared with the shapes docs/PROTOCOL.md gives.
#[cfg(test)]
pub(super) mod tests;
