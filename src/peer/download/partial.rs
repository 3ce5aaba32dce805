//! The partial download on disk: the `.part` file the pieces are written into, the
//! piece list kept beside it, the resume-state record, and placing the finished file
//! into the folder without ever replacing one.

use super::{io_at, DownloadError, Target};
use crate::peer::catalog::FileStamp;
use crate::peer::plan::PiecePlan;
use crate::protocol::hash::{parse_piece_list, piece_list_digest, Sha1Digest};
use crate::protocol::name::FileName;
use crate::protocol::{piece_count, PIECE_SIZE};
use byteorder::{BigEndian, ReadBytesExt};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Cursor, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Which resumed pieces are hashed before they are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Check {
    /// A sample: every [`SPOT_STRIDE`]th piece and the last [`SPOT_TAIL`] recorded.
    Sample,
    All,
}

/// A resume hashes every this-many-th recorded piece...
const SPOT_STRIDE: usize = 16;
/// ...and the last this-many recorded pieces (the ones written last before the stop).
const SPOT_TAIL: usize = 4;

/// The partial download on disk: `<id>.part` (the bytes, in place) and `<id>.state`
/// (which pieces are verified and durable), both in the state dir.
pub(super) struct Partial {
    path: PathBuf,
    state_path: PathBuf,
    pub(super) file: File,
    target: Target,
    name: FileName,
}

/// `<id>.state` format, big-endian: "P2PPART1", 20-byte content id, u64 size, u32 piece
/// size, u32 piece count, u16 name length, the name, the bitmap of verified pieces,
/// then the SHA-1 of all that.
const STATE_MAGIC: &[u8; 8] = b"P2PPART1";

/// The fixed part of a state record before the name: magic, content id, size, piece
/// size, piece count, name length.
const STATE_HEADER: usize = 8 + 20 + 8 + 4 + 4 + 2;

/// What a resume found: how many pieces were kept, and how many of those were hashed
/// before they were kept.
#[derive(Default)]
pub(super) struct Resumed {
    pub(super) kept: usize,
    pub(super) checked: usize,
}

/// What a resume-state file (`<id>.state`) records: the content, its name, and which
/// pieces are verified and written. [`StateRecord::encode`] and [`StateRecord::decode`]
/// are the one definition of the format (docs/ARCHITECTURE.md, "Resume").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateRecord {
    pub id: Sha1Digest,
    pub size: u64,
    /// The file name (a valid name is at most 255 bytes).
    pub name: String,
    /// One flag per piece of `size`: verified and written.
    pub verified: Vec<bool>,
}

impl StateRecord {
    /// The record as stored, checksum included. `verified` should hold one flag per
    /// piece of `size`, or [`decode`](StateRecord::decode) refuses the result.
    pub fn encode(&self) -> Vec<u8> {
        let name = &self.name.as_bytes()[..self.name.len().min(usize::from(u16::MAX))];
        let mut out = Vec::with_capacity(STATE_HEADER + name.len() + self.verified.len() / 8 + 21);
        out.extend_from_slice(STATE_MAGIC);
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&(PIECE_SIZE as u32).to_be_bytes());
        out.extend_from_slice(&(self.verified.len() as u32).to_be_bytes());
        out.extend_from_slice(&(name.len() as u16).to_be_bytes());
        out.extend_from_slice(name);
        let mut bitmap = vec![0u8; self.verified.len().div_ceil(8)];
        for (i, _) in self.verified.iter().enumerate().filter(|(_, v)| **v) {
            bitmap[i / 8] |= 1 << (i % 8);
        }
        out.extend_from_slice(&bitmap);
        let check = Sha1Digest::of(&out);
        out.extend_from_slice(&check.0);
        out
    }

    /// Reads a stored record. `None` when it does not check out: wrong magic, a bad
    /// checksum (a torn or damaged file), another piece size, or a piece count or
    /// bitmap that does not fit the size.
    pub fn decode(bytes: &[u8]) -> Option<StateRecord> {
        if bytes.len() < STATE_HEADER + 20 || &bytes[..8] != STATE_MAGIC {
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
        if u64::from(piece) != PIECE_SIZE
            || count as u64 != piece_count(size)
            || rest.len() != map_len
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

    /// The verified pieces, in order.
    pub fn verified_pieces(&self) -> Vec<usize> {
        (0..self.verified.len())
            .filter(|&i| self.verified[i])
            .collect()
    }
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
        .filter_map(|bytes| StateRecord::decode(&bytes))
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
    pub(super) fn open(part: &Path, t: Target, name: &FileName) -> Result<Partial, DownloadError> {
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

    /// Marks the pieces the state file records as done. A recorded piece is never
    /// trusted blindly: `Check::All` hashes each against the piece list; `Check::Sample`
    /// hashes a spot check (every [`SPOT_STRIDE`]th recorded piece and the last
    /// [`SPOT_TAIL`]) and relies on the whole-file hash at the end for the rest, which
    /// sends the download back here with `Check::All` when it does not match. A piece
    /// that fails its check is fetched again.
    pub(super) fn resume(
        &self,
        plan: &mut PiecePlan,
        pieces: &[Sha1Digest],
        check: Check,
    ) -> Resumed {
        let mut out = Resumed::default();
        let Some(marked) = self.read_state() else {
            return out;
        };
        let marked: Vec<usize> = marked
            .iter()
            .enumerate()
            .filter(|&(i, done)| *done && i < plan.len() && i < pieces.len())
            .map(|(i, _)| i)
            .collect();
        let tail = marked.len().saturating_sub(SPOT_TAIL);
        let mut buf = vec![0u8; PIECE_SIZE as usize];
        for (k, &i) in marked.iter().enumerate() {
            let checked = check == Check::All || k % SPOT_STRIDE == 0 || k >= tail;
            if checked {
                let offset = i as u64 * PIECE_SIZE;
                let len = PIECE_SIZE.min(self.target.size - offset) as usize;
                let good = self.file.read_exact_at(&mut buf[..len], offset).is_ok()
                    && Sha1Digest::of(&buf[..len]) == pieces[i];
                if !good {
                    log::warn!(
                        "resume: piece {i} on disk does not match its hash; fetching it again"
                    );
                    continue;
                }
                out.checked += 1;
            }
            plan.already_have(i);
            out.kept += 1;
        }
        out
    }

    /// Removes what a download of `id` left in `dir` (its partial, state and piece
    /// list).
    pub(super) fn remove_leftovers(dir: &Path, id: Sha1Digest) {
        let part = dir.join(format!("{}.part", id.hex()));
        for ext in ["part", "state", "pieces"] {
            let _ = fs::remove_file(part.with_extension(ext));
        }
    }

    fn list_path(&self) -> PathBuf {
        self.path.with_extension("pieces")
    }

    /// The piece list saved by an earlier attempt, if it still matches the digest.
    pub(super) fn load_piece_list(&self) -> Option<Vec<Sha1Digest>> {
        let raw = fs::read(self.list_path()).ok()?;
        let list = parse_piece_list(&raw)?;
        (list.len() as u64 == piece_count(self.target.size)
            && piece_list_digest(&list) == self.target.digest)
            .then_some(list)
    }

    /// Keeps the (verified) piece list next to the partial, for a resume.
    pub(super) fn save_piece_list(&self, list: &[Sha1Digest]) {
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
        let Some(record) = StateRecord::decode(&bytes) else {
            log::warn!("{}: corrupt; starting over", self.state_path.display());
            return None;
        };
        (record.id == self.target.id && record.size == self.target.size).then_some(record.verified)
    }

    /// Records which pieces are written, replacing the state file atomically (a
    /// temporary file renamed over it), so a reader sees the old record or the new one,
    /// never a mix.
    ///
    /// `durable` also fdatasyncs the partial first and fsyncs the record and the
    /// folder: done once when a download stops early. The records taken while a
    /// download runs skip that: they survive the process being killed (the page cache
    /// keeps both files), and a resume hashes every piece a record marks, so a record
    /// that an OS crash left ahead of the data costs a re-fetch, never a wrong byte.
    /// Syncing every 32 MiB blocked the disk thread, which is on the critical path,
    /// for 0.4 to 1.4 s per GiB (measured with strace -T on this machine).
    pub(super) fn save_state(&self, verified: &[bool], durable: bool) -> io::Result<()> {
        if durable {
            self.file.sync_data()?;
        }
        let out = StateRecord {
            id: self.target.id,
            size: self.target.size,
            name: self.name.to_string(),
            verified: verified.to_vec(),
        }
        .encode();
        let tmp = self.state_path.with_extension("state.tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&out)?;
            if durable {
                f.sync_all()?;
            }
        }
        fs::rename(&tmp, &self.state_path)?;
        if durable {
            if let Some(dir) = self.state_path.parent() {
                File::open(dir)?.sync_all()?;
            }
        }
        Ok(())
    }

    /// Removes the partial and its state (the content is bad or the file is done).
    pub(super) fn discard(&self) {
        let _ = fs::remove_file(&self.path);
        self.forget();
    }

    /// Removes the state and piece list (the partial itself was moved into place).
    pub(super) fn forget(&self) {
        let _ = fs::remove_file(&self.state_path);
        let _ = fs::remove_file(self.list_path());
    }
}

/// Moves a finished, fsynced partial into place under `dest`, never replacing an
/// existing file, and makes the new directory entry durable.
pub(super) fn place(part: &Path, dest: &Path) -> Result<FileStamp, DownloadError> {
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

    fn record(size: u64, verified: &[usize]) -> StateRecord {
        let count = piece_count(size) as usize;
        StateRecord {
            id: Sha1Digest::of(b"content"),
            size,
            name: "file.bin".into(),
            verified: (0..count).map(|i| verified.contains(&i)).collect(),
        }
    }

    #[test]
    fn a_state_record_round_trips() {
        for (size, marked) in [
            (0, vec![]),
            (1, vec![0]),
            (9 * PIECE_SIZE, vec![0, 3, 8]),
            (16 * PIECE_SIZE + 5, vec![16]),
        ] {
            let r = record(size, &marked);
            let back = StateRecord::decode(&r.encode()).unwrap();
            assert_eq!(back, r);
            assert_eq!(back.verified_pieces(), marked);
        }
    }

    #[test]
    fn a_state_record_has_the_documented_layout() {
        let r = record(10 * PIECE_SIZE, &[0, 9]);
        let b = r.encode();
        assert_eq!(&b[..8], b"P2PPART1");
        assert_eq!(&b[8..28], &r.id.0);
        assert_eq!(b[28..36], (10 * PIECE_SIZE).to_be_bytes());
        assert_eq!(b[36..40], (PIECE_SIZE as u32).to_be_bytes());
        assert_eq!(b[40..44], 10u32.to_be_bytes());
        assert_eq!(b[44..46], 8u16.to_be_bytes());
        assert_eq!(&b[46..54], b"file.bin");
        assert_eq!(&b[54..56], &[0b0000_0001, 0b0000_0010]);
        assert_eq!(&b[56..], &Sha1Digest::of(&b[..56]).0);
    }

    #[test]
    fn a_damaged_or_torn_state_record_is_refused() {
        let b = record(9 * PIECE_SIZE, &[1, 2]).encode();
        for at in 0..b.len() {
            let mut bad = b.clone();
            bad[at] ^= 0x01;
            assert_eq!(StateRecord::decode(&bad), None, "byte {at} flipped");
        }
        for len in 0..b.len() {
            assert_eq!(StateRecord::decode(&b[..len]), None, "cut at {len}");
        }
    }

    #[test]
    fn a_state_record_whose_pieces_do_not_fit_the_size_is_refused() {
        let mut r = record(4 * PIECE_SIZE, &[0]);
        r.verified.push(true);
        assert_eq!(StateRecord::decode(&r.encode()), None);
        r.verified.truncate(3);
        assert_eq!(StateRecord::decode(&r.encode()), None);
    }
}
