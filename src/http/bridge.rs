//! Asks a role's line-protocol service one request in process, the way a client on the
//! same address would: the HTTP endpoints then have exactly the wire commands'
//! validation, caps, quotas and answers.

use super::Response;
use crate::net::{Reply, Service};
use crate::protocol::codec::{self, decode_request, Decoded, ReplyHead};
use crate::protocol::{ErrorCode, MAX_LINE};
use std::net::SocketAddr;

/// The rows of the `ok` answer to `fields` (each row split on `|`), or the HTTP
/// response that reports the refusal.
pub(super) fn ask<S: Service>(
    service: &S,
    fields: &[&str],
    remote: SocketAddr,
) -> Result<(Vec<String>, Vec<Vec<String>>), Response> {
    if let Some(bad) = fields
        .iter()
        .find(|f| f.bytes().any(|b| b == b'|' || b == b'\n' || b == b'\r'))
    {
        return Err(Response::error(
            400,
            &format!(
                "'{}' may not contain '|' or a line break",
                codec::printable(bad)
            ),
        ));
    }
    let wire = codec::line(fields);
    let req = match decode_request(wire.as_bytes(), MAX_LINE) {
        Ok(Decoded::Frame(req, _)) => req,
        Ok(Decoded::NeedMore) => return Err(Response::error(400, "an incomplete request")),
        Err(e) => return Err(refused(e.refusal.code, &e.refusal.message)),
    };
    let mut conn = S::Conn::default();
    let reply = service.handle(req, remote, &mut conn);
    service.closed(remote, &mut conn);
    let text = match reply {
        Reply::Text(text) | Reply::Close(text) => text,
        Reply::Bytes(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Reply::File { .. } | Reply::Receive { .. } => {
            return Err(Response::error(500, "an unexpected data reply"))
        }
    };
    let mut lines = text.lines();
    let head = lines.next().unwrap_or_default();
    match codec::parse_reply(head.as_bytes()) {
        Ok(ReplyHead::Ok(fields)) => Ok((
            fields,
            lines
                .map(|l| l.split('|').map(str::to_owned).collect())
                .collect(),
        )),
        Ok(ReplyHead::Err(refusal)) => Err(refused(refusal.code, &refusal.message)),
        Ok(ReplyHead::Data(_)) | Err(_) => Err(Response::error(500, "an unexpected reply")),
    }
}

/// The HTTP status that fits a line-protocol refusal.
pub(super) fn refused(code: ErrorCode, message: &str) -> Response {
    let status = match code {
        ErrorCode::BadRequest
        | ErrorCode::UnknownVerb
        | ErrorCode::BadName
        | ErrorCode::BadRange
        | ErrorCode::BadVersion => 400,
        ErrorCode::NotFound | ErrorCode::UnknownId => 404,
        ErrorCode::TooLarge => 413,
        ErrorCode::UnknownPeer => 401,
        ErrorCode::Forbidden => 403,
        ErrorCode::BadContent => 422,
        ErrorCode::Conflict | ErrorCode::NoNeighbours => 409,
        ErrorCode::Busy => 503,
        ErrorCode::Internal => 500,
    };
    Response::error(status, message)
}
