//! The peer: shares a folder, serves it, downloads, and keeps the indexes informed.
//!
//! Threads: the server's accept and connection threads (serve.rs), one link thread
//! per index (links.rs), one `peer-scan` thread that hashes the folder at start, the
//! overlay's `overlay` and `olink-*` threads ([`crate::overlay::runtime`]), and
//! whoever calls [`Peer::download`] (the console, or a one-shot command).
//!
//! The cores it drives are the [`catalog::Catalog`] and the [`plan::PiecePlan`].

pub mod catalog;
pub mod console;
pub mod download;
pub mod hashcache;
pub mod links;
pub mod plan;
pub mod pool;
pub mod serve;
pub mod watch;

use crate::config::NodeAddr;
use crate::net::rate::TokenBucket;
use crate::net::server::{self, ServerConfig, ServerHandle, ServerStats};
use crate::net::Timeouts;
use crate::overlay::peer::PeerNode;
use crate::overlay::runtime::{self, CoreSetup, EventLog, Identity, OverlayHandle};
use crate::overlay::{OverlayConfig, OverlayEvent};
use crate::protocol::commands::Role;
use crate::protocol::hash::Sha1Digest;
use crate::protocol::name::{FileName, PeerId};
use catalog::SharedFile;
use crossbeam_channel::Receiver;
use download::{DownloadError, DownloadRequest, Outcome, Progress};
use links::{LinkCommand, LinkConfig, Links};
use pool::IndexPool;
use serve::{PeerService, PeerShared};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use watch::WatchConfig;

/// Everything a peer needs to start.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    pub dir: PathBuf,
    pub state_dir: PathBuf,
    pub listen: SocketAddr,
    pub indexes: Vec<NodeAddr>,
    pub id: PeerId,
    pub server: ServerConfig,
    pub timeouts: Timeouts,
    pub watch: WatchConfig,
    /// Most holders a download uses at once.
    pub max_sources: usize,
    pub upload_limit: Option<Arc<TokenBucket>>,
    pub download_limit: Option<Arc<TokenBucket>>,
    pub overlay: OverlaySettings,
}

/// The peer's part in the overlay: seeds, timers, event log.
#[derive(Clone)]
pub struct OverlaySettings {
    /// The seeds to join through (none: the peer joins only when others contact it).
    pub seeds: Vec<NodeAddr>,
    pub config: OverlayConfig,
    pub log: Option<Arc<EventLog>>,
}

impl std::fmt::Debug for OverlaySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverlaySettings")
            .field("seeds", &self.seeds)
            .field("config", &self.config)
            .field("log", &self.log.is_some())
            .finish()
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
        from: String,
        text: String,
        remote: SocketAddr,
    },
}

pub struct Peer {
    config: PeerConfig,
    shared: Arc<PeerShared>,
    pool: IndexPool,
    links: Option<Links>,
    server: Option<ServerHandle>,
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
        let shared = Arc::new(PeerShared::new(config.id.clone(), stats.clone()));
        let (tx, events) = crossbeam_channel::unbounded();
        let (overlay, inbox) = OverlayHandle::channel();
        let server = server::spawn(
            listener,
            config.server,
            Arc::new(PeerService {
                shared: shared.clone(),
                upload_limit: config.upload_limit.clone(),
                overlay: overlay.clone(),
                events: tx.clone(),
            }),
            stats,
        )
        .map_err(|e| format!("cannot start the server: {e}"))?;
        Self::start_overlay(
            &config,
            server.local_addr().port(),
            overlay.clone(),
            inbox,
            tx.clone(),
        )
        .map_err(|e| format!("cannot start the overlay: {e}"))?;
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
        let pool = IndexPool::new(config.indexes.clone(), config.timeouts);
        let peer = Peer {
            config,
            shared,
            pool,
            links: Some(links),
            server: Some(server),
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
    ) -> std::io::Result<()> {
        let settings = config.overlay.clone();
        let wall = crate::clock::wall_ms();
        // A restarted peer must outrank its earlier self (which may have been declared
        // dead) and must not reuse its broadcast numbers: both start from the clock.
        let mut node = PeerNode::new(
            config.id.clone(),
            settings.seeds.len(),
            settings.config.clone(),
            runtime::random_seed(),
            wall / 1000,
            wall * 1000,
        );
        // Neighbours catch a new link up on recent broadcasts; this process printed
        // none of them, and those sent before it started are not news to its user.
        node.show_said_from(wall);
        let seeds = settings.seeds.clone();
        let log = settings.log.clone();
        let sink: runtime::EventSink = Box::new(move |ev: OverlayEvent| {
            if let Some(l) = &log {
                runtime::log_event(l, &ev, &seeds);
            }
            let _ = events.send(PeerEvent::Overlay(ev));
        });
        runtime::spawn_peer(
            node,
            CoreSetup {
                me: Identity {
                    role: Role::Peer,
                    id: config.id.clone(),
                    port,
                },
                seeds: settings.seeds,
                timeouts: config.timeouts,
                inbox,
                handle,
                sink,
            },
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
        &self.pool
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
        self.links.as_ref().map(|l| l.states()).unwrap_or_default()
    }

    /// Downloads into the shared folder, then shares the file onward.
    pub fn download(
        &self,
        name: FileName,
        id: Option<Sha1Digest>,
        progress: &dyn Progress,
        cancel: &AtomicBool,
    ) -> Result<Outcome, DownloadError> {
        let existing = self
            .shared
            .catalog()
            .get(name.as_str())
            .map(|f| f.hashes.id);
        let req = DownloadRequest {
            name: name.clone(),
            id,
            dest_dir: &self.config.dir,
            state_dir: &self.config.state_dir,
            existing,
            self_id: self.shared.id.as_str(),
            timeouts: self.config.timeouts,
            max_sources: self.config.max_sources,
            download_limit: self.config.download_limit.clone(),
        };
        let outcome = download::download(&self.pool, &req, progress, cancel)?;
        if let Outcome::Downloaded(done) = &outcome {
            self.shared.downloads.fetch_add(1, Ordering::Relaxed);
            self.shared
                .bytes_downloaded
                .fetch_add(done.hashes.size, Ordering::Relaxed);
            let file = SharedFile {
                name,
                path: done
                    .path
                    .canonicalize()
                    .unwrap_or_else(|_| done.path.clone()),
                stamp: done.stamp,
                hashes: done.hashes.clone(),
            };
            self.shared.catalog_mut().insert(file.clone());
            if let Some(l) = &self.links {
                l.send(LinkCommand::Publish(vec![file]));
            }
        }
        Ok(outcome)
    }

    /// Leaves the overlay and every index, and stops serving.
    pub fn shutdown(mut self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        self.overlay.leave();
        if let Some(l) = self.links.take() {
            l.leave();
        }
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}
