//! The uploader's side of `upload` (`p2pshare upload FILE --peer ADDR`): hashes the
//! file for its content id, offers it, and streams it once the peer says so.

use crate::net::client::Client;
use crate::net::node::{HelloRole, Me};
use crate::net::{NetError, Timeouts};
use crate::peer::catalog::hash_reader_with;
use crate::peer::download::Progress;
use crate::protocol::codec;
use crate::protocol::hash::Sha1Digest;
use crate::protocol::name::{FileName, PeerId};
use crate::protocol::{ErrorCode, CHUNK_SIZE};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bytes sent per write: a multiple of the chunk.
const SEND: usize = 16 * CHUNK_SIZE as usize;

/// An upload that succeeded.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// `uploaded`, or `exists` (the peer had these bytes under this name already).
    pub status: String,
    pub name: FileName,
    pub size: u64,
    pub id: Sha1Digest,
    /// The whole-file SHA-1, as the peer computed it.
    pub sha1: Option<Sha1Digest>,
    pub elapsed: Duration,
}

/// Why an upload failed.
#[derive(Debug)]
pub enum PushError {
    /// The local file cannot be read, or changed while it was sent.
    File { path: PathBuf, source: io::Error },
    /// The exchange with the peer failed, or the peer refused (see
    /// [`NetError::refusal`]).
    Net(NetError),
}

impl PushError {
    /// The peer's refusal, if that is what it was.
    pub fn refusal(&self) -> Option<&crate::protocol::Refusal> {
        match self {
            PushError::Net(e) => e.refusal(),
            PushError::File { .. } => None,
        }
    }

    /// What the user can do about it, for the refusals that have an answer.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self.refusal()?.code {
            ErrorCode::Forbidden => {
                "the peer takes uploads only when started with --allow-upload"
            }
            ErrorCode::Conflict => "send it under another name with --name NAME",
            ErrorCode::BadContent => {
                "the bytes that arrived do not hash to the file's content id: did the file change while it was sent?"
            }
            ErrorCode::Busy => "try again when the upload running there ends",
            _ => return None,
        })
    }
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::File { path, source } => write!(f, "{}: {source}", path.display()),
            PushError::Net(e) => match e.refusal() {
                Some(r) => write!(f, "{}: upload refused: {}", e.addr(), r.message),
                None => write!(f, "{e}"),
            },
        }
    }
}

impl std::error::Error for PushError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PushError::File { source, .. } => Some(source),
            PushError::Net(e) => Some(e),
        }
    }
}

impl From<NetError> for PushError {
    fn from(e: NetError) -> PushError {
        PushError::Net(e)
    }
}

/// Sends the file at `path` to the peer at `addr` (whose key must be `expect` when
/// given) under `name`. With `me` (a peer's key and the port it serves on) the
/// session is proven, and the upload is logged as that peer's; without, it is a
/// client's. `progress` sees the hashing pass, then the bytes sent.
pub fn push(
    addr: &str,
    expect: Option<&PeerId>,
    me: Option<(&Me, u16)>,
    path: &Path,
    name: &FileName,
    timeouts: Timeouts,
    progress: &dyn Progress,
) -> Result<Pushed, PushError> {
    let started = Instant::now();
    let file_error = |source: io::Error| PushError::File {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(file_error)?;
    let meta = file.metadata().map_err(file_error)?;
    if !meta.is_file() {
        return Err(file_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    progress.begin(&format!("hashing {name}"), Some(meta.len()));
    let hashed = hash_reader_with(&file, &mut |bytes| progress.advance(bytes));
    progress.end();
    let hashes = hashed.map_err(file_error)?;
    let size = hashes.size;
    let mut file = file;
    file.seek(SeekFrom::Start(0)).map_err(file_error)?;

    let mut client = Client::connect(addr, &timeouts)?;
    match me {
        Some((me, port)) => client.hello(Some(me), HelloRole::Peer, port, expect)?,
        None => client.hello(None, HelloRole::Client, 0, expect)?,
    };
    let line = codec::line(&[
        "upload",
        name.as_str(),
        &size.to_string(),
        &hashes.id.to_string(),
    ]);
    client.send(line.as_bytes(), "upload")?;
    let fields = client.read_ok("upload")?;
    if fields.first().map(String::as_str) == Some("send") {
        progress.begin(name.as_str(), Some(size));
        let sent = send(&mut client, file, path, size, progress);
        progress.end();
        if let Err(e) = sent {
            // The peer may have refused half way, and said why before it closed.
            return Err(match client.read_ok("upload") {
                Err(refused @ NetError::Remote { .. }) => PushError::Net(refused),
                _ => e,
            });
        }
        // Placing a large file takes its sync to disk: a second per 16 MiB on top.
        let verdict = timeouts.io + Duration::from_secs(size / (16 << 20));
        let _ = client.stream().set_read_timeout(Some(verdict));
        let fields = client.read_ok("upload")?;
        return verdict_of(&client, fields, size, started);
    }
    verdict_of(&client, fields, size, started)
}

/// Writes the `size` bytes of `file`, a multiple of the chunk at a time.
fn send(
    client: &mut Client,
    mut file: File,
    path: &Path,
    size: u64,
    progress: &dyn Progress,
) -> Result<(), PushError> {
    let mut buf = vec![0u8; SEND];
    let mut sent = 0u64;
    while sent < size {
        let want = usize::try_from(size - sent).unwrap_or(SEND).min(SEND);
        let n = file
            .read(&mut buf[..want])
            .map_err(|source| PushError::File {
                path: path.to_owned(),
                source,
            })?;
        if n == 0 {
            // The file shrank since it was hashed: the exchange cannot be finished.
            let _ = client.stream().shutdown(std::net::Shutdown::Both);
            return Err(PushError::File {
                path: path.to_owned(),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("changed while it was sent: it ended after {sent} of {size} bytes"),
                ),
            });
        }
        client
            .stream()
            .write_all(&buf[..n])
            .map_err(|e| NetError::from_io(client.addr(), "upload", e))?;
        sent += n as u64;
        progress.advance(n as u64);
    }
    Ok(())
}

/// `ok|<uploaded|exists>|<name>|<content-id>|<sha1>` as a [`Pushed`].
fn verdict_of(
    client: &Client,
    fields: Vec<String>,
    size: u64,
    started: Instant,
) -> Result<Pushed, PushError> {
    let bad = |why: &str| {
        PushError::Net(NetError::Protocol {
            addr: client.addr().to_owned(),
            verb: "upload".into(),
            message: why.to_owned(),
        })
    };
    let [status, name, id, sha1] = fields.as_slice() else {
        return Err(bad(&format!("unexpected answer 'ok|{}'", fields.join("|"))));
    };
    if status != "uploaded" && status != "exists" {
        return Err(bad(&format!(
            "unexpected status '{}'",
            codec::printable(status)
        )));
    }
    Ok(Pushed {
        status: status.clone(),
        name: FileName::parse(name).map_err(|e| bad(&format!("name: {e}")))?,
        size,
        id: Sha1Digest::parse(id).map_err(|e| bad(&format!("content id: {e}")))?,
        sha1: Sha1Digest::parse(sha1).ok(),
        elapsed: started.elapsed(),
    })
}
