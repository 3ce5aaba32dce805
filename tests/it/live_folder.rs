//! The live shared folder: additions, changes, deletions and renames reach the index
//! on their own; half-written files wait; a restarted peer uses its hash cache.

use crate::util::*;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// What the index says about a name: (peer, size, content id) of each holder.
fn entries(index: &Proc, name: &str) -> Vec<(String, String, String)> {
    let mut raw = Raw::connect(index.addr);
    let head = raw.ask(&format!("get|{name}"));
    let n: usize = head.strip_prefix("ok|").unwrap().parse().unwrap();
    (0..n)
        .map(|_| {
            let row = raw.line();
            let f: Vec<&str> = row.split('|').collect();
            (f[6].to_owned(), f[3].to_owned(), f[4].to_owned())
        })
        .collect()
}

/// A line the process printed, already consumed or not.
fn printed(p: &Proc, prefix: &str) -> String {
    let mut found = None;
    eventually("the line is printed", DEADLINE, || {
        found = p
            .seen
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.starts_with(prefix))
            .cloned();
        found.is_some()
    });
    found.unwrap()
}

/// The content id the index should show for these bytes.
fn id_of(bytes: &[u8]) -> String {
    content_id(bytes).to_string()
}

/// How long after a change the index must agree: the settle time (1 s by default),
/// then well within the 2 s allowed once the change has settled.
const PROMPTLY: Duration = Duration::from_millis(2200);

fn solo_peer(root: &Path) -> (Proc, Proc, std::path::PathBuf) {
    let dir = root.join("live");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("first.txt"), b"first").unwrap();
    let index = index(root, &[]);
    let p = peer(&dir, &index, &["--rescan-interval", "1h"]);
    (index, p, dir)
}

#[test]
fn added_changed_deleted_and_renamed_files_reach_the_index() {
    let root = tempfile::tempdir().unwrap();
    let (index, _p, dir) = solo_peer(root.path());
    assert_eq!(entries(&index, "first.txt").len(), 1);

    // Add.
    fs::write(dir.join("added.txt"), b"a new file").unwrap();
    let t = Instant::now();
    eventually(
        "added file published",
        PROMPTLY + Duration::from_millis(400),
        || entries(&index, "added.txt") == vec![("live".into(), "10".into(), id_of(b"a new file"))],
    );
    eprintln!("add reached the index in {:?}", t.elapsed());

    // Change: the new content id replaces the old one.
    fs::write(dir.join("added.txt"), b"changed content").unwrap();
    eventually(
        "changed file re-published",
        PROMPTLY + Duration::from_millis(400),
        || {
            entries(&index, "added.txt")
                == vec![("live".into(), "15".into(), id_of(b"changed content"))]
        },
    );

    // Rename: the old name goes, the new one comes, with the same content.
    fs::rename(dir.join("added.txt"), dir.join("renamed.txt")).unwrap();
    eventually(
        "rename reflected",
        PROMPTLY + Duration::from_millis(400),
        || {
            entries(&index, "added.txt").is_empty()
                && entries(&index, "renamed.txt")
                    == vec![("live".into(), "15".into(), id_of(b"changed content"))]
        },
    );

    // Delete.
    fs::remove_file(dir.join("first.txt")).unwrap();
    eventually("deleted file withdrawn", PROMPTLY, || {
        entries(&index, "first.txt").is_empty()
    });
}

#[test]
fn a_file_being_written_is_not_published_half_written() {
    let root = tempfile::tempdir().unwrap();
    let (index, _p, dir) = solo_peer(root.path());
    let mut f = fs::File::create(dir.join("growing.bin")).unwrap();
    // Keep writing for well over the settle time; the index must never list a
    // partial version.
    let mut written = Vec::new();
    for i in 0..15u8 {
        let chunk = vec![i; 10_000];
        f.write_all(&chunk).unwrap();
        f.flush().unwrap();
        written.extend_from_slice(&chunk);
        std::thread::sleep(Duration::from_millis(60));
        assert!(
            entries(&index, "growing.bin").is_empty(),
            "published while still being written"
        );
    }
    drop(f);
    eventually(
        "finished file published",
        PROMPTLY + Duration::from_millis(400),
        || {
            entries(&index, "growing.bin")
                == vec![("live".into(), written.len().to_string(), id_of(&written))]
        },
    );
}

#[test]
fn a_restarted_peer_does_not_hash_unchanged_files_again() {
    let root = tempfile::tempdir().unwrap();
    let dirs = sample_peers(root.path());
    let index = index(root.path(), &[]);
    let mut first = peer(&dirs[1], &index, &[]);
    let line = printed(&first, "sharing ");
    assert!(!line.contains("hash cache"), "{line}");
    first.kill9();
    // One file changes while the peer is down.
    fs::write(dirs[1].join("poem.txt"), b"a different poem").unwrap();
    let mut second = peer(&dirs[1], &index, &[]);
    let line = printed(&second, "sharing ");
    assert!(
        line.contains("2 unchanged since last run (hash cache)"),
        "{line}"
    );
    assert_eq!(entries(&index, "poem.txt")[0].2, id_of(b"a different poem"));

    // A corrupt cache is discarded with a warning, and everything is hashed again.
    second.kill9();
    let cache = dirs[1].join(".p2pshare").join("hashcache.bin");
    let mut bytes = fs::read(&cache).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&cache, &bytes).unwrap();
    let third = peer(&dirs[1], &index, &[]);
    let line = printed(&third, "sharing ");
    assert!(!line.contains("hash cache"), "{line}");
    assert!(
        third.stderr_text().contains("is corrupt"),
        "{}",
        third.stderr_text()
    );
    assert_eq!(entries(&index, "poem.txt")[0].2, id_of(b"a different poem"));
}
