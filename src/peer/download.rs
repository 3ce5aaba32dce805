//! Downloads: holders from the index, pieces from the holders, verified, then moved
//! into place.
//!
//! What must never happen: an unverified byte appearing under the file's name, or a
//! file the user already has being replaced. Bytes land in `<state>/partial/<id>.part`;
//! each piece is checked against the piece list (itself checked against the digest
//! the index gave), the whole file against its content id; the partial is fsynced and
//! only then linked into the folder under its name, refusing to replace anything.
//!
//! If a holder fails, stalls or sends a bad piece, the next holder carries on from
//! the pieces still missing. The scheduling core is [`PiecePlan`]; this module is
//! its runtime.

use super::catalog::{hash_file, hash_reader, ContentHashes, FileStamp};
use super::plan::PiecePlan;
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
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Fetch requests kept in flight on one connection, so the source never idles
/// between pieces.
const PIPELINE_DEPTH: usize = 4;

/// Progress is recorded in the state file (after an fdatasync) every this many bytes,
/// or this often, whichever comes first: a killed download loses at most that much.
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
        return match target {
            Some(t) if t.id == existing => Ok(Outcome::AlreadyHave {
                path: dest,
                id: existing,
            }),
            _ if req.id == Some(existing) => Ok(Outcome::AlreadyHave {
                path: dest,
                id: existing,
            }),
            _ => Err(DownloadError::Exists { path: dest }),
        };
    }
    let partial_dir = req.state_dir.join("partial");
    fs::create_dir_all(&partial_dir).map_err(io_at(&partial_dir))?;

    let mut tried = 0;
    let mut last = String::from("no holder could be reached");
    let mut result: Option<(PathBuf, ContentHashes, bool, Vec<String>)> = None;

    if let Some(t) = target {
        // Holders of exactly this content first; classic holders after, as a last
        // resort whose stream is checked against the content id.
        let same = |h: &Holder| h.id == Some(t.id) && h.digest == Some(t.digest);
        let modern: Vec<Holder> = holders.iter().filter(|h| same(h)).cloned().collect();
        let requery_same = || requery().into_iter().filter(|h| same(h)).collect();
        let part = partial_dir.join(format!("{}.part", t.id.hex()));
        progress.begin(req.name.as_str(), Some(t.size));
        // A partial that stops early stays, with its state file, for a resume.
        match fetch_pieces(
            req,
            t,
            modern,
            &requery_same,
            &part,
            progress,
            cancel,
            &mut tried,
            &mut last,
        ) {
            Ok(Some((hashes, sources))) => result = Some((part.clone(), hashes, true, sources)),
            Ok(None) => {}
            Err(e) => {
                progress.end();
                return Err(e);
            }
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
    }))
}

/// Fetches every piece from up to `max_sources` holders at once. `Ok(None)` when every
/// holder failed.
///
/// One `download-src-<k>` thread per source pulls pieces from the shared plan with
/// [`PIPELINE_DEPTH`] requests in flight, hashes each piece slice by slice as it
/// arrives and hands it to the `download-disk` thread, which writes pieces in place,
/// feeds the whole-file hash and streams write-back. When nothing is missing any more,
/// idle sources duplicate the slowest pieces (endgame); the first copy wins. A source
/// that fails gives its pieces back; one that sends two bad pieces is banned for the
/// rest of the download. When every source has stopped with pieces still missing, the
/// index is asked again for holders (`requery`).
#[allow(clippy::too_many_arguments)]
fn fetch_pieces(
    req: &DownloadRequest<'_>,
    t: Target,
    holders: Vec<Holder>,
    requery: &dyn Fn() -> Vec<Holder>,
    part: &Path,
    progress: &dyn Progress,
    cancel: &AtomicBool,
    tried: &mut usize,
    last: &mut String,
) -> Result<Option<(ContentHashes, Vec<String>)>, DownloadError> {
    let partial = Partial::open(part, t, &req.name)?;
    let count = piece_count(t.size) as usize;
    let mut plan = PiecePlan::new(count);
    let saved_list = partial.load_piece_list();
    let resumed = saved_list
        .as_deref()
        .map(|list| partial.resume(&mut plan, list))
        .unwrap_or(0);
    if resumed > 0 {
        progress.note(&format!(
            "resuming '{}': {resumed} of {count} pieces already here and checked",
            req.name
        ));
        progress.advance((plan.done() as u64 * PIECE_SIZE).min(t.size));
    }
    let (to_disk, disk_rx) = crossbeam_channel::bounded::<(usize, Vec<u8>)>(DISK_QUEUE);
    let (spare_tx, spare) = crossbeam_channel::bounded::<Vec<u8>>(DISK_QUEUE + 1);
    let swarm = Swarm {
        name: &req.name,
        target: t,
        state: Mutex::new(SwarmState {
            plan,
            bad: HashMap::new(),
            banned: HashSet::new(),
            active: 0,
        }),
        pieces: saved_list.map(OnceLock::from).unwrap_or_default(),
        partial: &partial,
        to_disk,
        spare,
        progress,
        cancel,
        limiter: req.download_limit.as_deref(),
    };
    let resumed_pieces: Vec<bool> = {
        let st = swarm.lock();
        (0..count).map(|i| st.plan.is_verified(i)).collect()
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
        let mut sources = Vec::new();
        let mut outcome = Ok(());
        let mut tried_addrs: HashSet<String> = HashSet::new();
        let mut candidates = holders;
        for round in 0..MAX_ROUNDS {
            let banned = swarm.lock().banned.clone();
            let batch: Vec<Holder> = candidates
                .into_iter()
                .filter(|h| !banned.contains(&h.addr()))
                .filter(|h| round == 0 || !tried_addrs.contains(&h.addr()) || round >= 2)
                .take(req.max_sources.max(1))
                .collect();
            if batch.is_empty() {
                break;
            }
            *tried += batch.len();
            let results: Vec<(Holder, Result<(), SourceError>)> = std::thread::scope(|inner| {
                let handles: Vec<_> = batch
                    .into_iter()
                    .enumerate()
                    .map(|(k, h)| {
                        let swarm = &swarm;
                        std::thread::Builder::new()
                            .name(format!("download-src-{k}"))
                            .spawn_scoped(inner, move || {
                                let r = swarm.run_source(&h, req.self_id, &req.timeouts);
                                (h, r)
                            })
                    })
                    .filter_map(Result::ok)
                    .collect();
                handles.into_iter().filter_map(|h| h.join().ok()).collect()
            });
            for (h, r) in results {
                tried_addrs.insert(h.addr());
                match r {
                    Ok(()) => sources.push(h.peer.clone()),
                    Err(SourceError::Cancelled) => outcome = Err(DownloadError::Cancelled),
                    Err(SourceError::Disk(e)) => outcome = Err(io_at(part)(e)),
                    Err(e) => {
                        *last = format!("{} ({}): {e}", h.peer, h.addr());
                        progress.note(&format!("holder {last}"));
                    }
                }
            }
            if outcome.is_err() || swarm.done() {
                break;
            }
            // Every source stopped with pieces missing: ask the index again.
            candidates = requery();
        }
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
        return Ok(None);
    };
    log::debug!("all pieces fetched and written");
    let id = match disk_result {
        Some(Ok(id)) => id,
        Some(Err(e)) => return Err(io_at(part)(e)),
        None => return Ok(None),
    };
    if id != t.id {
        // Every piece matched a piece list whose digest the index gave, but the whole
        // does not match the content id published beside it: the publisher lied.
        *last = format!("pieces verified but the file hashes to {id}, not {}", t.id);
        progress.note(last);
        partial.discard();
        return Ok(None);
    }
    partial.file.sync_all().map_err(io_at(part))?;
    partial.forget();
    log::debug!("partial file fsynced");
    Ok(Some((
        ContentHashes::from_parts(t.size, id, pieces),
        sources,
    )))
}

/// Rounds of asking the index for holders again when every source has stopped.
const MAX_ROUNDS: usize = 4;

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
    /// Sources currently pulling pieces.
    active: usize,
}

/// The network side of a download: the sources and what they share.
struct Swarm<'a> {
    name: &'a FileName,
    target: Target,
    state: Mutex<SwarmState>,
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

    fn done(&self) -> bool {
        self.pieces.get().is_some() && self.lock().plan.finished()
    }

    fn piece_len(&self, i: usize) -> u64 {
        let start = i as u64 * PIECE_SIZE;
        PIECE_SIZE.min(self.target.size - start)
    }

    fn run_source(
        &self,
        h: &Holder,
        self_id: &str,
        timeouts: &Timeouts,
    ) -> Result<(), SourceError> {
        let mut client = Client::connect(&h.addr(), timeouts)?;
        client.hello("client", self_id, 0)?;
        if self.pieces.get().is_none() {
            let list = self.fetch_piece_list(&mut client)?;
            self.partial.save_piece_list(&list);
            let _ = self.pieces.set(list);
        }
        let active = {
            let mut st = self.lock();
            st.active += 1;
            st.active
        };
        self.progress.sources(active);
        log::info!("downloading from {} ({})", h.peer, h.addr());
        let mut in_flight: VecDeque<usize> = VecDeque::new();
        let result = self.pump(&mut client, h, &mut in_flight);
        let active = {
            let mut st = self.lock();
            for &i in &in_flight {
                st.plan.release(i);
            }
            st.active -= 1;
            st.active
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
                "piece list of {len} bytes, expected {expected}"
            )));
        }
        let mut raw = vec![0u8; len as usize];
        client.read_exact(&mut raw, "pieces")?;
        let pieces = parse_piece_list(&raw).unwrap_or_default();
        if piece_list_digest(&pieces) != self.target.digest {
            return Err(SourceError::Lied(
                "piece list does not match the digest from the index".into(),
            ));
        }
        Ok(pieces)
    }

    /// Takes the next piece for a source: a missing one, or in the endgame one that
    /// another source has in flight.
    fn next_piece(&self, mine: &VecDeque<usize>) -> Option<usize> {
        let mut st = self.lock();
        st.plan.take_next().or_else(|| {
            let mine: Vec<usize> = mine.iter().copied().collect();
            (!st.plan.finished())
                .then(|| st.plan.take_endgame(&mine))
                .flatten()
        })
    }

    fn pump(
        &self,
        client: &mut Client,
        h: &Holder,
        in_flight: &mut VecDeque<usize>,
    ) -> Result<(), SourceError> {
        let id = self.target.id.to_string();
        let want = self.pieces.get().cloned().unwrap_or_default();
        loop {
            if self.cancel.load(Ordering::SeqCst) {
                return Err(SourceError::Cancelled);
            }
            let mut batch = String::new();
            while in_flight.len() < PIPELINE_DEPTH {
                let Some(i) = self.next_piece(in_flight) else {
                    break;
                };
                let offset = (i as u64 * PIECE_SIZE).to_string();
                let len = self.piece_len(i).to_string();
                batch.push_str(&codec::line(&[
                    "fetch",
                    self.name.as_str(),
                    &id,
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
                st.plan.release(i);
                let bad = st.bad.entry(h.addr()).or_insert(0);
                *bad += 1;
                if *bad >= BAD_PIECES_BAN {
                    st.banned.insert(h.addr());
                    return Err(SourceError::Lied(format!(
                        "piece {i} does not match its hash; a second bad piece: {} is banned for this download",
                        h.peer
                    )));
                }
                drop(st);
                self.progress.note(&format!(
                    "holder {} ({}): piece {i} does not match its hash; it is fetched again",
                    h.peer,
                    h.addr()
                ));
                continue;
            }
            let first = self.lock().plan.verified(i);
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

    /// Marks the pieces the state file records as done, after checking each against
    /// its hash on disk: a piece is never trusted only because the state file says so.
    /// Returns how many pieces were kept.
    fn resume(&self, plan: &mut PiecePlan, pieces: &[Sha1Digest]) -> usize {
        let Some(marked) = self.read_state() else {
            return 0;
        };
        let mut kept = 0;
        let mut buf = vec![0u8; PIECE_SIZE as usize];
        for (i, done) in marked.into_iter().enumerate() {
            if !done || i >= plan.len() || i >= pieces.len() {
                continue;
            }
            let offset = i as u64 * PIECE_SIZE;
            let len = PIECE_SIZE.min(self.target.size - offset) as usize;
            if self.file.read_exact_at(&mut buf[..len], offset).is_ok()
                && Sha1Digest::of(&buf[..len]) == pieces[i]
            {
                plan.already_have(i);
                kept += 1;
            } else {
                log::warn!("resume: piece {i} on disk does not match its hash; fetching it again");
            }
        }
        kept
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

    /// Records `plan`'s verified pieces, after making their bytes durable.
    fn save_state(&self, bitmap: &[u8]) -> io::Result<()> {
        self.file.sync_data()?;
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
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.state_path)?;
        if let Some(dir) = self.state_path.parent() {
            File::open(dir)?.sync_all()?;
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
        self.catch_up()?;
        for (i, data) in queue {
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
                self.catch_up()?;
            } else {
                self.file.write_all_at(&data, offset)?;
                self.written[i] = true;
            }
            self.write_back();
            self.since_state += data.len() as u64;
            if self.since_state >= STATE_EVERY || self.last_state.elapsed() >= STATE_INTERVAL {
                self.save_state()?;
            }
            let _ = spare.try_send(data);
        }
        self.catch_up()?;
        if self.next < self.written.len() {
            // Stopped early (every source failed, or cancelled): record what is here,
            // so the download can resume.
            self.save_state()?;
            return Err(io::Error::other("download ended with pieces missing"));
        }
        Ok(Sha1Digest(self.sha.finalize().into()))
    }

    /// Makes the written pieces durable and records them in the state file.
    fn save_state(&mut self) -> io::Result<()> {
        let mut bitmap = vec![0u8; self.written.len().div_ceil(8)];
        for (i, w) in self.written.iter().enumerate() {
            if *w {
                bitmap[i / 8] |= 1 << (i % 8);
            }
        }
        self.since_state = 0;
        self.last_state = Instant::now();
        self.partial.save_state(&bitmap)
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

    fn catch_up(&mut self) -> io::Result<()> {
        let mut scratch = Vec::new();
        while self.next < self.written.len() && self.written[self.next] {
            let offset = self.next as u64 * PIECE_SIZE;
            scratch.resize(PIECE_SIZE.min(self.size - offset) as usize, 0);
            self.file.read_exact_at(&mut scratch, offset)?;
            self.sha.update(&scratch);
            self.next += 1;
        }
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
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
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
