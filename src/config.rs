//! Configuration files and value parsers shared by the command line and the runtime.
//!
//! `config/index.txt` and `config/seeds.txt` hold one `host:port` a line; `#` starts a
//! comment and blank lines are ignored.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

/// An address as the user wrote it (`host:port`), resolved when it is dialled so that
/// container host names work, with the node's key when the user pinned it
/// (`host:port KEY` in a list file, `KEY@host:port` on the command line).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeAddr {
    addr: String,
    key: Option<String>,
}

/// Whether `text` has the shape of a node id: 52 characters of lowercase base32.
/// (Whether it spells a real key is checked where keys are known.)
pub fn looks_like_node_id(text: &str) -> bool {
    text.len() == 52
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

impl NodeAddr {
    /// `host:port`, or `KEY@host:port`.
    pub fn parse(text: &str) -> Result<NodeAddr, String> {
        let text = text.trim();
        match text.split_once('@') {
            Some((key, addr)) => NodeAddr::parse(addr)?.with_key(key),
            None => NodeAddr::parse_addr(text),
        }
    }

    fn parse_addr(text: &str) -> Result<NodeAddr, String> {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("'{text}' is not host:port"))?;
        if host.is_empty() {
            return Err(format!("'{text}' has no host"));
        }
        port.parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("'{text}' has no valid port (1-65535)"))?;
        Ok(NodeAddr {
            addr: text.to_owned(),
            key: None,
        })
    }

    /// The same address, pinned to the node whose id is `key`.
    pub fn with_key(mut self, key: &str) -> Result<NodeAddr, String> {
        if !looks_like_node_id(key) {
            return Err(format!(
                "'{key}' is not a node id (52 characters a-z and 2-7, as `p2pshare id` prints)"
            ));
        }
        self.key = Some(key.to_owned());
        Ok(self)
    }

    pub fn as_str(&self) -> &str {
        &self.addr
    }

    /// The node id this address is pinned to, if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.addr)
    }
}

/// Parses a listening address: `HOST:PORT`, `IP:PORT`, `[IPv6]:PORT`, or a bare `PORT`
/// (every interface, `0.0.0.0:PORT`). A host name is resolved once, here, and an IPv4
/// address is preferred when it has both (`localhost` binds 127.0.0.1, as clients dial).
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("'{text}' is not HOST:PORT or a port number"))?;
    if host.is_empty() {
        return Err(format!("'{text}' has no host"));
    }
    if port.parse::<u16>().is_err() {
        return Err(format!("'{text}' has no valid port (0-65535)"));
    }
    let found: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{host}': {e}"))?
        .collect();
    found
        .iter()
        .find(|a| a.is_ipv4())
        .or(found.first())
        .copied()
        .ok_or_else(|| format!("'{host}' has no address"))
}

/// Parses an address list: one `host:port` a line, optionally followed by the node's
/// id (`host:port KEY`); `#` comments, blank lines ignored. (Several addresses on one
/// line, without keys, are accepted too.)
pub fn parse_addr_list(text: &str) -> Result<Vec<NodeAddr>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let at = |e: String| format!("line {}: {e}", i + 1);
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            [] => {}
            [addr, key] if !key.contains(':') => {
                out.push(
                    NodeAddr::parse(addr)
                        .and_then(|a| a.with_key(key))
                        .map_err(at)?,
                );
            }
            _ => {
                for word in words {
                    out.push(NodeAddr::parse(word).map_err(at)?);
                }
            }
        }
    }
    Ok(out)
}

/// Reads an address list file; `Ok(None)` when the file does not exist.
pub fn read_addr_list(path: &Path) -> Result<Option<Vec<NodeAddr>>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_addr_list(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Parses a duration: `500ms`, `30s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (try 500ms, 30s, 2m)"))?;
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "'{text}': unknown unit '{unit}' (use ms, s, m or h)"
            ))
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        return Err(format!("'{text}' is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a size: a number of bytes with an optional K, M or G (binary: 2^10, 2^20,
/// 2^30), as `256M`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (number, scale) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size (try 64M, 1G, 65536)"))?;
    n.checked_mul(scale)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("'{text}' is out of range"))
}

/// Parses a rate: bytes per second with an optional k, M or G suffix (powers of 1000;
/// `ki`, `Mi`, `Gi` for powers of 1024), e.g. `500k`, `25M`, `1Gi`.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a rate (try 500k, 25M, 1Gi bytes per second)"))?;
    let scale = match unit.trim_end_matches("/s").trim_end_matches('B') {
        "" => 1.0,
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "ki" | "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "'{text}': unknown unit '{other}' (use k, M, G, Ki, Mi or Gi)"
            ))
        }
    };
    let bytes = value * scale;
    if !bytes.is_finite() || !(1.0..=1e15).contains(&bytes) {
        return Err(format!("'{text}' is out of range"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_lists_skip_comments_and_blanks() {
        let list =
            parse_addr_list("# index servers\n127.0.0.1:1024\n\n  idx2:1024 # second\n").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].as_str(), "idx2:1024");
        assert!(parse_addr_list("nohost\n").unwrap_err().contains("line 1"));
        assert!(parse_addr_list("h:0\n").is_err());
        assert!(NodeAddr::parse("[::1]:1024").is_ok());
    }

    #[test]
    fn listen_addresses_take_a_bare_port_and_host_names() {
        assert_eq!(
            parse_listen_addr("45096"),
            Ok("0.0.0.0:45096".parse().unwrap())
        );
        assert_eq!(
            parse_listen_addr("127.0.0.1:0"),
            Ok("127.0.0.1:0".parse().unwrap())
        );
        assert_eq!(
            parse_listen_addr("[::1]:80"),
            Ok("[::1]:80".parse().unwrap())
        );
        assert_eq!(
            parse_listen_addr("localhost:45096"),
            Ok("127.0.0.1:45096".parse().unwrap())
        );
        assert!(parse_listen_addr("70000")
            .unwrap_err()
            .contains("not HOST:PORT"));
        assert!(parse_listen_addr("localhost:http")
            .unwrap_err()
            .contains("no valid port"));
        assert!(parse_listen_addr(":80").unwrap_err().contains("no host"));
        assert!(parse_listen_addr("no-such-host.invalid:80")
            .unwrap_err()
            .contains("cannot resolve 'no-such-host.invalid'"));
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("99999999999G").is_err());
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn rates_take_suffixes() {
        assert_eq!(parse_rate("500k"), Ok(500_000));
        assert_eq!(parse_rate("25M"), Ok(25_000_000));
        assert_eq!(parse_rate("1Mi"), Ok(1_048_576));
        assert_eq!(parse_rate("2.5MB/s"), Ok(2_500_000));
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("5x").is_err());
    }
}
