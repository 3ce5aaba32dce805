//! The command line: every flag declared once, with help that teaches.
//!
//! Two stages: clap parses text into these structs (no system calls); `main.rs`
//! validates and builds the runtime objects from them.

use crate::config::{parse_duration, NodeAddr};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "p2pshare",
    version,
    about = "Peer-to-peer file sharing over raw TCP: an index server, sharing peers, verified downloads.",
    long_about = "Peer-to-peer file sharing over raw TCP.\n\n\
        Start an index server, then peers that share folders; search and download from a \
        peer's console, or with the one-shot commands.\n\n\
        Quick start (three terminals):\n  \
        p2pshare index\n  \
        p2pshare peer --dir peers/peer1 --listen 0.0.0.0:1025\n  \
        p2pshare peer --dir peers/peer2 --listen 0.0.0.0:1026\n\n\
        Logging: RUST_LOG=debug (default: info for servers, warn for one-shot commands).\n\
        Exit codes: 0 success, 1 failure (or an unhealthy node for 'status'), 2 bad usage."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run an index server: which peer holds which file; search; leases.
    Index(IndexArgs),
    /// Share a folder, serve it, and search and download from a console.
    Peer(PeerArgs),
    /// Search the index and print the matching files.
    Search(SearchArgs),
    /// Download one file into a folder (verified before it appears).
    Get(GetArgs),
    /// Ask a node for its status; exits 0 only when it answers healthy.
    Status(StatusArgs),
    /// Load generators for measuring (see bench/BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Load an index server: N connections sending requests back to back.
    Index(BenchIndexArgs),
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

fn rate(text: &str) -> Result<u64, String> {
    crate::net::rate::parse_rate(text)
}

#[derive(Args, Debug, Clone)]
pub struct TransferFlags {
    /// Most holders a download takes pieces from at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max_sources: u32,
    /// Limit on download speed, bytes per second (k, M, G suffixes: 500k, 25M).
    #[arg(long, value_parser = rate, value_name = "RATE")]
    pub max_download_rate: Option<u64>,
}

#[derive(Args, Debug, Clone)]
pub struct ServerFlags {
    /// Most connections served at once; more are answered 'err|busy' and closed.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_connections: u32,
    /// Close a connection that sends nothing for this long (e.g. 90s, 2m).
    #[arg(long, default_value = "120s", value_parser = duration)]
    pub idle_timeout: Duration,
}

#[derive(Args, Debug)]
pub struct IndexArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:1024")]
    pub listen: SocketAddr,
    /// Drop a peer, with its files, when it has not sent a heartbeat for this long.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub lease: Duration,
    /// How long an entry from the classic `set|...` dialect lives (classic peers
    /// cannot send heartbeats; each `set` renews it).
    #[arg(long, default_value = "10m", value_parser = duration)]
    pub classic_lease: Duration,
    /// This index's name, shown in `status` and `hello`.
    #[arg(long, default_value = "index")]
    pub id: String,
    /// SQLite database holding the index across restarts (WAL mode; readable with the
    /// sqlite3 command). `:memory:` for a throwaway index that forgets on exit.
    #[arg(long, default_value = "p2pshare-index.db")]
    pub db: PathBuf,
    #[command(flatten)]
    pub server: ServerFlags,
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
    /// Address to serve files on.
    #[arg(long, default_value = "0.0.0.0:1025")]
    pub listen: SocketAddr,
    /// This peer's id. Default: the folder's name.
    #[arg(long)]
    pub id: Option<String>,
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
    pub transfer: TransferFlags,
    #[command(flatten)]
    pub index: IndexFlags,
    #[command(flatten)]
    pub server: ServerFlags,
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
pub struct GetArgs {
    /// The file's name, as `search` shows it.
    pub name: String,
    /// Folder to download into.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Only this content (`sha1:...` from `search --json`); default: what most holders have.
    #[arg(long = "id")]
    pub content_id: Option<String>,
    /// Where the partial file lives until it is verified. Default: DIR/.p2pshare
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub transfer: TransferFlags,
    #[command(flatten)]
    pub index: IndexFlags,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The node to ask (index or peer).
    #[arg(value_parser = node_addr)]
    pub addr: NodeAddr,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value = "3s", value_parser = duration)]
    pub timeout: Duration,
}
