//! The `p2pshare` binary: parse the command line, start logging, run one command, and
//! turn the result into an exit code. Everything else lives in the library.

use clap::{CommandFactory, Parser};
use p2pshare::cli::{layers, Cli};
use p2pshare::cmd;
use p2pshare::output::LogWriter;
use serde_json::json;
use std::process::ExitCode;

/// Logs with `filter` (from -q, -v and the command), unless RUST_LOG says otherwise.
fn init_logging(filter: &str) {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(filter))
        .format_timestamp_millis()
        .target(env_logger::Target::Pipe(Box::new(LogWriter::default())))
        .init();
}

/// Parses the command line with the environment and the configuration file merged in
/// (see `cli::layers`); on a usage error, says where a flag the user did not type came
/// from.
fn parse_command_line() -> Result<Cli, ExitCode> {
    let argv = std::env::args_os().collect();
    let merged =
        layers::merge(&Cli::command(), argv, &|name| std::env::var_os(name)).map_err(|e| {
            eprintln!("p2pshare: {e}");
            ExitCode::from(2)
        })?;
    Cli::try_parse_from(&merged.argv).map_err(|e| {
        let _ = e.print();
        if let Some(note) = merged.explain(&e.to_string()) {
            eprintln!("{note}");
        }
        ExitCode::from(e.exit_code().clamp(0, 255) as u8)
    })
}

fn main() -> ExitCode {
    let cli = match parse_command_line() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_logging(&cli.log_filter());
    let json = cli.command.prints_json();
    match cmd::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json && !e.reported {
                println!(
                    "{}",
                    json!({ "error": e.message, "exit_code": e.exit_code() })
                );
            }
            if !e.message.is_empty() {
                eprintln!("p2pshare: {}", e.message);
            }
            ExitCode::from(e.exit_code())
        }
    }
}
