//! A test harness for the node's parts: members and senders by index, and a few nodes
//! wired by hand.

use super::PeerNode;
use crate::clock::Millis;
use crate::overlay::{
    Body, Broadcast, Dest, MemberEvent, MemberInfo, MemberState, Msg, OverlayConfig, Sender,
};
use crate::protocol::name::PeerId;
use std::net::SocketAddr;

pub fn pid(s: &str) -> PeerId {
    PeerId::parse(s).unwrap()
}

pub fn addr_of(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3000 + i as u16))
}

pub fn alive(id: &str, i: usize) -> MemberInfo {
    MemberInfo {
        id: pid(id),
        addr: addr_of(i),
        incarnation: 1,
        state: MemberState::Alive,
        degree: 0,
    }
}

pub fn sender(id: &str, i: usize) -> Sender {
    Sender {
        id: pid(id),
        addr: addr_of(i),
        seed: false,
    }
}

pub fn member_news(origin: &str, seq: u64, info: MemberInfo) -> Msg {
    Msg::Gossip(Broadcast {
        origin: pid(origin),
        seq,
        hops: 0,
        time_ms: 0,
        body: Body::Member(MemberEvent { info }),
    })
}

/// A lone node that knows the members `n1`..`n{count}` (at ports 3001...).
pub fn lone(config: OverlayConfig, count: usize) -> PeerNode {
    let mut x = PeerNode::new(pid("n0"), 0, config, 1, 1, 1);
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
}

impl Net {
    /// `n` nodes that all know each other, views formed for 10 s.
    pub fn new(n: usize, config: OverlayConfig) -> Net {
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
