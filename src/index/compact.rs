//! The store's memory-lean building blocks: a list that needs no allocation for
//! zero or one value ([`OneOrMany`]), and a word-index key kept inline when short
//! ([`Token`]). They are why an entry costs under 200 bytes at a million entries.

use std::borrow::Borrow;

/// None, one or many values, with no allocation for the common single value.
#[derive(Clone, Debug, Default)]
pub enum OneOrMany<T> {
    #[default]
    None,
    One(T),
    Many(Vec<T>),
}

impl<T: Copy> OneOrMany<T> {
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::None => &[],
            OneOrMany::One(v) => std::slice::from_ref(v),
            OneOrMany::Many(v) => v,
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        match self {
            OneOrMany::None => &mut [],
            OneOrMany::One(v) => std::slice::from_mut(v),
            OneOrMany::Many(v) => v,
        }
    }

    pub fn push(&mut self, value: T) {
        *self = match std::mem::take(self) {
            OneOrMany::None => OneOrMany::One(value),
            OneOrMany::One(first) => OneOrMany::Many(vec![first, value]),
            OneOrMany::Many(mut v) => {
                v.push(value);
                OneOrMany::Many(v)
            }
        };
    }

    pub fn swap_remove(&mut self, index: usize) {
        *self = match std::mem::take(self) {
            OneOrMany::Many(mut v) => {
                v.swap_remove(index);
                match v.len() {
                    0 => OneOrMany::None,
                    1 => OneOrMany::One(v[0]),
                    _ => OneOrMany::Many(v),
                }
            }
            _ => OneOrMany::None,
        };
    }

    pub fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        let mut v: Vec<T> = self.as_slice().to_vec();
        v.retain(keep);
        *self = match v.len() {
            0 => OneOrMany::None,
            1 => OneOrMany::One(v[0]),
            _ => OneOrMany::Many(v),
        };
    }

    pub fn shrink_to_fit(&mut self) {
        if let OneOrMany::Many(v) = self {
            v.shrink_to_fit();
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, OneOrMany::None)
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }
}

/// A word-index key: short tokens (most of them) are stored inline.
#[derive(Clone)]
pub(super) enum Token {
    Inline { len: u8, bytes: [u8; 22] },
    Heap(Box<str>),
}

impl Token {
    pub(super) fn new(text: &str) -> Token {
        if text.len() <= 22 {
            let mut bytes = [0u8; 22];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            Token::Inline {
                len: text.len() as u8,
                bytes,
            }
        } else {
            Token::Heap(text.into())
        }
    }

    pub(super) fn as_str(&self) -> &str {
        match self {
            // SAFETY: the bytes were copied whole from a &str in `Token::new`, so they
            // are valid UTF-8. This runs on every comparison of a word lookup, which
            // is why it does not validate again.
            Token::Inline { len, bytes } => unsafe {
                std::str::from_utf8_unchecked(&bytes[..*len as usize])
            },
            Token::Heap(s) => s,
        }
    }
}

impl Borrow<str> for Token {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Token {}

impl PartialOrd for Token {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Token {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}
