//! The index servers a node knows, as seen from the client side.
//!
//! Queries go to the first index that answers; an index that fails to connect or
//! times out is marked down for a while, so later queries do not wait on it again.
//! Lock order: the down-map mutex is a leaf, never held across I/O.

use crate::clock::{Clock, Millis};
use crate::config::NodeAddr;
use crate::net::client::Client;
use crate::net::{NetError, Timeouts};
use crate::protocol::codec;
use crate::protocol::hash::Sha1Digest;
use crate::protocol::name::FileName;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// How long an index that failed is skipped.
const DOWN_FOR: Duration = Duration::from_secs(15);

/// One holder of a file, as an index reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub host: IpAddr,
    pub port: u16,
    pub peer: String,
    pub size: Option<u64>,
    pub id: Option<Sha1Digest>,
    pub digest: Option<Sha1Digest>,
}

impl Holder {
    pub fn addr(&self) -> String {
        std::net::SocketAddr::new(self.host, self.port).to_string()
    }

    /// A classic holder has no piece list: it can only stream the whole file.
    pub fn is_classic(&self) -> bool {
        self.id.is_none() || self.digest.is_none() || self.size.is_none()
    }
}

/// One search result row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    pub size: Option<u64>,
    pub id: Option<Sha1Digest>,
    pub holders: u64,
}

pub struct IndexPool {
    addrs: Vec<NodeAddr>,
    timeouts: Timeouts,
    clock: Clock,
    down_until: Mutex<HashMap<usize, Millis>>,
}

fn opt<T>(text: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>, String> {
    if text == "-" {
        return Ok(None);
    }
    parse(text)
        .map(Some)
        .ok_or_else(|| format!("bad field '{}'", codec::printable(text)))
}

impl IndexPool {
    pub fn new(addrs: Vec<NodeAddr>, timeouts: Timeouts) -> IndexPool {
        IndexPool {
            addrs,
            timeouts,
            clock: Clock::new(),
            down_until: Mutex::new(HashMap::new()),
        }
    }

    pub fn addrs(&self) -> &[NodeAddr] {
        &self.addrs
    }

    /// Runs `f` against the first index that answers. Indexes marked down are tried
    /// last. A refusal (`err|...`) is an answer and is returned as is.
    pub fn query<T>(
        &self,
        mut f: impl FnMut(&mut Client) -> Result<T, NetError>,
    ) -> Result<T, NetError> {
        let now = self.clock.now();
        let mut order: Vec<usize> = (0..self.addrs.len()).collect();
        {
            let down = self.down_until.lock().unwrap_or_else(|e| e.into_inner());
            order.sort_by_key(|i| down.get(i).is_some_and(|&until| until > now));
        }
        let mut last = None;
        for i in order {
            let addr = self.addrs[i].as_str();
            let result = Client::connect(addr, &self.timeouts).and_then(|mut c| f(&mut c));
            match result {
                Err(e @ NetError::Remote { .. }) => return Err(e),
                Err(e) => {
                    log::info!("index {addr} unavailable: {e}");
                    self.down_until
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(i, self.clock.now().plus(DOWN_FOR));
                    last = Some(e);
                }
                Ok(v) => {
                    self.down_until
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&i);
                    return Ok(v);
                }
            }
        }
        Err(last.unwrap_or_else(|| NetError::Connect {
            addr: "(no index server configured)".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no index server"),
        }))
    }

    /// Live holders of `name` (optionally only those with content `id`).
    pub fn holders(
        &self,
        name: &FileName,
        id: Option<Sha1Digest>,
    ) -> Result<Vec<Holder>, NetError> {
        self.query(|c| {
            let id_text = id.map(|d| d.to_string());
            let mut fields = vec!["get", name.as_str()];
            if let Some(t) = &id_text {
                fields.push(t);
            }
            c.send(codec::line(&fields).as_bytes(), "get")?;
            let (_, rows) = c.read_rows("get", 6)?;
            rows.iter()
                .map(|r| parse_holder(r))
                .collect::<Result<Vec<_>, String>>()
                .map_err(|message| NetError::Protocol {
                    addr: c.addr().to_owned(),
                    verb: "get".into(),
                    message,
                })
        })
    }

    /// Search results and whether more exist.
    pub fn search(&self, words: &str, limit: usize) -> Result<(Vec<Found>, bool), NetError> {
        self.query(|c| {
            c.send(
                codec::line(&["search", words, &limit.to_string()]).as_bytes(),
                "search",
            )?;
            let (head, rows) = c.read_rows("search", 4)?;
            let more = head.get(1).map(String::as_str) == Some("1");
            let found = rows
                .iter()
                .map(|r| parse_found(r))
                .collect::<Result<Vec<_>, String>>()
                .map_err(|message| NetError::Protocol {
                    addr: c.addr().to_owned(),
                    verb: "search".into(),
                    message,
                })?;
            Ok((found, more))
        })
    }
}

fn parse_holder(r: &[String]) -> Result<Holder, String> {
    Ok(Holder {
        host: r[0]
            .parse()
            .map_err(|_| format!("bad host '{}'", codec::printable(&r[0])))?,
        port: r[1]
            .parse()
            .map_err(|_| format!("bad port '{}'", codec::printable(&r[1])))?,
        peer: r[2].clone(),
        size: opt(&r[3], |t| t.parse().ok())?,
        id: opt(&r[4], |t| Sha1Digest::parse(t).ok())?,
        digest: opt(&r[5], |t| Sha1Digest::parse(t).ok())?,
    })
}

fn parse_found(r: &[String]) -> Result<Found, String> {
    Ok(Found {
        name: r[0].clone(),
        size: opt(&r[1], |t| t.parse().ok())?,
        id: opt(&r[2], |t| Sha1Digest::parse(t).ok())?,
        holders: r[3].parse().map_err(|_| "bad holder count".to_owned())?,
    })
}
