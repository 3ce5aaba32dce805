//! What a peer announces on the DHT: the content id of every file it shares and the
//! hash of its name ([`crate::dht::name_hash`]), on its TCP port, where holders are
//! asked. Every two seconds the set is read from the catalog; the DHT node announces
//! what is new at once and everything again every `--dht-republish`, and stops
//! announcing what is no longer shared.

use super::PeerShared;
use crate::dht::{self, DhtNode};
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const EVERY: Duration = Duration::from_secs(2);

pub fn spawn(shared: Arc<PeerShared>, node: Arc<DhtNode>, port: u16) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("dht-announce".into())
        .spawn(move || {
            while !shared.stopping.load(Ordering::Relaxed) {
                node.announce_set(&hashes(&shared), port);
                std::thread::sleep(EVERY);
            }
        })
        .map(drop)
}

/// The info-hashes a catalog's files are announced under.
fn hashes(shared: &PeerShared) -> HashSet<[u8; 20]> {
    let catalog = shared.catalog();
    let mut out = HashSet::new();
    for f in catalog.iter() {
        out.insert(f.hashes.id.0);
        out.insert(dht::name_hash(f.name.as_str()));
    }
    out
}
