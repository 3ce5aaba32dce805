//! The `p2pshare` binary: parse the command line, start logging, run one mode, and
//! turn the result into an exit code. Everything else lives in the library.

use clap::Parser;
use p2pshare::bench::index_load;
use p2pshare::cli::{
    BenchCommand, BenchIndexArgs, Cli, Command, GetArgs, IndexArgs, IndexFlags, PeerArgs,
    SearchArgs, ServerFlags, StatusArgs,
};
use p2pshare::config::{read_addr_list, NodeAddr};
use p2pshare::index::service::{IndexConfig, IndexService};
use p2pshare::net::client::Client;
use p2pshare::net::rate::TokenBucket;
use p2pshare::net::server::{self, ServerConfig, ServerStats};
use p2pshare::net::Timeouts;
use p2pshare::output::{self, LogWriter};
use p2pshare::peer::console::{self, fmt_bytes, BarProgress};
use p2pshare::peer::download::{self, DownloadRequest, KeptNotes, Outcome, Progress};
use p2pshare::peer::pool::IndexPool;
use p2pshare::peer::watch::WatchConfig;
use p2pshare::peer::{Peer, PeerConfig};
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
    let is_server = matches!(cli.command, Command::Index(_) | Command::Peer(_));
    init_logging(if is_server { "info" } else { "warn" });
    let result = match cli.command {
        Command::Index(a) => run_index(a),
        Command::Peer(a) => run_peer(a),
        Command::Search(a) => run_search(a),
        Command::Get(a) => run_get(a),
        Command::Status(a) => run_status(a),
        Command::Bench(BenchCommand::Index(a)) => run_bench_index(a),
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
        ..ServerConfig::default()
    }
}

fn run_index(a: IndexArgs) -> Result<(), Failure> {
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
    };
    let indexes: Vec<String> = config.indexes.iter().map(|i| i.to_string()).collect();
    // SIGINT and SIGTERM become messages (before any other thread starts, so every
    // thread inherits the mask). Without a console they make the peer leave its
    // indexes cleanly; with one, Ctrl-C cancels a running download.
    let signals = signals::take_over()?;
    let peer = Peer::start(config)?;
    output::say(format!(
        "p2pshare peer '{id}' listening on {}, sharing {}, index {}",
        peer.local_addr(),
        dir.display(),
        indexes.join(", ")
    ));
    if a.no_console {
        let events = peer.events().clone();
        loop {
            crossbeam_channel::select! {
                recv(events) -> ev => match ev {
                    Ok(ev) => {
                        if let Some(text) = console::describe(&ev) {
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
            "{:>3}. {}  ({}, {} holders, {})",
            i + 1,
            f.name,
            f.size
                .map(fmt_bytes)
                .unwrap_or_else(|| "size unknown".into()),
            f.holders,
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
    let outcome = download::download(&pool, &req, progress, &AtomicBool::new(false))?;
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
