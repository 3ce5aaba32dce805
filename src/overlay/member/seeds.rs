//! Seed registration: a peer registers with a majority of its seeds, chosen at random,
//! waits for each answer with a timeout, retries a silent seed with a growing backoff
//! (taking a spare seed meanwhile, so a majority stays in use), registers again every
//! `seed_refresh`, and asks again at once when it has no view at all.
//!
//! Owns each seed's phase and backoff; sends `register` and `report` through the
//! [`Ctx`], and never touches the views: the peer lists it receives go back to the
//! node, which merges them.

use super::Ctx;
use crate::clock::Millis;
use crate::overlay::{after, Dest, MemberInfo, Msg, OverlayEvent};
use crate::protocol::name::PeerId;
use rand::seq::SliceRandom;
use std::time::Duration;

/// Longest wait between two seed registration attempts.
const MAX_SEED_BACKOFF: Duration = Duration::from_secs(60);
/// How often a node with no view at all asks the seeds again.
const REJOIN_EVERY: Duration = Duration::from_secs(2);
/// The first wait before a silent seed is asked again.
const FIRST_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug)]
enum SeedPhase {
    Idle,
    Waiting { deadline: Millis },
    Up,
    Down { retry_at: Millis },
}

#[derive(Clone, Debug)]
struct SeedLink {
    chosen: bool,
    phase: SeedPhase,
    /// The seq of the last registration sent, to match the answer.
    last_seq: u64,
    backoff: Duration,
    /// Answered the last registration (events fire only when this changes).
    reachable: bool,
    /// `SeedDown` was reported since the seed was last reachable.
    down_reported: bool,
}

/// The configured seeds, as this peer uses them.
pub(super) struct Seeds {
    links: Vec<SeedLink>,
    /// ⌊n/2⌋+1 of the n seeds.
    majority: usize,
    next_register_seq: u64,
    next_refresh: Millis,
    next_rejoin: Millis,
}

impl Seeds {
    pub fn new(count: usize) -> Seeds {
        Seeds {
            links: vec![
                SeedLink {
                    chosen: false,
                    phase: SeedPhase::Idle,
                    last_seq: 0,
                    backoff: FIRST_BACKOFF,
                    reachable: false,
                    down_reported: false,
                };
                count
            ],
            majority: count / 2 + 1,
            next_register_seq: 1,
            next_refresh: Millis(0),
            next_rejoin: Millis(0),
        }
    }

    /// Seeds that answered the last registration.
    pub fn up(&self) -> usize {
        self.links.iter().filter(|s| s.reachable).count()
    }

    /// Registers with a majority of the seeds, chosen at random. `active` is the
    /// active view, which a registration names.
    pub fn start(&mut self, ctx: &mut Ctx, active: &[PeerId], now: Millis) {
        let mut order: Vec<usize> = (0..self.links.len()).collect();
        order.shuffle(&mut ctx.rng);
        for &i in order.iter().take(self.majority.min(self.links.len())) {
            self.links[i].chosen = true;
            self.register(ctx, active, i, now);
        }
        self.next_refresh = after(now, ctx.config.seed_refresh);
    }

    fn register(&mut self, ctx: &mut Ctx, active: &[PeerId], seed: usize, now: Millis) {
        let seq = self.next_register_seq;
        self.next_register_seq += 1;
        let s = &mut self.links[seed];
        s.last_seq = seq;
        s.phase = SeedPhase::Waiting {
            deadline: after(now, ctx.config.seed_timeout),
        };
        let msg = Msg::Register {
            seq,
            incarnation: ctx.incarnation(),
            degree: active.len() as u32,
            neighbours: active.to_vec(),
            name: ctx.name.clone(),
            cert: ctx.cert(),
        };
        ctx.send(Dest::Seed(seed), msg);
    }

    /// Timeouts, retries, the periodic refresh, and the rejoin of a node with no view
    /// at all (`isolated`: no neighbour, no request in flight, no passive member).
    pub fn tick(&mut self, ctx: &mut Ctx, active: &[PeerId], isolated: bool, now: Millis) {
        for i in 0..self.links.len() {
            match self.links[i].phase {
                SeedPhase::Waiting { deadline } if now >= deadline => {
                    self.seed_down(ctx, active, i, now)
                }
                SeedPhase::Down { retry_at } if now >= retry_at && self.links[i].chosen => {
                    self.register(ctx, active, i, now)
                }
                _ => {}
            }
        }
        if now >= self.next_refresh {
            self.next_refresh = after(now, ctx.config.seed_refresh);
            for i in 0..self.links.len() {
                if self.links[i].chosen
                    && matches!(self.links[i].phase, SeedPhase::Up | SeedPhase::Idle)
                {
                    self.register(ctx, active, i, now);
                }
            }
        }
        if isolated && now >= self.next_rejoin && !self.links.is_empty() {
            self.next_rejoin = after(now, REJOIN_EVERY);
            for i in 0..self.links.len() {
                if self.links[i].chosen
                    && !matches!(
                        self.links[i].phase,
                        SeedPhase::Waiting { .. } | SeedPhase::Down { .. }
                    )
                {
                    self.register(ctx, active, i, now);
                }
            }
        }
    }

    fn seed_down(&mut self, ctx: &mut Ctx, active: &[PeerId], i: usize, now: Millis) {
        let s = &mut self.links[i];
        if matches!(s.phase, SeedPhase::Down { .. }) {
            return;
        }
        s.phase = SeedPhase::Down {
            retry_at: after(now, s.backoff),
        };
        s.backoff = (s.backoff * 2).min(MAX_SEED_BACKOFF);
        s.reachable = false;
        if !std::mem::replace(&mut s.down_reported, true) {
            ctx.events.push(OverlayEvent::SeedDown { seed: i });
        }
        // Keep a majority of seeds in use: take another one if any is left.
        let usable = self
            .links
            .iter()
            .filter(|s| s.chosen && !matches!(s.phase, SeedPhase::Down { .. }))
            .count();
        if usable < self.majority {
            let spare: Vec<usize> = (0..self.links.len())
                .filter(|&j| !self.links[j].chosen)
                .collect();
            if let Some(&j) = spare.choose(&mut ctx.rng) {
                self.links[j].chosen = true;
                self.register(ctx, active, j, now);
            }
        }
    }

    /// The runtime could not reach seed `i`: down at once, without waiting.
    pub fn unreachable(&mut self, ctx: &mut Ctx, active: &[PeerId], i: usize, now: Millis) {
        if i < self.links.len() && matches!(self.links[i].phase, SeedPhase::Waiting { .. }) {
            self.seed_down(ctx, active, i, now);
        }
    }

    /// A seed's answer to registration `seq`, listing `listed` members: true when the
    /// list is to be merged.
    pub fn on_peers(&mut self, ctx: &mut Ctx, seq: u64, listed: usize) -> bool {
        let Some(i) = self.links.iter().position(|s| s.last_seq == seq) else {
            return false;
        };
        let s = &mut self.links[i];
        s.phase = SeedPhase::Up;
        s.backoff = FIRST_BACKOFF;
        s.down_reported = false;
        let was_reachable = std::mem::replace(&mut s.reachable, true);
        if !was_reachable {
            ctx.events.push(OverlayEvent::SeedUp {
                seed: i,
                peers: listed,
            });
        }
        true
    }

    /// Tells every seed of a death, or of this node leaving.
    pub fn report(&self, ctx: &mut Ctx, member: &MemberInfo) {
        for i in 0..self.links.len() {
            ctx.send(
                Dest::Seed(i),
                Msg::Report {
                    member: member.clone(),
                },
            );
        }
    }

    /// The earliest of `at` and this part's timers.
    pub fn poll_at(&self, mut at: Millis, isolated: bool) -> Millis {
        at = at.min(self.next_refresh);
        for s in &self.links {
            match s.phase {
                SeedPhase::Waiting { deadline } => at = at.min(deadline),
                SeedPhase::Down { retry_at } if s.chosen => at = at.min(retry_at),
                _ => {}
            }
        }
        // Rejoining goes through the seeds: without any there is nothing to wake for
        // (the tick would do nothing and the loop would spin).
        if isolated && !self.links.is_empty() {
            at = at.min(self.next_rejoin);
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::super::testnet::*;
    use super::super::*;

    /// Regression: a peer with no seeds and no neighbours woke at once forever (its
    /// rejoin time never moved), spinning a core while idle.
    #[test]
    fn an_idle_peer_without_seeds_sleeps_between_its_timers() {
        for seeds in [0, 1] {
            let mut x = PeerNode::new(
                key("n0"),
                name("n0"),
                seeds,
                OverlayConfig::default(),
                1,
                1,
                1,
            );
            let mut now = Millis(0);
            x.start(now);
            let mut wakeups = 0;
            while now.0 < 60_000 {
                let at = x.poll_at().max(now);
                now = if at == now { Millis(now.0 + 1) } else { at };
                x.tick(now);
                x.take_out();
                wakeups += 1;
            }
            assert!(
                wakeups < 1_000,
                "{wakeups} wake-ups in a minute with {seeds} seeds"
            );
        }
    }
}
