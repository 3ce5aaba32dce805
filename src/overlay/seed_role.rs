//! The seed role: a seed's server and the `seed-core` thread that runs its
//! [`SeedNode`], started as one [`Seed`] and stopped through it.
//!
//! Threads: the server's accept and connection threads, `seed-core` and its `olink-*`
//! links ([`super::runtime`]).

use super::runtime::{
    self, members_reply, overlay_request, CoreSetup, EventSink, Identity, OverlayConn,
    OverlayHandle,
};
use super::seed::SeedNode;
use super::{OverlayEvent, SeedConfig};
use crate::clock::Clock;
use crate::config::NodeAddr;
use crate::eventlog::EventLog;
use crate::identity::NodeKey;
use crate::net::node::{self, status_reply, Me};
use crate::net::server::{self, ServerConfig, ServerHandle, ServerStats};
use crate::net::{Reply, Service, Timeouts};
use crate::protocol::codec::{Classic, Request};
use crate::protocol::commands::{Role, Verb};
use crate::protocol::name::PeerId;
use crate::protocol::{ErrorCode, Refusal, VERSION};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Everything a seed needs to start.
pub struct SeedSettings {
    pub listen: SocketAddr,
    /// The seed's key: its id on the wire, which peers list in their seeds file.
    pub key: NodeKey,
    /// The seed's name; `None`: `HOSTNAME:PORT`.
    pub name: Option<String>,
    /// The other seeds, whose registries this one merges.
    pub seeds: Vec<NodeAddr>,
    pub config: SeedConfig,
    pub server: ServerConfig,
    pub log: Option<Arc<EventLog>>,
}

/// A running seed.
pub struct Seed {
    me: Me,
    server: ServerHandle,
    service: Arc<SeedService>,
    overlay: OverlayHandle,
}

impl Seed {
    /// Binds, starts serving, and starts the seed's core.
    pub fn start(settings: SeedSettings) -> Result<Seed, String> {
        let listener = TcpListener::bind(settings.listen)
            .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?
            .port();
        let name_text = settings
            .name
            .clone()
            .unwrap_or_else(|| format!("{}:{port}", hostname()));
        let name =
            PeerId::parse(&name_text).map_err(|e| format!("seed name '{name_text}': {e}"))?;
        let me = Me {
            key: settings.key,
            name,
        };
        let id = me.id().clone();
        let stats = Arc::new(ServerStats::default());
        let (overlay, inbox) = OverlayHandle::channel(&settings.seeds)?;
        let service = Arc::new(SeedService {
            me: me.clone(),
            overlay: overlay.clone(),
            stats: stats.clone(),
            clock: Clock::new(),
        });
        let server = server::spawn(listener, settings.server, service.clone(), stats)
            .map_err(|e| format!("cannot start the server: {e}"))?;
        let node = SeedNode::new(
            id.clone(),
            settings.seeds.len(),
            settings.config,
            runtime::random_seed(),
            runtime::random_seed(),
        );
        runtime::spawn_core(
            node,
            CoreSetup {
                me: Identity {
                    role: Role::Seed,
                    me: me.clone(),
                    port,
                },
                seeds: settings.seeds.clone(),
                contacts: Vec::new(),
                timeouts: Timeouts::default(),
                inbox,
                handle: overlay.clone(),
                sink: event_sink(settings.log, settings.seeds),
            },
            "seed-core",
        )
        .map_err(|e| format!("cannot start the seed's core: {e}"))?;
        Ok(Seed {
            me,
            server,
            service,
            overlay,
        })
    }

    /// The seed's id: its public key.
    pub fn id(&self) -> &PeerId {
        self.me.id()
    }

    pub fn name(&self) -> &PeerId {
        &self.me.name
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The service behind the server, for other interfaces to the same seed (HTTP).
    pub fn service(&self) -> &Arc<SeedService> {
        &self.service
    }

    /// Tells the other seeds it leaves, and stops serving.
    pub fn shutdown(self) {
        self.overlay.leave();
        self.server.shutdown();
    }
}

/// Where a seed's events go: the event log, and the log at info level.
fn event_sink(log: Option<Arc<EventLog>>, seeds: Vec<NodeAddr>) -> EventSink {
    Box::new(move |ev: OverlayEvent| {
        if let Some(l) = &log {
            runtime::log_event(l, &ev, &seeds);
        }
        match &ev {
            OverlayEvent::Joined { id, addr } => log::info!("{id} at {addr} joined"),
            OverlayEvent::Dead { id, by } => log::info!("{id} is dead (confirmed by {by})"),
            OverlayEvent::Left { id } => log::info!("{id} left"),
            OverlayEvent::Forgotten { id } => {
                log::info!("{id} forgotten: not seen nor vouched for in time")
            }
            OverlayEvent::Reported { id, by } => {
                log::info!("{id} reported dead by {by}: probing it")
            }
            OverlayEvent::Cleared { id } => {
                log::info!("{id} answered the probe: the report is dropped")
            }
            _ => {}
        }
    })
}

/// This machine's host name, for a seed's default id.
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

/// A seed's [`Service`].
pub struct SeedService {
    pub me: Me,
    pub overlay: OverlayHandle,
    pub stats: Arc<ServerStats>,
    pub clock: Clock,
}

impl SeedService {
    fn status(&self) -> Reply {
        let st = self.overlay.status(false);
        let healthy = st.is_ok();
        let st = st.unwrap_or_default();
        let rows: Vec<(&str, String)> = vec![
            ("role", "seed".into()),
            ("id", self.me.id().to_string()),
            ("name", self.me.name.to_string()),
            ("version", env!("CARGO_PKG_VERSION").into()),
            ("protocol", VERSION.to_string()),
            ("uptime_secs", self.clock.uptime().as_secs().to_string()),
            ("peers", st.peers.to_string()),
            ("reported", st.suspects.to_string()),
            ("dead", st.dead.to_string()),
            ("seeds_heard", st.seeds.to_string()),
            ("refused_quota", st.refused_quota.to_string()),
            ("files", "0".into()),
            ("messages", st.messages_in.to_string()),
            ("messages_out", st.messages_out.to_string()),
            (
                "messages_dropped_signature",
                st.dropped_signature.to_string(),
            ),
            (
                "connections",
                self.stats.live.load(Ordering::Relaxed).to_string(),
            ),
        ];
        let mut rows = rows;
        if healthy {
            rows.push(("health", "ok".into()));
        } else {
            rows.push(("health", "failing".into()));
            rows.push(("failing", "the seed's core is not responding".into()));
        }
        status_reply(&rows)
    }
}

impl Service for SeedService {
    type Conn = OverlayConn;

    fn role(&self) -> Role {
        Role::Seed
    }

    fn handle(&self, req: Request, remote: SocketAddr, conn: &mut OverlayConn) -> Reply {
        let outcome = match req.verb {
            Verb::Hello => runtime::hello(&self.me, "seed", &req.args, remote, conn),
            Verb::Auth => {
                runtime::auth(&self.me, &req.args, remote, conn, self.overlay.seed_keys())
            }
            Verb::Ping => Ok(node::pong()),
            Verb::Status => Ok(self.status()),
            Verb::Members => self
                .overlay
                .status(true)
                .map(|s| members_reply(&s))
                .map_err(|e| Refusal::new(ErrorCode::Internal, e)),
            _ => match overlay_request(&req, conn.from.as_ref(), &self.overlay) {
                Some(r) => r,
                None => Err(Refusal::new(ErrorCode::UnknownVerb, "not served by a seed")),
            },
        };
        outcome.unwrap_or_else(|r| Reply::Text(r.to_line()))
    }

    fn classic(&self, _req: Classic, _remote: SocketAddr) -> Reply {
        Reply::Close(String::new())
    }
}

/// The service without a socket: requests decoded from their wire text, with and
/// without a running `seed-core`.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::NodeKey;
    use crate::net::node::HelloRole;
    use crate::net::testing::{status_rows, test_id, test_me, Session};
    use crate::overlay::sign_incarnation;

    /// A seed `s1` and its core running with no other seed; stop it with `leave`.
    fn seed_with_core() -> SeedService {
        let me = test_me("s1");
        let (overlay, inbox) = OverlayHandle::channel(&[]).unwrap();
        let node = SeedNode::new(me.id().clone(), 0, SeedConfig::default(), 1, 2);
        runtime::spawn_core(
            node,
            CoreSetup {
                me: Identity {
                    role: Role::Seed,
                    me: me.clone(),
                    port: 1500,
                },
                seeds: Vec::new(),
                contacts: Vec::new(),
                timeouts: Timeouts::default(),
                inbox,
                handle: overlay.clone(),
                sink: Box::new(|_| {}),
            },
            "seed-core",
        )
        .unwrap();
        seed_service(me, overlay)
    }

    /// A seed `s1` whose core is gone: its inbox is dropped.
    fn seed_without_core() -> SeedService {
        let (overlay, _inbox) = OverlayHandle::channel(&[]).unwrap();
        seed_service(test_me("s1"), overlay)
    }

    fn seed_service(me: Me, overlay: OverlayHandle) -> SeedService {
        SeedService {
            me,
            overlay,
            stats: Arc::new(ServerStats::default()),
            clock: Clock::new(),
        }
    }

    #[test]
    fn hello_ping_status_and_members_answer_in_the_documented_shapes() {
        let seed = seed_with_core();
        let mut s = Session::new(&seed);
        assert_eq!(s.ask("ping"), "ok|pong\n");
        let s1 = test_id("s1");
        assert!(s
            .hello_as(HelloRole::Client, "probe", 0)
            .starts_with(&format!("ok|seed|{s1}|s1|127.0.0.1|")));
        assert!(
            s.ask("hello|1|peer|p7|9").starts_with("err|bad-version|"),
            "version 1"
        );
        // Only peers, seeds and clients talk to a seed.
        let (x, nonce) = (test_id("x"), "ab".repeat(16));
        for role in ["index", "admin", ""] {
            assert_eq!(
                s.ask(&format!("hello|3|{role}|{x}|9|x|{nonce}")),
                format!("err|bad-request|role must be 'peer', 'seed' or 'client', not '{role}'\n")
            );
        }
        // A seed not in the seed list is served, as a node that is not a seed.
        assert_eq!(s.hello_as(HelloRole::Seed, "s2", 1501), "ok|0|0\n");
        // A refused hello binds nothing: overlay messages still need a session.
        let mut odd = Session::new(&seed);
        assert!(odd
            .ask(&format!("hello|3|index|{x}|9|x|{nonce}"))
            .starts_with("err|bad-request|"));
        assert!(odd
            .ask(&format!("register|0|1|5|0|p7|{}", "0".repeat(128)))
            .starts_with("err|unknown-peer|"));
        assert!(s
            .ask(&format!("hello|3|peer|{x}|9|../x|{nonce}"))
            .starts_with("err|bad-name|"));
        let rows = status_rows(&s.ask("status"));
        for (key, value) in [
            ("role", "seed"),
            ("id", s1.as_str()),
            ("name", "s1"),
            ("protocol", "3"),
            ("peers", "0"),
            ("messages_dropped_signature", "0"),
            ("health", "ok"),
        ] {
            assert_eq!(rows[key], value, "{key}: {rows:?}");
        }
        assert_eq!(s.ask("members"), "ok|0\n");

        // A peer registers on its session; the core takes requests in order, so the
        // next `members` already lists it. (Port 9: the seed's answer goes nowhere.)
        let key = NodeKey::for_test("p7");
        let name = PeerId::parse("p7").unwrap();
        let cert = sign_incarnation(&key, 5, &name).hex();
        let id = key.id();
        let mut p = Session::new(&seed);
        assert_eq!(p.hello_as(HelloRole::Peer, "p7", 9), "ok|0|0\n");
        assert_eq!(id, &test_id("p7"));
        // A certificate made by another key is not taken.
        let forged = sign_incarnation(&NodeKey::for_test("x"), 6, &name).hex();
        assert_eq!(p.ask(&format!("register|0|1|6|0|p7|{forged}")), "ok\n");
        assert_eq!(p.ask(&format!("register|0|1|5|0|p7|{cert}")), "ok\n");
        assert_eq!(
            s.ask("members"),
            format!("ok|1\n{id}|127.0.0.1|9|alive|5|-|-|p7\n")
        );
        let rows = status_rows(&s.ask("status"));
        assert_eq!(rows["peers"], "1");
        assert_eq!(rows["messages_dropped_signature"], "1");
        seed.overlay.leave();
    }

    #[test]
    fn a_seed_refuses_what_it_does_not_serve_and_messages_without_a_session() {
        let seed = seed_without_core();
        let mut s = Session::new(&seed);
        for line in [
            "say|hi",
            "msg|hi",
            "get|x",
            "search|x",
            "pieces|x|sha1:0000000000000000000000000000000000000000",
            "beat",
        ] {
            assert_eq!(
                s.ask(line),
                "err|unknown-verb|not served by a seed\n",
                "{line}"
            );
        }
        let register = |degree: &str| format!("register|0|1|1|{degree}|p7|{}", "0".repeat(128));
        assert!(s.ask(&register("0")).starts_with("err|unknown-peer|"));
        assert!(s.hello_as(HelloRole::Peer, "p7", 9).starts_with("ok|0|0"));
        assert!(s.ask(&register("x")).starts_with("err|bad-request|"));
    }

    #[test]
    fn a_running_core_sets_the_overlay_member_gauges() {
        let seed = seed_with_core();
        let mut s = Session::new(&seed);
        assert_eq!(status_rows(&s.ask("status"))["health"], "ok");
        // The core thread reports at most once a second, the first time after its first
        // input or timer (the status just asked is one).
        let series = r#"p2pshare_overlay_members{role="seed",state="alive"} "#;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !crate::metrics::encode().contains(series) {
            assert!(std::time::Instant::now() < deadline, "no {series}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        seed.overlay.leave();
    }

    #[test]
    fn a_seed_whose_core_does_not_answer_says_it_is_failing() {
        let seed = seed_without_core();
        let mut s = Session::new(&seed);
        let rows = status_rows(&s.ask("status"));
        assert_eq!(rows["health"], "failing");
        assert_eq!(rows["failing"], "the seed's core is not responding");
        assert_eq!(
            s.ask("members"),
            "err|internal|the overlay is not responding\n"
        );
        assert!(s.hello_as(HelloRole::Peer, "p7", 9).starts_with("ok|0|0"));
        assert_eq!(
            s.ask(&format!("register|0|1|1|0|p7|{}", "0".repeat(128))),
            "err|internal|the overlay has stopped\n"
        );
    }
}
