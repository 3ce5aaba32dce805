//! The command table: every wire verb, the roles that serve it, its arity and its help.
//!
//! One table drives dispatch (the codec maps a verb to a [`Verb`]), arity checks (the
//! codec refuses a line whose field count is outside the command's range, the same way
//! for every verb), the help text, and a test that fails when docs/PROTOCOL.md does not
//! document a verb.

use std::fmt;

/// A wire verb, after lookup in [`COMMANDS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    Hello,
    Ping,
    Status,
    Beat,
    Publish,
    Withdraw,
    Sync,
    Bye,
    Get,
    Search,
    Pieces,
    Fetch,
}

/// The role a node plays; each serves a subset of the verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Index,
    Peer,
    Seed,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Index => "index",
            Role::Peer => "peer",
            Role::Seed => "seed",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rows that follow a batch request's header line.
#[derive(Clone, Copy, Debug)]
pub struct RowSpec {
    /// Number of fields in each row.
    pub fields: usize,
    /// The row's shape, for help text.
    pub shape: &'static str,
}

/// One entry of the command table.
#[derive(Debug)]
pub struct Command {
    pub verb: Verb,
    pub name: &'static str,
    pub roles: &'static [Role],
    /// Fields after the verb: at least `min_args`, at most `max_args`.
    pub min_args: usize,
    pub max_args: usize,
    /// For batch requests: the first argument is a row count and rows follow.
    pub rows: Option<RowSpec>,
    pub usage: &'static str,
    pub reply: &'static str,
    pub summary: &'static str,
}

const ALL_ROLES: &[Role] = &[Role::Index, Role::Peer, Role::Seed];
const INDEX: &[Role] = &[Role::Index];
const PEER: &[Role] = &[Role::Peer];

/// Publish and sync rows: name, size, content id, piece-list digest.
const FILE_ROW: RowSpec = RowSpec {
    fields: 4,
    shape: "<name>|<size>|<content-id>|<pieces-digest>",
};

pub const COMMANDS: &[Command] = &[
    Command {
        verb: Verb::Hello,
        name: "hello",
        roles: ALL_ROLES,
        min_args: 4,
        max_args: 4,
        rows: None,
        usage: "hello|<version>|<role>|<id>|<port>",
        reply: "ok|<role>|<id>|<your-host>|<lease-secs>|<files-known>",
        summary: "open a session: protocol version, who you are, the port you serve on",
    },
    Command {
        verb: Verb::Ping,
        name: "ping",
        roles: ALL_ROLES,
        min_args: 0,
        max_args: 0,
        rows: None,
        usage: "ping",
        reply: "ok|pong",
        summary: "liveness check",
    },
    Command {
        verb: Verb::Status,
        name: "status",
        roles: ALL_ROLES,
        min_args: 0,
        max_args: 0,
        rows: None,
        usage: "status",
        reply: "ok|<n> then n rows <key>|<value>",
        summary: "role, id, uptime, counters and health",
    },
    Command {
        verb: Verb::Beat,
        name: "beat",
        roles: INDEX,
        min_args: 0,
        max_args: 0,
        rows: None,
        usage: "beat",
        reply: "ok|<files-known>",
        summary: "renew this session's peer lease",
    },
    Command {
        verb: Verb::Publish,
        name: "publish",
        roles: INDEX,
        min_args: 1,
        max_args: 1,
        rows: Some(FILE_ROW),
        usage: "publish|<n> then n rows <name>|<size>|<content-id>|<pieces-digest>",
        reply: "ok|<n>",
        summary: "add or update files held by this session's peer",
    },
    Command {
        verb: Verb::Withdraw,
        name: "withdraw",
        roles: INDEX,
        min_args: 1,
        max_args: 1,
        rows: Some(RowSpec {
            fields: 1,
            shape: "<name>",
        }),
        usage: "withdraw|<n> then n rows <name>",
        reply: "ok|<removed>",
        summary: "remove files held by this session's peer",
    },
    Command {
        verb: Verb::Sync,
        name: "sync",
        roles: INDEX,
        min_args: 1,
        max_args: 2,
        rows: Some(FILE_ROW),
        usage: "sync|<n>[|more] then n rows <name>|<size>|<content-id>|<pieces-digest>",
        reply: "ok|<files-known>",
        summary: "replace the whole file set of this session's peer",
    },
    Command {
        verb: Verb::Bye,
        name: "bye",
        roles: INDEX,
        min_args: 0,
        max_args: 0,
        rows: None,
        usage: "bye",
        reply: "ok|bye",
        summary: "leave now: the peer and its files are dropped",
    },
    Command {
        verb: Verb::Get,
        name: "get",
        roles: INDEX,
        min_args: 1,
        max_args: 2,
        rows: None,
        usage: "get|<name>[|<content-id>]",
        reply: "ok|<n> then n rows <host>|<port>|<peer-id>|<size>|<content-id>|<pieces-digest>",
        summary: "live holders of a file, in random order",
    },
    Command {
        verb: Verb::Search,
        name: "search",
        roles: INDEX,
        min_args: 1,
        max_args: 2,
        rows: None,
        usage: "search|<words>[|<limit>]",
        reply: "ok|<n>|<more> then n rows <name>|<size>|<content-id>|<holders>",
        summary: "names matching every word, none of the -words",
    },
    Command {
        verb: Verb::Pieces,
        name: "pieces",
        roles: PEER,
        min_args: 2,
        max_args: 2,
        rows: None,
        usage: "pieces|<name>|<content-id>",
        reply: "data|<len> then len bytes: the raw 20-byte piece hashes",
        summary: "the piece list of a shared file",
    },
    Command {
        verb: Verb::Fetch,
        name: "fetch",
        roles: PEER,
        min_args: 4,
        max_args: 4,
        rows: None,
        usage: "fetch|<name>|<content-id>|<offset>|<length>",
        reply: "data|<len> then len bytes of the file",
        summary: "a chunk-aligned byte range of a shared file",
    },
];

/// Looks a verb up in the table.
pub fn lookup(verb: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name == verb)
}

/// The command-table entry of a verb.
pub fn command(verb: Verb) -> &'static Command {
    COMMANDS
        .iter()
        .find(|c| c.verb == verb)
        .expect("every Verb has a table entry")
}

/// Help text for the verbs a role serves, one line each.
pub fn help(role: Role) -> String {
    let mut out = String::new();
    for c in COMMANDS.iter().filter(|c| c.roles.contains(&role)) {
        out.push_str(&format!("{:<60} {}\n", c.usage, c.summary));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verb_has_exactly_one_entry() {
        for c in COMMANDS {
            assert_eq!(COMMANDS.iter().filter(|o| o.verb == c.verb).count(), 1);
            assert_eq!(command(c.verb).name, c.name);
            assert!(c.min_args <= c.max_args, "{}", c.name);
            assert!(c.usage.starts_with(c.name), "{}", c.name);
        }
    }

    #[test]
    fn protocol_md_documents_every_verb() {
        let spec = include_str!("../../docs/PROTOCOL.md");
        for c in COMMANDS {
            let heading = format!("### `{}`", c.name);
            assert!(
                spec.contains(&heading),
                "docs/PROTOCOL.md has no section {heading}"
            );
            assert!(
                spec.contains(c.usage),
                "docs/PROTOCOL.md does not show the usage `{}`",
                c.usage
            );
        }
        for code in crate::protocol::ErrorCode::ALL {
            assert!(
                spec.contains(&format!("`{}`", code.as_str())),
                "docs/PROTOCOL.md does not list error code {code}"
            );
        }
    }
}
