//! What a DHT node re-publishes, and when.
//!
//! Items live at the nodes closest to their target, and those nodes come and go: an
//! item nobody puts again fades as its holders leave (and other implementations drop
//! items after two hours, peers after thirty minutes). So every node keeps what it
//! holds for the network, and puts it again every `--dht-republish` (with a random
//! delay of up to half that, so the holders of one item do not all put it at once; a
//! put from another holder pushes this node's turn back, since the item was just
//! refreshed everywhere):
//!
//! - the network's mutable items put here or written here (the newest of each; a
//!   reader keeps nothing, or every read would add a node putting the item again);
//! - the immutable chunks those items point to (a chunk no kept item points to is
//!   dropped after two periods, so a flood of chunks cannot crowd out real ones);
//! - this node's own announces (the content ids and names a peer shares).
//!
//! Pure bookkeeping: the thread that puts lives in [`super::DhtNode`].

use super::value::{self, Decoded};
use mainline::MutableItem;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most items kept (mutable and immutable together); more are not kept.
pub const MAX_HELD: usize = 50_000;

/// One thing to put again.
#[derive(Debug, Clone)]
pub enum Work {
    Mutable(MutableItem),
    Immutable(Vec<u8>),
    Announce { info_hash: [u8; 20], port: u16 },
}

struct Kept<T> {
    item: T,
    due: Instant,
    /// When it was last stored or written here.
    seen: Instant,
}

#[derive(Default)]
struct Inner {
    mutable: HashMap<[u8; 20], Kept<MutableItem>>,
    immutable: HashMap<[u8; 20], Kept<Vec<u8>>>,
    announces: HashMap<[u8; 20], Kept<u16>>,
    refused: u64,
}

pub struct Held {
    period: Duration,
    inner: Mutex<Inner>,
}

impl Held {
    pub fn new(period: Duration) -> Held {
        Held {
            period,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn next_turn(&self, now: Instant) -> Instant {
        let spread = self.period.as_millis() as u64 / 2;
        now + self.period + Duration::from_millis(rand::random::<u64>() % spread.max(1))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("dht held lock")
    }

    fn full(inner: &Inner) -> bool {
        inner.mutable.len() + inner.immutable.len() >= MAX_HELD
    }

    /// A mutable item put here or written here: kept unless an item with a
    /// higher sequence number is.
    pub fn stored_mutable(&self, item: MutableItem) {
        let now = Instant::now();
        let due = self.next_turn(now);
        let mut inner = self.lock();
        let target = *item.target().as_bytes();
        let full = Self::full(&inner);
        match inner.mutable.get_mut(&target) {
            Some(k) if k.item.seq() > item.seq() => {}
            Some(k) => {
                *k = Kept {
                    item,
                    due,
                    seen: now,
                }
            }
            None if full => inner.refused += 1,
            None => {
                inner.mutable.insert(
                    target,
                    Kept {
                        item,
                        due,
                        seen: now,
                    },
                );
            }
        }
    }

    /// An immutable item put here or written here.
    pub fn stored_immutable(&self, v: Vec<u8>) {
        let now = Instant::now();
        let due = self.next_turn(now);
        let target = value::immutable_target(&v);
        let mut inner = self.lock();
        if let Some(k) = inner.immutable.get_mut(&target) {
            k.due = due;
            k.seen = now;
        } else if Self::full(&inner) {
            inner.refused += 1;
        } else {
            inner.immutable.insert(
                target,
                Kept {
                    item: v,
                    due,
                    seen: now,
                },
            );
        }
    }

    /// Announces `info_hash` (on `port`) now and every period until withdrawn.
    pub fn announce(&self, info_hash: [u8; 20], port: u16) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.announces.entry(info_hash).or_insert(Kept {
            item: port,
            due: now,
            seen: now,
        });
    }

    pub fn withdraw(&self, info_hash: &[u8; 20]) {
        self.lock().announces.remove(info_hash);
    }

    pub fn announced(&self) -> HashSet<[u8; 20]> {
        self.lock().announces.keys().copied().collect()
    }

    /// Forgets a mutable item (a newer one is out there, kept by its own holders).
    pub fn forget(&self, target: &[u8; 20]) {
        self.lock().mutable.remove(target);
    }

    /// (mutable, immutable, announces, refused for lack of room).
    pub fn counts(&self) -> (usize, usize, usize, u64) {
        let inner = self.lock();
        (
            inner.mutable.len(),
            inner.immutable.len(),
            inner.announces.len(),
            inner.refused,
        )
    }

    /// Up to `limit` things due at `now`, each given its next turn; drops chunks no
    /// kept item points to once they are two periods old.
    pub fn due(&self, now: Instant, limit: usize) -> Vec<Work> {
        let mut inner = self.lock();
        let referenced = referenced(&inner);
        let period = self.period;
        inner
            .immutable
            .retain(|t, k| referenced.contains(t) || now.duration_since(k.seen) < period * 2);
        let mut out = Vec::new();
        let next = |s: &Self| s.next_turn(now);
        for (hash, k) in inner.announces.iter_mut() {
            if out.len() < limit && k.due <= now {
                k.due = now + period;
                out.push(Work::Announce {
                    info_hash: *hash,
                    port: k.item,
                });
            }
        }
        for k in inner.mutable.values_mut() {
            if out.len() < limit && k.due <= now {
                k.due = next(self);
                out.push(Work::Mutable(k.item.clone()));
            }
        }
        for (t, k) in inner.immutable.iter_mut() {
            if out.len() < limit && k.due <= now && referenced.contains(t) {
                k.due = next(self);
                out.push(Work::Immutable(k.item.clone()));
            }
        }
        out
    }

    /// The earliest turn, to sleep until.
    pub fn next_due(&self) -> Option<Instant> {
        let inner = self.lock();
        let a = inner.announces.values().map(|k| k.due);
        let m = inner.mutable.values().map(|k| k.due);
        let i = inner.immutable.values().map(|k| k.due);
        a.chain(m).chain(i).min()
    }
}

/// The chunks kept items point to: index chunks of kept pointers, and the data
/// chunks those index chunks list.
fn referenced(inner: &Inner) -> HashSet<[u8; 20]> {
    let mut out = HashSet::new();
    for k in inner.mutable.values() {
        if let Ok(Decoded::Chunked { len, index }) = value::decode(k.item.value()) {
            for (n, t) in index.iter().enumerate() {
                out.insert(*t);
                if let Some(chunk) = inner.immutable.get(t) {
                    if let Ok(data) = value::index_entries(&chunk.item, n, len) {
                        out.extend(data);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mainline::SigningKey;

    fn item(value: &[u8], seq: i64) -> MutableItem {
        MutableItem::new(SigningKey::from_bytes(&[3; 32]), value, seq, Some(b"k"))
    }

    #[test]
    fn the_newest_item_is_kept_and_put_again_only_when_due() {
        let held = Held::new(Duration::from_secs(60));
        held.stored_mutable(item(b"two", 2));
        held.stored_mutable(item(b"one", 1));
        let now = Instant::now();
        assert!(held.due(now, 10).is_empty(), "just stored: not due yet");
        let later = now + Duration::from_secs(91);
        let work = held.due(later, 10);
        assert!(matches!(&work[..], [Work::Mutable(i)] if i.value() == b"two"));
        assert!(held.due(later, 10).is_empty(), "given its next turn");
        held.announce([1; 20], 7);
        assert!(matches!(
            &held.due(Instant::now(), 10)[..],
            [Work::Announce { port: 7, .. }]
        ));
    }

    #[test]
    fn chunks_are_put_again_only_while_a_kept_item_points_to_them() {
        let held = Held::new(Duration::from_secs(60));
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let enc = value::encode(&data).unwrap();
        for c in &enc.chunks {
            held.stored_immutable(c.clone());
        }
        held.stored_immutable(b"a stray chunk".to_vec());
        let late = Instant::now() + Duration::from_secs(200);
        // No pointer kept: nothing is put, and every chunk is dropped once old.
        assert!(held.due(late, 100).is_empty());
        assert_eq!(held.counts().1, 0);
        for c in &enc.chunks {
            held.stored_immutable(c.clone());
        }
        held.stored_immutable(b"a stray chunk".to_vec());
        held.stored_mutable(item(&enc.item, 1));
        let work = held.due(Instant::now() + Duration::from_secs(95), 100);
        let chunks = work
            .iter()
            .filter(|w| matches!(w, Work::Immutable(_)))
            .count();
        assert_eq!(chunks, enc.chunks.len(), "{work:?}");
    }
}
