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
    Auth,
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
    Have,
    Upload,
    // Overlay, node to node (one-way: answered `ok` at once).
    Register,
    Peers,
    Report,
    SeedSync,
    Neighbor,
    NeighborReply,
    Disconnect,
    Shuffle,
    Probe,
    Ack,
    ProbeReq,
    Suspect,
    Alive,
    Gossip,
    IHave,
    Graft,
    Prune,
    // Overlay, for clients.
    Say,
    Msg,
    Members,
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
const SEED: &[Role] = &[Role::Seed];
const OVERLAY: &[Role] = &[Role::Peer, Role::Seed];

/// Member rows: id, host, port, incarnation, state, degree, name, certificate.
const MEMBER_ROW: RowSpec = RowSpec {
    fields: 8,
    shape: "<id>|<host>|<port>|<incarnation>|<state>|<degree>|<name>|<cert>",
};

/// Publish and sync rows: name, size, content id (the piece-list digest), whole-file
/// SHA-1 (`-` when the publisher did not compute it).
const FILE_ROW: RowSpec = RowSpec {
    fields: 4,
    shape: "<name>|<size>|<content-id>|<sha1>",
};

pub const COMMANDS: &[Command] = &[
    Command {
        verb: Verb::Hello,
        name: "hello",
        roles: ALL_ROLES,
        // Four fields is protocol version 1's hello: let it reach the version check.
        min_args: 4,
        max_args: 6,
        rows: None,
        usage: "hello|<version>|<role>|<id>|<port>|<name>|<nonce>",
        reply: "ok|<role>|<id>|<name>|<your-host>|<nonce>|<signature>",
        summary: "open a session: protocol version, who you are (your key's id and a name), the port you serve on, a nonce for the node to sign",
    },
    Command {
        verb: Verb::Auth,
        name: "auth",
        roles: ALL_ROLES,
        min_args: 1,
        max_args: 1,
        rows: None,
        usage: "auth|<signature>",
        reply: "ok|<lease-secs>|<files-known>",
        summary: "prove the key of your hello: its signature of the node's nonce",
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
        usage: "publish|<n> then n rows <name>|<size>|<content-id>|<sha1>",
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
        usage: "sync|<n>[|more] then n rows <name>|<size>|<content-id>|<sha1>",
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
        reply: "ok|<n> then n rows <host>|<port>|<peer-id>|<size>|<content-id>|<sha1>|<peer-name>",
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
        reply: "ok|<n>|<more> then n rows <name>|<size>|<content-id>|<holders>|<sha1>",
        summary: "names matching every word, none of the -words; or sha1:<hex>, the files with that whole-file SHA-1",
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
        verb: Verb::Have,
        name: "have",
        roles: PEER,
        min_args: 1,
        max_args: 1,
        rows: None,
        usage: "have|<name>",
        reply: "ok|<size>|<content-id>|<sha1>",
        summary: "what the peer shares under a name (asked of holders the DHT finds)",
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
    Command {
        verb: Verb::Upload,
        name: "upload",
        roles: PEER,
        min_args: 3,
        max_args: 3,
        rows: None,
        usage: "upload|<name>|<size>|<content-id>",
        reply: "ok|send|<size>, then <size> bytes from the client, then ok|uploaded|<name>|<content-id>|<sha1>; or at once ok|exists|<name>|<content-id>|<sha1>",
        summary: "push a file to a peer started with --allow-upload: checked against its content id, then shared",
    },
    Command {
        verb: Verb::Register,
        name: "register",
        roles: SEED,
        min_args: 6,
        max_args: 6,
        rows: Some(RowSpec {
            fields: 1,
            shape: "<neighbour-id>",
        }),
        usage: "register|<n>|<seq>|<incarnation>|<degree>|<name>|<cert> then n rows <neighbour-id>",
        reply: "ok (the seed answers with peers|...)",
        summary: "register with a seed (or refresh), vouching for the listed neighbours",
    },
    Command {
        verb: Verb::Peers,
        name: "peers",
        roles: PEER,
        min_args: 2,
        max_args: 2,
        rows: Some(MEMBER_ROW),
        usage: "peers|<n>|<seq> then n rows <id>|<host>|<port>|<incarnation>|<state>|<degree>|<name>|<cert>",
        reply: "ok",
        summary: "a seed's peer list, answering the register with the same seq",
    },
    Command {
        verb: Verb::Report,
        name: "report",
        roles: SEED,
        min_args: 8,
        max_args: 8,
        rows: None,
        usage: "report|<id>|<host>|<port>|<incarnation>|<dead|left>|<degree>|<name>|<cert>",
        reply: "ok",
        summary: "report a member declared dead, or the sender leaving",
    },
    Command {
        verb: Verb::SeedSync,
        name: "seed-sync",
        roles: SEED,
        min_args: 3,
        max_args: 3,
        rows: Some(RowSpec {
            fields: 9,
            shape: "<id>|<host>|<port>|<incarnation>|<state>|<degree>|<name>|<cert>|<seen-ago-ms>",
        }),
        usage: "seed-sync|<n>|<nonce>|<to> then n rows <id>|<host>|<port>|<incarnation>|<state>|<degree>|<name>|<cert>|<seen-ago-ms>",
        reply: "ok",
        summary: "a seed's registry, sent to the other seeds",
    },
    Command {
        verb: Verb::Neighbor,
        name: "neighbor",
        roles: PEER,
        min_args: 5,
        max_args: 5,
        rows: None,
        usage: "neighbor|<high|low>|<incarnation>|<degree>|<name>|<cert>",
        reply: "ok (the answer comes as neighbor-reply)",
        summary: "ask to join the receiver's active view",
    },
    Command {
        verb: Verb::NeighborReply,
        name: "neighbor-reply",
        roles: PEER,
        min_args: 5,
        max_args: 5,
        rows: None,
        usage: "neighbor-reply|<yes|no>|<incarnation>|<degree>|<name>|<cert>",
        reply: "ok",
        summary: "accept or refuse a neighbor request",
    },
    Command {
        verb: Verb::Disconnect,
        name: "disconnect",
        roles: PEER,
        min_args: 0,
        max_args: 0,
        rows: None,
        usage: "disconnect",
        reply: "ok",
        summary: "the sender dropped the receiver from its active view",
    },
    Command {
        verb: Verb::Shuffle,
        name: "shuffle",
        roles: PEER,
        min_args: 2,
        max_args: 2,
        rows: Some(MEMBER_ROW),
        usage: "shuffle|<n>|<request|reply> then n rows <id>|<host>|<port>|<incarnation>|<state>|<degree>|<name>|<cert>",
        reply: "ok",
        summary: "exchange peer lists with a neighbour",
    },
    Command {
        verb: Verb::Probe,
        name: "probe",
        roles: PEER,
        min_args: 1,
        max_args: 1,
        rows: None,
        usage: "probe|<seq>",
        reply: "ok (the answer comes as ack)",
        summary: "liveness probe",
    },
    Command {
        verb: Verb::Ack,
        name: "ack",
        roles: OVERLAY,
        min_args: 4,
        max_args: 4,
        rows: None,
        usage: "ack|<seq>|<incarnation>|<name>|<cert>",
        reply: "ok",
        summary: "answer to a probe, direct or relayed",
    },
    Command {
        verb: Verb::ProbeReq,
        name: "probe-req",
        roles: PEER,
        min_args: 4,
        max_args: 4,
        rows: None,
        usage: "probe-req|<seq>|<id>|<host>|<port>",
        reply: "ok",
        summary: "probe a member on the sender's behalf and relay its ack",
    },
    Command {
        verb: Verb::Suspect,
        name: "suspect",
        roles: PEER,
        min_args: 1,
        max_args: 2,
        rows: None,
        usage: "suspect|<incarnation>[|dead]",
        reply: "ok (a live receiver answers alive)",
        summary: "tell a member that it is suspected (or held dead), so it can refute",
    },
    Command {
        verb: Verb::Alive,
        name: "alive",
        roles: PEER,
        min_args: 3,
        max_args: 3,
        rows: None,
        usage: "alive|<incarnation>|<name>|<cert>",
        reply: "ok",
        summary: "refute a suspicion with a higher incarnation",
    },
    Command {
        verb: Verb::Gossip,
        name: "gossip",
        roles: PEER,
        min_args: 7,
        max_args: 12,
        rows: None,
        usage: "gossip|<origin>|<seq>|<hops>|<time-ms>|<sig>|<body>",
        reply: "ok",
        summary: "a broadcast, pushed eagerly",
    },
    Command {
        verb: Verb::IHave,
        name: "ihave",
        roles: PEER,
        min_args: 1,
        max_args: 1,
        rows: Some(RowSpec {
            fields: 2,
            shape: "<msg-id>|<hops>",
        }),
        usage: "ihave|<n> then n rows <msg-id>|<hops>",
        reply: "ok",
        summary: "announce broadcasts the sender has",
    },
    Command {
        verb: Verb::Graft,
        name: "graft",
        roles: PEER,
        min_args: 1,
        max_args: 1,
        rows: None,
        usage: "graft|<msg-id>",
        reply: "ok (the broadcast follows as gossip)",
        summary: "ask for a broadcast and push eagerly on this link from now on",
    },
    Command {
        verb: Verb::Prune,
        name: "prune",
        roles: PEER,
        min_args: 0,
        max_args: 0,
        rows: None,
        usage: "prune",
        reply: "ok",
        summary: "only announce broadcasts on this link from now on",
    },
    Command {
        verb: Verb::Say,
        name: "say",
        roles: PEER,
        min_args: 1,
        max_args: 1,
        rows: None,
        usage: "say|<text>",
        reply: "ok|<msg-id>",
        summary: "broadcast a text to every live peer, from this peer",
    },
    Command {
        verb: Verb::Msg,
        name: "msg",
        roles: PEER,
        min_args: 1,
        max_args: 1,
        rows: None,
        usage: "msg|<text>",
        reply: "ok|<reply-text>",
        summary: "a direct message to this peer's console from the session's (proven) sender, answered with a greeting",
    },
    Command {
        verb: Verb::Members,
        name: "members",
        roles: OVERLAY,
        min_args: 0,
        max_args: 0,
        rows: None,
        usage: "members",
        reply: "ok|<n> then n rows <id>|<host>|<port>|<state>|<incarnation>|<view>|<rtt-ms>",
        summary: "the members this node knows, with their state",
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
