//! The overlay on real processes: seeds, joining, broadcast, liveness, direct messages.

use crate::util::*;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The rows of `members`, split into fields.
pub(crate) fn member_rows(addr: SocketAddr) -> Vec<Vec<String>> {
    let mut raw = Raw::connect(addr);
    let head = raw.ask("members");
    let n: usize = head
        .strip_prefix("ok|")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("members: {head}"));
    (0..n)
        .map(|_| {
            let row = raw.line();
            let f: Vec<String> = row.split('|').map(String::from).collect();
            assert_eq!(f.len(), 8, "{row}");
            f
        })
        .collect()
}

/// A member row as `members` gives it, by the member's name: (state, view).
pub(crate) type Members = BTreeMap<String, (String, String)>;

pub(crate) fn members(addr: SocketAddr) -> Members {
    member_rows(addr)
        .into_iter()
        .map(|f| (f[7].clone(), (f[3].clone(), f[5].clone())))
        .collect()
}

/// Node ids (keys) by name, as `addr` knows them.
fn ids(addr: SocketAddr) -> BTreeMap<String, String> {
    member_rows(addr)
        .into_iter()
        .map(|f| (f[7].clone(), f[0].clone()))
        .collect()
}

fn neighbours(addr: SocketAddr) -> Vec<String> {
    members(addr)
        .into_iter()
        .filter(|(_, (_, view))| view == "active")
        .map(|(id, _)| id)
        .collect()
}

pub(crate) fn seed(root: &Path, name: &str, others: &[&Proc]) -> Proc {
    let log = root.join(format!("{name}.log"));
    others
        .iter()
        .fold(
            Args::seed_server().flag("--log-file", log.to_str().unwrap()),
            |args, s| args.flag("--seed", s.addr),
        )
        .start(name, root)
}

fn seed_flags(seeds: &[&Proc]) -> Vec<String> {
    seeds
        .iter()
        .flat_map(|s| ["--seed".to_owned(), s.addr_str()])
        .collect()
}

/// Starts `n` peers named p0..p{n-1} joining through `seeds`.
pub(crate) fn peers(
    root: &Path,
    index: &Proc,
    seeds: &[&Proc],
    n: usize,
    console: bool,
) -> Vec<Proc> {
    peers_with(root, index, seeds, &[], n, console)
}

fn peers_with(
    root: &Path,
    index: &Proc,
    seeds: &[&Proc],
    more_seeds: &[&str],
    n: usize,
    console: bool,
) -> Vec<Proc> {
    let mut flags = seed_flags(seeds);
    for s in more_seeds {
        flags.extend(["--seed".to_owned(), s.to_string()]);
    }
    (0..n)
        .map(|i| {
            let dir = root.join(format!("p{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            let log = root.join(format!("p{i}.log"));
            let mut extra: Vec<&str> = flags.iter().map(String::as_str).collect();
            let log = log.to_str().unwrap().to_owned();
            extra.extend(["--log-file", &log]);
            if console {
                console_peer(&dir, index, &extra)
            } else {
                peer(&dir, index, &extra)
            }
        })
        .collect()
}

pub(crate) fn said_lines(p: &Proc, text: &str) -> usize {
    p.seen
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.ends_with(&format!(": {text}")))
        .count()
}

#[test]
fn three_seeds_and_ten_peers_join_broadcast_and_detect_deaths() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &["--db", ":memory:"]);
    let s1 = seed(root.path(), "s1", &[]);
    let s2 = seed(root.path(), "s2", &[&s1]);
    let s3 = seed(root.path(), "s3", &[&s1, &s2]);
    let seeds = [&s1, &s2, &s3];
    // A fourth seed that is down: peers that pick it skip it and take another.
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_addr = down.local_addr().unwrap().to_string();
    drop(down);
    let mut ps = peers_with(root.path(), &index, &seeds, &[&down_addr], 10, false);

    // Every peer joins and keeps at least four neighbours; every seed knows everyone.
    eventually(
        "every peer has 4 neighbours",
        Duration::from_secs(10),
        || ps.iter().all(|p| neighbours(p.addr).len() >= 4),
    );
    eventually(
        "every seed knows the 10 peers",
        Duration::from_secs(10),
        || {
            seeds.iter().all(|s| {
                members(s.addr)
                    .values()
                    .filter(|(state, _)| state == "alive")
                    .count()
                    == 10
            })
        },
    );
    let (code, out, _) = Args::status(s2.addr).run(root.path());
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("role: seed") && out.contains("peers: 10"),
        "{out}"
    );
    // Events, logs and consoles name members by id (their key), a text's origin also
    // by name when the receiver knows it.
    let id_of = ids(s1.addr);
    assert_eq!(id_of.len(), 10, "{id_of:?}");

    // A broadcast reaches every peer, each prints it once with its origin.
    let say = |text: &str, p: &Proc| {
        Args::of(&["say", text])
            .flag("--peer", p.addr)
            .run(root.path())
    };
    let (code, out, err) = say("hello | from the test", &ps[3]);
    assert_eq!(code, 0, "{out}{err}");
    let p3 = &id_of["p3"][..8];
    for p in ps.iter_mut() {
        p.wait_line(|l| l.contains(p3) && l.ends_with(": hello | from the test"));
    }
    // A second broadcast, from elsewhere, as a barrier: duplicates of the first would
    // have arrived by the time it is everywhere.
    say("second", &ps[7]);
    for p in ps.iter_mut() {
        p.wait_line(|l| l.ends_with(": second"));
    }
    for p in &ps {
        assert_eq!(said_lines(p, "hello | from the test"), 1, "{}", p.name);
    }

    // Two peers crash: every seed and every peer holds them dead, and nobody else.
    let victims: Vec<String> = vec!["p2".into(), "p8".into()];
    ps[2].kill9();
    ps[8].kill9();
    let live: Vec<&Proc> = ps.iter().filter(|p| !victims.contains(&p.name)).collect();
    let gone = |m: &Members, id: &str| {
        m.get(id)
            .is_none_or(|(state, _)| state == "dead" || state == "left")
    };
    eventually(
        "the seeds drop the dead peers",
        Duration::from_secs(20),
        || {
            seeds.iter().all(|s| {
                let m = members(s.addr);
                victims.iter().all(|v| gone(&m, v))
            })
        },
    );
    eventually(
        "every live peer holds them dead",
        Duration::from_secs(20),
        || {
            live.iter().all(|p| {
                let m = members(p.addr);
                victims
                    .iter()
                    .all(|v| gone(&m, v) && m.get(v).is_none_or(|(_, view)| view != "active"))
            })
        },
    );
    for s in seeds {
        let m = members(s.addr);
        for p in &live {
            assert_eq!(m[&p.name].0, "alive", "{} at {}", p.name, s.name);
        }
    }
    for p in &live {
        let m = members(p.addr);
        for other in &live {
            if other.name != p.name {
                assert!(
                    m.get(&other.name).is_none_or(|(state, _)| state == "alive"),
                    "{} holds {} as {:?}",
                    p.name,
                    other.name,
                    m.get(&other.name)
                );
            }
        }
        let dead_lines: Vec<String> = p
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(" is dead "))
            .cloned()
            .collect();
        for line in &dead_lines {
            assert!(
                line.starts_with(&format!("{} ", id_of["p2"]))
                    || line.starts_with(&format!("{} ", id_of["p8"])),
                "{}: {line}",
                p.name
            );
        }
    }

    // With every seed gone too, the peers still broadcast to each other.
    let mut seeds_procs = [s1, s2, s3];
    for s in seeds_procs.iter_mut() {
        s.kill9();
    }
    say("without seeds", &ps[0]);
    for p in ps.iter_mut().filter(|p| !victims.contains(&p.name)) {
        p.wait_line(|l| l.ends_with(": without seeds"));
    }

    // The event logs tell the story: every peer joined some seed (each registers with
    // a majority of them), each death is in every seed's log, messages in a peer's.
    let logs: Vec<String> = ["s1", "s2", "s3"]
        .iter()
        .map(|s| std::fs::read_to_string(root.path().join(format!("{s}.log"))).unwrap())
        .collect();
    for i in 0..10 {
        let line = format!(" join peer={} ", id_of[&format!("p{i}")]);
        assert!(logs.iter().any(|l| l.contains(&line)), "p{i}: {logs:?}");
    }
    for log in &logs {
        assert!(
            log.contains(&format!(" dead peer={} ", id_of["p2"]))
                && log.contains(&format!(" dead peer={} ", id_of["p8"])),
            "{log}"
        );
    }
    let log = std::fs::read_to_string(root.path().join("p5.log")).unwrap();
    assert!(
        log.contains(&format!(" message from={} name=", id_of["p3"]))
            && log.contains("text=hello %7C from the test"),
        "{log}"
    );
}

#[test]
fn a_direct_message_is_answered_and_peers_lists_neighbours() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &["--db", ":memory:"]);
    let s1 = seed(root.path(), "s1", &[]);
    let mut ps = peers(root.path(), &index, &[&s1], 3, true);
    eventually("p0 and p1 know each other", Duration::from_secs(10), || {
        members(ps[0].addr).contains_key("p1") && members(ps[1].addr).contains_key("p0")
    });
    ps[0].type_line("msg p1 hello there");
    let reply = ps[0].wait_line(|l| l.starts_with("reply from p1: "));
    assert!(
        reply.contains("p1 got your message") && reply.contains("hello, p0"),
        "{reply}"
    );
    ps[1].wait_line(|l| {
        l.starts_with("message from p0 (") && l.ends_with(" at 127.0.0.1): hello there")
    });
    ps[0].type_line("msg nobody hi");
    ps[0].wait_line(|l| l.contains("no peer 'nobody' known"));
    eventually("p0 has neighbours", Duration::from_secs(10), || {
        !neighbours(ps[0].addr).is_empty()
    });
    ps[0].type_line("peers");
    ps[0].wait_line(|l| l.contains(" in reserve, ") && l.contains(" alive"));
    // The origin is shown by the start of its id (and its name, when the receiver
    // holds its member record). On a loaded machine p2 may still be registering.
    eventually("the seed lists p2", Duration::from_secs(10), || {
        ids(s1.addr).contains_key("p2")
    });
    let p2 = ids(s1.addr)["p2"][..8].to_owned();
    // A broadcast goes to the sender's neighbours: p2 needs one (on a loaded machine
    // it may still be joining).
    eventually("p2 has neighbours", Duration::from_secs(10), || {
        !neighbours(ps[2].addr).is_empty()
    });
    ps[2].type_line("say from the console");
    for p in ps.iter_mut() {
        p.wait_line(|l| l.ends_with(": from the console") && l.contains(&p2));
    }
}

#[test]
fn a_peer_started_with_greet_messages_a_live_member_and_prints_its_reply() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &["--db", ":memory:"]);
    let s1 = seed(root.path(), "s1", &[]);
    let ps = peers(root.path(), &index, &[&s1], 2, false);
    let dir = root.path().join("greeter");
    std::fs::create_dir_all(&dir).unwrap();
    let log = root.path().join("greeter.log");
    let mut g = peer(
        &dir,
        &index,
        &[
            "--seed",
            &s1.addr_str(),
            "--greet",
            "hello from the greeter",
            "--log-file",
            log.to_str().unwrap(),
        ],
    );
    // "greeted p1 (abcd1234): p1 got your message at ...; hello, greeter"
    let line = g.wait_line(|l| l.starts_with("greeted "));
    let name = line["greeted ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let greeted = ps
        .iter()
        .position(|p| p.name == name)
        .unwrap_or_else(|| panic!("greeted someone else: {line}"));
    assert!(
        line.contains(&format!(": {name} got your message at "))
            && line.ends_with("hello, greeter"),
        "{line}"
    );
    eventually("the greeted peer printed it", DEADLINE, || {
        ps[greeted].seen.lock().unwrap().iter().any(|l| {
            l.starts_with("message from greeter (") && l.ends_with(": hello from the greeter")
        })
    });
    // Once: the other peer was not greeted.
    let other = 1 - greeted;
    assert!(!ps[other]
        .seen
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.starts_with("message from greeter")));
    // Both ends wrote it to their event logs.
    let sent = std::fs::read_to_string(&log).unwrap();
    assert!(
        sent.lines()
            .any(|l| l.contains(" greeted peer=") && l.contains(&format!(" name={name} "))),
        "{sent}"
    );
    let received = std::fs::read_to_string(root.path().join(format!("{name}.log"))).unwrap();
    assert!(
        received.lines().any(|l| l.contains(" direct-message from=")
            && l.contains(" name=greeter ")
            && l.ends_with(" text=hello from the greeter")),
        "{received}"
    );
}

#[test]
fn a_peer_joins_through_a_live_peer_when_every_seed_is_down() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &["--db", ":memory:"]);
    let s1 = seed(root.path(), "s1", &[]);
    let seed_addr = s1.addr_str();
    let ps = peers(root.path(), &index, &[&s1], 3, false);
    eventually("the peers have neighbours", DEADLINE, || {
        ps.iter().all(|p| neighbours(p.addr).len() >= 2)
    });
    drop(s1);
    // A new peer whose only seed is down, and that knows one live peer.
    let dir = root.path().join("late");
    std::fs::create_dir_all(&dir).unwrap();
    let late = peer(
        &dir,
        &index,
        &["--seed", &seed_addr, "--join", &ps[1].addr_str()],
    );
    eventually(
        "the new peer knows every peer, and every peer knows it",
        DEADLINE,
        || {
            let known = members(late.addr);
            ["p0", "p1", "p2"]
                .iter()
                .all(|p| known.get(*p).is_some_and(|(s, _)| s == "alive"))
                && ps.iter().all(|p| {
                    members(p.addr)
                        .get("late")
                        .is_some_and(|(s, _)| s == "alive")
                })
                && !neighbours(late.addr).is_empty()
        },
    );
    let (code, out, err) =
        Args::of(&["say", "hello from late", "--peer", &late.addr_str()]).run(root.path());
    assert_eq!(code, 0, "{out}{err}");
    eventually(
        "every peer printed the new peer's broadcast",
        DEADLINE,
        || ps.iter().all(|p| said_lines(p, "hello from late") == 1),
    );
}

#[test]
fn a_restarted_peer_does_not_print_broadcasts_from_before_it_started() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &["--db", ":memory:"]);
    let s1 = seed(root.path(), "s1", &[]);
    let mut ps = peers(root.path(), &index, &[&s1], 3, true);
    eventually("p2 has two neighbours", Duration::from_secs(10), || {
        neighbours(ps[2].addr).len() == 2
    });
    ps[0].type_line("say before the restart");
    for p in ps.iter_mut() {
        p.wait_line(|l| l.ends_with(": before the restart"));
    }
    ps[2].type_line("quit");
    assert_eq!(ps[2].wait_exit(), 0);

    // The same peer again: its neighbours catch the new link up on recent broadcasts.
    let dir = root.path().join("p2");
    let seed_addr = s1.addr_str();
    let mut again = console_peer(&dir, &index, &["--seed", &seed_addr]);
    eventually(
        "the old broadcast reached the restarted peer",
        Duration::from_secs(10),
        || {
            said_lines(&again, "before the restart") > 0
                || status_number(again.addr, "messages_before_start") >= 1
        },
    );
    ps[0].type_line("say after the restart");
    again.wait_line(|l| l.ends_with(": after the restart"));
    assert_eq!(
        said_lines(&again, "before the restart"),
        0,
        "printed again after the restart:\n{}",
        again.seen.lock().unwrap().join("\n")
    );
}

#[test]
fn a_peer_that_leaves_is_dropped_without_suspicion() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &["--db", ":memory:"]);
    let s1 = seed(root.path(), "s1", &[]);
    // A suspicion timeout far beyond the deadline: only the leave can be seen in time.
    let extra = ["--seed", &s1.addr_str(), "--suspicion-timeout", "60s"];
    let dirs: Vec<_> = (0..3)
        .map(|i| {
            let d = root.path().join(format!("q{i}"));
            std::fs::create_dir_all(&d).unwrap();
            d
        })
        .collect();
    let q0 = peer(&dirs[0], &index, &extra);
    let q1 = peer(&dirs[1], &index, &extra);
    let q2 = peer(&dirs[2], &index, &extra);
    // Every peer knows q2 before it leaves, so each has something to mark.
    eventually("q0 and q1 know q2", DEADLINE, || {
        [&q0, &q1]
            .iter()
            .all(|p| members(p.addr).get("q2").is_some_and(|(s, _)| s == "alive"))
    });
    // SIGTERM: q2 leaves on purpose.
    // SAFETY: kill(2) on a child we started.
    unsafe {
        libc::kill(q2.pid() as i32, libc::SIGTERM);
    }
    eventually("the seed and the peers see q2 leave", DEADLINE, || {
        members(s1.addr).get("q2").is_some_and(|(s, _)| s == "left")
            && [&q0, &q1]
                .iter()
                .all(|p| members(p.addr).get("q2").is_some_and(|(s, _)| s == "left"))
    });
}

#[test]
fn overlay_input_is_validated_and_the_node_keeps_serving() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &["--db", ":memory:"]);
    let s1 = seed(root.path(), "s1", &[]);
    let dir = root.path().join("v");
    std::fs::create_dir_all(&dir).unwrap();
    let p = peer(&dir, &index, &["--seed", &s1.addr_str()]);
    let mut raw = Raw::connect(p.addr);
    // Overlay messages need a session.
    assert!(raw.ask("probe|1").starts_with("err|unknown-peer|"));
    let nonce = "ab".repeat(16);
    assert!(raw
        .ask(&format!("hello|3|peer|../x|2000|x|{nonce}"))
        .starts_with("err|bad-name|"));
    assert!(raw
        .hello_as("peer", "tester", 0)
        .starts_with("err|bad-request|"));
    assert_eq!(raw.hello_as("peer", "tester", 2000), "ok|0|0");
    let z = "0".repeat(128);
    for (line, code) in [
        ("probe|x".to_owned(), "bad-request"),
        (format!("gossip|o|1|0|5|{z}|say|bad %zz"), "bad-request"),
        (
            format!("gossip|o|1|0|5|{z}|shout|a|b|c|d|e|f"),
            "bad-request",
        ),
        (
            format!("gossip|o|1|0|5|{z}|suspect|x|127.0.0.1|5|1|x|{z}"),
            "bad-request",
        ),
        ("gossip|o|1|0|5|say|no signature".to_owned(), "bad-request"),
        (format!("neighbor|maybe|1|1|n|{z}"), "bad-request"),
        ("neighbor|high|1|1|n|not-hex".to_owned(), "bad-request"),
        ("probe-req|1|t|not-an-ip|5".to_owned(), "bad-request"),
        (format!("register|0|1|1|1|n|{z}"), "unknown-verb"),
        ("say|".to_owned(), "bad-request"),
        ("msg|bad %zz".to_owned(), "bad-request"),
    ] {
        let reply = raw.ask(&line);
        assert!(
            reply.starts_with(&format!("err|{code}|")),
            "{line} -> {reply}"
        );
    }
    let long = format!("say|{}", "x".repeat(1001));
    assert!(raw.ask(&long).starts_with("err|too-large|"));
    // A shuffle row batch with the wrong shape skips the whole batch.
    raw.send(b"shuffle|1|request\na|b\n");
    assert!(raw.line().starts_with("err|bad-request|row 1"));
    // Well-formed messages are taken; the peer goes on serving everyone. A forged
    // broadcast is answered ok too (it is one-way), and dropped and counted.
    assert_eq!(raw.ask("probe|7"), "ok");
    let forged = format!(
        "gossip|{}|1|0|5|{z}|dead|{}|127.0.0.1|44101|18446744073709551615|x|{z}",
        "a".repeat(52),
        "b".repeat(52)
    );
    assert_eq!(raw.ask(&forged), "ok");
    eventually("the forged broadcast is counted", DEADLINE, || {
        status_number(p.addr, "messages_dropped_signature") == 1
    });
    // A well-formed say, refused only because this lone peer would reach nobody.
    assert!(raw
        .ask("say|still here")
        .starts_with("err|no-neighbours|not sent"));
    let (code, out, _) = Args::status(p.addr).run(root.path());
    assert_eq!(code, 0, "{out}");
    // A seed refuses what only peers serve, and registrations without a session.
    let mut raw = Raw::connect(s1.addr);
    assert!(raw
        .ask(&format!("register|0|1|1|1|n|{z}"))
        .starts_with("err|unknown-peer|"));
    assert!(raw
        .ask(&format!("gossip|o|1|0|5|{z}|say|x"))
        .starts_with("err|unknown-verb|"));
    assert!(raw.ask("members").starts_with("ok|"));
}
