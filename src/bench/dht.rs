//! `p2pshare bench dht`: a private DHT of N nodes in this process, all on 127.0.0.1,
//! each a real [`DhtNode`] (the node seeds and peers run: its own UDP socket, the
//! crate's actor thread and a republishing thread), sharing one network key.
//!
//! Phases, each timed per operation (p50, p99, max), counted (right, wrong, failed)
//! and charged with the DHT requests the live nodes received meanwhile:
//!
//! 1. **Put**: K keys, each written from a random node (`kv_put`: a lookup of the
//!    newest version, then the store at the closest nodes).
//! 2. **Get**: each key read from a random other node (`kv_get`); right when it
//!    returns the bytes written.
//! 3. **Missing**: keys never written, read from random nodes: the time to a definite
//!    "not found" (the lookup asked the closest nodes and none had it).
//! 4. **Kill waves**: a share of the nodes is stopped and dropped, in waves. After
//!    each wave the bench waits one republication window, then reads a sample of the
//!    keys from random survivors while republication goes on; after the last wave's
//!    window, republication stops and every key is read, so that read's messages
//!    are the lookups' own.
//!
//! The republication window is 1.5 periods plus 5 s (`settle`): a node puts what it holds again
//! one period after it last stored or refreshed it, plus a random delay of up to half
//! a period ([`crate::dht::held`]), so within 1.5 periods of a wave every surviving
//! holder of every item has had its turn (or was refreshed by another holder's put,
//! which pushes its own turn back), and the 5 s let the last of those puts end.
//!
//! Messages: every node counts the requests it receives ([`DhtNode::requests`]); a
//! phase's messages per operation are the sum of those counts over the live nodes
//! during the phase, divided by its operations. The traffic the nodes make on their
//! own (routing-table upkeep, republication) is measured over a quiet window before
//! each phase, reported beside it, and taken out of the net figure.
//!
//! Threads: the nodes' own, and `--concurrency` workers (`bench-dht-N`) that run the
//! operations. It measures; it never asserts. Progress goes to a callback (the
//! command prints it on stderr); the module prints nothing.

use crate::dht::{DhtNode, DhtSettings, Network};
use crate::identity::NodeKey;
use rand::distributions::{Alphanumeric, DistString};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::{json, Value};
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests a second one address may send a node: every node here is 127.0.0.1, so
/// the per-address limit would otherwise throttle the whole network.
const RATE: u64 = 1_000_000_000;

/// What to run.
#[derive(Clone, Debug)]
pub struct DhtBench {
    pub nodes: usize,
    pub keys: usize,
    /// Bytes per value (inline: up to 1000).
    pub value_size: usize,
    /// Lookups of keys never written.
    pub missing: usize,
    /// Share of the nodes killed over all waves.
    pub kill: f64,
    pub waves: usize,
    /// Keys read after each wave but the last (which reads them all).
    pub sample: usize,
    pub concurrency: usize,
    /// The nodes' `--dht-republish`.
    pub republish: Duration,
    /// The first nodes, which every later node bootstraps from.
    pub bootstrap: usize,
    /// Seeds every random choice (which node writes and reads what, who dies).
    pub seed: u64,
    /// How long the nodes' own traffic is counted before each phase.
    pub quiet: Duration,
    /// What the wait after a wave adds to 1.5 republish periods, for the last puts.
    pub settle: Duration,
}

impl Default for DhtBench {
    fn default() -> Self {
        DhtBench {
            nodes: 200,
            keys: 10_000,
            value_size: 100,
            missing: 1000,
            kill: 0.3,
            waves: 3,
            sample: 1000,
            concurrency: 16,
            republish: Duration::from_secs(120),
            bootstrap: 3,
            seed: 1,
            quiet: Duration::from_secs(2),
            settle: Duration::from_secs(5),
        }
    }
}

impl DhtBench {
    /// How long the bench waits after a wave before it reads.
    pub fn window(&self) -> Duration {
        self.republish * 3 / 2 + self.settle
    }
}

/// Percentiles of operation times, in microseconds.
#[derive(Clone, Debug, Default)]
pub struct Latency {
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

impl Latency {
    fn of(mut us: Vec<u64>) -> Latency {
        us.sort_unstable();
        let pick = |p: f64| -> u64 {
            if us.is_empty() {
                return 0;
            }
            let rank = ((p * us.len() as f64).ceil() as usize).clamp(1, us.len());
            us[rank - 1]
        };
        Latency {
            p50: pick(0.50),
            p99: pick(0.99),
            max: us.last().copied().unwrap_or(0),
        }
    }

    fn json(&self) -> Value {
        json!({ "p50_ms": ms(self.p50), "p99_ms": ms(self.p99), "max_ms": ms(self.max) })
    }
}

fn ms(us: u64) -> f64 {
    (us as f64 / 1000.0 * 100.0).round() / 100.0
}

/// One phase's figures.
#[derive(Clone, Debug, Default)]
pub struct Phase {
    pub name: String,
    pub live_nodes: usize,
    pub ops: usize,
    /// Right answers: stored, the bytes written, or (missing keys) a "not found".
    pub right: usize,
    /// Answers that are not the right one (another value, or none for a stored key).
    pub wrong: usize,
    /// Errors, with the first one's text.
    pub failed: usize,
    pub first_error: Option<String>,
    pub latency: Latency,
    pub seconds: f64,
    /// Requests the live nodes received during the phase.
    pub requests: u64,
    /// Requests a second the nodes received on their own just before the phase.
    pub background_per_s: f64,
    /// CPU time the whole process (every node, every worker) used during the phase.
    pub cpu_seconds: f64,
    /// UDP datagrams the kernel dropped for a full receive buffer during the phase,
    /// machine-wide (`RcvbufErrors` in /proc/net/snmp; 0 where unreadable).
    pub rcvbuf_drops: u64,
}

impl Phase {
    pub fn success_rate(&self) -> f64 {
        self.right as f64 / self.ops.max(1) as f64
    }

    pub fn per_op(&self) -> f64 {
        self.requests as f64 / self.ops.max(1) as f64
    }

    /// Messages per operation without the background traffic.
    pub fn per_op_net(&self) -> f64 {
        let background = self.background_per_s * self.seconds;
        (self.requests as f64 - background).max(0.0) / self.ops.max(1) as f64
    }

    fn json(&self) -> Value {
        json!({
            "name": self.name,
            "live_nodes": self.live_nodes,
            "ops": self.ops,
            "right": self.right,
            "wrong": self.wrong,
            "failed": self.failed,
            "first_error": self.first_error,
            "success_rate": self.success_rate(),
            "latency": self.latency.json(),
            "seconds": self.seconds,
            "ops_per_s": self.ops as f64 / self.seconds.max(1e-9),
            "requests": self.requests,
            "requests_per_op": self.per_op(),
            "background_requests_per_s": self.background_per_s,
            "requests_per_op_net": self.per_op_net(),
            "cpu_seconds": self.cpu_seconds,
            "udp_rcvbuf_drops": self.rcvbuf_drops,
        })
    }

    fn text(&self) -> String {
        let mut s = format!(
            "  {:<28} {:>6} ops  {:>7.3}% right ({} wrong, {} failed)  p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  {:>6.1} msgs/op ({:.1} net of {:.0}/s background)  {:.1} s, {:.1} s of CPU, {} UDP drops\n",
            self.name,
            self.ops,
            self.success_rate() * 100.0,
            self.wrong,
            self.failed,
            ms(self.latency.p50),
            ms(self.latency.p99),
            ms(self.latency.max),
            self.per_op(),
            self.per_op_net(),
            self.background_per_s,
            self.seconds,
            self.cpu_seconds,
            self.rcvbuf_drops
        );
        if let Some(e) = &self.first_error {
            s.push_str(&format!("      first error: {e}\n"));
        }
        s
    }
}

/// A kill wave: who died, and whether their sockets closed.
#[derive(Clone, Debug, Default)]
pub struct Wave {
    pub killed: usize,
    pub live_after: usize,
    /// Killed nodes whose UDP port could be bound again within 2 s (their socket
    /// closed when the crate's actor thread ended).
    pub sockets_closed: usize,
    pub waited_s: f64,
    /// The read that followed.
    pub read: Phase,
}

#[derive(Clone, Debug, Default)]
pub struct DhtReport {
    pub nodes: usize,
    pub keys: usize,
    pub value_size: usize,
    pub concurrency: usize,
    pub republish_s: f64,
    pub seed: u64,
    pub start_seconds: f64,
    /// Routing-table sizes after the start: min, median, max.
    pub table: [usize; 3],
    /// The crate's estimate of the DHT's size, median over the nodes.
    pub size_estimate: usize,
    pub put: Phase,
    pub get: Phase,
    pub missing: Phase,
    pub waves: Vec<Wave>,
    pub wall_seconds: f64,
}

/// What an operation returned.
enum Outcome {
    Right,
    Wrong,
    Failed(String),
}

/// The network: `None` for a node that was killed.
struct Net {
    nodes: Vec<Option<DhtNode>>,
}

impl Net {
    fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_some())
            .collect()
    }

    fn node(&self, i: usize) -> &DhtNode {
        self.nodes[i].as_ref().expect("a live node")
    }

    fn requests(&self) -> u64 {
        self.nodes.iter().flatten().map(|n| n.requests().0).sum()
    }

    /// Requests a second the nodes receive on their own, over `quiet`.
    fn background(&self, quiet: Duration) -> f64 {
        let before = self.requests();
        let started = Instant::now();
        std::thread::sleep(quiet);
        (self.requests() - before) as f64 / started.elapsed().as_secs_f64()
    }
}

/// User and system CPU time this process has used, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes one rusage into the zeroed struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) != 0 {
            return 0.0;
        }
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// UDP datagrams dropped so far for a full receive buffer, machine-wide: the
/// `RcvbufErrors` column of the `Udp:` lines of /proc/net/snmp.
fn rcvbuf_drops() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/net/snmp") else {
        return 0;
    };
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Runs `ops` operations on `b.concurrency` workers; `op(i)` runs the i-th.
fn run_phase(
    net: &Net,
    name: &str,
    ops: usize,
    b: &DhtBench,
    progress: &(dyn Fn(&str) + Sync),
    op: impl Fn(usize) -> Outcome + Sync,
) -> Phase {
    let background_per_s = net.background(b.quiet);
    let before = net.requests();
    let cpu_before = cpu_seconds();
    let drops_before = rcvbuf_drops();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<(u64, Outcome)>> = Mutex::new(Vec::with_capacity(ops));
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..b.concurrency.clamp(1, ops.max(1)) {
            let (next, done, results, op) = (&next, &done, &results, &op);
            std::thread::Builder::new()
                .name(format!("bench-dht-{w}"))
                .spawn_scoped(s, move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= ops {
                        return;
                    }
                    let t = Instant::now();
                    let outcome = op(i);
                    let us = t.elapsed().as_micros() as u64;
                    results.lock().expect("results").push((us, outcome));
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if n % (ops / 10).max(1) == 0 || n == ops {
                        progress(&format!("{name}: {n}/{ops}"));
                    }
                })
                .expect("a bench thread");
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let requests = net.requests() - before;
    let cpu_seconds = cpu_seconds() - cpu_before;
    let rcvbuf_drops = rcvbuf_drops().saturating_sub(drops_before);
    let results = results.into_inner().expect("results");
    let mut phase = Phase {
        name: name.to_owned(),
        live_nodes: net.live().len(),
        ops,
        seconds,
        requests,
        background_per_s,
        cpu_seconds,
        rcvbuf_drops,
        ..Phase::default()
    };
    let mut us = Vec::with_capacity(results.len());
    for (t, outcome) in results {
        us.push(t);
        match outcome {
            Outcome::Right => phase.right += 1,
            Outcome::Wrong => phase.wrong += 1,
            Outcome::Failed(e) => {
                phase.failed += 1;
                phase.first_error.get_or_insert(e);
            }
        }
    }
    phase.latency = Latency::of(us);
    phase
}

/// Starts the network: node 0 alone, every later node bootstrapping from the first
/// `bootstrap` nodes; then every node looks itself up once, which fills the tables
/// of the nodes it meets.
fn start(b: &DhtBench, progress: &(dyn Fn(&str) + Sync)) -> Result<Net, String> {
    let key = NodeKey::generate();
    let network = Network {
        public: key.public_bytes(),
        secret: Some(key.secret_bytes()),
    };
    let mut nodes = Vec::with_capacity(b.nodes);
    let mut first: Vec<String> = Vec::new();
    for i in 0..b.nodes {
        let settings = DhtSettings {
            bind: Ipv4Addr::LOCALHOST,
            port: Some(0),
            bootstrap: first.clone(),
            public: false,
            server: true,
            republish: b.republish,
            rate: RATE,
            request_timeout: crate::dht::PRIVATE_REQUEST_TIMEOUT,
            network: Some(network.clone()),
        };
        let node = DhtNode::start(settings, 0).map_err(|e| format!("node {i}: {e}"))?;
        if first.len() < b.bootstrap {
            first.push(node.local_addr().to_string());
        }
        nodes.push(Some(node));
        if (i + 1) % 50 == 0 || i + 1 == b.nodes {
            progress(&format!("started {}/{} nodes", i + 1, b.nodes));
        }
    }
    let net = Net { nodes };
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..b.concurrency.clamp(1, b.nodes) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= b.nodes {
                    return;
                }
                #[allow(deprecated)] // the crate's synchronous API
                net.node(i).dht().bootstrapped();
            });
        }
    });
    Ok(net)
}

/// Stops and drops `victims`; returns how many of their UDP ports could be bound
/// again within 2 s.
fn kill(net: &mut Net, victims: &[usize]) -> usize {
    let dying: Vec<DhtNode> = victims
        .iter()
        .filter_map(|&i| net.nodes[i].take())
        .collect();
    let ports: Vec<u16> = dying.iter().map(|n| n.local_addr().port()).collect();
    // All at once: each waits for the puts its republishing thread has under way.
    std::thread::scope(|s| {
        for node in dying {
            s.spawn(move || {
                node.stop();
                drop(node);
            });
        }
    });
    let until = Instant::now() + Duration::from_secs(2);
    let mut closed = vec![false; ports.len()];
    while Instant::now() < until && closed.iter().any(|c| !c) {
        for (port, c) in ports.iter().zip(closed.iter_mut()) {
            if !*c {
                *c = UdpSocket::bind((Ipv4Addr::LOCALHOST, *port)).is_ok();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    closed.iter().filter(|c| **c).count()
}

fn read_phase(
    net: &Net,
    name: &str,
    keys: &[(String, Vec<u8>)],
    which: &[usize],
    readers: &[usize],
    b: &DhtBench,
    progress: &(dyn Fn(&str) + Sync),
) -> Phase {
    run_phase(net, name, which.len(), b, progress, |i| {
        let (key, value) = &keys[which[i]];
        match net.node(readers[i]).kv_get(key) {
            Ok(Some(read)) if &read.value == value => Outcome::Right,
            Ok(_) => Outcome::Wrong,
            Err(e) => Outcome::Failed(e.to_string()),
        }
    })
}

/// Stops every live node's republishing thread, all at once (each waits for the
/// puts it has under way).
fn stop_republishing(net: &Net) {
    std::thread::scope(|s| {
        for node in net.nodes.iter().flatten() {
            s.spawn(move || node.stop());
        }
    });
}

/// Picks a random live node for each operation, other than `not` where given.
fn pick(rng: &mut StdRng, live: &[usize], n: usize, not: Option<&[usize]>) -> Vec<usize> {
    (0..n)
        .map(|i| loop {
            let c = *live.choose(rng).expect("live nodes");
            if live.len() < 2 || not.is_none_or(|not| not[i] != c) {
                break c;
            }
        })
        .collect()
}

/// Runs every phase.
pub fn run(b: &DhtBench, progress: &(dyn Fn(&str) + Sync)) -> Result<DhtReport, String> {
    if b.nodes < 2 {
        return Err("a DHT of fewer than 2 nodes measures nothing".into());
    }
    let wall = Instant::now();
    let mut rng = StdRng::seed_from_u64(b.seed);
    let mut net = start(b, progress)?;
    let start_seconds = wall.elapsed().as_secs_f64();
    let mut tables: Vec<usize> = Vec::new();
    let mut estimates: Vec<usize> = Vec::new();
    for n in net.nodes.iter().flatten() {
        let (table, estimate) = n.size();
        tables.push(table);
        estimates.push(estimate);
    }
    tables.sort_unstable();
    estimates.sort_unstable();
    progress(&format!(
        "{} nodes up in {start_seconds:.1} s; routing tables {}..{} nodes (median {})",
        b.nodes,
        tables[0],
        tables[tables.len() - 1],
        tables[tables.len() / 2]
    ));

    let keys: Vec<(String, Vec<u8>)> = (0..b.keys)
        .map(|i| {
            let value = Alphanumeric.sample_string(&mut rng, b.value_size.max(1));
            (format!("bench-{}-{i}", b.seed), value.into_bytes())
        })
        .collect();
    let all: Vec<usize> = (0..b.keys).collect();
    let live = net.live();
    let writers = pick(&mut rng, &live, b.keys, None);
    let put = run_phase(&net, "put", b.keys, b, progress, |i| {
        let (key, value) = &keys[i];
        match net.node(writers[i]).kv_put(key, value, None) {
            Ok(_) => Outcome::Right,
            Err(e) => Outcome::Failed(e.to_string()),
        }
    });
    let readers = pick(&mut rng, &live, b.keys, Some(&writers));
    let get = read_phase(&net, "get", &keys, &all, &readers, b, progress);
    let askers = pick(&mut rng, &live, b.missing, None);
    let missing = run_phase(&net, "missing key", b.missing, b, progress, |i| {
        match net.node(askers[i]).kv_get(&format!("never-{}-{i}", b.seed)) {
            Ok(None) => Outcome::Right,
            Ok(Some(_)) => Outcome::Wrong,
            Err(e) => Outcome::Failed(e.to_string()),
        }
    });

    let mut waves = Vec::new();
    let to_kill = ((b.nodes as f64 * b.kill).round() as usize).min(b.nodes - 2);
    let mut killed_so_far = 0;
    for w in 0..b.waves {
        let quota = to_kill * (w + 1) / b.waves.max(1) - killed_so_far;
        let mut live = net.live();
        live.shuffle(&mut rng);
        let victims: Vec<usize> = live.into_iter().take(quota).collect();
        let sockets_closed = kill(&mut net, &victims);
        killed_so_far += victims.len();
        let live = net.live();
        let window = b.window();
        progress(&format!(
            "wave {}: {} nodes killed ({} sockets closed), {} alive; waiting {:.0} s for republication",
            w + 1,
            victims.len(),
            sockets_closed,
            live.len(),
            window.as_secs_f64()
        ));
        std::thread::sleep(window);
        let last = w + 1 == b.waves;
        let mut which = all.clone();
        if !last {
            which.shuffle(&mut rng);
            which.truncate(b.sample.min(b.keys));
        }
        if last {
            // The final read counts the lookups' own messages: republication, which
            // has had its window, stops first (the nodes keep answering).
            progress("stopping republication for the final read");
            stop_republishing(&net);
        }
        let readers = pick(&mut rng, &live, which.len(), None);
        let name = format!("get after wave {}", w + 1);
        let read = read_phase(&net, &name, &keys, &which, &readers, b, progress);
        waves.push(Wave {
            killed: victims.len(),
            live_after: live.len(),
            sockets_closed,
            waited_s: window.as_secs_f64(),
            read,
        });
    }
    let report = DhtReport {
        nodes: b.nodes,
        keys: b.keys,
        value_size: b.value_size,
        concurrency: b.concurrency,
        republish_s: b.republish.as_secs_f64(),
        seed: b.seed,
        start_seconds,
        table: [
            tables[0],
            tables[tables.len() / 2],
            tables[tables.len() - 1],
        ],
        size_estimate: estimates[estimates.len() / 2],
        put,
        get,
        missing,
        waves,
        wall_seconds: 0.0,
    };
    progress("stopping the nodes");
    stop_republishing(&net);
    drop(net);
    Ok(DhtReport {
        wall_seconds: wall.elapsed().as_secs_f64(),
        ..report
    })
}

impl DhtReport {
    pub fn json(&self) -> Value {
        json!({
            "nodes": self.nodes,
            "keys": self.keys,
            "value_size": self.value_size,
            "concurrency": self.concurrency,
            "republish_s": self.republish_s,
            "seed": self.seed,
            "start_seconds": self.start_seconds,
            "routing_table": { "min": self.table[0], "median": self.table[1], "max": self.table[2] },
            "size_estimate_median": self.size_estimate,
            "put": self.put.json(),
            "get": self.get.json(),
            "missing": self.missing.json(),
            "waves": self.waves.iter().map(|w| json!({
                "killed": w.killed,
                "live_after": w.live_after,
                "sockets_closed": w.sockets_closed,
                "waited_s": w.waited_s,
                "read": w.read.json(),
            })).collect::<Vec<_>>(),
            "wall_seconds": self.wall_seconds,
        })
    }

    pub fn text(&self) -> String {
        let mut s = format!(
            "DHT of {} nodes on 127.0.0.1 (one process), {} keys of {} bytes, {} at once, republish every {:.0} s, seed {}\n",
            self.nodes, self.keys, self.value_size, self.concurrency, self.republish_s, self.seed
        );
        s.push_str(&format!(
            "  started in {:.1} s; routing tables min {}, median {}, max {} nodes; size estimate (median) {}\n",
            self.start_seconds, self.table[0], self.table[1], self.table[2], self.size_estimate
        ));
        s.push_str(&self.put.text());
        s.push_str(&self.get.text());
        s.push_str(&self.missing.text());
        for (n, w) in self.waves.iter().enumerate() {
            s.push_str(&format!(
                "  wave {}: {} killed ({} UDP sockets closed), {} alive, {:.0} s for republication, then:\n",
                n + 1,
                w.killed,
                w.sockets_closed,
                w.live_after,
                w.waited_s
            ));
            s.push_str(&w.read.text());
        }
        s.push_str(&format!("  ({:.1} s of wall clock)\n", self.wall_seconds));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_rank_above() {
        let l = Latency::of((1..=100).collect());
        assert_eq!((l.p50, l.p99, l.max), (50, 99, 100));
        let one = Latency::of(vec![7]);
        assert_eq!((one.p50, one.p99, one.max), (7, 7, 7));
        assert_eq!(Latency::of(Vec::new()).max, 0);
    }

    #[test]
    fn net_messages_leave_out_the_background() {
        let p = Phase {
            ops: 10,
            requests: 1000,
            seconds: 2.0,
            background_per_s: 100.0,
            ..Phase::default()
        };
        assert_eq!(p.per_op(), 100.0);
        assert_eq!(p.per_op_net(), 80.0);
    }

    #[test]
    fn a_small_network_stores_reads_and_survives_a_wave() {
        let b = DhtBench {
            nodes: 12,
            keys: 16,
            missing: 3,
            kill: 0.25,
            waves: 1,
            concurrency: 16,
            republish: Duration::from_secs(1),
            quiet: Duration::from_millis(100),
            settle: Duration::from_millis(500),
            ..DhtBench::default()
        };
        let r = run(&b, &|_| {}).unwrap();
        assert_eq!(r.put.right, 16, "{}", r.text());
        assert_eq!(r.get.right, 16, "{}", r.text());
        assert_eq!(r.missing.right, 3, "{}", r.text());
        assert_eq!(r.waves[0].killed, 3);
        assert_eq!(r.waves[0].sockets_closed, 3, "{}", r.text());
        assert!(r.put.requests > 0);
    }
}
