//! The overlay's threaded runtime: each core runs in one thread that owns it, and its
//! messages travel over TCP links.
//!
//! Threads:
//! * `overlay` (a peer) or `seed-core` (a seed): owns the [`Core`] (a peer's or a seed's)
//!   and selects over its inbox with a timeout that is the core's next deadline. The
//!   inbox carries messages from the server's connection threads, link failures,
//!   and requests from the console and the `say`/`members`/`status` verbs.
//! * `olink-<dest>`, one per destination in use: dials (with a connect timeout), says
//!   `hello`, then writes the messages queued for it in batches and reads the `ok`s.
//!   It exits after `LINK_IDLE` without traffic, or on any error, reporting the
//!   destination unreachable to the core; its queued messages are then lost, which the
//!   cores expect (every overlay message is one-way and may be lost).
//!
//! Nothing here blocks the core thread on the network: links have bounded queues
//! and a full queue drops the message.

use super::member::NotSent;
use super::{wire, Core, Departure, Dest, Msg, MsgId, Out, OverlayEvent, OverlayStatus, Sender};
use crate::clock::{self, Clock, Millis};
use crate::config::NodeAddr;
use crate::eventlog::EventLog;
use crate::identity;
use crate::net::client::Client;
use crate::net::node::{self, source_host, HelloRole, Me};
use crate::net::{Reply, Timeouts};
use crate::protocol::codec::{self, ReplyHead, Request};
use crate::protocol::commands::Role;
use crate::protocol::name::PeerId;
use crate::protocol::{ErrorCode, Refusal};
use crossbeam_channel::{self as channel, bounded, Receiver, RecvTimeoutError, TrySendError};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::Duration;

/// A link closes after this long without a message to send.
const LINK_IDLE: Duration = Duration::from_secs(60);
/// Messages queued for one destination before new ones are dropped.
const LINK_QUEUE: usize = 1024;
/// Messages written to a link before reading their `ok`s.
const LINK_BATCH: usize = 64;
/// Most links open at once.
const LINKS_MAX: usize = 1024;
/// Messages waiting for the core thread before new ones are refused.
const INBOX: usize = 8192;
/// How long a request to the core thread may wait for its answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// Writes the events worth keeping to the event log.
pub fn log_event(log: &EventLog, ev: &OverlayEvent, seeds: &[NodeAddr]) {
    let seed = |i: &usize| seeds.get(*i).map(|s| s.to_string()).unwrap_or_default();
    match ev {
        OverlayEvent::Said {
            origin,
            name,
            time_ms,
            text,
            hops,
            ..
        } => log.write(
            "message",
            &format!(
                "from={origin} name={} sent={} hops={hops} text={}",
                name.as_ref().map_or("-", |n| n.as_str()),
                clock::utc_timestamp(*time_ms),
                wire::escape_text(text)
            ),
        ),
        OverlayEvent::Joined { id, addr } => log.write("join", &format!("peer={id} addr={addr}")),
        OverlayEvent::NeighborUp { id } => log.write("neighbour-up", &format!("peer={id}")),
        OverlayEvent::NeighborDown { id, reason } => {
            log.write("neighbour-down", &format!("peer={id} reason={reason}"))
        }
        OverlayEvent::ProbeMissed { id } => log.write("probe-missed", &format!("peer={id}")),
        OverlayEvent::Suspected { id } => log.write("suspect", &format!("peer={id}")),
        OverlayEvent::Refuted { id, incarnation } => {
            log.write("refuted", &format!("peer={id} incarnation={incarnation}"))
        }
        OverlayEvent::RefutedSelf { incarnation } => {
            log.write("refuted-self", &format!("incarnation={incarnation}"))
        }
        OverlayEvent::Dead { id, by } => log.write("dead", &format!("peer={id} declared-by={by}")),
        OverlayEvent::Left { id } => log.write("left", &format!("peer={id}")),
        OverlayEvent::Forgotten { id } => log.write("forgotten", &format!("peer={id}")),
        OverlayEvent::Reported { id, by } => {
            log.write("report", &format!("peer={id} reported-by={by}"))
        }
        OverlayEvent::Cleared { id } => log.write("report-cleared", &format!("peer={id}")),
        OverlayEvent::SeedUp { seed: i, peers } => {
            log.write("seed-up", &format!("seed={} peers={peers}", seed(i)))
        }
        OverlayEvent::SeedDown { seed: i } => log.write("seed-down", &format!("seed={}", seed(i))),
    }
}

/// Most addresses of one contact's name tried on one link (each may cost a connect
/// timeout).
const CONTACT_ADDRS_MAX: usize = 8;

/// The addresses a contact's name stands for, in random order. A name may stand for
/// several (a compose service: every container of it, this one included), and the
/// resolver sorts them by how well they match this node's own address (RFC 6724),
/// which puts this node itself first: taken in that order, every try would lead back
/// here.
fn contact_addrs(name: &str) -> Result<Vec<String>, String> {
    use rand::seq::SliceRandom;
    use std::net::ToSocketAddrs;
    let mut found: Vec<String> = name
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {name}: {e}"))?
        .map(|a| a.to_string())
        .collect();
    found.shuffle(&mut rand::thread_rng());
    found.truncate(CONTACT_ADDRS_MAX);
    if found.is_empty() {
        return Err(format!("{name} resolves to no address"));
    }
    Ok(found)
}

/// Who this node is on its outgoing links.
#[derive(Clone, Debug)]
pub struct Identity {
    pub role: Role,
    pub me: Me,
    pub port: u16,
}

impl Identity {
    fn hello_role(&self) -> HelloRole {
        match self.role {
            Role::Seed => HelloRole::Seed,
            _ => HelloRole::Peer,
        }
    }
}

/// The seeds' keys, by position in the seed list: as the list pins them
/// (`host:port KEY`), or else learned from the seed's first signed answer (trust on
/// first use, for lists without keys). A `hello` as a seed counts as one only from a
/// key in here.
#[derive(Debug)]
pub struct SeedKeys {
    keys: RwLock<Vec<Option<PeerId>>>,
}

impl SeedKeys {
    /// The keys of `seeds`; an error names a listed key that is not one.
    pub fn new(seeds: &[NodeAddr]) -> Result<SeedKeys, String> {
        let keys = seeds
            .iter()
            .map(|s| match s.key() {
                Some(k) if identity::is_node_id(k) => Ok(PeerId::parse(k).ok()),
                Some(k) => Err(format!("seed {s}: '{k}' is not a node id (a public key)")),
                None => Ok(None),
            })
            .collect::<Result<_, _>>()?;
        Ok(SeedKeys {
            keys: RwLock::new(keys),
        })
    }

    /// The key the seed at position `i` must answer with, once known.
    pub fn expected(&self, i: usize) -> Option<PeerId> {
        self.keys.read().ok()?.get(i).cloned().flatten()
    }

    /// Remembers the key of a seed listed without one, from its signed answer.
    fn pin(&self, i: usize, id: &PeerId) {
        if let Ok(mut keys) = self.keys.write() {
            if let Some(slot @ None) = keys.get_mut(i) {
                log::warn!(
                    "seed #{} is {id}: trusted on first use (list it as 'HOST:PORT {id}' to pin it)",
                    i + 1
                );
                *slot = Some(id.clone());
            }
        }
    }

    pub fn is_seed(&self, id: &PeerId) -> bool {
        self.keys
            .read()
            .is_ok_and(|keys| keys.iter().any(|k| k.as_ref() == Some(id)))
    }
}

/// Why `say` failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SayError {
    /// The core refused: the broadcast would reach nobody.
    NotSent(NotSent),
    /// The core did not answer.
    Unavailable(String),
}

impl fmt::Display for SayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SayError::NotSent(why) => write!(f, "{why}"),
            SayError::Unavailable(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for SayError {}

/// A request to a core thread.
pub enum Input {
    /// Boxed: a message with its signatures is a few hundred bytes, and the inbox
    /// holds thousands of inputs.
    Msg(Sender, Box<Msg>),
    /// A link could not reach its destination.
    Unreachable(Dest),
    Say {
        text: String,
        reply: channel::Sender<Result<MsgId, NotSent>>,
    },
    Status {
        rows: bool,
        reply: channel::Sender<OverlayStatus>,
    },
    Leave {
        done: channel::Sender<()>,
    },
}

/// Counters kept by the runtime around a core.
#[derive(Debug, Default)]
pub struct OverlayCounters {
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub dropped: AtomicU64,
}

/// A handle to a core thread, for server connection threads and the console.
#[derive(Clone)]
pub struct OverlayHandle {
    inbox: channel::Sender<Input>,
    counters: Arc<OverlayCounters>,
    seed_keys: Arc<SeedKeys>,
}

impl OverlayHandle {
    /// A handle and the inbox its core thread will read, for a node whose seed list is
    /// `seeds` (an error names a listed key that is not one).
    pub fn channel(seeds: &[NodeAddr]) -> Result<(OverlayHandle, Receiver<Input>), String> {
        let (tx, rx) = bounded(INBOX);
        Ok((
            OverlayHandle {
                inbox: tx,
                counters: Arc::new(OverlayCounters::default()),
                seed_keys: Arc::new(SeedKeys::new(seeds)?),
            },
            rx,
        ))
    }

    pub fn seed_keys(&self) -> &Arc<SeedKeys> {
        &self.seed_keys
    }

    pub fn counters(&self) -> &Arc<OverlayCounters> {
        &self.counters
    }

    /// Queues a message from another node; refused when the core is overwhelmed.
    pub fn deliver(&self, from: Sender, msg: Msg) -> Result<(), Refusal> {
        self.counters.messages_in.fetch_add(1, Ordering::Relaxed);
        match self.inbox.try_send(Input::Msg(from, Box::new(msg))) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                Err(Refusal::new(ErrorCode::Busy, "overlay queue is full"))
            }
            Err(TrySendError::Disconnected(_)) => {
                Err(Refusal::new(ErrorCode::Internal, "the overlay has stopped"))
            }
        }
    }

    fn ask<T>(&self, make: impl FnOnce(channel::Sender<T>) -> Input) -> Result<T, String> {
        let (tx, rx) = bounded(1);
        self.inbox
            .send_timeout(make(tx), ASK_TIMEOUT)
            .map_err(|_| "the overlay is not responding".to_owned())?;
        rx.recv_timeout(ASK_TIMEOUT)
            .map_err(|_| "the overlay is not responding".to_owned())
    }

    /// Broadcasts a text from this node.
    pub fn say(&self, text: String) -> Result<MsgId, SayError> {
        match self.ask(|reply| Input::Say { text, reply }) {
            Ok(Ok(id)) => Ok(id),
            Ok(Err(why)) => Err(SayError::NotSent(why)),
            Err(why) => Err(SayError::Unavailable(why)),
        }
    }

    pub fn status(&self, rows: bool) -> Result<OverlayStatus, String> {
        self.ask(|reply| Input::Status { rows, reply })
    }

    /// Leaves the network: neighbours, seeds and every peer are told.
    pub fn leave(&self) {
        let _ = self.ask(|done| Input::Leave { done });
    }
}

/// One outgoing link: its queue, and a flag its thread sets when it exits.
struct Link {
    tx: channel::Sender<Msg>,
    done: Arc<AtomicBool>,
}

/// The outgoing links of one core thread.
struct Outbox {
    me: Identity,
    seeds: Arc<Vec<NodeAddr>>,
    /// The peers to join through (`--join`), by position.
    contacts: Arc<Vec<NodeAddr>>,
    seed_keys: Arc<SeedKeys>,
    timeouts: Timeouts,
    links: HashMap<Dest, Link>,
    inbox: channel::Sender<Input>,
    counters: Arc<OverlayCounters>,
}

impl Outbox {
    fn send(&mut self, out: Out) {
        let mut msg = out.msg;
        if let Some(link) = self.links.get(&out.to) {
            match link.tx.try_send(msg) {
                Ok(()) => {
                    self.counters.messages_out.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(TrySendError::Full(_)) => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(TrySendError::Disconnected(m)) => {
                    self.links.remove(&out.to);
                    msg = m;
                }
            }
        }
        if self.links.len() >= LINKS_MAX {
            self.links.retain(|_, l| !l.done.load(Ordering::Relaxed));
            if self.links.len() >= LINKS_MAX {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        // A contact listed with its key must answer with it (a seed's key is checked
        // in the link, since a seed listed without one is pinned on first use).
        let (addr, pinned) = match out.to {
            Dest::Node(a) => (a.to_string(), None),
            Dest::Seed(i) => match self.seeds.get(i) {
                Some(s) => (s.to_string(), None),
                None => return,
            },
            Dest::Contact(i) => match self.contacts.get(i) {
                Some(c) => (c.to_string(), c.key().and_then(|k| PeerId::parse(k).ok())),
                None => return,
            },
        };
        let (tx, rx) = bounded(LINK_QUEUE);
        let _ = tx.try_send(msg);
        self.counters.messages_out.fetch_add(1, Ordering::Relaxed);
        let dest = out.to;
        let me = self.me.clone();
        let seed_keys = self.seed_keys.clone();
        let timeouts = self.timeouts;
        let inbox = self.inbox.clone();
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let spawned = thread::Builder::new()
            .name(format!("olink-{addr}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                link(dest, addr, (me, seed_keys, pinned), timeouts, rx, inbox);
                flag.store(true, Ordering::Relaxed);
            });
        match spawned {
            Ok(_) => {
                self.links.insert(dest, Link { tx, done });
            }
            Err(e) => log::warn!("overlay: cannot start a link thread: {e}"),
        }
    }

    /// Waits (a little) for the links to write what is queued, before leaving.
    fn drain(&self, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline && self.links.values().any(|l| !l.tx.is_empty())
        {
            thread::sleep(Duration::from_millis(10));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn link(
    dest: Dest,
    addr: String,
    (me, seed_keys, pinned): (Identity, Arc<SeedKeys>, Option<PeerId>),
    timeouts: Timeouts,
    rx: Receiver<Msg>,
    inbox: channel::Sender<Input>,
) {
    let unreachable = |why: String| {
        log::debug!("overlay: {addr} ({dest}): {why}");
        let _ = inbox.try_send(Input::Unreachable(dest));
    };
    // A seed must answer with its listed key; a node address with whatever key it
    // has (the core learns who it is from what it says, signed).
    let expect = match dest {
        Dest::Seed(i) => seed_keys.expected(i),
        Dest::Contact(_) => pinned,
        Dest::Node(_) => None,
    };
    let candidates = match dest {
        Dest::Contact(_) => match contact_addrs(&addr) {
            Ok(found) => found,
            Err(e) => return unreachable(e),
        },
        _ => vec![addr.clone()],
    };
    let mut client = None;
    let mut why = String::new();
    for candidate in candidates {
        let mut c = match Client::connect(&candidate, &timeouts) {
            Ok(c) => c,
            Err(e) => {
                why = e.to_string();
                continue;
            }
        };
        match c.hello(Some(&me.me), me.hello_role(), me.port, expect.as_ref()) {
            Ok(answer) => {
                if let Dest::Seed(i) = dest {
                    seed_keys.pin(i, &answer.id);
                }
                if matches!(dest, Dest::Contact(_)) && answer.id == *me.me.id() {
                    why = format!("{candidate} is this node");
                    continue;
                }
                client = Some(c);
                break;
            }
            Err(e) => {
                if expect.is_some() {
                    log::warn!("overlay: {candidate} ({dest}): {e}");
                }
                why = e.to_string();
            }
        }
    }
    let Some(mut client) = client else {
        return unreachable(why);
    };
    loop {
        let first = match rx.recv_timeout(LINK_IDLE) {
            Ok(m) => m,
            Err(_) => return,
        };
        let mut batch = wire::encode(&first);
        let mut n = 1;
        while n < LINK_BATCH {
            match rx.try_recv() {
                Ok(m) => {
                    batch.push_str(&wire::encode(&m));
                    n += 1;
                }
                Err(_) => break,
            }
        }
        if let Err(e) = client.send(batch.as_bytes(), "overlay") {
            return unreachable(e.to_string());
        }
        for _ in 0..n {
            match client.read_head("overlay") {
                Ok(ReplyHead::Ok(_)) => {}
                Ok(ReplyHead::Err(r)) => log::debug!("overlay: {addr} refused a message: {r}"),
                Ok(ReplyHead::Data(_)) => return unreachable("unexpected data reply".into()),
                Err(e) => return unreachable(e.to_string()),
            }
        }
    }
}

/// What a core thread does with the events of its core.
pub type EventSink = Box<dyn Fn(OverlayEvent) + Send>;

/// Everything a core thread needs.
pub struct CoreSetup {
    pub me: Identity,
    pub seeds: Vec<NodeAddr>,
    /// The peers to join through besides the seeds (`--join`; none for a seed).
    pub contacts: Vec<NodeAddr>,
    pub timeouts: Timeouts,
    pub inbox: Receiver<Input>,
    pub handle: OverlayHandle,
    pub sink: EventSink,
}

impl CoreSetup {
    fn outbox(&self) -> Outbox {
        Outbox {
            me: self.me.clone(),
            seeds: Arc::new(self.seeds.clone()),
            contacts: Arc::new(self.contacts.clone()),
            seed_keys: self.handle.seed_keys.clone(),
            timeouts: self.timeouts,
            links: HashMap::new(),
            inbox: self.handle.inbox.clone(),
            counters: self.handle.counters.clone(),
        }
    }
}

/// The seed from which a core's random choices start.
pub fn random_seed() -> u64 {
    rand::random()
}

fn wait_for(next: Millis, clock: &Clock) -> Duration {
    Duration::from_millis(next.0.saturating_sub(clock.now().0).min(1000))
}

/// Starts the thread that owns `core` (`overlay` for a peer, `seed-core` for a seed).
pub fn spawn_core<C: Core + Send + 'static>(
    core: C,
    setup: CoreSetup,
    thread_name: &str,
) -> std::io::Result<()> {
    thread::Builder::new()
        .name(thread_name.into())
        .spawn(move || run_core(core, setup))
        .map(|_| ())
}

/// The core thread: sends what the core queued, waits for input until the core's next
/// deadline, hands the input to the core, and runs its timers when they are due.
fn run_core<C: Core>(mut core: C, setup: CoreSetup) {
    let clock = Clock::new();
    let mut outbox = setup.outbox();
    core.start(clock.now());
    let mut leaving: Option<channel::Sender<()>> = None;
    let mut reported = (Millis(0), crate::metrics::BroadcastTotals::default());
    loop {
        flush(&mut core, &mut outbox, &setup.sink);
        if let Some(done) = leaving.take() {
            outbox.drain(Duration::from_millis(500));
            let _ = done.send(());
            return;
        }
        let input = match setup.inbox.recv_timeout(wait_for(core.poll_at(), &clock)) {
            Ok(i) => Some(i),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let now = clock.now();
        match input {
            Some(Input::Msg(from, msg)) => core.handle(&from, *msg, now),
            Some(Input::Unreachable(dest)) => core.unreachable(dest, now),
            Some(Input::Say { text, reply }) => {
                // A core that does not broadcast drops the request: the asker hears
                // that the overlay did not answer.
                if let Some(said) = core.say(text, clock::wall_ms(), now) {
                    let _ = reply.send(said);
                }
            }
            Some(Input::Status { rows, reply }) => {
                let _ = reply.send(status(&core, &setup.handle, rows, now));
            }
            Some(Input::Leave { done }) => match core.leave(now) {
                Departure::Drain => leaving = Some(done),
                Departure::Now => {
                    let _ = done.send(());
                    return;
                }
            },
            None => {}
        }
        if core.poll_at() <= clock.now() {
            core.tick(clock.now());
        }
        report(&core, setup.me.role, &mut reported, clock.now());
    }
}

/// How often a core thread sets the process-wide overlay metrics from its core.
const REPORT_EVERY: u64 = 1000;

/// Sets the overlay metrics from the core's status, at most every [`REPORT_EVERY`]
/// milliseconds (`last` holds when it did, and the broadcast totals it counted then).
fn report<C: Core>(
    core: &C,
    role: Role,
    last: &mut (Millis, crate::metrics::BroadcastTotals),
    now: Millis,
) {
    if now.0 < last.0 .0 {
        return;
    }
    last.0 = Millis(now.0 + REPORT_EVERY);
    let s = core.status(false, now);
    let m = crate::metrics::global();
    let alive = s.peers.saturating_sub(s.suspects);
    m.overlay_members(role.as_str(), alive, s.suspects, s.dead);
    let totals = crate::metrics::BroadcastTotals {
        sent: s.gossip.pushed,
        received: s.gossip.received,
        duplicate: s.gossip.duplicates,
    };
    m.broadcasts(totals, &mut last.1);
}

fn flush<C: Core>(core: &mut C, outbox: &mut Outbox, sink: &EventSink) {
    for out in core.take_out() {
        outbox.send(out);
    }
    for ev in core.take_events() {
        sink(ev);
    }
}

/// The core's status, with the runtime's counters.
fn status<C: Core>(core: &C, handle: &OverlayHandle, rows: bool, now: Millis) -> OverlayStatus {
    let c = &handle.counters;
    OverlayStatus {
        messages_in: c.messages_in.load(Ordering::Relaxed),
        messages_out: c.messages_out.load(Ordering::Relaxed),
        dropped: c.dropped.load(Ordering::Relaxed),
        ..core.status(rows, now)
    }
}

/// `hello` at a peer or a seed: answers with this node's signed challenge. Peers and
/// seeds hear from peers, seeds and clients only: any other role is refused. A new
/// hello ends the connection's old session.
pub fn hello(
    me: &Me,
    role: &str,
    args: &[&str],
    remote: SocketAddr,
    conn: &mut OverlayConn,
) -> Result<Reply, Refusal> {
    let roles = [HelloRole::Peer, HelloRole::Seed, HelloRole::Client];
    let hello = node::parse_hello(args, "this node", &roles)?;
    conn.from = None;
    conn.name = Some(hello.name.clone());
    let (reply, pending) = node::challenge(me, role, hello, remote);
    conn.pending = pending;
    Ok(reply)
}

/// `auth`: the connection's sender proved its key. It is that key at the connection's
/// source host and the port it announced; it counts as a seed only when its key is a
/// listed (or first-answered) seed's.
pub fn auth(
    me: &Me,
    args: &[&str],
    remote: SocketAddr,
    conn: &mut OverlayConn,
    seeds: &SeedKeys,
) -> Result<Reply, Refusal> {
    let hello = node::authenticate(conn.pending.take(), args, me)?;
    let id = hello.id.expect("a proven hello has an id");
    let seed = hello.role == HelloRole::Seed && seeds.is_seed(&id);
    if hello.role == HelloRole::Seed && !seed {
        log::debug!("{id} at {remote} said hello as a seed, but no listed seed has its key");
    }
    conn.from = Some(Sender {
        id,
        addr: SocketAddr::new(source_host(remote), hello.port),
        seed,
    });
    Ok(node::auth_reply("0", "0"))
}

/// Serves an overlay message on a connection: decodes it and queues it for the core.
pub fn overlay_request(
    req: &Request,
    from: Option<&Sender>,
    overlay: &OverlayHandle,
) -> Option<Result<Reply, Refusal>> {
    let msg = match wire::decode(req) {
        Ok(Some(m)) => m,
        Ok(None) => return None,
        Err(r) => return Some(Err(r)),
    };
    let Some(from) = from else {
        return Some(Err(Refusal::new(
            ErrorCode::UnknownPeer,
            format!(
                "'{}' needs a session: say hello as a peer or a seed first",
                msg.verb()
            ),
        )));
    };
    Some(
        overlay
            .deliver(from.clone(), msg)
            .map(|()| Reply::Text("ok\n".into())),
    )
}

/// The rows of `members`; the name is `-` for a member known only from contact.
pub fn members_reply(status: &OverlayStatus) -> Reply {
    let mut out = codec::line(&["ok", &status.rows.len().to_string()]);
    for r in &status.rows {
        let m = &r.member;
        out.push_str(&codec::line(&[
            r.id.as_str(),
            &m.addr.ip().to_canonical().to_string(),
            &m.addr.port().to_string(),
            m.state.as_str(),
            &m.incarnation.to_string(),
            r.view.as_str(),
            &m.rtt_ms.map_or("-".to_owned(), |r| r.to_string()),
            m.name().map_or("-", |n| n.as_str()),
        ]));
    }
    Reply::Text(out)
}

/// The state of one connection to a seed or a peer: who said hello on it, and proved
/// it.
#[derive(Default)]
pub struct OverlayConn {
    /// The sender, once its `auth` proved its key.
    pub from: Option<Sender>,
    /// The name its hello gave (any node may give any name).
    pub name: Option<PeerId>,
    pending: Option<node::Pending>,
}

#[cfg(test)]
mod tests {
    use super::contact_addrs;

    #[test]
    fn a_contact_name_gives_its_addresses_and_an_unknown_one_an_error() {
        assert_eq!(contact_addrs("127.0.0.1:1025").unwrap(), ["127.0.0.1:1025"]);
        let local = contact_addrs("localhost:1025").unwrap();
        assert!(!local.is_empty() && local.iter().all(|a| a.ends_with(":1025")));
        let err = contact_addrs("no-such-host.invalid:1025").unwrap_err();
        assert!(err.contains("no-such-host.invalid"), "{err}");
    }
}
