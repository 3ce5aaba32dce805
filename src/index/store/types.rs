//! The store's values: what a peer says about a file, where it serves, and what reads
//! return (holders, search rows, counts) or refuse.

use crate::protocol::hash::Sha1Digest;
use crate::protocol::name::PeerId;
use std::fmt;
use std::net::IpAddr;

/// What a peer says about one file it holds. Classic peers say nothing: all `None`.
/// A modern peer gives size and content id (the piece-list digest), and the whole-file
/// SHA-1 when it computed one: a claim the index keeps and shows, never checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMeta {
    pub size: Option<u64>,
    pub id: Option<Sha1Digest>,
    pub sha1: Option<Sha1Digest>,
}

impl FileMeta {
    pub const UNKNOWN: FileMeta = FileMeta {
        size: None,
        id: None,
        sha1: None,
    };
}

/// Where a peer serves: the host seen on its connection and the port it announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: IpAddr,
    pub port: u16,
}

/// How a peer registered: the modern protocol heartbeats; classic peers only `set`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerKind {
    Modern,
    Classic,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The id belongs to a live peer on another host.
    Conflict { id: PeerId, holder: Endpoint },
    /// No live peer with this id (never said hello, left, or its lease ran out).
    UnknownPeer(PeerId),
    /// The name arena is at its 4 GiB limit.
    Full,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Conflict { id, holder } => write!(
                f,
                "peer id '{id}' is held by a live peer at {}:{}",
                holder.host, holder.port
            ),
            StoreError::UnknownPeer(id) => {
                write!(f, "no live peer '{id}' here; say hello and publish again")
            }
            StoreError::Full => f.write_str("the index holds as many names as it can"),
        }
    }
}

impl std::error::Error for StoreError {}

/// One live holder of a file, as `get` returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HolderView {
    pub peer: PeerId,
    /// The name the peer goes by (its id until it says otherwise).
    pub name: PeerId,
    pub endpoint: Endpoint,
    pub meta: FileMeta,
}

/// One live holder of a file, borrowed from the store.
#[derive(Clone, Copy, Debug)]
pub struct HolderRef<'a> {
    /// The start of its `get` row: `host|port|peer-id|`.
    pub head: &'a str,
    pub peer: &'a PeerId,
    pub name: &'a PeerId,
    pub endpoint: Endpoint,
    pub meta: FileMeta,
}

/// One search result: a (name, content) pair and how many live peers hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchRow {
    pub name: String,
    pub meta: FileMeta,
    pub holders: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchResults {
    pub rows: Vec<SearchRow>,
    /// More matches exist than were returned.
    pub more: bool,
}

/// Counts for `status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreCounts {
    pub peers: usize,
    pub names: usize,
    pub entries: usize,
    pub words: usize,
}
