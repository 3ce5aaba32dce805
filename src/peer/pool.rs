//! The index servers a node knows, as seen from the client side.
//!
//! Queries go to the first index that answers. An index that cannot be reached, does
//! not answer within the connect timeout (at least 1 s: a hung process accepts
//! connections but never replies), or says it is busy or failing, is marked down:
//! tried last, so later queries do not wait on it again. The mark lasts 15 s, doubling
//! up to 5 minutes while the index keeps failing, and goes as soon as it answers.
//! Lock order: the down-map mutex is a leaf, never held across I/O.

use crate::clock::{Clock, Millis};
use crate::config::NodeAddr;
use crate::net::client::Client;
use crate::net::{NetError, Timeouts};
use crate::protocol::codec;
use crate::protocol::hash::Sha1Digest;
use crate::protocol::name::FileName;
use crate::protocol::ErrorCode;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// How long an index that failed is tried last; doubled at each failure in a row.
const DOWN_FOR: Duration = Duration::from_secs(15);
const MAX_DOWN_FOR: Duration = Duration::from_secs(300);

/// An index marked down: until when, and for how long the last mark was.
#[derive(Clone, Copy, Debug)]
struct Down {
    until: Millis,
    period: Duration,
}

/// One holder of a file, as an index reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub host: IpAddr,
    pub port: u16,
    /// The holder's id: a node id (its key), or a classic peer's id.
    pub peer: String,
    /// The name it goes by (may repeat).
    pub name: String,
    pub size: Option<u64>,
    /// The content id (the piece-list digest).
    pub id: Option<Sha1Digest>,
    /// The whole-file SHA-1 the holder claims: unverified, `None` when it gave none.
    pub sha1: Option<Sha1Digest>,
}

impl Holder {
    pub fn addr(&self) -> String {
        std::net::SocketAddr::new(self.host, self.port).to_string()
    }

    /// How the holder is shown: the name it goes by (with its address beside it,
    /// wherever it is shown, since names may repeat).
    pub fn label(&self) -> &str {
        &self.name
    }

    /// A classic holder has no piece list: it can only stream the whole file. A
    /// modern holder gives a content id and a size (its whole-file SHA-1 is optional).
    pub fn is_classic(&self) -> bool {
        self.id.is_none() || self.size.is_none()
    }
}

/// One search result row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    pub size: Option<u64>,
    pub id: Option<Sha1Digest>,
    pub holders: u64,
    /// The whole-file SHA-1 its holders claim, when they agree on one (unverified).
    pub sha1: Option<Sha1Digest>,
}

pub struct IndexPool {
    addrs: Vec<NodeAddr>,
    timeouts: Timeouts,
    clock: Clock,
    down: Mutex<HashMap<usize, Down>>,
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
            down: Mutex::new(HashMap::new()),
        }
    }

    pub fn addrs(&self) -> &[NodeAddr] {
        &self.addrs
    }

    /// Runs `f` against the first index that answers. Indexes marked down are tried
    /// last. A refusal (`err|...`) is an answer and is returned as is, except `busy`
    /// and `internal`, which say this index cannot serve now: the next one is tried.
    pub fn query<T>(
        &self,
        mut f: impl FnMut(&mut Client) -> Result<T, NetError>,
    ) -> Result<T, NetError> {
        let now = self.clock.now();
        let mut order: Vec<usize> = (0..self.addrs.len()).collect();
        {
            let down = self.down.lock().unwrap_or_else(|e| e.into_inner());
            order.sort_by_key(|i| down.get(i).is_some_and(|d| d.until > now));
        }
        // A query's reply is small and quick: an index that has not answered within
        // the connect timeout (at least 1 s) is treated as down, rather than waited on
        // for the full I/O timeout, which is sized for transfers.
        let timeouts = Timeouts {
            connect: self.timeouts.connect,
            io: self
                .timeouts
                .io
                .min(self.timeouts.connect.max(Duration::from_secs(1))),
        };
        let mut last = None;
        for i in order {
            let addr = self.addrs[i].as_str();
            let result = Client::connect(addr, &timeouts).and_then(|mut c| f(&mut c));
            let unavailable = match &result {
                Ok(_) => false,
                Err(NetError::Remote { refusal, .. }) => {
                    matches!(refusal.code, ErrorCode::Busy | ErrorCode::Internal)
                }
                Err(_) => true,
            };
            if !unavailable {
                self.down
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&i);
                return result;
            }
            if let Err(e) = result {
                log::info!("index {addr} unavailable: {e}");
                self.mark_down(i);
                last = Some(e);
            }
        }
        Err(last.unwrap_or_else(|| NetError::Connect {
            addr: "(no index server configured)".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no index server"),
        }))
    }

    fn mark_down(&self, i: usize) {
        let now = self.clock.now();
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        let period = match down.get(&i) {
            Some(d) => (d.period * 2).min(MAX_DOWN_FOR),
            None => DOWN_FOR,
        };
        down.insert(
            i,
            Down {
                until: now.plus(period),
                period,
            },
        );
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
            let (_, rows) = c.read_rows("get", 7)?;
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

    /// The names the index holds that differ from `name` only in case (names are
    /// case-sensitive; search is not), sorted, each once. Empty when the index cannot
    /// be asked.
    pub fn other_cases(&self, name: &str) -> Vec<String> {
        let Ok((found, _)) = self.search(name, 100) else {
            return Vec::new();
        };
        let wanted = name.to_lowercase();
        let mut names: Vec<String> = found
            .into_iter()
            .map(|f| f.name)
            .filter(|n| n != name && n.to_lowercase() == wanted)
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Search results and whether more exist. `sha1:<40 hex>` as the words finds the
    /// files whose holders claim that whole-file SHA-1.
    pub fn search(&self, words: &str, limit: usize) -> Result<(Vec<Found>, bool), NetError> {
        // Words come from a person: a '|' or a line break cannot travel in a field, and
        // between words it means what a space means.
        let words: String = words
            .chars()
            .map(|c| if c == '|' || c.is_control() { ' ' } else { c })
            .collect();
        self.query(|c| {
            c.send(
                codec::line(&["search", &words, &limit.to_string()]).as_bytes(),
                "search",
            )?;
            let (head, rows) = c.read_rows("search", 5)?;
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
        port: crate::protocol::decimal(&r[1])
            .ok_or_else(|| format!("bad port '{}'", codec::printable(&r[1])))?,
        peer: r[2].clone(),
        size: opt(&r[3], crate::protocol::decimal)?,
        id: opt(&r[4], |t| Sha1Digest::parse(t).ok())?,
        sha1: opt(&r[5], |t| Sha1Digest::parse(t).ok())?,
        name: r[6].clone(),
    })
}

fn parse_found(r: &[String]) -> Result<Found, String> {
    Ok(Found {
        name: r[0].clone(),
        size: opt(&r[1], crate::protocol::decimal)?,
        id: opt(&r[2], |t| Sha1Digest::parse(t).ok())?,
        holders: crate::protocol::decimal(&r[3]).ok_or_else(|| "bad holder count".to_owned())?,
        sha1: opt(&r[4], |t| Sha1Digest::parse(t).ok())?,
    })
}
