//! Reading requests off a connection: the head (parsed by `httparse`), then the body
//! by `Content-Length` or chunked, each within its cap and the request timeout; or,
//! for a request whose body the role streams (an upload), the head alone, the body
//! left for [`super::body`].

use super::body::Framing;
use super::{Response, MAX_BODY, MAX_HEAD, MAX_HEADERS};
use crate::net::server::ServerConfig;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Other,
}

impl Method {
    fn parse(text: &str) -> Method {
        match text {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            _ => Method::Other,
        }
    }

    /// Does a request with this method change the node's state?
    pub fn changes_state(self) -> bool {
        !matches!(self, Method::Get | Method::Head)
    }
}

/// One request, read whole.
#[derive(Debug)]
pub struct Request {
    pub method: Method,
    /// The path, percent-decoded, without the query.
    pub path: String,
    /// The query's `key=value` pairs, percent-decoded.
    pub query: Vec<(String, String)>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// For a request whose body is streamed ([`super::Api::streams`]): how its body
    /// is framed. It is still on the connection, and `body` is empty.
    pub pending: Option<Framing>,
    pub remote: SocketAddr,
    /// Keep the connection open after the response.
    pub keep_alive: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The token of an `Authorization: Bearer TOKEN` header.
    pub fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim())
    }

    /// The body as JSON; it must say so (`Content-Type: application/json`, 415
    /// otherwise), which is also what keeps a web page from posting here without the
    /// browser's preflight, a request this server does not answer.
    pub fn json(&self) -> Result<serde_json::Value, Response> {
        let json = self
            .header("content-type")
            .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/json"));
        if !json {
            return Err(Response::error(
                415,
                "the body must be JSON, sent as Content-Type: application/json",
            ));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| Response::error(400, &format!("the body is not JSON: {e}")))
    }

    /// A test request: `GET` or another method on `target` (path and query), with a
    /// body, from loopback.
    pub fn test(method: Method, target: &str, body: &[u8]) -> Request {
        let (path, query) = split_target(target).expect("a valid target");
        Request {
            method,
            path,
            query,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_vec(),
            pending: None,
            remote: SocketAddr::from(([127, 0, 0, 1], 1)),
            keep_alive: true,
        }
    }
}

/// Reads requests off one connection, keeping what was read past the last one.
pub(super) struct Reader<'a> {
    pub(super) stream: &'a TcpStream,
    pub(super) buf: Vec<u8>,
    pub(super) request_timeout: Duration,
    pub(super) idle_timeout: Duration,
    /// No request was read yet: the first is due within the request timeout of the
    /// connection, as on the line protocol (a silent connection does not hold a slot
    /// for the idle timeout).
    first: bool,
}

impl<'a> Reader<'a> {
    pub(super) fn new(stream: &'a TcpStream, first: &[u8], config: &ServerConfig) -> Reader<'a> {
        Reader {
            stream,
            buf: first.to_vec(),
            request_timeout: config.request_timeout,
            idle_timeout: config.read_timeout,
            first: true,
        }
    }

    /// The next request; `None` when the client closed (or went idle) between
    /// requests; `Err` with the response that refuses a bad one (the connection then
    /// closes). The body of a request `streams` picks (by method and path) is left on
    /// the connection, for a [`super::body::BodyReader`]; any other is read whole.
    pub(super) fn next_request(
        &mut self,
        remote: SocketAddr,
        streams: &dyn Fn(Method, &str) -> bool,
    ) -> Result<Option<Request>, Response> {
        let mut started: Option<Instant> = (self.first || !self.buf.is_empty()).then(Instant::now);
        let waiting_first = std::mem::replace(&mut self.first, false);
        let head_len = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end + 4;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(Response::error(
                    431,
                    &format!("the request head is over {MAX_HEAD} bytes"),
                ));
            }
            match self.fill(started) {
                Ok(0) if self.buf.is_empty() => return Ok(None),
                Err(e) if waiting_first && self.buf.is_empty() && is_timeout(&e) => {
                    return Err(Response::error(408, "no request arrived in time"))
                }
                Ok(0) => return Err(Response::error(400, "the request ended before its head")),
                Ok(_) => {
                    started.get_or_insert_with(Instant::now);
                }
                Err(e) if started.is_none() && is_timeout(&e) => return Ok(None),
                Err(e) if is_timeout(&e) => {
                    return Err(Response::error(408, "the request did not arrive in time"))
                }
                Err(_) => return Ok(None),
            }
        };
        let started = started.unwrap_or_else(Instant::now);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&self.buf[..head_len]) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => {
                return Err(Response::error(400, "an incomplete request head"))
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Response::error(
                    431,
                    &format!("more than {MAX_HEADERS} headers"),
                ))
            }
            Err(e) => return Err(Response::error(400, &format!("a malformed request: {e}"))),
        }
        let method = Method::parse(parsed.method.unwrap_or(""));
        let target = parsed.path.unwrap_or("/");
        let (path, query) = split_target(target).ok_or_else(|| {
            Response::error(400, "the request path is not valid UTF-8 when decoded")
        })?;
        let version = parsed.version.unwrap_or(1);
        let mut list = Vec::with_capacity(parsed.headers.len());
        for h in parsed.headers.iter() {
            let value = std::str::from_utf8(h.value)
                .map_err(|_| Response::error(400, &format!("header {} is not UTF-8", h.name)))?;
            list.push((h.name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        self.buf.drain(..head_len);
        let header = |name: &str| {
            list.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let connection = header("connection").map(str::to_ascii_lowercase);
        let keep_alive = match connection.as_deref() {
            Some(c) if c.contains("close") => false,
            Some(c) if c.contains("keep-alive") => true,
            _ => version >= 1,
        };
        // RFC 9112 6.1 and 6.3: chunked must be the (only) coding a server can frame,
        // and several Content-Length values must agree; anything else could put the
        // connection out of step with a proxy in front of it.
        let chunked = match header("transfer-encoding").map(str::to_ascii_lowercase) {
            None => false,
            Some(te) if te.trim() == "chunked" => true,
            Some(te) => {
                return Err(Response::error(
                    400,
                    &format!("Transfer-Encoding '{te}' is not supported (only chunked)"),
                ))
            }
        };
        let lengths: Vec<&str> = list
            .iter()
            .filter(|(k, _)| k == "content-length")
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .collect();
        if lengths.windows(2).any(|w| w[0] != w[1]) {
            return Err(Response::error(400, "Content-Length values disagree"));
        }
        let length = lengths.first().copied();
        if streams(method, &path) {
            let framing = match (chunked, length) {
                (true, Some(_)) => {
                    return Err(Response::error(
                        400,
                        "both Content-Length and Transfer-Encoding: chunked",
                    ))
                }
                (true, None) => Framing::Chunked,
                (false, Some(text)) => Framing::Length(
                    crate::protocol::decimal(text)
                        .ok_or_else(|| Response::error(400, "Content-Length is not a number"))?,
                ),
                (false, None) => Framing::Length(0),
            };
            return Ok(Some(Request {
                method,
                path,
                query,
                headers: list,
                body: Vec::new(),
                pending: Some(framing),
                remote,
                keep_alive,
            }));
        }
        let body = match (chunked, length) {
            (true, Some(_)) => {
                return Err(Response::error(
                    400,
                    "both Content-Length and Transfer-Encoding: chunked",
                ))
            }
            (true, None) => self.chunked_body(started)?,
            (false, Some(text)) => {
                let len: usize = text
                    .parse()
                    .map_err(|_| Response::error(400, "Content-Length is not a number"))?;
                if len > MAX_BODY {
                    return Err(Response::error(
                        413,
                        &format!("the body is over {MAX_BODY} bytes"),
                    ));
                }
                self.exact(len, started)?
            }
            (false, None) => Vec::new(),
        };
        Ok(Some(Request {
            method,
            path,
            query,
            headers: list,
            body,
            pending: None,
            remote,
            keep_alive,
        }))
    }

    /// `len` more bytes of the current request.
    fn exact(&mut self, len: usize, started: Instant) -> Result<Vec<u8>, Response> {
        while self.buf.len() < len {
            self.fill_request(started)?;
        }
        Ok(self.buf.drain(..len).collect())
    }

    /// A chunked body: size lines in hex, data, CRLF; trailers are skipped.
    fn chunked_body(&mut self, started: Instant) -> Result<Vec<u8>, Response> {
        let mut body = Vec::new();
        loop {
            let line = self.line(started)?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| Response::error(400, "a chunk size is not hexadecimal"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.line(started)?.is_empty() {}
                return Ok(body);
            }
            if size > MAX_BODY - body.len() {
                return Err(Response::error(
                    413,
                    &format!("the body is over {MAX_BODY} bytes"),
                ));
            }
            body.extend(self.exact(size, started)?);
            if !self.line(started)?.is_empty() {
                return Err(Response::error(400, "a chunk is longer than its size"));
            }
        }
    }

    /// One CRLF-ended line of the current request, without the CRLF.
    fn line(&mut self, started: Instant) -> Result<String, Response> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..end + 2).take(end).collect();
                return String::from_utf8(line)
                    .map_err(|_| Response::error(400, "a chunk line is not UTF-8"));
            }
            if self.buf.len() > 1024 {
                return Err(Response::error(400, "a chunk line is over 1 KiB"));
            }
            self.fill_request(started)?;
        }
    }

    /// Reads more of a request in progress, refusing a client too slow to finish it.
    fn fill_request(&mut self, started: Instant) -> Result<(), Response> {
        match self.fill(Some(started)) {
            Ok(0) => Err(Response::error(400, "the request ended early")),
            Ok(_) => Ok(()),
            Err(e) if is_timeout(&e) => {
                Err(Response::error(408, "the request did not arrive in time"))
            }
            Err(e) => Err(Response::error(400, &format!("reading the request: {e}"))),
        }
    }

    /// One read: within the request timeout of `started` when a request is in
    /// progress, within the idle timeout otherwise.
    fn fill(&mut self, started: Option<Instant>) -> io::Result<usize> {
        let timeout = match started {
            Some(t) => self
                .request_timeout
                .checked_sub(t.elapsed())
                .filter(|left| !left.is_zero())
                .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))?,
            None => self.idle_timeout,
        };
        self.stream.set_read_timeout(Some(timeout))?;
        let mut chunk = [0u8; 8192];
        let n = (&mut &*self.stream).read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `/a%20b?q=x+y` -> ("/a b", [("q", "x y")]); `None` when a decoded part is not
/// UTF-8.
fn split_target(target: &str) -> Option<(String, Vec<(String, String)>)> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = percent_decode(path, false)?;
    let mut pairs = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((percent_decode(k, true)?, percent_decode(v, true)?));
    }
    Some((path, pairs))
}

/// Decodes `%XX` (and `+` as a space in a query); a stray `%` stays as it is.
pub(super) fn percent_decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                // Two hex digits exactly: `from_str_radix` would also take a sign.
                let hex = Some(&bytes[i + 1..i + 3])
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_split_and_decoded() {
        let (path, query) = split_target("/files/a%20b.txt?q=big+file&limit=5&x").unwrap();
        assert_eq!(path, "/files/a b.txt");
        assert_eq!(
            query,
            vec![
                ("q".to_owned(), "big file".to_owned()),
                ("limit".to_owned(), "5".to_owned()),
                ("x".to_owned(), String::new())
            ]
        );
        assert_eq!(percent_decode("100%", false).unwrap(), "100%");
        assert_eq!(percent_decode("%4", false).unwrap(), "%4");
        assert_eq!(percent_decode("%41", false).unwrap(), "A");
        assert_eq!(percent_decode("%+41", false).unwrap(), "%+41", "no sign");
        assert_eq!(percent_decode("a%4", false).unwrap(), "a%4");
        assert!(percent_decode("%ff", false).is_none());
    }
}
