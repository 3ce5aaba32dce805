//! The properties the fuzz targets check, one function per decoder.
//!
//! Each function takes arbitrary bytes and panics only when a property fails: every
//! decoder must refuse bad input with its error value, never a panic, and where a
//! decoder has an encoder beside it, what decodes must encode to something that
//! decodes to the same value. The targets in `fuzz_targets/` call these functions
//! under libFuzzer; `tests/it/fuzz_corpus.rs` in the main crate includes this file
//! and replays every file of `corpus/` through them in `cargo test`, so it uses
//! nothing but `p2pshare` and the standard library.

use p2pshare::http::multipart::{Event, Limits, Multipart, MultipartError, PartHead};
use p2pshare::overlay::wire;
use p2pshare::peer::download::StateRecord;
use p2pshare::peer::hashcache::HashCache;
use p2pshare::protocol::codec::{self, Decoded, Decoder, ReplyHead, Request};
use p2pshare::protocol::commands::{self, Role};
use p2pshare::protocol::hash::Sha1Digest;
use p2pshare::protocol::MAX_LINE;

/// A property: panics when `data` breaks it.
pub type Check = fn(data: &[u8]);

/// Every target by name (the folder of its corpus) and the property it checks.
pub const TARGETS: &[(&str, Check)] = &[
    ("decode_request", decode_request),
    ("decoder_stream", decoder_stream),
    ("parse_reply", parse_reply),
    ("classic_shape", classic_shape),
    ("overlay_wire", overlay_wire),
    ("unescape_text", unescape_text),
    ("state_record", state_record),
    ("hash_cache", hash_cache),
    ("multipart", multipart),
];

/// A request as it travels: its line, then its rows. `None` when a field holds a
/// carriage return (the codec strips only the one before a line's `\n`, so such a
/// field cannot be written back as it was read).
fn encode_request(req: &Request) -> Option<Vec<u8>> {
    let head: Vec<&str> = std::iter::once(commands::command(req.verb).name)
        .chain(req.args.iter().copied())
        .collect();
    let rows = req.rows.iter().flat_map(|r| r.iter().copied());
    if head.iter().copied().chain(rows).any(|f| f.contains('\r')) {
        return None;
    }
    let mut out = codec::line(&head);
    for row in &req.rows {
        out.push_str(&codec::line(row));
    }
    Some(out.into_bytes())
}

/// `decode_request` never panics, never claims more bytes than it was given, and a
/// frame written back decodes to the same request using every byte.
pub fn decode_request(data: &[u8]) {
    for role in [None, Some(Role::Index), Some(Role::Peer), Some(Role::Seed)] {
        match codec::decode_request_as(data, MAX_LINE, role) {
            Ok(Decoded::Frame(req, used)) => {
                assert!(
                    used > 0 && used <= data.len(),
                    "used {used} of {}",
                    data.len()
                );
                if let Some(again) = encode_request(&req) {
                    let back = codec::decode_request_as(&again, MAX_LINE, role);
                    assert_eq!(back, Ok(Decoded::Frame(req, again.len())));
                }
            }
            Ok(Decoded::NeedMore) => {}
            Err(e) => {
                if let Some(skip) = e.skip {
                    assert!(
                        skip > 0 && skip <= data.len(),
                        "skip {skip} of {}",
                        data.len()
                    );
                }
            }
        }
    }
}

/// The streaming `Decoder`, fed in chunks and used as the server uses it (the bytes of
/// each frame or recoverable error dropped), answers at every step exactly what
/// `decode_request_as` answers for the same buffer. The first byte picks the role and
/// a line cap (small caps reach the cap paths), the second the chunk size.
pub fn decoder_stream(data: &[u8]) {
    let [pick, chunk, stream @ ..] = data else {
        return;
    };
    let role = [None, Some(Role::Index), Some(Role::Peer), Some(Role::Seed)][usize::from(pick % 4)];
    let max_line = [8, 32, 256, MAX_LINE][usize::from(pick / 4 % 4)];
    let chunk = usize::from(*chunk % 16) + 1;
    let mut decoder = Decoder::for_role(max_line, role);
    let mut buf: Vec<u8> = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let got = decoder.decode(&buf);
            let want = codec::decode_request_as(&buf, max_line, role);
            assert_eq!(got, want, "buffer {buf:?}");
            let used = match got {
                Ok(Decoded::NeedMore) => break,
                Ok(Decoded::Frame(_, used)) => used,
                Err(e) => match e.skip {
                    Some(skip) => skip,
                    // The server answers and closes.
                    None => return,
                },
            };
            assert!(used > 0 && used <= buf.len());
            buf.drain(..used);
        }
    }
}

/// `parse_reply` never panics, and a reply head written back with the codec's own
/// writers parses to the same head.
pub fn parse_reply(data: &[u8]) {
    let Ok(head) = codec::parse_reply(data) else {
        return;
    };
    if data.contains(&b'\n') || data.contains(&b'\r') {
        // Not a line as it arrives: the reader splits at `\n` and strips `\r`.
        return;
    }
    let again = match &head {
        ReplyHead::Ok(fields) => {
            let all: Vec<&str> = std::iter::once("ok")
                .chain(fields.iter().map(String::as_str))
                .collect();
            codec::line(&all)
        }
        ReplyHead::Err(refusal) => codec::error_line(refusal.code, &refusal.message),
        ReplyHead::Data(len) => codec::data_header(*len),
    };
    let again = again
        .strip_suffix('\n')
        .expect("writers end lines with \\n");
    assert_eq!(codec::parse_reply(again.as_bytes()), Ok(head));
}

/// `classic_shape` never panics for any role; what it recognises holds no newline, and
/// a classic download names one path component, never a folder.
pub fn classic_shape(data: &[u8]) {
    for role in [Role::Index, Role::Peer, Role::Seed] {
        let Some(shape) = codec::classic_shape(data, role) else {
            continue;
        };
        assert!(!data.contains(&b'\n'));
        match shape {
            codec::Classic::Download { name } => {
                assert_eq!(role, Role::Peer);
                assert!(!name.contains(['/', '\\']), "name {name:?}");
            }
            codec::Classic::Get { .. } | codec::Classic::Set { .. } => {
                assert_eq!(role, Role::Index)
            }
            codec::Classic::Malformed(_) => assert_ne!(role, Role::Seed),
        }
    }
}

/// An overlay message decoded from a request never panics, and encodes to a frame
/// that decodes to the same message.
pub fn overlay_wire(data: &[u8]) {
    let Ok(Decoded::Frame(req, _)) = codec::decode_request(data, MAX_LINE) else {
        return;
    };
    let Ok(Some(msg)) = wire::decode(&req) else {
        return;
    };
    let text = wire::encode(&msg);
    match codec::decode_request(text.as_bytes(), MAX_LINE) {
        Ok(Decoded::Frame(back, used)) => {
            assert_eq!(used, text.len(), "{text:?}");
            assert_eq!(wire::decode(&back), Ok(Some(msg)), "{text:?}");
        }
        other => panic!("{msg:?} encodes to {text:?}, which decodes to {other:?}"),
    }
}

/// `unescape_text` never panics; what it accepts escapes back to one field that
/// unescapes to the same text, and any text within the cap survives the round trip.
pub fn unescape_text(data: &[u8]) {
    let field = String::from_utf8_lossy(data);
    if let Ok(text) = wire::unescape_text(&field) {
        assert!(text.len() <= wire::MAX_TEXT);
        let escaped = wire::escape_text(&text);
        assert!(!escaped.contains(['|', '\n', '\r']), "{escaped:?}");
        assert_eq!(wire::unescape_text(&escaped), Ok(text));
    }
    let escaped = wire::escape_text(&field);
    assert!(!escaped.contains(['|', '\n', '\r']), "{escaped:?}");
    if field.len() <= wire::MAX_TEXT {
        assert_eq!(wire::unescape_text(&escaped).as_deref(), Ok(&*field));
    }
}

/// `bytes` followed by their SHA-1, as the resume-state and hash-cache files end: a
/// fuzzer would almost never guess a checksum, so each of those targets decodes its
/// input both as it is and sealed, which takes it past the checksum to the fields.
fn sealed(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out.extend_from_slice(&Sha1Digest::of(bytes).0);
    out
}

/// `StateRecord::decode` never panics; a record it accepts has one flag per piece and
/// encodes to the same bytes, but for the unused bits of the bitmap's last byte
/// (which decoding ignores) and so the checksum.
pub fn state_record(data: &[u8]) {
    for bytes in [data.to_vec(), sealed(data)] {
        let Some(record) = StateRecord::decode(&bytes) else {
            continue;
        };
        assert_eq!(
            record.verified.len() as u64,
            p2pshare::protocol::piece_count(record.size)
        );
        let again = record.encode();
        assert_eq!(StateRecord::decode(&again).as_ref(), Some(&record));
        assert_eq!(again.len(), bytes.len());
        let bitmap_end = again.len() - 20;
        let unused = record.verified.len() % 8 != 0;
        let same_up_to = if unused { bitmap_end - 1 } else { bitmap_end };
        assert_eq!(again[..same_up_to], bytes[..same_up_to]);
    }
}

/// `HashCache::decode_bytes` never panics, whatever the counts and lengths inside a
/// cache whose checksum holds.
pub fn hash_cache(data: &[u8]) {
    for bytes in [data.to_vec(), sealed(data)] {
        if let Ok(cache) = HashCache::decode_bytes(&bytes) {
            // Each entry takes at least 75 bytes besides its name (its fixed fields,
            // the SHA-1 flag and hash, the piece count).
            assert!(cache.len() <= bytes.len() / 75);
        }
    }
}

/// The boundary of the forms the `multipart` target reads.
pub const BOUNDARY: &str = "b0undary";

/// A form's parts with their data gathered, as `Multipart` finds them when `body`
/// arrives `step` bytes at a time; checks on the way that every event uses at least
/// one byte and no more than it was given.
fn form(
    body: &[u8],
    step: usize,
    limits: Limits,
) -> Result<Vec<(PartHead, Vec<u8>)>, MultipartError> {
    let mut parser = Multipart::new(BOUNDARY, limits);
    let mut parts: Vec<(PartHead, Vec<u8>)> = Vec::new();
    let mut buf = Vec::new();
    let mut fed = 0;
    loop {
        match parser.next(&buf)? {
            Some((event, used)) => {
                assert!(
                    used > 0 && used <= buf.len(),
                    "used {used} of {}",
                    buf.len()
                );
                match event {
                    Event::Part(head) => parts.push((head, Vec::new())),
                    Event::Data(d) => {
                        assert_eq!(d.len(), used);
                        parts
                            .last_mut()
                            .expect("data inside a part")
                            .1
                            .extend_from_slice(d);
                    }
                    Event::PartEnd | Event::End | Event::Skip => {}
                }
                buf.drain(..used);
            }
            None if fed == body.len() => {
                parser.finish()?;
                return Ok(parts);
            }
            None => {
                let n = step.min(body.len() - fed);
                buf.extend_from_slice(&body[fed..fed + n]);
                fed += n;
            }
        }
    }
}

/// The form parser never panics nor stalls, and what it finds does not depend on how
/// the bytes arrive: all at once, or 1 to 16 at a time (the first byte picks the
/// size), the same parts with the same data, or a refusal both times. Small caps, so
/// that the fuzzer reaches them.
pub fn multipart(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        preamble: 256,
        head: 256,
        parts: 4,
        file: 1024,
        field: 64,
        epilogue: 256,
    };
    let whole = form(body, body.len().max(1), limits);
    let chunked = form(body, 1 + usize::from(first % 16), limits);
    match (&whole, &chunked) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        _ => panic!("whole: {whole:?}, in chunks: {chunked:?}"),
    }
}
