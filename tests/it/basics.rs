//! The basics end to end: one index and a few peers sharing, searching and
//! downloading (holders killed or corrupt mid-download), leases, the classic dialect,
//! malformed and over-long input, connection and memory caps, health and signals.

use crate::util::*;
use p2pshare::config::NodeAddr;
use p2pshare::net::Timeouts;
use p2pshare::peer::download::{download_from, DownloadOutcome, DownloadRequest, Progress};
use p2pshare::peer::pool::{Holder, IndexPool};
use p2pshare::protocol::hash::Sha1Digest;
use p2pshare::protocol::name::FileName;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn pool(index: &Proc) -> IndexPool {
    IndexPool::new(
        vec![NodeAddr::parse(&index.addr_str()).unwrap()],
        Timeouts::default(),
    )
}

/// Holders of `name` from the real index, ordered as `order` lists their peer ids.
fn holders_in_order(index: &Proc, name: &str, order: &[&str]) -> Vec<Holder> {
    let mut hs = pool(index)
        .holders(&FileName::parse(name).unwrap(), None)
        .unwrap();
    hs.sort_by_key(|h| {
        order
            .iter()
            .position(|o| *o == h.name)
            .unwrap_or(usize::MAX)
    });
    assert_eq!(hs.len(), order.len(), "holders: {hs:?}");
    hs
}

fn request<'a>(name: &str, dest: &'a Path, state: &'a Path) -> DownloadRequest<'a> {
    DownloadRequest {
        name: FileName::parse(name).unwrap(),
        id: None,
        dest_dir: dest,
        state_dir: state,
        existing: None,
        self_id: "test",
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            io: Duration::from_secs(5),
        },
        max_sources: 8,
        download_limit: None,
        allow_unverified: false,
        max_unverified_size: 1 << 30,
        verify_sha1: false,
        direct_io: true,
    }
}

/// No more holders when the index is asked again.
fn none() -> Vec<Holder> {
    Vec::new()
}

/// Records what a download tells the user.
#[derive(Default)]
struct Notes(Mutex<Vec<String>>);

impl Progress for Notes {
    fn note(&self, text: &str) {
        self.0.lock().unwrap().push(text.to_owned());
    }
}

impl Notes {
    fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

#[test]
fn full_flow_one_index_three_peers_search_download_and_share_onward() {
    let root = tempfile::tempdir().unwrap();
    let dirs = sample_peers(root.path());
    let index = index(root.path(), &[]);
    let _p1 = peer(&dirs[0], &index, &[]);
    let mut p2 = peer(&dirs[1], &index, &[]);
    let mut p3 = console_peer(&dirs[2], &index, &[]);

    p3.type_line("search onekb");
    let hit = p3.wait_line(|l| l.contains("1. onekb.txt"));
    assert!(hit.contains("2 holders"), "{hit}");
    p3.type_line("get 1");
    p3.wait_line(|l| l.contains("downloaded onekb.txt"));
    assert_eq!(
        fs::read(dirs[2].join("onekb.txt")).unwrap(),
        fs::read(dirs[0].join("onekb.txt")).unwrap()
    );

    p3.type_line("get hundredkb.txt");
    let done = p3.wait_line(|l| l.contains("downloaded hundredkb.txt") || l.contains("failed"));
    assert!(done.contains("verified"), "{done}");
    let original = fs::read(dirs[1].join("hundredkb.txt")).unwrap();
    assert_eq!(fs::read(dirs[2].join("hundredkb.txt")).unwrap(), original);
    p3.type_line("get hundredkb.txt");
    p3.wait_line(|l| l.contains("already have"));

    // The downloader became a holder: with the original holder gone, a one-shot get
    // still finds the file, from peer3.
    eventually("peer3 listed as a holder", DEADLINE, || {
        holders(index.addr, "hundredkb.txt").contains(&"peer3".to_owned())
    });
    p2.kill9();
    let fresh = root.path().join("fresh");
    let (code, out, err) = Args::get("hundredkb.txt")
        .index(index.addr)
        .dir(&fresh)
        .json()
        .run(root.path());
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "downloaded");
    assert_eq!(v["sources"][0], "peer3");
    assert_eq!(fs::read(fresh.join("hundredkb.txt")).unwrap(), original);
    // Nothing partial is left behind, and the state dir is never shared.
    assert_eq!(
        fs::read_dir(fresh.join(".p2pshare/partial"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );

    p3.type_line("ls");
    p3.wait_line(|l| l.starts_with("hundredkb.txt"));
    p3.type_line("status");
    p3.wait_line(|l| l.contains("health: ok"));
    p3.type_line("help");
    p3.wait_line(|l| l.contains("search WORDS"));
    // The wire verbs come from the command table, the one that drives dispatch.
    p3.type_line("help wire");
    p3.wait_line(|l| l.contains("fetch|<name>|<content-id>|<offset>|<length>"));
    p3.type_line("frobnicate");
    p3.wait_line(|l| l.contains("unknown command 'frobnicate'"));
    p3.type_line("quit");
    // Leaving says bye: the index drops peer3 at once, without waiting for its lease.
    eventually("peer3 gone after quit", Duration::from_secs(5), || {
        !holders(index.addr, "onekb.txt").contains(&"peer3".to_owned())
    });
}

#[test]
fn search_matches_every_word_excludes_and_answers_json() {
    let root = tempfile::tempdir().unwrap();
    let dirs = sample_peers(root.path());
    let index = index(root.path(), &[]);
    let _p1 = peer(&dirs[0], &index, &[]);
    let _p2 = peer(&dirs[1], &index, &[]);
    let search = |words: &[&str]| Args::of(&[&["search"], words].concat()).index(index.addr);
    let (code, out, _) = search(&["TXT -onekb -hundredkb"]).json().run(root.path());
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut names: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["poem.txt", "readme-peer1.txt", "tenkb.txt"]);
    let (code, out, _) = search(&["readme", "peer1"]).run(root.path());
    assert_eq!(code, 0);
    assert!(out.contains("1. readme-peer1.txt"), "{out}");
    // A '|' typed in a query separates words; it cannot break the request line.
    let (code, out, err) = search(&["readme|peer1"]).run(root.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1. readme-peer1.txt"), "{out}");
    let (code, out, _) = search(&["nothing-like-this"]).run(root.path());
    assert_eq!(code, 0);
    assert!(out.contains("no file matches"), "{out}");
    // By the whole-file SHA-1 sha1sum prints: the peers hashed their folders, so
    // they publish it, and the row carries the content id to download.
    let poem = fs::read(
        dirs.iter()
            .map(|d| d.join("poem.txt"))
            .find(|p| p.exists())
            .unwrap(),
    )
    .unwrap();
    let sha1 = Sha1Digest::of(&poem).to_string();
    let (code, out, err) = search(&[&sha1]).json().run(root.path());
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(rows[0]["name"], "poem.txt");
    assert_eq!(rows[0]["sha1"], sha1);
    assert_eq!(rows[0]["id"], content_id(&poem).to_string());
}

#[test]
fn holder_killed_mid_download_finishes_from_another() {
    let root = tempfile::tempdir().unwrap();
    let data = noise(24 * 1024 * 1024 + 123, 7);
    for d in ["a", "b"] {
        fs::create_dir_all(root.path().join(d)).unwrap();
        fs::write(root.path().join(d).join("big.bin"), &data).unwrap();
    }
    let index = index(root.path(), &[]);
    let a = peer(&root.path().join("a"), &index, &[]);
    let b = peer(&root.path().join("b"), &index, &[]);
    let b_addr = b.addr_str();

    /// Kills holder a as soon as the first bytes of the file arrive from it.
    struct KillFirstSource {
        victim: Mutex<Option<Proc>>,
        notes: Notes,
    }
    impl Progress for KillFirstSource {
        fn advance(&self, _bytes: u64) {
            if let Some(mut p) = self.victim.lock().unwrap().take() {
                p.kill9();
            }
        }
        fn note(&self, text: &str) {
            self.notes.note(text);
        }
    }
    let hs = holders_in_order(&index, "big.bin", &["a", "b"]);
    let progress = KillFirstSource {
        victim: Mutex::new(Some(a)),
        notes: Notes::default(),
    };
    let dest = root.path().join("dest");
    fs::create_dir_all(&dest).unwrap();
    let state = root.path().join("state");
    let outcome = download_from(
        &hs,
        &request("big.bin", &dest, &state),
        &none,
        &progress,
        &AtomicBool::new(false),
        Instant::now(),
    )
    .unwrap_or_else(|e| panic!("download failed: {e}; notes: {}", progress.notes.text()));
    let DownloadOutcome::Downloaded(done) = outcome else {
        panic!("expected a download")
    };
    assert!(
        progress.victim.lock().unwrap().is_none(),
        "holder a was never used"
    );
    assert_eq!(done.sources, vec!["b".to_owned()]);
    assert!(
        progress.notes.text().contains("a (127.0.0.1"),
        "notes: {}",
        progress.notes.text()
    );
    assert_eq!(fs::read(dest.join("big.bin")).unwrap(), data);
    assert!(status_number(&b_addr, "bytes_uploaded") > 0);
}

/// Regression: a file rewritten in place with its modification time put back kept
/// its old content id for as long as its peer ran (size, mtime and inode unchanged).
/// Its change time moves whatever the writer does: the peer hashes it again, and a
/// download of the original content takes nothing from it.
#[test]
fn a_file_rewritten_in_place_with_its_mtime_put_back_is_hashed_again() {
    let root = tempfile::tempdir().unwrap();
    let data = noise(8 * 1024 * 1024, 11);
    for d in ["corrupt", "good"] {
        fs::create_dir_all(root.path().join(d)).unwrap();
        fs::write(root.path().join(d).join("data.bin"), &data).unwrap();
    }
    let index = index(root.path(), &[]);
    let _c = peer(
        &root.path().join("corrupt"),
        &index,
        &["--rescan-interval", "1s"],
    );
    let _g = peer(&root.path().join("good"), &index, &[]);

    // Flip one byte in piece 5 behind the serving peer's back, keeping size, inode
    // and modification time.
    let path = root.path().join("corrupt").join("data.bin");
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    let mtime = f.metadata().unwrap().modified().unwrap();
    let at = 5 * 1024 * 1024 + 17;
    f.write_all_at(&[data[at] ^ 0xff], at as u64).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    let mut flipped = data.clone();
    flipped[at] ^= 0xff;

    let original = content_id(&data);
    let rewritten = content_id(&flipped);
    eventually(
        "the rewritten file published under its new content id",
        DEADLINE,
        || {
            pool(&index)
                .holders(&FileName::parse("data.bin").unwrap(), None)
                .unwrap()
                .iter()
                .any(|h| h.name == "corrupt" && h.id == Some(rewritten))
        },
    );

    // The original content comes from the good holder alone, whole and verified.
    let dest = root.path().join("dest");
    fs::create_dir_all(&dest).unwrap();
    let state = root.path().join("state");
    let hs = pool(&index)
        .holders(&FileName::parse("data.bin").unwrap(), Some(original))
        .unwrap();
    assert_eq!(
        hs.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(),
        ["good"]
    );
    let mut req = request("data.bin", &dest, &state);
    req.id = Some(original);
    let notes = Notes::default();
    let outcome = download_from(
        &hs,
        &req,
        &none,
        &notes,
        &AtomicBool::new(false),
        Instant::now(),
    )
    .unwrap();
    let DownloadOutcome::Downloaded(done) = outcome else {
        panic!("expected a download")
    };
    assert_eq!(done.sources, vec!["good".to_owned()]);
    assert_eq!(fs::read(dest.join("data.bin")).unwrap(), data);
    assert_eq!(done.hashes.id, original);
}

#[test]
fn a_changed_file_is_refused_by_its_own_peer() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("p")).unwrap();
    fs::write(root.path().join("p").join("x.txt"), b"version one").unwrap();
    let index = index(root.path(), &[]);
    let p = peer(&root.path().join("p"), &index, &[]);
    let id = content_id(b"version one");
    fs::write(root.path().join("p").join("x.txt"), b"version two").unwrap();
    let mut raw = Raw::connect(p.addr);
    let reply = raw.ask(&format!("fetch|x.txt|{id}|0|11"));
    assert!(
        reply.starts_with("err|unknown-id|'x.txt' changed on disk"),
        "{reply}"
    );
}

#[test]
fn killed_peer_leaves_the_index_after_its_lease() {
    let root = tempfile::tempdir().unwrap();
    let dirs = sample_peers(root.path());
    let index = index(root.path(), &["--lease", "1s"]);
    let mut p1 = peer(&dirs[0], &index, &[]);
    let _p2 = peer(&dirs[1], &index, &[]);
    let mut both = holders(index.addr, "onekb.txt");
    both.sort();
    assert_eq!(both, vec!["peer1", "peer2"]);
    p1.kill9();
    eventually(
        "peer1 dropped after its lease",
        Duration::from_secs(5),
        || holders(index.addr, "onekb.txt") == vec!["peer2".to_owned()],
    );
    assert!(holders(index.addr, "tenkb.txt").is_empty());
    // peer2 keeps beating, so it stays well past several lease periods.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(holders(index.addr, "onekb.txt"), vec!["peer2".to_owned()]);
}

#[test]
fn classic_index_exchanges_byte_for_byte() {
    let root = tempfile::tempdir().unwrap();
    let dirs = sample_peers(root.path());
    let index = index(root.path(), &[]);
    let p1 = peer(&dirs[0], &index, &[]);
    assert_eq!(
        classic(index.addr, "get|onekb.txt"),
        format!("127.0.0.1|peer1|{}", p1.addr.port()).into_bytes()
    );
    assert_eq!(classic(index.addr, "get|nobody-has-this.txt"), b"notfound");
    assert_eq!(
        classic(index.addr, "set|legacy.txt|somewhere.example|oldpeer|2000"),
        b"Successfully Updated"
    );
    // The entry is listed like any other, with the host taken from the connection.
    assert_eq!(
        classic(index.addr, "get|legacy.txt"),
        b"127.0.0.1|oldpeer|2000"
    );
    let mut raw = Raw::connect(index.addr);
    assert_eq!(raw.ask("get|legacy.txt"), "ok|1");
    assert_eq!(raw.line(), "127.0.0.1|2000|oldpeer|-|-|-|oldpeer");
    assert_eq!(raw.ask("search|legacy"), "ok|1|0");
    assert_eq!(raw.line(), "legacy.txt|-|-|1|-");
    assert!(String::from_utf8(classic(index.addr, "set|x"))
        .unwrap()
        .starts_with("Error: "));
    assert!(String::from_utf8(classic(index.addr, "set|../x|h|p|1"))
        .unwrap()
        .starts_with("Error: bad name"));
}

#[test]
fn a_classic_set_cannot_take_over_a_live_modern_peer() {
    let root = tempfile::tempdir().unwrap();
    let dirs = sample_peers(root.path());
    let index = index(root.path(), &[]);
    let p1 = peer(&dirs[0], &index, &[]);
    // A modern peer's id is its key: the classic client names it to take it over.
    let id = status_json(p1.addr)["status"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply =
        String::from_utf8(classic(index.addr, &format!("set|bait.txt|h|{id}|9999"))).unwrap();
    assert!(
        reply.starts_with(&format!("Error: peer id '{id}' belongs to a live peer")),
        "{reply}"
    );
    // peer1's files still point at peer1, and nothing was added in its name.
    let mut raw = Raw::connect(index.addr);
    assert_eq!(raw.ask("get|tenkb.txt"), "ok|1");
    let row = raw.line();
    assert!(
        row.starts_with(&format!("127.0.0.1|{}|{id}|", p1.addr.port())) && row.ends_with("|peer1"),
        "{row}"
    );
    assert_eq!(raw.ask("get|bait.txt"), "ok|0");
    // A classic peer's own id is still its to renew.
    assert_eq!(
        classic(index.addr, "set|a.txt|h|oldie|2000"),
        b"Successfully Updated"
    );
    assert_eq!(
        classic(index.addr, "set|b.txt|h|oldie|2000"),
        b"Successfully Updated"
    );
}

#[test]
fn classic_peer_download_streams_the_file_and_never_leaves_the_folder() {
    let root = tempfile::tempdir().unwrap();
    let dirs = sample_peers(root.path());
    fs::write(root.path().join("secret.txt"), b"outside").unwrap();
    fs::write(dirs[0].join(".hidden"), b"dotfile").unwrap();
    std::os::unix::fs::symlink(root.path().join("secret.txt"), dirs[0].join("escape.txt")).unwrap();
    let index = index(root.path(), &[]);
    let p1 = peer(&dirs[0], &index, &[]);
    let ten = fs::read(dirs[0].join("tenkb.txt")).unwrap();
    assert_eq!(classic(p1.addr, "./peer1/tenkb.txt"), ten);
    assert_eq!(classic(p1.addr, "./anything/../tenkb.txt"), ten);
    for bad in [
        "./peer1/../secret.txt",
        "./peer1/../../etc/passwd",
        "./peer1/.hidden",
        "./peer1/escape.txt",
        "./peer1/..",
        "./peer1/",
    ] {
        assert!(classic(p1.addr, bad).is_empty(), "{bad} was served");
    }
    // The peer goes on serving modern clients.
    assert_eq!(Raw::connect(p1.addr).ask("ping"), "ok|pong");
}

/// A peer that answers the classic download of `dir`'s files, known to the index only
/// through a classic `set` of `name` (its own links point at an index that is not
/// running).
fn classic_holder(root: &Path, index: &Proc, dir: &str, name: &str) -> Proc {
    let mut old = Args::peer_sharing(&root.join(dir))
        .index("127.0.0.1:9")
        .no_console()
        .start(dir, root);
    old.wait_line(|l| l.contains("sharing 1 file "));
    let set = format!("set|{name}|localhost|{dir}|{}", old.addr.port());
    assert_eq!(classic(index.addr, &set), b"Successfully Updated");
    old
}

#[test]
fn a_file_only_classic_holders_have_is_quarantined_unless_allowed() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("old")).unwrap();
    let data = noise(300_000, 3);
    fs::write(root.path().join("old").join("legacy.bin"), &data).unwrap();
    let index = index(root.path(), &[]);
    let _old = classic_holder(root.path(), &index, "old", "legacy.bin");
    let dest = root.path().join("dest");
    let get = Args::get("legacy.bin").index(index.addr).dir(&dest);

    let (code, out, err) = get.run(root.path());
    assert_eq!(code, 1, "{out}{err}");
    let jail = dest.join(".p2pshare").join("quarantine").join("legacy.bin");
    assert!(
        err.contains("'legacy.bin' came only from classic holder old, which gives no content id")
            && err.contains("NOT placed in the folder")
            && err.contains(&jail.display().to_string())
            && err.contains("run the same command with --allow-unverified"),
        "{err}"
    );
    assert!(!dest.join("legacy.bin").exists());
    assert_eq!(fs::read(&jail).unwrap(), data);

    let (code, out, _) = get.clone().json().run(root.path());
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["quarantined"]["path"], jail.display().to_string());
    assert_eq!(v["quarantined"]["id"], content_id(&data).to_string());
    assert_eq!(v["quarantined"]["sha1"], Sha1Digest::of(&data).to_string());

    // Accepted explicitly: placed, and said to be unverified.
    let (code, out, err) = get.clone().args(&["--allow-unverified"]).run(root.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("NOT verified in advance"), "{out}");
    assert_eq!(fs::read(dest.join("legacy.bin")).unwrap(), data);
}

/// A classic holder that answers any request with bytes that never end.
fn endless_classic_holder() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let counter = counter.clone();
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut request = [0u8; 512];
                let _ = stream.read(&mut request);
                let junk = vec![0x5a; 64 * 1024];
                while stream.write_all(&junk).is_ok() {
                    counter.fetch_add(junk.len() as u64, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    (addr, sent)
}

#[test]
fn a_classic_stream_without_end_is_cut_at_the_unverified_cap_and_discarded() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &[]);
    let (addr, sent) = endless_classic_holder();
    let set = format!("set|junk.bin|localhost|junk|{}", addr.port());
    assert_eq!(classic(index.addr, &set), b"Successfully Updated");
    let dest = root.path().join("dest");
    let (code, out, err) = Args::get("junk.bin")
        .index(index.addr)
        .dir(&dest)
        .flag("--max-unverified-size", "1M")
        .args(&["--allow-unverified"])
        .run(root.path());
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("sent more than 1.0 MiB (--max-unverified-size")
            && err.contains("the bytes were discarded"),
        "{err}"
    );
    assert!(sent.load(std::sync::atomic::Ordering::SeqCst) < 64 << 20);
    assert!(!dest.join("junk.bin").exists());
    assert!(!dest.join(".p2pshare").join("quarantine").exists());
    let partial = dest.join(".p2pshare").join("partial");
    let left: Vec<_> = fs::read_dir(&partial)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_console_download_nobody_can_verify_is_not_shared_until_allowed() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("old")).unwrap();
    let data = noise(50_000, 4);
    fs::write(root.path().join("old").join("legacy.bin"), &data).unwrap();
    let index = index(root.path(), &[]);
    let _old = classic_holder(root.path(), &index, "old", "legacy.bin");
    let me = root.path().join("me");
    fs::create_dir_all(&me).unwrap();
    let mut p = console_peer(&me, &index, &[]);

    p.type_line("get legacy.bin");
    p.wait_line(|l| l.starts_with("get failed: 'legacy.bin' came only from classic holder old"));
    p.wait_line(|l| {
        l.contains("it is not shared") && l.contains("'get --allow-unverified legacy.bin'")
    });
    assert!(!me.join("legacy.bin").exists());
    let jail = me.join(".p2pshare").join("quarantine").join("legacy.bin");
    assert_eq!(fs::read(jail).unwrap(), data);
    p.type_line("ls");
    p.wait_line(|l| l == "sharing no files yet");
    assert_eq!(holders(index.addr, "legacy.bin"), vec!["old".to_owned()]);

    p.type_line("get --allow-unverified legacy.bin");
    p.wait_line(|l| {
        l.starts_with("downloaded legacy.bin") && l.contains("NOT verified in advance")
    });
    assert_eq!(fs::read(me.join("legacy.bin")).unwrap(), data);
}

#[test]
fn a_classic_holder_is_verified_against_the_id_a_modern_holder_gives() {
    let root = tempfile::tempdir().unwrap();
    let data = noise(120_000, 5);
    for d in ["old", "new"] {
        fs::create_dir_all(root.path().join(d)).unwrap();
        fs::write(root.path().join(d).join("both.bin"), &data).unwrap();
    }
    let index = index(root.path(), &[]);
    let _old = classic_holder(root.path(), &index, "old", "both.bin");
    let mut new = peer(&root.path().join("new"), &index, &[]);
    let hs = holders_in_order(&index, "both.bin", &["new", "old"]);
    // The modern holder is gone before the download starts: the bytes come from the
    // classic one, checked against the id the modern one gave.
    new.kill9();
    let dest = root.path().join("dest");
    fs::create_dir_all(&dest).unwrap();
    let state = root.path().join("state");
    let req = request("both.bin", &dest, &state);
    let outcome = download_from(
        &hs,
        &req,
        &none,
        &Notes::default(),
        &AtomicBool::new(false),
        Instant::now(),
    )
    .unwrap();
    let DownloadOutcome::Downloaded(done) = outcome else {
        panic!("expected a download")
    };
    assert!(done.verified_in_advance);
    assert_eq!(done.sources, vec!["old".to_owned()]);
    assert_eq!(fs::read(dest.join("both.bin")).unwrap(), data);
}

#[test]
fn malformed_input_gets_clear_errors_and_the_index_keeps_serving() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &[]);
    let mut raw = Raw::connect(index.addr);
    assert_eq!(
        raw.ask("frobnicate|x"),
        "err|unknown-verb|unknown verb 'frobnicate'"
    );
    assert_eq!(
        raw.ask("get"),
        "err|bad-request|wrong number of fields; usage: get|<name>[|<content-id>]"
    );
    assert!(raw.ask("get|../../etc/passwd").starts_with("err|bad-name|"));
    assert!(raw.ask("get|a/b").starts_with("err|bad-name|"));
    assert_eq!(
        raw.ask("fetch|a|b|0|1"),
        "err|unknown-verb|'fetch' is not served by the index role"
    );
    raw.send(b"get|\xff\xfe\n");
    assert_eq!(raw.line(), "err|bad-request|line is not valid UTF-8");
    assert!(raw
        .ask("search|--- ...")
        .starts_with("err|bad-request|a search needs"));
    assert!(raw
        .ask("search|x|0")
        .starts_with("err|bad-request|limit must be"));
    assert!(raw.ask("beat").starts_with("err|unknown-peer|"));
    raw.send(b"publish|1\nx|1|sha1:00|sha1:00\n");
    assert!(raw.line().starts_with("err|unknown-peer|"));
    assert!(raw
        .hello_as("peer", "p", 0)
        .starts_with("err|bad-request|a peer must announce a port"));
    assert!(raw.ask("hello|9|peer|p|1").starts_with("err|bad-version|"));
    assert!(raw.hello_as("peer", "p", 1).starts_with("ok|30|"));
    raw.send(b"publish|1\n../x|1|sha1:0000000000000000000000000000000000000000|sha1:0000000000000000000000000000000000000000\n");
    assert!(raw.line().starts_with("err|bad-name|row 1: '../x'"));
    raw.send(b"publish|1\nhuge|1099511627777|sha1:0000000000000000000000000000000000000000|sha1:0000000000000000000000000000000000000000\n");
    assert!(raw
        .line()
        .starts_with("err|too-large|row 1: 1099511627777 bytes"));
    raw.send(b"publish|1\nx|big|sha1:00|sha1:00\n");
    assert!(raw.line().starts_with("err|bad-request|row 1: size"));
    raw.send(b"sync|0|less\n");
    assert!(raw
        .line()
        .starts_with("err|bad-request|the field after a sync's row count must be 'more'"));
    raw.send(b"withdraw|2\nonly-one-row\n");
    raw.send(b"a|b\n");
    assert!(raw
        .line()
        .starts_with("err|bad-request|row 2 has the wrong number of fields"));
    assert_eq!(raw.ask("ping"), "ok|pong");
    raw.send(b"publish|99999999\n");
    assert!(raw.line().starts_with("err|too-large|"));
    assert!(
        raw.read_to_end().is_empty(),
        "connection should close after a fatal error"
    );

    // An over-long line is refused before it is buffered, and the connection closed.
    let mut long = Raw::connect(index.addr);
    long.send(&vec![b'a'; 70_000]);
    assert_eq!(long.line(), "err|too-large|line longer than 65536 bytes");
    assert!(long.read_to_end().is_empty());

    // The next client is served as if nothing happened.
    assert_eq!(Raw::connect(index.addr).ask("ping"), "ok|pong");
    let (code, _, _) = Args::status(index.addr).run(root.path());
    assert_eq!(code, 0);
}

#[test]
fn a_sync_in_batches_replaces_the_peers_files_and_an_error_starts_it_over() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &[]);
    let row = |name: &str| {
        let id = Sha1Digest::of(name.as_bytes()).to_string();
        format!("{name}|1|{id}|{id}\n")
    };
    let mut raw = Raw::connect(index.addr);
    assert!(raw.hello_as("peer", "p", 2000).starts_with("ok|30|"));
    raw.send(format!("publish|2\n{}{}", row("old.txt"), row("kept.txt")).as_bytes());
    assert!(raw.line().starts_with("ok|"));
    // A complete sync in two batches: what no batch named is dropped.
    raw.send(format!("sync|1|more\n{}", row("kept.txt")).as_bytes());
    assert!(raw.line().starts_with("ok|"));
    raw.send(format!("sync|1\n{}", row("new.txt")).as_bytes());
    assert_eq!(raw.line(), "ok|2");
    assert!(holders(index.addr, "old.txt").is_empty());
    assert_eq!(holders(index.addr, "kept.txt"), ["p"]);
    assert_eq!(holders(index.addr, "new.txt"), ["p"]);
    // A batch refused midway abandons the sync: the next one starts a new sync, and
    // the names of the abandoned one do not count.
    raw.send(format!("sync|1|more\n{}", row("kept.txt")).as_bytes());
    assert!(raw.line().starts_with("ok|"));
    raw.send(b"sync|0|less\n");
    assert!(raw.line().starts_with("err|bad-request|"));
    raw.send(format!("sync|1\n{}", row("new.txt")).as_bytes());
    assert_eq!(raw.line(), "ok|1");
    assert!(holders(index.addr, "kept.txt").is_empty());
    assert_eq!(holders(index.addr, "new.txt"), ["p"]);
}

#[test]
fn fetch_checks_names_ranges_and_ids_on_one_connection() {
    let root = tempfile::tempdir().unwrap();
    let dirs = sample_peers(root.path());
    let index = index(root.path(), &[]);
    let p1 = peer(&dirs[0], &index, &[]);
    let mut q = Raw::connect(index.addr);
    assert_eq!(q.ask("get|tenkb.txt"), "ok|1");
    let row = q.line();
    let fields: Vec<&str> = row.split('|').collect();
    let (id, sha1) = (fields[4].to_owned(), fields[5].to_owned());
    let file = fs::read(dirs[0].join("tenkb.txt")).unwrap();
    assert_eq!(file.len(), 10240);
    // The peer hashed its own folder: it publishes the whole-file SHA-1 beside the id.
    assert_eq!(sha1, Sha1Digest::of(&file).to_string());

    let mut raw = Raw::connect(p1.addr);
    assert!(raw.hello_as("client", "t", 0).starts_with("ok|peer|"));
    assert_eq!(
        raw.ask(&format!("fetch|tenkb.txt|{id}|0|4096")),
        "data|4096"
    );
    assert_eq!(raw.read_exact(4096), file[..4096]);
    assert_eq!(
        raw.ask(&format!("fetch|tenkb.txt|{id}|8192|2048")),
        "data|2048"
    );
    assert_eq!(raw.read_exact(2048), file[8192..]);
    assert!(raw
        .ask(&format!("fetch|tenkb.txt|{id}|8192|4096"))
        .starts_with("err|bad-range|range 8192+4096 is past the end"));
    assert!(raw
        .ask(&format!("fetch|tenkb.txt|{id}|100|4096"))
        .starts_with("err|bad-range|offset 100"));
    assert!(raw
        .ask(&format!("fetch|tenkb.txt|{id}|0|100"))
        .starts_with("err|bad-range|length 100"));
    assert!(raw
        .ask(&format!("fetch|tenkb.txt|{id}|0|0"))
        .starts_with("err|bad-range|"));
    assert!(raw
        .ask(&format!("fetch|tenkb.txt|{id}|0|999999999"))
        .starts_with("err|too-large|"));
    assert!(raw
        .ask(&format!("fetch|tenkb.txt|{id}|x|4096"))
        .starts_with("err|bad-request|offset 'x'"));
    let other = Sha1Digest::of(b"other");
    assert!(raw
        .ask(&format!("fetch|tenkb.txt|{other}|0|4096"))
        .starts_with("err|unknown-id|"));
    assert!(raw
        .ask(&format!("fetch|nope.txt|{id}|0|4096"))
        .starts_with("err|not-found|"));
    assert!(raw
        .ask(&format!("fetch|../peer2/onekb.txt|{id}|0|4096"))
        .starts_with("err|bad-name|"));
    assert!(raw
        .ask(&format!("fetch|.p2pshare|{id}|0|4096"))
        .starts_with("err|bad-name|"));
    assert!(raw
        .ask("fetch|tenkb.txt|md5:abc|0|4096")
        .starts_with("err|bad-request|content id"));
    assert!(raw.ask("search|x").starts_with("err|unknown-verb|"));
    assert_eq!(raw.ask(&format!("pieces|tenkb.txt|{id}")), "data|20");
    let list = raw.read_exact(20);
    // The content id is the digest of the piece list.
    assert_eq!(Sha1Digest::of(&list).to_string(), id);
    assert_eq!(raw.ask("ping"), "ok|pong");
}

#[test]
fn connections_beyond_the_cap_are_told_busy() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &["--max-connections", "2"]);
    let mut c1 = Raw::connect(index.addr);
    let mut c2 = Raw::connect(index.addr);
    assert_eq!(c1.ask("ping"), "ok|pong");
    assert_eq!(c2.ask("ping"), "ok|pong");
    let mut c3 = Raw::connect(index.addr);
    assert!(c3
        .line()
        .starts_with("err|busy|server is at its limit of 2 connections"));
    assert!(c3.read_to_end().is_empty());
    // The connections within the cap are unaffected...
    assert_eq!(c1.ask("ping"), "ok|pong");
    // ...and a freed place is taken by the next client.
    drop(c2);
    eventually("a place frees up", Duration::from_secs(5), || {
        let mut c = Raw::connect(index.addr);
        c.send(b"ping\n");
        c.line() == "ok|pong"
    });
}

/// `publish|n` with rows of about 300 bytes, all but the last row when `complete` is
/// false (the batch then waits in the server's buffer).
fn big_publish(n: usize, complete: bool) -> Vec<u8> {
    let id = format!("sha1:{}", "ab".repeat(20));
    let mut out = format!("publish|{n}\n").into_bytes();
    for i in 0..(if complete { n } else { n - 1 }) {
        let name = format!("{}-{i:05}.dat", "x".repeat(200));
        out.extend_from_slice(format!("{name}|1|{id}|{id}\n").as_bytes());
    }
    out
}

#[test]
fn large_batches_share_one_memory_budget_and_the_rest_is_told_busy() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &["--request-memory", "1M"]);
    let in_use = || status_number(index.addr, "request_memory") as usize;
    let mut c1 = Raw::connect(index.addr);
    assert!(c1.hello_as("peer", "big1", 2001).starts_with("ok|"));
    let batch = big_publish(3000, false);
    c1.send(&batch);
    // Wait until the server holds all of the first batch (beyond each connection's
    // free allowance), so the second cannot take the budget while the first is still
    // arriving.
    let allowance = p2pshare::net::server::CONN_ALLOWANCE;
    eventually(
        "the first batch holds memory",
        Duration::from_secs(10),
        || in_use() >= batch.len() - allowance,
    );
    // A second large batch does not fit beside it: a clear refusal, then close.
    let mut c2 = Raw::connect(index.addr);
    assert!(c2.hello_as("peer", "big2", 2002).starts_with("ok|"));
    c2.send(&big_publish(3000, false));
    assert!(c2
        .line()
        .starts_with("err|busy|the server is short of memory"));
    assert!(c2.read_to_end().is_empty());
    // Small requests go on meanwhile, and the first batch completes normally.
    assert_eq!(Raw::connect(index.addr).ask("ping"), "ok|pong");
    let id = format!("sha1:{}", "ab".repeat(20));
    let last = format!("{}-{:05}.dat|1|{id}|{id}\n", "x".repeat(200), 2999);
    c1.send(last.as_bytes());
    assert_eq!(c1.line(), "ok|3000");
    // Its memory is given back: a new large batch fits.
    eventually("the budget is free again", Duration::from_secs(10), || {
        in_use() == 0
    });
    let mut c3 = Raw::connect(index.addr);
    assert!(c3.hello_as("peer", "big3", 2003).starts_with("ok|"));
    c3.send(&big_publish(3000, true));
    assert_eq!(c3.line(), "ok|3000");
}

#[test]
fn silent_client_is_dropped_after_the_idle_timeout() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &["--idle-timeout", "300ms"]);
    let mut silent = Raw::connect(index.addr);
    silent.send(b"search|half a li");
    let started = Instant::now();
    assert!(silent.read_to_end().is_empty());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(Raw::connect(index.addr).ask("ping"), "ok|pong");
}

#[test]
fn a_download_never_replaces_a_different_file() {
    let root = tempfile::tempdir().unwrap();
    let dirs = sample_peers(root.path());
    let index = index(root.path(), &[]);
    let _p1 = peer(&dirs[0], &index, &[]);
    let dest = root.path().join("dest");
    fs::create_dir_all(&dest).unwrap();
    fs::write(dest.join("tenkb.txt"), b"my own notes").unwrap();
    let get = |name: &str| {
        Args::get(name)
            .index(index.addr)
            .dir(&dest)
            .run(root.path())
    };
    let (code, _, err) = get("tenkb.txt");
    assert_eq!(code, 1);
    assert!(
        err.contains("already exists with different content"),
        "{err}"
    );
    assert_eq!(fs::read(dest.join("tenkb.txt")).unwrap(), b"my own notes");
    let (code, _, err) = get("missing.txt");
    assert_eq!(code, 1);
    assert!(err.contains("no live peer holds 'missing.txt'"), "{err}");
    let (code, _, err) = get("../escape");
    assert_eq!(code, 1);
    assert!(err.contains("dotfiles are never shared"), "{err}");
}

#[test]
fn status_exits_zero_only_for_a_healthy_node() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &[]);
    let (code, out, _) = Args::status(index.addr).json().run(root.path());
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["healthy"], true);
    assert_eq!(v["status"]["role"], "index");
    // Nothing listens on port 9 (discard) here: unreachable is unhealthy.
    let (code, out, _) = Args::status("127.0.0.1:9")
        .json()
        .flag("--timeout", "1s")
        .run(root.path());
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["healthy"], false);
}

#[test]
fn sigterm_makes_a_peer_leave_its_index_at_once() {
    let root = tempfile::tempdir().unwrap();
    let dirs = sample_peers(root.path());
    // A long lease: only a clean leave can remove the peer within the test.
    let index = index(root.path(), &["--lease", "5m"]);
    let mut p1 = peer(&dirs[0], &index, &[]);
    assert_eq!(holders(index.addr, "tenkb.txt"), vec!["peer1".to_owned()]);
    // SAFETY: plain kill(2) on a child we started.
    assert_eq!(unsafe { libc::kill(p1.pid() as i32, libc::SIGTERM) }, 0);
    p1.wait_line(|l| l.contains("leaving the network"));
    eventually("peer1 gone after SIGTERM", Duration::from_secs(5), || {
        holders(index.addr, "tenkb.txt").is_empty()
    });
}

#[test]
fn readme_lists_every_console_command() {
    let readme = include_str!("../../README.md");
    for line in p2pshare::console::help_lines() {
        let command = line.split_whitespace().next().unwrap();
        assert!(
            readme.contains(&format!("| `{command}")),
            "README.md does not list the console command '{command}'"
        );
    }
}

/// Regression: `publish|1` sent to a peer took the next request as its row.
#[test]
fn a_verb_a_peer_does_not_serve_does_not_swallow_the_next_request() {
    let root = tempfile::tempdir().unwrap();
    let dirs = sample_peers(root.path());
    let index = index(root.path(), &[]);
    let p1 = peer(&dirs[0], &index, &[]);
    let mut raw = Raw::connect(p1.addr);
    raw.send(b"publish|1\nping\n");
    assert_eq!(
        raw.line(),
        "err|unknown-verb|'publish' is not served by the peer role"
    );
    assert_eq!(raw.line(), "ok|pong");
}
