//! Token buckets: [`TokenBucket`], a rate limit shared by every connection of a
//! process that sleeps its caller, and [`Allowance`], a pure bucket that refuses
//! instead (time passed in), for quotas a server answers `busy` to and for the
//! overlay's per-origin broadcast rate.
//!
//! [`TokenBucket`]: callers take bytes before they move them; when the bucket is empty
//! they sleep just long enough for the bytes to be earned. The bucket holds at most a
//! tenth of a second's worth (and at least 64 KiB), so the rate is smooth rather than
//! bursty. Lock order: the bucket's mutex is a leaf, never held while sleeping.

use crate::clock::Millis;
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

/// A rate with a burst, as a pure token bucket: `burst` tokens at first, refilled at
/// `per_sec`, never above `burst`. It never sleeps and reads no clock: [`take`] says
/// whether `n` tokens are there at `now`, and takes them only if they all are.
///
/// [`take`]: Allowance::take
#[derive(Clone, Debug)]
pub struct Allowance {
    per_sec: u64,
    burst: u64,
    /// Tokens, in thousandths (so a rate below 1000/s still refills every ms).
    milli_tokens: u64,
    at: Millis,
}

impl Allowance {
    /// A full bucket at `now`.
    pub fn new(per_sec: u64, burst: u64, now: Millis) -> Allowance {
        Allowance {
            per_sec,
            burst,
            milli_tokens: burst.saturating_mul(1000),
            at: now,
        }
    }

    fn refill(&mut self, now: Millis) {
        let elapsed = now.0.saturating_sub(self.at.0);
        self.at = self.at.max(now);
        let earned = elapsed.saturating_mul(self.per_sec);
        self.milli_tokens = self
            .milli_tokens
            .saturating_add(earned)
            .min(self.burst.saturating_mul(1000));
    }

    /// Takes `n` tokens if the bucket holds them at `now`; otherwise takes nothing.
    pub fn take(&mut self, n: u64, now: Millis) -> bool {
        self.refill(now);
        let want = n.saturating_mul(1000);
        if self.milli_tokens >= want {
            self.milli_tokens -= want;
            true
        } else {
            false
        }
    }

    /// Whole tokens available at `now`.
    pub fn available(&mut self, now: Millis) -> u64 {
        self.refill(now);
        self.milli_tokens / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allowance_spends_its_burst_then_refills_at_its_rate() {
        let mut a = Allowance::new(10, 50, Millis(0));
        assert!(a.take(50, Millis(0)));
        assert!(!a.take(1, Millis(0)));
        // 10 a second: one token every 100 ms.
        assert!(!a.take(1, Millis(99)));
        assert!(a.take(1, Millis(100)));
        // All or nothing: 3 asked, 2 there, none taken.
        assert!(!a.take(3, Millis(300)));
        assert!(a.take(2, Millis(300)));
        // Never above the burst, however long it rests; time never runs back.
        assert_eq!(a.available(Millis(1_000_000)), 50);
        assert_eq!(a.available(Millis(5)), 50);
        assert!(!a.take(51, Millis(2_000_000)));
    }

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
