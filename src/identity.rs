//! Node identities: an Ed25519 key pair per node, and the id derived from it.
//!
//! A node id on the wire is its public key, written in lowercase base32 without padding
//! (52 characters, as Syncthing and onion addresses do): whoever knows an id can check
//! a signature by it without asking anyone. A human name (a folder name, `--id`, a host
//! name) travels beside the id and may repeat; the id never does.
//!
//! Everything signed is domain-separated and length-prefixed ([`signed_bytes`]), so a
//! signature made for one purpose (a `hello`, a broadcast, an incarnation) can never be
//! replayed as another. Verification uses `verify_strict`, which refuses the malleable
//! and small-order forms a lenient check would accept.

use crate::protocol::name::PeerId;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use std::fmt;
use std::io::Write;
use std::path::Path;

/// The name of a peer's key file in its state dir.
pub const KEY_FILE: &str = "node.key";

/// Length of a node id: 32 bytes in base32.
pub const ID_LEN: usize = 52;

/// What a signature is for; part of the signed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// The server's half of `hello`: it signs the client's nonce.
    HelloServer,
    /// The client's half (`auth`): it signs the server's nonce.
    HelloClient,
    /// A broadcast, signed by its origin.
    Gossip,
    /// "I am alive at this incarnation, under this name", signed by the member.
    Incarnation,
}

impl Domain {
    fn tag(self) -> &'static [u8] {
        match self {
            Domain::HelloServer => b"hello-server",
            Domain::HelloClient => b"hello-client",
            Domain::Gossip => b"gossip",
            Domain::Incarnation => b"incarnation",
        }
    }
}

/// The bytes a signature covers: a fixed prefix, the domain, then every field with its
/// length (4 bytes, big-endian) before it, so no two field lists give the same bytes.
pub fn signed_bytes(domain: Domain, fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + fields.iter().map(|f| f.len() + 4).sum::<usize>());
    out.extend_from_slice(b"p2pshare/1\0");
    out.extend_from_slice(domain.tag());
    out.push(0);
    for f in fields {
        out.extend_from_slice(&(f.len() as u32).to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// An Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sig(pub [u8; 64]);

impl Sig {
    /// A signature of all zeros: verifies for nobody (a placeholder for "unsigned").
    pub const NONE: Sig = Sig([0; 64]);

    /// 128 hex digits, either case.
    pub fn parse(text: &str) -> Option<Sig> {
        let bytes = hex_decode(text)?;
        Some(Sig(bytes.try_into().ok()?))
    }

    pub fn hex(&self) -> String {
        hex_encode(&self.0)
    }
}

impl fmt::Debug for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sig({}..)", &self.hex()[..8])
    }
}

impl fmt::Display for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

/// A node's key pair and the id derived from it.
#[derive(Clone)]
pub struct NodeKey {
    signing: SigningKey,
    id: PeerId,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey({})", self.id)
    }
}

/// Why a key file could not be used.
#[derive(Debug)]
pub enum KeyError {
    Io(std::io::Error),
    /// The file is readable or writable by others than its owner.
    Exposed {
        mode: u32,
    },
    Malformed,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Io(e) => write!(f, "{e}"),
            KeyError::Exposed { mode } => write!(
                f,
                "it is accessible to others (mode {mode:o}); a private key must be the owner's \
                 alone: chmod 600 it"
            ),
            KeyError::Malformed => {
                f.write_str("it is not a p2pshare key file (64 hex digits on one line)")
            }
        }
    }
}

impl std::error::Error for KeyError {}

impl From<std::io::Error> for KeyError {
    fn from(e: std::io::Error) -> Self {
        KeyError::Io(e)
    }
}

impl NodeKey {
    /// A new random key.
    pub fn generate() -> NodeKey {
        NodeKey::from_seed(SigningKey::generate(&mut rand::rngs::OsRng).to_bytes())
    }

    /// The key whose 32-byte secret is `seed`.
    pub fn from_seed(seed: [u8; 32]) -> NodeKey {
        let signing = SigningKey::from_bytes(&seed);
        let id = id_of(&signing.verifying_key());
        NodeKey { signing, id }
    }

    /// A fixed key derived from a name, for tests and the simulator (never for a real
    /// node: anyone can derive it).
    pub fn for_test(name: &str) -> NodeKey {
        let digest = crate::protocol::hash::Sha1Digest::of(name.as_bytes());
        let mut seed = [0u8; 32];
        seed[..20].copy_from_slice(&digest.0);
        NodeKey::from_seed(seed)
    }

    /// The key in `path`, created (owner-only, written whole before it appears) when
    /// the file does not exist. The flag is true when it was created now.
    pub fn load_or_create(path: &Path) -> Result<(NodeKey, bool), KeyError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                check_private(path)?;
                let seed = hex_decode(text.trim()).ok_or(KeyError::Malformed)?;
                let seed: [u8; 32] = seed.try_into().map_err(|_| KeyError::Malformed)?;
                Ok((NodeKey::from_seed(seed), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = NodeKey::generate();
                write_private(path, &format!("{}\n", hex_encode(&key.signing.to_bytes())))?;
                Ok((key, true))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The key in `path`, which must exist (a network key is made on purpose, by
    /// `p2pshare keygen --network`, never on first use).
    pub fn load(path: &Path) -> Result<NodeKey, KeyError> {
        let text = std::fs::read_to_string(path)?;
        check_private(path)?;
        let seed = hex_decode(text.trim()).ok_or(KeyError::Malformed)?;
        let seed: [u8; 32] = seed.try_into().map_err(|_| KeyError::Malformed)?;
        Ok(NodeKey::from_seed(seed))
    }

    /// A new key written to `path` (owner-only); fails when the file exists.
    pub fn create(path: &Path) -> Result<NodeKey, KeyError> {
        if path.exists() {
            return Err(KeyError::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the file exists",
            )));
        }
        let key = NodeKey::generate();
        write_private(path, &format!("{}\n", hex_encode(&key.signing.to_bytes())))?;
        Ok(key)
    }

    /// The 32-byte secret, for a signer that takes raw Ed25519 keys (the DHT's BEP 44
    /// items). Never written anywhere but the owner-only key file.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The 32-byte public key.
    pub fn public_bytes(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    pub fn id(&self) -> &PeerId {
        &self.id
    }

    pub fn sign(&self, domain: Domain, fields: &[&[u8]]) -> Sig {
        Sig(self.signing.sign(&signed_bytes(domain, fields)).to_bytes())
    }
}

/// Whether `sig` is `id`'s signature of `fields` for `domain`. False for an id that is
/// not a key.
pub fn verify(id: &PeerId, domain: Domain, fields: &[&[u8]], sig: &Sig) -> bool {
    let Some(key) = public_key(id) else {
        return false;
    };
    let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
    key.verify_strict(&signed_bytes(domain, fields), &sig)
        .is_ok()
}

/// The public key an id spells, if it spells one.
pub fn public_key(id: &PeerId) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = base32_decode(id.as_str())?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// Whether `text` is a node id (a public key in canonical base32).
pub fn is_node_id(text: &str) -> bool {
    text.len() == ID_LEN && PeerId::parse(text).is_ok_and(|id| public_key(&id).is_some())
}

/// The first 8 characters of an id: enough to tell nodes apart on a screen.
pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn id_of(key: &VerifyingKey) -> PeerId {
    PeerId::parse(&base32_encode(key.as_bytes())).expect("base32 is a valid peer id")
}

/// A fresh random nonce for a `hello`: 16 bytes in hex.
pub fn nonce() -> String {
    let bytes: [u8; 16] = rand::random();
    hex_encode(&bytes)
}

/// A nonce as a `hello` carries it: 32 to 64 hex digits.
pub fn is_nonce(text: &str) -> bool {
    (32..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Lowercase base32 without padding; only the canonical spelling is accepted.
fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    (base32_encode(&out) == text).then_some(out)
}

fn hex_encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed { mode });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), KeyError> {
    Ok(())
}

/// Writes a file only its owner can read, whole, then renames it into place (it never
/// replaces a key that appeared meanwhile).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|_| file.sync_all());
    let placed = written.and_then(|_| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    placed?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_52_base32_characters_that_round_trip_to_the_key() {
        let key = NodeKey::for_test("a");
        let id = key.id().as_str();
        assert_eq!(id.len(), ID_LEN);
        assert!(is_node_id(id));
        assert_eq!(public_key(key.id()).unwrap(), key.signing.verifying_key());
        // Not canonical: upper case, a changed final character's unused bits, a length.
        assert!(!is_node_id(&id.to_uppercase()));
        assert!(!is_node_id(&id[..51]));
        assert!(!is_node_id("peer1"));
        assert_eq!(base32_encode(b"foobar"), "mzxw6ytboi");
        assert_eq!(base32_decode("mzxw6ytboi").unwrap(), b"foobar");
        assert!(base32_decode("mzxw6ytboj").is_none());
    }

    #[test]
    fn a_signature_verifies_only_for_its_key_domain_and_fields() {
        let a = NodeKey::for_test("a");
        let b = NodeKey::for_test("b");
        let sig = a.sign(Domain::Gossip, &[b"x", b"yz"]);
        assert!(verify(a.id(), Domain::Gossip, &[b"x", b"yz"], &sig));
        assert!(!verify(b.id(), Domain::Gossip, &[b"x", b"yz"], &sig));
        assert!(!verify(a.id(), Domain::Incarnation, &[b"x", b"yz"], &sig));
        // The length prefixes keep "x|yz" and "xy|z" apart.
        assert!(!verify(a.id(), Domain::Gossip, &[b"xy", b"z"], &sig));
        assert!(!verify(a.id(), Domain::Gossip, &[b"x", b"yz"], &Sig::NONE));
        assert_eq!(Sig::parse(&sig.hex()), Some(sig));
        assert_eq!(Sig::parse("00"), None);
    }

    #[test]
    fn a_key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/node.key");
        let (made, created) = NodeKey::load_or_create(&path).unwrap();
        assert!(created);
        let (again, created) = NodeKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(made.id(), again.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = NodeKey::load_or_create(&path).unwrap_err().to_string();
            assert!(err.contains("chmod 600"), "{err}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        std::fs::write(&path, "nonsense\n").unwrap();
        assert!(matches!(
            NodeKey::load_or_create(&path),
            Err(KeyError::Malformed)
        ));
    }
}
