//! What an upload asks of the file system and of the bytes: hashing them as they
//! stream by, the free space, and a rename that never replaces a file.

use crate::peer::catalog::ContentHashes;
use crate::protocol::hash::Sha1Digest;
use crate::protocol::PIECE_SIZE;
use sha1::{Digest, Sha1};
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// The hashes of a file as its bytes stream by: one SHA-1 per piece (so the content
/// id) and the whole-file SHA-1, in one pass.
#[derive(Default)]
pub struct PieceHasher {
    whole: Sha1,
    piece: Sha1,
    in_piece: u64,
    pieces: Vec<Sha1Digest>,
}

impl PieceHasher {
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.whole.update(bytes);
        while !bytes.is_empty() {
            let room = (PIECE_SIZE - self.in_piece) as usize;
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.piece.update(now);
            self.in_piece += now.len() as u64;
            if self.in_piece == PIECE_SIZE {
                let done = std::mem::take(&mut self.piece);
                self.pieces.push(Sha1Digest(done.finalize().into()));
                self.in_piece = 0;
            }
            bytes = rest;
        }
    }

    /// The hashes of the `size` bytes seen.
    pub fn finish(mut self, size: u64) -> ContentHashes {
        if self.in_piece > 0 {
            self.pieces.push(Sha1Digest(self.piece.finalize().into()));
        }
        let sha1 = Sha1Digest(self.whole.finalize().into());
        ContentHashes::from_parts(size, self.pieces, Some(sha1))
    }
}

/// Bytes free for this user on the file system of `file`, when the system says.
pub(super) fn free_space(file: &File) -> Option<u64> {
    // SAFETY: `stat` is a plain C struct written by fstatvfs; the fd is valid.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatvfs(file.as_raw_fd(), &mut stat) } != 0 {
        return None;
    }
    // fsblkcnt_t and c_ulong are narrower than u64 on some targets.
    #[allow(clippy::useless_conversion)]
    Some(u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize)))
}

/// Renames `from` to `to` unless `to` exists (`AlreadyExists` then): `renameat2` with
/// `RENAME_NOREPLACE`, or where the kernel or the file system does not have it, a
/// hard link (which fails on an existing name too) and an unlink.
pub(super) fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a path"))
    };
    let (old, new) = (c(from)?, c(to)?);
    // SAFETY: both paths are NUL-terminated and live for the duration of the call;
    // renameat2 reads them and its integer arguments only.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            old.as_ptr(),
            libc::AT_FDCWD,
            new.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => {
            fs::hard_link(from, to)?;
            fs::remove_file(from)
        }
        _ => Err(e),
    }
}
