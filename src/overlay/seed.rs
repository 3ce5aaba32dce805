//! A seed: the bootstrap registry peers register with.
//!
//! State document:
//!
//! * **Registry.** Each peer that registered (or that another seed vouches for) has a
//!   record: address, incarnation, degree, state, and when it was last seen. A
//!   registration is first-hand proof of life: it makes the record alive and clears any
//!   pending report. A peer that registers lists its neighbours, which vouches for
//!   them. A peer that registers while held dead at its incarnation is listed dead in
//!   the answer, so that it refutes with a higher one: the other seeds' syncs hold it
//!   dead until then, and would forever.
//! * **Deaths are suspicions.** One report of a death starts the seed's own probe; the
//!   record is declared dead only when every try of that probe fails, or when a second,
//!   distinct peer reports the same death. A peer reporting that it leaves is removed
//!   at once.
//! * **Forgetting.** A record neither seen nor vouched for (by a registration, a
//!   neighbour list, or another seed) within `forget_after` is dropped. Dead records
//!   stay as tombstones for `dead_retention`, so stale news does not revive them.
//! * **Convergence.** Every `sync_interval` the seed sends its registry to every other
//!   seed it knows: those configured, and those that sent it theirs recently. Merging
//!   keeps the most recent sighting and SWIM's precedence (higher incarnation wins;
//!   dead beats alive at the same incarnation), so all seeds converge on one view. Only
//!   seeds send registries: a peer's word is a report, never a death. A sighting from
//!   before this seed's clock started is not taken: as "at 0" it would look recent.
//! * **Peer lists** are the live records, a random sample of `list_cap` when larger.
//!
//! No sockets, clocks or threads: messages and `now` in, messages out.

use super::member::{Member, MemberRow, View};
use super::{
    after, Core, Departure, Dest, DetMap, ListStatus, MemberInfo, MemberState, Msg, Out,
    OverlayEvent, OverlayStatus, SeedConfig, SeedRow, Sender,
};
use crate::clock::Millis;
use crate::protocol::name::PeerId;
use crate::protocol::MAX_ROWS;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// A seed's record of a peer.
#[derive(Clone, Debug)]
pub struct Record {
    pub addr: SocketAddr,
    pub incarnation: u64,
    pub degree: u32,
    pub state: MemberState,
    /// Last registration here, or the most recent sighting another seed reported.
    pub last_seen: Millis,
    /// Last time a registering neighbour listed it.
    pub vouched: Millis,
    /// When the state last changed.
    pub since: Millis,
    /// Distinct peers that reported it dead since it was last seen.
    pub reporters: BTreeSet<PeerId>,
    probe: Option<SeedProbe>,
}

#[derive(Clone, Debug)]
struct SeedProbe {
    seq: u64,
    tries: u32,
    deadline: Millis,
}

/// Counters, for `status`.
#[derive(Clone, Debug, Default)]
pub struct SeedStats {
    pub registrations: u64,
    pub reports: u64,
    pub deaths: u64,
    pub syncs_received: u64,
}

/// How long a seed that synced with us counts as a seed to sync with.
const LEARNED_FOR: u64 = 30_000;
const CLEANUP_EVERY: u64 = 5_000;

pub struct SeedNode {
    me: PeerId,
    nonce: u64,
    config: SeedConfig,
    rng: StdRng,
    /// Configured seeds (this one may be among them; it learns which).
    seeds: Vec<bool>,
    /// Seeds that sent us their registry, by address, with when.
    learned: BTreeMap<SocketAddr, Millis>,
    members: DetMap<PeerId, Record>,
    probes: BTreeMap<u64, PeerId>,
    next_probe_seq: u64,
    next_sync: Millis,
    next_cleanup: Millis,
    out: Vec<Out>,
    events: Vec<OverlayEvent>,
    pub stats: SeedStats,
}

impl SeedNode {
    /// A seed with `seeds` configured seeds. `nonce` identifies this process among the
    /// seeds (random in the runtime).
    pub fn new(
        me: PeerId,
        seeds: usize,
        config: SeedConfig,
        rng_seed: u64,
        nonce: u64,
    ) -> SeedNode {
        SeedNode {
            me,
            nonce,
            config,
            rng: StdRng::seed_from_u64(rng_seed),
            seeds: vec![false; seeds],
            learned: BTreeMap::new(),
            members: DetMap::default(),
            probes: BTreeMap::new(),
            next_probe_seq: 1,
            next_sync: Millis(0),
            next_cleanup: Millis(0),
            out: Vec::new(),
            events: Vec::new(),
            stats: SeedStats::default(),
        }
    }

    pub fn id(&self) -> &PeerId {
        &self.me
    }

    pub fn take_out(&mut self) -> Vec<Out> {
        std::mem::take(&mut self.out)
    }

    pub fn take_events(&mut self) -> Vec<OverlayEvent> {
        std::mem::take(&mut self.events)
    }

    /// Live records.
    pub fn alive(&self) -> usize {
        self.members.values().filter(|r| !r.state.is_gone()).count()
    }

    /// Live records with a death report pending.
    pub fn reported(&self) -> usize {
        self.members
            .values()
            .filter(|r| !r.state.is_gone() && !r.reporters.is_empty())
            .count()
    }

    pub fn tombstones(&self) -> usize {
        self.members.len() - self.alive()
    }

    /// Other seeds that sent their registry recently.
    pub fn seeds_heard(&self, now: Millis) -> usize {
        self.learned
            .values()
            .filter(|at| now.0.saturating_sub(at.0) < LEARNED_FOR)
            .count()
    }

    /// Configured seeds this one sends its registry to (itself excluded, once found).
    pub fn seeds_configured(&self) -> usize {
        self.seeds.iter().filter(|s| !**s).count()
    }

    pub fn records(&self) -> impl Iterator<Item = (&PeerId, &Record)> {
        self.members.iter()
    }

    pub fn record(&self, id: &PeerId) -> Option<&Record> {
        self.members.get(id)
    }

    /// Every record as a member row, by id; a live record with a death report
    /// pending shows as suspect.
    pub fn member_rows(&self) -> Vec<MemberRow> {
        let mut rows: Vec<MemberRow> = self
            .records()
            .map(|(id, r)| MemberRow {
                id: id.clone(),
                member: Member {
                    addr: r.addr,
                    incarnation: r.incarnation,
                    state: if !r.state.is_gone() && !r.reporters.is_empty() {
                        MemberState::Suspect
                    } else {
                        r.state
                    },
                    since: r.since,
                    degree: r.degree,
                    rtt_ms: None,
                },
                view: View::None,
            })
            .collect();
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        rows
    }

    fn info(id: &PeerId, r: &Record) -> MemberInfo {
        MemberInfo {
            id: id.clone(),
            addr: r.addr,
            incarnation: r.incarnation,
            state: r.state,
            degree: r.degree,
        }
    }

    fn peer_list(&mut self, exclude: &PeerId) -> Vec<MemberInfo> {
        let mut live: Vec<MemberInfo> = self
            .members
            .iter()
            .filter(|(id, r)| *id != exclude && !r.state.is_gone())
            .map(|(id, r)| Self::info(id, r))
            .collect();
        if live.len() > self.config.list_cap {
            let (sample, _) = live.partial_shuffle(&mut self.rng, self.config.list_cap);
            return sample.to_vec();
        }
        live
    }

    fn mark_gone(&mut self, id: &PeerId, state: MemberState, by: &PeerId, now: Millis) {
        let Some(r) = self.members.get_mut(id) else {
            return;
        };
        if r.state.is_gone() {
            return;
        }
        r.state = state;
        r.since = now;
        r.reporters.clear();
        if let Some(p) = r.probe.take() {
            self.probes.remove(&p.seq);
        }
        if state == MemberState::Left {
            self.events.push(OverlayEvent::Left { id: id.clone() });
        } else {
            self.stats.deaths += 1;
            self.events.push(OverlayEvent::Dead {
                id: id.clone(),
                by: by.clone(),
            });
        }
    }

    fn start_probe(&mut self, id: &PeerId, now: Millis) {
        let seq = self.next_probe_seq;
        self.next_probe_seq += 1;
        let timeout = self.config.probe_timeout;
        let Some(r) = self.members.get_mut(id) else {
            return;
        };
        if r.probe.is_some() {
            return;
        }
        r.probe = Some(SeedProbe {
            seq,
            tries: 1,
            deadline: after(now, timeout),
        });
        let to = Dest::Node(r.addr);
        self.probes.insert(seq, id.clone());
        self.out.push(Out {
            to,
            msg: Msg::Probe { seq },
        });
    }

    /// Handles one message from a peer or another seed.
    pub fn handle(&mut self, from: &Sender, msg: Msg, now: Millis) {
        match msg {
            Msg::Register {
                seq,
                incarnation,
                degree,
                neighbours,
            } => self.register(from, seq, incarnation, degree, neighbours, now),
            Msg::Report { member } => self.report(from, member, now),
            Msg::Ack { seq, incarnation } => {
                let Some(id) = self.probes.remove(&seq) else {
                    return;
                };
                if let Some(r) = self.members.get_mut(&id) {
                    r.probe = None;
                    r.reporters.clear();
                    r.last_seen = now;
                    r.incarnation = r.incarnation.max(incarnation);
                }
            }
            Msg::SeedSync { nonce, to, rows } => {
                if !from.seed {
                    // Only seeds speak for other peers: one message from a peer must
                    // not declare anyone dead.
                    return;
                }
                if nonce == self.nonce {
                    // We reached ourselves through the seed list.
                    if let Some(s) = self.seeds.get_mut(to as usize) {
                        *s = true;
                    }
                    return;
                }
                self.stats.syncs_received += 1;
                self.learned.insert(from.addr, now);
                for row in rows {
                    self.merge(row, &from.id, now);
                }
            }
            _ => {}
        }
    }

    fn register(
        &mut self,
        from: &Sender,
        seq: u64,
        incarnation: u64,
        degree: u32,
        neighbours: Vec<PeerId>,
        now: Millis,
    ) {
        if from.seed {
            return;
        }
        self.stats.registrations += 1;
        let forget = self.config.forget_after.as_millis() as u64;
        if let Some(r) = self.members.get(&from.id) {
            let recent = now.0.saturating_sub(r.last_seen.0.max(r.vouched.0)) < forget;
            if !r.state.is_gone() && recent && r.addr.ip() != from.addr.ip() {
                self.out.push(Out {
                    to: Dest::Node(from.addr),
                    msg: Msg::Peers {
                        seq,
                        status: ListStatus::Conflict,
                        members: Vec::new(),
                    },
                });
                return;
            }
        }
        // Held dead (or left) at the incarnation it registers with: the peer is told,
        // so that it refutes with a higher one (until it does, the other seeds' syncs
        // keep it dead here too).
        let held_gone = self
            .members
            .get(&from.id)
            .filter(|r| r.state.is_gone() && r.incarnation >= incarnation)
            .map(|r| Self::info(&from.id, r));
        let new = match self.members.get_mut(&from.id) {
            Some(r) => {
                let was_gone = r.state.is_gone();
                if was_gone {
                    r.since = now;
                }
                r.addr = from.addr;
                r.incarnation = r.incarnation.max(incarnation);
                r.degree = degree;
                r.state = MemberState::Alive;
                r.last_seen = now;
                r.reporters.clear();
                if let Some(p) = r.probe.take() {
                    self.probes.remove(&p.seq);
                }
                was_gone
            }
            None => {
                if self.members.len() >= self.config.members_max {
                    return;
                }
                self.members.insert(
                    from.id.clone(),
                    Record {
                        addr: from.addr,
                        incarnation,
                        degree,
                        state: MemberState::Alive,
                        last_seen: now,
                        vouched: now,
                        since: now,
                        reporters: BTreeSet::new(),
                        probe: None,
                    },
                );
                true
            }
        };
        if new {
            self.events.push(OverlayEvent::Joined {
                id: from.id.clone(),
                addr: from.addr,
            });
        }
        for n in neighbours {
            if let Some(r) = self.members.get_mut(&n) {
                if !r.state.is_gone() {
                    r.vouched = now;
                }
            }
        }
        let mut members = self.peer_list(&from.id);
        members.extend(held_gone);
        self.out.push(Out {
            to: Dest::Node(from.addr),
            msg: Msg::Peers {
                seq,
                status: ListStatus::Ok,
                members,
            },
        });
    }

    fn report(&mut self, from: &Sender, member: MemberInfo, now: Millis) {
        if from.seed {
            return;
        }
        self.stats.reports += 1;
        let id = member.id.clone();
        if member.state == MemberState::Left {
            if id == from.id {
                self.mark_gone(&id, MemberState::Left, &from.id, now);
            }
            return;
        }
        let needed = self.config.reports_needed;
        let Some(r) = self.members.get_mut(&id) else {
            return;
        };
        if r.state.is_gone() || member.incarnation < r.incarnation || id == from.id {
            return;
        }
        r.reporters.insert(from.id.clone());
        if r.reporters.len() >= needed {
            self.mark_gone(&id, MemberState::Dead, &from.id, now);
        } else {
            self.start_probe(&id, now);
        }
    }

    fn merge(&mut self, row: SeedRow, by: &PeerId, now: Millis) {
        let info = row.info;
        // A sighting from before this seed's clock started (it starts at 0) cannot be
        // held: taken as "at 0" it would look recent, and this seed's next sync would
        // make every other seed keep a silent peer another `forget_after`.
        let seen = now.0.checked_sub(row.seen_ago_ms).map(Millis);
        let forget = self.config.forget_after.as_millis() as u64;
        match self.members.get_mut(&info.id) {
            None => {
                if self.members.len() >= self.config.members_max {
                    return;
                }
                if !info.state.is_gone() && (row.seen_ago_ms >= forget || seen.is_none()) {
                    return;
                }
                let seen = seen.unwrap_or_default();
                let state = if info.state.is_gone() {
                    info.state
                } else {
                    MemberState::Alive
                };
                self.members.insert(
                    info.id.clone(),
                    Record {
                        addr: info.addr,
                        incarnation: info.incarnation,
                        degree: info.degree,
                        state,
                        last_seen: seen,
                        vouched: seen,
                        since: now,
                        reporters: BTreeSet::new(),
                        probe: None,
                    },
                );
            }
            Some(r) => {
                if info.state.is_gone() {
                    if !r.state.is_gone() && info.incarnation >= r.incarnation {
                        r.incarnation = info.incarnation;
                        self.mark_gone(&info.id, info.state, by, now);
                    }
                    return;
                }
                if r.state.is_gone() {
                    if let Some(seen) = seen.filter(|_| info.incarnation > r.incarnation) {
                        r.incarnation = info.incarnation;
                        r.addr = info.addr;
                        r.state = MemberState::Alive;
                        r.since = now;
                        r.last_seen = seen;
                    }
                    return;
                }
                if info.incarnation > r.incarnation {
                    r.incarnation = info.incarnation;
                    r.addr = info.addr;
                }
                if let Some(seen) = seen.filter(|seen| *seen > r.last_seen) {
                    r.last_seen = seen;
                    r.degree = info.degree;
                }
            }
        }
    }

    /// Runs the timers due at `now`: probe retries, syncs, forgetting.
    pub fn tick(&mut self, now: Millis) {
        let due: Vec<u64> = self
            .probes
            .iter()
            .filter(|(_, id)| {
                self.members
                    .get(*id)
                    .and_then(|r| r.probe.as_ref())
                    .is_some_and(|p| p.deadline <= now)
            })
            .map(|(s, _)| *s)
            .collect();
        for seq in due {
            let Some(id) = self.probes.remove(&seq) else {
                continue;
            };
            let tries = self.config.probe_tries;
            let timeout = self.config.probe_timeout;
            let Some(r) = self.members.get_mut(&id) else {
                continue;
            };
            let Some(p) = r.probe.as_mut() else {
                continue;
            };
            if p.tries < tries {
                p.tries += 1;
                p.deadline = after(now, timeout);
                let to = Dest::Node(r.addr);
                self.probes.insert(seq, id);
                self.out.push(Out {
                    to,
                    msg: Msg::Probe { seq },
                });
            } else {
                r.probe = None;
                let me = self.me.clone();
                self.mark_gone(&id, MemberState::Dead, &me, now);
            }
        }
        if now >= self.next_sync {
            self.next_sync = after(now, self.config.sync_interval);
            self.sync(now);
        }
        if now.0 >= self.next_cleanup.0 {
            self.next_cleanup = Millis(now.0 + CLEANUP_EVERY);
            self.cleanup(now);
        }
    }

    fn sync(&mut self, now: Millis) {
        let mut rows: Vec<SeedRow> = self
            .members
            .iter()
            .map(|(id, r)| SeedRow {
                info: Self::info(id, r),
                seen_ago_ms: now.0.saturating_sub(r.last_seen.0.max(r.vouched.0)),
            })
            .collect();
        if rows.len() > MAX_ROWS {
            // Most recently seen first: those are the ones worth spreading.
            rows.sort_by_key(|r| r.seen_ago_ms);
            rows.truncate(MAX_ROWS);
        }
        if rows.is_empty() {
            return;
        }
        for i in 0..self.seeds.len() {
            if !self.seeds[i] {
                self.out.push(Out {
                    to: Dest::Seed(i),
                    msg: Msg::SeedSync {
                        nonce: self.nonce,
                        to: i as u32,
                        rows: rows.clone(),
                    },
                });
            }
        }
        let learned: Vec<SocketAddr> = self
            .learned
            .iter()
            .filter(|(_, at)| now.0.saturating_sub(at.0) < LEARNED_FOR)
            .map(|(a, _)| *a)
            .collect();
        for addr in learned {
            self.out.push(Out {
                to: Dest::Node(addr),
                msg: Msg::SeedSync {
                    nonce: self.nonce,
                    to: u32::MAX,
                    rows: rows.clone(),
                },
            });
        }
    }

    fn cleanup(&mut self, now: Millis) {
        let forget = self.config.forget_after.as_millis() as u64;
        let keep = self.config.dead_retention.as_millis() as u64;
        let mut forgotten = Vec::new();
        self.members.retain(|id, r| {
            if r.state.is_gone() {
                return now.0.saturating_sub(r.since.0) <= keep;
            }
            let heard = r.last_seen.0.max(r.vouched.0);
            if now.0.saturating_sub(heard) > forget && r.probe.is_none() {
                forgotten.push(id.clone());
                return false;
            }
            true
        });
        for id in forgotten {
            self.events.push(OverlayEvent::Forgotten { id });
        }
        self.learned
            .retain(|_, at| now.0.saturating_sub(at.0) < LEARNED_FOR);
    }

    pub fn poll_at(&self) -> Millis {
        let mut at = self.next_sync.min(self.next_cleanup);
        for r in self.members.values() {
            if let Some(p) = &r.probe {
                at = at.min(p.deadline);
            }
        }
        at
    }
}

impl Core for SeedNode {
    /// A seed starts with its timers: its first sync goes out at once.
    fn start(&mut self, now: Millis) {
        SeedNode::tick(self, now)
    }

    fn handle(&mut self, from: &Sender, msg: Msg, now: Millis) {
        SeedNode::handle(self, from, msg, now)
    }

    fn tick(&mut self, now: Millis) {
        SeedNode::tick(self, now)
    }

    fn poll_at(&self) -> Millis {
        SeedNode::poll_at(self)
    }

    fn take_out(&mut self) -> Vec<Out> {
        SeedNode::take_out(self)
    }

    fn take_events(&mut self) -> Vec<OverlayEvent> {
        SeedNode::take_events(self)
    }

    fn status(&self, rows: bool, now: Millis) -> OverlayStatus {
        OverlayStatus {
            id: self.id().to_string(),
            peers: self.alive(),
            suspects: self.reported(),
            dead: self.tombstones(),
            seeds: self.seeds_heard(now),
            rows: if rows { self.member_rows() } else { Vec::new() },
            ..OverlayStatus::default()
        }
    }

    /// A seed sends no goodbye: the other seeds stop counting it once its syncs stop.
    fn leave(&mut self, _now: Millis) -> Departure {
        Departure::Now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::SeedConfig;

    fn from(id: &str, port: u16) -> Sender {
        Sender {
            id: PeerId::parse(id).unwrap(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            seed: false,
        }
    }

    fn register(s: &mut SeedNode, id: &str, port: u16, now: u64) -> Vec<MemberInfo> {
        s.handle(
            &from(id, port),
            Msg::Register {
                seq: 1,
                incarnation: 1,
                degree: 0,
                neighbours: vec![],
            },
            Millis(now),
        );
        match s.take_out().pop().map(|o| o.msg) {
            Some(Msg::Peers { members, .. }) => members,
            other => panic!("{other:?}"),
        }
    }

    fn seed() -> SeedNode {
        SeedNode::new(PeerId::parse("s").unwrap(), 0, SeedConfig::default(), 1, 7)
    }

    fn dead(id: &str, port: u16) -> Msg {
        Msg::Report {
            member: MemberInfo {
                id: PeerId::parse(id).unwrap(),
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                incarnation: 1,
                state: MemberState::Dead,
                degree: 0,
            },
        }
    }

    #[test]
    fn registration_returns_the_others_capped_and_random() {
        let mut s = SeedNode::new(
            PeerId::parse("s").unwrap(),
            0,
            SeedConfig {
                list_cap: 5,
                ..SeedConfig::default()
            },
            1,
            7,
        );
        for i in 0..20 {
            register(&mut s, &format!("p{i}"), 2000 + i, 0);
        }
        let list = register(&mut s, "p0", 2000, 1);
        assert_eq!(list.len(), 5);
        assert!(list.iter().all(|m| m.id.as_str() != "p0"));
        assert_eq!(s.alive(), 20);
    }

    #[test]
    fn one_report_is_a_suspicion_checked_by_probing() {
        let mut s = seed();
        register(&mut s, "a", 2001, 0);
        register(&mut s, "b", 2002, 0);
        s.handle(&from("b", 2002), dead("a", 2001), Millis(10));
        assert_eq!(s.alive(), 2, "one report alone removes nobody");
        let probe = s.take_out();
        assert!(
            matches!(&probe[..], [Out { to: Dest::Node(a), msg: Msg::Probe { .. } }] if a.port() == 2001)
        );
        // a answers: the report is dropped.
        let Msg::Probe { seq } = probe[0].msg else {
            unreachable!()
        };
        s.handle(
            &from("a", 2001),
            Msg::Ack {
                seq,
                incarnation: 1,
            },
            Millis(20),
        );
        s.tick(Millis(5000));
        assert_eq!(s.alive(), 2);
        // Reported again, and this time every probe goes unanswered.
        s.handle(&from("b", 2002), dead("a", 2001), Millis(6000));
        for t in (6000..9000).step_by(100) {
            s.tick(Millis(t));
        }
        assert_eq!(s.alive(), 1);
        assert!(s
            .take_events()
            .iter()
            .any(|e| matches!(e, OverlayEvent::Dead { id, .. } if id.as_str() == "a")));
    }

    #[test]
    fn two_distinct_reporters_make_a_death_certain() {
        let mut s = seed();
        for (p, port) in [("a", 2001), ("b", 2002), ("c", 2003)] {
            register(&mut s, p, port, 0);
        }
        s.handle(&from("b", 2002), dead("a", 2001), Millis(10));
        s.handle(&from("b", 2002), dead("a", 2001), Millis(11));
        assert_eq!(s.alive(), 3, "the same reporter twice is one report");
        s.handle(&from("c", 2003), dead("a", 2001), Millis(12));
        assert_eq!(s.alive(), 2);
        // A peer leaving on purpose goes at once, but nobody else can say it left.
        s.handle(
            &from("c", 2003),
            Msg::Report {
                member: MemberInfo {
                    state: MemberState::Left,
                    ..match dead("b", 2002) {
                        Msg::Report { member } => member,
                        _ => unreachable!(),
                    }
                },
            },
            Millis(13),
        );
        assert_eq!(s.alive(), 2);
    }

    #[test]
    fn a_registry_sent_by_a_peer_is_ignored() {
        let mut s = seed();
        register(&mut s, "a", 2001, 0);
        let row = SeedRow {
            info: match dead("a", 2001) {
                Msg::Report { member } => member,
                _ => unreachable!(),
            },
            seen_ago_ms: 0,
        };
        s.handle(
            &from("b", 2002),
            Msg::SeedSync {
                nonce: 99,
                to: 0,
                rows: vec![row],
            },
            Millis(10),
        );
        assert_eq!(s.alive(), 1, "only seeds speak for other peers");
        assert_eq!(s.seeds_heard(Millis(10)), 0);
        s.tick(Millis(20));
        assert!(s.take_out().is_empty(), "nothing is sent to the peer");
    }

    #[test]
    fn a_peer_held_dead_that_registers_is_told_so() {
        let mut s = seed();
        register(&mut s, "a", 2001, 0);
        register(&mut s, "b", 2002, 0);
        s.handle(&from("b", 2002), dead("a", 2001), Millis(10));
        s.handle(&from("c", 2003), dead("a", 2001), Millis(11));
        assert_eq!(s.alive(), 1);
        // a is alive after all and registers at the incarnation it was declared dead at:
        // the list names a itself, dead, so that a refutes with a higher incarnation.
        let list = register(&mut s, "a", 2001, 20);
        let own: Vec<_> = list.iter().filter(|m| m.id.as_str() == "a").collect();
        assert_eq!(own.len(), 1, "{list:?}");
        assert_eq!(own[0].state, MemberState::Dead);
        assert_eq!(own[0].incarnation, 1);
        // At a higher incarnation, it is simply alive.
        s.handle(
            &from("a", 2001),
            Msg::Register {
                seq: 2,
                incarnation: 2,
                degree: 0,
                neighbours: vec![],
            },
            Millis(30),
        );
        let Some(Msg::Peers { members, .. }) = s.take_out().pop().map(|o| o.msg) else {
            panic!("no answer")
        };
        assert!(members.iter().all(|m| m.id.as_str() != "a"));
        assert_eq!(s.alive(), 2);
    }

    #[test]
    fn a_seed_that_just_started_does_not_make_old_sightings_look_new() {
        let sa = Sender {
            seed: true,
            ..from("sa", 1500)
        };
        let sb = Sender {
            seed: true,
            ..from("sb", 1501)
        };
        // b has run for a while and last heard of p 50 s ago.
        let mut b = SeedNode::new(PeerId::parse("sb").unwrap(), 1, SeedConfig::default(), 2, 2);
        register(&mut b, "p", 2001, 50_000);
        b.tick(Millis(100_000));
        // a has just started (its clock counts from 0) when b's registry arrives...
        let mut a = SeedNode::new(PeerId::parse("sa").unwrap(), 1, SeedConfig::default(), 1, 1);
        for o in b.take_out() {
            a.handle(&sb, o.msg, Millis(1000));
        }
        // ...and its own registry, sent back to b, must not make p look recent.
        a.tick(Millis(3000));
        for o in a.take_out() {
            b.handle(&sa, o.msg, Millis(100_010));
        }
        let p = PeerId::parse("p").unwrap();
        assert_eq!(b.record(&p).unwrap().last_seen, Millis(50_000));
        b.tick(Millis(115_000));
        assert_eq!(b.alive(), 0, "p is forgotten in time");
    }

    #[test]
    fn silent_peers_are_forgotten_unless_vouched_for() {
        let mut s = seed();
        register(&mut s, "a", 2001, 0);
        register(&mut s, "b", 2002, 0);
        // b keeps registering, listing a as its neighbour; a itself is silent.
        for t in (10_000..120_000).step_by(10_000) {
            s.handle(
                &from("b", 2002),
                Msg::Register {
                    seq: 2,
                    incarnation: 1,
                    degree: 1,
                    neighbours: vec![PeerId::parse("a").unwrap()],
                },
                Millis(t),
            );
            s.tick(Millis(t));
        }
        assert_eq!(s.alive(), 2);
        for t in (120_000..300_000).step_by(5000) {
            s.tick(Millis(t));
        }
        assert_eq!(s.alive(), 0);
    }

    #[test]
    fn a_live_id_at_another_host_is_a_conflict() {
        let mut s = seed();
        register(&mut s, "a", 2001, 0);
        let other = Sender {
            addr: SocketAddr::from(([10, 0, 0, 9], 2001)),
            ..from("a", 2001)
        };
        s.handle(
            &other,
            Msg::Register {
                seq: 5,
                incarnation: 9,
                degree: 0,
                neighbours: vec![],
            },
            Millis(100),
        );
        assert!(matches!(
            s.take_out().pop().map(|o| o.msg),
            Some(Msg::Peers {
                status: ListStatus::Conflict,
                ..
            })
        ));
        // The same host may take its id over (a restart on another port).
        register(&mut s, "a", 3001, 200);
        assert_eq!(
            s.record(&PeerId::parse("a").unwrap()).unwrap().addr.port(),
            3001
        );
    }

    #[test]
    fn seeds_converge_through_sync() {
        let mut a = SeedNode::new(PeerId::parse("sa").unwrap(), 1, SeedConfig::default(), 1, 1);
        let mut b = SeedNode::new(PeerId::parse("sb").unwrap(), 1, SeedConfig::default(), 2, 2);
        register(&mut a, "p1", 2001, 0);
        register(&mut b, "p2", 2002, 0);
        let sa = Sender {
            seed: true,
            ..from("sa", 1500)
        };
        let sb = Sender {
            seed: true,
            ..from("sb", 1501)
        };
        a.tick(Millis(10));
        b.tick(Millis(10));
        for o in a.take_out() {
            b.handle(&sa, o.msg, Millis(11));
        }
        for o in b.take_out() {
            a.handle(&sb, o.msg, Millis(11));
        }
        assert_eq!(a.alive(), 2);
        assert_eq!(b.alive(), 2);
        assert_eq!(a.seeds_heard(Millis(11)), 1);
        // A death at one seed reaches the other.
        a.handle(&from("p2", 2002), dead("p1", 2001), Millis(20));
        a.handle(&from("p3", 2003), dead("p1", 2001), Millis(20));
        a.take_out();
        a.tick(Millis(3000));
        for o in a.take_out() {
            b.handle(&sa, o.msg, Millis(3001));
        }
        assert_eq!(b.alive(), 1);
        // A seed that reaches itself through its list stops syncing with itself.
        let mut c = SeedNode::new(PeerId::parse("sc").unwrap(), 2, SeedConfig::default(), 3, 3);
        register(&mut c, "p1", 2001, 0);
        c.tick(Millis(10));
        let out = c.take_out();
        assert_eq!(out.len(), 2);
        let own = out.into_iter().find(|o| o.to == Dest::Seed(1)).unwrap();
        let sc = Sender {
            seed: true,
            ..from("sc", 1502)
        };
        c.handle(&sc, own.msg, Millis(11));
        assert_eq!(c.seeds_configured(), 1);
        assert_eq!(c.seeds_heard(Millis(11)), 0);
    }
}
