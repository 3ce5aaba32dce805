//! Files pushed to a peer: the `upload` verb of the line protocol ([`wire`]) and
//! `POST /upload` over HTTP both come here; [`push`] is the uploader's side.
//!
//! A peer takes them only when started with `--allow-upload`. An upload names a file
//! and the content it promises: its content id (over HTTP, its whole-file SHA-1 will
//! do too). The name passes the rules of every shared name (one plain entry at the
//! top of the folder: no `/`, no `..`, no dotfile, so never the state dir) and the
//! `--upload-extensions` allowlist; the size `--max-upload-size` and the free space.
//! The bytes go to a temporary file of the peer's own, hashed as they arrive (each
//! piece, so the content id, and the whole file); only when they are the content
//! promised is the file fsynced and moved into the folder under its name, never
//! replacing anything (`renameat2` with `RENAME_NOREPLACE`, else `link` and
//! `unlink`), then put in the catalog and published at once, without waiting for the
//! folder's watcher.
//!
//! What this module must never do: put a byte in the folder before the content is
//! proven, replace a file, or leave a temporary file behind. A [`Receiver`] dropped
//! before it finished removes its own file; the files a killed process left are
//! removed when the peer starts ([`Uploads::new`]).
//!
//! A name the folder has already is refused ([`UploadError::Exists`]) unless the
//! bytes are the same: then the upload succeeds as [`Outcome::Exists`], and when the
//! catalog shows it from the promise alone, no byte is sent at all.
//!
//! Caps: one upload in flight per address (an IPv6 /64 counting as one), at most
//! `--max-uploads` in all; the slot is held by the [`Receiver`]. Every refusal is
//! counted (`p2pshare_uploads_refused_total`, by reason), every success too.
//!
//! Locks: the slot table (a leaf mutex, never held across I/O), then the catalog's
//! write lock, alone, for the insert.

mod disk;
pub mod push;
pub mod wire;

pub use disk::PieceHasher;
use disk::{free_space, rename_noreplace};

use super::catalog::{hash_file, open_nofollow, ContentHashes, FileStamp, SharedFile};
use super::links::{LinkCommand, Publisher};
use super::{PeerEvent, PeerShared};
use crate::protocol::hash::Sha1Digest;
use crate::protocol::name::FileName;
use crate::protocol::ErrorCode;
use crate::units::fmt_bytes;
use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// The default `--max-upload-size`: 1 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 1 << 30;

/// The default `--max-uploads`: uploads in flight at once, from all addresses.
pub const DEFAULT_MAX_RUNNING: usize = 4;

/// Uploads in flight at once from one address (an IPv6 /64 counting as one).
pub const PER_ADDRESS: usize = 1;

/// The suffix of a temporary upload file; the only files a peer removes from its
/// upload folder when it starts.
const TEMP_SUFFIX: &str = ".upload";

/// What a peer takes.
#[derive(Clone, Debug)]
pub struct UploadConfig {
    /// `--allow-upload`: nothing is taken without it.
    pub allowed: bool,
    /// `--upload-extensions`, lower-case and without the dot; empty: any name.
    pub extensions: Vec<String>,
    /// `--max-upload-size`.
    pub max_size: u64,
    /// `--max-uploads`.
    pub max_running: usize,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            allowed: false,
            extensions: Vec::new(),
            max_size: DEFAULT_MAX_SIZE,
            max_running: DEFAULT_MAX_RUNNING,
        }
    }
}

/// What an uploader says the bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Promise {
    /// The content id: the digest of the piece list.
    ContentId(Sha1Digest),
    /// The whole-file SHA-1 (what `sha1sum` prints).
    Sha1(Sha1Digest),
}

impl Promise {
    /// Whether content with these hashes is what was promised; `None` when the hashes
    /// cannot tell (a whole-file SHA-1 this node never computed).
    fn kept_by(&self, hashes: &ContentHashes) -> Option<bool> {
        match self {
            Promise::ContentId(id) => Some(hashes.id == *id),
            Promise::Sha1(sha1) => hashes.sha1.map(|s| s == *sha1),
        }
    }
}

impl fmt::Display for Promise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Promise::ContentId(id) => write!(f, "content id {id}"),
            Promise::Sha1(sha1) => write!(f, "SHA-1 {sha1}"),
        }
    }
}

/// An upload as its request states it.
#[derive(Clone, Debug)]
pub struct Offer {
    /// The name, as sent: checked here.
    pub name: String,
    /// The exact size, when the request states it (the line protocol does).
    pub size: Option<u64>,
    /// At most this many bytes will come (an HTTP body's length), when known: the
    /// space reserved up front.
    pub at_most: Option<u64>,
    pub promise: Promise,
    pub from: SocketAddr,
    /// Who sent it, for the log: a proven id, or a name nothing proves.
    pub who: String,
}

/// A file in the folder, as an upload left it (or found it).
#[derive(Clone, Debug)]
pub struct Placed {
    pub name: FileName,
    pub hashes: ContentHashes,
}

/// How an upload ended well.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The file is in the folder now, and shared.
    Uploaded(Placed),
    /// The folder had these very bytes under this name already: nothing changed.
    Exists(Placed),
}

/// The answer to an [`Offer`].
pub enum Begun {
    /// The folder has the promised content under this name already: send nothing.
    Exists(Placed),
    /// Send the bytes.
    Receiving(Receiver),
}

/// Why an upload was refused. Each maps to a wire code ([`UploadError::code`]); the
/// HTTP interface maps them to statuses.
#[derive(Debug)]
pub enum UploadError {
    /// The peer was not started with `--allow-upload`.
    NotAllowed,
    /// The name breaks the naming rules.
    BadName { name: String, why: String },
    /// The name's extension is not in `--upload-extensions`.
    Extension {
        name: FileName,
        allowed: Vec<String>,
    },
    /// Over `--max-upload-size`.
    TooLarge { size: u64, max: u64 },
    /// The disk cannot hold it.
    NoSpace { needed: u64, free: u64 },
    /// Too many uploads at once, from this address or in all.
    Busy(String),
    /// The folder has another file (or a folder, a link) under this name.
    Exists { name: FileName },
    /// The bytes are not the promised content: nothing was kept.
    Mismatch {
        name: FileName,
        promise: Promise,
        got: ContentHashes,
    },
    /// The request itself is wrong (no promise, a body that is not a form, ...).
    Malformed(String),
    /// The sender stopped before the end (its connection closed, or it stalled).
    Incomplete { got: u64 },
    /// Writing or placing the file failed here.
    Io(String),
}

impl UploadError {
    /// The code of the refusal on the wire.
    pub fn code(&self) -> ErrorCode {
        match self {
            UploadError::NotAllowed => ErrorCode::Forbidden,
            UploadError::BadName { .. } | UploadError::Extension { .. } => ErrorCode::BadName,
            UploadError::TooLarge { .. } | UploadError::NoSpace { .. } => ErrorCode::TooLarge,
            UploadError::Busy(_) => ErrorCode::Busy,
            UploadError::Exists { .. } => ErrorCode::Conflict,
            UploadError::Mismatch { .. } => ErrorCode::BadContent,
            UploadError::Malformed(_) | UploadError::Incomplete { .. } => ErrorCode::BadRequest,
            UploadError::Io(_) => ErrorCode::Internal,
        }
    }

    /// The `reason` label of `p2pshare_uploads_refused_total`: a closed set.
    pub fn reason(&self) -> &'static str {
        match self {
            UploadError::NotAllowed => "not-allowed",
            UploadError::BadName { .. } => "bad-name",
            UploadError::Extension { .. } => "extension",
            UploadError::TooLarge { .. } => "too-large",
            UploadError::NoSpace { .. } => "no-space",
            UploadError::Busy(_) => "busy",
            UploadError::Exists { .. } => "exists",
            UploadError::Mismatch { .. } => "mismatch",
            UploadError::Malformed(_) => "bad-request",
            UploadError::Incomplete { .. } => "incomplete",
            UploadError::Io(_) => "internal",
        }
    }
}

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UploadError::NotAllowed => f.write_str(
                "this peer does not take uploads (it was not started with --allow-upload)",
            ),
            UploadError::BadName { name, why } => write!(f, "'{name}': {why}"),
            UploadError::Extension { name, allowed } => write!(
                f,
                "'{name}': this peer takes only names ending in {}",
                allowed
                    .iter()
                    .map(|e| format!(".{e}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            UploadError::TooLarge { size, max } => write!(
                f,
                "{} is over this peer's upload limit of {} ({max} bytes)",
                fmt_bytes(*size),
                fmt_bytes(*max)
            ),
            UploadError::NoSpace { needed, free } => write!(
                f,
                "not enough disk space: {} needed, {} free",
                fmt_bytes(*needed),
                fmt_bytes(*free)
            ),
            UploadError::Busy(why) => write!(f, "{why}; try again when it ends"),
            UploadError::Exists { name } => write!(
                f,
                "'{name}' exists in this peer's folder with other content; it is never replaced (upload under another name)"
            ),
            UploadError::Mismatch { name, promise, got } => {
                let what = match promise {
                    Promise::ContentId(_) => got.id,
                    Promise::Sha1(_) => got.sha1.unwrap_or(got.id),
                };
                write!(
                    f,
                    "'{name}': the bytes received are not the {promise} (they hash to {what}); nothing was kept"
                )
            }
            UploadError::Malformed(why) => f.write_str(why),
            UploadError::Incomplete { got } => {
                write!(f, "the upload stopped after {got} bytes; nothing was kept")
            }
            UploadError::Io(why) => write!(f, "cannot store the upload: {why}"),
        }
    }
}

impl std::error::Error for UploadError {}

/// The uploads a peer takes: its configuration, its folders, its slots.
pub struct Uploads {
    config: UploadConfig,
    shared: Arc<PeerShared>,
    /// The shared folder (canonical).
    dir: PathBuf,
    /// Where the bytes wait until they are proven: on the folder's file system.
    temp_dir: PathBuf,
    /// Set once the index links run (they start after the server).
    publisher: OnceLock<Publisher>,
    events: Option<crossbeam_channel::Sender<PeerEvent>>,
    slots: Mutex<Slots>,
    next: AtomicU64,
}

/// Uploads in flight: in all, and per address.
#[derive(Debug, Default)]
struct Slots {
    running: usize,
    per_address: HashMap<IpAddr, usize>,
}

impl Uploads {
    /// The uploads of the peer sharing `dir`. The temporary files go to
    /// `STATE_DIR/uploads`, or when the state dir is on another file system than the
    /// folder (a rename cannot cross), to `DIR/.p2pshare-uploads` (a dotfile: never
    /// shared). Whatever a killed process left there is removed now.
    pub fn new(
        config: UploadConfig,
        shared: Arc<PeerShared>,
        dir: &Path,
        state_dir: &Path,
        events: Option<crossbeam_channel::Sender<PeerEvent>>,
    ) -> Uploads {
        let device = |p: &Path| fs::metadata(p).map(|m| m.dev()).ok();
        let temp_dir = match (device(dir), device(state_dir)) {
            (Some(a), Some(b)) if a != b => dir.join(".p2pshare-uploads"),
            _ => state_dir.join("uploads"),
        };
        let uploads = Uploads {
            config,
            shared,
            dir: dir.to_path_buf(),
            temp_dir,
            publisher: OnceLock::new(),
            events,
            slots: Mutex::default(),
            next: AtomicU64::new(0),
        };
        uploads.remove_leftovers();
        uploads
    }

    /// The index links to publish an upload to, once they run.
    pub fn set_publisher(&self, publisher: Publisher) {
        let _ = self.publisher.set(publisher);
    }

    pub fn config(&self) -> &UploadConfig {
        &self.config
    }

    /// Whether this peer takes uploads at all.
    pub fn allowed(&self) -> bool {
        self.config.allowed
    }

    /// Where the bytes of uploads in flight wait.
    pub fn temp_dir(&self) -> &Path {
        &self.temp_dir
    }

    /// Removes the temporary files an earlier process left (it was killed in the
    /// middle of an upload).
    fn remove_leftovers(&self) {
        let Ok(entries) = fs::read_dir(&self.temp_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.to_string_lossy().ends_with(TEMP_SUFFIX) {
                match fs::remove_file(&path) {
                    Ok(()) => log::info!("removed an unfinished upload: {}", path.display()),
                    Err(e) => log::warn!("cannot remove {}: {e}", path.display()),
                }
            }
        }
    }

    /// Counts and logs a refusal, and passes it on.
    pub fn refused(&self, e: UploadError, from: SocketAddr) -> UploadError {
        crate::metrics::global().upload_refused(e.reason());
        match &e {
            UploadError::Io(_) => log::warn!("upload from {from} failed: {e}"),
            _ => log::info!("upload from {from} refused: {e}"),
        }
        e
    }

    /// The name an upload may take: the rules of every shared name, then the
    /// extension allowlist (compared without regard to case).
    pub fn check_name(&self, text: &str) -> Result<FileName, UploadError> {
        let name = FileName::parse(text).map_err(|e| UploadError::BadName {
            name: crate::protocol::codec::printable(text),
            why: e.to_string(),
        })?;
        if self.config.extensions.is_empty() {
            return Ok(name);
        }
        let extension = name
            .as_str()
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase());
        match extension {
            Some(e) if self.config.extensions.contains(&e) => Ok(name),
            _ => Err(UploadError::Extension {
                name,
                allowed: self.config.extensions.clone(),
            }),
        }
    }

    /// Takes an upload, or refuses it before a byte is sent: not allowed, a bad name
    /// or extension, too large, a name taken by other content, too many at once, no
    /// space. A refusal is counted.
    pub fn begin(self: &Arc<Self>, offer: Offer) -> Result<Begun, UploadError> {
        let from = offer.from;
        self.try_begin(offer).map_err(|e| self.refused(e, from))
    }

    fn try_begin(self: &Arc<Self>, offer: Offer) -> Result<Begun, UploadError> {
        if !self.config.allowed {
            return Err(UploadError::NotAllowed);
        }
        let name = self.check_name(&offer.name)?;
        let max = self.config.max_size;
        if let Some(size) = offer.size.filter(|&s| s > max) {
            return Err(UploadError::TooLarge { size, max });
        }
        if let Some(placed) = self.existing(&name, offer.promise)? {
            crate::metrics::global().upload_accepted(0);
            log::info!(
                "upload of '{name}' from {} ({}): the folder has it already",
                offer.from,
                offer.who
            );
            return Ok(Begun::Exists(placed));
        }
        let slot = self.take_slot(offer.from)?;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        fs::create_dir_all(&self.temp_dir).map_err(|e| io_error(&self.temp_dir, e))?;
        let temp = self
            .temp_dir
            .join(format!("{}-{n}{TEMP_SUFFIX}", std::process::id()));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| io_error(&temp, e))?;
        let mut receiver = Receiver {
            name,
            promise: offer.promise,
            size: offer.size,
            temp,
            file: Some(BufWriter::with_capacity(256 * 1024, file)),
            hasher: Box::default(),
            received: 0,
            from: offer.from,
            who: offer.who,
            started: Instant::now(),
            settled: false,
            slot,
        };
        let reserve = offer.size.or(offer.at_most.map(|m| m.min(max)));
        if let Some(bytes) = reserve {
            if let Err(e) = receiver.reserve(bytes) {
                receiver.settled = true;
                return Err(e);
            }
        }
        log::info!(
            "receiving '{}' from {} ({}){}",
            receiver.name,
            receiver.from,
            receiver.who,
            offer
                .size
                .map(|s| format!(": {}", fmt_bytes(s)))
                .unwrap_or_default()
        );
        Ok(Begun::Receiving(receiver))
    }

    /// What the folder has under `name`: the promised content (no need to send it),
    /// nothing (send it), or something else (refused). A file the catalog does not
    /// know yet, or whose SHA-1 this node never computed, is compared once the bytes
    /// are in.
    fn existing(&self, name: &FileName, promise: Promise) -> Result<Option<Placed>, UploadError> {
        let shared = self.shared.catalog().get(name.as_str()).cloned();
        // The catalog speaks for the file only while it is the file that was hashed
        // (the watcher may not have seen a change yet).
        let current = shared
            .filter(|f| fs::symlink_metadata(&f.path).is_ok_and(|m| FileStamp::of(&m) == f.stamp));
        if let Some(file) = current {
            return match promise.kept_by(&file.hashes) {
                Some(true) => Ok(Some(Placed {
                    name: name.clone(),
                    hashes: file.hashes.clone(),
                })),
                Some(false) => Err(UploadError::Exists { name: name.clone() }),
                None => Ok(None),
            };
        }
        let path = self.dir.join(name.as_str());
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => Ok(None),
            Ok(_) => Err(UploadError::Exists { name: name.clone() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    /// A slot for an upload from `from`: under the address's share and the cap.
    fn take_slot(self: &Arc<Self>, from: SocketAddr) -> Result<Slot, UploadError> {
        let host = crate::net::address_share(from.ip());
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.running >= self.config.max_running {
            return Err(UploadError::Busy(format!(
                "this peer takes {} uploads at once, and that many are running",
                self.config.max_running
            )));
        }
        let mine = slots.per_address.entry(host).or_insert(0);
        if *mine >= PER_ADDRESS {
            return Err(UploadError::Busy(format!(
                "{host} has an upload running here already (one at a time per address)"
            )));
        }
        *mine += 1;
        slots.running += 1;
        Ok(Slot {
            uploads: self.clone(),
            host,
        })
    }

    /// Puts a proven upload in the catalog and tells the indexes, now.
    fn share(&self, file: SharedFile) {
        self.shared.catalog_mut().insert(file.clone());
        if let Some(p) = self.publisher.get() {
            p.send(LinkCommand::Publish(vec![file]));
        }
    }
}

/// An upload's place among those in flight, given back when dropped.
struct Slot {
    uploads: Arc<Uploads>,
    host: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut slots = self.uploads.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.running = slots.running.saturating_sub(1);
        if let Some(n) = slots.per_address.get_mut(&self.host) {
            *n -= 1;
            if *n == 0 {
                slots.per_address.remove(&self.host);
            }
        }
    }
}

/// An upload being received: the bytes go to its temporary file and its hashes as
/// they come. Dropped before [`Receiver::finish`], it removes the file.
pub struct Receiver {
    name: FileName,
    promise: Promise,
    /// The exact size, when the request stated it.
    size: Option<u64>,
    temp: PathBuf,
    /// `None` once closed for placing.
    file: Option<BufWriter<File>>,
    /// Boxed: two SHA-1 states, a few hundred bytes.
    hasher: Box<PieceHasher>,
    received: u64,
    from: SocketAddr,
    who: String,
    started: Instant,
    /// Counted already (finished, or refused): a drop counts nothing more.
    settled: bool,
    slot: Slot,
}

impl Receiver {
    pub fn name(&self) -> &FileName {
        &self.name
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    fn uploads(&self) -> &Uploads {
        &self.slot.uploads
    }

    /// The next bytes of the file. A refusal (over the size stated or the cap, a
    /// full disk) is counted, and the upload is over: drop the receiver.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), UploadError> {
        if self.settled {
            return Err(UploadError::Io("the upload has ended".into()));
        }
        match self.try_write(bytes) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.refuse(e)),
        }
    }

    fn try_write(&mut self, bytes: &[u8]) -> Result<(), UploadError> {
        let received = self.received + bytes.len() as u64;
        let max = self.uploads().config.max_size;
        if received > max {
            return Err(UploadError::TooLarge {
                size: received,
                max,
            });
        }
        if let Some(size) = self.size.filter(|&s| received > s) {
            return Err(UploadError::Malformed(format!(
                "more than the {size} bytes the upload stated"
            )));
        }
        let Some(file) = self.file.as_mut() else {
            return Err(UploadError::Io("the upload is closed".into()));
        };
        file.write_all(bytes).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => UploadError::NoSpace {
                needed: received,
                free: free_space(file.get_ref()).unwrap_or(0),
            },
            _ => io_error(&self.temp, e),
        })?;
        self.hasher.update(bytes);
        self.received = received;
        Ok(())
    }

    /// Ends the upload with `e` (found by the caller: a malformed body, a stall):
    /// counted, logged, and the temporary file removed.
    pub fn abandon(mut self, e: UploadError) -> UploadError {
        self.refuse(e)
    }

    fn refuse(&mut self, e: UploadError) -> UploadError {
        self.settled = true;
        self.uploads().refused(e, self.from)
    }

    /// Every byte is in: proves them against the promise, then places the file and
    /// shares it. A refusal is counted; the temporary file goes either way.
    pub fn finish(mut self) -> Result<Outcome, UploadError> {
        match self.try_finish() {
            Ok(outcome) => {
                self.settled = true;
                let metrics = crate::metrics::global();
                match &outcome {
                    Outcome::Uploaded(placed) => {
                        metrics.upload_accepted(placed.hashes.size);
                        log::info!(
                            "received '{}' ({}, {}) from {} ({}) in {:.1?}; sharing it",
                            placed.name,
                            fmt_bytes(placed.hashes.size),
                            placed.hashes.id,
                            self.from,
                            self.who,
                            self.started.elapsed()
                        );
                        if let Some(events) = &self.uploads().events {
                            let _ = events.send(PeerEvent::Uploaded {
                                name: placed.name.to_string(),
                                size: placed.hashes.size,
                                id: placed.hashes.id,
                                remote: self.from,
                            });
                        }
                    }
                    Outcome::Exists(placed) => {
                        metrics.upload_accepted(0);
                        log::info!(
                            "upload of '{}' from {}: the folder had these bytes already",
                            placed.name,
                            self.from
                        );
                    }
                }
                Ok(outcome)
            }
            Err(e) => Err(self.refuse(e)),
        }
    }

    fn try_finish(&mut self) -> Result<Outcome, UploadError> {
        if let Some(size) = self.size.filter(|&s| s != self.received) {
            return Err(UploadError::Incomplete {
                got: self.received.min(size),
            });
        }
        let hashes = std::mem::take(&mut *self.hasher).finish(self.received);
        if self.promise.kept_by(&hashes) != Some(true) {
            return Err(UploadError::Mismatch {
                name: self.name.clone(),
                promise: self.promise,
                got: hashes,
            });
        }
        let file = self.file.take().expect("finish runs once");
        let file = file
            .into_inner()
            .map_err(|e| io_error(&self.temp, e.into_error()))?;
        // A reservation may have been larger than what came (an HTTP body's length
        // counts the form around the file).
        file.set_len(self.received)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(&self.temp, e))?;
        drop(file);
        let dir = self.uploads().dir.clone();
        let dest = dir.join(self.name.as_str());
        match rename_noreplace(&self.temp, &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // The name appeared meanwhile, or was a file the catalog did not know:
                // the same bytes are a success, other bytes are never replaced.
                return match hash_file(&dest) {
                    Ok((_, theirs)) if theirs.id == hashes.id => Ok(Outcome::Exists(Placed {
                        name: self.name.clone(),
                        hashes,
                    })),
                    _ => Err(UploadError::Exists {
                        name: self.name.clone(),
                    }),
                };
            }
            Err(e) => return Err(io_error(&dest, e)),
        }
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error(&dir, e))?;
        // The stamp is taken after the rename, which moves the change time.
        let stamp = open_nofollow(&dest)
            .and_then(|f| f.metadata())
            .map(|m| FileStamp::of(&m))
            .map_err(|e| io_error(&dest, e))?;
        self.uploads().share(SharedFile {
            name: self.name.clone(),
            path: dest,
            stamp,
            hashes: hashes.clone(),
        });
        Ok(Outcome::Uploaded(Placed {
            name: self.name.clone(),
            hashes,
        }))
    }

    /// Allocates `bytes` for the file now (`fallocate`), so that a disk that cannot
    /// hold it refuses the upload before a byte is sent.
    fn reserve(&mut self, bytes: u64) -> Result<(), UploadError> {
        let Some(file) = self.file.as_ref().map(BufWriter::get_ref) else {
            return Ok(());
        };
        if bytes == 0 {
            return Ok(());
        }
        if let Some(free) = free_space(file) {
            if bytes > free {
                return Err(UploadError::NoSpace {
                    needed: bytes,
                    free,
                });
            }
        }
        // The file takes that size now; `finish` cuts it to what came, which also
        // frees what a reservation larger than the file held.
        // SAFETY: fallocate only reads its integer arguments; the descriptor is open
        // for the lifetime of `file`.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, bytes as libc::off_t) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::EINVAL) => Ok(()),
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => Err(UploadError::NoSpace {
                needed: bytes,
                free: free_space(file).unwrap_or(0),
            }),
            _ => Err(io_error(&self.temp, e)),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.file = None;
        // Once placed, the temporary name is gone (renamed or unlinked): this finds
        // nothing. Otherwise it is the only copy, and it goes.
        let _ = fs::remove_file(&self.temp);
        if !self.settled {
            let got = self.received;
            self.uploads()
                .refused(UploadError::Incomplete { got }, self.from);
        }
    }
}

fn io_error(path: &Path, e: io::Error) -> UploadError {
    UploadError::Io(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
