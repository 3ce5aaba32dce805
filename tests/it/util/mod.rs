//! Helpers for tests that run the real binary: command lines built by [`Args`],
//! processes killed on drop, ready lines read from stdout, both pipes of every child
//! drained while it runs, a deadline on every wait, raw TCP exchanges, and the seed of
//! a randomised test.

pub mod pty;

use p2pshare::identity::NodeKey;
use p2pshare::net::node::{self, HelloRole, Me};
use p2pshare::protocol::name::PeerId;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The default deadline for anything a test waits on.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_p2pshare")
}

/// `p2pshare` with the developer's own configuration out of reach: no per-user config
/// file (XDG_CONFIG_HOME and HOME point at a folder that does not exist), no
/// `P2PSHARE_*` variables and no RUST_LOG, so every test sees only what it sets.
pub fn command(envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin());
    let nowhere = std::env::temp_dir().join("p2pshare-tests-no-user-config");
    cmd.env("XDG_CONFIG_HOME", &nowhere)
        .env("HOME", &nowhere)
        .env_remove("RUST_LOG");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("P2PSHARE_") {
            cmd.env_remove(name);
        }
    }
    cmd.envs(envs.iter().copied());
    cmd
}

/// A running p2pshare process, killed when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every stdout line seen so far (also those consumed by waits).
    pub seen: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    pub addr: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pump(
    stream: impl Read + Send + 'static,
    sink: Arc<Mutex<Vec<String>>>,
    tx: Option<mpsc::Sender<String>>,
) {
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line.clone());
            if let Some(tx) = &tx {
                if tx.send(line).is_err() {
                    break;
                }
            }
        }
    });
}

impl Proc {
    /// Starts `p2pshare ARGS` and waits for its ready line ("... listening on ADDR").
    pub fn start<S: AsRef<OsStr>>(name: &str, args: &[S], cwd: &Path, console: bool) -> Proc {
        Proc::start_with_env(name, args, &[], cwd, console)
    }

    /// `start` with these environment variables set.
    pub fn start_with_env<S: AsRef<OsStr>>(
        name: &str,
        args: &[S],
        envs: &[(&str, &str)],
        cwd: &Path,
        console: bool,
    ) -> Proc {
        let mut child = command(&[("RUST_LOG", "info")])
            .envs(envs.iter().copied())
            .args(args)
            .current_dir(cwd)
            .stdin(if console {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let (tx, lines) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        pump(child.stdout.take().unwrap(), seen.clone(), Some(tx));
        pump(child.stderr.take().unwrap(), stderr.clone(), None);
        let stdin = child.stdin.take();
        let mut p = Proc {
            name: name.to_owned(),
            child,
            stdin,
            lines,
            seen,
            stderr,
            addr: "0.0.0.0:0".parse().unwrap(),
        };
        let ready = p.wait_line(|l| l.contains(" listening on "));
        let addr = ready
            .split(" listening on ")
            .nth(1)
            .and_then(|rest| rest.split([',', ' ']).next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{name}: no address in ready line {ready:?}"));
        p.addr = addr;
        p
    }

    pub fn addr_str(&self) -> String {
        self.addr.to_string()
    }

    /// Waits for a stdout line matching `pred`, panicking with the output so far at
    /// the deadline.
    pub fn wait_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + DEADLINE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "{}: expected line not seen within {:?}\nstdout:\n{}\nstderr:\n{}",
                        self.name,
                        DEADLINE,
                        self.seen.lock().unwrap().join("\n"),
                        self.stderr.lock().unwrap().join("\n")
                    );
                }
            }
        }
    }

    /// Types a console command.
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("started with a console");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (with the deadline) for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self) -> i32 {
        let until = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < until,
                "{} did not exit within {DEADLINE:?}",
                self.name
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

/// The HTTP address a node started with `--http` printed ("HTTP on http://ADDR/").
pub fn http_addr(p: &mut Proc) -> SocketAddr {
    let is_it = |l: &str| l.starts_with("HTTP on http://");
    let seen = p.seen.lock().unwrap().iter().find(|l| is_it(l)).cloned();
    let line = seen.unwrap_or_else(|| p.wait_line(is_it));
    line.trim_start_matches("HTTP on http://")
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

/// Starts an index server on an ephemeral port.
pub fn index(cwd: &Path, extra: &[&str]) -> Proc {
    Args::index_server().args(extra).start("index", cwd)
}

/// Starts a peer sharing `dir` without a console and waits until it has published
/// its files to the index.
pub fn peer(dir: &Path, index: &Proc, extra: &[&str]) -> Proc {
    start_peer(dir, index, extra, false)
}

/// Starts a peer with its console on a pipe.
pub fn console_peer(dir: &Path, index: &Proc, extra: &[&str]) -> Proc {
    start_peer(dir, index, extra, true)
}

fn start_peer(dir: &Path, index: &Proc, extra: &[&str], console: bool) -> Proc {
    let mut args = Args::peer_sharing(dir).index(index.addr);
    if !console {
        args = args.no_console();
    }
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let args = args.args(extra);
    let cwd = dir.parent().unwrap();
    let mut p = if console {
        args.start_console(&name, cwd)
    } else {
        args.start(&name, cwd)
    };
    p.wait_line(|l| l.contains(": connected,"));
    p
}

/// A `p2pshare` command line, built flag by flag:
/// `Args::get("f.bin").index(index.addr).dir(&dest).json().run(root)`.
#[derive(Clone, Debug)]
pub struct Args(Vec<String>);

impl Args {
    /// Any command line, word by word: `Args::of(&["say", "hi"])`.
    pub fn of(words: &[&str]) -> Args {
        Args(words.iter().map(|w| w.to_string()).collect())
    }

    /// `p2pshare index` on an ephemeral port of 127.0.0.1.
    pub fn index_server() -> Args {
        Args::of(&["index", "--listen", "127.0.0.1:0"])
    }

    /// `p2pshare seed` on an ephemeral port of 127.0.0.1.
    pub fn seed_server() -> Args {
        Args::of(&["seed", "--listen", "127.0.0.1:0"])
    }

    /// `p2pshare peer` sharing `dir`, on an ephemeral port of 127.0.0.1.
    pub fn peer_sharing(dir: &Path) -> Args {
        Args::of(&["peer"]).dir(dir).flag("--listen", "127.0.0.1:0")
    }

    /// `p2pshare get NAME`.
    pub fn get(name: &str) -> Args {
        Args::of(&["get", name])
    }

    /// `p2pshare search WORDS`.
    pub fn search(words: &str) -> Args {
        Args::of(&["search", words])
    }

    /// `p2pshare status ADDR`.
    pub fn status(addr: impl ToString) -> Args {
        Args::of(&["status", &addr.to_string()])
    }

    /// `--index ADDR` (repeatable).
    pub fn index(self, addr: impl ToString) -> Args {
        self.flag("--index", addr)
    }

    /// `--dir DIR`.
    pub fn dir(self, dir: &Path) -> Args {
        self.flag("--dir", dir.to_str().expect("a UTF-8 path"))
    }

    /// `--listen ADDR`, replacing the ephemeral port the server constructors bind.
    pub fn listen(mut self, addr: impl ToString) -> Args {
        match self.0.iter().position(|w| w == "--listen") {
            Some(at) => self.0[at + 1] = addr.to_string(),
            None => self = self.flag("--listen", addr),
        }
        self
    }

    /// `--json`.
    pub fn json(self) -> Args {
        self.args(&["--json"])
    }

    /// `--no-console`.
    pub fn no_console(self) -> Args {
        self.args(&["--no-console"])
    }

    /// A flag and its value.
    pub fn flag(mut self, flag: &str, value: impl ToString) -> Args {
        self.0.push(flag.to_owned());
        self.0.push(value.to_string());
        self
    }

    /// More words as they are.
    pub fn args(mut self, words: &[&str]) -> Args {
        self.0.extend(words.iter().map(|w| w.to_string()));
        self
    }

    /// Runs the command to completion (with the deadline): (exit code, stdout, stderr).
    pub fn run(&self, cwd: &Path) -> (i32, String, String) {
        run(&self.0, cwd)
    }

    /// `run` with these environment variables set.
    pub fn run_with_env(&self, envs: &[(&str, &str)], cwd: &Path) -> (i32, String, String) {
        run_with_env(&self.0, envs, cwd)
    }

    /// Starts the command in the background.
    pub fn background(&self, cwd: &Path) -> Background {
        Background::start(&self.0, &[], cwd)
    }

    /// Starts a server without a console on a pipe and waits for its ready line.
    pub fn start(&self, name: &str, cwd: &Path) -> Proc {
        Proc::start(name, &self.0, cwd, false)
    }

    /// Starts a server with its console on a pipe and waits for its ready line.
    pub fn start_console(&self, name: &str, cwd: &Path) -> Proc {
        Proc::start(name, &self.0, cwd, true)
    }

    /// The words, for helpers that take `&[&str]`.
    pub fn words(&self) -> Vec<&str> {
        self.0.iter().map(String::as_str).collect()
    }
}

/// A one-shot `p2pshare` running in the background, killed on drop. Both of its pipes
/// are drained from the start by threads of their own, so a child that writes more
/// than a pipe holds (64 KiB on Linux) goes on running instead of blocking.
pub struct Background {
    command: String,
    child: Child,
    stdout: Receiver<Vec<u8>>,
    stderr: Receiver<Vec<u8>>,
}

/// Reads `stream` to its end on a thread of its own; the bytes arrive on the channel.
fn drain(stream: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut stream = stream;
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        let _ = tx.send(bytes);
    });
    rx
}

impl Background {
    /// Starts `p2pshare ARGS` with these environment variables set.
    pub fn start<S: AsRef<OsStr>>(args: &[S], envs: &[(&str, &str)], cwd: &Path) -> Background {
        let command = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let mut child = self::command(envs)
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start p2pshare {command}: {e}"));
        let stdout = drain(child.stdout.take().unwrap());
        let stderr = drain(child.stderr.take().unwrap());
        Background {
            command,
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits `within` for the exit: (exit code, stdout, stderr). Kills the child and
    /// panics at the deadline.
    pub fn finish(mut self, within: Duration) -> (i32, String, String) {
        let until = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                panic!("p2pshare {} did not finish within {within:?}", self.command);
            }
            thread::sleep(Duration::from_millis(10));
        };
        // The pipes close when the child exits; a moment for the threads to hand over.
        let take = |rx: &Receiver<Vec<u8>>, which: &str| {
            let left = until
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1));
            let bytes = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("p2pshare {}: {which} never closed", self.command));
            String::from_utf8_lossy(&bytes).into_owned()
        };
        let out = take(&self.stdout, "stdout");
        let err = take(&self.stderr, "stderr");
        (status.code().unwrap_or(-1), out, err)
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a one-shot command to completion (with a deadline) and returns
/// (exit code, stdout, stderr).
pub fn run<S: AsRef<OsStr>>(args: &[S], cwd: &Path) -> (i32, String, String) {
    run_with_env(args, &[], cwd)
}

/// `run` with these environment variables set.
pub fn run_with_env<S: AsRef<OsStr>>(
    args: &[S],
    envs: &[(&str, &str)],
    cwd: &Path,
) -> (i32, String, String) {
    Background::start(args, envs, cwd).finish(DEADLINE)
}

/// `p2pshare status ADDR --json`, which must succeed: the node's status rows.
pub fn status_json(addr: impl ToString) -> serde_json::Value {
    let (code, out, err) = Args::status(addr).json().run(&std::env::temp_dir());
    assert_eq!(code, 0, "status failed: {out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("status is not JSON ({e}): {out}"))
}

/// One number from a node's status.
pub fn status_number(addr: impl ToString, key: &str) -> u64 {
    let v = status_json(addr);
    v["status"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {key} in {v}"))
}

/// The environment variable that replays a randomised test.
pub const SEED_VAR: &str = "P2PSHARE_TEST_SEED";

/// The random source of a randomised test: seeded from `P2PSHARE_TEST_SEED` when it is
/// set, else from a fresh seed. The seed is printed with the test's name either way
/// (the harness shows it when the test fails), and the same seed makes the same
/// choices again. Call it on the test's own thread, which the harness names.
pub fn seeded_rng() -> StdRng {
    let thread = thread::current();
    let test = thread.name().unwrap_or("this test");
    let seed = match std::env::var(SEED_VAR) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_VAR}={text:?} is not a number")),
        Err(_) => rand::random(),
    };
    eprintln!("{test}: seed {seed}: replay with {SEED_VAR}={seed}");
    StdRng::seed_from_u64(seed)
}

/// Polls `cond` every 50 ms until it holds, panicking with `what` at the deadline.
pub fn eventually(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < until, "not within {within:?}: {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// A raw connection for byte-exact exchanges.
pub struct Raw {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        Raw::wrap(TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap())
    }

    /// Connects from another loopback address (`127.0.0.2`, ...): another host, as far
    /// as the server can tell.
    pub fn connect_from(source: std::net::Ipv4Addr, addr: SocketAddr) -> Raw {
        use std::os::fd::FromRawFd;
        let SocketAddr::V4(dest) = addr else {
            panic!("an IPv4 server address, not {addr}")
        };
        let sockaddr = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: plain socket calls on a descriptor this function owns; the addresses
        // live on the stack for the duration of each call.
        let stream = unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let stream = TcpStream::from_raw_fd(fd);
            let from = sockaddr(source, 0);
            let rc = libc::bind(fd, (&from as *const libc::sockaddr_in).cast(), len);
            assert_eq!(rc, 0, "bind {source}: {}", std::io::Error::last_os_error());
            let to = sockaddr(*dest.ip(), dest.port());
            let rc = libc::connect(fd, (&to as *const libc::sockaddr_in).cast(), len);
            assert_eq!(rc, 0, "connect {addr}: {}", std::io::Error::last_os_error());
            stream
        };
        Raw::wrap(stream)
    }

    fn wrap(stream: TcpStream) -> Raw {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Raw { stream, reader }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one line, without its `\n`.
    pub fn line(&mut self) -> String {
        let mut s = String::new();
        self.reader.read_line(&mut s).unwrap();
        assert!(s.ends_with('\n'), "line not terminated: {s:?}");
        s.pop();
        s
    }

    /// Sends a request line and reads the first reply line.
    pub fn ask(&mut self, line: &str) -> String {
        self.send(format!("{line}\n").as_bytes());
        self.line()
    }

    /// Says hello as `role` (`peer`, `seed` or `client`) with the key of test node
    /// `name` (see [`test_key`]), announcing `port`, checks the node's signed answer
    /// and proves the key with `auth`: the answer to `auth` (`ok|...`), to `hello` for
    /// a client, or the refusal of either.
    pub fn hello_as(&mut self, role: &str, name: &str, port: u16) -> String {
        self.hello_with(&test_me(name), role, port)
    }

    /// [`Raw::hello_as`] with any key.
    pub fn hello_with(&mut self, me: &Me, role: &str, port: u16) -> String {
        let role = match role {
            "peer" => HelloRole::Peer,
            "seed" => HelloRole::Seed,
            _ => HelloRole::Client,
        };
        node::handshake(me, role, port, |line| self.ask(line.trim_end()))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        self.reader.read_exact(&mut buf).unwrap();
        buf
    }

    /// Reads until the server closes the connection.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        let _ = self.reader.read_to_end(&mut buf);
        buf
    }
}

/// The key of test node `name`: derived from the name, so a test can name the same
/// node twice (never for a real node: anyone can derive it).
pub fn test_key(name: &str) -> NodeKey {
    NodeKey::for_test(name)
}

/// Test node `name`: its key and name.
pub fn test_me(name: &str) -> Me {
    Me {
        key: test_key(name),
        name: PeerId::parse(name).unwrap(),
    }
}

/// The id of test node `name`.
pub fn test_id(name: &str) -> String {
    test_key(name).id().to_string()
}

/// One classic exchange: send without a newline, read until the server closes.
pub fn classic(addr: SocketAddr, request: &str) -> Vec<u8> {
    let mut raw = Raw::connect(addr);
    raw.send(request.as_bytes());
    raw.read_to_end()
}

/// Copies the sample folders into a temporary directory.
pub fn sample_peers(root: &Path) -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers");
    let mut out = Vec::new();
    for name in ["peer1", "peer2", "peer3"] {
        let dst = root.join(name);
        std::fs::create_dir_all(&dst).unwrap();
        for e in std::fs::read_dir(src.join(name)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
        out.push(dst);
    }
    out
}

/// The content id of `bytes`: the digest of their piece list.
pub fn content_id(bytes: &[u8]) -> p2pshare::protocol::hash::Sha1Digest {
    use p2pshare::protocol::hash::{piece_list_digest, Sha1Digest};
    let pieces: Vec<Sha1Digest> = bytes
        .chunks(p2pshare::protocol::PIECE_SIZE as usize)
        .map(Sha1Digest::of)
        .collect();
    piece_list_digest(&pieces)
}

/// Deterministic pseudo-random bytes (xorshift), so files differ in every piece.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `get|<name>` on a fresh connection: the holders' peer ids.
pub fn holders(index: SocketAddr, name: &str) -> Vec<String> {
    let mut raw = Raw::connect(index);
    let head = raw.ask(&format!("get|{name}"));
    let n: usize = head.strip_prefix("ok|").unwrap().parse().unwrap();
    (0..n)
        .map(|_| raw.line().split('|').nth(6).unwrap().to_owned())
        .collect()
}

/// Where the Python tools of `tests/tools.sh` live: `$P2PSHARE_TOOLS_VENV`, else
/// `target/tools-venv` (a relative path is taken from the crate's root).
pub fn tools_venv() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match std::env::var_os("P2PSHARE_TOOLS_VENV") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target/tools-venv"),
    }
}

/// An outside program a test drives (schemathesis, a browser, ...): the first of
/// `commands` found in the tools' virtual environment ([`tools_venv`]), then on
/// PATH. When none is there, the test cannot run: with `P2PSHARE_REQUIRE_TOOLS=1` (as
/// in CI) that fails it, saying how to install the tool (`install_hint`, such as
/// "bash tests/tools.sh installs it"); otherwise it prints
/// `skipped: NAME not installed (HINT; CI requires it)` where the harness does not
/// hide it, and the caller returns.
pub fn tool(name: &str, commands: &[&str], install_hint: &str) -> Option<PathBuf> {
    let venv_bin = tools_venv().join("bin");
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let found = std::iter::once(venv_bin)
        .chain(on_path)
        .flat_map(|dir| commands.iter().map(move |c| dir.join(c)))
        .find(|path| is_executable(path));
    if found.is_some() {
        return found;
    }
    let required = std::env::var("P2PSHARE_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "P2PSHARE_REQUIRE_TOOLS=1, and {name} is not installed: {install_hint} \
         ({} looked for in {} and on PATH)",
        commands.join(" or "),
        tools_venv().join("bin").display()
    );
    // Straight to stderr, past the harness's capture: a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {name} not installed ({install_hint}; CI requires it)"
    );
    None
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
