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
use crate::net::client::Client;
use crate::net::node::{self, source_host};
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
use std::sync::Arc;
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
        OverlayEvent::SeedUp { seed: i, peers } => {
            log.write("seed-up", &format!("seed={} peers={peers}", seed(i)))
        }
        OverlayEvent::SeedDown { seed: i } => log.write("seed-down", &format!("seed={}", seed(i))),
    }
}

/// Who this node is on its outgoing links.
#[derive(Clone, Debug)]
pub struct Identity {
    pub role: Role,
    pub id: PeerId,
    pub port: u16,
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
}

impl OverlayHandle {
    /// A handle and the inbox its core thread will read.
    pub fn channel() -> (OverlayHandle, Receiver<Input>) {
        let (tx, rx) = bounded(INBOX);
        (
            OverlayHandle {
                inbox: tx,
                counters: Arc::new(OverlayCounters::default()),
            },
            rx,
        )
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
        let addr = match out.to {
            Dest::Node(a) => a.to_string(),
            Dest::Seed(i) => match self.seeds.get(i) {
                Some(s) => s.to_string(),
                None => return,
            },
        };
        let (tx, rx) = bounded(LINK_QUEUE);
        let _ = tx.try_send(msg);
        self.counters.messages_out.fetch_add(1, Ordering::Relaxed);
        let dest = out.to;
        let me = self.me.clone();
        let timeouts = self.timeouts;
        let inbox = self.inbox.clone();
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let spawned = thread::Builder::new()
            .name(format!("olink-{addr}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                link(dest, addr, me, timeouts, rx, inbox);
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
    me: Identity,
    timeouts: Timeouts,
    rx: Receiver<Msg>,
    inbox: channel::Sender<Input>,
) {
    let unreachable = |why: String| {
        log::debug!("overlay: {addr} ({dest}): {why}");
        let _ = inbox.try_send(Input::Unreachable(dest));
    };
    let mut client = match Client::connect(&addr, &timeouts) {
        Ok(c) => c,
        Err(e) => return unreachable(e.to_string()),
    };
    if let Err(e) = client.hello(me.role.as_str(), me.id.as_str(), me.port) {
        return unreachable(e.to_string());
    }
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
    }
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

/// The sender of a connection, from its `hello`: `Some` for a peer or a seed (with
/// the connection's source host and the port it announced), `None` for a client. Peers
/// and seeds hear from peers, seeds and clients only: any other role is refused.
pub fn hello_from(args: &[String], remote: SocketAddr) -> Result<Option<Sender>, Refusal> {
    node::check_version(&args[0], "this node")?;
    let seed = match args[1].as_str() {
        "peer" => false,
        "seed" => true,
        "client" => return Ok(None),
        other => {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!(
                    "role must be 'peer', 'seed' or 'client', not '{}'",
                    codec::printable(other)
                ),
            ))
        }
    };
    let id = node::hello_id(&args[2])?;
    let port = node::hello_port(&args[3], &args[1])?;
    Ok(Some(Sender {
        id,
        addr: SocketAddr::new(source_host(remote), port),
        seed,
    }))
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

/// The state of one connection to a seed or a peer: who said hello on it.
#[derive(Default)]
pub struct OverlayConn {
    pub from: Option<Sender>,
}
