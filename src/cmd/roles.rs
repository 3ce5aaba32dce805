//! The long-running roles: an index server, a seed, a peer (with or without its
//! console). Each starts its library type, says where it listens, and runs until
//! SIGINT or SIGTERM, then stops it cleanly.

use super::CmdError;
use crate::cli::{IndexArgs, PeerArgs, SeedArgs};
use crate::console;
use crate::dht::DhtNode;
use crate::http;
use crate::index::Index;
use crate::output;
use crate::overlay::Seed;
use crate::peer::Peer;
use crate::signals::{self, Signal};
use std::sync::Arc;

/// `p2pshare index`.
pub fn index(a: IndexArgs) -> Result<(), CmdError> {
    let settings = a.settings()?;
    let http_settings = a.http.settings(a.server.config())?;
    // Peers beat every third of the lease; a session quieter than the idle limit is
    // closed, and the peer reconnects and syncs its whole catalog each time.
    let beat = settings.config.lease / 3;
    if beat >= settings.server.read_timeout {
        log::warn!(
            "peers will beat every {beat:?}, and --idle-timeout ({:?}) closes a session quieter than that: each will reconnect and sync again; raise --idle-timeout or shorten --lease",
            settings.server.read_timeout
        );
    }
    let signals = signals::take_over()?;
    let index = Index::start(settings).map_err(CmdError::failed)?;
    output::say(format!(
        "p2pshare index '{}' listening on {}, id {}",
        index.me().name,
        index.local_addr(),
        index.me().id()
    ));
    let http = start_http(
        http_settings,
        Arc::new(http::IndexApi {
            service: index.service().clone(),
        }),
    );
    let http = match http {
        Ok(h) => h,
        Err(e) => {
            index.shutdown();
            return Err(e);
        }
    };
    let sig = signals.recv().unwrap_or(Signal::Terminate);
    log::info!("{sig:?}: shutting down");
    stop_http(http);
    index.shutdown();
    Ok(())
}

/// `p2pshare seed`.
pub fn seed(a: SeedArgs) -> Result<(), CmdError> {
    let settings = a.settings()?;
    let http_settings = a.http.settings(a.server.config())?;
    // A seed's DHT node bootstraps from the other seeds: the seeds are the private
    // DHT's bootstrap nodes.
    let dht_settings = a.dht.settings(a.listen, &settings.seeds)?;
    let seeds = list(settings.seeds.iter());
    let signals = signals::take_over()?;
    let seed = Seed::start(settings).map_err(CmdError::failed)?;
    let dht = match dht_settings.map(|s| DhtNode::start(s, seed.local_addr().port())) {
        Some(Ok(node)) => Some(Arc::new(node)),
        Some(Err(e)) => {
            seed.shutdown();
            return Err(CmdError::failed(e));
        }
        None => None,
    };
    output::say(format!(
        "p2pshare seed '{}' listening on {}, id {}, seeds {seeds}",
        seed.name(),
        seed.local_addr(),
        seed.id(),
    ));
    output::say(format!(
        "peers list this seed as '{} {}' in their seeds file",
        seed.local_addr(),
        seed.id()
    ));
    if let Some(d) = &dht {
        output::say(format!("DHT node on UDP {}", d.local_addr()));
    }
    let http = start_http(
        http_settings,
        Arc::new(http::SeedApi {
            service: seed.service().clone(),
            dht: dht.clone(),
        }),
    );
    let http = match http {
        Ok(h) => h,
        Err(e) => {
            seed.shutdown();
            return Err(e);
        }
    };
    let sig = signals.recv().unwrap_or(Signal::Terminate);
    log::info!("{sig:?}: shutting down");
    stop_http(http);
    if let Some(d) = dht {
        d.stop();
    }
    seed.shutdown();
    Ok(())
}

/// Starts the role's HTTP interface when `--http` asks for it, and says where it is.
fn start_http<A: http::Api>(
    settings: Option<http::HttpSettings>,
    api: Arc<A>,
) -> Result<Option<http::HttpHandle>, CmdError> {
    let Some(settings) = settings else {
        return Ok(None);
    };
    let handle = http::start(&settings, api).map_err(CmdError::failed)?;
    output::say(format!(
        "HTTP on http://{}/ (dashboard; JSON at /status, /health; metrics at /metrics)",
        handle.local_addr()
    ));
    Ok(Some(handle))
}

fn stop_http(handle: Option<http::HttpHandle>) {
    if let Some(h) = handle {
        h.shutdown();
    }
}

/// `a, b, c`, or `none`.
fn list<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    let items: Vec<String> = items.map(|i| i.to_string()).collect();
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// `p2pshare peer`.
pub fn peer(a: PeerArgs) -> Result<(), CmdError> {
    let config = a.config()?;
    let http_settings = a.http.settings(a.server.config())?;
    let (name, id, dir) = (
        config.me.name.clone(),
        config.me.id().clone(),
        config.dir.clone(),
    );
    let indexes = list(config.indexes.iter());
    let seeds = list(config.overlay.seeds.iter());
    // SIGINT and SIGTERM become messages (before any other thread starts, so every
    // thread inherits the mask). Without a console they make the peer leave its
    // indexes cleanly; with one, Ctrl-C cancels a running download.
    let signals = signals::take_over()?;
    let peer = Peer::start(config).map_err(CmdError::failed)?;
    output::say(format!(
        "p2pshare peer '{name}' listening on {}, id {id}, sharing {}, index {indexes}, seeds {seeds}",
        peer.local_addr(),
        dir.display(),
    ));
    let http = start_http(
        http_settings,
        Arc::new(http::PeerApi {
            service: peer.service().clone(),
            jobs: peer.jobs().clone(),
        }),
    );
    let http = match http {
        Ok(h) => h,
        Err(e) => {
            peer.shutdown();
            return Err(e);
        }
    };
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
    stop_http(http);
    peer.shutdown();
    Ok(())
}
