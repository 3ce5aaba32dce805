//! A hostile network: clients that claim to be someone else. Every test plays the
//! attacker with a raw connection (or a key of its own) and asserts that the attack
//! fails and the legitimate node keeps working.

use crate::overlay::{member_rows, members, peers, said_lines, seed};
use crate::util::*;
use p2pshare::identity::{NodeKey, Sig};
use p2pshare::overlay::{
    sign_incarnation, wire, Body, Broadcast, MemberEvent, MemberInfo, MemberState, Msg, SeedRow,
};
use p2pshare::protocol::name::PeerId;
use std::fs;
use std::net::SocketAddr;
use std::time::Duration;

/// The node id a role printed in its ready line (`..., id ID, ...`).
fn ready_id(p: &Proc) -> String {
    let seen = p.seen.lock().unwrap();
    let line = seen
        .iter()
        .find(|l| l.contains(" listening on "))
        .expect("a ready line");
    line.split(", id ")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .unwrap_or_else(|| panic!("no id in {line:?}"))
        .to_owned()
}

/// `get|<name>` rows as (peer id, name).
fn holder_rows(index: &Proc, name: &str) -> Vec<(String, String)> {
    let mut raw = Raw::connect(index.addr);
    let n: usize = raw
        .ask(&format!("get|{name}"))
        .strip_prefix("ok|")
        .unwrap()
        .parse()
        .unwrap();
    let mut rows: Vec<(String, String)> = (0..n)
        .map(|_| {
            let row = raw.line();
            let f: Vec<&str> = row.split('|').collect();
            (f[2].to_owned(), f[6].to_owned())
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn nobody_can_publish_withdraw_or_leave_for_another_key() {
    let root = tempfile::tempdir().unwrap();
    let dirs = sample_peers(root.path());
    let index = index(root.path(), &[]);
    let p1 = peer(&dirs[0], &index, &[]);
    let a = ready_id(&p1);
    assert_eq!(
        holder_rows(&index, "onekb.txt"),
        [(a.clone(), "peer1".into())]
    );

    // From the same host, claiming A's id: the hello is answered, but without A's key
    // there is no session, so nothing can be done in A's name.
    let mut mallory = Raw::connect(index.addr);
    let nonce = "5a".repeat(16);
    let challenge = mallory.ask(&format!("hello|3|peer|{a}|44999|peer1|{nonce}"));
    assert!(challenge.starts_with("ok|index|"), "{challenge}");
    let forged = mallory.ask(&format!("auth|{}", "ab".repeat(64)));
    assert!(
        forged.starts_with("err|bad-request|the signature does not prove the key"),
        "{forged}"
    );
    for line in ["withdraw|1\nonekb.txt", "beat"] {
        let reply = mallory.ask(line);
        assert!(reply.starts_with("err|unknown-peer|"), "{line}: {reply}");
    }
    // A signature made for another node (a replay from elsewhere) proves nothing
    // either: the nonce and both ids are in what is signed.
    assert!(mallory.ask("auth|00").starts_with("err|unknown-peer|"));
    assert_eq!(mallory.ask("bye"), "ok|bye");

    // With a key of its own, under the same name, it is another peer: A's entries are
    // untouched, and the two are told apart by id.
    assert!(mallory
        .hello_as("peer", "peer1", 44999)
        .starts_with("ok|30|"));
    let id = p2pshare::protocol::hash::Sha1Digest::of(b"fake");
    assert_eq!(
        mallory.ask(&format!("publish|1\nonekb.txt|4|{id}|{id}")),
        "ok|1"
    );
    let rows = holder_rows(&index, "onekb.txt");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.contains(&(a.clone(), "peer1".into())), "{rows:?}");
    assert!(
        rows.contains(&(test_id("peer1"), "peer1".into())),
        "{rows:?}"
    );
    assert_eq!(mallory.ask("bye"), "ok|bye");
    assert_eq!(holder_rows(&index, "onekb.txt"), [(a, "peer1".into())]);
    assert_eq!(status_json(p1.addr)["status"]["health"], "ok");
}

#[test]
fn two_peers_whose_folders_have_the_same_name_are_both_listed() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &["--db", ":memory:"]);
    let mut peers = Vec::new();
    for (side, file) in [("left", "from-left.txt"), ("right", "from-right.txt")] {
        let dir = root.path().join(side).join("same");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(file), side).unwrap();
        peers.push(peer(&dir, &index, &[]));
    }
    let ids: Vec<String> = peers.iter().map(ready_id).collect();
    assert_ne!(ids[0], ids[1]);
    assert_eq!(
        holder_rows(&index, "from-left.txt"),
        [(ids[0].clone(), "same".into())]
    );
    assert_eq!(
        holder_rows(&index, "from-right.txt"),
        [(ids[1].clone(), "same".into())]
    );
    for p in &peers {
        let v = status_json(p.addr);
        assert_eq!(v["status"]["health"], "ok", "{v}");
        assert_eq!(v["status"]["indexes"][0]["files"], 1, "{v}");
    }
}

#[test]
fn a_direct_message_names_the_key_that_sent_it() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &["--db", ":memory:"]);
    let dir = root.path().join("bob");
    fs::create_dir_all(&dir).unwrap();
    let mut bob = console_peer(&dir, &index, &[]);
    let mut raw = Raw::connect(bob.addr);
    // Without a proven session there is no sender, so no message.
    assert!(raw.ask("msg|hi").starts_with("err|unknown-peer|"));
    // Any key may call itself "alice"; the console shows which key it was.
    assert!(raw.hello_as("peer", "alice", 45000).starts_with("ok|"));
    assert!(raw
        .ask("msg|it is me, alice")
        .starts_with("ok|bob got your message"));
    let short = &test_id("alice")[..8];
    bob.wait_line(|l| {
        l.contains(&format!(
            "message from alice ({short} at 127.0.0.1): it is me, alice"
        ))
    });
}

#[test]
fn a_peer_registers_only_with_a_seed_that_has_the_listed_key() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &["--db", ":memory:"]);
    let seed = Args::seed_server().start("seed", root.path());
    let real = ready_id(&seed);
    let wrong = test_id("not-the-seed");
    let start = |name: &str, seed_flag: String| {
        let dir = root.path().join(name);
        fs::create_dir_all(&dir).unwrap();
        peer(&dir, &index, &["--seed", &seed_flag])
    };
    let fooled = start("fooled", format!("{wrong}@{}", seed.addr));
    let pinned = start("pinned", format!("{real}@{}", seed.addr));
    eventually("the peer with the right key joins", DEADLINE, || {
        status_number(pinned.addr, "seeds_up") == 1
    });
    // Several registration rounds later, the other has still not taken the answer
    // of a seed whose key is not the one it was given.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(status_number(fooled.addr, "seeds_up"), 0);
    assert!(
        fooled.stderr_text().contains("not the expected"),
        "{}",
        fooled.stderr_text()
    );
}

/// A member's id and address, from a peer's `members`, by its name.
fn member_of(at: std::net::SocketAddr, name: &str) -> (PeerId, SocketAddr) {
    let row = member_rows(at)
        .into_iter()
        .find(|f| f[7] == name)
        .unwrap_or_else(|| panic!("{name} is not a member at {at}"));
    let addr = SocketAddr::new(row[1].parse().unwrap(), row[2].parse().unwrap());
    (PeerId::parse(&row[0]).unwrap(), addr)
}

/// A broadcast from `origin`, signed by `signer` (who may be someone else).
fn broadcast(origin: &PeerId, signer: &NodeKey, seq: u64, body: Body) -> String {
    let mut b = Broadcast {
        origin: origin.clone(),
        seq,
        hops: 0,
        time_ms: p2pshare::clock::wall_ms(),
        sig: Sig::NONE,
        body,
    };
    b.sign(signer);
    wire::encode(&Msg::Gossip(b))
}

/// Member news about `id` at `incarnation`, with a certificate made by `certifier`.
fn news(id: &PeerId, addr: SocketAddr, state: MemberState, inc: u64, certifier: &NodeKey) -> Body {
    let name = PeerId::parse("victim").unwrap();
    Body::Member(MemberEvent {
        info: MemberInfo {
            id: id.clone(),
            addr,
            incarnation: inc,
            state,
            degree: 0,
            cert: sign_incarnation(certifier, inc, &name),
            name,
        },
    })
}

#[test]
fn forged_gossip_neither_kills_nor_removes_nor_speaks_for_a_live_peer() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &["--db", ":memory:"]);
    let s1 = seed(root.path(), "s1", &[]);
    let mut ps = peers(root.path(), &index, &[&s1], 3, true);
    eventually("every peer knows the others", DEADLINE, || {
        ps.iter().all(|p| members(p.addr).len() == 2)
    });
    let (b, b_addr) = member_of(ps[0].addr, "p1");
    let (c, c_addr) = member_of(ps[0].addr, "p2");
    let mallory = test_key("mallory");
    let mut raw = Raw::connect(ps[0].addr);
    assert_eq!(raw.hello_as("peer", "mallory", 9), "ok|0|0");
    let seq = p2pshare::clock::wall_ms() * 1000;
    let forged = [
        // B dead at the last incarnation, declared by Mallory under her own name and
        // key, with a certificate B never made.
        broadcast(
            mallory.id(),
            &mallory,
            seq,
            news(&b, b_addr, MemberState::Dead, u64::MAX, &mallory),
        ),
        // C leaving, in C's name, signed by Mallory.
        broadcast(
            &c,
            &mallory,
            seq + 1,
            news(&c, c_addr, MemberState::Left, 1, &mallory),
        ),
        // A text in B's name, signed by Mallory.
        broadcast(&b, &mallory, seq + 2, Body::Say("forged words".into())),
    ];
    for line in &forged {
        assert_eq!(raw.ask(line.trim_end()), "ok");
    }
    eventually("the forgeries are counted", DEADLINE, || {
        status_number(ps[0].addr, "messages_dropped_signature") >= 3
    });
    // A real broadcast after them reaches everyone: the network is whole, B and C
    // are alive everywhere, and nobody printed the forged text.
    ps[2].type_line("say still here");
    for p in ps.iter_mut() {
        p.wait_line(|l| l.ends_with(": still here"));
    }
    for p in &ps {
        let m = members(p.addr);
        for (name, (state, _)) in &m {
            assert_eq!(state, "alive", "{name} at {}: {m:?}", p.name);
        }
        assert_eq!(said_lines(p, "forged words"), 0, "{}", p.name);
    }
}

#[test]
fn a_bare_hello_or_an_unlisted_seed_adds_no_member() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &["--db", ":memory:"]);
    let s1 = seed(root.path(), "s1", &[]);
    let ps = peers(root.path(), &index, &[&s1], 2, false);
    eventually("the peers know each other", DEADLINE, || {
        ps.iter().all(|p| members(p.addr).len() == 1)
    });
    // A hello whose key is not proven is no session: no message is taken.
    let mut raw = Raw::connect(ps[0].addr);
    let ghost = test_key("ghost");
    let nonce = "c3".repeat(16);
    let hello = format!("hello|3|peer|{}|9|ghost|{nonce}", ghost.id());
    assert!(raw.ask(&hello).starts_with("ok|peer|"));
    let name = PeerId::parse("ghost").unwrap();
    let cert = sign_incarnation(&ghost, 1, &name).hex();
    let reply = raw.ask(&format!("neighbor|high|1|0|ghost|{cert}"));
    assert!(reply.starts_with("err|unknown-peer|"), "{reply}");

    // A node that proves a key of its own, but not a seed's, cannot feed a seed's
    // registry: its seed-sync is ignored.
    let mut fake = Raw::connect(s1.addr);
    assert_eq!(fake.hello_as("seed", "fakeseed", 9), "ok|0|0");
    let row = SeedRow {
        info: MemberInfo {
            id: ghost.id().clone(),
            addr: "127.0.0.1:9".parse().unwrap(),
            incarnation: 1,
            state: MemberState::Alive,
            degree: 3,
            name: name.clone(),
            cert: sign_incarnation(&ghost, 1, &name),
        },
        seen_ago_ms: 0,
    };
    let sync = wire::encode(&Msg::SeedSync {
        nonce: 7,
        to: 0,
        rows: vec![row],
    });
    fake.send(sync.as_bytes());
    assert_eq!(fake.line(), "ok");
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !members(s1.addr).contains_key("ghost"),
        "{:?}",
        members(s1.addr)
    );
    for p in &ps {
        assert!(!members(p.addr).contains_key("ghost"));
    }
}
