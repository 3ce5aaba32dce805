//! The peer's console as a person sees it: the real binary on a pseudo-terminal (line
//! editor in raw mode, progress bars drawn) and on a pipe, with a deadline on every wait.

use crate::util::pty::PtyProc;
use crate::util::*;
use std::fs;
use std::path::Path;

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
    let args = Args::peer_sharing(&me)
        .index(index.addr)
        .flag("--settle", "100ms");
    let mut console = PtyProc::start(&args.words(), root.path());
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
    // Tab completes a command name, whatever its case.
    console.type_line("STA\t");
    let text = console.wait_text("status, completed from STA, then a prompt", |t| {
        t.lines().any(|l| l.starts_with("listening on "))
            && t.rfind("health: ")
                .is_some_and(|at| t[at..].contains(PROMPT))
    });
    assert!(!text.contains("unknown command"), "{text}");
    console.type_line("ls");
    let text = console.wait_text("the listing, then a prompt", |t| {
        t.rfind("second.bin  (200.0 MiB")
            .is_some_and(|at| t[at..].contains(PROMPT))
    });
    // A pasted line, its keys arriving together, runs as if typed: no key waits in
    // the line editor for a further one (rustyline before 19 kept them until then).
    let before = text.matches("no stopped downloads").count();
    console.paste("downloads\r");
    console.wait_text("the pasted command answered, then a prompt", |t| {
        t.matches("no stopped downloads").count() > before
            && t.rfind("no stopped downloads")
                .is_some_and(|at| t[at..].contains(PROMPT))
    });
    assert!(
        log_lines(&text).is_empty(),
        "log lines at the default level:\n{text}"
    );
}

#[test]
fn say_with_no_neighbours_is_not_sent_and_peers_says_no_seeds_are_configured() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &["--db", ":memory:"]);
    let dir = root.path().join("lonely");
    fs::create_dir_all(&dir).unwrap();
    let mut p = console_peer(&dir, &index, &[]);

    p.type_line("say is anyone there?");
    let line = p.wait_line(|l| l.starts_with("not sent: "));
    assert!(
        line.contains("no seeds are configured") && line.contains("--seed HOST:PORT"),
        "{line}"
    );
    p.type_line("peers");
    let line = p.wait_line(|l| l.contains("no seeds are configured"));
    assert!(line.contains("--seeds FILE"), "{line}");
    assert!(!line.contains("incarnation"), "{line}");

    // Through the peer from the command line: refused, and the exit code says so.
    let (code, out, err) = Args::of(&["say", "anyone?"])
        .flag("--peer", p.addr)
        .run(root.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("no-neighbours") && err.contains("not sent"),
        "{err}"
    );
    p.type_line("status");
    let line = p.wait_line(|l| l.contains("messages_said: "));
    assert!(line.ends_with("messages_said: 0"), "{line}");
    let seen = p.seen.lock().unwrap().join("\n");
    assert!(!seen.contains("(you): "), "shown as said:\n{seen}");
}

#[test]
fn commands_ignore_case_help_names_one_and_get_hints_at_a_name_in_another_case() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &["--db", ":memory:"]);
    let holder = root.path().join("holder");
    fs::create_dir_all(&holder).unwrap();
    fs::write(holder.join("tenkb.txt"), noise(10_240, 3)).unwrap();
    let _holder = peer(&holder, &index, &[]);
    let dir = root.path().join("me");
    fs::create_dir_all(&dir).unwrap();
    let mut p = console_peer(&dir, &index, &[]);

    p.type_line("HELP get");
    p.wait_line(|l| l == "usage: get NAME [ID] | N");
    p.wait_line(|l| l.contains("download a file by name"));
    p.type_line("help nothing");
    p.wait_line(|l| l.contains("no command 'nothing'"));

    p.type_line("GET TENKB.TXT");
    p.wait_line(|l| l.contains("get failed: no live peer holds 'TENKB.TXT'"));
    p.wait_line(|l| l == "names are case-sensitive: did you mean 'tenkb.txt'?");
    p.type_line("Search TENKB");
    p.wait_line(|l| l.contains("1. tenkb.txt"));
    p.type_line("GET 1");
    p.wait_line(|l| l.contains("downloaded tenkb.txt"));
}

#[test]
fn an_unreachable_index_is_named_once_in_the_console() {
    let root = tempfile::tempdir().unwrap();
    // A port nobody listens on: bound, then closed.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let dir = root.path().join("alone");
    fs::create_dir_all(&dir).unwrap();
    let mut p = Args::peer_sharing(&dir)
        .index(&dead)
        .start_console("alone", root.path());
    let line = p.wait_line(|l| l.contains(": unreachable ("));
    assert_eq!(line.matches(&dead).count(), 1, "{line}");
    p.type_line("status");
    let line = p.wait_line(|l| l.contains(&format!("index {dead}: down: ")));
    assert_eq!(line.matches(&dead).count(), 1, "{line}");
}
