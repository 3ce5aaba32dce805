use super::*;
use crate::net::testing::{status_rows, test_id, test_me, Session};

fn index() -> IndexService {
    IndexService::new(
        test_me("idx"),
        IndexConfig::default(),
        Arc::new(ServerStats::default()),
    )
}

/// A `publish` row whose content id is the SHA-1 of the name, and its whole-file
/// SHA-1 that of `sha1 <name>`.
pub(in crate::index) fn row(name: &str, size: u64) -> String {
    format!("{name}|{size}|{}|{}\n", id_of(name), sha1_of(name))
}

fn id_of(name: &str) -> Sha1Digest {
    Sha1Digest::of(name.as_bytes())
}

fn sha1_of(name: &str) -> Sha1Digest {
    Sha1Digest::of(format!("sha1 {name}").as_bytes())
}

#[test]
fn hello_ping_and_status_answer_in_the_documented_shapes() {
    let index = index();
    let mut s = Session::new(&index);
    assert_eq!(s.ask("ping"), "ok|pong\n");
    let idx = test_id("idx");
    assert!(s
        .hello_as(HelloRole::Client, "probe", 0)
        .starts_with(&format!("ok|index|{idx}|idx|127.0.0.1|")));
    assert_eq!(s.hello_as(HelloRole::Peer, "p1", 2000), "ok|30|0\n");
    assert_eq!(
        s.ask("hello|1|peer|p1|2000"),
        "err|bad-version|this index speaks protocol version 3, not '1'\n"
    );
    // An index hears from peers and clients only.
    let p1 = test_id("p1");
    let nonce = "ab".repeat(16);
    for role in ["seed", "index", "x"] {
        assert_eq!(
            s.ask(&format!("hello|3|{role}|{p1}|1500|p1|{nonce}")),
            format!("err|bad-request|role must be 'peer' or 'client', not '{role}'\n")
        );
    }
    assert!(s
        .ask(&format!("hello|3|peer|{p1}|0|p1|{nonce}"))
        .starts_with("err|bad-request|"));
    assert!(s
        .ask(&format!("hello|3|peer|{p1}|2000|../p|{nonce}"))
        .starts_with("err|bad-name|"));
    assert!(s
        .ask(&format!("hello|3|peer|p1|2000|p1|{nonce}"))
        .starts_with("err|bad-name|'p1' is not a node id"));
    // A hello whose key is not proven binds nothing.
    assert!(s
        .ask(&format!("hello|3|peer|{p1}|2000|p1|{nonce}"))
        .starts_with(&format!("ok|index|{idx}|")));
    assert!(s.ask("beat").starts_with("err|unknown-peer|"));
    assert!(s
        .ask(&format!("auth|{}", "00".repeat(64)))
        .starts_with("err|bad-request|the signature does not prove the key"));
    assert!(s.ask("auth|00").starts_with("err|unknown-peer|"));
    let rows = status_rows(&s.ask("status"));
    for (key, value) in [
        ("role", "index"),
        ("id", idx.as_str()),
        ("name", "idx"),
        ("protocol", "3"),
        ("peers", "1"),
        ("files", "0"),
        ("lease_secs", "30"),
        ("health", "ok"),
    ] {
        assert_eq!(rows[key], value, "{key}: {rows:?}");
    }
    for key in ["version", "uptime_secs", "entries", "words", "connections"] {
        assert!(rows.contains_key(key), "no {key}: {rows:?}");
    }
}

#[test]
fn publish_get_search_withdraw_and_bye_round_trip() {
    let index = index();
    let mut p = Session::new(&index);
    let mut client = Session::new(&index);
    assert!(p
        .hello_as(HelloRole::Peer, "p1", 2000)
        .starts_with("ok|30|"));
    let batch = format!(
        "publish|2\n{}{}",
        row("holiday-2024.zip", 5000),
        row("notes.txt", 12)
    );
    assert_eq!(p.ask(&batch), "ok|2\n");

    let (notes, holiday) = (id_of("notes.txt"), id_of("holiday-2024.zip"));
    let p1 = test_id("p1");
    let notes_sha1 = sha1_of("notes.txt");
    let holder = format!("ok|1\n127.0.0.1|2000|{p1}|12|{notes}|{notes_sha1}|p1\n");
    assert_eq!(client.ask("get|notes.txt"), holder);
    assert_eq!(client.ask(&format!("get|notes.txt|{notes}")), holder);
    assert_eq!(client.ask(&format!("get|notes.txt|{holiday}")), "ok|0\n");
    assert_eq!(client.ask("get|nobody-has-this.txt"), "ok|0\n");
    let holiday_row = format!(
        "ok|1|0\nholiday-2024.zip|5000|{holiday}|1|{}\n",
        sha1_of("holiday-2024.zip")
    );
    assert_eq!(client.ask("search|holiday"), holiday_row);
    assert_eq!(client.ask("search|2024 -notes|10"), holiday_row);
    assert_eq!(client.ask("search|nothing"), "ok|0|0\n");
    // By whole-file SHA-1, in either case: what the holders claim.
    let by_sha1 = format!("search|{}", sha1_of("holiday-2024.zip"));
    assert_eq!(client.ask(&by_sha1), holiday_row);
    assert_eq!(
        client.ask(
            &by_sha1
                .to_uppercase()
                .replace("SEARCH|SHA1:", "search|sha1:")
        ),
        holiday_row
    );
    assert_eq!(client.ask(&format!("search|{holiday}")), "ok|0|0\n");
    assert!(client
        .ask("search|sha1:abc")
        .starts_with("err|bad-request|search by sha1: "));
    // A file published without one has `-`, and is not found by any.
    let unhashed = format!("u.txt|1|{}|-\n", id_of("u.txt"));
    assert_eq!(p.ask(&format!("publish|1\n{unhashed}")), "ok|1\n");
    assert_eq!(
        client.ask("search|u.txt"),
        format!("ok|1|0\nu.txt|1|{}|1|-\n", id_of("u.txt"))
    );
    assert!(client
        .ask("get|u.txt")
        .ends_with(&format!("|1|{}|-|p1\n", id_of("u.txt"))));
    assert_eq!(p.ask("withdraw|1\nu.txt"), "ok|1\n");

    // Only the session's peer withdraws, and only its own names count.
    assert!(client
        .ask("withdraw|1\nnotes.txt")
        .starts_with("err|unknown-peer|"));
    assert_eq!(p.ask("withdraw|2\nnotes.txt\nnever-shared.txt"), "ok|1\n");
    assert_eq!(client.ask("get|notes.txt"), "ok|0\n");
    assert_eq!(p.ask("beat"), "ok|1\n");

    // Leaving drops the rest at once, and ends the session.
    assert_eq!(p.ask("bye"), "ok|bye\n");
    assert_eq!(client.ask("search|holiday"), "ok|0|0\n");
    assert!(p.ask("beat").starts_with("err|unknown-peer|"));
}

#[test]
fn a_sync_replaces_the_file_set_and_an_error_abandons_it() {
    let index = index();
    let mut p = Session::new(&index);
    assert!(p.hello_as(HelloRole::Peer, "p1", 2000).starts_with("ok|"));
    assert_eq!(
        p.ask(&format!("publish|1\n{}", row("old.txt", 1))),
        "ok|1\n"
    );
    assert_eq!(
        p.ask(&format!("sync|1|more\n{}", row("a.txt", 1))),
        "ok|1\n"
    );
    assert_eq!(p.ask(&format!("sync|1\n{}", row("b.txt", 1))), "ok|2\n");
    let mut client = Session::new(&index);
    assert_eq!(client.ask("get|old.txt"), "ok|0\n");
    assert!(client.ask("get|a.txt").starts_with("ok|1\n"));

    assert_eq!(
        p.ask(&format!("sync|1|more\n{}", row("c.txt", 1))),
        "ok|1\n"
    );
    assert!(p.ask("sync|0|less").starts_with("err|bad-request|"));
    // A new sync: c.txt, named only by the abandoned one, does not count.
    assert_eq!(p.ask(&format!("sync|1\n{}", row("b.txt", 1))), "ok|1\n");
    assert_eq!(client.ask("get|a.txt"), "ok|0\n");
    assert_eq!(client.ask("get|c.txt"), "ok|0\n");
}

#[test]
fn bad_requests_are_refused_with_the_documented_codes() {
    let index = index();
    let mut s = Session::new(&index);
    assert!(s.ask("beat").starts_with("err|unknown-peer|"));
    assert!(s.ask("bye").starts_with("ok|bye"));
    assert!(s
        .ask(&format!("publish|1\n{}", row("x.txt", 1)))
        .starts_with("err|unknown-peer|"));
    assert!(s.ask("get|../x").starts_with("err|bad-name|'../x'"));
    assert!(s
        .ask("get|x|md5:00")
        .starts_with("err|bad-request|content id"));
    assert!(s
        .ask("search|x|0")
        .starts_with("err|bad-request|limit must be a number from 1 to 1000"));
    assert!(s.ask("search|x|1001").starts_with("err|bad-request|limit"));
    // Numbers are digits only (PROTOCOL.md §2): no sign, no leading '+'.
    assert!(s.ask("search|x|+5").starts_with("err|bad-request|limit"));
    assert!(s.ask("search|---").starts_with("err|bad-request|"));
    // What another role serves is refused by name.
    assert_eq!(
        s.ask(&format!("pieces|x.txt|{}", id_of("x"))),
        "err|unknown-verb|not served by an index\n"
    );
    assert!(s.ask("members").starts_with("err|unknown-verb|"));

    assert!(s.hello_as(HelloRole::Peer, "p1", 2000).starts_with("ok|"));
    assert!(s
        .ask(&format!("publish|1\n{}", row("../x", 1)))
        .starts_with("err|bad-name|row 1: '../x'"));
    assert!(s
        .ask(&format!("publish|1\n{}", row("huge", MAX_FILE_SIZE + 1)))
        .starts_with("err|too-large|row 1: "));
    assert!(s
        .ask("publish|1\nx|big|sha1:00|sha1:00")
        .starts_with("err|bad-request|row 1: size 'big'"));
    assert!(s
        .ask(&format!("publish|1\nx|1|{}|sha1:00", id_of("x")))
        .starts_with("err|bad-request|row 1: sha1: "));
    assert!(s
        .ask(&format!("publish|1\nx|1|-|{}", id_of("x")))
        .starts_with("err|bad-request|row 1: content id: "));
    assert!(s
        .ask(&format!(
            "publish|1\nplus.txt|+1|{}|{}",
            id_of("p"),
            id_of("p")
        ))
        .starts_with("err|bad-request|row 1: size '+1'"));
    let plus = format!(
        "hello|3|peer|{}|+2000|p1|{}",
        test_id("p1"),
        "ab".repeat(16)
    );
    assert!(s
        .ask(&plus)
        .starts_with("err|bad-request|a peer must announce a port"));
    assert!(s
        .ask("publish|1\nx|1|sha1:00|sha1:00")
        .starts_with("err|bad-request|row 1: content id"));
    // A batch is all or nothing.
    let mixed = format!("publish|2\n{}{}", row("fine.txt", 1), row("../x", 1));
    assert!(s.ask(&mixed).starts_with("err|bad-name|row 2: "));
    assert_eq!(s.ask("get|fine.txt"), "ok|0\n");

    // Whoever proves p1's key is p1, from any host (it moved); nobody else is.
    assert_eq!(
        s.ask(&format!("publish|1\n{}", row("fine.txt", 1))),
        "ok|1\n"
    );
    let mut other = Session::from(&index, "10.0.0.2:40000");
    assert_eq!(other.hello_as(HelloRole::Peer, "p1", 2000), "ok|30|1\n");
    assert!(other
        .ask("get|fine.txt")
        .starts_with("ok|1\n10.0.0.2|2000|"));
}

#[test]
fn publish_and_search_are_timed_in_the_process_metrics() {
    // Process-wide histograms that other tests feed too: at least ours.
    let count = |h| crate::metrics::value(&format!("p2pshare_index_{h}_seconds_count"));
    let (publishes, searches) = (count("publish"), count("search"));
    let index = index();
    let mut p = Session::new(&index);
    p.hello_as(HelloRole::Peer, "p1", 2000);
    assert_eq!(
        p.ask(&batch("publish", &["a.txt", "b.txt"])),
        "ok|2
"
    );
    assert!(p.ask("publish|1\n../x|1|-|-").starts_with("err|"));
    assert!(p.ask("search|a.txt").starts_with("ok|"));
    assert!(
        count("publish") >= publishes + 2.0,
        "a refused batch is timed too"
    );
    assert!(count("search") > searches);
}

pub(in crate::index) fn index_with(config: IndexConfig) -> IndexService {
    IndexService::new(test_me("idx"), config, Arc::new(ServerStats::default()))
}

pub(in crate::index) fn batch(verb: &str, names: &[&str]) -> String {
    let rows: String = names.iter().map(|n| row(n, 1)).collect();
    format!("{verb}|{}\n{rows}", names.len())
}
