//! Direct messages this peer sends: [`send`] (for the console's `msg` and the
//! greeting), and the greeting itself (`--greet TEXT`): once the peer knows other
//! members, a direct message to one of them chosen at random, and to another when that
//! one does not answer, as seed 000's nodes greeted a random peer at start.
//!
//! Thread: `peer-greet`, which lives until a member answered, or [`GREET_WITHIN`]
//! passed, or the peer shuts down. It reads the members through the overlay's handle
//! (the core thread owns them) and dials the one it picked itself; it never blocks the
//! core. The choice among the members is [`pick`], a pure function.

use super::{PeerEvent, PeerShared};
use crate::eventlog::EventLog;
use crate::net::client::Client;
use crate::net::node::{HelloRole, Me};
use crate::net::{NetError, Timeouts};
use crate::overlay::member::MemberRow;
use crate::overlay::runtime::OverlayHandle;
use crate::overlay::{wire, MemberState};
use crate::protocol::name::PeerId;
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// How long the greeting waits for members to greet, and tries them.
pub const GREET_WITHIN: Duration = Duration::from_secs(60);
/// How often the greeting looks at the members again while none is left to try.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// Sends `text` to the node at `addr` as a direct message (`msg`) from `me`, whose
/// server listens on `port`, in a session of its own; returns the node's reply.
/// `expect`: the node's id, when known: the session then fails unless the node proves
/// it holds that key.
pub fn send(
    me: &Me,
    port: u16,
    timeouts: &Timeouts,
    addr: &str,
    expect: Option<&PeerId>,
    text: &str,
) -> Result<String, NetError> {
    let mut c = Client::connect(addr, timeouts)?;
    c.hello(Some(me), HelloRole::Peer, port, expect)?;
    let fields = c.call(&["msg", &wire::escape_text(text)])?;
    Ok(fields
        .first()
        .and_then(|r| wire::unescape_text(r).ok())
        .unwrap_or_default())
}

/// A member to greet: alive, with a name, and not tried yet; chosen at random.
pub fn pick<'a, R: Rng>(
    rows: &'a [MemberRow],
    tried: &BTreeSet<PeerId>,
    rng: &mut R,
) -> Option<&'a MemberRow> {
    let candidates: Vec<&MemberRow> = rows
        .iter()
        .filter(|r| {
            r.member.state == MemberState::Alive
                && r.member.name().is_some()
                && !tried.contains(&r.id)
        })
        .collect();
    candidates.choose(rng).copied()
}

/// The greeting of `--greet`: what to say, and what the thread needs.
pub struct Greeting {
    pub text: String,
    pub me: Me,
    /// The port this peer's server listens on (said in `hello`).
    pub port: u16,
    pub timeouts: Timeouts,
    pub overlay: OverlayHandle,
    pub shared: Arc<PeerShared>,
    pub events: crossbeam_channel::Sender<PeerEvent>,
    pub log: Option<Arc<EventLog>>,
}

impl Greeting {
    /// Starts the `peer-greet` thread.
    pub fn spawn(self) -> std::io::Result<()> {
        thread::Builder::new()
            .name("peer-greet".into())
            .spawn(move || self.run())
            .map(|_| ())
    }

    fn run(self) {
        let deadline = Instant::now() + GREET_WITHIN;
        let mut tried = BTreeSet::new();
        let mut last_error: Option<String> = None;
        let mut rng = rand::thread_rng();
        while Instant::now() < deadline {
            if self.shared.stopping.load(Ordering::Relaxed) {
                return;
            }
            let rows = self
                .overlay
                .status(true)
                .map(|s| s.rows)
                .unwrap_or_default();
            let Some(row) = pick(&rows, &tried, &mut rng) else {
                thread::sleep(LOOK_EVERY);
                continue;
            };
            tried.insert(row.id.clone());
            let name = row.member.name().map_or("", |n| n.as_str()).to_owned();
            let addr = row.member.addr.to_string();
            match send(
                &self.me,
                self.port,
                &self.timeouts,
                &addr,
                Some(&row.id),
                &self.text,
            ) {
                Ok(reply) => {
                    if let Some(l) = &self.log {
                        l.write(
                            "greeted",
                            &format!(
                                "peer={} name={name} addr={addr} reply={}",
                                row.id,
                                wire::escape_text(&reply)
                            ),
                        );
                    }
                    let _ = self.events.send(PeerEvent::Greeted {
                        name,
                        id: row.id.clone(),
                        reply,
                    });
                    return;
                }
                Err(e) => {
                    log::info!("greeting {name} at {addr}: {e}; trying another member");
                    last_error = Some(format!("{name} at {addr}: {e}"));
                }
            }
        }
        let why = match last_error {
            Some(e) => format!(
                "no member answered within {}s (tried {}; last: {e})",
                GREET_WITHIN.as_secs(),
                tried.len()
            ),
            None => format!("no member known within {}s", GREET_WITHIN.as_secs()),
        };
        if let Some(l) = &self.log {
            l.write("greet-failed", &wire::escape_text(&why));
        }
        let _ = self.events.send(PeerEvent::GreetFailed { why });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Millis;
    use crate::identity::{NodeKey, Sig};
    use crate::overlay::member::{Member, Signed, View};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn row(name: &str, state: MemberState, named: bool) -> MemberRow {
        let key = NodeKey::for_test(name);
        MemberRow {
            id: key.id().clone(),
            member: Member {
                addr: "127.0.0.1:1".parse().unwrap(),
                incarnation: 1,
                state,
                since: Millis(0),
                degree: 0,
                rtt_ms: None,
                signed: named.then(|| Signed {
                    name: PeerId::parse(name).unwrap(),
                    cert: Sig::NONE,
                }),
            },
            view: View::None,
        }
    }

    #[test]
    fn only_live_named_members_not_tried_yet_are_greeted() {
        let rows = vec![
            row("dead", MemberState::Dead, true),
            row("suspect", MemberState::Suspect, true),
            row("left", MemberState::Left, true),
            row("nameless", MemberState::Alive, false),
            row("a", MemberState::Alive, true),
            row("b", MemberState::Alive, true),
        ];
        let mut rng = StdRng::seed_from_u64(7);
        let mut tried = BTreeSet::new();
        let mut greeted = Vec::new();
        while let Some(r) = pick(&rows, &tried, &mut rng) {
            tried.insert(r.id.clone());
            greeted.push(r.member.name().unwrap().to_string());
        }
        greeted.sort();
        assert_eq!(greeted, ["a", "b"], "each live member once, then none");
        assert!(pick(&[], &BTreeSet::new(), &mut rng).is_none());
    }

    #[test]
    fn the_member_greeted_is_chosen_at_random() {
        let rows: Vec<MemberRow> = (0..8)
            .map(|i| row(&format!("m{i}"), MemberState::Alive, true))
            .collect();
        let mut rng = StdRng::seed_from_u64(1);
        let firsts: BTreeSet<PeerId> = (0..64)
            .map(|_| pick(&rows, &BTreeSet::new(), &mut rng).unwrap().id.clone())
            .collect();
        assert!(
            firsts.len() >= 6,
            "{} of 8 members ever picked",
            firsts.len()
        );
    }
}
