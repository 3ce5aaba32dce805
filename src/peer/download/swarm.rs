//! The swarm: pieces of one file from several holders at once, each on its own
//! connection and thread, pulling work from one shared [`PiecePlan`], with a disk
//! thread writing what they verify.

use super::disk::DiskWriter;
use super::partial::{Check, Partial};
use super::{io_at, DownloadError, DownloadRequest, Progress, SourceError, Target, CACHE_SLICE};
use crate::net::client::Client;
use crate::net::rate::TokenBucket;
use crate::net::Timeouts;
use crate::peer::catalog::ContentHashes;
use crate::peer::plan::{PiecePlan, SourceId};
use crate::peer::pool::Holder;
use crate::protocol::codec;
use crate::protocol::hash::{parse_piece_list, piece_list_digest, Sha1Digest};
use crate::protocol::name::FileName;
use crate::protocol::{piece_count, PIECE_SIZE};
use sha1::{Digest, Sha1};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Fetch requests kept in flight on one connection, so the source never idles
/// between pieces.
const PIPELINE_DEPTH: usize = 4;

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
pub(super) fn fetch_pieces(
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
            "resuming '{}': {} of {count} pieces already here ({checked})",
            req.name, resumed.kept
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
pub(super) enum Fetched {
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
