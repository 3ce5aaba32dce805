//! The one error a command ends with, and the exit code it maps to.

use crate::net::NetError;
use crate::peer::download::DownloadError;
use std::fmt;

/// How a command failed, which decides its exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// It could not do what was asked (a node unreachable, a download failed, an
    /// unhealthy node for `status`): exit code 1.
    Failed,
    /// The arguments were wrong: exit code 2.
    Usage,
    /// Stopped by Ctrl-C or SIGTERM with its work kept for later: exit code 130.
    Interrupted,
}

/// A command's failure: what to tell the user, and how it maps to an exit code.
#[derive(Debug)]
pub struct CmdError {
    pub kind: ErrorKind,
    pub message: String,
    /// Already printed on stdout as JSON (so `--json` does not print it twice).
    pub reported: bool,
}

impl CmdError {
    pub fn failed(message: impl Into<String>) -> CmdError {
        CmdError {
            kind: ErrorKind::Failed,
            message: message.into(),
            reported: false,
        }
    }

    pub fn usage(message: impl Into<String>) -> CmdError {
        CmdError {
            kind: ErrorKind::Usage,
            message: message.into(),
            reported: false,
        }
    }

    pub fn interrupted(message: impl Into<String>) -> CmdError {
        CmdError {
            kind: ErrorKind::Interrupted,
            message: message.into(),
            reported: false,
        }
    }

    /// Marks the failure as already shown on stdout (as JSON).
    pub fn reported(mut self) -> CmdError {
        self.reported = true;
        self
    }

    pub fn exit_code(&self) -> u8 {
        match self.kind {
            ErrorKind::Failed => 1,
            ErrorKind::Usage => 2,
            ErrorKind::Interrupted => 130,
        }
    }
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CmdError {}

impl From<NetError> for CmdError {
    fn from(e: NetError) -> CmdError {
        CmdError::failed(e.to_string())
    }
}

impl From<DownloadError> for CmdError {
    fn from(e: DownloadError) -> CmdError {
        match e {
            DownloadError::Cancelled => CmdError::interrupted(e.to_string()),
            e => CmdError::failed(e.to_string()),
        }
    }
}

impl From<std::io::Error> for CmdError {
    fn from(e: std::io::Error) -> CmdError {
        CmdError::failed(e.to_string())
    }
}

impl From<crate::cli::resolve::ArgError> for CmdError {
    fn from(e: crate::cli::resolve::ArgError) -> CmdError {
        use crate::cli::resolve::ArgError;
        match e {
            ArgError::Usage(m) => CmdError::usage(m),
            ArgError::Unreadable(m) => CmdError::failed(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_documented_exit_code() {
        assert_eq!(CmdError::failed("x").exit_code(), 1);
        assert_eq!(CmdError::usage("x").exit_code(), 2);
        assert_eq!(CmdError::interrupted("x").exit_code(), 130);
        assert_eq!(CmdError::from(DownloadError::Cancelled).exit_code(), 130);
    }
}
