//! The seed core's tests: registration, reports, sync, and the lies it must not believe.

use super::*;
use crate::identity::NodeKey;
use crate::overlay::{sign_incarnation, SeedConfig};

/// The peer called `name`: its key's id.
fn pid(name: &str) -> PeerId {
    NodeKey::for_test(name).id().clone()
}

fn from(name: &str, port: u16) -> Sender {
    Sender {
        id: pid(name),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        seed: false,
    }
}

fn seed_sender(name: &str, port: u16) -> Sender {
    Sender {
        seed: true,
        ..from(name, port)
    }
}

fn cert(name: &str, incarnation: u64) -> Sig {
    let n = PeerId::parse(name).unwrap();
    sign_incarnation(&NodeKey::for_test(name), incarnation, &n)
}

fn registration(name: &str, seq: u64, incarnation: u64, neighbours: Vec<PeerId>) -> Msg {
    Msg::Register {
        seq,
        incarnation,
        degree: neighbours.len() as u32,
        neighbours,
        name: PeerId::parse(name).unwrap(),
        cert: cert(name, incarnation),
    }
}

fn register(s: &mut SeedNode, name: &str, port: u16, now: u64) -> Vec<MemberInfo> {
    s.handle(
        &from(name, port),
        registration(name, 1, 1, vec![]),
        Millis(now),
    );
    match s.take_out().pop().map(|o| o.msg) {
        Some(Msg::Peers { members, .. }) => members,
        other => panic!("{other:?}"),
    }
}

fn seed_named(name: &str, seeds: usize, rng: u64, nonce: u64) -> SeedNode {
    SeedNode::new(pid(name), seeds, SeedConfig::default(), rng, nonce)
}

fn seed() -> SeedNode {
    seed_named("s", 0, 1, 7)
}

/// `name` at `port` in `state`, at incarnation 1, with its certificate.
fn member(name: &str, port: u16, state: MemberState) -> MemberInfo {
    MemberInfo {
        id: pid(name),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        incarnation: 1,
        state,
        degree: 0,
        name: PeerId::parse(name).unwrap(),
        cert: cert(name, 1),
    }
}

fn dead(name: &str, port: u16) -> Msg {
    Msg::Report {
        member: member(name, port, MemberState::Dead),
    }
}

/// Ticks until every probe of the seed has failed.
fn let_probes_fail(s: &mut SeedNode, from: u64) -> u64 {
    let until = from + 3000;
    for t in (from..until).step_by(100) {
        s.tick(Millis(t));
    }
    until
}

#[test]
fn registration_returns_the_others_capped_and_random() {
    let mut s = SeedNode::new(
        pid("s"),
        0,
        SeedConfig {
            list_cap: 5,
            ..SeedConfig::default()
        },
        1,
        7,
    );
    for i in 0..20 {
        register(&mut s, &format!("p{i}"), 2000 + i, 0);
    }
    let list = register(&mut s, "p0", 2000, 1);
    assert_eq!(list.len(), 5);
    assert!(list.iter().all(|m| m.id != pid("p0")));
    assert!(list.iter().all(MemberInfo::cert_valid), "{list:?}");
    assert_eq!(s.alive(), 20);
}

#[test]
fn a_registration_with_a_forged_certificate_is_ignored() {
    let mut s = seed();
    let mut forged = registration("a", 1, 9, vec![]);
    if let Msg::Register { cert: c, .. } = &mut forged {
        *c = cert("mallory", 9);
    }
    s.handle(&from("a", 2001), forged, Millis(0));
    assert!(s.take_out().is_empty(), "no answer");
    assert_eq!(s.alive(), 0);
    assert_eq!(s.stats.dropped_signature, 1);
    // The real one is taken; the same certificate again is not checked again.
    register(&mut s, "a", 2001, 10);
    register(&mut s, "a", 2001, 20);
    assert_eq!(s.alive(), 1);
    assert_eq!(s.stats.dropped_signature, 1);
}

#[test]
fn one_report_is_a_suspicion_checked_by_probing() {
    let mut s = seed();
    register(&mut s, "a", 2001, 0);
    register(&mut s, "b", 2002, 0);
    s.take_events();
    s.handle(&from("b", 2002), dead("a", 2001), Millis(10));
    assert_eq!(s.alive(), 2, "one report alone removes nobody");
    // The report is an event (the event log's `report` line), the probe its answer.
    assert_eq!(
        s.take_events(),
        [OverlayEvent::Reported {
            id: pid("a"),
            by: pid("b")
        }]
    );
    let probe = s.take_out();
    assert!(
        matches!(&probe[..], [Out { to: Dest::Node(a), msg: Msg::Probe { .. } }] if a.port() == 2001)
    );
    let Msg::Probe { seq } = probe[0].msg else {
        unreachable!()
    };
    let ack = Msg::Ack {
        seq,
        incarnation: 1,
        name: PeerId::parse("a").unwrap(),
        cert: cert("a", 1),
    };
    // An ack from anyone but a does not answer a's probe.
    s.handle(&from("b", 2002), ack.clone(), Millis(15));
    assert_eq!(s.reported(), 1);
    assert!(s.take_events().is_empty());
    // a answers: the report is dropped.
    s.handle(&from("a", 2001), ack, Millis(20));
    assert_eq!(s.reported(), 0);
    assert_eq!(s.take_events(), [OverlayEvent::Cleared { id: pid("a") }]);
    s.tick(Millis(5000));
    assert_eq!(s.alive(), 2);
    // Reported again, and this time every probe goes unanswered.
    s.handle(&from("b", 2002), dead("a", 2001), Millis(6000));
    let_probes_fail(&mut s, 6000);
    assert_eq!(s.alive(), 1);
    assert!(s
        .take_events()
        .iter()
        .any(|e| matches!(e, OverlayEvent::Dead { id, .. } if *id == pid("a"))));
}

#[test]
fn reports_from_many_peers_do_not_outweigh_an_answered_probe() {
    let mut s = seed();
    register(&mut s, "a", 2001, 0);
    let reporters = ["r1", "r2", "r3", "r4", "r5"];
    for (i, r) in reporters.iter().enumerate() {
        register(&mut s, r, 3000 + i as u16, 0);
    }
    s.take_out();
    let mut t = 10;
    for (i, r) in reporters.iter().enumerate() {
        s.handle(&from(r, 3000 + i as u16), dead("a", 2001), Millis(t));
        t += 10;
    }
    assert_eq!(s.record(&pid("a")).unwrap().reporters.len(), 5);
    assert_eq!(s.reported(), 1, "shown as reported");
    // a answers every probe try.
    while t < 5000 {
        s.tick(Millis(t));
        for o in s.take_out() {
            if let Msg::Probe { seq } = o.msg {
                let ack = Msg::Ack {
                    seq,
                    incarnation: 1,
                    name: PeerId::parse("a").unwrap(),
                    cert: cert("a", 1),
                };
                s.handle(&from("a", 2001), ack, Millis(t));
            }
        }
        t += 100;
    }
    assert!(!s.record(&pid("a")).unwrap().state.is_gone());
    assert_eq!(s.stats.deaths, 0);
    // A peer leaving on purpose goes at once, but nobody else can say it left.
    let left = Msg::Report {
        member: member("r1", 3000, MemberState::Left),
    };
    s.handle(&from("r2", 3001), left.clone(), Millis(t));
    assert!(!s.record(&pid("r1")).unwrap().state.is_gone());
    s.handle(&from("r1", 3000), left, Millis(t));
    assert_eq!(s.record(&pid("r1")).unwrap().state, MemberState::Left);
}

#[test]
fn a_registry_sent_by_a_peer_is_ignored() {
    let mut s = seed();
    register(&mut s, "a", 2001, 0);
    let row = SeedRow {
        info: member("a", 2001, MemberState::Dead),
        seen_ago_ms: 0,
    };
    s.handle(
        &from("b", 2002),
        Msg::SeedSync {
            nonce: 99,
            to: 0,
            rows: vec![row],
        },
        Millis(10),
    );
    assert_eq!(s.alive(), 1, "only seeds speak for other peers");
    assert_eq!(s.seeds_heard(Millis(10)), 0);
    s.tick(Millis(20));
    assert!(s.take_out().is_empty(), "nothing is sent to the peer");
}

#[test]
fn sync_rows_with_forged_certificates_are_not_taken() {
    let mut s = seed();
    register(&mut s, "a", 2001, 0);
    let forged = |name: &str, port, state, incarnation| SeedRow {
        info: MemberInfo {
            incarnation,
            cert: cert("mallory", incarnation),
            ..member(name, port, state)
        },
        seen_ago_ms: 0,
    };
    let rows = [
        // a dead at an incarnation it never signed, and a peer nobody registered.
        forged("a", 2001, MemberState::Dead, u64::MAX),
        forged("ghost", 2009, MemberState::Alive, 1),
        // a's own certificate at its incarnation: a real death, as a seed saw it.
        SeedRow {
            info: member("a", 2001, MemberState::Dead),
            seen_ago_ms: 0,
        },
    ];
    s.handle(
        &seed_sender("s2", 1501),
        Msg::SeedSync {
            nonce: 99,
            to: 0,
            rows: rows[..2].to_vec(),
        },
        Millis(10),
    );
    assert_eq!(s.stats.dropped_signature, 2);
    assert!(s.record(&pid("ghost")).is_none());
    let a = s.record(&pid("a")).unwrap();
    assert_eq!((a.state, a.incarnation), (MemberState::Alive, 1));
    s.handle(
        &seed_sender("s2", 1501),
        Msg::SeedSync {
            nonce: 99,
            to: 0,
            rows: rows[2..].to_vec(),
        },
        Millis(20),
    );
    assert_eq!(s.record(&pid("a")).unwrap().state, MemberState::Dead);
}

#[test]
fn a_peer_held_dead_that_registers_is_told_so() {
    let mut s = seed();
    register(&mut s, "a", 2001, 0);
    register(&mut s, "b", 2002, 0);
    s.handle(&from("b", 2002), dead("a", 2001), Millis(10));
    let t = let_probes_fail(&mut s, 10);
    assert_eq!(s.alive(), 1);
    // a is alive after all and registers at the incarnation it was declared dead at:
    // the list names a itself, dead, so that a refutes with a higher incarnation.
    let list = register(&mut s, "a", 2001, t);
    let own: Vec<_> = list.iter().filter(|m| m.id == pid("a")).collect();
    assert_eq!(own.len(), 1, "{list:?}");
    assert_eq!(own[0].state, MemberState::Dead);
    assert_eq!(own[0].incarnation, 1);
    assert!(own[0].cert_valid());
    // At a higher incarnation, it is simply alive.
    s.handle(
        &from("a", 2001),
        registration("a", 2, 2, vec![]),
        Millis(t + 10),
    );
    let Some(Msg::Peers { members, .. }) = s.take_out().pop().map(|o| o.msg) else {
        panic!("no answer")
    };
    assert!(members.iter().all(|m| m.id != pid("a")));
    assert_eq!(s.alive(), 2);
}

#[test]
fn a_seed_that_just_started_does_not_make_old_sightings_look_new() {
    let sa = seed_sender("sa", 1500);
    let sb = seed_sender("sb", 1501);
    // b has run for a while and last heard of p 50 s ago.
    let mut b = seed_named("sb", 1, 2, 2);
    register(&mut b, "p", 2001, 50_000);
    b.tick(Millis(100_000));
    // a has just started (its clock counts from 0) when b's registry arrives...
    let mut a = seed_named("sa", 1, 1, 1);
    for o in b.take_out() {
        a.handle(&sb, o.msg, Millis(1000));
    }
    // ...and its own registry, sent back to b, must not make p look recent.
    a.tick(Millis(3000));
    for o in a.take_out() {
        b.handle(&sa, o.msg, Millis(100_010));
    }
    assert_eq!(b.record(&pid("p")).unwrap().last_seen, Millis(50_000));
    b.tick(Millis(115_000));
    assert_eq!(b.alive(), 0, "p is forgotten in time");
}

#[test]
fn silent_peers_are_forgotten_unless_vouched_for() {
    let mut s = seed();
    register(&mut s, "a", 2001, 0);
    register(&mut s, "b", 2002, 0);
    // b keeps registering, listing a as its neighbour; a itself is silent.
    for t in (10_000..120_000).step_by(10_000) {
        s.handle(
            &from("b", 2002),
            registration("b", 2, 1, vec![pid("a")]),
            Millis(t),
        );
        s.tick(Millis(t));
    }
    assert_eq!(s.alive(), 2);
    for t in (120_000..300_000).step_by(5000) {
        s.tick(Millis(t));
    }
    assert_eq!(s.alive(), 0);
}

#[test]
fn the_key_holder_registers_from_any_host() {
    let mut s = seed();
    register(&mut s, "a", 2001, 0);
    // The same key from another host (it proved the key): the record follows it.
    let elsewhere = Sender {
        addr: SocketAddr::from(([10, 0, 0, 9], 2001)),
        ..from("a", 2001)
    };
    s.handle(&elsewhere, registration("a", 5, 9, vec![]), Millis(100));
    assert!(matches!(
        s.take_out().pop().map(|o| o.msg),
        Some(Msg::Peers { seq: 5, .. })
    ));
    let a = s.record(&pid("a")).unwrap();
    assert_eq!((a.addr, a.incarnation), (elsewhere.addr, 9));
}

#[test]
fn seeds_converge_through_sync() {
    let mut a = seed_named("sa", 1, 1, 1);
    let mut b = seed_named("sb", 1, 2, 2);
    register(&mut a, "p1", 2001, 0);
    register(&mut b, "p2", 2002, 0);
    let sa = seed_sender("sa", 1500);
    let sb = seed_sender("sb", 1501);
    a.tick(Millis(10));
    b.tick(Millis(10));
    for o in a.take_out() {
        b.handle(&sa, o.msg, Millis(11));
    }
    for o in b.take_out() {
        a.handle(&sb, o.msg, Millis(11));
    }
    assert_eq!(a.alive(), 2);
    assert_eq!(b.alive(), 2);
    assert_eq!(a.seeds_heard(Millis(11)), 1);
    // A death at one seed (its probes failed) reaches the other.
    a.handle(&from("p2", 2002), dead("p1", 2001), Millis(20));
    a.take_out();
    let t = let_probes_fail(&mut a, 20);
    assert_eq!(a.alive(), 1);
    a.take_out();
    a.tick(Millis(t + 2000));
    for o in a.take_out() {
        b.handle(&sa, o.msg, Millis(t + 2001));
    }
    assert_eq!(b.alive(), 1);
    // A seed that reaches itself through its list stops syncing with itself.
    let mut c = seed_named("sc", 2, 3, 3);
    register(&mut c, "p1", 2001, 0);
    c.tick(Millis(10));
    let out = c.take_out();
    assert_eq!(out.len(), 2);
    let own = out.into_iter().find(|o| o.to == Dest::Seed(1)).unwrap();
    c.handle(&seed_sender("sc", 1502), own.msg, Millis(11));
    assert_eq!(c.seeds_configured(), 1);
    assert_eq!(c.seeds_heard(Millis(11)), 0);
}

#[test]
fn one_host_registers_only_so_many_live_ids() {
    let mut s = SeedNode::new(
        pid("s"),
        0,
        SeedConfig {
            ids_per_address: 3,
            ..SeedConfig::default()
        },
        1,
        7,
    );
    for i in 0..3 {
        register(&mut s, &format!("p{i}"), 4000 + i, 1);
    }
    // A fourth id from the same host gets no answer and is not listed.
    s.handle(
        &from("p3", 4003),
        registration("p3", 1, 1, vec![]),
        Millis(2),
    );
    assert!(s.take_out().is_empty());
    assert_eq!(s.status(false, Millis(2)).refused_quota, 1);
    // Ids already registered there renew as before, and another host is served.
    register(&mut s, "p0", 4000, 3);
    let other = Sender {
        addr: SocketAddr::from(([10, 0, 0, 2], 4003)),
        ..from("p3", 4003)
    };
    s.handle(&other, registration("p3", 1, 1, vec![]), Millis(4));
    assert!(matches!(
        s.take_out().pop().map(|o| o.msg),
        Some(Msg::Peers { .. })
    ));
    assert_eq!(s.status(false, Millis(4)).peers, 4);
}
