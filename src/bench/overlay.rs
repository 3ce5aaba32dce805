//! `p2pshare bench overlay`: the overlay's scenarios, run in the deterministic
//! simulator ([`crate::overlay::sim`]) with the very cores the peers and seeds run.
//!
//! Four scenarios, each on a fresh network of N peers and a few seeds that joined
//! over `join_spread` and settled for 30 s:
//!
//! 1. **Broadcast**: texts from random peers; for each, the time until every live
//!    peer delivered it, and the full copies received per peer.
//! 2. **Kills**: peers crash at once; for each, the time until someone suspects it,
//!    until every peer that had it as a neighbour holds it dead, and until a majority
//!    of the seeds dropped it.
//! 3. **Loss**: minutes of virtual time with a share of all messages lost; every death
//!    declared of a peer that is alive is a false death.
//! 4. **Half killed**: half the peers crash at once and a survivor broadcasts at once
//!    (and a few seconds later): the share of survivors reached within 5 s.
//! 5. **Partition**: half the peers are cut off from the other half and the seeds, then
//!    the network heals: the time until a broadcast reaches every peer again, and how
//!    many live peers are still held dead anywhere a minute after the heal.
//!
//! Beside the scenarios (virtual time), it times what signatures cost on this machine
//! (wall time): signing and checking one broadcast, which every peer does once per
//! message, and checking a death (its signature and the member's certificate).
//!
//! It measures; it never asserts. The same `--seed` replays the same figures.

use crate::clock::Millis;
use crate::identity::{NodeKey, Sig};
use crate::overlay::sim::{Sim, SimConfig};
use crate::overlay::{
    sign_incarnation, Body, Broadcast, MemberEvent, MemberInfo, MemberState, MsgId,
};
use crate::protocol::name::PeerId;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct OverlayBench {
    pub sim: SimConfig,
    pub broadcasts: usize,
    pub kills: usize,
    pub loss: f64,
    pub loss_duration: Duration,
    pub partition: Duration,
    pub settle: Duration,
}

impl Default for OverlayBench {
    fn default() -> Self {
        OverlayBench {
            sim: SimConfig::default(),
            broadcasts: 50,
            kills: 20,
            loss: 0.10,
            loss_duration: Duration::from_secs(30 * 60),
            partition: Duration::from_secs(30),
            settle: Duration::from_secs(30),
        }
    }
}

/// Percentiles of a list of milliseconds.
#[derive(Clone, Debug, Default)]
pub struct Spread {
    pub n: usize,
    pub p50: Option<u64>,
    pub p99: Option<u64>,
    pub max: Option<u64>,
}

impl Spread {
    pub fn of(mut values: Vec<u64>) -> Spread {
        values.sort_unstable();
        let pick = |p: f64| -> Option<u64> {
            if values.is_empty() {
                return None;
            }
            let rank = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len());
            Some(values[rank - 1])
        };
        Spread {
            n: values.len(),
            p50: pick(0.50),
            p99: pick(0.99),
            max: values.last().copied(),
        }
    }

    fn json(&self) -> Value {
        json!({ "n": self.n, "p50_ms": self.p50, "p99_ms": self.p99, "max_ms": self.max })
    }

    fn text(&self) -> String {
        let f = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{:.2}", v as f64 / 1000.0));
        format!(
            "p50 {} s, p99 {} s, max {} s",
            f(self.p50),
            f(self.p99),
            f(self.max)
        )
    }
}

#[derive(Clone, Debug, Default)]
pub struct BroadcastResult {
    pub live: usize,
    pub reach: Spread,
    /// Broadcasts that did not reach every live peer within the run.
    pub incomplete: usize,
    pub copies_mean: f64,
    pub copies_max: f64,
    pub degree_min: usize,
    pub degree_median: usize,
    pub degree_max: usize,
}

#[derive(Clone, Debug, Default)]
pub struct KillResult {
    pub killed: usize,
    pub first_suspicion: Spread,
    pub all_neighbours_dead: Spread,
    pub seeds_majority: Spread,
    /// Killed peers some neighbour never marked dead within the run.
    pub unfinished: usize,
    pub false_deaths: usize,
}

#[derive(Clone, Debug, Default)]
pub struct LossResult {
    pub minutes: f64,
    pub loss: f64,
    pub suspicions: u64,
    pub refutations: u64,
    pub false_deaths: usize,
    pub messages: u64,
}

#[derive(Clone, Debug, Default)]
pub struct HalfResult {
    pub survivors: usize,
    /// For each broadcast: seconds after the kill it was sent, share reached within 5 s.
    pub rounds: Vec<(f64, f64)>,
    pub reach: Spread,
}

#[derive(Clone, Debug, Default)]
pub struct PartitionResult {
    pub seconds: f64,
    /// Deaths declared while the network was cut (each side declares the other dead).
    pub deaths_during: usize,
    /// From the heal until a broadcast (one every second) reached every peer.
    pub heal_to_broadcast: Option<u64>,
    /// (peer, member) pairs where a live member is held dead, a minute after the heal.
    pub still_dead_after_60s: usize,
}

/// What signatures cost, in microseconds of wall time each.
#[derive(Clone, Debug, Default)]
pub struct SignatureCost {
    pub rounds: u32,
    /// Signing a broadcast text.
    pub sign_say_us: f64,
    /// Checking a broadcast text: what each peer pays once per message.
    pub verify_say_us: f64,
    /// Checking a death whose certificate the peer does not hold yet: the origin's
    /// signature and the member's certificate.
    pub verify_death_us: f64,
}

/// Times signing and checking broadcasts, `rounds` times each.
pub fn signature_cost(rounds: u32) -> SignatureCost {
    let key = NodeKey::for_test("bench");
    let name = PeerId::parse("bench").expect("a valid name");
    let text = "x".repeat(100);
    let say = |seq: u64| Broadcast {
        origin: key.id().clone(),
        seq,
        hops: 0,
        time_ms: 1_700_000_000_000,
        sig: Sig::NONE,
        body: Body::Say(text.clone()),
    };
    let per = |started: Instant| started.elapsed().as_secs_f64() * 1e6 / rounds.max(1) as f64;
    let started = Instant::now();
    let signed: Vec<Broadcast> = (0..rounds as u64)
        .map(|seq| {
            let mut b = say(seq);
            b.sign(&key);
            b
        })
        .collect();
    let sign_say_us = per(started);
    let started = Instant::now();
    let good = signed.iter().filter(|b| b.authentic()).count();
    let verify_say_us = per(started);
    let mut news = Broadcast {
        body: Body::Member(MemberEvent {
            info: MemberInfo {
                id: key.id().clone(),
                addr: "127.0.0.1:1025".parse().expect("an address"),
                incarnation: 7,
                state: MemberState::Dead,
                degree: 0,
                name: name.clone(),
                cert: sign_incarnation(&key, 7, &name),
            },
        }),
        ..say(0)
    };
    news.sign(&key);
    let started = Instant::now();
    let good = good
        + (0..rounds)
            .filter(|_| std::hint::black_box(&news).authentic())
            .count();
    let verify_death_us = per(started);
    // Keeps the checks from being optimised away.
    std::hint::black_box(good);
    SignatureCost {
        rounds,
        sign_say_us,
        verify_say_us,
        verify_death_us,
    }
}

#[derive(Clone, Debug, Default)]
pub struct OverlayReport {
    pub peers: usize,
    pub seeds: usize,
    pub seed: u64,
    pub liveness: String,
    pub broadcast: BroadcastResult,
    pub kills: KillResult,
    pub loss: LossResult,
    pub half: HalfResult,
    pub partition: PartitionResult,
    pub signatures: SignatureCost,
    /// Wall time of the broadcast scenario alone (building its network included).
    pub broadcast_wall_seconds: f64,
    pub wall_seconds: f64,
}

fn settled(b: &OverlayBench) -> Millis {
    Millis((b.sim.join_spread + b.settle).as_millis() as u64)
}

fn reach_of(sim: &Sim, id: &MsgId, live: &[usize]) -> Option<u64> {
    let o = sim.obs.broadcasts.get(id)?;
    let mut last = o.sent_at;
    for i in live {
        last = last.max(*o.delivered.get(i)?);
    }
    Some(last - o.sent_at)
}

/// Scenario 1.
pub fn broadcast(b: &OverlayBench) -> BroadcastResult {
    let mut sim = Sim::new(b.sim.clone());
    let mut rng = StdRng::seed_from_u64(b.sim.seed ^ 0xb0);
    let mut t = settled(b);
    sim.run_until(t);
    let live = sim.live_peers();
    let mut degrees: Vec<usize> = live
        .iter()
        .filter_map(|&i| sim.peer(i).map(|p| p.active().len()))
        .collect();
    degrees.sort_unstable();
    let mut ids = Vec::new();
    for k in 0..b.broadcasts {
        let from = *live.choose(&mut rng).expect("peers");
        ids.push(sim.say(from, &format!("broadcast {k}")));
        t = Millis(t.0 + 500);
        sim.run_until(t);
    }
    sim.run_until(Millis(t.0 + 10_000));
    let mut reach = Vec::new();
    let mut copies = Vec::new();
    let mut incomplete = 0;
    for id in &ids {
        match reach_of(&sim, id, &live) {
            Some(ms) => reach.push(ms),
            None => incomplete += 1,
        }
        let c = sim.obs.broadcasts[id].copies as f64 / (live.len().max(1) - 1).max(1) as f64;
        copies.push(c);
    }
    BroadcastResult {
        live: live.len(),
        reach: Spread::of(reach),
        incomplete,
        copies_mean: copies.iter().sum::<f64>() / copies.len().max(1) as f64,
        copies_max: copies.iter().cloned().fold(0.0, f64::max),
        degree_min: degrees.first().copied().unwrap_or(0),
        degree_median: degrees.get(degrees.len() / 2).copied().unwrap_or(0),
        degree_max: degrees.last().copied().unwrap_or(0),
    }
}

/// Scenario 2.
pub fn kills(b: &OverlayBench) -> KillResult {
    let mut sim = Sim::new(b.sim.clone());
    let mut rng = StdRng::seed_from_u64(b.sim.seed ^ 0x4b);
    let t = settled(b);
    sim.run_until(t);
    let mut live = sim.live_peers();
    live.shuffle(&mut rng);
    let victims: Vec<usize> = live.into_iter().take(b.kills).collect();
    let neighbours: Vec<Vec<usize>> = victims.iter().map(|&v| sim.neighbours_of(v)).collect();
    for &v in &victims {
        sim.kill(v);
    }
    let horizon = match b.sim.overlay.liveness {
        crate::overlay::Liveness::Swim => 60_000,
        crate::overlay::Liveness::Classic { .. } => 180_000,
    };
    sim.run_until(Millis(t.0 + horizon));
    let seeds = b.sim.seeds;
    let mut first = Vec::new();
    let mut all = Vec::new();
    let mut majority = Vec::new();
    let mut unfinished = 0;
    for (k, &v) in victims.iter().enumerate() {
        let id = sim.id(v).clone();
        if let Some(at) = sim.obs.first_suspected.get(&id) {
            first.push(at - t.0);
        }
        let marks = sim.obs.marked_dead.get(&id);
        let times: Option<Vec<u64>> = neighbours[k]
            .iter()
            .filter(|&&n| sim.is_alive(n))
            .map(|n| marks.and_then(|m| m.get(n).copied()))
            .collect();
        match times {
            Some(ts) => all.push(ts.into_iter().max().unwrap_or(t.0) - t.0),
            None => unfinished += 1,
        }
        let mut seed_times: Vec<u64> = (0..seeds)
            .filter_map(|s| marks.and_then(|m| m.get(&s).copied()))
            .collect();
        seed_times.sort_unstable();
        let need = seeds / 2 + 1;
        if seed_times.len() >= need {
            majority.push(seed_times[need - 1] - t.0);
        }
    }
    KillResult {
        killed: victims.len(),
        first_suspicion: Spread::of(first),
        all_neighbours_dead: Spread::of(all),
        seeds_majority: Spread::of(majority),
        unfinished,
        false_deaths: sim.obs.false_deaths.len(),
    }
}

/// Scenario 3.
pub fn loss(b: &OverlayBench) -> LossResult {
    let mut sim = Sim::new(SimConfig {
        loss: b.loss,
        ..b.sim.clone()
    });
    let start = settled(b);
    sim.run_until(start);
    let (s0, r0, m0) = (sim.obs.suspicions, sim.obs.refutations, sim.obs.messages);
    let end = Millis(start.0 + b.loss_duration.as_millis() as u64);
    sim.run_until(end);
    LossResult {
        minutes: b.loss_duration.as_secs_f64() / 60.0,
        loss: b.loss,
        suspicions: sim.obs.suspicions - s0,
        refutations: sim.obs.refutations - r0,
        false_deaths: sim.obs.false_deaths.len(),
        messages: sim.obs.messages - m0,
    }
}

/// Scenario 4.
pub fn half(b: &OverlayBench) -> HalfResult {
    let mut sim = Sim::new(b.sim.clone());
    let mut rng = StdRng::seed_from_u64(b.sim.seed ^ 0x1f);
    let t = settled(b);
    sim.run_until(t);
    let mut live = sim.live_peers();
    live.shuffle(&mut rng);
    for &v in live.iter().take(live.len() / 2) {
        sim.kill(v);
    }
    let survivors = sim.live_peers();
    let mut rounds = Vec::new();
    let mut reach = Vec::new();
    for offset in [0u64, 1000, 2000, 5000, 10_000] {
        sim.run_until(Millis(t.0 + offset));
        let from = *survivors.choose(&mut rng).expect("survivors");
        let id = sim.say(from, &format!("after the kill +{offset} ms"));
        let sent = sim.now().0;
        sim.run_until(Millis(sent + 5000));
        let got = sim.obs.broadcasts[&id]
            .delivered
            .iter()
            .filter(|(i, at)| survivors.contains(i) && **at <= sent + 5000)
            .count();
        rounds.push((offset as f64 / 1000.0, got as f64 / survivors.len() as f64));
        sim.run_until(Millis(sent + 30_000));
        if let Some(ms) = reach_of(&sim, &id, &survivors) {
            reach.push(ms);
        }
    }
    HalfResult {
        survivors: survivors.len(),
        rounds,
        reach: Spread::of(reach),
    }
}

/// Scenario 5.
pub fn partition(b: &OverlayBench) -> PartitionResult {
    let mut sim = Sim::new(b.sim.clone());
    let mut rng = StdRng::seed_from_u64(b.sim.seed ^ 0x9a);
    let t = settled(b);
    sim.run_until(t);
    let mut live = sim.live_peers();
    live.shuffle(&mut rng);
    let cut: Vec<usize> = live[..live.len() / 2].to_vec();
    for &i in &cut {
        sim.set_group(i, 1);
    }
    let before = sim.obs.marked_dead.values().map(|m| m.len()).sum::<usize>();
    let healed = Millis(t.0 + b.partition.as_millis() as u64);
    sim.run_until(healed);
    let deaths_during = sim.obs.marked_dead.values().map(|m| m.len()).sum::<usize>() - before;
    for &i in &cut {
        sim.set_group(i, 0);
    }
    let peers = sim.live_peers();
    let mut heal_to_broadcast = None;
    for k in 0..120u64 {
        sim.run_until(Millis(healed.0 + k * 1000));
        let from = cut[k as usize % cut.len()];
        let id = sim.say(from, &format!("after the heal {k}"));
        sim.run_until(Millis(sim.now().0 + 3000));
        if reach_of(&sim, &id, &peers).is_some() {
            heal_to_broadcast = Some(k * 1000);
            break;
        }
    }
    sim.run_until(Millis(healed.0 + 60_000));
    let mut still_dead = 0;
    for &i in &peers {
        let Some(p) = sim.peer(i) else { continue };
        for &j in &peers {
            if p.member(sim.id(j)).is_some_and(|m| m.state.is_gone()) {
                still_dead += 1;
            }
        }
    }
    PartitionResult {
        seconds: b.partition.as_secs_f64(),
        deaths_during,
        heal_to_broadcast,
        still_dead_after_60s: still_dead,
    }
}

/// Runs every scenario.
pub fn run(b: &OverlayBench) -> OverlayReport {
    let started = Instant::now();
    let liveness = match b.sim.overlay.liveness {
        crate::overlay::Liveness::Swim => "swim".to_owned(),
        crate::overlay::Liveness::Classic { misses } => format!(
            "classic (ping every {} s, dead after {misses} misses)",
            b.sim.overlay.probe_round.as_secs()
        ),
    };
    let signatures = signature_cost(2000);
    let broadcast_started = Instant::now();
    let broadcast = broadcast(b);
    let broadcast_wall_seconds = broadcast_started.elapsed().as_secs_f64();
    OverlayReport {
        peers: b.sim.peers,
        seeds: b.sim.seeds,
        seed: b.sim.seed,
        liveness,
        broadcast,
        broadcast_wall_seconds,
        signatures,
        kills: kills(b),
        loss: loss(b),
        half: half(b),
        partition: partition(b),
        wall_seconds: started.elapsed().as_secs_f64(),
    }
}

impl OverlayReport {
    pub fn json(&self) -> Value {
        json!({
            "peers": self.peers,
            "seeds": self.seeds,
            "seed": self.seed,
            "liveness": self.liveness,
            "broadcast": {
                "live_peers": self.broadcast.live,
                "time_to_all": self.broadcast.reach.json(),
                "incomplete": self.broadcast.incomplete,
                "copies_per_peer_mean": self.broadcast.copies_mean,
                "copies_per_peer_max": self.broadcast.copies_max,
                "degree": [self.broadcast.degree_min, self.broadcast.degree_median, self.broadcast.degree_max],
            },
            "kills": {
                "killed": self.kills.killed,
                "first_suspicion": self.kills.first_suspicion.json(),
                "all_neighbours_dead": self.kills.all_neighbours_dead.json(),
                "seeds_majority_dropped": self.kills.seeds_majority.json(),
                "unfinished": self.kills.unfinished,
                "false_deaths": self.kills.false_deaths,
            },
            "loss": {
                "minutes": self.loss.minutes,
                "loss": self.loss.loss,
                "suspicions": self.loss.suspicions,
                "refutations": self.loss.refutations,
                "false_deaths": self.loss.false_deaths,
                "messages": self.loss.messages,
            },
            "half_killed": {
                "survivors": self.half.survivors,
                "rounds": self.half.rounds.iter().map(|(t, share)| json!({"sent_after_kill_s": t, "reached_within_5s": share})).collect::<Vec<_>>(),
                "time_to_all": self.half.reach.json(),
            },
            "partition": {
                "seconds": self.partition.seconds,
                "deaths_declared_during": self.partition.deaths_during,
                "heal_to_broadcast_ms": self.partition.heal_to_broadcast,
                "live_held_dead_60s_after": self.partition.still_dead_after_60s,
            },
            "signatures_us": {
                "rounds": self.signatures.rounds,
                "sign_say": self.signatures.sign_say_us,
                "verify_say": self.signatures.verify_say_us,
                "verify_death": self.signatures.verify_death_us,
            },
            "broadcast_wall_seconds": self.broadcast_wall_seconds,
            "wall_seconds": self.wall_seconds,
        })
    }

    pub fn text(&self) -> String {
        let b = &self.broadcast;
        let k = &self.kills;
        let l = &self.loss;
        let h = &self.half;
        let mut s = String::new();
        s.push_str(&format!(
            "overlay simulation: {} peers, {} seeds, seed {}, liveness {}\n",
            self.peers, self.seeds, self.seed, self.liveness
        ));
        s.push_str(&format!(
            "  neighbours per peer: min {}, median {}, max {}\n",
            b.degree_min, b.degree_median, b.degree_max
        ));
        s.push_str(&format!(
            "  broadcast to all {} live peers: {} ({} incomplete); copies per peer: mean {:.2}, worst broadcast {:.2}\n",
            b.live, b.reach.text(), b.incomplete, b.copies_mean, b.copies_max
        ));
        s.push_str(&format!(
            "  {} peers killed: first suspicion {}\n",
            k.killed,
            k.first_suspicion.text()
        ));
        s.push_str(&format!(
            "    dead at every live neighbour: {} ({} unfinished)\n",
            k.all_neighbours_dead.text(),
            k.unfinished
        ));
        s.push_str(&format!(
            "    dropped by a majority of seeds: {}\n",
            k.seeds_majority.text()
        ));
        s.push_str(&format!("    false deaths: {}\n", k.false_deaths));
        s.push_str(&format!(
            "  {:.0} minutes at {:.0}% loss: {} suspicions, {} refuted, {} false deaths ({} messages)\n",
            l.minutes,
            l.loss * 100.0,
            l.suspicions,
            l.refutations,
            l.false_deaths,
            l.messages
        ));
        s.push_str(&format!(
            "  half of the peers killed ({} survive):\n",
            h.survivors
        ));
        for (t, share) in &h.rounds {
            s.push_str(&format!(
                "    broadcast {t:>4.1} s after the kill: {:.1}% of survivors within 5 s\n",
                share * 100.0
            ));
        }
        s.push_str(&format!("    time to every survivor: {}\n", h.reach.text()));
        let p = &self.partition;
        s.push_str(&format!(
            "  half of the peers cut off for {:.0} s: {} deaths declared meanwhile; after the heal, a broadcast reached every peer {}; {} live peers held dead somewhere 60 s later\n",
            p.seconds,
            p.deaths_during,
            p.heal_to_broadcast
                .map_or("never (within 2 minutes)".to_owned(), |ms| format!("when sent {:.0} s after", ms as f64 / 1000.0)),
            p.still_dead_after_60s
        ));
        let c = &self.signatures;
        s.push_str(&format!(
            "  signatures on this machine: {:.1} µs to sign a text, {:.1} µs to check one, {:.1} µs to check a death and its certificate\n",
            c.sign_say_us, c.verify_say_us, c.verify_death_us
        ));
        s.push_str(&format!(
            "  ({:.1} s of wall clock, {:.1} s of it for the broadcast scenario)\n",
            self.wall_seconds, self.broadcast_wall_seconds
        ));
        s
    }
}
