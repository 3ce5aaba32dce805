//! The peer: shares a folder, serves it, downloads, and keeps the indexes informed.
//!
//! Threads: the server's accept and connection threads (serve.rs, which also take
//! uploads: [`upload`]), one link thread
//! per index (links.rs), one `peer-scan` thread that hashes the folder at start, the
//! overlay's `overlay` and `olink-*` threads ([`crate::overlay::runtime`]), the
//! `peer-greet` thread while a `--greet` looks for a member to greet ([`message`]), and
//! whoever downloads through its [`Downloader`] (the console on its own thread, the
//! HTTP interface's `download-job-<k>` threads ([`jobs`])).
//!
//! The cores it drives are the [`catalog::Catalog`] and the [`plan::PiecePlan`].

mod announce;
pub mod catalog;
pub mod download;
pub mod downloader;
pub mod finder;
pub mod hashcache;
pub mod jobs;
pub mod links;
pub mod message;
pub mod plan;
pub mod pool;
pub mod serve;
pub mod upload;
pub mod watch;

use crate::clock::Clock;
use crate::config::NodeAddr;
use crate::dht::DhtNode;
use crate::eventlog::EventLog;
use crate::net::node::Me;
use crate::net::rate::TokenBucket;
use crate::net::server::{self, ServerConfig, ServerHandle, ServerStats};
use crate::net::Timeouts;
use crate::overlay::member::PeerNode;
use crate::overlay::runtime::{self, CoreSetup, Identity, OverlayHandle};
use crate::overlay::{OverlayConfig, OverlayEvent};
use crate::protocol::codec;
use crate::protocol::commands::Role;
use crate::protocol::name::PeerId;
use crate::protocol::VERSION;
use catalog::Catalog;
use crossbeam_channel::Receiver;
pub use downloader::Downloader;
use finder::{DhtUse, Finder};
pub use jobs::Jobs;
use links::LinkState;
use links::{LinkConfig, Links};
use pool::IndexPool;
use serve::PeerService;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use watch::WatchConfig;

/// Everything a peer needs to start.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    pub dir: PathBuf,
    pub state_dir: PathBuf,
    pub listen: SocketAddr,
    pub indexes: Vec<NodeAddr>,
    /// The peer's key (STATE_DIR/node.key) and name (the folder's, or `--id`).
    pub me: Me,
    pub server: ServerConfig,
    pub timeouts: Timeouts,
    pub watch: WatchConfig,
    /// Most holders a download uses at once.
    pub max_sources: usize,
    /// Most bytes a download takes from a classic holder without a content id.
    pub max_unverified_size: u64,
    /// Write downloads through the page cache (see [`DownloadRequest::direct_io`]).
    pub page_cache: bool,
    pub upload_limit: Option<Arc<TokenBucket>>,
    pub download_limit: Option<Arc<TokenBucket>>,
    /// What the peer takes from uploaders (nothing without `--allow-upload`).
    pub upload: upload::UploadConfig,
    pub overlay: OverlaySettings,
    /// The DHT node to run (`None`: `--no-dht`).
    pub dht: Option<crate::dht::DhtSettings>,
    /// A direct message for one live member chosen at random, once this peer knows
    /// some (`--greet`): see [`greet`].
    pub greet: Option<String>,
}

/// The peer's part in the overlay: seeds, contacts, timers, event log.
#[derive(Clone)]
pub struct OverlaySettings {
    /// The seeds to join through (none: the peer joins only when others contact it).
    pub seeds: Vec<NodeAddr>,
    /// Peers to join through besides the seeds (`--join`): asked to be neighbours at
    /// start and whenever this peer has none, so it joins with every seed down.
    pub contacts: Vec<NodeAddr>,
    pub config: OverlayConfig,
    pub log: Option<Arc<EventLog>>,
}

impl std::fmt::Debug for OverlaySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverlaySettings")
            .field("seeds", &self.seeds)
            .field("contacts", &self.contacts)
            .field("config", &self.config)
            .field("log", &self.log.is_some())
            .finish()
    }
}

/// State the peer's server, console and links share.
pub struct PeerShared {
    /// The peer's id on the wire: its public key.
    pub id: PeerId,
    pub me: Me,
    pub catalog: RwLock<Catalog>,
    pub clock: Clock,
    pub stats: Arc<ServerStats>,
    pub bytes_uploaded: AtomicU64,
    pub bytes_downloaded: AtomicU64,
    pub downloads: AtomicU64,
    /// Set when the peer shuts down; background threads stop at their next tick.
    pub stopping: AtomicBool,
    /// Each index link's state, in the order the indexes were given; written by the
    /// link threads, read by `status`. A leaf lock.
    pub links: Mutex<Vec<LinkState>>,
    /// The latest broadcasts and messages, newest last, for the HTTP interface. A
    /// leaf lock.
    recent: Mutex<std::collections::VecDeque<Recent>>,
    /// The peer's DHT node, once started (never, with `--no-dht`).
    pub dht: std::sync::OnceLock<Arc<crate::dht::DhtNode>>,
}

/// A broadcast or message this peer received, as the HTTP interface lists them.
#[derive(Clone, Debug)]
pub struct Recent {
    /// `broadcast`, `message` (a node that proved its key) or `http-message` (a name
    /// nothing proves).
    pub kind: &'static str,
    /// The sender's name as given.
    pub from: String,
    /// The sender's id, when its key proved it.
    pub id: Option<String>,
    pub text: String,
    /// When it arrived (Unix milliseconds).
    pub at_ms: u64,
}

/// Broadcasts and messages kept for the HTTP interface.
pub const RECENT_KEPT: usize = 50;

impl PeerShared {
    pub fn new(me: Me, stats: Arc<ServerStats>, indexes: &[NodeAddr]) -> PeerShared {
        PeerShared {
            links: Mutex::new(
                indexes
                    .iter()
                    .map(|a| LinkState {
                        index: a.to_string(),
                        ..LinkState::default()
                    })
                    .collect(),
            ),
            id: me.id().clone(),
            me,
            catalog: RwLock::new(Catalog::new()),
            clock: Clock::new(),
            stats,
            bytes_uploaded: AtomicU64::new(0),
            bytes_downloaded: AtomicU64::new(0),
            downloads: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            recent: Mutex::new(std::collections::VecDeque::new()),
            dht: std::sync::OnceLock::new(),
        }
    }

    /// Keeps a broadcast or message for the HTTP interface (the newest
    /// [`RECENT_KEPT`]).
    pub fn remember(&self, r: Recent) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() >= RECENT_KEPT {
            recent.pop_front();
        }
        recent.push_back(r);
    }

    /// The broadcasts and messages kept, oldest first.
    pub fn recent(&self) -> Vec<Recent> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().cloned().collect()
    }

    pub fn catalog(&self) -> std::sync::RwLockReadGuard<'_, Catalog> {
        self.catalog.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn catalog_mut(&self) -> std::sync::RwLockWriteGuard<'_, Catalog> {
        self.catalog.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Each index link's state, in the order the indexes were given.
    pub fn link_states(&self) -> Vec<LinkState> {
        self.links.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Why the peer is not healthy, if it is not: every index it publishes to has
    /// failed since its last success, so nobody can find its files. An index still
    /// being dialled for the first time does not count against it.
    pub fn failing(&self) -> Option<String> {
        let links = self.link_states();
        if links.is_empty() || links.iter().any(|l| l.connected || l.last_error.is_none()) {
            return None;
        }
        let why: Vec<String> = links
            .iter()
            .map(|l| format!("{} ({})", l.index, l.last_error.as_deref().unwrap_or("")))
            .collect();
        Some(format!("no index server reachable: {}", why.join(", ")))
    }

    /// The `index.N.*` rows of `status`, one group per index link (N from 1).
    pub fn link_rows(&self) -> Vec<(String, String)> {
        let links = self.link_states();
        let mut rows = vec![
            ("indexes".to_owned(), links.len().to_string()),
            (
                "indexes_up".to_owned(),
                links.iter().filter(|l| l.connected).count().to_string(),
            ),
        ];
        for (i, l) in links.iter().enumerate() {
            let n = i + 1;
            let state = match (l.connected, &l.last_error) {
                (true, _) => "up",
                (false, None) => "connecting",
                (false, Some(_)) => "down",
            };
            rows.push((format!("index.{n}.address"), l.index.clone()));
            rows.push((format!("index.{n}.state"), state.to_owned()));
            rows.push((format!("index.{n}.files"), l.files_known.to_string()));
            if let (false, Some(e)) = (l.connected, &l.last_error) {
                rows.push((format!("index.{n}.error"), codec::printable_field(e)));
            }
        }
        rows
    }

    /// The rows of `status`.
    pub fn status_rows(&self) -> Vec<(&'static str, String)> {
        let (files, bytes) = {
            let c = self.catalog();
            (c.len(), c.total_bytes())
        };
        vec![
            ("role", "peer".into()),
            ("id", self.id.to_string()),
            ("name", self.me.name.to_string()),
            ("version", env!("CARGO_PKG_VERSION").into()),
            ("protocol", VERSION.to_string()),
            ("uptime_secs", self.clock.uptime().as_secs().to_string()),
            ("files", files.to_string()),
            ("bytes_shared", bytes.to_string()),
            (
                "connections",
                self.stats.live.load(Ordering::Relaxed).to_string(),
            ),
            (
                "requests",
                self.stats.requests.load(Ordering::Relaxed).to_string(),
            ),
            (
                "bytes_uploaded",
                self.bytes_uploaded.load(Ordering::Relaxed).to_string(),
            ),
            (
                "bytes_downloaded",
                self.bytes_downloaded.load(Ordering::Relaxed).to_string(),
            ),
            (
                "downloads",
                self.downloads.load(Ordering::Relaxed).to_string(),
            ),
            ("health", "ok".into()),
        ]
    }
}

/// Things the user may want to see, for the console (or main.rs) to print.
#[derive(Clone, Debug)]
pub enum PeerEvent {
    /// The initial scan finished.
    Shared {
        files: usize,
        bytes: u64,
        /// How many of them the hash cache spared hashing again.
        from_cache: usize,
        skipped: Vec<String>,
    },
    /// Hashing a large folder: how far it has got.
    Hashing {
        files_done: usize,
        files_total: usize,
        bytes_done: u64,
        bytes_total: u64,
    },
    ScanFailed(String),
    IndexUp {
        index: String,
        files: usize,
    },
    IndexDown {
        index: String,
        reason: String,
    },
    /// Membership and broadcast news from the overlay.
    Overlay(OverlayEvent),
    /// A direct message (`msg`) from another node.
    Message {
        /// The name the sender gave, and its id (its key, proven).
        from: String,
        id: PeerId,
        text: String,
        remote: SocketAddr,
    },
    /// A message posted to the HTTP interface (`POST /message`): the sender is
    /// whatever name the body gave, proven by nothing.
    HttpMessage {
        from: String,
        text: String,
        remote: SocketAddr,
    },
    /// A file pushed to this peer (`upload`, `POST /upload`) was proven and placed in
    /// the folder, and is shared now.
    Uploaded {
        name: String,
        size: u64,
        id: crate::protocol::hash::Sha1Digest,
        remote: SocketAddr,
    },
    /// The greeting (`--greet`) was answered by this member.
    Greeted {
        name: String,
        id: PeerId,
        reply: String,
    },
    /// No member answered the greeting in time.
    GreetFailed {
        why: String,
    },
}

pub struct Peer {
    config: PeerConfig,
    shared: Arc<PeerShared>,
    downloader: Arc<Downloader>,
    jobs: Arc<Jobs>,
    links: Option<Links>,
    server: Option<ServerHandle>,
    service: Arc<PeerService>,
    events: Receiver<PeerEvent>,
    overlay: OverlayHandle,
}

impl Peer {
    /// Binds, starts serving, connects to the indexes and starts hashing the folder.
    pub fn start(config: PeerConfig) -> Result<Peer, String> {
        if !config.dir.is_dir() {
            return Err(format!("{} is not a folder", config.dir.display()));
        }
        std::fs::create_dir_all(&config.state_dir).map_err(|e| {
            format!(
                "cannot create state dir {}: {e}",
                config.state_dir.display()
            )
        })?;
        let listener = TcpListener::bind(config.listen)
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let stats = Arc::new(ServerStats::default());
        let shared = Arc::new(PeerShared::new(
            config.me.clone(),
            stats.clone(),
            &config.indexes,
        ));
        let (tx, events) = crossbeam_channel::unbounded();
        let (overlay, inbox) = OverlayHandle::channel(&config.overlay.seeds)?;
        let uploads = Arc::new(upload::Uploads::new(
            config.upload.clone(),
            shared.clone(),
            &config.dir,
            &config.state_dir,
            Some(tx.clone()),
        ));
        let service = Arc::new(PeerService {
            shared: shared.clone(),
            upload_limit: config.upload_limit.clone(),
            overlay: overlay.clone(),
            events: tx.clone(),
            uploads: uploads.clone(),
            log: config.overlay.log.clone(),
        });
        let server = server::spawn(listener, config.server, service.clone(), stats)
            .map_err(|e| format!("cannot start the server: {e}"))?;
        Self::start_overlay(
            &config,
            server.local_addr().port(),
            overlay.clone(),
            inbox,
            tx.clone(),
            shared.clone(),
        )
        .map_err(|e| format!("cannot start the overlay: {e}"))?;
        if let Some(text) = &config.greet {
            message::Greeting {
                text: text.clone(),
                me: config.me.clone(),
                port: server.local_addr().port(),
                timeouts: config.timeouts,
                overlay: overlay.clone(),
                shared: shared.clone(),
                events: tx.clone(),
                log: config.overlay.log.clone(),
            }
            .spawn()
            .map_err(|e| format!("cannot start the greeting: {e}"))?;
        }
        // Closed (dropped) by the scan thread when the initial scan is done.
        let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
        let links = Links::start(
            &config.indexes,
            shared.clone(),
            LinkConfig {
                listen_port: server.local_addr().port(),
                timeouts: config.timeouts,
                max_backoff: Duration::from_secs(5),
            },
            tx.clone(),
            gate_rx,
        )
        .map_err(|e| format!("cannot start index links: {e}"))?;
        let port = server.local_addr().port();
        let dht = match &config.dht {
            Some(s) => {
                let node = Arc::new(DhtNode::start(s.clone(), port)?);
                let _ = shared.dht.set(node.clone());
                announce::spawn(shared.clone(), node.clone(), port)
                    .map_err(|e| format!("cannot start the DHT announcer: {e}"))?;
                DhtUse::Merge(node)
            }
            None => DhtUse::Off,
        };
        uploads.set_publisher(links.publisher());
        let downloader = Arc::new(Downloader {
            shared: shared.clone(),
            config: config.clone(),
            pool: IndexPool::new(config.indexes.clone(), config.timeouts),
            finder: Finder {
                dht,
                no_index: false,
                self_id: shared.id.to_string(),
                timeouts: config.timeouts,
            },
            publisher: Some(links.publisher()),
        });
        let jobs = Arc::new(Jobs::new(downloader.clone()));
        let peer = Peer {
            config,
            shared,
            downloader,
            jobs,
            links: Some(links),
            server: Some(server),
            service,
            events,
            overlay,
        };
        let publisher = peer
            .links
            .as_ref()
            .map(|l| l.publisher())
            .expect("links were just started");
        watch::Sharer {
            dir: peer.config.dir.clone(),
            cache_path: peer.config.state_dir.join("hashcache.bin"),
            shared: peer.shared.clone(),
            publisher,
            events: tx,
            config: peer.config.watch,
        }
        .spawn(gate_tx)
        .map_err(|e| format!("cannot start sharing: {e}"))?;
        Ok(peer)
    }

    fn start_overlay(
        config: &PeerConfig,
        port: u16,
        handle: OverlayHandle,
        inbox: Receiver<runtime::Input>,
        events: crossbeam_channel::Sender<PeerEvent>,
        shared: Arc<PeerShared>,
    ) -> std::io::Result<()> {
        let settings = config.overlay.clone();
        let wall = crate::clock::wall_ms();
        // A restarted peer must outrank its earlier self (which may have been declared
        // dead) and must not reuse its broadcast numbers: both start from the clock.
        let mut node = PeerNode::new(
            config.me.key.clone(),
            config.me.name.clone(),
            settings.seeds.len(),
            settings.config.clone(),
            runtime::random_seed(),
            wall / 1000,
            wall * 1000,
        )
        .with_contacts(settings.contacts.len());
        // Neighbours catch a new link up on recent broadcasts; this process printed
        // none of them, and those sent before it started are not news to its user.
        node.show_said_from(wall);
        let seeds = settings.seeds.clone();
        let log = settings.log.clone();
        let sink: runtime::EventSink = Box::new(move |ev: OverlayEvent| {
            if let Some(l) = &log {
                runtime::log_event(l, &ev, &seeds);
            }
            if let OverlayEvent::Said {
                origin, name, text, ..
            } = &ev
            {
                shared.remember(Recent {
                    kind: "broadcast",
                    from: name.as_ref().unwrap_or(origin).to_string(),
                    id: Some(origin.to_string()),
                    text: text.clone(),
                    at_ms: crate::clock::wall_ms(),
                });
            }
            let _ = events.send(PeerEvent::Overlay(ev));
        });
        runtime::spawn_core(
            node,
            CoreSetup {
                me: Identity {
                    role: Role::Peer,
                    me: config.me.clone(),
                    port,
                },
                seeds: settings.seeds,
                contacts: settings.contacts,
                timeouts: config.timeouts,
                inbox,
                handle,
                sink,
            },
            "overlay",
        )
    }

    /// The overlay: broadcast, members, status.
    pub fn overlay(&self) -> &OverlayHandle {
        &self.overlay
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server
            .as_ref()
            .map(|s| s.local_addr())
            .unwrap_or(self.config.listen)
    }

    pub fn config(&self) -> &PeerConfig {
        &self.config
    }

    pub fn shared(&self) -> &Arc<PeerShared> {
        &self.shared
    }

    pub fn pool(&self) -> &IndexPool {
        self.downloader.pool()
    }

    pub fn events(&self) -> &Receiver<PeerEvent> {
        &self.events
    }

    /// A handle that sends commands to every index link (for leaving from another
    /// thread).
    pub fn publisher(&self) -> Option<links::Publisher> {
        self.links.as_ref().map(|l| l.publisher())
    }

    pub fn link_states(&self) -> Vec<links::LinkState> {
        self.shared.link_states()
    }

    /// Downloads into the shared folder, then shares the file onward (see
    /// [`Downloader::download`]); the console and the HTTP interface share it.
    pub fn downloader(&self) -> &Arc<Downloader> {
        &self.downloader
    }

    /// Downloads running in the background (started over HTTP).
    pub fn jobs(&self) -> &Arc<Jobs> {
        &self.jobs
    }

    /// Leaves the overlay and every index, and stops serving.
    pub fn shutdown(mut self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        self.jobs.stop_all(Duration::from_secs(5));
        self.overlay.leave();
        if let Some(l) = self.links.take() {
            l.leave();
        }
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
        if let Some(d) = self.shared.dht.get() {
            d.stop();
        }
    }

    /// The service behind the server, for other interfaces to the same peer (HTTP).
    pub fn service(&self) -> &Arc<PeerService> {
        &self.service
    }
}
