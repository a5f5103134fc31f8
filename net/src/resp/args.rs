//! [`Args`]: the arguments of one parsed RESP command, borrowed from the
//! receive buffer whenever the wire bytes are the argument bytes (always for
//! arrays of bulk strings; for inline commands unless quoting or escapes
//! changed them).

use std::borrow::Cow;

/// The arguments of one command, the command name first. Empty for the
/// commands Redis silently skips (`*0`, `*-1`, an empty inline line): the
/// server consumes them and answers nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Args<'a> {
    items: Vec<Cow<'a, [u8]>>,
}

impl<'a> Args<'a> {
    /// Builds arguments from parts (tests, and callers that synthesise
    /// commands).
    #[must_use]
    pub fn from_parts(items: Vec<Cow<'a, [u8]>>) -> Self {
        Args { items }
    }

    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Args {
            items: Vec::with_capacity(capacity),
        }
    }

    pub(crate) fn push(&mut self, arg: Cow<'a, [u8]>) {
        self.items.push(arg);
    }

    /// Number of arguments, the command name included.
    #[must_use]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there is nothing to execute (a skipped empty command).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Argument `i` (0 is the command name), if present.
    #[must_use]
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.items.get(i).map(|a| &**a)
    }

    /// All arguments, the command name first.
    #[must_use]
    pub fn as_slice(&self) -> ArgSlice<'_> {
        ArgSlice { items: &self.items }
    }

    /// Iterates over the arguments, the command name first.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.items.iter().map(|a| &**a)
    }

    /// Whether every argument borrows the receive buffer (nothing was copied).
    #[must_use]
    pub fn is_borrowed(&self) -> bool {
        self.items.iter().all(|a| matches!(a, Cow::Borrowed(_)))
    }

    /// Copies the arguments out of the receive buffer.
    #[must_use]
    pub fn into_owned(self) -> Args<'static> {
        Args {
            items: self
                .items
                .into_iter()
                .map(|a| Cow::Owned(a.into_owned()))
                .collect(),
        }
    }
}

/// A run of consecutive arguments (the keys of MGET, the pairs of MSET...),
/// borrowed from [`Args`]. Cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgSlice<'a> {
    items: &'a [Cow<'a, [u8]>],
}

impl<'a> ArgSlice<'a> {
    /// Number of arguments in the run.
    #[must_use]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the run is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Argument `i` of the run, if present.
    #[must_use]
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        self.items.get(i).map(|a| &**a)
    }

    /// The arguments from `start` on (empty if `start` is past the end).
    #[must_use]
    pub fn skip(&self, start: usize) -> ArgSlice<'a> {
        ArgSlice {
            items: self.items.get(start..).unwrap_or(&[]),
        }
    }

    /// Iterates over the arguments.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        self.items.iter().map(|a| &**a)
    }

    /// Iterates over consecutive pairs (key, value); a trailing odd argument
    /// is not yielded (callers check parity first, as MSET does).
    pub fn pairs(&self) -> impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])> + 'a {
        self.items.chunks_exact(2).map(|p| (&*p[0], &*p[1]))
    }
}
