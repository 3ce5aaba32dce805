//! A test harness for the node's parts: members and senders by index, and a few nodes
//! wired by hand. Every name stands for the key [`NodeKey::for_test`] derives from it:
//! `pid("n3")` is that key's id, and news about `n3` carries `n3`'s own signatures.

use super::PeerNode;
use crate::clock::Millis;
use crate::identity::{NodeKey, Sig};
use crate::overlay::{
    sign_incarnation, Body, Broadcast, Dest, MemberEvent, MemberInfo, MemberState, Msg,
    OverlayConfig, Sender,
};
use crate::protocol::name::PeerId;
use std::net::SocketAddr;

pub fn key(name: &str) -> NodeKey {
    NodeKey::for_test(name)
}

/// The id of the node called `name`.
pub fn pid(name: &str) -> PeerId {
    key(name).id().clone()
}

pub fn name(s: &str) -> PeerId {
    PeerId::parse(s).unwrap()
}

pub fn addr_of(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3000 + i as u16))
}

/// `name` alive at incarnation 1, at port 3000 + `i`, with its certificate.
pub fn alive(name: &str, i: usize) -> MemberInfo {
    at(
        MemberInfo {
            id: pid(name),
            addr: addr_of(i),
            incarnation: 1,
            state: MemberState::Alive,
            degree: 0,
            name: self::name(name),
            cert: Sig::NONE,
        },
        1,
    )
}

/// `info` at `incarnation`, certified by its member (whose name it carries).
pub fn at(mut info: MemberInfo, incarnation: u64) -> MemberInfo {
    info.incarnation = incarnation;
    info.cert = sign_incarnation(&key(info.name.as_str()), incarnation, &info.name);
    info
}

/// `info` in `state`, its incarnation and certificate unchanged.
pub fn with_state(mut info: MemberInfo, state: MemberState) -> MemberInfo {
    info.state = state;
    info
}

pub fn sender(name: &str, i: usize) -> Sender {
    Sender {
        id: pid(name),
        addr: addr_of(i),
        seed: false,
    }
}

/// A broadcast from `origin`, signed by it.
pub fn signed(origin: &str, seq: u64, body: Body) -> Broadcast {
    let mut b = Broadcast {
        origin: pid(origin),
        seq,
        hops: 0,
        time_ms: 0,
        sig: Sig::NONE,
        body,
    };
    b.sign(&key(origin));
    b
}

pub fn member_news(origin: &str, seq: u64, info: MemberInfo) -> Msg {
    Msg::Gossip(signed(origin, seq, Body::Member(MemberEvent { info })))
}

/// `name`'s neighbour request at `incarnation`, with its certificate.
pub fn neighbor_request(name: &str, high: bool, incarnation: u64, degree: u32) -> Msg {
    Msg::Neighbor {
        high,
        incarnation,
        degree,
        name: self::name(name),
        cert: sign_incarnation(&key(name), incarnation, &self::name(name)),
    }
}

/// The node called `name`, with no seeds.
pub fn node(name: &str, config: OverlayConfig, rng_seed: u64, incarnation: u64) -> PeerNode {
    PeerNode::new(
        key(name),
        self::name(name),
        0,
        config,
        rng_seed,
        incarnation,
        1,
    )
}

/// A lone node that knows the members `n1`..`n{count}` (at ports 3001...).
pub fn lone(config: OverlayConfig, count: usize) -> PeerNode {
    let mut x = node("n0", config, 1, 1);
    x.start(Millis(0));
    let others = (1..=count).map(|i| alive(&format!("n{i}"), i)).collect();
    x.merge_list(others, false, Millis(0));
    x
}

/// A few nodes `n0`.. wired by hand, without seeds: every message is delivered at
/// once, in the order it was sent, unless the test's filter drops it.
pub struct Net {
    pub nodes: Vec<PeerNode>,
    pub now: Millis,
    /// Where each contact (`Dest::Contact(k)`) leads: a node's index, or `None` for
    /// a contact that is down.
    pub contacts: Vec<Option<usize>>,
}

impl Net {
    /// `n` nodes that all know each other, views formed for 10 s.
    pub fn new(n: usize, config: OverlayConfig) -> Net {
        let everyone: Vec<MemberInfo> = (0..n).map(|i| alive(&format!("n{i}"), i)).collect();
        let nodes = (0..n)
            .map(|i| {
                let mut node = node(&format!("n{i}"), config.clone(), i as u64, 1);
                node.start(Millis(0));
                node.merge_list(everyone.clone(), false, Millis(0));
                node
            })
            .collect();
        let mut net = Net {
            nodes,
            now: Millis(0),
            contacts: Vec::new(),
        };
        net.run(10_000, |_, _, _| true);
        net
    }

    pub fn index(&self, id: &PeerId) -> usize {
        self.nodes.iter().position(|n| n.id() == id).unwrap()
    }

    /// Delivers what the nodes sent (and what that causes) unless `keep` drops it.
    pub fn pump(&mut self, keep: &mut impl FnMut(usize, usize, &Msg) -> bool) {
        loop {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                for out in self.nodes[i].take_out() {
                    moved = true;
                    let j = match out.to {
                        Dest::Node(a) => (a.port() - 3000) as usize,
                        Dest::Contact(k) => match self.contacts.get(k).copied().flatten() {
                            Some(j) => j,
                            None => continue,
                        },
                        Dest::Seed(_) => continue,
                    };
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
    pub fn run(&mut self, until: u64, mut keep: impl FnMut(usize, usize, &Msg) -> bool) {
        while self.now.0 < until {
            self.now = Millis(self.now.0 + 10);
            for i in 0..self.nodes.len() {
                self.nodes[i].tick(self.now);
            }
            self.pump(&mut keep);
        }
    }

    /// Every active view holds only nodes whose active view holds it back.
    pub fn asymmetric_links(&self) -> Vec<(PeerId, PeerId)> {
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
