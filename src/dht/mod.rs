//! A node of the Mainline DHT (BEP 5 and BEP 44), through the `mainline` crate.
//!
//! Every seed and peer runs one on UDP, by default on the same port number as its TCP
//! port. A private network's seeds are its bootstrap nodes (peers bootstrap from the
//! seeds they know, or `--dht-bootstrap`), and every node answers requests (server
//! mode). `--dht public` joins the public Mainline DHT instead, through its usual
//! bootstrap nodes, in the crate's adaptive mode.
//!
//! What runs on it:
//!
//! - peers announce the content id of every file they share (the 20-byte SHA-1 is the
//!   info-hash) and a hash of its name ([`name_hash`]), and find holders with
//!   `get_peers` when no index answers (the peer's `finder`);
//! - the key-value store ([`kv`]): BEP 44 mutable items signed by the network's key;
//! - every node re-publishes what it holds for the network ([`held`]).
//!
//! The crate logs through `tracing`, whose records reach the project's logger (its
//! `log` feature); `RUST_LOG=mainline=debug` shows them.

pub mod guard;
pub mod held;
pub mod kv;
pub mod value;

use crate::identity::NodeKey;
use crate::protocol::name::PeerId;
use guard::Guard;
use held::{Held, Work};
use mainline::{Dht, ServerSettings};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most things put again at once.
const REPUBLISH_THREADS: usize = 8;
/// A request's wait for its answer in a private network: a lookup ends only when every
/// request it sent was answered or timed out, and a dead node stays in routing tables
/// for minutes, so this is what a lookup costs once nodes have died. The crate's 2 s
/// suits the public DHT's far and slow nodes; a network's own nodes answer within a
/// round trip.
pub const PRIVATE_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// Items the crate's server keeps (each of each kind), up from its 1000: a network of
/// 200 nodes holding 10,000 values keeps about 1000 copies a node, unevenly.
const SERVER_VALUES: usize = 20_000;

/// How a node runs its DHT.
#[derive(Clone, Debug)]
pub struct DhtSettings {
    /// The address to bind (IPv4: the crate speaks IPv4 only).
    pub bind: Ipv4Addr,
    /// UDP port; 0 for any; `None`: the same number as the node's TCP port (any,
    /// with a warning, if that one is taken).
    pub port: Option<u16>,
    /// Nodes to bootstrap from; empty: none (the node waits to be contacted).
    pub bootstrap: Vec<String>,
    /// The public Mainline DHT instead of a private network.
    pub public: bool,
    /// Answer requests from the start (seeds and private networks) rather than in the
    /// crate's adaptive mode.
    pub server: bool,
    /// How often what the node holds is put again.
    pub republish: Duration,
    /// Requests a second one IPv4 address may send.
    pub rate: u64,
    /// How long a request waits for its answer before a lookup gives up on that node.
    pub request_timeout: Duration,
    /// The network's key, for the key-value store.
    pub network: Option<Network>,
}

/// The network's key: its public half names the store's items; the secret half,
/// where present, writes them.
#[derive(Clone)]
pub struct Network {
    pub public: [u8; 32],
    pub secret: Option<[u8; 32]>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("writer", &self.secret.is_some())
            .finish()
    }
}

impl Network {
    /// The network key in `path` (made by `p2pshare keygen --network`), or, when only
    /// its public half is there (`path` with `.id`: the network's id, as
    /// `keygen` prints it), a read-only network. `None` when neither file exists.
    pub fn load(path: &Path) -> Result<Option<Network>, String> {
        if path.exists() {
            let key =
                NodeKey::load(path).map_err(|e| format!("network key {}: {e}", path.display()))?;
            return Ok(Some(Network {
                public: key.public_bytes(),
                secret: Some(key.secret_bytes()),
            }));
        }
        let id_path = id_file(path);
        match std::fs::read_to_string(&id_path) {
            Ok(text) => {
                let bad = || {
                    format!(
                        "{}: not a network id (52 base32 characters, as `p2pshare keygen --network` writes)",
                        id_path.display()
                    )
                };
                let id = PeerId::parse(text.trim()).map_err(|_| bad())?;
                let key = crate::identity::public_key(&id).ok_or_else(bad)?;
                Ok(Some(Network {
                    public: key.to_bytes(),
                    secret: None,
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", id_path.display())),
        }
    }

    /// Makes a new network key in `path` and writes its id beside it (`.id`).
    pub fn create(path: &Path) -> Result<(NodeKey, PathBuf), String> {
        let key = NodeKey::create(path).map_err(|e| {
            format!(
                "cannot make the network key {}: {e} (a network key is never replaced: \
                 every node that has it would lose the right to write)",
                path.display()
            )
        })?;
        let id_path = id_file(path);
        std::fs::write(&id_path, format!("{}\n", key.id()))
            .map_err(|e| format!("{}: {e}", id_path.display()))?;
        Ok((key, id_path))
    }
}

/// Where a network key's public half (its id) lives: beside the key, as `.id`.
pub fn id_file(key: &Path) -> PathBuf {
    key.with_extension("id")
}

/// Whether `sig` is `public`'s Ed25519 signature of `msg` (strict: no malleable forms).
pub fn verify(public: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public) else {
        return false;
    };
    key.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(sig))
        .is_ok()
}

/// The info-hash a file name is announced under: SHA-1 of a fixed prefix and the name.
pub fn name_hash(name: &str) -> [u8; 20] {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(b"p2pshare/name\0");
    h.update(name.as_bytes());
    h.finalize().into()
}

/// A running DHT node. Dropping it stops it.
pub struct DhtNode {
    dht: Dht,
    local: SocketAddrV4,
    network: Option<Network>,
    held: Arc<Held>,
    guard: Guard,
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl DhtNode {
    /// Starts a node beside a TCP server on `tcp_port`.
    pub fn start(s: DhtSettings, tcp_port: u16) -> Result<DhtNode, String> {
        let held = Arc::new(Held::new(s.republish));
        // The public DHT stores anyone's items: only a private network's are kept.
        let network_key = s.network.as_ref().filter(|_| !s.public).map(|n| n.public);
        let guard = Guard::new(s.rate, held.clone(), network_key);
        let mut builder = Dht::builder();
        builder
            .bind_address(s.bind)
            .request_timeout(s.request_timeout)
            .port(s.port.unwrap_or(tcp_port))
            .server_settings(ServerSettings {
                max_mutable_values: SERVER_VALUES,
                max_immutable_values: SERVER_VALUES,
                filter: Box::new(guard.clone()),
                ..ServerSettings::default()
            });
        if s.server {
            builder.server_mode();
        }
        if !s.public {
            let nodes = resolve(&s.bootstrap);
            if nodes.is_empty() {
                builder.no_bootstrap();
            } else {
                builder.bootstrap(&nodes);
            }
        } else if !s.bootstrap.is_empty() {
            builder.extra_bootstrap(&resolve(&s.bootstrap));
        }
        let dht = match builder.build() {
            Ok(d) => d,
            Err(e) if s.port.is_none() && tcp_port != 0 => {
                log::warn!(
                    "UDP port {tcp_port} is taken ({e}): the DHT node takes another; \
                     --dht-port chooses one"
                );
                builder
                    .port(0)
                    .build()
                    .map_err(|e| format!("cannot start the DHT: {e}"))?
            }
            Err(e) => {
                return Err(format!(
                    "cannot start the DHT on UDP {}:{}: {e}",
                    s.bind,
                    s.port.unwrap_or(tcp_port)
                ))
            }
        };
        #[allow(deprecated)] // the crate's synchronous API, which is what this uses
        let local = dht.info().local_addr();
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = {
            let (dht, held, stop) = (dht.clone(), held.clone(), stop.clone());
            std::thread::Builder::new()
                .name("dht-republish".into())
                .spawn(move || republish(&dht, &held, &stop))
                .map_err(|e| format!("cannot start the DHT: {e}"))?
        };
        log::info!(
            "DHT node on UDP {local} ({}, bootstrap: {})",
            if s.public {
                "public Mainline DHT"
            } else {
                "private network"
            },
            if s.bootstrap.is_empty() {
                "none".to_owned()
            } else {
                s.bootstrap.join(", ")
            }
        );
        Ok(DhtNode {
            dht,
            local,
            network: s.network,
            held,
            guard,
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local
    }

    /// The crate's node, for queries this module does not wrap.
    pub fn dht(&self) -> &Dht {
        &self.dht
    }

    pub fn network(&self) -> Option<&Network> {
        self.network.as_ref()
    }

    /// Requests received, and those left unanswered for their address's rate.
    pub fn requests(&self) -> (u64, u64) {
        (self.guard.requests(), self.guard.limited())
    }

    /// What the node keeps to put again: (mutable, immutable, announces, refused).
    pub fn held_counts(&self) -> (usize, usize, usize, u64) {
        self.held.counts()
    }

    /// Nodes in the routing table, and the crate's estimate of the DHT's size.
    pub fn size(&self) -> (usize, usize) {
        #[allow(deprecated)]
        let (info, table) = (self.dht.info(), self.dht.to_bootstrap());
        (table.len(), info.dht_size_estimate().0)
    }

    /// Announces exactly `hashes` on `port` from now on (every period): new ones at
    /// once, in the background; ones no longer in the set are no longer announced.
    pub fn announce_set(&self, hashes: &std::collections::HashSet<[u8; 20]>, port: u16) {
        let now = self.held.announced();
        for gone in now.difference(hashes) {
            self.held.withdraw(gone);
        }
        for new in hashes.difference(&now) {
            self.held.announce(*new, port);
        }
        if hashes.difference(&now).next().is_some() {
            self.wake();
        }
    }

    /// Addresses announced for `info_hash`: at most `limit`, in the order found.
    pub fn peers(&self, info_hash: [u8; 20], limit: usize) -> Vec<SocketAddrV4> {
        let mut out: Vec<SocketAddrV4> = Vec::new();
        #[allow(deprecated)]
        for batch in self.dht.get_peers(mainline::Id::from(info_hash)) {
            for a in batch {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
            if out.len() >= limit {
                out.truncate(limit);
                break;
            }
        }
        out
    }

    fn wake(&self) {
        self.stop.1.notify_all();
    }

    /// Stops re-publishing (waiting for puts under way); the node itself stops when
    /// the last handle to it is dropped.
    pub fn stop(&self) {
        *self.stop.0.lock().expect("dht stop lock") = true;
        self.stop.1.notify_all();
        let thread = self.thread.lock().expect("dht thread lock").take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for DhtNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `HOST:PORT`s to IPv4 socket addresses (names resolved; IPv6 left out: the crate
/// speaks IPv4 only).
fn resolve(nodes: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for n in nodes {
        match n.to_socket_addrs() {
            Ok(addrs) => out.extend(
                addrs
                    .filter(SocketAddr::is_ipv4)
                    .map(|a| a.to_string())
                    .take(1),
            ),
            Err(e) => log::warn!("DHT bootstrap node {n}: {e}"),
        }
    }
    out
}

/// The republishing thread: puts whatever is due, a few at a time, until stopped.
fn republish(dht: &Dht, held: &Held, stop: &(Mutex<bool>, Condvar)) {
    loop {
        {
            let stopped = stop.0.lock().expect("dht stop lock");
            if *stopped {
                return;
            }
            let wait = held
                .next_due()
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(1))
                .clamp(Duration::from_millis(20), Duration::from_secs(1));
            let (stopped, _) = stop.1.wait_timeout(stopped, wait).expect("dht stop lock");
            if *stopped {
                return;
            }
        }
        let work = held.due(Instant::now(), 256);
        let (mutable, immutable, _, _) = held.counts();
        crate::metrics::global()
            .dht_items_held
            .set((mutable + immutable) as i64);
        if work.is_empty() {
            continue;
        }
        crate::metrics::global()
            .dht_republished
            .inc_by(work.len() as u64);
        let queue = Mutex::new(work);
        std::thread::scope(|s| {
            for _ in 0..REPUBLISH_THREADS {
                s.spawn(|| loop {
                    let Some(w) = queue.lock().expect("queue").pop() else {
                        return;
                    };
                    if *stop.0.lock().expect("dht stop lock") {
                        return;
                    }
                    put_again(dht, held, w);
                });
            }
        });
    }
}

#[allow(deprecated)]
fn put_again(dht: &Dht, held: &Held, w: Work) {
    match w {
        Work::Announce { info_hash, port } => {
            if let Err(e) = dht.announce_peer(mainline::Id::from(info_hash), Some(port)) {
                log::debug!("DHT announce: {e}");
            }
        }
        Work::Immutable(v) => {
            if let Err(e) = dht.put_immutable(&v) {
                log::debug!("DHT re-publish of a chunk: {e}");
            }
        }
        Work::Mutable(item) => {
            let target = *item.target().as_bytes();
            match dht.put_mutable(item, None) {
                Ok(_) => {}
                Err(mainline::errors::PutMutableError::Concurrency(e)) => {
                    log::debug!("DHT re-publish: a newer item is out there ({e}); forgotten");
                    held.forget(&target);
                }
                Err(e) => log::debug!("DHT re-publish: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests;
