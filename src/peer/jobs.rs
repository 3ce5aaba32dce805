//! Downloads in the background, as a daemon's remote control starts them (the HTTP
//! interface's `/downloads`): each on a `download-job-<k>` thread of its own, with its
//! progress readable at any time and a cancel flag that stops it and keeps the
//! partial, for a resume.
//!
//! At most [`MAX_RUNNING`] run at once, one per name; the table keeps the last
//! [`KEEP_FINISHED`] finished ones, so a client can see how they ended.

use super::download::{DownloadError, DownloadOutcome, Progress};
use super::downloader::Downloader;
use crate::protocol::hash::Sha1Digest;
use crate::protocol::name::FileName;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most downloads running at once.
pub const MAX_RUNNING: usize = 8;
/// Finished downloads kept in the table.
pub const KEEP_FINISHED: usize = 64;

/// Where a download is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    Running,
    /// The file is in the folder (or was already there: `already_had`).
    Done {
        already_had: bool,
    },
    Failed(String),
    /// Stopped on request; the partial stays for a resume.
    Cancelled,
}

impl JobState {
    pub fn as_str(&self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Done { .. } => "done",
            JobState::Failed(_) => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

/// A download as a client sees it.
#[derive(Clone, Debug)]
pub struct JobView {
    pub name: String,
    pub id: Option<Sha1Digest>,
    pub state: JobState,
    /// Bytes verified so far (including those an earlier run left).
    pub bytes: u64,
    /// The file's size, once known.
    pub total: Option<u64>,
    /// Holders sending now.
    pub sources: usize,
    pub elapsed: Duration,
    /// The latest note (a holder failed, a piece was bad).
    pub note: Option<String>,
}

/// Why a download could not be started.
#[derive(Debug, PartialEq, Eq)]
pub enum StartError {
    /// This name is being downloaded already.
    Running,
    /// [`MAX_RUNNING`] downloads are running.
    TooMany,
    /// The thread could not be started.
    Thread(String),
}

/// One download's live progress, written by its thread.
struct Live {
    bytes: AtomicU64,
    /// `u64::MAX` until the size is known.
    total: AtomicU64,
    sources: AtomicUsize,
    note: Mutex<Option<String>>,
    cancel: AtomicBool,
}

impl Progress for Live {
    fn begin(&self, _name: &str, total: Option<u64>) {
        self.total
            .store(total.unwrap_or(u64::MAX), Ordering::Relaxed);
    }
    fn advance(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    fn sources(&self, active: usize) {
        self.sources.store(active, Ordering::Relaxed);
    }
    fn note(&self, text: &str) {
        *self.note.lock().unwrap_or_else(|e| e.into_inner()) = Some(text.to_owned());
    }
}

struct Job {
    id: Option<Sha1Digest>,
    live: Arc<Live>,
    state: JobState,
    started: Instant,
    ended: Option<Instant>,
}

/// The background downloads of one peer.
pub struct Jobs {
    downloader: Arc<Downloader>,
    table: Mutex<BTreeMap<String, Job>>,
    next: AtomicU64,
    /// The download threads, so that a shutdown can wait for them to record their
    /// progress.
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Jobs {
    pub fn new(downloader: Arc<Downloader>) -> Jobs {
        Jobs {
            downloader,
            table: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(1),
            threads: Mutex::new(Vec::new()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Job>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts downloading `name` (only content `id`, when given) in the background.
    pub fn start(
        self: &Arc<Self>,
        name: FileName,
        id: Option<Sha1Digest>,
    ) -> Result<JobView, StartError> {
        let live = Arc::new(Live {
            bytes: AtomicU64::new(0),
            total: AtomicU64::new(u64::MAX),
            sources: AtomicUsize::new(0),
            note: Mutex::new(None),
            cancel: AtomicBool::new(false),
        });
        {
            let mut table = self.table();
            if table
                .get(name.as_str())
                .is_some_and(|j| j.state == JobState::Running)
            {
                return Err(StartError::Running);
            }
            if table
                .values()
                .filter(|j| j.state == JobState::Running)
                .count()
                >= MAX_RUNNING
            {
                return Err(StartError::TooMany);
            }
            table.insert(
                name.as_str().to_owned(),
                Job {
                    id,
                    live: live.clone(),
                    state: JobState::Running,
                    started: Instant::now(),
                    ended: None,
                },
            );
            trim(&mut table);
        }
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        let jobs = self.clone();
        let job_name = name.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("download-job-{k}"))
            .spawn(move || {
                let outcome = jobs.downloader.download(
                    job_name.clone(),
                    id,
                    false,
                    false,
                    &*live,
                    &live.cancel,
                );
                jobs.finish(job_name.as_str(), outcome);
            });
        match spawned {
            Ok(handle) => {
                let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
                threads.retain(|t| !t.is_finished());
                threads.push(handle);
            }
            Err(e) => {
                self.table().remove(name.as_str());
                return Err(StartError::Thread(e.to_string()));
            }
        }
        Ok(self.view(name.as_str()).expect("the job was just inserted"))
    }

    fn finish(&self, name: &str, outcome: Result<DownloadOutcome, DownloadError>) {
        let mut table = self.table();
        let Some(job) = table.get_mut(name) else {
            return;
        };
        job.state = match outcome {
            Ok(DownloadOutcome::Downloaded(_)) => JobState::Done { already_had: false },
            Ok(DownloadOutcome::AlreadyHave { .. }) => JobState::Done { already_had: true },
            Err(DownloadError::Cancelled) => JobState::Cancelled,
            Err(e) => JobState::Failed(e.to_string()),
        };
        job.ended = Some(Instant::now());
        trim(&mut table);
    }

    /// Every download in the table, by name.
    pub fn list(&self) -> Vec<JobView> {
        let table = self.table();
        table.iter().map(|(name, job)| view_of(name, job)).collect()
    }

    pub fn view(&self, name: &str) -> Option<JobView> {
        self.table().get(name).map(|job| view_of(name, job))
    }

    /// Asks the running download of `name` to stop (it keeps its partial); `false`
    /// when none runs.
    pub fn cancel(&self, name: &str) -> bool {
        match self.table().get(name) {
            Some(job) if job.state == JobState::Running => {
                job.live.cancel.store(true, Ordering::SeqCst);
                true
            }
            _ => false,
        }
    }

    /// Stops every running download (the peer is shutting down) and waits, up to
    /// `within`, for each to record where it was, so it resumes from there.
    pub fn stop_all(&self, within: Duration) {
        for job in self.table().values() {
            job.live.cancel.store(true, Ordering::SeqCst);
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        let until = Instant::now() + within;
        for t in threads {
            while !t.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

fn view_of(name: &str, job: &Job) -> JobView {
    let total = job.live.total.load(Ordering::Relaxed);
    JobView {
        name: name.to_owned(),
        id: job.id,
        state: job.state.clone(),
        bytes: job.live.bytes.load(Ordering::Relaxed),
        total: (total != u64::MAX).then_some(total),
        sources: match job.state {
            JobState::Running => job.live.sources.load(Ordering::Relaxed),
            _ => 0,
        },
        elapsed: job.ended.unwrap_or_else(Instant::now) - job.started,
        note: job
            .live
            .note
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    }
}

/// Keeps the newest [`KEEP_FINISHED`] finished downloads.
fn trim(table: &mut BTreeMap<String, Job>) {
    let mut finished: Vec<(Instant, String)> = table
        .iter()
        .filter_map(|(name, job)| job.ended.map(|t| (t, name.clone())))
        .collect();
    if finished.len() <= KEEP_FINISHED {
        return;
    }
    finished.sort();
    for (_, name) in finished.iter().take(finished.len() - KEEP_FINISHED) {
        table.remove(name);
    }
}
