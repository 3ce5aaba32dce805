//! Replays the fuzz corpora (`fuzz/corpus/<target>/`) through the same property
//! functions the fuzz targets run (`fuzz/src/lib.rs`, included here as a module), so
//! `cargo test` checks every seed and every crash found so far without libFuzzer or
//! cargo-fuzz. No process is spawned: the decoders are called in this one.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/lib.rs"]
mod checks;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn every_corpus_file_of_every_fuzz_target_passes_its_checks() {
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (target, check) in checks::TARGETS {
        let inputs = files(&corpus_dir().join(target));
        assert!(!inputs.is_empty(), "fuzz target {target} has no corpus");
        for path in inputs {
            let data = fs::read(&path).unwrap();
            if panic::catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
                failures.push(path.display().to_string());
            }
            replayed += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {replayed} corpus files failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_corpus_folder_belongs_to_a_fuzz_target() {
    for dir in fs::read_dir(corpus_dir()).unwrap() {
        let name = dir.unwrap().file_name().into_string().unwrap();
        assert!(
            checks::TARGETS.iter().any(|(t, _)| *t == name),
            "fuzz/corpus/{name} has no target in fuzz/src/lib.rs"
        );
    }
}

/// The binary seeds were written from the formats' documentation: the ones named
/// valid must still decode, or the seeds no longer reach past the header.
#[test]
fn the_valid_binary_seeds_still_decode() {
    use p2pshare::peer::download::StateRecord;
    use p2pshare::peer::hashcache::HashCache;
    let valid = |target: &str| {
        files(&corpus_dir().join(target))
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with("seed-valid-")
            })
            .map(|p| (fs::read(&p).unwrap(), p))
            .collect::<Vec<_>>()
    };
    let records = valid("state_record");
    assert!(records.len() >= 3);
    for (bytes, path) in records {
        assert!(StateRecord::decode(&bytes).is_some(), "{}", path.display());
    }
    let caches = valid("hash_cache");
    assert!(caches.len() >= 3);
    for (bytes, path) in caches {
        if let Err(e) = HashCache::decode_bytes(&bytes) {
            panic!("{}: {e}", path.display());
        }
    }
}
