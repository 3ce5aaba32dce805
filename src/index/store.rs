//! The index store: which peer holds which file, with leases and a word index.
//!
//! A pure core: no sockets, clocks or threads. Time comes in as [`Millis`]; the
//! runtime (`index::service`) owns the lock around it and the sweep timer.
//!
//! Invariants:
//! * every holding points at a peer slot that is occupied, and that peer's `files`
//!   set contains the holding's name slot (and nothing else does);
//! * a name slot in `name_slots` is in the postings of each of its tokens exactly
//!   once; names whose last holding went away stay there until [`IndexStore::compact`]
//!   drops them (lazy deletion keeps withdrawals O(1) however common a word is);
//! * reads never return a holding whose peer's lease has run out, even before the
//!   sweep removes it;
//! * `per_host` counts, for each address share (an IPv4 address, or an IPv6 /64), the
//!   peers in `peer_slots` whose endpoint is in it (live or not yet swept) and the
//!   files they hold, and holds no entry with both at zero;
//! * a name slot is listed under a SHA-1 key ([`Sha1Key`]) in `by_sha1` or
//!   `by_sha1_more` exactly when one of its holdings claims a whole-file SHA-1 with
//!   that key, and once.
//!
//! Quotas (files per peer and per address, peers per address) are the service's to
//! choose; the store answers the questions they need ([`IndexStore::admits_peer`],
//! [`IndexStore::files_after`], [`IndexStore::files_on`]) and enforces nothing by
//! itself.
//!
//! Memory: the store is sized for millions of (file, holder) entries. A name is stored
//! once; the name table holds only slot numbers; a holding is 56 bytes with its hashes
//! inline; a name or token with a single holder or posting needs no allocation of its
//! own ([`OneOrMany`]); short tokens are stored inline ([`Token`]). Search by whole-file
//! SHA-1 costs 8 bytes a (name, SHA-1) pair in a hash map keyed by the SHA-1's first
//! four bytes; a name is found from its key and the full SHA-1 is checked against its
//! holdings, so a key shared by several names (the same content under several names,
//! or a claim made to collide) costs only those names a look.

mod types;

pub use types::{
    Endpoint, FileMeta, HolderRef, HolderView, PeerKind, SearchResults, SearchRow, StoreCounts,
    StoreError,
};

use super::compact::{OneOrMany, Token};
use super::search::{self, Query};
use crate::clock::Millis;
use crate::net::address_share;
use crate::protocol::hash::Sha1Digest;
use crate::protocol::name::{FileName, PeerId};
use hashbrown::hash_map::DefaultHashBuilder;
use hashbrown::HashTable;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::ops::Bound;
use std::time::Duration;

/// The key a whole-file SHA-1 is searched by: its first four bytes (the rest is
/// checked against the holdings).
type Sha1Key = u32;

fn sha1_key(hash: &[u8; 20]) -> Sha1Key {
    u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]])
}

fn row_head(id: &PeerId, at: Endpoint) -> Box<str> {
    format!("{}|{}|{id}|", at.host, at.port).into_boxed_str()
}

struct PeerRecord {
    id: PeerId,
    /// `host|port|id|`, the start of every `get` row naming it, formatted when its
    /// endpoint is set rather than for every row.
    head: Box<str>,
    /// The name its hello gave; its id until then (a restored or classic peer).
    name: PeerId,
    endpoint: Endpoint,
    kind: PeerKind,
    lease_until: Millis,
    files: HashSet<u32>,
}

/// What the peers on one address share have registered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct HostCount {
    peers: usize,
    files: usize,
}

/// One peer holding one name: 56 bytes, hashes inline.
#[derive(Clone, Copy, Debug)]
struct Holding {
    size: u64,
    peer: u32,
    /// Whether size and content id are known (false for classic peers).
    known: bool,
    /// Whether the holder gave a whole-file SHA-1 (never without `known`).
    has_sha1: bool,
    id: [u8; 20],
    sha1: [u8; 20],
}

impl Holding {
    fn new(peer: u32, meta: &FileMeta) -> Holding {
        match (meta.size, meta.id) {
            (Some(size), Some(id)) => Holding {
                size,
                peer,
                known: true,
                has_sha1: meta.sha1.is_some(),
                id: id.0,
                sha1: meta.sha1.map_or([0; 20], |d| d.0),
            },
            _ => Holding {
                size: 0,
                peer,
                known: false,
                has_sha1: false,
                id: [0; 20],
                sha1: [0; 20],
            },
        }
    }

    fn meta(&self) -> FileMeta {
        if self.known {
            FileMeta {
                size: Some(self.size),
                id: Some(Sha1Digest(self.id)),
                sha1: self.sha1(),
            }
        } else {
            FileMeta::UNKNOWN
        }
    }

    fn content_id(&self) -> Option<Sha1Digest> {
        self.known.then_some(Sha1Digest(self.id))
    }

    fn sha1(&self) -> Option<Sha1Digest> {
        self.has_sha1.then_some(Sha1Digest(self.sha1))
    }

    fn sha1_key(&self) -> Option<Sha1Key> {
        self.has_sha1.then(|| sha1_key(&self.sha1))
    }
}

/// What the holders of one content claim its whole-file SHA-1 is. Holders that say
/// nothing do not disagree; two claims that differ do.
#[derive(Clone, Copy)]
enum Claim {
    Nothing,
    One(Sha1Digest),
    Differ,
}

impl Claim {
    fn and(self, claim: Option<Sha1Digest>) -> Claim {
        match (self, claim) {
            (c, None) | (c @ Claim::Differ, _) => c,
            (Claim::Nothing, Some(d)) => Claim::One(d),
            (Claim::One(s), Some(d)) if s == d => Claim::One(s),
            (Claim::One(_), Some(_)) => Claim::Differ,
        }
    }
}

/// A name: its holdings, and where its text is in the name arena.
struct NameEntry {
    holdings: OneOrMany<Holding>,
    at: u32,
    len: u16,
}

/// Matches collected before ranking; bounds the work of one search.
const COLLECT_CAP: usize = 2000;

/// Names looked at by one search. A query whose words match most of the index but
/// whose exclusions (or other words) reject nearly all of them (`bench -bench` over a
/// million `bench-*` names) would otherwise read every name under the read lock, for
/// hundreds of milliseconds; past this many, the search stops and says `more`.
pub const EXAMINE_CAP: usize = 100_000;

#[derive(Default)]
pub struct IndexStore {
    peers: Vec<Option<PeerRecord>>,
    free_peers: Vec<u32>,
    peer_slots: HashMap<PeerId, u32>,
    /// Registered peers per host (the host of their endpoint).
    per_host: HashMap<IpAddr, HostCount>,
    names: Vec<NameEntry>,
    /// The text of every name, back to back (`NameEntry::at`, `len`); freed names stay
    /// until a compaction rebuilds it.
    name_text: String,
    free_names: Vec<u32>,
    /// Name slots, found by hashing the name stored in `names`.
    name_slots: HashTable<u32>,
    hasher: DefaultHashBuilder,
    words: BTreeMap<Token, OneOrMany<u32>>,
    /// Names in `name_slots` with no holdings (waiting for compaction).
    empty_names: usize,
    entries: usize,
    /// Names with a holding that claims a whole-file SHA-1, by the SHA-1's key: the
    /// first name of each key...
    by_sha1: HashMap<Sha1Key, u32>,
    /// ...and the others, for the few keys with more than one name.
    by_sha1_more: HashMap<Sha1Key, Vec<u32>>,
}

fn text_of<'a>(text: &'a str, entry: &NameEntry) -> &'a str {
    let at = entry.at as usize;
    &text[at..at + entry.len as usize]
}

impl IndexStore {
    pub fn new() -> IndexStore {
        IndexStore::default()
    }

    fn peer(&self, slot: u32) -> &PeerRecord {
        self.peers[slot as usize]
            .as_ref()
            .expect("holding points at a live peer slot")
    }

    fn live_slot(&self, id: &PeerId, now: Millis) -> Option<u32> {
        let slot = *self.peer_slots.get(id)?;
        (self.peer(slot).lease_until > now).then_some(slot)
    }

    fn name_of(&self, slot: u32) -> &str {
        text_of(&self.name_text, &self.names[slot as usize])
    }

    fn name_slot(&self, name: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        self.name_slots
            .find(hash, |&s| self.name_of(s) == name)
            .copied()
    }

    /// Registers or renews a peer. Returns how many files the index holds for it.
    pub fn hello(
        &mut self,
        id: &PeerId,
        endpoint: Endpoint,
        kind: PeerKind,
        now: Millis,
        lease: Duration,
    ) -> Result<usize, StoreError> {
        if let Some(&slot) = self.peer_slots.get(id) {
            let rec = self.peers[slot as usize]
                .as_mut()
                .expect("mapped slot is live");
            // A modern peer proved its key: it may move to any host. A classic `set`
            // names an id it cannot prove, so another host may not take a live one;
            // the same host may (a peer that restarted, perhaps on another port).
            let proven = kind == PeerKind::Modern;
            if !proven && rec.endpoint.host != endpoint.host && rec.lease_until > now {
                return Err(StoreError::Conflict {
                    id: id.clone(),
                    holder: rec.endpoint,
                });
            }
            let moved_from = (rec.endpoint.host != endpoint.host).then_some(rec.endpoint.host);
            if rec.endpoint != endpoint {
                rec.head = row_head(id, endpoint);
            }
            rec.endpoint = endpoint;
            rec.kind = kind;
            rec.lease_until = now.plus(lease);
            let known = rec.files.len();
            if let Some(old) = moved_from {
                self.count_host(old, false);
                self.count_files(old, known, false);
                self.count_host(endpoint.host, true);
                self.count_files(endpoint.host, known, true);
            }
            return Ok(known);
        }
        let rec = PeerRecord {
            id: id.clone(),
            head: row_head(id, endpoint),
            name: id.clone(),
            endpoint,
            kind,
            lease_until: now.plus(lease),
            files: HashSet::new(),
        };
        let slot = match self.free_peers.pop() {
            Some(s) => {
                self.peers[s as usize] = Some(rec);
                s
            }
            None => {
                self.peers.push(Some(rec));
                (self.peers.len() - 1) as u32
            }
        };
        self.peer_slots.insert(id.clone(), slot);
        self.count_host(endpoint.host, true);
        Ok(0)
    }

    fn count_host(&mut self, host: IpAddr, add: bool) {
        self.count_on(host, |c| {
            if add {
                c.peers += 1;
            } else {
                c.peers = c.peers.saturating_sub(1);
            }
        });
    }

    /// Adds `n` files to, or (`add` false) takes them from, `host`'s count.
    fn count_files(&mut self, host: IpAddr, n: usize, add: bool) {
        self.count_on(host, |c| {
            c.files = if add {
                c.files + n
            } else {
                c.files.saturating_sub(n)
            };
        });
    }

    fn count_on(&mut self, host: IpAddr, change: impl FnOnce(&mut HostCount)) {
        let share = address_share(host);
        let count = self.per_host.entry(share).or_default();
        change(count);
        if count.peers == 0 && count.files == 0 {
            self.per_host.remove(&share);
        }
    }

    /// The host of the peer in `slot`.
    fn host_of(&self, slot: u32) -> IpAddr {
        self.peer(slot).endpoint.host
    }

    /// Whether a `hello` as `id` from `host` stays within `max` peers registered on
    /// that host: always for an id already registered there (a renewal), otherwise
    /// only while the host has fewer than `max`.
    pub fn admits_peer(&self, id: &PeerId, host: IpAddr, max: usize) -> bool {
        let renewal = self
            .peer_slots
            .get(id)
            .is_some_and(|&slot| address_share(self.host_of(slot)) == address_share(host));
        renewal || self.peers_on(host) < max
    }

    /// Peers registered on `host`'s address share.
    pub fn peers_on(&self, host: IpAddr) -> usize {
        self.per_host
            .get(&address_share(host))
            .map_or(0, |c| c.peers)
    }

    /// Files held by the peers registered on `host`'s address share.
    pub fn files_on(&self, host: IpAddr) -> usize {
        self.per_host
            .get(&address_share(host))
            .map_or(0, |c| c.files)
    }

    /// Files `id` holds now (none when it is unknown).
    pub fn files_of(&self, id: &PeerId) -> usize {
        self.peer_slots
            .get(id)
            .map_or(0, |&slot| self.peer(slot).files.len())
    }

    /// How many files `id` would hold once `files` are published: those it holds now
    /// and the batch's distinct names it does not hold yet. Unknown peers hold none.
    pub fn files_after(&self, id: &PeerId, files: &[(FileName, FileMeta)]) -> usize {
        let held = self.peer_slots.get(id).map(|&slot| &self.peer(slot).files);
        let mut new: HashSet<&str> = HashSet::new();
        for (name, _) in files {
            let has = match (held, self.name_slot(name.as_str())) {
                (Some(held), Some(slot)) => held.contains(&slot),
                _ => false,
            };
            if !has {
                new.insert(name.as_str());
            }
        }
        held.map_or(0, HashSet::len) + new.len()
    }

    /// Renews a live peer's lease. Returns how many files the index holds for it.
    pub fn beat(&mut self, id: &PeerId, now: Millis, lease: Duration) -> Result<usize, StoreError> {
        let slot = self
            .live_slot(id, now)
            .ok_or_else(|| StoreError::UnknownPeer(id.clone()))?;
        let rec = self.peers[slot as usize].as_mut().expect("live slot");
        rec.lease_until = now.plus(lease);
        Ok(rec.files.len())
    }

    /// Adds or updates files held by a live peer. Returns how many rows were applied.
    pub fn publish(
        &mut self,
        id: &PeerId,
        files: &[(FileName, FileMeta)],
        now: Millis,
    ) -> Result<usize, StoreError> {
        let peer = self
            .live_slot(id, now)
            .ok_or_else(|| StoreError::UnknownPeer(id.clone()))?;
        for (name, meta) in files {
            let slot = self.intern(name.as_str())?;
            let entry = &mut self.names[slot as usize];
            let holding = Holding::new(peer, meta);
            let replaced = match entry
                .holdings
                .as_mut_slice()
                .iter_mut()
                .find(|h| h.peer == peer)
            {
                Some(h) => Some(std::mem::replace(h, holding)),
                None => {
                    if entry.holdings.is_empty() {
                        self.empty_names -= 1;
                    }
                    entry.holdings.push(holding);
                    self.entries += 1;
                    None
                }
            };
            // A republish with the same claim (every sync) leaves the listing as it is.
            let (old_key, new_key) = (replaced.and_then(|h| h.sha1_key()), holding.sha1_key());
            if old_key != new_key {
                if let Some(old) = old_key {
                    self.unlist_sha1(slot, old);
                }
                if let Some(key) = new_key {
                    self.list_sha1(slot, key);
                }
            }
            let added = self.peers[peer as usize]
                .as_mut()
                .expect("live slot")
                .files
                .insert(slot);
            if added {
                self.count_files(self.host_of(peer), 1, true);
            }
        }
        Ok(files.len())
    }

    /// The slot of a name, creating it (and indexing its words) if it is new. A new
    /// name counts as empty until its first holding arrives.
    fn intern(&mut self, name: &str) -> Result<u32, StoreError> {
        if let Some(slot) = self.name_slot(name) {
            return Ok(slot);
        }
        if self.name_text.len() + name.len() > u32::MAX as usize {
            self.compact();
            if self.name_text.len() + name.len() > u32::MAX as usize {
                return Err(StoreError::Full);
            }
        }
        let entry = NameEntry {
            holdings: OneOrMany::None,
            at: self.name_text.len() as u32,
            len: name.len() as u16,
        };
        self.name_text.push_str(name);
        let slot = match self.free_names.pop() {
            Some(s) => {
                self.names[s as usize] = entry;
                s
            }
            None => {
                self.names.push(entry);
                (self.names.len() - 1) as u32
            }
        };
        let hash = self.hasher.hash_one(name);
        let (names, text, hasher) = (&self.names, &self.name_text, &self.hasher);
        self.name_slots.insert_unique(hash, slot, |&s| {
            hasher.hash_one(text_of(text, &names[s as usize]))
        });
        self.empty_names += 1;
        let lower = name.to_lowercase();
        let mut toks = search::tokens(&lower);
        toks.sort_unstable();
        toks.dedup();
        for t in toks {
            match self.words.get_mut(t) {
                Some(list) => list.push(slot),
                None => {
                    self.words.insert(Token::new(t), OneOrMany::One(slot));
                }
            }
        }
        Ok(slot)
    }

    fn drop_holding(&mut self, name_slot: u32, peer: u32) -> bool {
        let entry = &mut self.names[name_slot as usize];
        let Some(pos) = entry
            .holdings
            .as_slice()
            .iter()
            .position(|h| h.peer == peer)
        else {
            return false;
        };
        let gone = entry.holdings.as_slice()[pos];
        entry.holdings.swap_remove(pos);
        self.entries -= 1;
        if entry.holdings.is_empty() {
            self.empty_names += 1;
        }
        if let Some(key) = gone.sha1_key() {
            self.unlist_sha1(name_slot, key);
        }
        true
    }

    /// Lists `slot` under a SHA-1 key, once.
    fn list_sha1(&mut self, slot: u32, key: Sha1Key) {
        match self.by_sha1.get(&key) {
            None => {
                self.by_sha1.insert(key, slot);
            }
            Some(&first) if first == slot => {}
            Some(_) => {
                let more = self.by_sha1_more.entry(key).or_default();
                if !more.contains(&slot) {
                    more.push(slot);
                }
            }
        }
    }

    /// Unlists `slot` from a SHA-1 key once none of its holdings claims a SHA-1 with
    /// that key any more.
    fn unlist_sha1(&mut self, slot: u32, key: Sha1Key) {
        let still = self.names[slot as usize]
            .holdings
            .as_slice()
            .iter()
            .any(|h| h.sha1_key() == Some(key));
        if still {
            return;
        }
        if self.by_sha1.get(&key) == Some(&slot) {
            // The first name goes: another of the key, if any, takes its place.
            match self.by_sha1_more.get_mut(&key).and_then(Vec::pop) {
                Some(next) => {
                    self.by_sha1.insert(key, next);
                }
                None => {
                    self.by_sha1.remove(&key);
                }
            }
        } else if let Some(more) = self.by_sha1_more.get_mut(&key) {
            more.retain(|&s| s != slot);
        }
        if self.by_sha1_more.get(&key).is_some_and(Vec::is_empty) {
            self.by_sha1_more.remove(&key);
        }
    }

    /// Removes files a live peer holds. Names it does not hold are ignored, so a peer
    /// can only ever withdraw its own files. Returns how many were removed.
    pub fn withdraw(
        &mut self,
        id: &PeerId,
        names: &[FileName],
        now: Millis,
    ) -> Result<usize, StoreError> {
        let peer = self
            .live_slot(id, now)
            .ok_or_else(|| StoreError::UnknownPeer(id.clone()))?;
        let mut removed = 0;
        for name in names {
            let Some(slot) = self.name_slot(name.as_str()) else {
                continue;
            };
            if self.drop_holding(slot, peer) {
                self.peers[peer as usize]
                    .as_mut()
                    .expect("live")
                    .files
                    .remove(&slot);
                self.count_files(self.host_of(peer), 1, false);
                removed += 1;
            }
        }
        self.maybe_compact();
        Ok(removed)
    }

    /// Removes every file of a live peer whose name is not in `keep` (the end of a
    /// `sync`). Returns how many files the peer holds afterwards, and the names removed.
    pub fn retain(
        &mut self,
        id: &PeerId,
        keep: &HashSet<String>,
        now: Millis,
    ) -> Result<(usize, Vec<String>), StoreError> {
        let peer = self
            .live_slot(id, now)
            .ok_or_else(|| StoreError::UnknownPeer(id.clone()))?;
        let files: Vec<u32> = self.peer(peer).files.iter().copied().collect();
        let mut removed = Vec::new();
        for slot in files {
            if !keep.contains(self.name_of(slot)) {
                removed.push(self.name_of(slot).to_owned());
                self.drop_holding(slot, peer);
                self.peers[peer as usize]
                    .as_mut()
                    .expect("live")
                    .files
                    .remove(&slot);
                self.count_files(self.host_of(peer), 1, false);
            }
        }
        self.maybe_compact();
        Ok((self.peer(peer).files.len(), removed))
    }

    /// Removes a peer and all its files.
    pub fn remove_peer(&mut self, id: &PeerId) -> bool {
        let Some(slot) = self.peer_slots.remove(id) else {
            return false;
        };
        let rec = self.peers[slot as usize]
            .take()
            .expect("mapped slot is live");
        self.count_host(rec.endpoint.host, false);
        self.count_files(rec.endpoint.host, rec.files.len(), false);
        for name_slot in rec.files {
            self.drop_holding(name_slot, slot);
        }
        self.free_peers.push(slot);
        self.maybe_compact();
        true
    }

    /// Drops every peer whose lease has run out, with its files. Returns their ids.
    pub fn expire(&mut self, now: Millis) -> Vec<PeerId> {
        let expired: Vec<PeerId> = self
            .peers
            .iter()
            .flatten()
            .filter(|p| p.lease_until <= now)
            .map(|p| p.id.clone())
            .collect();
        for id in &expired {
            self.remove_peer(id);
        }
        expired
    }

    /// Live holders of `name`, optionally only those with content `id`, borrowed from
    /// the store (the hot path of `get`: nothing is copied).
    pub fn holder_refs(
        &self,
        name: &str,
        id: Option<Sha1Digest>,
        now: Millis,
    ) -> Vec<HolderRef<'_>> {
        let Some(slot) = self.name_slot(name) else {
            return Vec::new();
        };
        self.names[slot as usize]
            .holdings
            .as_slice()
            .iter()
            .filter(|h| id.is_none() || h.content_id() == id)
            .filter_map(|h| {
                let p = self.peer(h.peer);
                (p.lease_until > now).then_some(HolderRef {
                    head: &p.head,
                    peer: &p.id,
                    name: &p.name,
                    endpoint: p.endpoint,
                    meta: h.meta(),
                })
            })
            .collect()
    }

    /// Live holders of `name`, optionally only those with content `id`.
    pub fn holders(&self, name: &str, id: Option<Sha1Digest>, now: Millis) -> Vec<HolderView> {
        self.holder_refs(name, id, now)
            .into_iter()
            .map(|h| HolderView {
                peer: h.peer.clone(),
                name: h.name.clone(),
                endpoint: h.endpoint,
                meta: h.meta,
            })
            .collect()
    }

    /// Sets the name a peer goes by (names may repeat; only ids are unique).
    pub fn name_peer(&mut self, id: &PeerId, name: PeerId) {
        if let Some(&slot) = self.peer_slots.get(id) {
            if let Some(rec) = self.peers[slot as usize].as_mut() {
                rec.name = name;
            }
        }
    }

    /// Kind of a live peer.
    pub fn peer_kind(&self, id: &PeerId, now: Millis) -> Option<PeerKind> {
        self.live_slot(id, now).map(|s| self.peer(s).kind)
    }

    /// Names matching `query`, one row per (name, content id), most held first.
    pub fn search(&self, query: &Query, limit: usize, now: Millis) -> SearchResults {
        self.search_within(query, limit, now, EXAMINE_CAP)
    }

    /// [`IndexStore::search`], looking at no more than `examine` names.
    pub fn search_within(
        &self,
        query: &Query,
        limit: usize,
        now: Millis,
        examine: usize,
    ) -> SearchResults {
        // Drive the scan from the most selective word; check the others per name.
        let mut best: Option<(usize, &str)> = None;
        for word in &query.include {
            let token = search::lookup_token(word);
            let mut estimate = 0usize;
            for (_, list) in self.prefix_range(token) {
                estimate += list.len();
                if best.is_some_and(|(b, _)| estimate >= b) {
                    break;
                }
            }
            if best.is_none_or(|(b, _)| estimate < b) {
                best = Some((estimate, token));
            }
        }
        let Some((_, driver)) = best else {
            return SearchResults::default();
        };
        let mut seen: HashSet<u32> = HashSet::new();
        let multi_token = self.prefix_range(driver).nth(1).is_some();
        let mut rows: Vec<SearchRow> = Vec::new();
        let mut truncated = false;
        let mut examined = 0;
        // One buffer for the lowercased names: no allocation per name looked at.
        let mut lower = String::new();
        'scan: for (_, list) in self.prefix_range(driver) {
            for &slot in list.as_slice() {
                if multi_token && !seen.insert(slot) {
                    continue;
                }
                let entry = &self.names[slot as usize];
                if entry.holdings.is_empty() {
                    continue;
                }
                if examined == examine {
                    truncated = true;
                    break 'scan;
                }
                examined += 1;
                lower.clear();
                lower.extend(self.name_of(slot).chars().flat_map(char::to_lowercase));
                if !query.matches(&lower) {
                    continue;
                }
                let before = rows.len();
                self.rows_for(slot, now, &mut rows);
                if rows.len() > before && rows.len() >= COLLECT_CAP {
                    truncated = true;
                    break 'scan;
                }
            }
        }
        rows.sort_by(|a, b| b.holders.cmp(&a.holders).then_with(|| a.name.cmp(&b.name)));
        let more = truncated || rows.len() > limit;
        rows.truncate(limit);
        SearchResults { rows, more }
    }

    /// The files whose holders claim the whole-file SHA-1 `sha1`: one row per (name,
    /// content id), most held first, as [`IndexStore::search`] gives them. What the
    /// holders claim, not what the index checked: it never sees the bytes.
    pub fn search_sha1(&self, sha1: Sha1Digest, limit: usize, now: Millis) -> SearchResults {
        let key = sha1_key(&sha1.0);
        let first = self.by_sha1.get(&key).copied();
        let more = self.by_sha1_more.get(&key).map_or(&[][..], Vec::as_slice);
        let mut rows = Vec::new();
        let mut truncated = false;
        for (examined, slot) in first.into_iter().chain(more.iter().copied()).enumerate() {
            if examined == EXAMINE_CAP || rows.len() >= COLLECT_CAP {
                truncated = true;
                break;
            }
            self.rows_where(slot, now, |h| h.sha1() == Some(sha1), &mut rows);
        }
        rows.sort_by(|a, b| b.holders.cmp(&a.holders).then_with(|| a.name.cmp(&b.name)));
        let more = truncated || rows.len() > limit;
        rows.truncate(limit);
        SearchResults { rows, more }
    }

    fn rows_for(&self, slot: u32, now: Millis, out: &mut Vec<SearchRow>) {
        self.rows_where(slot, now, |_| true, out)
    }

    /// The rows of one name, one per content id, counting the live holders that
    /// `keep` takes. A row shows the whole-file SHA-1 its holders claim when they
    /// agree on one; `None` when none claims one or they claim different ones.
    fn rows_where(
        &self,
        slot: u32,
        now: Millis,
        keep: impl Fn(&Holding) -> bool,
        out: &mut Vec<SearchRow>,
    ) {
        let start = out.len();
        let mut claims: Vec<Claim> = Vec::new();
        for h in self.names[slot as usize].holdings.as_slice() {
            if self.peer(h.peer).lease_until <= now || !keep(h) {
                continue;
            }
            let meta = h.meta();
            match out[start..].iter().position(|r| r.meta.id == meta.id) {
                Some(at) => {
                    out[start + at].holders += 1;
                    claims[at] = claims[at].and(meta.sha1);
                }
                None => {
                    out.push(SearchRow {
                        name: self.name_of(slot).to_owned(),
                        meta,
                        holders: 1,
                    });
                    claims.push(Claim::Nothing.and(meta.sha1));
                }
            }
        }
        for (row, claim) in out[start..].iter_mut().zip(claims) {
            row.meta.sha1 = match claim {
                Claim::One(d) => Some(d),
                Claim::Nothing | Claim::Differ => None,
            };
        }
    }

    fn prefix_range<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a Token, &'a OneOrMany<u32>)> + 'a {
        self.words
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(k, _)| k.as_str().starts_with(prefix))
    }

    /// Drops names without holdings from the word index once they are a large share.
    fn maybe_compact(&mut self) {
        let live = self.name_slots.len() - self.empty_names;
        if self.empty_names > 1024 && self.empty_names > live {
            self.compact();
        }
    }

    /// Removes every name without holdings from the word index, frees its slot and
    /// rebuilds the name arena without the text of freed names.
    pub fn compact(&mut self) {
        let names = &self.names;
        self.words.retain(|_, list| {
            list.retain(|&s| !names[s as usize].holdings.is_empty());
            !list.is_empty()
        });
        let mut freed = Vec::new();
        self.name_slots.retain(|&mut s| {
            let keep = !names[s as usize].holdings.is_empty();
            if !keep {
                freed.push(s);
            }
            keep
        });
        for &s in &freed {
            self.names[s as usize].len = 0;
            self.free_names.push(s);
        }
        let mut text = String::with_capacity(self.name_text.len());
        for entry in &mut self.names {
            let at = text.len() as u32;
            text.push_str(text_of(&self.name_text, entry));
            entry.at = at;
        }
        self.name_text = text;
        let (names, text, hasher) = (&self.names, &self.name_text, &self.hasher);
        self.name_slots
            .shrink_to_fit(|&s| hasher.hash_one(text_of(text, &names[s as usize])));
        self.empty_names = 0;
    }

    /// Gives back spare capacity, after a bulk load.
    pub fn shrink_to_fit(&mut self) {
        self.names.shrink_to_fit();
        // Keys inserted in order leave B-tree nodes half full; a tree collected from
        // sorted pairs is built with full nodes.
        self.words = std::mem::take(&mut self.words).into_iter().collect();
        for list in self.words.values_mut() {
            list.shrink_to_fit();
        }
        for p in self.peers.iter_mut().flatten() {
            p.files.shrink_to_fit();
        }
        self.by_sha1.shrink_to_fit();
        self.by_sha1_more.shrink_to_fit();
        self.name_text.shrink_to_fit();
        let (names, text, hasher) = (&self.names, &self.name_text, &self.hasher);
        self.name_slots
            .shrink_to_fit(|&s| hasher.hash_one(text_of(text, &names[s as usize])));
    }

    pub fn counts(&self) -> StoreCounts {
        StoreCounts {
            peers: self.peer_slots.len(),
            names: self.name_slots.len() - self.empty_names,
            entries: self.entries,
            words: self.words.len(),
        }
    }
}

#[cfg(test)]
mod tests;
