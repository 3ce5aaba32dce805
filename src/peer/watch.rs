//! The live shared folder: the initial scan, then changes as they happen.
//!
//! One `peer-share` thread owns this. It reconciles the folder with the catalog: a
//! new or changed file is hashed (or taken from the hash cache) and published; a file
//! that disappeared, or changed, is withdrawn at once. A file is published only once
//! it has settled: its modification time is at least `settle` old, or its stamp stayed
//! the same for `settle` (for clocks that disagree), so a file still being written is
//! never published half-written.
//!
//! Change notices come from the OS (inotify, through the notify crate) and only
//! trigger a reconciliation; a periodic rescan catches whatever the OS drops.

use super::catalog::{hash_file_with, scan, Candidate, FileStamp, SharedFile};
use super::hashcache::HashCache;
use super::links::{LinkCommand, Publisher};
use super::PeerEvent;
use super::PeerShared;
use crate::protocol::name::FileName;
use crate::units::plural;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use notify::{RecursiveMode, Watcher};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Files hashed before what is ready so far is published.
const PUBLISH_BATCH: usize = 256;

/// Longest a hashed file waits for others to fill its batch before it is published.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// A file this large takes a while to hash: what is ready goes out before it starts.
const SLOW_TO_HASH: u64 = 64 * 1024 * 1024;

/// How often hashing progress is reported while one large file is hashed.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Hashed files on their way to the indexes. They go out in batches (one request for
/// many files), but a file never waits long for others: the batch is sent when it is
/// full, when its first file has waited [`PUBLISH_EVERY`], and before a file that is
/// slow to hash, so a folder is published as it is hashed rather than at the end.
#[derive(Debug, Default)]
struct PublishBatch {
    files: Vec<SharedFile>,
    since: Option<Instant>,
}

impl PublishBatch {
    fn push(&mut self, file: SharedFile, now: Instant) {
        self.since.get_or_insert(now);
        self.files.push(file);
    }

    /// Whether to send what is gathered before hashing a file of `next_size` bytes
    /// (`None` when no file comes next, only time passes).
    fn due(&self, now: Instant, next_size: Option<u64>) -> bool {
        let Some(since) = self.since else {
            return false;
        };
        self.files.len() >= PUBLISH_BATCH
            || now.duration_since(since) >= PUBLISH_EVERY
            || next_size.is_some_and(|s| s >= SLOW_TO_HASH)
    }

    fn take(&mut self) -> Vec<SharedFile> {
        self.since = None;
        std::mem::take(&mut self.files)
    }
}

/// How often a folder with unsettled files is looked at again.
const TICK: Duration = Duration::from_millis(250);

/// Folders smaller than this are hashed without progress events.
const PROGRESS_FROM: u64 = 64 * 1024 * 1024;
/// How often a long hashing run saves the hash cache, so a crash or kill in the
/// middle of hashing a large folder loses at most this much work.
const CACHE_SAVE_EVERY: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug)]
pub struct WatchConfig {
    /// How long a file must stay unchanged before it is published.
    pub settle: Duration,
    /// Full rescan period, the safety net for notices the OS drops.
    pub rescan_every: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            settle: Duration::from_secs(1),
            rescan_every: Duration::from_secs(30),
        }
    }
}

pub(super) struct Sharer {
    pub dir: PathBuf,
    pub cache_path: PathBuf,
    pub shared: Arc<PeerShared>,
    pub publisher: Publisher,
    pub events: Sender<PeerEvent>,
    pub config: WatchConfig,
}

struct State {
    cache: HashCache,
    /// Files seen changing: the stamp last seen and since when.
    pending: HashMap<FileName, (FileStamp, Instant)>,
    /// Names reported as not shareable, so each is reported once.
    reported: HashSet<String>,
    /// Files whose hashes came from the cache instead of the disk.
    from_cache: usize,
}

fn wall_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

impl Sharer {
    /// Starts the `peer-share` thread. `gate` is dropped when the initial scan ends.
    pub fn spawn(self, gate: Sender<()>) -> std::io::Result<()> {
        thread::Builder::new()
            .name("peer-share".into())
            .spawn(move || self.run(gate))
            .map(|_| ())
    }

    fn run(self, gate: Sender<()>) {
        let (notice_tx, notices) = crossbeam_channel::bounded::<()>(1);
        let watcher = notify::recommended_watcher(move |_res: notify::Result<notify::Event>| {
            let _ = notice_tx.try_send(());
        })
        .and_then(|mut w| w.watch(&self.dir, RecursiveMode::NonRecursive).map(|()| w));
        let _watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                log::warn!(
                    "cannot watch {}: {e}; changes are found by rescanning every {:?}",
                    self.dir.display(),
                    self.config.rescan_every
                );
                None
            }
        };
        let cache = match HashCache::load(&self.cache_path) {
            Ok(c) => c,
            Err(why) => {
                log::warn!("{why}");
                HashCache::default()
            }
        };
        let mut state = State {
            cache,
            pending: HashMap::new(),
            reported: HashSet::new(),
            from_cache: 0,
        };
        let mut skipped = self.reconcile(&mut state, true);
        // Files that are still settling at start (just copied in, say) are waited for
        // a little, so that a fresh folder is published whole in the first sync.
        let started = Instant::now();
        while !state.pending.is_empty() && started.elapsed() < super::links::SCAN_GRACE {
            thread::sleep(TICK);
            skipped.extend(self.reconcile(&mut state, true));
        }
        drop(gate);
        let (files, bytes) = {
            let c = self.shared.catalog();
            (c.len(), c.total_bytes())
        };
        log::info!(
            "sharing {} ({bytes} bytes) from {}",
            plural(files as u64, "file"),
            self.dir.display()
        );
        let _ = self.events.send(PeerEvent::Shared {
            files,
            bytes,
            from_cache: state.from_cache,
            skipped,
        });
        self.watch(&mut state, &notices);
    }

    fn watch(&self, state: &mut State, notices: &Receiver<()>) {
        let mut last_full = Instant::now();
        while !self.shared.stopping.load(Ordering::Relaxed) {
            let wait = if state.pending.is_empty() {
                self.config.rescan_every.saturating_sub(last_full.elapsed())
            } else {
                TICK
            };
            match notices.recv_timeout(wait) {
                Ok(()) => {
                    // Let a burst of changes arrive before looking.
                    thread::sleep(Duration::from_millis(100));
                    while notices.try_recv().is_ok() {}
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => thread::sleep(wait),
            }
            if last_full.elapsed() >= self.config.rescan_every {
                last_full = Instant::now();
            }
            let skipped = self.reconcile(state, false);
            for why in skipped {
                log::warn!("not shared: {why}");
            }
        }
    }

    /// Brings the catalog in line with the folder. Returns new reasons for skipping.
    fn reconcile(&self, state: &mut State, initial: bool) -> Vec<String> {
        let (candidates, skipped) = match scan(&self.dir) {
            Ok(found) => found,
            Err(e) => {
                log::warn!("cannot scan {}: {e}", self.dir.display());
                return Vec::new();
            }
        };
        let mut new_skips = Vec::new();
        for s in skipped {
            let line = format!("{}: {}", s.entry, s.reason);
            if state.reported.insert(line.clone()) {
                new_skips.push(line);
            }
        }
        let now = Instant::now();
        let wall = wall_ns();
        let present: HashSet<FileName> = candidates.iter().map(|c| c.name.clone()).collect();
        let mut withdrawn = Vec::new();
        let mut cached = Vec::new();
        let mut to_hash = Vec::new();
        {
            let mut catalog = self.shared.catalog_mut();
            let gone: Vec<FileName> = catalog
                .iter()
                .filter(|f| !present.contains(&f.name))
                .map(|f| f.name.clone())
                .collect();
            for name in gone {
                catalog.remove(&name);
                withdrawn.push(name);
            }
            for c in candidates {
                if catalog
                    .get(c.name.as_str())
                    .is_some_and(|f| f.stamp == c.stamp)
                {
                    state.pending.remove(&c.name);
                    continue;
                }
                // Changed or new: what the index has for this name is stale now.
                if catalog.remove(&c.name).is_some() {
                    withdrawn.push(c.name.clone());
                }
                if let Some(hashes) = state.cache.lookup(c.name.as_str(), &c.stamp) {
                    state.pending.remove(&c.name);
                    state.from_cache += 1;
                    let file = SharedFile {
                        name: c.name,
                        path: c.path,
                        stamp: c.stamp,
                        hashes,
                    };
                    catalog.insert(file.clone());
                    cached.push(file);
                    continue;
                }
                let aged = wall - c.stamp.mtime_ns >= self.config.settle.as_nanos() as i128;
                let steady = state.pending.get(&c.name).is_some_and(|(s, since)| {
                    *s == c.stamp && now.duration_since(*since) >= self.config.settle
                });
                if aged || steady {
                    state.pending.remove(&c.name);
                    to_hash.push(c);
                } else if state
                    .pending
                    .get(&c.name)
                    .is_none_or(|(s, _)| *s != c.stamp)
                {
                    state.pending.insert(c.name, (c.stamp, now));
                }
            }
        }
        if !withdrawn.is_empty() {
            log::info!(
                "withdrawing {} no longer shared",
                plural(withdrawn.len() as u64, "file")
            );
            self.publisher.send(LinkCommand::Withdraw(withdrawn));
        }
        // Files known to the cache go out first; the rest as they are hashed.
        let changed = !cached.is_empty() || !to_hash.is_empty();
        for batch in cached.chunks(PUBLISH_BATCH) {
            self.publisher.send(LinkCommand::Publish(batch.to_vec()));
        }
        self.hash_and_publish(to_hash, state, initial);
        if changed {
            self.save_cache();
        }
        new_skips
    }

    fn save_cache(&self) {
        if let Err(e) = HashCache::save(&self.shared.catalog(), &self.cache_path) {
            log::warn!(
                "cannot save the hash cache {}: {e}",
                self.cache_path.display()
            );
        }
    }

    fn hash_and_publish(&self, files: Vec<Candidate>, state: &mut State, initial: bool) {
        let total_bytes: u64 = files.iter().map(|f| f.stamp.size).sum();
        let total_files = files.len();
        let report = total_bytes >= PROGRESS_FROM;
        let mut done_bytes = 0;
        let mut batch = PublishBatch::default();
        let mut published = 0;
        let mut last_save = Instant::now();
        let mut send = |batch: &mut PublishBatch| {
            let files = batch.take();
            published += files.len();
            self.publisher.send(LinkCommand::Publish(files));
        };
        for (i, f) in files.into_iter().enumerate() {
            if batch.due(Instant::now(), Some(f.stamp.size)) {
                send(&mut batch);
            }
            // A large file reports its progress piece by piece (a few times a second),
            // so the bar moves while it is hashed.
            let mut within = 0u64;
            let mut last_report = Instant::now();
            let mut on_piece = |bytes: u64| {
                within += bytes;
                if report
                    && last_report.elapsed() >= PROGRESS_EVERY
                    && done_bytes + within < total_bytes
                {
                    last_report = Instant::now();
                    let _ = self.events.send(PeerEvent::Hashing {
                        files_done: i,
                        files_total: total_files,
                        bytes_done: done_bytes + within.min(f.stamp.size),
                        bytes_total: total_bytes,
                    });
                }
            };
            match hash_file_with(&f.path, &mut on_piece) {
                Ok((stamp, hashes)) => {
                    let file = SharedFile {
                        name: f.name.clone(),
                        path: f.path.clone(),
                        stamp,
                        hashes,
                    };
                    self.shared.catalog_mut().insert(file.clone());
                    batch.push(file, Instant::now());
                }
                Err(e) => {
                    // It changed while being hashed (or vanished): look again later.
                    log::debug!("'{}' not hashed: {e}", f.name);
                    state.pending.insert(f.name, (f.stamp, Instant::now()));
                }
            }
            done_bytes += f.stamp.size;
            if report {
                let _ = self.events.send(PeerEvent::Hashing {
                    files_done: i + 1,
                    files_total: total_files,
                    bytes_done: done_bytes,
                    bytes_total: total_bytes,
                });
            }
            if batch.due(Instant::now(), None) {
                send(&mut batch);
            }
            if last_save.elapsed() >= CACHE_SAVE_EVERY {
                last_save = Instant::now();
                self.save_cache();
            }
        }
        if !batch.files.is_empty() {
            send(&mut batch);
        }
        if !initial && published > 0 {
            log::info!(
                "published {} new or changed",
                plural(published as u64, "file")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::catalog::{hash_reader, FileStamp};
    use crate::protocol::name::FileName;

    fn file(name: &str) -> SharedFile {
        SharedFile {
            name: FileName::parse(name).unwrap(),
            path: PathBuf::from(name),
            stamp: FileStamp {
                size: 1,
                mtime_ns: 0,
                ctime_ns: 0,
                dev: 0,
                ino: 0,
            },
            hashes: hash_reader(&b"x"[..]).unwrap(),
        }
    }

    #[test]
    fn hashed_files_do_not_wait_for_the_end_of_the_folder() {
        let t0 = Instant::now();
        let mut batch = PublishBatch::default();
        assert!(!batch.due(t0, Some(SLOW_TO_HASH)), "nothing to send yet");
        batch.push(file("a"), t0);
        // Small files right after it join the batch...
        assert!(!batch.due(t0 + Duration::from_millis(10), Some(4096)));
        batch.push(file("b"), t0 + Duration::from_millis(10));
        assert!(!batch.due(t0 + Duration::from_millis(20), None));
        // ...but not for long, and never while a large file is hashed.
        assert!(batch.due(t0 + PUBLISH_EVERY, Some(4096)));
        assert!(batch.due(t0 + Duration::from_millis(20), Some(SLOW_TO_HASH)));
        assert_eq!(batch.take().len(), 2);
        assert!(!batch.due(t0 + PUBLISH_EVERY * 2, None), "sent already");
    }

    #[test]
    fn a_full_batch_goes_out_at_once() {
        let t0 = Instant::now();
        let mut batch = PublishBatch::default();
        for i in 0..PUBLISH_BATCH {
            assert!(!batch.due(t0, Some(1)));
            batch.push(file(&format!("f{i}")), t0);
        }
        assert!(batch.due(t0, Some(1)));
    }
}
