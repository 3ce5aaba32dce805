//! Piece buffers, and the writes that take verified pieces from them to the partial
//! file.
//!
//! Verified pieces are written with `O_DIRECT` where the file system allows it: the
//! disk reads them straight from the buffer they were received into, so a byte costs
//! the downloader one copy (socket to user space) and one hash read, not a second
//! copy into the page cache and the allocation of that cache. The buffers are
//! therefore aligned to [`DIRECT_ALIGN`]; the part of a piece past the last whole
//! block (only the file's tail) is written through the page cache. Where `O_DIRECT`
//! is refused (tmpfs on old kernels, some network and FUSE file systems), every write
//! goes through the page cache, as before. Either way durability comes from the
//! fsync before the file is linked into place: a direct write is on the device when
//! it returns, but the file's size and block map are made durable by that fsync.

use crate::protocol::PIECE_SIZE;
use std::alloc::{self, Layout};
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

/// The alignment of direct I/O: of the buffer's address, of the file offset and of
/// the length. 4 KiB covers the logical block size of every common device.
pub(super) const DIRECT_ALIGN: usize = 4096;

const PIECE_BYTES: usize = PIECE_SIZE as usize;

/// A buffer of up to one piece, aligned for direct I/O.
pub(super) struct PieceBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: `PieceBuf` owns its allocation exclusively, like a `Vec<u8>`.
unsafe impl Send for PieceBuf {}
// SAFETY: shared access only reads through `&[u8]`.
unsafe impl Sync for PieceBuf {}

impl PieceBuf {
    fn layout() -> Layout {
        // PIECE_BYTES is a multiple of DIRECT_ALIGN, itself a power of two.
        Layout::from_size_align(PIECE_BYTES, DIRECT_ALIGN).expect("a valid layout")
    }

    /// An empty buffer with room for one piece.
    pub(super) fn new() -> PieceBuf {
        let layout = Self::layout();
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        PieceBuf { ptr, len: 0 }
    }

    /// Sets the length (at most a piece); the bytes are whatever the buffer held.
    pub(super) fn set_len(&mut self, len: usize) {
        assert!(len <= PIECE_BYTES, "a piece buffer holds at most one piece");
        self.len = len;
    }
}

impl Deref for PieceBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the allocation is PIECE_BYTES long, initialised (zeroed at
        // allocation), and `len <= PIECE_BYTES`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for PieceBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for PieceBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), Self::layout()) }
    }
}

/// Writes pieces into the partial file: directly where the file system allows it,
/// through the page cache otherwise (see the module documentation).
pub(super) struct PieceWriter<'a> {
    buffered: &'a File,
    direct: Option<File>,
    /// Cleared when the file system refuses a direct write it accepted opening.
    direct_ok: AtomicBool,
}

impl<'a> PieceWriter<'a> {
    /// `buffered` is the partial file opened as usual; `path` is opened again with
    /// `O_DIRECT` unless `direct` is false or the file system refuses it.
    pub(super) fn new(buffered: &'a File, path: &Path, direct: bool) -> PieceWriter<'a> {
        let direct = direct
            .then(|| {
                OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(path)
            })
            .and_then(|opened| match opened {
                Ok(file) => Some(file),
                Err(e) => {
                    log::debug!(
                        "{}: no direct writes ({e}); writing through the page cache",
                        path.display()
                    );
                    None
                }
            });
        PieceWriter {
            buffered,
            direct,
            direct_ok: AtomicBool::new(true),
        }
    }

    /// Are writes going straight to the device?
    pub(super) fn is_direct(&self) -> bool {
        self.direct.is_some() && self.direct_ok.load(Ordering::Relaxed)
    }

    /// Writes `data` at `offset`: the whole blocks directly (when the buffer and the
    /// offset are aligned and direct writes work here), the rest through the page
    /// cache.
    pub(super) fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        let aligned =
            data.as_ptr() as usize % DIRECT_ALIGN == 0 && offset % DIRECT_ALIGN as u64 == 0;
        let head = match &self.direct {
            Some(file) if aligned && self.direct_ok.load(Ordering::Relaxed) => {
                let head = data.len() / DIRECT_ALIGN * DIRECT_ALIGN;
                match file.write_all_at(&data[..head], offset) {
                    Ok(()) => head,
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                        log::debug!("direct write refused ({e}); writing through the page cache");
                        self.direct_ok.store(false, Ordering::Relaxed);
                        0
                    }
                    Err(e) => return Err(e),
                }
            }
            _ => 0,
        };
        self.buffered
            .write_all_at(&data[head..], offset + head as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn pattern(len: usize, seed: u8) -> PieceBuf {
        let mut buf = PieceBuf::new();
        buf.set_len(len);
        for (k, b) in buf.iter_mut().enumerate() {
            *b = (k % 251) as u8 ^ seed;
        }
        buf
    }

    #[test]
    fn piece_buffers_are_aligned_for_direct_io() {
        for _ in 0..4 {
            let buf = PieceBuf::new();
            assert_eq!(buf.as_ptr() as usize % DIRECT_ALIGN, 0);
            assert!(buf.is_empty());
        }
    }

    /// Whole pieces, a tail that ends mid-block and a misaligned write all land where
    /// they belong, whether the file system takes direct writes or not; `direct`
    /// switched off writes the same bytes.
    #[test]
    fn writes_land_byte_exact_direct_or_not() {
        for direct in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f.part");
            let size = 2 * PIECE_BYTES + 5000;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .unwrap();
            file.set_len(size as u64).unwrap();
            let writer = PieceWriter::new(&file, &path, direct);
            if !direct {
                assert!(!writer.is_direct());
            }
            let pieces = [
                (1, pattern(PIECE_BYTES, 1)),
                (2, pattern(5000, 2)),
                (0, pattern(PIECE_BYTES, 3)),
            ];
            for (i, buf) in &pieces {
                writer.write_at(buf, (*i * PIECE_BYTES) as u64).unwrap();
            }
            // Not aligned: goes through the page cache.
            writer.write_at(&[7u8; 10], 3).unwrap();
            file.sync_all().unwrap();
            let mut got = Vec::new();
            File::open(&path).unwrap().read_to_end(&mut got).unwrap();
            assert_eq!(got.len(), size);
            let mut want = vec![0u8; size];
            for (i, buf) in &pieces {
                want[i * PIECE_BYTES..i * PIECE_BYTES + buf.len()].copy_from_slice(buf);
            }
            want[3..13].fill(7);
            assert!(got == want, "direct={direct}: the file differs");
        }
    }
}
