//! Swarm downloads: several sources at once, resume after kill -9, rate limits.

mod util;

use rand::Rng;
use std::fs;
use std::path::Path;
use std::time::Duration;
use util::*;

fn status_value(addr: &str, key: &str) -> u64 {
    let (code, out, err) = run(&["status", addr, "--json"], Path::new("."));
    assert_eq!(code, 0, "status failed: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["status"][key].as_str().unwrap_or("0").parse().unwrap()
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
    let idx = index.addr_str();
    let (code, out, err) = run(
        &[
            "get",
            "big.bin",
            "--index",
            &idx,
            "--dir",
            dest.to_str().unwrap(),
            "--json",
        ],
        root.path(),
    );
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["sources"].as_array().unwrap().len(), 3, "{out}");
    assert_eq!(fs::read(dest.join("big.bin")).unwrap(), data);
    let mut total = 0;
    for h in &holders {
        let up = status_value(&h.addr_str(), "bytes_uploaded");
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
    let idx = index.addr_str();
    let (code, out, err) = run(
        &[
            "get",
            "f.bin",
            "--index",
            &idx,
            "--dir",
            dest.to_str().unwrap(),
            "--json",
            "--max-sources",
            "1",
        ],
        root.path(),
    );
    assert_eq!(code, 0, "{out}{err}");
    let used = holders
        .iter()
        .filter(|h| status_value(&h.addr_str(), "bytes_uploaded") > 0)
        .count();
    assert_eq!(used, 1);
}

#[test]
fn a_downloader_killed_at_random_moments_resumes_and_never_leaves_a_corrupt_file() {
    let root = tempfile::tempdir().unwrap();
    let data = noise(8 * 1024 * 1024 + 4097, 9);
    let index = index(root.path(), &[]);
    let _holders = holders_of(root.path(), &index, 2, "resume.bin", &data, &[]);
    let idx = index.addr_str();
    let mut rng = rand::thread_rng();
    let mut resumed_trials = 0;
    for trial in 0..20 {
        let dest = root.path().join(format!("dest-{trial}"));
        fs::create_dir_all(&dest).unwrap();
        let dest_s = dest.to_str().unwrap().to_owned();
        // Slow enough (about a second) to be killed part way.
        let args = [
            "get",
            "resume.bin",
            "--index",
            &idx,
            "--dir",
            &dest_s,
            "--max-download-rate",
            "8M",
        ];
        let mut child = std::process::Command::new(bin())
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(100..1100)));
        let _ = child.kill();
        let _ = child.wait();
        // Whatever the moment: either the complete, correct file, or no file at all.
        if let Ok(bytes) = fs::read(dest.join("resume.bin")) {
            assert_eq!(bytes, data, "trial {trial}: a corrupt file appeared");
        }
        let (code, out, err) = run(&args, root.path());
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
                .unwrap()
                .count(),
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
