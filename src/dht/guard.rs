//! What a DHT node lets in, and what it keeps to re-publish.
//!
//! The `mainline` crate hands every request to a [`RequestFilter`] before its server
//! answers: this one
//!
//! - counts requests (the node's share of the DHT's traffic, and `bench dht`'s
//!   messages per lookup);
//! - limits each IPv4 address to `--dht-rate` requests a second (a burst of twice
//!   that): a flood costs only its sender, whose requests go unanswered;
//! - keeps a copy of every item put here that belongs to the network (a mutable item
//!   signed by the network's key, checked here, or an immutable chunk), so the node
//!   can re-publish it before it expires elsewhere ([`super::held`]).
//!
//! The crate keeps the request's type private (only `Debug` shows it), so the put's
//! fields are read from its `Debug` form by [`parse_put`]. That form is the derived
//! one of a version pinned in Cargo.lock, and the tests put real items through a real
//! node and check they were kept: a crate update that changed the form fails them.

use super::held::Held;
use super::value;
use crate::clock::Clock;
use crate::net::rate::Allowance;
use mainline::{RequestFilter, RequestSpecific};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Addresses whose rate is tracked at once; past this, one is forgotten at random.
const MAX_TRACKED: usize = 4096;

/// The filter: cheap to clone (the crate clones it), all clones share one state.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

struct Inner {
    rate: u64,
    clock: Clock,
    buckets: Mutex<HashMap<Ipv4Addr, Allowance>>,
    requests: AtomicU64,
    limited: AtomicU64,
    held: Arc<Held>,
    network: Option<[u8; 32]>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("rate", &self.inner.rate)
            .finish()
    }
}

impl Guard {
    pub fn new(rate: u64, held: Arc<Held>, network: Option<[u8; 32]>) -> Guard {
        Guard {
            inner: Arc::new(Inner {
                rate,
                clock: Clock::new(),
                buckets: Mutex::new(HashMap::new()),
                requests: AtomicU64::new(0),
                limited: AtomicU64::new(0),
                held,
                network,
            }),
        }
    }

    /// Requests received, answered or not.
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// Requests left unanswered because their address was over its rate.
    pub fn limited(&self) -> u64 {
        self.inner.limited.load(Ordering::Relaxed)
    }

    fn within_rate(&self, ip: Ipv4Addr) -> bool {
        let now = self.inner.clock.now();
        let mut buckets = self.inner.buckets.lock().expect("dht rate lock");
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&ip) {
            let forget = *buckets.keys().next().expect("not empty");
            buckets.remove(&forget);
        }
        let rate = self.inner.rate;
        buckets
            .entry(ip)
            .or_insert_with(|| Allowance::new(rate, rate * 2, now))
            .take(1, now)
    }
}

impl RequestFilter for Guard {
    fn allow_request(&self, request: &RequestSpecific, from: SocketAddrV4) -> bool {
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let metrics = crate::metrics::global();
        metrics.dht_requests.inc();
        if !self.within_rate(*from.ip()) {
            self.inner.limited.fetch_add(1, Ordering::Relaxed);
            metrics.dht_requests_limited.inc();
            return false;
        }
        let Some(network) = self.inner.network else {
            return true;
        };
        match parse_put(&format!("{request:?}")) {
            Some(Put::Mutable(item)) if item.key == network => {
                let signed =
                    value::signable(item.seq, &item.v, item.salt.as_deref().unwrap_or(&[]));
                if super::verify(&network, &signed, &item.sig) {
                    self.inner
                        .held
                        .stored_mutable(mainline::MutableItem::new_signed_unchecked(
                            item.key,
                            item.sig,
                            &item.v,
                            item.seq,
                            item.salt.as_deref(),
                        ));
                }
            }
            Some(Put::Immutable(v)) => self.inner.held.stored_immutable(v),
            _ => {}
        }
        true
    }
}

/// A put, as read from a request's `Debug` form.
#[derive(Debug, PartialEq, Eq)]
pub enum Put {
    Mutable(MutablePut),
    Immutable(Vec<u8>),
}

#[derive(Debug, PartialEq, Eq)]
pub struct MutablePut {
    pub v: Vec<u8>,
    pub key: [u8; 32],
    pub seq: i64,
    pub sig: [u8; 64],
    pub salt: Option<Vec<u8>>,
}

/// The put in a request's `Debug` form, if it is one.
pub fn parse_put(debug: &str) -> Option<Put> {
    if let Some(at) = debug.find("PutMutable(PutMutableRequestArguments {") {
        let rest = &debug[at..];
        let v = bytes_field(rest, "v: ")?;
        let key = bytes_field(rest, "k: ")?.try_into().ok()?;
        let seq = number_field(rest, "seq: ")?;
        let sig = bytes_field(rest, "sig: ")?.try_into().ok()?;
        let salt = match rest.find("salt: ")? {
            i if rest[i..].starts_with("salt: None") => None,
            _ => Some(bytes_field(rest, "salt: Some(")?),
        };
        return Some(Put::Mutable(MutablePut {
            v,
            key,
            seq,
            sig,
            salt,
        }));
    }
    if let Some(at) = debug.find("PutImmutable(PutImmutableRequestArguments {") {
        return Some(Put::Immutable(bytes_field(&debug[at..], "v: ")?));
    }
    None
}

/// `name: [1, 2, 3]` → the bytes.
fn bytes_field(text: &str, name: &str) -> Option<Vec<u8>> {
    let start = text.find(name)? + name.len();
    let list = text[start..].strip_prefix('[')?;
    let end = list.find(']')?;
    let list = &list[..end];
    if list.is_empty() {
        return Some(Vec::new());
    }
    list.split(", ").map(|n| n.parse().ok()).collect()
}

/// `name: -12` → the number.
fn number_field(text: &str, name: &str) -> Option<i64> {
    let start = text.find(name)? + name.len();
    let digits: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_are_read_from_the_debug_form_and_nothing_else_is() {
        let text = "RequestSpecific { requester_id: Id(00), request_type: Put(PutRequest { \
            token: [1, 2], put_request_type: PutMutable(PutMutableRequestArguments { \
            target: Id(ab), v: [98, 108], k: [7; 32], seq: 5, sig: [1], salt: Some([99]), \
            cas: None }) }) }";
        // `[7; 32]` is not how Debug prints an array: it is refused, not misread.
        assert_eq!(parse_put(text), None);
        let k: Vec<String> = (0..32).map(|i| i.to_string()).collect();
        let s: Vec<String> = (0..64).map(|i| (i % 256).to_string()).collect();
        let text = text
            .replace("[7; 32]", &format!("[{}]", k.join(", ")))
            .replace("sig: [1]", &format!("sig: [{}]", s.join(", ")));
        let Some(Put::Mutable(m)) = parse_put(&text) else {
            panic!("not read: {text}")
        };
        assert_eq!(
            (m.v, m.seq, m.salt),
            (b"bl".to_vec(), 5, Some(b"c".to_vec()))
        );
        assert_eq!(m.key[31], 31);
        let no_salt = text.replace("salt: Some([99])", "salt: None");
        let Some(Put::Mutable(m)) = parse_put(&no_salt) else {
            panic!()
        };
        assert_eq!(m.salt, None);
        let imm = "Put(PutRequest { token: [], put_request_type: PutImmutable(\
            PutImmutableRequestArguments { target: Id(ab), v: [] }) })";
        assert_eq!(parse_put(imm), Some(Put::Immutable(Vec::new())));
        assert_eq!(parse_put("RequestSpecific { request_type: Ping }"), None);
    }
}
