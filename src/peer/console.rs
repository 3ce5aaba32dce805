//! The peer's interactive console: search, download, list, status.
//!
//! The console is one of the two places that print to the user (with main.rs). Its
//! commands come from one table, [`CONSOLE_COMMANDS`], which drives dispatch and
//! `help`. Log lines and events are printed above the prompt through the output sink,
//! so they never scramble the line being typed; during a download they go above the
//! progress bar.

use super::download::{partials, DownloadError, Outcome, Progress};
use super::links::LinkCommand;
use super::pool::Found;
use super::{Peer, PeerEvent};
use crate::clock;
use crate::config::NodeAddr;
use crate::output::{self, LinePrinter};
use crate::overlay::peer::NotSent;
use crate::overlay::runtime::SayError;
use crate::overlay::{wire, MemberState, OverlayEvent};
use crate::protocol::commands::Role;
use crate::protocol::hash::Sha1Digest;
use crate::protocol::name::FileName;
use crate::signals::Signal;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{Editor, ExternalPrinter, Helper};
use std::io::IsTerminal;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;

/// The log filter of a peer with a console, when RUST_LOG does not set one: only
/// warnings and errors reach the terminal. The console already tells the user what
/// matters in its own words; the info lines said it again, between prompts. The line
/// editor's own warnings (a terminal that does not report the cursor) are noise there.
pub const DEFAULT_LOG_FILTER: &str = "warn,rustyline=error";

/// What to do after a command.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

/// A console command: the one table that drives dispatch and `help`.
struct ConsoleCommand {
    name: &'static str,
    aliases: &'static [&'static str],
    args: &'static str,
    summary: &'static str,
    run: fn(&mut Console<'_>, &str) -> Flow,
}

const CONSOLE_COMMANDS: &[ConsoleCommand] = &[
    ConsoleCommand {
        name: "search",
        aliases: &["s"],
        args: "WORDS...",
        summary: "find files on the index: every word must match, -word excludes",
        run: |c, args| {
            c.search(args);
            Flow::Continue
        },
    },
    ConsoleCommand {
        name: "get",
        aliases: &["g"],
        args: "NAME | N",
        summary: "download a file by name, or result N of the last search",
        run: |c, args| {
            c.get(args);
            Flow::Continue
        },
    },
    ConsoleCommand {
        name: "downloads",
        aliases: &[],
        args: "",
        summary: "downloads that stopped before the end (Ctrl-C, a crash) and can resume",
        run: |c, _| {
            c.downloads();
            Flow::Continue
        },
    },
    ConsoleCommand {
        name: "resume",
        aliases: &[],
        args: "NAME",
        summary: "continue a stopped download; pieces already here are not fetched again",
        run: |c, args| {
            c.resume(args);
            Flow::Continue
        },
    },
    ConsoleCommand {
        name: "say",
        aliases: &[],
        args: "TEXT",
        summary: "broadcast TEXT to every live peer",
        run: |c, args| {
            c.say(args);
            Flow::Continue
        },
    },
    ConsoleCommand {
        name: "msg",
        aliases: &[],
        args: "PEER TEXT",
        summary: "send TEXT to one peer (id or host:port) and show its reply",
        run: |c, args| {
            c.msg(args);
            Flow::Continue
        },
    },
    ConsoleCommand {
        name: "peers",
        aliases: &[],
        args: "",
        summary: "neighbours with their state and round-trip time; members known",
        run: |c, _| {
            c.peers();
            Flow::Continue
        },
    },
    ConsoleCommand {
        name: "ls",
        aliases: &[],
        args: "",
        summary: "list the files this peer shares",
        run: |c, _| {
            c.ls();
            Flow::Continue
        },
    },
    ConsoleCommand {
        name: "status",
        aliases: &[],
        args: "",
        summary: "this peer's counters and its index servers",
        run: |c, _| {
            c.status();
            Flow::Continue
        },
    },
    ConsoleCommand {
        name: "help",
        aliases: &["?"],
        args: "[COMMAND | wire]",
        summary:
            "this list; 'help get': one command; 'help wire': the protocol verbs each role serves",
        run: |_, args| help(args),
    },
    ConsoleCommand {
        name: "quit",
        aliases: &["exit", "q"],
        args: "",
        summary: "leave the network and exit (also Ctrl-D)",
        run: |_, _| Flow::Quit,
    },
];

impl ConsoleCommand {
    fn usage(&self) -> String {
        if self.args.is_empty() {
            self.name.to_owned()
        } else {
            format!("{} {}", self.name, self.args)
        }
    }
}

/// The command a word names (a name or an alias, in any case).
fn lookup(word: &str) -> Option<&'static ConsoleCommand> {
    let word = word.to_lowercase();
    CONSOLE_COMMANDS
        .iter()
        .find(|c| c.name == word || c.aliases.contains(&word.as_str()))
}

/// The console's help text, one line a command.
pub fn help_lines() -> Vec<String> {
    CONSOLE_COMMANDS
        .iter()
        .map(|c| format!("  {:<22} {}", c.usage(), c.summary))
        .collect()
}

/// `help COMMAND`: the command's usage, what it does, and its aliases; `None` when
/// no command has that name.
pub fn help_for(word: &str) -> Option<Vec<String>> {
    let c = lookup(word)?;
    let mut lines = vec![format!("usage: {}", c.usage()), format!("  {}", c.summary)];
    if !c.aliases.is_empty() {
        lines.push(format!("  also: {}", c.aliases.join(", ")));
    }
    Some(lines)
}

/// Tab completion for the text before the cursor: where the completed word starts,
/// and the candidates. The first word completes to command names; the argument of
/// `get` to the file names of the last search, of `resume` to stopped downloads
/// (`names`, as the caller picks them for that command), of `help` to command names.
/// Case is ignored, as command names and search ignore it.
pub fn complete(line: &str, names: impl FnOnce(&str) -> Vec<String>) -> (usize, Vec<String>) {
    let command_names = |prefix: &str| -> Vec<String> {
        let prefix = prefix.to_lowercase();
        CONSOLE_COMMANDS
            .iter()
            .map(|c| c.name)
            .filter(|n| n.starts_with(&prefix))
            .map(str::to_owned)
            .collect()
    };
    let Some((word, rest)) = line.split_once(char::is_whitespace) else {
        return (0, command_names(line));
    };
    let start = line.len() - rest.trim_start().len();
    let arg = &line[start..];
    let candidates = match lookup(word).map(|c| c.name) {
        Some("help") => {
            let mut c = command_names(arg);
            if "wire".starts_with(&arg.to_lowercase()) {
                c.push("wire".into());
            }
            c
        }
        Some(command @ ("get" | "resume")) => {
            let prefix = arg.to_lowercase();
            let mut c: Vec<String> = names(command)
                .into_iter()
                .filter(|n| n.to_lowercase().starts_with(&prefix))
                .collect();
            c.sort();
            c.dedup();
            c
        }
        _ => Vec::new(),
    };
    (start, candidates)
}

/// The line editor's helper: completion only (no hints, colours or validation).
struct ConsoleHelper {
    /// File names of the last search, for `get`.
    found: Arc<Mutex<Vec<String>>>,
    state_dir: std::path::PathBuf,
}

impl Completer for ConsoleHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let Some(before) = line.get(..pos) else {
            return Ok((pos, Vec::new()));
        };
        Ok(complete(before, |command| match command {
            "resume" => partials(&self.state_dir)
                .into_iter()
                .map(|p| p.name)
                .collect(),
            _ => self.found.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }))
    }
}

impl Hinter for ConsoleHelper {
    type Hint = String;
}

impl Highlighter for ConsoleHelper {}

impl Validator for ConsoleHelper {}

impl Helper for ConsoleHelper {}

/// Human-readable byte counts (binary units).
pub fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub use crate::output::plural;

/// A text from the network, fit for a terminal: control characters (escape sequences,
/// carriage returns, line breaks) are shown escaped (`\u{1b}`, `\r`, `\n`), so that
/// a peer can neither drive another's terminal nor forge lines of its output.
fn terminal_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// The text of an event, as the console and main.rs print it; `None` for progress,
/// which the console draws as a bar. `seeds` is the peer's seed list, so that a seed
/// is named by its address.
pub fn describe(event: &PeerEvent, seeds: &[NodeAddr]) -> Option<String> {
    Some(match event {
        PeerEvent::Shared {
            files,
            bytes,
            from_cache,
            skipped,
        } => {
            let mut s = format!(
                "sharing {} ({})",
                plural(*files as u64, "file"),
                fmt_bytes(*bytes)
            );
            if *from_cache > 0 {
                s.push_str(&format!(
                    ", {from_cache} unchanged since last run (hash cache)"
                ));
            }
            for why in skipped {
                s.push_str(&format!("\n  not shared: {why}"));
            }
            s
        }
        PeerEvent::ScanFailed(why) => format!("cannot scan the shared folder: {why}"),
        PeerEvent::IndexUp { index, files } => {
            format!(
                "index {index}: connected, {} published",
                plural(*files as u64, "file")
            )
        }
        PeerEvent::IndexDown { index, reason } => format!("index {index}: unreachable ({reason})"),
        PeerEvent::Hashing { .. } => return None,
        PeerEvent::Message { from, text, remote } => {
            format!(
                "message from {from} ({}): {}",
                remote.ip().to_canonical(),
                terminal_safe(text)
            )
        }
        PeerEvent::Overlay(ev) => return describe_overlay(ev, seeds),
    })
}

/// A seed by its address (the events carry its position in the seed list).
fn seed_name(seeds: &[NodeAddr], i: usize) -> String {
    match seeds.get(i) {
        Some(addr) => format!("seed {addr}"),
        None => format!("seed #{}", i + 1),
    }
}

/// The overlay events a user wants to see; the rest are only logged.
fn describe_overlay(ev: &OverlayEvent, seeds: &[NodeAddr]) -> Option<String> {
    Some(match ev {
        OverlayEvent::Said {
            origin,
            time_ms,
            text,
            local,
            ..
        } => {
            let who = if *local {
                format!("{origin} (you)")
            } else {
                origin.to_string()
            };
            format!(
                "[{}] {who}: {}",
                clock::local_time_of_day(*time_ms),
                terminal_safe(text)
            )
        }
        OverlayEvent::SeedUp { seed, peers } => {
            format!(
                "{}: registered, {} known",
                seed_name(seeds, *seed),
                plural(*peers as u64, "peer")
            )
        }
        OverlayEvent::SeedDown { seed } => {
            log::info!(
                "{} did not answer; trying again later",
                seed_name(seeds, *seed)
            );
            return None;
        }
        OverlayEvent::IdConflict { seed } => format!(
            "{} refused this peer: its id is in use by a live peer on another host (choose another with --id)",
            seed_name(seeds, *seed)
        ),
        OverlayEvent::Dead { id, by } => format!("{id} is dead (declared by {by})"),
        OverlayEvent::Left { id } => format!("{id} left the network"),
        OverlayEvent::RefutedSelf { incarnation } => {
            log::info!("refuted a suspicion about this peer (incarnation {incarnation})");
            return None;
        }
        OverlayEvent::NeighborUp { id } => {
            log::debug!("neighbour {id} up");
            return None;
        }
        OverlayEvent::NeighborDown { id, reason } => {
            log::debug!("neighbour {id} down ({reason})");
            return None;
        }
        OverlayEvent::Suspected { id } => {
            log::info!("{id} is suspected (no answer to probes)");
            return None;
        }
        OverlayEvent::Refuted { id, .. } => {
            log::info!("{id} is alive after all (refuted)");
            return None;
        }
        OverlayEvent::Joined { .. } | OverlayEvent::Forgotten { .. } => return None,
    })
}

/// A hashing bar on the terminal, and when it started.
struct HashingBar {
    bar: ProgressBar,
    started: std::time::Instant,
}

impl HashingBar {
    fn new(bytes_total: u64) -> HashingBar {
        let bar = ProgressBar::with_draw_target(Some(bytes_total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "hashing {msg} [{bar:30}] {bytes}/{total_bytes} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        if !bar.is_hidden() {
            output::set_progress(Some(bar.clone()));
        }
        HashingBar {
            bar,
            started: std::time::Instant::now(),
        }
    }

    /// Clears the bar and stops routing output through it. The bar was drawn over
    /// the prompt line, which the line editor does not know: the caller prints a line
    /// next, through the editor, which redraws the prompt after it.
    fn finish(self) {
        self.bar.finish_and_clear();
        output::set_progress(None);
    }
}

/// Prints events, drawing hashing progress as a bar. Every bar ends with a line
/// printed through the line editor, so the prompt comes back after it.
fn print_events(events: crossbeam_channel::Receiver<PeerEvent>, seeds: Vec<NodeAddr>) {
    let mut bar: Option<HashingBar> = None;
    for ev in events {
        if let PeerEvent::Hashing {
            files_done,
            files_total,
            bytes_done,
            bytes_total,
        } = ev
        {
            let b = bar.get_or_insert_with(|| HashingBar::new(bytes_total));
            b.bar.set_position(bytes_done);
            b.bar.set_message(format!(
                "{files_done}/{}",
                plural(files_total as u64, "file")
            ));
            if bytes_done >= bytes_total {
                if let Some(b) = bar.take() {
                    let secs = b.started.elapsed().as_secs_f64();
                    b.finish();
                    output::say(format!(
                        "hashed {} ({}) in {secs:.1}s",
                        plural(files_total as u64, "file"),
                        fmt_bytes(bytes_total)
                    ));
                }
            }
            continue;
        }
        // A scan that ends without the last progress report (it failed, or files
        // vanished while hashed) ends its bar all the same.
        if matches!(ev, PeerEvent::Shared { .. } | PeerEvent::ScanFailed(_)) {
            if let Some(b) = bar.take() {
                b.finish();
            }
        }
        if let Some(text) = describe(&ev, &seeds) {
            output::say(text);
        }
    }
}

struct EditorPrinter<P: ExternalPrinter + Send>(P);

impl<P: ExternalPrinter + Send> LinePrinter for EditorPrinter<P> {
    fn print_line(&mut self, line: String) {
        let _ = self.0.print(line + "\n");
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub struct BarProgress {
    bar: Mutex<Option<ProgressBar>>,
    name: Mutex<String>,
}

impl BarProgress {
    pub fn new() -> BarProgress {
        BarProgress {
            bar: Mutex::new(None),
            name: Mutex::new(String::new()),
        }
    }
}

impl Default for BarProgress {
    fn default() -> Self {
        BarProgress::new()
    }
}

impl Progress for BarProgress {
    fn begin(&self, name: &str, total: Option<u64>) {
        let bar = match total {
            Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        let style = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(name.to_owned());
        *self.name.lock().unwrap_or_else(|e| e.into_inner()) = name.to_owned();
        // A hidden bar (stderr is not a terminal) would swallow what is printed
        // through it: route output through the bar only when it is drawn.
        if !bar.is_hidden() {
            output::set_progress(Some(bar.clone()));
        }
        *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
    }

    fn advance(&self, bytes: u64) {
        if let Some(b) = &*self.bar.lock().unwrap_or_else(|e| e.into_inner()) {
            b.inc(bytes);
        }
    }

    fn sources(&self, active: usize) {
        if let Some(b) = &*self.bar.lock().unwrap_or_else(|e| e.into_inner()) {
            let name = self.name.lock().unwrap_or_else(|e| e.into_inner()).clone();
            b.set_message(format!("{name} ({})", plural(active as u64, "source")));
        }
    }

    fn source(&self, holder: &str) {
        log::info!("downloading from {holder}");
    }

    fn note(&self, text: &str) {
        output::say(text);
    }

    fn end(&self) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            b.finish_and_clear();
        }
        output::set_progress(None);
    }
}

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
                if console.dispatch(line) == Flow::Quit {
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
                if found.is_empty() {
                    output::say(format!("no file matches '{words}'"));
                }
                for (i, f) in found.iter().enumerate() {
                    let size = f
                        .size
                        .map(fmt_bytes)
                        .unwrap_or_else(|| "size unknown".into());
                    let id = f.id.map(|d| d.short()).unwrap_or_else(|| "classic".into());
                    output::say(format!(
                        "{:>3}. {}  ({size}, {}, {id})",
                        i + 1,
                        f.name,
                        plural(f.holders, "holder")
                    ));
                }
                if more {
                    output::say("(more results: narrow the search)");
                }
                *self.found_names.lock().unwrap_or_else(|e| e.into_inner()) =
                    found.iter().map(|f| f.name.clone()).collect();
                self.last_results = found;
            }
            Err(e) => output::say(format!("search failed: {e}")),
        }
    }

    fn get(&mut self, arg: &str) {
        if arg.is_empty() {
            output::say("usage: get NAME | N  (N: a result number from the last search)");
            return;
        }
        let (name, id): (String, Option<Sha1Digest>) = match arg.parse::<usize>() {
            Ok(n) if n >= 1 && n <= self.last_results.len() => {
                let f = &self.last_results[n - 1];
                (f.name.clone(), f.id)
            }
            Ok(n) if !self.last_results.is_empty() || FileName::parse(arg).is_err() => {
                output::say(format!("no result {n} in the last search"));
                return;
            }
            _ => (arg.to_owned(), None),
        };
        self.fetch(name, id);
    }

    /// Downloads a file (by name, optionally only one content) and reports the outcome.
    fn fetch(&mut self, name: String, id: Option<Sha1Digest>) {
        let name = match FileName::parse(&name) {
            Ok(n) => n,
            Err(e) => {
                output::say(format!("'{name}': {e}"));
                return;
            }
        };
        let progress = BarProgress::new();
        self.cancel.store(false, Ordering::SeqCst);
        match self
            .peer
            .download(name.clone(), id, &progress, &self.cancel)
        {
            Ok(Outcome::Downloaded(done)) => {
                let secs = done.elapsed.as_secs_f64().max(1e-6);
                let rate = done.hashes.size as f64 / secs;
                let check = if done.verified_in_advance {
                    "verified"
                } else {
                    "NOT verified in advance (classic holder)"
                };
                output::say(format!(
                    "downloaded {} ({}, {check}) from {} in {:.2}s ({}/s); now sharing it",
                    name,
                    fmt_bytes(done.hashes.size),
                    done.sources.join(", "),
                    secs,
                    fmt_bytes(rate as u64)
                ));
            }
            Ok(Outcome::AlreadyHave { path, id }) => {
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
            Err(e) => output::say(format!("get failed: {e}")),
        }
    }

    /// Names differ by case (search ignores it, names do not): when no file has this
    /// exact name, a hint naming the files whose names match it but for case.
    fn other_case(&self, name: &FileName) -> Option<String> {
        let (found, _) = self.peer.pool().search(name.as_str(), 100).ok()?;
        let mut names: Vec<&str> = found
            .iter()
            .map(|f| f.name.as_str())
            .filter(|n| *n != name.as_str() && n.to_lowercase() == name.as_str().to_lowercase())
            .collect();
        names.sort_unstable();
        names.dedup();
        if names.is_empty() {
            return None;
        }
        let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
        Some(format!(
            "names are case-sensitive: did you mean {}?",
            quoted.join(" or ")
        ))
    }

    fn downloads(&self) {
        let list = partials(&self.peer.config().state_dir);
        if list.is_empty() {
            output::say("no stopped downloads");
        }
        for p in list {
            let pct = (p.pieces_done * 100).checked_div(p.pieces).unwrap_or(100);
            output::say(format!(
                "{}  ({}, {} of {}, {pct}%, {})",
                p.name,
                fmt_bytes(p.size),
                p.pieces_done,
                plural(p.pieces as u64, "piece"),
                p.id.short()
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
        self.fetch(p.name, Some(p.id));
    }

    fn ls(&self) {
        let catalog = self.peer.shared().catalog();
        if catalog.is_empty() {
            output::say("sharing no files yet");
        }
        for f in catalog.iter() {
            output::say(format!(
                "{}  ({}, {})",
                f.name,
                fmt_bytes(f.hashes.size),
                f.hashes.id.short()
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
            output::say("usage: msg PEER TEXT  (PEER: an id from 'peers', or host:port)");
            return;
        };
        let text = text.trim();
        let addr = if let Ok(a) = who.parse::<std::net::SocketAddr>() {
            a.to_string()
        } else {
            let rows = match self.peer.overlay().status(true) {
                Ok(s) => s.rows,
                Err(e) => {
                    output::say(format!("msg failed: {e}"));
                    return;
                }
            };
            match rows.iter().find(|r| r.id.as_str() == who) {
                Some(r) if !r.member.state.is_gone() => r.member.addr.to_string(),
                Some(r) => {
                    output::say(format!("{who} is {}", r.member.state));
                    return;
                }
                None => {
                    output::say(format!(
                        "no peer '{who}' known; see 'peers', or give host:port"
                    ));
                    return;
                }
            }
        };
        let t = self.peer.config().timeouts;
        let me = self.peer.shared().id.clone();
        let reply = crate::net::client::Client::connect(&addr, &t)
            .and_then(|mut c| c.call(&["msg", me.as_str(), &wire::escape_text(text)]));
        match reply {
            Ok(f) => {
                let text = f
                    .first()
                    .and_then(|r| wire::unescape_text(r).ok())
                    .unwrap_or_default();
                output::say(format!("reply from {who}: {}", terminal_safe(&text)));
            }
            Err(e) => output::say(format!("msg failed: {e}")),
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
            .filter(|r| r.view == crate::overlay::peer::View::Active)
            .collect();
        if neighbours.is_empty() {
            output::say("no neighbours yet");
        }
        for r in &neighbours {
            let rtt = r
                .member
                .rtt_ms
                .map_or("rtt -".to_owned(), |ms| format!("rtt {ms} ms"));
            output::say(format!(
                "  {:<20} {:<22} {:<8} {rtt}",
                r.id.as_str(),
                r.member.addr.to_string(),
                r.member.state.as_str()
            ));
        }
        let suspect = st
            .rows
            .iter()
            .filter(|r| r.member.state == MemberState::Suspect)
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>();
        let dead = st
            .rows
            .iter()
            .filter(|r| r.member.state.is_gone())
            .map(|r| r.id.as_str())
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
        for (k, v) in self.peer.shared().status_rows() {
            output::say(format!("{k:>16}: {v}"));
        }
        for l in self.peer.link_states() {
            let state = if l.connected {
                format!(
                    "connected, {} published",
                    plural(l.files_known as u64, "file")
                )
            } else {
                format!(
                    "down ({})",
                    l.last_error.unwrap_or_else(|| "connecting".into())
                )
            };
            output::say(format!("{:>16}: {state}", format!("index {}", l.index)));
        }
        match self.peer.overlay().status(false) {
            Ok(o) => output::say(format!(
                "{:>16}: {}, {}, {} of {} up, {} said, {} heard",
                "overlay",
                plural(o.neighbours as u64, "neighbour"),
                plural(o.peers as u64, "member"),
                o.seeds_up,
                plural(self.peer.config().overlay.seeds.len() as u64, "seed"),
                plural(o.said, "message"),
                o.heard
            )),
            Err(e) => output::say(format!("{:>16}: {e}", "overlay")),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::name::PeerId;

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
        let conflict = PeerEvent::Overlay(OverlayEvent::IdConflict { seed: 0 });
        assert!(describe(&conflict, &seeds)
            .unwrap()
            .starts_with("seed 127.0.0.1:1500 refused this peer"));
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
        assert_eq!(get[0], "usage: get NAME | N");
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
    fn texts_from_the_network_cannot_drive_the_terminal() {
        let text = "hi\u{1b}]0;owned\u{7}\u{1b}[2J\r\nx is dead (declared by y)\u{9b}".to_owned();
        let said = PeerEvent::Overlay(OverlayEvent::Said {
            id: Sha1Digest::of(b"m"),
            origin: PeerId::parse("p1").unwrap(),
            time_ms: 0,
            text: text.clone(),
            hops: 1,
            local: false,
        });
        let message = PeerEvent::Message {
            from: "p1".into(),
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
