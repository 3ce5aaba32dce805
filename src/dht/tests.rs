//! Real DHT nodes on loopback, in one process: the store, what nodes keep and put
//! again, and a value outliving its writer.

use super::kv::KvError;
use super::value::ValueError;
use super::*;
use std::time::Duration;

/// A network of `n` nodes bootstrapped from the first; `network` signs for all of
/// them unless `writers` is smaller.
struct Net {
    nodes: Vec<Option<DhtNode>>,
}

fn settings(bootstrap: Vec<String>, network: Option<Network>, republish: Duration) -> DhtSettings {
    DhtSettings {
        bind: Ipv4Addr::LOCALHOST,
        port: Some(0),
        bootstrap,
        public: false,
        server: true,
        republish,
        rate: 1_000_000,
        request_timeout: PRIVATE_REQUEST_TIMEOUT,
        network,
    }
}

fn network() -> Network {
    let key = NodeKey::generate();
    Network {
        public: key.public_bytes(),
        secret: Some(key.secret_bytes()),
    }
}

impl Net {
    fn new(n: usize, net: &Network, republish: Duration) -> Net {
        let first = DhtNode::start(settings(Vec::new(), Some(net.clone()), republish), 0).unwrap();
        let boot = vec![first.local_addr().to_string()];
        let mut nodes = vec![Some(first)];
        for _ in 1..n {
            nodes.push(Some(
                DhtNode::start(settings(boot.clone(), Some(net.clone()), republish), 0).unwrap(),
            ));
        }
        // Every node looks itself up once, so the tables fill before the first test.
        for n in nodes.iter().flatten() {
            n.peers([7; 20], 1);
        }
        Net { nodes }
    }

    fn node(&self, i: usize) -> &DhtNode {
        self.nodes[i].as_ref().expect("alive")
    }

    /// A node that only knows the network's id: it reads, never writes.
    fn reader(&self, net: &Network) -> DhtNode {
        let public_only = Network {
            public: net.public,
            secret: None,
        };
        let alive = self.nodes.iter().flatten().next().expect("a node alive");
        let boot = vec![alive.local_addr().to_string()];
        DhtNode::start(
            settings(boot, Some(public_only), Duration::from_secs(3600)),
            0,
        )
        .unwrap()
    }
}

#[test]
fn a_value_put_on_one_node_is_read_on_another_and_a_removal_sticks() {
    let key = network();
    let net = Net::new(8, &key, Duration::from_secs(3600));
    assert_eq!(net.node(3).kv_get("color").unwrap(), None);
    let seq = net.node(1).kv_put("color", b"blue", None).unwrap();
    let read = net.node(6).kv_get("color").unwrap().unwrap();
    assert_eq!((read.value.as_slice(), read.seq), (&b"blue"[..], seq));
    // The next write wins by its sequence number; a stale --cas is refused.
    let seq2 = net.node(2).kv_put("color", b"green", Some(seq)).unwrap();
    assert!(seq2 > seq);
    assert_eq!(
        net.node(5).kv_put("color", b"red", Some(seq)),
        Err(KvError::CasMismatch {
            expected: seq,
            current: Some(seq2)
        })
    );
    assert_eq!(
        net.node(7).kv_get("color").unwrap().unwrap().value,
        b"green"
    );
    // A removal is an item of its own: the key reads as missing everywhere.
    assert!(net.node(4).kv_rm("color", None).unwrap().is_some());
    assert_eq!(net.node(0).kv_get("color").unwrap(), None);
    assert_eq!(net.node(3).kv_rm("color", None).unwrap(), None);
    // Keys are any UTF-8 up to 64 bytes.
    net.node(1)
        .kv_put("ключ", "значение".as_bytes(), None)
        .unwrap();
    assert_eq!(
        net.node(2).kv_get("ключ").unwrap().unwrap().value,
        "значение".as_bytes()
    );
    assert_eq!(
        net.node(1).kv_put(&"k".repeat(65), b"v", None),
        Err(KvError::Value(ValueError::KeyTooLong(65)))
    );
}

#[test]
fn large_values_travel_in_chunks_and_too_large_ones_are_refused() {
    let key = network();
    let net = Net::new(6, &key, Duration::from_secs(3600));
    let value: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    net.node(1).kv_put("big", &value, None).unwrap();
    assert_eq!(net.node(4).kv_get("big").unwrap().unwrap().value, value);
    assert_eq!(
        net.node(1)
            .kv_put("huge", &vec![1; value::MAX_VALUE + 1], None),
        Err(KvError::Value(ValueError::ValueTooLarge(
            value::MAX_VALUE + 1
        )))
    );
}

#[test]
fn a_node_with_only_the_networks_id_reads_but_cannot_write() {
    let key = network();
    let net = Net::new(5, &key, Duration::from_secs(3600));
    net.node(1).kv_put("fruit", b"apple", None).unwrap();
    let reader = net.reader(&key);
    assert_eq!(reader.kv_get("fruit").unwrap().unwrap().value, b"apple");
    assert_eq!(
        reader.kv_put("fruit", b"pear", None),
        Err(KvError::ReadOnly)
    );
    assert_eq!(reader.kv_rm("fruit", None), Err(KvError::ReadOnly));
    // Another network's key writes items nobody reading this network sees.
    let other = network();
    let outsider = DhtNode::start(
        settings(
            vec![net.node(0).local_addr().to_string()],
            Some(other),
            Duration::from_secs(3600),
        ),
        0,
    )
    .unwrap();
    outsider.kv_put("fruit", b"poison", None).unwrap();
    assert_eq!(
        net.node(3).kv_get("fruit").unwrap().unwrap().value,
        b"apple"
    );
}

#[test]
fn nodes_keep_what_is_stored_at_them_and_a_value_outlives_its_writer() {
    let key = network();
    let mut net = Net::new(12, &key, Duration::from_secs(2));
    let value = vec![9u8; 5000];
    net.node(0).kv_put("animal", b"tiger", None).unwrap();
    net.node(0).kv_put("long", &value, None).unwrap();
    // The put reached the nodes closest to the key, and each kept a copy (read from
    // the crate's request, which the filter sees).
    let keeping = net
        .nodes
        .iter()
        .flatten()
        .skip(1)
        .filter(|n| n.held_counts().0 > 0)
        .count();
    assert!(keeping >= 3, "{keeping} nodes keep the item");
    // The writer and a third of the others go; the rest put what they hold again.
    for i in [0, 2, 5, 8] {
        net.nodes[i].take().unwrap().stop();
    }
    std::thread::sleep(Duration::from_secs(4));
    let late = net.reader(&key);
    assert_eq!(late.kv_get("animal").unwrap().unwrap().value, b"tiger");
    assert_eq!(late.kv_get("long").unwrap().unwrap().value, value);
}

#[test]
fn announced_hashes_are_found_and_withdrawn_ones_are_not_announced_again() {
    let key = network();
    let net = Net::new(6, &key, Duration::from_secs(3600));
    let hash = [42u8; 20];
    let set: std::collections::HashSet<[u8; 20]> = [hash].into();
    net.node(2).announce_set(&set, 4242);
    let mut found = Vec::new();
    for _ in 0..50 {
        found = net.node(5).peers(hash, 10);
        if !found.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].port(), 4242);
    net.node(2).announce_set(&Default::default(), 4242);
    assert_eq!(net.node(2).held_counts().2, 0);
}
