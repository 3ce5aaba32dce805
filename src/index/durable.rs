//! The index's durable state: SQLite in WAL mode, written by one thread that commits
//! whatever has queued in one transaction (group commit).
//!
//! Reads never come here: the index serves them from memory ([`super::store`]). Every
//! change to the store is also sent here, in the order the store applied it (the
//! service sends while it holds the store's write lock), and the service answers `ok`
//! only after the transaction holding the change has committed with
//! `synchronous=FULL`, so an acknowledged change survives kill -9 and power loss.
//!
//! Threads: `index-db` owns the connection. Lease deadlines are not stored: a peer
//! restored from disk gets one fresh lease period to come back.
//!
//! Schema (readable with the sqlite3 command):
//!
//! ```sql
//! CREATE TABLE peers (id TEXT PRIMARY KEY, host TEXT NOT NULL, port INTEGER NOT NULL,
//!                     kind TEXT NOT NULL CHECK (kind IN ('modern', 'classic')),
//!                     name TEXT);  -- the name it goes by; NULL: its id
//! ```
//!
//! ```sql
//! CREATE TABLE files (peer TEXT NOT NULL REFERENCES peers(id) ON DELETE CASCADE,
//!                     name TEXT NOT NULL, size INTEGER,
//!                     content_id TEXT,  -- the piece-list digest
//!                     sha1 TEXT,        -- the whole-file SHA-1 the peer claims; NULL: none
//!                     PRIMARY KEY (peer, name)) WITHOUT ROWID;
//! ```
//!
//! The schema version is in `meta` (`key = 'schema'`). Opening an older database
//! brings it up to date in one transaction, step by step: version 1 had no
//! `peers.name` (the column is added); version 2 named the columns `content_id` (then
//! the whole-file SHA-1, the id of that protocol) and `digest` (the piece-list digest,
//! the id now): `digest` is renamed `sha1` and the two values swapped, so every entry
//! keeps both hashes under their new meaning.

use super::store::{Endpoint, FileMeta, PeerKind};
use crate::protocol::hash::Sha1Digest;
use crossbeam_channel::{Receiver, Sender};
use rusqlite::{params, Connection, OptionalExtension};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;

/// Most changes committed in one transaction.
const MAX_GROUP: usize = 8192;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS peers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('modern', 'classic')),
    name TEXT
);
CREATE TABLE IF NOT EXISTS files (
    peer TEXT NOT NULL REFERENCES peers(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    size INTEGER,
    content_id TEXT,
    sha1 TEXT,
    PRIMARY KEY (peer, name)
) WITHOUT ROWID;
";

const SCHEMA_VERSION: &str = "3";

/// The steps from each older schema version to the next.
const MIGRATIONS: &[(&str, &str, &str)] = &[
    ("1", "2", "ALTER TABLE peers ADD COLUMN name TEXT;"),
    // SQLite computes every right-hand side from the row as it was: a swap.
    (
        "2",
        "3",
        "ALTER TABLE files RENAME COLUMN digest TO sha1;
         UPDATE files SET content_id = sha1, sha1 = content_id;",
    ),
];

/// One change to the index's state.
#[derive(Clone, Debug)]
pub enum Change {
    Peer {
        id: String,
        /// The name it goes by.
        name: String,
        endpoint: Endpoint,
        kind: PeerKind,
    },
    Publish {
        peer: String,
        files: Vec<(String, FileMeta)>,
    },
    Withdraw {
        peer: String,
        names: Vec<String>,
    },
    RemovePeer {
        peer: String,
    },
}

#[derive(Debug)]
pub struct DbError(String);

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DbError {}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError(e.to_string())
    }
}

/// One row read back from the database at start.
#[derive(Clone, Debug)]
pub enum Restored {
    Peer {
        id: String,
        name: String,
        endpoint: Endpoint,
        kind: PeerKind,
    },
    /// A file of a peer already restored.
    File {
        peer: String,
        name: String,
        meta: FileMeta,
    },
}

type Ack = Sender<Result<(), String>>;

/// The error of the last group commit, if it failed (shared with the writer).
type Failing = Arc<Mutex<Option<String>>>;

/// The handle the service uses to log changes.
pub struct Durable {
    tx: Sender<(Change, Option<Ack>)>,
    failing: Failing,
}

/// A change on its way to disk; `wait` returns once it is committed.
pub struct Ticket(Receiver<Result<(), String>>);

impl Ticket {
    pub fn wait(self) -> Result<(), String> {
        self.0
            .recv()
            .unwrap_or_else(|_| Err("the database writer stopped".into()))
    }
}

fn kind_text(k: PeerKind) -> &'static str {
    match k {
        PeerKind::Modern => "modern",
        PeerKind::Classic => "classic",
    }
}

fn hash_text(h: Option<Sha1Digest>) -> Option<String> {
    h.map(|d| d.to_string())
}

fn open_connection(path: &Path) -> Result<Connection, DbError> {
    let mut conn = Connection::open(path)
        .map_err(|e| DbError(format!("cannot open {}: {e}", path.display())))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.execute_batch(SCHEMA)?;
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// Brings the schema to [`SCHEMA_VERSION`], all steps in one transaction taken before
/// the version is read: a crash leaves the old version whole, and a second process
/// opening the same file waits, then finds nothing left to do.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), DbError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: Option<String> = tx
        .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(mut version) = version else {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
            [SCHEMA_VERSION],
        )?;
        return Ok(tx.commit()?);
    };
    let found = version.clone();
    while version != SCHEMA_VERSION {
        let Some((_, next, step)) = MIGRATIONS.iter().find(|(from, _, _)| *from == version) else {
            return Err(DbError(format!(
                "{} has schema version {found}; this build reads version {SCHEMA_VERSION}",
                path.display()
            )));
        };
        tx.execute_batch(step)?;
        version = (*next).to_owned();
    }
    if found != SCHEMA_VERSION {
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'schema'",
            [SCHEMA_VERSION],
        )?;
        log::info!(
            "{}: schema version {found} brought up to {SCHEMA_VERSION}",
            path.display()
        );
    }
    Ok(tx.commit()?)
}

/// Streams the database's rows to `sink`: every peer first, then every file (grouped
/// by peer, the table's key order). Nothing is buffered, so loading a million entries
/// needs no more memory than the store they go into.
fn load(conn: &Connection, sink: &mut dyn FnMut(Restored)) -> Result<(), DbError> {
    let mut stmt = conn.prepare("SELECT id, host, port, kind, name FROM peers")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        let host: String = r.get(1)?;
        let port: i64 = r.get(2)?;
        let kind: String = r.get(3)?;
        let name: Option<String> = r.get(4)?;
        let (Ok(host), Ok(port)) = (host.parse(), u16::try_from(port)) else {
            log::warn!("database: skipping peer '{id}' with a bad address");
            continue;
        };
        let kind = if kind == "classic" {
            PeerKind::Classic
        } else {
            PeerKind::Modern
        };
        sink(Restored::Peer {
            name: name.unwrap_or_else(|| id.clone()),
            id,
            endpoint: Endpoint { host, port },
            kind,
        });
    }
    let mut stmt = conn.prepare("SELECT peer, name, size, content_id, sha1 FROM files")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let size: Option<i64> = r.get(2)?;
        let id: Option<String> = r.get(3)?;
        let sha1: Option<String> = r.get(4)?;
        sink(Restored::File {
            peer: r.get(0)?,
            name: r.get(1)?,
            meta: FileMeta {
                size: size.and_then(|s| u64::try_from(s).ok()),
                id: id.and_then(|t| Sha1Digest::parse(&t).ok()),
                sha1: sha1.and_then(|t| Sha1Digest::parse(&t).ok()),
            },
        });
    }
    Ok(())
}

fn apply(tx: &rusqlite::Transaction<'_>, change: &Change) -> rusqlite::Result<()> {
    match change {
        Change::Peer {
            id,
            name,
            endpoint,
            kind,
        } => {
            tx.prepare_cached(
                "INSERT INTO peers (id, host, port, kind, name) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO UPDATE SET host = excluded.host, port = excluded.port,
                     kind = excluded.kind, name = excluded.name",
            )?
            .execute(params![
                id,
                endpoint.host.to_string(),
                endpoint.port,
                kind_text(*kind),
                name
            ])?;
        }
        Change::Publish { peer, files } => {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO files (peer, name, size, content_id, sha1) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(peer, name) DO UPDATE SET size = excluded.size,
                     content_id = excluded.content_id, sha1 = excluded.sha1",
            )?;
            for (name, meta) in files {
                stmt.execute(params![
                    peer,
                    name,
                    meta.size.map(|s| s as i64),
                    hash_text(meta.id),
                    hash_text(meta.sha1)
                ])?;
            }
        }
        Change::Withdraw { peer, names } => {
            let mut stmt = tx.prepare_cached("DELETE FROM files WHERE peer = ?1 AND name = ?2")?;
            for name in names {
                stmt.execute(params![peer, name])?;
            }
        }
        Change::RemovePeer { peer } => {
            tx.prepare_cached("DELETE FROM peers WHERE id = ?1")?
                .execute(params![peer])?;
        }
    }
    Ok(())
}

/// Applies one change inside the group's transaction, under a savepoint: a change that
/// fails is undone alone, and the others of its group are still committed.
fn apply_alone(tx: &rusqlite::Transaction<'_>, change: &Change) -> Result<(), String> {
    tx.execute_batch("SAVEPOINT change")
        .map_err(|e| format!("database: {e}"))?;
    match apply(tx, change) {
        Ok(()) => tx
            .execute_batch("RELEASE change")
            .map_err(|e| format!("database: {e}")),
        Err(e) => {
            let _ = tx.execute_batch("ROLLBACK TO change; RELEASE change");
            Err(format!("database: {e}"))
        }
    }
}

fn writer(mut conn: Connection, rx: Receiver<(Change, Option<Ack>)>, failing: Failing) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let outcomes = (|| -> Result<Vec<Result<(), String>>, String> {
            let tx = conn.transaction().map_err(|e| format!("database: {e}"))?;
            let outcomes = group.iter().map(|(c, _)| apply_alone(&tx, c)).collect();
            tx.commit().map_err(|e| format!("database: {e}"))?;
            Ok(outcomes)
        })()
        .unwrap_or_else(|e| vec![Err(e); group.len()]);
        let first_error = outcomes.iter().find_map(|o| o.as_ref().err()).cloned();
        if let Some(e) = &first_error {
            let failed = outcomes.iter().filter(|o| o.is_err()).count();
            log::error!("{e} ({failed} of {} changes not saved)", group.len());
        }
        *failing.lock().unwrap_or_else(|e| e.into_inner()) = first_error;
        for ((_, ack), outcome) in group.into_iter().zip(outcomes) {
            if let Some(ack) = ack {
                let _ = ack.send(outcome);
            }
        }
    }
}

impl Durable {
    /// Opens (or creates) the database, streams what it holds to `sink`, and starts the
    /// writer.
    pub fn open(path: &Path, sink: &mut dyn FnMut(Restored)) -> Result<Durable, DbError> {
        let conn = open_connection(path)?;
        load(&conn, sink)?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let failing = Failing::default();
        let writer_failing = failing.clone();
        thread::Builder::new()
            .name("index-db".into())
            .spawn(move || writer(conn, rx, writer_failing))
            .map_err(|e| DbError(format!("cannot start the database writer: {e}")))?;
        Ok(Durable { tx, failing })
    }

    /// Why the last commit failed, while the database is failing; `None` when the last
    /// commit went through.
    pub fn failing(&self) -> Option<String> {
        self.failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Queues a change; the ticket resolves when it is committed.
    pub fn log(&self, change: Change) -> Ticket {
        let (ack, done) = crossbeam_channel::bounded(1);
        if let Err(e) = self.tx.send((change, Some(ack))) {
            let (ack, done) = crossbeam_channel::bounded(1);
            let _ = ack.send(Err(format!("the database writer stopped ({e})")));
            return Ticket(done);
        }
        Ticket(done)
    }

    /// Queues a change nobody waits for (lease expiry).
    pub fn log_quietly(&self, change: Change) {
        let _ = self.tx.send((change, None));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(n: u8) -> FileMeta {
        FileMeta {
            size: Some(u64::from(n)),
            id: Some(Sha1Digest::of(&[n])),
            sha1: (n % 2 == 1).then(|| Sha1Digest::of(&[n, n])),
        }
    }

    type Peers = Vec<(String, PeerKind)>;
    type Files = Vec<(String, String, FileMeta)>;

    /// Reads a database back as (peers, files), sorted.
    fn read_back(path: &Path) -> (Durable, Peers, Files) {
        let mut peers = Vec::new();
        let mut files = Vec::new();
        let db = Durable::open(path, &mut |r| match r {
            Restored::Peer { id, kind, .. } => peers.push((id, kind)),
            Restored::File { peer, name, meta } => files.push((peer, name, meta)),
        })
        .unwrap();
        peers.sort_by(|a, b| a.0.cmp(&b.0));
        files.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        (db, peers, files)
    }

    #[test]
    fn a_change_that_fails_does_not_take_its_group_down() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        let conn = open_connection(&path).unwrap();
        conn.execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON files WHEN NEW.name = 'poison'
             BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END;",
        )
        .unwrap();
        let ep = Endpoint {
            host: "127.0.0.1".parse().unwrap(),
            port: 1,
        };
        // Queued before the writer runs, so all five are one group.
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut tickets = Vec::new();
        let publish = |name: &str| Change::Publish {
            peer: "p".into(),
            files: vec![(name.into(), meta(1))],
        };
        for change in [
            Change::Peer {
                id: "p".into(),
                name: "p".into(),
                endpoint: ep,
                kind: PeerKind::Modern,
            },
            publish("a"),
            publish("poison"),
            publish("b"),
        ] {
            let (ack, done) = crossbeam_channel::bounded(1);
            tx.send((change, Some(ack))).unwrap();
            tickets.push(Ticket(done));
        }
        drop(tx);
        let failing = Failing::default();
        writer(conn, rx, failing.clone());
        let outcomes: Vec<bool> = tickets.into_iter().map(|t| t.wait().is_ok()).collect();
        assert_eq!(outcomes, vec![true, true, false, true]);
        let why = failing.lock().unwrap().clone().unwrap();
        assert!(why.contains("refused by a trigger"), "{why}");
        let (_, _, files) = read_back(&path);
        let names: Vec<&str> = files.iter().map(|f| f.1.as_str()).collect();
        assert_eq!(names, vec!["a", "b"]);
    }

    #[test]
    fn changes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        let ep = Endpoint {
            host: "127.0.0.1".parse().unwrap(),
            port: 1025,
        };
        {
            let (db, peers, _) = read_back(&path);
            assert!(peers.is_empty());
            db.log(Change::Peer {
                id: "p1".into(),
                name: "p1".into(),
                endpoint: ep,
                kind: PeerKind::Modern,
            })
            .wait()
            .unwrap();
            db.log(Change::Peer {
                id: "p2".into(),
                name: "p2".into(),
                endpoint: ep,
                kind: PeerKind::Classic,
            })
            .wait()
            .unwrap();
            db.log(Change::Publish {
                peer: "p1".into(),
                files: vec![
                    ("a".into(), meta(1)),
                    ("b".into(), meta(2)),
                    ("c".into(), meta(3)),
                ],
            })
            .wait()
            .unwrap();
            db.log(Change::Publish {
                peer: "p2".into(),
                files: vec![("x".into(), FileMeta::UNKNOWN)],
            })
            .wait()
            .unwrap();
            db.log(Change::Withdraw {
                peer: "p1".into(),
                names: vec!["b".into()],
            })
            .wait()
            .unwrap();
            db.log(Change::Publish {
                peer: "p1".into(),
                files: vec![("a".into(), meta(9))],
            })
            .wait()
            .unwrap();
        }
        let (db, peers, files) = read_back(&path);
        assert_eq!(
            peers,
            vec![
                ("p1".into(), PeerKind::Modern),
                ("p2".into(), PeerKind::Classic)
            ]
        );
        assert_eq!(
            files,
            vec![
                ("p1".into(), "a".into(), meta(9)),
                ("p1".into(), "c".into(), meta(3)),
                ("p2".into(), "x".into(), FileMeta::UNKNOWN),
            ]
        );
        db.log(Change::RemovePeer { peer: "p1".into() })
            .wait()
            .unwrap();
        drop(db);
        let (_, peers, files) = read_back(&path);
        assert_eq!(peers.len(), 1);
        assert_eq!(files.len(), 1, "files of a removed peer go with it");
    }

    /// A database as schema version `version` (1 or 2) left it: one modern peer with
    /// two files (content ids then the whole-file SHA-1, digests the piece list) and
    /// one classic peer's file.
    fn old_database(path: &Path, version: &str) {
        let conn = Connection::open(path).unwrap();
        let name_column = if version == "1" { "" } else { ", name TEXT" };
        conn.execute_batch(&format!(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO meta VALUES ('schema', '{version}');
             CREATE TABLE peers (id TEXT PRIMARY KEY, host TEXT NOT NULL,
                 port INTEGER NOT NULL,
                 kind TEXT NOT NULL CHECK (kind IN ('modern', 'classic')){name_column});
             CREATE TABLE files (peer TEXT NOT NULL REFERENCES peers(id) ON DELETE CASCADE,
                 name TEXT NOT NULL, size INTEGER, content_id TEXT, digest TEXT,
                 PRIMARY KEY (peer, name)) WITHOUT ROWID;
             INSERT INTO peers (id, host, port, kind) VALUES ('p1', '127.0.0.1', 1025, 'modern');
             INSERT INTO peers (id, host, port, kind) VALUES ('c1', '127.0.0.1', 2000, 'classic');"
        ))
        .unwrap();
        for (name, n) in [("a", 1u8), ("b", 2)] {
            conn.execute(
                "INSERT INTO files VALUES ('p1', ?1, ?2, ?3, ?4)",
                params![
                    name,
                    i64::from(n),
                    Sha1Digest::of(&[n, n]).to_string(),
                    Sha1Digest::of(&[n]).to_string()
                ],
            )
            .unwrap();
        }
        conn.execute("INSERT INTO files VALUES ('c1', 'x', NULL, NULL, NULL)", [])
            .unwrap();
    }

    #[test]
    fn an_older_database_keeps_both_hashes_under_their_new_names() {
        for version in ["1", "2"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("index.db");
            old_database(&path, version);
            let both = |n: u8| FileMeta {
                size: Some(u64::from(n)),
                id: Some(Sha1Digest::of(&[n])),
                sha1: Some(Sha1Digest::of(&[n, n])),
            };
            let expected: Files = vec![
                ("c1".into(), "x".into(), FileMeta::UNKNOWN),
                ("p1".into(), "a".into(), both(1)),
                ("p1".into(), "b".into(), both(2)),
            ];
            let (db, peers, files) = read_back(&path);
            assert_eq!(peers.len(), 2, "version {version}");
            assert_eq!(files, expected, "version {version}");
            // Written after the migration, read back as written...
            db.log(Change::Publish {
                peer: "p1".into(),
                files: vec![("c".into(), meta(2))],
            })
            .wait()
            .unwrap();
            drop(db);
            // ...and opening it again migrates nothing twice.
            let (_, _, files) = read_back(&path);
            assert_eq!(files.len(), 4);
            assert_eq!(files[1..3], expected[1..3], "version {version}");
            assert_eq!(files[3].2, meta(2));
            let conn = Connection::open(&path).unwrap();
            let schema: String = conn
                .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(schema, SCHEMA_VERSION);
        }
    }

    #[test]
    fn a_database_of_a_later_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        drop(open_connection(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute("UPDATE meta SET value = '9' WHERE key = 'schema'", [])
            .unwrap();
        let err = open_connection(&path).err().unwrap().to_string();
        assert!(err.contains("schema version 9"), "{err}");
    }
}
