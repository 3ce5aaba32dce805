//! The threaded network runtime: a server with one named thread per connection
//! ([`server`]) and a blocking client with a timeout on every operation ([`client`]).
//!
//! Transport and logic meet through typed values: a [`Service`] receives decoded
//! requests and returns a [`Reply`]; it never sees a socket.

pub mod client;
pub mod node;
pub mod rate;
pub mod server;
#[cfg(test)]
pub(crate) mod testing;

use crate::protocol::codec::{Classic, Request};
use crate::protocol::commands::Role;
use std::fmt;
use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// What a service sends back for one request.
pub enum Reply {
    /// One or more complete lines.
    Text(String),
    /// Raw bytes (a header line and a payload already joined).
    Bytes(Vec<u8>),
    /// A `data|<len>` header (in `header`, may be empty for the classic dialect)
    /// followed by `len` bytes of `file` from `offset`, handed to the kernel.
    File {
        header: String,
        file: File,
        offset: u64,
        len: u64,
        /// Paces the bytes when the node has an upload limit.
        limit: Option<std::sync::Arc<rate::TokenBucket>>,
    },
    /// A final line; the connection closes after it.
    Close(String),
    /// The request announced a payload of its own (an `upload`): `header` (the go
    /// ahead) is written, the next `len` bytes the client sends go to `sink` as they
    /// arrive (never buffered whole), and the sink's reply follows them.
    Receive {
        header: String,
        len: u64,
        sink: Box<dyn PayloadSink>,
    },
}

/// Takes a payload a request announced ([`Reply::Receive`]). The server feeds it the
/// bytes in order, as they arrive, then asks for the reply; a sink dropped before
/// [`PayloadSink::finish`] (the client went away, or was too slow) must leave nothing
/// behind.
pub trait PayloadSink: Send {
    /// The next bytes of the payload. A refusal ends the exchange: it is the reply,
    /// and the connection closes (the rest of the payload cannot be skipped).
    fn write(&mut self, bytes: &[u8]) -> Result<(), crate::protocol::Refusal>;

    /// Every byte arrived: the reply to the request.
    fn finish(self: Box<Self>) -> Reply;
}

impl Reply {
    /// Whether the reply refuses its request: an `err|...` line, or in the classic
    /// dialect an `Error: ...` line or a close with nothing said.
    pub fn is_refusal(&self) -> bool {
        match self {
            Reply::Text(text) => text.starts_with("err|"),
            Reply::Close(text) => {
                text.starts_with("err|") || text.starts_with("Error") || text.is_empty()
            }
            Reply::Bytes(_) | Reply::File { .. } | Reply::Receive { .. } => false,
        }
    }
}

/// The logic behind a server: decoded requests in, replies out.
pub trait Service: Send + Sync + 'static {
    /// State kept for one connection (for example, the peer that said hello on it).
    type Conn: Default + Send;

    fn role(&self) -> Role;

    /// Handles one modern request.
    fn handle(&self, req: Request, remote: SocketAddr, conn: &mut Self::Conn) -> Reply;

    /// Handles the one request of a classic-dialect connection; the connection closes
    /// after the reply.
    fn classic(&self, req: Classic, remote: SocketAddr) -> Reply;

    /// The answer to a classic request that arrived with its connection, if it can be
    /// given at once from memory without waiting for anything (no lock held by
    /// another, no disk): the accept thread then answers it itself, with no hand-off
    /// to a worker. `None` sends the connection to a worker and [`Service::classic`].
    fn classic_at_once(&self, _req: &Classic) -> Option<String> {
        None
    }

    /// Called once when a connection ends, however it ends.
    fn closed(&self, _remote: SocketAddr, _conn: &mut Self::Conn) {}
}

/// Timeouts for dialling and for each read or write on a client connection.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub io: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(3),
            io: Duration::from_secs(15),
        }
    }
}

/// A failed exchange with a remote node, naming the node and the verb.
#[derive(Debug)]
pub enum NetError {
    /// The address did not resolve, or no connection could be made.
    Connect { addr: String, source: io::Error },
    /// The remote did not answer within the timeout.
    Timeout { addr: String, verb: String },
    /// The connection failed or closed mid-exchange.
    Io {
        addr: String,
        verb: String,
        source: io::Error,
    },
    /// The remote sent something that breaks the protocol.
    Protocol {
        addr: String,
        verb: String,
        message: String,
    },
    /// The remote answered `err|<code>|<message>`.
    Remote {
        addr: String,
        verb: String,
        refusal: crate::protocol::Refusal,
    },
}

impl NetError {
    pub(crate) fn from_io(addr: &str, verb: &str, e: io::Error) -> NetError {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => NetError::Timeout {
                addr: addr.to_owned(),
                verb: verb.to_owned(),
            },
            _ => NetError::Io {
                addr: addr.to_owned(),
                verb: verb.to_owned(),
                source: e,
            },
        }
    }

    /// The address of the remote node.
    pub fn addr(&self) -> &str {
        match self {
            NetError::Connect { addr, .. }
            | NetError::Timeout { addr, .. }
            | NetError::Io { addr, .. }
            | NetError::Protocol { addr, .. }
            | NetError::Remote { addr, .. } => addr,
        }
    }

    /// What went wrong, without the address: for a caller that already names the
    /// node (`index 127.0.0.1:1024: beat: connection closed`, not the address twice).
    pub fn without_addr(&self) -> String {
        let full = self.to_string();
        full.strip_prefix(self.addr())
            .and_then(|rest| rest.strip_prefix(": "))
            .map(str::to_owned)
            .unwrap_or(full)
    }

    /// The error code when the remote refused the request.
    pub fn refusal(&self) -> Option<&crate::protocol::Refusal> {
        match self {
            NetError::Remote { refusal, .. } => Some(refusal),
            _ => None,
        }
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Connect { addr, source } => write!(f, "{addr}: cannot connect: {source}"),
            NetError::Timeout { addr, verb } => write!(f, "{addr}: {verb}: timed out"),
            NetError::Io { addr, verb, source } => write!(f, "{addr}: {verb}: {source}"),
            NetError::Protocol {
                addr,
                verb,
                message,
            } => write!(f, "{addr}: {verb}: protocol error: {message}"),
            NetError::Remote {
                addr,
                verb,
                refusal,
            } => write!(f, "{addr}: {verb}: {refusal}"),
        }
    }
}

impl std::error::Error for NetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetError::Connect { source, .. } | NetError::Io { source, .. } => Some(source),
            NetError::Remote { refusal, .. } => Some(refusal),
            _ => None,
        }
    }
}

/// Whose share of a server's limits an address counts against (connections, peer ids,
/// files, publish rates): an IPv4 address, or the
/// /64 an IPv6 address is in (a single host commonly has a whole /64 to pick from).
pub fn address_share(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ErrorCode, Refusal};

    #[test]
    fn without_addr_names_the_verb_and_the_failure_once() {
        let addr = "127.0.0.1:45030".to_owned();
        let cases = [
            (
                NetError::Io {
                    addr: addr.clone(),
                    verb: "beat".into(),
                    source: io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"),
                },
                "beat: connection closed",
            ),
            (
                NetError::Connect {
                    addr: addr.clone(),
                    source: io::Error::new(io::ErrorKind::ConnectionRefused, "refused"),
                },
                "cannot connect: refused",
            ),
            (
                NetError::Timeout {
                    addr: addr.clone(),
                    verb: "sync".into(),
                },
                "sync: timed out",
            ),
            (
                NetError::Remote {
                    addr: addr.clone(),
                    verb: "hello".into(),
                    refusal: Refusal::new(ErrorCode::Conflict, "taken"),
                },
                "hello: conflict: taken",
            ),
        ];
        for (e, detail) in cases {
            assert_eq!(e.without_addr(), detail);
            assert_eq!(
                format!("index {addr}: {}", e.without_addr()),
                format!("index {e}")
            );
        }
    }
}
