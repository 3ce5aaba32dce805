//! What each subcommand does, from its parsed arguments to a result: the roles
//! ([`roles`]), the one-shot commands ([`oneshot`], and [`upload`]) and the
//! benchmarks ([`bench`]).
//! `main.rs` parses, starts logging, calls [`run`], and turns a [`CmdError`] into an
//! exit code.

mod bench;
mod error;
mod kv;
mod oneshot;
mod roles;
mod upload;

pub use error::{CmdError, ErrorKind};

use crate::cli::{manual, BenchCommand, Command, KvCommand};

/// Runs one command to its end.
pub fn run(command: Command) -> Result<(), CmdError> {
    match command {
        Command::Index(a) => roles::index(a),
        Command::Seed(a) => roles::seed(a),
        Command::Peer(a) => roles::peer(*a),
        Command::Say(a) => oneshot::say(a),
        Command::Members(a) => oneshot::members(a),
        Command::Search(a) => oneshot::search(a),
        Command::Get(a) => oneshot::get(a),
        Command::Upload(a) => upload::upload(a),
        Command::Status(a) => oneshot::status(a),
        Command::Id(a) => oneshot::id(a),
        Command::Keygen(a) => kv::keygen(a),
        Command::Kv(KvCommand::Put(a)) => kv::put(a),
        Command::Kv(KvCommand::Get(a)) => kv::get(a),
        Command::Kv(KvCommand::Rm(a)) => kv::rm(a),
        Command::Bench(BenchCommand::Index(a)) => bench::index(a),
        Command::Bench(BenchCommand::Overlay(a)) => bench::overlay(a),
        Command::Bench(BenchCommand::Dht(a)) => bench::dht(a),
        Command::Completions(a) => print_document(&manual::completions(a.shell)),
        Command::Man => print_document(manual::man_page().as_bytes()),
    }
}

/// Writes a generated document to stdout; a reader that stops early (`| head`) is not
/// a failure.
fn print_document(bytes: &[u8]) -> Result<(), CmdError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
