//! Swarm downloads: several sources at once, failover, bad sources, resume after
//! kill -9, rate limits. Misbehaving holders are played by [`FakeHolder`], a server in
//! the test process registered at the real index.

use crate::util::*;
use p2pshare::net::client::Client;
use p2pshare::net::node::{self, HelloRole};
use p2pshare::net::{Reply, Timeouts};
use p2pshare::peer::download::StateRecord;
use p2pshare::protocol::codec;
use p2pshare::protocol::hash::{piece_list_digest, Sha1Digest};
use p2pshare::protocol::PIECE_SIZE;
use rand::Rng;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// How a [`FakeHolder`] misbehaves.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Accepts connections and reads, but never answers anything.
    Silent,
    /// Answers `hello` and `pieces`; to the first `fetch`, sends half the piece, then
    /// nothing more.
    StallMidPiece,
    /// Serves `after` pieces, then refuses every fetch with `err|unknown-id`.
    RefuseAfter(usize),
    /// Sends a piece list of the right length whose digest is not the one published.
    WrongPieceList,
    /// Serves the true piece list, but every piece with one byte flipped: what a real
    /// peer can no longer be tricked into (it hashes a file again when it changes).
    CorruptPieces,
}

/// A holder played by the test: registered at the index under `id` (through a session
/// it keeps open), serving `data` with a fault.
struct FakeHolder {
    stop: Arc<AtomicBool>,
    /// Fetch requests answered with bytes.
    served: Arc<AtomicUsize>,
    _session: Client,
}

impl Drop for FakeHolder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn piece_list(data: &[u8]) -> Vec<Sha1Digest> {
    data.chunks(PIECE_SIZE as usize)
        .map(Sha1Digest::of)
        .collect()
}

impl FakeHolder {
    fn start(index: &Proc, id: &str, name: &str, data: &Arc<Vec<u8>>, fault: Fault) -> FakeHolder {
        let sha1 = Sha1Digest::of(data);
        FakeHolder::start_claiming(index, id, name, data, fault, sha1)
    }

    /// [`FakeHolder::start`], publishing `sha1` as the file's whole-file SHA-1.
    fn start_claiming(
        index: &Proc,
        id: &str,
        name: &str,
        data: &Arc<Vec<u8>>,
        fault: Fault,
        sha1: Sha1Digest,
    ) -> FakeHolder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        {
            let (stop, served, data, id) =
                (stop.clone(), served.clone(), data.clone(), id.to_owned());
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (stop, served, data, id) =
                                (stop.clone(), served.clone(), data.clone(), id.clone());
                            thread::spawn(move || {
                                fake_session(stream, &id, &data, fault, &stop, &served)
                            });
                        }
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
            });
        }
        let t = Timeouts::default();
        let mut session = Client::connect(&index.addr_str(), &t).unwrap();
        session
            .hello(Some(&test_me(id)), HelloRole::Peer, port, None)
            .unwrap();
        let list = piece_list(data);
        let row = codec::line(&[
            name,
            &data.len().to_string(),
            &piece_list_digest(&list).to_string(),
            &sha1.to_string(),
        ]);
        let msg = codec::line(&["publish", "1"]) + &row;
        session.send(msg.as_bytes(), "publish").unwrap();
        session.read_ok("publish").unwrap();
        FakeHolder {
            stop,
            served,
            _session: session,
        }
    }
}

/// Waits until `stop` is set, without answering.
fn hang(stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(20));
    }
}

/// A fake holder's answer to `hello`: signed with the key of test node `id`, so the
/// downloader takes it for the node it claims to be.
fn answer_hello(id: &str, args: &[&str]) -> String {
    let roles = [HelloRole::Client, HelloRole::Peer];
    match node::parse_hello(args, "this node", &roles) {
        Ok(hello) => {
            match node::challenge(&test_me(id), "peer", hello, "127.0.0.1:9".parse().unwrap()).0 {
                Reply::Text(t) => t,
                _ => unreachable!("hello answers with text"),
            }
        }
        Err(refusal) => refusal.to_line(),
    }
}

fn fake_session(
    stream: TcpStream,
    id: &str,
    original: &[u8],
    fault: Fault,
    stop: &AtomicBool,
    served: &AtomicUsize,
) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut out = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let corrupted;
    let data = if matches!(fault, Fault::CorruptPieces) {
        let mut bad = original.to_vec();
        let len = bad.len();
        for at in (0..len).step_by(PIECE_SIZE as usize) {
            bad[at + 7.min(len - 1 - at)] ^= 0x5a;
        }
        corrupted = bad;
        &corrupted[..]
    } else {
        original
    };
    let mut line = String::new();
    while !stop.load(Ordering::SeqCst) {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(_) => return,
        }
        if matches!(fault, Fault::Silent) {
            continue;
        }
        let fields: Vec<&str> = line.trim_end().split('|').collect();
        let reply: Vec<u8> = match fields[0] {
            "hello" => answer_hello(id, &fields[1..]).into_bytes(),
            "pieces" => {
                let mut list = piece_list(if matches!(fault, Fault::CorruptPieces) {
                    original
                } else {
                    data
                });
                if matches!(fault, Fault::WrongPieceList) {
                    list = list.iter().map(|d| Sha1Digest::of(&d.0)).collect();
                }
                let mut r = codec::data_header(list.len() as u64 * 20).into_bytes();
                for d in &list {
                    r.extend_from_slice(&d.0);
                }
                r
            }
            "fetch" => {
                let offset: usize = fields[3].parse().unwrap();
                let len: usize = fields[4].parse().unwrap();
                let bytes = &data[offset..offset + len];
                match fault {
                    Fault::StallMidPiece => {
                        let mut r = codec::data_header(len as u64).into_bytes();
                        r.extend_from_slice(&bytes[..len / 2]);
                        let _ = out.write_all(&r);
                        hang(stop);
                        return;
                    }
                    Fault::RefuseAfter(n) if served.load(Ordering::SeqCst) >= n => {
                        b"err|unknown-id|this file changed\n".to_vec()
                    }
                    _ => {
                        served.fetch_add(1, Ordering::SeqCst);
                        let mut r = codec::data_header(len as u64).into_bytes();
                        r.extend_from_slice(bytes);
                        r
                    }
                }
            }
            _ => b"err|unknown-verb|not here\n".to_vec(),
        };
        if out.write_all(&reply).is_err() {
            return;
        }
    }
}

/// The state file of the partial download in `state_dir`, once there is one.
fn state_file(state_dir: &Path) -> Option<PathBuf> {
    fs::read_dir(state_dir.join("partial"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "state"))
}

/// The pieces a state file marks as verified, once it holds a record.
fn marked_pieces(state: &Path) -> Option<Vec<usize>> {
    let bytes = fs::read(state).ok()?;
    Some(StateRecord::decode(&bytes)?.verified_pieces())
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn notes(v: &serde_json::Value) -> String {
    v["notes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

fn sources(v: &serde_json::Value) -> Vec<String> {
    let mut s: Vec<String> = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    s.sort();
    s
}

/// Holders named h0, h1, ... all sharing `data` as `name`.
fn holders_of(
    root: &Path,
    index: &Proc,
    n: usize,
    name: &str,
    data: &[u8],
    extra: &[&str],
) -> Vec<Proc> {
    (0..n)
        .map(|k| {
            let dir = root.join(format!("h{k}"));
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(name), data).unwrap();
            peer(&dir, index, extra)
        })
        .collect()
}

#[test]
fn a_download_takes_pieces_from_every_holder_at_once() {
    let root = tempfile::tempdir().unwrap();
    let data = noise(24 * 1024 * 1024, 5);
    let index = index(root.path(), &[]);
    // Each holder is capped, so no single one can finish before the others start.
    let holders = holders_of(
        root.path(),
        &index,
        3,
        "big.bin",
        &data,
        &["--max-upload-rate", "20M"],
    );
    let dest = root.path().join("dest");
    let (code, out, err) = Args::get("big.bin")
        .index(index.addr)
        .dir(&dest)
        .json()
        .run(root.path());
    assert_eq!(code, 0, "{out}{err}");
    // Regression: every source that fetched the piece list also saved it, through one
    // temporary file, and the losers of that race warned.
    assert!(!err.contains("WARN"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["sources"].as_array().unwrap().len(), 3, "{out}");
    assert_eq!(fs::read(dest.join("big.bin")).unwrap(), data);
    let mut total = 0;
    for h in &holders {
        let up = status_number(h.addr, "bytes_uploaded");
        assert!(up > 0, "{} sent nothing", h.name);
        total += up;
    }
    // Endgame duplicates may add a little, never a whole extra copy.
    assert!(
        total >= data.len() as u64 && total < 2 * data.len() as u64,
        "{total}"
    );
}

#[test]
fn max_sources_caps_the_holders_used() {
    let root = tempfile::tempdir().unwrap();
    let data = noise(4 * 1024 * 1024, 6);
    let index = index(root.path(), &[]);
    let holders = holders_of(root.path(), &index, 3, "f.bin", &data, &[]);
    let dest = root.path().join("dest");
    let (code, out, err) = Args::get("f.bin")
        .index(index.addr)
        .dir(&dest)
        .json()
        .flag("--max-sources", "1")
        .run(root.path());
    assert_eq!(code, 0, "{out}{err}");
    let used = holders
        .iter()
        .filter(|h| status_number(h.addr, "bytes_uploaded") > 0)
        .count();
    assert_eq!(used, 1);
}

#[test]
fn a_downloader_killed_at_random_moments_resumes_and_never_leaves_a_corrupt_file() {
    let root = tempfile::tempdir().unwrap();
    let data = noise(8 * 1024 * 1024 + 4097, 9);
    let index = index(root.path(), &[]);
    let _holders = holders_of(root.path(), &index, 2, "resume.bin", &data, &[]);
    let mut rng = seeded_rng();
    let mut resumed_trials = 0;
    for trial in 0..20 {
        let dest = root.path().join(format!("dest-{trial}"));
        fs::create_dir_all(&dest).unwrap();
        // Slow enough (about a second) to be killed part way.
        let args = Args::get("resume.bin")
            .index(index.addr)
            .dir(&dest)
            .flag("--max-download-rate", "8M");
        let child = args.background(root.path());
        if trial % 2 == 0 {
            // Any moment from start to end, recorded progress or not.
            thread::sleep(Duration::from_millis(rng.gen_range(0..1200)));
        } else {
            // A moment after the first progress was recorded, so that resuming is
            // exercised in every other trial whatever the machine's speed.
            let state_dir = dest.join(".p2pshare");
            eventually("progress recorded", DEADLINE, || {
                state_file(&state_dir).is_some() || dest.join("resume.bin").exists()
            });
            thread::sleep(Duration::from_millis(rng.gen_range(0..400)));
        }
        child.kill9();
        // Whatever the moment: either the complete, correct file, or no file at all.
        if let Ok(bytes) = fs::read(dest.join("resume.bin")) {
            assert_eq!(bytes, data, "trial {trial}: a corrupt file appeared");
        }
        let (code, out, err) = args.run(root.path());
        assert_eq!(code, 0, "trial {trial}: {out}{err}");
        if out.contains("resuming 'resume.bin'") {
            resumed_trials += 1;
        }
        assert_eq!(
            fs::read(dest.join("resume.bin")).unwrap(),
            data,
            "trial {trial}"
        );
        assert_eq!(
            fs::read_dir(dest.join(".p2pshare/partial"))
                .map(|d| d.count())
                .unwrap_or(0),
            0,
            "trial {trial}: partial files left behind"
        );
    }
    assert!(
        resumed_trials >= 5,
        "only {resumed_trials} of 20 trials resumed anything"
    );
}

#[test]
fn ctrl_c_cancels_a_console_download_that_resume_then_finishes() {
    let root = tempfile::tempdir().unwrap();
    let data = noise(6 * 1024 * 1024, 13);
    let index = index(root.path(), &[]);
    let _holder = holders_of(
        root.path(),
        &index,
        1,
        "slow.bin",
        &data,
        &["--max-upload-rate", "3M"],
    );
    let me = root.path().join("me");
    fs::create_dir_all(&me).unwrap();
    let mut console = console_peer(&me, &index, &[]);
    console.type_line("get slow.bin");
    // Once the first progress is on disk, Ctrl-C (SIGINT) stops the download.
    let partial = me.join(".p2pshare/partial");
    eventually("progress recorded", DEADLINE, || {
        fs::read_dir(&partial)
            .map(|d| {
                d.flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "state"))
            })
            .unwrap_or(false)
    });
    // SAFETY: plain kill(2) on a child we started.
    assert_eq!(unsafe { libc::kill(console.pid() as i32, libc::SIGINT) }, 0);
    console.wait_line(|l| l.contains("cancelled; the partial download is kept: 'resume slow.bin'"));
    assert!(!me.join("slow.bin").exists());
    console.type_line("downloads");
    let line = console.wait_line(|l| l.starts_with("slow.bin"));
    assert!(line.contains("of 6 pieces"), "{line}");
    console.type_line("resume slow.bin");
    console.wait_line(|l| l.contains("resuming 'slow.bin'"));
    console.wait_line(|l| l.contains("downloaded slow.bin"));
    assert_eq!(fs::read(me.join("slow.bin")).unwrap(), data);
    console.type_line("downloads");
    console.wait_line(|l| l.contains("no stopped downloads"));
}

#[test]
fn ctrl_c_stops_a_one_shot_get_and_the_same_command_resumes_it() {
    let root = tempfile::tempdir().unwrap();
    let data = noise(6 * 1024 * 1024, 14);
    let index = index(root.path(), &[]);
    let _holder = holders_of(
        root.path(),
        &index,
        1,
        "slow.bin",
        &data,
        &["--max-upload-rate", "3M"],
    );
    let dest = root.path().join("dest");
    fs::create_dir_all(&dest).unwrap();
    let args = Args::get("slow.bin").index(index.addr).dir(&dest);
    let child = args.background(root.path());
    let state_dir = dest.join(".p2pshare");
    eventually("progress recorded", DEADLINE, || {
        state_file(&state_dir).is_some()
    });
    // SAFETY: plain kill(2) on a child we started.
    assert_eq!(unsafe { libc::kill(child.pid() as i32, libc::SIGINT) }, 0);
    let (code, out, err) = child.finish(DEADLINE);
    assert_eq!(code, 130, "{out}{err}");
    assert!(
        err.contains("stopped; what was downloaded is kept in")
            && err.contains("the same command resumes it"),
        "{err}"
    );
    assert!(!dest.join("slow.bin").exists());
    let (code, out, err) = args.run(root.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("resuming 'slow.bin'"), "{out}");
    // The rate counts only what this run fetched, not what was already on disk.
    assert!(out.contains(" of it already here) from "), "{out}");
    assert_eq!(fs::read(dest.join("slow.bin")).unwrap(), data);
    assert!(
        state_file(&state_dir).is_none(),
        "the partial was left behind"
    );
}

#[test]
fn a_source_far_slower_than_the_others_gets_fewer_pieces_and_does_not_hold_the_end_back() {
    let root = tempfile::tempdir().unwrap();
    let data = noise(12 * 1024 * 1024, 21);
    let index = index(root.path(), &[]);
    // The fast holders are capped too, so that the slow one is surely asked for
    // pieces before they are all gone.
    let fast = holders_of(
        root.path(),
        &index,
        2,
        "s.bin",
        &data,
        &["--max-upload-rate", "8M"],
    );
    // 40 kB/s: the slow holder would need 26 s for one piece, past the test's
    // deadline, if the download waited for it.
    let slow_dir = root.path().join("slow");
    fs::create_dir_all(&slow_dir).unwrap();
    fs::write(slow_dir.join("s.bin"), &data).unwrap();
    let slow = peer(&slow_dir, &index, &["--max-upload-rate", "40k"]);
    let dest = root.path().join("dest");
    let (code, out, err) = Args::get("s.bin")
        .index(index.addr)
        .dir(&dest)
        .json()
        .run(root.path());
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(fs::read(dest.join("s.bin")).unwrap(), data);
    let slow_up = status_number(slow.addr, "bytes_uploaded");
    assert!(slow_up > 0, "the slow holder was never asked");
    for f in &fast {
        let up = status_number(f.addr, "bytes_uploaded");
        assert!(
            slow_up * 3 <= up,
            "slow sent {slow_up}, {} sent {up}",
            f.name
        );
    }
}

#[test]
fn a_holder_that_appears_during_a_download_joins_it() {
    let root = tempfile::tempdir().unwrap();
    let data = noise(16 * 1024 * 1024, 22);
    let index = index(root.path(), &[]);
    // Alone, holder a would need 16 s.
    let _a = holders_of(
        root.path(),
        &index,
        1,
        "late.bin",
        &data,
        &["--max-upload-rate", "1M"],
    );
    let dest = root.path().join("dest");
    let get = Args::get("late.bin")
        .index(index.addr)
        .dir(&dest)
        .json()
        .background(root.path());
    let state_dir = dest.join(".p2pshare");
    eventually("progress recorded", DEADLINE, || {
        state_file(&state_dir).is_some()
    });
    let b_dir = root.path().join("b");
    fs::create_dir_all(&b_dir).unwrap();
    fs::write(b_dir.join("late.bin"), &data).unwrap();
    let b = peer(&b_dir, &index, &[]);
    let (code, out, err) = get.finish(Duration::from_secs(60));
    assert_eq!(code, 0, "{out}{err}");
    let v = json(&out);
    assert_eq!(sources(&v), ["b", "h0"], "{out}");
    assert!(status_number(b.addr, "bytes_uploaded") > 0);
    assert_eq!(fs::read(dest.join("late.bin")).unwrap(), data);
}

#[test]
fn when_every_holder_died_a_holder_that_appears_later_finishes_the_download() {
    let root = tempfile::tempdir().unwrap();
    let data = noise(8 * 1024 * 1024, 23);
    let index = index(root.path(), &[]);
    let mut first = holders_of(
        root.path(),
        &index,
        1,
        "phoenix.bin",
        &data,
        &["--max-upload-rate", "2M"],
    );
    let dest = root.path().join("dest");
    let get = Args::get("phoenix.bin")
        .index(index.addr)
        .dir(&dest)
        .json()
        .background(root.path());
    let state_dir = dest.join(".p2pshare");
    eventually("progress recorded", DEADLINE, || {
        state_file(&state_dir).is_some()
    });
    first[0].kill9();
    // The index still lists the dead holder (its lease runs for 30 s); the new one
    // comes up on another port.
    let b_dir = root.path().join("b");
    fs::create_dir_all(&b_dir).unwrap();
    fs::write(b_dir.join("phoenix.bin"), &data).unwrap();
    let _b = peer(&b_dir, &index, &[]);
    let (code, out, err) = get.finish(Duration::from_secs(60));
    assert_eq!(code, 0, "{out}{err}");
    let v = json(&out);
    assert_eq!(sources(&v), ["b"], "{out}");
    assert!(notes(&v).contains("asking the index again"), "{out}");
    assert_eq!(fs::read(dest.join("phoenix.bin")).unwrap(), data);
}

#[test]
fn silent_and_stalled_holders_time_out_and_their_pieces_go_back() {
    let root = tempfile::tempdir().unwrap();
    let data = Arc::new(noise(8 * 1024 * 1024, 24));
    let index = index(root.path(), &[]);
    // The real holder needs about 4 s, longer than the 2 s I/O timeout.
    let _real = holders_of(
        root.path(),
        &index,
        1,
        "st.bin",
        &data,
        &["--max-upload-rate", "2M"],
    );
    let silent = FakeHolder::start(&index, "silent", "st.bin", &data, Fault::Silent);
    let stalled = FakeHolder::start(&index, "stalled", "st.bin", &data, Fault::StallMidPiece);
    let dest = root.path().join("dest");
    let (code, out, err) = Args::get("st.bin")
        .index(index.addr)
        .dir(&dest)
        .json()
        .flag("--io-timeout", "2s")
        .run(root.path());
    assert_eq!(code, 0, "{out}{err}");
    let v = json(&out);
    let n = notes(&v);
    assert!(
        n.contains("holder silent (") && n.contains("hello: timed out"),
        "{n}"
    );
    assert!(
        n.contains("holder stalled (") && n.contains("fetch: timed out"),
        "{n}"
    );
    assert!(n.contains("its pieces go back to the queue"), "{n}");
    assert_eq!(sources(&v), ["h0"]);
    assert_eq!(silent.served.load(Ordering::SeqCst), 0);
    assert_eq!(stalled.served.load(Ordering::SeqCst), 0);
    assert_eq!(fs::read(dest.join("st.bin")).unwrap(), *data);
}

#[test]
fn a_holder_that_refuses_mid_download_gives_its_pieces_back() {
    let root = tempfile::tempdir().unwrap();
    let data = Arc::new(noise(12 * 1024 * 1024, 25));
    let index = index(root.path(), &[]);
    let _real = holders_of(
        root.path(),
        &index,
        1,
        "rf.bin",
        &data,
        &["--max-upload-rate", "4M"],
    );
    let refuser = FakeHolder::start(&index, "refuser", "rf.bin", &data, Fault::RefuseAfter(2));
    let dest = root.path().join("dest");
    let (code, out, err) = Args::get("rf.bin")
        .index(index.addr)
        .dir(&dest)
        .json()
        .run(root.path());
    assert_eq!(code, 0, "{out}{err}");
    let v = json(&out);
    let n = notes(&v);
    assert!(
        n.contains("holder refuser (") && n.contains("unknown-id"),
        "{n}"
    );
    assert!(n.contains("its pieces go back to the queue"), "{n}");
    // The holder's address is said once, not again by the error it reports.
    let line = n.lines().find(|l| l.contains("holder refuser (")).unwrap();
    assert_eq!(line.matches("127.0.0.1:").count(), 1, "{line}");
    assert!(refuser.served.load(Ordering::SeqCst) >= 1);
    assert_eq!(fs::read(dest.join("rf.bin")).unwrap(), *data);
}

#[test]
fn a_piece_list_that_does_not_match_the_index_digest_is_never_used() {
    let root = tempfile::tempdir().unwrap();
    let data = Arc::new(noise(4 * 1024 * 1024, 26));
    let index = index(root.path(), &[]);
    let liar = FakeHolder::start(&index, "liar", "pl.bin", &data, Fault::WrongPieceList);
    let dest = root.path().join("dest");
    let args = Args::get("pl.bin")
        .index(index.addr)
        .dir(&dest)
        .flag("--io-timeout", "2s");
    // The liar alone: nothing is fetched, nothing kept.
    let (code, out, err) = args.run(root.path());
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("holder liar (") && out.contains("piece list does not match"),
        "{out}"
    );
    assert!(err.contains("piece list does not match"), "{err}");
    assert_eq!(liar.served.load(Ordering::SeqCst), 0);
    assert!(!dest.join("pl.bin").exists());
    let kept: Vec<_> = fs::read_dir(dest.join(".p2pshare/partial"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        kept.iter()
            .all(|n| !n.to_string_lossy().ends_with(".pieces")),
        "a piece list was kept: {kept:?}"
    );
    // With an honest holder beside it, the download completes (the liar may then
    // serve pieces, which are checked against the honest list like any others).
    let _honest = holders_of(root.path(), &index, 1, "pl.bin", &data, &[]);
    let (code, out, err) = args.run(root.path());
    assert_eq!(code, 0, "{out}{err}");
    // Which holder served the pieces is the scheduler's choice; what matters is
    // that the honest list was the one checked against.
    assert!(
        out.contains("downloaded ") && out.contains("verified"),
        "{out}"
    );
    assert_eq!(fs::read(dest.join("pl.bin")).unwrap(), *data);
}

#[test]
fn a_source_that_sends_two_bad_pieces_is_banned_and_the_output_names_it() {
    let root = tempfile::tempdir().unwrap();
    let data = noise(16 * 1024 * 1024, 27);
    let index = index(root.path(), &[]);
    // The good holder is capped, so the bad one is asked for pieces before the end.
    let _good = holders_of(
        root.path(),
        &index,
        1,
        "bad.bin",
        &data,
        &["--max-upload-rate", "8M"],
    );
    let _bad = FakeHolder::start(
        &index,
        "mallory",
        "bad.bin",
        &Arc::new(data.clone()),
        Fault::CorruptPieces,
    );
    for json_output in [false, true] {
        let dest = root.path().join(format!("dest-{json_output}"));
        let mut args = Args::get("bad.bin").index(index.addr).dir(&dest);
        if json_output {
            args = args.json();
        }
        let (code, out, err) = args.run(root.path());
        assert_eq!(code, 0, "{out}{err}");
        let text = if json_output {
            notes(&json(&out))
        } else {
            out.clone()
        };
        let ban = text
            .lines()
            .find(|l| l.contains("banned"))
            .unwrap_or_else(|| panic!("no ban in the output: {text}"));
        assert!(ban.contains("holder mallory (127.0.0.1:"), "{ban}");
        assert!(ban.contains("does not match its hash"), "{ban}");
        assert_eq!(text.matches("banned").count(), 1, "{text}");
        assert_eq!(fs::read(dest.join("bad.bin")).unwrap(), data);
    }
}

#[test]
fn a_damaged_recorded_piece_is_found_by_the_spot_check_and_fetched_again() {
    let root = tempfile::tempdir().unwrap();
    let data = noise(8 * 1024 * 1024, 28);
    let index = index(root.path(), &[]);
    let _h = holders_of(
        root.path(),
        &index,
        1,
        "chk.bin",
        &data,
        &["--max-upload-rate", "2M"],
    );
    let dest = root.path().join("dest");
    let args = Args::get("chk.bin").index(index.addr).dir(&dest);
    let get = args.background(root.path());
    let state_dir = dest.join(".p2pshare");
    eventually("two pieces recorded", DEADLINE, || {
        state_file(&state_dir).is_some_and(|s| marked_pieces(&s).is_some_and(|m| m.len() >= 2))
    });
    get.kill9();
    let state = state_file(&state_dir).unwrap();
    let marked = marked_pieces(&state).unwrap();
    assert!(marked.len() >= 2 && marked.len() < 8, "{marked:?}");
    // Damage a piece the state file says is done: the first, which the spot check
    // always hashes.
    let part = state.with_extension("part");
    let at = marked[0] as u64 * PIECE_SIZE + 100;
    let f = fs::OpenOptions::new().write(true).open(&part).unwrap();
    f.write_all_at(&[data[at as usize] ^ 1], at).unwrap();
    drop(f);
    let (code, out, err) = args.run(root.path());
    assert_eq!(code, 0, "{out}{err}");
    let expect = format!("resuming 'chk.bin': {} of 8 pieces", marked.len() - 1);
    assert!(out.contains(&expect), "expected '{expect}' in: {out}");
    assert_eq!(fs::read(dest.join("chk.bin")).unwrap(), data);
}

#[test]
fn classic_downloads_share_the_upload_limit() {
    let root = tempfile::tempdir().unwrap();
    let data = noise(2 * 1024 * 1024, 29);
    let index = index(root.path(), &[]);
    let h = holders_of(
        root.path(),
        &index,
        1,
        "c.bin",
        &data,
        &["--max-upload-rate", "1M"],
    );
    let addr: SocketAddr = h[0].addr;
    let started = Instant::now();
    let both: Vec<_> = (0..2)
        .map(|_| thread::spawn(move || classic(addr, "./h0/c.bin")))
        .collect();
    for t in both {
        assert_eq!(t.join().unwrap(), data);
    }
    // 4 MiB at 1 MB/s with a 0.1 s burst: at least 4.09 s, however fast the machine.
    // (A lower bound only: a slow machine takes longer, never shorter.)
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(3900), "took {took:?}");
}

#[test]
fn the_download_limit_paces_modern_and_classic_downloads() {
    let root = tempfile::tempdir().unwrap();
    let data = noise(3 * 1024 * 1024, 30);
    let index = index(root.path(), &[]);
    let _h = holders_of(root.path(), &index, 2, "m.bin", &data, &[]);
    let dest = root.path().join("dest");
    let started = Instant::now();
    let (code, out, err) = Args::get("m.bin")
        .index(index.addr)
        .dir(&dest)
        .flag("--max-download-rate", "1M")
        .run(root.path());
    assert_eq!(code, 0, "{out}{err}");
    // 3 MiB at 1 MB/s, from two holders sharing the one limit: at least 3 s.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(2900), "took {took:?}");

    // A classic holder (known to the index only through `set`), with the same limit.
    let old_dir = root.path().join("old");
    fs::create_dir_all(&old_dir).unwrap();
    fs::write(old_dir.join("legacy.bin"), &data).unwrap();
    let mut old = Args::peer_sharing(&old_dir)
        .index("127.0.0.1:9")
        .no_console()
        .start("old", root.path());
    old.wait_line(|l| l.contains("sharing 1 file "));
    let set = format!("set|legacy.bin|localhost|old|{}", old.addr.port());
    assert_eq!(classic(index.addr, &set), b"Successfully Updated");
    let started = Instant::now();
    let (code, out, err) = Args::get("legacy.bin")
        .index(index.addr)
        .dir(&dest)
        .flag("--max-download-rate", "1M")
        .args(&["--allow-unverified"])
        .run(root.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("NOT verified in advance"), "{out}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(2900), "took {took:?}");
    assert_eq!(fs::read(dest.join("legacy.bin")).unwrap(), data);
}

#[test]
fn a_damaged_piece_the_spot_check_misses_is_caught_by_its_hash_as_the_rest_arrives() {
    let root = tempfile::tempdir().unwrap();
    let data = noise(40 * 1024 * 1024, 31);
    let index = index(root.path(), &[]);
    let _h = holders_of(
        root.path(),
        &index,
        1,
        "big.bin",
        &data,
        &["--max-upload-rate", "6M"],
    );
    let dest = root.path().join("dest");
    let args = Args::get("big.bin").index(index.addr).dir(&dest);
    let get = args.background(root.path());
    let state_dir = dest.join(".p2pshare");
    eventually("twelve pieces recorded", DEADLINE, || {
        state_file(&state_dir).is_some_and(|s| marked_pieces(&s).is_some_and(|m| m.len() >= 12))
    });
    get.kill9();
    let state = state_file(&state_dir).unwrap();
    let marked = marked_pieces(&state).unwrap();
    assert!(marked.len() >= 12 && marked.len() < 40, "{marked:?}");
    // The spot check hashes every 16th recorded piece and the last four: the sixth
    // is not among them, so the disk thread checks it while the rest arrives.
    let victim = marked[5];
    let at = victim as u64 * PIECE_SIZE + 4096;
    let f = fs::OpenOptions::new()
        .write(true)
        .open(state.with_extension("part"))
        .unwrap();
    f.write_all_at(&[data[at as usize] ^ 0x80], at).unwrap();
    drop(f);
    let (code, out, err) = args.run(root.path());
    assert_eq!(code, 0, "{out}{err}");
    let first = format!("resuming 'big.bin': {} of 40 pieces", marked.len());
    assert!(out.contains(&first), "expected '{first}' in: {out}");
    // Against the piece list, which the content id proves: no whole-file pass.
    assert!(
        out.contains(
            "'big.bin': 1 piece kept from the earlier run did not match its hash; \
             checking every piece"
        ),
        "{out}"
    );
    // By then every other piece has been fetched: all but the damaged one are kept.
    let second = "resuming 'big.bin': 39 of 40 pieces already here (every one checked)";
    assert!(out.contains(second), "expected '{second}' in: {out}");
    assert_eq!(fs::read(dest.join("big.bin")).unwrap(), data);
}

#[test]
fn verify_sha1_checks_the_whole_file_against_what_the_holders_claim() {
    let root = tempfile::tempdir().unwrap();
    let data = Arc::new(noise(3 * 1024 * 1024 + 5, 50));
    let index = index(root.path(), &[]);
    let _h = holders_of(root.path(), &index, 1, "v.bin", &data, &[]);
    let dest = root.path().join("dest");
    let get = |name: &str| Args::get(name).index(index.addr).dir(&dest).json();

    // Without the flag the pieces prove the content, and no SHA-1 is computed.
    let (code, out, err) = get("v.bin").run(root.path());
    assert_eq!(code, 0, "{out}{err}");
    let v = json(&out);
    assert_eq!(v["id"], content_id(&data).to_string());
    assert!(v["sha1"].is_null(), "{out}");
    fs::remove_file(dest.join("v.bin")).unwrap();

    // With it: computed, and compared with what the holder claims.
    let (code, out, err) = get("v.bin").args(&["--verify-sha1"]).run(root.path());
    assert_eq!(code, 0, "{out}{err}");
    let v = json(&out);
    assert_eq!(v["sha1"], Sha1Digest::of(&data).to_string());
    assert!(
        notes(&v).contains("matches what the holders claim"),
        "{out}"
    );

    // Holders that agree on a false SHA-1 for true content: the content is still
    // what its id says, but a check that was asked for fails, and nothing is placed.
    let false_sha1 = Sha1Digest::of(b"not the file");
    let _liar = FakeHolder::start_claiming(
        &index,
        "claimer",
        "w.bin",
        &data,
        Fault::RefuseAfter(usize::MAX),
        false_sha1,
    );
    let (code, out, err) = Args::get("w.bin")
        .index(index.addr)
        .dir(&dest)
        .args(&["--verify-sha1"])
        .run(root.path());
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("the bytes match the content id, but their whole-file SHA-1 is")
            && err.contains(&format!("not {false_sha1} as its holders claim")),
        "{err}"
    );
    assert!(!dest.join("w.bin").exists());
    let (code, out, err) = get("w.bin").args(&["--verify-sha1"]).run(root.path());
    assert_eq!(code, 1, "{out}{err}");
    let v = json(&out);
    assert_eq!(
        v["sha1_mismatch"]["claimed"],
        false_sha1.to_string(),
        "{out}"
    );
    assert_eq!(
        v["sha1_mismatch"]["computed"],
        Sha1Digest::of(&data).to_string()
    );
    // Without the check the claim does not matter: the pieces prove the content.
    let (code, out, err) = get("w.bin").run(root.path());
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(fs::read(dest.join("w.bin")).unwrap(), *data);
}

/// Regression: two fake holders registered from one host outvoted the one real holder
/// of a name, and `get NAME` installed their 48 bytes as "verified".
#[test]
fn fake_holders_that_outnumber_the_real_one_do_not_pick_the_content() {
    let root = tempfile::tempdir().unwrap();
    let real = noise(300_000, 40);
    let fake = Arc::new(b"this is not the report you are looking for.....\n".to_vec());
    let index = index(root.path(), &[]);
    let _real = holders_of(root.path(), &index, 1, "report.pdf", &real, &[]);
    let _fakes: Vec<FakeHolder> = ["f1", "f2"]
        .iter()
        .map(|id| {
            FakeHolder::start(
                &index,
                id,
                "report.pdf",
                &fake,
                Fault::RefuseAfter(usize::MAX),
            )
        })
        .collect();
    let (real_id, fake_id) = (content_id(&real), content_id(&fake));
    let dest = root.path().join("dest");
    let get = Args::get("report.pdf").index(index.addr).dir(&dest);

    // Text: refused, the choices listed (short id, size, holders), how to pick.
    let (code, out, err) = get.run(root.path());
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("'report.pdf': its holders disagree on the content (2 different contents)"),
        "{err}"
    );
    let row = |id: Sha1Digest| err.lines().find(|l| l.contains(&id.short())).unwrap_or("");
    assert!(
        row(real_id).contains("293.0 KiB") && row(real_id).ends_with("1 holder"),
        "{err}"
    );
    assert!(
        row(fake_id).contains("48 B") && row(fake_id).ends_with("2 holders"),
        "{err}"
    );
    assert!(err.contains("p2pshare get report.pdf --id ID,"), "{err}");
    assert!(!dest.join("report.pdf").exists());

    // JSON: the choices as an array in the error object.
    let (code, out, err) = get.clone().json().run(root.path());
    assert_eq!(code, 1, "{out}{err}");
    let v = json(&out);
    assert_eq!(v["exit_code"], 1);
    assert!(v["error"].as_str().unwrap().contains("disagree"), "{out}");
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2, "{out}");
    let real_row = choices
        .iter()
        .find(|c| c["id"] == real_id.to_string())
        .unwrap();
    assert_eq!(
        (real_row["size"].as_u64(), real_row["holders"].as_u64()),
        (Some(300_000), Some(1))
    );
    assert!(!dest.join("report.pdf").exists());

    // The user picks the real one by its short id: downloaded and verified.
    let (code, out, err) = get.clone().flag("--id", real_id.short()).run(root.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verified"), "{out}");
    assert_eq!(fs::read(dest.join("report.pdf")).unwrap(), real);
}

#[test]
fn a_console_get_refuses_disagreeing_holders_and_takes_the_content_picked() {
    let root = tempfile::tempdir().unwrap();
    let real = noise(200_000, 41);
    let fake = Arc::new(vec![b'x'; 48]);
    let index = index(root.path(), &[]);
    let _real = holders_of(root.path(), &index, 1, "notes.txt", &real, &[]);
    let _fakes: Vec<FakeHolder> = ["f1", "f2", "f3"]
        .iter()
        .map(|id| {
            FakeHolder::start(
                &index,
                id,
                "notes.txt",
                &fake,
                Fault::RefuseAfter(usize::MAX),
            )
        })
        .collect();
    let me = root.path().join("me");
    fs::create_dir_all(&me).unwrap();
    let mut p = console_peer(&me, &index, &[]);
    let real_id = content_id(&real);

    p.type_line("get notes.txt");
    p.wait_line(|l| l.contains("get failed: 'notes.txt': its holders disagree"));
    p.wait_line(|l| l.contains(&real_id.short()) && l.ends_with("1 holder"));
    p.wait_line(|l| l.contains("pick one: 'get notes.txt ID'"));
    assert!(!me.join("notes.txt").exists());

    // `get NAME ID` picks one content.
    p.type_line(&format!("get notes.txt {}", real_id.short()));
    p.wait_line(|l| l.starts_with("downloaded notes.txt") && l.contains("verified"));
    assert_eq!(fs::read(me.join("notes.txt")).unwrap(), real);
    // It shares the file onward under its content id, but without a whole-file SHA-1:
    // it did not compute one, and a holder's claim is never taken as its own.
    eventually("the download published with no SHA-1", DEADLINE, || {
        let mut raw = Raw::connect(index.addr);
        let n: usize = raw
            .ask(&format!("get|notes.txt|{real_id}"))
            .strip_prefix("ok|")
            .unwrap()
            .parse()
            .unwrap();
        let rows: Vec<String> = (0..n).map(|_| raw.line()).collect();
        let sha1s: Vec<&str> = rows.iter().map(|r| r.split('|').nth(5).unwrap()).collect();
        sha1s.len() == 2
            && sha1s.contains(&"-")
            && sha1s.contains(&Sha1Digest::of(&real).to_string().as_str())
    });

    // `search` then `get N` picks one content too (here the fake one, on purpose).
    let other = root.path().join("other");
    fs::create_dir_all(&other).unwrap();
    let mut q = console_peer(&other, &index, &[]);
    q.type_line("search notes");
    let row = q.wait_line(|l| l.contains("notes.txt") && l.contains("3 holders"));
    let n = row.split('.').next().unwrap().trim().to_owned();
    q.type_line(&format!("get {n}"));
    q.wait_line(|l| l.starts_with("downloaded notes.txt") && l.contains("(48 B, verified"));
}

/// A partial download left by the earlier format (named by the whole-file SHA-1,
/// recorded as `P2PPART1`) is resumed under the content id it migrates to, and so is
/// one whose id cannot be derived, adopted because its holders claim that SHA-1.
#[test]
fn a_partial_of_the_earlier_format_is_resumed_under_its_content_id() {
    let root = tempfile::tempdir().unwrap();
    let data = noise(3 * PIECE_SIZE as usize + 7, 60);
    let index = index(root.path(), &[]);
    let _h = holders_of(root.path(), &index, 1, "old.bin", &data, &[]);
    for with_list in [true, false] {
        let dest = root.path().join(format!("dest-{with_list}"));
        let partial = dest.join(".p2pshare/partial");
        fs::create_dir_all(&partial).unwrap();
        let sha1 = Sha1Digest::of(&data);
        let old = |ext: &str| partial.join(format!("{}.{ext}", sha1.hex()));
        // Pieces 0 and 2 arrived; the rest of the partial is zeros.
        let mut part = vec![0u8; data.len()];
        for i in [0, 2] {
            let at = i * PIECE_SIZE as usize;
            part[at..at + PIECE_SIZE as usize].copy_from_slice(&data[at..at + PIECE_SIZE as usize]);
        }
        fs::write(old("part"), &part).unwrap();
        let mut record = StateRecord {
            id: sha1,
            size: data.len() as u64,
            name: "old.bin".into(),
            verified: vec![true, false, true, false],
        }
        .encode();
        record[..8].copy_from_slice(b"P2PPART1");
        let sealed = record.len() - 20;
        let check = Sha1Digest::of(&record[..sealed]);
        record[sealed..].copy_from_slice(&check.0);
        fs::write(old("state"), record).unwrap();
        if with_list {
            let list: Vec<u8> = piece_list(&data).iter().flat_map(|d| d.0).collect();
            fs::write(old("pieces"), list).unwrap();
        }
        let (code, out, err) = Args::get("old.bin")
            .index(index.addr)
            .dir(&dest)
            .json()
            .run(root.path());
        assert_eq!(code, 0, "{out}{err}");
        let v = json(&out);
        assert!(
            notes(&v).contains("resuming 'old.bin': 2 of 4 pieces already here"),
            "with_list {with_list}: {out}"
        );
        assert_eq!(v["resumed_bytes"], 2 * PIECE_SIZE, "{out}");
        assert_eq!(v["id"], content_id(&data).to_string());
        assert_eq!(fs::read(dest.join("old.bin")).unwrap(), data);
        let left: Vec<_> = fs::read_dir(&partial).unwrap().flatten().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
