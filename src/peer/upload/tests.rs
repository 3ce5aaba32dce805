//! The upload core without a socket: `upload` requests decoded from their wire text
//! and handed to the peer's service (`net::testing::Session`), payloads fed in pieces
//! as a server feeds them, and the folder, the catalog and the temporary folder
//! looked at after each.

use super::*;
use crate::net::node::HelloRole;
use crate::net::server::ServerStats;
use crate::net::testing::{test_me, Session};
use crate::overlay::runtime::OverlayHandle;
use crate::peer::catalog::hash_reader;
use crate::peer::serve::PeerService;
use crate::protocol::PIECE_SIZE;

struct Fixture {
    service: PeerService,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Fixture {
    fn new(config: UploadConfig) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap().join("share");
        fs::create_dir_all(dir.join(".p2pshare")).unwrap();
        let shared = Arc::new(PeerShared::new(
            test_me("me"),
            Arc::new(ServerStats::default()),
            &[],
        ));
        let (overlay, _inbox) = OverlayHandle::channel(&[]).unwrap();
        let (events, _) = crossbeam_channel::unbounded();
        let uploads = Arc::new(Uploads::new(
            config,
            shared.clone(),
            &dir,
            &dir.join(".p2pshare"),
            None,
        ));
        Fixture {
            service: PeerService {
                shared,
                upload_limit: None,
                overlay,
                events,
                uploads,
                log: None,
            },
            dir,
            _tmp: tmp,
        }
    }

    fn allowing() -> Fixture {
        Fixture::new(UploadConfig {
            allowed: true,
            ..UploadConfig::default()
        })
    }

    fn session(&self) -> Session<'_, PeerService> {
        let mut s = Session::new(&self.service);
        assert!(s
            .hello_as(HelloRole::Client, "uploader", 0)
            .starts_with("ok|peer|"));
        s
    }

    /// What the folder holds, dotfiles aside.
    fn folder(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    /// The temporary files of uploads in flight.
    fn temporaries(&self) -> usize {
        fs::read_dir(self.service.uploads.temp_dir()).map_or(0, |d| d.count())
    }
}

fn id_of(data: &[u8]) -> Sha1Digest {
    hash_reader(data).unwrap().id
}

fn upload_line(name: &str, data: &[u8]) -> String {
    format!("upload|{name}|{}|{}", data.len(), id_of(data))
}

#[test]
fn the_streamed_hashes_are_the_scan_hashes_whatever_the_pieces() {
    for size in [
        0,
        1,
        4096,
        PIECE_SIZE as usize,
        PIECE_SIZE as usize * 2 + 17,
    ] {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let want = hash_reader(&data[..]).unwrap();
        for step in [1usize, 4096, 65_536, 1 << 21] {
            if size > 100_000 && step == 1 {
                continue;
            }
            let mut h = PieceHasher::default();
            for part in data.chunks(step) {
                h.update(part);
            }
            assert_eq!(h.finish(size as u64), want, "size {size}, step {step}");
        }
    }
}

#[test]
fn an_upload_is_proven_placed_and_shared_at_once() {
    let f = Fixture::allowing();
    let mut s = f.session();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let id = id_of(&data);
    let sha1 = Sha1Digest::of(&data);
    let (first, last) = s.send_payload(&upload_line("mydoc.txt", &data), &data, 4096);
    assert_eq!(first, "ok|send|300000\n");
    assert_eq!(
        last.unwrap(),
        format!("ok|uploaded|mydoc.txt|{id}|{sha1}\n")
    );
    assert_eq!(fs::read(f.dir.join("mydoc.txt")).unwrap(), data);
    assert_eq!(f.temporaries(), 0, "the temporary file went");
    let catalog = f.service.shared.catalog();
    let file = catalog.get("mydoc.txt").expect("shared without a rescan");
    assert_eq!(file.hashes.id, id);
    assert_eq!(file.hashes.sha1, Some(sha1));
    // The stamp is the file's as a scan sees it, so the watcher leaves it alone.
    let meta = fs::metadata(f.dir.join("mydoc.txt")).unwrap();
    assert_eq!(file.stamp, FileStamp::of(&meta));
    drop(catalog);
    // The same bytes again: the peer has them, nothing is sent.
    assert_eq!(
        s.ask(&upload_line("mydoc.txt", &data)),
        format!("ok|exists|mydoc.txt|{id}|{sha1}\n")
    );
    // An empty file is a file too.
    let (first, last) = s.send_payload(&upload_line("empty.txt", b""), b"", 1);
    assert_eq!(first, "ok|send|0\n");
    assert!(last
        .unwrap()
        .starts_with("ok|uploaded|empty.txt|sha1:da39a3ee"));
    assert_eq!(f.folder(), vec!["empty.txt", "mydoc.txt"]);
}

#[test]
fn bytes_that_are_not_the_promised_content_are_refused_and_nothing_is_kept() {
    let f = Fixture::allowing();
    let mut s = f.session();
    let data = b"the real content".to_vec();
    let line = upload_line("doc.txt", &data);
    let mut other = data.clone();
    other[3] ^= 1;
    let (first, last) = s.send_payload(&line, &other, 5);
    assert_eq!(first, "ok|send|16\n");
    let last = last.unwrap();
    assert!(
        last.starts_with("err|bad-content|'doc.txt': the bytes received are not the content id"),
        "{last}"
    );
    assert!(f.folder().is_empty());
    assert_eq!(f.temporaries(), 0);
    assert!(f.service.shared.catalog().is_empty());
}

#[test]
fn names_that_could_leave_the_folder_or_reach_the_state_dir_are_refused() {
    let f = Fixture::allowing();
    let mut s = f.session();
    let data = b"x".to_vec();
    for name in [
        "../x",
        "..",
        ".p2pshare",
        ".hidden",
        "a/b",
        "a\\b",
        "dir/../x",
    ] {
        let reply = s.ask(&upload_line(name, &data));
        assert!(reply.starts_with("err|bad-name|"), "{name}: {reply}");
    }
    // An empty name has no field to be in: the codec's arity check keeps it out.
    let reply = s.ask(&format!("upload||1|{}", id_of(&data)));
    assert!(reply.starts_with("err|bad-name|"), "{reply}");
    assert!(f.folder().is_empty());
    assert_eq!(f.temporaries(), 0);
}

#[test]
fn only_the_allowed_extensions_and_sizes_are_taken() {
    let f = Fixture::new(UploadConfig {
        allowed: true,
        extensions: vec!["txt".into(), "pdf".into()],
        max_size: 10,
        ..UploadConfig::default()
    });
    let mut s = f.session();
    let small = b"0123456789".to_vec();
    for name in ["run.exe", "noext", "txt", "a.txt.sh"] {
        let reply = s.ask(&upload_line(name, &small));
        assert!(
            reply.starts_with(&format!(
                "err|bad-name|'{name}': this peer takes only names ending in .txt, .pdf"
            )),
            "{name}: {reply}"
        );
    }
    let big = vec![7u8; 11];
    let reply = s.ask(&upload_line("big.txt", &big));
    assert!(
        reply.starts_with("err|too-large|11 B is over this peer's upload limit"),
        "{reply}"
    );
    // The extension is compared without regard to case.
    let (first, last) = s.send_payload(&upload_line("Report.PDF", &small), &small, 3);
    assert_eq!(first, "ok|send|10\n");
    assert!(last.unwrap().starts_with("ok|uploaded|Report.PDF|"));
}

#[test]
fn a_peer_not_started_with_allow_upload_refuses_and_a_session_is_needed() {
    let f = Fixture::new(UploadConfig::default());
    let mut s = Session::new(&f.service);
    let reply = s.ask(&upload_line("a.txt", b"a"));
    assert!(
        reply.starts_with("err|forbidden|this peer does not take uploads"),
        "{reply}"
    );
    let f = Fixture::allowing();
    let mut s = Session::new(&f.service);
    let reply = s.ask(&upload_line("a.txt", b"a"));
    assert!(
        reply.starts_with("err|bad-request|'upload' needs a session"),
        "{reply}"
    );
    assert!(s
        .hello_as(HelloRole::Client, "c", 0)
        .starts_with("ok|peer|"));
    for (line, want) in [
        ("upload|a.txt|x|sha1:00", "err|bad-request|size 'x'"),
        ("upload|a.txt|+1|sha1:00", "err|bad-request|size '+1'"),
        ("upload|a.txt|1|md5:00", "err|bad-request|content id: "),
    ] {
        assert!(s.ask(line).starts_with(want), "{line}");
    }
}

#[test]
fn a_name_in_use_is_never_replaced() {
    let f = Fixture::allowing();
    let mut s = f.session();
    let data = b"first".to_vec();
    let (_, last) = s.send_payload(&upload_line("a.txt", &data), &data, 100);
    assert!(last.unwrap().starts_with("ok|uploaded|"));
    // Other content under the same name, known from the catalog: refused up front.
    let reply = s.ask(&upload_line("a.txt", b"second"));
    assert!(
        reply.starts_with("err|conflict|'a.txt' exists in this peer's folder with other content"),
        "{reply}"
    );
    // A file the catalog does not know yet: the bytes are compared once they are in.
    fs::write(f.dir.join("new.txt"), b"on disk").unwrap();
    let (first, last) = s.send_payload(&upload_line("new.txt", b"pushed"), b"pushed", 2);
    assert_eq!(first, "ok|send|6\n");
    assert!(last.unwrap().starts_with("err|conflict|"));
    let (_, last) = s.send_payload(&upload_line("new.txt", b"on disk"), b"on disk", 2);
    assert!(last.unwrap().starts_with("ok|exists|new.txt|"));
    assert_eq!(fs::read(f.dir.join("new.txt")).unwrap(), b"on disk");
    // A folder by that name is not a file to compare with.
    fs::create_dir(f.dir.join("sub.txt")).unwrap();
    assert!(s
        .ask(&upload_line("sub.txt", b"x"))
        .starts_with("err|conflict|"));
    assert_eq!(f.temporaries(), 0);
    assert_eq!(fs::read(f.dir.join("a.txt")).unwrap(), b"first");
}

#[test]
fn one_upload_at_a_time_per_address_and_a_cap_in_all() {
    let f = Fixture::new(UploadConfig {
        allowed: true,
        max_running: 2,
        ..UploadConfig::default()
    });
    let uploads = &f.service.uploads;
    let offer = |name: &str, from: &str| Offer {
        name: name.into(),
        size: Some(1),
        at_most: None,
        promise: Promise::ContentId(id_of(b"a")),
        from: from.parse().unwrap(),
        who: "test".into(),
    };
    let Ok(Begun::Receiving(first)) = uploads.begin(offer("a.txt", "10.0.0.1:1")) else {
        panic!("the first upload is taken");
    };
    match uploads.begin(offer("b.txt", "10.0.0.1:2")) {
        Err(UploadError::Busy(why)) => assert!(why.contains("10.0.0.1 has an upload running")),
        _ => panic!("a second upload from the same address is refused"),
    }
    let Ok(Begun::Receiving(second)) = uploads.begin(offer("b.txt", "10.0.0.2:1")) else {
        panic!("another address may upload");
    };
    match uploads.begin(offer("c.txt", "10.0.0.3:1")) {
        Err(UploadError::Busy(why)) => assert!(why.contains("2 uploads at once"), "{why}"),
        _ => panic!("over the cap"),
    }
    assert_eq!(f.temporaries(), 2);
    // An upload that ends (here: its sender went away) gives its slot back and
    // leaves no file behind.
    drop(first);
    assert_eq!(f.temporaries(), 1);
    assert!(matches!(
        uploads.begin(offer("c.txt", "10.0.0.1:3")),
        Ok(Begun::Receiving(_))
    ));
    drop(second);
    assert_eq!(f.temporaries(), 0);
}

#[test]
fn a_receiver_enforces_the_cap_when_no_size_was_stated() {
    let f = Fixture::new(UploadConfig {
        allowed: true,
        max_size: 8,
        ..UploadConfig::default()
    });
    let Ok(Begun::Receiving(mut r)) = f.service.uploads.begin(Offer {
        name: "a.txt".into(),
        size: None,
        at_most: Some(1000),
        promise: Promise::Sha1(Sha1Digest::of(b"123456789")),
        from: "127.0.0.1:1".parse().unwrap(),
        who: "test".into(),
    }) else {
        panic!("taken");
    };
    r.write(b"12345678").unwrap();
    assert!(matches!(
        r.write(b"9"),
        Err(UploadError::TooLarge { size: 9, max: 8 })
    ));
    drop(r);
    assert_eq!(f.temporaries(), 0);
    assert!(f.folder().is_empty());
}

#[test]
fn a_whole_file_sha1_is_a_promise_too() {
    let f = Fixture::allowing();
    let data = b"hello, this is a test document.".to_vec();
    let Ok(Begun::Receiving(mut r)) = f.service.uploads.begin(Offer {
        name: "mydoc.txt".into(),
        size: None,
        at_most: None,
        promise: Promise::Sha1(Sha1Digest::of(&data)),
        from: "127.0.0.1:1".parse().unwrap(),
        who: "test".into(),
    }) else {
        panic!("taken");
    };
    r.write(&data).unwrap();
    match r.finish() {
        Ok(Outcome::Uploaded(p)) => assert_eq!(p.hashes.id, id_of(&data)),
        Ok(_) => panic!("uploaded, not found"),
        Err(e) => panic!("{e}"),
    }
    assert_eq!(fs::read(f.dir.join("mydoc.txt")).unwrap(), data);
}

#[test]
fn what_a_killed_process_left_is_removed_at_start() {
    let f = Fixture::allowing();
    let temp = f.service.uploads.temp_dir().to_path_buf();
    fs::create_dir_all(&temp).unwrap();
    fs::write(temp.join(format!("1234-0{TEMP_SUFFIX}")), b"half").unwrap();
    fs::write(temp.join("keep.me"), b"not ours").unwrap();
    let again = Uploads::new(
        UploadConfig::default(),
        f.service.shared.clone(),
        &f.dir,
        &f.dir.join(".p2pshare"),
        None,
    );
    assert_eq!(again.temp_dir(), temp);
    let left: Vec<String> = fs::read_dir(&temp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["keep.me"]);
}

#[test]
fn placing_never_replaces_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    fs::write(&a, b"new").unwrap();
    fs::write(&b, b"old").unwrap();
    let e = rename_noreplace(&a, &b).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    assert_eq!(fs::read(&b).unwrap(), b"old");
    let c = tmp.path().join("c");
    rename_noreplace(&a, &c).unwrap();
    assert_eq!(fs::read(&c).unwrap(), b"new");
    assert!(!a.exists());
}

#[test]
fn refusals_and_successes_are_counted_by_reason() {
    let f = Fixture::allowing();
    let mut s = f.session();
    let series = |reason: &str| format!("p2pshare_uploads_refused_total{{reason=\"{reason}\"}}");
    let accepted = "p2pshare_uploads_accepted_total";
    let (bad_name, mismatch, incomplete, ok) = (
        crate::metrics::value(&series("bad-name")),
        crate::metrics::value(&series("mismatch")),
        crate::metrics::value(&series("incomplete")),
        crate::metrics::value(accepted),
    );
    s.ask(&upload_line("../x", b"x"));
    s.send_payload(&upload_line("m.txt", b"abc"), b"abd", 1);
    // A go-ahead whose payload never comes: the sink is dropped unfed.
    assert_eq!(s.ask(&upload_line("i.txt", b"abc")), "ok|send|3\n");
    s.send_payload(&upload_line("ok.txt", b"abc"), b"abc", 1);
    // Other tests count too: at least ours.
    assert!(crate::metrics::value(&series("bad-name")) > bad_name);
    assert!(crate::metrics::value(&series("mismatch")) > mismatch);
    assert!(crate::metrics::value(&series("incomplete")) > incomplete);
    assert!(crate::metrics::value(accepted) > ok);
    assert_eq!(f.temporaries(), 0);
}

#[test]
fn a_file_the_disk_cannot_hold_is_refused_before_a_byte_is_sent() {
    let f = Fixture::new(UploadConfig {
        allowed: true,
        max_size: u64::MAX,
        ..UploadConfig::default()
    });
    let probe = File::open(&f.dir).unwrap();
    let Some(free) = disk::free_space(&probe) else {
        return; // the file system does not say
    };
    let size = free + (1 << 30);
    let reply = f
        .session()
        .ask(&format!("upload|huge.bin|{size}|{}", id_of(b"")));
    assert!(
        reply.starts_with("err|too-large|not enough disk space"),
        "{reply}"
    );
    assert_eq!(f.temporaries(), 0);
}
