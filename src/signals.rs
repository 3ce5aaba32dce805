//! SIGINT and SIGTERM as messages: the signals are blocked in every thread and one
//! `signals` thread waits for them with sigwait(2), so a server can leave cleanly
//! (say `bye` to its indexes, stop accepting) instead of dying mid-write.

use crossbeam_channel::Receiver;
use std::io;

/// A termination request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

fn termination_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Blocks SIGINT and SIGTERM in the calling thread (and so in every thread it starts
/// afterwards) and returns a channel that receives them. Call it before starting any
/// other thread.
pub fn take_over() -> io::Result<Receiver<Signal>> {
    let set = termination_set();
    // SAFETY: `set` is a valid, initialised signal set.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: `set` is valid and `sig` is a valid out-pointer.
            let rc = unsafe { libc::sigwait(&set, &mut sig) };
            if rc != 0 {
                continue;
            }
            let s = if sig == libc::SIGTERM {
                Signal::Terminate
            } else {
                Signal::Interrupt
            };
            if tx.send(s).is_err() {
                return;
            }
        })?;
    Ok(rx)
}
