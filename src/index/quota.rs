//! The index's quotas: what one peer id or one source address may make the index hold
//! (files, peer ids) and how fast it may change it (published rows a second), checked
//! under the store's lock before a batch is applied, so a refused batch is never half
//! applied. Every refusal counts in `status` (`refused_quota`).
//!
//! An address is its share ([`address_share`]): an IPv4 address, or an IPv6 /64. The
//! limits are the service's [`IndexConfig`].

use super::service::IndexConfig;
use super::store::{FileMeta, IndexStore};
use crate::clock::Millis;
use crate::net::address_share;
use crate::net::rate::Allowance;
use crate::protocol::name::{FileName, PeerId};
use crate::protocol::{ErrorCode, Refusal};
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The publish-rate buckets and the count of refusals.
#[derive(Default)]
pub struct Quotas {
    rates: Mutex<PublishRates>,
    refused: AtomicU64,
}

/// The rows each peer id and each address may still send: rates that hold however
/// many connections a peer, or keys a host, opens.
#[derive(Default)]
struct PublishRates {
    by_peer: HashMap<PeerId, Allowance>,
    by_address: HashMap<IpAddr, Allowance>,
}

/// Entries past which full buckets (which a fresh entry would equal) are dropped.
const RATE_ENTRIES: usize = 4096;

/// The bucket of `key`, made full when it has none. A key is cloned only when its
/// bucket is new.
fn bucket<'a, K, Q>(
    map: &'a mut HashMap<K, Allowance>,
    key: &Q,
    (rate, burst): (u64, u64),
    now: Millis,
) -> &'a mut Allowance
where
    K: Hash + Eq + std::borrow::Borrow<Q>,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
{
    if !map.contains_key(key) {
        if map.len() > RATE_ENTRIES {
            map.retain(|_, a| a.available(now) < burst);
        }
        map.insert(key.to_owned(), Allowance::new(rate, burst, now));
    }
    map.get_mut(key).expect("inserted above")
}

impl Quotas {
    /// Requests refused by a quota so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// A refusal by a quota, counted.
    fn refuse(&self, code: ErrorCode, message: String) -> Refusal {
        self.refused.fetch_add(1, Ordering::Relaxed);
        Refusal::new(code, message)
    }

    /// Refuses a new peer id from an address that has `max_peers_per_address`
    /// registered.
    pub fn peers_on(
        &self,
        c: &IndexConfig,
        store: &IndexStore,
        id: &PeerId,
        host: IpAddr,
    ) -> Result<(), Refusal> {
        let max = c.max_peers_per_address;
        if store.admits_peer(id, host, max) {
            return Ok(());
        }
        Err(self.refuse(
            ErrorCode::Busy,
            format!(
                "{host} has {max} peer ids registered, the most this index takes from one address"
            ),
        ))
    }

    /// Takes a batch's rows from its peer's and its address's publish rates, or
    /// refuses it as busy (the batch is not applied and an open sync stays open: send
    /// it again later). Both or neither are taken.
    pub fn rows(
        &self,
        c: &IndexConfig,
        peer: &PeerId,
        remote: SocketAddr,
        rows: usize,
        now: Millis,
    ) -> Result<(), Refusal> {
        let host = address_share(remote.ip());
        let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        let rates = &mut *rates;
        let by_peer = bucket(
            &mut rates.by_peer,
            peer,
            (c.publish_rate, c.publish_burst),
            now,
        );
        let by_address = bucket(
            &mut rates.by_address,
            &host,
            (c.address_rate, c.address_burst),
            now,
        );
        // A batch larger than a burst (a low rate) needs a full bucket, not more than
        // the bucket can ever hold.
        let (for_peer, for_address) = (
            (rows as u64).min(c.publish_burst),
            (rows as u64).min(c.address_burst),
        );
        let why = if by_peer.available(now) < for_peer {
            format!("over {} rows a second for this peer id", c.publish_rate)
        } else if by_address.available(now) < for_address {
            format!("over {} rows a second from {host}", c.address_rate)
        } else {
            by_peer.take(for_peer, now);
            by_address.take(for_address, now);
            return Ok(());
        };
        Err(self.refuse(
            ErrorCode::Busy,
            format!("{why}; send this batch again shortly"),
        ))
    }

    /// Refuses a batch after which the peer would hold more than `max_files_per_peer`
    /// files, or the peers of its address more than `max_files_per_address` together
    /// (twice that while a sync replaces the old set; a sync's own names count against
    /// the limit itself).
    pub fn files(
        &self,
        c: &IndexConfig,
        store: &IndexStore,
        peer: &PeerId,
        host: IpAddr,
        files: &[(FileName, FileMeta)],
        syncing: Option<&HashSet<String>>,
    ) -> Result<(), Refusal> {
        let max = c.max_files_per_peer;
        let after = store.files_after(peer, files);
        let over = match syncing {
            Some(seen) => seen.len() > max || after > max.saturating_mul(2),
            None => after > max,
        };
        if over {
            let would = syncing.map_or(after, HashSet::len);
            return Err(self.refuse(
                ErrorCode::TooLarge,
                format!("peer '{peer}' would hold {would} files; this index takes at most {max} per peer, and applied none of this batch"),
            ));
        }
        let max = c.max_files_per_address;
        let on_host = store.files_on(host) + (after - store.files_of(peer));
        let limit = if syncing.is_some() {
            max.saturating_mul(2)
        } else {
            max
        };
        if on_host <= limit {
            return Ok(());
        }
        Err(self.refuse(
            ErrorCode::TooLarge,
            format!("the peers of {host} would hold {on_host} files; this index takes at most {max} per address, and applied none of this batch"),
        ))
    }
}

/// The quotas as a client meets them: through the service's answers.
#[cfg(test)]
mod tests {
    use super::super::service::tests::{batch, index_with, row};
    use super::super::service::IndexConfig;
    use crate::net::node::HelloRole;
    use crate::net::testing::{status_rows, test_id, Session};
    use crate::net::Reply;
    use crate::net::Service;
    use crate::protocol::codec::Classic;

    #[test]
    fn the_peers_of_one_address_hold_at_most_their_share_of_files() {
        let index = index_with(IndexConfig {
            max_files_per_peer: 3,
            max_files_per_address: 5,
            ..IndexConfig::default()
        });
        let mut p1 = Session::new(&index);
        assert!(p1.hello_as(HelloRole::Peer, "p1", 2000).starts_with("ok|"));
        assert_eq!(p1.ask(&batch("publish", &["a", "b", "c"])), "ok|3\n");
        let mut p2 = Session::new(&index);
        assert!(p2.hello_as(HelloRole::Peer, "p2", 2001).starts_with("ok|"));
        let refused = p2.ask(&batch("publish", &["c", "d", "e"]));
        assert!(
            refused.starts_with(
                "err|too-large|the peers of 127.0.0.1 would hold 6 files; this index takes at most 5 per address"
            ),
            "{refused}"
        );
        assert_eq!(p2.ask(&batch("publish", &["c", "d"])), "ok|2\n");
        // A file given up makes room for another.
        assert_eq!(p1.ask("withdraw|1\na"), "ok|1\n");
        assert_eq!(p2.ask(&batch("publish", &["e"])), "ok|1\n");
    }

    #[test]
    fn a_batch_over_the_files_per_peer_quota_is_refused_whole() {
        let index = index_with(IndexConfig {
            max_files_per_peer: 3,
            ..IndexConfig::default()
        });
        let mut p = Session::new(&index);
        assert!(p.hello_as(HelloRole::Peer, "p1", 2000).starts_with("ok|"));
        assert_eq!(p.ask(&batch("publish", &["a", "b"])), "ok|2\n");
        let refused = p.ask(&batch("publish", &["b", "c", "d"]));
        assert!(
            refused.starts_with(&format!(
                "err|too-large|peer '{}' would hold 4 files; this index takes at most 3",
                test_id("p1")
            )),
            "{refused}"
        );
        let mut client = Session::new(&index);
        assert_eq!(
            client.ask("get|c"),
            "ok|0\n",
            "nothing of the batch applied"
        );
        // Names it holds already do not count twice.
        assert_eq!(p.ask(&batch("publish", &["a", "b", "c"])), "ok|3\n");
        // A sync that names more than the quota is refused, and changes nothing.
        assert!(p
            .ask(&batch("sync", &["w", "x", "y", "z"]))
            .starts_with(&format!(
                "err|too-large|peer '{}' would hold 4 files",
                test_id("p1")
            )));
        assert!(client.ask("get|a").starts_with("ok|1\n"));
        // A sync that replaces the whole set within the quota is served.
        let first = format!("sync|2|more\n{}{}", row("x", 1), row("y", 1));
        assert_eq!(p.ask(&first), "ok|2\n");
        assert_eq!(p.ask(&batch("sync", &["z"])), "ok|3\n");
        assert_eq!(client.ask("get|a"), "ok|0\n");
        assert_eq!(status_rows(&client.ask("status"))["refused_quota"], "2");
    }

    #[test]
    fn one_address_registers_only_so_many_peer_ids() {
        let index = index_with(IndexConfig {
            max_peers_per_address: 2,
            ..IndexConfig::default()
        });
        let mut s = Session::new(&index);
        assert!(s.hello_as(HelloRole::Peer, "p1", 2000).starts_with("ok|"));
        assert!(s.hello_as(HelloRole::Peer, "p2", 2000).starts_with("ok|"));
        let third = s.hello_as(HelloRole::Peer, "p3", 2000);
        assert_eq!(
            third,
            "err|busy|127.0.0.1 has 2 peer ids registered, the most this index takes from one address\n"
        );
        // Ids already registered say hello again; clients are not counted.
        assert!(s.hello_as(HelloRole::Peer, "p1", 2001).starts_with("ok|"));
        assert!(s.hello_as(HelloRole::Client, "c1", 0).starts_with("ok|"));
        // Another address is served all the same.
        let mut other = Session::from(&index, "10.0.0.2:40000");
        assert!(other
            .hello_as(HelloRole::Peer, "p3", 2000)
            .starts_with("ok|"));
        // An id that leaves frees its place.
        assert!(s.hello_as(HelloRole::Peer, "p2", 2000).starts_with("ok|"));
        assert_eq!(s.ask("bye"), "ok|bye\n");
        assert!(s.hello_as(HelloRole::Peer, "p4", 2000).starts_with("ok|"));
        // Classic `set` is held to the same count.
        let classic = index.classic(
            Classic::Set {
                name: "x.txt".into(),
                peer_id: "old".into(),
                port: "3000".into(),
            },
            "127.0.0.1:5000".parse().unwrap(),
        );
        assert!(matches!(classic, Reply::Close(ref t) if t.contains("2 peer ids registered")));
        assert_eq!(status_rows(&other.ask("status"))["refused_quota"], "2");
    }

    #[test]
    fn a_peer_or_an_address_publishing_faster_than_its_rate_is_told_busy() {
        // One row a second, five at once per peer id, eight per address: the test is
        // over long before a refill.
        let index = index_with(IndexConfig {
            publish_rate: 1,
            publish_burst: 5,
            address_rate: 1,
            address_burst: 8,
            ..IndexConfig::default()
        });
        let mut p = Session::new(&index);
        assert!(p.hello_as(HelloRole::Peer, "p1", 2000).starts_with("ok|"));
        assert_eq!(p.ask(&batch("publish", &["a", "b", "c", "d"])), "ok|4\n");
        let busy = p.ask(&batch("publish", &["e", "f"]));
        assert!(
            busy.starts_with("err|busy|over 1 rows a second for this peer id"),
            "{busy}"
        );
        let mut client = Session::new(&index);
        assert_eq!(client.ask("get|e"), "ok|0\n");
        assert!(p.ask("withdraw|2\na\nb").starts_with("err|busy|"));
        // The rate is the key's, not the connection's: another session of the same
        // peer is refused too (and reads are never rate limited).
        let mut again = Session::new(&index);
        assert!(again
            .hello_as(HelloRole::Peer, "p1", 2000)
            .starts_with("ok|"));
        assert!(again
            .ask(&batch("publish", &["e", "f"]))
            .starts_with("err|busy|"));
        assert_eq!(again.ask(&batch("publish", &["e"])), "ok|1\n");
        // Another key from the same address shares the address's eight rows.
        let mut other = Session::new(&index);
        assert!(other
            .hello_as(HelloRole::Peer, "p2", 2001)
            .starts_with("ok|"));
        assert_eq!(other.ask(&batch("publish", &["x", "y", "z"])), "ok|3\n");
        let busy = other.ask(&batch("publish", &["w"]));
        assert!(
            busy.starts_with("err|busy|over 1 rows a second from 127.0.0.1"),
            "{busy}"
        );
        assert!(p.ask("get|e").starts_with("ok|1\n"));
        assert_eq!(status_rows(&client.ask("status"))["refused_quota"], "4");
    }
}
