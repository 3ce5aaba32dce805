//! Downloads: holders from the index, pieces from the holders, verified, then moved
//! into place.
//!
//! What must never happen: an unverified byte appearing under the file's name, or a
//! file the user already has being replaced. Bytes land in `<state>/partial/<id>.part`;
//! each piece is checked against the piece list (itself checked against the digest
//! the index gave), the whole file against its content id; the partial is fsynced and
//! only then linked into the folder under its name, refusing to replace anything.
//!
//! Pieces come from up to `max_sources` holders at once, each on its own connection
//! and thread, pulling work from one shared plan. A holder that fails, stalls or
//! refuses gives its pieces back to the others; one that sends two bad pieces is
//! banned for the rest of the download. Progress is recorded in a small state file
//! next to the partial, so a download that stops, however it stops, resumes where it
//! was. The scheduling core is [`PiecePlan`]; this module is its runtime.

use super::catalog::{hash_file, hash_reader, ContentHashes, FileStamp};
use super::plan::{PiecePlan, SourceId};
use super::pool::{Holder, IndexPool};
use crate::net::client::{dial, Client};
use crate::net::rate::TokenBucket;
use crate::net::{NetError, Timeouts};
use crate::protocol::codec;
use crate::protocol::hash::{parse_piece_list, piece_list_digest, Sha1Digest};
use crate::protocol::name::FileName;
use crate::protocol::{piece_count, MAX_FILE_SIZE, PIECE_SIZE};
use byteorder::{BigEndian, ReadBytesExt, WriteBytesExt};
use sha1::{Digest, Sha1};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Cursor;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Fetch requests kept in flight on one connection, so the source never idles
/// between pieces.
const PIPELINE_DEPTH: usize = 4;

/// Progress is recorded in the state file every this many bytes, or this often,
/// whichever comes first: a killed download loses at most that much.
const STATE_EVERY: u64 = 32 * 1024 * 1024;
const STATE_INTERVAL: Duration = Duration::from_millis(500);

/// Written data is handed to the disk in windows of this many bytes, so the final
/// fsync has little left to do.
const WRITEBACK_EVERY: u64 = 16 * 1024 * 1024;

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
    /// Only this content; `None` takes the content most holders have.
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
pub enum Outcome {
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
    Io {
        path: PathBuf,
        source: io::Error,
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
            DownloadError::Io { path, source } => write!(f, "{}: {source}", path.display()),
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
            SourceError::Net(e) => write!(f, "{e}"),
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
    id: Sha1Digest,
    digest: Sha1Digest,
    size: u64,
}

/// Picks the content: the requested id, or the one most modern holders have.
fn choose_target(holders: &[Holder], wanted: Option<Sha1Digest>) -> Option<Target> {
    let mut best: Option<(Target, usize)> = None;
    for h in holders.iter().filter(|h| !h.is_classic()) {
        let (Some(id), Some(digest), Some(size)) = (h.id, h.digest, h.size) else {
            continue;
        };
        if wanted.is_some_and(|w| w != id) {
            continue;
        }
        let count = holders
            .iter()
            .filter(|o| o.id == Some(id) && o.digest == Some(digest))
            .count();
        if best.is_none_or(|(_, c)| count > c) {
            best = Some((Target { id, digest, size }, count));
        }
    }
    best.map(|(t, _)| t)
}

/// Downloads one file. See the module documentation for the guarantees.
pub fn download(
    pool: &IndexPool,
    req: &DownloadRequest<'_>,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<Outcome, DownloadError> {
    let started = Instant::now();
    let holders = pool
        .holders(&req.name, req.id)
        .map_err(DownloadError::Index)?;
    let requery = || pool.holders(&req.name, req.id).unwrap_or_default();
    download_from(&holders, req, &requery, progress, cancel, started)
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
) -> Result<Outcome, DownloadError> {
    if holders.is_empty() {
        return Err(DownloadError::NotFound {
            name: req.name.to_string(),
        });
    }
    let target = choose_target(holders, req.id);
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
    if fs::symlink_metadata(&dest).is_ok() {
        let existing = match req.existing {
            Some(id) => id,
            None => hash_file(&dest).map_err(io_at(&dest))?.1.id,
        };
        return if target.is_some_and(|t| t.id == existing) || req.id == Some(existing) {
            // A download killed between linking the file into place and removing its
            // partial leaves the partial behind: it is not needed any more.
            Partial::remove_leftovers(&req.state_dir.join("partial"), existing);
            Ok(Outcome::AlreadyHave {
                path: dest,
                id: existing,
            })
        } else {
            Err(DownloadError::Exists { path: dest })
        };
    }
    let partial_dir = req.state_dir.join("partial");
    fs::create_dir_all(&partial_dir).map_err(io_at(&partial_dir))?;

    let mut tried = 0;
    let mut last = String::from("no holder could be reached");
    let mut result: Option<(PathBuf, ContentHashes, bool, Vec<String>)> = None;
    let mut resumed_bytes = 0;

    if let Some(t) = target {
        // Holders of exactly this content first; classic holders after, as a last
        // resort whose stream is checked against the content id.
        let same = |h: &Holder| h.id == Some(t.id) && h.digest == Some(t.digest);
        let modern: Vec<Holder> = holders.iter().filter(|h| same(h)).cloned().collect();
        let requery_same = || requery().into_iter().filter(|h| same(h)).collect();
        let part = partial_dir.join(format!("{}.part", t.id.hex()));
        progress.begin(req.name.as_str(), Some(t.size));
        // A partial that stops early stays, with its state file, for a resume.
        let mut check = Check::Sample;
        loop {
            match fetch_pieces(
                req,
                t,
                modern.clone(),
                &requery_same,
                &part,
                progress,
                cancel,
                check,
                &mut tried,
                &mut last,
            ) {
                Ok(Fetched::Done {
                    hashes,
                    sources,
                    resumed,
                }) => {
                    resumed_bytes = resumed;
                    result = Some((part.clone(), hashes, true, sources));
                }
                Ok(Fetched::RecheckAll) if check == Check::Sample => {
                    // Restart the bar: the pieces found bad are fetched again.
                    progress.end();
                    progress.begin(req.name.as_str(), Some(t.size));
                    check = Check::All;
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    progress.end();
                    return Err(e);
                }
            }
            break;
        }
    }
    if result.is_none() {
        let classic: Vec<&Holder> = holders.iter().filter(|h| h.is_classic()).collect();
        let expect = target.map(|t| t.id).or(req.id);
        if target.is_none() {
            progress.begin(req.name.as_str(), None);
        }
        for h in classic {
            if cancel.load(Ordering::SeqCst) {
                progress.end();
                return Err(DownloadError::Cancelled);
            }
            tried += 1;
            let part = partial_dir.join(format!("classic-{}.part", std::process::id()));
            progress.source(&format!("{} ({}, classic)", h.peer, h.addr()));
            let limit = target.map(|t| t.size).unwrap_or(MAX_FILE_SIZE);
            match fetch_classic(req, h, &part, progress, limit) {
                Ok(hashes) if expect.is_some_and(|e| e != hashes.id) => {
                    let _ = fs::remove_file(&part);
                    last = format!(
                        "classic holder {} sent content {}, not the expected one",
                        h.peer, hashes.id
                    );
                    progress.note(&last);
                }
                Ok(hashes) => {
                    if expect.is_none() {
                        progress.note(&format!(
                            "'{}' came from classic peer {} without a piece list: it could not be verified in advance (content id {})",
                            req.name, h.peer, hashes.id
                        ));
                    }
                    result = Some((part, hashes, expect.is_some(), vec![h.peer.clone()]));
                    break;
                }
                Err(e) => {
                    let _ = fs::remove_file(&part);
                    last = format!("{} ({}): {e}", h.peer, h.addr());
                    progress.note(&format!("holder {last}; trying the next"));
                }
            }
        }
    }
    progress.end();
    let Some((part, hashes, verified_in_advance, sources)) = result else {
        return Err(DownloadError::AllSourcesFailed {
            name: req.name.to_string(),
            tried,
            last,
        });
    };
    let stamp = place(&part, &dest)?;
    Ok(Outcome::Downloaded(Completed {
        path: dest,
        hashes,
        stamp,
        verified_in_advance,
        sources,
        elapsed: started.elapsed(),
        resumed_bytes,
    }))
}

/// Fetches every piece from up to `max_sources` holders at once. `Ok(None)` when every
/// holder failed and no new one turned up.
///
/// One `download-src-<k>` thread per source pulls pieces from the shared plan with
/// [`PIPELINE_DEPTH`] requests in flight, hashes each piece slice by slice as it
/// arrives and hands it to the `download-disk` thread, which writes pieces in place,
/// feeds the whole-file hash and streams write-back. When nothing is missing any more,
/// idle sources duplicate the pieces in flight longest (endgame); the first copy wins,
/// and once every piece is in, the connections still busy are shut down, so a slow or
/// stalled source never holds the end back. A source that fails gives its pieces back;
/// one that sends two bad pieces is banned for the rest of the download.
///
/// This thread coordinates: it starts sources, collects how they end, and asks the
/// index for holders again, every few seconds while fewer than `max_sources` are in
/// use, and every second once none is left (for up to the I/O timeout, then it gives
/// up with the partial kept for a resume).
#[allow(clippy::too_many_arguments)]
fn fetch_pieces(
    req: &DownloadRequest<'_>,
    t: Target,
    holders: Vec<Holder>,
    requery: &dyn Fn() -> Vec<Holder>,
    part: &Path,
    progress: &dyn Progress,
    cancel: &AtomicBool,
    check: Check,
    tried: &mut usize,
    last: &mut String,
) -> Result<Fetched, DownloadError> {
    let partial = Partial::open(part, t, &req.name)?;
    let count = piece_count(t.size) as usize;
    let mut plan = PiecePlan::new(count);
    let saved_list = partial.load_piece_list();
    let resumed = saved_list
        .as_deref()
        .map(|list| partial.resume(&mut plan, list, check))
        .unwrap_or_default();
    let resumed_bytes = verified_bytes(&plan, t.size);
    if resumed.kept > 0 {
        let checked = if resumed.checked == resumed.kept {
            "every one checked".to_owned()
        } else {
            format!(
                "{} spot-checked, the whole file is checked at the end",
                resumed.checked
            )
        };
        progress.note(&format!(
            "resuming '{}': {} of {} already here ({checked})",
            req.name,
            resumed.kept,
            crate::units::plural(count as u64, "piece")
        ));
        progress.advance(verified_bytes(&plan, t.size));
    }
    let (to_disk, disk_rx) = crossbeam_channel::bounded::<(usize, Vec<u8>)>(DISK_QUEUE);
    let (spare_tx, spare) = crossbeam_channel::bounded::<Vec<u8>>(DISK_QUEUE + 1);
    let resumed_pieces: Vec<bool> = (0..count).map(|i| plan.is_verified(i)).collect();
    let swarm = Swarm {
        name: &req.name,
        target: t,
        state: Mutex::new(SwarmState {
            plan,
            bad: HashMap::new(),
            banned: HashSet::new(),
            delivered: HashMap::new(),
        }),
        conns: Mutex::new(Conns::default()),
        pieces: saved_list.map(OnceLock::from).unwrap_or_default(),
        partial: &partial,
        to_disk,
        spare,
        progress,
        cancel,
        limiter: req.download_limit.as_deref(),
    };
    let (outcome, sources, disk_result) = std::thread::scope(|scope| {
        let disk = std::thread::Builder::new()
            .name("download-disk".into())
            .spawn_scoped(scope, || {
                DiskWriter::new(&partial, t.size, resumed_pieces).run(&disk_rx, &spare_tx)
            });
        let disk = match disk {
            Ok(handle) => handle,
            Err(e) => return (Err(io_at(part)(e)), Vec::new(), None),
        };
        let (outcome, sources) = std::thread::scope(|sources| {
            coordinate(sources, &swarm, req, holders, requery, tried, last, part)
        });
        let finished = swarm.done();
        let pieces = swarm.pieces.get().cloned();
        drop(swarm); // closes the disk queue: the disk thread finishes what it has
        let disk_result = disk
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the disk thread panicked")));
        // When the disk thread stopped on an error, that error is the real cause.
        let outcome = match (outcome, &disk_result) {
            (Err(DownloadError::Io { path, .. }), Err(e)) => Err(DownloadError::Io {
                path,
                source: io::Error::new(e.kind(), e.to_string()),
            }),
            (other, _) => other,
        };
        let outcome = outcome.map(|()| finished.then(|| pieces.unwrap_or_default()));
        (outcome, sources, Some(disk_result))
    });
    let Some(pieces) = outcome? else {
        return Ok(Fetched::Failed);
    };
    log::debug!("all pieces fetched and written");
    let id = match disk_result {
        Some(Ok(id)) => id,
        Some(Err(e)) => return Err(io_at(part)(e)),
        None => return Ok(Fetched::Failed),
    };
    if id != t.id && resumed.checked < resumed.kept {
        // A resumed piece that was not spot-checked may be damaged: record every
        // piece as here, and start again checking each one.
        progress.note(&format!(
            "'{}' does not match its content id after a resume; checking every piece",
            req.name
        ));
        partial
            .save_state(&vec![0xff; count.div_ceil(8)], true)
            .map_err(io_at(part))?;
        return Ok(Fetched::RecheckAll);
    }
    if id != t.id {
        // Every piece matched a piece list whose digest the index gave, but the whole
        // does not match the content id published beside it: the publisher lied.
        *last = format!("pieces verified but the file hashes to {id}, not {}", t.id);
        progress.note(last);
        partial.discard();
        return Ok(Fetched::Failed);
    }
    partial.file.sync_all().map_err(io_at(part))?;
    partial.forget();
    log::debug!("partial file fsynced");
    Ok(Fetched::Done {
        hashes: ContentHashes::from_parts(t.size, id, pieces),
        sources,
        resumed: resumed_bytes,
    })
}

/// How [`fetch_pieces`] ended, when nothing failed locally.
enum Fetched {
    /// The file is complete, verified and fsynced: its hashes, the holders it came
    /// from, and the bytes an earlier run had already fetched.
    Done {
        hashes: ContentHashes,
        sources: Vec<String>,
        resumed: u64,
    },
    /// Every holder failed (the partial stays, for a resume).
    Failed,
    /// The whole file did not match after pieces were resumed without a check: try
    /// again, checking every resumed piece.
    RecheckAll,
}

/// Which resumed pieces are hashed before they are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    /// A sample: every [`SPOT_STRIDE`]th piece and the last [`SPOT_TAIL`] recorded.
    Sample,
    All,
}

/// A resume hashes every this-many-th recorded piece...
const SPOT_STRIDE: usize = 16;
/// ...and the last this-many recorded pieces (the ones written last before the stop).
const SPOT_TAIL: usize = 4;

/// Bytes of the verified pieces.
fn verified_bytes(plan: &PiecePlan, size: u64) -> u64 {
    (0..plan.len())
        .filter(|&i| plan.is_verified(i))
        .map(|i| PIECE_SIZE.min(size - i as u64 * PIECE_SIZE))
        .sum()
}

/// How one source thread ended.
struct SourceEnd {
    id: SourceId,
    holder: Holder,
    result: Result<(), SourceError>,
}

/// The coordinator of [`fetch_pieces`]: starts sources, collects how they end, asks
/// the index again. Returns the outcome and the holders that delivered pieces and did
/// not fail. Every source thread it started has ended when it returns.
#[allow(clippy::too_many_arguments)]
fn coordinate<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    swarm: &'env Swarm<'env>,
    req: &'env DownloadRequest<'env>,
    holders: Vec<Holder>,
    requery: &dyn Fn() -> Vec<Holder>,
    tried: &mut usize,
    last: &mut String,
    part: &Path,
) -> (Result<(), DownloadError>, Vec<String>) {
    let cap = req.max_sources.max(1);
    let patience = req.timeouts.io;
    let (ends_tx, ends) = crossbeam_channel::unbounded::<SourceEnd>();
    // Address -> source id, for the sources running now.
    let mut running: HashMap<String, SourceId> = HashMap::new();
    let mut failed_at: HashMap<String, Instant> = HashMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut sources = Vec::new();
    let mut outcome = Ok(());
    let mut candidates = holders;
    let mut next_id: SourceId = 0;
    let mut requery_every = REQUERY_FIRST;
    let mut next_requery = Instant::now() + requery_every;
    // Since when no source has been running, and how many pieces were verified then.
    let mut starved: Option<(Instant, usize)> = None;
    loop {
        if outcome.is_err() || swarm.done() {
            break;
        }
        if swarm.cancel.load(Ordering::SeqCst) {
            outcome = Err(DownloadError::Cancelled);
            break;
        }
        // Start a source for every usable candidate, up to the cap.
        let banned = swarm.lock().banned.clone();
        let mut started = 0;
        for h in candidates.drain(..) {
            if running.len() >= cap {
                break;
            }
            let addr = h.addr();
            if banned.contains(&addr)
                || running.contains_key(&addr)
                || failed_at
                    .get(&addr)
                    .is_some_and(|at| at.elapsed() < RETRY_FAILED_AFTER)
            {
                continue;
            }
            let id = next_id;
            next_id += 1;
            let tx = ends_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("download-src-{id}"))
                .spawn_scoped(scope, move || {
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        swarm.run_source(id, &h, req.self_id, &req.timeouts)
                    }))
                    .unwrap_or_else(|_| {
                        Err(SourceError::Disk(io::Error::other(
                            "a source thread panicked",
                        )))
                    });
                    let _ = tx.send(SourceEnd {
                        id,
                        holder: h,
                        result,
                    });
                });
            match spawned {
                Ok(_) => {
                    running.insert(addr.clone(), id);
                    seen.insert(addr);
                    *tried = seen.len();
                    started += 1;
                }
                Err(e) => {
                    outcome = Err(io_at(part)(e));
                    break;
                }
            }
        }
        if outcome.is_err() {
            break;
        }
        if started > 0 && !running.is_empty() {
            requery_every = REQUERY_FIRST;
            next_requery = Instant::now() + requery_every;
        }
        let now = Instant::now();
        if running.is_empty() {
            let verified = swarm.lock().plan.done();
            match starved {
                // No source, and no progress since the last one stopped: give up
                // after `patience` (the partial stays, for a resume).
                Some((since, at)) if at == verified => {
                    if now.duration_since(since) >= patience {
                        break;
                    }
                }
                _ => {
                    // Out of holders: ask the index again at once, then every second.
                    starved = Some((now, verified));
                    next_requery = now;
                    swarm.progress.note(&format!(
                        "no holder of '{}' is left; asking the index again for up to {}s",
                        req.name,
                        patience.as_secs()
                    ));
                }
            }
        }
        if running.len() < cap && now >= next_requery {
            candidates = requery();
            let interval = if running.is_empty() {
                STARVED_REQUERY
            } else {
                requery_every = (requery_every * 2).min(REQUERY_MAX);
                requery_every
            };
            next_requery = now + interval;
            continue;
        }
        let wait = next_requery
            .saturating_duration_since(now)
            .min(COORDINATOR_TICK);
        let Ok(end) = ends.recv_timeout(wait) else {
            continue;
        };
        let addr = end.holder.addr();
        running.remove(&addr);
        match end.result {
            Ok(()) => {
                if swarm.contributed(end.id) && !sources.contains(&end.holder.peer) {
                    sources.push(end.holder.peer.clone());
                }
            }
            Err(SourceError::Cancelled) => outcome = Err(DownloadError::Cancelled),
            Err(SourceError::Disk(e)) => outcome = Err(io_at(part)(e)),
            Err(e) => {
                failed_at.insert(addr.clone(), Instant::now());
                *last = format!("{} ({addr}): {e}", end.holder.peer);
                let next = if swarm.lock().banned.contains(&addr) {
                    ""
                } else {
                    "; its pieces go back to the queue"
                };
                swarm.progress.note(&format!("holder {last}{next}"));
            }
        }
    }
    // Every piece is in, or the download stops: shut the connections still open, so
    // no source finishes a piece nobody needs or waits out a stalled holder.
    swarm.stop();
    for end in ends.iter().take(running.len()) {
        match end.result {
            Err(SourceError::Disk(e)) if outcome.is_ok() && !swarm.done() => {
                outcome = Err(io_at(part)(e))
            }
            _ if swarm.contributed(end.id) && !sources.contains(&end.holder.peer) => {
                sources.push(end.holder.peer.clone())
            }
            _ => {}
        }
    }
    (outcome, sources)
}

/// The first time the index is asked again for more holders while fewer than
/// `max_sources` are in use; the interval doubles up to [`REQUERY_MAX`] while no new
/// holder turns up.
const REQUERY_FIRST: Duration = Duration::from_secs(2);
const REQUERY_MAX: Duration = Duration::from_secs(30);

/// How often the index is asked again once no source is left.
const STARVED_REQUERY: Duration = Duration::from_secs(1);

/// A holder that failed (and was not banned) may be tried again after this long: it
/// may have restarted.
const RETRY_FAILED_AFTER: Duration = Duration::from_secs(2);

/// The coordinator looks at the cancel flag at least this often.
const COORDINATOR_TICK: Duration = Duration::from_millis(100);

/// Bad pieces after which a source is banned for the rest of the download.
const BAD_PIECES_BAN: u32 = 2;

/// Verified pieces waiting for the disk thread.
const DISK_QUEUE: usize = 16;

/// Bytes hashed and written at a time: small enough to stay in the CPU cache
/// between the copy that brings them and the hash that reads them.
const CACHE_SLICE: usize = 128 * 1024;

/// What the sources of one download share.
struct SwarmState {
    plan: PiecePlan,
    /// Bad pieces per source address.
    bad: HashMap<String, u32>,
    banned: HashSet<String>,
    /// Pieces each source delivered first.
    delivered: HashMap<SourceId, usize>,
}

/// The open source connections, so the coordinator can shut them when it stops.
#[derive(Default)]
struct Conns {
    stopped: bool,
    streams: HashMap<SourceId, TcpStream>,
}

/// The network side of a download: the sources and what they share.
///
/// Lock order: `state` and `conns` are leaves, never held together nor across I/O.
struct Swarm<'a> {
    name: &'a FileName,
    target: Target,
    state: Mutex<SwarmState>,
    conns: Mutex<Conns>,
    /// The piece list, checked against the digest from the index, once a source gave it.
    pieces: OnceLock<Vec<Sha1Digest>>,
    partial: &'a Partial,
    to_disk: crossbeam_channel::Sender<(usize, Vec<u8>)>,
    /// Buffers the disk thread is done with.
    spare: crossbeam_channel::Receiver<Vec<u8>>,
    progress: &'a dyn Progress,
    cancel: &'a AtomicBool,
    limiter: Option<&'a TokenBucket>,
}

impl Swarm<'_> {
    fn lock(&self) -> std::sync::MutexGuard<'_, SwarmState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, Conns> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn done(&self) -> bool {
        self.pieces.get().is_some() && self.lock().plan.finished()
    }

    /// Did this source deliver a piece (or was there nothing to deliver)?
    fn contributed(&self, id: SourceId) -> bool {
        self.target.size == 0 || self.lock().delivered.get(&id).is_some_and(|n| *n > 0)
    }

    /// Shuts every source connection and keeps new ones from starting: a source
    /// blocked on a read returns at once.
    fn stop(&self) {
        let mut conns = self.conns();
        conns.stopped = true;
        for stream in conns.streams.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn stopped(&self) -> bool {
        self.conns().stopped
    }

    fn piece_len(&self, i: usize) -> u64 {
        let start = i as u64 * PIECE_SIZE;
        PIECE_SIZE.min(self.target.size - start)
    }

    fn run_source(
        &self,
        id: SourceId,
        h: &Holder,
        self_id: &str,
        timeouts: &Timeouts,
    ) -> Result<(), SourceError> {
        let mut client = Client::connect(&h.addr(), timeouts)?;
        {
            let mut conns = self.conns();
            if conns.stopped {
                return Ok(());
            }
            if let Ok(stream) = client.stream().try_clone() {
                conns.streams.insert(id, stream);
            }
        }
        let result = self.serve_from(id, &mut client, h, self_id);
        self.conns().streams.remove(&id);
        // Once the coordinator stopped the download, how the connection ended does
        // not matter.
        if self.stopped() && !matches!(result, Err(SourceError::Disk(_))) {
            return Ok(());
        }
        result
    }

    fn serve_from(
        &self,
        id: SourceId,
        client: &mut Client,
        h: &Holder,
        self_id: &str,
    ) -> Result<(), SourceError> {
        client.hello("client", self_id, 0)?;
        if self.pieces.get().is_none() {
            let list = match self.fetch_piece_list(client) {
                Ok(list) => list,
                Err(e) => {
                    if matches!(e, SourceError::Lied(_)) {
                        // A holder that lies about the piece list is not asked again.
                        self.lock().banned.insert(h.addr());
                    }
                    return Err(e);
                }
            };
            // Several sources may fetch the list at once: the first one kept saves it.
            if self.pieces.set(list).is_ok() {
                if let Some(list) = self.pieces.get() {
                    self.partial.save_piece_list(list);
                }
            }
        }
        let active = {
            let mut st = self.lock();
            st.plan.join(id);
            st.plan.active()
        };
        self.progress.sources(active);
        log::info!("downloading from {} ({})", h.peer, h.addr());
        let mut in_flight: VecDeque<usize> = VecDeque::new();
        let result = self.pump(id, client, h, &mut in_flight);
        let active = {
            let mut st = self.lock();
            for &i in &in_flight {
                st.plan.release(i);
            }
            st.plan.leave(id);
            st.plan.active()
        };
        self.progress.sources(active);
        result
    }

    fn fetch_piece_list(&self, client: &mut Client) -> Result<Vec<Sha1Digest>, SourceError> {
        let id = self.target.id.to_string();
        client.send(
            codec::line(&["pieces", self.name.as_str(), &id]).as_bytes(),
            "pieces",
        )?;
        let expected = piece_count(self.target.size) * 20;
        let len = client.read_data_header("pieces", expected)?;
        if len != expected {
            return Err(SourceError::Lied(format!(
                "piece list of {len} bytes, expected {expected}; not used"
            )));
        }
        let mut raw = vec![0u8; len as usize];
        client.read_exact(&mut raw, "pieces")?;
        let pieces = parse_piece_list(&raw).unwrap_or_default();
        if piece_list_digest(&pieces) != self.target.digest {
            return Err(SourceError::Lied(
                "piece list does not match the digest from the index; not used, holder banned for this download".into(),
            ));
        }
        Ok(pieces)
    }

    /// Takes the next piece for a source: a missing one, or in the endgame one that
    /// another source has in flight.
    fn next_piece(&self, id: SourceId, mine: &VecDeque<usize>) -> Option<usize> {
        let mut st = self.lock();
        st.plan.take_next(id).or_else(|| {
            let mine: Vec<usize> = mine.iter().copied().collect();
            (!st.plan.finished())
                .then(|| st.plan.take_endgame(id, &mine))
                .flatten()
        })
    }

    fn pump(
        &self,
        id: SourceId,
        client: &mut Client,
        h: &Holder,
        in_flight: &mut VecDeque<usize>,
    ) -> Result<(), SourceError> {
        let content = self.target.id.to_string();
        let Some(want) = self.pieces.get() else {
            return Ok(());
        };
        loop {
            if self.cancel.load(Ordering::SeqCst) {
                return Err(SourceError::Cancelled);
            }
            let mut batch = String::new();
            while in_flight.len() < PIPELINE_DEPTH {
                let Some(i) = self.next_piece(id, in_flight) else {
                    break;
                };
                let offset = (i as u64 * PIECE_SIZE).to_string();
                let len = self.piece_len(i).to_string();
                batch.push_str(&codec::line(&[
                    "fetch",
                    self.name.as_str(),
                    &content,
                    &offset,
                    &len,
                ]));
                in_flight.push_back(i);
            }
            if !batch.is_empty() {
                client.send(batch.as_bytes(), "fetch")?;
            }
            let Some(&i) = in_flight.front() else {
                return Ok(());
            };
            let expected = self.piece_len(i);
            let len = client.read_data_header("fetch", expected)?;
            if len != expected {
                return Err(SourceError::Lied(format!(
                    "piece {i}: {len} bytes, expected {expected}"
                )));
            }
            let mut buf = self.spare.try_recv().unwrap_or_default();
            buf.resize(len as usize, 0);
            // Hash each slice right after it is received, while it is still in the
            // CPU cache: a whole piece is larger than the cache.
            let mut sha = Sha1::new();
            for slice in buf.chunks_mut(CACHE_SLICE) {
                if let Some(limit) = self.limiter {
                    limit.take(slice.len() as u64);
                }
                client.read_exact(slice, "fetch")?;
                sha.update(&*slice);
            }
            in_flight.pop_front();
            if Some(&Sha1Digest(sha.finalize().into())) != want.get(i) {
                let mut st = self.lock();
                st.plan.bad_copy(i, id);
                let bad = st.bad.entry(h.addr()).or_insert(0);
                *bad += 1;
                if *bad >= BAD_PIECES_BAN {
                    st.banned.insert(h.addr());
                    return Err(SourceError::Lied(format!(
                        "piece {i} does not match its hash, the second bad piece from {}: banned for the rest of this download",
                        h.peer
                    )));
                }
                drop(st);
                self.progress.note(&format!(
                    "holder {} ({}): piece {i} does not match its hash; discarded, fetched again from another holder if there is one",
                    h.peer,
                    h.addr()
                ));
                continue;
            }
            let first = {
                let mut st = self.lock();
                let first = st.plan.verified(i);
                if first {
                    *st.delivered.entry(id).or_insert(0) += 1;
                }
                first
            };
            if first {
                self.to_disk
                    .send((i, buf))
                    .map_err(|_| SourceError::Disk(io::Error::other("the disk thread stopped")))?;
                self.progress.advance(len);
            }
            if self.done() {
                return Ok(());
            }
        }
    }
}

/// The partial download on disk: `<id>.part` (the bytes, in place) and `<id>.state`
/// (which pieces are verified and durable), both in the state dir.
struct Partial {
    path: PathBuf,
    state_path: PathBuf,
    file: File,
    target: Target,
    name: FileName,
}

/// `<id>.state` format, big-endian: "P2PPART1", 20-byte content id, u64 size, u32 piece
/// size, u32 piece count, u16 name length, the name, the bitmap of verified pieces,
/// then the SHA-1 of all that.
const STATE_MAGIC: &[u8; 8] = b"P2PPART1";

/// What a resume found: how many pieces were kept, and how many of those were hashed
/// before they were kept.
#[derive(Default)]
struct Resumed {
    kept: usize,
    checked: usize,
}

/// What a state file records.
struct StateRecord {
    id: Sha1Digest,
    size: u64,
    name: String,
    verified: Vec<bool>,
}

fn decode_state(bytes: &[u8]) -> Option<StateRecord> {
    if bytes.len() < 8 + 20 + 8 + 4 + 4 + 2 + 20 || &bytes[..8] != STATE_MAGIC {
        return None;
    }
    let (body, check) = bytes.split_at(bytes.len() - 20);
    if Sha1Digest::of(body).0 != check {
        return None;
    }
    let mut r = Cursor::new(&body[8..]);
    let mut id = [0u8; 20];
    r.read_exact(&mut id).ok()?;
    let size = r.read_u64::<BigEndian>().ok()?;
    let piece = r.read_u32::<BigEndian>().ok()?;
    let count = r.read_u32::<BigEndian>().ok()? as usize;
    let name_len = r.read_u16::<BigEndian>().ok()? as usize;
    let mut name = vec![0u8; name_len];
    r.read_exact(&mut name).ok()?;
    let name = String::from_utf8(name).ok()?;
    let map_len = count.div_ceil(8);
    let rest = &body[8 + r.position() as usize..];
    if u64::from(piece) != PIECE_SIZE || count as u64 != piece_count(size) || rest.len() != map_len
    {
        return None;
    }
    Some(StateRecord {
        id: Sha1Digest(id),
        size,
        name,
        verified: (0..count)
            .map(|i| rest[i / 8] & (1 << (i % 8)) != 0)
            .collect(),
    })
}

/// A download that stopped before the end and can be resumed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialInfo {
    pub name: String,
    pub id: Sha1Digest,
    pub size: u64,
    pub pieces_done: usize,
    pub pieces: usize,
}

/// The resumable downloads in a state dir.
pub fn partials(state_dir: &Path) -> Vec<PartialInfo> {
    let Ok(entries) = fs::read_dir(state_dir.join("partial")) else {
        return Vec::new();
    };
    let mut out: Vec<PartialInfo> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "state"))
        .filter_map(|e| fs::read(e.path()).ok())
        .filter_map(|bytes| decode_state(&bytes))
        .map(|r| PartialInfo {
            pieces_done: r.verified.iter().filter(|v| **v).count(),
            pieces: r.verified.len(),
            name: r.name,
            id: r.id,
            size: r.size,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

impl Partial {
    fn open(part: &Path, t: Target, name: &FileName) -> Result<Partial, DownloadError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(part)
            .map_err(io_at(part))?;
        file.set_len(t.size).map_err(io_at(part))?;
        Ok(Partial {
            path: part.to_owned(),
            state_path: part.with_extension("state"),
            file,
            target: t,
            name: name.clone(),
        })
    }

    /// Marks the pieces the state file records as done. A recorded piece is never
    /// trusted blindly: `Check::All` hashes each against the piece list; `Check::Sample`
    /// hashes a spot check (every [`SPOT_STRIDE`]th recorded piece and the last
    /// [`SPOT_TAIL`]) and relies on the whole-file hash at the end for the rest, which
    /// sends the download back here with `Check::All` when it does not match. A piece
    /// that fails its check is fetched again.
    fn resume(&self, plan: &mut PiecePlan, pieces: &[Sha1Digest], check: Check) -> Resumed {
        let mut out = Resumed::default();
        let Some(marked) = self.read_state() else {
            return out;
        };
        let marked: Vec<usize> = marked
            .iter()
            .enumerate()
            .filter(|&(i, done)| *done && i < plan.len() && i < pieces.len())
            .map(|(i, _)| i)
            .collect();
        let tail = marked.len().saturating_sub(SPOT_TAIL);
        let mut buf = vec![0u8; PIECE_SIZE as usize];
        for (k, &i) in marked.iter().enumerate() {
            let checked = check == Check::All || k % SPOT_STRIDE == 0 || k >= tail;
            if checked {
                let offset = i as u64 * PIECE_SIZE;
                let len = PIECE_SIZE.min(self.target.size - offset) as usize;
                let good = self.file.read_exact_at(&mut buf[..len], offset).is_ok()
                    && Sha1Digest::of(&buf[..len]) == pieces[i];
                if !good {
                    log::warn!(
                        "resume: piece {i} on disk does not match its hash; fetching it again"
                    );
                    continue;
                }
                out.checked += 1;
            }
            plan.already_have(i);
            out.kept += 1;
        }
        out
    }

    /// Removes what a download of `id` left in `dir` (its partial, state and piece
    /// list).
    fn remove_leftovers(dir: &Path, id: Sha1Digest) {
        let part = dir.join(format!("{}.part", id.hex()));
        for ext in ["part", "state", "pieces"] {
            let _ = fs::remove_file(part.with_extension(ext));
        }
    }

    fn list_path(&self) -> PathBuf {
        self.path.with_extension("pieces")
    }

    /// The piece list saved by an earlier attempt, if it still matches the digest.
    fn load_piece_list(&self) -> Option<Vec<Sha1Digest>> {
        let raw = fs::read(self.list_path()).ok()?;
        let list = parse_piece_list(&raw)?;
        (list.len() as u64 == piece_count(self.target.size)
            && piece_list_digest(&list) == self.target.digest)
            .then_some(list)
    }

    /// Keeps the (verified) piece list next to the partial, for a resume.
    fn save_piece_list(&self, list: &[Sha1Digest]) {
        let raw: Vec<u8> = list.iter().flat_map(|d| d.0).collect();
        let tmp = self.list_path().with_extension("pieces.tmp");
        let saved = File::create(&tmp)
            .and_then(|mut f| f.write_all(&raw).and_then(|()| f.sync_all()))
            .and_then(|()| fs::rename(&tmp, self.list_path()));
        if let Err(e) = saved {
            log::warn!("cannot save the piece list for a resume: {e}");
        }
    }

    fn read_state(&self) -> Option<Vec<bool>> {
        let bytes = fs::read(&self.state_path).ok()?;
        let Some(record) = decode_state(&bytes) else {
            log::warn!("{}: corrupt; starting over", self.state_path.display());
            return None;
        };
        (record.id == self.target.id && record.size == self.target.size).then_some(record.verified)
    }

    /// Records which pieces are written, replacing the state file atomically (a
    /// temporary file renamed over it), so a reader sees the old record or the new one,
    /// never a mix.
    ///
    /// `durable` also fdatasyncs the partial first and fsyncs the record and the
    /// folder: done once when a download stops early. The records taken while a
    /// download runs skip that: they survive the process being killed (the page cache
    /// keeps both files), and a resume hashes every piece a record marks, so a record
    /// that an OS crash left ahead of the data costs a re-fetch, never a wrong byte.
    /// Syncing every 32 MiB blocked the disk thread, which is on the critical path,
    /// for 0.4 to 1.4 s per GiB (measured with strace -T on this machine).
    fn save_state(&self, bitmap: &[u8], durable: bool) -> io::Result<()> {
        if durable {
            self.file.sync_data()?;
        }
        let mut out = Vec::with_capacity(64 + bitmap.len());
        out.extend_from_slice(STATE_MAGIC);
        out.extend_from_slice(&self.target.id.0);
        out.write_u64::<BigEndian>(self.target.size)?;
        out.write_u32::<BigEndian>(PIECE_SIZE as u32)?;
        out.write_u32::<BigEndian>(piece_count(self.target.size) as u32)?;
        out.write_u16::<BigEndian>(self.name.as_str().len() as u16)?;
        out.extend_from_slice(self.name.as_str().as_bytes());
        out.extend_from_slice(bitmap);
        let check = Sha1Digest::of(&out);
        out.extend_from_slice(&check.0);
        let tmp = self.state_path.with_extension("state.tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&out)?;
            if durable {
                f.sync_all()?;
            }
        }
        fs::rename(&tmp, &self.state_path)?;
        if durable {
            if let Some(dir) = self.state_path.parent() {
                File::open(dir)?.sync_all()?;
            }
        }
        Ok(())
    }

    /// Removes the partial and its state (the content is bad or the file is done).
    fn discard(&self) {
        let _ = fs::remove_file(&self.path);
        self.forget();
    }

    /// Removes the state and piece list (the partial itself was moved into place).
    fn forget(&self) {
        let _ = fs::remove_file(&self.state_path);
        let _ = fs::remove_file(self.list_path());
    }
}

/// The disk side of a download: writes verified pieces in place, hands dirty pages to
/// the disk early, and computes the whole-file SHA-1 in piece order (reading back
/// pieces that were written before their turn came).
struct DiskWriter<'a> {
    partial: &'a Partial,
    file: &'a File,
    size: u64,
    written: Vec<bool>,
    next: usize,
    sha: Sha1,
    /// Write-back has been started up to here...
    started: u64,
    /// ...and waited for up to here.
    waited: u64,
    /// Bytes written since the state file last recorded progress, and when it did.
    since_state: u64,
    last_state: Instant,
}

impl<'a> DiskWriter<'a> {
    /// `written`: the pieces already on disk (resumed).
    fn new(partial: &'a Partial, size: u64, written: Vec<bool>) -> DiskWriter<'a> {
        DiskWriter {
            partial,
            file: &partial.file,
            size,
            written,
            next: 0,
            sha: Sha1::new(),
            started: 0,
            waited: 0,
            since_state: 0,
            last_state: Instant::now(),
        }
    }

    fn run(
        mut self,
        queue: &crossbeam_channel::Receiver<(usize, Vec<u8>)>,
        spare: &crossbeam_channel::Sender<Vec<u8>>,
    ) -> io::Result<Sha1Digest> {
        let mut scratch = Vec::new();
        loop {
            // Pieces already on disk (resumed, or written before their turn) are read
            // back and hashed one at a time, between new pieces and while none waits,
            // so a resume hashes what it kept while the rest is being fetched.
            let item = match queue.try_recv() {
                Ok(item) => item,
                Err(crossbeam_channel::TryRecvError::Empty) if self.can_catch_up() => {
                    self.catch_up_one(&mut scratch)?;
                    continue;
                }
                Err(crossbeam_channel::TryRecvError::Empty) => match queue.recv() {
                    Ok(item) => item,
                    Err(_) => break,
                },
                Err(crossbeam_channel::TryRecvError::Disconnected) => break,
            };
            let (i, data) = item;
            let offset = i as u64 * PIECE_SIZE;
            if i == self.next {
                // Hash and write slice by slice, each while it is in the CPU cache.
                for (k, slice) in data.chunks(CACHE_SLICE).enumerate() {
                    self.sha.update(slice);
                    self.file
                        .write_all_at(slice, offset + (k * CACHE_SLICE) as u64)?;
                }
                self.written[i] = true;
                self.next += 1;
            } else {
                self.file.write_all_at(&data, offset)?;
                self.written[i] = true;
            }
            self.write_back();
            self.since_state += data.len() as u64;
            if self.since_state >= STATE_EVERY || self.last_state.elapsed() >= STATE_INTERVAL {
                self.save_state(false)?;
            }
            let _ = spare.try_send(data);
            if self.can_catch_up() {
                self.catch_up_one(&mut scratch)?;
            }
        }
        while self.can_catch_up() {
            self.catch_up_one(&mut scratch)?;
        }
        if self.next < self.written.len() {
            // Stopped early (every source failed, or cancelled): record what is here,
            // durably, so the download can resume.
            self.save_state(true)?;
            return Err(io::Error::other("download ended with pieces missing"));
        }
        Ok(Sha1Digest(self.sha.finalize().into()))
    }

    /// Records the written pieces in the state file (`durable`: see
    /// [`Partial::save_state`]).
    fn save_state(&mut self, durable: bool) -> io::Result<()> {
        let mut bitmap = vec![0u8; self.written.len().div_ceil(8)];
        for (i, w) in self.written.iter().enumerate() {
            if *w {
                bitmap[i / 8] |= 1 << (i % 8);
            }
        }
        self.since_state = 0;
        self.last_state = Instant::now();
        self.partial.save_state(&bitmap, durable)
    }

    /// Streams the in-order prefix of the file to the disk as it grows: starts
    /// writing each new window, and waits for the window before it, so dirty pages
    /// never pile up and the final fsync has only the last window left to do.
    fn write_back(&mut self) {
        let done = (self.next as u64 * PIECE_SIZE).min(self.size);
        if done - self.started < WRITEBACK_EVERY {
            return;
        }
        sync_range(
            self.file,
            self.started,
            done - self.started,
            libc::SYNC_FILE_RANGE_WRITE,
        );
        sync_range(
            self.file,
            self.waited,
            self.started - self.waited,
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER,
        );
        self.waited = self.started;
        self.started = done;
    }

    /// Is the next piece of the whole-file hash already on disk?
    fn can_catch_up(&self) -> bool {
        self.written.get(self.next).copied().unwrap_or(false)
    }

    /// Reads back the next piece of the whole-file hash and hashes it.
    fn catch_up_one(&mut self, scratch: &mut Vec<u8>) -> io::Result<()> {
        let offset = self.next as u64 * PIECE_SIZE;
        scratch.resize(PIECE_SIZE.min(self.size - offset) as usize, 0);
        for (k, slice) in scratch.chunks_mut(CACHE_SLICE).enumerate() {
            self.file
                .read_exact_at(slice, offset + (k * CACHE_SLICE) as u64)?;
            self.sha.update(&*slice);
        }
        self.next += 1;
        self.write_back();
        Ok(())
    }
}

/// sync_file_range(2) on a byte range. Write-back hints only: durability still comes
/// from the fsync before the file is linked into place, so a failure here is ignored.
fn sync_range(file: &File, offset: u64, len: u64, flags: libc::c_uint) {
    if len == 0 {
        return;
    }
    // SAFETY: sync_file_range only reads its integer arguments; the fd is valid for
    // the lifetime of `file`.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            flags,
        );
    }
}

/// Copies what it reads into a file, for hashing a classic stream while saving it.
struct Tee<'a, R> {
    inner: R,
    file: &'a mut File,
    progress: &'a dyn Progress,
    total: u64,
    /// More than this is an error: the expected size when known, else the limit.
    limit: u64,
    /// The download rate limit, if any.
    rate: Option<&'a TokenBucket>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Paced like a modern download: tokens for at most one slice, before reading.
        let want = buf.len().min(CACHE_SLICE);
        if let Some(rate) = self.rate {
            rate.take(want as u64);
        }
        let n = self.inner.read(&mut buf[..want])?;
        self.total += n as u64;
        if self.total > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the holder sent more than {} bytes", self.limit),
            ));
        }
        self.file.write_all(&buf[..n])?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// Downloads a whole file from a classic holder: `./<peer>/<name>`, then the bytes
/// until the holder closes.
fn fetch_classic(
    req: &DownloadRequest<'_>,
    h: &Holder,
    part: &Path,
    progress: &dyn Progress,
    limit: u64,
) -> Result<ContentHashes, SourceError> {
    let addr = h.addr();
    let mut stream = dial(&addr, &req.timeouts)?;
    let request = format!("./{}/{}", h.peer, req.name);
    stream
        .write_all(request.as_bytes())
        .map_err(|e| NetError::from_io(&addr, "classic download", e))?;
    let mut file = File::create(part).map_err(SourceError::Disk)?;
    let hashes = hash_reader(Tee {
        inner: &stream,
        file: &mut file,
        progress,
        total: 0,
        limit,
        rate: req.download_limit.as_deref(),
    })
    .map_err(|e| NetError::from_io(&addr, "classic download", e))?;
    if hashes.size == 0 {
        return Err(SourceError::Lied(
            "classic holder sent nothing (it may not have the file)".into(),
        ));
    }
    file.sync_all().map_err(SourceError::Disk)?;
    Ok(hashes)
}

/// Moves a finished, fsynced partial into place under `dest`, never replacing an
/// existing file, and makes the new directory entry durable.
fn place(part: &Path, dest: &Path) -> Result<FileStamp, DownloadError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    match fs::hard_link(part, dest) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let _ = fs::remove_file(part);
            return Err(DownloadError::Exists {
                path: dest.to_owned(),
            });
        }
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            // The state dir is on another file system: copy next to the destination
            // first, then link that copy into place.
            let tmp = dir.join(format!(".{}.p2pshare-tmp", std::process::id()));
            fs::copy(part, &tmp).map_err(io_at(&tmp))?;
            File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(io_at(&tmp))?;
            let linked = fs::hard_link(&tmp, dest);
            let _ = fs::remove_file(&tmp);
            match linked {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(DownloadError::Exists {
                        path: dest.to_owned(),
                    })
                }
                Err(e) => return Err(io_at(dest)(e)),
            }
        }
        Err(e) => return Err(io_at(dest)(e)),
    }
    let _ = fs::remove_file(part);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))?;
    let meta = fs::metadata(dest).map_err(io_at(dest))?;
    Ok(FileStamp::of(&meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(id: &str, digest: &str, peer: &str) -> Holder {
        Holder {
            host: "127.0.0.1".parse().unwrap(),
            port: 1,
            peer: peer.into(),
            size: Some(1),
            id: Some(Sha1Digest::of(id.as_bytes())),
            digest: Some(Sha1Digest::of(digest.as_bytes())),
        }
    }

    #[test]
    fn the_content_most_holders_have_wins() {
        let hs = vec![
            holder("a", "da", "p1"),
            holder("b", "db", "p2"),
            holder("b", "db", "p3"),
        ];
        let t = choose_target(&hs, None).unwrap();
        assert_eq!(t.id, Sha1Digest::of(b"b"));
        let t = choose_target(&hs, Some(Sha1Digest::of(b"a"))).unwrap();
        assert_eq!(t.id, Sha1Digest::of(b"a"));
        assert!(choose_target(&hs, Some(Sha1Digest::of(b"zz"))).is_none());
    }

    #[test]
    fn classic_holders_have_no_target() {
        let mut h = holder("a", "da", "p1");
        h.id = None;
        h.digest = None;
        h.size = None;
        assert!(choose_target(&[h], None).is_none());
    }

    #[test]
    fn place_never_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("x.part");
        let dest = dir.path().join("x");
        fs::write(&part, b"new").unwrap();
        fs::write(&dest, b"mine").unwrap();
        assert!(matches!(
            place(&part, &dest),
            Err(DownloadError::Exists { .. })
        ));
        assert_eq!(fs::read(&dest).unwrap(), b"mine");
    }
}
