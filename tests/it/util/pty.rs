//! The real binary on a pseudo-terminal, as a person at a terminal runs it: the line
//! editor in raw mode, progress bars drawn, nothing redirected. The test reads what
//! the terminal would show and types as a person would, with a deadline on every wait.

use super::{command, DEADLINE};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A process whose stdin, stdout and stderr are one pseudo-terminal; killed on drop.
pub struct PtyProc {
    child: Child,
    master: File,
    /// Every byte the process wrote to the terminal, escape sequences included.
    raw: Arc<Mutex<Vec<u8>>>,
}

impl Drop for PtyProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openpty() -> (OwnedFd, OwnedFd) {
    let mut master = -1;
    let mut slave = -1;
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two fds we then own; the name and termios are not asked for.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just opened and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

impl PtyProc {
    /// Starts `p2pshare ARGS` on a terminal, with the environment of a new user (no
    /// configuration file, no `P2PSHARE_*` variables, no RUST_LOG).
    pub fn start<S: AsRef<OsStr>>(args: &[S], cwd: &Path) -> PtyProc {
        let (master, slave) = openpty();
        let mut cmd = command(&[("TERM", "xterm")]);
        cmd.args(args)
            .current_dir(cwd)
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        let child = cmd.spawn().expect("spawn on a pty");
        drop(cmd);
        let master = File::from(master);
        let raw = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let mut answer = master.try_clone().unwrap();
        let sink = raw.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // The pty reports EIO once the process has exited.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut all = sink.lock().unwrap();
                let before = all.len();
                all.extend_from_slice(&buf[..n]);
                // Answer the line editor's cursor-position query as a terminal does
                // (column 1 after a line break), so it does not wait for an answer.
                let start = before.saturating_sub(3);
                let mut i = start;
                while let Some(at) = find(&all[i..], b"\x1b[6n") {
                    let pos = i + at;
                    if pos + 4 > before {
                        let col = match pos.checked_sub(1).map(|p| all[p]) {
                            None | Some(b'\n') | Some(b'\r') => 1,
                            Some(_) => 2,
                        };
                        let _ = write!(answer, "\x1b[1;{col}R");
                    }
                    i = pos + 4;
                }
            }
        });
        PtyProc { child, master, raw }
    }

    /// What the process wrote so far, without escape sequences and carriage returns.
    pub fn text(&self) -> String {
        strip_escapes(&String::from_utf8_lossy(&self.raw.lock().unwrap()))
    }

    /// Waits until the text written so far satisfies `pred`; panics with it at the
    /// deadline.
    pub fn wait_text(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + DEADLINE;
        loop {
            let text = self.text();
            if pred(&text) {
                return text;
            }
            assert!(
                Instant::now() < until,
                "not seen within {DEADLINE:?}: {what}\nterminal:\n{text}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Pastes text at the terminal: every key arrives at once.
    pub fn paste(&mut self, text: &str) {
        self.master.write_all(text.as_bytes()).unwrap();
        self.master.flush().unwrap();
    }

    /// Types a line at the terminal, one key at a time: each waits for the echo of
    /// the one before, as a person types.
    pub fn type_line(&mut self, line: &str) {
        for key in line.bytes().chain([b'\r']) {
            let before = self.raw.lock().unwrap().len();
            self.master.write_all(&[key]).unwrap();
            self.master.flush().unwrap();
            let until = Instant::now() + DEADLINE;
            while self.raw.lock().unwrap().len() == before {
                assert!(
                    Instant::now() < until,
                    "no echo of {:?} within {DEADLINE:?}\nterminal:\n{}",
                    key as char,
                    self.text()
                );
                thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Removes CSI and OSC escape sequences and carriage returns.
pub fn strip_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                Some('[') => {
                    // Parameters and intermediates, then one final byte in @..~.
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\x07' {
                            break;
                        }
                        if c == '\x1b' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}
