//! A classic fetch: the whole file from a seed-003 holder (no piece list), hashed as
//! it is written.

use super::{
    Arrived, Attempts, Call, DownloadError, DownloadRequest, Progress, SourceError, Target,
    CACHE_SLICE,
};
use crate::net::client::dial;
use crate::net::rate::TokenBucket;
use crate::net::NetError;
use crate::peer::catalog::{hash_reader, ContentHashes};
use crate::peer::pool::Holder;
use crate::protocol::hash::Sha1Digest;
use crate::protocol::MAX_FILE_SIZE;
use crate::units::fmt_bytes;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::Ordering;

/// Tries the classic holders one after the other: used only when no modern holder
/// could deliver. The stream must match the content id when one is known; otherwise
/// it is capped at `--max-unverified-size` and arrives marked unverified (the caller
/// quarantines it unless the user allowed it). `None` when every classic holder
/// failed.
pub(super) fn fetch_from_classic(
    call: &Call<'_>,
    holders: &[Holder],
    target: Option<Target>,
    attempts: &mut Attempts,
) -> Result<Option<Arrived>, DownloadError> {
    let (req, progress) = (call.req, call.progress);
    let classic: Vec<&Holder> = holders.iter().filter(|h| h.is_classic()).collect();
    let expect = target.map(|t| t.id).or(req.id);
    if target.is_none() {
        progress.begin(req.name.as_str(), None);
    }
    for h in classic {
        if call.cancel.load(Ordering::SeqCst) {
            return Err(DownloadError::Cancelled);
        }
        attempts.tried += 1;
        let part = call
            .partial_dir
            .join(format!("classic-{}.part", std::process::id()));
        progress.source(&format!("{} ({}, classic)", h.label(), h.addr()));
        match fetch_classic(req, h, &part, progress, limit(req, target, expect)) {
            Ok(hashes) if expect.is_some_and(|e| e != hashes.id) => {
                let _ = fs::remove_file(&part);
                attempts.last = format!(
                    "classic holder {} sent content {}, not the expected one",
                    h.peer, hashes.id
                );
                progress.note(&attempts.last);
            }
            Ok(hashes) => {
                if expect.is_none() {
                    progress.note(&format!(
                        "'{}' came from classic peer {} without a piece list: it could not be verified in advance (content id {})",
                        req.name, h.peer, hashes.id
                    ));
                }
                return Ok(Some(Arrived {
                    part,
                    hashes,
                    verified_in_advance: expect.is_some(),
                    sources: vec![h.peer.clone()],
                    resumed_bytes: 0,
                }));
            }
            Err(e) => {
                let _ = fs::remove_file(&part);
                attempts.last = format!("{} ({}): {e}", h.label(), h.addr());
                progress.note(&format!("holder {}; trying the next", attempts.last));
            }
        }
    }
    Ok(None)
}

/// Most bytes a classic holder may send: the size the modern holders give; a file's
/// limit when the bytes are checked against a content id at the end; else the
/// smaller `--max-unverified-size`, since nothing can tell them from junk.
fn limit(req: &DownloadRequest<'_>, target: Option<Target>, expect: Option<Sha1Digest>) -> Limit {
    match (target, expect) {
        (Some(t), _) => Limit {
            bytes: t.size,
            why: "the size its content id has",
        },
        (None, Some(_)) => Limit {
            bytes: MAX_FILE_SIZE,
            why: "the largest file size",
        },
        (None, None) => Limit {
            bytes: req.max_unverified_size,
            why: "--max-unverified-size, the most taken without a content id to check; \
                  the bytes were discarded",
        },
    }
}

/// A cap on a classic stream, and why it is there (for the error).
#[derive(Clone, Copy)]
struct Limit {
    bytes: u64,
    why: &'static str,
}

/// Copies what it reads into a file, for hashing a classic stream while saving it.
struct Tee<'a, R> {
    inner: R,
    file: &'a mut File,
    progress: &'a dyn Progress,
    total: u64,
    /// More than this is an error.
    limit: Limit,
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
        if self.total > self.limit.bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the holder sent more than {} ({})",
                    fmt_bytes(self.limit.bytes),
                    self.limit.why
                ),
            ));
        }
        self.file.write_all(&buf[..n])?;
        self.progress.advance(n as u64);
        crate::metrics::global().downloaded_bytes.inc_by(n as u64);
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
    limit: Limit,
) -> Result<ContentHashes, SourceError> {
    let addr = h.addr();
    let mut stream = dial(&addr, &req.timeouts)?;
    let request = format!("./{}/{}", h.name, req.name);
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
