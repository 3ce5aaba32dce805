//! A request body read as it arrives, for the requests an [`super::Api`] streams
//! (uploads, up to a peer's size cap, never held in memory): by `Content-Length` or
//! chunked, and `Expect: 100-continue` answered by the first read, so that a request
//! refused before its body is read never has it sent.
//!
//! Time: no read waits longer than the idle timeout, and the body as a whole has the
//! time the line protocol gives a payload of its size: the request timeout plus a
//! second per [`MIN_REQUEST_RATE`] bytes received. A body too slow is an error of
//! kind `TimedOut`; a framing error (a bad chunk size, a body that ends early) one of
//! kind `InvalidData` or `UnexpectedEof`.

use super::parse::Reader;
use crate::net::server::MIN_REQUEST_RATE;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// How a request's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length` (0 when the request has neither header).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Longest chunk-size line, and the most trailer bytes, taken.
const MAX_CHUNK_LINE: usize = 1024;
const MAX_TRAILERS: usize = 16 * 1024;

/// Where a chunked body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// A size line is next.
    Size,
    /// Inside a chunk: `left` bytes of it to come (in [`BodyReader::left`]).
    Data,
    /// The CRLF after a chunk's data is next.
    DataEnd,
    /// The trailers, up to an empty line.
    Trailers,
}

/// The body of one streamed request, read off its connection as the caller reads.
pub(super) struct BodyReader<'r, 'a> {
    reader: &'r mut Reader<'a>,
    framing: Framing,
    chunk: Chunk,
    /// Bytes left: of the whole body (`Length`), or of the current chunk.
    left: u64,
    /// Bytes of the body read so far.
    got: u64,
    started: Instant,
    /// The client waits for `100 Continue` before it sends the body.
    continue_due: bool,
    /// The body was read to its end.
    done: bool,
}

impl<'r, 'a> BodyReader<'r, 'a> {
    pub(super) fn new(
        reader: &'r mut Reader<'a>,
        framing: Framing,
        expects_continue: bool,
    ) -> Self {
        let left = match framing {
            Framing::Length(n) => n,
            Framing::Chunked => 0,
        };
        BodyReader {
            reader,
            framing,
            chunk: Chunk::Size,
            left,
            got: 0,
            started: Instant::now(),
            continue_due: expects_continue,
            done: framing == Framing::Length(0),
        }
    }

    /// Whether the body was read to its end (the connection can carry the next
    /// request).
    pub(super) fn finished(&self) -> bool {
        self.done
    }

    /// One read of the connection into `out`, within the time the body has left.
    fn fill(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let allowed = self.reader.request_timeout
            + Duration::from_millis(self.got.saturating_mul(1000) / MIN_REQUEST_RATE);
        let left = allowed.saturating_sub(self.started.elapsed());
        let stalled = || {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the body stalled after {} bytes (it must keep arriving at {} KiB/s or more)",
                    self.got,
                    MIN_REQUEST_RATE / 1024
                ),
            )
        };
        if left.is_zero() {
            return Err(stalled());
        }
        let timeout = left.min(self.reader.idle_timeout);
        self.reader.stream.set_read_timeout(Some(timeout))?;
        match (&mut &*self.reader.stream).read(out) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the body ended after {} bytes, before its end", self.got),
            )),
            Ok(n) => Ok(n),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(stalled())
            }
            Err(e) => Err(e),
        }
    }

    /// Up to `out.len()` bytes of data, at most `self.left`: from the buffer first,
    /// else straight from the connection.
    fn data(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let want = out
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = if self.reader.buf.is_empty() {
            self.fill(&mut out[..want])?
        } else {
            let n = want.min(self.reader.buf.len());
            out[..n].copy_from_slice(&self.reader.buf[..n]);
            self.reader.buf.drain(..n);
            n
        };
        self.left -= n as u64;
        self.got += n as u64;
        Ok(n)
    }

    /// One CRLF-ended line of the chunked framing, without its CRLF.
    fn line(&mut self, cap: usize) -> io::Result<Vec<u8>> {
        loop {
            if let Some(end) = self.reader.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.reader.buf[..end].to_vec();
                self.reader.buf.drain(..end + 2);
                return Ok(line);
            }
            if self.reader.buf.len() > cap {
                return Err(invalid(format!("a chunk line is over {cap} bytes")));
            }
            let mut chunk = [0u8; 8192];
            let n = self.fill(&mut chunk)?;
            self.reader.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Moves a chunked body on to its next data (or its end): `false` at the end.
    fn next_chunk(&mut self) -> io::Result<bool> {
        loop {
            match self.chunk {
                Chunk::Data if self.left > 0 => return Ok(true),
                Chunk::Data => self.chunk = Chunk::DataEnd,
                Chunk::DataEnd => {
                    if !self.line(MAX_CHUNK_LINE)?.is_empty() {
                        return Err(invalid("a chunk is longer than its size".into()));
                    }
                    self.chunk = Chunk::Size;
                }
                Chunk::Size => {
                    let line = self.line(MAX_CHUNK_LINE)?;
                    let text = std::str::from_utf8(&line)
                        .map_err(|_| invalid("a chunk size is not text".into()))?;
                    let digits = text.split(';').next().unwrap_or("").trim();
                    if digits.is_empty()
                        || digits.len() > 15
                        || !digits.bytes().all(|b| b.is_ascii_hexdigit())
                    {
                        return Err(invalid("a chunk size is not hexadecimal".into()));
                    }
                    let size = u64::from_str_radix(digits, 16)
                        .map_err(|_| invalid("a chunk size is not hexadecimal".into()))?;
                    if size == 0 {
                        self.chunk = Chunk::Trailers;
                    } else {
                        self.left = size;
                        self.chunk = Chunk::Data;
                    }
                }
                Chunk::Trailers => {
                    let mut taken = 0;
                    loop {
                        let line = self.line(MAX_CHUNK_LINE)?;
                        if line.is_empty() {
                            self.done = true;
                            return Ok(false);
                        }
                        taken += line.len() + 2;
                        if taken > MAX_TRAILERS {
                            return Err(invalid(format!(
                                "the trailers are over {MAX_TRAILERS} bytes"
                            )));
                        }
                    }
                }
            }
        }
    }
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

impl Read for BodyReader<'_, '_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if std::mem::take(&mut self.continue_due) && self.reader.buf.is_empty() && !self.done {
            // The body is wanted: the client may send it now (RFC 9110 10.1.1).
            (&mut &*self.reader.stream).write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        if self.done || out.is_empty() {
            return Ok(0);
        }
        match self.framing {
            Framing::Length(_) => {
                let n = self.data(out)?;
                if self.left == 0 {
                    self.done = true;
                }
                Ok(n)
            }
            Framing::Chunked => {
                if !self.next_chunk()? {
                    return Ok(0);
                }
                self.data(out)
            }
        }
    }
}
