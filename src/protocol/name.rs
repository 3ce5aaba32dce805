//! Validated names: file names and peer ids.
//!
//! A name is validated wherever it enters (wire, console, folder scan), so code that
//! holds a [`FileName`] or a [`PeerId`] never has to check it again. A file name can
//! never address anything but one entry at the top of a shared folder.

use std::fmt;

/// Longest file name, in bytes (the common file-system limit).
pub const MAX_NAME_LEN: usize = 255;

/// Longest peer id, in bytes.
pub const MAX_PEER_ID_LEN: usize = 64;

/// Why a name was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong {
        len: usize,
        max: usize,
    },
    /// Names starting with `.` (including `.` and `..`) are never shared.
    LeadingDot,
    /// A forbidden character: `/`, `\`, `|` or a control character.
    BadChar(char),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("name is empty"),
            NameError::TooLong { len, max } => {
                write!(f, "name is {len} bytes, at most {max} allowed")
            }
            NameError::LeadingDot => {
                f.write_str("name starts with '.' (dotfiles are never shared)")
            }
            NameError::BadChar(c) => write!(f, "name contains forbidden character {c:?}"),
        }
    }
}

impl std::error::Error for NameError {}

fn check(text: &str, max: usize) -> Result<(), NameError> {
    if text.is_empty() {
        return Err(NameError::Empty);
    }
    if text.len() > max {
        return Err(NameError::TooLong {
            len: text.len(),
            max,
        });
    }
    if text.starts_with('.') {
        return Err(NameError::LeadingDot);
    }
    if let Some(c) = text
        .chars()
        .find(|&c| c == '/' || c == '\\' || c == '|' || c.is_control())
    {
        return Err(NameError::BadChar(c));
    }
    Ok(())
}

/// A plain file name: one entry at the top of a shared folder.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileName(String);

impl FileName {
    pub fn parse(text: &str) -> Result<FileName, NameError> {
        check(text, MAX_NAME_LEN)?;
        Ok(FileName(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A peer's id, chosen by the peer (default: its folder's name).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(String);

impl PeerId {
    pub fn parse(text: &str) -> Result<PeerId, NameError> {
        check(text, MAX_PEER_ID_LEN)?;
        Ok(PeerId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass() {
        for ok in ["onekb.txt", "a", "Ünïcode файл.bin", "with space", "x..y"] {
            assert_eq!(FileName::parse(ok).unwrap().as_str(), ok);
        }
        assert!(FileName::parse(&"n".repeat(255)).is_ok());
    }

    #[test]
    fn traversal_and_separators_are_refused() {
        assert_eq!(FileName::parse(""), Err(NameError::Empty));
        assert_eq!(FileName::parse("."), Err(NameError::LeadingDot));
        assert_eq!(FileName::parse(".."), Err(NameError::LeadingDot));
        assert_eq!(FileName::parse(".hidden"), Err(NameError::LeadingDot));
        assert_eq!(FileName::parse("../etc/passwd"), Err(NameError::LeadingDot));
        assert_eq!(FileName::parse("a/b"), Err(NameError::BadChar('/')));
        assert_eq!(FileName::parse("a\\b"), Err(NameError::BadChar('\\')));
        assert_eq!(FileName::parse("a|b"), Err(NameError::BadChar('|')));
        assert_eq!(FileName::parse("a\nb"), Err(NameError::BadChar('\n')));
        assert_eq!(FileName::parse("a\0b"), Err(NameError::BadChar('\0')));
        assert!(matches!(
            FileName::parse(&"n".repeat(256)),
            Err(NameError::TooLong { len: 256, .. })
        ));
    }

    #[test]
    fn peer_ids_are_shorter() {
        assert!(PeerId::parse("peer1").is_ok());
        assert!(PeerId::parse(&"p".repeat(65)).is_err());
    }
}
