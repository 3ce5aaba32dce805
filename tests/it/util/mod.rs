//! Helpers for tests that run the real binary: processes killed on drop, ready lines
//! read from stdout, a deadline on every wait, and raw TCP exchanges.

pub mod pty;

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
    pub fn start(name: &str, args: &[&str], cwd: &Path, console: bool) -> Proc {
        Proc::start_with_env(name, args, &[], cwd, console)
    }

    /// `start` with these environment variables set.
    pub fn start_with_env(
        name: &str,
        args: &[&str],
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

/// Starts an index server on an ephemeral port.
pub fn index(cwd: &Path, extra: &[&str]) -> Proc {
    let mut args = vec!["index", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    Proc::start("index", &args, cwd, false)
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
    let dir_s = dir.to_str().unwrap().to_owned();
    let idx = index.addr_str();
    let mut args = vec![
        "peer",
        "--dir",
        &dir_s,
        "--listen",
        "127.0.0.1:0",
        "--index",
        &idx,
    ];
    if !console {
        args.push("--no-console");
    }
    args.extend_from_slice(extra);
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let mut p = Proc::start(&name, &args, dir.parent().unwrap(), console);
    p.wait_line(|l| l.contains(": connected,"));
    p
}

/// Runs a one-shot command to completion (with a deadline) and returns
/// (exit code, stdout, stderr).
pub fn run(args: &[&str], cwd: &Path) -> (i32, String, String) {
    run_with_env(args, &[], cwd)
}

/// `run` with these environment variables set.
pub fn run_with_env(args: &[&str], envs: &[(&str, &str)], cwd: &Path) -> (i32, String, String) {
    let mut child = command(envs)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn one-shot");
    let until = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            let mut err = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code().unwrap_or(-1), out, err);
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("p2pshare {args:?} did not finish within {DEADLINE:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
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
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
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
        .map(|_| raw.line().split('|').nth(2).unwrap().to_owned())
        .collect()
}
