//! The peer's interactive console: search, download, list, status.
//!
//! The console is one of the two places that print to the user (with the one-shot
//! commands in [`crate::cmd`]). Its commands come from one table,
//! [`commands::CONSOLE_COMMANDS`], which drives dispatch, `help` and completion. Log
//! lines and events are printed above the prompt through the output sink, so they
//! never scramble the line being typed; during a download they go above the progress
//! bar. Results are rendered by [`crate::render`], as the one-shot commands render
//! theirs.

mod commands;
mod events;
mod kv;
mod progress;

pub use commands::{complete, help_for, help_lines};
pub use events::describe;
pub use progress::BarProgress;

use crate::output;
use crate::overlay::member::MemberRow;
use crate::overlay::member::NotSent;
use crate::overlay::runtime::SayError;
use crate::overlay::{wire, MemberState};
use crate::peer::download::{partials, ContentIdArg, DownloadError, DownloadOutcome};
use crate::peer::links::LinkCommand;
use crate::peer::pool::Found;
use crate::peer::upload::push::push;
use crate::peer::Peer;
use crate::protocol::commands::Role;
use crate::protocol::hash::Sha1Digest;
use crate::protocol::name::{FileName, PeerId};
use crate::render;
use crate::signals::Signal;
use crate::units::{fmt_bytes, plural};
use commands::{lookup, ConsoleHelper, Flow};
use events::{print_events, terminal_safe, EditorPrinter};
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::Editor;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

struct Console<'a> {
    peer: &'a Peer,
    last_results: Vec<Found>,
    /// The names of `last_results`, shared with the completer.
    found_names: Arc<Mutex<Vec<String>>>,
    /// Set by Ctrl-C (SIGINT) while a download runs; the download stops and keeps a
    /// resumable partial.
    cancel: Arc<AtomicBool>,
}

/// Runs the console until `quit` or end of input. `signals` carries SIGINT and
/// SIGTERM: Ctrl-C during a download cancels it (at the prompt, the line editor sees
/// Ctrl-C as a key and clears the line); SIGTERM leaves the network and exits.
pub fn run(peer: &Peer, signals: crossbeam_channel::Receiver<Signal>) {
    let interactive = std::io::stdin().is_terminal();
    let mut editor = match Editor::<ConsoleHelper, FileHistory>::new() {
        Ok(e) => e,
        Err(e) => {
            output::say(format!("cannot start the console: {e}"));
            return;
        }
    };
    let found_names = Arc::new(Mutex::new(Vec::new()));
    editor.set_helper(Some(ConsoleHelper {
        found: found_names.clone(),
        state_dir: peer.config().state_dir.clone(),
    }));
    let history = peer.config().state_dir.join("history.txt");
    if interactive {
        let _ = editor.load_history(&history);
        if let Ok(p) = editor.create_external_printer() {
            output::set_printer(Some(Box::new(EditorPrinter(p))));
        }
    }
    let events = peer.events().clone();
    let seeds = peer.config().overlay.seeds.clone();
    let _ = std::thread::Builder::new()
        .name("console-events".into())
        .spawn(move || print_events(events, seeds));
    output::say("type 'help' for commands");
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        let leave = peer.publisher();
        let _ = std::thread::Builder::new()
            .name("console-signals".into())
            .spawn(move || {
                for sig in signals {
                    match sig {
                        Signal::Interrupt => cancel.store(true, Ordering::SeqCst),
                        Signal::Terminate => {
                            output::say("terminated: leaving the network");
                            if let Some(l) = &leave {
                                l.send(LinkCommand::Leave);
                            }
                            // Give the links a moment to say bye, then go.
                            std::thread::sleep(std::time::Duration::from_millis(500));
                            std::process::exit(0);
                        }
                    }
                }
            });
    }
    let mut console = Console {
        peer,
        last_results: Vec::new(),
        found_names,
        cancel,
    };
    loop {
        match editor.readline("p2pshare> ") {
            Ok(line) => {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(line);
                // The command's own output (and whatever else is printed meanwhile)
                // goes straight to the terminal: no prompt is shown until it ends.
                output::pause_printer(true);
                let flow = console.dispatch(line);
                output::pause_printer(false);
                if flow == Flow::Quit {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => {
                if !interactive {
                    output::say("console input ended; leaving (run with --no-console to serve without a console)");
                }
                break;
            }
            Err(e) => {
                output::say(format!("console error: {e}"));
                break;
            }
        }
    }
    if interactive {
        let _ = editor.save_history(&history);
    }
    output::set_printer(None);
}

impl Console<'_> {
    /// Runs one command line.
    fn dispatch(&mut self, line: &str) -> Flow {
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        match lookup(word) {
            Some(cmd) => (cmd.run)(self, rest.trim()),
            None => {
                output::say(format!("unknown command '{word}'; type 'help'"));
                Flow::Continue
            }
        }
    }

    fn search(&mut self, words: &str) {
        if words.is_empty() {
            output::say("usage: search WORDS...  (every word must match, -word excludes)");
            return;
        }
        match self.peer.pool().search(words, 100) {
            Ok((found, more)) => {
                for line in render::search_table(&found, more, words) {
                    output::say(line);
                }
                *self.found_names.lock().unwrap_or_else(|e| e.into_inner()) =
                    found.iter().map(|f| f.name.clone()).collect();
                self.last_results = found;
            }
            Err(e) => output::say(format!("search failed: {e}")),
        }
    }

    fn get(&mut self, arg: &str) {
        let (flags, arg) = GetFlags::take(arg);
        if arg.is_empty() {
            output::say(
                "usage: get [--allow-unverified] [--verify-sha1] NAME [ID] | N  (N: a result \
                 number from the last search; ID: a content id, sha1:... or its 12-digit \
                 short form; --allow-unverified places a file that only classic holders \
                 have; --verify-sha1 also checks the whole file's SHA-1 against what its \
                 holders claim)",
            );
            return;
        }
        let (name, id) = match split_content_id(arg) {
            (name, Some(id)) => (name.to_owned(), Some(id)),
            (_, None) => match arg.parse::<usize>() {
                Ok(n) if n >= 1 && n <= self.last_results.len() => {
                    let f = &self.last_results[n - 1];
                    (f.name.clone(), f.id.map(ContentIdArg::Full))
                }
                Ok(n) if !self.last_results.is_empty() || FileName::parse(arg).is_err() => {
                    output::say(format!("no result {n} in the last search"));
                    return;
                }
                _ => (arg.to_owned(), None),
            },
        };
        self.fetch(name, id, flags);
    }

    /// Downloads a file (by name, optionally only one content) and reports the outcome.
    fn fetch(&mut self, name: String, id: Option<ContentIdArg>, flags: GetFlags) {
        let name = match FileName::parse(&name) {
            Ok(n) => n,
            Err(e) => {
                output::say(format!("'{name}': {e}"));
                return;
            }
        };
        let id = match id.map(|arg| self.content_id(&name, &arg)).transpose() {
            Ok(id) => id,
            Err(e) => {
                output::say(format!("get failed: '{name}': {e}"));
                return;
            }
        };
        let progress = BarProgress::new();
        self.cancel.store(false, Ordering::SeqCst);
        let result = self.peer.downloader().download(
            name.clone(),
            id,
            flags.allow_unverified,
            flags.verify_sha1,
            &progress,
            &self.cancel,
        );
        match result {
            Ok(DownloadOutcome::Downloaded(done)) => {
                output::say(render::downloaded(name.as_str(), &done, true));
            }
            Ok(DownloadOutcome::AlreadyHave { path, id }) => {
                output::say(format!("already have {} ({})", path.display(), id.short()));
            }
            Err(DownloadError::Cancelled) => output::say(format!(
                "cancelled; the partial download is kept: 'resume {name}' continues it"
            )),
            Err(e @ DownloadError::NotFound { .. }) => {
                output::say(format!("get failed: {e}"));
                if let Some(hint) = self.other_case(&name) {
                    output::say(hint);
                }
            }
            Err(e) => refused(&name, &e),
        }
    }

    /// The content id a typed one names: a full one as it is, a short one looked up
    /// among the holders of the name.
    fn content_id(&self, name: &FileName, arg: &ContentIdArg) -> Result<Sha1Digest, String> {
        let holders = match arg {
            ContentIdArg::Full(_) => Vec::new(),
            ContentIdArg::Short(_) => self
                .peer
                .pool()
                .holders(name, None)
                .map_err(|e| e.to_string())?,
        };
        arg.resolve(&holders)
    }

    /// Names differ by case (search ignores it, names do not): when no file has this
    /// exact name, a hint naming the files whose names match it but for case.
    fn other_case(&self, name: &FileName) -> Option<String> {
        render::case_hint(&self.peer.pool().other_cases(name.as_str()))
    }

    fn downloads(&self) {
        let list = partials(&self.peer.config().state_dir);
        if list.is_empty() {
            output::say("no stopped downloads");
        }
        for p in list {
            let pct = (p.pieces_done * 100).checked_div(p.pieces).unwrap_or(100);
            let id = if p.legacy {
                format!("sha1 {}, from an earlier version", p.id.short())
            } else {
                p.id.short()
            };
            output::say(format!(
                "{}  ({}, {} of {}, {pct}%, {id})",
                p.name,
                fmt_bytes(p.size),
                p.pieces_done,
                plural(p.pieces as u64, "piece"),
            ));
        }
    }

    fn resume(&mut self, name: &str) {
        if name.is_empty() {
            output::say("usage: resume NAME  (see 'downloads')");
            return;
        }
        let Some(p) = partials(&self.peer.config().state_dir)
            .into_iter()
            .find(|p| p.name == name)
        else {
            output::say(format!("no stopped download of '{name}'; see 'downloads'"));
            return;
        };
        // A record of an earlier version is named by its whole-file SHA-1, which no
        // holder gives as a content id: fetched by name, it is adopted when the holders
        // claim that SHA-1.
        let id = (!p.legacy).then_some(ContentIdArg::Full(p.id));
        self.fetch(p.name, id, GetFlags::default());
    }

    fn ls(&self) {
        let catalog = self.peer.shared().catalog();
        if catalog.is_empty() {
            output::say("sharing no files yet");
        }
        for f in catalog.iter() {
            let sha1 = f
                .hashes
                .sha1
                .map_or_else(|| "not computed".to_owned(), |d| d.short());
            output::say(format!(
                "{}  ({}, id {}, sha1 {sha1})",
                f.name,
                fmt_bytes(f.hashes.size),
                f.hashes.id.short(),
            ));
        }
    }

    fn say(&self, text: &str) {
        if text.is_empty() {
            output::say("usage: say TEXT");
            return;
        }
        if text.len() > wire::MAX_TEXT {
            output::say(format!("too long: at most {} bytes", wire::MAX_TEXT));
            return;
        }
        match self.peer.overlay().say(text.to_owned()) {
            Ok(_) => {}
            Err(SayError::NotSent(NotSent::NoNeighbours)) => output::say(match self.no_seeds() {
                Some(hint) => format!("not sent: it would reach nobody; {hint}"),
                None => "not sent: no neighbours yet, it would reach nobody (see 'peers')".into(),
            }),
            Err(e) => output::say(format!("say failed: {e}")),
        }
    }

    /// When no seeds are configured: why this peer has no neighbours, and the fix.
    fn no_seeds(&self) -> Option<&'static str> {
        self.peer.config().overlay.seeds.is_empty().then_some(
            "no seeds are configured, so this peer has no neighbours: start it with \
             --seed HOST:PORT (repeatable) or --seeds FILE",
        )
    }

    fn msg(&self, args: &str) {
        let Some((who, text)) = args.split_once(char::is_whitespace) else {
            output::say("usage: msg PEER TEXT  (PEER: a name or an id from 'peers', or host:port)");
            return;
        };
        let text = text.trim();
        let (addr, expect) = if let Ok(a) = who.parse::<std::net::SocketAddr>() {
            (a.to_string(), None)
        } else {
            match self.member_named(who) {
                Ok(found) => found,
                Err(why) => return output::say(why),
            }
        };
        let reply = crate::peer::message::send(
            &self.peer.shared().me,
            self.peer.local_addr().port(),
            &self.peer.config().timeouts,
            &addr,
            expect.as_ref(),
            text,
        );
        match reply {
            Ok(text) => output::say(format!("reply from {who}: {}", terminal_safe(&text))),
            Err(e) => output::say(format!("msg failed: {e}")),
        }
    }

    /// `upload FILE PEER`: pushes a file of this machine to another peer, as this
    /// peer (its key proves the session).
    fn upload(&self, args: &str) {
        let usage = "usage: upload FILE PEER  (PEER: a name or an id from 'peers', or host:port)";
        let Some((file, who)) = args.trim().rsplit_once(char::is_whitespace) else {
            return output::say(usage);
        };
        let path = std::path::Path::new(file.trim());
        let name = match path.file_name().and_then(|n| n.to_str()) {
            Some(n) => match FileName::parse(n) {
                Ok(name) => name,
                Err(e) => return output::say(format!("'{n}': {e}")),
            },
            None => return output::say(usage),
        };
        let (addr, expect) = if let Ok(a) = who.parse::<std::net::SocketAddr>() {
            (a.to_string(), None)
        } else {
            match self.member_named(who) {
                Ok(found) => found,
                Err(why) => return output::say(why),
            }
        };
        let me = (&self.peer.shared().me, self.peer.local_addr().port());
        let t = self.peer.config().timeouts;
        let progress = BarProgress::new();
        let pushed = push(&addr, expect.as_ref(), Some(me), path, &name, t, &progress);
        match pushed {
            Ok(done) if done.status == "exists" => {
                output::say(format!("{who} has {} already: nothing to send", done.name))
            }
            Ok(done) => output::say(format!(
                "uploaded {} ({}, id {}) to {who}; it is shared there",
                done.name,
                fmt_bytes(done.size),
                done.id.short()
            )),
            Err(e) => output::say(match e.hint() {
                Some(hint) => format!("upload failed: {e}; {hint}"),
                None => format!("upload failed: {e}"),
            }),
        }
    }

    /// The live member `who` names (its id, the start of its id, or its name, when
    /// only one member has it): its address and id.
    fn member_named(&self, who: &str) -> Result<(String, Option<PeerId>), String> {
        let rows = self.peer.overlay().status(true)?.rows;
        let matches: Vec<_> = rows
            .iter()
            .filter(|r| {
                r.id.as_str() == who
                    || (who.len() >= 8 && r.id.as_str().starts_with(who))
                    || member_name(r) == Some(who)
            })
            .collect();
        match matches[..] {
            [] => Err(format!(
                "no peer '{who}' known; see 'peers', or give host:port"
            )),
            [r] if r.member.state.is_gone() => Err(format!("{who} is {}", r.member.state)),
            [r] => Ok((r.member.addr.to_string(), Some(r.id.clone()))),
            _ => Err(format!(
                "{} peers are called '{who}': give the start of the id ({})",
                matches.len(),
                matches
                    .iter()
                    .map(|r| crate::identity::short(r.id.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    fn peers(&self) {
        let st = match self.peer.overlay().status(true) {
            Ok(s) => s,
            Err(e) => {
                output::say(format!("peers failed: {e}"));
                return;
            }
        };
        if let Some(hint) = self.no_seeds() {
            if st.neighbours == 0 {
                output::say(hint);
                return;
            }
        }
        let neighbours: Vec<_> = st
            .rows
            .iter()
            .filter(|r| r.view == crate::overlay::member::View::Active)
            .collect();
        if neighbours.is_empty() {
            let seeds = &self.peer.config().overlay.seeds;
            if st.seeds_up == 0 {
                output::say(format!(
                    "no neighbours yet: none of the seeds answers ({})",
                    seeds
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            } else {
                output::say("no neighbours yet");
            }
        }
        for r in &neighbours {
            let rtt = r
                .member
                .rtt_ms
                .map_or("rtt -".to_owned(), |ms| format!("rtt {ms} ms"));
            output::say(format!(
                "  {:<30} {:<22} {:<8} {rtt}",
                who(r),
                r.member.addr.to_string(),
                r.member.state.as_str()
            ));
        }
        let suspect = st
            .rows
            .iter()
            .filter(|r| r.member.state == MemberState::Suspect)
            .map(who)
            .collect::<Vec<_>>();
        let dead = st
            .rows
            .iter()
            .filter(|r| r.member.state.is_gone())
            .map(who)
            .collect::<Vec<_>>();
        output::say(format!(
            "{}, {} in reserve, {} alive",
            plural(st.neighbours as u64, "neighbour"),
            st.passive,
            plural(st.peers as u64, "member")
        ));
        if !suspect.is_empty() {
            output::say(format!("suspect: {}", suspect.join(", ")));
        }
        if !dead.is_empty() {
            output::say(format!("dead or left: {}", dead.join(", ")));
        }
    }

    fn status(&self) {
        output::say(format!("listening on {}", self.peer.local_addr()));
        let rows = crate::peer::serve::status_rows(self.peer.shared(), self.peer.overlay());
        for line in render::status_text(&rows) {
            output::say(line);
        }
    }
}

/// The console's form of the one-shot `--allow-unverified`: `get --allow-unverified NAME`.
const ALLOW_UNVERIFIED: &str = "--allow-unverified";
/// The console's form of the one-shot `--verify-sha1`: `get --verify-sha1 NAME`.
const VERIFY_SHA1: &str = "--verify-sha1";

/// The flags `get` takes at the console, before the name, in any order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct GetFlags {
    allow_unverified: bool,
    verify_sha1: bool,
}

impl GetFlags {
    /// The flags at the start of `arg`, and the rest of it.
    fn take(mut arg: &str) -> (GetFlags, &str) {
        let mut flags = GetFlags::default();
        loop {
            let (word, rest) = arg.split_once(char::is_whitespace).unwrap_or((arg, ""));
            match word {
                ALLOW_UNVERIFIED => flags.allow_unverified = true,
                VERIFY_SHA1 => flags.verify_sha1 = true,
                _ => return (flags, arg),
            }
            arg = rest.trim_start();
        }
    }
}

/// `NAME ID` -> (NAME, the id), when the last word reads as a content id: `sha1:...`
/// (full or a prefix), or exactly the 12-digit short form the choices and search
/// show. A name whose last word is any other run of hex digits stays a name.
fn split_content_id(arg: &str) -> (&str, Option<ContentIdArg>) {
    let Some((name, last)) = arg.rsplit_once(char::is_whitespace) else {
        return (arg, None);
    };
    let short_form = last.len() == 12 && last.bytes().all(|b| b.is_ascii_hexdigit());
    if !(last.starts_with("sha1:") || short_form) {
        return (arg, None);
    }
    match ContentIdArg::parse(last) {
        Ok(id) => (name.trim_end(), Some(id)),
        Err(_) => (arg, None),
    }
}

/// Says why a download failed. When the holders disagree: the choices and how to
/// pick one; when only classic holders had it: where the bytes are and how to accept
/// them.
fn refused(name: &FileName, e: &DownloadError) {
    output::say(format!("get failed: {e}"));
    match e {
        DownloadError::Disagree { choices, .. } => {
            render::content_choices(choices)
                .into_iter()
                .for_each(output::say);
            output::say(format!(
                "pick one: 'get {name} ID' with an id above, or 'search {name}' then 'get N'"
            ));
        }
        DownloadError::Unverified(_) => output::say(format!(
            "it is not shared; to place it in the folder (and share it) anyway: \
             'get {ALLOW_UNVERIFIED} {name}' (it downloads it again)"
        )),
        _ => {}
    }
}

fn help(args: &str) -> Flow {
    if args.eq_ignore_ascii_case("wire") {
        // The wire verbs, from the same command table that drives dispatch and arity.
        for role in [Role::Index, Role::Seed, Role::Peer] {
            output::say(format!("{role}:"));
            for line in crate::protocol::commands::help(role).lines() {
                output::say(format!("  {line}"));
            }
        }
        return Flow::Continue;
    }
    if !args.is_empty() {
        match help_for(args) {
            Some(lines) => lines.into_iter().for_each(output::say),
            None => output::say(format!("no command '{args}'; type 'help' for the list")),
        }
        return Flow::Continue;
    }
    for line in help_lines() {
        output::say(line);
    }
    Flow::Continue
}

/// The name a member goes by, when known.
fn member_name(row: &MemberRow) -> Option<&str> {
    row.member.name().map(|n| n.as_str())
}

/// A member as people read it: its name (when known) and the start of its id.
fn who(r: &crate::overlay::member::MemberRow) -> String {
    let short = crate::identity::short(r.id.as_str());
    match r.member.name() {
        Some(name) => format!("{} ({short})", terminal_safe(name.as_str())),
        None => short.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::commands::CONSOLE_COMMANDS;
    use super::*;
    use crate::config::NodeAddr;
    use crate::overlay::OverlayEvent;
    use crate::peer::PeerEvent;
    use crate::protocol::name::PeerId;

    #[test]
    fn get_takes_its_flags_in_any_order_before_the_name() {
        assert_eq!(GetFlags::take("a.txt"), (GetFlags::default(), "a.txt"));
        let both = GetFlags {
            allow_unverified: true,
            verify_sha1: true,
        };
        assert_eq!(
            GetFlags::take("--verify-sha1  --allow-unverified a b.txt"),
            (both, "a b.txt")
        );
        let (flags, rest) = GetFlags::take("--verify-sha1");
        assert!(flags.verify_sha1 && rest.is_empty());
        // A name that only starts like a flag stays a name.
        assert_eq!(
            GetFlags::take("--verify-sha1x"),
            (GetFlags::default(), "--verify-sha1x")
        );
    }

    fn files(_command: &str) -> Vec<String> {
        ["tenkb.txt", "TenKB-notes.md", "onekb.txt", "tenkb.txt"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn seeds_are_named_by_address_and_counts_agree_with_their_nouns() {
        let seeds = [NodeAddr::parse("127.0.0.1:1500").unwrap()];
        let up = PeerEvent::Overlay(OverlayEvent::SeedUp { seed: 0, peers: 1 });
        assert_eq!(
            describe(&up, &seeds).unwrap(),
            "seed 127.0.0.1:1500: registered, 1 peer known"
        );
        let shared = PeerEvent::Shared {
            files: 1,
            bytes: 2048,
            from_cache: 0,
            skipped: Vec::new(),
        };
        assert_eq!(
            describe(&shared, &seeds).unwrap(),
            "sharing 1 file (2.0 KiB)"
        );
        let up = PeerEvent::IndexUp {
            index: "127.0.0.1:1024".into(),
            files: 1,
        };
        assert_eq!(
            describe(&up, &seeds).unwrap(),
            "index 127.0.0.1:1024: connected, 1 file published"
        );
    }

    #[test]
    fn the_first_word_completes_to_command_names_in_any_case() {
        assert_eq!(complete("", files).1.len(), CONSOLE_COMMANDS.len());
        assert_eq!(
            complete("s", files),
            (0, vec!["search".into(), "say".into(), "status".into()])
        );
        assert_eq!(complete("DOW", files), (0, vec!["downloads".into()]));
        assert_eq!(complete("zz", files), (0, vec![]));
    }

    #[test]
    fn get_completes_to_the_names_of_the_last_search() {
        assert_eq!(
            complete("get ten", files),
            (4, vec!["TenKB-notes.md".into(), "tenkb.txt".into()]),
            "case ignored, duplicates once"
        );
        assert_eq!(complete("G  one", files), (3, vec!["onekb.txt".into()]));
        assert_eq!(complete("get ", files).1.len(), 3);
        let asked = std::cell::Cell::new("");
        let (_, c) = complete("resume o", |command| {
            asked.set(if command == "resume" {
                "resume"
            } else {
                "other"
            });
            vec!["onekb.txt".into()]
        });
        assert_eq!((asked.get(), c), ("resume", vec!["onekb.txt".to_owned()]));
        assert_eq!(complete("help g", files), (5, vec!["get".into()]));
        assert_eq!(complete("help w", files), (5, vec!["wire".into()]));
        assert_eq!(complete("ls x", files), (3, vec![]), "ls takes no argument");
    }

    #[test]
    fn help_names_one_command_by_name_or_alias_in_any_case() {
        let get = help_for("get").unwrap();
        assert_eq!(get[0], "usage: get NAME [ID] | N");
        assert!(get[1].contains("download a file by name"), "{get:?}");
        assert!(get[2].contains('g'), "{get:?}");
        assert_eq!(help_for("G"), Some(get));
        assert_eq!(help_for("exit").unwrap()[0], "usage: quit");
        assert_eq!(help_for("nope"), None);
        for c in CONSOLE_COMMANDS {
            assert!(help_for(&c.name.to_uppercase()).is_some(), "{}", c.name);
        }
    }

    #[test]
    fn a_last_word_that_reads_as_a_content_id_picks_the_content() {
        let id = Sha1Digest::of(b"c");
        let line = format!("my notes.txt {}", id.short());
        let (name, arg) = split_content_id(&line);
        assert_eq!(
            (name, arg),
            ("my notes.txt", Some(ContentIdArg::Short(id.short())))
        );
        let line = format!("x.bin {id}");
        let (name, arg) = split_content_id(&line);
        assert_eq!((name, arg), ("x.bin", Some(ContentIdArg::Full(id))));
        // Other runs of hex digits stay part of the name.
        assert_eq!(split_content_id("photo 20240101"), ("photo 20240101", None));
        assert_eq!(split_content_id("x.bin"), ("x.bin", None));
        assert_eq!(split_content_id("x.bin sha1:zz"), ("x.bin sha1:zz", None));
    }

    #[test]
    fn a_text_shows_its_origins_name_and_short_id() {
        let key = crate::identity::NodeKey::for_test("p1");
        let said = |name: Option<&str>, local: bool| {
            let ev = PeerEvent::Overlay(OverlayEvent::Said {
                id: Sha1Digest::of(b"m"),
                origin: key.id().clone(),
                name: name.map(|n| PeerId::parse(n).unwrap()),
                time_ms: 0,
                text: "hi".into(),
                hops: 1,
                local,
            });
            describe(&ev, &[]).unwrap()
        };
        let short = &key.id().as_str()[..8];
        assert!(
            said(Some("p1"), false).ends_with(&format!("] p1 ({short}): hi")),
            "{}",
            said(Some("p1"), false)
        );
        assert!(said(None, false).ends_with(&format!("] {short}: hi")));
        assert!(said(Some("p1"), true).ends_with(&format!("] p1 ({short}) (you): hi")));
    }

    #[test]
    fn texts_from_the_network_cannot_drive_the_terminal() {
        let text = "hi\u{1b}]0;owned\u{7}\u{1b}[2J\r\nx is dead (declared by y)\u{9b}".to_owned();
        let said = PeerEvent::Overlay(OverlayEvent::Said {
            id: Sha1Digest::of(b"m"),
            origin: PeerId::parse("p1").unwrap(),
            name: None,
            time_ms: 0,
            text: text.clone(),
            hops: 1,
            local: false,
        });
        let message = PeerEvent::Message {
            from: "p1".into(),
            id: crate::identity::NodeKey::for_test("p1").id().clone(),
            text,
            remote: "127.0.0.1:1025".parse().unwrap(),
        };
        for ev in [said, message] {
            let line = describe(&ev, &[]).unwrap();
            assert!(!line.chars().any(char::is_control), "{line:?}");
            assert!(
                line.ends_with(
                    r"hi\u{1b}]0;owned\u{7}\u{1b}[2J\r\nx is dead (declared by y)\u{9b}"
                ),
                "{line}"
            );
        }
    }
}
