//! A download's progress bar: bytes, rate, time left and holders sending.

use crate::output;
use crate::peer::download::Progress;
use crate::units::plural;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Mutex;

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub struct BarProgress {
    bar: Mutex<Option<ProgressBar>>,
    name: Mutex<String>,
}

impl BarProgress {
    pub fn new() -> BarProgress {
        BarProgress {
            bar: Mutex::new(None),
            name: Mutex::new(String::new()),
        }
    }
}

impl Default for BarProgress {
    fn default() -> Self {
        BarProgress::new()
    }
}

impl Progress for BarProgress {
    fn begin(&self, name: &str, total: Option<u64>) {
        let bar = match total {
            Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        let style = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(name.to_owned());
        *self.name.lock().unwrap_or_else(|e| e.into_inner()) = name.to_owned();
        // A hidden bar (stderr is not a terminal) would swallow what is printed
        // through it: route output through the bar only when it is drawn.
        if !bar.is_hidden() {
            output::set_progress(Some(bar.clone()));
        }
        *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
    }

    fn advance(&self, bytes: u64) {
        if let Some(b) = &*self.bar.lock().unwrap_or_else(|e| e.into_inner()) {
            b.inc(bytes);
        }
    }

    fn sources(&self, active: usize) {
        if let Some(b) = &*self.bar.lock().unwrap_or_else(|e| e.into_inner()) {
            let name = self.name.lock().unwrap_or_else(|e| e.into_inner()).clone();
            b.set_message(format!("{name} ({})", plural(active as u64, "source")));
        }
    }

    fn source(&self, holder: &str) {
        log::info!("downloading from {holder}");
    }

    fn note(&self, text: &str) {
        output::say(text);
    }

    fn end(&self) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            b.finish_and_clear();
        }
        output::set_progress(None);
    }
}
