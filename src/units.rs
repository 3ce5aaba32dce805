//! Quantities as people read them: byte counts in binary units, counts with their
//! nouns, durations. Pure functions, used by the log lines, the console and the
//! one-shot commands alike.

use std::time::Duration;

/// Human-readable byte counts (binary units): `512 B`, `11.3 KiB`.
pub fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    // 1023.96 KiB would print as 1024.0 KiB: it is 1.0 MiB.
    while v >= 1023.95 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `1 holder`, `2 holders`.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A duration as people write it: `45s`, `2m53s`, `3h07m`, `2d04h`.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_counts_read_well() {
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_bytes(11_564), "11.3 KiB");
        assert_eq!(fmt_bytes(1_048_575), "1.0 MiB");
        assert_eq!(fmt_bytes(1023), "1023 B");
        assert_eq!(plural(1, "file"), "1 file");
        assert_eq!(plural(0, "file"), "0 files");
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(fmt_duration(Duration::from_secs(0)), "0s");
        assert_eq!(fmt_duration(Duration::from_secs(173)), "2m53s");
        assert_eq!(fmt_duration(Duration::from_secs(3600 * 3 + 420)), "3h07m");
        assert_eq!(
            fmt_duration(Duration::from_secs(86_400 * 2 + 3600 * 4)),
            "2d04h"
        );
    }
}
