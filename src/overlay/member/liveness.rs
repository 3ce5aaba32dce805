//! Liveness: SWIM probes of the neighbours (direct, then indirect through helpers),
//! suspicion and its refutation, death; probes relayed for others; and the classic
//! liveness of the original design (a ping per neighbour per round, dead after a few
//! misses in a row).
//!
//! [`Liveness`] owns the probes in flight, the relays, the suspicions and the miss
//! counts. A suspicion or a death changes the member table and the views and is told
//! to every peer, so those steps are the node's (below).

use super::members::Claim;
use super::{Ctx, Members, PeerNode, PeerStats};
use crate::clock::Millis;
use crate::identity::Sig;
use crate::overlay::{
    after, incarnation_valid, Dest, Liveness as Mode, MemberState, Msg, OverlayEvent, Sender,
};
use crate::protocol::name::PeerId;
use rand::seq::SliceRandom;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Most indirect probes relayed at once for others.
const RELAYS_MAX: usize = 1024;
/// Shortest gap between two probes, however many neighbours there are.
const MIN_PROBE_GAP: u64 = 10;
/// Shortest gap between two refutations by broadcast (many peers may tell a peer at
/// once that they hold it dead).
const REFUTE_BROADCAST_GAP: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProbePhase {
    Direct,
    Indirect,
}

#[derive(Clone, Debug)]
pub(super) struct Probe {
    pub target: PeerId,
    started: Millis,
    phase: ProbePhase,
}

#[derive(Clone, Debug)]
struct Relay {
    requester: SocketAddr,
    seq: u64,
    deadline: Millis,
}

#[derive(Clone, Debug)]
pub(super) struct Suspicion {
    incarnation: u64,
    deadline: Millis,
    next_resend: Millis,
}

/// The liveness state of one node.
pub(super) struct Liveness {
    next_probe_seq: u64,
    /// Neighbours still to probe this round, in shuffled order.
    probe_order: Vec<PeerId>,
    next_probe_at: Millis,
    probes: BTreeMap<u64, Probe>,
    relays: BTreeMap<u64, Relay>,
    pub suspects: BTreeMap<PeerId, Suspicion>,
    /// Classic liveness: pings missed in a row, per neighbour.
    pub misses: BTreeMap<PeerId, u32>,
    /// A refutation by broadcast is sent at most this often.
    next_refute_broadcast: Millis,
}

impl Liveness {
    pub fn new() -> Liveness {
        Liveness {
            next_probe_seq: 1,
            probe_order: Vec::new(),
            next_probe_at: Millis(0),
            probes: BTreeMap::new(),
            relays: BTreeMap::new(),
            suspects: BTreeMap::new(),
            misses: BTreeMap::new(),
            next_refute_broadcast: Millis(0),
        }
    }

    /// Forgets everything about `id` (it left the views).
    pub fn forget(&mut self, id: &PeerId) {
        self.suspects.remove(id);
        self.misses.remove(id);
        self.probes.retain(|_, p| p.target != *id);
    }

    fn next_probe_target(&mut self, ctx: &mut Ctx, active: &[PeerId]) -> Option<PeerId> {
        loop {
            match self.probe_order.pop() {
                Some(id) if active.contains(&id) => return Some(id),
                Some(_) => continue,
                None => {
                    if active.is_empty() {
                        return None;
                    }
                    self.probe_order = active.to_vec();
                    self.probe_order.shuffle(&mut ctx.rng);
                }
            }
        }
    }

    fn start_probe(
        &mut self,
        ctx: &mut Ctx,
        members: &Members,
        stats: &mut PeerStats,
        target: PeerId,
        now: Millis,
    ) {
        if self.probes.values().any(|p| p.target == target) {
            return;
        }
        let seq = self.next_probe_seq;
        self.next_probe_seq += 1;
        stats.probes_sent += 1;
        ctx.send_to(members, &target, Msg::Probe { seq });
        self.probes.insert(
            seq,
            Probe {
                target,
                started: now,
                phase: ProbePhase::Direct,
            },
        );
    }

    /// Starts the probes due: SWIM probes one neighbour at a time, spread over the
    /// round; classic pings every neighbour once a round.
    fn start_due_probes(
        &mut self,
        ctx: &mut Ctx,
        members: &Members,
        stats: &mut PeerStats,
        active: &[PeerId],
        now: Millis,
    ) {
        let round = ctx.config.probe_round.as_millis() as u64;
        match ctx.config.liveness {
            Mode::Swim => {
                if now >= self.next_probe_at && !active.is_empty() {
                    let gap = (round / active.len() as u64).max(MIN_PROBE_GAP);
                    self.next_probe_at = Millis(now.0 + gap);
                    if let Some(t) = self.next_probe_target(ctx, active) {
                        self.start_probe(ctx, members, stats, t, now);
                    }
                }
            }
            Mode::Classic { .. } => {
                if now >= self.next_probe_at {
                    self.next_probe_at = Millis(now.0 + round);
                    for t in active.iter().cloned() {
                        self.start_probe(ctx, members, stats, t, now);
                    }
                }
            }
        }
    }

    /// When probe `p` times out in its phase.
    fn probe_deadline(ctx: &Ctx, p: &Probe) -> Millis {
        let direct = ctx.config.probe_timeout.as_millis() as u64;
        let indirect = ctx.config.indirect_timeout.as_millis() as u64;
        match p.phase {
            ProbePhase::Direct => Millis(p.started.0 + direct),
            ProbePhase::Indirect => Millis(p.started.0 + direct + indirect),
        }
    }

    /// The probes whose phase timed out, by seq.
    fn timed_out(&self, ctx: &Ctx, now: Millis) -> Vec<u64> {
        self.probes
            .iter()
            .filter(|(_, p)| now >= Self::probe_deadline(ctx, p))
            .map(|(s, _)| *s)
            .collect()
    }

    /// The direct probe `seq` of `p` went unanswered: try again directly, and through
    /// a few helpers from the views.
    fn go_indirect(
        &mut self,
        ctx: &mut Ctx,
        members: &Members,
        helpers_from: (&[PeerId], &[PeerId]),
        seq: u64,
        p: &Probe,
    ) {
        if let Some(probe) = self.probes.get_mut(&seq) {
            probe.phase = ProbePhase::Indirect;
        }
        ctx.send_to(members, &p.target, Msg::Probe { seq });
        let addr = match members.get(&p.target) {
            Some(m) => m.addr,
            None => return,
        };
        let (active, passive) = helpers_from;
        let mut helpers: Vec<PeerId> = active
            .iter()
            .chain(passive.iter())
            .filter(|h| **h != p.target)
            .cloned()
            .collect();
        helpers.shuffle(&mut ctx.rng);
        helpers.truncate(ctx.config.indirect_probes);
        for h in helpers {
            ctx.send_to(
                members,
                &h,
                Msg::ProbeReq {
                    seq,
                    target: p.target.clone(),
                    addr,
                },
            );
        }
    }

    /// Probes `target` for `requester`, relaying its ack under the requester's `seq`.
    fn relay(
        &mut self,
        ctx: &mut Ctx,
        requester: SocketAddr,
        seq: u64,
        addr: SocketAddr,
        now: Millis,
    ) {
        if self.relays.len() >= RELAYS_MAX {
            return;
        }
        let my_seq = self.next_probe_seq;
        self.next_probe_seq += 1;
        self.relays.insert(
            my_seq,
            Relay {
                requester,
                seq,
                deadline: after(now, ctx.config.probe_timeout + ctx.config.indirect_timeout),
            },
        );
        ctx.send(Dest::Node(addr), Msg::Probe { seq: my_seq });
    }

    /// The earliest of `at` and this part's timers.
    pub fn poll_at(&self, ctx: &Ctx, mut at: Millis, probing: bool) -> Millis {
        if probing {
            at = at.min(self.next_probe_at);
        }
        for p in self.probes.values() {
            at = at.min(Self::probe_deadline(ctx, p));
        }
        for s in self.suspects.values() {
            at = at.min(s.next_resend).min(s.deadline);
        }
        at
    }
}

/// Suspicions and deaths change the member table and the views, and deaths are told to
/// every peer and every seed.
impl PeerNode {
    fn suspect(&mut self, id: &PeerId, now: Millis) {
        if self.members.get(id).is_none_or(|m| m.state.is_gone()) {
            // A neighbour held dead (taken when it asked, before its refutation came)
            // that stops answering leaves the view all the same, or it would stay.
            if self.remove_active(id, "dead") {
                self.fill_active(now);
            }
            return;
        }
        // A member already suspect on hearsay (a `suspect` row) has no suspicion of
        // ours yet: without one, a neighbour that stops answering would stay.
        if self.liveness.suspects.contains_key(id) {
            return;
        }
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        m.state = MemberState::Suspect;
        m.since = now;
        let incarnation = m.incarnation;
        self.stats.suspicions += 1;
        self.liveness.suspects.insert(
            id.clone(),
            Suspicion {
                incarnation,
                deadline: after(now, self.ctx.config.suspicion_timeout),
                next_resend: now,
            },
        );
        self.ctx
            .events
            .push(OverlayEvent::Suspected { id: id.clone() });
        if self.remove_active(id, "suspected") {
            // If it is alive after all, it must drop us too: views stay symmetric.
            self.ctx.send_to(&self.members, id, Msg::Disconnect);
        }
        self.views.passive.retain(|p| p != id);
        self.fill_active(now);
    }

    fn declare_dead(&mut self, id: &PeerId, now: Millis) {
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        if m.state.is_gone() {
            return;
        }
        m.state = MemberState::Dead;
        m.since = now;
        m.degree = 0;
        let info = m.info(id);
        self.stats.deaths_declared += 1;
        self.drop_from_views(id, "dead", now);
        self.ctx.events.push(OverlayEvent::Dead {
            id: id.clone(),
            by: self.ctx.me.clone(),
        });
        // Without the member's certificate the death would be dropped everywhere as
        // forged: it stays this node's alone (a member known only from contact).
        if let Some(info) = info {
            self.broadcast_member(info.clone(), now);
            self.seeds.report(&mut self.ctx, &info);
        }
    }

    /// The answer to probe `seq`: this node's incarnation, name and certificate.
    pub(super) fn ack(&self, seq: u64) -> Msg {
        Msg::Ack {
            seq,
            incarnation: self.ctx.incarnation(),
            name: self.ctx.name.clone(),
            cert: self.ctx.cert(),
        }
    }

    /// Starts the probes due, and moves on the probes that timed out: indirect after
    /// the direct timeout, a suspicion (SWIM) or a miss (classic) after that.
    pub(super) fn tick_probes(&mut self, now: Millis) {
        self.liveness.start_due_probes(
            &mut self.ctx,
            &self.members,
            &mut self.stats,
            &self.views.active,
            now,
        );
        for seq in self.liveness.timed_out(&self.ctx, now) {
            let Some(p) = self.liveness.probes.get(&seq).cloned() else {
                continue;
            };
            if p.phase == ProbePhase::Direct {
                self.ctx.events.push(OverlayEvent::ProbeMissed {
                    id: p.target.clone(),
                });
            }
            match (self.ctx.config.liveness, p.phase) {
                (Mode::Swim, ProbePhase::Direct) if self.ctx.config.indirect_probes > 0 => {
                    let views = (&self.views.active[..], &self.views.passive[..]);
                    self.liveness
                        .go_indirect(&mut self.ctx, &self.members, views, seq, &p);
                }
                (Mode::Swim, _) => {
                    self.liveness.probes.remove(&seq);
                    self.suspect(&p.target, now);
                }
                (Mode::Classic { misses }, _) => {
                    self.liveness.probes.remove(&seq);
                    let n = self.liveness.misses.entry(p.target.clone()).or_insert(0);
                    *n += 1;
                    if *n >= misses {
                        self.declare_dead(&p.target, now);
                    }
                }
            }
        }
        self.liveness.relays.retain(|_, r| r.deadline > now);
    }

    /// Suspicions that stood too long become deaths; the others are told again to the
    /// suspected member, so that it refutes if it is alive.
    pub(super) fn tick_suspects(&mut self, now: Millis) {
        let ids: Vec<PeerId> = self.liveness.suspects.keys().cloned().collect();
        for id in ids {
            let Some(s) = self.liveness.suspects.get_mut(&id) else {
                continue;
            };
            if now >= s.deadline {
                self.liveness.suspects.remove(&id);
                self.declare_dead(&id, now);
            } else if now >= s.next_resend {
                s.next_resend = after(now, self.ctx.config.suspect_resend);
                let incarnation = s.incarnation;
                self.ctx.send_to(
                    &self.members,
                    &id,
                    Msg::Suspect {
                        incarnation,
                        dead: false,
                    },
                );
            }
        }
    }

    pub(super) fn on_probe(&mut self, from: &Sender, seq: u64, now: Millis) {
        self.note(from, None, None, now);
        let ack = self.ack(seq);
        self.ctx.send(Dest::Node(from.addr), ack);
    }

    /// An ack: to one of this node's probes (straight from the target, or relayed by a
    /// helper), or to a probe it relays for another node. It carries the target's
    /// certificate: one that does not verify makes the ack as good as lost.
    pub(super) fn on_ack(
        &mut self,
        from: &Sender,
        seq: u64,
        incarnation: u64,
        name: PeerId,
        cert: Sig,
        now: Millis,
    ) {
        if let Some(p) = self.liveness.probes.get(&seq).cloned() {
            if p.target == from.id {
                let Some(claim) = self.claim(from, incarnation, name, cert) else {
                    return;
                };
                self.note(from, Some(claim), None, now);
                if let Some(m) = self.members.get_mut(&from.id) {
                    m.rtt_ms = Some(now.0.saturating_sub(p.started.0));
                }
            } else if !self.relayed_ack(&p.target, incarnation, name, cert) {
                return;
            }
            self.liveness.probes.remove(&seq);
            self.liveness.misses.remove(&p.target);
        } else if let Some(r) = self.liveness.relays.remove(&seq) {
            // The requester checks the certificate: relaying costs no check here.
            self.ctx.send(
                Dest::Node(r.requester),
                Msg::Ack {
                    seq: r.seq,
                    incarnation,
                    name,
                    cert,
                },
            );
        }
    }

    /// An ack of `target` relayed by a helper: the target is alive, at the incarnation
    /// its certificate proves. False (and counted) when that certificate is forged.
    fn relayed_ack(&mut self, target: &PeerId, incarnation: u64, name: PeerId, cert: Sig) -> bool {
        let Some(m) = self.members.get_mut(target) else {
            return true;
        };
        if incarnation <= m.incarnation {
            return true;
        }
        if !incarnation_valid(target, incarnation, &name, &cert) {
            self.stats.dropped_signature += 1;
            return false;
        }
        m.incarnation = incarnation;
        m.signed = Some(super::Signed { name, cert });
        true
    }

    pub(super) fn on_probe_req(
        &mut self,
        from: &Sender,
        seq: u64,
        target: PeerId,
        addr: SocketAddr,
        now: Millis,
    ) {
        self.note(from, None, None, now);
        if target == self.ctx.me {
            return;
        }
        // Probe only a member this node knows, at the address it knows it by, and not
        // one held gone: otherwise anyone could make this node connect anywhere.
        let known = self
            .members
            .get(&target)
            .is_some_and(|m| m.addr == addr && !m.state.is_gone());
        if !known {
            self.stats.probe_reqs_refused += 1;
            log::debug!(
                "ignoring probe-req from {} toward {target} at {addr}: not a member known there",
                from.id
            );
            return;
        }
        self.liveness
            .relay(&mut self.ctx, from.addr, seq, addr, now);
    }

    /// Told that it is suspected (or held dead, `dead`): this node refutes with a
    /// higher incarnation, to everyone when it is held dead. A suspicion above this
    /// node's own incarnation is a lie (it never signed that incarnation, so nobody
    /// holds it there): ignored and counted, or anyone could pin the node at the
    /// largest incarnation, where it could never refute again.
    pub(super) fn on_suspect(&mut self, from: &Sender, incarnation: u64, dead: bool, now: Millis) {
        if self.ctx.left {
            return;
        }
        if incarnation > self.ctx.incarnation() {
            self.stats.dropped_signature += 1;
            log::debug!(
                "ignoring a suspicion from {} at incarnation {incarnation}, above this node's",
                from.id
            );
            return;
        }
        if dead && now >= self.liveness.next_refute_broadcast {
            // Held dead: everyone may hold us dead (after a partition, each side
            // declared the other dead), so refute to everyone.
            self.liveness.next_refute_broadcast = after(now, REFUTE_BROADCAST_GAP);
            self.refute(incarnation, now);
        } else if incarnation == self.ctx.incarnation() {
            let incarnation = incarnation.saturating_add(1);
            self.ctx.set_incarnation(incarnation);
            self.stats.refutations += 1;
            self.ctx
                .events
                .push(OverlayEvent::RefutedSelf { incarnation });
        }
        let alive = Msg::Alive {
            incarnation: self.ctx.incarnation(),
            name: self.ctx.name.clone(),
            cert: self.ctx.cert(),
        };
        self.ctx.send(Dest::Node(from.addr), alive);
    }

    /// A refutation of this node's suspicion, straight from the member (its
    /// certificate checked by [`PeerNode::claim`]).
    pub(super) fn on_alive(&mut self, from: &Sender, claim: Claim, now: Millis) {
        let incarnation = claim.incarnation;
        let suspected = self.liveness.suspects.get(&from.id).map(|s| s.incarnation);
        let Some(m) = self.members.get_mut(&from.id) else {
            self.note(from, Some(claim), None, now);
            return;
        };
        m.addr = from.addr;
        let refutes = incarnation > m.incarnation || suspected.is_some_and(|s| incarnation > s);
        if refutes {
            if incarnation >= m.incarnation {
                m.signed = Some(super::Signed {
                    name: claim.name,
                    cert: claim.cert,
                });
            }
            m.incarnation = m.incarnation.max(incarnation);
            if m.state != MemberState::Alive {
                m.state = MemberState::Alive;
                m.since = now;
                self.liveness.suspects.remove(&from.id);
                self.ctx.events.push(OverlayEvent::Refuted {
                    id: from.id.clone(),
                    incarnation,
                });
                self.add_passive(from.id.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testnet::*;
    use super::super::*;
    use std::net::SocketAddr;

    #[test]
    fn a_neighbour_suspected_on_hearsay_is_still_declared_dead_when_it_crashes() {
        let mut net = Net::new(8, OverlayConfig::default());
        let y = 3;
        let yid = pid("n3");
        let watchers: Vec<usize> = (0..8)
            .filter(|&i| net.nodes[i].active().contains(&yid))
            .collect();
        assert!(!watchers.is_empty());
        // Someone tells every node that y is suspect (at its own incarnation); then y
        // crashes.
        let mut row = alive("n3", y);
        row.state = MemberState::Suspect;
        let now = net.now;
        for i in (0..8).filter(|&i| i != y) {
            let other = if i == 0 { 1 } else { 0 };
            net.nodes[i].handle(
                &sender(&format!("n{other}"), other),
                Msg::Shuffle {
                    reply: true,
                    members: vec![row.clone()],
                },
                now,
            );
        }
        let until = net.now.0 + 15_000;
        net.run(until, |i, j, _| i != y && j != y);
        for i in watchers {
            assert!(
                !net.nodes[i].active().contains(&yid),
                "n{i} keeps a neighbour that does not answer"
            );
            assert_eq!(net.nodes[i].member(&yid).unwrap().state, MemberState::Dead);
        }
    }

    #[test]
    fn a_crashed_neighbour_shows_as_a_missed_probe_then_a_suspicion_then_a_death() {
        let mut net = Net::new(8, OverlayConfig::default());
        let y = 2;
        let yid = pid("n2");
        let w = (0..8)
            .find(|&i| net.nodes[i].active().contains(&yid))
            .unwrap();
        net.nodes[w].take_events();
        let until = net.now.0 + 10_000;
        net.run(until, |i, j, _| i != y && j != y);
        let about_y: Vec<&'static str> = net.nodes[w]
            .take_events()
            .into_iter()
            .filter_map(|e| match e {
                OverlayEvent::ProbeMissed { id } if id == yid => Some("probe-missed"),
                OverlayEvent::Suspected { id } if id == yid => Some("suspect"),
                OverlayEvent::Dead { id, .. } if id == yid => Some("dead"),
                _ => None,
            })
            .collect();
        assert_eq!(about_y, ["probe-missed", "suspect", "dead"]);
    }

    #[test]
    fn a_neighbour_held_dead_that_stops_answering_leaves_the_view() {
        let mut x = lone(OverlayConfig::default(), 2);
        let mut n2 = alive("n2", 2);
        n2.state = MemberState::Dead;
        x.handle(&sender("n1", 1), member_news("n1", 1, n2), Millis(10));
        // n2 is alive after all and asks to be a neighbour: it is taken, and told that
        // it is held dead so that it refutes...
        x.handle(
            &sender("n2", 2),
            neighbor_request("n2", true, 1, 0),
            Millis(20),
        );
        assert!(x.active().contains(&pid("n2")));
        assert!(x
            .take_out()
            .iter()
            .any(|o| matches!(o.msg, Msg::Suspect { dead: true, .. })));
        // ...but it crashes before it does: it must not stay a neighbour, even once its
        // tombstone is gone.
        for t in (30..400_000).step_by(10) {
            x.tick(Millis(t));
            x.take_out();
            if t == 5_000 {
                assert!(!x.active().contains(&pid("n2")));
            }
        }
        assert!(!x.active().contains(&pid("n2")));
    }

    #[test]
    fn a_death_at_the_largest_incarnation_the_node_signed_does_not_overflow() {
        let mut x = lone(OverlayConfig::default(), 1);
        // Only this node's key can certify it (an earlier run of it may have): the
        // refutation stays at the largest incarnation there is.
        let me = at(with_state(alive("n0", 0), MemberState::Dead), u64::MAX);
        x.handle(&sender("n1", 1), member_news("n1", 1, me), Millis(30));
        assert_eq!(x.incarnation(), u64::MAX);
    }

    #[test]
    fn a_refutation_that_missed_peers_is_sent_again_when_one_of_them_hears_of_it() {
        let mut net = Net::new(12, OverlayConfig::default());
        let y = 3;
        let yid = pid("n3");
        // Two peers that are not y's neighbours hold y dead (the news goes no
        // further), and y raises its incarnation where they cannot hear it (as while a
        // partition lasts).
        let far: Vec<usize> = (0..12)
            .filter(|&h| h != y && h != 0 && h != 4)
            .filter(|&h| !net.nodes[y].active().contains(&pid(&format!("n{h}"))))
            .filter(|&h| !net.nodes[h].active().contains(&yid))
            .take(2)
            .collect();
        assert_eq!(far.len(), 2);
        let (h1, h2) = (far[0], far[1]);
        let mut dead = alive("n3", y);
        dead.state = MemberState::Dead;
        let now = net.now;
        for h in [h1, h2] {
            net.nodes[h].handle(&sender("n4", 4), member_news("n4", 1, dead.clone()), now);
            net.nodes[h].take_out();
        }
        net.nodes[y].handle(
            &sender("n0", 0),
            Msg::Suspect {
                incarnation: 1,
                dead: false,
            },
            now,
        );
        net.pump(&mut |_, _, _| true);
        assert_eq!(net.nodes[y].incarnation(), 2);
        // h1 hears from a peer list that y is alive at 2: y learns that its refutation
        // missed some peers, and refutes again, to everyone.
        let row = at(alive("n3", y), 2);
        net.nodes[h1].handle(
            &sender("n0", 0),
            Msg::Shuffle {
                reply: true,
                members: vec![row],
            },
            now,
        );
        net.pump(&mut |_, _, _| true);
        let until = net.now.0 + 200;
        net.run(until, |_, _, _| true);
        assert_eq!(
            net.nodes[h2].member(&yid).unwrap().state,
            MemberState::Alive
        );
    }

    #[test]
    fn a_probe_req_toward_an_address_that_is_not_a_known_member_is_ignored() {
        let mut x = lone(OverlayConfig::default(), 3);
        x.take_out();
        let asker = sender("n1", 1);
        let probe_req = |target: &str, addr| Msg::ProbeReq {
            seq: 7,
            target: pid(target),
            addr,
        };
        let outside: SocketAddr = "192.0.2.1:22".parse().unwrap();
        let probes = |x: &mut PeerNode| -> Vec<SocketAddr> {
            x.take_out()
                .into_iter()
                .filter_map(|o| match (o.to, o.msg) {
                    (Dest::Node(a), Msg::Probe { .. }) => Some(a),
                    _ => None,
                })
                .collect()
        };
        // An invented member, a known member at another address, and the asker's
        // own id at an outside address: no probe leaves.
        x.handle(&asker, probe_req("nobody", outside), Millis(10));
        x.handle(&asker, probe_req("n2", outside), Millis(10));
        x.handle(&asker, probe_req("n1", outside), Millis(10));
        assert_eq!(probes(&mut x), Vec::<SocketAddr>::new());
        assert_eq!(x.stats.probe_reqs_refused, 3);
        // A member where this node knows it is probed on the asker's behalf.
        x.handle(&asker, probe_req("n2", addr_of(2)), Millis(20));
        assert_eq!(probes(&mut x), vec![addr_of(2)]);
    }
}
