//! Why a boot bundle was refused: the error type of the reader (`reader.rs`).
//!
//! Errors borrow entry names from the bundle itself, so they cost nothing to
//! build without a heap. Their `Display` sentences name the entry or offset and
//! what is wrong, ready for the hypervisor's boot log; names are printed with
//! control characters escaped.

use core::fmt;

use crate::format::TRAILER_NAME;

/// Why [`Archive::parse`](crate::Archive::parse) refused a bundle.
///
/// Every `offset` is the byte offset, from the start of the bundle, of the
/// header of the entry at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BundleError<'a> {
    /// The bundle has no bytes at all.
    Empty,
    /// A header does not start with `070701` or `070702`.
    BadMagic {
        /// Offset of the header.
        offset: usize,
    },
    /// A numeric header field is not 8 ASCII hex digits.
    BadHeaderField {
        /// Offset of the header.
        offset: usize,
        /// Name of the field, such as `"filesize"`.
        field: &'static str,
    },
    /// The bundle ends inside a header, a name, or an entry's data.
    Truncated {
        /// Offset of the header.
        offset: usize,
        /// The entry whose data is cut short; `None` when the header or the
        /// name itself is.
        entry: Option<&'a str>,
    },
    /// An entry name is not valid UTF-8.
    NameNotUtf8 {
        /// Offset of the header.
        offset: usize,
    },
    /// An entry name does not end with the NUL that `namesize` counts.
    NameNotTerminated {
        /// Offset of the header.
        offset: usize,
    },
    /// An entry name is not a safe relative path.
    BadName {
        /// Offset of the header.
        offset: usize,
        /// The refused name.
        name: &'a str,
        /// What is wrong, a phrase completing "the name ...".
        reason: &'static str,
    },
    /// A `070702` entry's data does not add up to its `check` field.
    ChecksumMismatch {
        /// The corrupt entry.
        name: &'a str,
        /// The checksum in the header.
        expected: u32,
        /// The sum of the data actually present.
        actual: u32,
    },
    /// The bundle ends (or only zeros follow) before a `TRAILER!!!` entry.
    MissingTrailer,
    /// Two entries have the same name.
    DuplicateName {
        /// Offset of the header of the second entry.
        offset: usize,
        /// The repeated name.
        name: &'a str,
    },
    /// The bundle holds more than [`MAX_ENTRIES`](crate::MAX_ENTRIES) entries.
    TooManyEntries {
        /// The limit that was exceeded.
        limit: usize,
    },
}

impl fmt::Display for BundleError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Empty => f.write_str("the boot bundle is empty"),
            Self::BadMagic { offset } => write!(
                f,
                "bundle entry header at offset {offset:#x} is corrupt: \
                 it does not start with the cpio newc magic 070701 or 070702"
            ),
            Self::BadHeaderField { offset, field } => write!(
                f,
                "bundle entry header at offset {offset:#x} is corrupt: \
                 its '{field}' field is not 8 hex digits"
            ),
            Self::Truncated {
                offset,
                entry: Some(name),
            } => write!(
                f,
                "bundle entry '{}' (header at offset {offset:#x}) is truncated: \
                 its data runs past the end of the bundle",
                name.escape_debug()
            ),
            Self::Truncated { offset, entry: None } => write!(
                f,
                "the boot bundle is truncated: the entry header or name at \
                 offset {offset:#x} runs past its end"
            ),
            Self::NameNotUtf8 { offset } => write!(
                f,
                "bundle entry at offset {offset:#x} is corrupt: its name is not UTF-8"
            ),
            Self::NameNotTerminated { offset } => write!(
                f,
                "bundle entry at offset {offset:#x} is corrupt: \
                 its name does not end with a NUL byte"
            ),
            Self::BadName { offset, name, reason } => write!(
                f,
                "bundle entry '{}' (offset {offset:#x}) is refused: the name {reason}",
                name.escape_debug()
            ),
            Self::ChecksumMismatch {
                name,
                expected,
                actual,
            } => write!(
                f,
                "bundle entry '{}' is corrupt: checksum {expected:#010x} expected, \
                 {actual:#010x} found",
                name.escape_debug()
            ),
            Self::MissingTrailer => write!(
                f,
                "the boot bundle has no '{TRAILER_NAME}' entry: it is truncated \
                 or not a cpio archive"
            ),
            Self::DuplicateName { offset, name } => write!(
                f,
                "bundle entry '{}' (offset {offset:#x}) is refused: \
                 an earlier entry has the same name",
                name.escape_debug()
            ),
            Self::TooManyEntries { limit } => {
                write!(f, "the boot bundle has more than {limit} entries")
            }
        }
    }
}

impl core::error::Error for BundleError<'_> {}
