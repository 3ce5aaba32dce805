//! A peer's own HTTP endpoints:
//!
//! - `GET /files`: what it shares (name, size, content id, sha1);
//! - `GET /files/NAME`: the bytes, with `Range: bytes=A-B` (one range; a Range in
//!   another unit, or of several ranges, is ignored as RFC 9110 allows) and an `ETag`
//!   of the content id (`If-None-Match` with it, or `*`, answers 304);
//! - `GET /peers`: the members it knows, as `members` answers;
//! - `POST /broadcast` `{"msg": "..."}`: what the console's `say` does;
//! - `GET /events`: the latest broadcasts and messages it received (50);
//! - `POST /message` `{"sender": "...", "msg": "..."}`: a message to this node, shown
//!   where its direct messages go, answered as seed 000's `/message` answers;
//! - `POST /downloads` `{"name": "..."}` (and `"id"` to pick one content): a download
//!   in the background (202); `GET /downloads`: every download and its progress;
//!   `DELETE /downloads/NAME`: stops it and keeps the partial, for a resume;
//! - `POST /upload`: a file pushed to the peer (see [`super::upload`]), its body
//!   streamed; `GET /download/NAME`: the bytes of a shared file, as `/files/NAME`
//!   (seed 002's path).

use super::api::{Allow, Api, Body, Response};
use super::bridge::{ask, refused};
use super::index::{only_get, status_rows};
use super::seed::members;
use super::{Method, Request};
use crate::overlay::wire;
use crate::peer::jobs::{JobState, JobView, Jobs, StartError, MAX_RUNNING};
use crate::peer::serve::{open_checked, PeerService};
use crate::protocol::commands::Role;
use crate::protocol::hash::Sha1Digest;
use crate::protocol::name::FileName;
use serde_json::{json, Value};
use std::sync::Arc;

/// Longest message text taken over HTTP, in bytes.
const MAX_MESSAGE: usize = 4096;

pub struct PeerApi {
    pub service: Arc<PeerService>,
    pub jobs: Arc<Jobs>,
}

impl Api for PeerApi {
    fn role(&self) -> Role {
        Role::Peer
    }

    fn streams(&self, method: Method, path: &str) -> bool {
        method == Method::Post && path == "/upload"
    }

    fn receive(&self, req: &Request, body: &mut dyn std::io::Read) -> Response {
        super::upload::upload(&self.service.uploads, req, body)
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
            "/events" => only_get(req).unwrap_or_else(|| self.events()),
            "/message" => post(&|| self.message(req)),
            "/downloads" => match req.method {
                Method::Get | Method::Head => self.downloads(),
                Method::Post => self.start_download(req),
                _ => Response::not_allowed(path, Allow::GetPost),
            },
            _ if path.starts_with("/downloads/") => {
                let name = &path["/downloads/".len()..];
                match req.method {
                    Method::Get | Method::Head => match self.jobs.view(name) {
                        Some(job) => Response::json(200, &job_json(&job)),
                        None => Response::error(404, &format!("no download of '{name}'")),
                    },
                    Method::Delete => self.cancel_download(name),
                    _ => Response::not_allowed(path, Allow::GetDelete),
                }
            }
            _ if path.starts_with("/kv/") => {
                let shared = &self.service.shared;
                super::kv::route(shared.dht.get().map(|d| &**d), shared.me.name.as_str(), req)?
            }
            // A POST was streamed to `receive`; any other method is not taken.
            "/upload" => Response::not_allowed(path, Allow::Post),
            _ => {
                let name = path
                    .strip_prefix("/files/")
                    .or_else(|| path.strip_prefix("/download/"))?;
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
        let (shared, size, id) = {
            let catalog = self.service.shared.catalog();
            let Some(f) = catalog.get(name) else {
                return Response::error(404, &format!("this peer does not share '{name}'"));
            };
            (f.clone(), f.hashes.size, f.hashes.id)
        };
        let etag = format!("\"{id}\"");
        if req
            .header("if-none-match")
            .is_some_and(|tags| none_match(tags, &etag))
        {
            return Response::new(304, "application/octet-stream", Vec::new())
                .with_header("ETag", etag);
        }
        // A range of another version than the one the client holds (`If-Range` with
        // another tag) would splice the two: the whole file is sent instead.
        let same_version = req.header("if-range").is_none_or(|tag| tag.trim() == etag);
        let range = match req.header("range") {
            Some(r) if same_version => r,
            _ => "",
        };
        let (status, start, len) = match byte_range(range, size) {
            Range::Whole => (200, 0, size),
            Range::Part(start, end) => (206, start, end - start + 1),
            Range::Unsatisfiable => {
                return Response::error(416, &format!("range '{range}' is not within {size} bytes"))
                    .with_header("Content-Range", format!("bytes */{size}"))
            }
        };
        // The bytes must still be the content the ETag names: a file changed since it
        // was hashed (its size, times or inode) is not served under its old id, as on
        // the line protocol.
        let file = match open_checked(&shared) {
            Ok(f) => f,
            Err(refusal) => return refused(refusal.code, &refusal.message),
        };
        let mut response = Response {
            status,
            content_type: "application/octet-stream",
            body: Body::File {
                file,
                offset: start,
                len,
                limit: self.service.upload_limit.clone(),
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
        if let Some(l) = &self.service.log {
            l.write(
                "http-message",
                &format!(
                    "name={} addr={} text={}",
                    wire::escape_text(&sender),
                    req.remote,
                    wire::escape_text(&text)
                ),
            );
        }
        self.service.shared.remember(crate::peer::Recent {
            kind: "http-message",
            from: sender.clone(),
            id: None,
            text: text.clone(),
            at_ms: crate::clock::wall_ms(),
        });
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

impl PeerApi {
    fn events(&self) -> Response {
        let events: Vec<Value> = self
            .service
            .shared
            .recent()
            .iter()
            .map(|r| {
                json!({
                    "kind": r.kind,
                    "from": r.from,
                    "id": r.id,
                    "text": r.text,
                    "at_ms": r.at_ms,
                })
            })
            .collect();
        Response::json(200, &json!({ "events": events }))
    }

    fn downloads(&self) -> Response {
        let list: Vec<Value> = self.jobs.list().iter().map(job_json).collect();
        Response::json(200, &json!({ "downloads": list }))
    }

    fn start_download(&self, req: &Request) -> Response {
        let body = match req.json() {
            Ok(b) => b,
            Err(r) => return r,
        };
        let Some(name_text) = body["name"].as_str() else {
            return Response::error(
                400,
                "the body needs \"name\" (and \"id\" to pick one content): the index finds holders by name",
            );
        };
        let name = match FileName::parse(name_text) {
            Ok(n) => n,
            Err(e) => return Response::error(400, &format!("name '{name_text}': {e}")),
        };
        let id = match body.get("id").and_then(Value::as_str) {
            Some(text) => match Sha1Digest::parse(text) {
                Ok(d) => Some(d),
                Err(e) => return Response::error(400, &format!("id: {e}")),
            },
            None => None,
        };
        match self.jobs.start(name, id) {
            Ok(job) => Response::json(202, &job_json(&job))
                .with_header("Location", format!("/downloads/{}", job.name)),
            Err(StartError::Running) => {
                Response::error(409, &format!("'{name_text}' is being downloaded already"))
            }
            Err(StartError::TooMany) => Response::error(
                429,
                &format!("{MAX_RUNNING} downloads are running; try again when one ends"),
            ),
            Err(StartError::Thread(e)) => {
                Response::error(503, &format!("cannot start the download: {e}"))
            }
        }
    }

    fn cancel_download(&self, name: &str) -> Response {
        if self.jobs.cancel(name) {
            Response::json(
                200,
                &json!({ "name": name, "status": "cancelling", "partial": "kept, to resume" }),
            )
        } else {
            Response::error(404, &format!("no download of '{name}' is running"))
        }
    }
}

/// A download as JSON.
fn job_json(job: &JobView) -> Value {
    let error = match &job.state {
        JobState::Failed(e) => Some(e.clone()),
        _ => None,
    };
    json!({
        "name": job.name,
        "id": job.id.map(|d| d.to_string()),
        "state": job.state.as_str(),
        "already_had": matches!(job.state, JobState::Done { already_had: true }),
        "bytes": job.bytes,
        "total": job.total,
        "sources": job.sources,
        "elapsed_secs": job.elapsed.as_secs_f64(),
        "note": job.note,
        "error": error,
    })
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
