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

/// Parses a rate: bytes per second with an optional k, M or G suffix (powers of 1000;
/// `ki`, `Mi`, `Gi` for powers of 1024), e.g. `500k`, `25M`, `1Gi`.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a rate (try 500k, 25M, 1Gi bytes per second)"))?;
    let scale = match unit.trim_end_matches("/s").trim_end_matches('B') {
        "" => 1.0,
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "ki" | "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "'{text}': unknown unit '{other}' (use k, M, G, Ki, Mi or Gi)"
            ))
        }
    };
    let bytes = value * scale;
    if !bytes.is_finite() || !(1.0..=1e15).contains(&bytes) {
        return Err(format!("'{text}' is out of range"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_take_suffixes() {
        assert_eq!(parse_rate("500k"), Ok(500_000));
        assert_eq!(parse_rate("25M"), Ok(25_000_000));
        assert_eq!(parse_rate("1Mi"), Ok(1_048_576));
        assert_eq!(parse_rate("2.5MB/s"), Ok(2_500_000));
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("5x").is_err());
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
