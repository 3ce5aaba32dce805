//! The console's commands: one table, [`CONSOLE_COMMANDS`], that drives dispatch,
//! `help`, `help COMMAND` and Tab completion.

use super::{help, Console};
use crate::peer::download::partials;
use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::Helper;
use std::sync::{Arc, Mutex};

/// What to do after a command.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    Quit,
}

/// A console command: the one table that drives dispatch and `help`.
pub(super) struct ConsoleCommand {
    pub(super) name: &'static str,
    aliases: &'static [&'static str],
    args: &'static str,
    summary: &'static str,
    pub(super) run: fn(&mut Console<'_>, &str) -> Flow,
}

pub(super) const CONSOLE_COMMANDS: &[ConsoleCommand] = &[
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
        args: "NAME [ID] | N",
        summary: "download a file by name (ID: which content, when its holders disagree), \
                  or result N of the last search; 'get --allow-unverified NAME' places a \
                  file that only classic holders have; 'get --verify-sha1 NAME' also checks \
                  the whole file's SHA-1 against what its holders claim",
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
        summary: "send TEXT to one peer (id, name or host:port) and show its reply",
        run: |c, args| {
            c.msg(args);
            Flow::Continue
        },
    },
    ConsoleCommand {
        name: "kv",
        aliases: &[],
        args: "put KEY VALUE | get KEY | rm KEY",
        summary: "the network's key-value store on the DHT (writing needs the network's key)",
        run: |c, args| {
            c.kv(args);
            Flow::Continue
        },
    },
    ConsoleCommand {
        name: "upload",
        aliases: &[],
        args: "FILE PEER",
        summary: "push a file to a peer that takes uploads (id, name or host:port); \
                  it checks the file against its content id, then shares it",
        run: |c, args| {
            c.upload(args);
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
pub(super) fn lookup(word: &str) -> Option<&'static ConsoleCommand> {
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
pub(super) struct ConsoleHelper {
    /// File names of the last search, for `get`.
    pub(super) found: Arc<Mutex<Vec<String>>>,
    pub(super) state_dir: std::path::PathBuf,
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
