//! The DHT across real processes and real UDP: the key-value store from the command
//! line, the console and HTTP; files found with every index server gone; and what a
//! hostile node sends: malformed packets, oversized values, bad signatures, stale
//! sequence numbers, and a node that answers with lies.

use crate::util::{self, eventually, http_addr, Args, Proc};
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

/// `p2pshare keygen --network` into ROOT/config/network.key.
pub(crate) fn network_key(root: &Path) -> String {
    let key = root.join("config/network.key");
    let (code, out, err) =
        Args::of(&["keygen", "--network", "--out", key.to_str().unwrap()]).run(root);
    assert_eq!(code, 0, "{out}{err}");
    key.to_str().unwrap().to_owned()
}

/// A seed on an ephemeral port with its DHT node on the same number, listing `others`.
pub(crate) fn dht_seed(root: &Path, name: &str, key: &str, others: &[&Proc]) -> Proc {
    others
        .iter()
        .fold(Args::seed_server().flag("--network-key", key), |a, s| {
            a.flag("--seed", s.addr)
        })
        .start(name, root)
}

/// `p2pshare kv ...` through `seed`, with the network key at `key`.
fn kv(root: &Path, seed: &Proc, key: &str, words: &[&str]) -> (i32, String, String) {
    Args::of(&[&["kv"], words].concat())
        .flag("--seed", seed.addr)
        .flag("--network-key", key)
        .run(root)
}

fn http(method: &str, addr: SocketAddr, path: &str, body: Option<&str>) -> (u16, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method]);
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "-d", b]);
    }
    let out = cmd.arg(format!("http://{addr}{path}")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_owned())
}

#[test]
fn values_put_anywhere_are_read_everywhere_and_a_missing_key_is_a_404() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let key = network_key(root);
    let s1 = dht_seed(root, "s1", &key, &[]);
    let s2 = dht_seed(root, "s2", &key, &[&s1]);
    std::fs::create_dir_all(root.join("p1")).unwrap();
    let index = util::index(root, &[]);
    let mut p1 = Args::peer_sharing(&root.join("p1"))
        .index(index.addr)
        .no_console()
        .flag("--seed", s1.addr)
        .flag("--network-key", &key)
        .flag("--http", "127.0.0.1:0")
        .start("p1", root);
    let web = http_addr(&mut p1);

    // The command line, through either seed.
    let (code, out, err) = kv(root, &s1, &key, &["put", "color", "blue"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = kv(root, &s2, &key, &["get", "color"]);
    assert_eq!((code, out.trim()), (0, "blue"));
    // HTTP on a peer, with seed 002's fields.
    let (status, body) = http("PUT", web, "/kv/fruit", Some(r#"{"value": "apple"}"#));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["key"].as_str(), v["status"].as_str()),
        (Some("fruit"), Some("success"))
    );
    let (code, out, _) = kv(root, &s2, &key, &["get", "fruit", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((code, v["value"].as_str()), (0, Some("apple")));
    let (status, body) = http("GET", web, "/kv/color", None);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, v["value"].as_str()), (200, Some("blue")));
    // Missing: exit 1 and `not found`; 404 over HTTP.
    let (code, _, err) = kv(root, &s1, &key, &["get", "shape"]);
    assert_eq!(code, 1);
    assert!(err.contains("not found"), "{err}");
    assert_eq!(http("GET", web, "/kv/shape", None).0, 404);
    // A removal, then the key reads as missing from everywhere.
    assert_eq!(http("DELETE", web, "/kv/color", None).0, 200);
    assert_eq!(kv(root, &s2, &key, &["get", "color"]).0, 1);
    assert_eq!(http("DELETE", web, "/kv/color", None).0, 404);
    // A stale compare-and-swap is refused and changes nothing.
    let (code, out, _) = kv(root, &s1, &key, &["put", "fruit", "pear", "--cas", "1"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(kv(root, &s2, &key, &["get", "fruit"]).1.trim(), "apple");
    // Without the network's key, a node reads but cannot write.
    std::fs::remove_file(&key).unwrap();
    let (code, _, err) = kv(root, &s1, &key, &["put", "fruit", "plum"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot write") || err.contains("not its key"),
        "{err}"
    );
    assert_eq!(kv(root, &s1, &key, &["get", "fruit"]).1.trim(), "apple");
}

#[test]
fn with_every_index_server_gone_a_new_peer_finds_and_downloads_a_file_by_name() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let key = network_key(root);
    let seed = dht_seed(root, "seed", &key, &[]);
    let mut index = util::index(root, &[]);
    let shared = root.join("holder");
    std::fs::create_dir_all(&shared).unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(shared.join("report.pdf"), &data).unwrap();
    let holder = util::peer(&shared, &index, &["--seed", &seed.addr_str()]);
    let dead_index = index.addr_str();
    index.kill9();
    let dest = root.join("new");
    // The peer announces within its first seconds; a get finds it once it has.
    eventually("a DHT get succeeds", Duration::from_secs(20), || {
        let (code, _, _) = Args::get("report.pdf")
            .index(&dead_index)
            .flag("--seed", seed.addr)
            .dir(&dest)
            .run(root);
        code == 0
    });
    assert_eq!(std::fs::read(dest.join("report.pdf")).unwrap(), data);
    // --no-index asks the DHT alone.
    let dest2 = root.join("new2");
    let (code, out, err) = Args::get("report.pdf")
        .args(&["--no-index"])
        .flag("--seed", seed.addr)
        .dir(&dest2)
        .run(root);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(std::fs::read(dest2.join("report.pdf")).unwrap(), data);
    drop(holder);
}

// ---- A minimal bencode, to speak KRPC by hand. ----

#[derive(Clone, Debug, PartialEq)]
enum B {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<B>),
    Dict(BTreeMap<Vec<u8>, B>),
}

fn enc(b: &B, out: &mut Vec<u8>) {
    match b {
        B::Int(i) => out.extend(format!("i{i}e").bytes()),
        B::Bytes(s) => {
            out.extend(format!("{}:", s.len()).bytes());
            out.extend(s);
        }
        B::List(l) => {
            out.push(b'l');
            l.iter().for_each(|x| enc(x, out));
            out.push(b'e');
        }
        B::Dict(d) => {
            out.push(b'd');
            for (k, v) in d {
                enc(&B::Bytes(k.clone()), out);
                enc(v, out);
            }
            out.push(b'e');
        }
    }
}

fn dec(s: &[u8]) -> Option<(B, &[u8])> {
    match *s.first()? {
        b'i' => {
            let end = s.iter().position(|&c| c == b'e')?;
            Some((
                B::Int(std::str::from_utf8(&s[1..end]).ok()?.parse().ok()?),
                &s[end + 1..],
            ))
        }
        b'l' | b'd' => {
            let dict = s[0] == b'd';
            let mut rest = &s[1..];
            let mut items = Vec::new();
            while *rest.first()? != b'e' {
                let (item, r) = dec(rest)?;
                items.push(item);
                rest = r;
            }
            let b = if dict {
                let mut d = BTreeMap::new();
                for pair in items.chunks(2) {
                    let B::Bytes(k) = &pair[0] else { return None };
                    d.insert(k.clone(), pair.get(1)?.clone());
                }
                B::Dict(d)
            } else {
                B::List(items)
            };
            Some((b, &rest[1..]))
        }
        _ => {
            let colon = s.iter().position(|&c| c == b':')?;
            let n: usize = std::str::from_utf8(&s[..colon]).ok()?.parse().ok()?;
            let start = colon + 1;
            Some((B::Bytes(s.get(start..start + n)?.to_vec()), &s[start + n..]))
        }
    }
}

fn dict(pairs: &[(&str, B)]) -> B {
    B::Dict(
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
            .collect(),
    )
}

fn bytes(b: &[u8]) -> B {
    B::Bytes(b.to_vec())
}

fn get<'a>(b: &'a B, key: &str) -> Option<&'a B> {
    match b {
        B::Dict(d) => d.get(key.as_bytes()),
        _ => None,
    }
}

/// Sends one KRPC query from `sock` to `to` and returns the answer, if one comes.
fn query(sock: &UdpSocket, to: SocketAddr, q: &str, args: B) -> Option<B> {
    let msg = dict(&[
        ("a", args),
        ("q", bytes(q.as_bytes())),
        ("t", bytes(b"tt01")),
        ("y", bytes(b"q")),
    ]);
    let mut out = Vec::new();
    enc(&msg, &mut out);
    sock.send_to(&out, to).unwrap();
    let mut buf = [0u8; 4096];
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    dec(&buf[..n]).map(|(b, _)| b)
}

/// The error code of a KRPC error answer.
fn error_code(answer: &B) -> Option<i64> {
    match get(answer, "e")? {
        B::List(l) => match l.first()? {
            B::Int(c) => Some(*c),
            _ => None,
        },
        _ => None,
    }
}

/// Signs a BEP 44 item with the network key in `key_file`.
fn sign(key_file: &str, seq: i64, v: &[u8], salt: &[u8]) -> ([u8; 32], [u8; 64]) {
    let key = p2pshare::identity::NodeKey::load(Path::new(key_file)).unwrap();
    let signing = ed25519_dalek::SigningKey::from_bytes(&key.secret_bytes());
    use ed25519_dalek::Signer;
    let msg = p2pshare::dht::value::signable(seq, v, salt);
    (key.public_bytes(), signing.sign(&msg).to_bytes())
}

#[test]
fn malformed_oversized_forged_and_stale_puts_are_refused_and_change_nothing() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let key = network_key(root);
    let seed = dht_seed(root, "seed", &key, &[]);
    let (code, out, err) = kv(root, &seed, &key, &["put", "language", "rust"]);
    assert_eq!(code, 0, "{out}{err}");
    let seq: i64 = {
        let (_, out, _) = kv(root, &seed, &key, &["get", "language", "--json"]);
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["seq"]
            .as_i64()
            .unwrap()
    };
    let target: SocketAddr = seed.addr;
    // Another host, as far as the seed can tell.
    let sock = UdpSocket::bind("127.0.0.2:0").unwrap();
    // Garbage, truncated bencode and a huge datagram: no answer, no harm.
    for junk in [&b"hello"[..], b"d1:ad2:id20:", &[0xff; 1400], b"d1:y1:qe"] {
        sock.send_to(junk, target).unwrap();
    }
    let id = bytes(&[1; 20]);
    // A token, as any writer gets one.
    let salt = b"language";
    let (public, _) = sign(&key, 0, b"", salt);
    let item_target = {
        use sha1::Digest;
        let mut h = sha1::Sha1::new();
        h.update(public);
        h.update(salt);
        h.finalize().to_vec()
    };
    let answer = query(
        &sock,
        target,
        "get",
        dict(&[("id", id.clone()), ("target", bytes(&item_target))]),
    )
    .expect("the seed answers get");
    let Some(B::Bytes(token)) = get(get(&answer, "r").unwrap(), "token").cloned() else {
        panic!("no token in {answer:?}")
    };
    let put = |v: &[u8], seq: i64, sig: [u8; 64]| {
        let args = dict(&[
            ("id", id.clone()),
            ("k", bytes(&public)),
            ("salt", bytes(salt)),
            ("seq", B::Int(seq)),
            ("sig", bytes(&sig)),
            // The crate's nodes want the target too (BEP 44 leaves it out).
            ("target", bytes(&item_target)),
            ("token", bytes(&token)),
            ("v", bytes(v)),
        ]);
        query(&sock, target, "put", args).map(|a| error_code(&a))
    };
    // A forged signature, a value over BEP 44's 1000 bytes, a stale sequence number.
    let (_, good_sig) = sign(&key, seq + 5, b"cobol", salt);
    let mut bad_sig = good_sig;
    bad_sig[0] ^= 1;
    assert_eq!(put(b"cobol", seq + 5, bad_sig), Some(Some(206)));
    let big = vec![b'x'; 1001];
    let (_, big_sig) = sign(&key, seq + 6, &big, salt);
    assert_eq!(put(&big, seq + 6, big_sig), Some(Some(205)));
    let (_, stale_sig) = sign(&key, seq - 1, b"cobol", salt);
    assert_eq!(put(b"cobol", seq - 1, stale_sig), Some(Some(302)));
    // None of it changed the value, and the seed still answers everyone.
    let (code, out, _) = kv(root, &seed, &key, &["get", "language"]);
    assert_eq!((code, out.trim()), (0, "rust"));
}

/// A DHT node that lies: every `get` is answered with a value of its own under a
/// higher sequence number but no valid signature, every `get_peers` with addresses
/// where nobody listens, and every other query with a plain answer.
fn liar() -> (
    SocketAddr,
    std::thread::JoinHandle<()>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let sock = UdpSocket::bind("127.0.0.3:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while !stopped.load(Ordering::Relaxed) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let Some((msg, _)) = dec(&buf[..n]) else {
                continue;
            };
            let (Some(B::Bytes(q)), Some(t)) = (get(&msg, "q"), get(&msg, "t")) else {
                continue;
            };
            let mut r = vec![("id", bytes(&[0x55; 20])), ("token", bytes(b"tok"))];
            match q.as_slice() {
                b"get" => {
                    r.push(("k", bytes(&[7; 32])));
                    r.push(("seq", B::Int(i64::MAX / 2)));
                    r.push(("sig", bytes(&[9; 64])));
                    r.push(("v", bytes(b"lies")));
                }
                b"get_peers" => {
                    // 127.0.0.9:1, where nothing listens.
                    r.push(("values", B::List(vec![bytes(&[127, 0, 0, 9, 0, 1])])));
                }
                _ => {}
            }
            let answer = dict(&[("r", dict(&r)), ("t", t.clone()), ("y", bytes(b"r"))]);
            let mut out = Vec::new();
            enc(&answer, &mut out);
            let _ = sock.send_to(&out, from);
        }
    });
    (addr, t, stop)
}

#[test]
fn a_node_that_answers_with_lies_changes_no_value_and_no_download() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let key = network_key(root);
    let seed = dht_seed(root, "seed", &key, &[]);
    let (code, out, err) = kv(root, &seed, &key, &["put", "animal", "tiger"]);
    assert_eq!(code, 0, "{out}{err}");
    let shared = root.join("holder");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("notes.txt"), b"the real notes").unwrap();
    let index = util::index(root, &[]);
    let _holder = util::peer(&shared, &index, &["--seed", &seed.addr_str()]);
    let (liar, thread, stop) = liar();
    let both = |a: Args| {
        a.flag("--dht-bootstrap", liar)
            .flag("--dht-bootstrap", seed.addr)
            .flag("--network-key", &key)
    };
    let (code, out, err) = both(Args::of(&["kv", "get", "animal"])).run(root);
    assert_eq!((code, out.trim()), (0, "tiger"), "{err}");
    let dest = root.join("dest");
    eventually("a download past the liar", Duration::from_secs(20), || {
        both(Args::get("notes.txt").args(&["--no-index"]).dir(&dest))
            .run(root)
            .0
            == 0
    });
    assert_eq!(
        std::fs::read(dest.join("notes.txt")).unwrap(),
        b"the real notes"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    thread.join().unwrap();
}

/// README's run of seed 002, step by step, on ephemeral ports: upload `mydoc.txt`,
/// download it back, the four values stored on some nodes and read on others, and a
/// missing key's 404; with p2pshare's commands, then with curl.
#[test]
fn seed_002s_run_is_reproduced_with_p2pshare_and_with_curl() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let key = network_key(root);
    let s1 = dht_seed(root, "s1", &key, &[]);
    let s2 = dht_seed(root, "s2", &key, &[&s1]);
    let mut nodes = Vec::new();
    let mut webs = Vec::new();
    for i in 1..=3 {
        let dir = root.join(format!("node{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut p = Args::peer_sharing(&dir)
            .no_console()
            .flag("--seed", s1.addr)
            .flag("--network-key", &key)
            .flag("--http", "127.0.0.1:0")
            .args(&["--allow-upload"])
            .start(&format!("node{i}"), root);
        webs.push(http_addr(&mut p));
        nodes.push(p);
    }
    let doc = b"Hello, this is a test document.\n";
    std::fs::write(root.join("mydoc.txt"), doc).unwrap();

    // p2pshare's own commands.
    let (code, out, err) = Args::of(&["upload", "mydoc.txt"])
        .flag("--peer", nodes[0].addr)
        .run(root);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("uploaded mydoc.txt"), "{out}");
    let back = root.join("back");
    eventually(
        "mydoc.txt is found on the DHT",
        Duration::from_secs(20),
        || {
            Args::get("mydoc.txt")
                .args(&["--no-index"])
                .flag("--seed", s1.addr)
                .dir(&back)
                .run(root)
                .0
                == 0
        },
    );
    assert_eq!(std::fs::read(back.join("mydoc.txt")).unwrap(), doc);
    assert_eq!(kv(root, &s1, &key, &["put", "color", "blue"]).0, 0);
    for (k, v) in [
        ("fruit", "apple"),
        ("animal", "tiger"),
        ("language", "python"),
    ] {
        let (code, out, err) = kv(root, &s2, &key, &["put", k, v]);
        assert_eq!(code, 0, "{out}{err}");
    }
    for (k, v) in [
        ("color", "blue"),
        ("fruit", "apple"),
        ("animal", "tiger"),
        ("language", "python"),
    ] {
        let (code, out, _) = kv(root, &s1, &key, &["get", k]);
        assert_eq!((code, out.trim()), (0, v), "{k}");
    }
    let (code, _, err) = kv(root, &s1, &key, &["get", "shape"]);
    assert_eq!(code, 1);
    assert!(err.contains("shape: not found"), "{err}");

    // curl, as seed 002's scripts did.
    let sha1 = {
        use sha1::Digest;
        let d = sha1::Sha1::digest(doc);
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let out = std::process::Command::new("curl")
        .args(["-s", "-F", "file=@mydoc.txt"])
        .arg(format!("http://{}/upload?sha1={sha1}", webs[0]))
        .current_dir(root)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["filename"], "mydoc.txt", "{v}");
    assert!(v["status"] == "uploaded" || v["status"] == "exists", "{v}");
    let (status, body) = http("GET", webs[0], "/download/mydoc.txt", None);
    assert_eq!((status, body.as_bytes()), (200, &doc[..]));
    let (status, body) = http("PUT", webs[0], "/kv/color", Some(r#"{"value": "blue"}"#));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, v["status"].as_str(), v["storing_node"].as_str()),
        (200, Some("success"), Some("node1"))
    );
    for (i, (k, val)) in [
        ("color", "blue"),
        ("fruit", "apple"),
        ("animal", "tiger"),
        ("language", "python"),
    ]
    .iter()
    .enumerate()
    {
        let (status, body) = http("GET", webs[1 + i % 2], &format!("/kv/{k}"), None);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!((status, v["value"].as_str()), (200, Some(*val)), "{k}");
    }
    assert_eq!(http("GET", webs[2], "/kv/shape", None).0, 404);
}
