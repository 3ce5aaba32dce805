//! The durable, redundant index: restarts, kill -9 during load, two index servers.

use crate::util::*;
use p2pshare::net::client::Client;
use p2pshare::net::node::HelloRole;
use p2pshare::net::{NetError, Timeouts};
use p2pshare::protocol::codec;
use p2pshare::protocol::hash::Sha1Digest;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

fn index_at(root: &Path, listen: &str, db: &Path, extra: &[&str]) -> Proc {
    Args::index_server()
        .listen(listen)
        .flag("--db", db.to_str().unwrap())
        .args(extra)
        .start("index", root)
}

#[test]
fn a_restarted_index_serves_what_it_had_and_peers_carry_on() {
    let root = tempfile::tempdir().unwrap();
    let dirs = sample_peers(root.path());
    let db = root.path().join("index.db");
    let mut index = index_at(root.path(), "127.0.0.1:0", &db, &["--lease", "2s"]);
    let port = index.addr.port();
    let _p1 = peer(&dirs[0], &index, &[]);
    let mut p2 = peer(&dirs[1], &index, &[]);
    index.kill9();
    // While the index is down, peer2 dies too: it must expire after one lease.
    p2.kill9();
    let listen = format!("127.0.0.1:{port}");
    let index = index_at(root.path(), &listen, &db, &["--lease", "2s"]);
    // Restored from disk at once, before any peer has reconnected.
    let mut onekb = holders(index.addr, "onekb.txt");
    onekb.sort();
    assert_eq!(onekb, vec!["peer1", "peer2"]);
    // peer1 reconnects and keeps beating; peer2 never comes back and expires.
    eventually(
        "peer2 expired after one lease",
        Duration::from_secs(10),
        || holders(index.addr, "onekb.txt") == vec!["peer1".to_owned()],
    );
    thread::sleep(Duration::from_secs(3));
    assert_eq!(holders(index.addr, "tenkb.txt"), vec!["peer1".to_owned()]);
}

#[test]
fn a_lost_database_heals_within_a_heartbeat() {
    let root = tempfile::tempdir().unwrap();
    let dirs = sample_peers(root.path());
    let mut index = index_at(
        root.path(),
        "127.0.0.1:0",
        Path::new(":memory:"),
        &["--lease", "2s"],
    );
    let port = index.addr.port();
    let _p1 = peer(&dirs[0], &index, &[]);
    index.kill9();
    let listen = format!("127.0.0.1:{port}");
    let index = index_at(
        root.path(),
        &listen,
        Path::new(":memory:"),
        &["--lease", "2s"],
    );
    assert!(holders(index.addr, "tenkb.txt").is_empty());
    // The peer's link reconnects, sees an index that knows nothing of it, re-publishes.
    eventually("peer1 re-published", Duration::from_secs(10), || {
        holders(index.addr, "tenkb.txt") == vec!["peer1".to_owned()]
    });
}

/// Publishes batches from several peer sessions until told to stop, recording every
/// (peer, name) whose batch was acknowledged. Batch sizes come from `seed`.
fn publish_load(
    addr: String,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(String, String)>>>,
    trial: usize,
    seed: u64,
) {
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (addr, stop, acked) = (addr.clone(), stop.clone(), acked.clone());
            thread::spawn(move || {
                let peer = format!("load-{trial}-{w}");
                let t = Timeouts {
                    connect: Duration::from_secs(1),
                    io: Duration::from_secs(5),
                };
                let Ok(mut c) = Client::connect(&addr, &t) else {
                    return;
                };
                let me = test_me(&peer);
                if c.hello(Some(&me), HelloRole::Peer, 2000 + w as u16, None)
                    .is_err()
                {
                    return;
                }
                let digest = Sha1Digest::of(b"d").to_string();
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(w));
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) {
                    let n = rng.gen_range(1..50);
                    let names: Vec<String> = (0..n).map(|i| format!("f-{seq}-{i}.bin")).collect();
                    seq += 1;
                    let mut msg = codec::line(&["publish", &n.to_string()]);
                    for name in &names {
                        let id = Sha1Digest::of(name.as_bytes()).to_string();
                        msg.push_str(&codec::line(&[name, "1", &id, &digest]));
                    }
                    let result: Result<_, NetError> = c
                        .send(msg.as_bytes(), "publish")
                        .and_then(|()| c.read_ok("publish"));
                    match result {
                        Ok(_) => acked
                            .lock()
                            .unwrap()
                            .extend(names.into_iter().map(|n| (peer.clone(), n))),
                        Err(_) => return, // the index died mid-request: not acknowledged
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
}

#[test]
fn kill_9_during_heavy_publishing_loses_no_acknowledged_write() {
    let root = tempfile::tempdir().unwrap();
    let mut rng = seeded_rng();
    let mut total_acked = 0;
    for trial in 0..20 {
        let db = root.path().join(format!("crash-{trial}.db"));
        let mut index = index_at(
            root.path(),
            "127.0.0.1:0",
            &db,
            &["--lease", "10m", "--idle-timeout", "10m"],
        );
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let load = {
            let (addr, stop, acked) = (index.addr_str(), stop.clone(), acked.clone());
            let seed = rng.gen();
            thread::spawn(move || publish_load(addr, stop, acked, trial, seed))
        };
        thread::sleep(Duration::from_millis(rng.gen_range(50..400)));
        index.kill9();
        stop.store(true, Ordering::Relaxed);
        load.join().unwrap();
        let acked = acked.lock().unwrap().clone();
        total_acked += acked.len();
        // Restart on the same database and look for every acknowledged file.
        let index = index_at(
            root.path(),
            "127.0.0.1:0",
            &db,
            &["--lease", "10m", "--idle-timeout", "10m"],
        );
        let mut raw = Raw::connect(index.addr);
        let mut missing = Vec::new();
        for chunk in acked.chunks(200) {
            let mut batch = String::new();
            for (_, name) in chunk {
                batch.push_str(&format!("get|{name}\n"));
            }
            raw.send(batch.as_bytes());
            for (peer, name) in chunk {
                let n: usize = raw.line().strip_prefix("ok|").unwrap().parse().unwrap();
                let peers: HashSet<String> = (0..n)
                    .map(|_| raw.line().split('|').nth(6).unwrap().to_owned())
                    .collect();
                if !peers.contains(peer) {
                    missing.push(name.clone());
                }
            }
        }
        assert!(
            missing.is_empty(),
            "trial {trial}: {} acknowledged files lost, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
    }
    assert!(
        total_acked > 1000,
        "the load acknowledged only {total_acked} files in 20 trials"
    );
}

#[test]
fn searches_and_downloads_survive_the_loss_of_one_index_server() {
    let root = tempfile::tempdir().unwrap();
    let dirs = sample_peers(root.path());
    let mut a = index_at(root.path(), "127.0.0.1:0", &root.path().join("a.db"), &[]);
    let b = index_at(root.path(), "127.0.0.1:0", &root.path().join("b.db"), &[]);
    let (a_addr, b_addr) = (a.addr_str(), b.addr_str());
    let both = |args: Args| args.index(&a_addr).index(&b_addr);
    let start = |dir: &Path| {
        let name = dir.file_name().unwrap().to_str().unwrap();
        let p = both(Args::peer_sharing(dir).no_console()).start(name, root.path());
        eventually("connected to both indexes", DEADLINE, || {
            let seen = p.seen.lock().unwrap();
            [&a_addr, &b_addr].iter().all(|i| {
                seen.iter()
                    .any(|l| l.contains(&format!("index {i}: connected")))
            })
        });
        p
    };
    let _peers: Vec<Proc> = dirs.iter().map(|d| start(d)).collect();
    let search = |words: &str| {
        let (code, out, err) = both(Args::search(words).json()).run(root.path());
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["results"].as_array().unwrap().len()
    };
    assert_eq!(search("onekb"), 1);
    a.kill9();
    // The first index is gone: searches and downloads go to the second.
    assert_eq!(search("onekb"), 1);
    let dest = root.path().join("dest");
    let (code, out, err) = both(Args::get("hundredkb.txt").dir(&dest)).run(root.path());
    assert_eq!(code, 0, "{out}{err}");
    // Restarted empty on its old port, the first index catches up from the peers.
    let listen = a_addr.clone();
    let a = index_at(root.path(), &listen, Path::new(":memory:"), &[]);
    eventually("index a caught up", Duration::from_secs(15), || {
        let mut h = holders(a.addr, "onekb.txt");
        h.sort();
        h == vec!["peer1", "peer2"]
    });
}

/// Two index servers, the first started with `first_extra`, and a peer that publishes
/// to the second only.
fn two_indexes(root: &Path, first_extra: &[&str]) -> (Proc, Proc, Proc) {
    let dirs = sample_peers(root);
    let a = index_at(root, "127.0.0.1:0", Path::new(":memory:"), first_extra);
    let b = index_at(root, "127.0.0.1:0", Path::new(":memory:"), &[]);
    let b_addr = b.addr_str();
    let mut p = Args::peer_sharing(&dirs[0])
        .no_console()
        .index(&b_addr)
        .start("peer1", root);
    p.wait_line(|l| l.contains(&format!("index {b_addr}: connected")));
    (a, b, p)
}

/// `p2pshare search WORDS --index A --index B ...`: exit code and result names.
fn search_both(root: &Path, a: &Proc, b: &Proc, words: &str, extra: &[&str]) -> (i32, String) {
    let (code, out, err) = Args::search(words)
        .json()
        .index(a.addr)
        .index(b.addr)
        .args(extra)
        .run(root);
    (code, format!("{out}{err}"))
}

#[test]
fn a_busy_index_is_passed_over_for_the_next() {
    let root = tempfile::tempdir().unwrap();
    let (a, b, _p) = two_indexes(root.path(), &["--max-connections", "1"]);
    // Take index a's only place.
    let mut hog = Raw::connect(a.addr);
    assert_eq!(hog.ask("ping"), "ok|pong");
    let (code, out) = search_both(root.path(), &a, &b, "tenkb", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"name\":\"tenkb.txt\""), "{out}");
}

#[test]
fn a_hung_index_costs_no_more_than_a_connect_timeout() {
    let root = tempfile::tempdir().unwrap();
    let (a, b, _p) = two_indexes(root.path(), &[]);
    // A stopped process still completes TCP handshakes (the kernel does), but never
    // answers: only a reply timeout can tell.
    // SAFETY: plain kill(2) on a child we started; it is killed on drop.
    assert_eq!(unsafe { libc::kill(a.pid() as i32, libc::SIGSTOP) }, 0);
    // With a one-hour I/O timeout, waiting for a's reply would outlast the test.
    let (code, out) = search_both(
        root.path(),
        &a,
        &b,
        "tenkb",
        &["--connect-timeout", "1s", "--io-timeout", "1h"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"name\":\"tenkb.txt\""), "{out}");
}

#[test]
fn an_index_that_cannot_save_says_it_is_unhealthy_until_it_can() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("index.db");
    // Create the database, then make it refuse one file name, as a full or broken
    // disk would refuse everything.
    index_at(root.path(), "127.0.0.1:0", &db, &[]).kill9();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON files WHEN NEW.name = 'poison.txt'
             BEGIN SELECT RAISE(ABORT, 'the disk is on fire'); END;",
        )
        .unwrap();
    let index = index_at(root.path(), "127.0.0.1:0", &db, &[]);
    let addr = index.addr_str();
    let status = || {
        let (code, out, _) = Args::status(&addr).json().run(root.path());
        (
            code,
            serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        )
    };
    let row = |name: &str| {
        let id = Sha1Digest::of(name.as_bytes()).to_string();
        format!("publish|1\n{name}|1|{id}|{id}\n")
    };
    let mut raw = Raw::connect(index.addr);
    assert!(raw.hello_as("peer", "p", 2000).starts_with("ok|30|"));
    raw.send(row("poison.txt").as_bytes());
    let reply = raw.line();
    assert!(reply.starts_with("err|internal|not saved: "), "{reply}");
    let (code, v) = status();
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["healthy"], false);
    assert!(
        v["status"]["failing"]
            .as_str()
            .unwrap()
            .contains("the disk is on fire"),
        "{v}"
    );
    // The next commit goes through: healthy again.
    raw.send(row("fine.txt").as_bytes());
    assert_eq!(raw.line(), "ok|1");
    let (code, v) = status();
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["status"]["health"], "ok");
}

#[test]
fn a_rename_made_while_the_index_was_down_reaches_it_after_restart() {
    let root = tempfile::tempdir().unwrap();
    let dirs = sample_peers(root.path());
    let db = root.path().join("index.db");
    let mut index = index_at(root.path(), "127.0.0.1:0", &db, &[]);
    let listen = index.addr_str();
    let p1 = peer(&dirs[0], &index, &["--rescan-interval", "1h"]);
    index.kill9();
    // Same number of files before and after: only a full sync can tell the index.
    fs::rename(dirs[0].join("tenkb.txt"), dirs[0].join("renamed.txt")).unwrap();
    eventually("the peer noticed the rename", DEADLINE, || {
        p1.stderr_text()
            .contains("withdrawing 1 file no longer shared")
    });
    let index = index_at(root.path(), &listen, &db, &[]);
    eventually("the index has the new name", DEADLINE, || {
        holders(index.addr, "renamed.txt") == vec!["peer1".to_owned()]
    });
    assert!(holders(index.addr, "tenkb.txt").is_empty());
}
