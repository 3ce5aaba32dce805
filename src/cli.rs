//! The command line: every flag declared once, with help that teaches.
//!
//! Two stages: clap parses text into these structs (no system calls, except that a
//! `--listen` host name is resolved here, once, so a bad one is a usage error); `main.rs`
//! validates and builds the runtime objects from them. Before clap sees the command
//! line, [`layers`] merges in flags from the environment and a configuration file; help,
//! the man page and the shell completions ([`manual`]) come from the same declarations.

pub mod layers;
pub mod manual;
pub mod resolve;

use crate::config::{parse_duration, parse_listen_addr, NodeAddr};
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "p2pshare",
    version,
    about = "Peer-to-peer file sharing over raw TCP: index servers, seeds and sharing peers, verified downloads, gossip.",
    long_about = "Peer-to-peer file sharing over raw TCP.\n\n\
        Start an index server, then peers that share folders; search and download from a \
        peer's console, or with the one-shot commands. Seeds (optional) let peers find each \
        other, watch each other's liveness and broadcast messages with `say`.\n\n\
        Quick start (three terminals):\n  \
        p2pshare index\n  \
        p2pshare peer --dir peers/peer1 --listen 0.0.0.0:1025\n  \
        p2pshare peer --dir peers/peer2 --listen 0.0.0.0:1026\n\n\
        With seeds (config/seeds.txt lists 127.0.0.1:1500-1502):\n  \
        p2pshare seed --listen 0.0.0.0:1500   (and 1501, 1502)\n\n\
        Logging: info for servers, warn for one-shot commands and for a peer with a \
        console (it says what matters in its own words); -v one step more, -vv \
        debug (servers: trace), -q errors only. RUST_LOG, when set, wins (RUST_LOG=debug).\n\
        Exit codes: 0 success, 1 failure (or an unhealthy node for 'status'), 2 bad usage, \
        130 a 'get' stopped by Ctrl-C.",
    after_long_help = "Configuration: every long flag can also be set in the environment as \
        P2PSHARE_<FLAG> (P2PSHARE_MAX_SOURCES=4; a repeatable flag takes a comma-separated \
        list: P2PSHARE_INDEX=a:1024,b:1024) or in a TOML file whose keys are the long flag \
        names, at the top level (for every command that has the flag) or in a table per \
        command ([peer], [get], [bench.overlay]):\n\n  \
        index = [\"10.0.0.5:1024\"]\n  \
        [peer]\n  \
        listen = 1025\n  \
        no-console = true\n\n\
        The file is --config FILE, else the one P2PSHARE_CONFIG names, else \
        $XDG_CONFIG_HOME/p2pshare/config.toml (~/.config/p2pshare/config.toml) when it exists.\n\
        Precedence, highest first: the command line, the environment, the file, then the \
        built-in fallbacks (config/index.txt and config/seeds.txt in the current directory, \
        then 127.0.0.1:1024 and the defaults shown in each command's --help).\n\n\
        Shell completions: p2pshare completions bash (zsh, fish, elvish, powershell). \
        Manual page: p2pshare man | man -l -",
    after_help = "Flags can also come from P2PSHARE_<FLAG> environment variables and a TOML \
        file (--config, else ~/.config/p2pshare/config.toml); the command line wins over the \
        environment, which wins over the file. More in --help."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log errors only.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log more: -v one step more than the default, -vv debug (servers: trace).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
    /// Read flags from this TOML file instead of the per-user one
    /// (~/.config/p2pshare/config.toml); see `p2pshare --help`.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl Cli {
    /// Servers (index, seed, peer) log at info by default, one-shot commands at warn.
    pub fn is_server(&self) -> bool {
        matches!(
            self.command,
            Command::Index(_) | Command::Peer(_) | Command::Seed(_)
        )
    }

    /// The log level -q and -v ask for, from the default for this command.
    /// The log filter: [`Cli::log_level`], and for a console, the line editor's own
    /// warnings (a terminal that does not report the cursor) kept out as noise.
    pub fn log_filter(&self) -> String {
        let level = self.log_level().as_str().to_ascii_lowercase();
        match &self.command {
            Command::Peer(a) if !a.no_console => format!("{level},rustyline=error"),
            _ => level,
        }
    }

    pub fn log_level(&self) -> log::LevelFilter {
        use log::LevelFilter;
        const STEPS: [LevelFilter; 5] = [
            LevelFilter::Error,
            LevelFilter::Warn,
            LevelFilter::Info,
            LevelFilter::Debug,
            LevelFilter::Trace,
        ];
        if self.quiet {
            return LevelFilter::Error;
        }
        // A peer's console tells people what matters in its own words: at the default
        // level only warnings reach its terminal.
        let base = match &self.command {
            Command::Peer(a) if !a.no_console => 1,
            _ if self.is_server() => 2,
            _ => 1,
        };
        STEPS[(base + self.verbose as usize).min(STEPS.len() - 1)]
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run an index server: which peer holds which file; search; leases.
    Index(IndexArgs),
    /// Run a seed: peers register and get peer lists; deaths are confirmed here.
    Seed(SeedArgs),
    /// Share a folder, serve it, and search and download from a console.
    Peer(Box<PeerArgs>),
    /// Search the index and print the matching files.
    Search(SearchArgs),
    /// Download one file into a folder (verified before it appears).
    Get(GetArgs),
    /// Push a file to a peer started with --allow-upload: the peer checks it against
    /// its content id, then keeps and shares it.
    Upload(UploadArgs),
    /// Ask a node for its status; exits 0 only when it answers healthy.
    Status(StatusArgs),
    /// Broadcast a message to every live peer, through a running peer.
    Say(SayArgs),
    /// List the members a peer or a seed knows, with their state.
    Members(MembersArgs),
    /// Load generators for measuring (see bench/BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Print a shell completion script to stdout, e.g.
    /// `p2pshare completions bash > ~/.local/share/bash-completion/completions/p2pshare`.
    Completions(CompletionsArgs),
    /// Make the network's key (--network): it signs the key-value store's values.
    Keygen(KeygenArgs),
    /// The key-value store on the DHT: `kv put KEY VALUE`, `kv get KEY`, `kv rm KEY`.
    #[command(subcommand)]
    Kv(KvCommand),
    /// Print a node's id (its public key), creating its key when there is none yet.
    /// With no option: the peer of the current folder (./.p2pshare/node.key).
    Id(IdArgs),
    /// Print the manual page (roff) to stdout: `p2pshare man | man -l -`.
    Man,
}

impl Command {
    /// Whether the command prints JSON (`--json`): then a failure is a JSON object on
    /// stdout too.
    pub fn prints_json(&self) -> bool {
        match self {
            Command::Search(a) => a.json,
            Command::Get(a) => a.json,
            Command::Upload(a) => a.json,
            Command::Status(a) => a.json,
            Command::Say(a) => a.json,
            Command::Members(a) => a.json,
            Command::Keygen(a) => a.json,
            Command::Kv(KvCommand::Put(a)) => a.json,
            Command::Kv(KvCommand::Get(a)) => a.json,
            Command::Kv(KvCommand::Rm(a)) => a.json,
            _ => false,
        }
    }
}

#[derive(Args, Debug)]
#[command(
    after_help = "Copy the key to every node that may write the store, and only the \
id file (the same path with .id) to nodes that may only read it. A network key is never \
replaced: make it once."
)]
pub struct KeygenArgs {
    /// The network's key (the only kind made here: a node makes its own key on first
    /// start).
    #[arg(long, required = true)]
    pub network: bool,
    /// Where to write it; its id goes beside it, with .id.
    #[arg(long, value_name = "FILE", default_value = "config/network.key")]
    pub out: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum KvCommand {
    /// Store VALUE under KEY (the last writer wins, by sequence number).
    Put(KvPutArgs),
    /// Print KEY's value; exits 1 with 'not found' when it has none.
    Get(KvGetArgs),
    /// Remove KEY (a signed removal that a stale copy cannot undo).
    Rm(KvRmArgs),
}

/// How a one-shot command reaches the DHT: a node of its own for the command's
/// length, bootstrapped from the seeds (or --dht-bootstrap).
#[derive(Args, Debug, Clone)]
pub struct DhtClientFlags {
    #[command(flatten)]
    pub seeds: SeedListFlags,
    #[command(flatten)]
    pub dht: DhtFlags,
}

#[derive(Args, Debug)]
pub struct KvPutArgs {
    /// Any UTF-8, up to 64 bytes.
    pub key: String,
    /// Up to 1 MiB; '-' reads it from standard input.
    pub value: String,
    /// Only if the value's sequence number is still SEQ (as `kv get` shows it):
    /// compare-and-swap.
    #[arg(long, value_name = "SEQ")]
    pub cas: Option<i64>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: DhtClientFlags,
}

#[derive(Args, Debug)]
pub struct KvGetArgs {
    pub key: String,
    /// Print JSON (key, value, seq) instead of the value.
    #[arg(long, conflicts_with = "raw")]
    pub json: bool,
    /// Print the value's bytes exactly, without a newline after them.
    #[arg(long)]
    pub raw: bool,
    #[command(flatten)]
    pub client: DhtClientFlags,
}

#[derive(Args, Debug)]
pub struct KvRmArgs {
    pub key: String,
    /// Only if the value's sequence number is still SEQ.
    #[arg(long, value_name = "SEQ")]
    pub cas: Option<i64>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: DhtClientFlags,
}

#[derive(Args, Debug)]
pub struct IdArgs {
    /// The peer sharing this folder (its key is DIR/.p2pshare/node.key).
    #[arg(long, conflicts_with_all = ["state_dir", "key"])]
    pub dir: Option<PathBuf>,
    /// A peer's state dir (its key is STATE_DIR/node.key).
    #[arg(long, conflicts_with = "key")]
    pub state_dir: Option<PathBuf>,
    /// A key file, as a seed's or an index's --key names it.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl IdArgs {
    /// The key file this command reads (or creates).
    pub fn key_path(&self) -> PathBuf {
        if let Some(k) = &self.key {
            return k.clone();
        }
        let state = match (&self.state_dir, &self.dir) {
            (Some(s), _) => s.clone(),
            (None, Some(d)) => d.join(".p2pshare"),
            (None, None) => PathBuf::from(".p2pshare"),
        };
        state.join(crate::identity::KEY_FILE)
    }
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// How a peer checks that its neighbours are alive.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LivenessMode {
    /// Probes, indirect probes, and suspicion that a live peer refutes.
    Swim,
    /// The original design: ping every neighbour every 13 s, dead after 3 misses.
    Classic,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Load an index server: N connections sending requests back to back.
    Index(BenchIndexArgs),
    /// Run the overlay (membership, liveness, gossip) in the deterministic simulator:
    /// broadcast reach, failure detection, false deaths under loss, half the network
    /// killed. The same --seed replays the same run.
    Overlay(BenchOverlayArgs),
    /// Run a private DHT of N nodes in this process on 127.0.0.1: keys put from random
    /// nodes and read from others, missing keys, then nodes killed in waves with
    /// republication in between.
    Dht(BenchDhtArgs),
}

#[derive(Args, Debug)]
pub struct BenchDhtArgs {
    /// DHT nodes, each with its own UDP socket on 127.0.0.1.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(2..=5_000))]
    pub nodes: u32,
    /// Keys put, then read.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub keys: u32,
    /// Bytes per value.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub value_size: u32,
    /// Lookups of keys that were never written.
    #[arg(long, default_value_t = 1000)]
    pub missing: u32,
    /// Share of the nodes killed, over all the waves.
    #[arg(long, default_value_t = 0.3)]
    pub kill: f64,
    /// Waves the kills come in; after each, the bench waits 1.5 republish periods
    /// plus 5 s, then reads.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub waves: u32,
    /// Keys read after each wave but the last (which reads them all).
    #[arg(long, default_value_t = 1000)]
    pub sample: u32,
    /// Operations under way at once.
    #[arg(long, short = 'c', default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: u32,
    /// The nodes' republish period (--dht-republish). Every holder of an item puts it
    /// again once a period: many keys and a short period load the machine.
    #[arg(long, default_value = "120s", value_parser = duration)]
    pub republish: Duration,
    /// Seeds every random choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct BenchOverlayArgs {
    /// Peers in the simulated network.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub peers: u32,
    /// Seeds in the simulated network.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub seeds: u32,
    /// Seeds every random choice: the same seed replays the same run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// One-way latency of a message, uniform between these bounds.
    #[arg(long, default_value = "5ms", value_parser = duration)]
    pub latency_min: Duration,
    #[arg(long, default_value = "25ms", value_parser = duration)]
    pub latency_max: Duration,
    /// Broadcasts sent in the broadcast scenario.
    #[arg(long, default_value_t = 50)]
    pub broadcasts: usize,
    /// Peers killed at once in the failure-detection scenario.
    #[arg(long, default_value_t = 20)]
    pub kills: usize,
    /// Share of messages lost in the loss scenario.
    #[arg(long, default_value_t = 0.10)]
    pub loss: f64,
    /// Virtual time the loss scenario runs.
    #[arg(long, default_value = "30m", value_parser = duration)]
    pub loss_duration: Duration,
    /// The liveness checks to simulate.
    #[arg(long, value_enum, default_value_t = LivenessMode::Swim)]
    pub liveness: LivenessMode,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct BenchIndexArgs {
    /// The index server to load.
    #[arg(long = "index", value_parser = node_addr, default_value = "127.0.0.1:1024")]
    pub index: NodeAddr,
    /// What each request does: get, search, publish, or classic-get (a new connection
    /// and `get|name` without a newline per request).
    #[arg(long, default_value = "get")]
    pub op: String,
    /// Concurrent connections.
    #[arg(long, short = 'c', default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connections: u32,
    /// Requests sent back to back on a connection before reading the replies.
    #[arg(long, short = 'P', default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub pipeline: u32,
    /// How long to run.
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub duration: Duration,
    /// Stop after this many requests in all (if that comes before --duration).
    #[arg(long, short = 'n')]
    pub requests: Option<u64>,
    /// Names get and search ask for; they are published before the run.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub names: u64,
    /// Do not publish the names first (the server already has them, for example
    /// registered with classic `set`).
    #[arg(long)]
    pub no_populate: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

fn node_addr(text: &str) -> Result<NodeAddr, String> {
    NodeAddr::parse(text)
}

fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    parse_listen_addr(text)
}

fn size(text: &str) -> Result<u64, String> {
    crate::config::parse_size(text)
}

fn rate(text: &str) -> Result<u64, String> {
    crate::config::parse_rate(text)
}

#[derive(Args, Debug, Clone)]
pub struct TransferFlags {
    /// Most holders a download takes pieces from at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max_sources: u32,
    /// Limit on download speed, bytes per second (k, M, G suffixes: 500k, 25M).
    #[arg(long, value_parser = rate, value_name = "RATE")]
    pub max_download_rate: Option<u64>,
    /// Most bytes taken from a classic holder when no holder gives a content id to
    /// check them against (K, M, G: binary units); a longer stream is cut and discarded.
    #[arg(long, default_value = "1G", value_parser = size, value_name = "SIZE")]
    pub max_unverified_size: u64,
    /// Write downloaded pieces through the page cache. By default they go straight
    /// from the buffer they arrived in to the device (O_DIRECT), where the file system
    /// allows it: one copy less per byte and no cache to fill. With this flag the
    /// finished file stays in memory for whoever reads it next.
    #[arg(long)]
    pub page_cache: bool,
}

/// What a peer takes from uploaders (`p2pshare upload`, `POST /upload`).
#[derive(Args, Debug, Clone)]
pub struct UploadFlags {
    /// Take files pushed to this peer (`p2pshare upload FILE --peer ADDR`, or
    /// `POST /upload` over --http): each checked against the content id or SHA-1
    /// its uploader gives, then placed in the folder and shared. Off unless given.
    #[arg(long)]
    pub allow_upload: bool,
    /// Take only names ending in one of these extensions (comma-separated, without
    /// regard to case: txt,pdf,png). Default: any name.
    #[arg(long, value_delimiter = ',', value_name = "EXT,...", value_parser = extension)]
    pub upload_extensions: Vec<String>,
    /// The largest file taken by upload (K, M, G: binary units).
    #[arg(long, default_value = "1G", value_parser = upload_size, value_name = "SIZE")]
    pub max_upload_size: u64,
    /// Uploads taken at once, from all addresses (one at a time from each address).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_uploads: u32,
}

/// An extension of `--upload-extensions`: letters and digits, a leading dot allowed.
fn extension(text: &str) -> Result<String, String> {
    let e = text.trim().trim_start_matches('.').to_ascii_lowercase();
    if e.is_empty() || e.len() > 32 || !e.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!(
            "'{text}' is not an extension (letters and digits: txt, pdf, tar)"
        ));
    }
    Ok(e)
}

/// A size of `--max-upload-size`: at most the largest file the network shares.
fn upload_size(text: &str) -> Result<u64, String> {
    let n = size(text)?;
    if n > crate::protocol::MAX_FILE_SIZE {
        return Err(format!(
            "'{text}' is over the largest file the network shares (1024G)"
        ));
    }
    Ok(n)
}

#[derive(Args, Debug, Clone)]
pub struct HttpFlags {
    /// Serve the HTTP interface on this address: JSON endpoints (/status, /health,
    /// the role's own), Prometheus metrics (/metrics) and a dashboard page (/). A bare
    /// PORT means 127.0.0.1:PORT. Off unless given.
    #[arg(long, value_parser = http_addr, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// A file whose first line is the bearer token (16 characters or more) that POST
    /// and DELETE requests must carry ('Authorization: Bearer TOKEN'). On an --http
    /// address other than loopback, nothing can be changed over HTTP without it.
    #[arg(long, value_name = "FILE")]
    pub http_token_file: Option<PathBuf>,
}

/// An HTTP listening address; a bare port is on loopback.
fn http_addr(text: &str) -> Result<SocketAddr, String> {
    match text.parse::<u16>() {
        Ok(port) => Ok(SocketAddr::from(([127, 0, 0, 1], port))),
        Err(_) => parse_listen_addr(text),
    }
}

#[derive(Args, Debug, Clone)]
pub struct ServerFlags {
    /// Most connections served at once; more are answered 'err|busy' and closed.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_connections: u32,
    /// Most connections from one IP address at once (a share of --max-connections, so
    /// one host cannot take every slot); more are answered 'err|busy' and closed.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_connections_per_address: u32,
    /// Close a connection that sends nothing for this long (e.g. 90s, 2m).
    #[arg(long, default_value = "120s", value_parser = duration)]
    pub idle_timeout: Duration,
    /// A request must arrive whole within this long of its first byte, and a new
    /// connection's first request within this long of connecting.
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub request_timeout: Duration,
    /// Memory for requests being received, across connections, beyond 256 KiB each
    /// (K, M, G: binary units); a connection that needs more than is left gets
    /// 'err|busy' and is closed.
    #[arg(long, default_value = "256M", value_parser = size, value_name = "SIZE")]
    pub request_memory: u64,
}

#[derive(Args, Debug, Clone)]
pub struct LogFlags {
    /// Also write an event log here (joins, deaths, departures, messages: one line
    /// each, with a UTC timestamp), besides the RUST_LOG logging on stderr.
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
}

/// Which DHT a node joins.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DhtKind {
    /// This network's own, bootstrapped from its seeds.
    Private,
    /// The public Mainline DHT, through its usual bootstrap nodes
    /// (router.bittorrent.com:6881 and others).
    Public,
}

#[derive(Args, Debug, Clone)]
pub struct DhtFlags {
    /// Run no DHT node: files are found through index servers only, and the
    /// key-value store is out of reach.
    #[arg(long)]
    pub no_dht: bool,
    /// Which DHT to join.
    #[arg(long, value_enum, default_value_t = DhtKind::Private)]
    pub dht: DhtKind,
    /// A DHT node to bootstrap from, HOST:PORT (repeatable). Default: the seeds, at
    /// their TCP port number (a seed's DHT node listens on UDP at the same number).
    #[arg(long, value_name = "HOST:PORT")]
    pub dht_bootstrap: Vec<String>,
    /// The network's key (made by `p2pshare keygen --network`), which signs the
    /// key-value store's values. Without it, the network's id beside it (the same path
    /// with .id) lets a node read the store but not write it.
    #[arg(long, value_name = "FILE", default_value = "config/network.key")]
    pub network_key: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct DhtNodeFlags {
    #[command(flatten)]
    pub dht: DhtFlags,
    /// UDP port of the DHT node. Default: the same number as the TCP port.
    #[arg(long, value_name = "PORT")]
    pub dht_port: Option<u16>,
    /// Put what this node holds for the DHT again this often: the network's values
    /// stored here, their chunks, and this node's announces.
    #[arg(long, default_value = "15m", value_parser = duration, value_name = "DURATION")]
    pub dht_republish: Duration,
    /// Requests a second that one IPv4 address may send this node's DHT (a burst of
    /// twice that); more go unanswered. Storing a 1 MiB value asks each node of a
    /// small network about 2,000 times.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    pub dht_rate: u64,
}

#[derive(Args, Debug, Clone)]
pub struct SeedListFlags {
    /// File listing the seed nodes, one 'HOST:PORT ID' a line ('#' comments), where ID
    /// is the seed's id as `p2pshare id` prints it (without one, the seed's first
    /// answer is trusted). Default: config/seeds.txt (no seeds when it does not exist).
    #[arg(long = "seeds", value_name = "FILE")]
    pub seeds_file: Option<PathBuf>,
    /// A seed node, HOST:PORT or ID@HOST:PORT (repeatable); replaces the seeds file.
    #[arg(long = "seed", value_name = "[ID@]HOST:PORT", value_parser = node_addr)]
    pub seeds: Vec<NodeAddr>,
}

#[derive(Args, Debug, Clone)]
pub struct LivenessFlags {
    /// How neighbours are checked.
    #[arg(long, value_enum, default_value_t = LivenessMode::Swim)]
    pub liveness: LivenessMode,
    /// Time in which every neighbour is probed once [default: 1s; classic: 13s].
    #[arg(long, value_parser = duration, value_name = "DURATION")]
    pub probe_interval: Option<Duration>,
    /// Wait this long for a probe's answer [default: 300ms; classic: 3s].
    #[arg(long, value_parser = duration, value_name = "DURATION")]
    pub probe_timeout: Option<Duration>,
    /// Others asked to probe a neighbour that did not answer [default: 3].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=16))]
    pub indirect_probes: Option<u32>,
    /// A suspected neighbour that does not refute within this long is declared dead
    /// [default: 4s].
    #[arg(long, value_parser = duration, value_name = "DURATION")]
    pub suspicion_timeout: Option<Duration>,
    /// Classic liveness: missed pings in a row before a neighbour is dead [default: 3].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub dead_after_misses: Option<u32>,
}

#[derive(Args, Debug)]
pub struct SeedArgs {
    /// Address to listen on: HOST:PORT, or a bare PORT for every interface.
    #[arg(long, default_value = "0.0.0.0:1500", value_parser = listen_addr)]
    pub listen: SocketAddr,
    /// This seed's name, shown in `status` beside its id. Default: HOSTNAME:PORT.
    #[arg(long = "name", alias = "id")]
    pub name: Option<String>,
    /// The seed's private key, created on first start (owner-only). Its public half
    /// is the seed's id: list it in the peers' seeds file as 'HOST:PORT ID'.
    /// Default: p2pshare-seed-PORT.key in the working directory (a key for this run
    /// only with port 0).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Forget a peer neither seen nor vouched for (by a neighbour, or another seed) for
    /// this long (more than 15s: peers register again every 15s).
    #[arg(long, default_value = "60s", value_parser = duration)]
    pub forget_after: Duration,
    /// Send the registry to the other seeds this often.
    #[arg(long, default_value = "2s", value_parser = duration)]
    pub sync_interval: Duration,
    /// Most peers in one peer list (a random sample when there are more).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub list_cap: u32,
    /// Most live peer ids registered at once from one IP address; a further id from
    /// that address gets no answer (it is counted in status, refused_quota).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_peers_per_address: u32,
    #[command(flatten)]
    pub seeds: SeedListFlags,
    #[command(flatten)]
    pub dht: DhtNodeFlags,
    #[command(flatten)]
    pub log: LogFlags,
    #[command(flatten)]
    pub server: ServerFlags,
    #[command(flatten)]
    pub http: HttpFlags,
}

#[derive(Args, Debug)]
pub struct SayArgs {
    /// The text to broadcast.
    #[arg(required = true, num_args = 1..)]
    pub text: Vec<String>,
    /// The peer that sends it (its id becomes the message's origin).
    #[arg(long, default_value = "127.0.0.1:1025", value_parser = node_addr)]
    pub peer: NodeAddr,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Give up connecting, or waiting for the answer, after this long.
    #[arg(long, default_value = "3s", value_parser = duration)]
    pub timeout: Duration,
}

#[derive(Args, Debug)]
pub struct MembersArgs {
    /// The peer or seed to ask.
    #[arg(value_parser = node_addr)]
    pub addr: NodeAddr,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Give up connecting, or waiting for the answer, after this long.
    #[arg(long, default_value = "3s", value_parser = duration)]
    pub timeout: Duration,
}

#[derive(Args, Debug)]
pub struct IndexArgs {
    /// Address to listen on: HOST:PORT, or a bare PORT for every interface.
    #[arg(long, default_value = "0.0.0.0:1024", value_parser = listen_addr)]
    pub listen: SocketAddr,
    /// Drop a peer, with its files, when it has not sent a heartbeat for this long.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub lease: Duration,
    /// How long an entry from the classic `set|...` dialect lives (classic peers
    /// cannot send heartbeats; each `set` renews it).
    #[arg(long, default_value = "10m", value_parser = duration)]
    pub classic_lease: Duration,
    /// This index's name, shown in `status` and `hello` beside its id.
    #[arg(long = "name", alias = "id", default_value = "index")]
    pub name: String,
    /// The index's private key, created on first start (owner-only). Its public half
    /// is the index's id, which peers may pin (KEY@HOST:PORT). Default: the database's
    /// path with the extension .key (a fresh key each run with --db :memory:).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// SQLite database holding the index across restarts (WAL mode; readable with the
    /// sqlite3 command). `:memory:` for a throwaway index that forgets on exit.
    #[arg(long, default_value = "p2pshare-index.db")]
    pub db: PathBuf,
    /// Most files one peer id may publish; a publish or sync beyond it is refused
    /// whole ('err|too-large').
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_files_per_peer: u32,
    /// Most files the peer ids of one IP address (or IPv6 /64) may publish together;
    /// a publish or sync beyond it is refused whole ('err|too-large').
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_files_per_address: u32,
    /// Most peer ids registered at once from one IP address; a hello as a further id
    /// is answered 'err|busy'.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_peers_per_address: u32,
    /// Rows one peer id may publish, sync or withdraw per second, over all its
    /// connections (it may send twice as many at once after a rest); a batch beyond it
    /// is answered 'err|busy'.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub publish_rate: u32,
    /// The same over all the peer ids of one address (an IPv6 /64 counts as one
    /// address): many peers behind one address share it.
    #[arg(long, default_value_t = 400_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub publish_rate_per_address: u32,
    #[command(flatten)]
    pub log: LogFlags,
    #[command(flatten)]
    pub server: ServerFlags,
    #[command(flatten)]
    pub http: HttpFlags,
}

#[derive(Args, Debug, Clone)]
pub struct IndexFlags {
    /// Index server to use (repeatable). Default: config/index.txt, else 127.0.0.1:1024.
    #[arg(long = "index", value_name = "HOST:PORT", value_parser = node_addr)]
    pub indexes: Vec<NodeAddr>,
    /// Give up connecting to a node after this long.
    #[arg(long, default_value = "3s", value_parser = duration)]
    pub connect_timeout: Duration,
    /// Give up waiting for a reply after this long.
    #[arg(long, default_value = "15s", value_parser = duration)]
    pub io_timeout: Duration,
}

#[derive(Args, Debug)]
pub struct PeerArgs {
    /// The folder to share; downloads land here too.
    #[arg(long)]
    pub dir: PathBuf,
    /// Address to serve files on: HOST:PORT, or a bare PORT for every interface.
    #[arg(long, default_value = "0.0.0.0:1025", value_parser = listen_addr)]
    pub listen: SocketAddr,
    /// This peer's name, shown beside its id (its key, in STATE_DIR/node.key).
    /// Default: the folder's name. Names may repeat; ids never do.
    #[arg(long = "name", alias = "id")]
    pub name: Option<String>,
    /// Where partial downloads and console history live (never shared).
    /// Default: DIR/.p2pshare
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// No interactive console: serve until killed (for supervisors and containers).
    #[arg(long)]
    pub no_console: bool,
    /// A new or changed file is published once it has not changed for this long, so
    /// a file still being written is never published half-written.
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub settle: Duration,
    /// Rescan the whole folder this often, besides watching it for changes.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub rescan_interval: Duration,
    /// Limit on upload speed, bytes per second, shared by every download from this
    /// peer (modern and classic alike; k, M, G suffixes: 500k, 25M).
    #[arg(long, value_parser = rate, value_name = "RATE")]
    pub max_upload_rate: Option<u64>,
    #[command(flatten)]
    pub uploads: UploadFlags,
    #[command(flatten)]
    pub transfer: TransferFlags,
    #[command(flatten)]
    pub index: IndexFlags,
    #[command(flatten)]
    pub seeds: SeedListFlags,
    /// A peer to join through, HOST:PORT or ID@HOST:PORT (repeatable), besides the
    /// seeds: asked to be a neighbour at start and, every 2 s, whenever this peer has
    /// none; its peer lists bring the rest. A peer that knows one live member joins
    /// with every seed down. The name is resolved at each try (a name with several
    /// addresses, such as a compose service, may lead to another member each time).
    #[arg(long = "join", value_name = "[ID@]HOST:PORT", value_parser = node_addr)]
    pub join: Vec<NodeAddr>,
    /// Once this peer knows other members, send them TEXT as a direct message: to one
    /// chosen at random, and to another if it does not answer (for up to a minute).
    /// The reply is printed and written to the event log. As the seed-000 nodes
    /// greeted a random peer at start.
    #[arg(long, value_name = "TEXT")]
    pub greet: Option<String>,
    #[command(flatten)]
    pub dht: DhtNodeFlags,
    #[command(flatten)]
    pub liveness: LivenessFlags,
    #[command(flatten)]
    pub log: LogFlags,
    #[command(flatten)]
    pub server: ServerFlags,
    #[command(flatten)]
    pub http: HttpFlags,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Words that must all match (case-insensitive). To exclude a word, put it in the
    /// quoted query with a '-': p2pshare search 'report -draft' (or after '--').
    #[arg(required = true, num_args = 1..)]
    pub words: Vec<String>,
    /// Most results to print.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub index: IndexFlags,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Ctrl-C stops the download and keeps what it has (exit code 130); \
running the same command again resumes it."
)]
pub struct GetArgs {
    /// The file's name, as `search` shows it.
    pub name: String,
    /// Folder to download into.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Only this content: its id as `get` lists the choices or `search` shows it (the
    /// short form, or `sha1:...` from `search --json`). Needed when the holders
    /// disagree on the content; holder counts never pick it.
    #[arg(long = "id")]
    pub content_id: Option<String>,
    /// Place a file that only classic holders have (no content id, so it cannot be
    /// verified) in the folder. Without it, such a file is kept in
    /// STATE_DIR/quarantine/NAME and the command fails.
    #[arg(long)]
    pub allow_unverified: bool,
    /// Also hash the whole file and check its SHA-1 (what sha1sum prints) against the
    /// one its holders claim. Not needed for safety: the content id is the digest of
    /// the piece list, so the verified pieces already prove every byte. This costs a
    /// second pass over the bytes; a mismatch fails the download and nothing is
    /// placed. Without it, the file is shared with no SHA-1 of its own ("-").
    #[arg(long)]
    pub verify_sha1: bool,
    /// Where the partial file lives until it is verified. Default: DIR/.p2pshare
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Find holders on the DHT only, without asking an index server. Without it, the
    /// DHT is asked when no index answers or none knows the name.
    #[arg(long, conflicts_with = "no_dht")]
    pub no_index: bool,
    #[command(flatten)]
    pub transfer: TransferFlags,
    #[command(flatten)]
    pub index: IndexFlags,
    #[command(flatten)]
    pub seeds: SeedListFlags,
    #[command(flatten)]
    pub dht: DhtFlags,
}

#[derive(Args, Debug)]
#[command(
    after_help = "The peer refuses, and says why, a name that is not a plain file name, an \
extension it does not take, a file over its size limit, a name it has with other \
content (a name it has with the same content is a success: 'exists'), and bytes that \
do not hash to the content id sent (nothing is kept then)."
)]
pub struct UploadArgs {
    /// The file to send.
    pub file: PathBuf,
    /// The peer to send it to, at the address it serves files on: HOST:PORT, or
    /// ID@HOST:PORT to check the peer's key.
    #[arg(long, default_value = "127.0.0.1:1025", value_parser = node_addr)]
    pub peer: NodeAddr,
    /// The name the file takes in the peer's folder. Default: its own name.
    #[arg(long)]
    pub name: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Give up connecting, or waiting for the peer (to answer, or to take more
    /// bytes), after this long.
    #[arg(long, default_value = "15s", value_parser = duration)]
    pub timeout: Duration,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The node to ask (index server, seed or peer).
    #[arg(value_parser = node_addr)]
    pub addr: NodeAddr,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Give up connecting, or waiting for the answer, after this long.
    #[arg(long, default_value = "3s", value_parser = duration)]
    pub timeout: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use log::LevelFilter;

    #[test]
    fn the_definition_passes_clap_checks() {
        Cli::command().debug_assert();
    }

    fn level(args: &[&str]) -> LevelFilter {
        Cli::try_parse_from(args).unwrap().log_level()
    }

    #[test]
    fn verbosity_steps_from_info_for_servers_and_warn_for_one_shot_commands() {
        let peer = ["p2pshare", "peer", "--dir", "x", "--no-console"];
        let search = ["p2pshare", "search", "x"];
        assert_eq!(level(&peer), LevelFilter::Info);
        // A console says what matters itself: only warnings reach its terminal.
        let console = ["p2pshare", "peer", "--dir", "x"];
        assert_eq!(level(&console), LevelFilter::Warn);
        let filter = Cli::try_parse_from(console).unwrap().log_filter();
        assert_eq!(filter, "warn,rustyline=error");
        assert_eq!(level(&search), LevelFilter::Warn);
        assert_eq!(level(&[&peer[..], &["-v"]].concat()), LevelFilter::Debug);
        assert_eq!(level(&[&search[..], &["-v"]].concat()), LevelFilter::Info);
        assert_eq!(level(&[&search[..], &["-vv"]].concat()), LevelFilter::Debug);
        assert_eq!(level(&[&peer[..], &["-vv"]].concat()), LevelFilter::Trace);
        assert_eq!(level(&[&peer[..], &["-vvvv"]].concat()), LevelFilter::Trace);
        assert_eq!(level(&["p2pshare", "-q", "index"]), LevelFilter::Error);
        assert_eq!(
            level(&[&search[..], &["--quiet"]].concat()),
            LevelFilter::Error
        );
        assert!(Cli::try_parse_from([&search[..], &["-q", "-v"]].concat()).is_err());
    }

    #[test]
    fn liveness_is_swim_or_classic() {
        let peer = |extra: &[&str]| {
            let args = [&["p2pshare", "peer", "--dir", "x"][..], extra].concat();
            match Cli::try_parse_from(args).map(|c| c.command) {
                Ok(Command::Peer(p)) => Ok(p.liveness.liveness),
                Ok(other) => panic!("{other:?}"),
                Err(e) => Err(e.kind()),
            }
        };
        assert_eq!(peer(&[]), Ok(LivenessMode::Swim));
        assert_eq!(peer(&["--liveness", "classic"]), Ok(LivenessMode::Classic));
        assert_eq!(
            peer(&["--liveness", "gossip"]),
            Err(clap::error::ErrorKind::InvalidValue)
        );
    }
}
