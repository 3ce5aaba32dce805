//! Process-wide metrics in the Prometheus/OpenMetrics text format.
//!
//! One registry per process ([`global`]), filled by the code that does the work, and
//! read by [`encode`]: the text a `GET /metrics` answers. Every role (index, seed,
//! peer) counts into the same families; a process runs one role, so the `role` label
//! is constant within a process, and it is there so that scrapes of several nodes
//! aggregate cleanly. Nothing here knows a role's types: callers pass plain numbers and
//! `&'static str` labels from closed sets, so no label can grow without bound. The
//! HTTP interface counts its connections and requests under its own `role` values
//! (`index-http`, `seed-http`, `peer-http`), with its route as the `verb`.
//!
//! Every name starts with `p2pshare_`. Counters end in `_total` on the wire (the
//! family's `# TYPE` line names it without the suffix, as OpenMetrics has it); a unit,
//! when there is one, is part of the name (`_bytes`, `_seconds`).
//!
//! **Connections** (counted by `net::server`, beside its `ServerStats`):
//!
//! | family | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `p2pshare_connections_accepted_total` | counter | `role` | connections accepted, including those refused at once for a cap |
//! | `p2pshare_connections_refused_total` | counter | `role`, `reason` | connections closed with `err\|busy`: `busy` (the connection cap or the address's share), `memory` (the request-memory budget was spent) |
//! | `p2pshare_connections_live` | gauge | `role` | connections being served now |
//!
//! **Requests** (`net::server`, where a decoded request is handed to its service and
//! answered):
//!
//! | family | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `p2pshare_requests_total` | counter | `role`, `verb`, `outcome` | requests answered. `verb` is a verb of the command table (`protocol::commands`), `classic` for a request in the classic dialect, or `other` for a line the codec refused before any handler saw it (an unknown verb, a wrong field count, an over-long line); `outcome` is `err` when the answer is a refusal (`err\|...`, or a classic `Error: ...`), `ok` otherwise |
//!
//! **Bytes and downloads** (`net::server` for the bytes served; `peer::download` for
//! the rest):
//!
//! | family | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `p2pshare_served_bytes_total` | counter | | file bytes sent to downloaders (whole `data` replies and classic downloads, counted once sent) |
//! | `p2pshare_downloaded_bytes_total` | counter | | file bytes downloaded and kept: verified pieces, and a classic holder's bytes as they are written |
//! | `p2pshare_downloads_active` | gauge | | downloads in progress |
//! | `p2pshare_downloads_completed_total` | counter | | downloads that succeeded (including those that found the file already in place) |
//! | `p2pshare_downloads_failed_total` | counter | | downloads that ended in an error (no holder, every source failed, cancelled, ...) |
//! | `p2pshare_pieces_verified_total` | counter | | pieces whose hash matched the piece list, first copies only |
//! | `p2pshare_pieces_rejected_total` | counter | | pieces whose hash did not match |
//! | `p2pshare_source_bans_total` | counter | | holders banned for the rest of a download (bad pieces, or a piece list that does not match its content id) |
//!
//! **Uploads** (`peer::upload`: files pushed to a peer started with `--allow-upload`):
//!
//! | family | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `p2pshare_uploads_accepted_total` | counter | | uploads that succeeded: proven and placed, or found in the folder already |
//! | `p2pshare_uploads_refused_total` | counter | `reason` | uploads refused or abandoned, by why: `not-allowed`, `bad-name`, `extension`, `too-large`, `no-space`, `busy`, `exists`, `mismatch`, `bad-request`, `incomplete`, `internal` |
//! | `p2pshare_uploads_received_bytes_total` | counter | | bytes of the uploads placed in the folder |
//!
//! **Overlay** (`overlay::runtime`, from each core's status, once a second; a seed's
//! members are its registrations):
//!
//! | family | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `p2pshare_overlay_members` | gauge | `role`, `state` | members this node knows, by `state`: `alive`, `suspect` (a peer: suspected by its probes; a seed: a death report pending), `dead` (dead or left, still remembered) |
//! | `p2pshare_broadcasts_sent_total` | counter | | full broadcast copies sent to neighbours (eager pushes and answers to grafts) |
//! | `p2pshare_broadcasts_received_total` | counter | | full broadcast copies received, first copies and duplicates |
//! | `p2pshare_broadcasts_duplicate_total` | counter | | copies received of a broadcast already seen |
//!
//! **Index** (`index::service`):
//!
//! | family | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `p2pshare_index_peers` | gauge | | peers registered (set by the lease sweep, every second at most) |
//! | `p2pshare_index_files` | gauge | | distinct file names held by at least one peer |
//! | `p2pshare_index_entries` | gauge | | (file, holder) entries |
//! | `p2pshare_index_publish_seconds` | histogram | | time to answer a `publish` or `sync` batch: quotas, the store, and the wait for the database commit |
//! | `p2pshare_index_search_seconds` | histogram | | time to answer a `search` |
//!
//! The registry lives for the whole process: tests that read it compare before and
//! after, since tests run in parallel threads of one process.

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::sync::OnceLock;
use std::time::Instant;

/// The `Content-Type` of what [`encode`] returns.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The role of the node counting (`index`, `seed`, `peer`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabels {
    pub role: &'static str,
}

/// Why a connection was refused.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub role: &'static str,
    /// `busy` or `memory`.
    pub reason: &'static str,
}

/// One request's verb and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub role: &'static str,
    pub verb: &'static str,
    /// `ok` or `err`.
    pub outcome: &'static str,
}

/// Why an upload was refused.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// Overlay members in one state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MemberLabels {
    pub role: &'static str,
    /// `alive`, `suspect` or `dead`.
    pub state: &'static str,
}

/// Why a connection was refused (the `reason` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The connection cap, or the address's share of it.
    Busy,
    /// The memory budget for requests in flight was spent.
    Memory,
}

/// The running totals of an overlay core's broadcast counters, as last turned into
/// counter increments (see [`Metrics::broadcasts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BroadcastTotals {
    pub sent: u64,
    pub received: u64,
    pub duplicate: u64,
}

/// Every metric of the process, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub connections_accepted: Family<RoleLabels, Counter>,
    pub connections_refused: Family<RefusedLabels, Counter>,
    pub connections_live: Family<RoleLabels, Gauge>,
    pub requests: Family<RequestLabels, Counter>,
    pub served_bytes: Counter,
    pub downloaded_bytes: Counter,
    pub downloads_active: Gauge,
    pub downloads_completed: Counter,
    pub downloads_failed: Counter,
    pub pieces_verified: Counter,
    pub pieces_rejected: Counter,
    pub source_bans: Counter,
    pub uploads_accepted: Counter,
    pub uploads_refused: Family<ReasonLabels, Counter>,
    pub uploads_received_bytes: Counter,
    pub overlay_members: Family<MemberLabels, Gauge>,
    pub broadcasts_sent: Counter,
    pub broadcasts_received: Counter,
    pub broadcasts_duplicate: Counter,
    pub index_peers: Gauge,
    pub index_files: Gauge,
    pub index_entries: Gauge,
    pub index_publish_seconds: Histogram,
    pub index_search_seconds: Histogram,
    pub dht_requests: Counter,
    pub dht_requests_limited: Counter,
    pub dht_republished: Counter,
    pub dht_items_held: Gauge,
}

/// A labelled family that is described (`# HELP`, `# TYPE`) even before its first
/// series exists, so that a scrape always lists every family.
#[derive(Debug)]
struct Described<M>(M);

impl<M: EncodeMetric> EncodeMetric for Described<M> {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }
}

/// Latency buckets: 50 µs doubling to about 13 s.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.000_05, 2.0, 19)
}

impl Metrics {
    fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            connections_accepted: Family::default(),
            connections_refused: Family::default(),
            connections_live: Family::default(),
            requests: Family::default(),
            served_bytes: Counter::default(),
            downloaded_bytes: Counter::default(),
            downloads_active: Gauge::default(),
            downloads_completed: Counter::default(),
            downloads_failed: Counter::default(),
            pieces_verified: Counter::default(),
            pieces_rejected: Counter::default(),
            source_bans: Counter::default(),
            uploads_accepted: Counter::default(),
            uploads_refused: Family::default(),
            uploads_received_bytes: Counter::default(),
            overlay_members: Family::default(),
            broadcasts_sent: Counter::default(),
            broadcasts_received: Counter::default(),
            broadcasts_duplicate: Counter::default(),
            index_peers: Gauge::default(),
            index_files: Gauge::default(),
            index_entries: Gauge::default(),
            index_publish_seconds: Histogram::new(latency_buckets()),
            dht_requests: Counter::default(),
            dht_requests_limited: Counter::default(),
            dht_republished: Counter::default(),
            dht_items_held: Gauge::default(),
            index_search_seconds: Histogram::new(latency_buckets()),
        };
        let mut r = Registry::with_prefix("p2pshare");
        r.register(
            "connections_accepted",
            "Connections accepted",
            Described(m.connections_accepted.clone()),
        );
        r.register(
            "connections_refused",
            "Connections refused with err|busy, by reason (busy: a connection cap; memory: the request-memory budget)",
            Described(m.connections_refused.clone()),
        );
        r.register(
            "connections_live",
            "Connections being served now",
            Described(m.connections_live.clone()),
        );
        r.register(
            "requests",
            "Requests answered, by verb (other: refused by the codec) and outcome (err: refused)",
            Described(m.requests.clone()),
        );
        r.register_with_unit(
            "served",
            "File bytes sent to downloaders",
            Unit::Bytes,
            m.served_bytes.clone(),
        );
        r.register_with_unit(
            "downloaded",
            "File bytes downloaded and kept (verified pieces, classic downloads)",
            Unit::Bytes,
            m.downloaded_bytes.clone(),
        );
        r.register(
            "downloads_active",
            "Downloads in progress",
            m.downloads_active.clone(),
        );
        r.register(
            "downloads_completed",
            "Downloads that succeeded",
            m.downloads_completed.clone(),
        );
        r.register(
            "downloads_failed",
            "Downloads that ended in an error",
            m.downloads_failed.clone(),
        );
        r.register(
            "pieces_verified",
            "Downloaded pieces whose hash matched the piece list",
            m.pieces_verified.clone(),
        );
        r.register(
            "pieces_rejected",
            "Downloaded pieces whose hash did not match the piece list",
            m.pieces_rejected.clone(),
        );
        r.register(
            "source_bans",
            "Holders banned for the rest of a download",
            m.source_bans.clone(),
        );
        r.register(
            "uploads_accepted",
            "Uploads that succeeded (placed, or in the folder already)",
            m.uploads_accepted.clone(),
        );
        r.register(
            "uploads_refused",
            "Uploads refused or abandoned, by reason",
            Described(m.uploads_refused.clone()),
        );
        r.register_with_unit(
            "uploads_received",
            "Bytes of the uploads placed in the folder",
            Unit::Bytes,
            m.uploads_received_bytes.clone(),
        );
        r.register(
            "overlay_members",
            "Overlay members known, by state (alive, suspect, dead)",
            Described(m.overlay_members.clone()),
        );
        r.register(
            "broadcasts_sent",
            "Full broadcast copies sent to neighbours",
            m.broadcasts_sent.clone(),
        );
        r.register(
            "broadcasts_received",
            "Full broadcast copies received, first copies and duplicates",
            m.broadcasts_received.clone(),
        );
        r.register(
            "broadcasts_duplicate",
            "Broadcast copies received that were already seen",
            m.broadcasts_duplicate.clone(),
        );
        r.register("index_peers", "Peers registered", m.index_peers.clone());
        r.register(
            "index_files",
            "Distinct file names held by at least one peer",
            m.index_files.clone(),
        );
        r.register(
            "index_entries",
            "(file, holder) entries",
            m.index_entries.clone(),
        );
        r.register_with_unit(
            "index_publish",
            "Time to answer a publish or sync batch",
            Unit::Seconds,
            m.index_publish_seconds.clone(),
        );
        r.register_with_unit(
            "index_search",
            "Time to answer a search",
            Unit::Seconds,
            m.index_search_seconds.clone(),
        );
        r.register(
            "dht_requests",
            "DHT queries received (answered or not)",
            m.dht_requests.clone(),
        );
        r.register(
            "dht_requests_limited",
            "DHT queries left unanswered: their address was over --dht-rate",
            m.dht_requests_limited.clone(),
        );
        r.register(
            "dht_republished",
            "Items, chunks and announces put again on the DHT",
            m.dht_republished.clone(),
        );
        r.register(
            "dht_items_held",
            "DHT items kept to put again (mutable and immutable)",
            m.dht_items_held.clone(),
        );
        m.registry = r;
        m
    }

    /// A connection was accepted.
    pub fn connection_accepted(&self, role: &'static str) {
        self.connections_accepted
            .get_or_create(&RoleLabels { role })
            .inc();
    }

    /// A connection was refused.
    pub fn connection_refused(&self, role: &'static str, why: Refused) {
        let reason = match why {
            Refused::Busy => "busy",
            Refused::Memory => "memory",
        };
        self.connections_refused
            .get_or_create(&RefusedLabels { role, reason })
            .inc();
    }

    /// A connection is served from now on (`+1`), or no longer (`-1`).
    pub fn connections_live_add(&self, role: &'static str, delta: i64) {
        self.connections_live
            .get_or_create(&RoleLabels { role })
            .inc_by(delta);
    }

    /// A request was answered; `ok` unless the answer refused it.
    pub fn request(&self, role: &'static str, verb: &'static str, ok: bool) {
        let outcome = if ok { "ok" } else { "err" };
        self.requests
            .get_or_create(&RequestLabels {
                role,
                verb,
                outcome,
            })
            .inc();
    }

    /// A download begins: it counts as active until the returned guard ends it, and as
    /// failed if the guard is dropped without [`ActiveDownload::end`].
    pub fn download_started(&self) -> ActiveDownload<'_> {
        self.downloads_active.inc();
        ActiveDownload {
            metrics: self,
            ended: false,
        }
    }

    /// An upload succeeded, placing `bytes` in the folder (0: it was there already).
    pub fn upload_accepted(&self, bytes: u64) {
        self.uploads_accepted.inc();
        self.uploads_received_bytes.inc_by(bytes);
    }

    /// An upload was refused or abandoned; `reason` is from a closed set.
    pub fn upload_refused(&self, reason: &'static str) {
        self.uploads_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Sets the member gauges of an overlay node.
    pub fn overlay_members(&self, role: &'static str, alive: usize, suspect: usize, dead: usize) {
        for (state, n) in [("alive", alive), ("suspect", suspect), ("dead", dead)] {
            self.overlay_members
                .get_or_create(&MemberLabels { role, state })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Adds what an overlay core counted since `last` to the broadcast counters, and
    /// remembers `now` in `last`. A core's totals only grow; one that started over
    /// (fewer than `last`) counts from zero.
    pub fn broadcasts(&self, now: BroadcastTotals, last: &mut BroadcastTotals) {
        let grew = |now: u64, last: u64| if now >= last { now - last } else { now };
        self.broadcasts_sent.inc_by(grew(now.sent, last.sent));
        self.broadcasts_received
            .inc_by(grew(now.received, last.received));
        self.broadcasts_duplicate
            .inc_by(grew(now.duplicate, last.duplicate));
        *last = now;
    }

    /// Sets the index's size gauges.
    pub fn index_size(&self, peers: usize, files: usize, entries: usize) {
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        self.index_peers.set(n(peers));
        self.index_files.set(n(files));
        self.index_entries.set(n(entries));
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// A download in progress (see [`Metrics::download_started`]).
#[must_use = "a download counts as active until its guard ends"]
pub struct ActiveDownload<'a> {
    metrics: &'a Metrics,
    ended: bool,
}

impl ActiveDownload<'_> {
    /// Counts the download as completed or failed by its result, and passes it on.
    pub fn end<T, E>(mut self, result: Result<T, E>) -> Result<T, E> {
        self.ended = true;
        match result {
            Ok(_) => self.metrics.downloads_completed.inc(),
            Err(_) => self.metrics.downloads_failed.inc(),
        };
        result
    }
}

impl Drop for ActiveDownload<'_> {
    fn drop(&mut self) {
        self.metrics.downloads_active.dec();
        if !self.ended {
            self.metrics.downloads_failed.inc();
        }
    }
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// The OpenMetrics text exposition of every metric of the process (its type is
/// [`CONTENT_TYPE`]), ending with `# EOF`.
pub fn encode() -> String {
    global().encode()
}

/// Runs `f` and records how long it took in `histogram`, in seconds.
pub fn timed<T>(histogram: &Histogram, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    histogram.observe(started.elapsed().as_secs_f64());
    out
}

/// The value of one series in an exposition (`name{labels}` exactly as encoded), or 0
/// when it is not there yet.
#[cfg(test)]
pub(crate) fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{series}: value {v:?}"))
        })
        .unwrap_or(0.0)
}

/// The value of one series now (see [`sample`]).
#[cfg(test)]
pub(crate) fn value(series: &str) -> f64 {
    sample(&encode(), series)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every family, with its type: what a scrape must find even before anything was
    /// counted.
    const FAMILIES: &[(&str, &str)] = &[
        ("p2pshare_connections_accepted", "counter"),
        ("p2pshare_connections_refused", "counter"),
        ("p2pshare_connections_live", "gauge"),
        ("p2pshare_requests", "counter"),
        ("p2pshare_served_bytes", "counter"),
        ("p2pshare_downloaded_bytes", "counter"),
        ("p2pshare_downloads_active", "gauge"),
        ("p2pshare_downloads_completed", "counter"),
        ("p2pshare_downloads_failed", "counter"),
        ("p2pshare_pieces_verified", "counter"),
        ("p2pshare_pieces_rejected", "counter"),
        ("p2pshare_source_bans", "counter"),
        ("p2pshare_uploads_accepted", "counter"),
        ("p2pshare_uploads_refused", "counter"),
        ("p2pshare_uploads_received_bytes", "counter"),
        ("p2pshare_overlay_members", "gauge"),
        ("p2pshare_broadcasts_sent", "counter"),
        ("p2pshare_broadcasts_received", "counter"),
        ("p2pshare_broadcasts_duplicate", "counter"),
        ("p2pshare_index_peers", "gauge"),
        ("p2pshare_index_files", "gauge"),
        ("p2pshare_index_entries", "gauge"),
        ("p2pshare_index_publish_seconds", "histogram"),
        ("p2pshare_index_search_seconds", "histogram"),
        ("p2pshare_dht_requests", "counter"),
        ("p2pshare_dht_requests_limited", "counter"),
        ("p2pshare_dht_republished", "counter"),
        ("p2pshare_dht_items_held", "gauge"),
    ];

    #[test]
    fn every_family_has_help_and_type_lines_and_the_text_ends_with_eof() {
        let text = encode();
        for (name, kind) in FAMILIES {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("# HELP {name} ")) && l.len() > 10),
                "no HELP for {name}:\n{text}"
            );
            assert!(
                text.lines().any(|l| l == format!("# TYPE {name} {kind}")),
                "no TYPE {kind} for {name}:\n{text}"
            );
        }
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(types, FAMILIES.len(), "a family the table misses:\n{text}");
        assert!(text.ends_with("# EOF\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("p2pshare_"), "unprefixed: {line}");
        }
    }

    #[test]
    fn counters_move_under_their_labels() {
        let m = global();
        let series = r#"p2pshare_requests_total{role="seed",verb="ping",outcome="err"}"#;
        let before = value(series);
        m.request("seed", "ping", false);
        m.request("seed", "ping", false);
        assert_eq!(value(series), before + 2.0);

        let refused = r#"p2pshare_connections_refused_total{role="seed",reason="memory"}"#;
        let before = value(refused);
        m.connection_refused("seed", Refused::Memory);
        assert_eq!(value(refused), before + 1.0);
    }

    #[test]
    fn a_download_guard_counts_the_outcome_and_a_dropped_one_fails() {
        let m = global();
        let (completed, failed) = (
            "p2pshare_downloads_completed_total",
            "p2pshare_downloads_failed_total",
        );
        let (c0, f0) = (value(completed), value(failed));
        let ok: Result<(), ()> = m.download_started().end(Ok(()));
        assert!(ok.is_ok());
        assert!(value(completed) > c0);
        let f1 = value(failed);
        drop(m.download_started());
        let f2 = value(failed);
        assert!(f2 > f1 && f1 >= f0, "{f0} {f1} {f2}");
    }

    #[test]
    fn broadcast_totals_become_increments() {
        let m = global();
        let sent = "p2pshare_broadcasts_sent_total";
        let before = value(sent);
        let mut last = BroadcastTotals::default();
        let at = |sent| BroadcastTotals {
            sent,
            received: 0,
            duplicate: 0,
        };
        m.broadcasts(at(5), &mut last);
        m.broadcasts(at(7), &mut last);
        assert_eq!(last, at(7));
        // Other tests' cores may count too: at least ours.
        assert!(value(sent) >= before + 7.0);
    }

    #[test]
    fn a_histogram_counts_what_it_times() {
        let h = Histogram::new(latency_buckets());
        let mut r = Registry::default();
        r.register_with_unit("t", "t", Unit::Seconds, h.clone());
        assert_eq!(timed(&h, || 42), 42);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        assert_eq!(sample(&text, "t_seconds_count"), 1.0);
        assert_eq!(sample(&text, r#"t_seconds_bucket{le="+Inf"}"#), 1.0);
        assert_eq!(sample(&text, "absent"), 0.0);
    }
}
