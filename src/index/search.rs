//! Search queries and the tokenizer shared by the word index and the matcher.
//!
//! A name is lowercased and cut into tokens: runs of letters, runs of digits
//! (`Holiday2024.mp4` → `holiday`, `2024`, `mp4` → `mp`, `4`). A query word matches a
//! name when the lowercased name contains the word at a token start. Every word must
//! match; a `-word` must not.

use std::fmt;

/// Most words in one query.
pub const MAX_QUERY_WORDS: usize = 16;
/// Longest query, in bytes.
pub const MAX_QUERY_LEN: usize = 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Digit,
}

fn class(c: char) -> Option<Class> {
    if c.is_numeric() {
        Some(Class::Digit)
    } else if c.is_alphanumeric() {
        Some(Class::Letter)
    } else {
        None
    }
}

/// The tokens of an already lowercased text, in order.
pub fn tokens(lower: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut current: Option<(usize, Class)> = None;
    for (i, c) in lower.char_indices() {
        let k = class(c);
        if let Some((s, cls)) = current {
            if k == Some(cls) {
                continue;
            }
            out.push(&lower[s..i]);
        }
        current = k.map(|k| (i, k));
    }
    if let Some((s, _)) = current {
        out.push(&lower[s..]);
    }
    out
}

/// True when `word` (lowercased, starting with a letter or digit) occurs in `lower`
/// at a token start.
pub fn matches_word(lower: &str, word: &str) -> bool {
    let mut prev: Option<Class> = None;
    for (i, c) in lower.char_indices() {
        let k = class(c);
        if k.is_some() && k != prev && lower[i..].starts_with(word) {
            return true;
        }
        prev = k;
    }
    false
}

/// A parsed query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Words that must all match, lowercased.
    pub include: Vec<String>,
    /// Words that must not match, lowercased.
    pub exclude: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryError {
    TooLong,
    TooManyWords,
    NoWords,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::TooLong => write!(f, "query longer than {MAX_QUERY_LEN} bytes"),
            QueryError::TooManyWords => write!(f, "more than {MAX_QUERY_WORDS} words"),
            QueryError::NoWords => {
                f.write_str("a search needs at least one word with a letter or digit")
            }
        }
    }
}

impl std::error::Error for QueryError {}

impl Query {
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        if text.len() > MAX_QUERY_LEN {
            return Err(QueryError::TooLong);
        }
        let mut q = Query {
            include: Vec::new(),
            exclude: Vec::new(),
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.len() > MAX_QUERY_WORDS {
            return Err(QueryError::TooManyWords);
        }
        for raw in words {
            let (negated, body) = match raw.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, raw),
            };
            let lower = body.to_lowercase();
            let trimmed = lower.trim_matches(|c: char| class(c).is_none());
            if trimmed.is_empty() {
                continue;
            }
            if negated {
                q.exclude.push(trimmed.to_owned());
            } else {
                q.include.push(trimmed.to_owned());
            }
        }
        if q.include.is_empty() {
            return Err(QueryError::NoWords);
        }
        Ok(q)
    }

    /// True when a lowercased name satisfies the query.
    pub fn matches(&self, lower: &str) -> bool {
        self.include.iter().all(|w| matches_word(lower, w))
            && !self.exclude.iter().any(|w| matches_word(lower, w))
    }
}

/// The token an index lookup for `word` starts from: the word's first token.
pub fn lookup_token(word: &str) -> &str {
    tokens(word).into_iter().next().unwrap_or(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_on_punctuation_and_class_changes() {
        assert_eq!(
            tokens("holiday2024.mp4"),
            vec!["holiday", "2024", "mp", "4"]
        );
        assert_eq!(tokens("onekb.txt"), vec!["onekb", "txt"]);
        assert_eq!(tokens("--"), Vec::<&str>::new());
        assert_eq!(tokens("ünï-café"), vec!["ünï", "café"]);
    }

    #[test]
    fn words_match_at_token_starts_only() {
        assert!(matches_word("onekb.txt", "one"));
        assert!(matches_word("onekb.txt", "txt"));
        assert!(matches_word("onekb.txt", "onekb.txt"));
        assert!(matches_word("holiday2024.mp4", "2024"));
        assert!(matches_word("holiday2024.mp4", "holiday2024"));
        assert!(!matches_word("onekb.txt", "kb"));
        assert!(!matches_word("onekb.txt", "xt"));
    }

    #[test]
    fn queries_are_case_insensitive_with_exclusions() {
        let q = Query::parse("KB -ten").unwrap();
        assert_eq!(q.include, vec!["kb"]);
        assert_eq!(q.exclude, vec!["ten"]);
        assert!(q.matches("one kb.txt"));
        assert!(!q.matches("ten kb.txt"));
        assert_eq!(Query::parse("-only -exclusions"), Err(QueryError::NoWords));
        assert_eq!(Query::parse("  "), Err(QueryError::NoWords));
        assert_eq!(
            Query::parse(&"a ".repeat(17)),
            Err(QueryError::TooManyWords)
        );
    }
}
