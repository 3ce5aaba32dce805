//! What every node answers the same way, whatever its role: the checks every `hello`
//! makes, `ping`, the shape of `status`, and the one address a connection proves, its
//! source host. The index, seed and peer services build on these; none of them writes
//! its own.

use super::Reply;
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

/// The id a `hello` claims, checked against the naming rules.
pub fn hello_id(text: &str) -> Result<PeerId, Refusal> {
    PeerId::parse(text).map_err(|e| {
        Refusal::new(
            ErrorCode::BadName,
            format!("peer id '{}': {e}", codec::printable(text)),
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

/// The answer to `hello`: `ok|<role>|<id>|<your host>|<a>|<b>`, where the last two
/// fields are role-specific (the index: lease seconds and files known).
pub fn hello_reply(role: &str, id: &str, remote: SocketAddr, a: &str, b: &str) -> Reply {
    Reply::Text(codec::line(&[
        "ok",
        role,
        id,
        &source_host(remote).to_string(),
        a,
        b,
    ]))
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

    #[test]
    fn hello_checks_refuse_with_the_right_codes() {
        assert!(check_version("1", "this node").is_ok());
        let r = check_version("2", "this index").unwrap_err();
        assert_eq!(
            r.to_line(),
            "err|bad-version|this index speaks protocol version 1, not '2'\n"
        );
        assert!(hello_id("a/b")
            .unwrap_err()
            .to_line()
            .starts_with("err|bad-name|"));
        assert_eq!(hello_port("1025", "peer").unwrap(), 1025);
        for bad in ["0", "65536", "x", ""] {
            assert!(hello_port(bad, "seed")
                .unwrap_err()
                .to_line()
                .starts_with("err|bad-request|a seed must announce a port"));
        }
    }

    #[test]
    fn replies_have_their_documented_shape() {
        let remote: SocketAddr = "[::ffff:127.0.0.7]:4000".parse().unwrap();
        assert_eq!(
            text(hello_reply("seed", "s1", remote, "0", "0")),
            "ok|seed|s1|127.0.0.7|0|0\n"
        );
        assert_eq!(
            text(status_reply(&[("role", "index".to_owned())])),
            "ok|1\nrole|index\n"
        );
        assert_eq!(text(pong()), "ok|pong\n");
    }
}
