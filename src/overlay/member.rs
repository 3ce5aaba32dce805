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
//! * **Broadcast.** The [`Plumtree`]'s neighbours are exactly the active view.
//!
//! No sockets, clocks or threads: methods take `now`, and what to send accumulates in
//! an outbox that the caller drains with [`PeerNode::take_out`].

use super::gossip::{GossipStats, Plumtree};
use super::{
    after, Body, Broadcast, Core, Departure, Dest, DetMap, ListStatus, Liveness, MemberEvent,
    MemberInfo, MemberState, Msg, MsgId, Out, OverlayConfig, OverlayEvent, OverlayStatus, Sender,
    SELF_ADDR,
};
use crate::clock::Millis;
use crate::protocol::name::PeerId;
use rand::rngs::StdRng;
use rand::seq::{IteratorRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

/// What this node knows of another.
#[derive(Clone, Debug)]
pub struct Member {
    pub addr: SocketAddr,
    pub incarnation: u64,
    pub state: MemberState,
    /// When the state last changed.
    pub since: Millis,
    pub degree: u32,
    /// Round-trip time of the last direct probe answered.
    pub rtt_ms: Option<u64>,
}

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

#[derive(Clone, Copy, Debug)]
enum SeedPhase {
    Idle,
    Waiting { deadline: Millis },
    Up,
    Down { retry_at: Millis },
}

#[derive(Clone, Debug)]
struct SeedLink {
    chosen: bool,
    phase: SeedPhase,
    /// The seq of the last registration sent, to match the answer.
    last_seq: u64,
    backoff: Duration,
    /// Answered the last registration (events fire only when this changes).
    reachable: bool,
    /// `SeedDown` was reported since the seed was last reachable.
    down_reported: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProbePhase {
    Direct,
    Indirect,
}

#[derive(Clone, Debug)]
struct Probe {
    target: PeerId,
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
struct Suspicion {
    incarnation: u64,
    deadline: Millis,
    next_resend: Millis,
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
}

/// Most indirect probes relayed at once for others.
const RELAYS_MAX: usize = 1024;
/// Shortest gap between two probes, however many neighbours there are.
const MIN_PROBE_GAP: u64 = 10;
/// Longest wait between two seed registration attempts.
const MAX_SEED_BACKOFF: Duration = Duration::from_secs(60);
/// How often a node with no view at all asks the seeds again.
const REJOIN_EVERY: Duration = Duration::from_secs(2);
const CLEANUP_EVERY: Duration = Duration::from_secs(10);
/// Shortest gap between two refutations by broadcast (many peers may tell a peer at
/// once that they hold it dead).
const REFUTE_BROADCAST_GAP: Duration = Duration::from_secs(5);

/// A peer's membership and broadcast state machine.
pub struct PeerNode {
    me: PeerId,
    config: OverlayConfig,
    rng: StdRng,
    incarnation: u64,
    next_seq: u64,
    next_probe_seq: u64,
    next_register_seq: u64,
    seeds: Vec<SeedLink>,
    majority: usize,
    members: DetMap<PeerId, Member>,
    active: Vec<PeerId>,
    passive: Vec<PeerId>,
    /// Neighbour requests in flight, with their deadlines.
    pending: BTreeMap<PeerId, Millis>,
    probe_order: Vec<PeerId>,
    next_probe_at: Millis,
    probes: BTreeMap<u64, Probe>,
    relays: BTreeMap<u64, Relay>,
    suspects: BTreeMap<PeerId, Suspicion>,
    misses: BTreeMap<PeerId, u32>,
    gossip: Plumtree,
    next_shuffle: Millis,
    next_rotate: Millis,
    /// The neighbour request of a rotation in flight.
    rotating: Option<PeerId>,
    next_refresh: Millis,
    next_rejoin: Millis,
    next_cleanup: Millis,
    /// A refutation by broadcast is sent at most this often.
    next_refute_broadcast: Millis,
    /// The active view's target size, recomputed when the member count may have
    /// changed much (counting members on every tick would cost O(N)).
    target: usize,
    left: bool,
    /// Broadcast texts sent before this wall-clock time (ms since the Unix epoch, by
    /// the origin's clock) are relayed but not shown; see [`PeerNode::show_said_from`].
    show_said_from: u64,
    out: Vec<Out>,
    events: Vec<OverlayEvent>,
    pub stats: PeerStats,
}

impl PeerNode {
    /// A node with `seeds` configured seeds. `incarnation` should exceed that of any
    /// earlier run of the same peer (the runtime uses the wall clock in seconds), and
    /// `first_seq` the seq of any broadcast it sent before (wall clock in ms), so a
    /// restarted peer is neither mistaken for its dead self nor deduplicated away.
    pub fn new(
        me: PeerId,
        seeds: usize,
        config: OverlayConfig,
        rng_seed: u64,
        incarnation: u64,
        first_seq: u64,
    ) -> PeerNode {
        let gossip = Plumtree::new(config.gossip.clone());
        PeerNode {
            me,
            rng: StdRng::seed_from_u64(rng_seed),
            incarnation,
            next_seq: first_seq,
            next_probe_seq: 1,
            next_register_seq: 1,
            seeds: vec![
                SeedLink {
                    chosen: false,
                    phase: SeedPhase::Idle,
                    last_seq: 0,
                    backoff: Duration::from_secs(5),
                    reachable: false,
                    down_reported: false,
                };
                seeds
            ],
            majority: seeds / 2 + 1,
            members: DetMap::default(),
            active: Vec::new(),
            passive: Vec::new(),
            pending: BTreeMap::new(),
            probe_order: Vec::new(),
            next_probe_at: Millis(0),
            probes: BTreeMap::new(),
            relays: BTreeMap::new(),
            suspects: BTreeMap::new(),
            misses: BTreeMap::new(),
            gossip,
            next_shuffle: Millis(0),
            next_rotate: Millis(0),
            rotating: None,
            next_refresh: Millis(0),
            next_rejoin: Millis(0),
            next_cleanup: Millis(0),
            next_refute_broadcast: Millis(0),
            target: config.active_min,
            left: false,
            show_said_from: 0,
            out: Vec::new(),
            events: Vec::new(),
            stats: PeerStats::default(),
            config,
        }
    }

    pub fn id(&self) -> &PeerId {
        &self.me
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub fn config(&self) -> &OverlayConfig {
        &self.config
    }

    pub fn gossip_stats(&self) -> &GossipStats {
        &self.gossip.stats
    }

    pub fn has_seen(&self, id: &MsgId) -> bool {
        self.gossip.has_seen(id)
    }

    pub fn active(&self) -> &[PeerId] {
        &self.active
    }

    pub fn passive(&self) -> &[PeerId] {
        &self.passive
    }

    pub fn member(&self, id: &PeerId) -> Option<&Member> {
        self.members.get(id)
    }

    /// Members alive or suspect, this node excluded.
    pub fn live_members(&self) -> usize {
        self.members.values().filter(|m| !m.state.is_gone()).count()
    }

    pub fn suspects(&self) -> usize {
        self.suspects.len()
    }

    /// Seeds that answered the last registration.
    pub fn seeds_up(&self) -> usize {
        self.seeds.iter().filter(|s| s.reachable).count()
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
        if self.active.contains(id) {
            View::Active
        } else if self.passive.contains(id) {
            View::Passive
        } else {
            View::None
        }
    }

    /// Messages to send, in order.
    pub fn take_out(&mut self) -> Vec<Out> {
        std::mem::take(&mut self.out)
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
        std::mem::take(&mut self.events)
    }

    /// The active view's target size: max(`active_min`, ⌈log2 N⌉ + 1) for the N
    /// members known (this node included) at the last recount.
    pub fn target_active(&self) -> usize {
        self.target
    }

    fn recount(&mut self) {
        let n = self.live_members() + 1;
        let log = (n as f64).log2().ceil() as usize + 1;
        self.target = log.max(self.config.active_min);
    }

    fn active_max(&self) -> usize {
        self.target_active() + self.target_active() / 2
    }

    // ----- sending -----

    fn send(&mut self, to: Dest, msg: Msg) {
        self.out.push(Out { to, msg });
    }

    fn send_to(&mut self, id: &PeerId, msg: Msg) {
        if let Some(m) = self.members.get(id) {
            let to = Dest::Node(m.addr);
            self.send(to, msg);
        }
    }

    fn info(&self, id: &PeerId, m: &Member) -> MemberInfo {
        MemberInfo {
            id: id.clone(),
            addr: m.addr,
            incarnation: m.incarnation,
            state: m.state,
            degree: m.degree,
        }
    }

    fn flush_gossip(&mut self, now: Millis) {
        for (to, msg) in self.gossip.take_out() {
            self.send_to(&to, msg);
        }
        for b in self.gossip.take_delivered() {
            self.on_delivered(b, now);
        }
    }

    // ----- starting and leaving -----

    /// Registers with a majority of the seeds, chosen at random.
    pub fn start(&mut self, now: Millis) {
        let mut order: Vec<usize> = (0..self.seeds.len()).collect();
        order.shuffle(&mut self.rng);
        for &i in order.iter().take(self.majority.min(self.seeds.len())) {
            self.seeds[i].chosen = true;
            self.register(i, now);
        }
        self.next_refresh = after(now, self.config.seed_refresh);
        self.next_shuffle = after(now, self.config.shuffle_interval);
        let rotate = self.config.rotate_interval.as_millis() as u64;
        self.next_rotate = Millis(now.0 + rotate + self.rng.gen_range(0..rotate.max(1)));
        self.next_cleanup = after(now, CLEANUP_EVERY);
        self.recount();
    }

    fn register(&mut self, seed: usize, now: Millis) {
        let seq = self.next_register_seq;
        self.next_register_seq += 1;
        let s = &mut self.seeds[seed];
        s.last_seq = seq;
        s.phase = SeedPhase::Waiting {
            deadline: after(now, self.config.seed_timeout),
        };
        let msg = Msg::Register {
            seq,
            incarnation: self.incarnation,
            degree: self.active.len() as u32,
            neighbours: self.active.clone(),
        };
        self.send(Dest::Seed(seed), msg);
    }

    /// Leaves on purpose: tells the neighbours and the seeds, and broadcasts it.
    pub fn leave(&mut self, now: Millis) {
        if self.left {
            return;
        }
        self.left = true;
        let me = MemberInfo {
            id: self.me.clone(),
            addr: SELF_ADDR,
            incarnation: self.incarnation,
            state: MemberState::Left,
            degree: 0,
        };
        self.broadcast_member(me.clone(), now);
        for n in self.active.clone() {
            self.send_to(&n, Msg::Disconnect);
        }
        for i in 0..self.seeds.len() {
            self.send(Dest::Seed(i), Msg::Report { member: me.clone() });
        }
    }

    // ----- broadcasts -----

    fn next_broadcast(&mut self, body: Body, wall_ms: u64) -> Broadcast {
        let seq = self.next_seq;
        self.next_seq += 1;
        Broadcast {
            origin: self.me.clone(),
            seq,
            hops: 0,
            time_ms: wall_ms,
            body,
        }
    }

    /// Broadcasts a text to every live peer; returns its id. With no neighbour it
    /// would reach nobody, so it is not sent at all (and not shown here as said).
    pub fn say(&mut self, text: String, wall_ms: u64, now: Millis) -> Result<MsgId, NotSent> {
        if self.active.is_empty() {
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
                let local = b.origin == self.me;
                if !local {
                    self.stats.heard += 1;
                }
                self.events.push(OverlayEvent::Said {
                    id,
                    origin: b.origin,
                    time_ms: b.time_ms,
                    text,
                    hops: b.hops,
                    local,
                });
            }
            Body::Member(ev) => {
                if b.origin == self.me {
                    return;
                }
                self.on_member_event(ev.info, &b.origin, now);
            }
        }
    }

    fn on_member_event(&mut self, info: MemberInfo, origin: &PeerId, now: Millis) {
        if info.state != MemberState::Dead && info.id != *origin {
            // Only a member itself says that it left, or refutes its death.
            return;
        }
        if info.id == self.me {
            if info.state.is_gone() && info.incarnation >= self.incarnation && !self.left {
                self.refute(info.incarnation, now);
            }
            return;
        }
        // The broadcast names the member's address as its declarer knew it; a member
        // we know keeps the address we know.
        let applied = self.apply(&info, now);
        self.after_apply(&info.id, applied, Some(origin), now);
    }

    fn refute(&mut self, heard: u64, now: Millis) {
        // Saturating: an incarnation from the network may be the largest there is.
        self.incarnation = self.incarnation.max(heard).saturating_add(1);
        self.stats.refutations += 1;
        self.events.push(OverlayEvent::RefutedSelf {
            incarnation: self.incarnation,
        });
        let me = MemberInfo {
            id: self.me.clone(),
            addr: SELF_ADDR,
            incarnation: self.incarnation,
            state: MemberState::Alive,
            degree: self.active.len() as u32,
        };
        self.broadcast_member(me, now);
    }

    // ----- the member table -----

    /// Merges news of a member by SWIM's rules; returns what changed.
    fn apply(&mut self, info: &MemberInfo, now: Millis) -> Applied {
        if info.id == self.me {
            return Applied::Unchanged;
        }
        let Some(m) = self.members.get_mut(&info.id) else {
            // News of a member we never heard of, without an address to reach it by, or
            // past the cap (deaths included: anyone can announce deaths of made-up
            // peers), is not worth keeping.
            if info.addr == SELF_ADDR || self.members.len() >= self.config.members_max {
                return Applied::Unchanged;
            }
            self.members.insert(
                info.id.clone(),
                Member {
                    addr: info.addr,
                    incarnation: info.incarnation,
                    state: info.state,
                    since: now,
                    degree: info.degree,
                    rtt_ms: None,
                },
            );
            return Applied::New(info.state);
        };
        match info.state {
            MemberState::Alive => {
                if info.incarnation > m.incarnation {
                    let held_gone = m.state.is_gone().then_some(m.incarnation);
                    m.incarnation = info.incarnation;
                    if info.addr != SELF_ADDR {
                        m.addr = info.addr;
                    }
                    m.degree = info.degree;
                    if m.state != MemberState::Alive {
                        m.state = MemberState::Alive;
                        m.since = now;
                        return Applied::Revived { held_gone };
                    }
                } else if info.incarnation == m.incarnation && m.state == MemberState::Alive {
                    m.degree = info.degree;
                }
                Applied::Unchanged
            }
            MemberState::Suspect => {
                if m.state == MemberState::Alive && info.incarnation >= m.incarnation {
                    m.incarnation = info.incarnation;
                    m.state = MemberState::Suspect;
                    m.since = now;
                    return Applied::Suspected;
                }
                Applied::Unchanged
            }
            MemberState::Dead | MemberState::Left => {
                if !m.state.is_gone() && info.incarnation >= m.incarnation {
                    m.incarnation = info.incarnation;
                    m.state = info.state;
                    m.since = now;
                    return Applied::Gone(info.state);
                }
                if m.state.is_gone() && info.incarnation > m.incarnation {
                    m.incarnation = info.incarnation;
                }
                Applied::Unchanged
            }
        }
    }

    fn after_apply(&mut self, id: &PeerId, applied: Applied, by: Option<&PeerId>, now: Millis) {
        match applied {
            Applied::New(MemberState::Alive) => self.add_passive(id.clone()),
            Applied::Revived { held_gone } => {
                self.suspects.remove(id);
                if let Some(m) = self.members.get(id) {
                    self.events.push(OverlayEvent::Refuted {
                        id: id.clone(),
                        incarnation: m.incarnation,
                    });
                    if let (Some(held), None) = (held_gone, by) {
                        // Heard from a peer list, not from the member's own refutation,
                        // which may have missed many peers (it refuted while the overlay
                        // was split): it is told, and refutes again, by broadcast.
                        let to = Dest::Node(m.addr);
                        let msg = Msg::Suspect {
                            incarnation: held,
                            dead: true,
                        };
                        self.send(to, msg);
                    }
                }
                self.add_passive(id.clone());
            }
            Applied::Gone(state) => {
                self.drop_from_views(
                    id,
                    if state == MemberState::Left {
                        "left"
                    } else {
                        "dead"
                    },
                    now,
                );
                self.events.push(match state {
                    MemberState::Left => OverlayEvent::Left { id: id.clone() },
                    _ => OverlayEvent::Dead {
                        id: id.clone(),
                        by: by.cloned().unwrap_or_else(|| self.me.clone()),
                    },
                });
            }
            _ => {}
        }
    }

    /// First-hand contact: the sender is alive at the address it spoke from.
    fn note(&mut self, from: &Sender, incarnation: Option<u64>, degree: Option<u32>, now: Millis) {
        if from.id == self.me {
            return;
        }
        match self.members.get_mut(&from.id) {
            None => {
                if self.members.len() >= self.config.members_max {
                    return;
                }
                self.members.insert(
                    from.id.clone(),
                    Member {
                        addr: from.addr,
                        incarnation: incarnation.unwrap_or(0),
                        state: MemberState::Alive,
                        since: now,
                        degree: degree.unwrap_or(0),
                        rtt_ms: None,
                    },
                );
            }
            Some(m) => {
                m.addr = from.addr;
                if let Some(d) = degree {
                    m.degree = d;
                }
                let mut held_gone = None;
                if let Some(inc) = incarnation {
                    if inc > m.incarnation {
                        if m.state.is_gone() {
                            held_gone = Some(m.incarnation);
                        }
                        m.incarnation = inc;
                        if m.state != MemberState::Alive {
                            m.state = MemberState::Alive;
                            m.since = now;
                            self.suspects.remove(&from.id);
                            self.events.push(OverlayEvent::Refuted {
                                id: from.id.clone(),
                                incarnation: inc,
                            });
                        }
                    }
                }
                if m.state != MemberState::Alive && !self.suspects.contains_key(&from.id) {
                    // It talks to us but we hold it dead: tell it, so it refutes.
                    held_gone = Some(m.incarnation);
                }
                if let Some(held) = held_gone {
                    // Held dead until now (its higher incarnation came with this
                    // message): its refutation missed us, so likely others too, and it
                    // refutes again, by broadcast.
                    self.send(
                        Dest::Node(from.addr),
                        Msg::Suspect {
                            incarnation: held,
                            dead: true,
                        },
                    );
                }
            }
        }
    }

    fn is_alive(&self, id: &PeerId) -> bool {
        self.members
            .get(id)
            .is_some_and(|m| m.state == MemberState::Alive)
    }

    // ----- views -----

    fn add_passive(&mut self, id: PeerId) {
        if id == self.me
            || self.active.contains(&id)
            || self.passive.contains(&id)
            || !self.is_alive(&id)
        {
            return;
        }
        if self.passive.len() >= self.config.passive_max {
            let i = self.rng.gen_range(0..self.passive.len());
            self.passive.swap_remove(i);
        }
        self.passive.push(id);
    }

    /// Forgets the neighbour request in flight to `id`, and the rotation it was for
    /// (or no rotation would ever start again).
    fn end_request(&mut self, id: &PeerId) {
        self.pending.remove(id);
        if self.rotating.as_ref() == Some(id) {
            self.rotating = None;
        }
    }

    fn add_active(&mut self, id: PeerId, now: Millis) {
        self.end_request(&id);
        self.passive.retain(|p| *p != id);
        if self.active.contains(&id) {
            return;
        }
        self.active.push(id.clone());
        self.gossip.neighbor_up(id.clone(), now);
        self.events.push(OverlayEvent::NeighborUp { id });
        self.flush_gossip(now);
    }

    /// Takes a member out of the active view (without telling it).
    fn remove_active(&mut self, id: &PeerId, reason: &'static str) -> bool {
        let Some(i) = self.active.iter().position(|a| a == id) else {
            return false;
        };
        self.active.remove(i);
        self.gossip.neighbor_down(id);
        self.misses.remove(id);
        self.events.push(OverlayEvent::NeighborDown {
            id: id.clone(),
            reason,
        });
        true
    }

    fn drop_from_views(&mut self, id: &PeerId, reason: &'static str, now: Millis) {
        self.remove_active(id, reason);
        self.passive.retain(|p| p != id);
        self.end_request(id);
        self.suspects.remove(id);
        self.misses.remove(id);
        self.probes.retain(|_, p| p.target != *id);
        self.fill_active(now);
    }

    /// Sends neighbour requests until active + pending reaches the target.
    fn fill_active(&mut self, now: Millis) {
        if self.left {
            return;
        }
        let target = self.target_active();
        while self.active.len() + self.pending.len() < target {
            let Some(c) = self.pick_candidate() else {
                break;
            };
            let high = self.active.is_empty();
            self.pending
                .insert(c.clone(), after(now, self.config.neighbor_timeout));
            let msg = Msg::Neighbor {
                high,
                incarnation: self.incarnation,
                degree: self.active.len() as u32,
            };
            self.send_to(&c, msg);
        }
    }

    /// A neighbour candidate: from the passive view if it has any, else from every
    /// live member; half the time weighted by degree (well-connected peers attract
    /// more neighbours: a power-law tail), half the time uniformly.
    fn pick_candidate(&mut self) -> Option<PeerId> {
        let usable = |id: &PeerId, s: &PeerNode| {
            !s.active.contains(id) && !s.pending.contains_key(id) && s.is_alive(id)
        };
        let mut pool: Vec<PeerId> = self
            .passive
            .iter()
            .filter(|id| usable(id, self))
            .cloned()
            .collect();
        if pool.is_empty() {
            pool = self
                .members
                .keys()
                .filter(|id| usable(id, self))
                .cloned()
                .collect();
        }
        if pool.is_empty() {
            return None;
        }
        if self.rng.gen_bool(0.5) {
            let weights: Vec<u64> = pool
                .iter()
                .map(|id| self.members.get(id).map_or(1, |m| m.degree as u64 + 1))
                .collect();
            let total: u64 = weights.iter().sum();
            let mut pick = self.rng.gen_range(0..total);
            for (id, w) in pool.iter().zip(&weights) {
                if pick < *w {
                    return Some(id.clone());
                }
                pick -= w;
            }
        }
        pool.choose(&mut self.rng).cloned()
    }

    fn sample(&mut self, exclude: &PeerId) -> Vec<MemberInfo> {
        // A quarter from the active view, half from the passive view, the rest from
        // every member known.
        let size = self.config.shuffle_size;
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
        act.shuffle(&mut self.rng);
        act.truncate(size / 4);
        take(act, &mut ids);
        let mut pas = self.passive.clone();
        pas.shuffle(&mut self.rng);
        pas.truncate(size / 2);
        take(pas, &mut ids);
        let others: Vec<PeerId> = self
            .members
            .iter()
            .filter(|(_, m)| m.state == MemberState::Alive)
            .map(|(id, _)| id)
            .choose_multiple(&mut self.rng, size)
            .into_iter()
            .cloned()
            .collect();
        take(others, &mut ids);
        ids.iter()
            .filter_map(|id| self.members.get(id).map(|m| self.info(id, m)))
            .filter(|i| i.state == MemberState::Alive)
            .collect()
    }

    /// Merges a peer list. A seed's list is first-hand (the seed heard from each
    /// member recently): a member listed alive that we hold dead at the same
    /// incarnation is told so, and refutes if it is alive (after a partition, each
    /// side holds the other dead without the other knowing).
    fn merge_list(&mut self, list: Vec<MemberInfo>, from_seed: bool, now: Millis) {
        for info in list {
            if info.id == self.me {
                if info.state.is_gone() && info.incarnation >= self.incarnation && !self.left {
                    self.refute(info.incarnation, now);
                }
                continue;
            }
            if from_seed && info.state == MemberState::Alive {
                if let Some(m) = self.members.get(&info.id) {
                    if m.state.is_gone() && m.incarnation >= info.incarnation {
                        let incarnation = m.incarnation;
                        self.send(
                            Dest::Node(info.addr),
                            Msg::Suspect {
                                incarnation,
                                dead: true,
                            },
                        );
                        continue;
                    }
                }
            }
            let applied = self.apply(&info, now);
            let id = info.id.clone();
            self.after_apply(&id, applied, None, now);
            if info.state == MemberState::Alive {
                self.add_passive(id);
            }
        }
        self.recount();
    }

    // ----- liveness -----

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
        if self.suspects.contains_key(id) {
            return;
        }
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        m.state = MemberState::Suspect;
        m.since = now;
        let incarnation = m.incarnation;
        self.stats.suspicions += 1;
        self.suspects.insert(
            id.clone(),
            Suspicion {
                incarnation,
                deadline: after(now, self.config.suspicion_timeout),
                next_resend: now,
            },
        );
        self.events.push(OverlayEvent::Suspected { id: id.clone() });
        if self.remove_active(id, "suspected") {
            // If it is alive after all, it must drop us too: views stay symmetric.
            self.send_to(id, Msg::Disconnect);
        }
        self.passive.retain(|p| p != id);
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
        let info = MemberInfo {
            id: id.clone(),
            addr: m.addr,
            incarnation: m.incarnation,
            state: MemberState::Dead,
            degree: 0,
        };
        self.stats.deaths_declared += 1;
        self.drop_from_views(id, "dead", now);
        self.events.push(OverlayEvent::Dead {
            id: id.clone(),
            by: self.me.clone(),
        });
        self.broadcast_member(info.clone(), now);
        for i in 0..self.seeds.len() {
            self.send(
                Dest::Seed(i),
                Msg::Report {
                    member: info.clone(),
                },
            );
        }
    }

    fn next_probe_target(&mut self) -> Option<PeerId> {
        loop {
            match self.probe_order.pop() {
                Some(id) if self.active.contains(&id) => return Some(id),
                Some(_) => continue,
                None => {
                    if self.active.is_empty() {
                        return None;
                    }
                    self.probe_order = self.active.clone();
                    self.probe_order.shuffle(&mut self.rng);
                }
            }
        }
    }

    fn start_probe(&mut self, target: PeerId, now: Millis) {
        if self.probes.values().any(|p| p.target == target) {
            return;
        }
        let seq = self.next_probe_seq;
        self.next_probe_seq += 1;
        self.stats.probes_sent += 1;
        self.send_to(&target, Msg::Probe { seq });
        self.probes.insert(
            seq,
            Probe {
                target,
                started: now,
                phase: ProbePhase::Direct,
            },
        );
    }

    fn tick_probes(&mut self, now: Millis) {
        let round = self.config.probe_round.as_millis() as u64;
        match self.config.liveness {
            Liveness::Swim => {
                if now >= self.next_probe_at && !self.active.is_empty() {
                    let gap = (round / self.active.len() as u64).max(MIN_PROBE_GAP);
                    self.next_probe_at = Millis(now.0 + gap);
                    if let Some(t) = self.next_probe_target() {
                        self.start_probe(t, now);
                    }
                }
            }
            Liveness::Classic { .. } => {
                if now >= self.next_probe_at {
                    self.next_probe_at = Millis(now.0 + round);
                    for t in self.active.clone() {
                        self.start_probe(t, now);
                    }
                }
            }
        }
        let direct = self.config.probe_timeout.as_millis() as u64;
        let indirect = self.config.indirect_timeout.as_millis() as u64;
        let due: Vec<u64> = self
            .probes
            .iter()
            .filter(|(_, p)| match p.phase {
                ProbePhase::Direct => now.0 >= p.started.0 + direct,
                ProbePhase::Indirect => now.0 >= p.started.0 + direct + indirect,
            })
            .map(|(s, _)| *s)
            .collect();
        for seq in due {
            let Some(p) = self.probes.get(&seq).cloned() else {
                continue;
            };
            match (self.config.liveness, p.phase) {
                (Liveness::Swim, ProbePhase::Direct) if self.config.indirect_probes > 0 => {
                    if let Some(probe) = self.probes.get_mut(&seq) {
                        probe.phase = ProbePhase::Indirect;
                    }
                    self.send_to(&p.target, Msg::Probe { seq });
                    let addr = match self.members.get(&p.target) {
                        Some(m) => m.addr,
                        None => continue,
                    };
                    let mut helpers: Vec<PeerId> = self
                        .active
                        .iter()
                        .chain(self.passive.iter())
                        .filter(|h| **h != p.target)
                        .cloned()
                        .collect();
                    helpers.shuffle(&mut self.rng);
                    helpers.truncate(self.config.indirect_probes);
                    for h in helpers {
                        self.send_to(
                            &h,
                            Msg::ProbeReq {
                                seq,
                                target: p.target.clone(),
                                addr,
                            },
                        );
                    }
                }
                (Liveness::Swim, _) => {
                    self.probes.remove(&seq);
                    self.suspect(&p.target, now);
                }
                (Liveness::Classic { misses }, _) => {
                    self.probes.remove(&seq);
                    let n = self.misses.entry(p.target.clone()).or_insert(0);
                    *n += 1;
                    if *n >= misses {
                        self.declare_dead(&p.target, now);
                    }
                }
            }
        }
        self.relays.retain(|_, r| r.deadline > now);
    }

    fn tick_suspects(&mut self, now: Millis) {
        let ids: Vec<PeerId> = self.suspects.keys().cloned().collect();
        for id in ids {
            let Some(s) = self.suspects.get_mut(&id) else {
                continue;
            };
            if now >= s.deadline {
                self.suspects.remove(&id);
                self.declare_dead(&id, now);
            } else if now >= s.next_resend {
                s.next_resend = after(now, self.config.suspect_resend);
                let incarnation = s.incarnation;
                self.send_to(
                    &id,
                    Msg::Suspect {
                        incarnation,
                        dead: false,
                    },
                );
            }
        }
    }

    // ----- seeds -----

    fn tick_seeds(&mut self, now: Millis) {
        for i in 0..self.seeds.len() {
            match self.seeds[i].phase {
                SeedPhase::Waiting { deadline } if now >= deadline => self.seed_down(i, now),
                SeedPhase::Down { retry_at } if now >= retry_at && self.seeds[i].chosen => {
                    self.register(i, now)
                }
                _ => {}
            }
        }
        if now >= self.next_refresh {
            self.next_refresh = after(now, self.config.seed_refresh);
            for i in 0..self.seeds.len() {
                if self.seeds[i].chosen
                    && matches!(self.seeds[i].phase, SeedPhase::Up | SeedPhase::Idle)
                {
                    self.register(i, now);
                }
            }
        }
        if self.active.is_empty()
            && self.pending.is_empty()
            && self.passive.is_empty()
            && now >= self.next_rejoin
            && !self.seeds.is_empty()
        {
            self.next_rejoin = after(now, REJOIN_EVERY);
            for i in 0..self.seeds.len() {
                if self.seeds[i].chosen
                    && !matches!(
                        self.seeds[i].phase,
                        SeedPhase::Waiting { .. } | SeedPhase::Down { .. }
                    )
                {
                    self.register(i, now);
                }
            }
        }
    }

    fn seed_down(&mut self, i: usize, now: Millis) {
        let s = &mut self.seeds[i];
        if matches!(s.phase, SeedPhase::Down { .. }) {
            return;
        }
        s.phase = SeedPhase::Down {
            retry_at: after(now, s.backoff),
        };
        s.backoff = (s.backoff * 2).min(MAX_SEED_BACKOFF);
        s.reachable = false;
        if !std::mem::replace(&mut s.down_reported, true) {
            self.events.push(OverlayEvent::SeedDown { seed: i });
        }
        // Keep a majority of seeds in use: take another one if any is left.
        let usable = self
            .seeds
            .iter()
            .filter(|s| s.chosen && !matches!(s.phase, SeedPhase::Down { .. }))
            .count();
        if usable < self.majority {
            let spare: Vec<usize> = (0..self.seeds.len())
                .filter(|&j| !self.seeds[j].chosen)
                .collect();
            if let Some(&j) = spare.choose(&mut self.rng) {
                self.seeds[j].chosen = true;
                self.register(j, now);
            }
        }
    }

    /// The runtime could not reach a destination at all (connection refused, no route,
    /// name not resolved): a hint that spares a timeout.
    pub fn unreachable(&mut self, dest: Dest, now: Millis) {
        match dest {
            Dest::Seed(i) if i < self.seeds.len() => {
                if matches!(self.seeds[i].phase, SeedPhase::Waiting { .. }) {
                    self.seed_down(i, now);
                }
            }
            Dest::Node(addr) => {
                let pending: Vec<PeerId> = self
                    .pending
                    .keys()
                    .filter(|id| self.members.get(*id).is_some_and(|m| m.addr == addr))
                    .cloned()
                    .collect();
                for id in pending {
                    self.end_request(&id);
                    self.passive.retain(|p| *p != id);
                }
                // Replace the request at once while the passive view, which each
                // failure shrinks, has candidates; other members wait for the next
                // tick, so members that all turn out unreachable are not dialled in
                // a loop.
                if self
                    .passive
                    .iter()
                    .any(|p| !self.pending.contains_key(p) && self.is_alive(p))
                {
                    self.fill_active(now);
                }
            }
            Dest::Seed(_) => {}
        }
    }

    // ----- input -----

    /// Handles one message from another node.
    pub fn handle(&mut self, from: &Sender, msg: Msg, now: Millis) {
        if from.id == self.me {
            return;
        }
        if from.seed {
            // Seeds are not members: they only answer registrations and probe.
            match msg {
                Msg::Peers { .. } => {}
                Msg::Probe { seq } => {
                    let ack = Msg::Ack {
                        seq,
                        incarnation: self.incarnation,
                    };
                    self.send(Dest::Node(from.addr), ack);
                    return;
                }
                _ => return,
            }
        } else if matches!(msg, Msg::Peers { .. }) {
            return;
        }
        match msg {
            Msg::Peers {
                seq,
                status,
                members,
            } => {
                let Some(i) = self.seeds.iter().position(|s| s.last_seq == seq) else {
                    return;
                };
                match status {
                    ListStatus::Conflict => {
                        self.seeds[i].phase = SeedPhase::Down {
                            retry_at: after(now, MAX_SEED_BACKOFF),
                        };
                        self.events.push(OverlayEvent::IdConflict { seed: i });
                    }
                    ListStatus::Ok => {
                        let s = &mut self.seeds[i];
                        s.phase = SeedPhase::Up;
                        s.backoff = Duration::from_secs(5);
                        s.down_reported = false;
                        let was_reachable = std::mem::replace(&mut s.reachable, true);
                        if !was_reachable {
                            self.events.push(OverlayEvent::SeedUp {
                                seed: i,
                                peers: members.len(),
                            });
                        }
                        self.merge_list(members, true, now);
                        self.fill_active(now);
                    }
                }
            }
            Msg::Neighbor {
                high,
                incarnation,
                degree,
            } => {
                self.note(from, Some(incarnation), Some(degree), now);
                let accepted = if self.left {
                    false
                } else if self.active.contains(&from.id) {
                    true
                } else if self.active.len() < self.active_max() || high {
                    if self.active.len() >= self.active_max() {
                        let i = self.rng.gen_range(0..self.active.len());
                        let evicted = self.active[i].clone();
                        self.remove_active(&evicted, "replaced");
                        self.send_to(&evicted, Msg::Disconnect);
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
                    incarnation: self.incarnation,
                    degree: self.active.len() as u32,
                };
                self.send(Dest::Node(from.addr), reply);
            }
            Msg::NeighborReply {
                accepted,
                incarnation,
                degree,
            } => {
                self.note(from, Some(incarnation), Some(degree), now);
                self.pending.remove(&from.id);
                let rotation = self.rotating.as_ref() == Some(&from.id);
                if rotation {
                    self.rotating = None;
                }
                if accepted && !self.left {
                    if self.active.contains(&from.id) {
                        return;
                    }
                    let alive = self.is_alive(&from.id);
                    if self.active.len() < self.active_max() && alive {
                        self.add_active(from.id.clone(), now);
                        if rotation && self.active.len() > self.target_active() {
                            self.rotate_out(&from.id);
                        }
                    } else if rotation && alive {
                        // A view at its largest swaps too: another neighbour makes
                        // room first (or the best-connected peers would never mix).
                        self.rotate_out(&from.id);
                        self.add_active(from.id.clone(), now);
                    } else {
                        self.send(Dest::Node(from.addr), Msg::Disconnect);
                        self.add_passive(from.id.clone());
                    }
                } else {
                    self.add_passive(from.id.clone());
                    self.fill_active(now);
                }
            }
            Msg::Disconnect => {
                self.note(from, None, None, now);
                if self.remove_active(&from.id, "disconnected") {
                    self.add_passive(from.id.clone());
                    self.fill_active(now);
                }
            }
            Msg::Shuffle { reply, members } => {
                self.note(from, None, None, now);
                self.stats.shuffles += 1;
                if !reply {
                    let sample = self.sample(&from.id);
                    self.send(
                        Dest::Node(from.addr),
                        Msg::Shuffle {
                            reply: true,
                            members: sample,
                        },
                    );
                    if !self.active.contains(&from.id) && !self.pending.contains_key(&from.id) {
                        // Shuffles go to neighbours only: the sender holds a link this
                        // node lost (an answer or a disconnect was lost, or this node
                        // restarted), and drops it.
                        self.send(Dest::Node(from.addr), Msg::Disconnect);
                    }
                }
                self.merge_list(members, false, now);
                self.fill_active(now);
            }
            Msg::Probe { seq } => {
                self.note(from, None, None, now);
                let ack = Msg::Ack {
                    seq,
                    incarnation: self.incarnation,
                };
                self.send(Dest::Node(from.addr), ack);
            }
            Msg::Ack { seq, incarnation } => {
                if let Some(p) = self.probes.remove(&seq) {
                    if p.target == from.id {
                        self.note(from, Some(incarnation), None, now);
                        if let Some(m) = self.members.get_mut(&from.id) {
                            m.rtt_ms = Some(now.0.saturating_sub(p.started.0));
                        }
                    } else if let Some(m) = self.members.get_mut(&p.target) {
                        // Relayed by a helper: the target is alive.
                        if incarnation > m.incarnation {
                            m.incarnation = incarnation;
                        }
                    }
                    self.misses.remove(&p.target);
                } else if let Some(r) = self.relays.remove(&seq) {
                    self.send(
                        Dest::Node(r.requester),
                        Msg::Ack {
                            seq: r.seq,
                            incarnation,
                        },
                    );
                }
            }
            Msg::ProbeReq { seq, target, addr } => {
                self.note(from, None, None, now);
                if target == self.me || self.relays.len() >= RELAYS_MAX {
                    return;
                }
                let my_seq = self.next_probe_seq;
                self.next_probe_seq += 1;
                self.relays.insert(
                    my_seq,
                    Relay {
                        requester: from.addr,
                        seq,
                        deadline: after(
                            now,
                            self.config.probe_timeout + self.config.indirect_timeout,
                        ),
                    },
                );
                self.send(Dest::Node(addr), Msg::Probe { seq: my_seq });
            }
            Msg::Suspect { incarnation, dead } => {
                if self.left {
                    return;
                }
                if dead && now >= self.next_refute_broadcast {
                    // Held dead: everyone may hold us dead (after a partition, each
                    // side declared the other dead), so refute to everyone.
                    self.next_refute_broadcast = after(now, REFUTE_BROADCAST_GAP);
                    self.refute(incarnation, now);
                } else if incarnation >= self.incarnation {
                    self.incarnation = incarnation.saturating_add(1);
                    self.stats.refutations += 1;
                    self.events.push(OverlayEvent::RefutedSelf {
                        incarnation: self.incarnation,
                    });
                }
                let alive = Msg::Alive {
                    incarnation: self.incarnation,
                };
                self.send(Dest::Node(from.addr), alive);
            }
            Msg::Alive { incarnation } => {
                let suspected = self.suspects.get(&from.id).map(|s| s.incarnation);
                if let Some(m) = self.members.get_mut(&from.id) {
                    m.addr = from.addr;
                    let refutes =
                        incarnation > m.incarnation || suspected.is_some_and(|s| incarnation > s);
                    if refutes {
                        m.incarnation = m.incarnation.max(incarnation);
                        if m.state != MemberState::Alive {
                            m.state = MemberState::Alive;
                            m.since = now;
                            self.suspects.remove(&from.id);
                            self.events.push(OverlayEvent::Refuted {
                                id: from.id.clone(),
                                incarnation,
                            });
                            self.add_passive(from.id.clone());
                        }
                    }
                } else {
                    self.note(from, Some(incarnation), None, now);
                }
            }
            Msg::Gossip(b) => {
                self.note(from, None, None, now);
                self.gossip.on_gossip(&from.id, b, now);
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

    /// Runs the timers due at `now`.
    pub fn tick(&mut self, now: Millis) {
        if self.left {
            self.gossip.tick(now);
            self.flush_gossip(now);
            return;
        }
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
        self.tick_seeds(now);
        self.tick_probes(now);
        self.tick_suspects(now);
        if now >= self.next_shuffle {
            self.next_shuffle = after(now, self.config.shuffle_interval);
            if let Some(n) = self.active.choose(&mut self.rng).cloned() {
                let sample = self.sample(&n);
                self.send_to(
                    &n,
                    Msg::Shuffle {
                        reply: false,
                        members: sample,
                    },
                );
            }
        }
        if now >= self.next_rotate {
            self.next_rotate = after(now, self.config.rotate_interval);
            self.rotate(now);
        }
        self.fill_active(now);
        self.gossip.tick(now);
        self.flush_gossip(now);
        if now >= self.next_cleanup {
            self.next_cleanup = after(now, CLEANUP_EVERY);
            self.cleanup(now);
        }
    }

    /// Asks a random passive member to become a neighbour; if it accepts while the
    /// active view is full, another neighbour is dropped (see the reply).
    fn rotate(&mut self, now: Millis) {
        if self.rotating.is_some() || self.active.len() < self.target_active() {
            return;
        }
        let pool: Vec<PeerId> = self
            .passive
            .iter()
            .filter(|p| !self.pending.contains_key(*p) && self.is_alive(p))
            .cloned()
            .collect();
        let Some(c) = pool.choose(&mut self.rng).cloned() else {
            return;
        };
        self.pending
            .insert(c.clone(), after(now, self.config.neighbor_timeout));
        self.rotating = Some(c.clone());
        let msg = Msg::Neighbor {
            high: false,
            incarnation: self.incarnation,
            degree: self.active.len() as u32,
        };
        self.send_to(&c, msg);
    }

    /// The swap of a rotation: drops a random neighbour other than `keep`, which
    /// stays in the passive view.
    fn rotate_out(&mut self, keep: &PeerId) {
        let others: Vec<PeerId> = self.active.iter().filter(|a| *a != keep).cloned().collect();
        if let Some(old) = others.choose(&mut self.rng).cloned() {
            self.remove_active(&old, "rotated");
            self.send_to(&old, Msg::Disconnect);
            self.add_passive(old);
        }
    }

    fn cleanup(&mut self, now: Millis) {
        let keep = self.config.dead_retention.as_millis() as u64;
        self.members
            .retain(|_, m| !(m.state.is_gone() && now.0.saturating_sub(m.since.0) > keep));
        self.recount();
    }

    /// The earliest time `tick` has work to do.
    pub fn poll_at(&self) -> Millis {
        let mut at = self.gossip.poll_at().min(self.next_cleanup);
        if self.left {
            return at;
        }
        at = at
            .min(self.next_refresh)
            .min(self.next_shuffle)
            .min(self.next_rotate);
        if !self.active.is_empty() {
            at = at.min(self.next_probe_at);
        }
        let direct = self.config.probe_timeout.as_millis() as u64;
        let indirect = self.config.indirect_timeout.as_millis() as u64;
        for p in self.probes.values() {
            let d = match p.phase {
                ProbePhase::Direct => p.started.0 + direct,
                ProbePhase::Indirect => p.started.0 + direct + indirect,
            };
            at = at.min(Millis(d));
        }
        for s in self.suspects.values() {
            at = at.min(s.next_resend).min(s.deadline);
        }
        for d in self.pending.values() {
            at = at.min(*d);
        }
        for s in &self.seeds {
            match s.phase {
                SeedPhase::Waiting { deadline } => at = at.min(deadline),
                SeedPhase::Down { retry_at } if s.chosen => at = at.min(retry_at),
                _ => {}
            }
        }
        // Rejoining goes through the seeds: without any there is nothing to wake for
        // (the tick would do nothing and the loop would spin).
        if self.active.is_empty()
            && self.pending.is_empty()
            && self.passive.is_empty()
            && !self.seeds.is_empty()
        {
            at = at.min(self.next_rejoin);
        }
        at
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
            seeds_up: self.seeds_up(),
            said: self.stats.said,
            heard: self.stats.heard,
            heard_before_start: self.stats.heard_before_start,
            rows: if rows { self.members() } else { Vec::new() },
            ..OverlayStatus::default()
        }
    }

    fn leave(&mut self, now: Millis) -> Departure {
        PeerNode::leave(self, now);
        Departure::Drain
    }
}

/// What merging news of a member changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Applied {
    New(MemberState),
    Unchanged,
    Suspected,
    /// Back to alive from suspect, dead or left, with a higher incarnation;
    /// `held_gone` is the incarnation it was held dead or left at.
    Revived {
        held_gone: Option<u64>,
    },
    Gone(MemberState),
}

/// Ids of every peer in a set of rows (for tests and the simulator).
pub fn ids(rows: &[MemberRow]) -> BTreeSet<PeerId> {
    rows.iter().map(|r| r.id.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(s: &str) -> PeerId {
        PeerId::parse(s).unwrap()
    }

    fn addr_of(i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 3000 + i as u16))
    }

    fn alive(id: &str, i: usize) -> MemberInfo {
        MemberInfo {
            id: pid(id),
            addr: addr_of(i),
            incarnation: 1,
            state: MemberState::Alive,
            degree: 0,
        }
    }

    fn sender(id: &str, i: usize) -> Sender {
        Sender {
            id: pid(id),
            addr: addr_of(i),
            seed: false,
        }
    }

    fn member_news(origin: &str, seq: u64, info: MemberInfo) -> Msg {
        Msg::Gossip(Broadcast {
            origin: pid(origin),
            seq,
            hops: 0,
            time_ms: 0,
            body: Body::Member(MemberEvent { info }),
        })
    }

    /// A lone node that knows the members `n1`..`n{count}` (at ports 3001...).
    fn lone(config: OverlayConfig, count: usize) -> PeerNode {
        let mut x = PeerNode::new(pid("n0"), 0, config, 1, 1, 1);
        x.start(Millis(0));
        let others = (1..=count).map(|i| alive(&format!("n{i}"), i)).collect();
        x.merge_list(others, false, Millis(0));
        x
    }

    /// A few nodes `n0`.. wired by hand, without seeds: every message is delivered at
    /// once, in the order it was sent, unless the test's filter drops it.
    struct Net {
        nodes: Vec<PeerNode>,
        now: Millis,
    }

    impl Net {
        /// `n` nodes that all know each other, views formed for 10 s.
        fn new(n: usize, config: OverlayConfig) -> Net {
            let everyone: Vec<MemberInfo> = (0..n).map(|i| alive(&format!("n{i}"), i)).collect();
            let nodes = (0..n)
                .map(|i| {
                    let mut node =
                        PeerNode::new(pid(&format!("n{i}")), 0, config.clone(), i as u64, 1, 1);
                    node.start(Millis(0));
                    node.merge_list(everyone.clone(), false, Millis(0));
                    node
                })
                .collect();
            let mut net = Net {
                nodes,
                now: Millis(0),
            };
            net.run(10_000, |_, _, _| true);
            net
        }

        fn index(&self, id: &PeerId) -> usize {
            self.nodes.iter().position(|n| n.id() == id).unwrap()
        }

        /// Delivers what the nodes sent (and what that causes) unless `keep` drops it.
        fn pump(&mut self, keep: &mut impl FnMut(usize, usize, &Msg) -> bool) {
            loop {
                let mut moved = false;
                for i in 0..self.nodes.len() {
                    for out in self.nodes[i].take_out() {
                        moved = true;
                        let Dest::Node(a) = out.to else { continue };
                        let j = (a.port() - 3000) as usize;
                        if keep(i, j, &out.msg) {
                            let from = Sender {
                                id: self.nodes[i].id().clone(),
                                addr: addr_of(i),
                                seed: false,
                            };
                            self.nodes[j].handle(&from, out.msg, self.now);
                        }
                    }
                }
                if !moved {
                    return;
                }
            }
        }

        /// Runs every node's timers in steps of 10 ms until `until`.
        fn run(&mut self, until: u64, mut keep: impl FnMut(usize, usize, &Msg) -> bool) {
            while self.now.0 < until {
                self.now = Millis(self.now.0 + 10);
                for i in 0..self.nodes.len() {
                    self.nodes[i].tick(self.now);
                }
                self.pump(&mut keep);
            }
        }

        /// Every active view holds only nodes whose active view holds it back.
        fn asymmetric_links(&self) -> Vec<(PeerId, PeerId)> {
            let mut bad = Vec::new();
            for a in &self.nodes {
                for b in a.active() {
                    if !self.nodes[self.index(b)].active().contains(a.id()) {
                        bad.push((a.id().clone(), b.clone()));
                    }
                }
            }
            bad
        }
    }

    /// Runs every node's timers 10 ms later; returns the rotation node `x` then has
    /// in flight, before any message is delivered.
    fn tick_all(net: &mut Net, x: usize) -> Option<PeerId> {
        net.now = Millis(net.now.0 + 10);
        for i in 0..net.nodes.len() {
            net.nodes[i].tick(net.now);
        }
        net.nodes[x].rotating.clone()
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
        assert_eq!(net.nodes[x].rotating, None, "no request is in flight");
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
            Msg::Neighbor {
                high: false,
                incarnation: 1,
                degree: 4,
            },
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
    fn a_neighbour_held_dead_that_stops_answering_leaves_the_view() {
        let mut x = lone(OverlayConfig::default(), 2);
        let mut n2 = alive("n2", 2);
        n2.state = MemberState::Dead;
        x.handle(&sender("n1", 1), member_news("n1", 1, n2), Millis(10));
        // n2 is alive after all and asks to be a neighbour: it is taken, and told that
        // it is held dead so that it refutes...
        x.handle(
            &sender("n2", 2),
            Msg::Neighbor {
                high: true,
                incarnation: 1,
                degree: 0,
            },
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
    fn a_suspicion_at_the_largest_incarnation_does_not_overflow() {
        let mut x = lone(OverlayConfig::default(), 1);
        let y = sender("n1", 1);
        x.handle(
            &y,
            Msg::Suspect {
                incarnation: u64::MAX,
                dead: true,
            },
            Millis(10),
        );
        x.handle(
            &y,
            Msg::Suspect {
                incarnation: u64::MAX,
                dead: false,
            },
            Millis(20),
        );
        let mut me = alive("n0", 0);
        me.incarnation = u64::MAX;
        me.state = MemberState::Dead;
        x.handle(&y, member_news("n1", 1, me), Millis(30));
        assert_eq!(x.incarnation(), u64::MAX);
    }

    #[test]
    fn news_of_unknown_deaths_stays_within_the_member_cap() {
        let config = OverlayConfig {
            members_max: 10,
            ..OverlayConfig::default()
        };
        let mut x = lone(config, 1);
        let y = sender("n1", 1);
        for k in 0..100 {
            let mut ghost = alive(&format!("ghost{k}"), 100);
            ghost.state = MemberState::Dead;
            x.handle(&y, member_news("n1", k, ghost), Millis(k));
        }
        assert!(x.members().len() <= 10, "{} members", x.members().len());
    }

    #[test]
    fn only_a_member_itself_says_that_it_left_or_is_alive() {
        let mut x = lone(OverlayConfig::default(), 3);
        let y = sender("n1", 1);
        // n2 is declared dead (by n1, which may say so).
        let mut n2 = alive("n2", 2);
        n2.state = MemberState::Dead;
        x.handle(&y, member_news("n1", 1, n2.clone()), Millis(10));
        assert_eq!(x.member(&pid("n2")).unwrap().state, MemberState::Dead);
        // n1 cannot bring it back, nor make n3 leave.
        n2.state = MemberState::Alive;
        n2.incarnation = 2;
        x.handle(&y, member_news("n1", 2, n2), Millis(20));
        let mut n3 = alive("n3", 3);
        n3.state = MemberState::Left;
        x.handle(&y, member_news("n1", 3, n3), Millis(30));
        assert_eq!(x.member(&pid("n2")).unwrap().state, MemberState::Dead);
        assert_eq!(x.member(&pid("n3")).unwrap().state, MemberState::Alive);
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
        let mut row = alive("n3", y);
        row.incarnation = 2;
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
    fn a_member_held_dead_that_talks_at_a_higher_incarnation_is_told_it_was() {
        let mut x = lone(OverlayConfig::default(), 2);
        let mut n2 = alive("n2", 2);
        n2.state = MemberState::Dead;
        x.handle(&sender("n1", 1), member_news("n1", 1, n2), Millis(10));
        x.take_out();
        x.handle(
            &sender("n2", 2),
            Msg::Neighbor {
                high: false,
                incarnation: 2,
                degree: 3,
            },
            Millis(20),
        );
        assert_eq!(x.member(&pid("n2")).unwrap().state, MemberState::Alive);
        let told = x.take_out().into_iter().any(|o| {
            o.to == Dest::Node(addr_of(2))
                && o.msg
                    == Msg::Suspect {
                        incarnation: 1,
                        dead: true,
                    }
        });
        assert!(
            told,
            "its refutation did not reach this node: it is told so"
        );
    }

    /// Regression: a peer with no seeds and no neighbours woke at once forever (its
    /// rejoin time never moved), spinning a core while idle.
    #[test]
    fn an_idle_peer_without_seeds_sleeps_between_its_timers() {
        for seeds in [0, 1] {
            let mut x = PeerNode::new(pid("n0"), seeds, OverlayConfig::default(), 1, 1, 1);
            let mut now = Millis(0);
            x.start(now);
            let mut wakeups = 0;
            while now.0 < 60_000 {
                let at = x.poll_at().max(now);
                now = if at == now { Millis(now.0 + 1) } else { at };
                x.tick(now);
                x.take_out();
                wakeups += 1;
            }
            assert!(
                wakeups < 1_000,
                "{wakeups} wake-ups in a minute with {seeds} seeds"
            );
        }
    }

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
        let mut fresh = PeerNode::new(pid("n2"), 0, config, 99, 2, restart.0 * 1000);
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
}
