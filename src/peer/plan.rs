//! The download plan: which pieces are missing, in flight or verified, and which
//! source may take which piece.
//!
//! A pure core: sources ask it for work and report results; it never touches a
//! socket, a clock or a file. Invariant: a piece is in exactly one of the three
//! states, and `done` counts the verified ones. A piece may be in flight from several
//! sources at once only in the endgame, when nothing is missing any more and idle
//! sources take over the pieces that have been in flight longest; the first copy to
//! arrive wins. Sources pull work, so a slow source asks for fewer pieces than a fast
//! one, and the endgame keeps it from holding the end of the download back.
//!
//! A source whose copy of a piece did not match its hash does not get that piece
//! again while an active source that has not failed it exists: the piece comes from
//! another source.

use std::collections::HashMap;

/// A source of one download, numbered by the download.
pub type SourceId = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PieceState {
    Missing,
    /// Requested from `sources` sources; `since` orders pieces by when they were first
    /// handed out (smaller: in flight longer).
    InFlight {
        sources: u8,
        since: u64,
    },
    Verified,
}

#[derive(Clone, Debug)]
pub struct PiecePlan {
    states: Vec<PieceState>,
    /// No missing piece below this index.
    cursor: usize,
    done: usize,
    /// Pieces handed out so far: the clock of `InFlight::since`.
    handed: u64,
    /// Sources whose copy of a piece did not match its hash, by piece.
    failed: HashMap<usize, Vec<SourceId>>,
    /// Sources pulling pieces now.
    active: Vec<SourceId>,
}

impl PiecePlan {
    pub fn new(pieces: usize) -> PiecePlan {
        PiecePlan {
            states: vec![PieceState::Missing; pieces],
            cursor: 0,
            done: 0,
            handed: 0,
            failed: HashMap::new(),
            active: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// A source starts pulling pieces.
    pub fn join(&mut self, source: SourceId) {
        if !self.active.contains(&source) {
            self.active.push(source);
        }
    }

    /// A source stopped (its in-flight pieces are released separately).
    pub fn leave(&mut self, source: SourceId) {
        self.active.retain(|s| *s != source);
    }

    /// Sources pulling pieces now.
    pub fn active(&self) -> usize {
        self.active.len()
    }

    fn failed_by(&self, piece: usize, source: SourceId) -> bool {
        self.failed
            .get(&piece)
            .is_some_and(|sources| sources.contains(&source))
    }

    /// May `source` take `piece`? Not if its own copy was bad, unless every active
    /// source's copy was bad too (then a retry is the only way on).
    fn may_take(&self, piece: usize, source: SourceId) -> bool {
        !self.failed_by(piece, source)
            || self
                .active
                .iter()
                .all(|s| *s == source || self.failed_by(piece, *s))
    }

    fn hand_out(&mut self, piece: usize, sources: u8) {
        let since = match self.states[piece] {
            PieceState::InFlight { since, .. } => since,
            _ => {
                self.handed += 1;
                self.handed
            }
        };
        self.states[piece] = PieceState::InFlight { sources, since };
    }

    /// The lowest missing piece `source` may take, now in flight.
    pub fn take_next(&mut self, source: SourceId) -> Option<usize> {
        while self.cursor < self.states.len() && self.states[self.cursor] != PieceState::Missing {
            self.cursor += 1;
        }
        let pick = (self.cursor..self.states.len())
            .find(|&i| self.states[i] == PieceState::Missing && self.may_take(i, source))?;
        self.hand_out(pick, 1);
        Some(pick)
    }

    /// Endgame: when nothing is missing, a piece in flight elsewhere that `source` has
    /// not asked for yet (`mine`) and may take: the least duplicated first, then the
    /// one in flight longest. It is then in flight from one more source.
    pub fn take_endgame(&mut self, source: SourceId, mine: &[usize]) -> Option<usize> {
        let (_, _, i) = self
            .states
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match *s {
                PieceState::InFlight { sources, since }
                    if !mine.contains(&i) && self.may_take(i, source) =>
                {
                    Some((sources, since, i))
                }
                _ => None,
            })
            .min()?;
        let PieceState::InFlight { sources, .. } = self.states[i] else {
            return None;
        };
        self.hand_out(i, sources.saturating_add(1));
        Some(i)
    }

    /// A piece arrived and matched its hash. Returns false when another source's copy
    /// got there first (the caller drops its copy).
    pub fn verified(&mut self, piece: usize) -> bool {
        if self.states[piece] == PieceState::Verified {
            return false;
        }
        self.states[piece] = PieceState::Verified;
        self.failed.remove(&piece);
        self.done += 1;
        true
    }

    /// A source will not deliver a piece it had in flight (it failed, or stopped):
    /// once no source has it in flight, it is missing again.
    pub fn release(&mut self, piece: usize) {
        match self.states[piece] {
            PieceState::InFlight { sources, since } if sources > 1 => {
                self.states[piece] = PieceState::InFlight {
                    sources: sources - 1,
                    since,
                }
            }
            PieceState::InFlight { .. } => {
                self.states[piece] = PieceState::Missing;
                self.cursor = self.cursor.min(piece);
            }
            _ => {}
        }
    }

    /// `source`'s copy of a piece did not match its hash: the piece is released, and
    /// goes to another source when there is one.
    pub fn bad_copy(&mut self, piece: usize, source: SourceId) {
        self.release(piece);
        if self.states[piece] != PieceState::Verified {
            let sources = self.failed.entry(piece).or_default();
            if !sources.contains(&source) {
                sources.push(source);
            }
        }
    }

    /// Marks a piece verified without fetching it (resuming from a partial file).
    pub fn already_have(&mut self, piece: usize) {
        self.verified(piece);
    }

    pub fn is_verified(&self, piece: usize) -> bool {
        self.states.get(piece) == Some(&PieceState::Verified)
    }

    /// True when nothing is missing (every piece is verified or in flight).
    pub fn nothing_missing(&self) -> bool {
        !self.states[self.cursor.min(self.states.len())..].contains(&PieceState::Missing)
    }

    pub fn done(&self) -> usize {
        self.done
    }

    pub fn finished(&self) -> bool {
        self.done == self.states.len()
    }

    /// The verified pieces, as a bitmap (bit i of byte i/8).
    pub fn bitmap(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.states.len().div_ceil(8)];
        for (i, s) in self.states.iter().enumerate() {
            if *s == PieceState::Verified {
                out[i / 8] |= 1 << (i % 8);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn pieces_go_out_in_order_and_come_back_on_release() {
        let mut p = PiecePlan::new(3);
        assert_eq!((p.take_next(0), p.take_next(0)), (Some(0), Some(1)));
        assert!(p.verified(0));
        p.release(1);
        assert_eq!(p.take_next(0), Some(1));
        assert_eq!(p.take_next(0), Some(2));
        assert_eq!(p.take_next(0), None);
        assert!(p.verified(1));
        assert!(p.verified(2));
        assert!(!p.verified(2), "a second copy is reported as late");
        assert!(p.finished());
        assert_eq!(p.done(), 3);
    }

    #[test]
    fn release_of_a_verified_piece_is_ignored() {
        let mut p = PiecePlan::new(1);
        p.take_next(0);
        p.verified(0);
        p.release(0);
        assert!(p.is_verified(0));
        assert_eq!(p.take_next(0), None);
    }

    #[test]
    fn endgame_duplicates_in_flight_pieces_and_the_first_copy_wins() {
        let mut p = PiecePlan::new(3);
        let a = [p.take_next(0).unwrap(), p.take_next(0).unwrap()];
        let b = [p.take_next(1).unwrap()];
        assert!(p.nothing_missing());
        // Source b is idle: it takes the piece of a's that has been in flight longest.
        let dup = p.take_endgame(1, &b).unwrap();
        assert_eq!(dup, a[0]);
        // A third idle source prefers the piece nobody duplicated yet.
        let other = p.take_endgame(2, &[]).unwrap();
        assert_ne!(other, dup);
        assert!(p.verified(dup));
        assert!(!p.verified(dup));
        // One of two sources failing leaves a duplicated piece in flight.
        p.release(other);
        assert!(p.nothing_missing());
        p.release(other);
        assert!(!p.nothing_missing());
        assert_eq!(p.take_next(0), Some(other));
    }

    #[test]
    fn endgame_prefers_the_piece_in_flight_longest_even_after_a_release() {
        let mut p = PiecePlan::new(4);
        for _ in 0..4 {
            p.take_next(0);
        }
        // Piece 0 goes back and out again: it is now the newest in flight.
        p.release(0);
        assert_eq!(p.take_next(1), Some(0));
        assert_eq!(p.take_endgame(2, &[]), Some(1));
    }

    #[test]
    fn a_bad_copy_goes_to_another_source_unless_none_is_left() {
        let mut p = PiecePlan::new(3);
        p.join(0);
        p.join(1);
        assert_eq!(p.take_next(0), Some(0));
        p.bad_copy(0, 0);
        // Source 0 does not get piece 0 again while source 1 could fetch it...
        assert_eq!(p.take_next(0), Some(1));
        assert_eq!(p.take_next(1), Some(0));
        p.release(0);
        assert_eq!(p.take_next(0), Some(2));
        assert_eq!(p.take_endgame(0, &[1, 2]), None);
        // ...but once source 1 has gone, source 0 may try again.
        p.leave(1);
        assert_eq!(p.take_next(0), Some(0));
        // A verified piece forgets who failed it.
        assert!(p.verified(0));
        assert!(p.failed.is_empty());
    }

    #[test]
    fn a_piece_every_source_failed_is_retried() {
        let mut p = PiecePlan::new(1);
        p.join(0);
        p.join(1);
        p.take_next(0);
        p.bad_copy(0, 0);
        p.take_next(1);
        p.bad_copy(0, 1);
        assert_eq!(p.take_next(0), Some(0));
    }

    #[test]
    fn bitmap_marks_verified_pieces() {
        let mut p = PiecePlan::new(10);
        p.already_have(0);
        p.already_have(9);
        assert_eq!(p.bitmap(), vec![0b0000_0001, 0b0000_0010]);
    }

    /// A source in the simulation: pieces per tick, and its requests in order.
    struct SimSource {
        speed: f64,
        progress: f64,
        queue: VecDeque<usize>,
        delivered: usize,
    }

    /// Runs a download of `pieces` pieces from sources of the given speeds (pieces
    /// per tick), each keeping `depth` requests in flight and pulling work as the
    /// runtime does. Returns the ticks it took and what each source delivered.
    fn simulate(pieces: usize, speeds: &[f64], depth: usize) -> (usize, Vec<usize>) {
        let mut plan = PiecePlan::new(pieces);
        let mut sources: Vec<SimSource> = speeds
            .iter()
            .map(|&speed| SimSource {
                speed,
                progress: 0.0,
                queue: VecDeque::new(),
                delivered: 0,
            })
            .collect();
        for id in 0..sources.len() {
            plan.join(id);
        }
        for tick in 1..10_000 {
            for (id, s) in sources.iter_mut().enumerate() {
                while s.queue.len() < depth {
                    let mine: Vec<usize> = s.queue.iter().copied().collect();
                    let next = plan.take_next(id).or_else(|| {
                        (!plan.finished())
                            .then(|| plan.take_endgame(id, &mine))
                            .flatten()
                    });
                    match next {
                        Some(i) => s.queue.push_back(i),
                        None => break,
                    }
                }
                // A source works on its oldest request.
                s.progress += s.speed;
                while s.progress >= 1.0 {
                    let Some(i) = s.queue.pop_front() else {
                        s.progress = 0.0;
                        break;
                    };
                    s.progress -= 1.0;
                    if plan.verified(i) {
                        s.delivered += 1;
                    }
                }
            }
            if plan.finished() {
                return (tick, sources.iter().map(|s| s.delivered).collect());
            }
        }
        panic!("the simulated download never finished");
    }

    #[test]
    fn a_source_five_times_slower_gets_fewer_pieces_and_does_not_hold_the_end_back() {
        // Two sources at 1 piece per tick and one at 0.2, with 4 requests in flight.
        let (ticks, delivered) = simulate(64, &[1.0, 1.0, 0.2], 4);
        assert_eq!(delivered.iter().sum::<usize>(), 64);
        // The slow source delivers about a tenth of the pieces, not a third.
        assert!(delivered[2] * 5 <= delivered[0], "{delivered:?}");
        assert!(delivered[2] * 5 <= delivered[1], "{delivered:?}");
        // Ideal: 64 pieces at 2.2 pieces per tick, about 29 ticks. Without the
        // endgame, the slow source's last requests (4 pieces at 0.2 per tick, 20
        // ticks) would land well after the fast sources ran dry.
        assert!(ticks <= 33, "took {ticks} ticks; delivered {delivered:?}");
        let (alone, _) = simulate(64, &[1.0, 1.0], 4);
        assert!(
            ticks <= alone,
            "{ticks} ticks with the slow source, {alone} without"
        );
    }

    #[test]
    fn equal_sources_share_the_work_evenly() {
        let (ticks, delivered) = simulate(64, &[1.0; 4], 4);
        assert!(ticks <= 17, "{ticks}");
        assert!(
            delivered.iter().all(|&d| (14..=18).contains(&d)),
            "{delivered:?}"
        );
    }
}
