//! How fast each origin may broadcast texts, as this peer sees it: a token bucket per
//! origin id, in a table of bounded size, and one more bucket for origins the table
//! does not hold yet.
//!
//! A pure core (time passed in). Origin ids are claims nobody proves, so a per-origin
//! bucket alone would let a sender that invents a new origin for every message through;
//! the newcomers' bucket bounds how many origins unknown to the membership are let in
//! per second, and an origin refused there is not added to the table, so a flood of
//! invented origins can neither pass nor evict the real ones. Members the node knows
//! skip the newcomers' bucket (only their own applies). When the table is full, the origin heard from least
//! recently is forgotten (it starts again with a full bucket).

use crate::clock::Millis;
use crate::net::rate::Allowance;
use crate::protocol::name::PeerId;
use std::collections::{BTreeMap, HashMap};

/// The limits: per origin, for new origins, and how many origins are remembered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginLimits {
    /// Texts per second from one origin, and how many at once.
    pub per_sec: u64,
    pub burst: u64,
    /// Origins not in the table, admitted per second, and how many at once.
    pub new_per_sec: u64,
    pub new_burst: u64,
    /// Origins remembered at most.
    pub max_origins: usize,
}

impl Default for OriginLimits {
    fn default() -> Self {
        OriginLimits {
            per_sec: 10,
            burst: 50,
            new_per_sec: 20,
            new_burst: 200,
            max_origins: 1024,
        }
    }
}

struct Entry {
    allowance: Allowance,
    /// Its key in `by_use`.
    used: u64,
}

/// The buckets of the origins heard from, least recently used first in `by_use`.
pub struct OriginRates {
    limits: OriginLimits,
    origins: HashMap<PeerId, Entry>,
    by_use: BTreeMap<u64, PeerId>,
    next_use: u64,
    newcomers: Option<Allowance>,
}

impl OriginRates {
    pub fn new(limits: OriginLimits) -> OriginRates {
        OriginRates {
            limits,
            origins: HashMap::new(),
            by_use: BTreeMap::new(),
            next_use: 0,
            newcomers: None,
        }
    }

    /// Origins remembered now.
    pub fn len(&self) -> usize {
        self.origins.len()
    }

    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    /// Whether one more text from `origin` may pass at `now` (and, if so, it is
    /// counted against the origin). A `member` origin (one the membership knows) new
    /// to the table skips the newcomers' bucket.
    pub fn admit(&mut self, origin: &PeerId, member: bool, now: Millis) -> bool {
        let use_key = self.next_use;
        self.next_use += 1;
        if let Some(entry) = self.origins.get_mut(origin) {
            self.by_use.remove(&entry.used);
            self.by_use.insert(use_key, origin.clone());
            entry.used = use_key;
            return entry.allowance.take(1, now);
        }
        let l = &self.limits;
        let newcomers = self
            .newcomers
            .get_or_insert_with(|| Allowance::new(l.new_per_sec, l.new_burst, now));
        if !member && !newcomers.take(1, now) {
            return false;
        }
        let mut allowance = Allowance::new(l.per_sec, l.burst, now);
        let admitted = allowance.take(1, now);
        while self.origins.len() >= self.limits.max_origins.max(1) {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            self.origins.remove(&oldest);
        }
        self.by_use.insert(use_key, origin.clone());
        self.origins.insert(
            origin.clone(),
            Entry {
                allowance,
                used: use_key,
            },
        );
        admitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> PeerId {
        PeerId::parse(s).unwrap()
    }

    fn admitted(r: &mut OriginRates, origin: &str, n: usize, now: u64) -> usize {
        (0..n)
            .filter(|_| r.admit(&id(origin), false, Millis(now)))
            .count()
    }

    #[test]
    fn one_origin_gets_its_burst_then_its_rate_and_others_are_not_affected() {
        let mut r = OriginRates::new(OriginLimits::default());
        assert_eq!(admitted(&mut r, "loud", 1000, 0), 50);
        assert_eq!(admitted(&mut r, "quiet", 3, 0), 3);
        // Ten a second: a second later, ten more.
        assert_eq!(admitted(&mut r, "loud", 1000, 1000), 10);
    }

    #[test]
    fn invented_origins_are_let_in_only_at_the_newcomers_rate() {
        let mut r = OriginRates::new(OriginLimits::default());
        assert!(r.admit(&id("real"), false, Millis(0)));
        let passed = (0..5000)
            .filter(|i| r.admit(&id(&format!("fake-{i}")), false, Millis(0)))
            .count();
        assert_eq!(passed, 199, "the newcomers' burst, less the real origin");
        assert!(r.len() <= 1024);
        // The flood did not push the real origin out: it keeps its own bucket.
        assert_eq!(admitted(&mut r, "real", 100, 10), 49);
        // A member new to the table is let in on its own bucket even now.
        assert!(!r.admit(&id("stranger"), false, Millis(10)));
        assert!(r.admit(&id("member"), true, Millis(10)));
    }

    #[test]
    fn the_table_forgets_the_least_recently_heard_origin() {
        let mut r = OriginRates::new(OriginLimits {
            max_origins: 2,
            ..OriginLimits::default()
        });
        assert_eq!(admitted(&mut r, "a", 50, 0), 50);
        assert!(r.admit(&id("b"), false, Millis(0)));
        assert!(
            !r.admit(&id("a"), false, Millis(0)),
            "a is used more recently than b"
        );
        assert!(r.admit(&id("c"), false, Millis(0)));
        assert_eq!(r.len(), 2);
        // b went, not a: a is still out of tokens.
        assert!(!r.admit(&id("a"), false, Millis(0)));
        assert_eq!(admitted(&mut r, "b", 5, 0), 5, "b starts again, full");
    }
}
