//! SHA-1 digests as they appear on the wire: `sha1:<40 lowercase hex>`.
//!
//! The algorithm is part of the text so that a later one can be added without a new
//! framing. A file's content id is the digest of its piece list (SHA-1 of the
//! concatenated raw piece hashes, [`piece_list_digest`]); its whole-file SHA-1, an
//! attribute beside the id, and each piece hash are [`Sha1Digest`]s too.

use sha1::{Digest, Sha1};
use std::fmt;

const PREFIX: &str = "sha1:";

/// A 20-byte SHA-1 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha1Digest(pub [u8; 20]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashParseError {
    /// The text does not start with a known algorithm prefix.
    UnknownAlgorithm,
    /// The hex part is not 40 hex digits.
    BadHex,
}

impl fmt::Display for HashParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashParseError::UnknownAlgorithm => f.write_str("hash must start with 'sha1:'"),
            HashParseError::BadHex => f.write_str("hash must be 'sha1:' and 40 hex digits"),
        }
    }
}

impl std::error::Error for HashParseError {}

impl Sha1Digest {
    /// Digest of a byte slice.
    pub fn of(bytes: &[u8]) -> Sha1Digest {
        Sha1Digest(Sha1::digest(bytes).into())
    }

    pub fn parse(text: &str) -> Result<Sha1Digest, HashParseError> {
        let hex = text
            .strip_prefix(PREFIX)
            .ok_or(HashParseError::UnknownAlgorithm)?;
        if hex.len() != 40 {
            return Err(HashParseError::BadHex);
        }
        let mut out = [0u8; 20];
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or(HashParseError::BadHex)?;
            let lo = hex_value(pair[1]).ok_or(HashParseError::BadHex)?;
            out[i] = hi << 4 | lo;
        }
        Ok(Sha1Digest(out))
    }

    /// The 40 hex digits without the algorithm prefix (used in file names).
    pub fn hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(40);
        for b in self.0 {
            s.push(char::from(DIGITS[usize::from(b >> 4)]));
            s.push(char::from(DIGITS[usize::from(b & 15)]));
        }
        s
    }

    /// A short form for people: the first 12 hex digits.
    pub fn short(&self) -> String {
        self.hex()[..12].to_owned()
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl Sha1Digest {
    /// The wire form, `sha1:` and 40 hex digits, on the stack.
    fn text(&self) -> [u8; 45] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 45];
        text[..5].copy_from_slice(PREFIX.as_bytes());
        for (i, b) in self.0.iter().enumerate() {
            text[5 + 2 * i] = DIGITS[usize::from(b >> 4)];
            text[6 + 2 * i] = DIGITS[usize::from(b & 15)];
        }
        text
    }

    /// Appends the wire form to `out` without going through a formatter: this runs
    /// for every row of every `get` reply.
    pub fn push_to(&self, out: &mut String) {
        let text = self.text();
        // Only ASCII was written.
        out.push_str(std::str::from_utf8(&text).unwrap_or_default());
    }
}

impl fmt::Display for Sha1Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text();
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Sha1Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// The digest of a piece list: SHA-1 over the raw 20-byte piece hashes, in order. This
/// is a file's content id: the pieces, each checked against the list, prove the whole.
pub fn piece_list_digest(pieces: &[Sha1Digest]) -> Sha1Digest {
    let mut h = Sha1::new();
    for p in pieces {
        h.update(p.0);
    }
    Sha1Digest(h.finalize().into())
}

/// Parses a raw piece list (as sent in a `pieces` reply) into its hashes.
pub fn parse_piece_list(raw: &[u8]) -> Option<Vec<Sha1Digest>> {
    if raw.len() % 20 != 0 {
        return None;
    }
    Some(
        raw.chunks_exact(20)
            .map(|c| {
                let mut d = [0u8; 20];
                d.copy_from_slice(c);
                Sha1Digest(d)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector_round_trips() {
        let d = Sha1Digest::of(b"abc");
        assert_eq!(
            d.to_string(),
            "sha1:a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(Sha1Digest::parse(&d.to_string()), Ok(d));
        assert_eq!(
            Sha1Digest::parse("sha1:A9993E364706816ABA3E25717850C26C9CD0D89D"),
            Ok(d)
        );
    }

    #[test]
    fn malformed_hashes_are_refused() {
        assert_eq!(
            Sha1Digest::parse("md5:a9993e364706816aba3e25717850c26c9cd0d89d"),
            Err(HashParseError::UnknownAlgorithm)
        );
        assert_eq!(Sha1Digest::parse("sha1:abc"), Err(HashParseError::BadHex));
        assert_eq!(
            Sha1Digest::parse("sha1:g9993e364706816aba3e25717850c26c9cd0d89d"),
            Err(HashParseError::BadHex)
        );
        assert_eq!(
            Sha1Digest::parse("sha1:é993e364706816aba3e25717850c26c9cd0d89"),
            Err(HashParseError::BadHex)
        );
    }

    #[test]
    fn piece_list_parses_in_twenties() {
        let a = Sha1Digest::of(b"a");
        let b = Sha1Digest::of(b"b");
        let mut raw = a.0.to_vec();
        raw.extend_from_slice(&b.0);
        assert_eq!(parse_piece_list(&raw), Some(vec![a, b]));
        assert_eq!(parse_piece_list(&raw[..21]), None);
        assert_eq!(piece_list_digest(&[a, b]), Sha1Digest::of(&raw));
    }
}
