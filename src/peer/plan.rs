//! The download plan: which pieces are missing, in flight or verified.
//!
//! A pure core: sources ask it for work and report results; it never touches a
//! socket or a file. Invariant: a piece is in exactly one of the three states, and
//! `done` counts the verified ones.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PieceState {
    Missing,
    InFlight,
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
                self.states[i] = PieceState::InFlight;
                return Some(i);
            }
        }
        None
    }

    /// A piece arrived and matched its hash.
    pub fn verified(&mut self, piece: usize) {
        if self.states[piece] != PieceState::Verified {
            self.states[piece] = PieceState::Verified;
            self.done += 1;
        }
    }

    /// A piece in flight will not arrive (its source failed): it is missing again.
    pub fn release(&mut self, piece: usize) {
        if self.states[piece] == PieceState::InFlight {
            self.states[piece] = PieceState::Missing;
            self.cursor = self.cursor.min(piece);
        }
    }

    pub fn is_verified(&self, piece: usize) -> bool {
        self.states.get(piece) == Some(&PieceState::Verified)
    }

    pub fn done(&self) -> usize {
        self.done
    }

    pub fn finished(&self) -> bool {
        self.done == self.states.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_go_out_in_order_and_come_back_on_release() {
        let mut p = PiecePlan::new(3);
        assert_eq!((p.take_next(), p.take_next()), (Some(0), Some(1)));
        p.verified(0);
        p.release(1);
        assert_eq!(p.take_next(), Some(1));
        assert_eq!(p.take_next(), Some(2));
        assert_eq!(p.take_next(), None);
        p.verified(1);
        p.verified(2);
        p.verified(2);
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
}
