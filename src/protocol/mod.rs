//! Wire protocol v3, as specified normatively in docs/PROTOCOL.md.
//!
//! This module owns the pure parts of the protocol: framing ([`codec`]), the command
//! table ([`commands`]), validated names ([`name`]), hashes ([`hash`]) and error codes
//! ([`ErrorCode`]). Nothing here performs I/O.

pub mod codec;
pub mod commands;
pub mod hash;
pub mod name;

use std::fmt;

/// The protocol version spoken by this build, sent in `hello`.
///
/// Version 3 made the content id the digest of the piece list (it was the whole-file
/// SHA-1, which is now an attribute beside it): a node of version 2 would take the
/// ids of version 3 for other contents, so the versions do not mix.
pub const VERSION: u32 = 3;

/// Size of a chunk, the unit of range alignment and of streaming.
pub const CHUNK_SIZE: u64 = 4096;

/// Size of a piece: 256 chunks. The unit of hashing and of scheduling.
pub const PIECE_SIZE: u64 = 256 * CHUNK_SIZE;

/// Default hard cap on the length of one control line, terminator included.
pub const MAX_LINE: usize = 64 * 1024;

/// Cap on the number of rows in one batch request or multi-row reply.
pub const MAX_ROWS: usize = 10_000;

/// Cap on the total size of one request frame (header line plus rows).
pub const MAX_FRAME: usize = 8 * 1024 * 1024;

/// Cap on the length of one `fetch` range.
pub const MAX_FETCH: u64 = 16 * PIECE_SIZE;

/// Largest file the network shares: 1 TiB, a piece list of 20 MiB. Checked wherever
/// a size enters (publish, download, folder scan), so no size from the network can
/// make a peer allocate or write without bound.
pub const MAX_FILE_SIZE: u64 = 1 << 40;

/// A number as the protocol writes it (§2): decimal digits only, no sign, no leading
/// `+`, no spaces. Rust's own parsers accept a leading `+`; this does not.
pub fn decimal<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Number of pieces of a file of `size` bytes.
pub fn piece_count(size: u64) -> u64 {
    size.div_ceil(PIECE_SIZE)
}

/// The fixed set of error codes carried by `err|<code>|<message>` replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The line is not a well-formed request (wrong arity, bad number, not UTF-8).
    BadRequest,
    /// The verb is not known, or not served by this role.
    UnknownVerb,
    /// A file or peer name breaks the naming rules.
    BadName,
    /// The named file or key does not exist here.
    NotFound,
    /// The file exists but not with the requested content id.
    UnknownId,
    /// A byte range is misaligned or past the end of the file.
    BadRange,
    /// The server is at its connection limit.
    Busy,
    /// A line, frame, row count or range exceeds its cap.
    TooLarge,
    /// The request needs a `hello` first, or the peer's lease has expired.
    UnknownPeer,
    /// The peer id is held by a live peer on another host.
    Conflict,
    /// The client speaks a protocol version this server does not.
    BadVersion,
    /// A broadcast would reach nobody: the peer has no neighbours (yet).
    NoNeighbours,
    /// The request is well formed, but this node does not allow it (an upload to a
    /// peer not started with `--allow-upload`).
    Forbidden,
    /// The bytes sent are not the content the request named: nothing was kept.
    BadContent,
    /// Something failed inside the server; the request may be retried.
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::BadRequest,
        ErrorCode::UnknownVerb,
        ErrorCode::BadName,
        ErrorCode::NotFound,
        ErrorCode::UnknownId,
        ErrorCode::BadRange,
        ErrorCode::Busy,
        ErrorCode::TooLarge,
        ErrorCode::UnknownPeer,
        ErrorCode::Conflict,
        ErrorCode::BadVersion,
        ErrorCode::NoNeighbours,
        ErrorCode::Forbidden,
        ErrorCode::BadContent,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad-request",
            ErrorCode::UnknownVerb => "unknown-verb",
            ErrorCode::BadName => "bad-name",
            ErrorCode::NotFound => "not-found",
            ErrorCode::UnknownId => "unknown-id",
            ErrorCode::BadRange => "bad-range",
            ErrorCode::Busy => "busy",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::UnknownPeer => "unknown-peer",
            ErrorCode::Conflict => "conflict",
            ErrorCode::BadVersion => "bad-version",
            ErrorCode::NoNeighbours => "no-neighbours",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::BadContent => "bad-content",
            ErrorCode::Internal => "internal",
        }
    }

    pub fn parse(text: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request the server refuses, with the code and message that go back on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }

    /// The reply line, `err|<code>|<message>\n`.
    pub fn to_line(&self) -> String {
        codec::error_line(self.code, &self.message)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Refusal {}

#[cfg(test)]
mod decimal_tests {
    use super::decimal;

    #[test]
    fn numbers_are_digits_only() {
        assert_eq!(decimal::<u64>("4096"), Some(4096));
        assert_eq!(decimal::<u64>("0"), Some(0));
        for bad in ["+1", "-1", " 1", "1 ", "", "1e3", "0x10", "١"] {
            assert_eq!(decimal::<u64>(bad), None, "{bad:?}");
        }
        assert_eq!(decimal::<u16>("65536"), None);
    }
}
