//! The HTTP interface against the real tools that consume it: a Prometheus server
//! scrapes `/metrics` and a counter is queried back through Prometheus's own API;
//! headless Chromium renders the dashboard of a peer with a download under way and a
//! neighbour, and the test reads the rendered page (a screenshot is kept in
//! `target/test-artifacts/`).
//!
//! The tools are Debian's `prometheus` and `chromium` (`bash tests/tools.sh` installs
//! them). Without them these tests say they are skipped, unless
//! `P2PSHARE_REQUIRE_TOOLS=1` (CI), when a missing tool fails them.

use crate::overlay::seed;
use crate::util::{eventually, http_addr, index, peer};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The tool's path, or `None` (after saying so) when it is missing and not required.
fn tool(name: &str) -> Option<PathBuf> {
    crate::util::tool(name, &[name], "bash tests/tools.sh installs it")
}

/// GET over a fresh connection; the status and the body.
fn get(addr: SocketAddr, target: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = String::new();
    let _ = s.read_to_string(&mut all);
    let status = all
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = all
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn post(addr: SocketAddr, target: &str, body: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut all = String::new();
    let _ = s.read_to_string(&mut all);
    all.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills a tool's process when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_the_metrics_and_answers_a_counter_back() {
    let Some(prometheus) = tool("prometheus") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut idx = index(tmp.path(), &["--http", "127.0.0.1:0"]);
    let h = http_addr(&mut idx);
    for _ in 0..7 {
        assert_eq!(get(h, "/search?q=anything").0, 200);
    }
    let config = tmp.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: p2pshare\n    static_configs:\n      - targets: ['{h}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let web = SocketAddr::from(([127, 0, 0, 1], port));
    let log = std::fs::File::create(tmp.path().join("prometheus.log")).unwrap();
    let _prom = Running(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let query = "/api/v1/query?query=p2pshare_requests_total%7Brole%3D%22index-http%22%2Cverb%3D%22search%22%2Coutcome%3D%22ok%22%7D";
    let mut last = String::new();
    eventually(
        "prometheus answers the search counter",
        Duration::from_secs(60),
        || {
            if TcpStream::connect(web).is_err() {
                return false;
            }
            let (status, body) = get(web, query);
            last = body.clone();
            if status != 200 {
                return false;
            }
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            v["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|n| n.parse::<f64>().ok())
                .is_some_and(|n| n >= 7.0)
        },
    );
    let log = std::fs::read_to_string(tmp.path().join("prometheus.log")).unwrap_or_default();
    assert!(!last.is_empty(), "{log}");
    // And the target is healthy in Prometheus's own view.
    let (_, targets) = get(web, "/api/v1/targets");
    assert!(targets.contains("\"health\":\"up\""), "{targets}");
}

#[test]
fn headless_chromium_renders_a_download_in_progress_and_a_neighbour() {
    let Some(chromium) = tool("chromium") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let idx = index(root, &[]);
    let s1 = seed(root, "s1", &[]);
    let seed_flag = s1.addr_str();
    let holder_dir = root.join("holder");
    std::fs::create_dir_all(&holder_dir).unwrap();
    let big: Vec<u8> = (0..40_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(holder_dir.join("movie.bin"), &big).unwrap();
    let _holder = peer(&holder_dir, &idx, &["--seed", &seed_flag]);
    let dir = root.join("viewer");
    std::fs::create_dir_all(&dir).unwrap();
    let mut viewer = peer(
        &dir,
        &idx,
        &[
            "--seed",
            &seed_flag,
            "--http",
            "127.0.0.1:0",
            "--max-download-rate",
            "2M",
        ],
    );
    let h = http_addr(&mut viewer);
    // A neighbour: the holder, once the overlay has linked them.
    eventually(
        "the viewer has a neighbour",
        Duration::from_secs(60),
        || {
            let (_, body) = get(h, "/peers");
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            v["members"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["view"] == "active"))
        },
    );
    assert_eq!(post(h, "/downloads", r#"{"name": "movie.bin"}"#), 202);
    eventually("the download is under way", Duration::from_secs(30), || {
        let (_, body) = get(h, "/downloads/movie.bin");
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        v["state"] == "running" && v["bytes"].as_u64().unwrap_or(0) > 0
    });
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let profile = root.join("chromium-profile");
    let url = format!("http://{h}/");
    let common = [
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--no-first-run".to_owned(),
        format!("--user-data-dir={}", profile.display()),
        "--virtual-time-budget=4000".to_owned(),
        "--window-size=1280,1400".to_owned(),
    ];
    let dom = Command::new(&chromium)
        .args(&common)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let html = String::from_utf8_lossy(&dom.stdout).into_owned();
    let why = format!(
        "rendered page:\n{html}\nstderr:\n{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    // The rows the page's script built from the JSON endpoints.
    assert!(
        html.contains("<td>movie.bin</td><td>running</td><td><progress"),
        "{why}"
    );
    assert!(
        html.contains("<td>active</td>"),
        "a neighbour is listed: {why}"
    );
    assert!(html.contains("class=\"ok\">ok</b>"), "healthy: {why}");
    let shot_run = Command::new(&chromium)
        .args(&common)
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        shot.metadata().map(|m| m.len() > 10_000).unwrap_or(false),
        "no screenshot: {}",
        String::from_utf8_lossy(&shot_run.stderr)
    );
    eprintln!("dashboard screenshot: {}", shot.display());
}
