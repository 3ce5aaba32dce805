//! Broadcast over the active views: Plumtree (epidemic broadcast trees).
//!
//! Every neighbour link is either **eager** (full messages are pushed on it) or
//! **lazy** (only message ids are announced on it, in batches). Links start eager (up
//! to `eager_max` per node; beyond it they start lazy);
//! a node that receives a message it already has prunes the link it came on, so the
//! eager links settle into a spanning tree and each peer receives about one copy of a
//! message. A node that hears of a message (`ihave`) but does not receive it within
//! the graft timeout asks the announcer for it (`graft`), which also makes that link
//! eager again: the tree repairs itself around dead or slow nodes. A link that comes up
//! is told the ids of recent broadcasts, so a peer that was cut off catches up.
//!
//! Each message is delivered at most once (the seen-cache, bounded in size and time),
//! and forwarded at most once, only while its hop count is under the limit. A message
//! that its origin did not sign ([`Broadcast::authentic`]) is dropped and counted
//! before it is remembered as seen: a forged copy must never make the real message,
//! arriving later under the same id, look like a duplicate. Only first copies are
//! checked, so a message costs each peer one signature check (and a death whose
//! certificate the peer does not hold yet, a second one). A text (`say`) whose
//! origin exceeds its rate here ([`OriginRates`]) is neither delivered nor forwarded:
//! it is remembered as seen, without its payload, and counted.
//!
//! This module owns no sockets and no clock: messages and time go in, messages to
//! send and messages to deliver come out.

use super::origin_rate::OriginRates;
use super::{Body, Broadcast, GossipConfig, Msg, MsgId};
use crate::clock::Millis;
use crate::protocol::name::PeerId;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Counters, for `status` and the simulator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GossipStats {
    /// Full copies received (first copies and duplicates).
    pub received: u64,
    pub duplicates: u64,
    pub delivered: u64,
    /// Full copies sent (eager pushes and answers to grafts).
    pub pushed: u64,
    pub announced: u64,
    pub grafts: u64,
    pub prunes: u64,
    /// Texts dropped because their origin sent them faster than its rate.
    pub dropped_rate: u64,
    /// Messages dropped because their origin's signature, or the certificate of the
    /// member they speak of, does not verify.
    pub dropped_signature: u64,
}

/// What the node knows that bears on letting a broadcast in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Known {
    /// The origin is a live member this node knows (held only to its own rate, not
    /// to the newcomers').
    pub member_origin: bool,
    /// This node holds, byte for byte, the certificate a death names: it needs no
    /// check.
    pub cert_held: bool,
}

struct Seen {
    at: Millis,
    /// Kept for `payload_ttl` to answer grafts and catch new neighbours up.
    payload: Option<Broadcast>,
}

struct Missing {
    /// Neighbours that announced the message, oldest first.
    announcers: VecDeque<PeerId>,
    deadline: Millis,
}

/// The broadcast state of one peer.
pub struct Plumtree {
    config: GossipConfig,
    eager: BTreeSet<PeerId>,
    lazy: BTreeSet<PeerId>,
    seen: BTreeMap<MsgId, Seen>,
    /// Seen ids in arrival order, for expiry.
    seen_order: VecDeque<(Millis, MsgId)>,
    /// Ids whose payload is still kept, in arrival order.
    payload_order: VecDeque<(Millis, MsgId)>,
    missing: BTreeMap<MsgId, Missing>,
    pending_ihave: BTreeMap<PeerId, Vec<(MsgId, u32)>>,
    next_flush: Millis,
    out: Vec<(PeerId, Msg)>,
    delivered: Vec<Broadcast>,
    rates: OriginRates,
    pub stats: GossipStats,
}

/// Most ids one `ihave` carries.
const IHAVE_BATCH: usize = 512;
/// Most messages waited for at once (announced but not received).
const MISSING_MAX: usize = 4096;

impl Plumtree {
    pub fn new(config: GossipConfig) -> Plumtree {
        Plumtree {
            rates: OriginRates::new(config.origin_limits.clone()),
            config,
            eager: BTreeSet::new(),
            lazy: BTreeSet::new(),
            seen: BTreeMap::new(),
            seen_order: VecDeque::new(),
            payload_order: VecDeque::new(),
            missing: BTreeMap::new(),
            pending_ihave: BTreeMap::new(),
            next_flush: Millis(0),
            out: Vec::new(),
            delivered: Vec::new(),
            stats: GossipStats::default(),
        }
    }

    pub fn config(&self) -> &GossipConfig {
        &self.config
    }

    fn is_neighbour(&self, id: &PeerId) -> bool {
        self.eager.contains(id) || self.lazy.contains(id)
    }

    pub fn eager_count(&self) -> usize {
        self.eager.len()
    }

    /// Messages to send, addressed by peer id.
    pub fn take_out(&mut self) -> Vec<(PeerId, Msg)> {
        std::mem::take(&mut self.out)
    }

    /// Broadcasts delivered since the last call, each exactly once.
    pub fn take_delivered(&mut self) -> Vec<Broadcast> {
        std::mem::take(&mut self.delivered)
    }

    pub fn has_seen(&self, id: &MsgId) -> bool {
        self.seen.contains_key(id)
    }

    /// A link came up: push on it (or only announce, when this node already pushes on
    /// `eager_max` links), and tell it what was broadcast recently.
    pub fn neighbor_up(&mut self, id: PeerId, now: Millis) {
        if !self.eager.contains(&id) {
            if self.eager.len() < self.config.eager_max {
                self.lazy.remove(&id);
                self.eager.insert(id.clone());
            } else {
                self.lazy.insert(id.clone());
            }
        }
        let since = Millis(
            now.0
                .saturating_sub(self.config.recent_window.as_millis() as u64),
        );
        let recent: Vec<(MsgId, u32)> = self
            .payload_order
            .iter()
            .rev()
            .take_while(|(at, _)| *at >= since)
            .filter_map(|(_, mid)| {
                let s = self.seen.get(mid)?;
                s.payload.as_ref().map(|b| (*mid, b.hops.saturating_add(1)))
            })
            .take(self.config.recent_max)
            .collect();
        if !recent.is_empty() {
            self.stats.announced += recent.len() as u64;
            self.out.push((id, Msg::IHave { ids: recent }));
        }
    }

    pub fn neighbor_down(&mut self, id: &PeerId) {
        self.eager.remove(id);
        self.lazy.remove(id);
        self.pending_ihave.remove(id);
        for m in self.missing.values_mut() {
            m.announcers.retain(|a| a != id);
        }
    }

    fn remember(&mut self, b: &Broadcast, now: Millis) {
        let id = b.id();
        self.seen.insert(
            id,
            Seen {
                at: now,
                payload: Some(b.clone()),
            },
        );
        self.seen_order.push_back((now, id));
        self.payload_order.push_back((now, id));
        self.missing.remove(&id);
    }

    /// Pushes a first-seen message on to every neighbour but `from`.
    fn forward(&mut self, b: &Broadcast, from: Option<&PeerId>) {
        if b.hops >= self.config.hop_limit {
            return;
        }
        let next = Broadcast {
            hops: b.hops + 1,
            ..b.clone()
        };
        let id = b.id();
        for p in self.eager.iter().filter(|p| Some(*p) != from) {
            self.stats.pushed += 1;
            self.out.push((p.clone(), Msg::Gossip(next.clone())));
        }
        for p in self.lazy.iter().filter(|p| Some(*p) != from) {
            self.pending_ihave
                .entry(p.clone())
                .or_default()
                .push((id, next.hops));
        }
    }

    /// Sends a new broadcast from this node (delivered here too).
    pub fn broadcast(&mut self, b: Broadcast, now: Millis) {
        self.remember(&b, now);
        self.stats.delivered += 1;
        self.delivered.push(b.clone());
        self.forward(&b, None);
    }

    /// A full message arrived from `from` (a neighbour or not), from an origin this
    /// node does not know as a member.
    pub fn on_gossip(&mut self, from: &PeerId, b: Broadcast, now: Millis) {
        self.on_gossip_from(from, b, Known::default(), now);
    }

    /// A full message arrived from `from`, with what this node knows of it.
    pub fn on_gossip_from(&mut self, from: &PeerId, b: Broadcast, known: Known, now: Millis) {
        self.stats.received += 1;
        let id = b.id();
        if self.seen.contains_key(&id) {
            self.stats.duplicates += 1;
            if self.eager.remove(from) {
                self.lazy.insert(from.clone());
                self.stats.prunes += 1;
                self.out.push((from.clone(), Msg::Prune));
            }
            return;
        }
        // Before the rate too: a forged text must not spend its origin's budget.
        if !b.authentic_holding(known.cert_held) {
            self.stats.dropped_signature += 1;
            return;
        }
        if matches!(b.body, Body::Say(_)) && !self.rates.admit(&b.origin, known.member_origin, now)
        {
            // Seen, so that other copies count as duplicates; no payload, so that it
            // is neither relayed nor given to a graft.
            self.stats.dropped_rate += 1;
            self.seen.insert(
                id,
                Seen {
                    at: now,
                    payload: None,
                },
            );
            self.seen_order.push_back((now, id));
            self.missing.remove(&id);
            return;
        }
        self.remember(&b, now);
        self.stats.delivered += 1;
        self.delivered.push(b.clone());
        if self.is_neighbour(from) {
            self.lazy.remove(from);
            self.eager.insert(from.clone());
        }
        self.forward(&b, Some(from));
    }

    pub fn on_ihave(&mut self, from: &PeerId, ids: Vec<(MsgId, u32)>, now: Millis) {
        let deadline = now.plus(self.config.graft_timeout);
        for (id, _hops) in ids {
            if self.seen.contains_key(&id) {
                continue;
            }
            if let Some(m) = self.missing.get_mut(&id) {
                if !m.announcers.contains(from) {
                    m.announcers.push_back(from.clone());
                }
            } else if self.missing.len() < MISSING_MAX {
                self.missing.insert(
                    id,
                    Missing {
                        announcers: VecDeque::from([from.clone()]),
                        deadline,
                    },
                );
            }
        }
    }

    pub fn on_graft(&mut self, from: &PeerId, id: MsgId, now: Millis) {
        if self.is_neighbour(from) {
            self.lazy.remove(from);
            self.eager.insert(from.clone());
        }
        let ttl = self.config.payload_ttl.as_millis() as u64;
        if let Some(Seen {
            at,
            payload: Some(b),
        }) = self.seen.get(&id)
        {
            if now.0.saturating_sub(at.0) <= ttl {
                self.stats.pushed += 1;
                let b = Broadcast {
                    hops: b.hops.saturating_add(1),
                    ..b.clone()
                };
                self.out.push((from.clone(), Msg::Gossip(b)));
            }
        }
    }

    pub fn on_prune(&mut self, from: &PeerId) {
        if self.eager.remove(from) {
            self.lazy.insert(from.clone());
        }
    }

    /// Timers: graft what was announced but did not arrive, send batched
    /// announcements, forget old ids.
    pub fn tick(&mut self, now: Millis) {
        let due: Vec<MsgId> = self
            .missing
            .iter()
            .filter(|(_, m)| m.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(m) = self.missing.get_mut(&id) else {
                continue;
            };
            match m.announcers.pop_front() {
                Some(a) => {
                    m.deadline = now.plus(self.config.graft_timeout);
                    if self.lazy.remove(&a) {
                        self.eager.insert(a.clone());
                    }
                    self.stats.grafts += 1;
                    self.out.push((a, Msg::Graft { id }));
                }
                None => {
                    self.missing.remove(&id);
                }
            }
        }
        if now >= self.next_flush {
            self.next_flush = now.plus(self.config.ihave_interval);
            for (peer, ids) in std::mem::take(&mut self.pending_ihave) {
                for batch in ids.chunks(IHAVE_BATCH) {
                    self.stats.announced += batch.len() as u64;
                    self.out.push((
                        peer.clone(),
                        Msg::IHave {
                            ids: batch.to_vec(),
                        },
                    ));
                }
            }
        }
        self.expire(now);
    }

    fn expire(&mut self, now: Millis) {
        let ttl = self.config.seen_ttl.as_millis() as u64;
        while let Some(&(at, id)) = self.seen_order.front() {
            if now.0.saturating_sub(at.0) < ttl && self.seen_order.len() <= self.config.seen_max {
                break;
            }
            self.seen_order.pop_front();
            if self.seen.get(&id).map(|s| s.at) == Some(at) {
                self.seen.remove(&id);
            }
        }
        let payload_ttl = self.config.payload_ttl.as_millis() as u64;
        while let Some(&(at, id)) = self.payload_order.front() {
            if now.0.saturating_sub(at.0) < payload_ttl {
                break;
            }
            self.payload_order.pop_front();
            if let Some(s) = self.seen.get_mut(&id) {
                if s.at == at {
                    s.payload = None;
                }
            }
        }
    }

    /// The earliest time `tick` has work to do.
    pub fn poll_at(&self) -> Millis {
        let mut at = Millis(u64::MAX);
        if !self.pending_ihave.is_empty() {
            at = at.min(self.next_flush);
        }
        if let Some(m) = self.missing.values().map(|m| m.deadline).min() {
            at = at.min(m);
        }
        at
    }

    pub fn seen_len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{NodeKey, Sig};
    use crate::overlay::Body;

    fn id(s: &str) -> PeerId {
        PeerId::parse(s).unwrap()
    }

    fn msg(seq: u64) -> Broadcast {
        let key = NodeKey::for_test("o");
        let mut b = Broadcast {
            origin: key.id().clone(),
            seq,
            hops: 0,
            time_ms: 0,
            sig: Sig::NONE,
            body: Body::Say(format!("m{seq}")),
        };
        b.sign(&key);
        b
    }

    fn tree(neighbours: &[&str]) -> Plumtree {
        let mut t = Plumtree::new(GossipConfig::default());
        for n in neighbours {
            t.neighbor_up(id(n), Millis(0));
        }
        t
    }

    #[test]
    fn first_copy_is_delivered_and_pushed_on_duplicates_prune() {
        let mut t = tree(&["a", "b", "c"]);
        t.on_gossip(&id("a"), msg(1), Millis(10));
        assert_eq!(t.take_delivered().len(), 1);
        let out = t.take_out();
        let pushed: Vec<_> = out.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            pushed,
            ["b", "c"],
            "pushed to every eager link but the sender"
        );
        assert!(out
            .iter()
            .all(|(_, m)| matches!(m, Msg::Gossip(b) if b.hops == 1)));
        // The same message again, from b: not delivered, and b is pruned.
        t.on_gossip(&id("b"), msg(1), Millis(11));
        assert!(t.take_delivered().is_empty());
        assert_eq!(t.take_out(), vec![(id("b"), Msg::Prune)]);
        assert_eq!(t.stats.duplicates, 1);
        // The next message goes eagerly to a and c, lazily to b.
        t.on_gossip(&id("c"), msg(2), Millis(20));
        let out = t.take_out();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, id("a"));
        t.tick(Millis(100));
        let out = t.take_out();
        assert!(matches!(&out[..], [(p, Msg::IHave { ids })] if *p == id("b") && ids.len() == 1));
    }

    #[test]
    fn an_announced_message_that_does_not_arrive_is_grafted_in_turn() {
        let mut t = tree(&["a", "b"]);
        t.take_out();
        let m = msg(5);
        t.on_prune(&id("a"));
        t.on_prune(&id("b"));
        t.on_ihave(&id("a"), vec![(m.id(), 1)], Millis(0));
        t.on_ihave(&id("b"), vec![(m.id(), 1)], Millis(5));
        t.tick(Millis(100));
        assert!(
            t.take_out().is_empty(),
            "not yet: the eager copy may still come"
        );
        t.tick(Millis(250));
        assert_eq!(t.take_out(), vec![(id("a"), Msg::Graft { id: m.id() })]);
        t.tick(Millis(500));
        assert_eq!(t.take_out(), vec![(id("b"), Msg::Graft { id: m.id() })]);
        t.on_gossip(&id("b"), m.clone(), Millis(510));
        assert_eq!(t.take_delivered(), vec![m]);
        t.tick(Millis(2000));
        assert!(
            t.take_out()
                .iter()
                .all(|(_, m)| !matches!(m, Msg::Graft { .. })),
            "nothing is grafted once the message arrived"
        );
    }

    #[test]
    fn a_graft_is_answered_with_the_payload_and_makes_the_link_eager() {
        let mut t = tree(&["a", "b"]);
        t.on_gossip(&id("a"), msg(1), Millis(0));
        t.on_prune(&id("b"));
        t.take_out();
        t.on_graft(&id("b"), msg(1).id(), Millis(10));
        assert!(matches!(&t.take_out()[..], [(p, Msg::Gossip(b))] if *p == id("b") && b.seq == 1));
        t.on_gossip(&id("a"), msg(2), Millis(20));
        assert!(t.take_out().iter().any(|(p, _)| *p == id("b")));
    }

    #[test]
    fn a_new_neighbour_hears_of_recent_broadcasts() {
        let mut t = tree(&["a"]);
        t.on_gossip(&id("a"), msg(1), Millis(0));
        t.take_out();
        t.neighbor_up(id("z"), Millis(1000));
        assert!(
            matches!(&t.take_out()[..], [(p, Msg::IHave { ids })] if *p == id("z") && ids[0].0 == msg(1).id())
        );
        t.neighbor_up(id("y"), Millis(100_000));
        assert!(t.take_out().is_empty(), "too old to announce");
    }

    #[test]
    fn the_hop_limit_stops_forwarding_but_not_delivery() {
        let mut t = tree(&["a", "b"]);
        let mut m = msg(1);
        m.hops = GossipConfig::default().hop_limit;
        t.on_gossip(&id("a"), m, Millis(0));
        assert_eq!(t.take_delivered().len(), 1);
        assert!(t.take_out().is_empty());
    }

    #[test]
    fn a_message_at_the_largest_hop_count_is_announced_and_grafted_without_overflow() {
        let mut t = tree(&["a"]);
        let mut m = msg(1);
        m.hops = u32::MAX;
        t.on_gossip(&id("a"), m.clone(), Millis(0));
        assert_eq!(t.take_delivered().len(), 1);
        assert!(t.take_out().is_empty(), "not forwarded");
        t.neighbor_up(id("b"), Millis(10));
        assert!(
            matches!(&t.take_out()[..], [(_, Msg::IHave { ids })] if ids[0] == (m.id(), u32::MAX))
        );
        t.on_graft(&id("b"), m.id(), Millis(20));
        assert!(matches!(&t.take_out()[..], [(_, Msg::Gossip(b))] if b.hops == u32::MAX));
    }

    #[test]
    fn a_forged_copy_is_dropped_without_hiding_the_real_message() {
        let mut t = tree(&["a", "b"]);
        let real = msg(1);
        // Same origin and seq (so the same id), another text, signed by another key.
        let mut forged = Broadcast {
            body: Body::Say("forged".into()),
            ..real.clone()
        };
        forged.sign(&NodeKey::for_test("mallory"));
        t.on_gossip(&id("a"), forged.clone(), Millis(0));
        // The real text's signature on another text does not verify either.
        t.on_gossip(
            &id("a"),
            Broadcast {
                sig: real.sig,
                ..forged
            },
            Millis(1),
        );
        assert!(t.take_delivered().is_empty());
        assert!(t.take_out().is_empty(), "not forwarded");
        assert_eq!(t.stats.dropped_signature, 2);
        assert!(!t.has_seen(&real.id()));
        t.on_gossip(&id("b"), real.clone(), Millis(2));
        assert_eq!(t.take_delivered(), vec![real]);
        assert_eq!(t.stats.duplicates, 0);
    }

    #[test]
    fn a_death_needs_the_members_certificate_a_refutation_its_own_signature() {
        use crate::overlay::{sign_incarnation, MemberEvent, MemberInfo, MemberState};
        let (o, x) = (NodeKey::for_test("o"), NodeKey::for_test("x"));
        let name = id("x");
        let news = |origin: &NodeKey, state, cert| {
            let mut b = Broadcast {
                body: Body::Member(MemberEvent {
                    info: MemberInfo {
                        id: x.id().clone(),
                        addr: "127.0.0.1:9".parse().unwrap(),
                        incarnation: 3,
                        state,
                        degree: 0,
                        name: name.clone(),
                        cert,
                    },
                }),
                origin: origin.id().clone(),
                ..msg(1)
            };
            b.sign(origin);
            b
        };
        let real = sign_incarnation(&x, 3, &name);
        let forged = sign_incarnation(&o, 3, &name);
        assert!(news(&o, MemberState::Dead, real).authentic());
        assert!(!news(&o, MemberState::Dead, forged).authentic());
        // A receiver that holds the certificate named does not check it again.
        assert!(news(&o, MemberState::Dead, real).authentic_holding(true));
        // Only x itself refutes or leaves; its signature proves the incarnation.
        assert!(!news(&o, MemberState::Alive, real).authentic());
        assert!(!news(&o, MemberState::Left, real).authentic());
        assert!(news(&x, MemberState::Alive, real).authentic());
    }

    #[test]
    fn the_seen_cache_is_bounded_in_size_and_time() {
        let mut t = Plumtree::new(GossipConfig {
            seen_max: 10,
            ..GossipConfig::default()
        });
        for s in 0..50 {
            t.on_gossip(&id("a"), msg(s), Millis(s));
            t.tick(Millis(s));
        }
        assert!(t.seen_len() <= 10);
        t.tick(Millis(3_600_000));
        assert_eq!(t.seen_len(), 0);
    }
}
