//! The swarm: pieces of one file from several holders at once, each on its own
//! connection and thread, pulling work from one shared
//! [`PiecePlan`](crate::peer::plan::PiecePlan), with a disk thread writing what they
//! verify.
//!
//! Threads: the caller's thread is the coordinator, a thin driver of the
//! [`SourcePolicy`]: it starts the sources the policy names, asks the index again when
//! the policy says so, and collects how sources end. One `download-src-<k>` thread per
//! source pulls pieces from the plan with [`PIPELINE_DEPTH`] requests in flight and
//! only receives: each piece goes, in the buffer it arrived in, to a pool of
//! `download-verify-<k>` threads (one per core, from two to eight), which hash it against
//! the piece list, write it in place (see `buffer`: directly to the device where the
//! file system allows) and tell the `download-disk` thread (see [`DiskWriter`]). So
//! receiving, hashing and writing overlap, and one source's pieces are hashed on every
//! core. The verifier tells the source how each of its pieces fared: a source ends only
//! once every piece it sent is judged (or every piece of the file is in), and one whose
//! holder is banned for bad pieces
//! stops. When nothing is missing any more, idle sources duplicate the pieces in
//! flight longest (endgame); the first copy wins, and once every piece is in, the
//! connections still busy are shut down, so a slow or stalled source never holds the
//! end back. A source that fails gives its pieces back.
//!
//! Lock order: the [`SwarmState`] mutex (plan, policy, pieces delivered) and the
//! [`Conns`] mutex are leaves, never held together nor across I/O.

use super::buffer::{PieceBuf, PieceWriter};
use super::disk::{DiskWriter, Landed, Written};
use super::partial::{Check, Partial, Resumed};
use super::policy::{Action, SourcePolicy};
use super::{
    io_at, Attempts, DownloadError, DownloadRequest, Progress, SourceError, Target, CACHE_SLICE,
};
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
use crossbeam_channel::{Receiver, Sender};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::Scope;
use std::time::{Duration, Instant};
use verify::{Judged, Received, Verdict, Work};

mod verify;

/// Fetch requests kept in flight on one connection, so the source never idles
/// between pieces.
const PIPELINE_DEPTH: usize = 4;

/// The coordinator looks at the cancel flag at least this often.
const COORDINATOR_TICK: Duration = Duration::from_millis(100);

/// Verified pieces waiting for the disk thread.
const DISK_QUEUE: usize = 16;

/// Received pieces waiting for a verifier.
const VERIFY_QUEUE: usize = 8;

/// Verifier threads: one per core (hashing is most of a download's CPU), at least two
/// and at most eight
/// (a direct write blocks its verifier until the device has the piece).
fn verifiers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
}

/// One swarm fetch: the content, where its partial is, and the caller's hooks.
pub(super) struct SwarmJob<'a> {
    pub(super) req: &'a DownloadRequest<'a>,
    pub(super) target: Target,
    /// The partial file (`<id>.part`).
    pub(super) part: &'a Path,
    /// Asks the index for holders of exactly this content again.
    pub(super) requery: &'a dyn Fn() -> Vec<Holder>,
    pub(super) progress: &'a dyn Progress,
    pub(super) cancel: &'a AtomicBool,
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
    /// A resumed piece the spot check left to the disk thread does not match its
    /// hash: try again, checking every resumed piece.
    RecheckAll,
}

/// Every piece is in: the piece list, the whole-file SHA-1 when it was computed, and
/// the resumed pieces found damaged on the way.
struct Whole {
    pieces: Vec<Sha1Digest>,
    sha1: Option<Sha1Digest>,
    bad: Vec<usize>,
}

/// Fetches every piece from up to `max_sources` holders at once (see the module
/// documentation), keeping what an earlier run left. [`Fetched::Failed`] when every
/// holder failed and no new one turned up for the I/O timeout; the partial then stays
/// for a resume.
pub(super) fn fetch_pieces(
    job: &SwarmJob<'_>,
    holders: Vec<Holder>,
    check: Check,
    attempts: &mut Attempts,
) -> Result<Fetched, DownloadError> {
    let t = job.target;
    let partial = Partial::open(job.part, t, &job.req.name)?;
    let mut plan = PiecePlan::new(piece_count(t.size) as usize);
    let mut saved_list = partial.load_piece_list();
    if saved_list.is_none() && partial.has_recorded_pieces() {
        // Pieces recorded without their list (a partial of an earlier version taken
        // over by its SHA-1): the list is needed before they can be checked and kept.
        saved_list = list_for_resume(job, &holders);
        if let Some(list) = &saved_list {
            partial.save_piece_list(list);
        }
    }
    let resumed = resume(job, &partial, &mut plan, saved_list.as_deref(), check);
    let resumed_bytes = verified_bytes(&plan, t.size);
    let (whole, sources) = run_swarm(job, &partial, plan, saved_list, resumed, holders, attempts);
    let Some(whole) = whole? else {
        return Ok(Fetched::Failed);
    };
    log::debug!("all pieces fetched and written");
    if !whole.bad.is_empty() {
        // Record every piece as here but the damaged ones, and start again checking
        // each one.
        job.progress.note(&format!(
            "'{}': {} kept from the earlier run did not match {} hash; checking every piece",
            job.req.name,
            crate::units::plural(whole.bad.len() as u64, "piece"),
            if whole.bad.len() == 1 { "its" } else { "their" },
        ));
        let count = piece_count(t.size) as usize;
        let here: Vec<bool> = (0..count).map(|i| !whole.bad.contains(&i)).collect();
        partial.save_state(&here, true).map_err(io_at(job.part))?;
        return Ok(Fetched::RecheckAll);
    }
    // Every piece matched the piece list, and the list matched the content id (its
    // digest): the file is the content, with no pass over the whole of it.
    partial.file.sync_all().map_err(io_at(job.part))?;
    partial.forget();
    log::debug!("partial file fsynced");
    Ok(Fetched::Done {
        hashes: ContentHashes::from_parts(t.size, whole.pieces, whole.sha1),
        sources,
        resumed: resumed_bytes,
    })
}

/// The piece list of the target from the first of a few holders that gives one that
/// matches the content id; `None` when none does (the recorded pieces are then not
/// kept, and the list comes with the swarm as usual).
fn list_for_resume(job: &SwarmJob<'_>, holders: &[Holder]) -> Option<Vec<Sha1Digest>> {
    holders.iter().take(3).find_map(|h| {
        let mut client = Client::connect(&h.addr(), &job.req.timeouts).ok()?;
        client.hello_client().ok()?;
        piece_list_from(&mut client, &job.req.name, job.target).ok()
    })
}

/// Keeps the pieces an earlier run left (see [`Partial::resume`]) and tells the user.
fn resume(
    job: &SwarmJob<'_>,
    partial: &Partial,
    plan: &mut PiecePlan,
    saved_list: Option<&[Sha1Digest]>,
    check: Check,
) -> Resumed {
    let resumed = saved_list
        .map(|list| partial.resume(plan, list, check))
        .unwrap_or_default();
    if resumed.kept > 0 || resumed.dropped > 0 {
        let checked = if resumed.checked == resumed.kept {
            "every one checked".to_owned()
        } else {
            format!(
                "{} spot-checked, the others are checked as the rest arrives",
                resumed.checked
            )
        };
        let dropped = match resumed.dropped {
            0 => String::new(),
            n => format!(
                "; {} did not match {} and {} fetched again",
                crate::units::plural(n as u64, "piece"),
                if n == 1 { "its hash" } else { "their hashes" },
                if n == 1 { "is" } else { "are" },
            ),
        };
        job.progress.note(&format!(
            "resuming '{}': {} of {} already here ({checked}){dropped}",
            job.req.name,
            resumed.kept,
            crate::units::plural(plan.len() as u64, "piece")
        ));
        job.progress.advance(verified_bytes(plan, job.target.size));
    }
    resumed
}

/// Runs the disk thread and the sources until every piece is in or the download
/// stops. Returns, when every piece is in, the piece list, the whole-file SHA-1 (when
/// asked for) and the resumed pieces found damaged; and the holders that delivered
/// pieces and did not fail.
fn run_swarm(
    job: &SwarmJob<'_>,
    partial: &Partial,
    plan: PiecePlan,
    saved_list: Option<Vec<Sha1Digest>>,
    resumed: Resumed,
    holders: Vec<Holder>,
    attempts: &mut Attempts,
) -> (Result<Option<Whole>, DownloadError>, Vec<String>) {
    // Pieces are kept unchecked only against a saved list, which the disk thread
    // checks them against.
    let check_against = saved_list.clone().unwrap_or_default();
    let size = job.target.size;
    let (to_disk, disk_rx) = crossbeam_channel::bounded::<io::Result<Landed>>(DISK_QUEUE);
    let (to_verify, verify_rx) = crossbeam_channel::bounded::<Work>(VERIFY_QUEUE);
    let (spare_tx, spare) = crossbeam_channel::bounded::<PieceBuf>(DISK_QUEUE + VERIFY_QUEUE);
    let resumed_pieces: Vec<bool> = (0..plan.len()).map(|i| plan.is_verified(i)).collect();
    let policy = SourcePolicy::new(
        holders,
        job.req.max_sources,
        job.req.timeouts.io,
        Instant::now(),
    );
    let swarm = Swarm {
        name: &job.req.name,
        target: job.target,
        state: Mutex::new(SwarmState {
            plan,
            policy,
            delivered: HashMap::new(),
        }),
        conns: Mutex::new(Conns::default()),
        pieces: saved_list.map(OnceLock::from).unwrap_or_default(),
        partial,
        writer: PieceWriter::new(&partial.file, &partial.path, job.req.direct_io),
        whole_sha1: job.req.verify_sha1,
        to_verify,
        to_disk,
        spare,
        spare_tx: spare_tx.clone(),
        progress: job.progress,
        cancel: job.cancel,
        limiter: job.req.download_limit.as_deref(),
    };
    log::debug!(
        "{}: pieces written {}",
        partial.path.display(),
        if swarm.writer.is_direct() {
            "directly to the device"
        } else {
            "through the page cache"
        }
    );
    std::thread::scope(|scope| {
        let check = &check_against;
        let unchecked = resumed.unchecked;
        let whole_sha1 = job.req.verify_sha1;
        // The disk thread owns its end of the queue: if it stops (an error, a panic),
        // the queue disconnects and the verifiers' sends fail at once instead of
        // blocking on a full queue nobody reads.
        let disk = std::thread::Builder::new()
            .name("download-disk".into())
            .spawn_scoped(scope, move || {
                DiskWriter::new(partial, size, resumed_pieces, unchecked, check, whole_sha1)
                    .run(&disk_rx, &spare_tx)
            });
        let disk = match disk {
            Ok(handle) => handle,
            Err(e) => return (Err(io_at(job.part)(e)), Vec::new()),
        };
        let (outcome, sources) = std::thread::scope(|inner| {
            let mut verifiers_started = 0;
            for k in 0..verifiers() {
                let spawned = std::thread::Builder::new()
                    .name(format!("download-verify-{k}"))
                    .spawn_scoped(inner, || swarm.verify_all(&verify_rx));
                match spawned {
                    Ok(_) => verifiers_started += 1,
                    Err(e) if verifiers_started == 0 => {
                        return (Err(io_at(job.part)(e)), Vec::new())
                    }
                    Err(_) => break,
                }
            }
            let ended = Coordinator::new(inner, &swarm, job).run(attempts);
            // Every source has ended: what is queued is verified, then each verifier
            // takes one stop.
            for _ in 0..verifiers_started {
                let _ = swarm.to_verify.send(Work::Stop);
            }
            ended
        });
        let finished = swarm.done();
        let pieces = swarm.pieces.get().cloned();
        drop(swarm); // closes the disk queue: the disk thread finishes what it has
        let disk_result = disk
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the disk thread panicked")));
        let whole = settle(outcome, finished, pieces, disk_result, job.part);
        (whole, sources)
    })
}

/// Puts how the sources ended and how the disk thread ended together.
fn settle(
    outcome: Result<(), DownloadError>,
    finished: bool,
    pieces: Option<Vec<Sha1Digest>>,
    disk: io::Result<Written>,
    part: &Path,
) -> Result<Option<Whole>, DownloadError> {
    // When the disk thread stopped on an error, that error is the real cause.
    match (outcome, &disk) {
        (Err(DownloadError::Io { path, .. }), Err(e)) => {
            return Err(DownloadError::Io {
                path,
                source: io::Error::new(e.kind(), e.to_string()),
            })
        }
        (other, _) => other?,
    }
    if !finished {
        return Ok(None);
    }
    match disk {
        Ok(written) => Ok(Some(Whole {
            pieces: pieces.unwrap_or_default(),
            sha1: written.sha1,
            bad: written.bad,
        })),
        Err(e) => Err(io_at(part)(e)),
    }
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

/// The coordinator of [`fetch_pieces`]: does what the [`SourcePolicy`] says (starts
/// sources, asks the index again, gives up), and collects how sources end.
struct Coordinator<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
    swarm: &'env Swarm<'env>,
    job: &'env SwarmJob<'env>,
    ends_tx: Sender<SourceEnd>,
    ends: Receiver<SourceEnd>,
    /// The holders that delivered pieces and did not fail.
    sources: Vec<String>,
}

impl<'scope, 'env> Coordinator<'scope, 'env> {
    fn new(
        scope: &'scope Scope<'scope, 'env>,
        swarm: &'env Swarm<'env>,
        job: &'env SwarmJob<'env>,
    ) -> Self {
        let (ends_tx, ends) = crossbeam_channel::unbounded();
        Coordinator {
            scope,
            swarm,
            job,
            ends_tx,
            ends,
            sources: Vec::new(),
        }
    }

    /// Runs the download to its end. Returns the outcome and the holders that
    /// delivered pieces and did not fail. Every source thread it started has ended
    /// when it returns.
    fn run(mut self, attempts: &mut Attempts) -> (Result<(), DownloadError>, Vec<String>) {
        let outcome = self.drive(attempts);
        let outcome = self.wind_down(outcome);
        (outcome, self.sources)
    }

    /// Until every piece is in, the download is cancelled or a local error stops it,
    /// or the policy gives up (`Ok`, with pieces missing).
    fn drive(&mut self, attempts: &mut Attempts) -> Result<(), DownloadError> {
        loop {
            if self.swarm.done() {
                return Ok(());
            }
            if self.swarm.cancel.load(Ordering::SeqCst) {
                return Err(DownloadError::Cancelled);
            }
            match self.swarm.next_action() {
                Action::Start { source, holder } => {
                    self.start(source, holder)?;
                    attempts.tried = self.swarm.lock().policy.tried();
                }
                Action::Requery => {
                    let found = (self.job.requery)();
                    self.swarm.lock().policy.offer(found);
                }
                Action::Starved => self.swarm.progress.note(&format!(
                    "no holder of '{}' is left; asking the index again for up to {}s",
                    self.job.req.name,
                    self.job.req.timeouts.io.as_secs()
                )),
                Action::GiveUp => return Ok(()),
                Action::Wait(wait) => {
                    let wait = wait.map_or(COORDINATOR_TICK, |w| w.min(COORDINATOR_TICK));
                    if let Ok(end) = self.ends.recv_timeout(wait) {
                        self.ended(end, attempts)?;
                    }
                }
            }
        }
    }

    /// Starts source `id` on its own thread.
    fn start(&self, id: SourceId, holder: Holder) -> Result<(), DownloadError> {
        let addr = holder.addr();
        let (swarm, req, tx) = (self.swarm, self.job.req, self.ends_tx.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("download-src-{id}"))
            .spawn_scoped(self.scope, move || {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    swarm.run_source(id, &holder, &req.timeouts)
                }))
                .unwrap_or_else(|_| {
                    Err(SourceError::Disk(io::Error::other(
                        "a source thread panicked",
                    )))
                });
                let _ = tx.send(SourceEnd { id, holder, result });
            });
        if let Err(e) = spawned {
            // It never ran: no end will come.
            self.swarm.lock().policy.finished(&addr);
            return Err(io_at(self.job.part)(e));
        }
        Ok(())
    }

    /// A source ended while the download goes on.
    fn ended(&mut self, end: SourceEnd, attempts: &mut Attempts) -> Result<(), DownloadError> {
        let addr = end.holder.addr();
        match end.result {
            Ok(()) => {
                self.swarm.lock().policy.finished(&addr);
                self.delivered(&end);
            }
            Err(SourceError::Cancelled) => {
                self.swarm.lock().policy.finished(&addr);
                return Err(DownloadError::Cancelled);
            }
            Err(SourceError::Disk(e)) => {
                self.swarm.lock().policy.finished(&addr);
                return Err(io_at(self.job.part)(e));
            }
            Err(e) => {
                let banned = {
                    let mut st = self.swarm.lock();
                    st.policy.failed(&addr, Instant::now());
                    st.policy.is_banned(&addr)
                };
                attempts.last = format!("{} ({addr}): {e}", end.holder.label());
                let next = if banned {
                    ""
                } else {
                    "; its pieces go back to the queue"
                };
                let note = format!("holder {}{next}", attempts.last);
                self.swarm.progress.note(&note);
            }
        }
        Ok(())
    }

    /// Counts the source's holder among those the file came from, if it delivered.
    fn delivered(&mut self, end: &SourceEnd) {
        if self.swarm.contributed(end.id) && !self.sources.contains(&end.holder.name) {
            self.sources.push(end.holder.name.clone());
        }
    }

    /// Every piece is in, or the download stops: shuts the connections still open, so
    /// no source finishes a piece nobody needs or waits out a stalled holder, and
    /// waits for every source to end.
    fn wind_down(&mut self, mut outcome: Result<(), DownloadError>) -> Result<(), DownloadError> {
        self.swarm.stop();
        let running = self.swarm.lock().policy.running();
        for end in self.ends.clone().iter().take(running) {
            match end.result {
                Err(SourceError::Disk(e)) if outcome.is_ok() && !self.swarm.done() => {
                    outcome = Err(io_at(self.job.part)(e))
                }
                _ => self.delivered(&end),
            }
        }
        outcome
    }
}

/// What the sources of one download share.
struct SwarmState {
    plan: PiecePlan,
    /// Which holders run, failed or are banned; when to ask the index again.
    policy: SourcePolicy,
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
    /// The piece list, checked against the content id (its digest), once a source gave
    /// it.
    pieces: OnceLock<Vec<Sha1Digest>>,
    partial: &'a Partial,
    writer: PieceWriter<'a>,
    /// Send verified pieces' bytes to the disk thread, for the whole-file SHA-1.
    whole_sha1: bool,
    to_verify: Sender<Work>,
    to_disk: Sender<io::Result<Landed>>,
    /// Buffers the verifiers and the disk thread are done with.
    spare: Receiver<PieceBuf>,
    spare_tx: Sender<PieceBuf>,
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

    fn run_source(&self, id: SourceId, h: &Holder, timeouts: &Timeouts) -> Result<(), SourceError> {
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
        let result = self.serve_from(id, &mut client, h);
        self.conns().streams.remove(&id);
        // Once the coordinator stopped the download, how the connection ended does
        // not matter.
        if self.stopped() && !matches!(result, Err(SourceError::Disk(_))) {
            return Ok(());
        }
        result
    }

    /// What the coordinator should do now (see [`SourcePolicy::next_action`]).
    fn next_action(&self) -> Action {
        let mut st = self.lock();
        let verified = st.plan.done();
        st.policy.next_action(Instant::now(), verified)
    }

    fn serve_from(&self, id: SourceId, client: &mut Client, h: &Holder) -> Result<(), SourceError> {
        client.hello_client()?;
        if self.pieces.get().is_none() {
            self.learn_piece_list(client, h)?;
        }
        let active = {
            let mut st = self.lock();
            st.plan.join(id);
            st.plan.active()
        };
        self.progress.sources(active);
        log::info!("downloading from {} ({})", h.label(), h.addr());
        client.bulk_reads();
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

    /// Fetches the piece list from this holder, checks it, and keeps it for every
    /// source (and on disk, for a resume).
    fn learn_piece_list(&self, client: &mut Client, h: &Holder) -> Result<(), SourceError> {
        let list = match self.fetch_piece_list(client) {
            Ok(list) => list,
            Err(e) => {
                if matches!(e, SourceError::Lied(_)) {
                    // A holder that lies about the piece list is not asked again.
                    self.lock().policy.ban(&h.addr());
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
        Ok(())
    }

    fn fetch_piece_list(&self, client: &mut Client) -> Result<Vec<Sha1Digest>, SourceError> {
        piece_list_from(client, self.name, self.target)
    }

    /// Takes the next piece for a source: a missing one, or in the endgame one that
    /// another source has in flight.
    fn next_piece(
        &self,
        id: SourceId,
        in_flight: &VecDeque<usize>,
        judging: &[usize],
    ) -> Option<usize> {
        let mut st = self.lock();
        st.plan.take_next(id).or_else(|| {
            let mine: Vec<usize> = in_flight.iter().chain(judging).copied().collect();
            (!st.plan.finished())
                .then(|| st.plan.take_endgame(id, &mine))
                .flatten()
        })
    }

    /// Fetches pieces from one holder until there is nothing left for it: keeps the
    /// pipeline full, receives the oldest request and hands it to the verifiers, and
    /// ends only once every piece it handed over is judged (a bad one goes back to the
    /// plan, perhaps to this source again).
    fn pump(
        &self,
        id: SourceId,
        client: &mut Client,
        h: &Holder,
        in_flight: &mut VecDeque<usize>,
    ) -> Result<(), SourceError> {
        let (verdict_tx, verdicts) = crossbeam_channel::unbounded();
        // Pieces with the verifiers: requested again by this source only once judged.
        let mut judging: Vec<usize> = Vec::new();
        let addr = h.addr();
        loop {
            if self.cancel.load(Ordering::SeqCst) {
                return Err(SourceError::Cancelled);
            }
            while let Ok(verdict) = verdicts.try_recv() {
                self.judged(h, verdict, &mut judging)?;
            }
            if self.done() {
                return Ok(());
            }
            self.request_more(id, client, in_flight, &judging)?;
            let Some(&i) = in_flight.front() else {
                if judging.is_empty() {
                    return Ok(());
                }
                if let Ok(verdict) = verdicts.recv_timeout(COORDINATOR_TICK) {
                    self.judged(h, verdict, &mut judging)?;
                }
                continue;
            };
            let buf = self.receive(client, i)?;
            in_flight.pop_front();
            judging.push(i);
            let work = Work::Piece(Received {
                source: id,
                addr: addr.clone(),
                piece: i,
                buf,
                verdict: verdict_tx.clone(),
            });
            if self.to_verify.send(work).is_err() {
                return Err(SourceError::Disk(io::Error::other("the verifiers stopped")));
            }
        }
    }

    /// What the verifier found in one of this source's pieces.
    fn judged(
        &self,
        h: &Holder,
        verdict: Verdict,
        judging: &mut Vec<usize>,
    ) -> Result<(), SourceError> {
        judging.retain(|&p| p != verdict.piece);
        let i = verdict.piece;
        match verdict.result {
            Ok(Judged::Good) => Ok(()),
            Ok(Judged::Bad { banned: true }) => Err(SourceError::Lied(format!(
                "piece {i} does not match its hash, the second bad piece from {}: banned for the rest of this download",
                h.label()
            ))),
            Ok(Judged::Bad { banned: false }) => {
                self.progress.note(&format!(
                    "holder {} ({}): piece {i} does not match its hash; discarded, fetched again from another holder if there is one",
                    h.label(),
                    h.addr()
                ));
                Ok(())
            }
            Err(e) => Err(SourceError::Disk(e)),
        }
    }

    /// Tops up the requests in flight to [`PIPELINE_DEPTH`], in one write; never
    /// a piece this source has in flight or with the verifiers (`judging`).
    fn request_more(
        &self,
        id: SourceId,
        client: &mut Client,
        in_flight: &mut VecDeque<usize>,
        judging: &[usize],
    ) -> Result<(), SourceError> {
        let content = self.target.id.to_string();
        let mut batch = String::new();
        while in_flight.len() < PIPELINE_DEPTH {
            let Some(i) = self.next_piece(id, in_flight, judging) else {
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
        Ok(())
    }

    /// Receives piece `i` into a buffer fit for a direct write.
    fn receive(&self, client: &mut Client, i: usize) -> Result<PieceBuf, SourceError> {
        let expected = self.piece_len(i);
        let len = client.read_data_header("fetch", expected)?;
        if len != expected {
            return Err(SourceError::Lied(format!(
                "piece {i}: {len} bytes, expected {expected}"
            )));
        }
        let mut buf = self.spare.try_recv().unwrap_or_else(|_| PieceBuf::new());
        buf.set_len(len as usize);
        match self.limiter {
            Some(limit) => {
                for slice in buf.chunks_mut(CACHE_SLICE) {
                    limit.take(slice.len() as u64);
                    client.read_exact(slice, "fetch")?;
                }
            }
            None => client.read_exact(&mut buf, "fetch")?,
        }
        Ok(buf)
    }
}

/// Asks a holder for the piece list of `target` and checks it against the content id
/// (its digest) and the size.
fn piece_list_from(
    client: &mut Client,
    name: &FileName,
    target: Target,
) -> Result<Vec<Sha1Digest>, SourceError> {
    let id = target.id.to_string();
    client.send(
        codec::line(&["pieces", name.as_str(), &id]).as_bytes(),
        "pieces",
    )?;
    let expected = piece_count(target.size) * 20;
    let len = client.read_data_header("pieces", expected)?;
    if len != expected {
        return Err(SourceError::Lied(format!(
            "piece list of {len} bytes, expected {expected}; not used"
        )));
    }
    let mut raw = vec![0u8; len as usize];
    client.read_exact(&mut raw, "pieces")?;
    let pieces = parse_piece_list(&raw).unwrap_or_default();
    if piece_list_digest(&pieces) != target.id {
        return Err(SourceError::Lied(
            "piece list does not match the content id (its digest); not used, holder banned for this download".into(),
        ));
    }
    Ok(pieces)
}
