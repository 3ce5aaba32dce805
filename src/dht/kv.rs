//! The key-value store on the DHT: `put`, `get` and `rm` of [`super::value`]s.
//!
//! Last writer wins by sequence number: a write reads the newest item first and puts
//! the next number (`--cas SEQ` makes it conditional on the newest being SEQ). A
//! removal is a signed, empty item with its own number. Reads take the newest item
//! any node gives whose signature verifies (the crate drops the others, and checks
//! every chunk against its hash); a missing key is definite once the lookup has asked
//! the nodes closest to it.

use super::value::{self, Decoded, ValueError};
use super::DhtNode;
use mainline::errors::{ConcurrencyError, PutMutableError};
use mainline::{MutableItem, SigningKey};
use std::fmt;
use std::sync::Mutex;

/// Chunk lookups run at once for one value.
const CHUNK_THREADS: usize = 16;
/// Lookups of one chunk before it counts as missing.
const CHUNK_TRIES: usize = 3;

/// Why a key-value operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvError {
    /// No network key or id: nothing names the store.
    NoNetwork,
    /// Only the network's id is here: reads work, writes need its key.
    ReadOnly,
    Value(ValueError),
    /// `--cas` named another sequence number than the newest (`None`: no value).
    CasMismatch {
        expected: i64,
        current: Option<i64>,
    },
    /// Another write of this key raced this one.
    Conflict,
    /// The DHT did not store it (no nodes, none answered): the crate's reason.
    Network(String),
    /// A chunk of a large value could not be found.
    MissingChunks {
        missing: usize,
        of: usize,
    },
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::NoNetwork => f.write_str(
                "no network key: make one with `p2pshare keygen --network` (it writes \
                 config/network.key and config/network.id), or point --network-key at it",
            ),
            KvError::ReadOnly => f.write_str(
                "this node has the network's id but not its key (config/network.key): it \
                 can read the store but not write it",
            ),
            KvError::Value(e) => write!(f, "{e}"),
            KvError::CasMismatch { expected, current } => match current {
                Some(c) => write!(f, "--cas {expected}: the value's sequence number is {c}"),
                None => write!(f, "--cas {expected}: the key has no value"),
            },
            KvError::Conflict => {
                f.write_str("another write of this key raced this one; read it and try again")
            }
            KvError::Network(e) => write!(f, "the DHT did not store it: {e}"),
            KvError::MissingChunks { missing, of } => write!(
                f,
                "{missing} of the value's {of} chunks could not be found on the DHT"
            ),
        }
    }
}

impl std::error::Error for KvError {}

impl From<ValueError> for KvError {
    fn from(e: ValueError) -> Self {
        KvError::Value(e)
    }
}

/// `--cas SEQ` against the newest sequence number read.
fn check_cas(cas: Option<i64>, current: Option<i64>) -> Result<(), KvError> {
    match cas {
        Some(expected) if current != Some(expected) => {
            Err(KvError::CasMismatch { expected, current })
        }
        _ => Ok(()),
    }
}

/// A value read back, with its sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub value: Vec<u8>,
    pub seq: i64,
}

#[allow(deprecated)] // the crate's synchronous API
impl DhtNode {
    fn public(&self) -> Result<[u8; 32], KvError> {
        self.network
            .as_ref()
            .map(|n| n.public)
            .ok_or(KvError::NoNetwork)
    }

    fn signer(&self) -> Result<SigningKey, KvError> {
        let n = self.network.as_ref().ok_or(KvError::NoNetwork)?;
        let secret = n.secret.ok_or(KvError::ReadOnly)?;
        Ok(SigningKey::from_bytes(&secret))
    }

    /// The newest verified item for `key`.
    fn newest(&self, key: &str) -> Result<Option<MutableItem>, KvError> {
        value::check_key(key)?;
        let public = self.public()?;
        // A reader keeps nothing: the nodes that store an item, and its writer, put it
        // again; readers too would add a node putting it again with every read.
        Ok(self
            .dht
            .get_mutable_most_recent(&public, Some(key.as_bytes())))
    }

    /// Stores `value` under `key`; returns its sequence number.
    pub fn kv_put(&self, key: &str, data: &[u8], cas: Option<i64>) -> Result<i64, KvError> {
        value::check_key(key)?;
        let encoded = value::encode(data)?;
        let signer = self.signer()?;
        // Read first: it also fills a new node's routing table before the chunks go.
        let current = self.newest(key)?.map(|i| i.seq());
        check_cas(cas, current)?;
        self.put_chunks(&encoded.chunks)?;
        self.put_item(key, &encoded.item, current, cas, &signer)
    }

    /// Removes `key` (a signed tombstone); returns its sequence number, or `None` when
    /// the key had no value.
    pub fn kv_rm(&self, key: &str, cas: Option<i64>) -> Result<Option<i64>, KvError> {
        let signer = self.signer()?;
        match self.newest(key)? {
            Some(i) if !i.value().is_empty() => {
                check_cas(cas, Some(i.seq()))?;
                self.put_item(key, b"", Some(i.seq()), cas, &signer)
                    .map(Some)
            }
            current => match cas {
                Some(expected) => Err(KvError::CasMismatch {
                    expected,
                    current: current.map(|i| i.seq()),
                }),
                None => Ok(None),
            },
        }
    }

    /// Puts `v` as the item after `current` (the newest sequence number read).
    fn put_item(
        &self,
        key: &str,
        v: &[u8],
        current: Option<i64>,
        cas: Option<i64>,
        signer: &SigningKey,
    ) -> Result<i64, KvError> {
        let salt = Some(key.as_bytes());
        // Sequence numbers follow the newest; a clock floor keeps a writer that could
        // not see the newest (a split network) from reusing a number.
        let floor = (crate::clock::wall_ms() / 1000) as i64;
        let seq = current.map_or(floor, |c| (c + 1).max(floor));
        let item = MutableItem::new(signer.clone(), v, seq, salt);
        match self.dht.put_mutable(item.clone(), current) {
            Ok(_) => {
                self.held.stored_mutable(item);
                Ok(seq)
            }
            Err(PutMutableError::Concurrency(ConcurrencyError::CasFailed)) => {
                let now = self.newest(key)?.map(|i| i.seq());
                match cas {
                    Some(expected) => Err(KvError::CasMismatch {
                        expected,
                        current: now,
                    }),
                    None => Err(KvError::Conflict),
                }
            }
            Err(PutMutableError::Concurrency(_)) => Err(KvError::Conflict),
            Err(PutMutableError::Query(e)) => Err(KvError::Network(e.to_string())),
        }
    }

    fn put_chunks(&self, chunks: &[Vec<u8>]) -> Result<(), KvError> {
        let queue = Mutex::new(chunks.iter().collect::<Vec<_>>());
        let failed = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..CHUNK_THREADS.min(chunks.len()) {
                s.spawn(|| loop {
                    let Some(c) = queue.lock().expect("queue").pop() else {
                        return;
                    };
                    match self.dht.put_immutable(c) {
                        Ok(_) => self.held.stored_immutable(c.clone()),
                        Err(e) => {
                            *failed.lock().expect("failed") = Some(e.to_string());
                            return;
                        }
                    }
                });
            }
        });
        match failed.into_inner().expect("failed") {
            Some(e) => Err(KvError::Network(e)),
            None => Ok(()),
        }
    }

    /// The value of `key`, or `None` when it has none (never written, or removed).
    pub fn kv_get(&self, key: &str) -> Result<Option<Read>, KvError> {
        let Some(item) = self.newest(key)? else {
            return Ok(None);
        };
        let seq = item.seq();
        let value = match value::decode(item.value())? {
            Decoded::Removed => return Ok(None),
            Decoded::Value(v) => v,
            Decoded::Chunked { len, index } => {
                let index_chunks = self.get_chunks(&index)?;
                let mut data = Vec::new();
                for (n, c) in index_chunks.iter().enumerate() {
                    data.extend(value::index_entries(c, n, len)?);
                }
                value::assemble(len, &self.get_chunks(&data)?)?
            }
        };
        Ok(Some(Read { value, seq }))
    }

    /// Immutable items by target, in order; every one must be found. A lookup that
    /// found nothing is tried again (up to [`CHUNK_TRIES`] times in all): under load
    /// a lookup can end before the nodes that hold a chunk answered.
    fn get_chunks(&self, targets: &[[u8; 20]]) -> Result<Vec<Vec<u8>>, KvError> {
        let found: Vec<Mutex<Option<Vec<u8>>>> = targets.iter().map(|_| Mutex::new(None)).collect();
        for _ in 0..CHUNK_TRIES {
            let todo: Vec<usize> = (0..targets.len())
                .filter(|&i| found[i].lock().expect("found").is_none())
                .collect();
            if todo.is_empty() {
                break;
            }
            self.get_some_chunks(targets, &todo, &found);
        }
        let found: Vec<Option<Vec<u8>>> = found
            .into_iter()
            .map(|m| m.into_inner().expect("found"))
            .collect();
        let missing = found.iter().filter(|c| c.is_none()).count();
        if missing > 0 {
            return Err(KvError::MissingChunks {
                missing,
                of: targets.len(),
            });
        }
        Ok(found.into_iter().map(|c| c.expect("found")).collect())
    }

    fn get_some_chunks(
        &self,
        targets: &[[u8; 20]],
        todo: &[usize],
        found: &[Mutex<Option<Vec<u8>>>],
    ) {
        let next = Mutex::new(todo.iter());
        std::thread::scope(|s| {
            for _ in 0..CHUNK_THREADS.min(todo.len()) {
                s.spawn(|| loop {
                    let Some(&i) = next.lock().expect("next").next() else {
                        return;
                    };
                    let t = &targets[i];
                    // The crate checks the chunk against its target; so does this.
                    if let Some(v) = self.dht.get_immutable(mainline::Id::from(*t)) {
                        if value::immutable_target(&v) == *t {
                            *found[i].lock().expect("found") = Some(v.to_vec());
                        }
                    }
                });
            }
        });
    }
}
