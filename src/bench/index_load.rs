//! `p2pshare bench index`: N connections sending `get`, `search` or `publish` back to
//! back (optionally pipelined), or classic `get|name` on a new connection each, against
//! a running index server. Prints operations per second and latency percentiles.
//!
//! Threads: one `bench-<k>` thread per connection and one `bench-beat` thread that
//! keeps the populating peers' leases alive while the load runs.

use crate::net::client::Client;
use crate::net::{NetError, Timeouts};
use crate::protocol::codec::{self, ReplyHead};
use crate::protocol::hash::Sha1Digest;
use rand::Rng;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// What each request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Get,
    Search,
    Publish,
    /// The classic dialect: a new connection, `get|<name>` without a newline.
    ClassicGet,
}

impl Op {
    pub fn parse(text: &str) -> Result<Op, String> {
        match text {
            "get" => Ok(Op::Get),
            "search" => Ok(Op::Search),
            "publish" => Ok(Op::Publish),
            "classic-get" => Ok(Op::ClassicGet),
            _ => Err(format!(
                "unknown op '{text}' (get, search, publish, classic-get)"
            )),
        }
    }
}

#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub index: String,
    pub op: Op,
    pub connections: usize,
    pub pipeline: usize,
    pub duration: Duration,
    /// Stop after this many requests in all, if set (before the duration).
    pub requests: Option<u64>,
    /// Names `get` and `search` ask for.
    pub names: usize,
    /// Publish those names before the run (false when the server already has them).
    pub populate: bool,
    pub timeouts: Timeouts,
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Time to publish the names before the run (zero when not populating).
    pub populate: Duration,
    pub op: Op,
    pub connections: usize,
    pub pipeline: usize,
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl LoadReport {
    pub fn ops_per_sec(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn name_of(i: usize) -> String {
    format!("bench-file-{i:07}.dat")
}

/// Publishes `names` files from a handful of peers, and returns their sessions so
/// their leases can be kept alive.
fn populate(cfg: &LoadConfig) -> Result<Vec<Client>, NetError> {
    let peers = 4.min(cfg.names.max(1));
    let mut sessions = Vec::new();
    let digest = Sha1Digest::of(b"bench pieces").to_string();
    for p in 0..peers {
        let mut c = Client::connect(&cfg.index, &cfg.timeouts)?;
        c.hello("peer", &format!("bench-peer-{p}"), 40_000 + p as u16)?;
        let mine: Vec<usize> = (0..cfg.names).filter(|i| i % peers == p).collect();
        for chunk in mine.chunks(crate::protocol::MAX_ROWS) {
            let mut msg = codec::line(&["publish", &chunk.len().to_string()]);
            for &i in chunk {
                let id = Sha1Digest::of(name_of(i).as_bytes()).to_string();
                msg.push_str(&codec::line(&[&name_of(i), "1048576", &id, &digest]));
            }
            c.send(msg.as_bytes(), "publish")?;
            c.read_ok("publish")?;
        }
        sessions.push(c);
    }
    Ok(sessions)
}

/// One request for `op`, ready to send.
fn request(op: Op, rng: &mut impl Rng, names: usize, worker: usize, seq: u64) -> String {
    let i = rng.gen_range(0..names.max(1));
    match op {
        Op::Get | Op::ClassicGet => codec::line(&["get", &name_of(i)]),
        Op::Search => codec::line(&["search", &format!("file {i:07}"), "10"]),
        Op::Publish => {
            let name = format!("load-{worker}-{seq}.dat");
            let id = Sha1Digest::of(name.as_bytes()).to_string();
            let mut m = codec::line(&["publish", "1"]);
            m.push_str(&codec::line(&[&name, "1", &id, &id]));
            m
        }
    }
}

/// Reads one reply to `op`, including its rows.
fn read_reply(c: &mut Client, op: Op) -> Result<(), NetError> {
    let verb = match op {
        Op::Search => "search",
        Op::Publish => "publish",
        _ => "get",
    };
    match c.read_head(verb)? {
        ReplyHead::Ok(f) if op != Op::Publish => {
            let rows: usize = f.first().and_then(|n| n.parse().ok()).unwrap_or(0);
            for _ in 0..rows {
                c.read_line(verb)?;
            }
            Ok(())
        }
        ReplyHead::Ok(_) => Ok(()),
        ReplyHead::Err(refusal) => Err(NetError::Remote {
            addr: c.addr().to_owned(),
            verb: verb.into(),
            refusal,
        }),
        ReplyHead::Data(_) => Err(NetError::Protocol {
            addr: c.addr().to_owned(),
            verb: verb.into(),
            message: "unexpected data".into(),
        }),
    }
}

struct WorkerResult {
    latencies_us: Vec<u32>,
    errors: u64,
}

fn run_modern(cfg: &LoadConfig, worker: usize, stop: &AtomicBool, budget: u64) -> WorkerResult {
    let mut out = WorkerResult {
        latencies_us: Vec::new(),
        errors: 0,
    };
    let mut rng = rand::thread_rng();
    let mut client = match Client::connect(&cfg.index, &cfg.timeouts).and_then(|mut c| {
        let role = if cfg.op == Op::Publish {
            "peer"
        } else {
            "client"
        };
        c.hello(role, &format!("load-{worker}"), 41_000 + worker as u16)?;
        Ok(c)
    }) {
        Ok(c) => c,
        Err(e) => {
            log::warn!("worker {worker}: {e}");
            out.errors += 1;
            return out;
        }
    };
    let mut seq = 0u64;
    let mut batch = String::new();
    while !stop.load(Ordering::Relaxed) && (out.latencies_us.len() as u64) < budget {
        batch.clear();
        for _ in 0..cfg.pipeline {
            batch.push_str(&request(cfg.op, &mut rng, cfg.names, worker, seq));
            seq += 1;
        }
        let t = Instant::now();
        if client.send(batch.as_bytes(), "bench").is_err() {
            out.errors += 1;
            return out;
        }
        for _ in 0..cfg.pipeline {
            if read_reply(&mut client, cfg.op).is_err() {
                out.errors += 1;
            }
        }
        let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
        for _ in 0..cfg.pipeline {
            out.latencies_us.push(us);
        }
    }
    out
}

fn run_classic(cfg: &LoadConfig, stop: &AtomicBool, budget: u64) -> WorkerResult {
    let mut out = WorkerResult {
        latencies_us: Vec::new(),
        errors: 0,
    };
    let mut rng = rand::thread_rng();
    let mut reply = Vec::with_capacity(256);
    while !stop.load(Ordering::Relaxed) && (out.latencies_us.len() as u64) < budget {
        let name = name_of(rng.gen_range(0..cfg.names.max(1)));
        let t = Instant::now();
        let ok =
            crate::net::client::dial(&cfg.index, &cfg.timeouts).is_ok_and(|mut s: TcpStream| {
                reply.clear();
                s.write_all(format!("get|{name}").as_bytes()).is_ok()
                    && s.read_to_end(&mut reply).is_ok()
                    && !reply.is_empty()
            });
        if ok {
            out.latencies_us
                .push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
        } else {
            out.errors += 1;
        }
    }
    out
}

fn percentile(sorted: &[u32], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    u64::from(sorted[rank.min(sorted.len() - 1)])
}

/// Populates the index, runs the load and gathers the figures.
pub fn run(cfg: &LoadConfig) -> Result<LoadReport, NetError> {
    let populate_started = Instant::now();
    let mut sessions = if cfg.populate && cfg.names > 0 {
        populate(cfg)?
    } else {
        Vec::new()
    };
    let populate_time = if sessions.is_empty() {
        Duration::ZERO
    } else {
        populate_started.elapsed()
    };
    let stop = Arc::new(AtomicBool::new(false));
    // Keep the populating peers alive however long the run lasts.
    let beat = {
        let stop = stop.clone();
        thread::Builder::new()
            .name("bench-beat".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for s in &mut sessions {
                        let _ = s.call(&["beat"]);
                    }
                    for _ in 0..20 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        thread::sleep(Duration::from_millis(250));
                    }
                }
            })
            .map_err(|e| NetError::Connect {
                addr: cfg.index.clone(),
                source: e,
            })?
    };
    let budget = cfg
        .requests
        .map(|r| r.div_ceil(cfg.connections as u64))
        .unwrap_or(u64::MAX);
    let started = Instant::now();
    let results: Vec<WorkerResult> = thread::scope(|scope| {
        let handles: Vec<_> = (0..cfg.connections)
            .map(|w| {
                let stop = &stop;
                thread::Builder::new()
                    .name(format!("bench-{w}"))
                    .stack_size(256 * 1024)
                    .spawn_scoped(scope, move || {
                        if cfg.op == Op::ClassicGet {
                            run_classic(cfg, stop, budget)
                        } else {
                            run_modern(cfg, w, stop, budget)
                        }
                    })
                    .expect("spawn a bench worker")
            })
            .collect();
        let deadline = started + cfg.duration;
        while Instant::now() < deadline && !handles.iter().all(|h| h.is_finished()) {
            thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = beat.join();
    let mut all: Vec<u32> = results
        .iter()
        .flat_map(|r| r.latencies_us.iter().copied())
        .collect();
    all.sort_unstable();
    Ok(LoadReport {
        populate: populate_time,
        op: cfg.op,
        connections: cfg.connections,
        pipeline: cfg.pipeline,
        requests: all.len() as u64,
        errors: results.iter().map(|r| r.errors).sum(),
        elapsed,
        p50_us: percentile(&all, 50.0),
        p99_us: percentile(&all, 99.0),
        max_us: all.last().copied().map(u64::from).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 51);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&[], 99.0), 0);
    }

    #[test]
    fn requests_are_well_formed_frames() {
        let mut rng = rand::thread_rng();
        for op in [Op::Get, Op::Search, Op::Publish] {
            let r = request(op, &mut rng, 10, 1, 2);
            let decoded = codec::decode_request(r.as_bytes(), crate::protocol::MAX_LINE);
            assert!(
                matches!(decoded, Ok(codec::Decoded::Frame(_, n)) if n == r.len()),
                "{r}"
            );
        }
    }
}
