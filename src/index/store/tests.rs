use super::*;

const LEASE: Duration = Duration::from_secs(30);

fn pid(s: &str) -> PeerId {
    PeerId::parse(s).unwrap()
}

fn ep(port: u16) -> Endpoint {
    Endpoint {
        host: "127.0.0.1".parse().unwrap(),
        port,
    }
}

fn meta(seed: &str) -> FileMeta {
    FileMeta {
        size: Some(seed.len() as u64),
        id: Some(Sha1Digest::of(seed.as_bytes())),
        sha1: Some(Sha1Digest::of(format!("sha1 {seed}").as_bytes())),
    }
}

fn file(name: &str) -> (FileName, FileMeta) {
    (FileName::parse(name).unwrap(), meta(name))
}

fn names(r: &SearchResults) -> Vec<&str> {
    r.rows.iter().map(|r| &*r.name).collect()
}

fn store_with(peers: &[(&str, u16, &[&str])]) -> IndexStore {
    let mut s = IndexStore::new();
    for (id, port, files) in peers {
        s.hello(&pid(id), ep(*port), PeerKind::Modern, Millis(0), LEASE)
            .unwrap();
        let rows: Vec<_> = files.iter().map(|f| file(f)).collect();
        s.publish(&pid(id), &rows, Millis(0)).unwrap();
    }
    s
}

#[test]
fn get_returns_every_live_holder() {
    let s = store_with(&[("p1", 1, &["a.txt"]), ("p2", 2, &["a.txt", "b.txt"])]);
    let h = s.holders("a.txt", None, Millis(1));
    assert_eq!(h.len(), 2);
    assert_eq!(s.holders("b.txt", None, Millis(1))[0].peer, pid("p2"));
    assert!(s.holders("c.txt", None, Millis(1)).is_empty());
    assert_eq!(s.counts().entries, 3);
}

#[test]
fn leases_hide_then_expire_silent_peers() {
    let mut s = store_with(&[("p1", 1, &["a.txt"]), ("p2", 2, &["a.txt"])]);
    s.beat(&pid("p2"), Millis(20_000), LEASE).unwrap();
    // p1 stopped beating at 0: hidden at 30 s even before the sweep...
    assert_eq!(s.holders("a.txt", None, Millis(30_000)).len(), 1);
    // ...and gone after it, with its files.
    assert_eq!(s.expire(Millis(30_000)), vec![pid("p1")]);
    assert_eq!(s.counts().peers, 1);
    assert_eq!(s.counts().entries, 1);
    assert_eq!(
        s.beat(&pid("p1"), Millis(30_001), LEASE),
        Err(StoreError::UnknownPeer(pid("p1")))
    );
}

#[test]
fn a_live_id_cannot_be_taken_from_another_host_without_its_key() {
    let mut s = store_with(&[("p1", 1, &["a.txt"])]);
    let elsewhere = Endpoint {
        host: "10.0.0.9".parse().unwrap(),
        port: 1,
    };
    // A classic `set` proves nothing: another host may not take a live id.
    assert!(matches!(
        s.hello(&pid("p1"), elsewhere, PeerKind::Classic, Millis(1), LEASE),
        Err(StoreError::Conflict { .. })
    ));
    // The same host may say hello again, even from another port (a restart), and
    // keeps its files.
    assert_eq!(
        s.hello(&pid("p1"), ep(9), PeerKind::Modern, Millis(1), LEASE),
        Ok(1)
    );
    assert_eq!(s.holders("a.txt", None, Millis(1))[0].endpoint, ep(9));
    // Once the lease has run out, any host may take the id.
    assert!(s
        .hello(
            &pid("p1"),
            elsewhere,
            PeerKind::Modern,
            Millis(40_000),
            LEASE
        )
        .is_ok());
}

#[test]
fn a_peer_withdraws_only_its_own_files() {
    let mut s = store_with(&[("p1", 1, &["a.txt"]), ("p2", 2, &["a.txt"])]);
    let n = s
        .withdraw(&pid("p2"), &[FileName::parse("a.txt").unwrap()], Millis(1))
        .unwrap();
    assert_eq!(n, 1);
    let n = s
        .withdraw(&pid("p2"), &[FileName::parse("a.txt").unwrap()], Millis(1))
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(s.holders("a.txt", None, Millis(1))[0].peer, pid("p1"));
}

#[test]
fn search_needs_every_word_and_honours_exclusions() {
    let s = store_with(&[
        ("p1", 1, &["onekb.txt", "tenkb.txt", "Holiday 2024.MP4"]),
        ("p2", 2, &["onekb.txt", "one-mb.bin"]),
    ]);
    let q = |t: &str| s.search(&Query::parse(t).unwrap(), 100, Millis(1));
    assert_eq!(names(&q("one")), vec!["onekb.txt", "one-mb.bin"]);
    assert_eq!(q("one")[0].holders, 2);
    assert_eq!(names(&q("ONE -txt")), vec!["one-mb.bin"]);
    assert_eq!(names(&q("kb txt")), Vec::<&str>::new());
    assert_eq!(names(&q("tenkb txt")), vec!["tenkb.txt"]);
    assert_eq!(names(&q("holiday 2024")), vec!["Holiday 2024.MP4"]);
    assert_eq!(names(&q("mp4")), vec!["Holiday 2024.MP4"]);
    assert!(q("zebra").rows.is_empty());
}

impl std::ops::Index<usize> for SearchResults {
    type Output = SearchRow;
    fn index(&self, i: usize) -> &SearchRow {
        &self.rows[i]
    }
}

#[test]
fn search_results_are_capped() {
    let files: Vec<String> = (0..300).map(|i| format!("song {i}.mp3")).collect();
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    let s = store_with(&[("p1", 1, &refs)]);
    let r = s.search(&Query::parse("song").unwrap(), 100, Millis(1));
    assert_eq!(r.rows.len(), 100);
    assert!(r.more);
}

#[test]
fn a_search_that_would_read_every_name_stops_and_says_more() {
    let files: Vec<String> = (0..500).map(|i| format!("song {i}.mp3")).collect();
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    let s = store_with(&[("p1", 1, &refs)]);
    let q = Query::parse("song -mp3").unwrap();
    // Every name is a candidate and none matches: the whole index would be read.
    assert_eq!(
        s.search_within(&q, 100, Millis(1), 1000),
        SearchResults::default()
    );
    let cut = s.search_within(&q, 100, Millis(1), 200);
    assert!(cut.rows.is_empty());
    assert!(cut.more, "a search cut short must say so");
    // Matches found before the cut are returned (the 111 names with a number
    // starting with 4 are the candidates; all of them match).
    let q = Query::parse("song 4").unwrap();
    assert_eq!(s.search_within(&q, 200, Millis(1), 1000).rows.len(), 111);
    let cut = s.search_within(&q, 200, Millis(1), 50);
    assert!(cut.more);
    assert_eq!(cut.rows.len(), 50);
    assert!(cut.rows.iter().all(|r| r.name.starts_with("song 4")));
}

#[test]
fn different_contents_under_one_name_are_separate_rows() {
    let mut s = store_with(&[("p1", 1, &["a.txt"])]);
    s.hello(&pid("p2"), ep(2), PeerKind::Modern, Millis(0), LEASE)
        .unwrap();
    s.publish(
        &pid("p2"),
        &[(FileName::parse("a.txt").unwrap(), meta("other"))],
        Millis(0),
    )
    .unwrap();
    let r = s.search(&Query::parse("a").unwrap(), 10, Millis(1));
    assert_eq!(r.rows.len(), 2);
    let only = s.holders("a.txt", meta("other").id, Millis(1));
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].peer, pid("p2"));
}

#[test]
fn compaction_keeps_search_right_after_mass_withdrawal() {
    let files: Vec<String> = (0..3000).map(|i| format!("f{i}.dat")).collect();
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    let mut s = store_with(&[("p1", 1, &refs)]);
    let gone: Vec<FileName> = files[..2500]
        .iter()
        .map(|f| FileName::parse(f).unwrap())
        .collect();
    s.withdraw(&pid("p1"), &gone, Millis(1)).unwrap();
    assert_eq!(s.counts().names, 500);
    let r = s.search(&Query::parse("dat").unwrap(), 1000, Millis(1));
    assert_eq!(r.rows.len(), 500);
    // A freed slot is reused and indexed again.
    s.publish(&pid("p1"), &[file("fresh.dat")], Millis(1))
        .unwrap();
    let r = s.search(&Query::parse("fresh").unwrap(), 10, Millis(1));
    assert_eq!(names(&r), vec!["fresh.dat"]);
}

#[test]
fn sync_retains_only_the_listed_names() {
    let mut s = store_with(&[("p1", 1, &["a", "b", "c"])]);
    let keep: HashSet<String> = ["b".to_owned()].into_iter().collect();
    let (n, mut removed) = s.retain(&pid("p1"), &keep, Millis(1)).unwrap();
    removed.sort();
    assert_eq!((n, removed), (1, vec!["a".to_owned(), "c".to_owned()]));
    assert!(s.holders("a", None, Millis(1)).is_empty());
    assert_eq!(s.holders("b", None, Millis(1)).len(), 1);
}

#[test]
fn peers_and_files_are_counted_per_address_through_moves_and_removals() {
    let other = Endpoint {
        host: "10.0.0.9".parse().unwrap(),
        port: 7,
    };
    let home = ep(1).host;
    let mut s = store_with(&[("p1", 1, &["a", "b"]), ("p2", 2, &["b"])]);
    assert_eq!(s.peers_on(home), 2);
    assert_eq!(s.files_on(home), 3);
    assert!(s.admits_peer(&pid("p1"), home, 2), "a renewal is admitted");
    assert!(!s.admits_peer(&pid("p3"), home, 2), "a third id is not");
    assert!(s.admits_peer(&pid("p3"), other.host, 2));
    // p1's lease runs out and another host takes the id: it moves.
    s.hello(&pid("p1"), other, PeerKind::Modern, Millis(31_000), LEASE)
        .unwrap();
    assert_eq!((s.peers_on(home), s.peers_on(other.host)), (1, 1));
    assert_eq!((s.files_on(home), s.files_on(other.host)), (1, 2));
    let b = FileName::parse("b").unwrap();
    s.withdraw(&pid("p1"), &[b], Millis(31_000)).unwrap();
    assert_eq!(s.files_on(other.host), 1);
    // An IPv6 host counts with every address of its /64.
    let v6 = |h: &str| Endpoint {
        host: h.parse().unwrap(),
        port: 9,
    };
    s.hello(
        &pid("p6"),
        v6("2001:db8::1"),
        PeerKind::Modern,
        Millis(31_000),
        LEASE,
    )
    .unwrap();
    assert_eq!(s.peers_on("2001:db8::ffff".parse().unwrap()), 1);
    assert!(!s.admits_peer(&pid("p7"), "2001:db8::2".parse().unwrap(), 1));
    s.remove_peer(&pid("p6"));
    s.remove_peer(&pid("p1"));
    s.expire(Millis(100_000));
    assert_eq!((s.peers_on(home), s.peers_on(other.host)), (0, 0));
    assert_eq!((s.files_on(home), s.files_on(other.host)), (0, 0));
    assert!(s.per_host.is_empty());
}

#[test]
fn files_after_counts_only_names_the_peer_does_not_hold() {
    let s = store_with(&[("p1", 1, &["a", "b"]), ("p2", 2, &["c"])]);
    let batch = [file("a"), file("c"), file("d"), file("d")];
    assert_eq!(s.files_after(&pid("p1"), &batch), 4); // a held; c, d new
    assert_eq!(s.files_after(&pid("p2"), &batch), 3); // c held; a, d new
    assert_eq!(s.files_after(&pid("nobody"), &batch), 3);
}

#[test]
fn a_holding_is_56_bytes() {
    assert_eq!(std::mem::size_of::<Holding>(), 56);
}

fn with_sha1(seed: &str, sha1: Option<&str>) -> FileMeta {
    FileMeta {
        sha1: sha1.map(|t| Sha1Digest::of(t.as_bytes())),
        ..meta(seed)
    }
}

/// `peer` publishes `name` with content `seed`, claiming the SHA-1 of `sha1`.
fn claim(s: &mut IndexStore, peer: &str, name: &str, seed: &str, sha1: Option<&str>) {
    let file = (FileName::parse(name).unwrap(), with_sha1(seed, sha1));
    s.publish(&pid(peer), &[file], Millis(0)).unwrap();
}

#[test]
fn search_by_sha1_finds_what_holders_claim_and_forgets_what_they_drop() {
    let mut s = store_with(&[("p1", 1, &[]), ("p2", 2, &[]), ("p3", 3, &[])]);
    let name = |n: &str| FileName::parse(n).unwrap();
    let x = Sha1Digest::of(b"x");
    // The same bytes under two names, and a holder that claims nothing.
    claim(&mut s, "p1", "a.txt", "c", Some("x"));
    claim(&mut s, "p2", "b.txt", "c", Some("x"));
    claim(&mut s, "p3", "a.txt", "c", None);
    let r = s.search_sha1(x, 10, Millis(1));
    assert_eq!(names(&r), vec!["a.txt", "b.txt"]);
    assert_eq!(r.rows[0].holders, 1, "only the holders that claim it count");
    assert_eq!(r.rows[0].meta.sha1, Some(x));
    assert!(s
        .search_sha1(Sha1Digest::of(b"y"), 10, Millis(1))
        .rows
        .is_empty());
    // A word search shows the claim the holders agree on; p3 claims nothing.
    let q = s.search(&Query::parse("a").unwrap(), 10, Millis(1));
    assert_eq!((q.rows[0].holders, q.rows[0].meta.sha1), (2, Some(x)));
    // Claims that differ show none.
    claim(&mut s, "p3", "a.txt", "c", Some("z"));
    let q = s.search(&Query::parse("a").unwrap(), 10, Millis(1));
    assert_eq!(q.rows[0].meta.sha1, None);
    // Republished without it, withdrawn, or gone with its peer: no longer found.
    claim(&mut s, "p1", "a.txt", "c", None);
    assert_eq!(names(&s.search_sha1(x, 10, Millis(1))), vec!["b.txt"]);
    s.remove_peer(&pid("p2"));
    assert!(s.search_sha1(x, 10, Millis(1)).rows.is_empty());
    assert!(s.by_sha1.len() == 1 && s.by_sha1_more.is_empty());
    s.withdraw(&pid("p3"), &[name("a.txt")], Millis(1)).unwrap();
    assert!(s.by_sha1.is_empty());
}

#[test]
fn names_that_share_a_sha1_key_are_each_checked_in_full() {
    let mut s = store_with(&[("p1", 1, &[])]);
    // Two claims with the same first four bytes: a key shared by two names.
    let one = Sha1Digest([7; 20]);
    let mut other = [7; 20];
    other[19] = 8;
    let other = Sha1Digest(other);
    let row = |n: &str, d: Sha1Digest| {
        (
            FileName::parse(n).unwrap(),
            FileMeta {
                sha1: Some(d),
                ..meta(n)
            },
        )
    };
    s.publish(
        &pid("p1"),
        &[row("one", one), row("other", other)],
        Millis(0),
    )
    .unwrap();
    assert_eq!(names(&s.search_sha1(one, 10, Millis(1))), vec!["one"]);
    assert_eq!(names(&s.search_sha1(other, 10, Millis(1))), vec!["other"]);
    s.withdraw(&pid("p1"), &[FileName::parse("one").unwrap()], Millis(1))
        .unwrap();
    assert_eq!(names(&s.search_sha1(other, 10, Millis(1))), vec!["other"]);
    assert!(s.search_sha1(one, 10, Millis(1)).rows.is_empty());
}

#[test]
fn a_search_row_shows_the_sha1_its_holders_agree_on() {
    let mut s = store_with(&[("p1", 1, &[]), ("p2", 2, &[]), ("p3", 3, &[])]);
    let x = Sha1Digest::of(b"x");
    claim(&mut s, "p1", "a.txt", "c", Some("x"));
    claim(&mut s, "p3", "a.txt", "c", None);
    // A holder that claims nothing does not disagree.
    let q = s.search(&Query::parse("a").unwrap(), 10, Millis(1));
    assert_eq!((q.rows[0].holders, q.rows[0].meta.sha1), (2, Some(x)));
    // Claims that differ show none.
    claim(&mut s, "p2", "a.txt", "c", Some("z"));
    let q = s.search(&Query::parse("a").unwrap(), 10, Millis(1));
    assert_eq!((q.rows[0].holders, q.rows[0].meta.sha1), (3, None));
}
