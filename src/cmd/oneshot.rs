//! The one-shot commands for people and scripts: `search`, `get`, `status`, `say`,
//! `members`. Each prints a table or text for people, or one JSON object with
//! `--json`; results are rendered by [`crate::render`].

use super::CmdError;
use crate::cli::{GetArgs, IdArgs, MembersArgs, SayArgs, SearchArgs, StatusArgs};
use crate::console::BarProgress;
use crate::net::client::Client;
use crate::net::rate::TokenBucket;
use crate::net::Timeouts;
use crate::overlay::wire;
use crate::peer::download::{
    self, ContentIdArg, DownloadError, DownloadOutcome, DownloadRequest, KeptNotes, Progress,
};
use crate::peer::finder::{DhtUse, Finder, LazyDht};
use crate::peer::pool::IndexPool;
use crate::protocol::hash::Sha1Digest;
use crate::protocol::name::FileName;
use crate::render;
use crate::signals;
use serde_json::json;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub fn search(a: SearchArgs) -> Result<(), CmdError> {
    let pool = IndexPool::new(a.index.addrs()?, a.index.timeouts());
    let words = a.words.join(" ");
    let (found, more) = pool.search(&words, a.limit as usize)?;
    if a.json {
        println!("{}", render::search_json(&found, more));
        return Ok(());
    }
    for line in render::search_table(&found, more, &words) {
        println!("{line}");
    }
    Ok(())
}

pub fn get(a: GetArgs) -> Result<(), CmdError> {
    let cancel = cancel_on_signal()?;
    let name =
        FileName::parse(&a.name).map_err(|e| CmdError::failed(format!("'{}': {e}", a.name)))?;
    let id_arg = a
        .content_id
        .as_deref()
        .map(ContentIdArg::parse)
        .transpose()
        .map_err(|e| CmdError::usage(format!("--id: {e}")))?;
    let pool = IndexPool::new(a.index.addrs()?, a.index.timeouts());
    let self_id = format!("get-{}", std::process::id());
    let finder = Finder {
        dht: match a.dht.client_settings(&a.seeds.addrs()?)? {
            // With no node to start from, there is nothing to ask.
            Some(s) if s.public || !s.bootstrap.is_empty() => {
                DhtUse::Fallback(Arc::new(LazyDht::new(s)))
            }
            _ if a.no_index => {
                return Err(CmdError::usage(
                    "--no-index finds holders on the DHT, which needs a node to start from:                      list seeds (config/seeds.txt, --seed) or give --dht-bootstrap HOST:PORT",
                ))
            }
            _ => DhtUse::Off,
        },
        no_index: a.no_index,
        self_id: self_id.clone(),
        timeouts: a.index.timeouts(),
    };
    let id = match &id_arg {
        Some(arg) => Some(content_id(&pool, &finder, &name, arg)?),
        None => None,
    };
    let made = TempFolders::make(&a.dir)?;
    let dir = match a.dir.canonicalize() {
        Ok(dir) => dir,
        Err(e) => {
            made.remove_empty();
            return Err(CmdError::failed(format!("{}: {e}", a.dir.display())));
        }
    };
    let state_dir = a.state_dir.clone().unwrap_or_else(|| dir.join(".p2pshare"));
    let made = made.with_state(&state_dir);
    let req = DownloadRequest {
        name: name.clone(),
        id,
        dest_dir: &dir,
        state_dir: &state_dir,
        existing: None,
        self_id: &self_id,
        timeouts: a.index.timeouts(),
        max_sources: a.transfer.max_sources as usize,
        download_limit: a
            .transfer
            .max_download_rate
            .map(|r| Arc::new(TokenBucket::new(r))),
        allow_unverified: a.allow_unverified,
        max_unverified_size: a.transfer.max_unverified_size,
        verify_sha1: a.verify_sha1,
        direct_io: !a.transfer.page_cache,
    };
    let bar = BarProgress::new();
    let notes = KeptNotes::default();
    let progress: &dyn Progress = if a.json { &notes } else { &bar };
    let result = download::download(&pool, &finder, &req, progress, &cancel);
    // Folders this command made and left empty go again, whatever the outcome: a
    // failed get leaves no trace, a finished one no empty state folders.
    made.remove_empty();
    let outcome = match result {
        Err(DownloadError::Cancelled) => {
            return Err(CmdError::interrupted(format!(
                "stopped; what was downloaded is kept in {}: the same command resumes it",
                state_dir.display()
            )))
        }
        Err(e @ DownloadError::NotFound { .. }) => {
            let hint = render::case_hint(&pool.other_cases(name.as_str()))
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            return Err(CmdError::failed(format!("{e}{hint}")));
        }
        Err(
            e @ (DownloadError::Disagree { .. }
            | DownloadError::Unverified(_)
            | DownloadError::Sha1Mismatch { .. }),
        ) => return Err(refused(&e, a.json)),
        other => other?,
    };
    print_outcome(&outcome, a.json, &notes);
    Ok(())
}

/// The content id `--id` names: a full one as it is, a short one looked up among the
/// holders of the name.
fn content_id(
    pool: &IndexPool,
    finder: &Finder,
    name: &FileName,
    arg: &ContentIdArg,
) -> Result<Sha1Digest, CmdError> {
    let holders = match arg {
        ContentIdArg::Full(_) => Vec::new(),
        ContentIdArg::Short(_) => finder.holders(pool, name, None)?,
    };
    arg.resolve(&holders)
        .map_err(|e| CmdError::failed(format!("--id: '{name}': {e}")))
}

/// A download refused for the user to decide: the holders disagree on the content
/// (the choices, and how to pick one), or only classic holders had it (where the
/// bytes are, and how to accept them). With `--json`, one error object that carries
/// the choices or the quarantined file.
fn refused(e: &DownloadError, json: bool) -> CmdError {
    let (hint, extra) = match e {
        DownloadError::Disagree { name, choices } => (
            format!(
                "pick one by its id: p2pshare get {name} --id ID, where ID is one of the \
                 ids listed (the 12-digit short form is enough)"
            ),
            ("choices", render::content_choices_json(choices)),
        ),
        DownloadError::Unverified(q) => (
            "to place it in the folder anyway, run the same command with \
             --allow-unverified (it downloads it again), or check that file and move it \
             yourself"
                .to_owned(),
            (
                "quarantined",
                json!({
                    "path": q.path,
                    "id": q.id.to_string(),
                    "sha1": q.sha1.map(|d| d.to_string()),
                    "size": q.size,
                    "source": q.source,
                }),
            ),
        ),
        DownloadError::Sha1Mismatch {
            claimed, computed, ..
        } => (
            "the content is what its id says; it is the holders' SHA-1 that is wrong. \
             Run without --verify-sha1 to take it anyway"
                .to_owned(),
            (
                "sha1_mismatch",
                json!({ "claimed": claimed.to_string(), "computed": computed.to_string() }),
            ),
        ),
        _ => return CmdError::failed(e.to_string()),
    };
    if json {
        let mut v = json!({ "error": format!("{e}; {hint}"), "exit_code": 1 });
        v[extra.0] = extra.1;
        println!("{v}");
        return CmdError::failed(format!("{e}; {hint}")).reported();
    }
    let mut lines = vec![e.to_string()];
    if let DownloadError::Disagree { choices, .. } = e {
        lines.extend(render::content_choices(choices));
    }
    lines.push(hint);
    CmdError::failed(lines.join("\n"))
}

/// The first Ctrl-C (or SIGTERM) sets the returned flag, which stops the download
/// cleanly, recording what is on disk so the same command resumes it; a second one ends
/// the process at once.
fn cancel_on_signal() -> Result<Arc<AtomicBool>, CmdError> {
    let signals = signals::take_over()?;
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    std::thread::Builder::new()
        .name("get-signals".into())
        .spawn(move || {
            if signals.recv().is_ok() {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                if signals.recv().is_ok() {
                    std::process::exit(130);
                }
            }
        })?;
    Ok(cancel)
}

/// Prints how a `get` ended, as text or JSON.
fn print_outcome(outcome: &DownloadOutcome, json: bool, notes: &KeptNotes) {
    match outcome {
        DownloadOutcome::Downloaded(done) => {
            if json {
                println!(
                    "{}",
                    json!({
                        "status": "downloaded",
                        "path": done.path,
                        "size": done.hashes.size,
                        "id": done.hashes.id.to_string(),
                        "sha1": done.hashes.sha1.map(|d| d.to_string()),
                        "verified_in_advance": done.verified_in_advance,
                        "sources": done.sources,
                        "seconds": done.elapsed.as_secs_f64(),
                        "resumed_bytes": done.resumed_bytes,
                        "bytes_per_second": done.rate(),
                        "notes": notes.take(),
                    })
                );
            } else {
                println!(
                    "{}",
                    render::downloaded(&done.path.display().to_string(), done, false)
                );
            }
        }
        DownloadOutcome::AlreadyHave { path, id } => {
            if json {
                println!(
                    "{}",
                    json!({ "status": "already-have", "path": path, "id": id.to_string() })
                );
            } else {
                println!("already have {} ({id})", path.display());
            }
        }
    }
}

/// The folders a one-shot `get` created (the destination, its state folder), so that
/// what is left empty at the end can go again.
struct TempFolders(Vec<std::path::PathBuf>);

impl TempFolders {
    /// Creates `dir` (and its parents) if needed, remembering what did not exist.
    fn make(dir: &Path) -> Result<TempFolders, CmdError> {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => return Ok(TempFolders(Vec::new())),
            Ok(_) => {
                return Err(CmdError::usage(format!(
                    "--dir {}: not a folder (it is a file)",
                    dir.display()
                )))
            }
            Err(_) => {}
        }
        let mut missing = Vec::new();
        let mut p = Some(dir);
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            missing.push(d.to_path_buf());
            p = d.parent();
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| CmdError::failed(format!("--dir {}: {e}", dir.display())))?;
        Ok(TempFolders(missing))
    }

    /// Adds the state folder and its `partial` folder, when the download creates them.
    fn with_state(mut self, state_dir: &Path) -> TempFolders {
        if !state_dir.exists() {
            self.0.insert(0, state_dir.to_path_buf());
        }
        let partial = state_dir.join("partial");
        if !partial.exists() {
            self.0.insert(0, partial);
        }
        self
    }

    /// Removes each remembered folder that is empty, innermost first (a folder with
    /// anything in it, such as a partial kept for a resume, stays).
    fn remove_empty(&self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// `p2pshare id`: the node's id on stdout (alone, for scripts), its key created when
/// there is none yet.
pub fn id(a: IdArgs) -> Result<(), CmdError> {
    let path = a.key_path();
    let (key, created) = crate::identity::NodeKey::load_or_create(&path)
        .map_err(|e| CmdError::failed(format!("key {}: {e}", path.display())))?;
    if a.json {
        let v = json!({
            "id": key.id().as_str(),
            "key_file": path.display().to_string(),
            "created": created,
        });
        println!("{v}");
    } else {
        if created {
            eprintln!("created a new key in {}", path.display());
        }
        println!("{}", key.id());
    }
    Ok(())
}

pub fn status(a: StatusArgs) -> Result<(), CmdError> {
    let t = Timeouts {
        connect: a.timeout,
        io: a.timeout,
    };
    let rows = match Client::connect(a.addr.as_str(), &t).and_then(|mut c| c.status()) {
        Ok(rows) => rows,
        Err(e) => {
            if a.json {
                println!(
                    "{}",
                    json!({ "address": a.addr.as_str(), "healthy": false, "error": e.to_string() })
                );
            }
            let e = CmdError::from(e);
            return Err(if a.json { e.reported() } else { e });
        }
    };
    let healthy = rows.iter().any(|(k, v)| k == "health" && v == "ok");
    if a.json {
        println!(
            "{}",
            json!({ "address": a.addr.as_str(), "healthy": healthy, "status": render::status_json(&rows) })
        );
    } else {
        for line in render::status_text(&rows) {
            println!("{line}");
        }
    }
    if healthy {
        return Ok(());
    }
    let why = rows
        .iter()
        .find(|(k, _)| k == "failing")
        .map(|(_, v)| format!(": {v}"))
        .unwrap_or_default();
    let e = CmdError::failed(format!("{} is not healthy{why}", a.addr));
    Err(if a.json { e.reported() } else { e })
}

pub fn say(a: SayArgs) -> Result<(), CmdError> {
    let text = a.text.join(" ");
    if text.len() > wire::MAX_TEXT {
        return Err(CmdError::usage(format!(
            "the text is over {} bytes",
            wire::MAX_TEXT
        )));
    }
    let t = Timeouts {
        connect: a.timeout,
        io: a.timeout,
    };
    let fields = Client::connect(a.peer.as_str(), &t)
        .and_then(|mut c| c.call(&["say", &wire::escape_text(&text)]))?;
    let id = fields.first().cloned().unwrap_or_default();
    if a.json {
        println!("{}", json!({ "peer": a.peer.as_str(), "id": id }));
    } else {
        println!("sent through {} as {id}", a.peer);
    }
    Ok(())
}

pub fn members(a: MembersArgs) -> Result<(), CmdError> {
    let t = Timeouts {
        connect: a.timeout,
        io: a.timeout,
    };
    let (_, rows) = Client::connect(a.addr.as_str(), &t).and_then(|mut c| {
        c.send(b"members\n", "members")?;
        c.read_rows("members", 8)
    })?;
    if a.json {
        println!("{}", render::members_json(a.addr.as_str(), &rows));
        return Ok(());
    }
    if rows.is_empty() {
        println!("{} knows no members", a.addr);
        return Ok(());
    }
    for line in render::members_table(&rows) {
        println!("{line}");
    }
    Ok(())
}
