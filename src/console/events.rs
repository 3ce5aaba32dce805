//! What the peer's events look like at the console (and in a console-less peer's
//! output): one line each, with texts from the network made safe for a terminal; the
//! hashing bar; the printer that puts lines above the prompt.

use crate::clock;
use crate::config::NodeAddr;
use crate::identity;
use crate::output::{self, LinePrinter};
use crate::overlay::OverlayEvent;
use crate::peer::PeerEvent;
use crate::units::{fmt_bytes, plural};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rustyline::ExternalPrinter;

/// A text from the network, fit for a terminal: control characters (escape sequences,
/// carriage returns, line breaks) are shown escaped (`\u{1b}`, `\r`, `\n`), so that
/// a peer can neither drive another's terminal nor forge lines of its output.
pub(super) fn terminal_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// The text of an event, as the console and main.rs print it; `None` for progress,
/// which the console draws as a bar. `seeds` is the peer's seed list, so that a seed
/// is named by its address.
pub fn describe(event: &PeerEvent, seeds: &[NodeAddr]) -> Option<String> {
    Some(match event {
        PeerEvent::Shared {
            files,
            bytes,
            from_cache,
            skipped,
        } => {
            let mut s = format!(
                "sharing {} ({})",
                plural(*files as u64, "file"),
                fmt_bytes(*bytes)
            );
            if *from_cache > 0 {
                s.push_str(&format!(
                    ", {from_cache} unchanged since last run (hash cache)"
                ));
            }
            for why in skipped {
                s.push_str(&format!("\n  not shared: {why}"));
            }
            s
        }
        PeerEvent::ScanFailed(why) => format!("cannot scan the shared folder: {why}"),
        PeerEvent::IndexUp { index, files } => {
            format!(
                "index {index}: connected, {} published",
                plural(*files as u64, "file")
            )
        }
        PeerEvent::IndexDown { index, reason } => format!("index {index}: unreachable ({reason})"),
        PeerEvent::Hashing { .. } => return None,
        PeerEvent::Message {
            from,
            id,
            text,
            remote,
        } => {
            format!(
                "message from {from} ({} at {}): {}",
                crate::identity::short(id.as_str()),
                remote.ip().to_canonical(),
                terminal_safe(text)
            )
        }
        PeerEvent::HttpMessage { from, text, remote } => format!(
            "message over HTTP from '{}' (a name nothing proves, at {}): {}",
            terminal_safe(from),
            remote.ip().to_canonical(),
            terminal_safe(text)
        ),
        PeerEvent::Uploaded {
            name,
            size,
            id,
            remote,
        } => format!(
            "received '{}' ({}, id {}) by upload from {}; sharing it",
            terminal_safe(name),
            fmt_bytes(*size),
            id.short(),
            remote.ip().to_canonical()
        ),
        PeerEvent::Greeted { name, id, reply } => format!(
            "greeted {} ({}): {}",
            terminal_safe(name),
            crate::identity::short(id.as_str()),
            terminal_safe(reply)
        ),
        PeerEvent::GreetFailed { why } => format!("greeting not delivered: {why}"),
        PeerEvent::Overlay(ev) => return describe_overlay(ev, seeds),
    })
}

/// A seed by its address (the events carry its position in the seed list).
fn seed_name(seeds: &[NodeAddr], i: usize) -> String {
    match seeds.get(i) {
        Some(addr) => format!("seed {addr}"),
        None => format!("seed #{}", i + 1),
    }
}

/// The overlay events a user wants to see; the rest are only logged.
fn describe_overlay(ev: &OverlayEvent, seeds: &[NodeAddr]) -> Option<String> {
    Some(match ev {
        OverlayEvent::Said {
            origin,
            name,
            time_ms,
            text,
            local,
            ..
        } => {
            // The name is the origin's claim (names may repeat); the id is its key.
            let short = identity::short(origin.as_str());
            let mut who = match name {
                Some(name) => format!("{} ({short})", terminal_safe(name.as_str())),
                None => short.to_owned(),
            };
            if *local {
                who.push_str(" (you)");
            }
            format!(
                "[{}] {who}: {}",
                clock::local_time_of_day(*time_ms),
                terminal_safe(text)
            )
        }
        OverlayEvent::SeedUp { seed, peers } => {
            format!(
                "{}: registered, {} known",
                seed_name(seeds, *seed),
                plural(*peers as u64, "peer")
            )
        }
        OverlayEvent::SeedDown { seed } => {
            log::info!(
                "{} did not answer; trying again later",
                seed_name(seeds, *seed)
            );
            return None;
        }
        OverlayEvent::Dead { id, by } => format!("{id} is dead (declared by {by})"),
        OverlayEvent::Left { id } => format!("{id} left the network"),
        OverlayEvent::RefutedSelf { incarnation } => {
            log::info!("refuted a suspicion about this peer (incarnation {incarnation})");
            return None;
        }
        OverlayEvent::NeighborUp { id } => {
            log::debug!("neighbour {id} up");
            return None;
        }
        OverlayEvent::NeighborDown { id, reason } => {
            log::debug!("neighbour {id} down ({reason})");
            return None;
        }
        OverlayEvent::ProbeMissed { id } => {
            log::debug!("{id} did not answer a probe in time");
            return None;
        }
        OverlayEvent::Suspected { id } => {
            log::info!("{id} is suspected (no answer to probes)");
            return None;
        }
        OverlayEvent::Refuted { id, .. } => {
            log::info!("{id} is alive after all (refuted)");
            return None;
        }
        // A seed's own events.
        OverlayEvent::Joined { .. }
        | OverlayEvent::Forgotten { .. }
        | OverlayEvent::Reported { .. }
        | OverlayEvent::Cleared { .. } => return None,
    })
}

/// A hashing bar on the terminal, and when it started.
struct HashingBar {
    bar: ProgressBar,
    started: std::time::Instant,
}

impl HashingBar {
    fn new(bytes_total: u64) -> HashingBar {
        let bar = ProgressBar::with_draw_target(Some(bytes_total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "hashing {msg} [{bar:30}] {bytes}/{total_bytes} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        if !bar.is_hidden() {
            output::set_progress(Some(bar.clone()));
        }
        HashingBar {
            bar,
            started: std::time::Instant::now(),
        }
    }

    /// Clears the bar and stops routing output through it. The bar was drawn over
    /// the prompt line, which the line editor does not know: the caller prints a line
    /// next, through the editor, which redraws the prompt after it.
    fn finish(self) {
        self.bar.finish_and_clear();
        output::set_progress(None);
    }
}

/// Prints events, drawing hashing progress as a bar. Every bar ends with a line
/// printed through the line editor, so the prompt comes back after it.
pub(super) fn print_events(events: crossbeam_channel::Receiver<PeerEvent>, seeds: Vec<NodeAddr>) {
    let mut bar: Option<HashingBar> = None;
    for ev in events {
        if let PeerEvent::Hashing {
            files_done,
            files_total,
            bytes_done,
            bytes_total,
        } = ev
        {
            let b = bar.get_or_insert_with(|| HashingBar::new(bytes_total));
            b.bar.set_position(bytes_done);
            b.bar.set_message(format!(
                "{files_done}/{}",
                plural(files_total as u64, "file")
            ));
            if bytes_done >= bytes_total {
                if let Some(b) = bar.take() {
                    let secs = b.started.elapsed().as_secs_f64();
                    b.finish();
                    output::say(format!(
                        "hashed {} ({}) in {secs:.1}s",
                        plural(files_total as u64, "file"),
                        fmt_bytes(bytes_total)
                    ));
                }
            }
            continue;
        }
        // A scan that ends without the last progress report (it failed, or files
        // vanished while hashed) ends its bar all the same.
        if matches!(ev, PeerEvent::Shared { .. } | PeerEvent::ScanFailed(_)) {
            if let Some(b) = bar.take() {
                b.finish();
            }
        }
        if let Some(text) = describe(&ev, &seeds) {
            output::say(text);
        }
    }
}

pub(super) struct EditorPrinter<P: ExternalPrinter + Send>(pub(super) P);

impl<P: ExternalPrinter + Send> LinePrinter for EditorPrinter<P> {
    fn print_line(&mut self, line: String) {
        let _ = self.0.print(line + "\n");
    }
}
