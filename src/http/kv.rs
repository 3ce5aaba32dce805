//! The key-value store over HTTP, on seeds and peers that run a DHT node:
//!
//! - `PUT /kv/KEY`: stores the body (`{"value": "..."}` as `application/json`, or the
//!   raw bytes of any other type); `?cas=SEQ` only if the newest has that sequence
//!   number (409 otherwise). Answered as seed 002 answers a store: `key`, `value`,
//!   `status: success`, `message`, `storing_node`, and `seq`.
//! - `GET /kv/KEY`: `key`, `value`, `node`, `seq`; 404 when the key has no value.
//!   `?raw=1` answers the bytes themselves (for values that are not text).
//! - `DELETE /kv/KEY`: a signed removal; 404 when there was nothing to remove.
//!
//! PUT and DELETE change state, with the same access rules as every POST. The store
//! is slow by nature (every call is a DHT lookup, tens to hundreds of milliseconds):
//! the calls run on the connection's own thread.

use super::api::{Allow, Response};
use super::{Method, Request};
use crate::dht::kv::KvError;
use crate::dht::DhtNode;
use serde_json::json;

/// Answers `/kv/...` paths; `None` for any other path.
pub fn route(dht: Option<&DhtNode>, node: &str, req: &Request) -> Option<Response> {
    let key = req.path.strip_prefix("/kv/")?;
    let Some(dht) = dht else {
        return Some(Response::error(
            503,
            "this node runs no DHT node (--no-dht): the key-value store is out of its reach",
        ));
    };
    let cas = match req.query("cas").map(str::parse::<i64>) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => return Some(Response::error(400, "cas must be a sequence number")),
    };
    Some(match req.method {
        Method::Get | Method::Head => get(dht, node, key, req.query("raw").is_some()),
        Method::Put => put(dht, node, key, req, cas),
        Method::Delete => match dht.kv_rm(key, cas) {
            Ok(Some(seq)) => Response::json(
                200,
                &json!({ "key": key, "status": "removed", "seq": seq, "node": node }),
            ),
            Ok(None) => not_found(key),
            Err(e) => refused(&e),
        },
        _ => Response::not_allowed(&req.path, Allow::GetPutDelete),
    })
}

fn get(dht: &DhtNode, node: &str, key: &str, raw: bool) -> Response {
    match dht.kv_get(key) {
        Ok(Some(read)) if raw => Response::new(200, "application/octet-stream", read.value),
        Ok(Some(read)) => match String::from_utf8(read.value) {
            Ok(value) => Response::json(
                200,
                &json!({ "key": key, "value": value, "node": node, "seq": read.seq }),
            ),
            Err(e) => Response::json(
                200,
                &json!({
                    "key": key,
                    "value": null,
                    "bytes": e.as_bytes().len(),
                    "note": "the value is not UTF-8 text: ?raw=1 gives its bytes",
                    "node": node,
                    "seq": read.seq,
                }),
            ),
        },
        Ok(None) => not_found(key),
        Err(e) => refused(&e),
    }
}

fn put(dht: &DhtNode, node: &str, key: &str, req: &Request, cas: Option<i64>) -> Response {
    let is_json = req
        .header("content-type")
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/json"));
    let value = if is_json {
        match req.json() {
            Ok(v) => match v.get("value").and_then(|v| v.as_str()) {
                Some(s) => s.as_bytes().to_vec(),
                None => return Response::error(400, "the JSON body needs a string \"value\""),
            },
            Err(refusal) => return refusal,
        }
    } else {
        req.body.clone()
    };
    match dht.kv_put(key, &value, cas) {
        Ok(seq) => Response::json(
            200,
            &json!({
                "key": key,
                "value": String::from_utf8_lossy(&value),
                "status": "success",
                "message": format!("Value stored for key: {key}"),
                "storing_node": node,
                "seq": seq,
            }),
        ),
        Err(e) => refused(&e),
    }
}

fn not_found(key: &str) -> Response {
    Response::json(
        404,
        &json!({ "error": "not found", "key": key, "status": 404 }),
    )
}

/// A store error as an HTTP status.
fn refused(e: &KvError) -> Response {
    let status = match e {
        KvError::NoNetwork => 503,
        KvError::ReadOnly => 403,
        KvError::Value(crate::dht::value::ValueError::ValueTooLarge(_)) => 413,
        KvError::Value(crate::dht::value::ValueError::Corrupt(_)) => 502,
        KvError::Value(_) => 400,
        KvError::CasMismatch { .. } | KvError::Conflict => 409,
        KvError::Network(_) | KvError::MissingChunks { .. } => 503,
    };
    Response::error(status, &e.to_string())
}
