//! The overlay: seeds, membership, liveness, gossip and messaging.
//!
//! Three pure state machines, driven by explicit time and messages, never by sockets,
//! clocks or threads, so that the threaded runtime and the deterministic simulator run
//! the very same code:
//!
//! * [`member::PeerNode`]: a peer's view of the network. It joins through a majority of
//!   the seeds, keeps a small symmetric **active view** of neighbours and a larger
//!   **passive view** to repair it from (HyParView), exchanges peer lists with its
//!   neighbours (shuffles), and watches its neighbours with SWIM-style probes (direct,
//!   then indirect through others, then suspicion, refuted by a higher incarnation).
//! * [`gossip::Plumtree`]: broadcast over the active views. Messages are pushed eagerly
//!   along a spanning tree that prunes itself, and announced lazily (`ihave`) to the
//!   other neighbours, who graft the tree back when a message fails to arrive.
//! * [`seed::SeedNode`]: a bootstrap registry. Peers register and get a peer list;
//!   seeds exchange their registries; a death report is only a suspicion until the
//!   seed's own probe fails.
//!
//! The runtime ([`runtime`]) owns each core in one thread and carries its messages
//! over TCP; the simulator ([`sim`]) carries them through a virtual network.
//!
//! Every node-to-node message is one-way: the receiver answers `ok` on the wire at
//! once, and any answer that carries meaning travels as a message of its own. That
//! keeps the cores free of request/response plumbing (a UDP-like model, as in
//! memberlist) and lets the simulator drop, delay and reorder anything.
//!
//! What proves what: a [`Sender`]'s id is a key its connection proved it holds (the
//! runtime's handshake); everything a message says about anyone else is a claim,
//! believed only as far as a signature backs it. Every incarnation travels with its
//! member's own signature of it (an incarnation certificate, [`sign_incarnation`]),
//! so nobody can declare a member dead at an incarnation the member cannot refute,
//! and every broadcast is signed by its origin ([`Broadcast::authentic`]).

pub mod gossip;
pub mod member;
pub mod origin_rate;
pub mod runtime;
pub mod seed;
pub mod seed_role;
pub mod sim;
pub mod wire;

pub use seed_role::{Seed, SeedSettings};

use crate::clock::Millis;
use crate::identity::{self, Domain, NodeKey, Sig};
use crate::protocol::hash::Sha1Digest;
use crate::protocol::name::PeerId;
use member::{MemberRow, NotSent};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Where a core wants a message to go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dest {
    /// A node at the address it listens on.
    Node(SocketAddr),
    /// The seed at this position of the configured seed list (dialled by name, so that
    /// container host names resolve when the seed is up).
    Seed(usize),
    /// The peer to join through at this position of the configured contacts (`--join`),
    /// dialled by name as seeds are: a name with several addresses (a service of
    /// containers) may answer from another of them each time.
    Contact(usize),
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dest::Node(a) => write!(f, "{a}"),
            Dest::Seed(i) => write!(f, "seed #{}", i + 1),
            Dest::Contact(i) => write!(f, "contact #{}", i + 1),
        }
    }
}

/// Who sent a message: the id and listen port it gave in `hello`, at the host its
/// connection came from (never a host taken from a message).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sender {
    /// A key the sender proved it holds.
    pub id: PeerId,
    pub addr: SocketAddr,
    /// The sender said hello as a seed (not a peer that could be a neighbour).
    pub seed: bool,
}

/// The address a node puts in news about itself: it does not know how others reach
/// it, and receivers keep the address they know instead.
pub const SELF_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 1);

/// A member's liveness, as SWIM defines it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberState {
    Alive,
    Suspect,
    Dead,
    /// Left on purpose (a clean shutdown); treated like dead, without the suspicion.
    Left,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
            MemberState::Left => "left",
        }
    }

    pub fn parse(text: &str) -> Option<MemberState> {
        [
            MemberState::Alive,
            MemberState::Suspect,
            MemberState::Dead,
            MemberState::Left,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Dead or left: gone until it comes back with a higher incarnation.
    pub fn is_gone(self) -> bool {
        matches!(self, MemberState::Dead | MemberState::Left)
    }
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one node tells another about a third.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    pub id: PeerId,
    pub addr: SocketAddr,
    /// The member's incarnation number: only the member itself raises it, to refute a
    /// suspicion or a death.
    pub incarnation: u64,
    pub state: MemberState,
    /// How many neighbours the member had when this was last heard (for choosing
    /// well-connected neighbours).
    pub degree: u32,
    /// The member's human name (it may repeat; the id never does).
    pub name: PeerId,
    /// The member's own signature of its id, incarnation and name: see
    /// [`sign_incarnation`].
    pub cert: Sig,
}

impl MemberInfo {
    /// Whether `cert` is the member's own signature of this incarnation and name.
    pub fn cert_valid(&self) -> bool {
        incarnation_valid(&self.id, self.incarnation, &self.name, &self.cert)
    }
}

/// An incarnation certificate: the member's signature (`Domain::Incarnation`) over its
/// id, its incarnation in ASCII decimal, and its name. Only the member can make one,
/// so every incarnation that travels is bounded by what its member signed.
pub fn sign_incarnation(key: &NodeKey, incarnation: u64, name: &PeerId) -> Sig {
    let incarnation = incarnation.to_string();
    key.sign(
        Domain::Incarnation,
        &[
            key.id().as_str().as_bytes(),
            incarnation.as_bytes(),
            name.as_str().as_bytes(),
        ],
    )
}

/// Whether `cert` is `id`'s certificate of `incarnation` under `name`.
pub fn incarnation_valid(id: &PeerId, incarnation: u64, name: &PeerId, cert: &Sig) -> bool {
    let incarnation = incarnation.to_string();
    identity::verify(
        id,
        Domain::Incarnation,
        &[
            id.as_str().as_bytes(),
            incarnation.as_bytes(),
            name.as_str().as_bytes(),
        ],
        cert,
    )
}

/// A registry row exchanged between seeds: a member and how long ago it was last seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedRow {
    pub info: MemberInfo,
    pub seen_ago_ms: u64,
}

/// A broadcast's id: SHA-1 of `<origin>|<seq>`.
pub type MsgId = Sha1Digest;

/// The id of the `seq`-th broadcast from `origin`.
pub fn msg_id(origin: &PeerId, seq: u64) -> MsgId {
    Sha1Digest::of(format!("{origin}|{seq}").as_bytes())
}

/// A membership change that is spread to every peer by broadcast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberEvent {
    /// `Alive` (a refutation), `Dead` or `Left`.
    pub info: MemberInfo,
}

/// What a broadcast carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// A text for every console (`say`).
    Say(String),
    /// A death, a departure, or a refutation of either.
    Member(MemberEvent),
}

/// A message spread to every live peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broadcast {
    pub origin: PeerId,
    pub seq: u64,
    /// Hops travelled so far; a peer does not forward a message at the hop limit.
    pub hops: u32,
    /// The origin's wall clock when it was sent, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The origin's signature: see [`Broadcast::sign`].
    pub sig: Sig,
    pub body: Body,
}

impl Broadcast {
    pub fn id(&self) -> MsgId {
        msg_id(&self.origin, self.seq)
    }

    /// The values the origin signs: origin, seq and time, then the body's kind and
    /// fields, all as decoded values (numbers in ASCII decimal, an address as its
    /// canonical text), so that no spelling on the wire matters. Not `hops`: it
    /// changes on the way.
    fn signed_fields(&self) -> Vec<Vec<u8>> {
        let mut fields = vec![
            self.origin.as_str().as_bytes().to_vec(),
            self.seq.to_string().into_bytes(),
            self.time_ms.to_string().into_bytes(),
        ];
        match &self.body {
            Body::Say(text) => {
                fields.push(b"say".to_vec());
                fields.push(text.as_bytes().to_vec());
            }
            Body::Member(ev) => {
                let m = &ev.info;
                fields.extend([
                    m.state.as_str().as_bytes().to_vec(),
                    m.id.as_str().as_bytes().to_vec(),
                    m.addr.ip().to_canonical().to_string().into_bytes(),
                    m.addr.port().to_string().into_bytes(),
                    m.incarnation.to_string().into_bytes(),
                    m.name.as_str().as_bytes().to_vec(),
                    m.cert.0.to_vec(),
                ]);
            }
        }
        fields
    }

    /// Signs the broadcast as its origin (whose key `key` must be).
    pub fn sign(&mut self, key: &NodeKey) {
        let fields = self.signed_fields();
        let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
        self.sig = key.sign(Domain::Gossip, &refs);
    }

    /// Whether the origin signed this broadcast, and its body is news the origin may
    /// give: a departure or a refutation only about itself (its signature then
    /// proves the incarnation), a death only with the member's own certificate of
    /// the incarnation it names.
    pub fn authentic(&self) -> bool {
        self.authentic_holding(false)
    }

    /// [`Broadcast::authentic`], for a receiver that says whether it holds the
    /// certificate a death names byte for byte (`cert_held`): it was checked when it
    /// was taken, and is not checked again. (A death is usually declared at the
    /// incarnation everyone holds.)
    pub fn authentic_holding(&self, cert_held: bool) -> bool {
        let death = match &self.body {
            Body::Say(_) => None,
            Body::Member(ev) if ev.info.state == MemberState::Dead => Some(&ev.info),
            Body::Member(ev) if ev.info.id != self.origin => return false,
            Body::Member(_) => None,
        };
        let fields = self.signed_fields();
        let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
        if !identity::verify(&self.origin, Domain::Gossip, &refs, &self.sig) {
            return false;
        }
        death.is_none_or(|info| cert_held || info.cert_valid())
    }
}

/// Every node-to-node message. Each is one-way; see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// Peer → seed: register (or refresh), naming the peer's neighbours, which the seed
    /// then counts as vouched for. `name` and `cert` certify the incarnation, as in
    /// every message that carries the sender's own incarnation.
    Register {
        seq: u64,
        incarnation: u64,
        degree: u32,
        neighbours: Vec<PeerId>,
        name: PeerId,
        cert: Sig,
    },
    /// Seed → peer: the answer to `Register` with the same `seq`.
    Peers { seq: u64, members: Vec<MemberInfo> },
    /// Peer → seed: a member this peer declared dead, or itself leaving.
    Report { member: MemberInfo },
    /// Seed → seed: the sender's registry. `to` is the position of the receiver in the
    /// sender's seed list, so a seed that reaches itself through the list can tell.
    SeedSync {
        nonce: u64,
        to: u32,
        rows: Vec<SeedRow>,
    },
    /// Ask to become neighbours. `high` when the sender has no neighbour at all.
    Neighbor {
        high: bool,
        incarnation: u64,
        degree: u32,
        name: PeerId,
        cert: Sig,
    },
    NeighborReply {
        accepted: bool,
        incarnation: u64,
        degree: u32,
        name: PeerId,
        cert: Sig,
    },
    /// The sender dropped the receiver from its active view.
    Disconnect,
    /// Peer-list exchange between neighbours.
    Shuffle {
        reply: bool,
        members: Vec<MemberInfo>,
    },
    /// SWIM direct probe.
    Probe { seq: u64 },
    /// Answer to a probe (or relayed by a helper for an indirect probe), carrying the
    /// probed member's incarnation, name and certificate.
    Ack {
        seq: u64,
        incarnation: u64,
        name: PeerId,
        cert: Sig,
    },
    /// Ask the receiver to probe `target` and relay its ack under `seq`.
    ProbeReq {
        seq: u64,
        target: PeerId,
        addr: SocketAddr,
    },
    /// To the suspected member itself: "I suspect you at this incarnation", or with
    /// `dead`, "I hold you dead": then the member refutes to everyone, by broadcast.
    Suspect { incarnation: u64, dead: bool },
    /// The refutation of a suspicion, straight back to the suspecter.
    Alive {
        incarnation: u64,
        name: PeerId,
        cert: Sig,
    },
    /// A broadcast, pushed eagerly.
    Gossip(Broadcast),
    /// Lazy push: ids of broadcasts the sender has, with their hop counts.
    IHave { ids: Vec<(MsgId, u32)> },
    /// Ask for a broadcast and make the link eager.
    Graft { id: MsgId },
    /// Make the link lazy: the sender got a duplicate through it.
    Prune,
}

impl Msg {
    /// The wire verb, for logs and statistics.
    pub fn verb(&self) -> &'static str {
        match self {
            Msg::Register { .. } => "register",
            Msg::Peers { .. } => "peers",
            Msg::Report { .. } => "report",
            Msg::SeedSync { .. } => "seed-sync",
            Msg::Neighbor { .. } => "neighbor",
            Msg::NeighborReply { .. } => "neighbor-reply",
            Msg::Disconnect => "disconnect",
            Msg::Shuffle { .. } => "shuffle",
            Msg::Probe { .. } => "probe",
            Msg::Ack { .. } => "ack",
            Msg::ProbeReq { .. } => "probe-req",
            Msg::Suspect { .. } => "suspect",
            Msg::Alive { .. } => "alive",
            Msg::Gossip(_) => "gossip",
            Msg::IHave { .. } => "ihave",
            Msg::Graft { .. } => "graft",
            Msg::Prune => "prune",
        }
    }
}

/// A message a core wants sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Out {
    pub to: Dest,
    pub msg: Msg,
}

/// Things the user may want to see or log, from either core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OverlayEvent {
    /// A broadcast text, delivered once (`local` for one this node sent). `name` is
    /// the origin's, from its member record (`None` when this node has none).
    Said {
        id: MsgId,
        origin: PeerId,
        name: Option<PeerId>,
        time_ms: u64,
        text: String,
        hops: u32,
        local: bool,
    },
    /// A seed answered the registration.
    SeedUp {
        seed: usize,
        peers: usize,
    },
    /// A seed did not answer; it is retried later.
    SeedDown {
        seed: usize,
    },
    NeighborUp {
        id: PeerId,
    },
    NeighborDown {
        id: PeerId,
        reason: &'static str,
    },
    /// A member joined (a seed saw it register for the first time).
    Joined {
        id: PeerId,
        addr: SocketAddr,
    },
    /// A neighbour did not answer a probe in time (SWIM: it is probed again, and
    /// through others; classic: one more missed ping).
    ProbeMissed {
        id: PeerId,
    },
    Suspected {
        id: PeerId,
    },
    /// A suspicion or death was refuted with a higher incarnation.
    Refuted {
        id: PeerId,
        incarnation: u64,
    },
    /// A member was declared dead; `by` is who declared it.
    Dead {
        id: PeerId,
        by: PeerId,
    },
    Left {
        id: PeerId,
    },
    /// A seed forgot a member that was neither seen nor vouched for in time.
    Forgotten {
        id: PeerId,
    },
    /// A peer (`by`) reported a member dead to this seed, which now probes it itself.
    Reported {
        id: PeerId,
        by: PeerId,
    },
    /// The member a report named answered the seed's own probe: the report is dropped.
    Cleared {
        id: PeerId,
    },
    /// This node refuted a suspicion or a death about itself.
    RefutedSelf {
        incarnation: u64,
    },
}

/// What a core says about itself (the runtime adds its message counters).
#[derive(Clone, Debug, Default)]
pub struct OverlayStatus {
    pub id: String,
    pub incarnation: u64,
    /// Members alive or suspect (peers), or live registrations (seeds).
    pub peers: usize,
    pub neighbours: usize,
    pub passive: usize,
    pub suspects: usize,
    /// Members dead or left, still remembered (peers), or tombstones (seeds).
    pub dead: usize,
    pub seeds_up: usize,
    pub seeds: usize,
    pub said: u64,
    pub heard: u64,
    /// Broadcast texts heard that were sent before this peer started (not shown).
    pub heard_before_start: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub dropped: u64,
    /// Broadcast texts dropped because their origin sent them too fast.
    pub dropped_rate: u64,
    /// Messages and rows dropped for a signature that does not verify, or for a lie
    /// about this node's own incarnation.
    pub dropped_signature: u64,
    /// Registrations refused by a quota (seeds: live ids per address).
    pub refused_quota: u64,
    /// The broadcast counters (peers).
    pub gossip: gossip::GossipStats,
    pub rows: Vec<MemberRow>,
}

/// What the threaded runtime and the simulator need from a node's core: both drive a
/// [`member::PeerNode`] and a [`seed::SeedNode`] through this one interface.
pub trait Core {
    /// Starts the core: a peer registers with its seeds, a seed runs its first timers.
    fn start(&mut self, now: Millis);

    /// Handles one message from another node.
    fn handle(&mut self, from: &Sender, msg: Msg, now: Millis);

    /// The runtime could not reach `dest` at all: a hint that spares a timeout.
    fn unreachable(&mut self, _dest: Dest, _now: Millis) {}

    /// Runs the timers due at `now`.
    fn tick(&mut self, now: Millis);

    /// The earliest time `tick` has work to do.
    fn poll_at(&self) -> Millis;

    /// Messages to send, in order.
    fn take_out(&mut self) -> Vec<Out>;

    fn take_events(&mut self) -> Vec<OverlayEvent>;

    /// Broadcasts a text; `None` from a core that does not broadcast (a seed).
    fn say(
        &mut self,
        _text: String,
        _wall_ms: u64,
        _now: Millis,
    ) -> Option<Result<MsgId, NotSent>> {
        None
    }

    /// The core's figures, with every member row when `rows`.
    fn status(&self, rows: bool, now: Millis) -> OverlayStatus;

    /// Leaves the network on purpose.
    fn leave(&mut self, now: Millis) -> Departure;
}

/// What a core's thread does once the core has left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Departure {
    /// Goodbyes are queued: let the links write them before stopping.
    Drain,
    /// Nothing to say: stop at once.
    Now,
}

/// How peers decide that a neighbour is dead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// SWIM: direct probe, indirect probes, suspicion, refutation.
    Swim,
    /// The original gossip design: ping every neighbour each period, dead after this
    /// many missed pings in a row, no suspicion and no refutation.
    Classic { misses: u32 },
}

/// Timers and sizes of a peer's overlay. The defaults detect a crashed neighbour in
/// about a second and declare it dead about four seconds later.
#[derive(Clone, Debug)]
pub struct OverlayConfig {
    pub liveness: Liveness,
    /// Every neighbour is probed once per round; probes are spread evenly over it, one
    /// target at a time in shuffled order. (Classic: every neighbour each round.)
    pub probe_round: Duration,
    /// How long to wait for a direct ack before asking others to probe.
    pub probe_timeout: Duration,
    /// How long the indirect probes have, after the direct timeout.
    pub indirect_timeout: Duration,
    /// How many others are asked to probe on this node's behalf.
    pub indirect_probes: usize,
    /// How long a suspicion may stay unrefuted before the member is declared dead.
    pub suspicion_timeout: Duration,
    /// How often the suspected member is told that it is suspected, so it can refute.
    pub suspect_resend: Duration,
    /// The active view never has fewer than this many neighbours (when enough peers
    /// exist); the target is max(this, log2(N) + 1).
    pub active_min: usize,
    pub passive_max: usize,
    /// Members remembered in all (alive, suspect and recent deaths).
    pub members_max: usize,
    /// How long a neighbour request may go unanswered.
    pub neighbor_timeout: Duration,
    pub shuffle_interval: Duration,
    pub shuffle_size: usize,
    /// How often a node with a full active view swaps one neighbour for a random
    /// member of its passive view, so the overlay keeps mixing (and two halves that
    /// healed from a partition grow back together).
    pub rotate_interval: Duration,
    /// How long to wait for a seed's peer list.
    pub seed_timeout: Duration,
    /// How often a peer registers again with its seeds (they forget silent peers).
    pub seed_refresh: Duration,
    /// How long a death is remembered, so stale news of the member is ignored.
    pub dead_retention: Duration,
    pub gossip: GossipConfig,
}

impl Default for OverlayConfig {
    fn default() -> Self {
        OverlayConfig {
            liveness: Liveness::Swim,
            probe_round: Duration::from_millis(1000),
            probe_timeout: Duration::from_millis(300),
            indirect_timeout: Duration::from_millis(500),
            indirect_probes: 3,
            suspicion_timeout: Duration::from_secs(4),
            suspect_resend: Duration::from_millis(250),
            active_min: 4,
            passive_max: 30,
            members_max: 10_000,
            neighbor_timeout: Duration::from_millis(1000),
            shuffle_interval: Duration::from_secs(5),
            shuffle_size: 16,
            rotate_interval: Duration::from_secs(30),
            seed_timeout: Duration::from_secs(2),
            seed_refresh: Duration::from_secs(15),
            dead_retention: Duration::from_secs(300),
            gossip: GossipConfig::default(),
        }
    }
}

impl OverlayConfig {
    /// The seed-004 design's liveness checks, for comparison: every neighbour pinged
    /// every 13 s, dead after 3 misses in a row.
    pub fn classic() -> OverlayConfig {
        OverlayConfig {
            liveness: Liveness::Classic { misses: 3 },
            probe_round: Duration::from_secs(13),
            probe_timeout: Duration::from_secs(3),
            ..OverlayConfig::default()
        }
    }
}

/// Broadcast settings.
#[derive(Clone, Debug)]
pub struct GossipConfig {
    /// A broadcast is not forwarded once it has travelled this many hops.
    pub hop_limit: u32,
    /// A new link pushes eagerly only while the node has fewer eager links than this
    /// (the others start lazy), which bounds the copies a peer receives even before
    /// duplicates have pruned the tree.
    pub eager_max: usize,
    /// Broadcast ids are remembered this long (the seen-cache), at most `seen_max`.
    pub seen_ttl: Duration,
    pub seen_max: usize,
    /// Payloads are kept this long, to answer grafts.
    pub payload_ttl: Duration,
    /// Lazy announcements are batched and sent this often.
    pub ihave_interval: Duration,
    /// A message announced but not received within this long is grafted.
    pub graft_timeout: Duration,
    /// A new neighbour is told of the broadcasts of this recent past.
    pub recent_window: Duration,
    pub recent_max: usize,
    /// Longest text of a `say`, in bytes.
    pub max_text: usize,
    /// How fast one origin's texts are delivered and relayed here (`say` only:
    /// membership news is never dropped); the rest are dropped and counted.
    pub origin_limits: origin_rate::OriginLimits,
}

impl Default for GossipConfig {
    fn default() -> Self {
        GossipConfig {
            hop_limit: 16,
            eager_max: 4,
            seen_ttl: Duration::from_secs(600),
            seen_max: 65_536,
            payload_ttl: Duration::from_secs(60),
            ihave_interval: Duration::from_millis(50),
            graft_timeout: Duration::from_millis(250),
            recent_window: Duration::from_secs(30),
            recent_max: 64,
            max_text: 1000,
            origin_limits: origin_rate::OriginLimits::default(),
        }
    }
}

/// Seed settings.
#[derive(Clone, Debug)]
pub struct SeedConfig {
    /// Most members in one peer list (a random sample when there are more).
    pub list_cap: usize,
    pub sync_interval: Duration,
    /// A member neither seen nor vouched for within this long is forgotten.
    pub forget_after: Duration,
    /// The seed's own probe of a reported member: each try waits this long...
    pub probe_timeout: Duration,
    /// ...and this many tries must all fail, however many peers report the death.
    pub probe_tries: u32,
    pub dead_retention: Duration,
    pub members_max: usize,
    /// Most live ids registered from one host (keys cost nothing to make).
    pub ids_per_address: usize,
}

impl Default for SeedConfig {
    fn default() -> Self {
        SeedConfig {
            ids_per_address: 64,
            list_cap: 64,
            sync_interval: Duration::from_secs(2),
            forget_after: Duration::from_secs(60),
            probe_timeout: Duration::from_millis(500),
            probe_tries: 3,
            dead_retention: Duration::from_secs(300),
            members_max: 100_000,
        }
    }
}

/// FNV-1a: a fixed-key hasher, so that hash maps in the cores iterate in the same
/// order in every run (std's default hasher is randomly keyed per process, which
/// would make a simulation unrepeatable).
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= *b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// A hash map that iterates in the same order in every run.
pub type DetMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

/// `Millis` plus a duration, for deadlines.
pub(crate) fn after(now: Millis, d: Duration) -> Millis {
    now.plus(d)
}
