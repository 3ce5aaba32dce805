//! Where text for people goes: one sink shared by main.rs, the console and the logger,
//! so that log lines and messages never scramble the console prompt or a progress bar.
//!
//! Only main.rs and the console call [`say`]; library code logs with the `log` macros,
//! and the logger writes through [`LogWriter`], which lands here too.
//!
//! Lock order: the sink mutex is a leaf; nothing is locked while it is held.

use indicatif::ProgressBar;
use std::io::{self, Write};
use std::sync::Mutex;

/// Prints a line above an interactive prompt (the console's line editor).
pub trait LinePrinter: Send {
    fn print_line(&mut self, line: String);
}

#[derive(Default)]
struct Sink {
    printer: Option<Box<dyn LinePrinter>>,
    /// The line editor is not reading (a command runs): print directly. Its printer is
    /// for lines that arrive while a prompt waits; lines sent through it while typed
    /// keys are pending can leave those keys unread until the next key press.
    printer_paused: bool,
    progress: Option<ProgressBar>,
}

static SINK: Mutex<Option<Sink>> = Mutex::new(None);

fn with_sink<R>(f: impl FnOnce(&mut Sink) -> R) -> R {
    let mut guard = SINK.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(Sink::default))
}

enum Stream {
    Out,
    Err,
}

fn emit(line: &str, stream: Stream) {
    with_sink(|sink| {
        if let Some(pb) = &sink.progress {
            pb.println(line);
        } else if let Some(printer) = sink.printer.as_mut().filter(|_| !sink.printer_paused) {
            printer.print_line(line.to_owned());
        } else {
            match stream {
                Stream::Out => {
                    let mut out = io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
                Stream::Err => {
                    let _ = writeln!(io::stderr().lock(), "{line}");
                }
            }
        }
    });
}

/// Prints a line for the user (stdout, or above the prompt or progress bar).
pub fn say(line: impl AsRef<str>) {
    emit(line.as_ref(), Stream::Out);
}

/// Installs the console's prompt-aware printer; `None` goes back to plain stdout.
pub fn set_printer(printer: Option<Box<dyn LinePrinter>>) {
    with_sink(|sink| sink.printer = printer);
}

/// While the line editor is not reading (`true`), lines are printed directly rather
/// than through its printer.
pub fn pause_printer(paused: bool) {
    with_sink(|sink| sink.printer_paused = paused);
}

/// Routes output above a progress bar while it is shown.
pub fn set_progress(bar: Option<ProgressBar>) {
    with_sink(|sink| sink.progress = bar);
}

/// A `Write` for env_logger: each complete line goes through the sink to stderr.
#[derive(Default)]
pub struct LogWriter {
    pending: Vec<u8>,
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..end]);
            emit(&text, Stream::Err);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
