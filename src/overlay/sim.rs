//! A deterministic, seeded network simulator for the overlay cores.
//!
//! Thousands of [`PeerNode`]s and a few [`SeedNode`]s run in one thread, driven through
//! the same [`Core`] interface as the runtime drives them, exchanging the same [`Msg`]s
//! the runtime carries over TCP, through a virtual network with latency, loss,
//! partitions and kills. Time is virtual (milliseconds); events are
//! processed in time order, ties broken by the order they were queued, and every
//! random choice (the network's and each node's) comes from generators seeded from
//! the run's seed: the same seed replays the same run, event for event. Every node has
//! a key of its own ([`NodeKey::for_test`] of its name), so a simulated run signs and
//! checks the very signatures a real one does.
//!
//! What the nodes report (deliveries, suspicions, deaths) is recorded in
//! [`Observations`] for the scenarios of `p2pshare bench overlay`.

use super::member::PeerNode;
use super::seed::SeedNode;
use super::{Body, Core, Dest, Msg, MsgId, OverlayConfig, OverlayEvent, SeedConfig, Sender};
use crate::clock::Millis;
use crate::identity::NodeKey;
use crate::protocol::name::PeerId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The virtual network and its nodes.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub peers: usize,
    pub seeds: usize,
    /// Seeds every random choice of the run.
    pub seed: u64,
    /// One-way latency of a message, uniform in [min, max].
    pub latency_min: Duration,
    pub latency_max: Duration,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Peers start at random moments within this span.
    pub join_spread: Duration,
    pub overlay: OverlayConfig,
    pub seed_config: SeedConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            peers: 1000,
            seeds: 3,
            seed: 1,
            latency_min: Duration::from_millis(5),
            latency_max: Duration::from_millis(25),
            loss: 0.0,
            join_spread: Duration::from_secs(10),
            overlay: OverlayConfig::default(),
            seed_config: SeedConfig::default(),
        }
    }
}

enum Node {
    Seed(Box<SeedNode>),
    Peer(Box<PeerNode>),
}

impl Node {
    /// The core, driven the same way for both kinds of node.
    fn core(&mut self) -> &mut dyn Core {
        match self {
            Node::Seed(s) => s.as_mut(),
            Node::Peer(p) => p.as_mut(),
        }
    }
}

struct Slot {
    node: Node,
    id: PeerId,
    addr: SocketAddr,
    alive: bool,
    started: bool,
    /// The time of the tick queued for this node (`u64::MAX`: none).
    tick_at: u64,
    group: u32,
}

enum Event {
    Start(usize),
    Tick(usize),
    /// A message in flight, by its place in the slab (so the heap moves small keys,
    /// not messages).
    Deliver(u32),
}

struct InFlight {
    to: usize,
    from: usize,
    msg: Msg,
}

struct Queued {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: the earliest event must compare greatest.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// What happened to one broadcast text.
#[derive(Clone, Debug, Default)]
pub struct BroadcastObs {
    pub sent_at: u64,
    /// Node index → time of delivery.
    pub delivered: BTreeMap<usize, u64>,
    /// Full copies received by live nodes (first copies and duplicates).
    pub copies: u64,
}

/// Everything the nodes reported, with the time.
#[derive(Clone, Debug, Default)]
pub struct Observations {
    pub broadcasts: BTreeMap<MsgId, BroadcastObs>,
    /// Peer id → first time any node suspected it.
    pub first_suspected: BTreeMap<PeerId, u64>,
    /// Peer id → (node index → first time that node held it dead or left).
    pub marked_dead: BTreeMap<PeerId, BTreeMap<usize, u64>>,
    /// Declarations of death (by the declarer itself) of a peer that was alive.
    pub false_deaths: Vec<(u64, PeerId, usize)>,
    pub suspicions: u64,
    pub refutations: u64,
    pub messages: u64,
    pub lost: u64,
}

/// The simulator.
pub struct Sim {
    config: SimConfig,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Queued>,
    in_flight: Vec<Option<InFlight>>,
    free: Vec<u32>,
    slots: Vec<Slot>,
    by_addr: HashMap<SocketAddr, usize>,
    rng: StdRng,
    pub obs: Observations,
}

fn addr_of(i: usize) -> SocketAddr {
    let ip = Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8);
    SocketAddr::new(IpAddr::V4(ip), 1025)
}

impl Sim {
    /// Builds the network: seeds start at once, peers at random moments within
    /// `join_spread`.
    pub fn new(config: SimConfig) -> Sim {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let mut sim = Sim {
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            in_flight: Vec::new(),
            free: Vec::new(),
            slots: Vec::new(),
            by_addr: HashMap::new(),
            obs: Observations::default(),
            rng: StdRng::seed_from_u64(0),
            config: config.clone(),
        };
        for s in 0..config.seeds {
            let id = NodeKey::for_test(&format!("seed{s}")).id().clone();
            let node = SeedNode::new(
                id.clone(),
                config.seeds,
                config.seed_config.clone(),
                rng.gen(),
                rng.gen(),
            );
            sim.add(Node::Seed(Box::new(node)), id, 0);
        }
        for p in 0..config.peers {
            let name = format!("peer{p}");
            let key = NodeKey::for_test(&name);
            let id = key.id().clone();
            let node = PeerNode::new(
                key,
                PeerId::parse(&name).expect("valid name"),
                config.seeds,
                config.overlay.clone(),
                rng.gen(),
                1,
                1,
            );
            let spread = config.join_spread.as_millis() as u64;
            let at = if spread == 0 {
                0
            } else {
                rng.gen_range(0..spread)
            };
            sim.add(Node::Peer(Box::new(node)), id, at);
        }
        sim.rng = StdRng::seed_from_u64(rng.gen());
        sim
    }

    fn add(&mut self, node: Node, id: PeerId, start_at: u64) {
        let i = self.slots.len();
        let addr = addr_of(i);
        self.by_addr.insert(addr, i);
        self.slots.push(Slot {
            node,
            id,
            addr,
            alive: true,
            started: false,
            tick_at: u64::MAX,
            group: 0,
        });
        self.push(start_at, Event::Start(i));
    }

    fn push(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Queued {
            at,
            seq: self.seq,
            event,
        });
    }

    pub fn now(&self) -> Millis {
        Millis(self.now)
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Index of the first peer (seeds come first).
    pub fn first_peer(&self) -> usize {
        self.config.seeds
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn is_alive(&self, i: usize) -> bool {
        self.slots[i].alive
    }

    pub fn id(&self, i: usize) -> &PeerId {
        &self.slots[i].id
    }

    pub fn peer(&self, i: usize) -> Option<&PeerNode> {
        match &self.slots[i].node {
            Node::Peer(p) => Some(p),
            Node::Seed(_) => None,
        }
    }

    pub fn seed_node(&self, i: usize) -> Option<&SeedNode> {
        match &self.slots[i].node {
            Node::Seed(s) => Some(s),
            Node::Peer(_) => None,
        }
    }

    /// Indices of the live peers.
    pub fn live_peers(&self) -> Vec<usize> {
        (self.first_peer()..self.slots.len())
            .filter(|&i| self.slots[i].alive)
            .collect()
    }

    pub fn set_loss(&mut self, loss: f64) {
        self.config.loss = loss;
    }

    /// Puts node `i` in partition `group`: messages cross only within a group.
    pub fn set_group(&mut self, i: usize, group: u32) {
        self.slots[i].group = group;
    }

    /// Crashes a node: it sends nothing more, and what is sent to it is lost.
    pub fn kill(&mut self, i: usize) {
        self.slots[i].alive = false;
    }

    /// Sends `msg` to node `to` as if node `from` had sent it now, through the same
    /// network (for tests of news that no core would send at that moment).
    pub fn inject(&mut self, from: usize, to: usize, msg: Msg) {
        let flight = InFlight { to, from, msg };
        let k = match self.free.pop() {
            Some(k) => {
                self.in_flight[k as usize] = Some(flight);
                k
            }
            None => {
                self.in_flight.push(Some(flight));
                (self.in_flight.len() - 1) as u32
            }
        };
        let at = self.now + self.config.latency_min.as_millis() as u64;
        self.push(at, Event::Deliver(k));
    }

    /// A peer broadcasts a text; returns its id.
    pub fn say(&mut self, i: usize, text: &str) -> MsgId {
        let now = self.now;
        let id = match &mut self.slots[i].node {
            Node::Peer(p) => p
                .say(text.to_owned(), now, Millis(now))
                .unwrap_or_else(|e| panic!("peer {i}: {e}")),
            Node::Seed(_) => panic!("seeds do not broadcast"),
        };
        self.obs.broadcasts.entry(id).or_default().sent_at = now;
        self.after_call(i);
        id
    }

    /// Runs events until virtual time `until` (inclusive).
    pub fn run_until(&mut self, until: Millis) {
        while let Some(top) = self.queue.peek() {
            if top.at > until.0 {
                break;
            }
            let Some(q) = self.queue.pop() else { break };
            self.now = self.now.max(q.at);
            self.dispatch(q.event);
        }
        self.now = self.now.max(until.0);
    }

    fn dispatch(&mut self, event: Event) {
        let now = Millis(self.now);
        match event {
            Event::Start(i) => {
                if !self.slots[i].alive || self.slots[i].started {
                    return;
                }
                self.slots[i].started = true;
                self.slots[i].node.core().start(now);
                self.after_call(i);
            }
            Event::Tick(i) => {
                let slot = &mut self.slots[i];
                if !slot.alive || slot.tick_at != self.now {
                    return;
                }
                slot.tick_at = u64::MAX;
                slot.node.core().tick(now);
                self.after_call(i);
            }
            Event::Deliver(k) => {
                let Some(InFlight { to, from, msg }) = self.in_flight[k as usize].take() else {
                    return;
                };
                self.free.push(k);
                if !self.slots[to].alive || !self.slots[to].started {
                    return;
                }
                if let Msg::Gossip(b) = &msg {
                    if matches!(b.body, Body::Say(_)) {
                        if let Some(o) = self.obs.broadcasts.get_mut(&b.id()) {
                            o.copies += 1;
                        }
                    }
                }
                let sender = Sender {
                    id: self.slots[from].id.clone(),
                    addr: self.slots[from].addr,
                    seed: matches!(self.slots[from].node, Node::Seed(_)),
                };
                self.slots[to].node.core().handle(&sender, msg, now);
                self.after_call(to);
            }
        }
    }

    /// Carries a node's messages into the network, records its events, and queues
    /// its next tick.
    fn after_call(&mut self, i: usize) {
        let core = self.slots[i].node.core();
        let (outs, events, poll) = (core.take_out(), core.take_events(), core.poll_at());
        for e in events {
            self.observe(i, e);
        }
        for out in outs {
            self.obs.messages += 1;
            let to = match out.to {
                Dest::Node(a) => match self.by_addr.get(&a) {
                    Some(&t) => t,
                    None => continue,
                },
                Dest::Seed(k) if k < self.config.seeds => k,
                // The simulated peers join through the seeds only: no contacts.
                Dest::Seed(_) | Dest::Contact(_) => continue,
            };
            if self.slots[i].group != self.slots[to].group
                || (self.config.loss > 0.0 && self.rng.gen_bool(self.config.loss))
            {
                self.obs.lost += 1;
                continue;
            }
            let min = self.config.latency_min.as_millis() as u64;
            let max = (self.config.latency_max.as_millis() as u64).max(min);
            let delay = if max > min {
                self.rng.gen_range(min..=max)
            } else {
                min
            };
            let flight = InFlight {
                to,
                from: i,
                msg: out.msg,
            };
            let k = match self.free.pop() {
                Some(k) => {
                    self.in_flight[k as usize] = Some(flight);
                    k
                }
                None => {
                    self.in_flight.push(Some(flight));
                    (self.in_flight.len() - 1) as u32
                }
            };
            self.push(self.now + delay, Event::Deliver(k));
        }
        let at = poll.0.max(self.now + 1);
        if at != u64::MAX && at < self.slots[i].tick_at {
            self.slots[i].tick_at = at;
            self.push(at, Event::Tick(i));
        }
    }

    fn observe(&mut self, i: usize, e: OverlayEvent) {
        let now = self.now;
        match e {
            OverlayEvent::Said { id, .. } => {
                let o = self.obs.broadcasts.entry(id).or_default();
                o.delivered.entry(i).or_insert(now);
            }
            OverlayEvent::Suspected { id } => {
                self.obs.suspicions += 1;
                self.obs.first_suspected.entry(id).or_insert(now);
            }
            OverlayEvent::Refuted { .. } => self.obs.refutations += 1,
            OverlayEvent::Dead { id, by } => {
                let target = self
                    .slots
                    .iter()
                    .position(|s| s.id == id)
                    .unwrap_or(usize::MAX);
                if by == self.slots[i].id && target != usize::MAX && self.slots[target].alive {
                    self.obs.false_deaths.push((now, id.clone(), i));
                }
                self.obs
                    .marked_dead
                    .entry(id)
                    .or_default()
                    .entry(i)
                    .or_insert(now);
            }
            OverlayEvent::Left { id } => {
                self.obs
                    .marked_dead
                    .entry(id)
                    .or_default()
                    .entry(i)
                    .or_insert(now);
            }
            _ => {}
        }
    }

    /// Peers whose active view holds peer `i` now.
    pub fn neighbours_of(&self, i: usize) -> Vec<usize> {
        let id = &self.slots[i].id;
        self.live_peers()
            .into_iter()
            .filter(|&j| j != i && self.peer(j).is_some_and(|p| p.active().contains(id)))
            .collect()
    }

    /// A digest of the whole state that matters, to check that two runs replayed.
    pub fn fingerprint(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut mix = |v: u64| {
            h ^= v;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        };
        mix(self.now);
        mix(self.obs.messages);
        mix(self.obs.lost);
        mix(self.obs.suspicions);
        for i in self.first_peer()..self.slots.len() {
            if let Some(p) = self.peer(i) {
                mix(p.incarnation());
                for a in p.active() {
                    for b in a.as_str().bytes() {
                        mix(b as u64);
                    }
                }
                mix(p.gossip_stats().received);
            }
        }
        h
    }
}

/// Ids of the peers that have not delivered `id`, among the live ones.
pub fn missed(sim: &Sim, id: &MsgId) -> BTreeSet<usize> {
    let got = sim
        .obs
        .broadcasts
        .get(id)
        .map(|o| o.delivered.keys().copied().collect::<BTreeSet<_>>())
        .unwrap_or_default();
    sim.live_peers()
        .into_iter()
        .filter(|i| !got.contains(i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> SimConfig {
        SimConfig {
            peers: 60,
            seed,
            join_spread: Duration::from_secs(3),
            ..SimConfig::default()
        }
    }

    #[test]
    fn every_peer_joins_and_a_broadcast_reaches_all_exactly_once() {
        let mut sim = Sim::new(small(7));
        sim.run_until(Millis(20_000));
        for i in sim.live_peers() {
            let p = sim.peer(i).unwrap();
            assert!(
                p.active().len() >= 4,
                "{} has {} neighbours",
                sim.id(i),
                p.active().len()
            );
        }
        let id = sim.say(sim.first_peer() + 3, "hello");
        sim.run_until(Millis(22_000));
        assert!(
            missed(&sim, &id).is_empty(),
            "missed by {:?}",
            missed(&sim, &id)
        );
        assert_eq!(sim.obs.broadcasts[&id].delivered.len(), 60);
        assert!(sim.obs.false_deaths.is_empty());
    }

    #[test]
    fn the_same_seed_replays_the_same_run() {
        let run = |seed| {
            let mut sim = Sim::new(SimConfig {
                loss: 0.05,
                ..small(seed)
            });
            sim.run_until(Millis(8000));
            let p = sim.first_peer();
            sim.kill(p + 1);
            sim.say(p + 2, "x");
            sim.run_until(Millis(15_000));
            sim.fingerprint()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn a_killed_peer_is_suspected_then_declared_dead_by_its_neighbours() {
        let mut sim = Sim::new(small(11));
        sim.run_until(Millis(15_000));
        let victim = sim.first_peer() + 5;
        let neighbours = sim.neighbours_of(victim);
        assert!(!neighbours.is_empty());
        sim.kill(victim);
        sim.run_until(Millis(30_000));
        let id = sim.id(victim).clone();
        assert!(sim.obs.first_suspected.contains_key(&id));
        let marked = &sim.obs.marked_dead[&id];
        for n in neighbours {
            assert!(
                marked.contains_key(&n),
                "{} never marked it dead",
                sim.id(n)
            );
        }
        assert!(
            sim.obs.false_deaths.is_empty(),
            "{:?}",
            sim.obs.false_deaths
        );
        // The seeds dropped it too.
        for s in 0..sim.config().seeds {
            let rec = sim.seed_node(s).unwrap().record(&id);
            assert!(rec.is_none_or(|r| r.state.is_gone()));
        }
    }

    #[test]
    fn with_every_seed_dead_the_overlay_still_heals_around_deaths() {
        let mut sim = Sim::new(small(9));
        sim.run_until(Millis(15_000));
        for s in 0..sim.config().seeds {
            sim.kill(s);
        }
        let peers = sim.live_peers();
        for &i in peers.iter().take(12) {
            sim.kill(i);
        }
        sim.run_until(Millis(45_000));
        for i in sim.live_peers() {
            assert!(sim.peer(i).unwrap().active().len() >= 4, "{}", sim.id(i));
        }
        let id = sim.say(peers[20], "no seeds left");
        sim.run_until(Millis(47_000));
        assert!(
            missed(&sim, &id).is_empty(),
            "missed by {:?}",
            missed(&sim, &id)
        );
        assert!(sim.obs.false_deaths.is_empty());
    }

    #[test]
    fn a_live_peer_the_seeds_hold_dead_is_alive_at_every_seed_again() {
        let mut sim = Sim::new(SimConfig {
            peers: 20,
            ..small(13)
        });
        sim.run_until(Millis(20_000));
        let p = sim.first_peer();
        let victim = p + 4;
        let id = sim.id(victim).clone();
        // Two peers report the victim dead to seed 0 while it is cut off for a moment
        // (as after a false suspicion): seed 0's probes fail, it drops the victim and
        // tells the other seeds.
        let Some(info) = sim
            .peer(p + 1)
            .and_then(|n| n.member(&id))
            .and_then(|m| m.info(&id))
        else {
            panic!("peer {} holds no certificate of the victim", p + 1);
        };
        let member = crate::overlay::MemberInfo {
            state: crate::overlay::MemberState::Dead,
            ..info
        };
        sim.set_group(victim, 1);
        for reporter in [p + 1, p + 2] {
            let report = Msg::Report {
                member: member.clone(),
            };
            sim.inject(reporter, 0, report);
        }
        sim.run_until(Millis(22_000));
        sim.set_group(victim, 0);
        let gone = |sim: &Sim, s: usize| {
            sim.seed_node(s)
                .unwrap()
                .record(&id)
                .is_none_or(|r| r.state.is_gone())
        };
        assert!(gone(&sim, 0));
        sim.run_until(Millis(80_000));
        for s in 0..sim.config().seeds {
            assert!(!gone(&sim, s), "seed {s} holds a live peer dead");
        }
    }

    #[test]
    fn a_partition_heals_into_one_overlay() {
        let mut sim = Sim::new(small(5));
        sim.run_until(Millis(10_000));
        let peers = sim.live_peers();
        // Cut a third of the peers off (seeds stay with the rest) for a while.
        for &i in peers.iter().take(20) {
            sim.set_group(i, 1);
        }
        sim.run_until(Millis(20_000));
        for &i in peers.iter().take(20) {
            sim.set_group(i, 0);
        }
        sim.run_until(Millis(60_000));
        let id = sim.say(peers[0], "after the partition");
        sim.run_until(Millis(65_000));
        assert!(
            missed(&sim, &id).is_empty(),
            "missed by {:?}",
            missed(&sim, &id)
        );
    }
}
