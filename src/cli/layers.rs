//! Flags from outside the command line: `P2PSHARE_<FLAG>` environment variables and a
//! TOML configuration file, turned into argument strings and merged into the command
//! line before clap parses it for real.
//!
//! Precedence, highest first: the command line, the environment, the configuration file
//! (`--config FILE`, else the file `P2PSHARE_CONFIG` names, else the per-user
//! `$XDG_CONFIG_HOME/p2pshare/config.toml` or `~/.config/p2pshare/config.toml` when it
//! exists), then the fallbacks the commands have built in (`config/index.txt`,
//! `config/seeds.txt`, the defaults in `--help`).
//!
//! Nothing here lists flags by hand. Which flags a command has, whether they take a
//! value and whether they repeat come from clap's own `Command`, so a flag added to
//! `cli.rs` can be set from the environment and a file at once. A flag set at a higher
//! layer hides every value of it at the layers below (`--index` on the command line
//! replaces the file's list instead of adding to it), and so does a flag it conflicts
//! with (`-q` on the command line hides `verbose = 2` in the file).
//!
//! This module reads the files and the variables it is handed and returns arguments or
//! a [`LayerError`]; it never prints or exits, and never judges a value: clap checks
//! every value the same way, wherever it came from.

use clap::builder::ValueParser;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use std::collections::{BTreeMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};

/// Reads one environment variable (`std::env::var_os` outside tests).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// Prefix of the environment variable for each long flag: `--max-sources` is
/// `P2PSHARE_MAX_SOURCES`.
pub const ENV_PREFIX: &str = "P2PSHARE_";

/// Names the configuration file when `--config` is not given.
pub const CONFIG_ENV: &str = "P2PSHARE_CONFIG";

/// The command line with the other layers merged in.
#[derive(Debug)]
pub struct Merged {
    pub argv: Vec<OsString>,
    /// Each flag taken from outside the command line, with where it came from.
    pub origins: Vec<Origin>,
}

/// Where a merged flag came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The flag as clap names it: `--max-sources`.
    pub flag: String,
    /// `P2PSHARE_MAX_SOURCES`, or `/home/ann/.config/p2pshare/config.toml ([peer] max-sources)`.
    pub source: String,
}

impl Merged {
    /// A note naming where the flags a clap error mentions came from, when they did not
    /// come from the command line: the user cannot see them there.
    pub fn explain(&self, error_text: &str) -> Option<String> {
        let notes: Vec<String> = self
            .origins
            .iter()
            .filter(|o| mentions_flag(error_text, &o.flag))
            .map(|o| format!("note: {} came from {}", o.flag, o.source))
            .collect();
        (!notes.is_empty()).then(|| notes.join("\n"))
    }
}

/// Whether `text` names `flag` as a whole word (`--seed` is not in `--seeds`).
fn mentions_flag(text: &str, flag: &str) -> bool {
    text.match_indices(flag).any(|(at, _)| {
        let next = text[at + flag.len()..].chars().next();
        !matches!(next, Some(c) if c.is_alphanumeric() || c == '-' || c == '_')
    })
}

/// Why the environment or a configuration file could not be used.
#[derive(Debug)]
pub enum LayerError {
    /// The configuration file could not be read.
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The configuration file is not valid TOML.
    Syntax { path: PathBuf, error: String },
    /// A key that is not the long name of a flag of that command (or of any command,
    /// at the top level).
    UnknownKey {
        path: PathBuf,
        key: String,
        command: String,
        hint: Option<String>,
    },
    /// A table that is not a command.
    UnknownSection {
        path: PathBuf,
        section: String,
        command: String,
    },
    /// A value of the wrong shape for its flag (a list for a single value, a number for
    /// a switch): `source` names the file and key, or the variable.
    BadValue { source: String, reason: String },
}

impl fmt::Display for LayerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerError::Read { path, error } => {
                write!(f, "cannot read the config file {}: {error}", path.display())
            }
            LayerError::Syntax { path, error } => {
                write!(f, "config file {}: {}", path.display(), error.trim_end())
            }
            LayerError::UnknownKey {
                path,
                key,
                command,
                hint,
            } => {
                write!(
                    f,
                    "config file {}: unknown key '{key}': `{command}` has no --{key} flag",
                    path.display()
                )?;
                if command == "p2pshare" {
                    f.write_str(", nor does any of its commands")?;
                }
                if let Some(hint) = hint {
                    write!(f, " (did you mean '{hint}'?)")?;
                }
                Ok(())
            }
            LayerError::UnknownSection {
                path,
                section,
                command,
            } => write!(
                f,
                "config file {}: unknown table [{section}]: `{command}` has no such command",
                path.display()
            ),
            LayerError::BadValue { source, reason } => write!(f, "{source}: {reason}"),
        }
    }
}

impl std::error::Error for LayerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LayerError::Read { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// One flag's value from one layer, as arguments: `--index=a:1024 --index=b:1024`,
/// `--no-console`, or nothing for a switch set to false.
#[derive(Debug)]
struct Setting {
    id: String,
    flag: String,
    args: Vec<OsString>,
    source: String,
}

/// Merges the environment and the configuration file into `argv`, for the program
/// `root` describes. When the command line names no command, or clap would reject it
/// anyway, `argv` comes back unchanged and the real parse reports the problem.
pub fn merge(root: &Command, argv: Vec<OsString>, env: Env) -> Result<Merged, LayerError> {
    let mut root = root.clone();
    root.build();
    let unchanged = |argv| Merged {
        argv,
        origins: Vec::new(),
    };
    let Some(line) = CommandLine::read(&root, &argv) else {
        return Ok(unchanged(argv));
    };
    let leaf = descend(&root, &line.path);

    let mut taken = line.set;
    add_conflicts(leaf, &mut taken);
    let mut merged: Vec<Setting> = Vec::new();
    let from_env = env_settings(leaf, env)?;
    take_layer(leaf, from_env, &mut taken, &mut merged);
    if let Some(path) = config_path(line.config, env) {
        let text = std::fs::read_to_string(&path).map_err(|error| LayerError::Read {
            path: path.clone(),
            error,
        })?;
        let from_file = file_settings(&root, &line.path, &text, &path)?;
        take_layer(leaf, from_file, &mut taken, &mut merged);
    }
    if merged.is_empty() {
        return Ok(unchanged(argv));
    }

    // The merged flags go before a `--`, after which everything is a positional value.
    let at = argv.iter().position(|a| a == "--").unwrap_or(argv.len());
    let mut out = argv[..at].to_vec();
    let mut origins = Vec::new();
    for s in merged {
        out.extend(s.args);
        origins.push(Origin {
            flag: s.flag,
            source: s.source,
        });
    }
    out.extend_from_slice(&argv[at..]);
    Ok(Merged { argv: out, origins })
}

/// What the command line itself says: the command path, the flags it sets, `--config`.
struct CommandLine {
    path: Vec<String>,
    set: HashSet<String>,
    config: Option<PathBuf>,
}

impl CommandLine {
    /// Parses `argv` with every argument optional and every value taken as text, so a
    /// command line that leaves required flags to a file still parses, and no value is
    /// checked twice. `None` when it does not parse (help, version, a typo): the real
    /// parse then says why.
    fn read(root: &Command, argv: &[OsString]) -> Option<CommandLine> {
        let matches = lenient(root.clone()).try_get_matches_from(argv).ok()?;
        let mut path = Vec::new();
        let mut at: &ArgMatches = &matches;
        while let Some((name, sub)) = at.subcommand() {
            path.push(name.to_owned());
            at = sub;
        }
        if path.is_empty() {
            return None;
        }
        let leaf = descend(root, &path);
        let set = leaf
            .get_arguments()
            .filter(|a| takes_part(a))
            .map(|a| a.get_id().as_str())
            .filter(|id| at.value_source(id) == Some(ValueSource::CommandLine))
            .map(str::to_owned)
            .collect();
        let config = at
            .try_get_one::<OsString>("config")
            .ok()
            .flatten()
            .map(PathBuf::from);
        Some(CommandLine { path, set, config })
    }
}

fn lenient(cmd: Command) -> Command {
    cmd.subcommand_required(false)
        .arg_required_else_help(false)
        .mut_args(|a| {
            let a = a.required(false);
            if takes_value(&a) {
                a.value_parser(ValueParser::os_string())
            } else {
                a
            }
        })
        .mut_subcommands(lenient)
}

fn takes_value(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Set | ArgAction::Append)
}

/// Whether a flag can come from the environment or a file: every long flag but help,
/// version, and `--config` itself.
fn settable(arg: &Arg) -> bool {
    arg.get_long().is_some() && arg.get_id() != "config" && takes_part(arg)
}

fn takes_part(arg: &Arg) -> bool {
    matches!(
        arg.get_action(),
        ArgAction::Set
            | ArgAction::Append
            | ArgAction::SetTrue
            | ArgAction::SetFalse
            | ArgAction::Count
    )
}

fn descend<'a>(root: &'a Command, path: &[String]) -> &'a Command {
    path.iter().fold(root, |cmd, name| {
        cmd.find_subcommand(name)
            .expect("the path comes from parsing with this command")
    })
}

/// Adds a layer's settings that no higher layer has set, then marks their flags (and
/// those they conflict with) as set.
fn take_layer(
    leaf: &Command,
    layer: Vec<Setting>,
    taken: &mut HashSet<String>,
    merged: &mut Vec<Setting>,
) {
    let fresh: Vec<Setting> = layer
        .into_iter()
        .filter(|s| !taken.contains(&s.id))
        .collect();
    for s in &fresh {
        taken.insert(s.id.clone());
    }
    add_conflicts(leaf, taken);
    merged.extend(fresh);
}

/// Adds to `taken` every flag that conflicts with one in it: those are one setting.
fn add_conflicts(leaf: &Command, taken: &mut HashSet<String>) {
    let conflicting: Vec<String> = leaf
        .get_arguments()
        .filter(|a| taken.contains(a.get_id().as_str()))
        .flat_map(|a| leaf.get_arg_conflicts_with(a))
        .map(|a| a.get_id().to_string())
        .collect();
    taken.extend(conflicting);
}

/// The environment variable for a long flag: `max-sources` is `P2PSHARE_MAX_SOURCES`.
pub fn env_name(long: &str) -> String {
    format!("{ENV_PREFIX}{}", long.to_uppercase().replace('-', "_"))
}

fn env_settings(leaf: &Command, env: Env) -> Result<Vec<Setting>, LayerError> {
    let mut out = Vec::new();
    for arg in leaf.get_arguments().filter(|a| settable(a)) {
        let long = arg.get_long().expect("settable flags are long");
        let name = env_name(long);
        let Some(value) = env(&name).filter(|v| !v.is_empty()) else {
            continue;
        };
        let bad = |reason: String| LayerError::BadValue {
            source: format!("environment variable {name}"),
            reason,
        };
        let args = match arg.get_action() {
            ArgAction::Set => vec![flag_with_value(long, &value)],
            ArgAction::Append => {
                let text = value.to_str().ok_or_else(|| bad("not UTF-8 text".into()))?;
                text.split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(|v| flag_with_value(long, OsStr::new(v)))
                    .collect()
            }
            _ => {
                let text = value.to_string_lossy();
                let count = switch_count(arg, &text).map_err(bad)?;
                repeat_flag(long, count)
            }
        };
        out.push(Setting {
            id: arg.get_id().to_string(),
            flag: format!("--{long}"),
            args,
            source: format!("environment variable {name}"),
        });
    }
    Ok(out)
}

/// How many times a switch or a counter is given, from `true`, `off`, `2`...
fn switch_count(arg: &Arg, text: &str) -> Result<u32, String> {
    let yes = match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    };
    match (arg.get_action(), yes) {
        (ArgAction::SetFalse, Some(y)) => Ok(u32::from(!y)),
        (_, Some(y)) => Ok(u32::from(y)),
        (ArgAction::Count, None) => text
            .trim()
            .parse::<u8>()
            .map(u32::from)
            .map_err(|_| format!("expected a count (0, 1, 2...) or true/false, not '{text}'")),
        _ => Err(format!("expected true or false, not '{text}'")),
    }
}

fn flag_with_value(long: &str, value: &OsStr) -> OsString {
    let mut s = OsString::from(format!("--{long}="));
    s.push(value);
    s
}

fn repeat_flag(long: &str, count: u32) -> Vec<OsString> {
    (0..count)
        .map(|_| OsString::from(format!("--{long}")))
        .collect()
}

/// The configuration file to read: `--config`, else `P2PSHARE_CONFIG`, else the
/// per-user file when it exists.
fn config_path(from_line: Option<PathBuf>, env: Env) -> Option<PathBuf> {
    if from_line.is_some() {
        return from_line;
    }
    if let Some(named) = env(CONFIG_ENV).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(named));
    }
    user_config_path(env).filter(|p| p.is_file())
}

/// `$XDG_CONFIG_HOME/p2pshare/config.toml`, else `$HOME/.config/p2pshare/config.toml`.
pub fn user_config_path(env: Env) -> Option<PathBuf> {
    // The XDG spec says to ignore a relative XDG_CONFIG_HOME.
    let base = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            env("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    Some(base.join("p2pshare").join("config.toml"))
}

/// The settings a configuration file gives the command at `path`, after checking the
/// whole file: a key must be a long flag of its table's command or of one below it
/// (at the top level, of any command), a table must be a command. Keys in deeper
/// tables win over shallower ones (`[peer]` over the top level).
fn file_settings(
    root: &Command,
    path: &[String],
    text: &str,
    file: &Path,
) -> Result<Vec<Setting>, LayerError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| LayerError::Syntax {
            path: file.to_owned(),
            error: e.to_string(),
        })?;
    check_table(root, &table, &[], file)?;

    let leaf = descend(root, path);
    // Flag id -> (flag, value, depth, key label); a deeper table replaces what a
    // shallower one said, before the value is judged: a top-level list of index servers
    // does not fit `bench index`, which takes one, unless [bench.index] gives one.
    let mut chosen: BTreeMap<String, (&Arg, &toml::Value, usize, String)> = BTreeMap::new();
    let mut at = Some(&table);
    for depth in 0..=path.len() {
        let Some(table) = at else { break };
        let section = &path[..depth];
        for (key, value) in table.iter().filter(|(_, v)| !v.is_table()) {
            let Some(arg) = leaf
                .get_arguments()
                .find(|a| settable(a) && a.get_long() == Some(key.as_str()))
            else {
                continue;
            };
            let label = key_label(section, key);
            chosen.insert(arg.get_id().to_string(), (arg, value, depth, label));
        }
        at = path
            .get(depth)
            .and_then(|name| table.get(name))
            .and_then(|v| v.as_table());
    }
    let command = format!("p2pshare {}", path.join(" "));
    chosen
        .into_iter()
        .map(|(id, (arg, value, depth, label))| {
            let source = format!("{} ({label})", file.display());
            let args = value_args(arg, value).map_err(|reason| {
                let hint = if depth < path.len() && value.is_array() {
                    format!(" for `{command}`; give it one in [{}]", path.join("."))
                } else {
                    String::new()
                };
                LayerError::BadValue {
                    source: source.clone(),
                    reason: format!("{reason}{hint}"),
                }
            })?;
            let flag = format!("--{}", arg.get_long().expect("settable flags are long"));
            Ok(Setting {
                id,
                flag,
                args,
                source,
            })
        })
        .collect()
}

/// `[peer] max-sources`, or `max-sources` at the top level.
fn key_label(section: &[String], key: &str) -> String {
    if section.is_empty() {
        key.to_owned()
    } else {
        format!("[{}] {key}", section.join("."))
    }
}

fn check_table(
    cmd: &Command,
    table: &toml::Table,
    section: &[String],
    file: &Path,
) -> Result<(), LayerError> {
    let command = std::iter::once("p2pshare")
        .chain(section.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    for (key, value) in table {
        if let Some(inner) = value.as_table() {
            let Some(sub) = cmd.find_subcommand(key) else {
                let mut full = section.to_vec();
                full.push(key.clone());
                return Err(LayerError::UnknownSection {
                    path: file.to_owned(),
                    section: full.join("."),
                    command,
                });
            };
            let mut deeper = section.to_vec();
            deeper.push(sub.get_name().to_owned());
            check_table(sub, inner, &deeper, file)?;
            continue;
        }
        match find_flag(cmd, key) {
            Some(arg) => {
                // A key of this table's own command can be judged now, whichever command
                // runs; one meant for commands below is judged when one of them runs.
                let own = cmd.get_arguments().any(|a| a.get_id() == arg.get_id());
                if own {
                    value_args(arg, value).map_err(|reason| LayerError::BadValue {
                        source: format!("{} ({})", file.display(), key_label(section, key)),
                        reason,
                    })?;
                }
            }
            None => {
                let fixed = key.replace('_', "-").to_lowercase();
                let hint = (fixed != *key && find_flag(cmd, &fixed).is_some()).then_some(fixed);
                let why = if key == "config" {
                    Some("a config file cannot name another".to_owned())
                } else {
                    None
                };
                return Err(match why {
                    Some(reason) => LayerError::BadValue {
                        source: format!("{} ({})", file.display(), key_label(section, key)),
                        reason,
                    },
                    None => LayerError::UnknownKey {
                        path: file.to_owned(),
                        key: key.clone(),
                        command,
                        hint,
                    },
                });
            }
        }
    }
    Ok(())
}

/// The settable flag `--long` of `cmd` or of a command below it.
fn find_flag<'a>(cmd: &'a Command, long: &str) -> Option<&'a Arg> {
    cmd.get_arguments()
        .find(|a| settable(a) && a.get_long() == Some(long))
        .or_else(|| cmd.get_subcommands().find_map(|sub| find_flag(sub, long)))
}

/// A TOML value as arguments for `arg`.
fn value_args(arg: &Arg, value: &toml::Value) -> Result<Vec<OsString>, String> {
    let long = arg.get_long().expect("settable flags are long");
    match (arg.get_action(), value) {
        (ArgAction::Set, toml::Value::Array(_)) => Err(format!(
            "--{long} takes one value, not a list (only repeatable flags take lists)"
        )),
        (ArgAction::Set, v) => Ok(vec![flag_with_value(long, OsStr::new(&scalar(v)?))]),
        (ArgAction::Append, toml::Value::Array(items)) => items
            .iter()
            .map(|v| Ok(flag_with_value(long, OsStr::new(&scalar(v)?))))
            .collect(),
        (ArgAction::Append, v) => Ok(vec![flag_with_value(long, OsStr::new(&scalar(v)?))]),
        (ArgAction::Count, toml::Value::Integer(n)) => u8::try_from(*n)
            .map(|n| repeat_flag(long, u32::from(n)))
            .map_err(|_| format!("--{long} takes a count from 0 to 255, not {n}")),
        (ArgAction::SetTrue | ArgAction::SetFalse | ArgAction::Count, toml::Value::Boolean(b)) => {
            let count = switch_count(arg, if *b { "true" } else { "false" })?;
            Ok(repeat_flag(long, count))
        }
        (_, v) => Err(format!(
            "--{long} is a switch: it takes true or false, not {}",
            v.type_str()
        )),
    }
}

/// A single TOML value as the text a flag takes.
fn scalar(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(n) => Ok(n.to_string()),
        toml::Value::Float(x) => Ok(x.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Datetime(d) => Ok(d.to_string()),
        other => Err(format!(
            "expected a string, number or boolean, not {}",
            other.type_str()
        )),
    }
}

#[cfg(test)]
mod tests;
