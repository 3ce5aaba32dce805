//! Limits that hold under abuse: one host cannot take every connection slot, and a
//! client that trickles bytes or says nothing cannot hold a slot for long, while
//! everyone else is served.

use crate::util::*;
use std::io::Read;
use std::net::Ipv4Addr;
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn one_address_cannot_take_every_connection() {
    let root = tempfile::tempdir().unwrap();
    let index = index(
        root.path(),
        &[
            "--max-connections",
            "100",
            "--max-connections-per-address",
            "3",
        ],
    );
    let mut held: Vec<Raw> = (0..3)
        .map(|_| {
            let mut r = Raw::connect(index.addr);
            assert_eq!(r.ask("ping"), "ok|pong");
            r
        })
        .collect();
    let mut fourth = Raw::connect(index.addr);
    let line = fourth.line();
    assert!(
        line.starts_with("err|busy|127.0.0.1 is at its limit of 3 connections"),
        "{line}"
    );
    // Another host is served all the same.
    let mut other = Raw::connect_from(Ipv4Addr::new(127, 0, 0, 2), index.addr);
    assert_eq!(other.ask("ping"), "ok|pong");
    // A slot given back is a slot to take again.
    drop(held.pop());
    eventually("a slot freed", DEADLINE, || {
        let mut r = Raw::connect(index.addr);
        r.ask("ping") == "ok|pong"
    });
}

#[test]
fn a_trickling_or_silent_client_is_dropped_and_others_are_served() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &["--request-timeout", "1s"]);

    // One byte at a time, never a whole request.
    let mut slow = Raw::connect(index.addr);
    let started = Instant::now();
    slow.send(b"pi");
    thread::sleep(Duration::from_millis(400));
    slow.send(b"n");
    let line = slow.line();
    assert!(
        line.starts_with("err|bad-request|a request did not arrive whole within 1s"),
        "{line}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(slow.read_to_end(), b"", "the connection stays open");

    // Connected, and nothing said.
    let mut silent = Raw::connect(index.addr);
    let line = silent.line();
    assert!(
        line.starts_with("err|bad-request|no request arrived within 1s"),
        "{line}"
    );

    // A client that sends whole requests, however far apart, keeps its connection.
    let mut steady = Raw::connect(index.addr);
    for _ in 0..4 {
        assert_eq!(steady.ask("ping"), "ok|pong");
        thread::sleep(Duration::from_millis(600));
    }
    assert_eq!(steady.ask("ping"), "ok|pong");
    let mut buf = [0u8; 1];
    steady.stream.set_nonblocking(true).expect("non-blocking");
    assert!(
        matches!(steady.stream.read(&mut buf), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a steady client was closed"
    );
}

/// A large batch over a slow link gets the time its size needs; blank lines after a
/// request are no request of their own.
#[test]
fn a_slow_large_batch_and_blank_lines_are_not_cut_off() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &["--request-timeout", "1s"]);
    let mut raw = Raw::connect(index.addr);
    assert!(raw.hello_as("peer", "slow", 2000).starts_with("ok|"));
    let id = p2pshare::protocol::hash::Sha1Digest::of(b"x");
    let mut batch = String::from("publish|2000\n");
    for i in 0..2000 {
        batch.push_str(&format!("file-{i:05}.txt|1|{id}|{id}\n"));
    }
    // About 200 KB over 2.5 s: slower than the request timeout alone allows.
    let bytes = batch.as_bytes();
    for part in bytes.chunks(bytes.len() / 10 + 1) {
        raw.send(part);
        thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(raw.line(), "ok|2000");

    raw.send(b"ping\n\n");
    assert_eq!(raw.line(), "ok|pong");
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(raw.ask("ping"), "ok|pong", "closed for a blank line");
}

/// A `publish` batch of `names`, with made-up hashes (the index checks their shape).
fn publish_batch(names: &[String]) -> String {
    let hash = format!("sha1:{}", "ab".repeat(20));
    let mut out = format!("publish|{}\n", names.len());
    for n in names {
        out.push_str(&format!("{n}|1|{hash}|{hash}\n"));
    }
    out
}

#[test]
fn one_host_cannot_register_endless_ids_or_files_and_a_real_peer_still_publishes() {
    let root = tempfile::tempdir().unwrap();
    let index = index(
        root.path(),
        &[
            "--max-peers-per-address",
            "3",
            "--max-files-per-peer",
            "150",
            "--publish-rate",
            "40",
        ],
    );
    // The attacker, from 127.0.0.2: three ids, then busy.
    let mut attacker = Raw::connect_from(Ipv4Addr::new(127, 0, 0, 2), index.addr);
    for i in 0..3 {
        let reply = attacker.hello_as("peer", &format!("fake-{i}"), 2000);
        assert!(reply.starts_with("ok|"), "{reply}");
    }
    let line = attacker.hello_as("peer", "fake-3", 2000);
    assert!(
        line.starts_with("err|busy|127.0.0.2 has 3 peer ids registered"),
        "{line}"
    );
    // More files than one id may hold: refused whole.
    assert!(attacker.hello_as("peer", "fake-2", 2000).starts_with("ok|"));
    let many: Vec<String> = (0..160).map(|i| format!("junk-{i}.bin")).collect();
    attacker.send(publish_batch(&many).as_bytes());
    let line = attacker.line();
    assert!(
        line.starts_with(&format!(
            "err|too-large|peer '{}' would hold 160 files",
            test_id("fake-2")
        )),
        "{line}"
    );
    // At 40 rows a second per id (80 at once), a small batch of another id goes
    // through, then a large one is busy.
    let mut fast = Raw::connect_from(Ipv4Addr::new(127, 0, 0, 2), index.addr);
    assert!(fast.hello_as("peer", "fake-0", 2000).starts_with("ok|"));
    fast.send(publish_batch(&many[..2]).as_bytes());
    assert_eq!(fast.line(), "ok|2");
    fast.send(publish_batch(&many[2..90]).as_bytes());
    let line = fast.line();
    assert!(
        line.starts_with("err|busy|over 40 rows a second for this peer id"),
        "{line}"
    );
    let mut client = Raw::connect(index.addr);
    assert_eq!(client.ask("get|junk-10.bin"), "ok|0");

    // A real peer from 127.0.0.1 with more files than the rate allows at once: its
    // sync, and the files added later, all reach the index (busy batches are sent
    // again on the same session).
    let dir = root.path().join("honest");
    std::fs::create_dir(&dir).unwrap();
    for i in 0..100 {
        std::fs::write(dir.join(format!("early-{i}.txt")), format!("{i}")).unwrap();
    }
    let _peer = peer(&dir, &index, &["--settle", "100ms"]);
    for i in 0..30 {
        std::fs::write(dir.join(format!("late-{i}.txt")), format!("late {i}")).unwrap();
    }
    eventually("every file published", DEADLINE, || {
        (0..20).all(|i| {
            client.ask(&format!("get|early-{i}.txt")) == "ok|1" && client.line().contains("|")
        }) && (0..5).all(|i| {
            client.ask(&format!("get|late-{i}.txt")) == "ok|1" && client.line().contains("|")
        })
    });
    assert!(status_number(index.addr, "refused_quota") >= 3);
}
