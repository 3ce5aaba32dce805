//! A seed: the bootstrap registry peers register with.
//!
//! State document:
//!
//! * **Registry.** Each peer that registered (or that another seed vouches for) has a
//!   record: address, incarnation with the peer's name and certificate of it, degree,
//!   state, and when it was last seen. A registration is first-hand proof of life: it
//!   makes the record alive and clears any pending report. The peer's id is a key its
//!   connection proved, so it may register from any host. A peer that registers lists
//!   its neighbours, which vouches for them. A peer that registers while held dead at
//!   its incarnation is listed dead in the answer, so that it refutes with a higher
//!   one: the other seeds' syncs hold it dead until then, and would forever.
//! * **Certificates.** An incarnation is taken (from a registration, an ack or a
//!   sync row) only with the peer's own certificate of it, checked when it would
//!   change the record; a forged one is ignored and counted.
//! * **Deaths are suspicions.** A report of a death starts the seed's own probe; the
//!   record is declared dead only when every try of that probe fails, however many
//!   peers report it (their keys are counted, for `status` only): no number of
//!   reporters outweighs an answered probe. Only the probed peer's own ack answers a
//!   probe. A peer reporting that it leaves is removed at once.
//! * **Forgetting.** A record neither seen nor vouched for (by a registration, a
//!   neighbour list, or another seed) within `forget_after` is dropped. Dead records
//!   stay as tombstones for `dead_retention`, so stale news does not revive them.
//! * **Convergence.** Every `sync_interval` the seed sends its registry to every other
//!   seed it knows: those configured, and those that sent it theirs recently. Merging
//!   keeps the most recent sighting and SWIM's precedence (higher incarnation wins;
//!   dead beats alive at the same incarnation), so all seeds converge on one view. Only
//!   seeds send registries (the sender said hello as a seed): a peer's word is a
//!   report, never a death. A sighting from before this seed's clock started is not
//!   taken: as "at 0" it would look recent.
//! * **Peer lists** are the live records, a random sample of `list_cap` when larger.
//!
//! No sockets, clocks or threads: messages and `now` in, messages out.

use super::member::{Member, MemberRow, Signed, View};
use super::{
    after, incarnation_valid, Core, Departure, Dest, DetMap, MemberInfo, MemberState, Msg, Out,
    OverlayEvent, OverlayStatus, SeedConfig, SeedRow, Sender,
};
use crate::clock::Millis;
use crate::identity::Sig;
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
    /// The peer's name, and its certificate of `incarnation` under it.
    pub name: PeerId,
    pub cert: Sig,
    pub degree: u32,
    pub state: MemberState,
    /// Last registration here, or the most recent sighting another seed reported.
    pub last_seen: Millis,
    /// Last time a registering neighbour listed it.
    pub vouched: Millis,
    /// When the state last changed.
    pub since: Millis,
    /// Distinct peers (keys) that reported it dead since it was last seen, up to
    /// `REPORTERS_MAX`: shown in `status`, never a death by themselves.
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
    /// Registrations, acks and sync rows ignored for a certificate that does not
    /// verify.
    pub dropped_signature: u64,
    /// Registrations of new ids refused: their host had as many live ids as it may.
    pub refused_quota: u64,
}

impl Record {
    /// Whether the record holds exactly this certificate of this incarnation.
    fn holds(&self, incarnation: u64, name: &PeerId, cert: &Sig) -> bool {
        self.incarnation == incarnation && self.name == *name && self.cert == *cert
    }
}

/// A registration's figures, with the certificate that proves its incarnation.
struct Registration {
    seq: u64,
    incarnation: u64,
    degree: u32,
    name: PeerId,
    cert: Sig,
}

/// Reporters remembered per record (more would only cost memory: they are counted
/// for display).
const REPORTERS_MAX: usize = 16;
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
                    signed: Some(Signed {
                        name: r.name.clone(),
                        cert: r.cert,
                    }),
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
            name: r.name.clone(),
            cert: r.cert,
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
                name,
                cert,
            } => {
                if from.seed {
                    return;
                }
                if !self.certified(&from.id, incarnation, &name, &cert) {
                    return;
                }
                let reg = Registration {
                    seq,
                    incarnation,
                    degree,
                    name,
                    cert,
                };
                self.register(from, reg, neighbours, now);
            }
            Msg::Report { member } => self.report(from, member, now),
            Msg::Ack {
                seq,
                incarnation,
                name,
                cert,
            } => self.on_ack(from, seq, incarnation, name, cert, now),
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

    /// Whether `id`'s certificate of `incarnation` may be taken: it is the one held,
    /// or older than the one held (then nothing is taken from it), or it verifies.
    /// A forged one is counted.
    fn certified(&mut self, id: &PeerId, incarnation: u64, name: &PeerId, cert: &Sig) -> bool {
        let settled = self
            .members
            .get(id)
            .is_some_and(|r| r.holds(incarnation, name, cert) || incarnation < r.incarnation);
        if settled || incarnation_valid(id, incarnation, name, cert) {
            return true;
        }
        self.stats.dropped_signature += 1;
        log::debug!("ignoring news of {id}: its certificate does not verify");
        false
    }

    /// The probed peer answered: the report that started the probe is dropped.
    fn on_ack(
        &mut self,
        from: &Sender,
        seq: u64,
        incarnation: u64,
        name: PeerId,
        cert: Sig,
        now: Millis,
    ) {
        // Only the probed peer itself answers its probe (seqs are easy to guess).
        if self.probes.get(&seq) != Some(&from.id) {
            return;
        }
        if !self.certified(&from.id, incarnation, &name, &cert) {
            return;
        }
        self.probes.remove(&seq);
        self.events.push(OverlayEvent::Cleared {
            id: from.id.clone(),
        });
        if let Some(r) = self.members.get_mut(&from.id) {
            r.probe = None;
            r.reporters.clear();
            r.last_seen = now;
            if incarnation > r.incarnation {
                r.incarnation = incarnation;
                r.name = name;
                r.cert = cert;
            }
        }
    }

    /// Members alive or suspect whose address is on `host`.
    /// Live ids registered from `host`'s address share (an IPv6 /64 counts as one).
    fn live_ids_at(&self, host: std::net::IpAddr) -> usize {
        let share = crate::net::address_share(host);
        self.members
            .values()
            .filter(|r| !r.state.is_gone() && crate::net::address_share(r.addr.ip()) == share)
            .count()
    }

    fn register(&mut self, from: &Sender, reg: Registration, neighbours: Vec<PeerId>, now: Millis) {
        self.stats.registrations += 1;
        let Registration {
            seq,
            incarnation,
            degree,
            name,
            cert,
        } = reg;
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
                if incarnation >= r.incarnation {
                    r.incarnation = incarnation;
                    r.name = name;
                    r.cert = cert;
                }
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
                if self.live_ids_at(from.addr.ip()) >= self.config.ids_per_address {
                    // Keys cost nothing: one host may not fill the registry with them.
                    // No answer: the peer finds this seed silent, and tries others.
                    self.stats.refused_quota += 1;
                    return;
                }
                self.members.insert(
                    from.id.clone(),
                    Record {
                        addr: from.addr,
                        incarnation,
                        name,
                        cert,
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
            msg: Msg::Peers { seq, members },
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
        let Some(r) = self.members.get_mut(&id) else {
            return;
        };
        if r.state.is_gone() || member.incarnation < r.incarnation || id == from.id {
            return;
        }
        if r.reporters.len() < REPORTERS_MAX {
            r.reporters.insert(from.id.clone());
        }
        self.events.push(OverlayEvent::Reported {
            id: id.clone(),
            by: from.id.clone(),
        });
        self.start_probe(&id, now);
    }

    fn merge(&mut self, row: SeedRow, by: &PeerId, now: Millis) {
        let info = row.info;
        // A sighting from before this seed's clock started (it starts at 0) cannot be
        // held: taken as "at 0" it would look recent, and this seed's next sync would
        // make every other seed keep a silent peer another `forget_after`.
        let seen = now.0.checked_sub(row.seen_ago_ms).map(Millis);
        let Some(r) = self.members.get(&info.id) else {
            self.merge_new(info, row.seen_ago_ms, seen, now);
            return;
        };
        // Whether the row's incarnation (and the state with it) would be taken.
        let takes = if info.state.is_gone() {
            !r.state.is_gone() && info.incarnation >= r.incarnation
        } else {
            info.incarnation > r.incarnation && (!r.state.is_gone() || seen.is_some())
        };
        if takes && !self.certified(&info.id, info.incarnation, &info.name, &info.cert) {
            return;
        }
        let Some(r) = self.members.get_mut(&info.id) else {
            return;
        };
        if takes {
            r.incarnation = info.incarnation;
            r.name = info.name;
            r.cert = info.cert;
        }
        if info.state.is_gone() {
            if takes {
                self.mark_gone(&info.id, info.state, by, now);
            }
            return;
        }
        if r.state.is_gone() {
            if let Some(seen) = seen.filter(|_| takes) {
                r.addr = info.addr;
                r.state = MemberState::Alive;
                r.since = now;
                r.last_seen = seen;
            }
            return;
        }
        if takes {
            r.addr = info.addr;
        }
        if let Some(seen) = seen.filter(|seen| *seen > r.last_seen) {
            r.last_seen = seen;
            r.degree = info.degree;
        }
    }

    /// A sync row about a peer this seed has no record of.
    fn merge_new(&mut self, info: MemberInfo, seen_ago_ms: u64, seen: Option<Millis>, now: Millis) {
        let forget = self.config.forget_after.as_millis() as u64;
        if self.members.len() >= self.config.members_max {
            return;
        }
        if !info.state.is_gone() && (seen_ago_ms >= forget || seen.is_none()) {
            return;
        }
        if !self.certified(&info.id, info.incarnation, &info.name, &info.cert) {
            return;
        }
        let seen = seen.unwrap_or_default();
        let state = if info.state.is_gone() {
            info.state
        } else {
            MemberState::Alive
        };
        self.members.insert(
            info.id,
            Record {
                addr: info.addr,
                incarnation: info.incarnation,
                name: info.name,
                cert: info.cert,
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
            dropped_signature: self.stats.dropped_signature,
            refused_quota: self.stats.refused_quota,
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
mod tests;
