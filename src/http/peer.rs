//! A peer's own HTTP endpoints:
//!
//! - `GET /files`: what it shares (name, size, content id, sha1);
//! - `GET /files/NAME`: the bytes, with `Range: bytes=A-B` (one range; a Range in
//!   another unit, or of several ranges, is ignored as RFC 9110 allows) and an `ETag`
//!   of the content id (`If-None-Match` with it, or `*`, answers 304);
//! - `GET /peers`: the members it knows, as `members` answers;
//! - `POST /broadcast` `{"msg": "..."}`: what the console's `say` does;
//! - `POST /message` `{"sender": "...", "msg": "..."}`: a message to this node, shown
//!   where its direct messages go, answered as seed 000's `/message` answers.

use super::api::{Allow, Api, Body, Response};
use super::bridge::ask;
use super::index::{only_get, status_rows};
use super::seed::members;
use super::{Method, Request};
use crate::overlay::wire;
use crate::peer::serve::PeerService;
use crate::protocol::commands::Role;
use serde_json::{json, Value};
use std::sync::Arc;

/// Longest message text taken over HTTP, in bytes.
const MAX_MESSAGE: usize = 4096;

pub struct PeerApi {
    pub service: Arc<PeerService>,
}

impl Api for PeerApi {
    fn role(&self) -> Role {
        Role::Peer
    }

    fn status_rows(&self) -> Vec<(String, String)> {
        status_rows(&*self.service)
    }

    fn route(&self, req: &Request) -> Option<Response> {
        let path = req.path.as_str();
        let post = |f: &dyn Fn() -> Response| {
            if req.method == Method::Post {
                f()
            } else {
                Response::not_allowed(path, Allow::Post)
            }
        };
        Some(match path {
            "/files" => only_get(req).unwrap_or_else(|| self.files()),
            "/peers" => only_get(req).unwrap_or_else(|| members(&*self.service, req)),
            "/broadcast" => post(&|| self.broadcast(req)),
            "/message" => post(&|| self.message(req)),
            _ => {
                let name = path.strip_prefix("/files/")?;
                only_get(req).unwrap_or_else(|| self.file(req, name))
            }
        })
    }
}

impl PeerApi {
    fn files(&self) -> Response {
        let catalog = self.service.shared.catalog();
        let mut files: Vec<Value> = catalog
            .iter()
            .map(|f| {
                json!({
                    "name": f.name.as_str(),
                    "size": f.hashes.size,
                    "id": f.hashes.id.to_string(),
                    "sha1": f.hashes.sha1.map(|s| s.to_string()),
                })
            })
            .collect();
        files.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        Response::json(200, &json!({ "files": files }))
    }

    fn file(&self, req: &Request, name: &str) -> Response {
        let (path, size, id) = {
            let catalog = self.service.shared.catalog();
            let Some(f) = catalog.get(name) else {
                return Response::error(404, &format!("this peer does not share '{name}'"));
            };
            (f.path.clone(), f.hashes.size, f.hashes.id)
        };
        let etag = format!("\"{id}\"");
        if req
            .header("if-none-match")
            .is_some_and(|tags| none_match(tags, &etag))
        {
            return Response::new(304, "application/octet-stream", Vec::new())
                .with_header("ETag", etag);
        }
        let range = req.header("range").unwrap_or("");
        let (status, start, len) = match byte_range(range, size) {
            Range::Whole => (200, 0, size),
            Range::Part(start, end) => (206, start, end - start + 1),
            Range::Unsatisfiable => {
                return Response::error(416, &format!("range '{range}' is not within {size} bytes"))
                    .with_header("Content-Range", format!("bytes */{size}"))
            }
        };
        let file = match crate::peer::catalog::open_nofollow(&path) {
            Ok(f) => f,
            Err(e) => return Response::error(404, &format!("'{name}' cannot be read: {e}")),
        };
        // The bytes must still be the content the ETag names: a file changed since it
        // was hashed is not served under its old id.
        match file.metadata() {
            Ok(meta) if meta.len() == size => {}
            _ => return Response::error(409, &format!("'{name}' changed since it was hashed")),
        }
        let mut response = Response {
            status,
            content_type: "application/octet-stream",
            body: Body::File {
                file,
                offset: start,
                len,
            },
            headers: vec![("ETag", etag), ("Accept-Ranges", "bytes".into())],
        };
        if status == 206 {
            response.headers.push((
                "Content-Range",
                format!("bytes {start}-{}/{size}", start + len - 1),
            ));
        }
        response
    }

    fn broadcast(&self, req: &Request) -> Response {
        let text = match message_text(req, "msg") {
            Ok(t) => t,
            Err(r) => return r,
        };
        match ask(
            &*self.service,
            &["say", &wire::escape_text(&text)],
            req.remote,
        ) {
            Ok((fields, _)) => Response::json(
                200,
                &json!({ "status": "broadcast", "msg": text, "id": fields.first() }),
            ),
            Err(refusal) => refusal,
        }
    }

    fn message(&self, req: &Request) -> Response {
        let text = match message_text(req, "msg") {
            Ok(t) => t,
            Err(r) => return r,
        };
        let body = req.json().unwrap_or(Value::Null);
        let sender = body["sender"].as_str().unwrap_or("").trim().to_owned();
        if sender.is_empty() || sender.len() > 128 {
            return Response::error(400, "the body needs \"sender\": a name of 1 to 128 bytes");
        }
        let me = self.service.shared.me.name.to_string();
        let _ = self
            .service
            .events
            .send(crate::peer::PeerEvent::HttpMessage {
                from: sender.clone(),
                remote: req.remote,
                text: text.clone(),
            });
        Response::json(
            200,
            &json!({
                "status": "received",
                "from": sender,
                "msg": text,
                "reply": format!("message received by {me}"),
                "current_node": me,
            }),
        )
    }
}

/// The non-empty text of a JSON body's `key`, at most [`MAX_MESSAGE`] bytes.
fn message_text(req: &Request, key: &str) -> Result<String, Response> {
    let body = req.json()?;
    let Some(text) = body[key].as_str() else {
        return Err(Response::error(
            400,
            &format!("the body needs \"{key}\": a string"),
        ));
    };
    if text.trim().is_empty() {
        return Err(Response::error(400, &format!("\"{key}\" is empty")));
    }
    if text.len() > MAX_MESSAGE {
        return Err(Response::error(
            413,
            &format!("\"{key}\" is over {MAX_MESSAGE} bytes"),
        ));
    }
    Ok(text.to_owned())
}

/// Does `If-None-Match: TAGS` match `etag`? `*`, or a list of tags compared weakly
/// (`W/"x"` matches `"x"`), as RFC 9110 13.1.2 says.
fn none_match(tags: &str, etag: &str) -> bool {
    tags.trim() == "*"
        || tags
            .split(',')
            .any(|tag| tag.trim().trim_start_matches("W/") == etag)
}

/// What a `Range` header asks of a file.
#[derive(Debug, PartialEq, Eq)]
enum Range {
    /// No range, or one this server ignores (another unit, several ranges): the
    /// whole file, 200.
    Whole,
    /// Bytes first to last, inclusive: 206.
    Part(u64, u64),
    /// A byte range that is malformed or not within the file: 416.
    Unsatisfiable,
}

/// The one range of `Range: bytes=A-B`, `bytes=A-` or `bytes=-N` within `size` bytes.
/// Units other than bytes are ignored (RFC 9110 14.2 says they must be), and so are
/// several ranges at once (it allows that).
fn byte_range(header: &str, size: u64) -> Range {
    let Some((unit, spec)) = header.trim().split_once('=') else {
        return Range::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return Range::Whole;
    }
    let part = || -> Option<(u64, u64)> {
        if size == 0 {
            return None;
        }
        let (a, b) = spec.split_once('-')?;
        let digits = |t: &str| -> Option<u64> {
            (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse().ok())
                .flatten()
        };
        let (start, end) = match (a.trim(), b.trim()) {
            ("", n) => (size.saturating_sub(digits(n)?), size - 1),
            (a, "") => (digits(a)?, size - 1),
            (a, b) => (digits(a)?, digits(b)?.min(size - 1)),
        };
        (start <= end && start < size).then_some((start, end))
    };
    match part() {
        Some((start, end)) => Range::Part(start, end),
        None => Range::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::{byte_range, none_match, Range};

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        assert_eq!(byte_range("bytes=0-9", 100), Range::Part(0, 9));
        assert_eq!(byte_range("bytes=90-", 100), Range::Part(90, 99));
        assert_eq!(byte_range("bytes=-10", 100), Range::Part(90, 99));
        assert_eq!(byte_range("bytes=50-500", 100), Range::Part(50, 99));
        assert_eq!(byte_range("Bytes=0-0", 100), Range::Part(0, 0));
        assert_eq!(byte_range("bytes=100-", 100), Range::Unsatisfiable);
        assert_eq!(byte_range("bytes=5-1", 100), Range::Unsatisfiable);
        assert_eq!(byte_range("bytes=-0", 100), Range::Unsatisfiable);
        assert_eq!(byte_range("bytes=+1-2", 100), Range::Unsatisfiable);
        assert_eq!(byte_range("bytes=", 100), Range::Unsatisfiable);
        assert_eq!(byte_range("bytes=0-", 0), Range::Unsatisfiable);
        // Ignored: the whole file.
        assert_eq!(byte_range("", 100), Range::Whole);
        assert_eq!(byte_range("bytes=0-1,5-6", 100), Range::Whole);
        assert_eq!(byte_range("items=0-1", 100), Range::Whole);
        assert_eq!(byte_range("garbage", 100), Range::Whole);
    }

    #[test]
    fn if_none_match_takes_a_star_a_list_and_weak_tags() {
        let etag = "\"sha1:ab\"";
        assert!(none_match("\"sha1:ab\"", etag));
        assert!(none_match("*", etag));
        assert!(none_match("\"x\", W/\"sha1:ab\"", etag));
        assert!(!none_match("\"sha1:abc\"", etag));
        assert!(!none_match("sha1:ab", etag));
        assert!(!none_match("", etag));
    }
}
