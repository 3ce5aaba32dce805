//! A token bucket: a rate limit shared by every connection of a process.
//!
//! Callers take bytes before they move them; when the bucket is empty they sleep just
//! long enough for the bytes to be earned. The bucket holds at most a tenth of a
//! second's worth (and at least 64 KiB), so the rate is smooth rather than bursty.
//! Lock order: the bucket's mutex is a leaf, never held while sleeping.

use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A bucket refilling at `bytes_per_sec`.
    pub fn new(bytes_per_sec: u64) -> TokenBucket {
        let rate = bytes_per_sec.max(1) as f64;
        let burst = (rate / 10.0).max(64.0 * 1024.0);
        TokenBucket {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    pub fn bytes_per_sec(&self) -> u64 {
        self.rate as u64
    }

    /// Blocks until `bytes` may pass.
    pub fn take(&self, bytes: u64) {
        let mut want = bytes as f64;
        while want > 0.0 {
            // Never ask for more than the bucket can hold at once.
            let chunk = want.min(self.burst);
            let wait = {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                let refill = now.duration_since(st.1).as_secs_f64() * self.rate;
                st.0 = (st.0 + refill).min(self.burst);
                st.1 = now;
                if st.0 >= chunk {
                    st.0 -= chunk;
                    want -= chunk;
                    None
                } else {
                    Some(Duration::from_secs_f64((chunk - st.0) / self.rate))
                }
            };
            if let Some(w) = wait {
                thread::sleep(w);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_paces_what_exceeds_its_burst() {
        // 1 MB/s with a 100 kB burst: 300 kB must take at least ~0.2 s.
        let b = TokenBucket::new(1_000_000);
        let t = Instant::now();
        b.take(300_000);
        assert!(
            t.elapsed() >= Duration::from_millis(150),
            "{:?}",
            t.elapsed()
        );
    }
}
