//! The views (HyParView): the symmetric active view of neighbours, the passive view it
//! is repaired from, neighbour requests and their replies, shuffles (peer-list
//! exchange between neighbours), rotation (a full view swaps a neighbour for a
//! passive member now and then, so the overlay keeps mixing), and joining through
//! contacts (`--join`: peers asked to be neighbours at start and whenever this node
//! has no view at all, so that a peer that knows one live member joins without seeds).
//!
//! [`Views`] owns the two views, the requests in flight and the view timers; what it
//! sends goes through the [`Ctx`]. Entering and leaving the active view also tells the
//! broadcast layer and the liveness part, so those steps are the node's (below).

use super::members::Claim;
use super::{is_alive, Ctx, Members, PeerNode};
use crate::clock::Millis;
use crate::overlay::{after, Dest, MemberInfo, MemberState, Msg, OverlayEvent, Sender};
use crate::protocol::name::PeerId;
use rand::seq::{IteratorRandom, SliceRandom};
use rand::Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// The active and passive views, and the requests that change them.
pub(super) struct Views {
    pub active: Vec<PeerId>,
    pub passive: Vec<PeerId>,
    /// Neighbour requests in flight, with their deadlines.
    pub pending: BTreeMap<PeerId, Millis>,
    /// The neighbour request of a rotation in flight.
    pub rotating: Option<PeerId>,
    next_shuffle: Millis,
    next_rotate: Millis,
    /// The active view's target size, recomputed when the member count may have
    /// changed much (counting members on every tick would cost O(N)).
    target: usize,
    /// How many contacts (`Dest::Contact`) this node joins through.
    pub contacts: usize,
    /// When the contacts are asked again, while this node has no view at all.
    next_join: Millis,
}

/// How often a node with no view at all asks its contacts again.
const JOIN_EVERY: Duration = Duration::from_secs(2);

impl Views {
    pub fn new(active_min: usize) -> Views {
        Views {
            active: Vec::new(),
            passive: Vec::new(),
            pending: BTreeMap::new(),
            rotating: None,
            next_shuffle: Millis(0),
            next_rotate: Millis(0),
            target: active_min,
            contacts: 0,
            next_join: Millis(0),
        }
    }

    /// Asks every contact to become a neighbour, with high priority (this node has no
    /// neighbour yet, so the request is always accepted). The contact is not known by
    /// id until it answers, so no request is pending: its reply (or a `neighbor` of
    /// its own) makes it a neighbour like any other, and its shuffles bring the rest.
    pub fn join(&mut self, ctx: &mut Ctx, now: Millis) {
        if self.contacts == 0 || ctx.left {
            return;
        }
        self.next_join = after(now, JOIN_EVERY);
        for i in 0..self.contacts {
            let msg = neighbor(ctx, true, self.active.len());
            ctx.send(Dest::Contact(i), msg);
        }
    }

    /// Sets the first shuffle, and the first rotation at a random moment of the
    /// second interval (so that peers started together do not rotate together).
    pub fn start(&mut self, ctx: &mut Ctx, now: Millis) {
        self.next_shuffle = after(now, ctx.config.shuffle_interval);
        let rotate = ctx.config.rotate_interval.as_millis() as u64;
        self.next_rotate = Millis(now.0 + rotate + ctx.rng.gen_range(0..rotate.max(1)));
    }

    /// No neighbour, no request in flight, no passive member: only the seeds can help.
    pub fn isolated(&self) -> bool {
        self.active.is_empty() && self.pending.is_empty() && self.passive.is_empty()
    }

    /// The active view's target size: max(`active_min`, ⌈log2 N⌉ + 1) for the N
    /// members known (this node included) at the last recount.
    pub fn target(&self) -> usize {
        self.target
    }

    /// The most neighbours accepted: one and a half times the target.
    pub fn active_max(&self) -> usize {
        self.target + self.target / 2
    }

    pub fn recount(&mut self, ctx: &Ctx, members: &Members) {
        let n = members.values().filter(|m| !m.state.is_gone()).count() + 1;
        let log = (n as f64).log2().ceil() as usize + 1;
        self.target = log.max(ctx.config.active_min);
    }

    pub fn add_passive(&mut self, ctx: &mut Ctx, members: &Members, id: PeerId) {
        if id == ctx.me
            || self.active.contains(&id)
            || self.passive.contains(&id)
            || !is_alive(members, &id)
        {
            return;
        }
        if self.passive.len() >= ctx.config.passive_max {
            let i = ctx.rng.gen_range(0..self.passive.len());
            self.passive.swap_remove(i);
        }
        self.passive.push(id);
    }

    /// Forgets the neighbour request in flight to `id`, and the rotation it was for
    /// (or no rotation would ever start again).
    pub fn end_request(&mut self, id: &PeerId) {
        self.pending.remove(id);
        if self.rotating.as_ref() == Some(id) {
            self.rotating = None;
        }
    }

    /// Forgets the requests past their deadline, and their members as candidates.
    pub fn expire_requests(&mut self, now: Millis) {
        let expired: Vec<PeerId> = self
            .pending
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.end_request(id);
            self.passive.retain(|p| p != id);
        }
    }

    /// Sends neighbour requests until active + pending reaches the target.
    pub fn fill_active(&mut self, ctx: &mut Ctx, members: &Members, now: Millis) {
        if ctx.left {
            return;
        }
        let target = self.target();
        while self.active.len() + self.pending.len() < target {
            let Some(c) = self.pick_candidate(ctx, members) else {
                break;
            };
            let high = self.active.is_empty();
            self.pending
                .insert(c.clone(), after(now, ctx.config.neighbor_timeout));
            let msg = neighbor(ctx, high, self.active.len());
            ctx.send_to(members, &c, msg);
        }
    }

    /// A neighbour candidate: from the passive view if it has any, else from every
    /// live member; half the time weighted by degree (well-connected peers attract
    /// more neighbours: a power-law tail), half the time uniformly.
    fn pick_candidate(&self, ctx: &mut Ctx, members: &Members) -> Option<PeerId> {
        let usable = |id: &PeerId| {
            !self.active.contains(id) && !self.pending.contains_key(id) && is_alive(members, id)
        };
        let mut pool: Vec<PeerId> = self
            .passive
            .iter()
            .filter(|id| usable(id))
            .cloned()
            .collect();
        if pool.is_empty() {
            pool = members.keys().filter(|id| usable(id)).cloned().collect();
        }
        if pool.is_empty() {
            return None;
        }
        if ctx.rng.gen_bool(0.5) {
            let weights: Vec<u64> = pool
                .iter()
                .map(|id| members.get(id).map_or(1, |m| m.degree as u64 + 1))
                .collect();
            let total: u64 = weights.iter().sum();
            let mut pick = ctx.rng.gen_range(0..total);
            for (id, w) in pool.iter().zip(&weights) {
                if pick < *w {
                    return Some(id.clone());
                }
                pick -= w;
            }
        }
        pool.choose(&mut ctx.rng).cloned()
    }

    /// A peer list to shuffle with `exclude`.
    fn sample(&self, ctx: &mut Ctx, members: &Members, exclude: &PeerId) -> Vec<MemberInfo> {
        // A quarter from the active view, half from the passive view, the rest from
        // every member known.
        let size = ctx.config.shuffle_size;
        let mut ids: Vec<PeerId> = Vec::with_capacity(size);
        let take = |from: Vec<PeerId>, ids: &mut Vec<PeerId>| {
            for id in from {
                if ids.len() >= size {
                    break;
                }
                if id != *exclude && !ids.contains(&id) {
                    ids.push(id);
                }
            }
        };
        let mut act = self.active.clone();
        act.shuffle(&mut ctx.rng);
        act.truncate(size / 4);
        take(act, &mut ids);
        let mut pas = self.passive.clone();
        pas.shuffle(&mut ctx.rng);
        pas.truncate(size / 2);
        take(pas, &mut ids);
        let others: Vec<PeerId> = members
            .iter()
            .filter(|(_, m)| m.state == MemberState::Alive)
            .map(|(id, _)| id)
            .choose_multiple(&mut ctx.rng, size)
            .into_iter()
            .cloned()
            .collect();
        take(others, &mut ids);
        ids.iter()
            .filter_map(|id| members.get(id).and_then(|m| m.info(id)))
            .filter(|i| i.state == MemberState::Alive)
            .collect()
    }

    /// The shuffle with a random neighbour, the rotation, and a new try of the
    /// contacts by a node with no view at all, when they are due.
    pub fn tick(&mut self, ctx: &mut Ctx, members: &Members, now: Millis) {
        if self.contacts > 0 && self.isolated() && now >= self.next_join {
            self.join(ctx, now);
        }
        if now >= self.next_shuffle {
            self.next_shuffle = after(now, ctx.config.shuffle_interval);
            if let Some(n) = self.active.choose(&mut ctx.rng).cloned() {
                let sample = self.sample(ctx, members, &n);
                ctx.send_to(
                    members,
                    &n,
                    Msg::Shuffle {
                        reply: false,
                        members: sample,
                    },
                );
            }
        }
        if now >= self.next_rotate {
            self.next_rotate = after(now, ctx.config.rotate_interval);
            self.rotate(ctx, members, now);
        }
    }

    /// Asks a random passive member to become a neighbour; if it accepts while the
    /// active view is full, another neighbour is dropped (see the reply).
    fn rotate(&mut self, ctx: &mut Ctx, members: &Members, now: Millis) {
        if self.rotating.is_some() || self.active.len() < self.target() {
            return;
        }
        let pool: Vec<PeerId> = self
            .passive
            .iter()
            .filter(|p| !self.pending.contains_key(*p) && is_alive(members, p))
            .cloned()
            .collect();
        let Some(c) = pool.choose(&mut ctx.rng).cloned() else {
            return;
        };
        self.pending
            .insert(c.clone(), after(now, ctx.config.neighbor_timeout));
        self.rotating = Some(c.clone());
        let msg = neighbor(ctx, false, self.active.len());
        ctx.send_to(members, &c, msg);
    }

    /// The runtime could not reach `addr`: its request is dropped, and replaced.
    pub fn unreachable(&mut self, ctx: &mut Ctx, members: &Members, addr: SocketAddr, now: Millis) {
        let pending: Vec<PeerId> = self
            .pending
            .keys()
            .filter(|id| members.get(*id).is_some_and(|m| m.addr == addr))
            .cloned()
            .collect();
        for id in pending {
            self.end_request(&id);
            self.passive.retain(|p| *p != id);
        }
        // Replace the request at once while the passive view, which each failure
        // shrinks, has candidates; other members wait for the next tick, so members
        // that all turn out unreachable are not dialled in a loop.
        if self
            .passive
            .iter()
            .any(|p| !self.pending.contains_key(p) && is_alive(members, p))
        {
            self.fill_active(ctx, members, now);
        }
    }

    /// The earliest of `at` and this part's timers.
    pub fn poll_at(&self, mut at: Millis) -> Millis {
        at = at.min(self.next_shuffle).min(self.next_rotate);
        if self.contacts > 0 && self.isolated() {
            at = at.min(self.next_join);
        }
        for d in self.pending.values() {
            at = at.min(*d);
        }
        at
    }
}

/// A neighbour request, with this node's incarnation and its certificate.
fn neighbor(ctx: &Ctx, high: bool, degree: usize) -> Msg {
    Msg::Neighbor {
        high,
        incarnation: ctx.incarnation(),
        degree: degree as u32,
        name: ctx.name.clone(),
        cert: ctx.cert(),
    }
}

/// Steps that change the active view also tell the broadcast layer (its links are the
/// active view) and the liveness part (only neighbours are probed).
impl PeerNode {
    pub(super) fn add_passive(&mut self, id: PeerId) {
        self.views.add_passive(&mut self.ctx, &self.members, id);
    }

    pub(super) fn fill_active(&mut self, now: Millis) {
        self.views.fill_active(&mut self.ctx, &self.members, now);
    }

    pub(super) fn add_active(&mut self, id: PeerId, now: Millis) {
        self.views.end_request(&id);
        self.views.passive.retain(|p| *p != id);
        if self.views.active.contains(&id) {
            return;
        }
        self.views.active.push(id.clone());
        self.gossip.neighbor_up(id.clone(), now);
        self.ctx.events.push(OverlayEvent::NeighborUp { id });
        self.flush_gossip(now);
    }

    /// Takes a member out of the active view (without telling it).
    pub(super) fn remove_active(&mut self, id: &PeerId, reason: &'static str) -> bool {
        let Some(i) = self.views.active.iter().position(|a| a == id) else {
            return false;
        };
        self.views.active.remove(i);
        self.gossip.neighbor_down(id);
        self.liveness.misses.remove(id);
        self.ctx.events.push(OverlayEvent::NeighborDown {
            id: id.clone(),
            reason,
        });
        true
    }

    pub(super) fn drop_from_views(&mut self, id: &PeerId, reason: &'static str, now: Millis) {
        self.remove_active(id, reason);
        self.views.passive.retain(|p| p != id);
        self.views.end_request(id);
        self.liveness.forget(id);
        self.fill_active(now);
    }

    /// The swap of a rotation: drops a random neighbour other than `keep`, which
    /// stays in the passive view.
    fn rotate_out(&mut self, keep: &PeerId) {
        let others: Vec<PeerId> = self
            .views
            .active
            .iter()
            .filter(|a| *a != keep)
            .cloned()
            .collect();
        if let Some(old) = others.choose(&mut self.ctx.rng).cloned() {
            self.remove_active(&old, "rotated");
            self.ctx.send_to(&self.members, &old, Msg::Disconnect);
            self.add_passive(old);
        }
    }

    /// A request to become neighbours: accepted up to the largest view, always when
    /// `high` (the sender has no neighbour at all), evicting a random neighbour if
    /// need be.
    pub(super) fn on_neighbor(
        &mut self,
        from: &Sender,
        high: bool,
        claim: Claim,
        degree: u32,
        now: Millis,
    ) {
        self.note(from, Some(claim), Some(degree), now);
        let accepted = if self.ctx.left {
            false
        } else if self.views.active.contains(&from.id) {
            true
        } else if self.views.active.len() < self.views.active_max() || high {
            if self.views.active.len() >= self.views.active_max() {
                let i = self.ctx.rng.gen_range(0..self.views.active.len());
                let evicted = self.views.active[i].clone();
                self.remove_active(&evicted, "replaced");
                self.ctx.send_to(&self.members, &evicted, Msg::Disconnect);
                self.add_passive(evicted);
            }
            self.add_active(from.id.clone(), now);
            true
        } else {
            self.add_passive(from.id.clone());
            false
        };
        let reply = Msg::NeighborReply {
            accepted,
            incarnation: self.ctx.incarnation(),
            degree: self.views.active.len() as u32,
            name: self.ctx.name.clone(),
            cert: self.ctx.cert(),
        };
        self.ctx.send(Dest::Node(from.addr), reply);
    }

    pub(super) fn on_neighbor_reply(
        &mut self,
        from: &Sender,
        accepted: bool,
        claim: Claim,
        degree: u32,
        now: Millis,
    ) {
        self.note(from, Some(claim), Some(degree), now);
        self.views.pending.remove(&from.id);
        let rotation = self.views.rotating.as_ref() == Some(&from.id);
        if rotation {
            self.views.rotating = None;
        }
        if !accepted || self.ctx.left {
            self.add_passive(from.id.clone());
            self.fill_active(now);
            return;
        }
        if self.views.active.contains(&from.id) {
            return;
        }
        let alive = is_alive(&self.members, &from.id);
        if self.views.active.len() < self.views.active_max() && alive {
            self.add_active(from.id.clone(), now);
            if rotation && self.views.active.len() > self.views.target() {
                self.rotate_out(&from.id);
            }
        } else if rotation && alive {
            // A view at its largest swaps too: another neighbour makes room first (or
            // the best-connected peers would never mix).
            self.rotate_out(&from.id);
            self.add_active(from.id.clone(), now);
        } else {
            self.ctx.send(Dest::Node(from.addr), Msg::Disconnect);
            self.add_passive(from.id.clone());
        }
    }

    pub(super) fn on_disconnect(&mut self, from: &Sender, now: Millis) {
        self.note(from, None, None, now);
        if self.remove_active(&from.id, "disconnected") {
            self.add_passive(from.id.clone());
            self.fill_active(now);
        }
    }

    /// A peer list from a neighbour: answered with one of ours (unless it is the
    /// answer), then merged.
    pub(super) fn on_shuffle(
        &mut self,
        from: &Sender,
        reply: bool,
        members: Vec<MemberInfo>,
        now: Millis,
    ) {
        self.note(from, None, None, now);
        self.stats.shuffles += 1;
        if !reply {
            let sample = self.views.sample(&mut self.ctx, &self.members, &from.id);
            self.ctx.send(
                Dest::Node(from.addr),
                Msg::Shuffle {
                    reply: true,
                    members: sample,
                },
            );
            if !self.views.active.contains(&from.id) && !self.views.pending.contains_key(&from.id) {
                // Shuffles go to neighbours only: the sender holds a link this node
                // lost (an answer or a disconnect was lost, or this node restarted),
                // and drops it.
                self.ctx.send(Dest::Node(from.addr), Msg::Disconnect);
            }
        }
        self.merge_list(members, false, now);
        self.fill_active(now);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testnet::*;
    use super::super::*;
    use std::net::SocketAddr;
    use std::time::Duration;

    /// Runs every node's timers 10 ms later; returns the rotation node `x` then has
    /// in flight, before any message is delivered.
    fn tick_all(net: &mut Net, x: usize) -> Option<PeerId> {
        net.now = Millis(net.now.0 + 10);
        for i in 0..net.nodes.len() {
            net.nodes[i].tick(net.now);
        }
        net.nodes[x].views.rotating.clone()
    }

    #[test]
    fn a_rotation_whose_candidate_is_unreachable_does_not_stop_rotations() {
        let mut net = Net::new(12, OverlayConfig::default());
        let x = 0;
        // Run until x asks a passive member to swap in; that member cannot be reached.
        let lost = loop {
            assert!(net.now.0 < 100_000, "no rotation started");
            if let Some(c) = tick_all(&mut net, x) {
                break net.nodes[x].member(&c).unwrap().addr;
            }
            net.pump(&mut |_, _, _| true);
        };
        net.pump(&mut |i, j, _| !(i == x && addr_of(j) == lost));
        let now = net.now;
        net.nodes[x].unreachable(Dest::Node(lost), now);
        assert_eq!(net.nodes[x].views.rotating, None, "no request is in flight");
        // Rotations go on.
        let until = net.now.0 + 2 * OverlayConfig::default().rotate_interval.as_millis() as u64;
        let mut started = 0;
        while net.now.0 < until {
            if tick_all(&mut net, x).is_some() {
                started += 1;
            }
            net.pump(&mut |i, j, _| !(i == x && addr_of(j) == lost));
        }
        assert!(started > 0, "x never rotated again");
    }

    #[test]
    fn a_neighbour_link_held_on_one_side_only_is_dropped() {
        let config = OverlayConfig {
            rotate_interval: Duration::from_secs(3600),
            ..OverlayConfig::default()
        };
        let mut net = Net::new(12, config);
        assert_eq!(net.asymmetric_links(), vec![]);
        // b accepts a neighbour request from a, and its answer is lost: b holds a as a
        // neighbour, a does not know it (as after a lost reply or disconnect, or a
        // restart faster than the probes).
        let (a, b) = (0..12)
            .flat_map(|a| (0..12).map(move |b| (a, b)))
            .find(|&(a, b)| {
                let (na, nb) = (&net.nodes[a], &net.nodes[b]);
                a != b && !nb.active().contains(na.id()) && nb.active().len() < nb.active_max()
            })
            .expect("two nodes that are not neighbours");
        let from_a = Sender {
            id: net.nodes[a].id().clone(),
            addr: addr_of(a),
            seed: false,
        };
        let now = net.now;
        net.nodes[b].handle(
            &from_a,
            neighbor_request(&format!("n{a}"), false, 1, 4),
            now,
        );
        net.nodes[b].take_out();
        assert_eq!(net.asymmetric_links().len(), 1);
        net.run(130_000, |_, _, _| true);
        assert_eq!(net.asymmetric_links(), vec![]);
    }

    #[test]
    fn a_peer_declared_dead_by_mistake_keeps_no_link_its_neighbours_dropped() {
        let config = OverlayConfig {
            rotate_interval: Duration::from_secs(3600),
            ..OverlayConfig::default()
        };
        let mut net = Net::new(12, config);
        let (y, z) = (3, 4);
        assert!(!net.nodes[y].active().is_empty());
        // z declares the live y dead (as each side of a partition does of the other):
        // every peer drops y from its views, without telling it, and y refutes.
        let mut dead = alive("n3", y);
        dead.state = MemberState::Dead;
        let now = net.now;
        for i in (0..12).filter(|&i| i != z) {
            let from = Sender {
                id: pid("n4"),
                addr: addr_of(z),
                seed: false,
            };
            net.nodes[i].handle(&from, member_news("n4", 1, dead.clone()), now);
        }
        net.pump(&mut |_, _, _| true);
        assert!(
            !net.asymmetric_links().is_empty(),
            "y still holds the neighbours that dropped it"
        );
        net.run(130_000, |_, _, _| true);
        assert_eq!(net.asymmetric_links(), vec![]);
    }

    #[test]
    fn a_node_at_its_largest_view_still_swaps_neighbours() {
        let mut net = Net::new(12, OverlayConfig::default());
        let x = (0..12)
            .find(|&i| net.nodes[i].active().len() == net.nodes[i].active_max())
            .expect("a node with a full view");
        while net.now.0 < 300_000 {
            let Some(c) = tick_all(&mut net, x) else {
                net.pump(&mut |_, _, _| true);
                continue;
            };
            let full = net.nodes[x].active().len() == net.nodes[x].active_max();
            let ci = net.index(&c);
            net.nodes[ci].take_events();
            net.pump(&mut |_, _, _| true);
            let accepted = net.nodes[ci]
                .take_events()
                .iter()
                .any(|e| matches!(e, OverlayEvent::NeighborUp { id } if id == net.nodes[x].id()));
            if full && accepted {
                assert!(
                    net.nodes[x].active().contains(&c),
                    "the candidate accepted, and was disconnected"
                );
                assert_eq!(net.nodes[x].active().len(), net.nodes[x].active_max());
                return;
            }
        }
        panic!("no rotation of the full view was accepted");
    }

    #[test]
    fn members_that_cannot_be_reached_are_not_dialled_in_a_loop() {
        let mut x = lone(OverlayConfig::default(), 6);
        x.tick(Millis(10));
        let mut dialled = 0;
        for _ in 0..1000 {
            let requests: Vec<SocketAddr> = x
                .take_out()
                .into_iter()
                .filter_map(|o| match (o.to, o.msg) {
                    (Dest::Node(a), Msg::Neighbor { .. }) => Some(a),
                    _ => None,
                })
                .collect();
            if requests.is_empty() {
                break;
            }
            dialled += requests.len();
            for a in requests {
                x.unreachable(Dest::Node(a), Millis(10));
            }
        }
        assert!(
            dialled <= 6,
            "{dialled} neighbour requests at one instant to 6 unreachable members"
        );
    }

    #[test]
    fn a_peer_without_seeds_joins_through_one_contact_and_finds_the_rest() {
        let mut net = Net::new(8, OverlayConfig::default());
        // n8 knows no member and no seed: only a contact, which leads to n5.
        let mut x = node("n8", OverlayConfig::default(), 8, 1).with_contacts(1);
        x.start(net.now);
        let asks: Vec<Out> = x.take_out();
        assert!(
            matches!(
                &asks[..],
                [Out {
                    to: Dest::Contact(0),
                    msg: Msg::Neighbor { high: true, .. }
                }]
            ),
            "{asks:?}"
        );
        net.nodes.push(x);
        net.contacts = vec![Some(5)];
        for n in &mut net.nodes {
            n.take_events();
        }
        // The first ask was taken above: the next, 2 s later, is delivered.
        let until = net.now.0 + 2_500;
        net.run(until, |_, _, _| true);
        assert!(
            net.nodes[8].active().contains(&pid("n5")),
            "the contact took it"
        );
        // Peer exchange (shuffles every 5 s) brings every other member.
        let until = net.now.0 + 30_000;
        net.run(until, |_, _, _| true);
        assert_eq!(net.nodes[8].live_members(), 8, "knows every member");
        assert!(
            net.nodes[8].active().len() >= 4,
            "{:?}",
            net.nodes[8].active()
        );
        assert!(net.asymmetric_links().is_empty());
        // And the others know it: its broadcast reaches every one of them, once.
        let now = net.now;
        net.nodes[8].say("joined".into(), now.0, now).unwrap();
        let until = net.now.0 + 2_000;
        net.run(until, |_, _, _| true);
        for (i, n) in net.nodes.iter_mut().enumerate().take(8) {
            let heard = n
                .take_events()
                .into_iter()
                .filter(|e| matches!(e, OverlayEvent::Said { text, .. } if text == "joined"))
                .count();
            assert_eq!(heard, 1, "n{i}");
        }
    }

    #[test]
    fn contacts_are_asked_again_only_while_the_peer_has_no_view() {
        let asks = |x: &mut PeerNode| {
            x.take_out()
                .iter()
                .filter(|o| matches!(o.to, Dest::Contact(_)))
                .count()
        };
        // Two contacts that never answer: both are asked at start, then every 2 s.
        let mut x = node("n0", OverlayConfig::default(), 1, 1).with_contacts(2);
        x.start(Millis(0));
        assert_eq!(asks(&mut x), 2);
        let mut total = 0;
        for t in (10..=5_000).step_by(10) {
            x.tick(Millis(t));
            total += asks(&mut x);
        }
        assert_eq!(total, 4, "asked again at 2 s and 4 s");
        // Unreachable contacts change nothing but the next try.
        x.unreachable(Dest::Contact(0), Millis(5_000));
        assert_eq!(asks(&mut x), 0);
        // A peer with neighbours leaves its contacts alone: n0 never asks with high
        // priority (it always has a neighbour), so every such request would be one.
        let mut net = Net::new(4, OverlayConfig::default());
        net.nodes[0].views.contacts = 1;
        net.contacts = vec![Some(1)];
        let mut high = 0;
        let until = net.now.0 + 10_000;
        net.run(until, |i, _, m| {
            if i == 0 && matches!(m, Msg::Neighbor { high: true, .. }) {
                high += 1;
            }
            true
        });
        assert_eq!(high, 0);
        assert!(!net.nodes[0].active().is_empty());
        // Without contacts, nothing is sent anywhere.
        let mut z = node("n0", OverlayConfig::default(), 1, 1);
        z.start(Millis(0));
        assert_eq!(asks(&mut z), 0);
    }
}
