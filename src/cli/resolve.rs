//! The second stage of the command line: parsed arguments become the configurations
//! the roles start from. Checks that need more than one flag, or the file system (a
//! folder that must exist, the address lists in `config/`), happen here; a wrong
//! argument is an [`ArgError::Usage`], a file that cannot be read an
//! [`ArgError::Unreadable`].

use super::{
    DhtFlags, DhtKind, DhtNodeFlags, HttpFlags, IndexArgs, IndexFlags, LivenessFlags, LivenessMode,
    LogFlags, PeerArgs, SeedArgs, SeedListFlags, ServerFlags, UploadFlags,
};
use crate::config::{read_addr_list, NodeAddr};
use crate::dht::{DhtSettings, Network};
use crate::eventlog::EventLog;
use crate::http::HttpSettings;
use crate::identity::NodeKey;
use crate::index::service::IndexConfig;
use crate::index::IndexSettings;
use crate::net::node::Me;
use crate::net::rate::TokenBucket;
use crate::net::server::ServerConfig;
use crate::net::Timeouts;
use crate::overlay::{Liveness, OverlayConfig, SeedConfig, SeedSettings};
use crate::peer::upload::UploadConfig;
use crate::peer::watch::WatchConfig;
use crate::peer::{OverlaySettings, PeerConfig};
use crate::protocol::name::PeerId;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why the arguments cannot be turned into a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    /// An argument is wrong, alone or with another: exit code 2.
    Usage(String),
    /// A file the arguments lead to cannot be read (or an event log opened).
    Unreadable(String),
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::Usage(m) | ArgError::Unreadable(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ArgError {}

fn usage(message: impl Into<String>) -> ArgError {
    ArgError::Usage(message.into())
}

impl ServerFlags {
    pub fn config(&self) -> ServerConfig {
        ServerConfig {
            max_connections: self.max_connections as usize,
            max_per_address: self.max_connections_per_address as usize,
            read_timeout: self.idle_timeout,
            request_timeout: self.request_timeout,
            request_memory: self.request_memory as usize,
            ..ServerConfig::default()
        }
    }
}

impl UploadFlags {
    pub fn config(&self) -> UploadConfig {
        UploadConfig {
            allowed: self.allow_upload,
            extensions: self.upload_extensions.clone(),
            max_size: self.max_upload_size,
            max_running: self.max_uploads as usize,
        }
    }
}

impl HttpFlags {
    /// The HTTP interface's settings, when `--http` is given; it has the node's
    /// connection caps and timeouts.
    pub fn settings(&self, server: ServerConfig) -> Result<Option<HttpSettings>, ArgError> {
        let Some(listen) = self.http else {
            if self.http_token_file.is_some() {
                return Err(usage("--http-token-file needs --http"));
            }
            return Ok(None);
        };
        let token = match &self.http_token_file {
            Some(path) => Some(crate::http::read_token(path).map_err(ArgError::Unreadable)?),
            None => None,
        };
        Ok(Some(HttpSettings {
            listen,
            token,
            server,
        }))
    }
}

impl IndexFlags {
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: self.connect_timeout,
            io: self.io_timeout,
        }
    }

    /// The index servers to use: --index flags, else config/index.txt, else localhost.
    pub fn addrs(&self) -> Result<Vec<NodeAddr>, ArgError> {
        if !self.indexes.is_empty() {
            return Ok(self.indexes.clone());
        }
        match read_addr_list(Path::new("config/index.txt")).map_err(ArgError::Unreadable)? {
            Some(list) if !list.is_empty() => Ok(list),
            _ => Ok(vec![NodeAddr::parse("127.0.0.1:1024").map_err(usage)?]),
        }
    }
}

impl LogFlags {
    /// The event log, opened for appending, when one is asked for.
    pub fn open(&self) -> Result<Option<Arc<EventLog>>, ArgError> {
        match &self.log_file {
            None => Ok(None),
            Some(p) => EventLog::open(p)
                .map(|l| Some(Arc::new(l)))
                .map_err(|e| ArgError::Unreadable(format!("--log-file {}: {e}", p.display()))),
        }
    }
}

impl SeedListFlags {
    /// The seeds to use: --seed flags, else the --seeds file (which must exist when
    /// named), else config/seeds.txt when it exists, else none.
    pub fn addrs(&self) -> Result<Vec<NodeAddr>, ArgError> {
        if !self.seeds.is_empty() {
            return Ok(self.seeds.clone());
        }
        match &self.seeds_file {
            Some(path) => match read_addr_list(path).map_err(ArgError::Unreadable)? {
                Some(list) => Ok(list),
                None => Err(ArgError::Unreadable(format!(
                    "--seeds {}: no such file",
                    path.display()
                ))),
            },
            None => Ok(read_addr_list(Path::new("config/seeds.txt"))
                .map_err(ArgError::Unreadable)?
                .unwrap_or_default()),
        }
    }
}

impl DhtFlags {
    /// The network key or id, when there is one.
    pub fn network(&self) -> Result<Option<Network>, ArgError> {
        Network::load(&self.network_key).map_err(ArgError::Unreadable)
    }

    /// A DHT node for a one-shot command: it answers nobody, takes any port, and
    /// bootstraps from --dht-bootstrap, else from `seeds`. `None` with --no-dht.
    pub fn client_settings(&self, seeds: &[NodeAddr]) -> Result<Option<DhtSettings>, ArgError> {
        self.settings(seeds, std::net::Ipv4Addr::UNSPECIFIED, Some(0), false)
    }

    fn settings(
        &self,
        seeds: &[NodeAddr],
        bind: std::net::Ipv4Addr,
        port: Option<u16>,
        server: bool,
    ) -> Result<Option<DhtSettings>, ArgError> {
        if self.no_dht {
            return Ok(None);
        }
        let public = self.dht == DhtKind::Public;
        let bootstrap = if !self.dht_bootstrap.is_empty() || public {
            self.dht_bootstrap.clone()
        } else {
            seeds.iter().map(|s| s.as_str().to_owned()).collect()
        };
        Ok(Some(DhtSettings {
            bind,
            port,
            bootstrap,
            public,
            // On the public DHT, the crate's adaptive mode decides.
            server: server && !public,
            republish: Duration::from_secs(15 * 60),
            rate: 5000,
            request_timeout: if public {
                mainline::DEFAULT_REQUEST_TIMEOUT
            } else {
                crate::dht::PRIVATE_REQUEST_TIMEOUT
            },
            network: self.network()?,
        }))
    }
}

impl DhtNodeFlags {
    /// The DHT node of a seed or a peer listening on `listen`, bootstrapped from
    /// `seeds`. `None` with --no-dht.
    pub fn settings(
        &self,
        listen: std::net::SocketAddr,
        seeds: &[NodeAddr],
    ) -> Result<Option<DhtSettings>, ArgError> {
        let bind = match listen.ip() {
            std::net::IpAddr::V4(ip) => ip,
            // The crate speaks IPv4 only.
            std::net::IpAddr::V6(_) => std::net::Ipv4Addr::UNSPECIFIED,
        };
        if self.dht_republish < Duration::from_secs(1) {
            return Err(usage("--dht-republish must be 1s or more"));
        }
        Ok(self
            .dht
            .settings(seeds, bind, self.dht_port, true)?
            .map(|s| DhtSettings {
                republish: self.dht_republish,
                rate: self.dht_rate,
                ..s
            }))
    }
}

impl LivenessFlags {
    /// The overlay's timers: the chosen liveness checks, with the flags that tune them.
    pub fn overlay_config(&self) -> Result<OverlayConfig, ArgError> {
        let mut c = match self.liveness {
            LivenessMode::Classic => OverlayConfig::classic(),
            LivenessMode::Swim => OverlayConfig::default(),
        };
        if let Some(d) = self.probe_interval {
            c.probe_round = d;
        }
        if let Some(d) = self.probe_timeout {
            c.probe_timeout = d;
        }
        if let Some(n) = self.indirect_probes {
            c.indirect_probes = n as usize;
        }
        if let Some(d) = self.suspicion_timeout {
            c.suspicion_timeout = d;
        }
        match (self.dead_after_misses, &mut c.liveness) {
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
}

impl IndexArgs {
    pub fn settings(&self) -> Result<IndexSettings, ArgError> {
        // The name goes into replies as a field: the naming rules keep it framable.
        let name =
            PeerId::parse(&self.name).map_err(|e| usage(format!("--name '{}': {e}", self.name)))?;
        for (flag, lease) in [
            ("--lease", self.lease),
            ("--classic-lease", self.classic_lease),
        ] {
            if lease < Duration::from_secs(1) {
                return Err(usage(format!(
                    "{flag} must be at least 1s (peers are told it in whole seconds)"
                )));
            }
        }
        let key = match (&self.key, self.db.as_os_str() == ":memory:") {
            (Some(path), _) => load_key(path)?,
            (None, true) => NodeKey::generate(),
            (None, false) => load_key(&self.db.with_extension("key"))?,
        };
        Ok(IndexSettings {
            listen: self.listen,
            me: Me { key, name },
            db: (self.db.as_os_str() != ":memory:").then(|| self.db.clone()),
            config: IndexConfig {
                lease: self.lease,
                classic_lease: self.classic_lease,
                max_files_per_peer: self.max_files_per_peer as usize,
                max_files_per_address: self.max_files_per_address as usize,
                max_peers_per_address: self.max_peers_per_address as usize,
                publish_rate: u64::from(self.publish_rate),
                publish_burst: 2 * u64::from(self.publish_rate),
                address_rate: u64::from(self.publish_rate_per_address),
                address_burst: 2 * u64::from(self.publish_rate_per_address),
                ..IndexConfig::default()
            },
            server: self.server.config(),
            log: self.log.open()?,
        })
    }
}

impl SeedArgs {
    pub fn settings(&self) -> Result<SeedSettings, ArgError> {
        let refresh = OverlayConfig::default().seed_refresh;
        if self.forget_after <= refresh {
            return Err(usage(format!(
                "--forget-after must be longer than {}s: peers register again every {}s",
                refresh.as_secs(),
                refresh.as_secs()
            )));
        }
        if let Some(name) = &self.name {
            PeerId::parse(name).map_err(|e| usage(format!("seed name '{name}': {e}")))?;
        }
        // A seed on a port the system picks (0) cannot be listed anyway: its key is
        // made for this run only, unless --key names one.
        let key = match (&self.key, self.listen.port()) {
            (Some(path), _) => load_key(path)?,
            (None, 0) => NodeKey::generate(),
            (None, port) => load_key(&PathBuf::from(format!("p2pshare-seed-{port}.key")))?,
        };
        Ok(SeedSettings {
            listen: self.listen,
            key,
            name: self.name.clone(),
            seeds: self.seeds.addrs()?,
            config: SeedConfig {
                forget_after: self.forget_after,
                sync_interval: self.sync_interval,
                list_cap: self.list_cap as usize,
                ids_per_address: self.max_peers_per_address as usize,
                ..SeedConfig::default()
            },
            server: self.server.config(),
            log: self.log.open()?,
        })
    }
}

impl PeerArgs {
    /// The peer's configuration: the shared folder must exist; the id defaults to its
    /// name.
    pub fn config(&self) -> Result<PeerConfig, ArgError> {
        let dir = self.dir.canonicalize().map_err(|e| {
            ArgError::Unreadable(format!("shared folder {}: {e}", self.dir.display()))
        })?;
        if !dir.is_dir() {
            return Err(usage(format!("--dir {}: not a folder", self.dir.display())));
        }
        let name_text = match &self.name {
            Some(name) => name.clone(),
            None => dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("peer")
                .to_owned(),
        };
        let name = PeerId::parse(&name_text).map_err(|e| {
            usage(format!(
                "peer name '{name_text}': {e} (choose one with --name)"
            ))
        })?;
        let state_dir = self
            .state_dir
            .clone()
            .unwrap_or_else(|| dir.join(".p2pshare"));
        let key = load_key(&state_dir.join(crate::identity::KEY_FILE))?;
        Ok(PeerConfig {
            state_dir,
            dir,
            listen: self.listen,
            indexes: self.index.addrs()?,
            me: Me { key, name },
            server: self.server.config(),
            timeouts: self.index.timeouts(),
            watch: WatchConfig {
                settle: self.settle,
                rescan_every: self.rescan_interval,
            },
            max_sources: self.transfer.max_sources as usize,
            max_unverified_size: self.transfer.max_unverified_size,
            page_cache: self.transfer.page_cache,
            upload_limit: self.max_upload_rate.map(|r| Arc::new(TokenBucket::new(r))),
            download_limit: self
                .transfer
                .max_download_rate
                .map(|r| Arc::new(TokenBucket::new(r))),
            dht: self.dht.settings(self.listen, &self.seeds.addrs()?)?,
            upload: self.uploads.config(),
            overlay: OverlaySettings {
                seeds: self.seeds.addrs()?,
                contacts: self.join.clone(),
                config: self.liveness.overlay_config()?,
                log: self.log.open()?,
            },
            greet: self.greet_text()?,
        })
    }

    /// The `--greet` text: not blank, and short enough for a direct message.
    fn greet_text(&self) -> Result<Option<String>, ArgError> {
        let Some(text) = &self.greet else {
            return Ok(None);
        };
        if text.trim().is_empty() {
            return Err(usage("--greet: the text is empty"));
        }
        if text.len() > crate::overlay::wire::MAX_TEXT {
            return Err(usage(format!(
                "--greet: the text is {} bytes, at most {}",
                text.len(),
                crate::overlay::wire::MAX_TEXT
            )));
        }
        Ok(Some(text.clone()))
    }
}

/// The key in `path`, created when there is none.
fn load_key(path: &Path) -> Result<NodeKey, ArgError> {
    match NodeKey::load_or_create(path) {
        Ok((key, created)) => {
            if created {
                log::info!("created the key {} (id {})", path.display(), key.id());
            }
            Ok(key)
        }
        Err(e) => Err(ArgError::Unreadable(format!("key {}: {e}", path.display()))),
    }
}
