//! What every node answers the same way, whatever its role: the checks every `hello`
//! makes, `ping`, the shape of `status`, and the one address a connection proves, its
//! source host. The index, seed and peer services build on these; none of them writes
//! its own.

use super::Reply;
use crate::identity::{self, Domain, NodeKey, Sig};
use crate::protocol::codec;
use crate::protocol::name::PeerId;
use crate::protocol::{ErrorCode, Refusal, VERSION};
use std::net::{IpAddr, SocketAddr};

/// The host part of a connection's source address (IPv4-mapped addresses unwrapped):
/// the only part of where a remote is that the remote cannot make up.
pub fn source_host(remote: SocketAddr) -> IpAddr {
    remote.ip().to_canonical()
}

/// The answer to `ping`.
pub fn pong() -> Reply {
    Reply::Text("ok|pong\n".into())
}

/// `ok|<n>` and n `key|value` rows: the answer to `status`.
pub fn status_reply<K: AsRef<str>>(rows: &[(K, String)]) -> Reply {
    let mut out = codec::line(&["ok", &rows.len().to_string()]);
    for (k, v) in rows {
        out.push_str(&codec::line(&[k.as_ref(), v]));
    }
    Reply::Text(out)
}

/// Refuses a `hello` in another protocol version; `who` names this node in the
/// message (`this index`, `this node`).
pub fn check_version(version: &str, who: &str) -> Result<(), Refusal> {
    if version == VERSION.to_string() {
        return Ok(());
    }
    Err(Refusal::new(
        ErrorCode::BadVersion,
        format!(
            "{who} speaks protocol version {VERSION}, not '{}'",
            codec::printable(version)
        ),
    ))
}

/// The id a `hello` claims: a node id (a public key), checked before anything else.
pub fn hello_id(text: &str) -> Result<PeerId, Refusal> {
    if identity::is_node_id(text) {
        return PeerId::parse(text).map_err(|e| Refusal::new(ErrorCode::BadName, e.to_string()));
    }
    Err(Refusal::new(
        ErrorCode::BadName,
        format!(
            "'{}' is not a node id (52 base32 characters spelling an Ed25519 public key)",
            codec::printable(text)
        ),
    ))
}

/// A name as a `hello` gives it: the naming rules of a peer id.
pub fn hello_name(text: &str) -> Result<PeerId, Refusal> {
    PeerId::parse(text).map_err(|e| {
        Refusal::new(
            ErrorCode::BadName,
            format!("name '{}': {e}", codec::printable(text)),
        )
    })
}

/// The port a `hello` from a `role` (peer or seed) announces: 1 to 65535.
pub fn hello_port(text: &str, role: &str) -> Result<u16, Refusal> {
    crate::protocol::decimal(text)
        .filter(|&p: &u16| p != 0)
        .ok_or_else(|| {
            Refusal::new(
                ErrorCode::BadRequest,
                format!(
                    "a {role} must announce a port from 1 to 65535, not '{}'",
                    codec::printable(text)
                ),
            )
        })
}

/// Who a node is on the wire: its key and the name it goes by.
#[derive(Clone, Debug)]
pub struct Me {
    pub key: NodeKey,
    pub name: PeerId,
}

impl Me {
    pub fn id(&self) -> &PeerId {
        self.key.id()
    }
}

/// The role a `hello` claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelloRole {
    Peer,
    Seed,
    /// Anything that is neither: a one-shot command, a script. It proves no key.
    Client,
}

impl HelloRole {
    pub fn as_str(self) -> &'static str {
        match self {
            HelloRole::Peer => "peer",
            HelloRole::Seed => "seed",
            HelloRole::Client => "client",
        }
    }
}

/// A `hello` as it arrived: what it claims, before `auth` proves the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub role: HelloRole,
    /// The node id; `None` for a client.
    pub id: Option<PeerId>,
    pub port: u16,
    pub name: PeerId,
    nonce: String,
}

/// Parses `hello|<version>|<role>|<id>|<port>|<name>|<nonce>`, accepting only the
/// roles in `allowed` (`who` names this node in errors).
pub fn parse_hello(args: &[&str], who: &str, allowed: &[HelloRole]) -> Result<Hello, Refusal> {
    check_version(args[0], who)?;
    if args.len() != 6 {
        return Err(Refusal::new(
            ErrorCode::BadRequest,
            "wrong number of fields; usage: hello|<version>|<role>|<id>|<port>|<name>|<nonce>",
        ));
    }
    let role = [HelloRole::Peer, HelloRole::Seed, HelloRole::Client]
        .into_iter()
        .find(|r| r.as_str() == args[1] && allowed.contains(r))
        .ok_or_else(|| {
            let names: Vec<String> = allowed
                .iter()
                .map(|r| format!("'{}'", r.as_str()))
                .collect();
            let list = match names.split_last() {
                Some((last, [])) => last.clone(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => String::new(),
            };
            Refusal::new(
                ErrorCode::BadRequest,
                format!("role must be {list}, not '{}'", codec::printable(args[1])),
            )
        })?;
    let (id, port) = match role {
        HelloRole::Client => (None, 0),
        _ => (
            Some(hello_id(args[2])?),
            hello_port(args[3], role.as_str())?,
        ),
    };
    let name = hello_name(args[4])?;
    if !identity::is_nonce(args[5]) {
        return Err(Refusal::new(
            ErrorCode::BadRequest,
            format!(
                "nonce '{}' is not 32 to 64 hex digits",
                codec::printable(args[5])
            ),
        ));
    }
    Ok(Hello {
        role,
        id,
        port,
        name,
        nonce: args[5].to_owned(),
    })
}

/// A `hello` from a peer or a seed, waiting for the `auth` that proves its key.
#[derive(Clone, Debug)]
pub struct Pending {
    hello: Hello,
    nonce: String,
}

/// Answers a `hello`: `ok|<role>|<id>|<name>|<your-host>|<nonce>|<signature>`, where
/// the signature (this node's, of the hello's nonce) proves who answers, and the nonce
/// is the one the client signs in `auth`. A peer or a seed gets a [`Pending`] session.
pub fn challenge(
    me: &Me,
    role: &str,
    hello: Hello,
    remote: SocketAddr,
) -> (Reply, Option<Pending>) {
    let client = hello.id.as_ref().map_or("-", PeerId::as_str);
    let sig = me.key.sign(
        Domain::HelloServer,
        &[
            hello.nonce.as_bytes(),
            me.id().as_str().as_bytes(),
            me.name.as_str().as_bytes(),
            client.as_bytes(),
        ],
    );
    let nonce = identity::nonce();
    let reply = Reply::Text(codec::line(&[
        "ok",
        role,
        me.id().as_str(),
        me.name.as_str(),
        &source_host(remote).to_string(),
        &nonce,
        &sig.hex(),
    ]));
    let pending = (hello.role != HelloRole::Client).then_some(Pending { hello, nonce });
    (reply, pending)
}

/// The fields a client signs in `auth`: the server's nonce, both ids, and what the
/// hello claimed, so the proof holds for this session at this node only.
fn client_fields<'a>(
    nonce: &'a str,
    hello: &'a Hello,
    id: &'a str,
    server: &'a str,
    port: &'a str,
) -> [&'a [u8]; 6] {
    [
        nonce.as_bytes(),
        id.as_bytes(),
        server.as_bytes(),
        hello.role.as_str().as_bytes(),
        port.as_bytes(),
        hello.name.as_str().as_bytes(),
    ]
}

/// Checks `auth|<signature>` against the pending hello: the proven hello, or a refusal
/// (`unknown-peer` when no hello waits for it, `bad-request` for a bad signature).
pub fn authenticate(pending: Option<Pending>, args: &[&str], me: &Me) -> Result<Hello, Refusal> {
    let pending = pending.ok_or_else(|| {
        Refusal::new(
            ErrorCode::UnknownPeer,
            "no hello as a peer or a seed waits for this auth on this connection",
        )
    })?;
    let hello = pending.hello;
    let id = hello.id.clone().expect("a pending hello has an id");
    let port = hello.port.to_string();
    let fields = client_fields(&pending.nonce, &hello, id.as_str(), me.id().as_str(), &port);
    let verified = Sig::parse(args[0])
        .is_some_and(|sig| identity::verify(&id, Domain::HelloClient, &fields, &sig));
    if !verified {
        return Err(Refusal::new(
            ErrorCode::BadRequest,
            format!(
                "the signature does not prove the key of '{}'; say hello again",
                identity::short(id.as_str())
            ),
        ));
    }
    Ok(hello)
}

/// The client's side: the `hello` line for `me` in `role` (None: a client) and the
/// nonce it carries.
pub fn hello_line(me: Option<&Me>, role: HelloRole, port: u16) -> (String, String) {
    let nonce = identity::nonce();
    let (id, name) = match me {
        Some(me) if role != HelloRole::Client => (me.id().as_str(), me.name.as_str()),
        Some(me) => ("-", me.name.as_str()),
        None => ("-", "client"),
    };
    let line = codec::line(&[
        "hello",
        &VERSION.to_string(),
        role.as_str(),
        id,
        &port.to_string(),
        name,
        &nonce,
    ]);
    (line, nonce)
}

/// What a node said of itself in its answer to `hello`, its signature checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answered {
    pub role: String,
    pub id: PeerId,
    pub name: String,
    pub your_host: String,
    nonce: String,
}

/// Checks a `hello` answer (`fields` after `ok`) against the nonce sent: the node's
/// signature must verify for the id it gives. `client` is the id the hello claimed.
pub fn check_answer(
    fields: &[String],
    sent_nonce: &str,
    client: Option<&PeerId>,
) -> Result<Answered, String> {
    let [role, id, name, host, nonce, sig] = fields else {
        return Err(format!(
            "expected 6 fields in the answer to hello, got {}",
            fields.len()
        ));
    };
    let id = PeerId::parse(id)
        .ok()
        .filter(|i| identity::is_node_id(i.as_str()))
        .ok_or_else(|| format!("the node's id '{}' is not a key", codec::printable(id)))?;
    let client = client.map_or("-", PeerId::as_str);
    let fields: [&[u8]; 4] = [
        sent_nonce.as_bytes(),
        id.as_str().as_bytes(),
        name.as_bytes(),
        client.as_bytes(),
    ];
    let ok =
        Sig::parse(sig).is_some_and(|s| identity::verify(&id, Domain::HelloServer, &fields, &s));
    if !ok || !identity::is_nonce(nonce) {
        return Err(format!(
            "the node's answer to hello is not signed by the key it names ({})",
            identity::short(id.as_str())
        ));
    }
    Ok(Answered {
        role: role.clone(),
        id,
        name: name.clone(),
        your_host: host.clone(),
        nonce: nonce.clone(),
    })
}

/// The `auth` line proving `me`'s key to the node that gave `answer`.
pub fn auth_line(me: &Me, role: HelloRole, port: u16, answer: &Answered) -> String {
    let hello = Hello {
        role,
        id: Some(me.id().clone()),
        port,
        name: me.name.clone(),
        nonce: String::new(),
    };
    let port = port.to_string();
    let fields = client_fields(
        &answer.nonce,
        &hello,
        me.id().as_str(),
        answer.id.as_str(),
        &port,
    );
    let sig = me.key.sign(Domain::HelloClient, &fields);
    codec::line(&["auth", &sig.hex()])
}

/// The whole handshake over a line exchange `ask` (one request line in, the first
/// reply line out, either with or without its `\n`): `hello` as `role`, the node's
/// answer checked, then `auth` for a peer or a seed. Returns the last reply (the
/// answer to `auth`, to `hello` for a client, or a refusal); an answer whose
/// signature does not verify is an error. For tests and tools that speak raw lines.
pub fn handshake(
    me: &Me,
    role: HelloRole,
    port: u16,
    mut ask: impl FnMut(&str) -> String,
) -> Result<String, String> {
    let (line, nonce) = hello_line(Some(me), role, port);
    let answer = ask(&line);
    let Some(fields) = answer.trim_end().strip_prefix("ok|") else {
        return Ok(answer);
    };
    let fields: Vec<String> = fields.split('|').map(str::to_owned).collect();
    let claimed = (role != HelloRole::Client).then(|| me.id());
    let answered =
        check_answer(&fields, &nonce, claimed).map_err(|e| format!("{e}: {answer:?}"))?;
    if role == HelloRole::Client {
        return Ok(answer);
    }
    Ok(ask(&auth_line(me, role, port, &answered)))
}

/// The answer to `auth`: `ok|<a>|<b>`, role-specific (the index: lease seconds and
/// files known; `0|0` elsewhere).
pub fn auth_reply(a: &str, b: &str) -> Reply {
    Reply::Text(codec::line(&["ok", a, b]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: Reply) -> String {
        match r {
            Reply::Text(t) => t,
            _ => panic!("not text"),
        }
    }

    fn me(name: &str) -> Me {
        Me {
            key: NodeKey::for_test(name),
            name: PeerId::parse(name).unwrap(),
        }
    }

    fn args(line: &str) -> Vec<&str> {
        line.trim_end().split('|').skip(1).collect()
    }

    #[test]
    fn hello_checks_refuse_with_the_right_codes() {
        assert!(check_version("3", "this node").is_ok());
        // Version 2 meant the whole-file SHA-1 by a content id: it does not mix.
        assert!(check_version("2", "this node").is_err());
        let r = check_version("1", "this index").unwrap_err();
        assert_eq!(
            r.to_line(),
            "err|bad-version|this index speaks protocol version 3, not '1'\n"
        );
        for bad in [
            "a/b",
            "peer1",
            &NodeKey::for_test("x").id().as_str().to_uppercase(),
        ] {
            assert!(hello_id(bad)
                .unwrap_err()
                .to_line()
                .starts_with("err|bad-name|"));
        }
        assert_eq!(hello_port("1025", "peer").unwrap(), 1025);
        for bad in ["0", "65536", "x", "", "+5"] {
            assert!(hello_port(bad, "seed")
                .unwrap_err()
                .to_line()
                .starts_with("err|bad-request|a seed must announce a port"));
        }
        let id = NodeKey::for_test("p").id().to_string();
        let only_clients = [HelloRole::Peer, HelloRole::Client];
        let seed_line = format!("hello|3|seed|{id}|9|p|{}", "ab".repeat(16));
        let seed = args(&seed_line);
        assert_eq!(
            parse_hello(&seed, "this index", &only_clients)
                .unwrap_err()
                .to_line(),
            "err|bad-request|role must be 'peer' or 'client', not 'seed'\n"
        );
        let short_line = format!("hello|3|peer|{id}|9|p|abc");
        let short_nonce = args(&short_line);
        assert!(parse_hello(&short_nonce, "x", &only_clients).is_err());
        let old = args("hello|1|peer|p1|2000");
        assert!(parse_hello(&old, "this node", &only_clients)
            .unwrap_err()
            .to_line()
            .starts_with("err|bad-version|"));
    }

    #[test]
    fn a_handshake_proves_both_keys_and_nothing_else_passes() {
        let (server, client, mallory) = (me("index"), me("peer1"), me("mallory"));
        let remote: SocketAddr = "[::ffff:127.0.0.7]:4000".parse().unwrap();
        let all = [HelloRole::Peer, HelloRole::Seed, HelloRole::Client];
        let (line, nonce) = hello_line(Some(&client), HelloRole::Peer, 2000);
        let hello = parse_hello(&args(&line), "this node", &all).unwrap();
        let (reply, pending) = challenge(&server, "index", hello, remote);
        let reply = text(reply);
        assert!(reply.starts_with(&format!("ok|index|{}|index|127.0.0.7|", server.id())));
        let fields: Vec<String> = args(&reply).into_iter().map(str::to_owned).collect();
        let answer = check_answer(&fields, &nonce, Some(client.id())).unwrap();
        assert_eq!(&answer.id, server.id());
        // The answer's signature covers the client's nonce: replayed, it fails.
        assert!(check_answer(&fields, &identity::nonce(), Some(client.id())).is_err());
        let auth = auth_line(&client, HelloRole::Peer, 2000, &answer);
        let proven = authenticate(pending.clone(), &args(&auth), &server).unwrap();
        assert_eq!(proven.id.as_ref(), Some(client.id()));
        assert_eq!(proven.port, 2000);
        // Another key's signature, or the same signature for another port, fails.
        let forged = auth_line(&mallory, HelloRole::Peer, 2000, &answer);
        assert!(authenticate(pending.clone(), &args(&forged), &server).is_err());
        let moved = auth_line(&client, HelloRole::Peer, 2001, &answer);
        assert!(authenticate(pending, &args(&moved), &server).is_err());
        assert!(authenticate(None, &args(&auth), &server)
            .unwrap_err()
            .to_line()
            .starts_with("err|unknown-peer|"));
        // A client proves nothing and waits for no auth.
        let (line, _) = hello_line(None, HelloRole::Client, 0);
        let hello = parse_hello(&args(&line), "this node", &all).unwrap();
        assert!(challenge(&server, "index", hello, remote).1.is_none());
    }

    #[test]
    fn replies_have_their_documented_shape() {
        assert_eq!(
            text(status_reply(&[("role", "index".to_owned())])),
            "ok|1\nrole|index\n"
        );
        assert_eq!(text(pong()), "ok|pong\n");
        assert_eq!(text(auth_reply("30", "0")), "ok|30|0\n");
    }
}
