//! The download plan: which pieces are missing, in flight or verified.
//!
//! A pure core: sources ask it for work and report results; it never touches a
//! socket or a file. Invariant: a piece is in exactly one of the three states, and
//! `done` counts the verified ones. A piece may be in flight from several sources at
//! once only in the endgame, when nothing is missing any more and idle sources take
//! over the slowest pieces; the first copy to arrive wins.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PieceState {
    Missing,
    /// Requested from this many sources.
    InFlight(u8),
    Verified,
}

#[derive(Clone, Debug)]
pub struct PiecePlan {
    states: Vec<PieceState>,
    /// No missing piece below this index.
    cursor: usize,
    done: usize,
}

impl PiecePlan {
    pub fn new(pieces: usize) -> PiecePlan {
        PiecePlan {
            states: vec![PieceState::Missing; pieces],
            cursor: 0,
            done: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// The lowest missing piece, now in flight.
    pub fn take_next(&mut self) -> Option<usize> {
        while self.cursor < self.states.len() {
            let i = self.cursor;
            self.cursor += 1;
            if self.states[i] == PieceState::Missing {
                self.states[i] = PieceState::InFlight(1);
                return Some(i);
            }
        }
        None
    }

    /// Endgame: when nothing is missing, a piece in flight elsewhere that the caller
    /// has not asked for yet (`mine`), the least requested first. It is then in flight
    /// from one more source.
    pub fn take_endgame(&mut self, mine: &[usize]) -> Option<usize> {
        let pick = self
            .states
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                PieceState::InFlight(n) if !mine.contains(&i) => Some((*n, i)),
                _ => None,
            })
            .min()?;
        let (n, i) = pick;
        self.states[i] = PieceState::InFlight(n.saturating_add(1));
        Some(i)
    }

    /// A piece arrived and matched its hash. Returns false when another source's copy
    /// got there first (the caller drops its copy).
    pub fn verified(&mut self, piece: usize) -> bool {
        if self.states[piece] == PieceState::Verified {
            return false;
        }
        self.states[piece] = PieceState::Verified;
        self.done += 1;
        true
    }

    /// A source will not deliver a piece it had in flight (it failed, or the piece was
    /// bad): once no source has it in flight, it is missing again.
    pub fn release(&mut self, piece: usize) {
        match self.states[piece] {
            PieceState::InFlight(n) if n > 1 => self.states[piece] = PieceState::InFlight(n - 1),
            PieceState::InFlight(_) => {
                self.states[piece] = PieceState::Missing;
                self.cursor = self.cursor.min(piece);
            }
            _ => {}
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

    #[test]
    fn pieces_go_out_in_order_and_come_back_on_release() {
        let mut p = PiecePlan::new(3);
        assert_eq!((p.take_next(), p.take_next()), (Some(0), Some(1)));
        assert!(p.verified(0));
        p.release(1);
        assert_eq!(p.take_next(), Some(1));
        assert_eq!(p.take_next(), Some(2));
        assert_eq!(p.take_next(), None);
        assert!(p.verified(1));
        assert!(p.verified(2));
        assert!(!p.verified(2), "a second copy is reported as late");
        assert!(p.finished());
        assert_eq!(p.done(), 3);
    }

    #[test]
    fn release_of_a_verified_piece_is_ignored() {
        let mut p = PiecePlan::new(1);
        p.take_next();
        p.verified(0);
        p.release(0);
        assert!(p.is_verified(0));
        assert_eq!(p.take_next(), None);
    }

    #[test]
    fn endgame_duplicates_in_flight_pieces_and_the_first_copy_wins() {
        let mut p = PiecePlan::new(3);
        let a = [p.take_next().unwrap(), p.take_next().unwrap()];
        let b = [p.take_next().unwrap()];
        assert!(p.nothing_missing());
        // Source b is idle: it takes one of a's pieces, not its own.
        let dup = p.take_endgame(&b).unwrap();
        assert!(a.contains(&dup));
        // A second idle source prefers the piece nobody duplicated yet.
        let other = p.take_endgame(&[dup, 2]).unwrap();
        assert_ne!(other, dup);
        assert!(p.verified(dup));
        assert!(!p.verified(dup));
        // One of two sources failing leaves a duplicated piece in flight.
        p.release(other);
        assert!(p.nothing_missing());
        p.release(other);
        assert!(!p.nothing_missing());
        assert_eq!(p.take_next(), Some(other));
    }

    #[test]
    fn bitmap_marks_verified_pieces() {
        let mut p = PiecePlan::new(10);
        p.already_have(0);
        p.already_have(9);
        assert_eq!(p.bitmap(), vec![0b0000_0001, 0b0000_0010]);
    }
}
