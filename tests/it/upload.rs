//! Uploads end to end (`--allow-upload`): a file pushed with `p2pshare upload`, over
//! the line protocol by hand, and over HTTP (`POST /upload`, a form as curl sends
//! it, or raw bytes), then downloaded from the uploaded peer by another, verified;
//! every refusal with its reason and nothing left in the folder or the state dir;
//! uploads cut off half way, by the client or by a kill of the peer; the caps.

use crate::util::*;
use p2pshare::protocol::hash::Sha1Digest;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a peer's folder holds, dotfiles aside.
fn folder(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// The temporary files of a peer's uploads in flight.
fn temporaries(dir: &Path) -> usize {
    fs::read_dir(dir.join(".p2pshare/uploads")).map_or(0, |d| d.count())
}

/// A peer sharing `dir` (made empty) that takes uploads, with `extra` flags, and its
/// HTTP address.
fn upload_peer(dir: &Path, index: &Proc, extra: &[&str]) -> (Proc, SocketAddr) {
    fs::create_dir_all(dir).unwrap();
    let args = [&["--allow-upload", "--http", "127.0.0.1:0"], extra].concat();
    let mut p = peer(dir, index, &args);
    let http = http_addr(&mut p);
    (p, http)
}

/// `p2pshare upload FILE --peer ADDR ARGS`: (exit code, stdout, stderr).
fn upload(file: &Path, to: &Proc, args: &[&str]) -> (i32, String, String) {
    Args::of(&["upload", file.to_str().unwrap(), "--peer", &to.addr_str()])
        .args(args)
        .run(file.parent().unwrap())
}

/// Downloads `name` with a one-shot `get` into a folder of its own: the bytes.
fn download(index: &Proc, name: &str, root: &Path) -> Vec<u8> {
    let dest = root.join(format!("got-{name}"));
    let mut last = String::new();
    // The uploaded peer publishes at once; the index may take a moment to answer.
    eventually("the uploaded file can be downloaded", DEADLINE, || {
        let (code, out, err) = Args::get(name).index(index.addr).dir(&dest).run(root);
        last = format!("{out}{err}");
        code == 0
    });
    assert!(
        last.contains("downloaded") || last.contains("already"),
        "{last}"
    );
    fs::read(dest.join(name)).unwrap()
}

#[test]
fn a_file_pushed_with_p2pshare_upload_is_shared_and_another_peer_downloads_it() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let index = index(root, &[]);
    let share = root.join("share");
    let (mut p, _) = upload_peer(&share, &index, &[]);
    let data = noise(3 * 1024 * 1024 + 123, 11);
    let file = root.join("report.bin");
    fs::write(&file, &data).unwrap();

    let (code, out, err) = upload(&file, &p, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("uploaded report.bin (3.0 MiB"), "{out}");
    p.wait_line(|l| l.contains("received 'report.bin'") && l.contains("by upload from 127.0.0.1"));
    assert_eq!(fs::read(share.join("report.bin")).unwrap(), data);
    assert_eq!(temporaries(&share), 0);
    // Another peer (a one-shot get) downloads it from the uploaded one, verified.
    assert_eq!(download(&index, "report.bin", root), data);

    // Again: the peer has it, nothing is sent; in JSON, seed 002's shape.
    let (code, out, err) = upload(&file, &p, &["--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["filename"], "report.bin");
    assert_eq!(v["status"], "exists");
    assert_eq!(v["id"], content_id(&data).to_string());
    assert_eq!(v["sha1"], Sha1Digest::of(&data).to_string());
    // Under another name (--name) it is another file.
    let (code, out, err) = upload(&file, &p, &["--name", "copy.bin", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"status\":\"uploaded\""), "{out}");
    assert_eq!(folder(&share), vec!["copy.bin", "report.bin"]);
}

/// One HTTP exchange on a fresh connection: (status, head, body). With `expect`,
/// the head goes first with `Expect: 100-continue`, and the body only after the
/// server's `100 Continue` (a final answer instead ends the exchange unsent).
fn http(addr: SocketAddr, head: &str, body: &[u8], expect: bool) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let expect_line = if expect {
        "Expect: 100-continue\r\n"
    } else {
        ""
    };
    let head = format!(
        "{head}Host: localhost\r\nContent-Length: {}\r\n{expect_line}Connection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    if expect {
        let first = read_head(&mut s);
        if !first.starts_with("HTTP/1.1 100 ") {
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
            return answer(&first, rest);
        }
    }
    // A server that refuses half way closes: what it said is still read.
    let _ = s.write_all(body);
    let head = read_head(&mut s);
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    answer(&head, rest)
}

/// The bytes up to and with the next `\r\n\r\n`.
fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn answer(head: &str, body: Vec<u8>) -> (u16, String, Vec<u8>) {
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_owned(), body)
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

const BOUNDARY: &str = "------------------------upload-test-5a1b";

/// A form as `curl -F file=@NAME` sends it.
fn form(filename: &str, data: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// `POST /upload?QUERY` with a form holding `data` as `filename`.
fn post_form(addr: SocketAddr, query: &str, filename: &str, data: &[u8]) -> (u16, String, Vec<u8>) {
    let head = format!(
        "POST /upload?{query} HTTP/1.1\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
    );
    http(addr, &head, &form(filename, data), true)
}

fn sha1_hex(data: &[u8]) -> String {
    Sha1Digest::of(data).hex()
}

#[test]
fn a_file_posted_over_http_is_shared_and_another_peer_downloads_it() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let index = index(root, &[]);
    let share = root.join("share");
    let (mut p, h) = upload_peer(&share, &index, &[]);
    let doc = b"Hello, this is a test document.".to_vec();

    // Seed 002's exchange: a form with the file, answered with its name and status.
    let (status, head, body) = post_form(h, &format!("sha1={}", sha1_hex(&doc)), "mydoc.txt", &doc);
    assert_eq!(status, 201, "{head}");
    let v = json(&body);
    assert_eq!(v["filename"], "mydoc.txt");
    assert_eq!(v["status"], "uploaded");
    assert_eq!(v["id"], content_id(&doc).to_string());
    assert_eq!(v["size"], 31);
    assert!(head.contains("Location: /download/mydoc.txt"), "{head}");
    p.wait_line(|l| l.contains("received 'mydoc.txt'"));
    let (status, _, bytes) = http(h, "GET /download/mydoc.txt HTTP/1.1\r\n", b"", false);
    assert_eq!((status, bytes), (200, doc.clone()));
    let (status, _, _) = http(h, "GET /download/missing.txt HTTP/1.1\r\n", b"", false);
    assert_eq!(status, 404);

    // Larger than any body the interface reads whole (1 MiB), by content id, as raw
    // bytes and chunked: streamed to disk.
    let big = noise(5 * 1024 * 1024 + 7, 5);
    let (status, head, body) = http(
        h,
        &format!(
            "POST /upload?name=big.bin&id={} HTTP/1.1\r\nContent-Type: application/octet-stream\r\n",
            content_id(&big)
        ),
        &big,
        true,
    );
    assert_eq!(status, 201, "{head}{}", String::from_utf8_lossy(&body));
    let mut chunked = Vec::new();
    for part in big.chunks(70_000) {
        chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let mut s = TcpStream::connect(h).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST /upload?name=chunked.bin&sha1={} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
        sha1_hex(&big)
    )
    .unwrap();
    s.write_all(&chunked).unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 201 "), "{head}");
    // Read whole, the body leaves the connection open for the next request.
    assert!(!head.contains("Connection: close"), "{head}");
    s.write_all(
        b"GET /download/chunked.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let at = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(
        rest[at + 4..].ends_with(&big),
        "the second answer is the file"
    );

    assert_eq!(download(&index, "mydoc.txt", root), doc);
    assert_eq!(download(&index, "big.bin", root), big);
    assert_eq!(folder(&share), vec!["big.bin", "chunked.bin", "mydoc.txt"]);
    assert_eq!(temporaries(&share), 0);

    // The metrics count them.
    let (_, _, metrics) = http(h, "GET /metrics HTTP/1.1\r\n", b"", false);
    let text = String::from_utf8_lossy(&metrics).into_owned();
    let accepted = text
        .lines()
        .find_map(|l| l.strip_prefix("p2pshare_uploads_accepted_total "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(accepted >= 3.0, "{text}");
    assert!(
        text.contains("p2pshare_uploads_received_bytes_total"),
        "{text}"
    );
}

#[test]
fn curl_uploads_a_form_as_seed_002_did() {
    let Some(curl) = tool("curl", &["curl"], "bash tests/tools.sh installs it") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let index = index(root, &[]);
    let share = root.join("share");
    let (_p, h) = upload_peer(&share, &index, &[]);
    // Over 1 MiB, curl asks `Expect: 100-continue` first.
    let data = noise(2 * 1024 * 1024 + 1, 3);
    let file = root.join("mydoc.txt");
    fs::write(&file, &data).unwrap();
    let curl_run = |args: &[String]| {
        let out = std::process::Command::new(&curl)
            .args(["-sS", "--max-time", "20"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let out = curl_run(&[
        "-F".into(),
        format!("file=@{}", file.display()),
        format!("http://{h}/upload?sha1={}", sha1_hex(&data)),
    ]);
    let v = json(&out);
    assert_eq!(v["filename"], "mydoc.txt", "{v}");
    assert_eq!(v["status"], "uploaded", "{v}");
    let got = curl_run(&[format!("http://{h}/download/mydoc.txt")]);
    assert_eq!(got, data);
    // Without a hash, the answer says how to compute one.
    let out = curl_run(&[
        "-F".into(),
        format!("file=@{};filename=other.txt", file.display()),
        format!("http://{h}/upload"),
    ]);
    let v = json(&out);
    assert_eq!(v["status"], 400);
    assert!(v["error"].as_str().unwrap().contains("sha1sum"), "{v}");
    assert_eq!(folder(&share), vec!["mydoc.txt"]);
}

#[test]
fn every_refusal_over_http_says_why_and_keeps_nothing() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let index = index(root, &[]);
    let share = root.join("share");
    let (_p, h) = upload_peer(
        &share,
        &index,
        &["--upload-extensions", "txt,pdf", "--max-upload-size", "1M"],
    );
    let doc = b"some text".to_vec();
    let q = format!("sha1={}", sha1_hex(&doc));
    let error = |r: &(u16, String, Vec<u8>)| json(&r.2)["error"].as_str().unwrap().to_owned();

    // No hash: the client is told how to compute one.
    let r = post_form(h, "", "a.txt", &doc);
    assert_eq!(r.0, 400);
    assert!(error(&r).contains("sha1sum FILE"), "{}", error(&r));
    // Names that leave the folder or reach the state dir, from the form or the query.
    for name in [
        "../x.txt",
        "..",
        ".p2pshare",
        ".hidden.txt",
        "a/b.txt",
        "C:\\dir\\c.txt",
    ] {
        let r = post_form(h, &q, name, &doc);
        assert_eq!(r.0, 400, "{name}: {}", error(&r));
        let r = post_form(
            h,
            &format!("{q}&name={}", name.replace('/', "%2F")),
            "ok.txt",
            &doc,
        );
        assert_eq!(r.0, 400, "?name={name}: {}", error(&r));
    }
    // An extension not taken.
    let r = post_form(h, &q, "run.exe", &doc);
    assert_eq!(r.0, 400);
    assert!(
        error(&r).contains("takes only names ending in .txt, .pdf"),
        "{}",
        error(&r)
    );
    // Too large: refused from its length, before the body is sent.
    let big = noise(2 * 1024 * 1024, 1);
    let r = http(
        h,
        &format!(
            "POST /upload?name=big.txt&{q} HTTP/1.1\r\nContent-Type: application/octet-stream\r\n"
        ),
        &big,
        true,
    );
    assert_eq!(r.0, 413, "{}", r.1);
    assert!(r.1.contains("Connection: close"), "{}", r.1);
    // ... and in a chunked form, when the bytes pass the cap.
    let mut s = TcpStream::connect(h).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "POST /upload?sha1={} HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\n\r\n", sha1_hex(&big)).unwrap();
    let body = form("big.txt", &big);
    for part in body.chunks(100_000) {
        if write!(s, "{:x}\r\n", part.len()).is_err()
            || s.write_all(part).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 413 "), "{head}");
    // Bytes that are not what the query says.
    let r = post_form(h, &q, "liar.txt", b"other text");
    assert_eq!(r.0, 422);
    assert!(error(&r).contains("nothing was kept"), "{}", error(&r));
    // A name the peer has with other content; the same content is a success.
    assert_eq!(post_form(h, &q, "doc.txt", &doc).0, 201);
    let other = b"other text".to_vec();
    let r = post_form(h, &format!("sha1={}", sha1_hex(&other)), "doc.txt", &other);
    assert_eq!(r.0, 409, "{}", error(&r));
    let r = post_form(h, &q, "doc.txt", &doc);
    assert_eq!(r.0, 200);
    assert_eq!(json(&r.2)["status"], "exists");
    // A body that is not a form, a form without its end, a form without a file.
    let r = http(
        h,
        &format!("POST /upload?{q}&name=x.txt HTTP/1.1\r\nContent-Type: text/plain\r\n"),
        &doc,
        false,
    );
    assert_eq!(r.0, 415);
    let mut cut = form("cut.txt", &doc);
    cut.truncate(cut.len() - 10);
    let r = http(
        h,
        &format!("POST /upload?{q} HTTP/1.1\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"),
        &cut,
        false,
    );
    assert_eq!(r.0, 400);
    assert!(error(&r).contains("final delimiter"), "{}", error(&r));
    let r = http(
        h,
        &format!("POST /upload?{q} HTTP/1.1\r\nContent-Type: multipart/form-data\r\n"),
        &doc,
        false,
    );
    assert_eq!(r.0, 400);
    assert!(error(&r).contains("boundary"), "{}", error(&r));
    let fields = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--{BOUNDARY}--\r\n");
    let r = http(
        h,
        &format!("POST /upload?{q} HTTP/1.1\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"),
        fields.as_bytes(),
        false,
    );
    assert_eq!(r.0, 400);
    assert!(error(&r).contains("no part named 'file'"), "{}", error(&r));
    // A page of another site cannot post here (this listener has no token).
    let r = http(
        h,
        &format!("POST /upload?{q}&name=csrf.txt HTTP/1.1\r\nOrigin: http://evil.example\r\nContent-Type: application/octet-stream\r\n"),
        &doc,
        false,
    );
    assert_eq!(r.0, 403);

    assert_eq!(folder(&share), vec!["doc.txt"]);
    eventually("no temporary file is left", DEADLINE, || {
        temporaries(&share) == 0
    });
    let (_, _, metrics) = http(h, "GET /metrics HTTP/1.1\r\n", b"", false);
    let text = String::from_utf8_lossy(&metrics).into_owned();
    for reason in [
        "bad-name",
        "extension",
        "too-large",
        "mismatch",
        "exists",
        "bad-request",
    ] {
        assert!(
            text.contains(&format!(
                "p2pshare_uploads_refused_total{{reason=\"{reason}\"}}"
            )),
            "{reason}:\n{text}"
        );
    }
}

#[test]
fn a_peer_without_allow_upload_refuses_and_a_token_guards_http_uploads() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let index = index(root, &[]);
    let closed = root.join("closed");
    fs::create_dir_all(&closed).unwrap();
    let mut p = peer(&closed, &index, &["--http", "127.0.0.1:0"]);
    let h = http_addr(&mut p);
    let file = root.join("a.txt");
    fs::write(&file, b"a").unwrap();
    let (code, out, err) = upload(&file, &p, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("this peer does not take uploads"), "{err}");
    assert!(err.contains("--allow-upload"), "{err}");
    let (code, out, _) = upload(&file, &p, &["--json"]);
    assert_eq!(code, 1);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["code"],
        "forbidden"
    );
    let r = post_form(h, &format!("sha1={}", sha1_hex(b"a")), "a.txt", b"a");
    assert_eq!(r.0, 403, "{}", r.1);
    assert!(folder(&closed).is_empty());

    // With a token, an upload needs it.
    let token = root.join("token");
    fs::write(&token, "upload-token-0123456789\n").unwrap();
    let (_q, h) = upload_peer(
        &root.join("open"),
        &index,
        &["--http-token-file", token.to_str().unwrap()],
    );
    let head = format!(
        "POST /upload?name=a.txt&sha1={} HTTP/1.1\r\nContent-Type: application/octet-stream\r\n",
        sha1_hex(b"a")
    );
    assert_eq!(http(h, &head, b"a", true).0, 401);
    let authorized = format!("{head}Authorization: Bearer upload-token-0123456789\r\n");
    assert_eq!(http(h, &authorized, b"a", true).0, 201);
}

/// Says hello as a client on a raw connection to a peer, and offers `data` as
/// `name`: the first answer.
fn offer(raw: &mut Raw, name: &str, data: &[u8]) -> String {
    raw.ask(&format!(
        "upload|{name}|{}|{}",
        data.len(),
        content_id(data)
    ))
}

#[test]
fn every_refusal_over_the_line_protocol_says_why_and_keeps_nothing() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let index = index(root, &[]);
    let share = root.join("share");
    let (p, _) = upload_peer(
        &share,
        &index,
        &["--upload-extensions", ".TXT", "--max-upload-size", "64k"],
    );
    let mut raw = Raw::connect(p.addr);
    // A session first.
    assert!(offer(&mut raw, "a.txt", b"a").starts_with("err|bad-request|'upload' needs a session"));
    assert!(raw
        .hello_as("client", "uploader", 0)
        .starts_with("ok|peer|"));
    for name in [
        "../x.txt",
        "..",
        ".p2pshare",
        ".p2pshare-uploads",
        "a/b.txt",
        "a\\b.txt",
    ] {
        let reply = offer(&mut raw, name, b"a");
        assert!(reply.starts_with("err|bad-name|"), "{name}: {reply}");
    }
    let reply = offer(&mut raw, "a.sh", b"a");
    assert!(
        reply.starts_with("err|bad-name|'a.sh': this peer takes only names ending in .txt"),
        "{reply}"
    );
    let reply = offer(&mut raw, "big.txt", &vec![0u8; 65 * 1024]);
    assert!(
        reply.starts_with("err|too-large|65.0 KiB is over this peer's upload limit"),
        "{reply}"
    );
    // The line protocol always names the content: no id is no request.
    assert!(raw
        .ask("upload|a.txt|1")
        .starts_with("err|bad-request|wrong number of fields"));
    // Bytes that are not the content named.
    let data = b"the real thing".to_vec();
    assert_eq!(offer(&mut raw, "real.txt", &data), "ok|send|14");
    raw.send(b"the fake thing");
    let reply = raw.line();
    assert!(
        reply.starts_with("err|bad-content|'real.txt': the bytes received are not the content id"),
        "{reply}"
    );
    // The connection goes on: the real bytes are taken.
    assert_eq!(offer(&mut raw, "real.txt", &data), "ok|send|14");
    raw.send(&data);
    assert_eq!(
        raw.line(),
        format!(
            "ok|uploaded|real.txt|{}|{}",
            content_id(&data),
            Sha1Digest::of(&data)
        )
    );
    // Taken: other content is refused at once, the same is a success at once.
    assert!(offer(&mut raw, "real.txt", b"other").starts_with("err|conflict|"));
    assert!(offer(&mut raw, "real.txt", &data).starts_with("ok|exists|real.txt|"));
    // The client refuses a name it would have to send under another one.
    let file = root.join("x.txt");
    fs::write(&file, b"x").unwrap();
    let (code, _, err) = upload(&file, &p, &["--name", "../x.txt"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("choose one with --name"), "{err}");
    assert_eq!(folder(&share), vec!["real.txt"]);
    assert_eq!(temporaries(&share), 0);
}

#[test]
fn one_upload_at_a_time_per_address_and_a_cap_in_all() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let index = index(root, &[]);
    let share = root.join("share");
    let (p, _) = upload_peer(&share, &index, &["--max-uploads", "2"]);
    let data = b"0123456789".to_vec();
    let session = |from: Ipv4Addr| {
        let mut raw = Raw::connect_from(from, p.addr);
        assert!(raw
            .hello_as("client", "uploader", 0)
            .starts_with("ok|peer|"));
        raw
    };
    let mut first = session(Ipv4Addr::new(127, 0, 0, 1));
    assert_eq!(offer(&mut first, "a.txt", &data), "ok|send|10");
    let mut again = session(Ipv4Addr::new(127, 0, 0, 1));
    let reply = offer(&mut again, "b.txt", &data);
    assert!(
        reply.starts_with("err|busy|127.0.0.1 has an upload running here already"),
        "{reply}"
    );
    let mut other = session(Ipv4Addr::new(127, 0, 0, 2));
    assert_eq!(offer(&mut other, "b.txt", &data), "ok|send|10");
    let mut third = session(Ipv4Addr::new(127, 0, 0, 3));
    let reply = offer(&mut third, "c.txt", &data);
    assert!(
        reply.starts_with("err|busy|this peer takes 2 uploads at once"),
        "{reply}"
    );
    // An upload that ends gives its slot back.
    first.send(&data);
    assert!(first.line().starts_with("ok|uploaded|a.txt|"));
    assert!(offer(&mut again, "b2.txt", &data).starts_with("ok|send|10"));
    again.send(&data);
    assert!(again.line().starts_with("ok|uploaded|b2.txt|"));
}

#[test]
fn an_upload_cut_off_half_way_leaves_nothing_even_when_the_peer_is_killed() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let index = index(root, &[]);
    let share = root.join("share");
    let (mut p, h) = upload_peer(&share, &index, &[]);
    let data = noise(1024 * 1024, 9);

    // Over the line protocol: half the bytes, then the client goes.
    let mut raw = Raw::connect(p.addr);
    assert!(raw
        .hello_as("client", "uploader", 0)
        .starts_with("ok|peer|"));
    assert_eq!(
        offer(&mut raw, "half.bin", &data),
        format!("ok|send|{}", data.len())
    );
    raw.send(&data[..data.len() / 2]);
    eventually("the upload's temporary file exists", DEADLINE, || {
        temporaries(&share) == 1
    });
    drop(raw);
    eventually("the temporary file is gone", DEADLINE, || {
        temporaries(&share) == 0
    });

    // Over HTTP: half the body, then the client goes.
    let mut s = TcpStream::connect(h).unwrap();
    write!(
        s,
        "POST /upload?name=half.bin&sha1={} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        sha1_hex(&data),
        data.len()
    )
    .unwrap();
    s.write_all(&data[..data.len() / 2]).unwrap();
    eventually("the upload's temporary file exists", DEADLINE, || {
        temporaries(&share) == 1
    });
    drop(s);
    eventually("the temporary file is gone", DEADLINE, || {
        temporaries(&share) == 0
    });

    // The peer killed in the middle: the temporary file outlives it, and goes when
    // the peer starts again.
    let mut raw = Raw::connect(p.addr);
    assert!(raw
        .hello_as("client", "uploader", 0)
        .starts_with("ok|peer|"));
    assert_eq!(
        offer(&mut raw, "half.bin", &data),
        format!("ok|send|{}", data.len())
    );
    raw.send(&data[..data.len() / 2]);
    eventually("the upload's temporary file exists", DEADLINE, || {
        temporaries(&share) == 1
    });
    p.kill9();
    drop(raw);
    assert_eq!(temporaries(&share), 1);
    let (_p, _) = upload_peer(&share, &index, &[]);
    assert_eq!(temporaries(&share), 0);
    assert!(folder(&share).is_empty());
    let leftovers: Vec<PathBuf> = fs::read_dir(share.join(".p2pshare/uploads"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn the_console_pushes_a_file_to_another_peer_as_itself() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let index = index(root, &[]);
    let (mut taker, _) = upload_peer(&root.join("taker"), &index, &[]);
    let me = root.join("me");
    fs::create_dir_all(&me).unwrap();
    let mut console = console_peer(&me, &index, &[]);
    let file = root.join("notes.txt");
    let data = noise(200_000, 4);
    fs::write(&file, &data).unwrap();
    console.type_line(&format!("upload {} {}", file.display(), taker.addr));
    let done = console.wait_line(|l| l.contains("uploaded notes.txt") || l.contains("failed"));
    assert!(done.contains("it is shared there"), "{done}");
    taker.wait_line(|l| l.contains("received 'notes.txt'"));
    assert_eq!(fs::read(root.join("taker/notes.txt")).unwrap(), data);
    // The session was the console peer's own: its key is in the taker's log.
    eventually("the taker logged the uploader's id", DEADLINE, || {
        taker.stderr_text().contains("(me, id ")
    });
    console.type_line(&format!("upload {} {}", file.display(), taker.addr));
    console.wait_line(|l| l.contains("has notes.txt already"));
    console.type_line("upload nowhere");
    console.wait_line(|l| l.starts_with("usage: upload FILE PEER"));
}

#[test]
fn a_payload_pipelined_behind_its_request_is_taken_and_a_stalled_one_is_dropped() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let index = index(root, &[]);
    let share = root.join("share");
    let (p, h) = upload_peer(&share, &index, &["--request-timeout", "1s"]);
    let mut raw = Raw::connect(p.addr);
    assert!(raw
        .hello_as("client", "uploader", 0)
        .starts_with("ok|peer|"));
    // A client sure of the go-ahead may send the bytes at once, and the next request
    // behind them: the payload is taken from what arrived with the request.
    let data = b"pipelined bytes".to_vec();
    let mut wire = format!("upload|piped.txt|{}|{}\n", data.len(), content_id(&data)).into_bytes();
    wire.extend_from_slice(&data);
    wire.extend_from_slice(b"ping\n");
    raw.send(&wire);
    assert_eq!(raw.line(), "ok|send|15");
    assert!(raw.line().starts_with("ok|uploaded|piped.txt|"));
    assert_eq!(raw.line(), "ok|pong");

    // A payload that stops arriving: refused within the request timeout, closed,
    // and nothing kept.
    let data = noise(100_000, 2);
    assert_eq!(offer(&mut raw, "stalled.bin", &data), "ok|send|100000");
    raw.send(&data[..10_000]);
    let reply = raw.line();
    assert!(
        reply.starts_with("err|bad-request|the payload stalled at 10000 of 100000 bytes"),
        "{reply}"
    );
    assert!(raw.read_to_end().is_empty(), "the connection closes");
    eventually("the temporary file is gone", DEADLINE, || {
        temporaries(&share) == 0
    });

    // The same over HTTP: 408.
    let mut s = TcpStream::connect(h).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST /upload?name=stalled.bin&sha1={} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        sha1_hex(&data),
        data.len()
    )
    .unwrap();
    s.write_all(&data[..10_000]).unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 408 "), "{head}");
    eventually("the temporary file is gone", DEADLINE, || {
        temporaries(&share) == 0
    });
    assert_eq!(folder(&share), vec!["piped.txt"]);
}
