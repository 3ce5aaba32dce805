//! What a new user meets first: an idle peer that stays idle, a health check that
//! tells the truth, output that scripts can read, and one-shot commands that leave no
//! litter behind.

use crate::util::*;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// CPU time (user + system) a process has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a configuration value.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / per_sec)
}

#[test]
fn an_idle_peer_without_seeds_stays_idle() {
    let root = tempfile::tempdir().unwrap();
    let dirs = sample_peers(root.path());
    let index = index(root.path(), &[]);
    // Started outside the repository (no config/seeds.txt) and told of no seeds.
    let p = peer(&dirs[0], &index, &["--seeds", "/dev/null"]);
    let before = cpu_time(p.pid());
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let used = cpu_time(p.pid()) - before;
    let share = used.as_secs_f64() / started.elapsed().as_secs_f64();
    assert!(
        share < 0.02,
        "an idle peer used {:.1}% of a core ({used:?} in 10 s)",
        share * 100.0
    );
}

#[test]
fn a_peer_whose_only_index_is_down_is_not_healthy() {
    let root = tempfile::tempdir().unwrap();
    let dirs = sample_peers(root.path());
    let mut index = index(root.path(), &[]);
    let idx = index.addr_str();
    let mut p = peer(&dirs[0], &index, &[]);
    let addr = p.addr_str();

    let (code, out, err) = Args::status(&addr).json().run(root.path());
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["healthy"], true);
    // Numbers are numbers; the index links are listed.
    assert!(v["status"]["connections"].is_u64(), "{out}");
    assert!(v["status"]["uptime_secs"].is_u64(), "{out}");
    assert_eq!(v["status"]["indexes"][0]["address"], idx.as_str());
    assert_eq!(v["status"]["indexes"][0]["state"], "up");
    assert_eq!(v["status"]["indexes"][0]["files"], 3);
    let (_, text, _) = Args::status(&addr).run(root.path());
    assert!(
        text.contains(&format!("index {idx}: up, 3 files published")),
        "{text}"
    );
    assert!(text.contains("uptime: "), "{text}");

    index.kill9();
    p.wait_line(|l| l.contains(&format!("index {idx}")) && !l.contains("connected"));
    let (code, out, err) = Args::status(&addr).run(root.path());
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("health: failing"), "{out}");
    assert!(
        out.contains(&format!("index {idx}: down")),
        "the index link is not shown down: {out}"
    );
    assert!(
        err.contains("not healthy: no index server reachable"),
        "{err}"
    );
    let (code, out, _) = Args::status(&addr).json().run(root.path());
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["healthy"], false);
    assert_eq!(v["status"]["indexes"][0]["state"], "down");
}

#[test]
fn failures_under_json_are_json_on_stdout() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &[]);
    let dest = root.path().join("never-made");
    let (code, out, err) = Args::get("nothing-here.txt")
        .index(index.addr)
        .dir(&dest)
        .json()
        .run(root.path());
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("a JSON error object");
    assert!(
        v["error"].as_str().unwrap().contains("nothing-here.txt"),
        "{out}"
    );
    assert_eq!(v["exit_code"], 1);
    assert!(!dest.exists(), "a failed get left its --dir behind");

    // Nothing listens on port 9 here.
    for args in [
        &["search", "x", "--index", "127.0.0.1:9", "--json"][..],
        &[
            "say",
            "hi",
            "--peer",
            "127.0.0.1:9",
            "--json",
            "--timeout",
            "1s",
        ][..],
        &["members", "127.0.0.1:9", "--json", "--timeout", "1s"][..],
    ] {
        let (code, out, err) = run(args, root.path());
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out:?}"));
        assert!(v["error"].is_string(), "{args:?}: {out}");
    }
}

#[test]
fn one_shot_commands_read_well_and_leave_no_litter() {
    let root = tempfile::tempdir().unwrap();
    let dirs = sample_peers(root.path());
    let index = index(root.path(), &[]);
    let _p1 = peer(&dirs[0], &index, &[]);

    // The table: one holder is "1 holder", ids are short, columns line up.
    let (code, out, _) = Args::search("txt").index(index.addr).run(root.path());
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 2, "{out}");
    assert!(
        out.contains("1 holder ") || out.contains("1 holder\n"),
        "{out}"
    );
    assert!(!out.contains("1 holders"), "{out}");
    for l in &lines {
        let id = l.split_whitespace().last().unwrap();
        assert!(id.len() == 12 || id == "classic", "{l}");
    }
    let col = |l: &str| l.find("holder").unwrap();
    assert!(lines.iter().all(|l| col(l) == col(lines[0])), "{out}");

    // A name that differs only in case gets a hint.
    let dest = root.path().join("dest");
    let get = |name: &str, dir: &Path| Args::get(name).index(index.addr).dir(dir).run(root.path());
    let (code, _, err) = get("TENKB.TXT", &dest);
    assert_eq!(code, 1);
    assert!(err.contains("did you mean 'tenkb.txt'"), "{err}");

    // A finished get leaves the file and nothing else.
    let (code, out, err) = get("tenkb.txt", &dest);
    assert_eq!(code, 0, "{out}{err}");
    let left: Vec<String> = fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["tenkb.txt".to_owned()]);

    // --dir naming a file is a usage error that says so.
    let file = dest.join("tenkb.txt");
    let (code, _, err) = get("onekb.txt", &file);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a folder"), "{err}");
}

#[test]
fn a_one_shot_command_that_prints_more_than_a_pipe_holds_is_read_whole() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &["--db", ":memory:"]);
    // A thousand names of about 220 bytes each: the JSON answer is several times what
    // a pipe holds (64 KiB), so the test must read while the command runs.
    let mut raw = Raw::connect(index.addr);
    assert!(raw.hello_as("peer", "bulk", 2000).starts_with("ok|30|"));
    let mut batch = String::from("publish|1000\n");
    for i in 0..1000 {
        let name = format!("bulk-{i:04}-{}.dat", "x".repeat(200));
        let id = p2pshare::protocol::hash::Sha1Digest::of(name.as_bytes());
        batch.push_str(&format!("{name}|1|{id}|{id}\n"));
    }
    raw.send(batch.as_bytes());
    assert_eq!(raw.line(), "ok|1000");
    let (code, out, err) = Args::search("bulk")
        .index(index.addr)
        .json()
        .flag("--limit", "1000")
        .run(root.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.len() > 4 * 64 * 1024, "only {} bytes", out.len());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), 1000);
}
