//! The key-value store's keys and values as BEP 44 items: pure, no I/O.
//!
//! A key is the salt of a mutable item signed by the network's key, so its target is
//! `SHA-1(network public key ‖ key)`: anyone who knows the network can find it, only
//! a holder of the network's secret can write it. What the item's `v` holds:
//!
//! - a value of up to [`MAX_INLINE`] bytes that does not start with a NUL byte: the
//!   value itself, so another BEP 44 implementation reads exactly what was stored;
//! - nothing (zero bytes): a removal, a tombstone with its own sequence number, so a
//!   stale copy cannot bring the value back;
//! - [`MAGIC`], the value's length (4 bytes, big-endian) and the SHA-1s of up to
//!   [`MAX_INDEX_CHUNKS`] index chunks: a larger value (or one that starts with NUL),
//!   stored as immutable items. Each index chunk lists the SHA-1s of up to
//!   [`HASHES_PER_INDEX`] data chunks of [`CHUNK`] bytes (the last may be shorter).
//!   Every chunk is checked against its hash on the way back, so nothing a node
//!   answers can change a value.
//!
//! An empty value cannot be stored (it would read as a removal): `kv rm` removes.

use std::fmt;

/// Longest key, in bytes: BEP 44's limit on a salt.
pub const MAX_KEY: usize = 64;
/// Longest `v` of one BEP 44 item.
pub const MAX_INLINE: usize = 1000;
/// Longest value, stored in chunks.
pub const MAX_VALUE: usize = 1 << 20;
/// Bytes per data chunk (an immutable item).
pub const CHUNK: usize = 1000;
/// Data-chunk hashes per index chunk (50 × 20 bytes = 1000).
pub const HASHES_PER_INDEX: usize = CHUNK / 20;
/// What starts a pointer to chunks (a value itself never starts with NUL).
pub const MAGIC: &[u8] = b"\0p2pshare-chunks\0";
/// Index-chunk hashes one pointer holds.
pub const MAX_INDEX_CHUNKS: usize = (MAX_INLINE - MAGIC.len() - 4) / 20;

const _: () = assert!(MAX_INDEX_CHUNKS * HASHES_PER_INDEX * CHUNK >= MAX_VALUE);

/// Why a key or a value cannot be stored, or what was read is not a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    KeyEmpty,
    KeyTooLong(usize),
    ValueEmpty,
    ValueTooLarge(usize),
    /// What the network returned is not a value this store wrote (a bad pointer, a
    /// chunk of the wrong length): the reason.
    Corrupt(String),
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::KeyEmpty => f.write_str("the key is empty"),
            ValueError::KeyTooLong(n) => {
                write!(f, "the key is {n} bytes; keys are at most {MAX_KEY} bytes")
            }
            ValueError::ValueEmpty => {
                f.write_str("the value is empty (to remove a key, use `kv rm`)")
            }
            ValueError::ValueTooLarge(n) => write!(
                f,
                "the value is {n} bytes; values are at most {MAX_VALUE} bytes (1 MiB)"
            ),
            ValueError::Corrupt(why) => write!(f, "the stored value is malformed: {why}"),
        }
    }
}

impl std::error::Error for ValueError {}

/// Checks a key: any UTF-8, 1 to [`MAX_KEY`] bytes.
pub fn check_key(key: &str) -> Result<(), ValueError> {
    match key.len() {
        0 => Err(ValueError::KeyEmpty),
        n if n > MAX_KEY => Err(ValueError::KeyTooLong(n)),
        _ => Ok(()),
    }
}

/// A value ready to store: the mutable item's `v`, and the immutable chunks it points
/// to (index chunks first), empty for an inline value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub item: Vec<u8>,
    pub chunks: Vec<Vec<u8>>,
}

/// What a mutable item's `v` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Value(Vec<u8>),
    Removed,
    /// A pointer: the value's length and its index chunks' targets.
    Chunked {
        len: usize,
        index: Vec<[u8; 20]>,
    },
}

/// The SHA-1 a BEP 44 immutable item is stored under: of its bencoded form.
pub fn immutable_target(v: &[u8]) -> [u8; 20] {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(format!("{}:", v.len()).as_bytes());
    h.update(v);
    h.finalize().into()
}

/// Encodes a value for storing.
pub fn encode(value: &[u8]) -> Result<Encoded, ValueError> {
    if value.is_empty() {
        return Err(ValueError::ValueEmpty);
    }
    if value.len() > MAX_VALUE {
        return Err(ValueError::ValueTooLarge(value.len()));
    }
    if value.len() <= MAX_INLINE && value[0] != 0 {
        return Ok(Encoded {
            item: value.to_vec(),
            chunks: Vec::new(),
        });
    }
    let data: Vec<&[u8]> = value.chunks(CHUNK).collect();
    let index: Vec<Vec<u8>> = data
        .chunks(HASHES_PER_INDEX)
        .map(|group| group.iter().flat_map(|c| immutable_target(c)).collect())
        .collect();
    let mut item = MAGIC.to_vec();
    item.extend_from_slice(&(value.len() as u32).to_be_bytes());
    for i in &index {
        item.extend_from_slice(&immutable_target(i));
    }
    debug_assert!(item.len() <= MAX_INLINE);
    let mut chunks = index;
    chunks.extend(data.into_iter().map(<[u8]>::to_vec));
    Ok(Encoded { item, chunks })
}

/// What a mutable item's `v` holds.
pub fn decode(v: &[u8]) -> Result<Decoded, ValueError> {
    if v.is_empty() {
        return Ok(Decoded::Removed);
    }
    let Some(rest) = v.strip_prefix(MAGIC) else {
        return Ok(Decoded::Value(v.to_vec()));
    };
    let corrupt = |why: &str| ValueError::Corrupt(why.to_owned());
    if rest.len() < 4 || (rest.len() - 4) % 20 != 0 {
        return Err(corrupt("a pointer of the wrong length"));
    }
    let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    let index: Vec<[u8; 20]> = rest[4..]
        .chunks(20)
        .map(|c| c.try_into().expect("20 bytes"))
        .collect();
    let data_chunks = len.div_ceil(CHUNK);
    if len == 0 || len > MAX_VALUE || index.len() != data_chunks.div_ceil(HASHES_PER_INDEX) {
        return Err(corrupt("a pointer whose length and chunks disagree"));
    }
    Ok(Decoded::Chunked { len, index })
}

/// The data-chunk targets an index chunk lists (the `n`th of a value of `len` bytes),
/// checked against how many that chunk must list.
pub fn index_entries(chunk: &[u8], n: usize, len: usize) -> Result<Vec<[u8; 20]>, ValueError> {
    let data_chunks = len.div_ceil(CHUNK);
    let expected = data_chunks
        .saturating_sub(n * HASHES_PER_INDEX)
        .min(HASHES_PER_INDEX);
    if chunk.len() != expected * 20 {
        return Err(ValueError::Corrupt(format!(
            "index chunk {n} lists {} hashes, not {expected}",
            chunk.len() / 20
        )));
    }
    Ok(chunk
        .chunks(20)
        .map(|c| c.try_into().expect("20 bytes"))
        .collect())
}

/// Puts data chunks back together, checking each one's length.
pub fn assemble(len: usize, chunks: &[Vec<u8>]) -> Result<Vec<u8>, ValueError> {
    let mut out = Vec::with_capacity(len);
    let last = len.div_ceil(CHUNK).saturating_sub(1);
    for (i, c) in chunks.iter().enumerate() {
        let want = if i == last { len - i * CHUNK } else { CHUNK };
        if c.len() != want {
            return Err(ValueError::Corrupt(format!(
                "chunk {i} is {} bytes, not {want}",
                c.len()
            )));
        }
        out.extend_from_slice(c);
    }
    if out.len() != len {
        return Err(ValueError::Corrupt("chunks missing".into()));
    }
    Ok(out)
}

/// The bytes a BEP 44 mutable item's signature covers.
pub fn signable(seq: i64, v: &[u8], salt: &[u8]) -> Vec<u8> {
    let mut out = format!("4:salt{}:", salt.len()).into_bytes();
    out.extend_from_slice(salt);
    out.extend_from_slice(format!("3:seqi{seq}e1:v{}:", v.len()).as_bytes());
    out.extend_from_slice(v);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stores `value` in a map of immutable items and reads it back through the
    /// pointer, as the DHT would.
    fn round_trip(value: &[u8]) -> Vec<u8> {
        let enc = encode(value).unwrap();
        let store: std::collections::HashMap<[u8; 20], Vec<u8>> = enc
            .chunks
            .iter()
            .map(|c| (immutable_target(c), c.clone()))
            .collect();
        match decode(&enc.item).unwrap() {
            Decoded::Value(v) => v,
            Decoded::Removed => panic!("removed"),
            Decoded::Chunked { len, index } => {
                let mut data = Vec::new();
                for (n, t) in index.iter().enumerate() {
                    for d in index_entries(&store[t], n, len).unwrap() {
                        data.push(store[&d].clone());
                    }
                }
                assemble(len, &data).unwrap()
            }
        }
    }

    #[test]
    fn small_values_are_stored_as_they_are_and_large_ones_in_checked_chunks() {
        assert_eq!(encode(b"blue").unwrap().item, b"blue");
        assert!(encode(b"blue").unwrap().chunks.is_empty());
        for len in [1, 999, 1000, 1001, 50_000, 50_001, MAX_VALUE] {
            let value: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
            assert_eq!(round_trip(&value), value, "{len} bytes");
        }
        // A value that starts with NUL goes through chunks, so it cannot pose as a
        // pointer, and the largest pointer fits in one item.
        let nul = b"\0p2pshare-chunks\0 not a pointer".to_vec();
        assert!(encode(&nul).unwrap().item.len() < 100);
        assert_eq!(round_trip(&nul), nul);
        assert!(encode(&vec![1; MAX_VALUE]).unwrap().item.len() <= MAX_INLINE);
    }

    #[test]
    fn empty_and_oversized_values_and_keys_are_refused() {
        assert_eq!(encode(b""), Err(ValueError::ValueEmpty));
        assert_eq!(
            encode(&vec![1; MAX_VALUE + 1]),
            Err(ValueError::ValueTooLarge(MAX_VALUE + 1))
        );
        assert_eq!(check_key(""), Err(ValueError::KeyEmpty));
        assert_eq!(check_key(&"é".repeat(32)), Ok(()));
        assert_eq!(check_key(&"é".repeat(33)), Err(ValueError::KeyTooLong(66)));
        assert_eq!(decode(b"").unwrap(), Decoded::Removed);
    }

    #[test]
    fn pointers_and_chunks_that_do_not_add_up_are_corrupt() {
        let enc = encode(&vec![7; 5000]).unwrap();
        let mut short = enc.item.clone();
        short.pop();
        assert!(matches!(decode(&short), Err(ValueError::Corrupt(_))));
        let mut wrong_len = enc.item.clone();
        wrong_len[MAGIC.len() + 1] = 0xff; // claims more chunks than it lists
        assert!(matches!(decode(&wrong_len), Err(ValueError::Corrupt(_))));
        assert!(index_entries(&[0; 40], 0, 5000).is_err());
        assert!(assemble(5000, &vec![vec![7; 1000]; 4]).is_err());
        assert!(assemble(1500, &[vec![7; 1000], vec![7; 400]]).is_err());
    }

    #[test]
    fn the_signed_bytes_are_bep_44s() {
        // BEP 44's example: salt "foobar", seq 1, the string "Hello World!".
        assert_eq!(
            signable(1, b"Hello World!", b"foobar"),
            b"4:salt6:foobar3:seqi1e1:v12:Hello World!".to_vec()
        );
    }
}
