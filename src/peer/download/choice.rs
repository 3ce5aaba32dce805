//! Which content a download fetches, when the holders of a name may disagree on it.
//!
//! A count of holders proves nothing: one host can register any number of them under
//! as many peer ids as it likes. So holder counts never pick the content. When every
//! modern holder gives the same content id, that is the content (classic holders,
//! which give no id, count only as "unknown" beside them and are checked against it).
//! When modern holders give more than one content id, the download refuses and names
//! the choices; the user picks one by its id. Pure functions: no I/O.

use super::Target;
use crate::peer::pool::Holder;
use crate::protocol::hash::Sha1Digest;
use std::collections::BTreeMap;

/// One content a name is held with, as the index describes it: a choice offered to
/// the user when the holders disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentChoice {
    /// `None` for classic holders, whose content is not known until it arrives.
    pub id: Option<Sha1Digest>,
    /// The size the holders give (`None` for classic holders).
    pub size: Option<u64>,
    /// How many holders give this content (a claim, never a reason to pick it).
    pub holders: usize,
}

/// The content to fetch: the one asked for, or the one every modern holder gives.
/// `Ok(None)` when no modern holder has it (only classic holders, or none with the id
/// asked for); `Err` with the choices when modern holders give more than one content.
pub(super) fn choose_target(
    holders: &[Holder],
    wanted: Option<Sha1Digest>,
) -> Result<Option<Target>, Vec<ContentChoice>> {
    let modern: Vec<&Holder> = holders.iter().filter(|h| !h.is_classic()).collect();
    let id = match wanted {
        Some(w) => w,
        None => {
            let mut ids: Vec<Sha1Digest> = modern.iter().filter_map(|h| h.id).collect();
            ids.sort_unstable_by_key(|d| d.0);
            ids.dedup();
            match ids[..] {
                [] => return Ok(None),
                [one] => one,
                _ => return Err(choices(holders)),
            }
        }
    };
    Ok(target_for(&modern, id))
}

/// The target for content `id`. Holders of one content id may still give different
/// sizes (all but one of them lying); the bytes are checked against the id whichever
/// is used (a wrong size gives a piece list or a last piece that does not match), so
/// a wrong size can only fail the download, never place wrong bytes. The size most of
/// them give is tried. The whole-file SHA-1 is the one they claim when every claim
/// is the same (holders that claim none do not count), otherwise none: a claim to
/// compare with under `--verify-sha1`, nothing more.
fn target_for(modern: &[&Holder], id: Sha1Digest) -> Option<Target> {
    let of_id: Vec<&&Holder> = modern.iter().filter(|h| h.id == Some(id)).collect();
    let mut best: Option<(u64, usize)> = None;
    for size in of_id.iter().filter_map(|h| h.size) {
        let count = of_id.iter().filter(|o| o.size == Some(size)).count();
        if best.is_none_or(|(_, c)| count > c) {
            best = Some((size, count));
        }
    }
    let (size, _) = best?;
    let mut claims: Vec<Sha1Digest> = of_id.iter().filter_map(|h| h.sha1).collect();
    claims.sort_unstable_by_key(|d| d.0);
    claims.dedup();
    let sha1 = match claims[..] {
        [one] => Some(one),
        _ => None,
    };
    Some(Target { id, size, sha1 })
}

/// The contents the holders give, ordered by content id (not by count: a count is
/// not a recommendation), classic holders last as one "unknown" choice.
pub fn choices(holders: &[Holder]) -> Vec<ContentChoice> {
    let mut by_id: BTreeMap<[u8; 20], ContentChoice> = BTreeMap::new();
    let mut classic = 0;
    for h in holders {
        match h.id.filter(|_| !h.is_classic()) {
            Some(id) => {
                by_id
                    .entry(id.0)
                    .or_insert(ContentChoice {
                        id: Some(id),
                        size: h.size,
                        holders: 0,
                    })
                    .holders += 1
            }
            None => classic += 1,
        }
    }
    let mut out: Vec<ContentChoice> = by_id.into_values().collect();
    if classic > 0 {
        out.push(ContentChoice {
            id: None,
            size: None,
            holders: classic,
        });
    }
    out
}

/// Fewest hex digits a short content id may have.
pub const MIN_SHORT_ID: usize = 8;

/// A content id as a person types it: `sha1:` and 40 hex digits, or the start of one
/// (at least [`MIN_SHORT_ID`] hex digits, `sha1:` optional), such as the 12-digit
/// short form that search results and the choices show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContentIdArg {
    Full(Sha1Digest),
    /// Lowercase hex digits, fewer than 40.
    Short(String),
}

impl ContentIdArg {
    pub fn parse(text: &str) -> Result<ContentIdArg, String> {
        if let Ok(d) = Sha1Digest::parse(text) {
            return Ok(ContentIdArg::Full(d));
        }
        let hex = text
            .strip_prefix("sha1:")
            .unwrap_or(text)
            .to_ascii_lowercase();
        if (MIN_SHORT_ID..40).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(ContentIdArg::Short(hex));
        }
        Err(format!(
            "'{text}' is not a content id: give sha1: and 40 hex digits, or at least \
             {MIN_SHORT_ID} of its first hex digits (the short form search shows)"
        ))
    }

    /// The full id, looked up among `holders` (of the name) for a short one.
    pub fn resolve(&self, holders: &[Holder]) -> Result<Sha1Digest, String> {
        let prefix = match self {
            ContentIdArg::Full(d) => return Ok(*d),
            ContentIdArg::Short(p) => p,
        };
        let mut ids: Vec<Sha1Digest> = holders
            .iter()
            .filter_map(|h| h.id.filter(|_| !h.is_classic()))
            .filter(|d| d.hex().starts_with(prefix.as_str()))
            .collect();
        ids.sort_unstable_by_key(|d| d.0);
        ids.dedup();
        match ids[..] {
            [one] => Ok(one),
            [] => Err(format!(
                "no holder of this name has a content id starting with {prefix}"
            )),
            _ => Err(format!(
                "{} contents have an id starting with {prefix}: give more digits",
                ids.len()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(id: &str, sha1: &str, peer: &str) -> Holder {
        Holder {
            host: "127.0.0.1".parse().unwrap(),
            port: 1,
            peer: peer.into(),
            name: peer.into(),
            size: Some(1),
            id: Some(Sha1Digest::of(id.as_bytes())),
            sha1: Some(Sha1Digest::of(sha1.as_bytes())),
        }
    }

    fn classic(peer: &str) -> Holder {
        Holder {
            id: None,
            sha1: None,
            size: None,
            ..holder("", "", peer)
        }
    }

    #[test]
    fn more_holders_of_another_content_do_not_pick_it() {
        let hs = vec![
            holder("a", "da", "p1"),
            holder("b", "db", "p2"),
            holder("b", "db", "p3"),
        ];
        let choices = choose_target(&hs, None).unwrap_err();
        assert_eq!(choices.len(), 2);
        let count = |id: &str| {
            choices
                .iter()
                .find(|c| c.id == Some(Sha1Digest::of(id.as_bytes())))
                .unwrap()
                .holders
        };
        assert_eq!((count("a"), count("b")), (1, 2));
        // Asking for one content takes it, however few hold it.
        let t = choose_target(&hs, Some(Sha1Digest::of(b"a"))).unwrap();
        assert_eq!(t.unwrap().id, Sha1Digest::of(b"a"));
        assert!(choose_target(&hs, Some(Sha1Digest::of(b"zz")))
            .unwrap()
            .is_none());
    }

    #[test]
    fn holders_that_agree_give_the_target_and_classic_holders_do_not_disagree() {
        let hs = vec![
            holder("a", "da", "p1"),
            classic("old"),
            holder("a", "da", "p2"),
        ];
        let t = choose_target(&hs, None).unwrap().unwrap();
        assert_eq!(
            (t.id, t.sha1),
            (Sha1Digest::of(b"a"), Some(Sha1Digest::of(b"da")))
        );
        assert!(choose_target(&[classic("old")], None).unwrap().is_none());
        assert!(choose_target(&[], None).unwrap().is_none());
    }

    #[test]
    fn classic_holders_are_one_unknown_choice_listed_last() {
        let hs = vec![
            classic("o1"),
            holder("b", "db", "p1"),
            holder("a", "da", "p2"),
            classic("o2"),
        ];
        let c = choose_target(&hs, None).unwrap_err();
        assert_eq!(c.len(), 3);
        assert_eq!(c[2].id, None);
        assert_eq!(c[2].holders, 2);
        assert!(c[0].id.unwrap().0 < c[1].id.unwrap().0, "ordered by id");
    }

    #[test]
    fn a_short_id_resolves_to_the_one_content_it_starts() {
        let hs = vec![
            holder("a", "da", "p1"),
            holder("b", "db", "p2"),
            classic("o"),
        ];
        let a = Sha1Digest::of(b"a");
        let short = ContentIdArg::parse(&a.short()).unwrap();
        assert_eq!(short, ContentIdArg::Short(a.short()));
        assert_eq!(short.resolve(&hs), Ok(a));
        let prefixed = ContentIdArg::parse(&format!("sha1:{}", &a.hex()[..8].to_uppercase()));
        assert_eq!(prefixed.unwrap().resolve(&hs), Ok(a));
        assert_eq!(
            ContentIdArg::parse(&a.to_string()),
            Ok(ContentIdArg::Full(a))
        );
        assert!(ContentIdArg::parse("abc").is_err(), "too short");
        assert!(ContentIdArg::parse("zzzzzzzzzz").is_err());
        let other = ContentIdArg::Short("00000000".into());
        assert!(other.resolve(&hs).unwrap_err().contains("no holder"));
    }

    #[test]
    fn the_sha1_is_what_the_holders_claim_when_they_agree_and_the_size_most_give() {
        let mut quiet = holder("a", "", "p3");
        quiet.sha1 = None;
        let mut big = holder("a", "da", "p4");
        big.size = Some(2);
        let hs = vec![holder("a", "da", "p1"), holder("a", "da", "p2"), quiet, big];
        let t = choose_target(&hs, None).unwrap().unwrap();
        // A holder that claims nothing does not disagree.
        assert_eq!((t.size, t.sha1), (1, Some(Sha1Digest::of(b"da"))));
        // Two different claims: none is taken.
        let mut hs = hs;
        hs.push(holder("a", "liar", "p5"));
        let t = choose_target(&hs, None).unwrap().unwrap();
        assert_eq!(t.sha1, None);
        // A modern holder without a SHA-1 is still modern.
        let mut only = holder("a", "", "p6");
        only.sha1 = None;
        assert!(!only.is_classic());
        let t = choose_target(&[only], None).unwrap().unwrap();
        assert_eq!((t.id, t.sha1), (Sha1Digest::of(b"a"), None));
    }
}
