//! How results look to people and to scripts: byte counts, durations, the search
//! table, `status` and `members` as text or typed JSON. The console and the one-shot
//! commands both render through here, so the same result reads the same everywhere.
//!
//! Pure functions from values to text or JSON; nothing here prints or does I/O.

use crate::peer::download::{Completed, ContentChoice};
use crate::peer::pool::Found;
use serde_json::{json, Map, Value};
use std::time::Duration;

pub use crate::units::{fmt_bytes, fmt_duration, plural};

/// The line that reports a finished download. `onward` adds that the console's peer
/// now shares it.
pub fn downloaded(what: &str, done: &Completed, onward: bool) -> String {
    let check = if done.verified_in_advance {
        "verified"
    } else {
        "NOT verified in advance: classic holder"
    };
    let check = match done.hashes.sha1 {
        Some(sha1) => format!("{check}, sha1 {}", sha1.short()),
        None => check.to_owned(),
    };
    let resumed = if done.resumed_bytes > 0 {
        format!(", {} of it already here", fmt_bytes(done.resumed_bytes))
    } else {
        String::new()
    };
    format!(
        "downloaded {what} ({}, {check}{resumed}) from {} in {:.2}s ({}/s){}",
        fmt_bytes(done.hashes.size),
        done.sources.join(", "),
        done.elapsed.as_secs_f64(),
        fmt_bytes(done.rate() as u64),
        if onward { "; now sharing it" } else { "" }
    )
}

/// The hint for a name that exists only in another case: `None` when there is none.
pub fn case_hint(others: &[String]) -> Option<String> {
    if others.is_empty() {
        return None;
    }
    let quoted: Vec<String> = others.iter().map(|n| format!("'{n}'")).collect();
    Some(format!(
        "names are case-sensitive: did you mean {}?",
        quoted.join(" or ")
    ))
}

/// The width of each column of a table, in characters.
fn column_widths<const N: usize>(cells: &[[String; N]]) -> [usize; N] {
    std::array::from_fn(|i| {
        cells
            .iter()
            .map(|c| c[i].chars().count())
            .max()
            .unwrap_or(0)
    })
}

/// The search results as an aligned table, numbered from 1 (the numbers `get N`
/// takes at the console), with short content ids, and the short whole-file SHA-1 the
/// holders claim when they agree on one.
pub fn search_table(found: &[Found], more: bool, words: &str) -> Vec<String> {
    if found.is_empty() {
        return vec![format!("no file matches '{words}'")];
    }
    let cells: Vec<[String; 5]> = found
        .iter()
        .map(|f| {
            [
                f.name.clone(),
                f.size.map(fmt_bytes).unwrap_or_else(|| "?".into()),
                plural(f.holders, "holder"),
                f.id.map(|d| d.short()).unwrap_or_else(|| "classic".into()),
                f.sha1
                    .map(|d| format!("sha1 {}", d.short()))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let [w0, w1, w2, w3, _] = column_widths(&cells);
    let number = found.len().to_string().len();
    let mut out: Vec<String> = cells
        .iter()
        .enumerate()
        .map(|(i, [name, size, holders, id, sha1])| {
            let line = format!(
                "{:>number$}. {name:<w0$}  {size:>w1$}  {holders:<w2$}  {id:<w3$}  {sha1}",
                i + 1
            );
            line.trim_end().to_owned()
        })
        .collect();
    if more {
        out.push("(more results: narrow the search, or raise --limit)".into());
    }
    out
}

/// The contents a name's holders disagree on, as an aligned table: short content id,
/// size, holders. Classic holders, whose content is unknown, come last.
pub fn content_choices(choices: &[ContentChoice]) -> Vec<String> {
    let cells: Vec<[String; 3]> = choices
        .iter()
        .map(|c| {
            [
                c.id.map(|d| d.short())
                    .unwrap_or_else(|| "unknown (classic holders, no content id)".into()),
                c.size.map(fmt_bytes).unwrap_or_else(|| "?".into()),
                plural(c.holders as u64, "holder"),
            ]
        })
        .collect();
    let [w0, w1, _] = column_widths(&cells);
    cells
        .iter()
        .map(|[id, size, holders]| format!("  {id:<w0$}  {size:>w1$}  {holders}"))
        .collect()
}

/// The choices as JSON: full content ids (`null` for classic holders), sizes, holders.
pub fn content_choices_json(choices: &[ContentChoice]) -> Value {
    Value::Array(
        choices
            .iter()
            .map(|c| {
                json!({
                    "id": c.id.map(|d| d.to_string()),
                    "short_id": c.id.map(|d| d.short()),
                    "size": c.size,
                    "holders": c.holders,
                })
            })
            .collect(),
    )
}

/// Search results as JSON.
pub fn search_json(found: &[Found], more: bool) -> Value {
    let rows: Vec<_> = found
        .iter()
        .map(|f| {
            json!({
                "name": f.name,
                "size": f.size,
                "id": f.id.map(|d| d.to_string()),
                "holders": f.holders,
                "sha1": f.sha1.map(|d| d.to_string()),
            })
        })
        .collect();
    json!({ "results": rows, "more": more })
}

/// The `status` rows that are names or text, whatever they look like (an id may be
/// all digits).
const TEXT_ROWS: &[&str] = &[
    "role", "id", "name", "version", "health", "failing", "address", "state", "error",
];

/// A status value as JSON: whole numbers become numbers, the rest stay text.
fn typed(key: &str, value: &str) -> Value {
    if TEXT_ROWS.contains(&key) {
        return json!(value);
    }
    match crate::protocol::decimal::<u64>(value) {
        Some(n) => json!(n),
        None => json!(value),
    }
}

/// `status` rows as JSON: numbers typed, and the `index.N.*` rows of a peer gathered
/// into an `indexes` list of objects.
pub fn status_json(rows: &[(String, String)]) -> Value {
    let mut map = Map::new();
    let mut links: Vec<Map<String, Value>> = Vec::new();
    for (k, v) in rows {
        if let Some((n, field)) = index_row(k) {
            if links.len() < n {
                links.resize_with(n, Map::new);
            }
            links[n - 1].insert(field.to_owned(), typed(field, v));
        } else if k == "indexes" {
            // The count is the list's length.
        } else {
            map.insert(k.clone(), typed(k, v));
        }
    }
    if rows.iter().any(|(k, _)| k == "indexes") {
        map.insert(
            "indexes".into(),
            Value::Array(links.into_iter().map(Value::Object).collect()),
        );
    }
    Value::Object(map)
}

/// `index.3.state` -> (3, "state").
fn index_row(key: &str) -> Option<(usize, &str)> {
    let rest = key.strip_prefix("index.")?;
    let (n, field) = rest.split_once('.')?;
    let n: usize = n.parse().ok().filter(|&n| (1..=1024).contains(&n))?;
    Some((n, field))
}

/// `status` rows for a person: durations and byte counts in units, a peer's index
/// links one line each.
pub fn status_text(rows: &[(String, String)]) -> Vec<String> {
    let value = |key: &str| rows.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut line = |label: &str, text: String| pairs.push((label.to_owned(), text));
    for (k, v) in rows {
        if let Some((n, "address")) = index_row(k) {
            let field = |f: &str| value(&format!("index.{n}.{f}")).unwrap_or("");
            let files: u64 = field("files").parse().unwrap_or(0);
            let text = match field("state") {
                "up" => format!("up, {} published", plural(files, "file")),
                "down" => format!("down: {}", field("error")),
                other => other.to_owned(),
            };
            line(&format!("index {v}"), text);
            continue;
        }
        if index_row(k).is_some() || k == "indexes" {
            continue;
        }
        let n = v.parse::<u64>().ok();
        match (k.as_str(), n) {
            (key, Some(n)) if key.ends_with("_secs") => line(
                key.trim_end_matches("_secs"),
                fmt_duration(Duration::from_secs(n)),
            ),
            ("request_memory", Some(n)) => line(k, fmt_bytes(n)),
            (key, Some(n)) if key.starts_with("bytes_") => line(key, fmt_bytes(n)),
            _ => line(k, v.clone()),
        }
    }
    let width = pairs
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    pairs
        .into_iter()
        .map(|(label, text)| format!("{label:>width$}: {text}"))
        .collect()
}

/// The `members` answer (rows of id, host, port, state, incarnation, view, rtt in
/// ms, name) as an aligned table with a header row, the name first: names are what
/// people recognise, ids what tells two peers of one name apart.
pub fn members_table(rows: &[Vec<String>]) -> Vec<String> {
    let header = ["NAME", "ID", "ADDRESS", "STATE", "VIEW", "RTT"].map(String::from);
    let cells: Vec<[String; 6]> = std::iter::once(header)
        .chain(rows.iter().map(|r| {
            let addr = if r[1].contains(':') {
                format!("[{}]:{}", r[1], r[2])
            } else {
                format!("{}:{}", r[1], r[2])
            };
            let rtt = if r[6] == "-" {
                "-".to_owned()
            } else {
                format!("{} ms", r[6])
            };
            [
                r[7].clone(),
                r[0].clone(),
                addr,
                r[3].clone(),
                r[5].clone(),
                rtt,
            ]
        }))
        .collect();
    let [w0, w1, w2, w3, w4, _] = column_widths(&cells);
    cells
        .iter()
        .map(|[name, id, addr, state, view, rtt]| {
            format!("{name:<w0$}  {id:<w1$}  {addr:<w2$}  {state:<w3$}  {view:<w4$}  {rtt}")
        })
        .collect()
}

/// The `members` answer as JSON.
pub fn members_json(address: &str, rows: &[Vec<String>]) -> Value {
    let list: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r[0],
                "host": r[1],
                "port": r[2].parse::<u16>().ok(),
                "state": r[3],
                "incarnation": r[4].parse::<u64>().ok(),
                "view": r[5],
                "rtt_ms": r[6].parse::<u64>().ok(),
                "name": r[7],
            })
        })
        .collect();
    json!({ "address": address, "members": list })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::hash::Sha1Digest;

    fn rows(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn status_json_types_numbers_and_gathers_index_links() {
        let v = status_json(&rows(&[
            ("role", "peer"),
            ("id", "1025"),
            ("version", "0.1.0"),
            ("connections", "4"),
            ("indexes", "2"),
            ("indexes_up", "1"),
            ("index.1.address", "127.0.0.1:1024"),
            ("index.1.state", "up"),
            ("index.1.files", "3"),
            ("index.2.address", "idx2:1024"),
            ("index.2.state", "down"),
            ("index.2.files", "0"),
            ("index.2.error", "connection refused"),
            ("health", "ok"),
        ]));
        assert_eq!(v["connections"], 4);
        assert_eq!(v["id"], "1025", "an id stays text, digits or not");
        assert_eq!(v["version"], "0.1.0");
        assert_eq!(v["indexes_up"], 1);
        assert_eq!(v["indexes"][0]["address"], "127.0.0.1:1024");
        assert_eq!(v["indexes"][0]["files"], 3);
        assert_eq!(v["indexes"][1]["error"], "connection refused");
        assert!(v.get("index.1.state").is_none());
    }

    #[test]
    fn status_text_shows_units_and_one_line_per_index() {
        let text = status_text(&rows(&[
            ("uptime_secs", "173"),
            ("bytes_shared", "11564"),
            ("lease_secs", "30"),
            ("indexes", "1"),
            ("index.1.address", "127.0.0.1:1024"),
            ("index.1.state", "down"),
            ("index.1.files", "0"),
            ("index.1.error", "connection refused"),
            ("health", "failing"),
        ]))
        .join("\n");
        assert!(text.contains("uptime: 2m53s"), "{text}");
        assert!(text.contains("bytes_shared: 11.3 KiB"), "{text}");
        assert!(text.contains("lease: 30s"), "{text}");
        assert!(
            text.contains("index 127.0.0.1:1024: down: connection refused"),
            "{text}"
        );
        assert!(!text.contains("index.1"), "{text}");
    }

    #[test]
    fn the_search_table_is_aligned_with_short_ids_and_plurals() {
        let found = vec![
            Found {
                name: "tenkb.txt".into(),
                size: Some(10_240),
                id: Some(Sha1Digest::of(b"a")),
                holders: 1,
                sha1: Some(Sha1Digest::of(b"whole")),
            },
            Found {
                name: "a-much-longer-name.txt".into(),
                size: Some(5),
                id: None,
                holders: 12,
                sha1: None,
            },
        ];
        let t = search_table(&found, false, "x");
        assert_eq!(t.len(), 2);
        assert!(t[0].contains("1 holder "), "{t:?}");
        assert!(t[1].contains("12 holders"), "{t:?}");
        let id = Sha1Digest::of(b"a").short();
        assert!(
            t[0].ends_with(&format!("{id}  sha1 {}", Sha1Digest::of(b"whole").short())),
            "{t:?}"
        );
        assert!(t[1].ends_with("classic"));
        // The columns start at the same place on every line.
        let id_column = |l: &str, id: &str| l.find(id).unwrap();
        assert_eq!(id_column(&t[0], &id), id_column(&t[1], "classic"), "{t:?}");
        let v = search_json(&found, false);
        assert_eq!(
            v["results"][0]["sha1"],
            Sha1Digest::of(b"whole").to_string()
        );
        assert!(v["results"][1]["sha1"].is_null());
    }

    #[test]
    fn the_choices_table_is_aligned_with_short_ids_and_classic_last() {
        let choices = vec![
            ContentChoice {
                id: Some(Sha1Digest::of(b"a")),
                size: Some(48),
                holders: 2,
            },
            ContentChoice {
                id: Some(Sha1Digest::of(b"b")),
                size: Some(10_240),
                holders: 1,
            },
            ContentChoice {
                id: None,
                size: None,
                holders: 1,
            },
        ];
        let t = content_choices(&choices);
        assert!(t[0].starts_with(&format!("  {}", Sha1Digest::of(b"a").short())));
        assert!(t[0].ends_with("48 B  2 holders"), "{t:?}");
        assert!(t[1].ends_with("10.0 KiB  1 holder"), "{t:?}");
        assert!(t[2].starts_with("  unknown (classic"), "{t:?}");
        let holders_column = |l: &str| l.rfind(" holder").unwrap();
        assert_eq!(holders_column(&t[0]), holders_column(&t[2]), "{t:?}");
        let v = content_choices_json(&choices);
        assert_eq!(v[0]["id"], Sha1Digest::of(b"a").to_string());
        assert_eq!(v[0]["holders"], 2);
        assert!(v[2]["id"].is_null());
    }

    #[test]
    fn members_have_a_header_row() {
        let t = members_table(&[vec![
            "peer1".into(),
            "127.0.0.1".into(),
            "1025".into(),
            "alive".into(),
            "3".into(),
            "active".into(),
            "1".into(),
            "peer one".into(),
        ]]);
        assert!(t[0].starts_with("NAME"), "{t:?}");
        assert!(t[1].starts_with("peer one  peer1"), "{t:?}");
        assert!(t[1].contains("127.0.0.1:1025"));
        assert_eq!(t[0].find("ADDRESS"), t[1].find("127.0.0.1"), "{t:?}");
    }
}
