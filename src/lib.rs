//! p2pshare: a peer-to-peer file-sharing network over raw TCP.
//!
//! The crate has two kinds of code, kept apart:
//!
//! * **Cores without I/O**: the wire codec ([`protocol`]), the index store and search
//!   ([`index::store`]), the catalog of shared files ([`peer::catalog::Catalog`]), the
//!   download plan and source policy ([`peer::plan`], [`peer::download`]'s policy) and
//!   the overlay's cores ([`overlay`]). They take explicit time and return what to
//!   send; they never touch a socket, a clock or a thread.
//! * **A threaded runtime**: std::net listeners with one named thread per connection
//!   ([`net`]), the index service, the peer's server, index links, downloads, the
//!   overlay's links, and the console.
//!
//! And it has layers: a module imports only from the layers below its own (the
//! [`LAYERS`] table, checked by a test), so nothing depends on what depends on it.
//! Only the commands ([`cmd`]) and the console print to the user; everything else logs.

pub mod bench;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod console;
pub mod dht;
pub mod eventlog;
pub mod http;
pub mod identity;
pub mod index;
pub mod metrics;
pub mod net;
pub mod output;
pub mod overlay;
pub mod peer;
pub mod protocol;
pub mod render;
pub mod signals;
pub mod units;

/// The crate's top-level modules by layer, lowest first. A module may import from the
/// layers below its own, never from its own layer or above: the wire protocol knows
/// nothing of networking, networking nothing of the roles, the index and the overlay
/// nothing of each other or of the peer, and no role knows how its results are shown.
pub const LAYERS: &[&[&str]] = &[
    // Values, text and time: no knowledge of any role. The process-wide metrics too:
    // every layer counts into them.
    &[
        "protocol", "clock", "config", "units", "output", "signals", "metrics",
    ],
    // Keys and signatures: values and the key file.
    &["identity"],
    &["eventlog"],
    // Sockets: servers, clients, rate limits.
    &["net"],
    // The roles' own logic, and the DHT that seeds and peers run.
    &["index", "overlay", "dht"],
    &["peer"],
    // How results are shown.
    &["render", "bench"],
    // The HTTP interface to every role.
    &["http"],
    // The command line that configures the roles.
    &["cli"],
    &["console"],
    // What each subcommand does (main.rs calls it).
    &["cmd"],
];

#[cfg(test)]
mod tests {
    use super::LAYERS;
    use std::path::Path;

    fn layer_of(module: &str) -> usize {
        LAYERS
            .iter()
            .position(|l| l.contains(&module))
            .unwrap_or_else(|| panic!("module '{module}' is in no layer of LAYERS"))
    }

    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn no_module_imports_from_its_own_layer_or_above() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let mut wrong = Vec::new();
        for file in files {
            let rel = file.strip_prefix(&src).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_str()
                .unwrap();
            let top = top.trim_end_matches(".rs");
            if top == "lib" || top == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for (at, _) in code.match_indices("crate::") {
                    let rest = &code[at + "crate::".len()..];
                    assert!(
                        !rest.starts_with('{'),
                        "{}:{}: name each module in its own path",
                        rel.display(),
                        n + 1
                    );
                    let used: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if used != top && layer_of(&used) >= layer_of(top) {
                        wrong.push(format!("{}:{}: {top} -> {used}", rel.display(), n + 1));
                    }
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "imports against the layers:\n{}",
            wrong.join("\n")
        );
    }
}
