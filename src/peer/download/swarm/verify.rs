//! The verifiers of a swarm download: `download-verify-<k>` threads that hash each
//! received piece against the piece list, write a good one in place (see `buffer`)
//! and tell the disk thread, and tell the source how its piece fared.

use super::super::buffer::PieceBuf;
use super::super::disk::Landed;
use super::Swarm;
use crate::peer::plan::SourceId;
use crate::protocol::hash::Sha1Digest;
use crate::protocol::PIECE_SIZE;
use crossbeam_channel::{Receiver, Sender};
use sha1::{Digest, Sha1};
use std::io;

impl Swarm<'_> {
    /// A verifier's loop: judges received pieces until it takes a stop.
    pub(super) fn verify_all(&self, queue: &Receiver<Work>) {
        while let Ok(Work::Piece(received)) = queue.recv() {
            let Received {
                source,
                addr,
                piece,
                buf,
                verdict,
            } = received;
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.judge(source, &addr, piece, buf)
            }))
            .unwrap_or_else(|_| Err(io::Error::other("a verifier thread panicked")));
            // The source may have ended (it failed): the plan knows already.
            let _ = verdict.send(Verdict { piece, result });
        }
    }

    /// Hashes piece `i` from `source` and compares it with the piece list. A good
    /// piece is written in place (unless another source's copy got there first) and
    /// reported to the disk thread; a bad one goes back to the plan, and counts
    /// against its holder (`addr`).
    fn judge(&self, source: SourceId, addr: &str, i: usize, buf: PieceBuf) -> io::Result<Judged> {
        let hash = Sha1Digest(Sha1::digest(&buf[..]).into());
        if Some(&hash) != self.pieces.get().and_then(|list| list.get(i)) {
            let banned = {
                let mut st = self.lock();
                st.plan.bad_copy(i, source);
                st.policy.bad_piece(addr)
            };
            let _ = self.spare_tx.try_send(buf);
            crate::metrics::global().pieces_rejected.inc();
            return Ok(Judged::Bad { banned });
        }
        let first = {
            let mut st = self.lock();
            let first = st.plan.verified(i);
            if first {
                *st.delivered.entry(source).or_insert(0) += 1;
            }
            first
        };
        if !first {
            let _ = self.spare_tx.try_send(buf);
            return Ok(Judged::Good);
        }
        let len = buf.len() as u64;
        let written = self.writer.write_at(&buf, i as u64 * PIECE_SIZE);
        // The disk thread hashes the bytes for the whole-file SHA-1, then gives the
        // buffer back; otherwise it goes back now.
        let data = if self.whole_sha1 {
            Some(buf)
        } else {
            let _ = self.spare_tx.try_send(buf);
            None
        };
        let landed = written.map(|()| Landed {
            piece: i,
            len,
            data,
        });
        let failed = landed
            .as_ref()
            .err()
            .map(|e| io::Error::new(e.kind(), e.to_string()));
        if self.to_disk.send(landed).is_err() {
            return Err(io::Error::other("the disk thread stopped"));
        }
        if let Some(e) = failed {
            return Err(e);
        }
        self.progress.advance(len);
        crate::metrics::global().pieces_verified.inc();
        crate::metrics::global().downloaded_bytes.inc_by(len);
        Ok(Judged::Good)
    }
}

/// Work for a verifier.
pub(super) enum Work {
    Piece(Received),
    /// Every source has ended: the verifier that takes this ends.
    Stop,
}

/// A piece as it arrived from a source, on its way to be judged.
pub(super) struct Received {
    pub(super) source: SourceId,
    /// The holder's address, which a bad piece counts against.
    pub(super) addr: String,
    pub(super) piece: usize,
    pub(super) buf: PieceBuf,
    /// Where the source hears how the piece fared.
    pub(super) verdict: Sender<Verdict>,
}

/// How a piece fared, for its source.
pub(super) struct Verdict {
    pub(super) piece: usize,
    /// `Err`: it could not be written; the download stops.
    pub(super) result: io::Result<Judged>,
}

pub(super) enum Judged {
    /// It matched its hash (and is written, unless another copy was first).
    Good,
    /// It did not; `banned`: its holder is banned for the rest of the download.
    Bad { banned: bool },
}
