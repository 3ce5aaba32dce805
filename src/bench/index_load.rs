//! `p2pshare bench index`: N connections sending `get`, `search` or `publish` back to
//! back (optionally pipelined), or classic `get|name` on a new connection each, against
//! a running index server. Prints operations per second and latency percentiles.
//!
//! Threads: modern requests are driven by one `bench-0` thread over every connection
//! with poll(2), as redis-benchmark does, so the generator takes as little of the
//! machine as it can; the classic dialect uses one thread per connection. A
//! `bench-beat` thread keeps the populating peers' leases alive while the load runs.

use crate::identity::NodeKey;
use crate::net::client::Client;
use crate::net::node::{HelloRole, Me};
use crate::net::{NetError, Timeouts};
use crate::protocol::codec;
use crate::protocol::hash::Sha1Digest;
use crate::protocol::name::PeerId;
use rand::Rng;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::io::AsRawFd;
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

/// A peer of the load: a fresh key under `name`.
fn bench_peer(name: &str) -> Me {
    Me {
        key: NodeKey::generate(),
        name: PeerId::parse(name).expect("a valid name"),
    }
}

fn name_of(i: usize) -> String {
    format!("bench-file-{i:07}.dat")
}

/// Publishes `names` files from four peers at once, in batches of the largest size
/// the protocol allows, and returns their sessions (so their leases can be kept alive)
/// with the time from the first batch sent to the last acknowledged. The batches are
/// built before the clock starts: the time is the index's.
fn populate(cfg: &LoadConfig) -> Result<(Vec<Client>, Duration), NetError> {
    let peers = 4.min(cfg.names.max(1));
    let mut work = Vec::new();
    for p in 0..peers {
        let mut c = Client::connect(&cfg.index, &cfg.timeouts)?;
        let me = bench_peer(&format!("bench-peer-{p}"));
        c.hello(Some(&me), HelloRole::Peer, 40_000 + p as u16, None)?;
        let mine: Vec<usize> = (0..cfg.names).filter(|i| i % peers == p).collect();
        let batches: Vec<String> = mine
            .chunks(crate::protocol::MAX_ROWS)
            .map(|chunk| {
                let mut msg = codec::line(&["publish", &chunk.len().to_string()]);
                for &i in chunk {
                    // A distinct content id and whole-file SHA-1 per file, as real
                    // peers publish them: the index keeps a SHA-1 search entry for each.
                    let id = Sha1Digest::of(name_of(i).as_bytes()).to_string();
                    let sha1 = Sha1Digest::of(format!("sha1 {}", name_of(i)).as_bytes());
                    let sha1 = sha1.to_string();
                    msg.push_str(&codec::line(&[&name_of(i), "1048576", &id, &sha1]));
                }
                msg
            })
            .collect();
        work.push((c, batches));
    }
    let started = Instant::now();
    let results: Vec<Result<Client, NetError>> = thread::scope(|scope| {
        let handles: Vec<_> = work
            .into_iter()
            .map(|(mut c, batches)| {
                scope.spawn(move || {
                    for msg in batches {
                        c.send(msg.as_bytes(), "publish")?;
                        c.read_ok("publish")?;
                    }
                    Ok(c)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(NetError::Protocol {
                        addr: cfg.index.clone(),
                        verb: "publish".into(),
                        message: "a publishing thread panicked".into(),
                    })
                })
            })
            .collect()
    });
    let took = started.elapsed();
    let sessions = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok((sessions, took))
}

/// One request for `op`, ready to send.
fn request(op: Op, rng: &mut impl Rng, names: usize, worker: usize, seq: u64) -> String {
    request_for(op, rng.gen_range(0..names.max(1)), worker, seq)
}

/// The request for `op` about name `i` (or, for `publish`, a new name of its own).
fn request_for(op: Op, i: usize, worker: usize, seq: u64) -> String {
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

struct WorkerResult {
    latencies_us: Vec<u32>,
    errors: u64,
}

/// One connection of the event loop.
struct LoadConn {
    stream: TcpStream,
    out: Vec<u8>,
    sent: usize,
    inbuf: Vec<u8>,
    /// Replies still expected for the batch in flight.
    expecting: usize,
    /// Rows still expected for the reply being read (`None`: its first line).
    rows_left: Option<usize>,
    batch_started: Instant,
    seq: u64,
}

/// Opens a connection and says hello, blocking; then switches it to non-blocking.
fn open_load_conn(cfg: &LoadConfig, worker: usize) -> Result<LoadConn, NetError> {
    let mut c = Client::connect(&cfg.index, &cfg.timeouts)?;
    let role = if cfg.op == Op::Publish {
        HelloRole::Peer
    } else {
        HelloRole::Client
    };
    let me = bench_peer(&format!("load-{worker}"));
    c.hello(Some(&me), role, 41_000 + worker as u16, None)?;
    let stream = c
        .stream()
        .try_clone()
        .map_err(|e| NetError::from_io(&cfg.index, "bench", e))?;
    stream
        .set_nonblocking(true)
        .map_err(|e| NetError::from_io(&cfg.index, "bench", e))?;
    Ok(LoadConn {
        stream,
        out: Vec::new(),
        sent: 0,
        inbuf: Vec::new(),
        expecting: 0,
        rows_left: None,
        batch_started: Instant::now(),
        seq: 0,
    })
}

impl LoadConn {
    /// Consumes complete replies from the input buffer; returns how many finished and
    /// how many of those were errors.
    fn take_replies(&mut self, op: Op) -> (usize, u64) {
        let mut done = 0;
        let mut errors = 0;
        let mut at = 0;
        while let Some(end) = self.inbuf[at..].iter().position(|&b| b == b'\n') {
            let line = &self.inbuf[at..at + end];
            at += end + 1;
            match self.rows_left {
                Some(n) if n > 1 => self.rows_left = Some(n - 1),
                Some(_) => {
                    self.rows_left = None;
                    done += 1;
                }
                None => {
                    let rows = match line.strip_prefix(b"ok") {
                        Some(rest) if op != Op::Publish => rest
                            .strip_prefix(b"|")
                            .map(|f| f.split(|&b| b == b'|').next().unwrap_or_default())
                            .and_then(|n| std::str::from_utf8(n).ok())
                            .and_then(|n| n.parse::<usize>().ok())
                            .unwrap_or(0),
                        Some(_) => 0,
                        None => {
                            errors += 1;
                            0
                        }
                    };
                    if rows == 0 {
                        done += 1;
                    } else {
                        self.rows_left = Some(rows);
                    }
                }
            }
        }
        self.inbuf.drain(..at);
        (done, errors)
    }
}

/// Drives every connection from one thread with poll(2), as redis-benchmark does, so
/// the load generator costs the machine as little as possible.
fn run_event_loop(cfg: &LoadConfig, stop: &AtomicBool, budget: u64) -> WorkerResult {
    let mut out = WorkerResult {
        latencies_us: Vec::new(),
        errors: 0,
    };
    let mut conns = Vec::new();
    for w in 0..cfg.connections {
        match open_load_conn(cfg, w) {
            Ok(c) => conns.push(c),
            Err(e) => {
                log::warn!("connection {w}: {e}");
                out.errors += 1;
            }
        }
    }
    let mut rng = rand::thread_rng();
    let mut buf = vec![0u8; 64 * 1024];
    let mut fds: Vec<libc::pollfd> = Vec::with_capacity(conns.len());
    // `get` and `search` requests are made before the clock starts, as redis-benchmark
    // does: the load generator shares the machine, so it should cost it little.
    let ready: Vec<String> = match cfg.op {
        Op::Get | Op::Search => (0..cfg.names.max(1))
            .map(|i| request_for(cfg.op, i, 0, 0))
            .collect(),
        Op::Publish | Op::ClassicGet => Vec::new(),
    };
    while !stop.load(Ordering::Relaxed)
        && (out.latencies_us.len() as u64) < budget
        && !conns.is_empty()
    {
        fds.clear();
        for (w, c) in conns.iter_mut().enumerate() {
            if c.expecting == 0 {
                c.out.clear();
                c.sent = 0;
                for _ in 0..cfg.pipeline {
                    if ready.is_empty() {
                        let line = request(cfg.op, &mut rng, cfg.names, w, c.seq);
                        c.out.extend_from_slice(line.as_bytes());
                    } else {
                        let line = &ready[rng.gen_range(0..ready.len())];
                        c.out.extend_from_slice(line.as_bytes());
                    }
                    c.seq += 1;
                }
                c.expecting = cfg.pipeline;
                c.batch_started = Instant::now();
            }
            let mut events = libc::POLLIN;
            if c.sent < c.out.len() {
                events |= libc::POLLOUT;
            }
            fds.push(libc::pollfd {
                fd: c.stream.as_raw_fd(),
                events,
                revents: 0,
            });
        }
        // SAFETY: `fds` is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
        if n < 0 {
            continue;
        }
        let mut dead = Vec::new();
        for (i, fd) in fds.iter().enumerate() {
            let c = &mut conns[i];
            if fd.revents & libc::POLLOUT != 0 {
                match (&c.stream).write(&c.out[c.sent..]) {
                    Ok(k) => c.sent += k,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => dead.push(i),
                }
            }
            if fd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                match (&c.stream).read(&mut buf) {
                    Ok(0) => dead.push(i),
                    Ok(k) => {
                        c.inbuf.extend_from_slice(&buf[..k]);
                        let (done, errors) = c.take_replies(cfg.op);
                        out.errors += errors;
                        c.expecting = c.expecting.saturating_sub(done);
                        if c.expecting == 0 {
                            let us =
                                c.batch_started.elapsed().as_micros().min(u32::MAX as u128) as u32;
                            out.latencies_us
                                .extend(std::iter::repeat_n(us, cfg.pipeline));
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => dead.push(i),
                }
            }
        }
        for i in dead.into_iter().rev() {
            out.errors += 1;
            conns.swap_remove(i);
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
    let (mut sessions, populate_time) = if cfg.populate && cfg.names > 0 {
        populate(cfg)?
    } else {
        (Vec::new(), Duration::ZERO)
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
    // Modern requests: one event-loop thread drives every connection. Classic
    // requests: one thread per connection, each dialling anew for every request.
    let threads = if cfg.op == Op::ClassicGet {
        cfg.connections
    } else {
        1
    };
    let per_thread = if cfg.op == Op::ClassicGet {
        budget
    } else {
        cfg.requests.unwrap_or(u64::MAX)
    };
    let results: Vec<WorkerResult> = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|w| {
                let stop = &stop;
                thread::Builder::new()
                    .name(format!("bench-{w}"))
                    .stack_size(256 * 1024)
                    .spawn_scoped(scope, move || {
                        if cfg.op == Op::ClassicGet {
                            run_classic(cfg, stop, per_thread)
                        } else {
                            run_event_loop(cfg, stop, per_thread)
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
