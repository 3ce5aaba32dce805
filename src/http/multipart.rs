//! A streaming parser of `multipart/form-data` bodies (RFC 7578 over RFC 2046 §5.1):
//! the parts of an upload form as their bytes arrive, never holding a part whole.
//!
//! Pure, like the wire codec: [`Multipart::next`] looks at the bytes received so far
//! and answers "need more", an event and the bytes it used, or a typed error. The
//! caller drops the bytes used, appends what arrives next, and asks again. A
//! delimiter split across two reads is found, because the parser never hands out as
//! part data the bytes that could still begin one: at most the delimiter's length is
//! held back. At the end of the body the caller asks [`Multipart::finish`], which
//! refuses a body that stopped before its final delimiter.
//!
//! Every length has a cap checked before it is waited for: the preamble, a part's
//! header section, the number of parts, each part's data (the file part's cap is the
//! caller's, a form field's is small), the epilogue.
//!
//! A body is `preamble? --B (LWSP) CRLF head CRLF data (CRLF --B (LWSP) CRLF head CRLF
//! data)* CRLF --B-- epilogue?`, where `B` is the boundary of the `Content-Type`. A
//! `CRLF --B` inside data that is followed by neither `--` nor optional white space
//! and CRLF is data, as RFC 2046 has it.

use memchr::memmem::Finder;
use std::fmt;

/// Caps on what one body may hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes before the first delimiter.
    pub preamble: usize,
    /// Bytes of one part's header section.
    pub head: usize,
    /// Parts in the body.
    pub parts: usize,
    /// Bytes of the part named `file`.
    pub file: u64,
    /// Bytes of any other part.
    pub field: u64,
    /// Bytes after the final delimiter.
    pub epilogue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            preamble: 16 * 1024,
            head: 16 * 1024,
            parts: 16,
            file: u64::MAX,
            field: 64 * 1024,
            epilogue: 16 * 1024,
        }
    }
}

/// The headers of one part that matter here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartHead {
    /// The form field's name (`Content-Disposition: form-data; name="..."`).
    pub name: String,
    /// The file name the sender gave, when it gave one (`filename`, or `filename*`).
    pub filename: Option<String>,
    pub content_type: Option<String>,
}

/// What the parser found at the front of the bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A part begins.
    Part(PartHead),
    /// Data of the current part (more may follow).
    Data(&'a [u8]),
    /// The current part ended.
    PartEnd,
    /// The final delimiter: the form is complete.
    End,
    /// Bytes outside every part (the epilogue), taken and dropped.
    Skip,
}

/// Why a body is not a form this parser takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultipartError {
    /// The `Content-Type` has no usable `boundary` parameter.
    NoBoundary(String),
    /// No delimiter within the preamble's cap.
    NoDelimiter {
        within: usize,
    },
    /// A delimiter line with something after the boundary.
    BadDelimiter,
    /// A part's header section over its cap.
    HeadTooLong {
        cap: usize,
    },
    /// A part's headers are not what a form sends.
    BadHead(String),
    TooManyParts {
        cap: usize,
    },
    PartTooLong {
        name: String,
        cap: u64,
    },
    EpilogueTooLong {
        cap: usize,
    },
    /// The body ended before the final delimiter.
    Unterminated,
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MultipartError::NoBoundary(why) => write!(f, "multipart/form-data: {why}"),
            MultipartError::NoDelimiter { within } => write!(
                f,
                "the form's first delimiter (--BOUNDARY) is not within its first {within} bytes"
            ),
            MultipartError::BadDelimiter => {
                f.write_str("a delimiter line of the form has something after the boundary")
            }
            MultipartError::HeadTooLong { cap } => {
                write!(f, "a part's header section is over {cap} bytes")
            }
            MultipartError::BadHead(why) => write!(f, "a part's headers: {why}"),
            MultipartError::TooManyParts { cap } => write!(f, "the form has more than {cap} parts"),
            MultipartError::PartTooLong { name, cap } => {
                write!(f, "the form's part '{name}' is over {cap} bytes")
            }
            MultipartError::EpilogueTooLong { cap } => {
                write!(f, "over {cap} bytes after the form's final delimiter")
            }
            MultipartError::Unterminated => {
                f.write_str("the body ended before the form's final delimiter (--BOUNDARY--)")
            }
        }
    }
}

impl std::error::Error for MultipartError {}

/// The `boundary` of a `multipart/form-data` content type, checked as RFC 2046
/// defines it: 1 to 70 characters, not ending in a space. Any other type is `None`.
pub fn boundary(content_type: &str) -> Option<Result<String, MultipartError>> {
    let mut params = content_type.split(';');
    let kind = params.next().unwrap_or("").trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let rest = content_type[content_type.find(';').unwrap_or(content_type.len())..]
        .trim_start_matches(';');
    let found = parameters(rest)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v);
    Some(match found {
        None => Err(MultipartError::NoBoundary("no boundary parameter".into())),
        Some(b) if b.is_empty() || b.len() > 70 || b.ends_with(' ') => Err(
            MultipartError::NoBoundary(format!("boundary '{b}' is not 1 to 70 characters")),
        ),
        Some(b) if !b.bytes().all(|c| (0x20..0x7f).contains(&c)) => Err(
            MultipartError::NoBoundary("the boundary is not printable ASCII".into()),
        ),
        Some(b) => Ok(b),
    })
}

/// `key=value` parameters (a value a token or a quoted string, where `\"` and `\\`
/// are a quote and a backslash), separated by `;`. Keys are lower-cased; malformed
/// pieces are skipped.
fn parameters(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ';' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return out;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ';' {
                break;
            }
            key.push(c);
            chars.next();
        }
        let key = key.trim().to_ascii_lowercase();
        if chars.next() != Some('=') {
            continue;
        }
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    // A quoted pair (RFC 2045) escapes a quote or a backslash; any
                    // other backslash is itself, as browsers send a Windows path.
                    '\\' if matches!(chars.peek(), Some('"' | '\\')) => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
            // Anything between the closing quote and the next `;` is not the value.
            while chars.peek().is_some_and(|c| *c != ';') {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ';' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_owned();
        }
        if !key.is_empty() {
            out.push((key, value));
        }
    }
}

/// `UTF-8''%e2%82%ac.txt` (RFC 8187), the form of `filename*`.
fn ext_value(text: &str) -> Option<String> {
    let (charset, rest) = text.split_once('\'')?;
    let (_, encoded) = rest.split_once('\'')?;
    if !charset.eq_ignore_ascii_case("utf-8") {
        return None;
    }
    super::parse::percent_decode(encoded, false)
}

/// The head of a part, from its header section (the lines, each ended by CRLF, and
/// the empty line).
fn part_head(section: &[u8]) -> Result<PartHead, MultipartError> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let parsed = match httparse::parse_headers(section, &mut headers) {
        Ok(httparse::Status::Complete((_, parsed))) => parsed,
        Ok(httparse::Status::Partial) => {
            return Err(MultipartError::BadHead(
                "an incomplete header section".into(),
            ))
        }
        Err(e) => return Err(MultipartError::BadHead(e.to_string())),
    };
    let value = |name: &str| {
        parsed
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    let disposition = value("content-disposition")
        .ok_or_else(|| MultipartError::BadHead("no Content-Disposition".into()))?;
    let (kind, params) = disposition
        .split_once(';')
        .unwrap_or((disposition.as_str(), ""));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return Err(MultipartError::BadHead(format!(
            "Content-Disposition is '{}', not form-data",
            kind.trim()
        )));
    }
    let params = parameters(params);
    let param = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let name = param("name")
        .ok_or_else(|| MultipartError::BadHead("Content-Disposition has no name".into()))?;
    let filename = param("filename*")
        .and_then(|v| ext_value(&v))
        .or_else(|| param("filename"));
    Ok(PartHead {
        name,
        filename,
        content_type: value("content-type"),
    })
}

/// Where the parser is in the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before the first delimiter.
    Preamble,
    /// Just after a delimiter's boundary: `--`, or white space and CRLF, is next.
    AfterBoundary,
    /// A part's header section is next.
    Head,
    /// Inside a part's data.
    Body,
    /// After the final delimiter.
    Epilogue,
}

/// What follows a boundary.
enum After {
    NeedMore,
    /// `--`: the final delimiter; the bytes it took.
    Close(usize),
    /// White space and CRLF: a part follows; the bytes they took.
    Next(usize),
    /// Anything else: not a delimiter.
    Not,
}

/// Most transport padding (spaces and tabs) taken after a boundary.
const MAX_PADDING: usize = 64;

fn after_boundary(bytes: &[u8]) -> After {
    if bytes.len() < 2 {
        return After::NeedMore;
    }
    if bytes.starts_with(b"--") {
        return After::Close(2);
    }
    let pad = bytes
        .iter()
        .take(MAX_PADDING + 1)
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    if pad > MAX_PADDING {
        return After::Not;
    }
    match &bytes[pad..] {
        [b'\r', b'\n', ..] => After::Next(pad + 2),
        [] | [b'\r'] => After::NeedMore,
        _ => After::Not,
    }
}

/// The parser of one body.
pub struct Multipart {
    /// `CRLF--boundary`: what ends a part's data.
    delimiter: Vec<u8>,
    finder: Finder<'static>,
    limits: Limits,
    state: State,
    parts: usize,
    /// The current part's name and the bytes of data it had so far.
    part: String,
    part_len: u64,
    epilogue: usize,
}

impl Multipart {
    pub fn new(boundary: &str, limits: Limits) -> Multipart {
        let delimiter = [b"\r\n--", boundary.as_bytes()].concat();
        Multipart {
            finder: Finder::new(&delimiter).into_owned(),
            delimiter,
            limits,
            state: State::Preamble,
            parts: 0,
            part: String::new(),
            part_len: 0,
            epilogue: 0,
        }
    }

    /// The next event at the front of `buf` and the bytes it used; `None` when `buf`
    /// holds too little to tell.
    pub fn next<'a>(
        &mut self,
        buf: &'a [u8],
    ) -> Result<Option<(Event<'a>, usize)>, MultipartError> {
        match self.state {
            State::Preamble => self.preamble(buf),
            State::AfterBoundary => match after_boundary(buf) {
                After::NeedMore => Ok(None),
                After::Close(used) => {
                    self.state = State::Epilogue;
                    Ok(Some((Event::End, used)))
                }
                After::Next(used) => {
                    self.state = State::Head;
                    Ok(Some((Event::Skip, used)))
                }
                After::Not => Err(MultipartError::BadDelimiter),
            },
            State::Head => self.head(buf),
            State::Body => self.body(buf),
            State::Epilogue => {
                self.epilogue += buf.len();
                if self.epilogue > self.limits.epilogue {
                    return Err(MultipartError::EpilogueTooLong {
                        cap: self.limits.epilogue,
                    });
                }
                Ok((!buf.is_empty()).then_some((Event::Skip, buf.len())))
            }
        }
    }

    /// The body ended: fine only after the final delimiter.
    pub fn finish(&self) -> Result<(), MultipartError> {
        match self.state {
            State::Epilogue => Ok(()),
            _ => Err(MultipartError::Unterminated),
        }
    }

    /// Before the first delimiter: `--boundary` at the very start, or `CRLF--boundary`
    /// starting within the preamble's cap, followed by what makes it a delimiter. The
    /// answer does not depend on how the bytes arrived: a delimiter that starts past
    /// the cap is not looked for, even when it is there already.
    fn preamble<'a>(
        &mut self,
        buf: &'a [u8],
    ) -> Result<Option<(Event<'a>, usize)>, MultipartError> {
        let cap = self.limits.preamble;
        let dash_boundary = &self.delimiter[2..];
        let at_start = buf
            .starts_with(dash_boundary)
            .then_some(dash_boundary.len());
        let after_crlf = self
            .finder
            .find_iter(buf)
            .take_while(|&at| at <= cap)
            .map(|at| at + self.delimiter.len());
        for end in at_start.into_iter().chain(after_crlf) {
            match after_boundary(&buf[end..]) {
                After::NeedMore => return Ok(None),
                After::Not => continue,
                After::Close(_) | After::Next(_) => {
                    self.state = State::AfterBoundary;
                    return Ok(Some((Event::Skip, end)));
                }
            }
        }
        // With this much here, every place a delimiter may start has been judged.
        if buf.len() >= cap + self.delimiter.len() + MAX_PADDING + 2 {
            return Err(MultipartError::NoDelimiter { within: cap });
        }
        Ok(None)
    }

    fn head<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(Event<'a>, usize)>, MultipartError> {
        // A part with no header at all is an empty line; a form's parts have one.
        let end = if buf.starts_with(b"\r\n") {
            Some(2)
        } else {
            memchr::memmem::find(buf, b"\r\n\r\n").map(|at| at + 4)
        };
        let Some(end) = end.filter(|&e| e <= self.limits.head) else {
            if buf.len() >= self.limits.head {
                return Err(MultipartError::HeadTooLong {
                    cap: self.limits.head,
                });
            }
            return Ok(None);
        };
        if self.parts == self.limits.parts {
            return Err(MultipartError::TooManyParts {
                cap: self.limits.parts,
            });
        }
        let head = part_head(&buf[..end])?;
        self.parts += 1;
        self.part = head.name.clone();
        self.part_len = 0;
        self.state = State::Body;
        Ok(Some((Event::Part(head), end)))
    }

    fn body<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(Event<'a>, usize)>, MultipartError> {
        match self.finder.find(buf) {
            // Data first: a delimiter is looked at once it is at the front.
            Some(at) if at > 0 => self.data(buf, at),
            Some(_) => match after_boundary(&buf[self.delimiter.len()..]) {
                After::NeedMore => Ok(None),
                After::Close(_) | After::Next(_) => {
                    self.state = State::AfterBoundary;
                    Ok(Some((Event::PartEnd, self.delimiter.len())))
                }
                // Not a delimiter: its CR is data, and so is what follows, up to the
                // next place a delimiter could start.
                After::Not => {
                    let end = match self.finder.find(&buf[1..]) {
                        Some(at) => 1 + at,
                        None => self.safe_end(buf).max(1),
                    };
                    self.data(buf, end)
                }
            },
            None => match self.safe_end(buf) {
                0 => Ok(None),
                end => self.data(buf, end),
            },
        }
    }

    /// The first `len` bytes of `buf` as data of the current part, within its cap.
    fn data<'a>(
        &mut self,
        buf: &'a [u8],
        len: usize,
    ) -> Result<Option<(Event<'a>, usize)>, MultipartError> {
        self.part_len += len as u64;
        let cap = if self.part == "file" {
            self.limits.file
        } else {
            self.limits.field
        };
        if self.part_len > cap {
            return Err(MultipartError::PartTooLong {
                name: self.part.clone(),
                cap,
            });
        }
        Ok(Some((Event::Data(&buf[..len]), len)))
    }

    /// How much of `buf` is surely data when it holds no whole delimiter: all but the
    /// bytes that could be the start of one.
    fn safe_end(&self, buf: &[u8]) -> usize {
        buf.len().saturating_sub(self.delimiter.len() - 1)
    }
}

#[cfg(test)]
mod tests;
