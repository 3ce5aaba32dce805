//! A blocking client connection: dial with a connect timeout, then request/reply with
//! a read and write timeout on every operation and the line cap on every reply line.

use super::node::{self, HelloRole, Me};
use super::{NetError, Timeouts};
use crate::identity;
use crate::protocol::codec::{self, ReplyHead};
use crate::protocol::name::PeerId;
use crate::protocol::{MAX_LINE, MAX_ROWS};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};

/// An open connection to a node.
/// The read buffer after [`Client::bulk_reads`].
const BULK_READ_BUFFER: usize = 8 * 1024;

pub struct Client {
    addr: String,
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

/// What a node says about itself in reply to `hello`.
#[derive(Clone, Debug)]
pub struct HelloReply {
    pub role: String,
    /// The node's id: its key, proven by its signature of our nonce.
    pub id: PeerId,
    /// The name it goes by (any node may give any name).
    pub name: String,
    /// Our address as the node saw it.
    pub your_host: String,
    /// Lease length in seconds (index servers; 0 elsewhere).
    pub lease_secs: u64,
    /// Files the node holds for us (index servers; 0 elsewhere).
    pub files_known: u64,
}

/// Dials `addr` (`host:port`, resolved now), trying each resolved address in turn.
pub fn dial(addr: &str, timeouts: &Timeouts) -> Result<TcpStream, NetError> {
    let resolved: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|source| NetError::Connect {
            addr: addr.to_owned(),
            source,
        })?
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "address resolved to nothing");
    for sa in resolved {
        match TcpStream::connect_timeout(&sa, timeouts.connect) {
            Ok(s) => {
                let set = s
                    .set_read_timeout(Some(timeouts.io))
                    .and_then(|_| s.set_write_timeout(Some(timeouts.io)))
                    .and_then(|_| s.set_nodelay(true));
                return match set {
                    Ok(()) => Ok(s),
                    Err(source) => Err(NetError::Connect {
                        addr: addr.to_owned(),
                        source,
                    }),
                };
            }
            Err(e) => last = e,
        }
    }
    Err(NetError::Connect {
        addr: addr.to_owned(),
        source: last,
    })
}

impl Client {
    pub fn connect(addr: &str, timeouts: &Timeouts) -> Result<Client, NetError> {
        let stream = dial(addr, timeouts)?;
        let reader = stream.try_clone().map_err(|source| NetError::Connect {
            addr: addr.to_owned(),
            source,
        })?;
        Ok(Client {
            addr: addr.to_owned(),
            stream,
            reader: BufReader::with_capacity(256 * 1024, reader),
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// From here on the replies are mostly bulk data, read with [`Client::read_exact`]
    /// into the caller's buffer: the read buffer shrinks to 8 KiB, so what a reply's
    /// header line reads ahead of the data, and is then copied once more, stays
    /// small. Call between replies (nothing read ahead yet); otherwise nothing
    /// changes.
    pub fn bulk_reads(&mut self) {
        if !self.reader.buffer().is_empty() || self.reader.capacity() <= BULK_READ_BUFFER {
            return;
        }
        if let Ok(inner) = self.reader.get_ref().try_clone() {
            self.reader = BufReader::with_capacity(BULK_READ_BUFFER, inner);
        }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    fn io_err(&self, verb: &str, e: io::Error) -> NetError {
        NetError::from_io(&self.addr, verb, e)
    }

    fn protocol_err(&self, verb: &str, message: impl Into<String>) -> NetError {
        NetError::Protocol {
            addr: self.addr.clone(),
            verb: verb.to_owned(),
            message: message.into(),
        }
    }

    /// Sends raw request bytes (one or more complete lines).
    pub fn send(&mut self, bytes: &[u8], verb: &str) -> Result<(), NetError> {
        self.stream
            .write_all(bytes)
            .map_err(|e| self.io_err(verb, e))
    }

    /// Reads one line of at most [`MAX_LINE`] bytes, without its terminator.
    pub fn read_line(&mut self, verb: &str) -> Result<Vec<u8>, NetError> {
        let mut line = Vec::new();
        loop {
            let available = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) => return Err(self.io_err(verb, e)),
            };
            if available.is_empty() {
                return Err(self.io_err(
                    verb,
                    io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"),
                ));
            }
            match available.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    line.extend_from_slice(&available[..end]);
                    self.reader.consume(end + 1);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if line.len() >= MAX_LINE {
                        return Err(self.protocol_err(verb, "reply line over the cap"));
                    }
                    return Ok(line);
                }
                None => {
                    let n = available.len();
                    line.extend_from_slice(available);
                    self.reader.consume(n);
                    if line.len() >= MAX_LINE {
                        return Err(self.protocol_err(verb, "reply line over the cap"));
                    }
                }
            }
        }
    }

    /// Reads the first line of a reply.
    pub fn read_head(&mut self, verb: &str) -> Result<ReplyHead, NetError> {
        let line = self.read_line(verb)?;
        codec::parse_reply(&line).map_err(|m| self.protocol_err(verb, m))
    }

    /// Reads an `ok|...` reply; an `err` reply becomes [`NetError::Remote`].
    pub fn read_ok(&mut self, verb: &str) -> Result<Vec<String>, NetError> {
        match self.read_head(verb)? {
            ReplyHead::Ok(fields) => Ok(fields),
            ReplyHead::Err(refusal) => Err(NetError::Remote {
                addr: self.addr.clone(),
                verb: verb.to_owned(),
                refusal,
            }),
            ReplyHead::Data(_) => Err(self.protocol_err(verb, "unexpected data reply")),
        }
    }

    /// Reads a multi-row reply: `ok|<n>|...` then n rows of `fields` fields each.
    pub fn read_rows(
        &mut self,
        verb: &str,
        fields: usize,
    ) -> Result<(Vec<String>, Vec<Vec<String>>), NetError> {
        let head = self.read_ok(verb)?;
        let count: usize = head
            .first()
            .and_then(|n| crate::protocol::decimal(n))
            .ok_or_else(|| self.protocol_err(verb, "multi-row reply without a row count"))?;
        if count > MAX_ROWS {
            return Err(self.protocol_err(verb, format!("{count} rows, over the cap")));
        }
        let mut rows = Vec::with_capacity(count);
        for _ in 0..count {
            let line = self.read_line(verb)?;
            let text =
                String::from_utf8(line).map_err(|_| self.protocol_err(verb, "row is not UTF-8"))?;
            let row: Vec<String> = text.split('|').map(str::to_owned).collect();
            if row.len() != fields {
                return Err(self.protocol_err(
                    verb,
                    format!("row has {} fields, expected {fields}", row.len()),
                ));
            }
            rows.push(row);
        }
        Ok((head, rows))
    }

    /// Reads a `data|<len>` header and checks `len` against `max`.
    pub fn read_data_header(&mut self, verb: &str, max: u64) -> Result<u64, NetError> {
        match self.read_head(verb)? {
            ReplyHead::Data(len) if len <= max => Ok(len),
            ReplyHead::Data(len) => {
                Err(self.protocol_err(verb, format!("{len} bytes, over the cap of {max}")))
            }
            ReplyHead::Err(refusal) => Err(NetError::Remote {
                addr: self.addr.clone(),
                verb: verb.to_owned(),
                refusal,
            }),
            ReplyHead::Ok(_) => Err(self.protocol_err(verb, "expected a data reply")),
        }
    }

    /// Reads exactly `buf.len()` payload bytes.
    pub fn read_exact(&mut self, buf: &mut [u8], verb: &str) -> Result<(), NetError> {
        self.reader
            .read_exact(buf)
            .map_err(|e| self.io_err(verb, e))
    }

    /// Sends one request line and reads an `ok` reply.
    pub fn call(&mut self, fields: &[&str]) -> Result<Vec<String>, NetError> {
        let verb = fields.first().copied().unwrap_or("");
        self.send(codec::line(fields).as_bytes(), verb)?;
        self.read_ok(verb)
    }

    /// Opens a session: `hello`, whose answer must be signed by the key it names (and
    /// be `expect` when given), then, for a peer or a seed, `auth` with `me`'s key.
    pub fn hello(
        &mut self,
        me: Option<&Me>,
        role: HelloRole,
        port: u16,
        expect: Option<&PeerId>,
    ) -> Result<HelloReply, NetError> {
        let (line, nonce) = node::hello_line(me, role, port);
        self.send(line.as_bytes(), "hello")?;
        let fields = self.read_ok("hello")?;
        let claimed = me.filter(|_| role != HelloRole::Client).map(Me::id);
        let answer = node::check_answer(&fields, &nonce, claimed)
            .map_err(|m| self.protocol_err("hello", m))?;
        if let Some(want) = expect.filter(|&want| *want != answer.id) {
            return Err(self.protocol_err(
                "hello",
                format!(
                    "the node answering is {} ({}), not the expected {}",
                    identity::short(answer.id.as_str()),
                    answer.name,
                    identity::short(want.as_str())
                ),
            ));
        }
        let (mut lease_secs, mut files_known) = (0, 0);
        if let Some(me) = me.filter(|_| role != HelloRole::Client) {
            let auth = node::auth_line(me, role, port, &answer);
            self.send(auth.as_bytes(), "auth")?;
            let f = self.read_ok("auth")?;
            lease_secs = f
                .first()
                .and_then(|v| crate::protocol::decimal(v))
                .unwrap_or(0);
            files_known = f
                .get(1)
                .and_then(|v| crate::protocol::decimal(v))
                .unwrap_or(0);
        }
        Ok(HelloReply {
            role: answer.role,
            id: answer.id,
            name: answer.name,
            your_host: answer.your_host,
            lease_secs,
            files_known,
        })
    }

    /// Opens a client session: `hello` as a `client`, which proves no key.
    pub fn hello_client(&mut self) -> Result<HelloReply, NetError> {
        self.hello(None, HelloRole::Client, 0, None)
    }

    /// `status`: the node's key/value rows.
    pub fn status(&mut self) -> Result<Vec<(String, String)>, NetError> {
        self.send(b"status\n", "status")?;
        let (_, rows) = self.read_rows("status", 2)?;
        Ok(rows
            .into_iter()
            .map(|mut r| {
                let v = r.pop().unwrap_or_default();
                let k = r.pop().unwrap_or_default();
                (k, v)
            })
            .collect())
    }
}
