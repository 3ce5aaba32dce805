//! A seed's own HTTP endpoints: `GET /peers` (the registry, as `members` answers it).

use super::api::{Api, Response};
use super::bridge::ask;
use super::index::{only_get, status_rows};
use super::Request;
use crate::dht::DhtNode;
use crate::overlay::seed_role::SeedService;
use crate::protocol::commands::Role;
use serde_json::{json, Value};
use std::sync::Arc;

pub struct SeedApi {
    pub service: Arc<SeedService>,
    /// The seed's DHT node, for the key-value store (`/kv/KEY`).
    pub dht: Option<Arc<DhtNode>>,
}

impl Api for SeedApi {
    fn role(&self) -> Role {
        Role::Seed
    }

    fn status_rows(&self) -> Vec<(String, String)> {
        status_rows(&*self.service)
    }

    fn route(&self, req: &Request) -> Option<Response> {
        match req.path.as_str() {
            "/peers" => Some(only_get(req).unwrap_or_else(|| members(&*self.service, req))),
            _ => super::kv::route(self.dht.as_deref(), self.service.me.name.as_str(), req),
        }
    }
}

/// The `members` rows as JSON: what the node knows of the others.
pub(super) fn members<S: crate::net::Service>(service: &S, req: &Request) -> Response {
    match ask(service, &["members"], req.remote) {
        Ok((_, rows)) => {
            // id|host|port|state|incarnation|view|rtt_ms|name
            let members: Vec<Value> = rows
                .iter()
                .filter(|r| r.len() >= 8)
                .map(|r| {
                    json!({
                        "id": r[0],
                        "host": r[1],
                        "port": r[2].parse::<u64>().ok(),
                        "state": r[3],
                        "incarnation": r[4].parse::<u64>().ok(),
                        "view": r[5],
                        "rtt_ms": r[6].parse::<u64>().ok(),
                        "name": (r[7] != "-").then(|| r[7].clone()),
                    })
                })
                .collect();
            Response::json(200, &json!({ "members": members }))
        }
        Err(refusal) => refusal,
    }
}
