//! A hostile network: clients that claim to be someone else. Every test plays the
//! attacker with a raw connection (or a key of its own) and asserts that the attack
//! fails and the legitimate node keeps working.

use crate::util::*;
use std::fs;
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
    let challenge = mallory.ask(&format!("hello|2|peer|{a}|44999|peer1|{nonce}"));
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
