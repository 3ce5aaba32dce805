//! The HTTP interface (`--http`) of the index and the peer, over real sockets: the
//! JSON endpoints, files with ranges, access with a token, and bad input of every
//! kind answered with a clear status while the node keeps serving.

use crate::util::{http_addr, index, peer};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// Sends raw bytes, reads to the end (the server closes: `Connection: close`, or an
/// error).
fn raw(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    parse(&all)
}

fn parse(all: &[u8]) -> Answer {
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(all)));
    let head = String::from_utf8_lossy(&all[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Answer {
        status,
        head,
        body: all[end + 4..].to_vec(),
    }
}

fn get(addr: SocketAddr, target: &str) -> Answer {
    raw(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn post(addr: SocketAddr, target: &str, body: &str, token: Option<&str>) -> Answer {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    raw(
        addr,
        format!(
            "POST {target} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

fn share(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join("report.bin"), &data).unwrap();
}

#[test]
fn the_index_and_a_peer_answer_json_files_and_ranges_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let mut idx = index(tmp.path(), &["--http", "127.0.0.1:0"]);
    let ih = http_addr(&mut idx);
    let dir = tmp.path().join("share");
    share(&dir);
    let mut p = peer(&dir, &idx, &["--http", "127.0.0.1:0"]);
    let ph = http_addr(&mut p);

    // Status: typed JSON, the same rows `status` gives.
    let st = get(ih, "/status");
    assert_eq!(st.status, 200, "{}", st.head);
    let st = st.json();
    assert_eq!(st["role"], "index");
    assert!(st["files"].is_u64(), "numbers are numbers: {st}");
    assert_eq!(get(ih, "/health").json()["health"], "ok");

    // Search and holders at the index.
    let found = get(ih, "/search?q=report").json();
    assert_eq!(found["results"][0]["name"], "report.bin", "{found}");
    assert_eq!(found["results"][0]["size"], 300_000);
    let holders = get(ih, "/files/report.bin/holders").json();
    assert_eq!(
        holders["holders"][0]["port"],
        p.addr.port() as u64,
        "{holders}"
    );
    assert_eq!(
        get(ih, "/files/nothing.bin/holders").json()["holders"],
        Value::Array(vec![])
    );
    assert_eq!(get(ih, "/search").status, 400);

    // The peer's files, and the bytes with a range, an ETag and a 304.
    let files = get(ph, "/files").json();
    assert_eq!(files["files"][0]["name"], "report.bin", "{files}");
    let id = files["files"][0]["id"].as_str().unwrap().to_owned();
    let whole = get(ph, "/files/report.bin");
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, std::fs::read(dir.join("report.bin")).unwrap());
    assert_eq!(whole.header("etag"), Some(format!("\"{id}\"")));
    let part = raw(
        ph,
        b"GET /files/report.bin HTTP/1.1\r\nRange: bytes=1000-1009\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(part.status, 206, "{}", part.head);
    assert_eq!(part.body, whole.body[1000..1010]);
    assert_eq!(
        part.header("content-range").as_deref(),
        Some("bytes 1000-1009/300000")
    );
    let cached = raw(
        ph,
        format!("GET /files/report.bin HTTP/1.1\r\nIf-None-Match: \"{id}\"\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(cached.status, 304);
    // A 304 has no body, so no length: one would have to be the whole file's.
    assert_eq!(cached.header("content-length"), None, "{}", cached.head);
    assert_eq!(cached.header("etag"), Some(format!("\"{id}\"")));
    for tags in ["*".to_owned(), format!("\"other\", W/\"{id}\"")] {
        let cached = raw(
            ph,
            format!("GET /files/report.bin HTTP/1.1\r\nIf-None-Match: {tags}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(cached.status, 304, "If-None-Match: {tags}: {}", cached.head);
    }
    // A Range in a unit the server does not know is ignored: the whole file.
    let other_unit = raw(
        ph,
        b"GET /files/report.bin HTTP/1.1\r\nRange: items=0-9\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(other_unit.status, 200, "{}", other_unit.head);
    assert_eq!(other_unit.body.len(), 300_000);
    let bad_range = raw(
        ph,
        b"GET /files/report.bin HTTP/1.1\r\nRange: bytes=400000-\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(bad_range.status, 416);
    assert_eq!(get(ph, "/files/missing.bin").status, 404);
    // A range of another version is not spliced onto this one: the whole file comes.
    let other = raw(
        ph,
        b"GET /files/report.bin HTTP/1.1\r\nRange: bytes=0-9\r\nIf-Range: \"sha1:0000000000000000000000000000000000000000\"\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(other.status, 200);
    assert_eq!(other.body.len(), 300_000);
    let same = raw(
        ph,
        format!("GET /files/report.bin HTTP/1.1\r\nRange: bytes=0-9\r\nIf-Range: \"{id}\"\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(same.status, 206);

    // The dashboard and the metrics are there on every role.
    let page = get(ph, "/");
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("<title>p2pshare</title>"));
    let metrics = get(ih, "/metrics");
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("content-type")
        .unwrap()
        .contains("openmetrics"));
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    assert!(
        text.contains(
            "p2pshare_requests_total{role=\"index-http\",verb=\"search\",outcome=\"ok\"}"
        ),
        "the searches above are counted:\n{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"));

    // A form post is not JSON: a web page cannot post here without a preflight.
    let form = raw(
        ph,
        b"POST /message HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    );
    assert_eq!(form.status, 415);
    // A message as seed 000 posts it, answered as seed 000 answers.
    let msg = post(
        ph,
        "/message",
        r#"{"sender": "alice", "msg": "hello"}"#,
        None,
    );
    assert_eq!(msg.status, 200, "{}", String::from_utf8_lossy(&msg.body));
    let msg = msg.json();
    assert_eq!(msg["status"], "received");
    assert_eq!(msg["from"], "alice");
    assert_eq!(msg["msg"], "hello");
    assert!(msg["current_node"].is_string());
    p.wait_line(|l| l.contains("message over HTTP from 'alice'") && l.ends_with("hello"));
    let events = get(ph, "/events").json();
    let last = &events["events"][0];
    assert_eq!(last["kind"], "http-message", "{events}");
    assert_eq!(last["from"], "alice");
    assert_eq!(last["text"], "hello");
    assert!(
        last["id"].is_null(),
        "an HTTP sender's name is proven by nothing"
    );
}

#[test]
fn bad_http_input_gets_a_clear_status_and_the_node_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let mut idx = index(
        tmp.path(),
        &["--http", "127.0.0.1:0", "--request-timeout", "1s"],
    );
    let h = http_addr(&mut idx);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "unknown path",
            b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(),
            404,
        ),
        (
            "wrong method",
            b"DELETE /status HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(),
            405,
        ),
        ("not HTTP", b"\x00\x01garbage\r\n\r\n".to_vec(), 400),
        (
            "huge head",
            [
                b"GET /status HTTP/1.1\r\nX-Big: ".as_slice(),
                &vec![b'a'; 40_000],
                b"\r\n\r\n",
            ]
            .concat(),
            431,
        ),
        (
            "too many headers",
            [
                b"GET /status HTTP/1.1\r\n".to_vec(),
                (0..100)
                    .flat_map(|i| format!("X-{i}: 1\r\n").into_bytes())
                    .collect(),
                b"\r\n".to_vec(),
            ]
            .concat(),
            431,
        ),
        (
            "huge body",
            b"POST /search HTTP/1.1\r\nContent-Length: 5000000\r\n\r\n".to_vec(),
            413,
        ),
        (
            "bad length",
            b"POST /search HTTP/1.1\r\nContent-Length: lots\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a pipe in a search",
            b"GET /search?q=a%7Cb HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a slow client",
            b"GET /status HTTP/1.1\r\nHost:".to_vec(),
            408,
        ),
        ("a silent client", Vec::new(), 408),
        (
            "a chunk size that would wrap the body's length",
            b"POST /search HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\nffffffffffffffff\r\n".to_vec(),
            413,
        ),
        (
            "a coding the server cannot frame",
            b"POST /search HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec(),
            400,
        ),
        (
            "lengths that disagree",
            b"POST /search HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".to_vec(),
            400,
        ),
        (
            "another site's host name (DNS rebinding)",
            b"GET /status HTTP/1.1\r\nHost: attacker.example:8080\r\nConnection: close\r\n\r\n".to_vec(),
            403,
        ),
        (
            "a web page of another site",
            b"GET /status HTTP/1.1\r\nHost: localhost\r\nOrigin: http://attacker.example\r\nConnection: close\r\n\r\n".to_vec(),
            403,
        ),
        (
            "a post where only GET is served",
            b"POST /search HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec(),
            405,
        ),
    ];
    for (what, request, want) in cases {
        let answer = raw(h, &request);
        assert_eq!(answer.status, want, "{what}: {}", answer.head);
        if want == 405 {
            assert_eq!(answer.header("allow").as_deref(), Some("GET, HEAD"));
        }
        let body = answer.json();
        assert_eq!(body["status"], want, "{what}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {body}"
        );
        // The node still serves.
        assert_eq!(get(h, "/health").status, 200, "after {what}");
    }
    // Keep-alive: two requests on one connection, the second with a chunked body.
    let mut s = TcpStream::connect(h).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\nGET /search?q=x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n").unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    let st = get(h, "/status").json();
    assert!(st["http"]["bad_requests"].as_u64().unwrap() >= 8, "{st}");
}

#[test]
fn state_changes_need_the_token_and_refusals_are_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let idx = index(tmp.path(), &[]);
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, "s3cret-token-0123456789\n").unwrap();
    let dir = tmp.path().join("share");
    share(&dir);
    let mut p = peer(
        &dir,
        &idx,
        &[
            "--http",
            "127.0.0.1:0",
            "--http-token-file",
            token_file.to_str().unwrap(),
        ],
    );
    let h = http_addr(&mut p);
    let body = r#"{"sender": "bob", "msg": "hi"}"#;
    assert_eq!(post(h, "/message", body, None).status, 401);
    let wrong = post(h, "/message", body, Some("s3cret-token-0123456780"));
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["error"], "wrong token");
    assert_eq!(
        post(h, "/message", body, Some("s3cret-token-0123456789")).status,
        200
    );
    // Reading needs no token, but what the node received and what its user started
    // are not for anyone who connects.
    assert_eq!(get(h, "/files").status, 200);
    assert_eq!(get(h, "/events").status, 401);
    assert_eq!(get(h, "/downloads").status, 401);
    let events = raw(
        h,
        b"GET /events HTTP/1.1\r\nAuthorization: Bearer s3cret-token-0123456789\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(events.status, 200);
    assert_eq!(events.json()["events"][0]["from"], "bob");
    let st = get(h, "/status").json();
    assert_eq!(st["http"]["refused_access"], 4, "{st}");

    // A token too short to be one is refused at start.
    std::fs::write(&token_file, "short\n").unwrap();
    let (code, _, err) = crate::util::Args::peer_sharing(&dir)
        .index(idx.addr)
        .listen("127.0.0.1:0")
        .no_console()
        .args(&[
            "--http",
            "127.0.0.1:0",
            "--http-token-file",
            token_file.to_str().unwrap(),
        ])
        .run(tmp.path());
    assert_ne!(code, 0);
    assert!(err.contains("shorter than 16 characters"), "{err}");
}

fn wait_json(what: &str, addr: SocketAddr, target: &str, done: impl Fn(&Value) -> bool) -> Value {
    let until = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let v = get(addr, target).json();
        if done(&v) {
            return v;
        }
        assert!(std::time::Instant::now() < until, "{what}: last seen {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_peer_downloads_in_the_background_when_told_over_http_and_a_delete_stops_one() {
    let tmp = tempfile::tempdir().unwrap();
    let idx = index(tmp.path(), &[]);
    let holder_dir = tmp.path().join("holder");
    share(&holder_dir);
    // A second file, big enough to be caught running at a low rate.
    let big: Vec<u8> = (0..6_000_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(holder_dir.join("big.bin"), &big).unwrap();
    let _holder = peer(&holder_dir, &idx, &[]);
    let dir = tmp.path().join("getter");
    std::fs::create_dir_all(&dir).unwrap();
    let mut getter = peer(
        &dir,
        &idx,
        &["--http", "127.0.0.1:0", "--max-download-rate", "1M"],
    );
    let h = http_addr(&mut getter);

    let started = post(h, "/downloads", r#"{"name": "report.bin"}"#, None);
    assert_eq!(
        started.status,
        202,
        "{}",
        String::from_utf8_lossy(&started.body)
    );
    assert_eq!(
        started.header("location").as_deref(),
        Some("/downloads/report.bin")
    );
    let done = wait_json("report.bin done", h, "/downloads/report.bin", |v| {
        v["state"] != "running"
    });
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["bytes"], 300_000);
    assert_eq!(
        std::fs::read(dir.join("report.bin")).unwrap(),
        std::fs::read(holder_dir.join("report.bin")).unwrap()
    );
    // Shared onward at once.
    let files = get(h, "/files").json();
    assert_eq!(files["files"][0]["name"], "report.bin", "{files}");

    // A slow one: listed with its progress, refused twice, stopped by DELETE.
    assert_eq!(
        post(h, "/downloads", r#"{"name": "big.bin"}"#, None).status,
        202
    );
    let running = wait_json("big.bin under way", h, "/downloads", |v| {
        v["downloads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "big.bin" && d["bytes"].as_u64().unwrap_or(0) > 0)
    });
    let big_row = running["downloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "big.bin")
        .unwrap()
        .clone();
    assert_eq!(big_row["state"], "running");
    assert_eq!(big_row["total"], 6_000_000);
    assert_eq!(
        post(h, "/downloads", r#"{"name": "big.bin"}"#, None).status,
        409
    );
    let cancel = raw(
        h,
        b"DELETE /downloads/big.bin HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        cancel.status,
        200,
        "{}",
        String::from_utf8_lossy(&cancel.body)
    );
    let stopped = wait_json("big.bin stopped", h, "/downloads/big.bin", |v| {
        v["state"] != "running"
    });
    assert_eq!(stopped["state"], "cancelled", "{stopped}");
    assert!(
        !dir.join("big.bin").exists(),
        "a cancelled download is not placed"
    );
    let partials = std::fs::read_dir(dir.join(".p2pshare/partial"))
        .unwrap()
        .count();
    assert!(partials > 0, "the partial is kept, to resume");

    // Bad input.
    assert_eq!(
        post(h, "/downloads", r#"{"name": "../etc/passwd"}"#, None).status,
        400
    );
    assert_eq!(post(h, "/downloads", r#"{"id": "abc"}"#, None).status, 400);
    assert_eq!(post(h, "/downloads", "not json", None).status, 400);
    let none = raw(
        h,
        b"DELETE /downloads/nothing.bin HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(none.status, 404);
    // A name nobody has fails, and says so.
    assert_eq!(
        post(h, "/downloads", r#"{"name": "missing.bin"}"#, None).status,
        202
    );
    let failed = wait_json("missing.bin ends", h, "/downloads/missing.bin", |v| {
        v["state"] != "running"
    });
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("missing.bin")),
        "{failed}"
    );
}

#[test]
fn http_connections_beyond_the_address_share_get_503_and_the_others_are_served() {
    let tmp = tempfile::tempdir().unwrap();
    let mut idx = index(
        tmp.path(),
        &[
            "--http",
            "127.0.0.1:0",
            "--max-connections-per-address",
            "2",
        ],
    );
    let h = http_addr(&mut idx);
    // Two idle keep-alive connections take this address's share.
    let mut held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(h).unwrap()).collect();
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
    let refused = get(h, "/health");
    assert_eq!(refused.status, 503, "{}", refused.head);
    assert!(refused.json()["error"].as_str().unwrap().contains("limit"));
    // One held connection ends: the next request is served.
    drop(held.pop());
    crate::util::eventually("a slot is free again", Duration::from_secs(10), || {
        get(h, "/health").status == 200
    });
}
