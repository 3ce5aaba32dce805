//! The `p2pshare` binary: parse the command line, start logging, run one mode, and
//! turn the result into an exit code. Everything else lives in the library.

use clap::{CommandFactory, Parser};
use p2pshare::bench::index_load;
use p2pshare::cli::{
    layers, manual, BenchCommand, BenchIndexArgs, BenchOverlayArgs, Cli, Command, GetArgs,
    IndexArgs, IndexFlags, LivenessFlags, LivenessMode, LogFlags, MembersArgs, PeerArgs, SayArgs,
    SearchArgs, SeedArgs, SeedListFlags, ServerFlags, StatusArgs,
};
use p2pshare::config::{read_addr_list, NodeAddr};
use p2pshare::eventlog::EventLog;
use p2pshare::index::service::IndexConfig;
use p2pshare::index::{Index, IndexSettings};
use p2pshare::net::client::Client;
use p2pshare::net::rate::TokenBucket;
use p2pshare::net::server::ServerConfig;
use p2pshare::net::Timeouts;
use p2pshare::output::{self, LogWriter};
use p2pshare::overlay::{wire, Liveness, OverlayConfig, Seed, SeedConfig, SeedSettings};
use p2pshare::peer::console::{self, BarProgress};
use p2pshare::peer::download::{
    self, DownloadError, DownloadRequest, KeptNotes, Outcome, Progress,
};
use p2pshare::peer::pool::IndexPool;
use p2pshare::peer::watch::WatchConfig;
use p2pshare::peer::OverlaySettings;
use p2pshare::peer::{Peer, PeerConfig};
use p2pshare::protocol::hash::Sha1Digest;
use p2pshare::protocol::name::{FileName, PeerId};
use p2pshare::render;
use p2pshare::signals::{self, Signal};
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// A failure that ends the program, with the exit code it maps to.
struct Failure {
    message: String,
    code: u8,
    /// Already printed on stdout as JSON (so `--json` does not print it twice).
    reported: bool,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure {
            message: e.to_string(),
            code: 1,
            reported: false,
        }
    }
}

/// Whether the command prints JSON: then a failure is a JSON object on stdout too.
fn wants_json(command: &Command) -> bool {
    match command {
        Command::Search(a) => a.json,
        Command::Get(a) => a.json,
        Command::Status(a) => a.json,
        Command::Say(a) => a.json,
        Command::Members(a) => a.json,
        _ => false,
    }
}

/// Logs at `default` (from -q and -v), unless RUST_LOG says otherwise.
fn init_logging(default: log::LevelFilter) {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or(default.as_str().to_ascii_lowercase()),
    )
    .format_timestamp_millis()
    .target(env_logger::Target::Pipe(Box::new(LogWriter::default())))
    .init();
}

/// Parses the command line with the environment and the configuration file merged in
/// (see `cli::layers`); on a usage error, says where a flag the user did not type came
/// from.
fn parse_command_line() -> Result<Cli, ExitCode> {
    let argv = std::env::args_os().collect();
    let merged =
        layers::merge(&Cli::command(), argv, &|name| std::env::var_os(name)).map_err(|e| {
            eprintln!("p2pshare: {e}");
            ExitCode::from(2)
        })?;
    Cli::try_parse_from(&merged.argv).map_err(|e| {
        let _ = e.print();
        if let Some(note) = merged.explain(&e.to_string()) {
            eprintln!("{note}");
        }
        ExitCode::from(e.exit_code().clamp(0, 255) as u8)
    })
}

fn main() -> ExitCode {
    let cli = match parse_command_line() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_logging(cli.log_level());
    let json = wants_json(&cli.command);
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
        Command::Completions(a) => print_document(&manual::completions(a.shell)),
        Command::Man => print_document(manual::man_page().as_bytes()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if json && !f.reported {
                println!("{}", json!({ "error": f.message, "exit_code": f.code }));
            }
            if !f.message.is_empty() {
                eprintln!("p2pshare: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

/// Writes a generated document to stdout; a reader that stops early (`| head`) is not
/// a failure.
fn print_document(bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
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
    let id = PeerId::parse(&a.id).map_err(|e| usage(format!("--id '{}': {e}", a.id)))?;
    for (flag, lease) in [("--lease", a.lease), ("--classic-lease", a.classic_lease)] {
        if lease < std::time::Duration::from_secs(1) {
            return Err(usage(format!(
                "{flag} must be at least 1s (peers are told it in whole seconds)"
            )));
        }
    }
    let signals = signals::take_over()?;
    let index = Index::start(IndexSettings {
        listen: a.listen,
        id,
        db: (a.db.as_os_str() != ":memory:").then(|| a.db.clone()),
        config: IndexConfig {
            lease: a.lease,
            classic_lease: a.classic_lease,
            ..IndexConfig::default()
        },
        server: server_config(&a.server),
        log: event_log(&a.log)?,
    })?;
    output::say(format!(
        "p2pshare index listening on {}",
        index.local_addr()
    ));
    let sig = signals.recv().unwrap_or(Signal::Terminate);
    log::info!("{sig:?}: shutting down");
    index.shutdown();
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
        reported: false,
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
    let mut c = match f.liveness {
        LivenessMode::Classic => OverlayConfig::classic(),
        LivenessMode::Swim => OverlayConfig::default(),
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

fn run_seed(a: SeedArgs) -> Result<(), Failure> {
    let refresh = OverlayConfig::default().seed_refresh;
    if a.forget_after <= refresh {
        return Err(usage(format!(
            "--forget-after must be longer than {}s: peers register again every {}s",
            refresh.as_secs(),
            refresh.as_secs()
        )));
    }
    if let Some(id) = &a.id {
        PeerId::parse(id).map_err(|e| usage(format!("seed id '{id}': {e}")))?;
    }
    let signals = signals::take_over()?;
    let seeds = seed_addrs(&a.seeds)?;
    let seed = Seed::start(SeedSettings {
        listen: a.listen,
        id: a.id.clone(),
        seeds: seeds.clone(),
        config: SeedConfig {
            forget_after: a.forget_after,
            sync_interval: a.sync_interval,
            list_cap: a.list_cap as usize,
            ..SeedConfig::default()
        },
        server: server_config(&a.server),
        log: event_log(&a.log)?,
    })?;
    output::say(format!(
        "p2pshare seed '{}' listening on {}, seeds {}",
        seed.id(),
        seed.local_addr(),
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
    seed.shutdown();
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
        println!("{}", render::members_json(a.addr.as_str(), &rows));
        return Ok(());
    }
    if rows.is_empty() {
        println!("{} knows no members", a.addr);
        return Ok(());
    }
    for line in render::members_table(&rows) {
        println!("{line}");
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
        println!("{}", render::search_json(&found, more));
        return Ok(());
    }
    for line in render::search_table(&found, more, &words) {
        println!("{line}");
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
        .map_err(|e| usage(format!("--id: {e}")))?;
    let made = TempFolders::make(&a.dir)?;
    let dir = a
        .dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", a.dir.display()))?;
    let state_dir = a.state_dir.clone().unwrap_or_else(|| dir.join(".p2pshare"));
    let made = made.with_state(&state_dir);
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
    let result = download::download(&pool, &req, progress, &cancel);
    // Folders this command made and left empty go again, whatever the outcome: a
    // failed get leaves no trace, a finished one no empty state folders.
    made.remove_empty();
    let outcome = match result {
        Err(DownloadError::Cancelled) => {
            return Err(Failure {
                message: format!(
                    "stopped; what was downloaded is kept in {}: the same command resumes it",
                    state_dir.display()
                ),
                code: 130,
                reported: false,
            })
        }
        Err(e @ DownloadError::NotFound { .. }) => {
            let hint = case_hint(&pool, &name);
            return Err(format!("{e}{hint}").into());
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
                        "resumed_bytes": done.resumed_bytes,
                        "bytes_per_second": done.rate(),
                        "notes": notes.take(),
                    })
                );
            } else {
                println!(
                    "{}",
                    render::downloaded(&done.path.display().to_string(), &done, false)
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

/// When no file has exactly this name, the names that match it but for case (names
/// are case-sensitive; search is not), as a hint for the error message.
fn case_hint(pool: &IndexPool, name: &FileName) -> String {
    let Ok((found, _)) = pool.search(name.as_str(), 20) else {
        return String::new();
    };
    let wanted = name.as_str().to_lowercase();
    let close: Vec<String> = found
        .into_iter()
        .filter(|f| f.name.to_lowercase() == wanted)
        .map(|f| format!("'{}'", f.name))
        .collect();
    if close.is_empty() {
        String::new()
    } else {
        format!(
            " (names are case-sensitive: did you mean {}?)",
            close.join(" or ")
        )
    }
}

/// The folders a one-shot `get` created (the destination, its state folder), so that
/// what is left empty at the end can go again.
struct TempFolders(Vec<std::path::PathBuf>);

impl TempFolders {
    /// Creates `dir` (and its parents) if needed, remembering what did not exist.
    fn make(dir: &Path) -> Result<TempFolders, Failure> {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => return Ok(TempFolders(Vec::new())),
            Ok(_) => {
                return Err(usage(format!(
                    "--dir {}: not a folder (it is a file)",
                    dir.display()
                )))
            }
            Err(_) => {}
        }
        let mut missing = Vec::new();
        let mut p = Some(dir);
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            missing.push(d.to_path_buf());
            p = d.parent();
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("--dir {}: {e}", dir.display()))?;
        Ok(TempFolders(missing))
    }

    /// Adds the state folder and its `partial` folder, when the download creates them.
    fn with_state(mut self, state_dir: &Path) -> TempFolders {
        if !state_dir.exists() {
            self.0.insert(0, state_dir.to_path_buf());
        }
        self.0.insert(0, state_dir.join("partial"));
        self
    }

    /// Removes each remembered folder that is empty, innermost first (a folder with
    /// anything in it, such as a partial kept for a resume, stays).
    fn remove_empty(&self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir(d);
        }
    }
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
            }
            return Err(Failure {
                message: e.to_string(),
                code: 1,
                reported: a.json,
            });
        }
    };
    let healthy = rows.iter().any(|(k, v)| k == "health" && v == "ok");
    if a.json {
        println!(
            "{}",
            json!({ "address": a.addr.as_str(), "healthy": healthy, "status": render::status_json(&rows) })
        );
    } else {
        for line in render::status_text(&rows) {
            println!("{line}");
        }
    }
    if healthy {
        return Ok(());
    }
    let why = rows
        .iter()
        .find(|(k, _)| k == "failing")
        .map(|(_, v)| format!(": {v}"))
        .unwrap_or_default();
    Err(Failure {
        message: format!("{} is not healthy{why}", a.addr),
        code: 1,
        reported: a.json,
    })
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
        return Err("every request failed".into());
    }
    Ok(())
}

fn run_bench_overlay(a: BenchOverlayArgs) -> Result<(), Failure> {
    use p2pshare::bench::overlay::{self, OverlayBench};
    use p2pshare::overlay::sim::SimConfig;
    use p2pshare::overlay::OverlayConfig;
    let overlay = match a.liveness {
        LivenessMode::Swim => OverlayConfig::default(),
        LivenessMode::Classic => OverlayConfig::classic(),
    };
    if !(0.0..1.0).contains(&a.loss) {
        return Err(usage(format!(
            "--loss must be at least 0 and below 1, not {}",
            a.loss
        )));
    }
    if a.latency_max < a.latency_min {
        return Err(usage("--latency-max is below --latency-min"));
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
