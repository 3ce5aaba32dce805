//! The partial download on disk: the `.part` file the pieces are written into, the
//! piece list kept beside it, the resume-state record, and placing the finished file
//! into the folder without ever replacing one.
//!
//! Partials of the earlier format were named by the whole-file SHA-1 (the content id
//! then) and recorded as `P2PPART1`: [`migrate`] renames them to the content id of
//! now, which it derives without reading the partial (see there), and keeps the ones
//! it cannot derive it for until a download whose holders claim that SHA-1 adopts
//! them ([`Partial::adopt`]).

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
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Which resumed pieces are hashed before they are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Check {
    /// A sample: every [`SPOT_STRIDE`]th piece and the last [`SPOT_TAIL`] recorded;
    /// the disk thread hashes the others as the download runs.
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
    pub(super) path: PathBuf,
    state_path: PathBuf,
    pub(super) file: File,
    target: Target,
    name: FileName,
}

/// `<id>.state` format, big-endian: "P2PPART2", 20-byte content id, u64 size, u32 piece
/// size, u32 piece count, u16 name length, the name, the bitmap of verified pieces,
/// then the SHA-1 of all that.
const STATE_MAGIC: &[u8; 8] = b"P2PPART2";

/// The earlier format: the same layout, with the whole-file SHA-1 as the id.
const STATE_MAGIC_V1: &[u8; 8] = b"P2PPART1";

/// The fixed part of a state record before the name: magic, content id, size, piece
/// size, piece count, name length.
const STATE_HEADER: usize = 8 + 20 + 8 + 4 + 4 + 2;

/// What a resume found: how many recorded pieces were kept, how many of those were
/// hashed before they were kept, which were not (the disk thread hashes those), and
/// how many failed their check (they are fetched again).
#[derive(Default)]
pub(super) struct Resumed {
    pub(super) kept: usize,
    pub(super) checked: usize,
    /// One flag per piece: kept without a check yet.
    pub(super) unchecked: Vec<bool>,
    pub(super) dropped: usize,
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
        StateRecord::decode_as(bytes, STATE_MAGIC)
    }

    /// Reads a record of the earlier format (`P2PPART1`), whose `id` is the file's
    /// whole-file SHA-1.
    pub fn decode_v1(bytes: &[u8]) -> Option<StateRecord> {
        StateRecord::decode_as(bytes, STATE_MAGIC_V1)
    }

    fn decode_as(bytes: &[u8], magic: &[u8; 8]) -> Option<StateRecord> {
        if bytes.len() < STATE_HEADER + 20 || &bytes[..8] != magic {
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
    /// The content id; for a `legacy` record, the whole-file SHA-1.
    pub id: Sha1Digest,
    pub size: u64,
    pub pieces_done: usize,
    pub pieces: usize,
    /// A record of the earlier format whose content id could not be derived (see
    /// [`migrate`]): a download of the name whose holders claim `id` as the
    /// whole-file SHA-1 adopts it, so resume it by name, not by id.
    pub legacy: bool,
}

/// The resumable downloads in a state dir (partials of the earlier format are
/// migrated first).
pub fn partials(state_dir: &Path) -> Vec<PartialInfo> {
    let dir = state_dir.join("partial");
    migrate(&dir);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<PartialInfo> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "state"))
        .filter_map(|e| fs::read(e.path()).ok())
        .filter_map(|bytes| match StateRecord::decode(&bytes) {
            Some(r) => Some((r, false)),
            None => StateRecord::decode_v1(&bytes).map(|r| (r, true)),
        })
        .map(|(r, legacy)| PartialInfo {
            pieces_done: r.verified.iter().filter(|v| **v).count(),
            pieces: r.verified.len(),
            name: r.name,
            id: r.id,
            size: r.size,
            legacy,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// `<dir>/<id hex>.<ext>`
fn file_of(dir: &Path, id: Sha1Digest, ext: &str) -> PathBuf {
    dir.join(format!("{}.{ext}", id.hex()))
}

/// Brings the partials in `dir` (a state dir's `partial` folder) of the earlier
/// format to the current one, without reading a byte of any partial.
///
/// A `P2PPART1` record names its partial by the whole-file SHA-1. The content id is
/// derived from what is on disk: for an empty file it is the same value (the SHA-1 of
/// nothing); for a file of one piece, the whole-file SHA-1 *is* the only piece's hash,
/// so the id is the SHA-1 of those 20 bytes; otherwise it is the digest of the piece
/// list kept beside the partial (`<old>.pieces`, saved once it had matched the digest
/// the index gave), when that is there and of the right length. The steps are
/// ordered so that a stop between any two leaves what the next run completes: rename
/// `.part`, write the new `.state`, delete the old one, rename `.pieces` (a piece list
/// left under its old name is found by its digest). A record whose id cannot be
/// derived is left as it is, for [`Partial::adopt`]. Failures are logged: the partial
/// stays, and so does the chance of a later run.
pub fn migrate(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    for path in paths
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "state"))
    {
        let Some(old) = fs::read(path).ok().and_then(|b| StateRecord::decode_v1(&b)) else {
            continue;
        };
        let Some(id) = derived_id(dir, &old) else {
            log::info!(
                "{}: a partial download of '{}' from an earlier version whose content id \
                 cannot be derived; kept until a download of it adopts it",
                path.display(),
                old.name
            );
            continue;
        };
        if let Err(e) = move_record(dir, &old, id) {
            log::warn!(
                "{}: cannot bring the partial of '{}' up to date: {e}",
                path.display(),
                old.name
            );
        }
    }
    // A piece list whose partial was moved, left under its old name by a stop.
    for path in paths
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "pieces"))
    {
        if path.with_extension("state").exists() {
            continue;
        }
        let Some(list) = fs::read(path).ok().and_then(|raw| parse_piece_list(&raw)) else {
            continue;
        };
        let to = file_of(dir, piece_list_digest(&list), "pieces");
        if file_of(dir, piece_list_digest(&list), "state").exists() && !to.exists() {
            let _ = fs::rename(path, to);
        }
    }
}

/// The content id of an earlier-format record, when it can be derived (see
/// [`migrate`]).
fn derived_id(dir: &Path, old: &StateRecord) -> Option<Sha1Digest> {
    match piece_count(old.size) {
        0 => Some(piece_list_digest(&[])),
        1 => Some(piece_list_digest(&[old.id])),
        n => {
            let raw = fs::read(file_of(dir, old.id, "pieces")).ok()?;
            let list = parse_piece_list(&raw)?;
            (list.len() as u64 == n).then(|| piece_list_digest(&list))
        }
    }
}

/// Moves an earlier-format record and its files to the names of content `id`.
fn move_record(dir: &Path, old: &StateRecord, id: Sha1Digest) -> io::Result<()> {
    let from = |ext: &str| file_of(dir, old.id, ext);
    let to = |ext: &str| file_of(dir, id, ext);
    let record = StateRecord { id, ..old.clone() };
    if id == old.id {
        // An empty file: the names stay, the record takes the current format.
        return write_atomically(&to("state"), &record.encode(), true);
    }
    if from("part").exists() && !to("part").exists() {
        fs::rename(from("part"), to("part"))?;
    }
    write_atomically(&to("state"), &record.encode(), true)?;
    fs::remove_file(from("state"))?;
    if from("pieces").exists() && !to("pieces").exists() {
        fs::rename(from("pieces"), to("pieces"))?;
    }
    log::info!(
        "partial download of '{}' brought up to date: content id {id}",
        old.name
    );
    Ok(())
}

/// Replaces `path` with `bytes` through a temporary file renamed over it, so a reader
/// sees the old bytes or the new ones, never a mix; `durable` also fsyncs the file and
/// its folder.
fn write_atomically(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
    }
    fs::rename(&tmp, path)?;
    if durable {
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
    }
    Ok(())
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
        reserve(&file, t.size).map_err(io_at(part))?;
        Ok(Partial {
            path: part.to_owned(),
            state_path: part.with_extension("state"),
            file,
            target: t,
            name: name.clone(),
        })
    }

    /// Takes over a partial of the earlier format that [`migrate`] could not name by
    /// its content id, when the holders of this target claim its whole-file SHA-1 is
    /// the one the partial was named by. The claim is not trusted: a resume checks
    /// every piece it keeps against the piece list, which the content id proves, so a
    /// false claim costs a download, never a wrong byte. Only a partial of the same
    /// name and size, and only when nothing of this content's own is on disk.
    pub(super) fn adopt(dir: &Path, t: Target, name: &FileName) {
        let Some(sha1) = t.sha1 else {
            return;
        };
        let from = |ext: &str| file_of(dir, sha1, ext);
        let to = |ext: &str| file_of(dir, t.id, ext);
        if to("state").exists() || to("part").exists() {
            return;
        }
        let Some(old) = fs::read(from("state"))
            .ok()
            .and_then(|b| StateRecord::decode_v1(&b))
            .filter(|r| r.size == t.size && r.name == name.as_str())
        else {
            return;
        };
        match move_record(dir, &old, t.id) {
            Ok(()) => log::info!(
                "resuming '{}' from a partial of an earlier version (sha1 {sha1})",
                old.name
            ),
            Err(e) => log::warn!("cannot take over the partial of '{}': {e}", old.name),
        }
    }

    /// Marks the pieces the state file records as done. A recorded piece is never
    /// trusted blindly: `Check::All` hashes each against the piece list (which the
    /// content id proves); `Check::Sample` hashes a spot check (every
    /// [`SPOT_STRIDE`]th recorded piece and the last [`SPOT_TAIL`]) and returns the
    /// others as unchecked, for the disk thread to hash while the rest is fetched; a
    /// piece it finds damaged sends the download back here with `Check::All`. A piece
    /// that fails its check here is fetched again.
    pub(super) fn resume(
        &self,
        plan: &mut PiecePlan,
        pieces: &[Sha1Digest],
        check: Check,
    ) -> Resumed {
        let mut out = Resumed {
            unchecked: vec![false; plan.len()],
            ..Resumed::default()
        };
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
                    out.dropped += 1;
                    continue;
                }
                out.checked += 1;
            } else {
                out.unchecked[i] = true;
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

    /// The piece list saved by an earlier attempt, if it still matches the content id.
    pub(super) fn load_piece_list(&self) -> Option<Vec<Sha1Digest>> {
        let raw = fs::read(self.list_path()).ok()?;
        let list = parse_piece_list(&raw)?;
        (list.len() as u64 == piece_count(self.target.size)
            && piece_list_digest(&list) == self.target.id)
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

    /// Does the state file record any piece of this content?
    pub(super) fn has_recorded_pieces(&self) -> bool {
        self.read_state()
            .is_some_and(|marked| marked.iter().any(|&done| done))
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
        write_atomically(&self.state_path, &out, durable)
    }

    /// Removes the state and piece list (the partial itself was moved into place).
    pub(super) fn forget(&self) {
        let _ = fs::remove_file(&self.state_path);
        let _ = fs::remove_file(self.list_path());
    }
}

/// The partials some download of this process is using: two downloads of one content
/// (under two names, or from the console and the HTTP interface at once) would share
/// one partial, and the second to finish would find it gone.
static CLAIMED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A partial's path, claimed by one download until dropped.
pub(super) struct Claim(PathBuf);

impl Claim {
    /// Claims `part`; `None` when another download of this process holds it.
    pub(super) fn take(part: PathBuf) -> Option<Claim> {
        let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
        if claimed.contains(&part) {
            return None;
        }
        claimed.push(part.clone());
        Some(Claim(part))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
        claimed.retain(|p| p != &self.0);
    }
}

/// Allocates the file's blocks up front (`fallocate`): a full disk shows at the start
/// of a download, not in its middle; the file is not fragmented by pieces arriving
/// out of order; and direct writes into allocated blocks run side by side (ext4 and
/// XFS serialise those that allocate). A file system without `fallocate` is fine.
fn reserve(file: &File, size: u64) -> io::Result<()> {
    if size == 0 {
        return Ok(());
    }
    // What is not allocated yet must fit: a failed fallocate keeps what it allocated,
    // and a size the index claims (up to 1 TiB) must not fill the disk.
    let allocated = file.metadata()?.blocks().saturating_mul(512);
    let needed = size.saturating_sub(allocated);
    // SAFETY: `stat` is a plain C struct written by fstatvfs; the fd is valid.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatvfs(file.as_raw_fd(), &mut stat) } == 0 {
        // fsblkcnt_t and c_ulong are narrower than u64 on some targets.
        #[allow(clippy::useless_conversion)]
        let free = u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize));
        if needed > free {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "not enough space: {} more needed, {} free",
                    crate::units::fmt_bytes(needed),
                    crate::units::fmt_bytes(free)
                ),
            ));
        }
    }
    // SAFETY: fallocate only reads its integer arguments; the fd is valid for the
    // lifetime of `file`.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, size as libc::off_t) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::EINVAL) => Ok(()),
        _ => Err(e),
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
    fn a_partial_is_claimed_by_one_download_at_a_time() {
        let path = PathBuf::from("/nonexistent/claim-test.part");
        let first = Claim::take(path.clone()).expect("free");
        assert!(Claim::take(path.clone()).is_none(), "held");
        drop(first);
        assert!(Claim::take(path).is_some(), "free again");
    }

    /// A size beyond the free space is refused before anything is allocated, so a
    /// claimed size cannot fill the disk; a size that fits is allocated.
    #[test]
    fn reserving_more_than_the_free_space_is_refused_and_allocates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("big.part")).unwrap();
        let e = reserve(&file, 1 << 60).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{e}");
        assert!(e.to_string().contains("not enough space"), "{e}");
        assert_eq!(file.metadata().unwrap().blocks(), 0);
        reserve(&file, 1 << 20).unwrap();
        // tmpfs and others without fallocate leave the file as it was.
        let blocks = file.metadata().unwrap().blocks();
        assert!(blocks == 0 || blocks * 512 >= 1 << 20, "{blocks} blocks");
    }

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
        assert_eq!(&b[..8], b"P2PPART2");
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

    /// A partial of the earlier format: `size` bytes named by their whole-file
    /// SHA-1, pieces 0 and 2 (when there) recorded, and the piece list beside it when
    /// `with_list`. Returns the bytes.
    fn old_partial(dir: &Path, size: usize, with_list: bool) -> Vec<u8> {
        let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
        let sha1 = Sha1Digest::of(&data);
        let count = piece_count(size as u64) as usize;
        let record = StateRecord {
            id: sha1,
            size: size as u64,
            name: "old.bin".into(),
            verified: (0..count).map(|i| i == 0 || i == 2).collect(),
        };
        let mut v1 = record.encode();
        v1[..8].copy_from_slice(b"P2PPART1");
        let sealed = v1.len() - 20;
        let check = Sha1Digest::of(&v1[..sealed]);
        v1[sealed..].copy_from_slice(&check.0);
        fs::write(file_of(dir, sha1, "state"), v1).unwrap();
        fs::write(file_of(dir, sha1, "part"), &data).unwrap();
        if with_list {
            let list: Vec<u8> = data
                .chunks(PIECE_SIZE as usize)
                .flat_map(|p| Sha1Digest::of(p).0)
                .collect();
            fs::write(file_of(dir, sha1, "pieces"), list).unwrap();
        }
        data
    }

    fn id_of(data: &[u8]) -> Sha1Digest {
        let pieces: Vec<Sha1Digest> = data
            .chunks(PIECE_SIZE as usize)
            .map(Sha1Digest::of)
            .collect();
        piece_list_digest(&pieces)
    }

    #[test]
    fn partials_of_the_earlier_format_are_renamed_to_their_content_id() {
        for (size, with_list) in [
            (0, false),
            (1000, false),
            (PIECE_SIZE as usize, false),
            (3 * PIECE_SIZE as usize + 7, true),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            let data = old_partial(d, size, with_list);
            let (sha1, id) = (Sha1Digest::of(&data), id_of(&data));
            migrate(d);
            let record = StateRecord::decode(&fs::read(file_of(d, id, "state")).unwrap())
                .unwrap_or_else(|| panic!("size {size}: no record under the content id"));
            assert_eq!((record.id, record.name.as_str()), (id, "old.bin"));
            assert_eq!(
                record.verified.first() == Some(&true),
                size > 0,
                "size {size}"
            );
            assert_eq!(fs::read(file_of(d, id, "part")).unwrap(), data);
            if size > 0 {
                assert!(!file_of(d, sha1, "state").exists(), "size {size}");
                assert!(!file_of(d, sha1, "part").exists());
            }
            assert_eq!(file_of(d, id, "pieces").exists(), with_list);
            // Once is enough: a second run changes nothing.
            migrate(d);
            assert_eq!(
                StateRecord::decode(&fs::read(file_of(d, id, "state")).unwrap()),
                Some(record)
            );
        }
    }

    #[test]
    fn a_migration_stopped_half_way_is_completed_by_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let data = old_partial(d, 3 * PIECE_SIZE as usize, true);
        let (sha1, id) = (Sha1Digest::of(&data), id_of(&data));
        // Stopped after the partial was renamed.
        fs::rename(file_of(d, sha1, "part"), file_of(d, id, "part")).unwrap();
        migrate(d);
        assert!(StateRecord::decode(&fs::read(file_of(d, id, "state")).unwrap()).is_some());
        assert!(file_of(d, id, "pieces").exists() && !file_of(d, sha1, "state").exists());
        // Stopped before the piece list was renamed.
        fs::rename(file_of(d, id, "pieces"), file_of(d, sha1, "pieces")).unwrap();
        migrate(d);
        assert!(file_of(d, id, "pieces").exists() && !file_of(d, sha1, "pieces").exists());
    }

    #[test]
    fn a_partial_whose_id_cannot_be_derived_is_kept_and_adopted_by_its_sha1() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let data = old_partial(d, 2 * PIECE_SIZE as usize + 1, false);
        let (sha1, id) = (Sha1Digest::of(&data), id_of(&data));
        migrate(d);
        assert!(file_of(d, sha1, "state").exists(), "kept as it was");
        let t = |sha1| Target {
            id,
            size: data.len() as u64,
            sha1,
        };
        let name = FileName::parse("old.bin").unwrap();
        // Holders that claim no SHA-1, or another one, adopt nothing; nor does a
        // download of another name.
        Partial::adopt(d, t(None), &name);
        Partial::adopt(d, t(Some(Sha1Digest::of(b"other"))), &name);
        Partial::adopt(d, t(Some(sha1)), &FileName::parse("other.bin").unwrap());
        assert!(file_of(d, sha1, "state").exists());
        Partial::adopt(d, t(Some(sha1)), &name);
        let record = StateRecord::decode(&fs::read(file_of(d, id, "state")).unwrap()).unwrap();
        assert_eq!(record.verified_pieces(), vec![0, 2]);
        assert_eq!(fs::read(file_of(d, id, "part")).unwrap(), data);
        assert!(!file_of(d, sha1, "state").exists());
    }

    #[test]
    fn partials_lists_records_of_both_formats() {
        let state = tempfile::tempdir().unwrap();
        let d = state.path().join("partial");
        fs::create_dir(&d).unwrap();
        let one = old_partial(&d, 10, false);
        let listed = partials(state.path());
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].id, listed[0].legacy), (id_of(&one), false));
        let dir2 = tempfile::tempdir().unwrap();
        let d2 = dir2.path().join("partial");
        fs::create_dir(&d2).unwrap();
        let big = old_partial(&d2, 2 * PIECE_SIZE as usize + 1, false);
        let listed = partials(dir2.path());
        assert_eq!(
            (listed[0].id, listed[0].legacy),
            (Sha1Digest::of(&big), true)
        );
    }
}
