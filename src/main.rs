//! The `p2pshare` binary: parse the command line, start logging, run one mode, and
//! turn the result into an exit code. Everything else lives in the library.

use clap::Parser;
use p2pshare::bench::index_load;
use p2pshare::cli::{
    BenchCommand, BenchIndexArgs, BenchOverlayArgs, Cli, Command, GetArgs, IndexArgs, IndexFlags,
    LivenessFlags, LogFlags, MembersArgs, PeerArgs, SayArgs, SearchArgs, SeedArgs, SeedListFlags,
    ServerFlags, StatusArgs,
};
use p2pshare::config::{read_addr_list, NodeAddr};
use p2pshare::index::service::{IndexConfig, IndexService};
use p2pshare::net::client::Client;
use p2pshare::net::rate::TokenBucket;
use p2pshare::net::server::{self, ServerConfig, ServerStats};
use p2pshare::net::Timeouts;
use p2pshare::output::{self, LogWriter};
use p2pshare::overlay::runtime::{self, CoreSetup, EventLog, Identity, OverlayHandle, SeedService};
use p2pshare::overlay::seed::SeedNode;
use p2pshare::overlay::{wire, Liveness, OverlayConfig, OverlayEvent, SeedConfig};
use p2pshare::peer::console::{self, fmt_bytes, BarProgress};
use p2pshare::peer::download::{
    self, DownloadError, DownloadRequest, KeptNotes, Outcome, Progress,
};
use p2pshare::peer::pool::IndexPool;
use p2pshare::peer::watch::WatchConfig;
use p2pshare::peer::OverlaySettings;
use p2pshare::peer::{Peer, PeerConfig};
use p2pshare::protocol::commands::Role;
use p2pshare::protocol::hash::Sha1Digest;
use p2pshare::protocol::name::{FileName, PeerId};
use p2pshare::signals::{self, Signal};
use serde_json::json;
use std::net::TcpListener;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// A failure that ends the program, with the exit code it maps to.
struct Failure {
    message: String,
    code: u8,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure {
            message: e.to_string(),
            code: 1,
        }
    }
}

fn init_logging(default: &str) {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format_timestamp_millis()
        .target(env_logger::Target::Pipe(Box::new(LogWriter::default())))
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(match &cli.command {
        Command::Peer(a) if !a.no_console => console::DEFAULT_LOG_FILTER,
        Command::Index(_) | Command::Peer(_) | Command::Seed(_) => "info",
        _ => "warn",
    });
    let result = match cli.command {
        Command::Index(a) => run_index(a),
        Command::Seed(a) => run_seed(a),
        Command::Peer(a) => run_peer(*a),
        Command::Say(a) => run_say(a),
        Command::Members(a) => run_members(a),
        Command::Search(a) => run_search(a),
        Command::Get(a) => run_get(a),
        Command::Status(a) => run_status(a),
        Command::Bench(BenchCommand::Index(a)) => run_bench_index(a),
        Command::Bench(BenchCommand::Overlay(a)) => run_bench_overlay(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("p2pshare: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

fn server_config(flags: &ServerFlags) -> ServerConfig {
    ServerConfig {
        max_connections: flags.max_connections as usize,
        read_timeout: flags.idle_timeout,
        request_memory: flags.request_memory as usize,
        ..ServerConfig::default()
    }
}

fn run_index(a: IndexArgs) -> Result<(), Failure> {
    // The id goes into replies as a field: the naming rules keep it framable.
    PeerId::parse(&a.id).map_err(|e| usage(format!("--id '{}': {e}", a.id)))?;
    for (flag, lease) in [("--lease", a.lease), ("--classic-lease", a.classic_lease)] {
        if lease < std::time::Duration::from_secs(1) {
            return Err(usage(format!(
                "{flag} must be at least 1s (peers are told it in whole seconds)"
            )));
        }
    }
    let signals = signals::take_over()?;
    let listener =
        TcpListener::bind(a.listen).map_err(|e| format!("cannot listen on {}: {e}", a.listen))?;
    let stats = Arc::new(ServerStats::default());
    let config = IndexConfig {
        lease: a.lease,
        classic_lease: a.classic_lease,
        ..IndexConfig::default()
    };
    let mut service = IndexService::new(a.id, config, stats.clone());
    if let Some(log) = event_log(&a.log)? {
        service = service.with_event_log(log);
    }
    if a.db.as_os_str() != ":memory:" {
        let (with_db, peers, files) = service.open_database(&a.db)?;
        service = with_db;
        log::info!(
            "index database {}: restored {peers} peers and {files} files",
            a.db.display()
        );
    }
    let service = Arc::new(service);
    service.start_sweeper()?;
    let handle = server::spawn(listener, server_config(&a.server), service, stats)?;
    output::say(format!(
        "p2pshare index listening on {}",
        handle.local_addr()
    ));
    let sig = signals.recv().unwrap_or(Signal::Terminate);
    log::info!("{sig:?}: shutting down");
    handle.shutdown();
    Ok(())
}

fn timeouts(flags: &IndexFlags) -> Timeouts {
    Timeouts {
        connect: flags.connect_timeout,
        io: flags.io_timeout,
    }
}

/// The index servers to use: --index flags, else config/index.txt, else localhost.
fn index_addrs(flags: &IndexFlags) -> Result<Vec<NodeAddr>, Failure> {
    if !flags.indexes.is_empty() {
        return Ok(flags.indexes.clone());
    }
    match read_addr_list(Path::new("config/index.txt"))? {
        Some(list) if !list.is_empty() => Ok(list),
        _ => Ok(vec![NodeAddr::parse("127.0.0.1:1024")?]),
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: 2,
    }
}

fn event_log(flags: &LogFlags) -> Result<Option<Arc<EventLog>>, Failure> {
    match &flags.log_file {
        None => Ok(None),
        Some(p) => EventLog::open(p)
            .map(|l| Some(Arc::new(l)))
            .map_err(|e| format!("--log-file {}: {e}", p.display()).into()),
    }
}

/// The seeds to use: --seed flags, else the --seeds file (which must exist when
/// named), else config/seeds.txt when it exists, else none.
fn seed_addrs(flags: &SeedListFlags) -> Result<Vec<NodeAddr>, Failure> {
    if !flags.seeds.is_empty() {
        return Ok(flags.seeds.clone());
    }
    match &flags.seeds_file {
        Some(path) => match read_addr_list(path)? {
            Some(list) => Ok(list),
            None => Err(format!("--seeds {}: no such file", path.display()).into()),
        },
        None => Ok(read_addr_list(Path::new("config/seeds.txt"))?.unwrap_or_default()),
    }
}

fn overlay_config(f: &LivenessFlags) -> Result<OverlayConfig, Failure> {
    let mut c = match f.liveness.as_str() {
        "classic" => OverlayConfig::classic(),
        _ => OverlayConfig::default(),
    };
    if let Some(d) = f.probe_interval {
        c.probe_round = d;
    }
    if let Some(d) = f.probe_timeout {
        c.probe_timeout = d;
    }
    if let Some(n) = f.indirect_probes {
        c.indirect_probes = n as usize;
    }
    if let Some(d) = f.suspicion_timeout {
        c.suspicion_timeout = d;
    }
    match (f.dead_after_misses, &mut c.liveness) {
        (Some(n), Liveness::Classic { misses }) => *misses = n,
        (Some(_), Liveness::Swim) => {
            return Err(usage("--dead-after-misses goes with --liveness classic"))
        }
        _ => {}
    }
    if c.probe_timeout >= c.probe_round.max(c.suspicion_timeout) {
        return Err(usage(format!(
            "--probe-timeout ({:?}) must be shorter than the probe interval and the suspicion timeout",
            c.probe_timeout
        )));
    }
    Ok(c)
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "seed".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn run_seed(a: SeedArgs) -> Result<(), Failure> {
    let refresh = OverlayConfig::default().seed_refresh;
    if a.forget_after <= refresh {
        return Err(usage(format!(
            "--forget-after must be longer than {}s: peers register again every {}s",
            refresh.as_secs(),
            refresh.as_secs()
        )));
    }
    let signals = signals::take_over()?;
    let seeds = seed_addrs(&a.seeds)?;
    let log = event_log(&a.log)?;
    let listener =
        TcpListener::bind(a.listen).map_err(|e| format!("cannot listen on {}: {e}", a.listen))?;
    let port = listener.local_addr()?.port();
    let id_text =
        a.id.clone()
            .unwrap_or_else(|| format!("{}:{port}", hostname()));
    let id = PeerId::parse(&id_text).map_err(|e| usage(format!("seed id '{id_text}': {e}")))?;
    let stats = Arc::new(ServerStats::default());
    let (handle, inbox) = OverlayHandle::channel();
    let service = SeedService {
        id: id.clone(),
        overlay: handle.clone(),
        stats: stats.clone(),
        clock: p2pshare::clock::Clock::new(),
    };
    let server = server::spawn(listener, server_config(&a.server), Arc::new(service), stats)?;
    let node = SeedNode::new(
        id.clone(),
        seeds.len(),
        SeedConfig {
            forget_after: a.forget_after,
            sync_interval: a.sync_interval,
            list_cap: a.list_cap as usize,
            ..SeedConfig::default()
        },
        runtime::random_seed(),
        runtime::random_seed(),
    );
    let log_seeds = seeds.clone();
    let sink: runtime::EventSink = Box::new(move |ev: OverlayEvent| {
        if let Some(l) = &log {
            runtime::log_event(l, &ev, &log_seeds);
        }
        match &ev {
            OverlayEvent::Joined { id, addr } => log::info!("{id} at {addr} joined"),
            OverlayEvent::Dead { id, by } => log::info!("{id} is dead (confirmed by {by})"),
            OverlayEvent::Left { id } => log::info!("{id} left"),
            OverlayEvent::Forgotten { id } => {
                log::info!("{id} forgotten: not seen nor vouched for in time")
            }
            _ => {}
        }
    });
    runtime::spawn_seed(
        node,
        CoreSetup {
            me: Identity {
                role: Role::Seed,
                id: id.clone(),
                port,
            },
            seeds: seeds.clone(),
            timeouts: Timeouts::default(),
            inbox,
            handle: handle.clone(),
            sink,
        },
    )?;
    output::say(format!(
        "p2pshare seed '{id}' listening on {}, seeds {}",
        server.local_addr(),
        if seeds.is_empty() {
            "none".to_owned()
        } else {
            seeds
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    let sig = signals.recv().unwrap_or(Signal::Terminate);
    log::info!("{sig:?}: shutting down");
    handle.leave();
    server.shutdown();
    Ok(())
}

fn run_say(a: SayArgs) -> Result<(), Failure> {
    let text = a.text.join(" ");
    if text.len() > wire::MAX_TEXT {
        return Err(usage(format!("the text is over {} bytes", wire::MAX_TEXT)));
    }
    let t = Timeouts {
        connect: a.timeout,
        io: a.timeout,
    };
    let fields = Client::connect(a.peer.as_str(), &t)
        .and_then(|mut c| c.call(&["say", &wire::escape_text(&text)]))?;
    let id = fields.first().cloned().unwrap_or_default();
    if a.json {
        println!("{}", json!({ "peer": a.peer.as_str(), "id": id }));
    } else {
        println!("sent through {} as {id}", a.peer);
    }
    Ok(())
}

fn run_members(a: MembersArgs) -> Result<(), Failure> {
    let t = Timeouts {
        connect: a.timeout,
        io: a.timeout,
    };
    let (_, rows) = Client::connect(a.addr.as_str(), &t).and_then(|mut c| {
        c.send(b"members\n", "members")?;
        c.read_rows("members", 7)
    })?;
    if a.json {
        let list: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "id": r[0],
                    "host": r[1],
                    "port": r[2].parse::<u16>().ok(),
                    "state": r[3],
                    "incarnation": r[4].parse::<u64>().ok(),
                    "view": r[5],
                    "rtt_ms": r[6].parse::<u64>().ok(),
                })
            })
            .collect();
        println!("{}", json!({ "address": a.addr.as_str(), "members": list }));
        return Ok(());
    }
    if rows.is_empty() {
        println!("{} knows no members", a.addr);
    }
    for r in &rows {
        let addr = if r[1].contains(':') {
            format!("[{}]:{}", r[1], r[2])
        } else {
            format!("{}:{}", r[1], r[2])
        };
        let rtt = if r[6] == "-" {
            String::new()
        } else {
            format!("rtt {} ms", r[6])
        };
        println!("{:<24} {addr:<24} {:<8} {:<8} {rtt}", r[0], r[3], r[5]);
    }
    Ok(())
}

fn run_peer(a: PeerArgs) -> Result<(), Failure> {
    let dir = a
        .dir
        .canonicalize()
        .map_err(|e| format!("shared folder {}: {e}", a.dir.display()))?;
    let id_text = match &a.id {
        Some(id) => id.clone(),
        None => dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("peer")
            .to_owned(),
    };
    let id = PeerId::parse(&id_text)
        .map_err(|e| format!("peer id '{id_text}': {e} (choose one with --id)"))?;
    let config = PeerConfig {
        state_dir: a.state_dir.clone().unwrap_or_else(|| dir.join(".p2pshare")),
        dir: dir.clone(),
        listen: a.listen,
        indexes: index_addrs(&a.index)?,
        id: id.clone(),
        server: server_config(&a.server),
        timeouts: timeouts(&a.index),
        watch: WatchConfig {
            settle: a.settle,
            rescan_every: a.rescan_interval,
        },
        max_sources: a.transfer.max_sources as usize,
        upload_limit: a.max_upload_rate.map(|r| Arc::new(TokenBucket::new(r))),
        download_limit: a
            .transfer
            .max_download_rate
            .map(|r| Arc::new(TokenBucket::new(r))),
        overlay: OverlaySettings {
            seeds: seed_addrs(&a.seeds)?,
            config: overlay_config(&a.liveness)?,
            log: event_log(&a.log)?,
        },
    };
    let indexes: Vec<String> = config.indexes.iter().map(|i| i.to_string()).collect();
    let seeds: Vec<String> = config.overlay.seeds.iter().map(|s| s.to_string()).collect();
    // SIGINT and SIGTERM become messages (before any other thread starts, so every
    // thread inherits the mask). Without a console they make the peer leave its
    // indexes cleanly; with one, Ctrl-C cancels a running download.
    let signals = signals::take_over()?;
    let peer = Peer::start(config)?;
    output::say(format!(
        "p2pshare peer '{id}' listening on {}, sharing {}, index {}, seeds {}",
        peer.local_addr(),
        dir.display(),
        indexes.join(", "),
        if seeds.is_empty() {
            "none".to_owned()
        } else {
            seeds.join(", ")
        }
    ));
    if a.no_console {
        let events = peer.events().clone();
        loop {
            crossbeam_channel::select! {
                recv(events) -> ev => match ev {
                    Ok(ev) => {
                        if let Some(text) = console::describe(&ev, &peer.config().overlay.seeds) {
                            output::say(text);
                        }
                    }
                    Err(_) => break,
                },
                recv(signals) -> sig => {
                    output::say(format!("{:?}: leaving the network", sig.unwrap_or(Signal::Terminate)));
                    break;
                }
            }
        }
    } else {
        console::run(&peer, signals);
    }
    peer.shutdown();
    Ok(())
}

fn run_search(a: SearchArgs) -> Result<(), Failure> {
    let pool = IndexPool::new(index_addrs(&a.index)?, timeouts(&a.index));
    let words = a.words.join(" ");
    let (found, more) = pool.search(&words, a.limit as usize)?;
    if a.json {
        let rows: Vec<_> = found
            .iter()
            .map(|f| {
                json!({
                    "name": f.name,
                    "size": f.size,
                    "id": f.id.map(|d| d.to_string()),
                    "holders": f.holders,
                })
            })
            .collect();
        println!("{}", json!({ "results": rows, "more": more }));
        return Ok(());
    }
    if found.is_empty() {
        println!("no file matches '{words}'");
    }
    for (i, f) in found.iter().enumerate() {
        println!(
            "{:>3}. {}  ({}, {}, {})",
            i + 1,
            f.name,
            f.size
                .map(fmt_bytes)
                .unwrap_or_else(|| "size unknown".into()),
            console::plural(f.holders, "holder"),
            f.id.map(|d| d.to_string())
                .unwrap_or_else(|| "classic".into())
        );
    }
    if more {
        println!("(more results: narrow the search or raise --limit)");
    }
    Ok(())
}

fn run_get(a: GetArgs) -> Result<(), Failure> {
    // The first Ctrl-C (or SIGTERM) stops the download cleanly, recording what is on
    // disk so the same command resumes it; a second one ends the process at once.
    let signals = signals::take_over()?;
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        std::thread::Builder::new()
            .name("get-signals".into())
            .spawn(move || {
                if signals.recv().is_ok() {
                    cancel.store(true, std::sync::atomic::Ordering::SeqCst);
                    if signals.recv().is_ok() {
                        std::process::exit(130);
                    }
                }
            })?;
    }
    let name = FileName::parse(&a.name).map_err(|e| format!("'{}': {e}", a.name))?;
    let id = a
        .content_id
        .as_deref()
        .map(Sha1Digest::parse)
        .transpose()
        .map_err(|e| format!("--id: {e}"))?;
    std::fs::create_dir_all(&a.dir).map_err(|e| format!("{}: {e}", a.dir.display()))?;
    let dir = a
        .dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", a.dir.display()))?;
    let state_dir = a.state_dir.clone().unwrap_or_else(|| dir.join(".p2pshare"));
    let pool = IndexPool::new(index_addrs(&a.index)?, timeouts(&a.index));
    let self_id = format!("get-{}", std::process::id());
    let req = DownloadRequest {
        name: name.clone(),
        id,
        dest_dir: &dir,
        state_dir: &state_dir,
        existing: None,
        self_id: &self_id,
        timeouts: timeouts(&a.index),
        max_sources: a.transfer.max_sources as usize,
        download_limit: a
            .transfer
            .max_download_rate
            .map(|r| Arc::new(TokenBucket::new(r))),
    };
    let bar = BarProgress::new();
    let notes = KeptNotes::default();
    let progress: &dyn Progress = if a.json { &notes } else { &bar };
    let outcome = match download::download(&pool, &req, progress, &cancel) {
        Err(DownloadError::Cancelled) => {
            return Err(Failure {
                message: format!(
                    "stopped; what was downloaded is kept in {}: the same command resumes it",
                    state_dir.display()
                ),
                code: 130,
            })
        }
        other => other?,
    };
    match outcome {
        Outcome::Downloaded(done) => {
            if a.json {
                println!(
                    "{}",
                    json!({
                        "status": "downloaded",
                        "path": done.path,
                        "size": done.hashes.size,
                        "id": done.hashes.id.to_string(),
                        "verified_in_advance": done.verified_in_advance,
                        "sources": done.sources,
                        "seconds": done.elapsed.as_secs_f64(),
                        "notes": notes.take(),
                    })
                );
            } else {
                let secs = done.elapsed.as_secs_f64().max(1e-6);
                println!(
                    "downloaded {} ({}, {}) from {} in {secs:.2}s ({}/s)",
                    done.path.display(),
                    fmt_bytes(done.hashes.size),
                    if done.verified_in_advance {
                        "verified"
                    } else {
                        "NOT verified in advance: classic holder"
                    },
                    done.sources.join(", "),
                    fmt_bytes((done.hashes.size as f64 / secs) as u64)
                );
            }
        }
        Outcome::AlreadyHave { path, id } => {
            if a.json {
                println!(
                    "{}",
                    json!({ "status": "already-have", "path": path, "id": id.to_string() })
                );
            } else {
                println!("already have {} ({id})", path.display());
            }
        }
    }
    Ok(())
}

fn run_status(a: StatusArgs) -> Result<(), Failure> {
    let t = Timeouts {
        connect: a.timeout,
        io: a.timeout,
    };
    let rows = match Client::connect(a.addr.as_str(), &t).and_then(|mut c| c.status()) {
        Ok(rows) => rows,
        Err(e) => {
            if a.json {
                println!(
                    "{}",
                    json!({ "address": a.addr.as_str(), "healthy": false, "error": e.to_string() })
                );
                return Err(Failure {
                    message: String::new(),
                    code: 1,
                });
            }
            return Err(Failure {
                message: format!("{e}"),
                code: 1,
            });
        }
    };
    let healthy = rows.iter().any(|(k, v)| k == "health" && v == "ok");
    if a.json {
        let map: serde_json::Map<String, serde_json::Value> =
            rows.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        println!(
            "{}",
            json!({ "address": a.addr.as_str(), "healthy": healthy, "status": map })
        );
    } else {
        for (k, v) in &rows {
            println!("{k:>16}: {v}");
        }
    }
    if healthy {
        Ok(())
    } else {
        Err(Failure {
            message: format!("{} is not healthy", a.addr),
            code: 1,
        })
    }
}

fn run_bench_index(a: BenchIndexArgs) -> Result<(), Failure> {
    let op = index_load::Op::parse(&a.op)?;
    let cfg = index_load::LoadConfig {
        index: a.index.to_string(),
        op,
        connections: a.connections as usize,
        pipeline: if op == index_load::Op::ClassicGet {
            1
        } else {
            a.pipeline as usize
        },
        duration: a.duration,
        requests: a.requests,
        names: a.names as usize,
        populate: !a.no_populate,
        timeouts: Timeouts::default(),
    };
    let r = index_load::run(&cfg)?;
    if a.json {
        println!(
            "{}",
            json!({
                "op": a.op,
                "names": a.names,
                "populate_seconds": r.populate.as_secs_f64(),
                "connections": r.connections,
                "pipeline": r.pipeline,
                "requests": r.requests,
                "errors": r.errors,
                "seconds": r.elapsed.as_secs_f64(),
                "ops_per_sec": r.ops_per_sec(),
                "p50_us": r.p50_us,
                "p99_us": r.p99_us,
                "max_us": r.max_us,
            })
        );
    } else {
        if !r.populate.is_zero() {
            println!(
                "published {} names in {:.3}s",
                a.names,
                r.populate.as_secs_f64()
            );
        }
        println!(
            "{} x{} conns, pipeline {}: {} requests in {:.2}s = {:.0} ops/s; latency p50 {} us, p99 {} us, max {} us; {} errors",
            a.op,
            r.connections,
            r.pipeline,
            r.requests,
            r.elapsed.as_secs_f64(),
            r.ops_per_sec(),
            r.p50_us,
            r.p99_us,
            r.max_us,
            r.errors
        );
    }
    if r.errors > 0 && r.requests == 0 {
        return Err(Failure {
            message: "every request failed".into(),
            code: 1,
        });
    }
    Ok(())
}

fn run_bench_overlay(a: BenchOverlayArgs) -> Result<(), Failure> {
    use p2pshare::bench::overlay::{self, OverlayBench};
    use p2pshare::overlay::sim::SimConfig;
    use p2pshare::overlay::OverlayConfig;
    let overlay = match a.liveness.as_str() {
        "swim" => OverlayConfig::default(),
        "classic" => OverlayConfig::classic(),
        other => {
            return Err(Failure {
                message: format!("--liveness must be swim or classic, not '{other}'"),
                code: 2,
            })
        }
    };
    if !(0.0..1.0).contains(&a.loss) {
        return Err(Failure {
            message: format!("--loss must be at least 0 and below 1, not {}", a.loss),
            code: 2,
        });
    }
    if a.latency_max < a.latency_min {
        return Err(Failure {
            message: "--latency-max is below --latency-min".into(),
            code: 2,
        });
    }
    let bench = OverlayBench {
        sim: SimConfig {
            peers: a.peers as usize,
            seeds: a.seeds as usize,
            seed: a.seed,
            latency_min: a.latency_min,
            latency_max: a.latency_max,
            overlay,
            ..SimConfig::default()
        },
        broadcasts: a.broadcasts,
        kills: a.kills.min(a.peers as usize / 2),
        loss: a.loss,
        loss_duration: a.loss_duration,
        ..OverlayBench::default()
    };
    let report = overlay::run(&bench);
    if let Some(path) = &a.json_out {
        std::fs::write(path, report.json().to_string() + "\n")
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if a.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    Ok(())
}
