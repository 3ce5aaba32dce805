//! Downloads: holders from the index, pieces from the holders, verified, then moved
//! into place.
//!
//! What must never happen: an unverified byte appearing under the file's name (a file
//! no content id verifies goes to `<state>/quarantine` unless the user allows it), a
//! content picked because more holders claim it, or a file the user already has
//! being replaced. Bytes land in `<state>/partial/<id>.part`;
//! each piece is checked against the piece list, itself checked against the content
//! id (which is its digest), so the verified pieces prove the whole file without a
//! second pass over it; the partial is fsynced and only then linked into the folder
//! under its name, refusing to replace anything. The whole-file SHA-1 is computed
//! only when asked for (`verify_sha1`): an in-order pass compared with what the
//! holders claim, whose mismatch fails the download.
//!
//! Pieces come from up to `max_sources` holders at once, each on its own connection
//! and thread, pulling work from one shared plan. A holder that fails, stalls or
//! refuses gives its pieces back to the others; one that sends two bad pieces is
//! banned for the rest of the download. Progress is recorded in a small state file
//! next to the partial, so a download that stops, however it stops, resumes where it
//! was. The scheduling cores are [`PiecePlan`](crate::peer::plan::PiecePlan) (which
//! piece from which source) and `policy::SourcePolicy` (which holders, when to ask the
//! index again, when to give up); this module is their runtime.
//!
//! The rooms: this file is the entry point (from which holders, in which order, and
//! the quarantine); `choice` decides which content, and refuses when holders disagree; `swarm` fetches pieces from several holders at once, and `swarm::verify` judges them; `buffer` holds them and writes them; `policy` decides
//! which holders it uses; `partial` owns the partial file, its resume-state record
//! ([`StateRecord`]) and placing the finished file; `disk` is the disk writer;
//! `classic` fetches a whole file from a classic holder.

mod buffer;
mod choice;
mod classic;
mod disk;
mod partial;
mod policy;
mod swarm;

pub use choice::{choices, ContentChoice, ContentIdArg};
pub use partial::{partials, PartialInfo, StateRecord};

use super::catalog::{hash_file, ContentHashes, FileStamp};
use super::finder::Finder;
use super::pool::{Holder, IndexPool};
use crate::net::rate::TokenBucket;
use crate::net::{NetError, Timeouts};
use crate::protocol::hash::Sha1Digest;
use crate::protocol::name::FileName;
use crate::protocol::MAX_FILE_SIZE;
use choice::choose_target;
use classic::fetch_from_classic;
use partial::{place, Check, Partial};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use swarm::{fetch_pieces, Fetched, SwarmJob};

/// Bytes hashed and written at a time: small enough to stay in the CPU cache
/// between the copy that brings them and the hash that reads them.
const CACHE_SLICE: usize = 128 * 1024;

/// What the user sees of a download in progress.
pub trait Progress: Sync {
    fn begin(&self, _name: &str, _total: Option<u64>) {}
    fn advance(&self, _bytes: u64) {}
    /// How many sources are sending now.
    fn sources(&self, _active: usize) {}
    /// Which holder the bytes now come from.
    fn source(&self, _holder: &str) {}
    /// Something the user should know (a holder failed, a check could not be made).
    fn note(&self, _text: &str) {}
    fn end(&self) {}
}

/// Progress that shows nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// Progress that shows nothing but keeps the notes (for JSON output).
#[derive(Default)]
pub struct KeptNotes(Mutex<Vec<String>>);

impl Progress for KeptNotes {
    fn note(&self, text: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(text.to_owned());
    }
}

impl KeptNotes {
    /// The notes so far, oldest first.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// What to download, and where.
pub struct DownloadRequest<'a> {
    pub name: FileName,
    /// Only this content; `None` takes the content every modern holder gives, and
    /// refuses when they disagree ([`DownloadError::Disagree`]).
    pub id: Option<Sha1Digest>,
    pub dest_dir: &'a Path,
    /// Where partial files live (never shared).
    pub state_dir: &'a Path,
    /// Content id of the file already at the destination, when known without hashing.
    pub existing: Option<Sha1Digest>,
    /// Our id, sent in `hello` to holders.
    pub self_id: &'a str,
    pub timeouts: Timeouts,
    /// Most holders used at once.
    pub max_sources: usize,
    /// Shared limit on the bytes received per second, if any.
    pub download_limit: Option<Arc<TokenBucket>>,
    /// Place a file nobody gave a content id for (classic holders only) in the
    /// folder; without it, such a file goes to `<state>/quarantine/<name>`.
    pub allow_unverified: bool,
    /// Most bytes taken from a classic holder when no content id is known.
    pub max_unverified_size: u64,
    /// Also hash the whole file (in order, as it is written) and compare its SHA-1
    /// with the one the holders claim when they agree on one; a mismatch fails the
    /// download ([`DownloadError::Sha1Mismatch`]) and nothing is placed. The SHA-1 is
    /// then known, so the file is shared with it.
    pub verify_sha1: bool,
    /// Write verified pieces straight from the receive buffer to the device
    /// (`O_DIRECT`) where the file system allows it; otherwise through the page cache.
    pub direct_io: bool,
}

/// The default of `--max-unverified-size`: 1 GiB.
pub const DEFAULT_MAX_UNVERIFIED_SIZE: u64 = 1 << 30;

/// A file that arrived without a content id to check it against, kept out of the
/// folder.
#[derive(Debug)]
pub struct Quarantined {
    pub name: String,
    /// `<state>/quarantine/<name>`.
    pub path: PathBuf,
    /// The content id of the bytes that arrived: what they are, not what they should
    /// be.
    pub id: Sha1Digest,
    /// Their whole-file SHA-1.
    pub sha1: Option<Sha1Digest>,
    pub size: u64,
    /// The classic holder that sent them.
    pub source: String,
}

/// A finished download.
#[derive(Clone, Debug)]
pub struct Completed {
    pub path: PathBuf,
    pub hashes: ContentHashes,
    pub stamp: FileStamp,
    /// False when the bytes came from a classic holder without a piece list.
    pub verified_in_advance: bool,
    pub sources: Vec<String>,
    pub elapsed: Duration,
    /// Bytes that were already on disk from an earlier, stopped run (a resume): not
    /// fetched this time, so not part of the transfer rate.
    pub resumed_bytes: u64,
}

impl Completed {
    /// Bytes fetched by this run per second of it.
    pub fn rate(&self) -> f64 {
        let fetched = self.hashes.size.saturating_sub(self.resumed_bytes);
        fetched as f64 / self.elapsed.as_secs_f64().max(1e-6)
    }
}

#[derive(Debug)]
pub enum DownloadOutcome {
    Downloaded(Completed),
    /// The destination already holds this content.
    AlreadyHave {
        path: PathBuf,
        id: Sha1Digest,
    },
}

#[derive(Debug)]
pub enum DownloadError {
    Index(NetError),
    NotFound {
        name: String,
    },
    /// A different file with this name is already in the folder.
    Exists {
        path: PathBuf,
    },
    AllSourcesFailed {
        name: String,
        tried: usize,
        last: String,
    },
    /// The modern holders give more than one content for the name: the user picks.
    Disagree {
        name: String,
        choices: Vec<ContentChoice>,
    },
    /// Only classic holders had it, so nothing could verify it: it was kept in the
    /// quarantine, not placed in the folder (see `allow_unverified`).
    Unverified(Box<Quarantined>),
    /// `verify_sha1`: the bytes are the content (its id proves them) but their
    /// whole-file SHA-1 is not the one the holders claim. Nothing was placed.
    Sha1Mismatch {
        name: String,
        claimed: Sha1Digest,
        computed: Sha1Digest,
    },
    Io {
        path: PathBuf,
        source: io::Error,
    },
    /// This content is being downloaded already in this process (under this name or
    /// another, from the console or the HTTP interface): two downloads would share
    /// one partial file.
    Busy {
        name: String,
    },
    Cancelled,
}

impl fmt::Display for DownloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownloadError::Index(e) => write!(f, "index: {e}"),
            DownloadError::NotFound { name } => write!(f, "no live peer holds '{name}'"),
            DownloadError::Exists { path } => write!(
                f,
                "{} already exists with different content; move it away to download this one",
                path.display()
            ),
            DownloadError::AllSourcesFailed {
                name,
                tried: 1,
                last,
            } => {
                write!(f, "'{name}': the only holder failed: {last}")
            }
            DownloadError::AllSourcesFailed { name, tried, last } => {
                write!(f, "'{name}': all {tried} holders failed (last: {last})")
            }
            DownloadError::Disagree { name, choices } => write!(
                f,
                "'{name}': its holders disagree on the content ({} different contents); \
                 how many hold each proves nothing, so nothing was downloaded",
                choices.iter().filter(|c| c.id.is_some()).count()
            ),
            DownloadError::Unverified(q) => write!(
                f,
                "'{}' came only from classic holder {}, which gives no content id, so it \
                 could not be verified and was NOT placed in the folder; its {} bytes \
                 (content id {}) are in {}",
                q.name,
                q.source,
                q.size,
                q.id,
                q.path.display()
            ),
            DownloadError::Sha1Mismatch {
                name,
                claimed,
                computed,
            } => write!(
                f,
                "'{name}': the bytes match the content id, but their whole-file SHA-1 is \
                 {computed}, not {claimed} as its holders claim (--verify-sha1); nothing \
                 was placed in the folder and the bytes were discarded"
            ),
            DownloadError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            DownloadError::Busy { name } => write!(
                f,
                "'{name}': this content is being downloaded already; wait for that download, or stop it"
            ),
            DownloadError::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl std::error::Error for DownloadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DownloadError::Index(e) => Some(e),
            DownloadError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> DownloadError + '_ {
    move |source| DownloadError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Why one holder could not finish the job.
#[derive(Debug)]
enum SourceError {
    Net(NetError),
    /// The holder sent bytes that do not match the hashes.
    Lied(String),
    Disk(io::Error),
    Cancelled,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Whoever reports it names the holder and its address already.
            SourceError::Net(e) => f.write_str(&e.without_addr()),
            SourceError::Lied(what) => f.write_str(what),
            SourceError::Disk(e) => write!(f, "local disk: {e}"),
            SourceError::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl From<NetError> for SourceError {
    fn from(e: NetError) -> Self {
        SourceError::Net(e)
    }
}

/// The content to fetch, as the index describes it.
#[derive(Clone, Copy, Debug)]
struct Target {
    /// The content id: the digest of the piece list.
    id: Sha1Digest,
    size: u64,
    /// The whole-file SHA-1 the holders of this content claim, when they agree on one:
    /// a claim, compared with the bytes only under `verify_sha1`, never published as
    /// this node's own.
    sha1: Option<Sha1Digest>,
}

/// Downloads one file. See the module documentation for the guarantees.
pub fn download(
    pool: &IndexPool,
    finder: &Finder,
    req: &DownloadRequest<'_>,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<DownloadOutcome, DownloadError> {
    let started = Instant::now();
    // Active until it returns; failed unless `end` counts it completed.
    let active = crate::metrics::global().download_started();
    let holders = finder
        .holders(pool, &req.name, req.id)
        .map_err(DownloadError::Index)?;
    let requery = || finder.holders(pool, &req.name, req.id).unwrap_or_default();
    active.end(download_from(
        &holders, req, &requery, progress, cancel, started,
    ))
}

/// Downloads one file from holders already known, trying them in the order given
/// (the index returns them shuffled).
pub fn download_from(
    holders: &[Holder],
    req: &DownloadRequest<'_>,
    requery: &dyn Fn() -> Vec<Holder>,
    progress: &dyn Progress,
    cancel: &AtomicBool,
    started: Instant,
) -> Result<DownloadOutcome, DownloadError> {
    if holders.is_empty() {
        return Err(DownloadError::NotFound {
            name: req.name.to_string(),
        });
    }
    let target = choose_target(holders, req.id).map_err(|choices| DownloadError::Disagree {
        name: req.name.to_string(),
        choices,
    })?;
    if let Some(t) = target.filter(|t| t.size > MAX_FILE_SIZE) {
        return Err(DownloadError::AllSourcesFailed {
            name: req.name.to_string(),
            tried: 0,
            last: format!(
                "the index says it is {} bytes, over the limit of {MAX_FILE_SIZE}",
                t.size
            ),
        });
    }
    let dest = req.dest_dir.join(req.name.as_str());
    if let Some(outcome) = already_there(req, target, &dest)? {
        return Ok(outcome);
    }
    let partial_dir = req.state_dir.join("partial");
    fs::create_dir_all(&partial_dir).map_err(io_at(&partial_dir))?;
    // Partials of an earlier version are named by the whole-file SHA-1: renamed to the
    // content id, or taken over when this content's holders claim that SHA-1.
    partial::migrate(&partial_dir);
    // One download per content at a time: they would share the partial. Held until
    // the file is placed.
    let _claim = match target {
        Some(t) => Some(
            partial::Claim::take(partial_dir.join(format!("{}.part", t.id.hex()))).ok_or_else(
                || DownloadError::Busy {
                    name: req.name.to_string(),
                },
            )?,
        ),
        None => None,
    };
    if let Some(t) = target {
        Partial::adopt(&partial_dir, t, &req.name);
    }
    let call = Call {
        req,
        requery,
        progress,
        cancel,
        partial_dir,
    };
    let mut attempts = Attempts {
        tried: 0,
        last: String::from("no holder could be reached"),
    };
    let mut arrived = match target {
        Some(t) => fetch_modern(&call, holders, t, &mut attempts),
        None => Ok(None),
    };
    if matches!(arrived, Ok(None)) {
        arrived = fetch_from_classic(&call, holders, target, &mut attempts);
    }
    progress.end();
    let Some(arrived) = arrived? else {
        return Err(DownloadError::AllSourcesFailed {
            name: req.name.to_string(),
            tried: attempts.tried,
            last: attempts.last,
        });
    };
    if req.verify_sha1 {
        check_sha1(req, target, &arrived, progress)?;
    }
    if !arrived.verified_in_advance && !req.allow_unverified {
        return Err(quarantine(req, arrived)?);
    }
    let stamp = place(&arrived.part, &dest)?;
    Ok(DownloadOutcome::Downloaded(Completed {
        path: dest,
        hashes: arrived.hashes,
        stamp,
        verified_in_advance: arrived.verified_in_advance,
        sources: arrived.sources,
        elapsed: started.elapsed(),
        resumed_bytes: arrived.resumed_bytes,
    }))
}

/// `verify_sha1`: compares the whole-file SHA-1 of what arrived with the one its
/// holders claim. A mismatch discards the bytes and fails the download; with no
/// single claim to compare with (none, or claims that differ), the SHA-1 computed is
/// kept and the user told.
fn check_sha1(
    req: &DownloadRequest<'_>,
    target: Option<Target>,
    arrived: &Arrived,
    progress: &dyn Progress,
) -> Result<(), DownloadError> {
    let Some(computed) = arrived.hashes.sha1 else {
        // The disk thread was asked for it; not having it is a bug, not a pass.
        return Err(io_at(&arrived.part)(io::Error::other(
            "the whole-file SHA-1 was not computed",
        )));
    };
    match target.and_then(|t| t.sha1) {
        Some(claimed) if claimed != computed => {
            let _ = fs::remove_file(&arrived.part);
            Err(DownloadError::Sha1Mismatch {
                name: req.name.to_string(),
                claimed,
                computed,
            })
        }
        Some(_) => {
            progress.note(&format!(
                "whole-file SHA-1 {computed} matches what the holders claim"
            ));
            Ok(())
        }
        None => {
            progress.note(&format!(
                "the holders claim no single whole-file SHA-1 to compare with; computed {computed}"
            ));
            Ok(())
        }
    }
}

/// Moves bytes nothing could verify from their partial to `<state>/quarantine/<name>`
/// (replacing an earlier quarantined file of that name): out of the folder, so never
/// shared, but kept for the user to inspect.
fn quarantine(req: &DownloadRequest<'_>, arrived: Arrived) -> Result<DownloadError, DownloadError> {
    let dir = req.state_dir.join("quarantine");
    fs::create_dir_all(&dir).map_err(io_at(&dir))?;
    let path = dir.join(req.name.as_str());
    fs::rename(&arrived.part, &path).map_err(io_at(&path))?;
    Ok(DownloadError::Unverified(Box::new(Quarantined {
        name: req.name.to_string(),
        path,
        id: arrived.hashes.id,
        sha1: arrived.hashes.sha1,
        size: arrived.hashes.size,
        source: arrived.sources.join(", "),
    })))
}

/// One call of [`download_from`]: the request and the caller's hooks.
struct Call<'a> {
    req: &'a DownloadRequest<'a>,
    requery: &'a dyn Fn() -> Vec<Holder>,
    progress: &'a dyn Progress,
    cancel: &'a AtomicBool,
    /// `<state>/partial`, where the bytes land before they are placed.
    partial_dir: PathBuf,
}

/// What the holders tried so far came to.
struct Attempts {
    tried: usize,
    /// Why the last one failed.
    last: String,
}

/// A whole file in its partial, verified as far as it can be, ready to be placed.
struct Arrived {
    part: PathBuf,
    hashes: ContentHashes,
    /// False when the bytes came from a classic holder without a piece list.
    verified_in_advance: bool,
    sources: Vec<String>,
    /// Bytes an earlier, stopped run had already fetched.
    resumed_bytes: u64,
}

/// Something is at `dest` already: the content asked for (`Some`: nothing to fetch),
/// or a different file, which is never replaced (an error). `None` when nothing is.
fn already_there(
    req: &DownloadRequest<'_>,
    target: Option<Target>,
    dest: &Path,
) -> Result<Option<DownloadOutcome>, DownloadError> {
    if fs::symlink_metadata(dest).is_err() {
        return Ok(None);
    }
    let existing = match req.existing {
        Some(id) => id,
        None => hash_file(dest).map_err(io_at(dest))?.1.id,
    };
    if target.is_some_and(|t| t.id == existing) || req.id == Some(existing) {
        // A download killed between linking the file into place and removing its
        // partial leaves the partial behind: it is not needed any more.
        Partial::remove_leftovers(&req.state_dir.join("partial"), existing);
        Ok(Some(DownloadOutcome::AlreadyHave {
            path: dest.to_owned(),
            id: existing,
        }))
    } else {
        Err(DownloadError::Exists {
            path: dest.to_owned(),
        })
    }
}

/// Fetches `t` from the holders of exactly this content, as a swarm. When a resumed
/// piece the spot check left unchecked turns out damaged, goes again checking every
/// resumed piece. `None` when every holder failed.
fn fetch_modern(
    call: &Call<'_>,
    holders: &[Holder],
    t: Target,
    attempts: &mut Attempts,
) -> Result<Option<Arrived>, DownloadError> {
    // Holders of exactly this content first; classic holders after, as a last
    // resort whose stream is checked against the content id.
    let same = |h: &Holder| h.id == Some(t.id);
    let modern: Vec<Holder> = holders.iter().filter(|h| same(h)).cloned().collect();
    let requery_same = || -> Vec<Holder> { (call.requery)().into_iter().filter(same).collect() };
    let part = call.partial_dir.join(format!("{}.part", t.id.hex()));
    let job = SwarmJob {
        req: call.req,
        target: t,
        part: &part,
        requery: &requery_same,
        progress: call.progress,
        cancel: call.cancel,
    };
    call.progress.begin(call.req.name.as_str(), Some(t.size));
    // A partial that stops early stays, with its state file, for a resume.
    let mut check = Check::Sample;
    loop {
        match fetch_pieces(&job, modern.clone(), check, attempts)? {
            Fetched::Done {
                hashes,
                sources,
                resumed,
            } => {
                return Ok(Some(Arrived {
                    part,
                    hashes,
                    verified_in_advance: true,
                    sources,
                    resumed_bytes: resumed,
                }))
            }
            Fetched::RecheckAll if check == Check::Sample => {
                // Restart the bar: the pieces found bad are fetched again.
                call.progress.end();
                call.progress.begin(call.req.name.as_str(), Some(t.size));
                check = Check::All;
            }
            _ => return Ok(None),
        }
    }
}
