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
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn post(addr: SocketAddr, target: &str, body: &str, token: Option<&str>) -> Answer {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    raw(
        addr,
        format!(
            "POST {target} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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

    // The dashboard is there on every role.
    let page = get(ph, "/");
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("<title>p2pshare</title>"));

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
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /search?q=x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n").unwrap();
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
    // Reading needs no token.
    assert_eq!(get(h, "/files").status, 200);
    let st = get(h, "/status").json();
    assert_eq!(st["http"]["refused_access"], 2, "{st}");

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
