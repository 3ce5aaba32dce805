//! The HTTP interface of every role (`--http ADDR`): JSON endpoints, Prometheus
//! metrics and the dashboard, served by the project's own threaded server
//! ([`crate::net::server`]) on a listener of its own, so the same connection caps,
//! per-address shares and timeouts apply as on the line protocol.
//!
//! HTTP/1.1 with keep-alive; request heads parsed by `httparse` (what hyper uses),
//! capped at [`MAX_HEAD`] bytes and [`MAX_HEADERS`] headers; bodies by
//! `Content-Length` or chunked, capped at [`MAX_BODY`], but for the bodies a role
//! streams ([`Api::streams`]: a peer's uploads), read as they arrive (`body`). A
//! request must arrive whole within the server's request timeout of its first byte (a
//! streamed body: at 64 KiB/s or faster); a connection idle between requests is
//! closed after the idle timeout. Every error is a JSON body
//! `{"error": "...", "status": N}` with a status that fits.
//!
//! Access: anything that changes state (`POST`, `PUT`, `DELETE`) needs
//! `Authorization: Bearer TOKEN` when a token is set (`--http-token-file`), and is
//! refused outright on a listener that is not on loopback and has no token: a node
//! reachable from the network is never driven by whoever can reach it. Refused
//! requests are counted.
//!
//! The rooms: this file is the protocol (parsing, bodies, responses, access); `api`
//! routes what every role answers and defines [`Api`], which each role implements
//! (`index`, `seed`, `peer`); `upload` is a peer's `POST /upload`, with `body` (a
//! streamed body) and `multipart` (the form parser) under it; `dashboard.html` is
//! the page at `/`.

mod api;
mod body;
mod bridge;
mod index;
mod kv;
pub mod multipart;
mod parse;
mod peer;
mod seed;
mod upload;

pub use api::{Allow, Api, Response};
pub use index::IndexApi;
pub use parse::{Method, Request};
pub use peer::PeerApi;
pub use seed::SeedApi;

use crate::net::server::{self, Protocol, ServerConfig, ServerHandle, ServerStats};
use crate::protocol::commands::Role;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Most bytes of a request head (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers in a request.
pub const MAX_HEADERS: usize = 64;
/// Most bytes of a request body.
pub const MAX_BODY: usize = 1024 * 1024;

/// How the HTTP interface of a node is set up.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// The bearer token state-changing requests must carry, if any.
    pub token: Option<String>,
    pub server: ServerConfig,
}

/// Counters of the HTTP interface, shown in `/status` under `http`.
#[derive(Debug, Default)]
pub struct HttpStats {
    pub requests: AtomicU64,
    /// Requests refused for access (no token, a wrong token, a state change on a
    /// listener open to the network without a token).
    pub refused_access: AtomicU64,
    /// Requests answered with a client error (4xx) other than access.
    pub bad_requests: AtomicU64,
}

/// The HTTP protocol of one node, served by [`crate::net::server`].
pub struct Http<A: Api> {
    api: Arc<A>,
    token: Option<String>,
    /// The listener is on loopback: only this machine can reach it.
    loopback: bool,
    stats: Arc<HttpStats>,
    name: &'static str,
}

/// A running HTTP interface.
pub struct HttpHandle {
    server: ServerHandle,
}

impl HttpHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn shutdown(self) {
        self.server.shutdown();
    }
}

/// Binds `settings.listen` and serves `api` over HTTP in background threads.
pub fn start<A: Api>(settings: &HttpSettings, api: Arc<A>) -> Result<HttpHandle, String> {
    let listener = TcpListener::bind(settings.listen)
        .map_err(|e| format!("cannot listen for HTTP on {}: {e}", settings.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot listen for HTTP on {}: {e}", settings.listen))?;
    if !addr.ip().is_loopback() && settings.token.is_none() {
        log::warn!(
            "HTTP on {addr} is reachable from the network and has no token: it answers only GET; set --http-token-file to allow POST and DELETE"
        );
    }
    let http = Http {
        name: match api.role() {
            Role::Index => "index-http",
            Role::Seed => "seed-http",
            Role::Peer => "peer-http",
        },
        api,
        token: settings.token.clone(),
        loopback: addr.ip().is_loopback(),
        stats: Arc::default(),
    };
    let server = server::spawn_protocol(
        listener,
        settings.server,
        Arc::new(http),
        Arc::new(ServerStats::default()),
    )
    .map_err(|e| format!("cannot start the HTTP server: {e}"))?;
    Ok(HttpHandle { server })
}

impl<A: Api> Protocol for Http<A> {
    fn thread_name(&self) -> &'static str {
        self.name
    }

    fn serve(
        &self,
        stream: &TcpStream,
        remote: SocketAddr,
        first: &[u8],
        config: &ServerConfig,
        _stats: &ServerStats,
    ) {
        let mut reader = parse::Reader::new(stream, first, config);
        let streams = |method: Method, path: &str| self.api.streams(method, path);
        loop {
            let req = match reader.next_request(remote, &streams) {
                Ok(Some(req)) => req,
                Ok(None) => return,
                Err(refusal) => {
                    self.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
                    let _ = refusal.write_to(stream, false, false);
                    return;
                }
            };
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let mut keep = req.keep_alive;
            let (response, whole) = match req.pending {
                None => (self.respond(&req), true),
                Some(framing) => self.respond_streamed(&req, framing, &mut reader),
            };
            // A body left unread cannot be told from the next request.
            keep &= whole;
            crate::metrics::global().request(
                self.name,
                route_label(&req.path),
                response.status < 400,
            );
            // Access refusals (401, 403) are counted as such in `respond`.
            if (400..500).contains(&response.status) && !matches!(response.status, 401 | 403) {
                self.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
            }
            if let Err(e) = response.write_to(stream, keep, req.method == Method::Head) {
                log::debug!("http {remote}: {e}");
                return;
            }
            if !whole {
                // The client may still be sending the body: drained for a moment, so
                // that the close does not reset the connection under the response.
                let _ = stream.shutdown(std::net::Shutdown::Write);
                crate::net::server::linger(stream, crate::net::server::LINGER);
            }
            if !keep {
                return;
            }
        }
    }

    fn refuse_busy(&self, stream: TcpStream, why: &str) {
        let _ = Response::error(503, why).write_to(&stream, false, false);
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
}

impl<A: Api> Http<A> {
    fn respond(&self, req: &Request) -> Response {
        let checked = self.same_site(req).and_then(|()| {
            if req.method.changes_state() || private(&req.path) {
                self.allowed(req)
            } else {
                Ok(())
            }
        });
        if let Err(refusal) = checked {
            self.stats.refused_access.fetch_add(1, Ordering::Relaxed);
            return refusal;
        }
        api::route(&*self.api, req, &self.stats)
    }

    /// Answers a request whose body is still on the connection (an upload), after
    /// the same access checks as any other: a refusal is answered before a byte of
    /// the body is read. Also says whether the body was read to its end.
    fn respond_streamed(
        &self,
        req: &Request,
        framing: body::Framing,
        reader: &mut parse::Reader<'_>,
    ) -> (Response, bool) {
        let checked = self.same_site(req).and_then(|()| {
            if req.method.changes_state() {
                self.allowed(req)
            } else {
                Ok(())
            }
        });
        if let Err(refusal) = checked {
            self.stats.refused_access.fetch_add(1, Ordering::Relaxed);
            return (refusal, framing == body::Framing::Length(0));
        }
        let expects_continue = req
            .header("expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"));
        let mut body = body::BodyReader::new(reader, framing, expects_continue);
        let response = self.api.receive(req, &mut body);
        (response, body.finished())
    }

    /// A loopback listener without a token trusts whoever can reach it: this
    /// machine. A web page the user opens runs on this machine too, so a request
    /// that names another site (a `Host` that is not a loopback name, the mark of DNS
    /// rebinding; an `Origin` that is not this node) is refused.
    fn same_site(&self, req: &Request) -> Result<(), Response> {
        if !self.loopback || self.token.is_some() {
            return Ok(());
        }
        let host_ok = req.header("host").is_none_or(is_loopback_host);
        let origin_ok = req.header("origin").is_none_or(|o| {
            o.strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
                .is_some_and(is_loopback_host)
        });
        if host_ok && origin_ok {
            Ok(())
        } else {
            Err(Response::error(
                403,
                "a loopback node without a token answers only requests for a loopback host, from its own pages",
            ))
        }
    }

    /// May this request change state?
    fn allowed(&self, req: &Request) -> Result<(), Response> {
        match &self.token {
            None if self.loopback => Ok(()),
            None => Err(Response::error(
                401,
                "this node's HTTP interface is open to the network without a token: it changes nothing and keeps messages and downloads to itself (start it with --http-token-file)",
            )),
            Some(token) => match req.bearer() {
                Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
                Some(_) => Err(Response::error(401, "wrong token")),
                None => Err(Response::error(
                    401,
                    "this request needs 'Authorization: Bearer TOKEN' (the node's --http-token-file)",
                )),
            },
        }
    }
}

/// The `verb` label of an HTTP request in `p2pshare_requests_total`: its route, from a
/// closed set (the name in a path is not a label).
fn route_label(path: &str) -> &'static str {
    match path {
        "/" => "dashboard",
        "/status" => "status",
        "/health" => "health",
        "/metrics" => "metrics",
        "/search" => "search",
        "/files" => "files",
        "/peers" => "peers",
        "/events" => "events",
        "/message" => "message",
        "/broadcast" => "broadcast",
        "/downloads" => "downloads",
        "/upload" => "upload",
        p if p.starts_with("/downloads/") => "download",
        p if p.starts_with("/kv/") => "kv",
        p if p.starts_with("/download/") => "file",
        p if p.starts_with("/files/") && p.ends_with("/holders") => "holders",
        p if p.starts_with("/files/") => "file",
        _ => "other",
    }
}

/// Paths whose answers are not for anyone who can connect (messages received, the
/// downloads the user started): read with the same access as a state change.
fn private(path: &str) -> bool {
    path == "/events" || path == "/downloads" || path.starts_with("/downloads/")
}

/// `localhost`, `127.0.0.1`, `[::1]` and other loopback literals, with or without a
/// port.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        }),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Compares secrets without an early exit that would time how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads a token file: its first line, trimmed; it must not be empty.
pub fn read_token(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the HTTP token file {}: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_owned();
    if token.len() < 16 {
        return Err(format!(
            "the HTTP token in {} is shorter than 16 characters",
            path.display()
        ));
    }
    Ok(token)
}

/// Writes a whole buffer, mapping the socket's own errors.
fn write_all(mut stream: &TcpStream, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes)
}
