//! The wire codec: a pure function from bytes to messages, and messages to bytes.
//!
//! Decoding never blocks and never allocates beyond its caps: it looks at the bytes
//! received so far and answers "need more", "a message and the bytes it used", or a
//! typed error that says whether the connection can resynchronise (the bytes to skip)
//! or must be closed. Every length is checked against its cap before anything is
//! buffered for it.

use super::commands::{self, Role, Verb};
use super::{ErrorCode, Refusal, MAX_FRAME, MAX_ROWS};

/// The result of a decode step.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<T> {
    /// The buffer holds no complete message yet.
    NeedMore,
    /// A message, and how many bytes of the buffer it used.
    Frame(T, usize),
}

/// A request that failed to decode.
#[derive(Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// What goes back to the client.
    pub refusal: Refusal,
    /// `Some(n)`: drop n bytes and go on with the next request. `None`: the stream
    /// cannot be resynchronised; answer and close.
    pub skip: Option<usize>,
}

impl DecodeError {
    fn recoverable(code: ErrorCode, message: impl Into<String>, skip: usize) -> Self {
        DecodeError {
            refusal: Refusal::new(code, message),
            skip: Some(skip),
        }
    }

    fn fatal(code: ErrorCode, message: impl Into<String>) -> Self {
        DecodeError {
            refusal: Refusal::new(code, message),
            skip: None,
        }
    }
}

/// A decoded request: a verb from the command table, its arguments and its rows, each
/// field borrowed from the bytes received (no allocation but the list of a batch's
/// rows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub verb: Verb,
    pub args: Fields<'a>,
    pub rows: Vec<Fields<'a>>,
}

/// Most fields a request line or a row holds that a [`Fields`] keeps: more than any
/// command takes, so a line with more is refused by its arity check whatever they
/// are.
pub const MAX_FIELDS: usize = 16;

/// The `|`-separated fields of one line, borrowed from it, kept inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fields<'a> {
    /// How many fields the line has (the first [`MAX_FIELDS`] are kept).
    count: usize,
    items: [&'a str; MAX_FIELDS],
}

impl<'a> Fields<'a> {
    /// Splits `text` at every `|`.
    pub fn split(text: &'a str) -> Fields<'a> {
        let mut fields = Fields {
            count: 0,
            items: [""; MAX_FIELDS],
        };
        for field in text.split('|') {
            if fields.count < MAX_FIELDS {
                fields.items[fields.count] = field;
            }
            fields.count += 1;
        }
        fields
    }

    /// How many fields the line has, counting any beyond [`MAX_FIELDS`].
    pub fn count(&self) -> usize {
        self.count
    }

    /// The fields after the first.
    fn tail(mut self) -> Fields<'a> {
        let kept = self.count.min(MAX_FIELDS);
        if kept > 0 {
            self.items.copy_within(1..kept, 0);
            self.items[kept - 1] = "";
        }
        self.count = self.count.saturating_sub(1);
        self
    }
}

impl<'a> std::ops::Deref for Fields<'a> {
    type Target = [&'a str];

    fn deref(&self) -> &[&'a str] {
        &self.items[..self.count.min(MAX_FIELDS)]
    }
}

impl std::fmt::Debug for Fields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Why a line could not be taken from the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineError {
    /// No terminator within the cap.
    TooLong { cap: usize },
}

/// Finds the first line in `buf`. Returns the line without its `\n` (or `\r\n`) and
/// the bytes used, `None` when no terminator has arrived yet, or an error when the cap
/// is reached without one. A line of exactly `cap` bytes including `\n` is accepted.
pub fn next_line(buf: &[u8], cap: usize) -> Result<Option<(&[u8], usize)>, LineError> {
    let window = &buf[..buf.len().min(cap)];
    match window.iter().position(|&b| b == b'\n') {
        Some(end) => {
            let line = &buf[..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            Ok(Some((line, end + 1)))
        }
        None if buf.len() >= cap => Err(LineError::TooLong { cap }),
        None => Ok(None),
    }
}

fn split_fields(line: &[u8]) -> Result<Fields<'_>, &'static str> {
    let text = std::str::from_utf8(line).map_err(|_| "line is not valid UTF-8")?;
    Ok(Fields::split(text))
}

/// Decodes one request from the front of `buf`. Empty lines are skipped.
pub fn decode_request(buf: &[u8], max_line: usize) -> Result<Decoded<Request<'_>>, DecodeError> {
    decode_request_as(buf, max_line, None)
}

/// Decodes one request addressed to a node of `role` (`None`: any). A verb the role
/// does not serve is refused after its own line: the lines after it are not taken as
/// its rows, since nothing says they are.
pub fn decode_request_as(
    buf: &[u8],
    max_line: usize,
    role: Option<Role>,
) -> Result<Decoded<Request<'_>>, DecodeError> {
    let mut start = 0;
    loop {
        let (line, used) = match next_line(&buf[start..], max_line) {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(Decoded::NeedMore),
            Err(LineError::TooLong { cap }) => {
                return Err(DecodeError::fatal(
                    ErrorCode::TooLarge,
                    format!("line longer than {cap} bytes"),
                ))
            }
        };
        if line.is_empty() {
            start += used;
            continue;
        }
        let end = start + used;
        let line = split_fields(line)
            .map_err(|why| DecodeError::recoverable(ErrorCode::BadRequest, why, end))?;
        let verb_text = line[0];
        let fields = line.tail();
        let Some(cmd) = commands::lookup(verb_text) else {
            return Err(DecodeError::recoverable(
                ErrorCode::UnknownVerb,
                format!("unknown verb '{}'", printable(verb_text)),
                end,
            ));
        };
        if let Some(role) = role.filter(|r| !cmd.roles.contains(r)) {
            return Err(DecodeError::recoverable(
                ErrorCode::UnknownVerb,
                format!("'{}' is not served by the {role} role", cmd.name),
                end,
            ));
        }
        if fields.count() < cmd.min_args || fields.count() > cmd.max_args {
            return Err(DecodeError::recoverable(
                ErrorCode::BadRequest,
                format!("wrong number of fields; usage: {}", cmd.usage),
                end,
            ));
        }
        let Some(spec) = cmd.rows else {
            let request = Request {
                verb: cmd.verb,
                args: fields,
                rows: Vec::new(),
            };
            return Ok(Decoded::Frame(request, end));
        };
        let Some((rows, at)) = decode_rows(buf, start, end, fields[0], spec, max_line)? else {
            return Ok(Decoded::NeedMore);
        };
        let request = Request {
            verb: cmd.verb,
            args: fields,
            rows,
        };
        return Ok(Decoded::Frame(request, at));
    }
}

/// A batch's rows, each split into its fields.
type Rows<'a> = Vec<Fields<'a>>;

/// The rows of a batch whose request line spans `start..end` of `buf` and whose first
/// argument, `count`, says how many follow: the rows and where the frame ends, or
/// `None` when they have not all arrived.
fn decode_rows<'a>(
    buf: &'a [u8],
    start: usize,
    end: usize,
    count: &str,
    spec: commands::RowSpec,
    max_line: usize,
) -> Result<Option<(Rows<'a>, usize)>, DecodeError> {
    // Without a valid count the rows cannot be skipped, so a bad count closes the
    // connection.
    let count: usize = super::decimal(count).ok_or_else(|| {
        DecodeError::fatal(
            ErrorCode::BadRequest,
            format!("row count '{}' is not a number", printable(count)),
        )
    })?;
    if count > MAX_ROWS {
        return Err(DecodeError::fatal(
            ErrorCode::TooLarge,
            format!("{count} rows in one batch, at most {MAX_ROWS} allowed"),
        ));
    }
    let too_large = || {
        DecodeError::fatal(
            ErrorCode::TooLarge,
            format!("batch larger than {MAX_FRAME} bytes"),
        )
    };
    let mut rows = Vec::with_capacity(count);
    let mut at = end;
    let mut bad_row: Option<String> = None;
    for i in 0..count {
        let (row, used) = match next_line(&buf[at..], max_line) {
            Ok(Some(found)) => found,
            Ok(None) if at - start >= MAX_FRAME => return Err(too_large()),
            Ok(None) => return Ok(None),
            Err(LineError::TooLong { cap }) => {
                return Err(DecodeError::fatal(
                    ErrorCode::TooLarge,
                    format!("row longer than {cap} bytes"),
                ))
            }
        };
        at += used;
        if at - start > MAX_FRAME {
            return Err(too_large());
        }
        if bad_row.is_some() {
            continue;
        }
        match split_fields(row) {
            Ok(r) if r.count() == spec.fields => rows.push(r),
            Ok(_) => {
                bad_row = Some(format!(
                    "row {} has the wrong number of fields; rows are {}",
                    i + 1,
                    spec.shape
                ))
            }
            Err(why) => bad_row = Some(format!("row {}: {why}", i + 1)),
        }
    }
    match bad_row {
        Some(message) => Err(DecodeError::recoverable(ErrorCode::BadRequest, message, at)),
        None => Ok(Some((rows, at))),
    }
}

/// Decodes requests from a buffer that grows as bytes arrive, looking at each byte of
/// an incomplete frame once.
///
/// [`decode_request`] starts from the front of its buffer on every call, so a server
/// that tried again after every read would scan a batch arriving one row per packet
/// once per row, and split it into fields once per row too: quadratic work that one
/// client could force on purpose (an 8 MiB batch sent row by row cost the index
/// seconds of CPU). A `Decoder` counts the line ends that have arrived and calls
/// [`decode_request`] only when the frame at the front can be complete, or has
/// broken a cap, which it does a bounded number of times per frame.
///
/// `buf` is always the bytes from the start of the current frame on; after a frame or
/// an error the caller drops the bytes it used, and the decoder starts on the next.
#[derive(Debug)]
pub struct Decoder {
    max_line: usize,
    /// The role of the node decoding: verbs it does not serve take no rows.
    role: Option<Role>,
    /// Bytes of the current frame already scanned for line ends.
    scanned: usize,
    /// Line ends among them.
    lines: usize,
    /// Where the line still arriving starts (just after the last line end).
    line_start: usize,
    /// A line that arrived whole since the last full decode is longer than
    /// `max_line`: [`decode_request`] may refuse it even though the frame is not
    /// complete, so the next call must ask it.
    long_line: bool,
    /// Line ends the frame needs before it can be whole: a lower bound until the
    /// header line (with a batch's row count) has arrived.
    needed: usize,
    /// Calls to [`decode_request`] so far (a measure of work, for tests).
    full_decodes: usize,
    /// Bytes scanned for line ends so far (a measure of work, for tests).
    bytes_scanned: usize,
}

impl Decoder {
    pub fn new(max_line: usize) -> Decoder {
        Decoder::for_role(max_line, None)
    }

    /// A decoder for a node of `role`: see [`decode_request_as`].
    pub fn for_role(max_line: usize, role: Option<Role>) -> Decoder {
        Decoder {
            max_line,
            role,
            scanned: 0,
            lines: 0,
            line_start: 0,
            long_line: false,
            needed: 1,
            full_decodes: 0,
            bytes_scanned: 0,
        }
    }

    fn restart(&mut self) {
        self.scanned = 0;
        self.lines = 0;
        self.line_start = 0;
        self.long_line = false;
        self.needed = 1;
    }

    /// What [`decode_request`] would answer for `buf`.
    pub fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Decoded<Request<'a>>, DecodeError> {
        if buf.len() < self.scanned {
            // Not the buffer this decoder was following: start over.
            self.restart();
        }
        self.bytes_scanned += buf.len() - self.scanned;
        for (i, &b) in buf[self.scanned..].iter().enumerate() {
            if b == b'\n' {
                let end = self.scanned + i + 1;
                // A line of exactly `max_line` bytes with its `\n` is accepted.
                self.long_line |= end - self.line_start > self.max_line;
                self.lines += 1;
                self.line_start = end;
            }
        }
        self.scanned = buf.len();
        let over_a_cap = self.long_line
            || buf.len() - self.line_start >= self.max_line
            || self.line_start >= MAX_FRAME;
        if self.lines < self.needed && !over_a_cap {
            return Ok(Decoded::NeedMore);
        }
        self.full_decodes += 1;
        // No whole line scanned so far is over the cap: what is scanned past this
        // frame need not be scanned again for one.
        let clean = !std::mem::take(&mut self.long_line);
        let result = decode_request_as(buf, self.max_line, self.role);
        match &result {
            Ok(Decoded::NeedMore) => {
                self.needed = lines_needed(buf, self.max_line, self.role).max(self.lines + 1);
            }
            Ok(Decoded::Frame(_, used)) if clean => self.advance(buf, *used),
            Err(DecodeError {
                skip: Some(used), ..
            }) if clean => self.advance(buf, *used),
            _ => self.restart(),
        }
        result
    }

    /// The caller drops the `used` bytes of the frame just decoded: keeps what was
    /// scanned after them, so requests pipelined in one read are scanned once each,
    /// not once per request before them.
    fn advance(&mut self, buf: &[u8], used: usize) {
        if used > self.line_start {
            // Not at a line end scanned already: nothing to keep.
            return self.restart();
        }
        let dropped = buf[..used].iter().filter(|&&b| b == b'\n').count();
        self.scanned -= used;
        self.lines -= dropped;
        self.line_start -= used;
        self.needed = 1;
    }
}

/// How many line ends the frame at the front of `buf` needs in all: leading empty
/// lines, the header line, and a batch's rows once its header has arrived.
fn lines_needed(buf: &[u8], max_line: usize, role: Option<Role>) -> usize {
    let mut at = 0;
    let mut lines = 0;
    while let Ok(Some((line, used))) = next_line(&buf[at..], max_line) {
        lines += 1;
        at += used;
        if line.is_empty() {
            continue;
        }
        let text = std::str::from_utf8(line).unwrap_or("");
        let mut fields = text.split('|');
        let rows = fields
            .next()
            .and_then(commands::lookup)
            .filter(|c| role.is_none_or(|r| c.roles.contains(&r)))
            .and_then(|c| c.rows)
            .and(fields.next())
            .and_then(super::decimal::<usize>)
            .unwrap_or(0);
        return lines + rows.min(MAX_ROWS);
    }
    lines + 1
}

/// Free text (an error from a library, say) made fit for one field of a reply: at most
/// 256 characters, separators and control characters turned into spaces.
pub fn printable_field(text: &str) -> String {
    text.chars()
        .take(256)
        .map(|c| if c == '|' || c.is_control() { ' ' } else { c })
        .collect()
}

/// Shortens and escapes client text for use inside an error message.
pub fn printable(text: &str) -> String {
    let mut out: String = text.chars().take(64).flat_map(char::escape_debug).collect();
    if text.chars().count() > 64 {
        out.push_str("...");
    }
    out
}

/// The first line of a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyHead {
    /// `ok|...`: the fields after `ok`.
    Ok(Vec<String>),
    /// `err|<code>|<message>`.
    Err(Refusal),
    /// `data|<len>`: exactly len raw bytes follow.
    Data(u64),
}

/// Parses the first line of a reply (without its terminator).
pub fn parse_reply(line: &[u8]) -> Result<ReplyHead, String> {
    let text = std::str::from_utf8(line).map_err(|_| "reply is not valid UTF-8".to_owned())?;
    let (kind, rest) = text.split_once('|').unwrap_or((text, ""));
    match kind {
        "ok" if rest.is_empty() => Ok(ReplyHead::Ok(Vec::new())),
        "ok" => Ok(ReplyHead::Ok(rest.split('|').map(str::to_owned).collect())),
        "err" => {
            let (code, message) = rest.split_once('|').unwrap_or((rest, ""));
            let refusal = match ErrorCode::parse(code) {
                Some(code) => Refusal::new(code, message),
                None => Refusal::new(ErrorCode::Internal, format!("{code}: {message}")),
            };
            Ok(ReplyHead::Err(refusal))
        }
        "data" => super::decimal(rest)
            .map(ReplyHead::Data)
            .ok_or_else(|| format!("bad data length '{}'", printable(rest))),
        _ => Err(format!("unexpected reply '{}'", printable(text))),
    }
}

/// Appends `n` in decimal to `out` without going through a formatter (for replies
/// built row by row on a hot path).
pub fn push_decimal(out: &mut String, n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
}

/// Joins fields into a line with its terminator. Fields come from validated values;
/// a field holding a separator or line break would be a bug, so it is replaced.
pub fn line(fields: &[&str]) -> String {
    let mut out = String::with_capacity(fields.iter().map(|f| f.len() + 1).sum::<usize>() + 1);
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push('|');
        }
        if f.bytes().any(|b| b == b'|' || b == b'\n' || b == b'\r') {
            debug_assert!(false, "field {f:?} breaks framing");
            out.extend(f.chars().map(|c| match c {
                '|' | '\n' | '\r' => '_',
                c => c,
            }));
        } else {
            out.push_str(f);
        }
    }
    out.push('\n');
    out
}

/// `err|<code>|<message>\n`; line breaks in the message become spaces.
pub fn error_line(code: ErrorCode, message: &str) -> String {
    let message: String = message
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    format!("err|{}|{message}\n", code.as_str())
}

/// `data|<len>\n`, the header of a binary payload.
pub fn data_header(len: u64) -> String {
    format!("data|{len}\n")
}

/// A request of the classic seed-003 dialect: one request per connection, no newline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Classic {
    /// `get|<name>` sent to an index.
    Get { name: String },
    /// `set|<name>|<host>|<peerid>|<port>` sent to an index.
    Set {
        name: String,
        peer_id: String,
        port: String,
    },
    /// `./<peerid>/<name>` sent to a peer: only the final path component counts.
    Download { name: String },
    /// Classic by shape, but not a request this role understands.
    Malformed(String),
}

/// Recognises the classic dialect by its shape: the first bytes of a connection hold
/// no newline and start like a classic request of this role (`get|`, `set|` for an
/// index, `./` for a peer). Modern clients always end their lines with a newline, so
/// they never match and are never delayed.
pub fn classic_shape(first: &[u8], role: Role) -> Option<Classic> {
    if first.contains(&b'\n') {
        return None;
    }
    let looks_classic = match role {
        Role::Index => first.starts_with(b"get|") || first.starts_with(b"set|"),
        Role::Peer => first.starts_with(b"./"),
        Role::Seed => false,
    };
    if !looks_classic {
        return None;
    }
    let Ok(text) = std::str::from_utf8(first) else {
        return Some(Classic::Malformed("request is not valid UTF-8".into()));
    };
    if role == Role::Peer {
        let name = text.rsplit(['/', '\\']).next().unwrap_or("");
        return Some(Classic::Download {
            name: name.to_owned(),
        });
    }
    let fields: Vec<&str> = text.split('|').collect();
    Some(match fields.as_slice() {
        ["get", name] => Classic::Get {
            name: (*name).to_owned(),
        },
        ["set", name, _host, peer_id, port] => Classic::Set {
            name: (*name).to_owned(),
            peer_id: (*peer_id).to_owned(),
            port: (*port).to_owned(),
        },
        _ => Classic::Malformed(format!(
            "expected get|<name> or set|<name>|<host>|<peerid>|<port>, got '{}'",
            printable(text)
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MAX_LINE;

    fn frame(buf: &[u8]) -> (Request<'_>, usize) {
        match decode_request(buf, MAX_LINE) {
            Ok(Decoded::Frame(r, used)) => (r, used),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    const REAL_FRAMES: &[&[u8]] = &[
        b"hello|1|peer|peer1|1025\n",
        b"get|onekb.txt\r\n",
        b"search|one kb -txt|10\n",
        b"fetch|onekb.txt|sha1:a9993e364706816aba3e25717850c26c9cd0d89d|0|4096\n",
        b"publish|2\na.txt|3|sha1:a9993e364706816aba3e25717850c26c9cd0d89d|sha1:a9993e364706816aba3e25717850c26c9cd0d89d\nb|0|sha1:a9993e364706816aba3e25717850c26c9cd0d89d|sha1:a9993e364706816aba3e25717850c26c9cd0d89d\n",
        b"withdraw|1\na.txt\n",
        b"status\n",
    ];

    #[test]
    fn every_split_point_of_real_frames_needs_more_then_decodes() {
        for whole in REAL_FRAMES {
            let (expected, used) = frame(whole);
            assert_eq!(used, whole.len());
            for cut in 0..whole.len() {
                assert_eq!(
                    decode_request(&whole[..cut], MAX_LINE),
                    Ok(Decoded::NeedMore),
                    "cut at {cut} of {:?}",
                    String::from_utf8_lossy(whole)
                );
            }
            // The same frame followed by the start of another decodes the same way.
            let mut two = whole.to_vec();
            two.extend_from_slice(b"pi");
            assert_eq!(frame(&two), (expected, used));
        }
    }

    #[test]
    fn pipelined_requests_decode_one_by_one() {
        let buf = b"ping\nget|x\n\nstatus\n";
        let (a, n1) = frame(buf);
        assert_eq!(a.verb, Verb::Ping);
        let (b, n2) = frame(&buf[n1..]);
        assert_eq!((b.verb, &*b.args), (Verb::Get, &["x"][..]));
        let (c, n3) = frame(&buf[n1 + n2..]);
        assert_eq!(c.verb, Verb::Status);
        assert_eq!(n1 + n2 + n3, buf.len());
    }

    #[test]
    fn batch_rows_are_split_into_fields() {
        let (req, _) = frame(REAL_FRAMES[4]);
        assert_eq!(req.verb, Verb::Publish);
        assert_eq!(req.rows.len(), 2);
        assert_eq!(req.rows[1][0], "b");
    }

    #[test]
    fn unknown_verb_is_recoverable() {
        let err = decode_request(b"frobnicate|x\nping\n", MAX_LINE).unwrap_err();
        assert_eq!(err.refusal.code, ErrorCode::UnknownVerb);
        assert_eq!(err.skip, Some(13));
    }

    #[test]
    fn wrong_arity_names_the_usage() {
        let err = decode_request(b"get\n", MAX_LINE).unwrap_err();
        assert_eq!(err.refusal.code, ErrorCode::BadRequest);
        assert!(err.refusal.message.contains("get|<name>"));
        let err = decode_request(b"ping|extra\n", MAX_LINE).unwrap_err();
        assert_eq!(err.skip, Some(11));
    }

    #[test]
    fn invalid_utf8_is_recoverable() {
        let err = decode_request(b"get|\xff\xfe\n", MAX_LINE).unwrap_err();
        assert_eq!(err.refusal.code, ErrorCode::BadRequest);
        assert_eq!(err.skip, Some(7));
    }

    #[test]
    fn over_long_line_is_fatal_before_buffering_more() {
        let long = vec![b'a'; 100];
        let err = decode_request(&long, 64).unwrap_err();
        assert_eq!(err.refusal.code, ErrorCode::TooLarge);
        assert_eq!(err.skip, None);
        // Exactly at the cap, with its newline, is fine.
        let mut ok = b"get|".to_vec();
        ok.extend(vec![b'a'; 59]);
        ok.push(b'\n');
        assert_eq!(ok.len(), 64);
        assert!(matches!(decode_request(&ok, 64), Ok(Decoded::Frame(..))));
    }

    #[test]
    fn bad_row_count_is_fatal() {
        let err = decode_request(b"publish|lots\n", MAX_LINE).unwrap_err();
        assert_eq!(err.skip, None);
        let err = decode_request(b"publish|999999999\n", MAX_LINE).unwrap_err();
        assert_eq!(err.refusal.code, ErrorCode::TooLarge);
        assert_eq!(err.skip, None);
    }

    #[test]
    fn bad_row_skips_the_whole_batch() {
        let buf = b"withdraw|2\na|b\nc\nping\n";
        let err = decode_request(buf, MAX_LINE).unwrap_err();
        assert_eq!(err.refusal.code, ErrorCode::BadRequest);
        assert!(err.refusal.message.contains("row 1"));
        assert_eq!(err.skip, Some(buf.len() - 5));
    }

    #[test]
    fn replies_parse() {
        assert_eq!(
            parse_reply(b"ok|pong"),
            Ok(ReplyHead::Ok(vec!["pong".into()]))
        );
        assert_eq!(parse_reply(b"ok"), Ok(ReplyHead::Ok(vec![])));
        assert_eq!(parse_reply(b"data|4096"), Ok(ReplyHead::Data(4096)));
        assert_eq!(
            parse_reply(b"err|not-found|no file 'x' | here"),
            Ok(ReplyHead::Err(Refusal::new(
                ErrorCode::NotFound,
                "no file 'x' | here"
            )))
        );
        assert!(parse_reply(b"data|-1").is_err());
        assert!(parse_reply(b"hello").is_err());
    }

    #[test]
    fn encoding_round_trips_through_the_decoder() {
        let l = line(&["get", "a b.txt"]);
        let (req, used) = frame(l.as_bytes());
        assert_eq!(used, l.len());
        assert_eq!(*req.args, ["a b.txt"]);
        assert_eq!(error_line(ErrorCode::Busy, "a\nb"), "err|busy|a b\n");
    }

    #[test]
    fn classic_dialect_is_recognised_by_shape() {
        assert_eq!(
            classic_shape(b"get|onekb.txt", Role::Index),
            Some(Classic::Get {
                name: "onekb.txt".into()
            })
        );
        assert_eq!(
            classic_shape(b"set|onekb.txt|localhost|peer1|1025", Role::Index),
            Some(Classic::Set {
                name: "onekb.txt".into(),
                peer_id: "peer1".into(),
                port: "1025".into()
            })
        );
        assert_eq!(classic_shape(b"get|onekb.txt\n", Role::Index), None);
        assert_eq!(classic_shape(b"status", Role::Index), None);
        assert!(matches!(
            classic_shape(b"set|x", Role::Index),
            Some(Classic::Malformed(_))
        ));
        assert_eq!(
            classic_shape(b"./peer1/../../etc/passwd", Role::Peer),
            Some(Classic::Download {
                name: "passwd".into()
            })
        );
        assert_eq!(
            classic_shape(b"./peer1/..", Role::Peer),
            Some(Classic::Download { name: "..".into() })
        );
        assert_eq!(classic_shape(b"get|x", Role::Peer), None);
    }

    /// Feeds `stream` in pieces of `step` bytes the way the server does, and returns
    /// every outcome, decoding with the decoder or with `decode_request` each time.
    fn drive(stream: &[u8], step: usize, incremental: bool) -> Vec<String> {
        let mut out = Vec::new();
        let mut decoder = Decoder::new(64);
        let (mut start, mut end) = (0, 0);
        while end < stream.len() {
            end = (end + step).min(stream.len());
            loop {
                let buf = &stream[start..end];
                let result = if incremental {
                    decoder.decode(buf)
                } else {
                    decode_request(buf, 64)
                };
                match result {
                    Ok(Decoded::NeedMore) => break,
                    Ok(Decoded::Frame(req, used)) => {
                        out.push(format!("{req:?}"));
                        start += used;
                    }
                    Err(e) => {
                        out.push(format!("{:?}", e.refusal));
                        match e.skip {
                            Some(n) => start += n,
                            None => return out,
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_decoder_answers_what_decode_request_answers() {
        let mut streams: Vec<Vec<u8>> = vec![
            b"ping\n\nwithdraw|3\na\nb\nc\nget|x\n".to_vec(),
            b"withdraw|2\na|b\nc\nping\n".to_vec(),
            b"publish|x\nping\n".to_vec(),
            vec![b'a'; 200],
            b"withdraw|9999\n"
                .iter()
                .chain(&[b'r'; 100])
                .copied()
                .collect(),
        ];
        let alphabet = b"||\n\n\rwithdraw|2\nget|ping\nsync|1|more\n\xff";
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..300 {
            let len = (state % 300) as usize;
            let mut s = Vec::with_capacity(len);
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                s.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            streams.push(s);
        }
        for s in &streams {
            for step in [1, 2, 3, 7, 64, 1000] {
                assert_eq!(
                    drive(s, step, true),
                    drive(s, step, false),
                    "stream {:?} in steps of {step}",
                    String::from_utf8_lossy(s)
                );
            }
        }
    }

    #[test]
    fn a_batch_arriving_row_by_row_is_decoded_once() {
        let mut decoder = Decoder::new(MAX_LINE);
        let mut buf = b"withdraw|10000\n".to_vec();
        assert_eq!(decoder.decode(&buf), Ok(Decoded::NeedMore));
        for i in 0..10_000 {
            buf.extend_from_slice(format!("name-{i}\n").as_bytes());
            let result = decoder.decode(&buf);
            if i < 9_999 {
                assert_eq!(result, Ok(Decoded::NeedMore));
            } else {
                let Ok(Decoded::Frame(req, used)) = result else {
                    panic!("expected the batch, got {result:?}");
                };
                assert_eq!((req.rows.len(), used), (10_000, buf.len()));
            }
        }
        // The header once, the whole batch once: not once per row.
        assert_eq!(decoder.full_decodes, 2);
    }

    #[test]
    fn decimals_are_written_as_the_formatter_writes_them() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            1_048_576,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = String::from("x");
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}"));
        }
    }

    #[test]
    fn requests_pipelined_in_one_read_are_scanned_once_each() {
        // 64 KiB of `ping` arrives in one read: scanning what follows each request
        // again would be 13,000 requests times the bytes after them.
        let buf = b"ping\n".repeat(64 * 1024 / 5);
        let mut decoder = Decoder::new(MAX_LINE);
        let mut start = 0;
        let mut answered = 0;
        while let Ok(Decoded::Frame(req, used)) = decoder.decode(&buf[start..]) {
            assert_eq!(req.verb, Verb::Ping);
            start += used;
            answered += 1;
        }
        assert_eq!((answered, start), (buf.len() / 5, buf.len()));
        assert!(
            decoder.bytes_scanned <= buf.len(),
            "{} bytes scanned for a {}-byte read",
            decoder.bytes_scanned,
            buf.len()
        );
    }

    /// Found by the decoder_stream fuzz target: a row over the line cap that arrived
    /// with its line end in one read left the decoder answering "need more" where
    /// `decode_request` refuses, until the rest of the batch arrived.
    #[test]
    fn a_row_over_the_cap_that_arrives_whole_is_refused_at_once_by_the_decoder() {
        let buf = b"publish|2\na.txt|3|sha1:0123456789abcdef0123456789abcdef|x\n";
        let mut decoder = Decoder::new(32);
        let want = decode_request(buf, 32);
        assert!(matches!(&want, Err(e) if e.skip.is_none()), "{want:?}");
        assert_eq!(decoder.decode(&buf[..10]), Ok(Decoded::NeedMore));
        assert_eq!(decoder.decode(buf), want);
    }

    #[test]
    fn decoder_never_panics_on_noise() {
        // A small deterministic fuzz: random bytes biased towards protocol characters.
        let alphabet = b"|\n\r\\/.aeg0123456789publishwithdrawfetchget\xff";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let len = (state % 64) as usize;
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                buf.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            match decode_request(&buf, 32) {
                Ok(Decoded::Frame(_, used)) => assert!(used <= buf.len()),
                Err(DecodeError { skip: Some(n), .. }) => assert!(n <= buf.len() && n > 0),
                _ => {}
            }
            let _ = classic_shape(&buf, Role::Index);
            let _ = classic_shape(&buf, Role::Peer);
            let _ = parse_reply(&buf);
        }
    }

    /// Regression: `publish|1` sent to a peer took the next request as its row.
    #[test]
    fn a_verb_the_role_does_not_serve_takes_no_rows() {
        let buf = b"publish|1\nping\n";
        let e = match decode_request_as(buf, MAX_LINE, Some(Role::Peer)) {
            Err(e) => e,
            Ok(_) => panic!("a peer decoded publish"),
        };
        assert_eq!(e.refusal.code, ErrorCode::UnknownVerb);
        assert_eq!(e.skip, Some(b"publish|1\n".len()));
        // The index serves it, with its row.
        assert!(matches!(
            decode_request_as(buf, MAX_LINE, Some(Role::Index)),
            Err(DecodeError { skip: Some(n), .. }) if n == buf.len()
        ));
        // The streaming decoder does not wait for rows that will not come.
        let mut d = Decoder::for_role(MAX_LINE, Some(Role::Peer));
        assert!(d.decode(b"publish|1\n").is_err());
    }
}
