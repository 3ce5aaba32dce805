//! In-process tests of a [`Service`]: requests written as they travel on the wire,
//! decoded by the codec, handed to `handle` on a connection state of their own, and
//! the replies read back as the client would read them. No socket, no thread.

use super::node::{self, HelloRole, Me};
use super::{Reply, Service};
use crate::identity::NodeKey;
use crate::protocol::codec::{decode_request, Decoded, Request};
use crate::protocol::name::PeerId;
use crate::protocol::MAX_LINE;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;

/// Decodes one whole request (with its rows, if any) from its wire text; a missing
/// final newline is added. Panics when the text is not exactly one request.
pub fn request(wire: &str) -> Request<'static> {
    let mut wire = wire.to_owned();
    if !wire.ends_with('\n') {
        wire.push('\n');
    }
    // A request borrows the bytes it was decoded from; a test's few are kept for good.
    let wire: &'static str = Box::leak(wire.into_boxed_str());
    match decode_request(wire.as_bytes(), MAX_LINE) {
        Ok(Decoded::Frame(req, used)) => {
            assert_eq!(used, wire.len(), "more than one request in {wire:?}");
            req
        }
        Ok(Decoded::NeedMore) => panic!("incomplete request {wire:?}"),
        Err(e) => panic!("{wire:?} does not decode: {}", e.refusal),
    }
}

/// The bytes a client receives for a reply: the lines, or a header and its payload.
pub fn bytes(reply: Reply) -> Vec<u8> {
    match reply {
        Reply::Text(text) | Reply::Close(text) => text.into_bytes(),
        Reply::Bytes(bytes) => bytes,
        Reply::File {
            header,
            mut file,
            offset,
            len,
            ..
        } => {
            let mut out = header.into_bytes();
            file.seek(SeekFrom::Start(offset)).unwrap();
            file.take(len).read_to_end(&mut out).unwrap();
            out
        }
        // The go-ahead alone: no payload follows (the sink is dropped unfed).
        Reply::Receive { header, .. } => header.into_bytes(),
    }
}

/// The rows of a `status` reply, checked against the count its first line gives.
pub fn status_rows(reply: &str) -> BTreeMap<String, String> {
    let mut lines = reply.lines();
    let head = lines.next().unwrap_or_default();
    let n: usize = head
        .strip_prefix("ok|")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a status reply: {reply:?}"));
    let rows: BTreeMap<String, String> = lines
        .map(|l| {
            let (k, v) = l.split_once('|').unwrap_or_else(|| panic!("row {l:?}"));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    assert_eq!(rows.len(), n, "{reply}");
    rows
}

/// One client connection to a service: the connection state lives from request to
/// request, as it does on a real connection.
pub struct Session<'a, S: Service> {
    service: &'a S,
    conn: S::Conn,
    remote: SocketAddr,
}

impl<'a, S: Service> Session<'a, S> {
    /// A connection from 127.0.0.1.
    pub fn new(service: &'a S) -> Self {
        Session::from(service, "127.0.0.1:40000")
    }

    /// A connection from `remote`.
    pub fn from(service: &'a S, remote: &str) -> Self {
        Session {
            service,
            conn: S::Conn::default(),
            remote: remote.parse().unwrap(),
        }
    }

    /// Handles one request; the reply's bytes.
    pub fn ask_bytes(&mut self, wire: &str) -> Vec<u8> {
        bytes(
            self.service
                .handle(request(wire), self.remote, &mut self.conn),
        )
    }

    /// Handles one request; the reply as text.
    pub fn ask(&mut self, wire: &str) -> String {
        String::from_utf8(self.ask_bytes(wire)).expect("a text reply")
    }

    /// Handles a request that may take a payload ([`Reply::Receive`]): when it does,
    /// hands it `payload` in pieces of `piece` bytes, as a server would. The replies
    /// as text: the first, and the one after the payload (`None` when none was
    /// taken, or when a write was refused: then the first holds the go-ahead and the
    /// second the refusal).
    pub fn send_payload(
        &mut self,
        wire: &str,
        payload: &[u8],
        piece: usize,
    ) -> (String, Option<String>) {
        let reply = self
            .service
            .handle(request(wire), self.remote, &mut self.conn);
        let Reply::Receive {
            header,
            len,
            mut sink,
        } = reply
        else {
            return (String::from_utf8(bytes(reply)).expect("a text reply"), None);
        };
        assert_eq!(len, payload.len() as u64, "the payload announced");
        for part in payload.chunks(piece.max(1)) {
            if let Err(refusal) = sink.write(part) {
                return (header, Some(refusal.to_line()));
            }
        }
        let last = String::from_utf8(bytes(sink.finish())).expect("a text reply");
        (header, Some(last))
    }

    /// Says hello as `role` with the test key of `name` (see
    /// [`NodeKey::for_test`]), announcing `port`, and proves the key with `auth`: the
    /// answer to `auth`, or the refusal of `hello`.
    pub fn hello_as(&mut self, role: HelloRole, name: &str, port: u16) -> String {
        node::handshake(&test_me(name), role, port, |line| self.ask(line))
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The key and name a test node `name` has: [`NodeKey::for_test`].
pub fn test_me(name: &str) -> Me {
    Me {
        key: NodeKey::for_test(name),
        name: PeerId::parse(name).unwrap(),
    }
}

/// The id of test node `name`.
pub fn test_id(name: &str) -> PeerId {
    NodeKey::for_test(name).id().clone()
}
