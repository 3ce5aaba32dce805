//! A peer's membership: joining through the seeds, the active and passive views,
//! peer-list exchange, SWIM liveness, and the glue to the broadcast layer.
//!
//! State document (the invariants the code keeps):
//!
//! * **Members.** Every peer this node has heard of is in `members` with an address, an
//!   incarnation and a state (alive, suspect, dead, left), merged by SWIM's rules: a
//!   higher incarnation wins; at the same incarnation, dead beats suspect beats alive.
//!   Only a member itself raises its incarnation, says that it left, or refutes its
//!   death. Dead and left members stay as tombstones for `dead_retention`, so stale
//!   news of them is ignored. At most `members_max` are kept, tombstones included.
//! * **Certificates.** A member's incarnation is held with the member's own
//!   certificate of it (its signature of its id, incarnation and name), or is 0 with
//!   none for a member known only from contact. News that would change a record is
//!   taken only when its certificate verifies; otherwise it is ignored and counted
//!   (`dropped_signature`), as is a `suspect` above this node's own incarnation (it
//!   never signed one). So nobody can declare a member dead at an incarnation the
//!   member cannot refute. This node signs its own certificate at start and whenever
//!   its incarnation changes, and signs every broadcast it originates.
//! * **Views.** `active` (the neighbours) and `passive` are disjoint, never hold this
//!   node, and hold only members that are alive or suspect, or held dead but asking to
//!   be a neighbour (alive after all: it is told so, and refutes). The active view is
//!   symmetric: a node enters it only through an accepted `neighbor` request (either
//!   way), and leaves it with a `disconnect` to the other side, or when it is suspected
//!   or dead. Its target size is max(`active_min`, ⌈log2 N⌉ + 1) for the N members
//!   known; it accepts requests up to one and a half times that (well-connected peers
//!   attract more), and always accepts a high-priority request from a peer that has no
//!   neighbour at all. Shuffle requests come only from neighbours: one from outside the
//!   active view is answered with a `disconnect`, so a link that only one side still
//!   holds is dropped.
//! * **Liveness.** Only neighbours are probed, one at a time in shuffled order, every
//!   neighbour once per `probe_round`. A probe that gets no ack within `probe_timeout`
//!   is retried directly and through `indirect_probes` helpers; with no ack after
//!   `indirect_timeout` more, the neighbour is suspected: it leaves the active view (to
//!   be replaced from the passive view at once), and is told of the suspicion every
//!   `suspect_resend` so that, if alive, it refutes with a higher incarnation. A
//!   suspicion that stands for `suspicion_timeout` becomes a death: broadcast to every
//!   peer and reported to every seed. A neighbour held suspect on hearsay (a `suspect`
//!   row) is still suspected first-hand when it stops answering, and one held dead
//!   simply leaves the view.
//! * **Seeds.** A peer registers with a majority of its seeds chosen at random, and
//!   keeps a majority in use: a seed that does not answer within `seed_timeout` is
//!   down, retried with a backoff, and a spare one is taken meanwhile. Registrations
//!   are refreshed every `seed_refresh`, and repeated every few seconds while the node
//!   has no view at all.
//! * **Broadcast.** The [`Plumtree`]'s neighbours are exactly the active view.
//!
//! Parts, each a struct that owns its state, in a file of its own: the member table
//! (`members.rs`), seed registration (`seeds.rs`), the views (`views.rs`) and liveness
//! (`liveness.rs`). They send and report through a shared context (`Ctx`: this
//! node's id, incarnation, settings, randomness, outbox and events). [`PeerNode`] is
//! the facade: it hands each message kind to the part that owns it, runs the parts'
//! timers in `tick`, and does the steps that cross parts (a suspicion leaves the views;
//! a death is broadcast and reported to the seeds).
//!
//! No sockets, clocks or threads: methods take `now`, and what to send accumulates in
//! an outbox that the caller drains with [`PeerNode::take_out`].

#[cfg(test)]
mod forged;
mod liveness;
mod members;
mod seeds;
#[cfg(test)]
mod testnet;
mod views;

use liveness::Liveness;
use members::{apply, is_alive, Members};
pub use members::{Member, Signed};
use seeds::Seeds;
use views::Views;

use super::gossip::{GossipStats, Known, Plumtree};
use super::{
    after, sign_incarnation, Body, Broadcast, Core, Departure, Dest, DetMap, MemberEvent,
    MemberInfo, MemberState, Msg, MsgId, Out, OverlayConfig, OverlayEvent, OverlayStatus, Sender,
    SELF_ADDR,
};
use crate::clock::Millis;
use crate::identity::{NodeKey, Sig};
use crate::protocol::name::PeerId;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeSet;
use std::time::Duration;

/// Why a broadcast was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotSent {
    /// The active view is empty: the broadcast would reach nobody.
    NoNeighbours,
}

impl std::fmt::Display for NotSent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotSent::NoNeighbours => f.write_str("not sent: this peer has no neighbours yet"),
        }
    }
}

impl std::error::Error for NotSent {}

/// Which view a member is in, for display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Active,
    Passive,
    None,
}

impl View {
    pub fn as_str(self) -> &'static str {
        match self {
            View::Active => "active",
            View::Passive => "passive",
            View::None => "-",
        }
    }
}

/// A row of [`PeerNode::members`].
#[derive(Clone, Debug)]
pub struct MemberRow {
    pub id: PeerId,
    pub member: Member,
    pub view: View,
}

/// Counters, for `status`, the console and the simulator.
#[derive(Clone, Debug, Default)]
pub struct PeerStats {
    /// Broadcast texts heard that were sent before this node started: not shown.
    pub heard_before_start: u64,
    pub probes_sent: u64,
    pub suspicions: u64,
    pub refutations: u64,
    pub deaths_declared: u64,
    pub said: u64,
    pub heard: u64,
    pub shuffles: u64,
    /// `probe-req`s ignored: toward a member not known at that address.
    pub probe_reqs_refused: u64,
    /// Messages and rows ignored for a certificate that does not verify, and
    /// suspicions above this node's own incarnation (broadcasts: see the gossip
    /// layer's count).
    pub dropped_signature: u64,
}

const CLEANUP_EVERY: Duration = Duration::from_secs(10);

/// What every part of the node uses: who this node is, its settings and randomness,
/// and where the messages and events it produces go.
pub(super) struct Ctx {
    pub me: PeerId,
    pub key: NodeKey,
    pub name: PeerId,
    pub config: OverlayConfig,
    pub rng: StdRng,
    /// Only this node raises it, to refute a suspicion or a death; only through
    /// [`Ctx::set_incarnation`], which signs it.
    incarnation: u64,
    /// This node's certificate of `incarnation` under `name`.
    cert: Sig,
    /// Left on purpose: it asks for no neighbour and refutes nothing.
    pub left: bool,
    pub out: Vec<Out>,
    pub events: Vec<OverlayEvent>,
}

impl Ctx {
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub fn cert(&self) -> Sig {
        self.cert
    }

    /// Takes a new incarnation, and signs it.
    pub fn set_incarnation(&mut self, incarnation: u64) {
        self.incarnation = incarnation;
        self.cert = sign_incarnation(&self.key, incarnation, &self.name);
    }

    /// This node as news for others, at the address receivers already know.
    pub fn own_info(&self, state: MemberState, degree: u32) -> MemberInfo {
        MemberInfo {
            id: self.me.clone(),
            addr: SELF_ADDR,
            incarnation: self.incarnation,
            state,
            degree,
            name: self.name.clone(),
            cert: self.cert,
        }
    }

    pub fn send(&mut self, to: Dest, msg: Msg) {
        self.out.push(Out { to, msg });
    }

    /// Sends to a member at the address it is known by (nothing if unknown).
    pub fn send_to(&mut self, members: &Members, id: &PeerId, msg: Msg) {
        if let Some(m) = members.get(id) {
            self.send(Dest::Node(m.addr), msg);
        }
    }
}

/// A peer's membership and broadcast state machine: a facade over its parts, each
/// owning its own state (see the state document).
pub struct PeerNode {
    ctx: Ctx,
    members: Members,
    seeds: Seeds,
    views: Views,
    liveness: Liveness,
    gossip: Plumtree,
    next_seq: u64,
    next_cleanup: Millis,
    /// Broadcast texts sent before this wall-clock time (ms since the Unix epoch, by
    /// the origin's clock) are relayed but not shown; see [`PeerNode::show_said_from`].
    show_said_from: u64,
    pub stats: PeerStats,
}

impl PeerNode {
    /// A node with key `key` (its id is the key's), called `name`, with `seeds`
    /// configured seeds. `incarnation` should exceed that of any earlier run of the
    /// same peer (the runtime uses the wall clock in seconds), and `first_seq` the seq
    /// of any broadcast it sent before (wall clock in ms), so a restarted peer is
    /// neither mistaken for its dead self nor deduplicated away.
    pub fn new(
        key: NodeKey,
        name: PeerId,
        seeds: usize,
        config: OverlayConfig,
        rng_seed: u64,
        incarnation: u64,
        first_seq: u64,
    ) -> PeerNode {
        let cert = sign_incarnation(&key, incarnation, &name);
        PeerNode {
            members: DetMap::default(),
            seeds: Seeds::new(seeds),
            views: Views::new(config.active_min),
            liveness: Liveness::new(),
            gossip: Plumtree::new(config.gossip.clone()),
            next_seq: first_seq,
            next_cleanup: Millis(0),
            show_said_from: 0,
            stats: PeerStats::default(),
            ctx: Ctx {
                me: key.id().clone(),
                key,
                name,
                rng: StdRng::seed_from_u64(rng_seed),
                incarnation,
                cert,
                left: false,
                out: Vec::new(),
                events: Vec::new(),
                config,
            },
        }
    }

    pub fn id(&self) -> &PeerId {
        &self.ctx.me
    }

    pub fn incarnation(&self) -> u64 {
        self.ctx.incarnation
    }

    pub fn name(&self) -> &PeerId {
        &self.ctx.name
    }

    /// Everything dropped for a signature that does not verify, or a lie about this
    /// node's incarnation.
    pub fn dropped_signature(&self) -> u64 {
        self.stats.dropped_signature + self.gossip.stats.dropped_signature
    }

    pub fn config(&self) -> &OverlayConfig {
        &self.ctx.config
    }

    pub fn gossip_stats(&self) -> &GossipStats {
        &self.gossip.stats
    }

    pub fn has_seen(&self, id: &MsgId) -> bool {
        self.gossip.has_seen(id)
    }

    pub fn active(&self) -> &[PeerId] {
        &self.views.active
    }

    pub fn passive(&self) -> &[PeerId] {
        &self.views.passive
    }

    pub fn member(&self, id: &PeerId) -> Option<&Member> {
        self.members.get(id)
    }

    /// Members alive or suspect, this node excluded.
    pub fn live_members(&self) -> usize {
        self.members.values().filter(|m| !m.state.is_gone()).count()
    }

    pub fn suspects(&self) -> usize {
        self.liveness.suspects.len()
    }

    /// Seeds that answered the last registration.
    pub fn seeds_up(&self) -> usize {
        self.seeds.up()
    }

    /// Every member known, with the view it is in, by id.
    pub fn members(&self) -> Vec<MemberRow> {
        let mut rows: Vec<MemberRow> = self
            .members
            .iter()
            .map(|(id, m)| MemberRow {
                id: id.clone(),
                member: m.clone(),
                view: self.view_of(id),
            })
            .collect();
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        rows
    }

    fn view_of(&self, id: &PeerId) -> View {
        if self.views.active.contains(id) {
            View::Active
        } else if self.views.passive.contains(id) {
            View::Passive
        } else {
            View::None
        }
    }

    /// Messages to send, in order.
    pub fn take_out(&mut self) -> Vec<Out> {
        std::mem::take(&mut self.ctx.out)
    }

    /// Shows (as [`OverlayEvent::Said`]) only broadcast texts sent at or after
    /// `wall_ms`: a process passes its start time. A new neighbour is told of recent
    /// broadcasts so that a peer cut off for a moment catches up, and a fresh process
    /// remembers nothing of what it printed before: without this, a restarted peer
    /// would print the last minute's messages again (in the order they were fetched,
    /// not sent). They are still relayed, so the peers behind this one lose nothing.
    /// The origin's clock dates a message: with clocks apart by more than the time a
    /// peer takes to join, a message sent just after the join could be hidden too.
    pub fn show_said_from(&mut self, wall_ms: u64) {
        self.show_said_from = wall_ms;
    }

    pub fn take_events(&mut self) -> Vec<OverlayEvent> {
        std::mem::take(&mut self.ctx.events)
    }

    /// The active view's target size: max(`active_min`, ⌈log2 N⌉ + 1) for the N
    /// members known (this node included) at the last recount.
    pub fn target_active(&self) -> usize {
        self.views.target()
    }

    #[cfg(test)]
    fn active_max(&self) -> usize {
        self.views.active_max()
    }

    fn recount(&mut self) {
        self.views.recount(&self.ctx, &self.members);
    }

    /// Sends what the broadcast layer queued, and takes in what it delivered.
    fn flush_gossip(&mut self, now: Millis) {
        for (to, msg) in self.gossip.take_out() {
            self.ctx.send_to(&self.members, &to, msg);
        }
        for b in self.gossip.take_delivered() {
            self.on_delivered(b, now);
        }
    }

    // ----- starting and leaving -----

    /// Joins through `count` contacts besides the seeds (`Dest::Contact(0..count)`):
    /// see [`PeerNode::start`].
    pub fn with_contacts(mut self, count: usize) -> PeerNode {
        self.views.contacts = count;
        self
    }

    /// Registers with a majority of the seeds, chosen at random, and asks the contacts
    /// (if any) to become neighbours.
    pub fn start(&mut self, now: Millis) {
        self.seeds.start(&mut self.ctx, &self.views.active, now);
        self.views.start(&mut self.ctx, now);
        self.views.join(&mut self.ctx, now);
        self.next_cleanup = after(now, CLEANUP_EVERY);
        self.recount();
    }

    /// Leaves on purpose: tells the neighbours and the seeds, and broadcasts it.
    pub fn leave(&mut self, now: Millis) {
        if self.ctx.left {
            return;
        }
        self.ctx.left = true;
        let me = self.ctx.own_info(MemberState::Left, 0);
        self.broadcast_member(me.clone(), now);
        for n in &self.views.active {
            self.ctx.send_to(&self.members, n, Msg::Disconnect);
        }
        self.seeds.report(&mut self.ctx, &me);
    }

    // ----- broadcasts -----

    fn next_broadcast(&mut self, body: Body, wall_ms: u64) -> Broadcast {
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut b = Broadcast {
            origin: self.ctx.me.clone(),
            seq,
            hops: 0,
            time_ms: wall_ms,
            sig: Sig::NONE,
            body,
        };
        b.sign(&self.ctx.key);
        b
    }

    /// Broadcasts a text to every live peer; returns its id. With no neighbour it
    /// would reach nobody, so it is not sent at all (and not shown here as said).
    pub fn say(&mut self, text: String, wall_ms: u64, now: Millis) -> Result<MsgId, NotSent> {
        if self.views.active.is_empty() {
            return Err(NotSent::NoNeighbours);
        }
        let b = self.next_broadcast(Body::Say(text), wall_ms);
        let id = b.id();
        self.stats.said += 1;
        self.gossip.broadcast(b, now);
        self.flush_gossip(now);
        Ok(id)
    }

    fn broadcast_member(&mut self, info: MemberInfo, now: Millis) {
        let b = self.next_broadcast(Body::Member(MemberEvent { info }), now.0);
        self.gossip.broadcast(b, now);
        self.flush_gossip(now);
    }

    fn on_delivered(&mut self, b: Broadcast, now: Millis) {
        let id = b.id();
        match b.body {
            Body::Say(_) if b.time_ms < self.show_said_from => {
                self.stats.heard_before_start += 1;
            }
            Body::Say(text) => {
                let local = b.origin == self.ctx.me;
                let name = if local {
                    Some(self.ctx.name.clone())
                } else {
                    self.stats.heard += 1;
                    self.members.get(&b.origin).and_then(|m| m.name().cloned())
                };
                self.ctx.events.push(OverlayEvent::Said {
                    id,
                    origin: b.origin,
                    name,
                    time_ms: b.time_ms,
                    text,
                    hops: b.hops,
                    local,
                });
            }
            Body::Member(ev) => {
                if b.origin == self.ctx.me {
                    return;
                }
                self.on_member_event(ev.info, &b.origin, now);
            }
        }
    }

    /// Member news from a broadcast, which the gossip layer checked: signed by its
    /// origin, about the origin itself unless a death, and a death with the member's
    /// certificate.
    fn on_member_event(&mut self, info: MemberInfo, origin: &PeerId, now: Millis) {
        if info.state != MemberState::Dead && info.id != *origin {
            // Only a member itself says that it left, or refutes its death.
            return;
        }
        if info.id == self.ctx.me {
            self.news_of_self(&info, true, now);
            return;
        }
        // The broadcast names the member's address as its declarer knew it; a member
        // we know keeps the address we know.
        let applied = apply(&mut self.members, &self.ctx, &info, true, now);
        self.after_apply(&info.id, applied, Some(origin), now);
    }

    /// Refutes, by broadcast, a suspicion or death at incarnation `heard` (never
    /// above this node's own, unless this node's key certified it): one above both.
    /// Raising even when `heard` is lower makes the refutation overrule deaths other
    /// peers declared at the current incarnation too, which the peer telling this
    /// one may not know of.
    fn refute(&mut self, heard: u64, now: Millis) {
        // Saturating: a certificate may name the largest incarnation there is.
        let incarnation = self.ctx.incarnation.max(heard).saturating_add(1);
        self.ctx.set_incarnation(incarnation);
        self.stats.refutations += 1;
        self.ctx
            .events
            .push(OverlayEvent::RefutedSelf { incarnation });
        let me = self
            .ctx
            .own_info(MemberState::Alive, self.views.active.len() as u32);
        self.broadcast_member(me, now);
    }

    /// The runtime could not reach a destination at all (connection refused, no route,
    /// name not resolved): a hint that spares a timeout.
    pub fn unreachable(&mut self, dest: Dest, now: Millis) {
        match dest {
            Dest::Seed(i) => self
                .seeds
                .unreachable(&mut self.ctx, &self.views.active, i, now),
            Dest::Node(addr) => self
                .views
                .unreachable(&mut self.ctx, &self.members, addr, now),
            // Asked again while this node has no view; nothing waits for it meanwhile.
            Dest::Contact(_) => {}
        }
    }

    // ----- input -----

    /// Handles one message from another node: each kind goes to the part that owns it.
    pub fn handle(&mut self, from: &Sender, msg: Msg, now: Millis) {
        if from.id == self.ctx.me {
            return;
        }
        if from.seed {
            // Seeds are not members: they only answer registrations and probe.
            match msg {
                Msg::Peers { .. } => {}
                Msg::Probe { seq } => {
                    let ack = self.ack(seq);
                    self.ctx.send(Dest::Node(from.addr), ack);
                    return;
                }
                _ => return,
            }
        } else if matches!(msg, Msg::Peers { .. }) {
            // Only seeds answer registrations: a peer list from anyone else is a claim
            // about members nobody vouched for.
            return;
        }
        match msg {
            Msg::Peers { seq, members } => self.on_peers(seq, members, now),
            Msg::Neighbor {
                high,
                incarnation,
                degree,
                name,
                cert,
            } => {
                if let Some(c) = self.claim(from, incarnation, name, cert) {
                    self.on_neighbor(from, high, c, degree, now);
                }
            }
            Msg::NeighborReply {
                accepted,
                incarnation,
                degree,
                name,
                cert,
            } => {
                if let Some(c) = self.claim(from, incarnation, name, cert) {
                    self.on_neighbor_reply(from, accepted, c, degree, now);
                }
            }
            Msg::Disconnect => self.on_disconnect(from, now),
            Msg::Shuffle { reply, members } => self.on_shuffle(from, reply, members, now),
            Msg::Probe { seq } => self.on_probe(from, seq, now),
            Msg::Ack {
                seq,
                incarnation,
                name,
                cert,
            } => self.on_ack(from, seq, incarnation, name, cert, now),
            Msg::ProbeReq { seq, target, addr } => self.on_probe_req(from, seq, target, addr, now),
            Msg::Suspect { incarnation, dead } => self.on_suspect(from, incarnation, dead, now),
            Msg::Alive {
                incarnation,
                name,
                cert,
            } => {
                if let Some(c) = self.claim(from, incarnation, name, cert) {
                    self.on_alive(from, c, now);
                }
            }
            Msg::Gossip(b) => {
                self.note(from, None, None, now);
                let known = self.known(&b);
                self.gossip.on_gossip_from(&from.id, b, known, now);
                self.flush_gossip(now);
            }
            Msg::IHave { ids } => {
                self.note(from, None, None, now);
                self.gossip.on_ihave(&from.id, ids, now);
            }
            Msg::Graft { id } => {
                self.note(from, None, None, now);
                self.gossip.on_graft(&from.id, id, now);
                self.flush_gossip(now);
            }
            Msg::Prune => self.gossip.on_prune(&from.id),
            // Messages for seeds.
            Msg::Register { .. } | Msg::Report { .. } | Msg::SeedSync { .. } => {}
        }
    }

    /// What this node knows that bears on letting broadcast `b` in.
    fn known(&self, b: &Broadcast) -> Known {
        let member_origin = self
            .members
            .get(&b.origin)
            .is_some_and(|m| !m.state.is_gone());
        let cert_held = match &b.body {
            Body::Member(ev) if !self.gossip.has_seen(&b.id()) => {
                let m = &ev.info;
                if m.id == self.ctx.me {
                    m.incarnation == self.ctx.incarnation
                        && m.name == self.ctx.name
                        && m.cert == self.ctx.cert
                } else {
                    self.members
                        .get(&m.id)
                        .is_some_and(|r| r.holds(m.incarnation, &m.name, &m.cert))
                }
            }
            _ => false,
        };
        Known {
            member_origin,
            cert_held,
        }
    }

    /// A seed's peer list, in answer to registration `seq`.
    fn on_peers(&mut self, seq: u64, members: Vec<MemberInfo>, now: Millis) {
        if self.seeds.on_peers(&mut self.ctx, seq, members.len()) {
            self.merge_list(members, true, now);
            self.fill_active(now);
        }
    }

    /// Runs the timers due at `now`.
    pub fn tick(&mut self, now: Millis) {
        if self.ctx.left {
            self.gossip.tick(now);
            self.flush_gossip(now);
            return;
        }
        self.views.expire_requests(now);
        let isolated = self.views.isolated();
        self.seeds
            .tick(&mut self.ctx, &self.views.active, isolated, now);
        self.tick_probes(now);
        self.tick_suspects(now);
        self.views.tick(&mut self.ctx, &self.members, now);
        self.fill_active(now);
        self.gossip.tick(now);
        self.flush_gossip(now);
        if now >= self.next_cleanup {
            self.next_cleanup = after(now, CLEANUP_EVERY);
            self.cleanup(now);
        }
    }

    fn cleanup(&mut self, now: Millis) {
        let keep = self.ctx.config.dead_retention.as_millis() as u64;
        self.members
            .retain(|_, m| !(m.state.is_gone() && now.0.saturating_sub(m.since.0) > keep));
        self.recount();
    }

    /// The earliest time `tick` has work to do.
    pub fn poll_at(&self) -> Millis {
        let at = self.gossip.poll_at().min(self.next_cleanup);
        if self.ctx.left {
            return at;
        }
        let at = self.views.poll_at(at);
        let at = self
            .liveness
            .poll_at(&self.ctx, at, !self.views.active.is_empty());
        self.seeds.poll_at(at, self.views.isolated())
    }
}

impl Core for PeerNode {
    fn start(&mut self, now: Millis) {
        PeerNode::start(self, now)
    }

    fn handle(&mut self, from: &Sender, msg: Msg, now: Millis) {
        PeerNode::handle(self, from, msg, now)
    }

    fn unreachable(&mut self, dest: Dest, now: Millis) {
        PeerNode::unreachable(self, dest, now)
    }

    fn tick(&mut self, now: Millis) {
        PeerNode::tick(self, now)
    }

    fn poll_at(&self) -> Millis {
        PeerNode::poll_at(self)
    }

    fn take_out(&mut self) -> Vec<Out> {
        PeerNode::take_out(self)
    }

    fn take_events(&mut self) -> Vec<OverlayEvent> {
        PeerNode::take_events(self)
    }

    fn say(&mut self, text: String, wall_ms: u64, now: Millis) -> Option<Result<MsgId, NotSent>> {
        Some(PeerNode::say(self, text, wall_ms, now))
    }

    fn status(&self, rows: bool, _now: Millis) -> OverlayStatus {
        OverlayStatus {
            id: self.id().to_string(),
            incarnation: self.incarnation(),
            peers: self.live_members(),
            neighbours: self.active().len(),
            passive: self.passive().len(),
            suspects: self.suspects(),
            dead: self.members.len() - self.live_members(),
            seeds_up: self.seeds_up(),
            said: self.stats.said,
            heard: self.stats.heard,
            heard_before_start: self.stats.heard_before_start,
            dropped_rate: self.gossip.stats.dropped_rate,
            dropped_signature: self.dropped_signature(),
            gossip: self.gossip.stats.clone(),
            rows: if rows { self.members() } else { Vec::new() },
            ..OverlayStatus::default()
        }
    }

    fn leave(&mut self, now: Millis) -> Departure {
        PeerNode::leave(self, now);
        Departure::Drain
    }
}

/// Ids of every peer in a set of rows (for tests and the simulator).
pub fn ids(rows: &[MemberRow]) -> BTreeSet<PeerId> {
    rows.iter().map(|r| r.id.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::testnet::*;
    use super::*;

    fn said(events: Vec<OverlayEvent>) -> Vec<String> {
        events
            .into_iter()
            .filter_map(|e| match e {
                OverlayEvent::Said { text, .. } => Some(text),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_restarted_peer_does_not_show_broadcasts_sent_before_it_started() {
        let config = OverlayConfig::default();
        let mut net = Net::new(3, config.clone());
        let t = net.now;
        net.nodes[1].say("before".into(), t.0, t).unwrap();
        net.run(t.0 + 1000, |_, _, _| true);
        assert_eq!(said(net.nodes[2].take_events()), ["before"]);

        // n2 quits and a new process takes its place: same id and address, a higher
        // incarnation, no memory. Its neighbours catch it up on recent broadcasts.
        net.nodes[2].leave(net.now);
        net.run(net.now.0 + 1000, |_, _, _| true);
        let restart = net.now;
        let mut fresh = PeerNode::new(key("n2"), name("n2"), 0, config, 99, 2, restart.0 * 1000);
        fresh.show_said_from(restart.0);
        fresh.start(restart);
        fresh.merge_list(vec![alive("n0", 0), alive("n1", 1)], false, restart);
        net.nodes[2] = fresh;
        net.run(restart.0 + 5000, |_, _, _| true);
        assert!(!net.nodes[2].active().is_empty(), "rejoined");
        assert!(said(net.nodes[2].take_events()).is_empty());
        assert_eq!(
            net.nodes[2].stats.heard_before_start, 1,
            "the old broadcast reached the new process, through the catch-up"
        );

        // What is said after the restart is shown, once.
        let t = net.now;
        net.nodes[0].say("after".into(), t.0, t).unwrap();
        net.run(t.0 + 1000, |_, _, _| true);
        assert_eq!(said(net.nodes[2].take_events()), ["after"]);
    }

    #[test]
    fn a_peer_with_no_neighbours_does_not_send_a_broadcast() {
        let mut x = lone(OverlayConfig::default(), 0);
        assert_eq!(
            x.say("anyone?".into(), 5, Millis(5)),
            Err(NotSent::NoNeighbours)
        );
        assert_eq!(x.stats.said, 0);
        assert!(said(x.take_events()).is_empty(), "not shown as said");
        assert!(x.take_out().is_empty());
    }

    #[test]
    fn a_flood_of_texts_is_cut_to_each_origins_rate_and_real_texts_still_pass() {
        let mut net = Net::new(3, OverlayConfig::default());
        for n in &mut net.nodes {
            n.take_events();
        }
        let now = net.now;
        let text = |origin: &str, seq: u64| {
            Msg::Gossip(signed(
                origin,
                seq,
                Body::Say(format!("spam {origin} {seq}")),
            ))
        };
        // n0 pushes 5000 texts from invented origins and 500 of its own to n1 at once.
        for i in 0..5000 {
            net.nodes[1].handle(&sender("n0", 0), text(&format!("fake-{i}"), 1), now);
        }
        for seq in 0..500 {
            net.nodes[1].handle(&sender("n0", 0), text("n0", 1000 + seq), now);
        }
        net.pump(&mut |_, _, _| true);
        let shown = said(net.nodes[1].take_events());
        let fake = shown.iter().filter(|t| t.starts_with("spam fake-")).count();
        let own = shown.iter().filter(|t| t.starts_with("spam n0 ")).count();
        assert_eq!((fake, own), (200, 50), "the newcomers' and n0's bursts");
        for other in [0, 2] {
            let relayed = said(net.nodes[other].take_events()).len();
            assert!(
                relayed <= 250,
                "n1 relayed only those: n{other} shows {relayed}"
            );
        }
        let status = Core::status(&net.nodes[1], false, now);
        assert_eq!(status.dropped_rate, 4800 + 450);

        // A member's text, later, reaches everyone as before.
        let t = Millis(now.0 + 1000);
        net.nodes[2].say("real".into(), t.0, t).unwrap();
        net.run(t.0 + 1000, |_, _, _| true);
        assert_eq!(said(net.nodes[0].take_events()), ["real"]);
        assert_eq!(said(net.nodes[1].take_events()), ["real"]);
    }
}
