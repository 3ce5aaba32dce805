//! What every role answers over HTTP (`/status`, `/health`, `/metrics`, the dashboard
//! at `/`), the [`Api`] each role implements for its own endpoints, and responses.

use super::{write_all, HttpStats, Method, Request};
use crate::net::rate::TokenBucket;
use crate::protocol::commands::Role;
use crate::render;
use serde_json::{json, Value};
use std::fs::File;
use std::io;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A role's HTTP endpoints, beside those every role has.
pub trait Api: Send + Sync + 'static {
    fn role(&self) -> Role;

    /// The rows of the node's `status`, as the line protocol answers them.
    fn status_rows(&self) -> Vec<(String, String)>;

    /// Answers a request for one of the role's own paths; `None` when the path is
    /// not one of them (404). A known path with the wrong method answers 405.
    fn route(&self, req: &Request) -> Option<Response>;

    /// Whether a request's body is left on the connection for [`Api::receive`]
    /// instead of being read whole first (an upload: up to a peer's size cap, far
    /// over the 1 MiB a body may otherwise have, and never held in memory).
    fn streams(&self, _method: Method, _path: &str) -> bool {
        false
    }

    /// Answers a request whose body [`Api::streams`]: `body` reads it as it arrives.
    /// The access checks were made already. What it leaves unread closes the
    /// connection after the response.
    fn receive(&self, req: &Request, _body: &mut dyn io::Read) -> Response {
        Response::error(404, &format!("no such path: {}", req.path))
    }
}

/// The dashboard: one page, compiled in, that refreshes itself from the JSON
/// endpoints.
const DASHBOARD: &str = include_str!("dashboard.html");

/// Routes a request: the paths every role has, then the role's own.
pub(super) fn route<A: Api + ?Sized>(api: &A, req: &Request, stats: &HttpStats) -> Response {
    let path = req.path.as_str();
    let common = matches!(path, "/" | "/status" | "/health" | "/metrics");
    if common && !matches!(req.method, Method::Get | Method::Head) {
        return Response::not_allowed(path, Allow::Get);
    }
    match path {
        "/" => Response::new(
            200,
            "text/html; charset=utf-8",
            DASHBOARD.as_bytes().to_vec(),
        ),
        "/status" => {
            let mut status = render::status_json(&api.status_rows());
            if let Value::Object(map) = &mut status {
                map.insert(
                    "http".into(),
                    json!({
                        "requests": stats.requests.load(Ordering::Relaxed),
                        "refused_access": stats.refused_access.load(Ordering::Relaxed),
                        "bad_requests": stats.bad_requests.load(Ordering::Relaxed),
                    }),
                );
            }
            Response::json(200, &status)
        }
        "/health" => health(&api.status_rows()),
        "/metrics" => Response::new(
            200,
            crate::metrics::CONTENT_TYPE,
            crate::metrics::encode().into_bytes(),
        ),
        _ => api
            .route(req)
            .unwrap_or_else(|| Response::error(404, &format!("no such path: {path}"))),
    }
}

/// 200 when the node says it is healthy, 503 with the reason otherwise: the same
/// judgement as `p2pshare status`. The 503 body is an error body too (`error`,
/// `status`), as every error is.
fn health(rows: &[(String, String)]) -> Response {
    let row = |key: &str| rows.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    match row("health").as_deref() {
        Some("ok") => Response::json(200, &json!({ "health": "ok" })),
        other => {
            let health = match other {
                Some("failing") => "failing",
                _ => "unknown",
            };
            let reason = row("failing")
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| format!("health is {}", other.unwrap_or("not reported")));
            Response::json(
                503,
                &json!({
                    "health": health,
                    "reason": reason,
                    "error": format!("not healthy: {reason}"),
                    "status": 503,
                }),
            )
        }
    }
}

/// The methods a path takes, for a 405's `Allow` header.
#[derive(Clone, Copy, Debug)]
pub enum Allow {
    /// `GET` (and `HEAD`, which is a `GET` without the body).
    Get,
    Post,
    GetPost,
    GetDelete,
    GetPutDelete,
}

/// What is sent back.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Body,
    /// Headers beyond the content type and length.
    pub headers: Vec<(&'static str, String)>,
}

pub enum Body {
    Bytes(Vec<u8>),
    /// `len` bytes of a file from `offset`, sent with sendfile(2), paced by `limit`
    /// (the node's upload limit) when there is one.
    File {
        file: File,
        offset: u64,
        len: u64,
        limit: Option<Arc<TokenBucket>>,
    },
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type,
            body: Body::Bytes(body),
            headers: Vec::new(),
        }
    }

    pub fn json(status: u16, value: &Value) -> Response {
        let mut body = serde_json::to_vec(value).unwrap_or_default();
        body.push(b'\n');
        Response::new(status, "application/json", body)
    }

    /// `{"error": message, "status": status}`.
    pub fn error(status: u16, message: &str) -> Response {
        Response::json(status, &json!({ "error": message, "status": status }))
    }

    /// 405 for a method `path` does not take, with the `Allow` header RFC 9110 asks
    /// of a 405.
    pub fn not_allowed(path: &str, allow: Allow) -> Response {
        let (what, methods) = match allow {
            Allow::Get => ("GET", "GET, HEAD"),
            Allow::Post => ("POST", "POST"),
            Allow::GetPost => ("GET or POST", "GET, HEAD, POST"),
            Allow::GetDelete => ("GET or DELETE", "GET, HEAD, DELETE"),
            Allow::GetPutDelete => ("GET, PUT or DELETE", "GET, HEAD, PUT, DELETE"),
        };
        Response::error(405, &format!("{path} takes {what}")).with_header("Allow", methods.into())
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Response {
        self.headers.push((name, value));
        self
    }

    fn body_len(&self) -> u64 {
        match &self.body {
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    /// Writes the response; `keep`: the connection stays open; `head_only`: no body.
    /// A 204 or 304 has no body, and so no `Content-Type` nor `Content-Length`
    /// (RFC 9110: a 304's length would have to be the 200's).
    pub(super) fn write_to(
        &self,
        stream: &TcpStream,
        keep: bool,
        head_only: bool,
    ) -> io::Result<()> {
        let bodiless = matches!(self.status, 204 | 304);
        let head_only = head_only || bodiless;
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        if !bodiless {
            head.push_str(&format!(
                "Content-Type: {}\r\nContent-Length: {}\r\n",
                self.content_type,
                self.body_len()
            ));
        }
        head.push_str("Cache-Control: no-store\r\n");
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !keep {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        match &self.body {
            Body::Bytes(bytes) if !head_only => {
                let mut all = head.into_bytes();
                all.extend_from_slice(bytes);
                write_all(stream, &all)
            }
            Body::Bytes(_) => write_all(stream, head.as_bytes()),
            Body::File {
                file,
                offset,
                len,
                limit,
            } => {
                write_all(stream, head.as_bytes())?;
                if head_only {
                    return Ok(());
                }
                match limit {
                    None => crate::net::server::send_file(stream, file, *offset, *len),
                    Some(bucket) => {
                        // Paced as the line protocol paces: 64 KiB at a time, each
                        // after its tokens.
                        let mut at = 0;
                        while at < *len {
                            let n = (*len - at).min(64 * 1024);
                            bucket.take(n);
                            crate::net::server::send_file(stream, file, offset + at, n)?;
                            at += n;
                        }
                        Ok(())
                    }
                }
            }
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        507 => "Insufficient Storage",
        _ => "Status",
    }
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Response({} {})", self.status, self.content_type)
    }
}

impl Response {
    /// The body as text (tests).
    pub fn text(&self) -> String {
        match &self.body {
            Body::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            Body::File { .. } => String::new(),
        }
    }

    /// The body as JSON (tests).
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.text()).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_unhealthy_node_answers_503_with_an_error_body() {
        assert_eq!(health(&rows(&[("health", "ok")])).status, 200);
        let r = health(&rows(&[("health", "failing"), ("failing", "index down")]));
        assert_eq!(r.status, 503);
        let v = r.value();
        assert_eq!(v["health"], "failing");
        assert_eq!(v["reason"], "index down");
        assert_eq!(v["status"], 503);
        assert!(v["error"].as_str().unwrap().contains("index down"), "{v}");
        let v = health(&rows(&[])).value();
        assert_eq!(v["health"], "unknown");
        assert_eq!(v["status"], 503);
        assert!(!v["reason"].as_str().unwrap().is_empty(), "{v}");
    }

    #[test]
    fn a_405_says_which_methods_are_allowed() {
        let r = Response::not_allowed("/status", Allow::Get);
        assert_eq!(r.status, 405);
        assert_eq!(r.headers, vec![("Allow", "GET, HEAD".to_owned())]);
        assert_eq!(r.value()["status"], 405);
    }
}
