//! The source policy of a swarm download: which holder to start next, when a failed
//! holder may be tried again, which holders are banned, when to ask the index for
//! holders again, and when to give up.
//!
//! A pure core beside [`PiecePlan`](crate::peer::plan::PiecePlan): the swarm's
//! coordinator tells it what happened (the index offered holders, a source ended, a
//! source sent a bad piece) and asks [`SourcePolicy::next_action`] what to do now,
//! passing the time in. It never touches a socket, a clock or a thread.
//!
//! # Holders
//!
//! A holder is known by its address, and is in one of these states:
//!
//! - **offered**: in the index's last answer, not looked at yet. `next_action` looks at
//!   the offered holders in the order given and forgets the answer as it goes: one that
//!   cannot be started then (the cap is reached, or it is running, banned or failed too
//!   recently) waits for a later answer that names it again.
//! - **running**: a source is fetching from it.
//! - **failed** (since when): its last source failed. It may be started again once
//!   [`RETRY_FAILED_AFTER`] has passed: it may have restarted.
//! - **banned**: it sent [`BAD_PIECES_BAN`] pieces that did not match their hashes, or a
//!   piece list that did not match its digest. Final for this download.
//!
//! Invariants: at most `cap` holders are running, each at most once; a banned holder is
//! never started again; `tried` counts the distinct holders ever started; every source
//! gets a new [`SourceId`].
//!
//! # Asking again, and giving up
//!
//! While fewer than `cap` sources run, the index is asked again [`REQUERY_FIRST`] after
//! the last time a holder was started, then at intervals doubling up to [`REQUERY_MAX`].
//!
//! Starved (no source running), the policy says so once ([`Action::Starved`]), asks at
//! once and then every [`STARVED_REQUERY`]. The starvation clock starts when the last
//! source ends and restarts only when pieces were verified since it started: a holder
//! that is started and fails without delivering does not restart it. Once the clock
//! reaches `patience` (the I/O timeout) with no source running, the policy gives up.

use crate::peer::plan::SourceId;
use crate::peer::pool::Holder;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// The first time the index is asked again for more holders while fewer than
/// `max_sources` are in use; the interval doubles up to [`REQUERY_MAX`] while no new
/// holder turns up.
pub(super) const REQUERY_FIRST: Duration = Duration::from_secs(2);
pub(super) const REQUERY_MAX: Duration = Duration::from_secs(30);

/// How often the index is asked again once no source is left.
pub(super) const STARVED_REQUERY: Duration = Duration::from_secs(1);

/// A holder that failed (and was not banned) may be tried again after this long: it
/// may have restarted.
pub(super) const RETRY_FAILED_AFTER: Duration = Duration::from_secs(2);

/// Bad pieces after which a source is banned for the rest of the download.
pub(super) const BAD_PIECES_BAN: u32 = 2;

/// What the coordinator should do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Action {
    /// Start a source with this id on this holder (now counted as running).
    Start { source: SourceId, holder: Holder },
    /// Ask the index for holders again and [`offer`](SourcePolicy::offer) the answer.
    Requery,
    /// No source is left: tell the user, who waits up to `patience` for a holder.
    Starved,
    /// Wait for a source to end, at most this long (`None`: no deadline; every
    /// source slot is in use, so nothing is due before one ends).
    Wait(Option<Duration>),
    /// No source is running and none could be found for `patience`, with no progress:
    /// stop (the partial stays, for a resume).
    GiveUp,
}

/// Which holders a download uses, and when it asks for more. See the module
/// documentation for the states and invariants.
#[derive(Debug)]
pub(super) struct SourcePolicy {
    cap: usize,
    patience: Duration,
    offered: VecDeque<Holder>,
    /// Address -> source id, for the sources running now.
    running: HashMap<String, SourceId>,
    failed_at: HashMap<String, Instant>,
    /// Bad pieces per holder address.
    bad: HashMap<String, u32>,
    banned: HashSet<String>,
    /// Every holder ever started.
    seen: HashSet<String>,
    next_id: SourceId,
    /// A holder of the current offer was started: the requery interval starts over
    /// once the offer has been looked at.
    started_from_offer: bool,
    requery_every: Duration,
    next_requery: Instant,
    /// Since when no source has been running, and how many pieces were verified then.
    starved: Option<(Instant, usize)>,
}

impl SourcePolicy {
    /// A policy for up to `cap` sources at once (at least one) that gives up after
    /// `patience` without a source or progress, starting with the holders the index
    /// gave at `now`.
    pub(super) fn new(
        holders: Vec<Holder>,
        cap: usize,
        patience: Duration,
        now: Instant,
    ) -> SourcePolicy {
        SourcePolicy {
            cap: cap.max(1),
            patience,
            offered: holders.into(),
            running: HashMap::new(),
            failed_at: HashMap::new(),
            bad: HashMap::new(),
            banned: HashSet::new(),
            seen: HashSet::new(),
            next_id: 0,
            started_from_offer: false,
            requery_every: REQUERY_FIRST,
            next_requery: now + REQUERY_FIRST,
            starved: None,
        }
    }

    /// The index's new answer replaces what is left of the last one.
    pub(super) fn offer(&mut self, holders: Vec<Holder>) {
        self.offered = holders.into();
    }

    /// What to do at `now`, with `verified` pieces verified so far (progress).
    pub(super) fn next_action(&mut self, now: Instant, verified: usize) -> Action {
        if let Some(start) = self.start_offered(now) {
            return start;
        }
        if std::mem::take(&mut self.started_from_offer) && !self.running.is_empty() {
            self.requery_every = REQUERY_FIRST;
            self.next_requery = now + self.requery_every;
        }
        if self.running.is_empty() {
            match self.starved {
                Some((since, at)) if at == verified => {
                    if now.duration_since(since) >= self.patience {
                        return Action::GiveUp;
                    }
                }
                _ => {
                    // Out of holders: ask the index again at once, then every second.
                    self.starved = Some((now, verified));
                    self.next_requery = now;
                    return Action::Starved;
                }
            }
        }
        if self.running.len() < self.cap && now >= self.next_requery {
            let interval = if self.running.is_empty() {
                STARVED_REQUERY
            } else {
                self.requery_every = (self.requery_every * 2).min(REQUERY_MAX);
                self.requery_every
            };
            self.next_requery = now + interval;
            return Action::Requery;
        }
        if self.running.len() >= self.cap {
            return Action::Wait(None);
        }
        Action::Wait(Some(self.next_requery.saturating_duration_since(now)))
    }

    /// The first offered holder that may be started now, as running; the offered
    /// holders looked at before it are forgotten, and all of them at the cap.
    fn start_offered(&mut self, now: Instant) -> Option<Action> {
        while let Some(holder) = self.offered.pop_front() {
            if self.running.len() >= self.cap {
                self.offered.clear();
                return None;
            }
            let addr = holder.addr();
            if !self.may_start(&addr, now) {
                continue;
            }
            let source = self.next_id;
            self.next_id += 1;
            self.running.insert(addr.clone(), source);
            self.seen.insert(addr);
            self.started_from_offer = true;
            return Some(Action::Start { source, holder });
        }
        None
    }

    fn may_start(&self, addr: &str, now: Instant) -> bool {
        !self.banned.contains(addr)
            && !self.running.contains_key(addr)
            && self
                .failed_at
                .get(addr)
                .is_none_or(|at| now.saturating_duration_since(*at) >= RETRY_FAILED_AFTER)
    }

    /// The source on `addr` ended without failing (done, or stopped by the download).
    pub(super) fn finished(&mut self, addr: &str) {
        self.running.remove(addr);
    }

    /// The source on `addr` failed at `now`: the holder may be retried later, unless
    /// it is banned.
    pub(super) fn failed(&mut self, addr: &str, now: Instant) {
        self.running.remove(addr);
        self.failed_at.insert(addr.to_owned(), now);
    }

    /// `addr` sent a piece that does not match its hash. True when that bans it.
    pub(super) fn bad_piece(&mut self, addr: &str) -> bool {
        let bad = self.bad.entry(addr.to_owned()).or_insert(0);
        *bad += 1;
        let ban = *bad >= BAD_PIECES_BAN;
        if ban && self.banned.insert(addr.to_owned()) {
            crate::metrics::global().source_bans.inc();
        }
        ban
    }

    /// Bans `addr` for the rest of the download (it lied about the piece list).
    pub(super) fn ban(&mut self, addr: &str) {
        if self.banned.insert(addr.to_owned()) {
            crate::metrics::global().source_bans.inc();
        }
    }

    pub(super) fn is_banned(&self, addr: &str) -> bool {
        self.banned.contains(addr)
    }

    /// Sources running now.
    pub(super) fn running(&self) -> usize {
        self.running.len()
    }

    /// Distinct holders started so far.
    pub(super) fn tried(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATIENCE: Duration = Duration::from_secs(15);

    fn holder(port: u16) -> Holder {
        Holder {
            host: "127.0.0.1".parse().unwrap(),
            port,
            peer: format!("p{port}"),
            name: format!("p{port}"),
            size: Some(1),
            id: None,
            sha1: None,
        }
    }

    fn addr(port: u16) -> String {
        holder(port).addr()
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Starts every holder the policy will start now; returns their ports.
    fn start_all(p: &mut SourcePolicy, now: Instant, verified: usize) -> Vec<u16> {
        let mut ports = Vec::new();
        while let Action::Start { holder, .. } = p.next_action(now, verified) {
            ports.push(holder.port);
        }
        ports
    }

    #[test]
    fn no_more_than_the_cap_run_and_the_rest_of_the_answer_is_dropped() {
        let t0 = Instant::now();
        let mut p = SourcePolicy::new((1..=5).map(holder).collect(), 2, PATIENCE, t0);
        assert_eq!(
            p.next_action(t0, 0),
            Action::Start {
                source: 0,
                holder: holder(1)
            }
        );
        assert_eq!(
            p.next_action(t0, 0),
            Action::Start {
                source: 1,
                holder: holder(2)
            }
        );
        assert_eq!(p.next_action(t0, 0), Action::Wait(None));
        assert_eq!(p.running(), 2);
        // A slot frees up: the holders beyond the cap were dropped with the answer,
        // so the next one comes from asking again.
        p.finished(&addr(1));
        assert_eq!(
            p.next_action(t0 + secs(0.5), 0),
            Action::Wait(Some(secs(1.5)))
        );
        assert_eq!(p.next_action(t0 + REQUERY_FIRST, 0), Action::Requery);
        p.offer((1..=5).map(holder).collect());
        // Holder 1 finished cleanly and may run again; holder 2 is running.
        assert_eq!(start_all(&mut p, t0 + REQUERY_FIRST, 0), vec![1]);
        assert_eq!(p.tried(), 2);
    }

    #[test]
    fn a_cap_of_zero_means_one() {
        let t0 = Instant::now();
        let mut p = SourcePolicy::new(vec![holder(1), holder(2)], 0, PATIENCE, t0);
        assert_eq!(start_all(&mut p, t0, 0), vec![1]);
    }

    #[test]
    fn a_failed_holder_is_retried_only_after_the_delay() {
        let t0 = Instant::now();
        let mut p = SourcePolicy::new(vec![holder(1), holder(2)], 4, PATIENCE, t0);
        assert_eq!(start_all(&mut p, t0, 0), vec![1, 2]);
        p.failed(&addr(1), t0);
        p.offer(vec![holder(1)]);
        assert_eq!(
            p.next_action(t0 + secs(1.9), 0),
            Action::Wait(Some(secs(0.1)))
        );
        p.offer(vec![holder(1)]);
        assert_eq!(
            p.next_action(t0 + RETRY_FAILED_AFTER, 0),
            Action::Start {
                source: 2,
                holder: holder(1)
            }
        );
        assert_eq!(p.tried(), 2, "a retry is not a new holder");
    }

    #[test]
    fn a_holder_banned_after_the_bad_piece_limit_is_never_started_again() {
        let bans = || crate::metrics::value("p2pshare_source_bans_total");
        let before = bans();
        let t0 = Instant::now();
        let mut p = SourcePolicy::new(vec![holder(1)], 4, PATIENCE, t0);
        assert_eq!(start_all(&mut p, t0, 0), vec![1]);
        for _ in 1..BAD_PIECES_BAN {
            assert!(!p.bad_piece(&addr(1)));
        }
        assert!(p.bad_piece(&addr(1)));
        assert!(p.is_banned(&addr(1)));
        p.failed(&addr(1), t0);
        for later in [10.0, 100.0, 1000.0] {
            p.offer(vec![holder(1)]);
            assert_eq!(start_all(&mut p, t0 + secs(later), 0), Vec::<u16>::new());
        }
        // A holder that lied about the piece list is banned at once.
        p.ban(&addr(2));
        p.offer(vec![holder(2), holder(3)]);
        assert_eq!(start_all(&mut p, t0 + secs(2000.0), 0), vec![3]);
        // Both bans are counted in the process's metrics (other tests may ban too).
        assert!(bans() >= before + 2.0);
    }

    #[test]
    fn requery_interval_doubles_while_no_holder_starts_and_resets_when_one_does() {
        let t0 = Instant::now();
        let mut p = SourcePolicy::new(vec![holder(1)], 4, PATIENCE, t0);
        assert_eq!(start_all(&mut p, t0, 0), vec![1]);
        let mut now = t0;
        let mut intervals = Vec::new();
        for _ in 0..6 {
            let Action::Wait(Some(wait)) = p.next_action(now, 0) else {
                panic!("expected a wait");
            };
            intervals.push(wait.as_secs());
            now += wait;
            assert_eq!(p.next_action(now, 0), Action::Requery);
            // The index knows nothing new.
            p.offer(vec![holder(1)]);
        }
        assert_eq!(intervals, [2, 4, 8, 16, 30, 30]);
        // A new holder turns up: the interval starts over.
        p.offer(vec![holder(2)]);
        assert_eq!(start_all(&mut p, now, 0), vec![2]);
        assert_eq!(p.next_action(now, 0), Action::Wait(Some(REQUERY_FIRST)));
    }

    #[test]
    fn no_requery_and_no_deadline_while_every_slot_is_in_use() {
        // Regression: the wait used to be the time left until the requery deadline,
        // zero once it had passed, so a coordinator at the cap spun until a source
        // ended.
        let t0 = Instant::now();
        let mut p = SourcePolicy::new(vec![holder(1), holder(2)], 1, PATIENCE, t0);
        assert_eq!(start_all(&mut p, t0, 0), vec![1]);
        assert_eq!(p.next_action(t0 + secs(60.0), 0), Action::Wait(None));
        // Once a slot frees up, the overdue requery comes at once.
        p.failed(&addr(1), t0 + secs(60.0));
        assert_eq!(p.next_action(t0 + secs(60.0), 0), Action::Starved);
        assert_eq!(p.next_action(t0 + secs(60.0), 0), Action::Requery);
    }

    #[test]
    fn starved_it_asks_every_second_and_gives_up_only_after_the_timeout() {
        let t0 = Instant::now();
        let mut p = SourcePolicy::new(vec![holder(1)], 4, PATIENCE, t0);
        assert_eq!(start_all(&mut p, t0, 0), vec![1]);
        p.failed(&addr(1), t0 + secs(1.0));
        let mut now = t0 + secs(1.0);
        assert_eq!(p.next_action(now, 3), Action::Starved);
        let mut requeries = 0;
        loop {
            match p.next_action(now, 3) {
                Action::Requery => {
                    requeries += 1;
                    p.offer(Vec::new());
                }
                Action::Wait(Some(wait)) => {
                    assert!(wait <= STARVED_REQUERY);
                    now += wait;
                }
                Action::GiveUp => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(now, t0 + secs(1.0) + PATIENCE);
        // At once, then once a second.
        assert_eq!(requeries, PATIENCE.as_secs() as usize);
    }

    #[test]
    fn a_holder_that_delivers_nothing_does_not_restart_the_starvation_clock() {
        let t0 = Instant::now();
        let mut p = SourcePolicy::new(vec![holder(1)], 4, PATIENCE, t0);
        assert_eq!(start_all(&mut p, t0, 0), vec![1]);
        p.failed(&addr(1), t0);
        assert_eq!(p.next_action(t0, 0), Action::Starved);
        assert_eq!(p.next_action(t0, 0), Action::Requery);
        // Ten seconds in, a holder turns up, is started and fails at once.
        let later = t0 + secs(10.0);
        p.offer(vec![holder(2)]);
        assert_eq!(start_all(&mut p, later, 0), vec![2]);
        p.failed(&addr(2), later);
        assert_ne!(p.next_action(t0 + PATIENCE - secs(0.1), 0), Action::GiveUp);
        assert_eq!(p.next_action(t0 + PATIENCE, 0), Action::GiveUp);
    }

    #[test]
    fn progress_while_starved_restarts_the_clock() {
        let t0 = Instant::now();
        let mut p = SourcePolicy::new(vec![holder(1)], 4, PATIENCE, t0);
        assert_eq!(start_all(&mut p, t0, 0), vec![1]);
        p.failed(&addr(1), t0);
        assert_eq!(p.next_action(t0, 0), Action::Starved);
        // Ten seconds later a holder delivers two pieces and fails.
        let later = t0 + secs(10.0);
        p.offer(vec![holder(2)]);
        assert_eq!(start_all(&mut p, later, 0), vec![2]);
        p.failed(&addr(2), later + secs(1.0));
        // The clock starts again from then, and the user is told again.
        assert_eq!(p.next_action(later + secs(1.0), 2), Action::Starved);
        assert_ne!(p.next_action(t0 + PATIENCE, 2), Action::GiveUp);
        assert_ne!(
            p.next_action(later + secs(1.0) + PATIENCE - secs(0.1), 2),
            Action::GiveUp
        );
        assert_eq!(
            p.next_action(later + secs(1.0) + PATIENCE, 2),
            Action::GiveUp
        );
    }
}
