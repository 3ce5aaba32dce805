//! The shared-file catalog: what a peer shares, with the hashes that identify it.
//!
//! Scanning and hashing read the disk; the [`Catalog`] itself is a plain map. The
//! catalog is the only way a request reaches a file: a name from the wire is looked
//! up here, never joined onto a path, so nothing outside the shared folder (and no
//! dotfile, and no symlink that leaves the folder) can ever be served.

use crate::protocol::hash::{piece_list_digest, Sha1Digest};
use crate::protocol::name::FileName;
use crate::protocol::PIECE_SIZE;
use sha1::{Digest, Sha1};
use std::collections::BTreeMap;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Identity of a file's bytes on disk as of hashing: if any of these change, the
/// hashes no longer describe the file. The change time is what a writer cannot put
/// back (`touch -d` restores the modification time, and only that), so a file
/// rewritten in place is noticed however its mtime was dressed up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub dev: u64,
    pub ino: u64,
}

impl FileStamp {
    pub fn of(meta: &Metadata) -> FileStamp {
        FileStamp {
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// Hashes of a file's content.
///
/// The content id is the digest of the piece list: a downloader checks each piece
/// against the list and the list against the id, so verified pieces prove the whole
/// file in one pass. The whole-file SHA-1 (what `sha1sum` prints) is an attribute
/// beside it, known only when this node computed it from the bytes: from a folder
/// scan, or a download that hashed the whole file (`--verify-sha1`). It is never
/// copied from what another node claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentHashes {
    pub size: u64,
    /// The content id: SHA-1 of the concatenated piece hashes.
    pub id: Sha1Digest,
    /// SHA-1 of each piece, in order.
    pub pieces: Arc<Vec<Sha1Digest>>,
    /// SHA-1 of the whole file, when this node computed it.
    pub sha1: Option<Sha1Digest>,
}

impl ContentHashes {
    /// The hashes of `size` bytes with these pieces; the id is derived from them.
    pub fn from_parts(
        size: u64,
        pieces: Vec<Sha1Digest>,
        sha1: Option<Sha1Digest>,
    ) -> ContentHashes {
        ContentHashes {
            size,
            id: piece_list_digest(&pieces),
            pieces: Arc::new(pieces),
            sha1,
        }
    }
}

/// One shared file.
#[derive(Clone, Debug)]
pub struct SharedFile {
    pub name: FileName,
    /// The real path (symlinks resolved, inside the shared folder).
    pub path: PathBuf,
    pub stamp: FileStamp,
    pub hashes: ContentHashes,
}

/// Hashes a reader in one pass: one SHA-1 per piece (so the content id) and the
/// whole-file SHA-1.
pub fn hash_reader(reader: impl Read) -> io::Result<ContentHashes> {
    hash_reader_with(reader, &mut |_| {})
}

/// [`hash_reader`], calling `hashed` with the bytes of each piece once it is hashed.
pub fn hash_reader_with(
    mut reader: impl Read,
    hashed: &mut dyn FnMut(u64),
) -> io::Result<ContentHashes> {
    let mut whole = Sha1::new();
    let mut pieces = Vec::new();
    let mut buf = vec![0u8; PIECE_SIZE as usize];
    let mut size = 0u64;
    loop {
        // Fill a whole piece (reads may return less).
        let mut filled = 0;
        while filled < buf.len() {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            break;
        }
        whole.update(&buf[..filled]);
        pieces.push(Sha1Digest::of(&buf[..filled]));
        size += filled as u64;
        hashed(filled as u64);
        if filled < buf.len() {
            break;
        }
    }
    Ok(ContentHashes::from_parts(
        size,
        pieces,
        Some(Sha1Digest(whole.finalize().into())),
    ))
}

/// Opens a file for reading without following a symlink in its last component.
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Hashes the file at `path`, checking that it did not change while being read.
pub fn hash_file(path: &Path) -> io::Result<(FileStamp, ContentHashes)> {
    hash_file_with(path, &mut |_| {})
}

/// [`hash_file`], calling `hashed` with the bytes of each piece once it is hashed.
pub fn hash_file_with(
    path: &Path,
    hashed: &mut dyn FnMut(u64),
) -> io::Result<(FileStamp, ContentHashes)> {
    let file = open_nofollow(path)?;
    let before = FileStamp::of(&file.metadata()?);
    let hashes = hash_reader_with(&file, hashed)?;
    let after = FileStamp::of(&file.metadata()?);
    if before != after || hashes.size != after.size {
        return Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "file changed while it was being hashed",
        ));
    }
    Ok((after, hashes))
}

/// A file found by a scan, not yet hashed.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub name: FileName,
    pub path: PathBuf,
    pub stamp: FileStamp,
}

/// Why an entry of the folder is not shared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub entry: String,
    pub reason: String,
}

/// Lists the shareable files at the top of `dir`: regular files whose names pass the
/// naming rules (so no dotfiles), and symlinks only when they resolve to a regular
/// file inside `dir`.
pub fn scan(dir: &Path) -> io::Result<(Vec<Candidate>, Vec<Skipped>)> {
    let root = dir.canonicalize()?;
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for entry in fs::read_dir(&root)? {
        match examine(&root, &entry?) {
            Some(Ok(candidate)) => found.push(candidate),
            Some(Err(why)) => skipped.push(why),
            None => {}
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((found, skipped))
}

/// Whether one entry of the shared folder is shared: `None` for what is left out
/// silently (dotfiles, folders, entries that vanished meanwhile).
fn examine(root: &Path, entry: &fs::DirEntry) -> Option<Result<Candidate, Skipped>> {
    let raw = entry.file_name();
    let Some(text) = raw.to_str() else {
        return Some(Err(Skipped {
            entry: raw.to_string_lossy().into_owned(),
            reason: "name is not valid UTF-8".into(),
        }));
    };
    if text.starts_with('.') {
        return None; // dotfiles (and the state dir) are never shared, silently
    }
    let skip = |reason: String| {
        Some(Err(Skipped {
            entry: text.to_owned(),
            reason,
        }))
    };
    let name = match FileName::parse(text) {
        Ok(n) => n,
        Err(e) => return skip(e.to_string()),
    };
    let path = entry.path();
    // None: vanished since read_dir.
    let link_meta = fs::symlink_metadata(&path).ok()?;
    let real = if link_meta.file_type().is_symlink() {
        match follow_link(root, &path) {
            Ok(real) => real,
            Err(why) => return skip(why.into()),
        }
    } else {
        path
    };
    let meta = fs::symlink_metadata(&real).ok()?;
    if meta.file_type().is_file() && meta.len() > crate::protocol::MAX_FILE_SIZE {
        return skip(format!(
            "larger than the {} byte limit",
            crate::protocol::MAX_FILE_SIZE
        ));
    }
    if meta.is_dir() {
        return None; // folders are not shared, silently
    }
    if !meta.file_type().is_file() {
        return skip("not a regular file".into());
    }
    Some(Ok(Candidate {
        name,
        path: real,
        stamp: FileStamp::of(&meta),
    }))
}

/// Where a symlink in the shared folder leads, when that may be shared: a file of the
/// folder itself whose name passes the naming rules (a dotfile stays private even
/// behind a link with a plain name).
fn follow_link(root: &Path, path: &Path) -> Result<std::path::PathBuf, &'static str> {
    match path.canonicalize() {
        Ok(real)
            if real.parent() == Some(root)
                && real
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| FileName::parse(n).is_ok()) =>
        {
            Ok(real)
        }
        Ok(real) if real.parent() == Some(root) => {
            Err("symlink leads to a file that is not shared (a dotfile)")
        }
        Ok(_) => Err("symlink leads outside the shared folder"),
        Err(_) => Err("dangling symlink"),
    }
}

/// The files a peer shares, by name.
#[derive(Debug, Default)]
pub struct Catalog {
    files: BTreeMap<FileName, SharedFile>,
}

impl Catalog {
    pub fn new() -> Catalog {
        Catalog::default()
    }

    pub fn insert(&mut self, file: SharedFile) -> Option<SharedFile> {
        self.files.insert(file.name.clone(), file)
    }

    pub fn remove(&mut self, name: &FileName) -> Option<SharedFile> {
        self.files.remove(name)
    }

    pub fn get(&self, name: &str) -> Option<&SharedFile> {
        // FileName's ordering is its string's, so a lookup by &str is sound.
        FileName::parse(name).ok().and_then(|n| self.files.get(&n))
    }

    pub fn iter(&self) -> impl Iterator<Item = &SharedFile> {
        self.files.values()
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.values().map(|f| f.hashes.size).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_the_piece_list_digest_and_the_whole_file_hash_is_beside_it() {
        let data: Vec<u8> = (0..(PIECE_SIZE as usize * 2 + 10))
            .map(|i| (i % 251) as u8)
            .collect();
        let h = hash_reader(&data[..]).unwrap();
        assert_eq!(h.size, data.len() as u64);
        assert_eq!(h.sha1, Some(Sha1Digest::of(&data)));
        assert_eq!(h.pieces.len(), 3);
        assert_eq!(
            h.pieces[2],
            Sha1Digest::of(&data[2 * PIECE_SIZE as usize..])
        );
        // The content id is the digest of the piece list, not the whole file's hash.
        assert_eq!(h.id, piece_list_digest(&h.pieces));
        assert_ne!(Some(h.id), h.sha1);
    }

    #[test]
    fn empty_file_has_no_pieces() {
        let h = hash_reader(&b""[..]).unwrap();
        assert_eq!(h.size, 0);
        assert!(h.pieces.is_empty());
        // The digest of an empty piece list is the SHA-1 of nothing, as is the file's.
        assert_eq!(h.id, Sha1Digest::of(b""));
        assert_eq!(h.sha1, Some(Sha1Digest::of(b"")));
    }

    #[test]
    fn scan_shares_only_plain_files_inside_the_folder() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.txt"), b"a").unwrap();
        std::fs::write(d.join(".hidden"), b"h").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub").join("deep.txt"), b"d").unwrap();
        std::fs::write(d.join("bad|name"), b"b").unwrap();
        std::os::unix::fs::symlink(d.join("a.txt"), d.join("inside-link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), d.join("outside-link")).unwrap();
        std::os::unix::fs::symlink(d.join(".hidden"), d.join("dotfile-link")).unwrap();
        let (found, skipped) = scan(d).unwrap();
        let names: Vec<&str> = found.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["a.txt", "inside-link"]);
        let reasons: Vec<&str> = skipped.iter().map(|s| s.entry.as_str()).collect();
        assert!(reasons.contains(&"outside-link"));
        assert!(reasons.contains(&"dotfile-link"));
        assert!(reasons.contains(&"bad|name"));
    }
}
