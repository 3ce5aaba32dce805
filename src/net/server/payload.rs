//! Payloads a request announces (`Reply::Receive`, the `upload` verb): the bytes that
//! follow a go-ahead, handed to the reply's sink as they arrive and never buffered
//! whole; and the lingering close that keeps a refusal from being lost to a reset.

use super::{Session, MIN_REQUEST_RATE};
use crate::net::{PayloadSink, Reply, Service};
use crate::protocol::codec;
use crate::protocol::ErrorCode;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Most bytes of a payload read at once ([`Reply::Receive`]).
const PAYLOAD_READ: usize = 64 * 1024;

/// How long a connection refused in the middle of a payload is drained before it is
/// closed (see [`linger`]).
pub const LINGER: Duration = Duration::from_secs(2);

/// Reads and drops what a client still sends, for at most `within` (and 16 MiB), or
/// until it closes: a socket closed with unread bytes is reset, and a reset can destroy
/// the last reply before the client reads it. Call after the reply and a shutdown of
/// the sending side.
pub fn linger(stream: &TcpStream, within: Duration) {
    let until = Instant::now() + within;
    let mut scratch = [0u8; 16 * 1024];
    let mut drained = 0usize;
    while drained < 16 << 20 {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match (&*stream).read(&mut scratch) {
            Ok(0) | Err(_) => return,
            Ok(n) => drained += n,
        }
    }
}

impl<S: Service> Session<'_, S> {
    /// Takes the payload a request announced ([`Reply::Receive`]): writes `header` (the
    /// go-ahead), hands the next `len` bytes to `sink` (those already buffered first,
    /// then each read as it arrives: the payload is never held whole), and returns the
    /// sink's reply. `None` when the exchange ended otherwise (the client closed, went
    /// idle, fell below the request rate, or the sink refused a write: then the
    /// refusal was written and the connection closes).
    ///
    /// The payload has the time a batch of its size would have: the request timeout,
    /// plus a second for every [`MIN_REQUEST_RATE`] bytes received; and no read may
    /// wait longer than the idle timeout.
    pub(super) fn receive(
        &mut self,
        header: &str,
        len: u64,
        mut sink: Box<dyn PayloadSink>,
    ) -> io::Result<Option<Reply>> {
        self.out.write_all(header.as_bytes())?;
        self.out.flush()?;
        let started = Instant::now();
        let mut got = 0u64;
        let buffered =
            (self.buf.len() - self.start).min(usize::try_from(len).unwrap_or(usize::MAX));
        if buffered > 0 {
            let result = sink.write(&self.buf[self.start..self.start + buffered]);
            self.start += buffered;
            got += buffered as u64;
            if let Err(refusal) = result {
                return self.refuse_payload(&refusal.to_line());
            }
        }
        // Bytes the decoder may have looked at were taken as payload: it starts over
        // on what follows.
        self.decoder = codec::Decoder::for_role(self.config.max_line, Some(self.role));
        let mut chunk = vec![0u8; PAYLOAD_READ];
        while got < len {
            let allowed = self.config.request_timeout
                + Duration::from_millis(got.saturating_mul(1000) / MIN_REQUEST_RATE);
            let left = allowed.saturating_sub(started.elapsed());
            if left.is_zero() {
                return self.payload_overdue(got, len);
            }
            let timeout = left.min(self.config.read_timeout);
            if timeout != self.timeout {
                self.stream
                    .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
                self.timeout = timeout;
            }
            let want = usize::try_from(len - got)
                .unwrap_or(usize::MAX)
                .min(PAYLOAD_READ);
            let n = match self.stream.read(&mut chunk[..want]) {
                Ok(0) => {
                    log::debug!(
                        "{}: {}: closed after {got} of a {len}-byte payload",
                        self.role,
                        self.remote
                    );
                    return Ok(None);
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return self.payload_overdue(got, len);
                }
                Err(e) => return Err(e),
            };
            got += n as u64;
            if let Err(refusal) = sink.write(&chunk[..n]) {
                return self.refuse_payload(&refusal.to_line());
            }
        }
        Ok(Some(sink.finish()))
    }

    /// A payload did not arrive in time (idle, or slower than [`MIN_REQUEST_RATE`]):
    /// says so and closes. The sink is dropped, so whatever it kept goes.
    fn payload_overdue(&mut self, got: u64, len: u64) -> io::Result<Option<Reply>> {
        self.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
        log::debug!(
            "{}: {}: a payload stalled at {got} of {len} bytes; closing",
            self.role,
            self.remote
        );
        let line = codec::error_line(
            ErrorCode::BadRequest,
            &format!(
                "the payload stalled at {got} of {len} bytes (it must keep arriving at {} KiB/s or more, and never pause for {:?}); closing",
                MIN_REQUEST_RATE / 1024,
                self.config.read_timeout
            ),
        );
        self.refuse_payload(&line)
    }

    /// Answers a payload refused half way with `line`, and closes: the rest of it
    /// cannot be told from the requests after it.
    fn refuse_payload(&mut self, line: &str) -> io::Result<Option<Reply>> {
        self.out.write_all(line.as_bytes())?;
        self.close()?;
        // The client may still be sending: what it sends is read and dropped for a
        // moment, so that closing with unread bytes does not turn into a reset that
        // destroys the refusal before the client reads it.
        linger(self.stream, LINGER);
        Ok(None)
    }
}
