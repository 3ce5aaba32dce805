//! The disk side of a download: one `download-disk` thread that keeps track of the
//! verified pieces the verifiers wrote in place (see `buffer`), streams write-back of
//! what went through the page cache, records progress in the state file, hashes the
//! resumed pieces a spot check left unchecked against the piece list and, when asked
//! to (`--verify-sha1`), computes the whole-file SHA-1 in piece order.
//!
//! The content id needs no whole-file pass: it is the digest of the piece list, and
//! every piece was checked against the list before it got here, or is checked here
//! (a resumed one).

use super::buffer::PieceBuf;
use super::partial::Partial;
use super::CACHE_SLICE;
use crate::protocol::hash::Sha1Digest;
use crate::protocol::PIECE_SIZE;
use sha1::{Digest, Sha1};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::time::{Duration, Instant};

/// Progress is recorded in the state file every this many bytes, or this often,
/// whichever comes first: a killed download loses at most that much.
const STATE_EVERY: u64 = 32 * 1024 * 1024;
const STATE_INTERVAL: Duration = Duration::from_millis(500);

/// Written data is handed to the disk in windows of this many bytes, so the final
/// fsync has little left to do.
const WRITEBACK_EVERY: u64 = 16 * 1024 * 1024;

/// The disk side of a download: tracks the verified pieces written in place, hands
/// dirty pages to the disk early, and, when asked to, computes the whole-file SHA-1 in
/// piece order (reading back pieces that were written before their turn came).
pub(super) struct DiskWriter<'a> {
    partial: &'a Partial,
    file: &'a File,
    size: u64,
    written: Vec<bool>,
    /// The pieces before this one are on disk, hashed into `sha` (when it is
    /// computed), and checked (when they were `unchecked`).
    next: usize,
    /// The whole-file SHA-1 so far, when it is computed.
    sha: Option<Sha1>,
    /// Resumed pieces kept without a check, and the piece list to check them against.
    unchecked: Vec<bool>,
    pieces: &'a [Sha1Digest],
    /// Unchecked pieces that turned out not to match their hash.
    bad: Vec<usize>,
    /// Write-back has been started up to here...
    started: u64,
    /// ...and waited for up to here.
    waited: u64,
    /// Bytes written since the state file last recorded progress, and when it did.
    since_state: u64,
    last_state: Instant,
}

impl<'a> DiskWriter<'a> {
    /// `written`: the pieces already on disk (resumed); `unchecked`: those of them
    /// not checked yet, against `pieces`; `whole_sha1`: compute the whole-file SHA-1.
    pub(super) fn new(
        partial: &'a Partial,
        size: u64,
        written: Vec<bool>,
        unchecked: Vec<bool>,
        pieces: &'a [Sha1Digest],
        whole_sha1: bool,
    ) -> DiskWriter<'a> {
        DiskWriter {
            partial,
            file: &partial.file,
            size,
            written,
            next: 0,
            sha: whole_sha1.then(Sha1::new),
            unchecked,
            pieces,
            bad: Vec::new(),
            started: 0,
            waited: 0,
            since_state: 0,
            last_state: Instant::now(),
        }
    }

    /// Takes the pieces the verifiers wrote, in any order, until the queue closes.
    /// A piece comes with its bytes only when the whole-file SHA-1 is computed (the
    /// bytes of the next piece in order are hashed at once; the others are read back
    /// when their turn comes); the buffers go back to `spare`.
    pub(super) fn run(
        mut self,
        queue: &crossbeam_channel::Receiver<io::Result<Landed>>,
        spare: &crossbeam_channel::Sender<PieceBuf>,
    ) -> io::Result<Written> {
        let mut scratch = Vec::new();
        loop {
            // Pieces already on disk (resumed, or written before their turn) are read
            // back and hashed one at a time (when they need a check or the whole file
            // is hashed), between new pieces and while none waits, so a resume hashes
            // what it kept while the rest is being fetched.
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
            let Landed {
                piece: i,
                len,
                data,
            } = item?;
            self.written[i] = true;
            if let (true, Some(sha), Some(data)) = (i == self.next, &mut self.sha, &data) {
                sha.update(&data[..]);
                self.next += 1;
            }
            if let Some(data) = data {
                let _ = spare.try_send(data);
            }
            self.write_back();
            self.since_state += len;
            if self.since_state >= STATE_EVERY || self.last_state.elapsed() >= STATE_INTERVAL {
                self.save_state(false)?;
            }
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
        Ok(Written {
            sha1: self.sha.map(|sha| Sha1Digest(sha.finalize().into())),
            bad: self.bad,
        })
    }

    /// Records the written pieces in the state file (`durable`: see
    /// [`Partial::save_state`]).
    fn save_state(&mut self, durable: bool) -> io::Result<()> {
        self.since_state = 0;
        self.last_state = Instant::now();
        self.partial.save_state(&self.written, durable)
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

    /// Is the next piece of the in-order prefix already on disk?
    fn can_catch_up(&self) -> bool {
        self.written.get(self.next).copied().unwrap_or(false)
    }

    /// Moves the in-order prefix past the next piece, which is on disk: reads it back
    /// when it needs a check (against the piece list) or the whole file is hashed.
    fn catch_up_one(&mut self, scratch: &mut Vec<u8>) -> io::Result<()> {
        let i = self.next;
        let check = self.unchecked.get(i).copied().unwrap_or(false);
        if check || self.sha.is_some() {
            let offset = i as u64 * PIECE_SIZE;
            scratch.resize(PIECE_SIZE.min(self.size - offset) as usize, 0);
            let mut piece = check.then(Sha1::new);
            for (k, slice) in scratch.chunks_mut(CACHE_SLICE).enumerate() {
                self.file
                    .read_exact_at(slice, offset + (k * CACHE_SLICE) as u64)?;
                if let Some(sha) = &mut self.sha {
                    sha.update(&*slice);
                }
                if let Some(piece) = &mut piece {
                    piece.update(&*slice);
                }
            }
            if let Some(piece) = piece {
                if Some(&Sha1Digest(piece.finalize().into())) != self.pieces.get(i) {
                    log::warn!("resume: piece {i} on disk does not match its hash");
                    self.bad.push(i);
                }
            }
        }
        self.next += 1;
        self.write_back();
        Ok(())
    }
}

/// A verified piece the verifier wrote into the file.
pub(super) struct Landed {
    pub(super) piece: usize,
    pub(super) len: u64,
    /// Its bytes, when the whole-file SHA-1 is computed.
    pub(super) data: Option<PieceBuf>,
}

/// What the disk thread leaves once every piece is written.
pub(super) struct Written {
    /// The whole-file SHA-1, when it was computed.
    pub(super) sha1: Option<Sha1Digest>,
    /// Resumed pieces kept unchecked that do not match their hash: the file is not
    /// the content until they are fetched again.
    pub(super) bad: Vec<usize>,
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
