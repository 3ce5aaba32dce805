//! `POST /upload` of a peer: seed 002's upload, with the line protocol's checks
//! (`peer::upload`: the peer must allow uploads, the name is a plain shared name, the
//! extension, the size, a name in use, the bytes against what the client says they
//! are).
//!
//! The body is never held whole: it is read as it arrives ([`super::body`]) and
//! written to the upload's temporary file. It is either a form
//! (`multipart/form-data` with one part named `file`: `curl -F file=@mydoc.txt`),
//! whose parts [`super::multipart`] finds as they stream by, or the raw bytes
//! (`application/octet-stream`, or no type) with `?name=`. The client says what the
//! file is with `?sha1=` (its whole-file SHA-1, as `sha1sum` prints it) or `?id=`
//! (its content id). Answers: 201 `{"filename", "status": "uploaded", ...}`, or 200
//! with `"status": "exists"` when the peer had those bytes under that name already.

use super::api::Response;
use super::body::Framing;
use super::multipart::{self, Event, Limits, Multipart, MultipartError};
use super::Request;
use crate::peer::upload::{Begun, Offer, Outcome, Placed, Promise, Receiver, UploadError, Uploads};
use crate::protocol::hash::Sha1Digest;
use serde_json::json;
use std::io::{self, Read};
use std::sync::Arc;

/// Bytes read from the body at once.
const READ: usize = 64 * 1024;

/// What a form may add around its file: a form whose length is over the size cap by
/// more is refused before it is read.
const FORM_SLACK: u64 = 64 * 1024;

/// What the client is told when it does not say what the file is.
pub const NO_PROMISE: &str = "say what the file is, so that its bytes can be checked: \
    ?sha1=HEX, the file's SHA-1 as `sha1sum FILE` prints it, or ?id=sha1:HEX, its content id \
    (`p2pshare upload` computes it)";

/// Answers `POST /upload`, reading its body from `body`.
pub(super) fn upload(uploads: &Arc<Uploads>, req: &Request, body: &mut dyn Read) -> Response {
    let refuse = |e: UploadError| answer(&uploads.refused(e, req.remote));
    if !uploads.allowed() {
        return refuse(UploadError::NotAllowed);
    }
    let promise = match promise(req) {
        Ok(p) => p,
        Err(why) => return refuse(UploadError::Malformed(why)),
    };
    let length = match req.pending {
        Some(Framing::Length(n)) => Some(n),
        _ => None,
    };
    let content_type = req
        .header("content-type")
        .unwrap_or("application/octet-stream");
    let upload = Upload {
        uploads,
        req,
        promise,
        length,
    };
    match multipart::boundary(content_type) {
        Some(Ok(boundary)) => upload.form(body, &boundary),
        Some(Err(e)) => refuse(UploadError::Malformed(e.to_string())),
        None if media_type(content_type) == "application/octet-stream" => upload.raw(body),
        None => {
            uploads.refused(
                UploadError::Malformed(format!("Content-Type {content_type}")),
                req.remote,
            );
            Response::error(
                415,
                "send a form (multipart/form-data, the file in a part named 'file'), or the \
                 bytes as they are (application/octet-stream) with ?name=NAME",
            )
        }
    }
}

/// The type of a `Content-Type`, lower-cased, without its parameters.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// What the query says the bytes are: `?id=` or `?sha1=` (one of them).
fn promise(req: &Request) -> Result<Promise, String> {
    let parse = |text: &str| {
        let full = if text.contains(':') {
            text.to_owned()
        } else {
            format!("sha1:{text}")
        };
        Sha1Digest::parse(&full)
    };
    match (req.query("id"), req.query("sha1")) {
        (Some(_), Some(_)) => Err("give ?id= or ?sha1=, not both".into()),
        (Some(id), None) => parse(id)
            .map(Promise::ContentId)
            .map_err(|e| format!("?id=: {e}")),
        (None, Some(sha1)) => parse(sha1)
            .map(Promise::Sha1)
            .map_err(|e| format!("?sha1=: {e}")),
        (None, None) => Err(NO_PROMISE.into()),
    }
}

/// One `POST /upload` being served.
struct Upload<'a> {
    uploads: &'a Arc<Uploads>,
    req: &'a Request,
    promise: Promise,
    /// The body's length, when it has one (not chunked).
    length: Option<u64>,
}

impl Upload<'_> {
    fn offer(&self, name: &str, size: Option<u64>) -> Result<Begun, UploadError> {
        self.uploads.begin(Offer {
            name: name.to_owned(),
            size,
            at_most: self.length,
            promise: self.promise,
            from: self.req.remote,
            who: "an HTTP client".into(),
        })
    }

    /// The body is the file's bytes.
    fn raw(&self, body: &mut dyn Read) -> Response {
        let Some(name) = self.req.query("name") else {
            return answer(&self.uploads.refused(
                UploadError::Malformed(
                    "a body of raw bytes needs the file's name: ?name=NAME (or send a form, multipart/form-data with a part named 'file')".into(),
                ),
                self.req.remote,
            ));
        };
        let mut receiver = match self.offer(name, self.length) {
            Ok(Begun::Receiving(r)) => r,
            Ok(Begun::Exists(placed)) => return done(200, "exists", &placed),
            Err(e) => return answer(&e),
        };
        let mut buf = vec![0u8; READ];
        loop {
            match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Err(e) = receiver.write(&buf[..n]) {
                        return answer(&e);
                    }
                }
                Err(e) => return stopped(receiver, &e),
            }
        }
        finish(receiver)
    }

    /// The body is a form whose part `file` is the file.
    fn form(&self, body: &mut dyn Read, boundary: &str) -> Response {
        let max = self.uploads.config().max_size;
        if let Some(size) = self.length.filter(|&n| n > max.saturating_add(FORM_SLACK)) {
            return answer(
                &self
                    .uploads
                    .refused(UploadError::TooLarge { size, max }, self.req.remote),
            );
        }
        let mut form = Form {
            upload: self,
            receiver: None,
            in_file: false,
            had_file: false,
        };
        // Named in the query: offered before a byte of the body is read, so that a
        // refusal costs the client nothing (with `Expect: 100-continue`, not even
        // the sending).
        if let Some(name) = self.req.query("name") {
            match self.offer(name, None) {
                Ok(Begun::Receiving(r)) => form.receiver = Some(r),
                Ok(Begun::Exists(placed)) => return done(200, "exists", &placed),
                Err(e) => return answer(&e),
            }
        }
        let mut parser = Multipart::new(
            boundary,
            Limits {
                // The file's cap is the upload's own (a clearer refusal).
                file: u64::MAX,
                ..Limits::default()
            },
        );
        let mut buf: Vec<u8> = Vec::with_capacity(2 * READ);
        let mut chunk = vec![0u8; READ];
        loop {
            loop {
                let used = match parser.next(&buf) {
                    Ok(None) => break,
                    Ok(Some((event, used))) => {
                        if let Some(response) = form.event(event) {
                            return response;
                        }
                        used
                    }
                    Err(e) => return form.fail(UploadError::Malformed(e.to_string()), &e),
                };
                buf.drain(..used);
            }
            match body.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => {
                    return match form.receiver.take() {
                        Some(r) => stopped(r, &e),
                        None => {
                            self.uploads
                                .refused(UploadError::Incomplete { got: 0 }, self.req.remote);
                            read_error(&e)
                        }
                    }
                }
            }
        }
        if let Err(e) = parser.finish() {
            return form.fail(UploadError::Malformed(e.to_string()), &e);
        }
        match form.receiver.take() {
            Some(r) if form.had_file => finish(r),
            other => {
                let e = UploadError::Malformed("the form has no part named 'file'".into());
                answer(&match other {
                    Some(r) => r.abandon(e),
                    None => self.uploads.refused(e, self.req.remote),
                })
            }
        }
    }
}

/// A form being read: where its file goes.
struct Form<'a, 'b> {
    upload: &'b Upload<'a>,
    receiver: Option<Receiver>,
    /// The data events are the file's.
    in_file: bool,
    had_file: bool,
}

impl Form<'_, '_> {
    /// Takes one event; a response when the upload ends here.
    fn event(&mut self, event: Event<'_>) -> Option<Response> {
        match event {
            Event::Part(head) if head.name == "file" => {
                if std::mem::replace(&mut self.had_file, true) {
                    let e = UploadError::Malformed(
                        "the form has more than one part named 'file'".into(),
                    );
                    return Some(self.refuse(e));
                }
                self.in_file = true;
                if self.receiver.is_some() {
                    return None;
                }
                let Some(name) = head.filename.filter(|n| !n.is_empty()) else {
                    let e = UploadError::Malformed(
                        "the part 'file' has no filename: give it one, or ?name=NAME".into(),
                    );
                    return Some(self.refuse(e));
                };
                match self.upload.offer(&name, None) {
                    Ok(Begun::Receiving(r)) => self.receiver = Some(r),
                    Ok(Begun::Exists(placed)) => return Some(done(200, "exists", &placed)),
                    Err(e) => return Some(answer(&e)),
                }
                None
            }
            Event::Part(_) | Event::PartEnd => {
                self.in_file = false;
                None
            }
            Event::Data(bytes) if self.in_file => {
                let receiver = self.receiver.as_mut()?;
                match receiver.write(bytes) {
                    Ok(()) => None,
                    Err(e) => {
                        // The receiver counted it; it goes with its file.
                        self.receiver = None;
                        Some(answer(&e))
                    }
                }
            }
            Event::Data(_) | Event::End | Event::Skip => None,
        }
    }

    /// Ends the upload with `e`, counted once.
    fn refuse(&mut self, e: UploadError) -> Response {
        answer(&match self.receiver.take() {
            Some(r) => r.abandon(e),
            None => self.upload.uploads.refused(e, self.upload.req.remote),
        })
    }

    /// The form is malformed (`why`): 413 for a part over its cap, else 400.
    fn fail(&mut self, e: UploadError, why: &MultipartError) -> Response {
        let response = self.refuse(e);
        match why {
            MultipartError::PartTooLong { .. } => Response::error(413, &why.to_string()),
            _ => response,
        }
    }
}

/// Proves and places what was received.
fn finish(receiver: Receiver) -> Response {
    match receiver.finish() {
        Ok(Outcome::Uploaded(placed)) => done(201, "uploaded", &placed).with_header(
            "Location",
            format!("/download/{}", path_segment(placed.name.as_str())),
        ),
        Ok(Outcome::Exists(placed)) => done(200, "exists", &placed),
        Err(e) => answer(&e),
    }
}

/// The body could not be read to its end: the upload goes, and the client is told
/// why (408 for a body too slow).
fn stopped(receiver: Receiver, e: &io::Error) -> Response {
    let got = receiver.received();
    receiver.abandon(UploadError::Incomplete { got });
    read_error(e)
}

fn read_error(e: &io::Error) -> Response {
    match e.kind() {
        io::ErrorKind::TimedOut => Response::error(408, &e.to_string()),
        _ => Response::error(400, &format!("reading the body: {e}")),
    }
}

/// Seed 002's answer, `{"filename": ..., "status": ...}`, with the content's hashes.
fn done(status: u16, kind: &str, placed: &Placed) -> Response {
    Response::json(
        status,
        &json!({
            "filename": placed.name.as_str(),
            "status": kind,
            "id": placed.hashes.id.to_string(),
            "sha1": placed.hashes.sha1.map(|s| s.to_string()),
            "size": placed.hashes.size,
        }),
    )
}

/// The HTTP answer to a refused upload.
fn answer(e: &UploadError) -> Response {
    let status = match e {
        UploadError::NotAllowed => 403,
        UploadError::BadName { .. }
        | UploadError::Extension { .. }
        | UploadError::Malformed(_)
        | UploadError::Incomplete { .. } => 400,
        UploadError::TooLarge { .. } => 413,
        UploadError::NoSpace { .. } => 507,
        UploadError::Busy(_) => 429,
        UploadError::Exists { .. } => 409,
        UploadError::Mismatch { .. } => 422,
        UploadError::Io(_) => 500,
    };
    Response::error(status, &e.to_string())
}

/// A name as one segment of a path: everything but unreserved characters
/// percent-encoded.
fn path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    #[test]
    fn the_query_says_what_the_file_is() {
        let hex = "e8c10894c2749fa67dbf1d7c8f0a0bb61914ca54";
        let req = |q: &str| Request::test(Method::Post, &format!("/upload?{q}"), b"");
        let sha1 = Sha1Digest::parse(&format!("sha1:{hex}")).unwrap();
        // As sha1sum prints it, or as the network writes it.
        assert_eq!(
            promise(&req(&format!("sha1={hex}"))),
            Ok(Promise::Sha1(sha1))
        );
        assert_eq!(
            promise(&req(&format!("sha1=sha1:{hex}"))),
            Ok(Promise::Sha1(sha1))
        );
        assert_eq!(
            promise(&req(&format!("id=sha1:{hex}"))),
            Ok(Promise::ContentId(sha1))
        );
        assert_eq!(promise(&req("name=a.txt")), Err(NO_PROMISE.to_owned()));
        assert!(promise(&req(&format!("id={hex}&sha1={hex}"))).is_err());
        assert!(promise(&req("sha1=abc"))
            .unwrap_err()
            .starts_with("?sha1=: "));
        assert!(promise(&req("id=md5:abc"))
            .unwrap_err()
            .starts_with("?id=: "));
    }

    #[test]
    fn a_name_is_one_path_segment() {
        assert_eq!(path_segment("my doc?.txt"), "my%20doc%3F.txt");
        assert_eq!(path_segment("€"), "%E2%82%AC");
        assert_eq!(path_segment("a-b_c~d.e"), "a-b_c~d.e");
    }
}
