//! Overlay messages on the wire: [`Msg`] to protocol lines and back (pure).
//!
//! The codec has already split the line into fields, looked the verb up in the
//! command table and checked its arity and row shape; this module turns fields into
//! typed values and refuses anything malformed with a [`Refusal`] naming the field.
//! docs/PROTOCOL.md section 6 is the normative description.

use super::{Body, Broadcast, MemberEvent, MemberInfo, MemberState, Msg, SeedRow};
use crate::identity::Sig;
use crate::protocol::codec::{self, Request};
use crate::protocol::commands::Verb;
use crate::protocol::hash::Sha1Digest;
use crate::protocol::name::PeerId;
use crate::protocol::{ErrorCode, Refusal};
use std::net::{IpAddr, SocketAddr};

/// Longest text of a `say` or `msg`, in bytes, after unescaping.
pub const MAX_TEXT: usize = 1000;

fn bad(message: impl Into<String>) -> Refusal {
    Refusal::new(ErrorCode::BadRequest, message)
}

fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, Refusal> {
    crate::protocol::decimal(text).ok_or_else(|| {
        bad(format!(
            "{what} '{}' is not a number",
            codec::printable(text)
        ))
    })
}

fn peer_id(text: &str) -> Result<PeerId, Refusal> {
    PeerId::parse(text).map_err(|e| {
        Refusal::new(
            ErrorCode::BadName,
            format!("peer id '{}': {e}", codec::printable(text)),
        )
    })
}

fn addr(host: &str, port: &str) -> Result<SocketAddr, Refusal> {
    let ip: IpAddr = host.parse().map_err(|_| {
        bad(format!(
            "host '{}' is not an IP address",
            codec::printable(host)
        ))
    })?;
    let port: u16 = number(port, "port")?;
    if port == 0 {
        return Err(bad("port 0"));
    }
    // The encoder writes the canonical form, so an IPv4-mapped IPv6 address is taken
    // as the IPv4 address it carries: one member has one address, however a peer
    // spelled it (found by the overlay_wire fuzz target).
    Ok(SocketAddr::new(ip.to_canonical(), port))
}

fn state(text: &str) -> Result<MemberState, Refusal> {
    MemberState::parse(text).ok_or_else(|| {
        bad(format!(
            "state '{}' is not alive, suspect, dead or left",
            codec::printable(text)
        ))
    })
}

fn sig(text: &str, what: &str) -> Result<Sig, Refusal> {
    Sig::parse(text).ok_or_else(|| {
        bad(format!(
            "{what} '{}' is not 128 hex digits",
            codec::printable(text)
        ))
    })
}

fn digest(text: &str) -> Result<Sha1Digest, Refusal> {
    Sha1Digest::parse(text).map_err(|e| bad(format!("message id: {e}")))
}

/// Escapes a text for one field: `%`, `|`, CR and LF become `%25`, `%7C`, `%0D`, `%0A`.
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '|' => out.push_str("%7C"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c => out.push(c),
        }
    }
    out
}

/// Reverses [`escape_text`] (any `%XX` is accepted), and checks the length cap.
pub fn unescape_text(field: &str) -> Result<String, Refusal> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Two hex digits exactly: `from_str_radix` would also take a sign.
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad("text has a '%' not followed by two hex digits"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    if out.len() > MAX_TEXT {
        return Err(Refusal::new(
            ErrorCode::TooLarge,
            format!("text is {} bytes, at most {MAX_TEXT}", out.len()),
        ));
    }
    String::from_utf8(out).map_err(|_| bad("text is not valid UTF-8"))
}

/// Fields of a member row: `<id>|<host>|<port>|<incarnation>|<state>|<degree>|<name>|<cert>`.
pub const MEMBER_FIELDS: usize = 8;

fn member_fields(m: &MemberInfo) -> Vec<String> {
    vec![
        m.id.to_string(),
        m.addr.ip().to_canonical().to_string(),
        m.addr.port().to_string(),
        m.incarnation.to_string(),
        m.state.as_str().to_owned(),
        m.degree.to_string(),
        m.name.to_string(),
        m.cert.hex(),
    ]
}

fn member_row(row: &[&str]) -> Result<MemberInfo, Refusal> {
    Ok(MemberInfo {
        id: peer_id(row[0])?,
        addr: addr(row[1], row[2])?,
        incarnation: number(row[3], "incarnation")?,
        state: state(row[4])?,
        degree: number(row[5], "degree")?,
        name: peer_id(row[6])?,
        cert: sig(row[7], "certificate")?,
    })
}

fn push_line(out: &mut String, fields: &[&str]) {
    out.push_str(&codec::line(fields));
}

fn push_rows<T>(out: &mut String, rows: &[T], fields: impl Fn(&T) -> Vec<String>) {
    for r in rows {
        let f = fields(r);
        let refs: Vec<&str> = f.iter().map(String::as_str).collect();
        push_line(out, &refs);
    }
}

/// The lines of a message, ready to write.
pub fn encode(msg: &Msg) -> String {
    let mut out = String::new();
    match msg {
        Msg::Register { .. } | Msg::Peers { .. } | Msg::Report { .. } | Msg::SeedSync { .. } => {
            encode_seed_msg(msg, &mut out)
        }
        Msg::Neighbor { .. }
        | Msg::NeighborReply { .. }
        | Msg::Disconnect
        | Msg::Shuffle { .. } => encode_view_msg(msg, &mut out),
        Msg::Probe { .. }
        | Msg::Ack { .. }
        | Msg::ProbeReq { .. }
        | Msg::Suspect { .. }
        | Msg::Alive { .. } => encode_liveness_msg(msg, &mut out),
        Msg::Gossip(b) => encode_gossip(b, &mut out),
        Msg::IHave { .. } | Msg::Graft { .. } | Msg::Prune => encode_broadcast_msg(msg, &mut out),
    }
    out
}

/// Registration with the seeds, their answers, death reports and seed sync.
fn encode_seed_msg(msg: &Msg, out: &mut String) {
    match msg {
        Msg::Register {
            seq,
            incarnation,
            degree,
            neighbours,
            name,
            cert,
        } => {
            push_line(
                out,
                &[
                    "register",
                    &neighbours.len().to_string(),
                    &seq.to_string(),
                    &incarnation.to_string(),
                    &degree.to_string(),
                    name.as_str(),
                    &cert.hex(),
                ],
            );
            push_rows(out, neighbours, |n| vec![n.to_string()]);
        }
        Msg::Peers { seq, members } => {
            push_line(
                out,
                &["peers", &members.len().to_string(), &seq.to_string()],
            );
            push_rows(out, members, member_fields);
        }
        Msg::Report { member } => {
            let mut f = vec!["report".to_owned()];
            f.extend(member_fields(member));
            let refs: Vec<&str> = f.iter().map(String::as_str).collect();
            push_line(out, &refs);
        }
        Msg::SeedSync { nonce, to, rows } => {
            push_line(
                out,
                &[
                    "seed-sync",
                    &rows.len().to_string(),
                    &nonce.to_string(),
                    &to.to_string(),
                ],
            );
            push_rows(out, rows, |r| {
                let mut f = member_fields(&r.info);
                f.push(r.seen_ago_ms.to_string());
                f
            });
        }
        // The other kinds are written by their own group.
        _ => {}
    }
}

/// Neighbour links and shuffles (the views).
fn encode_view_msg(msg: &Msg, out: &mut String) {
    match msg {
        Msg::Neighbor {
            high,
            incarnation,
            degree,
            name,
            cert,
        } => push_line(
            out,
            &[
                "neighbor",
                if *high { "high" } else { "low" },
                &incarnation.to_string(),
                &degree.to_string(),
                name.as_str(),
                &cert.hex(),
            ],
        ),
        Msg::NeighborReply {
            accepted,
            incarnation,
            degree,
            name,
            cert,
        } => push_line(
            out,
            &[
                "neighbor-reply",
                if *accepted { "yes" } else { "no" },
                &incarnation.to_string(),
                &degree.to_string(),
                name.as_str(),
                &cert.hex(),
            ],
        ),
        Msg::Disconnect => push_line(out, &["disconnect"]),
        Msg::Shuffle { reply, members } => {
            push_line(
                out,
                &[
                    "shuffle",
                    &members.len().to_string(),
                    if *reply { "reply" } else { "request" },
                ],
            );
            push_rows(out, members, member_fields);
        }
        // The other kinds are written by their own group.
        _ => {}
    }
}

/// Probes, acks, suspicion and refutation.
fn encode_liveness_msg(msg: &Msg, out: &mut String) {
    match msg {
        Msg::Probe { seq } => push_line(out, &["probe", &seq.to_string()]),
        Msg::Ack {
            seq,
            incarnation,
            name,
            cert,
        } => push_line(
            out,
            &[
                "ack",
                &seq.to_string(),
                &incarnation.to_string(),
                name.as_str(),
                &cert.hex(),
            ],
        ),
        Msg::ProbeReq { seq, target, addr } => push_line(
            out,
            &[
                "probe-req",
                &seq.to_string(),
                target.as_str(),
                &addr.ip().to_canonical().to_string(),
                &addr.port().to_string(),
            ],
        ),
        Msg::Suspect { incarnation, dead } => {
            let inc = incarnation.to_string();
            if *dead {
                push_line(out, &["suspect", &inc, "dead"])
            } else {
                push_line(out, &["suspect", &inc])
            }
        }
        Msg::Alive {
            incarnation,
            name,
            cert,
        } => push_line(
            out,
            &[
                "alive",
                &incarnation.to_string(),
                name.as_str(),
                &cert.hex(),
            ],
        ),
        // The other kinds are written by their own group.
        _ => {}
    }
}

/// Plumtree's announcements, grafts and prunes.
fn encode_broadcast_msg(msg: &Msg, out: &mut String) {
    match msg {
        Msg::IHave { ids } => {
            push_line(out, &["ihave", &ids.len().to_string()]);
            push_rows(out, ids, |(id, hops)| {
                vec![id.to_string(), hops.to_string()]
            });
        }
        Msg::Graft { id } => push_line(out, &["graft", &id.to_string()]),
        Msg::Prune => push_line(out, &["prune"]),
        // The other kinds are written by their own group.
        _ => {}
    }
}

/// A broadcast: its header, then a text or a member's news.
fn encode_gossip(b: &Broadcast, out: &mut String) {
    let mut fields = vec![
        "gossip".to_owned(),
        b.origin.to_string(),
        b.seq.to_string(),
        b.hops.to_string(),
        b.time_ms.to_string(),
        b.sig.hex(),
    ];
    match &b.body {
        Body::Say(text) => {
            fields.push("say".into());
            fields.push(escape_text(text));
        }
        Body::Member(ev) => {
            let m = &ev.info;
            fields.extend([
                m.state.as_str().to_owned(),
                m.id.to_string(),
                m.addr.ip().to_canonical().to_string(),
                m.addr.port().to_string(),
                m.incarnation.to_string(),
                m.name.to_string(),
                m.cert.hex(),
            ]);
        }
    }
    let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
    push_line(out, &refs);
}

/// Turns a decoded request into an overlay message. `Ok(None)` when the verb is not
/// an overlay message (a client verb such as `say`, or a file-sharing verb).
pub fn decode(req: &Request) -> Result<Option<Msg>, Refusal> {
    if req.verb == Verb::Gossip {
        return decode_gossip(&req.args).map(Some);
    }
    for group in [
        decode_seed_msg,
        decode_view_msg,
        decode_liveness_msg,
        decode_broadcast_msg,
    ] {
        if let Some(msg) = group(req)? {
            return Ok(Some(msg));
        }
    }
    Ok(None)
}

/// Registration with the seeds, their answers, death reports and seed sync.
fn decode_seed_msg(req: &Request) -> Result<Option<Msg>, Refusal> {
    let a = &req.args;
    let msg = match req.verb {
        Verb::Register => Msg::Register {
            seq: number(a[1], "seq")?,
            incarnation: number(a[2], "incarnation")?,
            degree: number(a[3], "degree")?,
            neighbours: req
                .rows
                .iter()
                .map(|r| peer_id(r[0]))
                .collect::<Result<_, _>>()?,
            name: peer_id(a[4])?,
            cert: sig(a[5], "certificate")?,
        },
        Verb::Peers => Msg::Peers {
            seq: number(a[1], "seq")?,
            members: req
                .rows
                .iter()
                .map(|r| member_row(r))
                .collect::<Result<_, _>>()?,
        },
        Verb::Report => {
            let member = member_row(a)?;
            if !member.state.is_gone() {
                return Err(bad("a report is about a dead or left member"));
            }
            Msg::Report { member }
        }
        Verb::SeedSync => Msg::SeedSync {
            nonce: number(a[1], "nonce")?,
            to: number(a[2], "seed position")?,
            rows: req
                .rows
                .iter()
                .map(|r| {
                    Ok(SeedRow {
                        info: member_row(&r[..MEMBER_FIELDS])?,
                        seen_ago_ms: number(r[MEMBER_FIELDS], "seen-ago")?,
                    })
                })
                .collect::<Result<_, Refusal>>()?,
        },
        _ => return Ok(None),
    };
    Ok(Some(msg))
}

/// Neighbour links and shuffles (the views).
fn decode_view_msg(req: &Request) -> Result<Option<Msg>, Refusal> {
    let a = &req.args;
    let msg = match req.verb {
        Verb::Neighbor => Msg::Neighbor {
            high: match a[0] {
                "high" => true,
                "low" => false,
                _ => return Err(bad("priority must be high or low")),
            },
            incarnation: number(a[1], "incarnation")?,
            degree: number(a[2], "degree")?,
            name: peer_id(a[3])?,
            cert: sig(a[4], "certificate")?,
        },
        Verb::NeighborReply => Msg::NeighborReply {
            accepted: match a[0] {
                "yes" => true,
                "no" => false,
                _ => return Err(bad("answer must be yes or no")),
            },
            incarnation: number(a[1], "incarnation")?,
            degree: number(a[2], "degree")?,
            name: peer_id(a[3])?,
            cert: sig(a[4], "certificate")?,
        },
        Verb::Disconnect => Msg::Disconnect,
        Verb::Shuffle => Msg::Shuffle {
            reply: match a[1] {
                "request" => false,
                "reply" => true,
                _ => return Err(bad("shuffle kind must be request or reply")),
            },
            members: req
                .rows
                .iter()
                .map(|r| member_row(r))
                .collect::<Result<_, _>>()?,
        },
        _ => return Ok(None),
    };
    Ok(Some(msg))
}

/// Probes, acks, suspicion and refutation.
fn decode_liveness_msg(req: &Request) -> Result<Option<Msg>, Refusal> {
    let a = &req.args;
    let msg = match req.verb {
        Verb::Probe => Msg::Probe {
            seq: number(a[0], "seq")?,
        },
        Verb::Ack => Msg::Ack {
            seq: number(a[0], "seq")?,
            incarnation: number(a[1], "incarnation")?,
            name: peer_id(a[2])?,
            cert: sig(a[3], "certificate")?,
        },
        Verb::ProbeReq => Msg::ProbeReq {
            seq: number(a[0], "seq")?,
            target: peer_id(a[1])?,
            addr: addr(a[2], a[3])?,
        },
        Verb::Suspect => Msg::Suspect {
            incarnation: number(a[0], "incarnation")?,
            dead: match a.get(1).copied() {
                None => false,
                Some("dead") => true,
                Some(other) => {
                    return Err(bad(format!(
                        "'{}': the only flag of suspect is dead",
                        codec::printable(other)
                    )))
                }
            },
        },
        Verb::Alive => Msg::Alive {
            incarnation: number(a[0], "incarnation")?,
            name: peer_id(a[1])?,
            cert: sig(a[2], "certificate")?,
        },
        _ => return Ok(None),
    };
    Ok(Some(msg))
}

/// Plumtree's announcements, grafts and prunes.
fn decode_broadcast_msg(req: &Request) -> Result<Option<Msg>, Refusal> {
    let a = &req.args;
    let msg = match req.verb {
        Verb::IHave => Msg::IHave {
            ids: req
                .rows
                .iter()
                .map(|r| Ok((digest(r[0])?, number(r[1], "hops")?)))
                .collect::<Result<_, Refusal>>()?,
        },
        Verb::Graft => Msg::Graft { id: digest(a[0])? },
        Verb::Prune => Msg::Prune,
        _ => return Ok(None),
    };
    Ok(Some(msg))
}

/// A broadcast: its header, and a text or a member's news.
fn decode_gossip(a: &[&str]) -> Result<Msg, Refusal> {
    let body = match (a[5], a.len()) {
        ("say", 7) => Body::Say(unescape_text(a[6])?),
        (kind, 12) if kind != "say" => {
            let state = state(kind)?;
            if state == MemberState::Suspect {
                return Err(bad("suspicions are not broadcast"));
            }
            Body::Member(MemberEvent {
                info: MemberInfo {
                    id: peer_id(a[6])?,
                    addr: addr(a[7], a[8])?,
                    incarnation: number(a[9], "incarnation")?,
                    state,
                    degree: 0,
                    name: peer_id(a[10])?,
                    cert: sig(a[11], "certificate")?,
                },
            })
        }
        _ => {
            return Err(bad(
                "gossip is <origin>|<seq>|<hops>|<time-ms>|<sig>|say|<text> or \
                 <origin>|<seq>|<hops>|<time-ms>|<sig>|<alive|dead|left>|<id>|<host>|<port>|\
                 <incarnation>|<name>|<cert>",
            ))
        }
    };
    Ok(Msg::Gossip(Broadcast {
        origin: peer_id(a[0])?,
        seq: number(a[1], "seq")?,
        hops: number(a[2], "hops")?,
        time_ms: number(a[3], "time")?,
        sig: sig(a[4], "signature")?,
        body,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::NodeKey;
    use crate::overlay::sign_incarnation;
    use crate::protocol::codec::{decode_request, Decoded};
    use crate::protocol::MAX_LINE;

    fn id(s: &str) -> PeerId {
        PeerId::parse(s).unwrap()
    }

    /// 128 hex digits of a signature that verifies for nobody.
    fn zeros() -> String {
        "0".repeat(128)
    }

    fn decoded(frame: &[u8]) -> Msg {
        let Ok(Decoded::Frame(req, _)) = decode_request(frame, MAX_LINE) else {
            panic!("{frame:?} is not a frame");
        };
        decode(&req).unwrap().unwrap()
    }

    #[test]
    fn an_ipv4_mapped_address_decodes_as_ipv4_so_it_round_trips() {
        let frame = format!(
            "peers|1|7\npeer2|::ffff:127.0.0.1|4000|3|alive|2|two|{}\n",
            zeros()
        );
        let msg = decoded(frame.as_bytes());
        let Msg::Peers { members, .. } = &msg else {
            panic!("not a peers message");
        };
        assert_eq!(members[0].addr, "127.0.0.1:4000".parse().unwrap());
        assert_eq!(decoded(encode(&msg).as_bytes()), msg);
    }

    /// A member of key `s`, named `s`, certified at incarnation 7.
    fn info(s: &str, port: u16, state: MemberState) -> MemberInfo {
        let key = NodeKey::for_test(s);
        MemberInfo {
            id: key.id().clone(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            incarnation: 7,
            state,
            degree: 3,
            name: id(s),
            cert: sign_incarnation(&key, 7, &id(s)),
        }
    }

    fn round_trip(msg: Msg) {
        let bytes = encode(&msg);
        let Ok(Decoded::Frame(req, used)) = decode_request(bytes.as_bytes(), MAX_LINE) else {
            panic!("{bytes:?} does not decode")
        };
        assert_eq!(used, bytes.len(), "{bytes:?}");
        assert_eq!(decode(&req).unwrap(), Some(msg), "{bytes:?}");
    }

    fn broadcast(seq: u64, body: Body) -> Broadcast {
        let key = NodeKey::for_test("o");
        let mut b = Broadcast {
            origin: key.id().clone(),
            seq,
            hops: 2,
            time_ms: 1_700_000_000_000,
            sig: Sig::NONE,
            body,
        };
        b.sign(&key);
        b
    }

    fn v6() -> SocketAddr {
        SocketAddr::new("2001:db8::1".parse().unwrap(), 1500)
    }

    /// A message of every kind to a seed, and of the views.
    fn seed_and_view_messages() -> Vec<Msg> {
        let v6 = v6();
        let a = info("a", 1, MemberState::Alive);
        vec![
            Msg::Register {
                seq: 1,
                incarnation: 7,
                degree: 3,
                neighbours: vec![id("a"), id("b")],
                name: a.name.clone(),
                cert: a.cert,
            },
            Msg::Peers {
                seq: 9,
                members: vec![
                    a.clone(),
                    MemberInfo {
                        addr: v6,
                        ..info("b", 2, MemberState::Alive)
                    },
                ],
            },
            Msg::Peers {
                seq: 9,
                members: vec![],
            },
            Msg::Report {
                member: MemberInfo {
                    degree: 0,
                    ..info("x", 5, MemberState::Dead)
                },
            },
            Msg::SeedSync {
                nonce: u64::MAX,
                to: 2,
                rows: vec![SeedRow {
                    info: info("a", 1, MemberState::Left),
                    seen_ago_ms: 1234,
                }],
            },
            Msg::Neighbor {
                high: true,
                incarnation: 7,
                degree: 0,
                name: a.name.clone(),
                cert: a.cert,
            },
            Msg::NeighborReply {
                accepted: false,
                incarnation: 7,
                degree: 9,
                name: a.name.clone(),
                cert: a.cert,
            },
            Msg::Disconnect,
            Msg::Shuffle {
                reply: true,
                members: vec![info("c", 3, MemberState::Alive)],
            },
        ]
    }

    /// A message of every kind of liveness and broadcast.
    fn liveness_and_broadcast_messages() -> Vec<Msg> {
        let v6 = v6();
        let a = info("a", 1, MemberState::Alive);
        vec![
            Msg::Probe { seq: 42 },
            Msg::Ack {
                seq: 42,
                incarnation: 7,
                name: a.name.clone(),
                cert: a.cert,
            },
            Msg::ProbeReq {
                seq: 1,
                target: id("t"),
                addr: v6,
            },
            Msg::Suspect {
                incarnation: 4,
                dead: false,
            },
            Msg::Suspect {
                incarnation: 4,
                dead: true,
            },
            Msg::Alive {
                incarnation: 7,
                name: a.name.clone(),
                cert: a.cert,
            },
            Msg::Gossip(broadcast(
                77,
                Body::Say("hello | world %\nsecond line".into()),
            )),
            Msg::Gossip(broadcast(
                78,
                Body::Member(MemberEvent {
                    info: MemberInfo {
                        degree: 0,
                        ..info("d", 9, MemberState::Dead)
                    },
                }),
            )),
            Msg::IHave {
                ids: vec![(Sha1Digest::of(b"x"), 3)],
            },
            Msg::Graft {
                id: Sha1Digest::of(b"y"),
            },
            Msg::Prune,
        ]
    }

    #[test]
    fn every_message_round_trips_through_the_codec() {
        for msg in seed_and_view_messages()
            .into_iter()
            .chain(liveness_and_broadcast_messages())
        {
            round_trip(msg);
        }
    }

    #[test]
    fn a_signature_covers_decoded_values_not_their_spelling_nor_the_hops() {
        let mut news = info("d", 9, MemberState::Dead);
        news.degree = 0;
        let b = broadcast(5, Body::Member(MemberEvent { info: news }));
        assert!(b.authentic());
        // The same broadcast, further on its way, spelled otherwise: an upper-case
        // signature and certificate, and the address as IPv4-mapped IPv6.
        let text = encode(&Msg::Gossip(b.clone()))
            .replace("|2|", "|3|")
            .replace("127.0.0.1", "::ffff:127.0.0.1")
            .replace(&b.sig.hex(), &b.sig.hex().to_uppercase());
        let Msg::Gossip(again) = decoded(text.as_bytes()) else {
            panic!("{text}")
        };
        assert_eq!(again.hops, 3);
        assert!(again.authentic(), "{text}");
        // Any value changed breaks it.
        let Body::Member(ev) = &b.body else {
            unreachable!()
        };
        for changed in [
            Broadcast {
                time_ms: b.time_ms + 1,
                ..b.clone()
            },
            Broadcast {
                body: Body::Member(MemberEvent {
                    info: MemberInfo {
                        addr: SocketAddr::from(([127, 0, 0, 2], 9)),
                        ..ev.info.clone()
                    },
                }),
                ..b.clone()
            },
            Broadcast {
                body: Body::Say("d".into()),
                ..b.clone()
            },
        ] {
            assert!(!changed.authentic(), "{changed:?}");
        }
    }

    #[test]
    fn malformed_fields_are_refused_with_the_field_named() {
        let z = zeros();
        let cases: Vec<(String, &str)> = vec![
            ("probe|x\n".into(), "seq 'x' is not a number"),
            ("probe|+1\n".into(), "seq '+1' is not a number"),
            (
                "probe-req|1|t|127.0.0.1|+5\n".into(),
                "port '+5' is not a number",
            ),
            ("probe-req|1|..|127.0.0.1|5\n".into(), "peer id"),
            ("probe-req|1|t|localhost|5\n".into(), "not an IP address"),
            ("probe-req|1|t|127.0.0.1|0\n".into(), "port 0"),
            (format!("neighbor|maybe|1|1|n|{z}\n"), "high or low"),
            ("neighbor|high|1|1|n|00ff\n".into(), "certificate '00ff'"),
            (format!("alive|1|..|{z}\n"), "peer id"),
            (format!("ack|1|1|n|{}\n", "g".repeat(128)), "certificate"),
            (
                format!("gossip|o|1|0|5|{z}|say|bad %zz\n"),
                "two hex digits",
            ),
            ("gossip|o|1|0|5|00|say|x\n".into(), "signature '00'"),
            (
                format!("gossip|o|1|0|5|{z}|suspect|x|127.0.0.1|5|1|x|{z}\n"),
                "not broadcast",
            ),
            (format!("gossip|o|1|0|5|{z}|say|a|b\n"), "gossip is"),
            (
                format!("report|x|127.0.0.1|5|1|alive|0|x|{z}\n"),
                "dead or left",
            ),
            ("graft|sha1:00\n".into(), "message id"),
        ];
        for (bytes, want) in cases {
            let Ok(Decoded::Frame(req, _)) = decode_request(bytes.as_bytes(), MAX_LINE) else {
                panic!("{bytes:?} does not frame")
            };
            let err = decode(&req).unwrap_err();
            assert!(err.message.contains(want), "{bytes:?}: {err}");
        }
    }

    #[test]
    fn texts_are_escaped_and_capped() {
        assert_eq!(escape_text("a|b%c\r\n"), "a%7Cb%25c%0D%0A");
        assert_eq!(unescape_text("a%7Cb%25c%0D%0A").unwrap(), "a|b%c\r\n");
        assert_eq!(unescape_text("%e2%82%ac").unwrap(), "€");
        assert!(unescape_text("%").is_err());
        for sign in ["%+1", "%-1", "%+f"] {
            assert!(unescape_text(sign).is_err(), "{sign} is not two hex digits");
        }
        assert!(unescape_text("%ff").is_err(), "not UTF-8");
        let long = "x".repeat(MAX_TEXT + 1);
        assert_eq!(unescape_text(&long).unwrap_err().code, ErrorCode::TooLarge);
        assert!(unescape_text(&"x".repeat(MAX_TEXT)).is_ok());
    }
}
