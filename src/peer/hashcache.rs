//! The hash cache: content hashes of shared files, kept in the state dir so that a
//! restarted peer does not hash unchanged files again.
//!
//! An entry is used only when the file's name, size, modification time, change time,
//! device and inode all match what was recorded. The file is written atomically (temporary file,
//! fsync, rename, fsync of the folder) and ends with a SHA-1 of its contents: a cache
//! that does not check out is discarded with a warning, never trusted.
//!
//! Format (integers big-endian):
//! `"P2PHASH3"`, u32 count, then per entry: u16 name length, name (UTF-8), u64 size,
//! i64 mtime seconds, u32 mtime nanoseconds, i64 ctime seconds, u32 ctime nanoseconds,
//! u64 dev, u64 inode, u8 whole-file SHA-1 flag (1: known, 0: not computed here), the
//! 20-byte whole-file SHA-1 (zeros when not known), u32 piece count, 20 bytes per
//! piece; then the 20-byte SHA-1 of all that precedes. The content id is not stored:
//! it is the digest of the piece hashes, derived when the cache is read.
//!
//! Earlier formats: `"P2PHASH2"` is the same but for the flag, and stored the
//! whole-file SHA-1 where the content id was then (it was the id); it is read without
//! loss (that hash becomes the SHA-1 attribute, the id is derived from the pieces)
//! and written back in the current format. A cache of the first format
//! (`"P2PHASH1"`, no change time) cannot vouch for a file rewritten with its mtime put
//! back: it is set aside and the files are hashed once more.

use super::catalog::{Catalog, ContentHashes, FileStamp};
use crate::protocol::hash::Sha1Digest;
use byteorder::{BigEndian, ReadBytesExt, WriteBytesExt};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Cursor, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"P2PHASH3";
/// The second format: the whole-file SHA-1 in place of the flag and hash.
const MAGIC_V2: &[u8; 8] = b"P2PHASH2";
/// The first format, without change times.
const MAGIC_V1: &[u8; 8] = b"P2PHASH1";

/// Cached hashes by file name.
#[derive(Debug, Default)]
pub struct HashCache {
    entries: HashMap<String, (FileStamp, ContentHashes)>,
}

impl HashCache {
    /// Hashes recorded for this name, if the file still has the same stamp.
    pub fn lookup(&self, name: &str, stamp: &FileStamp) -> Option<ContentHashes> {
        self.entries
            .get(name)
            .filter(|(s, _)| s == stamp)
            .map(|(_, h)| h.clone())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Loads the cache; a missing file is an empty cache, a corrupt one is discarded
    /// (the error says why).
    pub fn load(path: &Path) -> Result<HashCache, String> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashCache::default()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        if bytes.starts_with(MAGIC_V1) {
            log::info!(
                "{}: a hash cache of an earlier version (no change times): files are hashed once more",
                path.display()
            );
            return Ok(HashCache::default());
        }
        let decoded = if bytes.starts_with(MAGIC_V2) {
            log::info!(
                "{}: a hash cache of an earlier version: read as it is, written anew",
                path.display()
            );
            decode_as(&bytes, Format::V2)
        } else {
            decode(&bytes)
        };
        decoded.map_err(|e| {
            format!(
                "{} is corrupt ({e}); it is ignored and files are hashed again",
                path.display()
            )
        })
    }

    /// Decodes the bytes of a cache file of the current format, with no file system
    /// access: the pure half of [`load`](HashCache::load), public so that the fuzz
    /// targets (fuzz/) and their corpus replay can reach it. An error says why the bytes
    /// are not a cache that checks out.
    pub fn decode_bytes(bytes: &[u8]) -> Result<HashCache, String> {
        decode(bytes)
    }

    /// Writes the catalog's hashes atomically.
    pub fn save(catalog: &Catalog, path: &Path) -> io::Result<()> {
        let bytes = encode(catalog)?;
        let tmp = tmp_path(path);
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn encode(catalog: &Catalog) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64 + catalog.len() * 128);
    out.write_all(MAGIC)?;
    out.write_u32::<BigEndian>(catalog.len() as u32)?;
    for f in catalog.iter() {
        let name = f.name.as_str().as_bytes();
        out.write_u16::<BigEndian>(name.len() as u16)?;
        out.write_all(name)?;
        out.write_u64::<BigEndian>(f.stamp.size)?;
        out.write_i64::<BigEndian>(f.stamp.mtime_ns.div_euclid(1_000_000_000) as i64)?;
        out.write_u32::<BigEndian>(f.stamp.mtime_ns.rem_euclid(1_000_000_000) as u32)?;
        out.write_i64::<BigEndian>(f.stamp.ctime_ns.div_euclid(1_000_000_000) as i64)?;
        out.write_u32::<BigEndian>(f.stamp.ctime_ns.rem_euclid(1_000_000_000) as u32)?;
        out.write_u64::<BigEndian>(f.stamp.dev)?;
        out.write_u64::<BigEndian>(f.stamp.ino)?;
        out.write_u8(u8::from(f.hashes.sha1.is_some()))?;
        out.write_all(&f.hashes.sha1.map_or([0; 20], |d| d.0))?;
        out.write_u32::<BigEndian>(f.hashes.pieces.len() as u32)?;
        for p in f.hashes.pieces.iter() {
            out.write_all(&p.0)?;
        }
    }
    let check = Sha1Digest::of(&out);
    out.write_all(&check.0)?;
    Ok(out)
}

fn read_digest(r: &mut impl Read) -> io::Result<Sha1Digest> {
    let mut d = [0u8; 20];
    r.read_exact(&mut d)?;
    Ok(Sha1Digest(d))
}

/// The formats a cache is read in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `P2PHASH2`: the whole-file SHA-1, then the pieces.
    V2,
    /// `P2PHASH3`: a flag and the whole-file SHA-1, then the pieces.
    V3,
}

fn decode(bytes: &[u8]) -> Result<HashCache, String> {
    decode_as(bytes, Format::V3)
}

fn decode_as(bytes: &[u8], format: Format) -> Result<HashCache, String> {
    let magic = match format {
        Format::V2 => MAGIC_V2,
        Format::V3 => MAGIC,
    };
    if bytes.len() < MAGIC.len() + 4 + 20 || &bytes[..8] != magic {
        return Err("not a hash cache".into());
    }
    let (body, check) = bytes.split_at(bytes.len() - 20);
    if Sha1Digest::of(body).0 != check {
        return Err("checksum mismatch".into());
    }
    let mut r = Cursor::new(&body[8..]);
    let bad = |e: io::Error| format!("truncated entry ({e})");
    let count = r.read_u32::<BigEndian>().map_err(bad)?;
    let mut entries = HashMap::new();
    for _ in 0..count {
        let len = r.read_u16::<BigEndian>().map_err(bad)? as usize;
        let mut name = vec![0u8; len];
        r.read_exact(&mut name).map_err(bad)?;
        let name = String::from_utf8(name).map_err(|_| "a name is not UTF-8".to_owned())?;
        let size = r.read_u64::<BigEndian>().map_err(bad)?;
        let secs = r.read_i64::<BigEndian>().map_err(bad)?;
        let nanos = r.read_u32::<BigEndian>().map_err(bad)?;
        let csecs = r.read_i64::<BigEndian>().map_err(bad)?;
        let cnanos = r.read_u32::<BigEndian>().map_err(bad)?;
        let dev = r.read_u64::<BigEndian>().map_err(bad)?;
        let ino = r.read_u64::<BigEndian>().map_err(bad)?;
        let sha1 = match format {
            // The content id of that format was the whole-file SHA-1.
            Format::V2 => Some(read_digest(&mut r).map_err(bad)?),
            Format::V3 => {
                let known = r.read_u8().map_err(bad)?;
                let hash = read_digest(&mut r).map_err(bad)?;
                match known {
                    0 => None,
                    1 => Some(hash),
                    _ => return Err(format!("'{name}': a SHA-1 flag of {known}")),
                }
            }
        };
        let n = r.read_u32::<BigEndian>().map_err(bad)? as usize;
        if size > crate::protocol::MAX_FILE_SIZE {
            return Err(format!(
                "'{name}': {size} bytes is over the file size limit"
            ));
        }
        if n as u64 != crate::protocol::piece_count(size) {
            return Err(format!("'{name}': {n} pieces for {size} bytes"));
        }
        // The checksum vouches for the bytes, not for the counts in them: check a
        // count against what is left before allocating for it.
        let left = body.len() - 8 - r.position() as usize;
        if n.saturating_mul(20) > left {
            return Err(format!("'{name}': {n} pieces, but only {left} bytes left"));
        }
        let mut pieces = Vec::with_capacity(n);
        for _ in 0..n {
            pieces.push(read_digest(&mut r).map_err(bad)?);
        }
        let stamp = FileStamp {
            size,
            mtime_ns: i128::from(secs) * 1_000_000_000 + i128::from(nanos),
            ctime_ns: i128::from(csecs) * 1_000_000_000 + i128::from(cnanos),
            dev,
            ino,
        };
        entries.insert(name, (stamp, ContentHashes::from_parts(size, pieces, sha1)));
    }
    if r.position() as usize != body.len() - 8 {
        return Err("trailing bytes".into());
    }
    Ok(HashCache { entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::catalog::{hash_reader, SharedFile};
    use crate::protocol::name::FileName;

    fn catalog() -> Catalog {
        let mut c = Catalog::new();
        for (i, name) in ["a.txt", "bigger.bin"].iter().enumerate() {
            let data = vec![i as u8; 1_500_000 * i + 10];
            c.insert(SharedFile {
                name: FileName::parse(name).unwrap(),
                path: PathBuf::from(name),
                stamp: FileStamp {
                    size: data.len() as u64,
                    mtime_ns: -1_500_000_000 + i as i128,
                    ctime_ns: 1_700_000_000_000_000_000 + i as i128,
                    dev: 1,
                    ino: 100 + i as u64,
                },
                hashes: hash_reader(&data[..]).unwrap(),
            });
        }
        c
    }

    #[test]
    fn round_trips_and_matches_only_identical_stamps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hashcache.bin");
        let c = catalog();
        HashCache::save(&c, &path).unwrap();
        let cache = HashCache::load(&path).unwrap();
        assert_eq!(cache.len(), 2);
        let f = c.get("bigger.bin").unwrap();
        assert_eq!(cache.lookup("bigger.bin", &f.stamp), Some(f.hashes.clone()));
        let mut touched = f.stamp;
        touched.mtime_ns += 1;
        assert_eq!(cache.lookup("bigger.bin", &touched), None);
        let mut moved = f.stamp;
        moved.ino += 1;
        assert_eq!(cache.lookup("bigger.bin", &moved), None);
        // Rewritten in place with the modification time put back: the change time
        // still differs.
        let mut rewritten = f.stamp;
        rewritten.ctime_ns += 1;
        assert_eq!(cache.lookup("bigger.bin", &rewritten), None);
    }

    /// The bytes the second format gave a catalog: the whole-file SHA-1 where the
    /// flag and hash are now.
    fn encode_v2(catalog: &Catalog) -> Vec<u8> {
        let mut out = MAGIC_V2.to_vec();
        out.write_u32::<BigEndian>(catalog.len() as u32).unwrap();
        for f in catalog.iter() {
            let name = f.name.as_str().as_bytes();
            out.write_u16::<BigEndian>(name.len() as u16).unwrap();
            out.extend_from_slice(name);
            out.write_u64::<BigEndian>(f.stamp.size).unwrap();
            out.write_i64::<BigEndian>(f.stamp.mtime_ns.div_euclid(1_000_000_000) as i64)
                .unwrap();
            out.write_u32::<BigEndian>(f.stamp.mtime_ns.rem_euclid(1_000_000_000) as u32)
                .unwrap();
            out.write_i64::<BigEndian>(f.stamp.ctime_ns.div_euclid(1_000_000_000) as i64)
                .unwrap();
            out.write_u32::<BigEndian>(f.stamp.ctime_ns.rem_euclid(1_000_000_000) as u32)
                .unwrap();
            out.write_u64::<BigEndian>(f.stamp.dev).unwrap();
            out.write_u64::<BigEndian>(f.stamp.ino).unwrap();
            out.extend_from_slice(&f.hashes.sha1.unwrap().0);
            out.write_u32::<BigEndian>(f.hashes.pieces.len() as u32)
                .unwrap();
            for p in f.hashes.pieces.iter() {
                out.extend_from_slice(&p.0);
            }
        }
        sealed(&out)
    }

    #[test]
    fn a_cache_of_the_second_format_is_read_without_loss() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hashcache.bin");
        let c = catalog();
        fs::write(&path, encode_v2(&c)).unwrap();
        let cache = HashCache::load(&path).unwrap();
        assert_eq!(cache.len(), 2);
        for f in c.iter() {
            // The id comes from the pieces, the old id becomes the SHA-1 attribute:
            // exactly what hashing the file again gives.
            assert_eq!(
                cache.lookup(f.name.as_str(), &f.stamp),
                Some(f.hashes.clone())
            );
        }
    }

    #[test]
    fn a_file_whose_sha1_is_not_known_stays_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hashcache.bin");
        let mut c = catalog();
        let mut f = c.get("bigger.bin").unwrap().clone();
        f.hashes.sha1 = None;
        c.insert(f.clone());
        HashCache::save(&c, &path).unwrap();
        let cache = HashCache::load(&path).unwrap();
        assert_eq!(cache.lookup("bigger.bin", &f.stamp), Some(f.hashes));
        let a = c.get("a.txt").unwrap();
        assert!(cache.lookup("a.txt", &a.stamp).unwrap().sha1.is_some());
    }

    #[test]
    fn a_cache_of_the_first_format_is_set_aside_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hashcache.bin");
        let mut old = MAGIC_V1.to_vec();
        old.extend_from_slice(&0u32.to_be_bytes());
        fs::write(&path, sealed(&old)).unwrap();
        assert!(HashCache::load(&path).unwrap().is_empty());
    }

    /// A cache whose checksum is right but whose counts are not, as a bug or a
    /// hand-made file could leave it.
    fn sealed(body: &[u8]) -> Vec<u8> {
        let mut bytes = body.to_vec();
        bytes.extend_from_slice(&Sha1Digest::of(body).0);
        bytes
    }

    #[test]
    fn counts_in_a_checksummed_cache_are_checked_before_allocating() {
        let mut body = MAGIC.to_vec();
        body.write_u32::<BigEndian>(1).unwrap();
        body.write_u16::<BigEndian>(1).unwrap();
        body.push(b'x');
        // 1 TiB is 1 048 576 pieces: 20 MiB of piece hashes the file does not hold.
        body.write_u64::<BigEndian>(1 << 40).unwrap();
        body.extend_from_slice(&[0; 8 + 4 + 8 + 4 + 8 + 8 + 1 + 20]);
        body.write_u32::<BigEndian>(1 << 20).unwrap();
        let err = decode(&sealed(&body)).unwrap_err();
        assert!(err.contains("only 0 bytes left"), "{err}");
        // Past the size limit, with the piece count to match (4 billion pieces, 80 GiB
        // of hashes): refused before anything is allocated for them.
        let at = MAGIC.len() + 4 + 2 + 1;
        body[at..at + 8].copy_from_slice(&(u64::from(u32::MAX) << 20).to_be_bytes());
        let n_at = body.len() - 4;
        body[n_at..].copy_from_slice(&u32::MAX.to_be_bytes());
        let err = decode(&sealed(&body)).unwrap_err();
        assert!(err.contains("over the file size limit"), "{err}");
        // More entries than the file holds.
        let mut body = MAGIC.to_vec();
        body.write_u32::<BigEndian>(u32::MAX).unwrap();
        assert!(decode(&sealed(&body)).is_err());
    }

    #[test]
    fn a_corrupt_cache_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hashcache.bin");
        HashCache::save(&catalog(), &path).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        bytes[40] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(HashCache::load(&path).unwrap_err().contains("corrupt"));
        fs::write(&path, &bytes[..30]).unwrap();
        assert!(HashCache::load(&path).is_err());
        assert!(HashCache::load(&dir.path().join("none"))
            .unwrap()
            .is_empty());
    }
}
