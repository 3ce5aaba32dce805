//! The accept loop and the per-connection session loop.
//!
//! Threads: one `<role>-accept` thread, and one `<role>-worker-<n>` thread per live
//! connection, at most `max_connections` of them; a connection beyond the cap is
//! answered `err|busy|...` from the accept thread and closed. A worker whose
//! connection ends waits a few seconds for the next one before it exits, so a burst
//! of short connections (the classic dialect opens one per request) does not pay for
//! a thread start each time. One thread still serves one connection at a time.
//!
//! The accept thread takes what a new connection has already sent, without waiting.
//! A classic request the service answers at once from memory (an index's classic
//! `get`) is answered there and closed, as the original single-threaded index did:
//! no hand-off. Anything else goes to a worker with those bytes.
//!
//! Every socket has read and write timeouts, so a silent client is dropped after
//! `read_timeout`; they and no-delay are set on the listener, and accepted sockets
//! inherit them (Linux).
//!
//! A request that announces a payload of its own (`upload`) has it handed over as it
//! arrives ([`payload`]).
//!
//! Shared state: the live-connection registry (a small mutex-guarded map used only to
//! shut connections down) and atomic counters. No lock is held across I/O.

mod payload;

pub use payload::{linger, LINGER};

use super::{address_share, Reply, Service};
use crate::protocol::codec::{self, Decoded};
use crate::protocol::commands;
use crate::protocol::{ErrorCode, MAX_FRAME, MAX_LINE};
use crossbeam_channel::TrySendError;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::io::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Limits of one server.
#[derive(Clone, Copy, Debug)]
pub struct ServerConfig {
    pub max_connections: usize,
    /// Most connections from one IP address at once, so that one host cannot take
    /// every slot: the others are refused `err|busy` while that host is at its share.
    pub max_per_address: usize,
    /// A request must arrive whole within this long of its first byte, and a new
    /// connection's first request within this long of connecting: a client that trickles
    /// bytes, or connects and says nothing, cannot hold a slot for the idle timeout.
    pub request_timeout: Duration,
    /// How long a connection may stay silent before it is closed.
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub max_line: usize,
    /// Memory for requests being received, across all connections, beyond the
    /// [`CONN_ALLOWANCE`] each connection has of its own. A connection that needs more
    /// than is left (a large batch while others hold theirs) is answered `err|busy` and
    /// closed: the server never holds more than this for requests in flight.
    pub request_memory: usize,
}

/// Receive buffer every connection may hold without drawing on the shared budget.
pub const CONN_ALLOWANCE: usize = 256 * 1024;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 512,
            max_per_address: 64,
            request_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(120),
            write_timeout: Duration::from_secs(30),
            max_line: MAX_LINE,
            request_memory: 256 * 1024 * 1024,
        }
    }
}

/// Counters a server keeps; services show them in `status`.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub live: AtomicUsize,
    pub accepted: AtomicU64,
    pub refused_busy: AtomicU64,
    pub requests: AtomicU64,
    pub protocol_errors: AtomicU64,
    /// Bytes of receive buffers drawn from the shared budget now.
    pub request_memory: AtomicUsize,
    /// Connections closed because the shared budget was spent.
    pub refused_memory: AtomicU64,
}

/// A connection's share of the request-memory budget, given back when dropped.
struct Reservation<'a> {
    stats: &'a ServerStats,
    budget: usize,
    held: usize,
}

impl Reservation<'_> {
    /// Makes the reservation cover a buffer of `capacity` bytes; `false` when the budget
    /// cannot cover it (nothing is taken then).
    fn cover(&mut self, capacity: usize) -> bool {
        let want = capacity.saturating_sub(CONN_ALLOWANCE);
        if want > self.held {
            let more = want - self.held;
            let before = self.stats.request_memory.fetch_add(more, Ordering::SeqCst);
            if before + more > self.budget {
                self.stats.request_memory.fetch_sub(more, Ordering::SeqCst);
                return false;
            }
        } else {
            self.stats
                .request_memory
                .fetch_sub(self.held - want, Ordering::SeqCst);
        }
        self.held = want;
        true
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.stats
            .request_memory
            .fetch_sub(self.held, Ordering::SeqCst);
    }
}

/// Live connections' sockets, to shut them down on [`ServerHandle::shutdown`]. A
/// connection leaves the registry before its socket is closed (see [`Job`]), so a
/// descriptor here is always that connection's.
type Registry = Arc<Mutex<HashMap<u64, RawFd>>>;

/// Live connections per source address.
type PerAddress = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// A running server. Dropping it does not stop it; call [`ServerHandle::shutdown`].
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    registry: Registry,
    accept: Option<JoinHandle<()>>,
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes every live connection and waits for the accept thread.
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept with a connection of our own.
        let wake = if self.addr.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], self.addr.port()))
        } else {
            self.addr
        };
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        for &fd in lock(&self.registry).values() {
            // SAFETY: the descriptor is open while it is in the registry (the lock is
            // held), and shutdown(2) does not close it.
            unsafe {
                libc::shutdown(fd, libc::SHUT_RDWR);
            }
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What serves the connections a server accepts: the line protocol of a
/// [`Service`] ([`spawn`]), or another protocol on its own listener (the HTTP
/// interface), under the same connection caps, per-address shares and timeouts (the
/// request-memory budget is the line protocol's; HTTP caps each body itself).
pub trait Protocol: Send + Sync + 'static {
    /// Names the threads (`<name>-accept`, `<name>-worker-<n>`) and is the `role`
    /// label of the connection metrics (`index`, `peer-http`, ...).
    fn thread_name(&self) -> &'static str;

    /// Answers a new connection on the accept thread from what it sent already, when
    /// that is possible at once; `false` hands it to a worker.
    fn answer_inline(&self, _stats: &ServerStats, _stream: &TcpStream, _first: &[u8]) -> bool {
        false
    }

    /// Serves one connection to its end; `first` is what the accept thread read from
    /// it already.
    fn serve(
        &self,
        stream: &TcpStream,
        remote: SocketAddr,
        first: &[u8],
        config: &ServerConfig,
        stats: &ServerStats,
    );

    /// Tells a connection over the caps why it is refused, then closes it.
    fn refuse_busy(&self, stream: TcpStream, why: &str);
}

/// The line protocol of a [`Service`].
struct Lines<S> {
    service: Arc<S>,
    name: &'static str,
}

impl<S: Service> Protocol for Lines<S> {
    fn thread_name(&self) -> &'static str {
        self.name
    }

    fn answer_inline(&self, stats: &ServerStats, stream: &TcpStream, first: &[u8]) -> bool {
        answer_inline(&*self.service, stats, stream, first)
    }

    fn serve(
        &self,
        stream: &TcpStream,
        remote: SocketAddr,
        first: &[u8],
        config: &ServerConfig,
        stats: &ServerStats,
    ) {
        serve_connection(stream, remote, first, config, &*self.service, stats)
    }

    fn refuse_busy(&self, stream: TcpStream, why: &str) {
        refuse_busy(stream, why)
    }
}

/// Starts serving `service` on `listener` in background threads.
pub fn spawn<S: Service>(
    listener: TcpListener,
    config: ServerConfig,
    service: Arc<S>,
    stats: Arc<ServerStats>,
) -> io::Result<ServerHandle> {
    let name = service.role().as_str();
    spawn_protocol(listener, config, Arc::new(Lines { service, name }), stats)
}

/// Starts serving `protocol` on `listener` in background threads.
pub fn spawn_protocol<P: Protocol>(
    listener: TcpListener,
    config: ServerConfig,
    protocol: Arc<P>,
    stats: Arc<ServerStats>,
) -> io::Result<ServerHandle> {
    let addr = listener.local_addr()?;
    set_inherited_options(&listener, &config)?;
    let stop = Arc::new(AtomicBool::new(false));
    let registry: Registry = Arc::new(Mutex::new(HashMap::new()));
    let name = protocol.thread_name();
    let accept = {
        let stop = stop.clone();
        let registry = registry.clone();
        thread::Builder::new()
            .name(format!("{name}-accept"))
            .spawn(move || accept_loop(listener, config, protocol, stats, stop, registry))?
    };
    Ok(ServerHandle {
        addr,
        stop,
        registry,
        accept: Some(accept),
    })
}

fn accept_loop<P: Protocol>(
    listener: TcpListener,
    config: ServerConfig,
    protocol: Arc<P>,
    stats: Arc<ServerStats>,
    stop: Arc<AtomicBool>,
    registry: Registry,
) {
    let role = protocol.thread_name();
    let mut next_id: u64 = 0;
    let mut next_worker: u64 = 0;
    let (idle_tx, idle_rx) = crossbeam_channel::bounded::<Job>(0);
    let per_address: PerAddress = Arc::default();
    let mut first = [0u8; FIRST_READ];
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let (stream, remote) = match accepted {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                log::warn!("{role}: accept failed: {e}");
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let got = recv_now(&stream, &mut first);
        if protocol.answer_inline(&stats, &stream, &first[..got]) {
            continue;
        }
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        crate::metrics::global().connection_accepted(role);
        let host = address_share(remote.ip());
        if let Err(why) = admit(&config, &stats, &per_address, host) {
            stats.refused_busy.fetch_add(1, Ordering::Relaxed);
            crate::metrics::global().connection_refused(role, crate::metrics::Refused::Busy);
            log::warn!("{role}: refusing {remote}: {why}");
            protocol.refuse_busy(stream, &format!("{why}; try again later"));
            continue;
        }
        stats.live.fetch_add(1, Ordering::SeqCst);
        crate::metrics::global().connections_live_add(role, 1);
        next_id += 1;
        let id = next_id;
        lock(&registry).insert(id, stream.as_raw_fd());
        let job = Job {
            stream,
            remote,
            first: first[..got].to_vec(),
            _guard: LiveGuard {
                stats: stats.clone(),
                registry: registry.clone(),
                id,
                per_address: per_address.clone(),
                host,
                role,
            },
        };
        // Hand the connection to an idle worker if one is waiting (a rendezvous
        // channel only accepts when a receiver is blocked on it); otherwise start one.
        let job = match idle_tx.try_send(job) {
            Ok(()) => continue,
            Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => job,
        };
        next_worker += 1;
        let name = format!("{role}-worker-{next_worker}");
        if let Err(e) = spawn_worker(name, job, config, &protocol, &stats, &idle_rx) {
            log::error!("{role}: cannot start a connection thread: {e}");
        }
    }
    log::info!(
        "{role}: stopped accepting on {}",
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
}

/// Bytes the accept thread takes from a new connection, if they are already there.
const FIRST_READ: usize = 1024;

/// Options every accepted socket inherits from the listener on Linux (read and write
/// timeouts, no Nagle delay), set once here rather than three system calls per
/// connection.
fn set_inherited_options(listener: &TcpListener, config: &ServerConfig) -> io::Result<()> {
    let fd = listener.as_raw_fd();
    set_option(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, &1 as &libc::c_int)?;
    for (name, t) in [
        (libc::SO_RCVTIMEO, config.read_timeout),
        (libc::SO_SNDTIMEO, config.write_timeout),
    ] {
        let tv = libc::timeval {
            tv_sec: t.as_secs() as libc::time_t,
            tv_usec: libc::suseconds_t::from(t.subsec_micros()),
        };
        set_option(fd, libc::SOL_SOCKET, name, &tv)?;
    }
    Ok(())
}

fn set_option<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What a new connection has sent already, without waiting: 0 when nothing yet.
fn recv_now(stream: &TcpStream, buf: &mut [u8]) -> usize {
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(n).unwrap_or(0)
}

/// Answers on the accept thread a classic request that arrived whole with its
/// connection, when the service can answer it at once from memory (a classic `get` at
/// an index whose store no writer holds): no hand-off to a worker, as the original
/// index server did it. Returns `false` when the connection goes to a worker.
fn answer_inline<S: Service>(
    service: &S,
    stats: &ServerStats,
    stream: &TcpStream,
    first: &[u8],
) -> bool {
    // A full buffer may not be the whole request: unread bytes would turn the close
    // into a reset that can destroy the reply.
    if first.is_empty() || first.len() == FIRST_READ {
        return false;
    }
    let Some(classic) = codec::classic_shape(first, service.role()) else {
        return false;
    };
    let Some(text) = service.classic_at_once(&classic) else {
        return false;
    };
    stats.accepted.fetch_add(1, Ordering::Relaxed);
    stats.requests.fetch_add(1, Ordering::Relaxed);
    crate::metrics::global().connection_accepted(service.role().as_str());
    crate::metrics::global().request(service.role().as_str(), "classic", true);
    // A reply this short fits the new socket's empty send buffer: this does not block
    // (and the write timeout bounds it if it ever did).
    let _ = (&*stream).write_all(text.as_bytes());
    true
}

/// Requests in flight are given time by their size too: a batch may arrive this slowly
/// (bytes per second) on top of the request timeout.
pub const MIN_REQUEST_RATE: u64 = 64 * 1024;

/// Whether a new connection from `host` may be served: under the global cap, and
/// under its address's share (counted here; the connection's guard gives it back).
fn admit(
    config: &ServerConfig,
    stats: &ServerStats,
    per_address: &PerAddress,
    host: IpAddr,
) -> Result<(), String> {
    if stats.live.load(Ordering::SeqCst) >= config.max_connections {
        return Err(format!(
            "server is at its limit of {} connections",
            config.max_connections
        ));
    }
    let mut counts = lock(per_address);
    let count = counts.entry(host).or_insert(0);
    if *count >= config.max_per_address {
        return Err(format!(
            "{host} is at its limit of {} connections to this server",
            config.max_per_address
        ));
    }
    *count += 1;
    Ok(())
}

/// Starts a connection thread for `job`; it then serves the connections handed to it
/// while idle, until none comes for [`WORKER_IDLE`].
fn spawn_worker<P: Protocol>(
    name: String,
    job: Job,
    config: ServerConfig,
    protocol: &Arc<P>,
    stats: &Arc<ServerStats>,
    idle_rx: &crossbeam_channel::Receiver<Job>,
) -> io::Result<()> {
    let (protocol, stats, idle_rx) = (protocol.clone(), stats.clone(), idle_rx.clone());
    thread::Builder::new()
        .name(name)
        .stack_size(256 * 1024)
        .spawn(move || {
            let mut job = job;
            loop {
                protocol.serve(&job.stream, job.remote, &job.first, &config, &stats);
                drop(job);
                match idle_rx.recv_timeout(WORKER_IDLE) {
                    Ok(next) => job = next,
                    Err(_) => return,
                }
            }
        })
        .map(|_| ())
}

/// How long a worker thread waits for another connection before it exits.
const WORKER_IDLE: Duration = Duration::from_secs(10);

/// A connection on its way to a worker thread.
struct Job {
    /// Counts the connection as live until the worker is done with it. Declared
    /// before the stream, so it is dropped first: the socket leaves the registry
    /// before it is closed.
    _guard: LiveGuard,
    stream: TcpStream,
    remote: SocketAddr,
    /// What the accept thread read from it already.
    first: Vec<u8>,
}

fn serve_connection<S: Service>(
    stream: &TcpStream,
    remote: SocketAddr,
    first: &[u8],
    config: &ServerConfig,
    service: &S,
    stats: &ServerStats,
) {
    let mut conn = S::Conn::default();
    if let Err(e) = session(stream, remote, first, config, service, &mut conn, stats) {
        log::debug!("{}: {remote}: connection ended: {e}", service.role());
    }
    service.closed(remote, &mut conn);
}

/// Decrements the live count and leaves the registry when a connection ends.
struct LiveGuard {
    stats: Arc<ServerStats>,
    registry: Registry,
    id: u64,
    per_address: PerAddress,
    host: IpAddr,
    role: &'static str,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        lock(&self.registry).remove(&self.id);
        {
            let mut counts = lock(&self.per_address);
            if let Some(n) = counts.get_mut(&self.host) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&self.host);
                }
            }
        }
        self.stats.live.fetch_sub(1, Ordering::SeqCst);
        crate::metrics::global().connections_live_add(self.role, -1);
    }
}

fn refuse_busy(stream: TcpStream, why: &str) {
    // Drain what the client already sent, so closing does not turn into a reset that
    // would destroy the reply before the client reads it.
    let _ = stream.set_nonblocking(true);
    let mut scratch = [0u8; 4096];
    let _ = (&stream).read(&mut scratch);
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let line = codec::error_line(ErrorCode::Busy, why);
    let _ = (&stream).write_all(line.as_bytes());
    let _ = stream.shutdown(Shutdown::Write);
}

/// Writes one reply. Returns `false` when the connection must close after it.
fn write_reply(
    out: &mut BufWriter<&TcpStream>,
    stream: &TcpStream,
    reply: Reply,
) -> io::Result<bool> {
    match reply {
        Reply::Text(text) => out.write_all(text.as_bytes())?,
        Reply::Bytes(bytes) => out.write_all(&bytes)?,
        Reply::Close(text) => {
            out.write_all(text.as_bytes())?;
            return Ok(false);
        }
        Reply::Receive { .. } => {
            // Only a modern request's answer may take a payload (see
            // `Session::receive`); the classic dialect has none.
            let line = codec::error_line(ErrorCode::Internal, "no payload is taken here");
            out.write_all(line.as_bytes())?;
            return Ok(false);
        }
        Reply::File {
            header,
            file,
            offset,
            len,
            limit,
        } => {
            out.write_all(header.as_bytes())?;
            out.flush()?;
            match limit {
                None => send_file(stream, &file, offset, len)?,
                Some(bucket) => {
                    // Paced: one 64 KiB slice at a time, each after its tokens.
                    let mut at = 0;
                    while at < len {
                        let n = (len - at).min(64 * 1024);
                        bucket.take(n);
                        send_file(stream, &file, offset + at, n)?;
                        at += n;
                    }
                }
            }
            crate::metrics::global().served_bytes.inc_by(len);
        }
    }
    Ok(true)
}

/// Sends `len` bytes of `file` from `offset` with sendfile(2): the bytes go from the
/// page cache to the socket without passing through user space. The socket's write
/// timeout bounds each call.
pub(crate) fn send_file(stream: &TcpStream, file: &File, offset: u64, len: u64) -> io::Result<()> {
    let mut offset = offset;
    let mut left = len;
    while left > 0 {
        let mut off = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
        let want = left.min(1 << 30) as usize;
        // SAFETY: both descriptors are open for the duration of the call, and `off`
        // is a valid, exclusively borrowed off_t.
        let n = unsafe { libc::sendfile(stream.as_raw_fd(), file.as_raw_fd(), &mut off, want) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            // The file shrank under us: the stream can no longer be framed.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file ended after {} of {len} bytes", len - left),
            ));
        }
        offset += n as u64;
        left -= n as u64;
    }
    Ok(())
}

/// Serves one connection; `first` is what the accept thread read from it already. The
/// socket's timeouts and no-delay option are the listener's (inherited on accept).
fn session<S: Service>(
    stream: &TcpStream,
    remote: SocketAddr,
    first: &[u8],
    config: &ServerConfig,
    service: &S,
    conn: &mut S::Conn,
    stats: &ServerStats,
) -> io::Result<()> {
    let mut s = Session {
        stream,
        remote,
        config,
        service,
        stats,
        role: service.role(),
        out: BufWriter::with_capacity(64 * 1024, stream),
        buf: Vec::with_capacity(16 * 1024),
        start: 0,
        decoder: codec::Decoder::for_role(config.max_line, Some(service.role())),
        reservation: Reservation {
            stats,
            budget: config.request_memory,
            held: 0,
        },
        // The first request is due within the request timeout of connecting.
        pending_since: Some(Instant::now()),
        answered: false,
        timeout: config.read_timeout,
    };
    let mut chunk = vec![0u8; 64 * 1024];
    s.buf.extend_from_slice(first);
    let mut first = true;
    loop {
        // What the accept thread read stands for the first read.
        if !first || s.buf.is_empty() {
            let Some(n) = s.read_some(&mut chunk)? else {
                return Ok(());
            };
            s.buf.extend_from_slice(&chunk[..n]);
        }
        if s.pending_since.is_none() {
            s.pending_since = Some(Instant::now());
        }
        if !s.reservation.cover(s.buf.capacity()) {
            return s.refuse_for_memory();
        }
        if std::mem::take(&mut first) {
            if let Some(classic) = codec::classic_shape(&s.buf, s.role) {
                return s.answer_classic(classic);
            }
        }
        if s.answer_frames(conn)? == Next::Close {
            return Ok(());
        }
        s.out.flush()?;
        s.compact()?;
    }
}

/// Whether a connection goes on after what it was sent so far.
#[derive(PartialEq, Eq)]
enum Next {
    More,
    Close,
}

/// One connection being served: its buffers, its decoder and its share of the memory
/// budget.
struct Session<'a, S: Service> {
    stream: &'a TcpStream,
    remote: SocketAddr,
    config: &'a ServerConfig,
    service: &'a S,
    stats: &'a ServerStats,
    role: commands::Role,
    out: BufWriter<&'a TcpStream>,
    /// Bytes received and not yet decoded start at `start`.
    buf: Vec<u8>,
    start: usize,
    decoder: codec::Decoder,
    reservation: Reservation<'a>,
    /// Since when a request has been due: the connection is new and has sent none, or
    /// the first bytes of one are here and the rest is not. `None` between requests.
    pending_since: Option<Instant>,
    /// Whether a request was answered since the last [`Session::compact`].
    answered: bool,
    /// The socket's read timeout now (changed only when it must be).
    timeout: Duration,
}

impl<S: Service> Session<'_, S> {
    /// Reads what arrived; `None` when the client closed, stayed idle too long, or
    /// took too long to send a request whole.
    fn read_some(&mut self, chunk: &mut [u8]) -> io::Result<Option<usize>> {
        let due = self
            .pending_since
            .map(|since| (since + self.allowance()).saturating_duration_since(Instant::now()));
        if due == Some(Duration::ZERO) {
            return self.request_overdue().map(|()| None);
        }
        let timeout = due.map_or(self.config.read_timeout, |d| {
            d.min(self.config.read_timeout)
        });
        // The socket's timeout is changed when it must shrink, or grow by more than a
        // little: not on every read of a request still arriving.
        if timeout < self.timeout || timeout > self.timeout + Duration::from_millis(250) {
            self.stream
                .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
            self.timeout = timeout;
        }
        match self.stream.read(chunk) {
            Ok(0) => Ok(None),
            Ok(n) => Ok(Some(n)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if due.is_some_and(|d| d < self.config.read_timeout) {
                    return self.request_overdue().map(|()| None);
                }
                log::debug!(
                    "{}: {}: idle for {:?}, closing",
                    self.role,
                    self.remote,
                    self.config.read_timeout
                );
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// How long the pending request may take to arrive whole: the request timeout, and
    /// more for a large batch, as its bytes come in at [`MIN_REQUEST_RATE`] or faster.
    fn allowance(&self) -> Duration {
        let pending = (self.buf.len() - self.start) as u64;
        self.config.request_timeout + Duration::from_millis(pending * 1000 / MIN_REQUEST_RATE)
    }

    /// A request did not arrive whole in time: says so and closes.
    fn request_overdue(&mut self) -> io::Result<()> {
        self.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
        let what = if self.buf.len() > self.start {
            "a request did not arrive whole"
        } else {
            "no request arrived"
        };
        log::debug!("{}: {}: {what} in time, closing", self.role, self.remote);
        let line = codec::error_line(
            ErrorCode::BadRequest,
            &format!("{what} within {:?}; closing", self.config.request_timeout),
        );
        self.out.write_all(line.as_bytes())?;
        self.close()
    }

    /// The shared budget for requests in flight cannot hold this connection's buffer:
    /// says so and closes.
    fn refuse_for_memory(&mut self) -> io::Result<()> {
        self.stats.refused_memory.fetch_add(1, Ordering::Relaxed);
        crate::metrics::global()
            .connection_refused(self.role.as_str(), crate::metrics::Refused::Memory);
        log::warn!(
            "{}: {}: closing: the {} MiB for requests in flight are spent",
            self.role,
            self.remote,
            self.config.request_memory >> 20
        );
        let line = codec::error_line(
            ErrorCode::Busy,
            "the server is short of memory for requests in flight; send smaller batches or try again later",
        );
        self.out.write_all(line.as_bytes())?;
        self.close()
    }

    /// Answers a request in the classic dialect (one per connection) and closes.
    fn answer_classic(&mut self, classic: codec::Classic) -> io::Result<()> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let reply = self.service.classic(classic, self.remote);
        crate::metrics::global().request(self.role.as_str(), "classic", !reply.is_refusal());
        write_reply(&mut self.out, self.stream, reply)?;
        self.close()
    }

    /// Answers every complete frame in the buffer, in order.
    fn answer_frames(&mut self, conn: &mut S::Conn) -> io::Result<Next> {
        loop {
            match self.decoder.decode(&self.buf[self.start..]) {
                Ok(Decoded::NeedMore) => return Ok(Next::More),
                Ok(Decoded::Frame(req, used)) => {
                    self.start += used;
                    self.answered = true;
                    self.stats.requests.fetch_add(1, Ordering::Relaxed);
                    // The decoder refused the verbs this role does not serve.
                    let verb = commands::command(req.verb).name;
                    let reply = self.service.handle(req, self.remote, conn);
                    let reply = match reply {
                        Reply::Receive { header, len, sink } => {
                            match self.receive(&header, len, sink)? {
                                Some(reply) => reply,
                                None => {
                                    crate::metrics::global().request(
                                        self.role.as_str(),
                                        verb,
                                        false,
                                    );
                                    return Ok(Next::Close);
                                }
                            }
                        }
                        reply => reply,
                    };
                    crate::metrics::global().request(self.role.as_str(), verb, !reply.is_refusal());
                    if !write_reply(&mut self.out, self.stream, reply)? {
                        self.out.flush()?;
                        return Ok(Next::Close);
                    }
                }
                Err(e) => {
                    self.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    crate::metrics::global().request(self.role.as_str(), "other", false);
                    log::debug!("{}: {}: {}", self.role, self.remote, e.refusal);
                    self.out.write_all(e.refusal.to_line().as_bytes())?;
                    match e.skip {
                        Some(n) => self.start += n,
                        None => {
                            self.close()?;
                            return Ok(Next::Close);
                        }
                    }
                }
            }
        }
    }

    /// Drops what was answered from the buffer, giving a large batch's memory back.
    fn compact(&mut self) -> io::Result<()> {
        // Blank lines between requests are no request of their own.
        let rest = &self.buf[self.start..];
        if rest.iter().all(|&b| b == b'\n' || b == b'\r')
            && !rest.is_empty()
            && rest.ends_with(b"\n")
        {
            self.start = self.buf.len();
        }
        if std::mem::take(&mut self.answered) {
            // What is left is the next request: its clock starts now that the replies
            // before it are written (however long the server took to write them).
            self.pending_since = Some(Instant::now());
        }
        if self.start == self.buf.len() {
            // Nothing is pending: the connection may idle until the next request.
            self.pending_since = None;
            self.buf.clear();
            self.start = 0;
            if self.buf.capacity() > CONN_ALLOWANCE {
                // A large batch is done: give its memory back.
                self.buf = Vec::with_capacity(16 * 1024);
                self.reservation.cover(self.buf.capacity());
            }
        } else if self.start >= 64 * 1024 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        // The codec refuses frames past these caps; this is a second fence.
        if self.buf.len() - self.start > MAX_FRAME + self.config.max_line {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "frame over the cap",
            ));
        }
        Ok(())
    }

    /// Flushes what is written and closes the sending side.
    fn close(&mut self) -> io::Result<()> {
        self.out.flush()?;
        let _ = self.stream.shutdown(Shutdown::Write);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::address_share;
    use std::net::IpAddr;

    #[test]
    fn an_ipv6_host_shares_one_count_across_its_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            address_share(ip("2001:db8:1:2:aaaa::1")),
            address_share(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            address_share(ip("2001:db8:1:2::1")),
            address_share(ip("2001:db8:1:3::1"))
        );
        assert_eq!(address_share(ip("::ffff:127.0.0.1")), ip("127.0.0.1"));
        assert_ne!(
            address_share(ip("127.0.0.1")),
            address_share(ip("127.0.0.2"))
        );
    }
}
