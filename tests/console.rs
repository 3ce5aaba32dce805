//! The peer's console as a person sees it: the real binary on a pseudo-terminal (line
//! editor in raw mode, progress bars drawn) and on a pipe, with a deadline on every wait.

mod util;

use std::fs;
use std::path::Path;
use util::pty::PtyProc;
use util::*;

const PROMPT: &str = "p2pshare> ";

/// A sparse file of `mib` MiB: large enough for a hashing bar, free on disk.
fn sparse(path: &Path, mib: u64) {
    fs::File::create(path)
        .unwrap()
        .set_len(mib * 1024 * 1024)
        .unwrap();
}

/// Every hashing bar drawn so far is followed by a prompt (the bar was cleared and
/// the prompt redrawn after it).
fn prompt_after_last_bar(text: &str) -> bool {
    match text.rfind("hashing ") {
        Some(at) => text[at..].contains(PROMPT),
        None => false,
    }
}

fn log_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            [" TRACE ", " DEBUG ", " INFO ", " WARN ", " ERROR "]
                .iter()
                .any(|level| l.contains(level))
        })
        .collect()
}

#[test]
fn console_on_a_terminal_shows_no_log_lines_and_a_prompt_after_every_hashing_bar() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &["--db", ":memory:"]);
    let other = root.path().join("other");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("small.txt"), noise(5000, 7)).unwrap();
    let _other = peer(&other, &index, &[]);

    // Over 64 MiB to hash: the peer draws a hashing bar.
    let me = root.path().join("me");
    fs::create_dir_all(&me).unwrap();
    sparse(&me.join("first.bin"), 200);
    let idx = index.addr_str();
    let mut console = PtyProc::start(
        &[
            "peer",
            "--dir",
            me.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--index",
            &idx,
            "--settle",
            "100ms",
        ],
        root.path(),
    );
    console.wait_text("the first scan's bar, then a prompt", |t| {
        t.contains("sharing 1 file (200.0 MiB)") && prompt_after_last_bar(t)
    });

    // A file that appears while the prompt waits is hashed with a bar too; no line
    // follows it, and the prompt must still come back.
    let before = console.text().matches("hashing ").count();
    sparse(&me.join("second.bin"), 200);
    eventually("second.bin published", DEADLINE, || {
        !holders(index.addr, "second.bin").is_empty()
    });
    console.wait_text("a bar for second.bin, then a prompt", |t| {
        t.matches("hashing ").count() > before && prompt_after_last_bar(t)
    });

    console.type_line("get small.txt");
    console.wait_text("the download, then a prompt", |t| {
        t.rfind("downloaded small.txt")
            .is_some_and(|at| t[at..].contains(PROMPT))
    });
    console.type_line("ls");
    let text = console.wait_text("the listing, then a prompt", |t| {
        t.rfind("second.bin  (200.0 MiB")
            .is_some_and(|at| t[at..].contains(PROMPT))
    });
    assert!(
        log_lines(&text).is_empty(),
        "log lines at the default level:\n{text}"
    );
}
