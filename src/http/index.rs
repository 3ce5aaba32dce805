//! An index server's own HTTP endpoints: `GET /search?q=WORDS[&limit=N]` and
//! `GET /files/NAME/holders[?id=CONTENT_ID]`.

use super::api::{Allow, Api, Response};
use super::bridge::ask;
use super::{Method, Request};
use crate::index::service::IndexService;
use crate::protocol::commands::Role;
use serde_json::{json, Value};
use std::sync::Arc;

pub struct IndexApi {
    pub service: Arc<IndexService>,
}

/// `-` on the wire is "not known": JSON null.
fn opt(text: &str) -> Value {
    if text == "-" {
        Value::Null
    } else {
        Value::String(text.to_owned())
    }
}

fn number(text: &str) -> Value {
    text.parse::<u64>().map(Value::from).unwrap_or(Value::Null)
}

impl Api for IndexApi {
    fn role(&self) -> Role {
        Role::Index
    }

    fn status_rows(&self) -> Vec<(String, String)> {
        status_rows(&*self.service)
    }

    fn route(&self, req: &Request) -> Option<Response> {
        let path = req.path.as_str();
        if path == "/search" {
            return Some(only_get(req).unwrap_or_else(|| self.search(req)));
        }
        let name = path.strip_prefix("/files/")?.strip_suffix("/holders")?;
        Some(only_get(req).unwrap_or_else(|| self.holders(req, name)))
    }
}

impl IndexApi {
    fn search(&self, req: &Request) -> Response {
        let Some(q) = req.query("q") else {
            return Response::error(400, "search needs ?q=WORDS (or q=sha1:HEX)");
        };
        let mut fields = vec!["search", q];
        if let Some(limit) = req.query("limit") {
            fields.push(limit);
        }
        match ask(&*self.service, &fields, req.remote) {
            Ok((head, rows)) => {
                let results: Vec<Value> = rows
                    .iter()
                    .filter(|r| r.len() >= 5)
                    .map(|r| {
                        json!({
                            "name": r[0],
                            "size": number(&r[1]),
                            "id": opt(&r[2]),
                            "holders": number(&r[3]),
                            "sha1": opt(&r[4]),
                        })
                    })
                    .collect();
                let more = head.get(1).is_some_and(|m| m == "1");
                Response::json(200, &json!({ "results": results, "more": more }))
            }
            Err(refusal) => refusal,
        }
    }

    fn holders(&self, req: &Request, name: &str) -> Response {
        let mut fields = vec!["get", name];
        if let Some(id) = req.query("id") {
            fields.push(id);
        }
        match ask(&*self.service, &fields, req.remote) {
            Ok((_, rows)) => {
                let holders: Vec<Value> = rows
                    .iter()
                    .filter(|r| r.len() >= 7)
                    .map(|r| {
                        json!({
                            "host": r[0],
                            "port": number(&r[1]),
                            "peer": r[2],
                            "size": number(&r[3]),
                            "id": opt(&r[4]),
                            "sha1": opt(&r[5]),
                            "name": r[6],
                        })
                    })
                    .collect();
                Response::json(200, &json!({ "name": name, "holders": holders }))
            }
            Err(refusal) => refusal,
        }
    }
}

/// 405 unless the request is a GET (or HEAD).
pub(super) fn only_get(req: &Request) -> Option<Response> {
    (!matches!(req.method, Method::Get | Method::Head))
        .then(|| Response::not_allowed(&req.path, Allow::Get))
}

/// The `status` rows of a line-protocol service, asked in process.
pub(super) fn status_rows<S: crate::net::Service>(service: &S) -> Vec<(String, String)> {
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    match ask(service, &["status"], local) {
        Ok((_, rows)) => rows
            .into_iter()
            .filter_map(|mut r| {
                (r.len() >= 2).then(|| {
                    let v = r.split_off(1).join("|");
                    (r.remove(0), v)
                })
            })
            .collect(),
        Err(_) => vec![
            ("health".into(), "failing".into()),
            ("failing".into(), "status is not answering".into()),
        ],
    }
}
