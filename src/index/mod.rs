//! The index server: which peer holds which file; search; leases.
//!
//! [`store`] and [`search`] are the pure core; [`service`] turns requests into replies
//! around it and runs the lease sweep, holding peers and addresses to [`quota`]; [`durable`] keeps it in SQLite. [`Index`]
//! starts the whole role and stops it.
//!
//! Threads: the server's accept and connection threads, `index-sweep` (leases), and
//! the database writer of [`durable`].

mod compact;
pub mod durable;
pub mod quota;
pub mod search;
pub mod service;
pub mod store;

use crate::eventlog::EventLog;
use crate::net::node::Me;
use crate::net::server::{self, ServerConfig, ServerHandle, ServerStats};
use service::{IndexConfig, IndexService};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

/// Everything an index server needs to start.
pub struct IndexSettings {
    pub listen: SocketAddr,
    /// The index's key and name, in `status` and `hello` answers.
    pub me: Me,
    /// The SQLite database; `None` keeps everything in memory.
    pub db: Option<PathBuf>,
    pub config: IndexConfig,
    pub server: ServerConfig,
    pub log: Option<Arc<EventLog>>,
}

/// A running index server.
pub struct Index {
    server: ServerHandle,
    service: Arc<IndexService>,
    me: Me,
}

impl Index {
    /// Opens (or creates) the database, restores what it holds, binds and serves.
    pub fn start(settings: IndexSettings) -> Result<Index, String> {
        if settings.config.lease < std::time::Duration::from_secs(1)
            || settings.config.classic_lease < std::time::Duration::from_secs(1)
        {
            return Err("leases must be at least 1s (peers are told them in whole seconds)".into());
        }
        let listener = TcpListener::bind(settings.listen)
            .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
        let stats = Arc::new(ServerStats::default());
        let me = settings.me.clone();
        let mut service = IndexService::new(settings.me, settings.config, stats.clone());
        if let Some(log) = settings.log {
            service = service.with_event_log(log);
        }
        if let Some(db) = &settings.db {
            let (with_db, peers, files) = service.open_database(db).map_err(|e| e.to_string())?;
            service = with_db;
            log::info!(
                "index database {}: restored {peers} peers and {files} files",
                db.display()
            );
        }
        let service = Arc::new(service);
        service
            .start_sweeper()
            .map_err(|e| format!("cannot start the lease sweep: {e}"))?;
        let server = server::spawn(listener, settings.server, service.clone(), stats)
            .map_err(|e| format!("cannot start the server: {e}"))?;
        Ok(Index {
            server,
            service,
            me,
        })
    }

    /// Who the index is: its key and name.
    pub fn me(&self) -> &Me {
        &self.me
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The service behind the server, for other interfaces to the same index (HTTP).
    pub fn service(&self) -> &Arc<IndexService> {
        &self.service
    }

    /// Stops accepting, closes every connection and waits for their threads.
    pub fn shutdown(self) {
        self.server.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::value;
    use crate::net::client::Client;
    use crate::net::node::HelloRole;
    use crate::net::testing::test_me;
    use crate::net::Timeouts;
    use std::time::{Duration, Instant};

    /// A real index on a socket: the server counts connections and requests by verb
    /// and outcome, and the lease sweep sets the size gauges. The registry is the
    /// process's, shared with tests running beside this one: only growth is asserted.
    #[test]
    fn a_served_index_counts_into_the_process_metrics() {
        let index = Index::start(IndexSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            me: test_me("idx"),
            db: None,
            config: IndexConfig::default(),
            server: ServerConfig::default(),
            log: None,
        })
        .unwrap();
        let requests = |verb: &str, outcome: &str| {
            value(&format!(
                r#"p2pshare_requests_total{{role="index",verb="{verb}",outcome="{outcome}"}}"#
            ))
        };
        let accepted = || value(r#"p2pshare_connections_accepted_total{role="index"}"#);
        let live = || value(r#"p2pshare_connections_live{role="index"}"#);
        let before = (
            requests("ping", "ok"),
            requests("beat", "err"),
            requests("other", "err"),
            requests("publish", "ok"),
            accepted(),
        );

        let addr = index.local_addr().to_string();
        let mut c = Client::connect(&addr, &Timeouts::default()).unwrap();
        c.call(&["ping"]).unwrap();
        assert!(c.call(&["beat"]).is_err(), "no session yet");
        assert!(c.call(&["no-such-verb"]).is_err());
        c.hello(Some(&test_me("p1")), HelloRole::Peer, 2000, None)
            .unwrap();
        let id = crate::protocol::hash::Sha1Digest::of(b"m.txt");
        let row = format!("m.txt|1|{id}|-\n");
        c.send(format!("publish|1\n{row}").as_bytes(), "publish")
            .unwrap();
        c.read_ok("publish").unwrap();

        assert!(requests("ping", "ok") > before.0);
        assert!(requests("beat", "err") > before.1);
        assert!(requests("other", "err") > before.2);
        assert!(requests("publish", "ok") > before.3);
        assert!(accepted() > before.4);
        assert!(live() >= 1.0, "this connection is live");

        // The sweep runs every second; another index in this process may set the
        // gauges in between, so wait to see ours.
        let deadline = Instant::now() + Duration::from_secs(5);
        while value("p2pshare_index_files") < 1.0 || value("p2pshare_index_peers") < 1.0 {
            assert!(Instant::now() < deadline, "the sweep set no index size");
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(c);
        index.shutdown();
    }
}
