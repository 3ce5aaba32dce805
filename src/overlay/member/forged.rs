//! Lies a node must not believe: news signed by the wrong key, incarnations their
//! member never signed, and suspicions above the receiver's own incarnation. Each
//! test is an attack that worked before broadcasts and incarnations were signed.

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

/// Hands `msg` from `by` to every node but `except`, then lets the network settle.
fn tell_all(net: &mut Net, by: usize, except: usize, msg: &Msg) {
    let now = net.now;
    let from = sender(&format!("n{by}"), by);
    for i in (0..net.nodes.len()).filter(|&i| i != except && i != by) {
        net.nodes[i].handle(&from, msg.clone(), now);
    }
    net.pump(&mut |_, _, _| true);
}

#[test]
fn a_death_at_the_largest_incarnation_without_the_members_certificate_is_ignored() {
    let mut net = Net::new(8, OverlayConfig::default());
    let y = pid("n3");
    let before: Vec<u64> = (0..8)
        .filter(|&i| i != 3)
        .map(|i| net.nodes[i].member(&y).unwrap().incarnation)
        .collect();
    // n4 signs the broadcast, but the certificate of n3's incarnation is its own.
    let mut lie = with_state(alive("n3", 3), MemberState::Dead);
    lie.incarnation = u64::MAX;
    lie.cert = sign_incarnation(&key("n4"), u64::MAX, &lie.name);
    tell_all(&mut net, 4, 3, &member_news("n4", 1, lie.clone()));
    // And the attack as it went: an unsigned broadcast from an invented origin.
    let unsigned = Broadcast {
        sig: Sig::NONE,
        ..signed("mallory", 1, Body::Member(MemberEvent { info: lie }))
    };
    tell_all(&mut net, 4, 3, &Msg::Gossip(unsigned));
    net.run(net.now.0 + 2000, |_, _, _| true);
    let after: Vec<u64> = (0..8)
        .filter(|&i| i != 3)
        .map(|i| {
            let m = net.nodes[i].member(&y).unwrap();
            assert_eq!(m.state, MemberState::Alive, "n{i}");
            m.incarnation
        })
        .collect();
    assert_eq!(after, before);
    assert_eq!(net.nodes[3].incarnation(), 1, "nothing to refute");
    for i in [0, 1, 2, 5, 6, 7] {
        assert_eq!(net.nodes[i].dropped_signature(), 2, "n{i}");
    }
}

#[test]
fn a_death_with_the_members_own_certificate_is_refuted_everywhere() {
    let mut net = Net::new(8, OverlayConfig::default());
    let y = pid("n3");
    let held = net.nodes[0].member(&y).unwrap().info(&y).unwrap();
    assert!(held.cert_valid(), "a peer holds n3's certificate");
    // n4 declares n3 dead at its current incarnation, with the certificate it holds:
    // news any peer could give, and n3 can refute.
    net.nodes[3].take_events();
    let news = member_news("n4", 1, with_state(held.clone(), MemberState::Dead));
    tell_all(&mut net, 4, usize::MAX, &news);
    net.run(net.now.0 + 3000, |_, _, _| true);
    // n3 refuted one above (peers it then talked to before the refutation reached
    // them may have made it refute again).
    let refuted: Vec<u64> = net.nodes[3]
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            OverlayEvent::RefutedSelf { incarnation } => Some(incarnation),
            _ => None,
        })
        .collect();
    assert_eq!(
        refuted.first(),
        Some(&(held.incarnation + 1)),
        "{refuted:?}"
    );
    let now = net.nodes[3].incarnation();
    for i in (0..8).filter(|&i| i != 3) {
        let m = net.nodes[i].member(&y).unwrap();
        assert_eq!((m.state, m.incarnation), (MemberState::Alive, now), "n{i}");
        assert!(m.info(&y).unwrap().cert_valid(), "n{i}");
    }
}

#[test]
fn a_departure_announced_by_another_or_unsigned_is_ignored() {
    let mut x = lone(OverlayConfig::default(), 3);
    let n1 = sender("n1", 1);
    let left = with_state(alive("n3", 3), MemberState::Left);
    // n1 says that n3 left, signing as itself.
    x.handle(&n1, member_news("n1", 1, left.clone()), Millis(10));
    // A broadcast "from n3" signed by n1's key.
    let mut posing = signed("n3", 2, Body::Member(MemberEvent { info: left.clone() }));
    posing.sign(&key("n1"));
    x.handle(&n1, Msg::Gossip(posing), Millis(20));
    assert_eq!(x.member(&pid("n3")).unwrap().state, MemberState::Alive);
    assert_eq!(x.dropped_signature(), 2);
    // n3's own departure is taken.
    x.handle(&n1, member_news("n3", 3, left), Millis(30));
    assert_eq!(x.member(&pid("n3")).unwrap().state, MemberState::Left);
}

#[test]
fn a_forged_text_is_not_delivered_and_does_not_hide_the_real_one() {
    let mut net = Net::new(5, OverlayConfig::default());
    for n in &mut net.nodes {
        n.take_events();
    }
    // n0 makes up a text from n2, with the seq n2 uses next, and signs it itself.
    let mut forged = signed("n2", 77, Body::Say("forged".into()));
    forged.sign(&key("n0"));
    let now = net.now;
    net.nodes[1].handle(&sender("n0", 0), Msg::Gossip(forged), now);
    net.pump(&mut |_, _, _| true);
    for (i, n) in net.nodes.iter_mut().enumerate() {
        assert!(said(n.take_events()).is_empty(), "n{i} shows it");
    }
    assert_eq!(net.nodes[1].dropped_signature(), 1);
    // The real text, with the same id, then reaches everyone.
    let real = signed("n2", 77, Body::Say("real".into()));
    net.nodes[1].handle(&sender("n2", 2), Msg::Gossip(real), now);
    net.run(now.0 + 1000, |_, _, _| true);
    for (i, n) in net.nodes.iter_mut().enumerate().filter(|(i, _)| *i != 2) {
        assert_eq!(said(n.take_events()), ["real"], "n{i}");
    }
}

#[test]
fn a_suspicion_above_the_nodes_own_incarnation_is_a_lie() {
    let mut x = lone(OverlayConfig::default(), 1);
    let y = sender("n1", 1);
    for (incarnation, dead) in [(u64::MAX, true), (u64::MAX, false), (2, false)] {
        x.handle(&y, Msg::Suspect { incarnation, dead }, Millis(10));
    }
    assert_eq!(x.incarnation(), 1, "never raised by a lie");
    assert_eq!(x.stats.refutations, 0);
    assert_eq!(x.dropped_signature(), 3);
    assert!(x
        .take_out()
        .iter()
        .all(|o| !matches!(o.msg, Msg::Alive { .. })));
    // A suspicion at its own incarnation is refuted, one above.
    x.handle(
        &y,
        Msg::Suspect {
            incarnation: 1,
            dead: false,
        },
        Millis(20),
    );
    assert_eq!(x.incarnation(), 2);
    let alive = x.take_out().into_iter().find_map(|o| match o.msg {
        Msg::Alive {
            incarnation,
            name,
            cert,
        } => Some((incarnation, name, cert)),
        _ => None,
    });
    let (incarnation, name, cert) = alive.expect("an alive");
    assert_eq!(incarnation, 2);
    assert!(crate::overlay::incarnation_valid(
        &pid("n0"),
        2,
        &name,
        &cert
    ));
}

#[test]
fn rows_with_forged_certificates_are_not_taken() {
    let mut x = node("n0", OverlayConfig::default(), 1, 1);
    x.start(Millis(0));
    x.merge_list(vec![alive("n1", 1), alive("n2", 2)], false, Millis(0));
    let forged = |mut info: MemberInfo, incarnation| {
        info.incarnation = incarnation;
        info.cert = sign_incarnation(&key("n1"), incarnation, &info.name);
        info
    };
    let rows = vec![
        forged(alive("ghost", 9), 1),
        forged(alive("n2", 2), 50),
        forged(with_state(alive("n2", 2), MemberState::Dead), 60),
        // At the incarnation held, but not the certificate held.
        forged(with_state(alive("n2", 2), MemberState::Suspect), 1),
    ];
    x.handle(
        &sender("n1", 1),
        Msg::Shuffle {
            reply: false,
            members: rows.clone(),
        },
        Millis(10),
    );
    assert!(x.member(&pid("ghost")).is_none());
    let n2 = x.member(&pid("n2")).unwrap();
    assert_eq!((n2.state, n2.incarnation), (MemberState::Alive, 1));
    assert_eq!(x.dropped_signature(), 4);
    // n1's shuffle answer carries only rows with the members' own certificates.
    for o in x.take_out() {
        if let Msg::Shuffle { members, .. } = o.msg {
            assert!(members.iter().all(MemberInfo::cert_valid), "{members:?}");
        }
    }
    // A peer list from a peer (not a seed) is not taken at all, real or not.
    let list = Msg::Peers {
        seq: 1,
        members: vec![alive("n5", 5)],
    };
    x.handle(&sender("n1", 1), list, Millis(20));
    assert!(x.member(&pid("n5")).is_none());
}

#[test]
fn a_seeds_list_with_forged_certificates_is_taken_only_where_it_verifies() {
    let mut x = PeerNode::new(key("n0"), name("n0"), 1, OverlayConfig::default(), 1, 1, 1);
    x.start(Millis(0));
    let seq = x
        .take_out()
        .into_iter()
        .find_map(|o| match o.msg {
            Msg::Register { seq, .. } => Some(seq),
            _ => None,
        })
        .expect("a registration");
    let mut ghost = alive("ghost", 9);
    ghost.cert = sign_incarnation(&key("n1"), 1, &ghost.name);
    let seed = Sender {
        seed: true,
        ..sender("s0", 100)
    };
    let list = Msg::Peers {
        seq,
        members: vec![ghost, alive("n1", 1)],
    };
    x.handle(&seed, list, Millis(10));
    assert!(x.member(&pid("ghost")).is_none());
    assert!(x.member(&pid("n1")).is_some());
    assert_eq!(x.dropped_signature(), 1);
}

#[test]
fn messages_that_carry_a_forged_certificate_of_the_senders_incarnation_are_ignored() {
    let mut x = lone(OverlayConfig::default(), 2);
    x.take_out();
    let lie = |msg: Msg| match msg {
        Msg::Neighbor {
            high,
            incarnation,
            degree,
            name,
            ..
        } => Msg::Neighbor {
            high,
            incarnation,
            degree,
            cert: sign_incarnation(&key("n1"), incarnation, &name),
            name,
        },
        other => other,
    };
    // n2 "at incarnation 9", certified by n1's key: no neighbour, no answer.
    x.handle(
        &sender("n2", 2),
        lie(neighbor_request("n2", true, 9, 0)),
        Millis(10),
    );
    assert!(!x.active().contains(&pid("n2")));
    assert!(x.take_out().is_empty());
    assert_eq!(x.member(&pid("n2")).unwrap().incarnation, 1);
    let forged_alive = Msg::Alive {
        incarnation: 9,
        name: name("n2"),
        cert: sign_incarnation(&key("n1"), 9, &name("n2")),
    };
    x.handle(&sender("n2", 2), forged_alive, Millis(20));
    assert_eq!(x.member(&pid("n2")).unwrap().incarnation, 1);
    assert_eq!(x.dropped_signature(), 2);
    // The real request is taken.
    x.handle(
        &sender("n2", 2),
        neighbor_request("n2", true, 9, 0),
        Millis(30),
    );
    assert!(x.active().contains(&pid("n2")));
    assert_eq!(x.member(&pid("n2")).unwrap().incarnation, 9);
}
