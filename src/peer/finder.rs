//! Where a download finds its holders: the index servers, the DHT, or both.
//!
//! The DHT gives addresses only (BEP 5's `get_peers`): the peers that announced the
//! name's hash ([`crate::dht::name_hash`]) and, when a content id is asked for, that
//! content id. Each address is then asked over TCP, in a `hello` session whose answer
//! its key signs, what it shares under the name (`have`): its size, content id and
//! SHA-1 are the holder's own claim, exactly as an index would relay it, and the
//! pieces are checked against the content id as from any holder. An address that does
//! not answer, or lies, costs one short connection.
//!
//! With index servers and a DHT, both are asked at once and their holders merged (one
//! row per address): a swarm gets every source either knows. When no index answers,
//! the DHT's holders are enough; `--no-index` asks the DHT alone.

use super::pool::{Holder, IndexPool};
use crate::dht::{DhtNode, DhtSettings};
use crate::net::client::Client;
use crate::net::{NetError, Timeouts};
use crate::protocol::codec;
use crate::protocol::hash::Sha1Digest;
use crate::protocol::name::FileName;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Addresses asked per lookup (BEP 5 answers give up to 20 per node).
const MAX_ASKED: usize = 64;
/// Addresses asked at once.
const ASKERS: usize = 8;
/// How long a download that has holders from an index waits for the DHT's.
const MERGE_WAIT: Duration = Duration::from_secs(1);
/// How long a lookup waits for the DHT when no index gave holders.
const LOOKUP_WAIT: Duration = Duration::from_secs(20);

/// How a lookup uses the DHT.
#[derive(Clone)]
pub enum DhtUse {
    Off,
    /// A running node (a peer's): asked beside the indexes, holders merged.
    Merge(Arc<DhtNode>),
    /// A node started on first need (a one-shot command's): asked only when no index
    /// answers, or none knows the name.
    Fallback(Arc<LazyDht>),
}

/// A DHT node started the first time it is needed.
pub struct LazyDht {
    settings: DhtSettings,
    node: OnceLock<Option<Arc<DhtNode>>>,
}

impl LazyDht {
    pub fn new(settings: DhtSettings) -> LazyDht {
        LazyDht {
            settings,
            node: OnceLock::new(),
        }
    }

    /// The node, started now if it was not; `None` when it cannot start.
    pub fn get(&self) -> Option<&Arc<DhtNode>> {
        self.node
            .get_or_init(|| match DhtNode::start(self.settings.clone(), 0) {
                Ok(n) => Some(Arc::new(n)),
                Err(e) => {
                    log::warn!("{e}");
                    None
                }
            })
            .as_ref()
    }
}

/// The index servers and the DHT, as one source of holders.
#[derive(Clone)]
pub struct Finder {
    pub dht: DhtUse,
    /// Ask the DHT only.
    pub no_index: bool,
    /// Our own id, so the DHT's answer never lists this node.
    pub self_id: String,
    pub timeouts: Timeouts,
}

impl Finder {
    /// Holders of `name` (only of content `id`, when given). An index's failure is
    /// returned only when the DHT found nobody either.
    pub fn holders(
        &self,
        pool: &IndexPool,
        name: &FileName,
        id: Option<Sha1Digest>,
    ) -> Result<Vec<Holder>, NetError> {
        let ask_index = !self.no_index && !pool.addrs().is_empty();
        let ask_dht = |d: &DhtNode| dht_holders(d, name, id, &self.self_id, &self.timeouts);
        let (indexed, found) = match &self.dht {
            DhtUse::Off => (ask_index.then(|| pool.holders(name, id)), None),
            DhtUse::Merge(d) => {
                // The DHT's lookup runs beside the index's; once the index has given
                // holders, the download does not wait long for more (a lookup that
                // meets dead nodes waits seconds for them). A later lookup, when
                // sources run dry, finds them again.
                let (tx, rx) = crossbeam_channel::bounded(1);
                let (d, name_owned, self_id, timeouts) =
                    (d.clone(), name.clone(), self.self_id.clone(), self.timeouts);
                let spawned =
                    std::thread::Builder::new()
                        .name("dht-lookup".into())
                        .spawn(move || {
                            let _ = tx.send(dht_holders(&d, &name_owned, id, &self_id, &timeouts));
                        });
                let indexed = ask_index.then(|| pool.holders(name, id));
                let wait = match &indexed {
                    Some(Ok(h)) if !h.is_empty() => MERGE_WAIT,
                    _ => LOOKUP_WAIT,
                };
                let found = spawned.ok().and_then(|_| rx.recv_timeout(wait).ok());
                (indexed, Some(found.unwrap_or_default()))
            }
            DhtUse::Fallback(lazy) => {
                let indexed = ask_index.then(|| pool.holders(name, id));
                let enough = matches!(&indexed, Some(Ok(h)) if !h.is_empty());
                let found = match (enough, lazy.get()) {
                    (false, Some(d)) => Some(ask_dht(d)),
                    _ => None,
                };
                (indexed, found)
            }
        };
        let mut out = match (indexed, &found) {
            (Some(Ok(h)), _) => h,
            (Some(Err(e)), None) => return Err(e),
            (Some(Err(e)), Some(f)) if f.is_empty() => return Err(e),
            (Some(Err(e)), Some(_)) => {
                log::info!("no index answered ({e}); holders from the DHT");
                Vec::new()
            }
            (None, _) => Vec::new(),
        };
        for h in found.unwrap_or_default() {
            if !out.iter().any(|o| o.host == h.host && o.port == h.port) {
                out.push(h);
            }
        }
        Ok(out)
    }
}

/// Holders the DHT knows for `name` (and content `id`), each asked what it has.
pub fn dht_holders(
    dht: &DhtNode,
    name: &FileName,
    id: Option<Sha1Digest>,
    self_id: &str,
    timeouts: &Timeouts,
) -> Vec<Holder> {
    let mut addrs = dht.peers(crate::dht::name_hash(name.as_str()), MAX_ASKED);
    if let Some(id) = id {
        for a in dht.peers(id.0, MAX_ASKED) {
            if !addrs.contains(&a) && addrs.len() < MAX_ASKED * 2 {
                addrs.push(a);
            }
        }
    }
    log::debug!("DHT: {} addresses announce '{name}'", addrs.len());
    let queue = Mutex::new(addrs);
    let found = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..ASKERS {
            s.spawn(|| loop {
                let Some(addr) = queue.lock().expect("queue").pop() else {
                    return;
                };
                match ask(&SocketAddr::V4(addr).to_string(), name, timeouts) {
                    Ok(h) if h.peer != self_id && id.is_none_or(|i| h.id == Some(i)) => {
                        found.lock().expect("found").push(h)
                    }
                    Ok(_) => {}
                    Err(e) => log::debug!("DHT holder {addr}: {e}"),
                }
            });
        }
    });
    found.into_inner().expect("found")
}

/// Asks one address what it shares under `name`.
fn ask(addr: &str, name: &FileName, timeouts: &Timeouts) -> Result<Holder, NetError> {
    let mut c = Client::connect(addr, timeouts)?;
    let hello = c.hello_client()?;
    c.send(codec::line(&["have", name.as_str()]).as_bytes(), "have")?;
    let fields = c.read_ok("have")?;
    let bad = |m: &str| NetError::Protocol {
        addr: addr.to_owned(),
        verb: "have".into(),
        message: m.to_owned(),
    };
    let [size, content, sha1] = &fields[..] else {
        return Err(bad("a reply of the wrong length"));
    };
    let sock: SocketAddr = addr.parse().map_err(|_| bad("address"))?;
    Ok(Holder {
        host: sock.ip(),
        port: sock.port(),
        peer: hello.id.to_string(),
        name: hello.name,
        size: Some(crate::protocol::decimal(size).ok_or_else(|| bad("size"))?),
        id: Some(Sha1Digest::parse(content).map_err(|_| bad("content id"))?),
        sha1: match sha1.as_str() {
            "-" => None,
            s => Some(Sha1Digest::parse(s).map_err(|_| bad("sha1"))?),
        },
    })
}
