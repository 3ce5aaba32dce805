//! The member table: every peer this node has heard of, merged by SWIM's rules (see
//! the state document), and what a change of a member means for the other parts.
//!
//! [`apply`] is the rule alone, over the table; the steps after it (a revived member
//! joins the passive view, a dead one leaves the views) and first-hand contact
//! ([`PeerNode::note`]) are the node's.
//!
//! Certificates: a member's incarnation is only ever taken with the member's own
//! signature of it, which the record keeps beside it and passes on. A signature is
//! checked only when the news would change the record and does not carry the very
//! certificate the record holds, so news repeated in steady state costs nothing.

use super::{Ctx, PeerNode};
use crate::clock::Millis;
use crate::identity::Sig;
use crate::overlay::{
    incarnation_valid, Dest, DetMap, MemberInfo, MemberState, Msg, OverlayEvent, Sender, SELF_ADDR,
};
use crate::protocol::name::PeerId;
use std::net::SocketAddr;

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
    /// The member's name, and its certificate of `incarnation` under that name; `None`
    /// for a member known only from contact (it said nothing of its incarnation yet).
    pub signed: Option<Signed>,
}

/// A member's name and its signature of its incarnation under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub name: PeerId,
    pub cert: Sig,
}

impl Member {
    /// This member as news for others; `None` without a certificate to pass on.
    pub fn info(&self, id: &PeerId) -> Option<MemberInfo> {
        let signed = self.signed.as_ref()?;
        Some(MemberInfo {
            id: id.clone(),
            addr: self.addr,
            incarnation: self.incarnation,
            state: self.state,
            degree: self.degree,
            name: signed.name.clone(),
            cert: signed.cert,
        })
    }

    pub fn name(&self) -> Option<&PeerId> {
        self.signed.as_ref().map(|s| &s.name)
    }

    /// Whether this record holds exactly this certificate of this incarnation.
    pub(super) fn holds(&self, incarnation: u64, name: &PeerId, cert: &Sig) -> bool {
        self.incarnation == incarnation
            && self
                .signed
                .as_ref()
                .is_some_and(|s| s.name == *name && s.cert == *cert)
    }
}

/// An incarnation a member claims in a message of its own (`neighbor`, `alive`, an
/// `ack`...), with its name and certificate.
#[derive(Clone, Debug)]
pub(super) struct Claim {
    pub incarnation: u64,
    pub name: PeerId,
    pub cert: Sig,
}

/// Every member this node has heard of, by id (see the state document).
pub(super) type Members = DetMap<PeerId, Member>;

/// Whether `id` is a member held alive.
pub(super) fn is_alive(members: &Members, id: &PeerId) -> bool {
    members
        .get(id)
        .is_some_and(|m| m.state == MemberState::Alive)
}

/// What merging news of a member changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Applied {
    New(MemberState),
    Unchanged,
    /// The news would have changed the record, and its certificate does not verify:
    /// ignored.
    Forged,
    Suspected,
    /// Back to alive from suspect, dead or left, with a higher incarnation;
    /// `held_gone` is the incarnation it was held dead or left at.
    Revived {
        held_gone: Option<u64>,
    },
    Gone(MemberState),
}

/// Whether merging `info` into `m` would change its incarnation or state.
fn changes(m: &Member, info: &MemberInfo) -> bool {
    match info.state {
        // A member known only from contact has no certificate: one is news.
        _ if m.signed.is_none() && info.incarnation >= m.incarnation => true,
        MemberState::Alive => info.incarnation > m.incarnation,
        MemberState::Suspect => m.state == MemberState::Alive && info.incarnation >= m.incarnation,
        MemberState::Dead | MemberState::Left => {
            info.incarnation > m.incarnation
                || (!m.state.is_gone() && info.incarnation == m.incarnation)
        }
    }
}

/// Merges news of a member by SWIM's rules; returns what changed. `proven`: the
/// incarnation is proven already (news in a broadcast the gossip layer checked: a
/// death's certificate, or the member's own signature of its refutation or
/// departure).
pub(super) fn apply(
    members: &mut Members,
    ctx: &Ctx,
    info: &MemberInfo,
    proven: bool,
    now: Millis,
) -> Applied {
    if info.id == ctx.me {
        return Applied::Unchanged;
    }
    let signed = || Signed {
        name: info.name.clone(),
        cert: info.cert,
    };
    let Some(m) = members.get_mut(&info.id) else {
        // News of a member we never heard of, without an address to reach it by, or
        // past the cap (deaths included: anyone can announce deaths of made-up
        // peers), is not worth keeping.
        if info.addr == SELF_ADDR || members.len() >= ctx.config.members_max {
            return Applied::Unchanged;
        }
        if !proven && !info.cert_valid() {
            return Applied::Forged;
        }
        members.insert(
            info.id.clone(),
            Member {
                addr: info.addr,
                incarnation: info.incarnation,
                state: info.state,
                since: now,
                degree: info.degree,
                rtt_ms: None,
                signed: Some(signed()),
            },
        );
        return Applied::New(info.state);
    };
    let held = m.holds(info.incarnation, &info.name, &info.cert);
    if !held {
        if !changes(m, info) {
            return Applied::Unchanged;
        }
        if !proven && !info.cert_valid() {
            return Applied::Forged;
        }
        // Whatever the rule below takes from this news, it is at this incarnation.
        if info.incarnation >= m.incarnation {
            m.signed = Some(signed());
        }
    }
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

impl PeerNode {
    pub(super) fn after_apply(
        &mut self,
        id: &PeerId,
        applied: Applied,
        by: Option<&PeerId>,
        now: Millis,
    ) {
        match applied {
            Applied::New(MemberState::Alive) => self.add_passive(id.clone()),
            Applied::Revived { held_gone } => {
                self.liveness.suspects.remove(id);
                if let Some(m) = self.members.get(id) {
                    self.ctx.events.push(OverlayEvent::Refuted {
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
                        self.ctx.send(to, msg);
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
                self.ctx.events.push(match state {
                    MemberState::Left => OverlayEvent::Left { id: id.clone() },
                    _ => OverlayEvent::Dead {
                        id: id.clone(),
                        by: by.cloned().unwrap_or_else(|| self.ctx.me.clone()),
                    },
                });
            }
            _ => {}
        }
    }

    /// Checks the certificate of an incarnation that `from` claims for itself: `None`
    /// (and counted) when it does not verify. The check is skipped when the claim
    /// could change nothing (the record holds this very certificate, or a higher
    /// incarnation).
    pub(super) fn claim(
        &mut self,
        from: &Sender,
        incarnation: u64,
        name: PeerId,
        cert: Sig,
    ) -> Option<Claim> {
        let settled = self.members.get(&from.id).is_some_and(|m| {
            m.holds(incarnation, &name, &cert)
                || (m.signed.is_some() && incarnation < m.incarnation)
        });
        if !settled && !incarnation_valid(&from.id, incarnation, &name, &cert) {
            self.stats.dropped_signature += 1;
            log::debug!(
                "ignoring a message from {}: its certificate does not verify",
                from.id
            );
            return None;
        }
        Some(Claim {
            incarnation,
            name,
            cert,
        })
    }

    /// First-hand contact: the sender is alive at the address it spoke from, at the
    /// incarnation it claims (checked by [`PeerNode::claim`]) if any.
    pub(super) fn note(
        &mut self,
        from: &Sender,
        claim: Option<Claim>,
        degree: Option<u32>,
        now: Millis,
    ) {
        if from.id == self.ctx.me {
            return;
        }
        match self.members.get_mut(&from.id) {
            None => {
                if self.members.len() >= self.ctx.config.members_max {
                    return;
                }
                let (incarnation, signed) = match claim {
                    Some(c) => (
                        c.incarnation,
                        Some(Signed {
                            name: c.name,
                            cert: c.cert,
                        }),
                    ),
                    None => (0, None),
                };
                self.members.insert(
                    from.id.clone(),
                    Member {
                        addr: from.addr,
                        incarnation,
                        state: MemberState::Alive,
                        since: now,
                        degree: degree.unwrap_or(0),
                        rtt_ms: None,
                        signed,
                    },
                );
            }
            Some(m) => {
                m.addr = from.addr;
                if let Some(d) = degree {
                    m.degree = d;
                }
                let mut held_gone = None;
                if let Some(c) = claim {
                    let inc = c.incarnation;
                    if inc > m.incarnation || (inc == m.incarnation && m.signed.is_none()) {
                        m.signed = Some(Signed {
                            name: c.name,
                            cert: c.cert,
                        });
                    }
                    if inc > m.incarnation {
                        if m.state.is_gone() {
                            held_gone = Some(m.incarnation);
                        }
                        m.incarnation = inc;
                        if m.state != MemberState::Alive {
                            m.state = MemberState::Alive;
                            m.since = now;
                            self.liveness.suspects.remove(&from.id);
                            self.ctx.events.push(OverlayEvent::Refuted {
                                id: from.id.clone(),
                                incarnation: inc,
                            });
                        }
                    }
                }
                if m.state != MemberState::Alive && !self.liveness.suspects.contains_key(&from.id) {
                    // It talks to us but we hold it dead: tell it, so it refutes.
                    held_gone = Some(m.incarnation);
                }
                if let Some(held) = held_gone {
                    // Held dead until now (its higher incarnation came with this
                    // message): its refutation missed us, so likely others too, and it
                    // refutes again, by broadcast.
                    self.ctx.send(
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

    /// News of this node itself, gone at `incarnation`: refuted, unless it is a lie
    /// (above this node's incarnation without its own certificate: counted).
    /// `proven`: the incarnation is proven already (see [`apply`]).
    pub(super) fn news_of_self(&mut self, info: &MemberInfo, proven: bool, now: Millis) {
        if !info.state.is_gone() || self.ctx.left {
            return;
        }
        if info.incarnation > self.ctx.incarnation && !proven && !info.cert_valid() {
            self.stats.dropped_signature += 1;
            return;
        }
        if info.incarnation >= self.ctx.incarnation {
            self.refute(info.incarnation, now);
        }
    }

    /// Merges a peer list. A seed's list is first-hand (the seed heard from each
    /// member recently): a member listed alive that we hold dead at the same
    /// incarnation is told so, and refutes if it is alive (after a partition, each
    /// side holds the other dead without the other knowing). Rows whose certificate
    /// does not verify are ignored and counted.
    pub(super) fn merge_list(&mut self, list: Vec<MemberInfo>, from_seed: bool, now: Millis) {
        for info in list {
            if info.id == self.ctx.me {
                self.news_of_self(&info, false, now);
                continue;
            }
            if from_seed && info.state == MemberState::Alive {
                if let Some(m) = self.members.get(&info.id) {
                    if m.state.is_gone() && m.incarnation >= info.incarnation {
                        let incarnation = m.incarnation;
                        self.ctx.send(
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
            let applied = apply(&mut self.members, &self.ctx, &info, false, now);
            if applied == Applied::Forged {
                self.stats.dropped_signature += 1;
                continue;
            }
            let id = info.id.clone();
            self.after_apply(&id, applied, None, now);
            if info.state == MemberState::Alive {
                self.add_passive(id);
            }
        }
        self.recount();
    }
}

#[cfg(test)]
mod tests {
    use super::super::testnet::*;
    use super::super::*;

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
    fn a_member_held_dead_that_talks_at_a_higher_incarnation_is_told_it_was() {
        let mut x = lone(OverlayConfig::default(), 2);
        let mut n2 = alive("n2", 2);
        n2.state = MemberState::Dead;
        x.handle(&sender("n1", 1), member_news("n1", 1, n2), Millis(10));
        x.take_out();
        x.handle(
            &sender("n2", 2),
            neighbor_request("n2", false, 2, 3),
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
}
