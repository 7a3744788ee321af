//! The host-side bundle writer (feature `std`), used by `xtask` to pack dom0's
//! kernel, the domU images and the domain configurations.
//!
//! [`Builder`] writes `070702` entries (newc with checksums) and applies the
//! same name rules as the reader (`format.rs`), and refuses anything else the
//! reader would refuse (duplicates, too many entries, sizes beyond the 32-bit
//! header fields), so every archive it finishes parses.

use std::collections::BTreeSet;
use std::fmt;
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use crate::format::{
    ALIGN, BLOCK_LEN, HEADER_LEN, MAGIC_CRC, MAX_ENTRIES, MODE_DIR, MODE_FILE, MODE_PERM_MASK, TRAILER_NAME,
    check_name, checksum,
};

/// Permissions given to directories made by [`Builder::add_dir`].
const DIR_PERM: u32 = 0o755;

/// Writes a bundle in memory, one entry at a time.
#[derive(Clone, Debug, Default)]
pub struct Builder {
    /// The archive so far, without the trailer.
    out: Vec<u8>,
    /// Names already added, to refuse duplicates.
    names: BTreeSet<String>,
}

/// Why [`Builder`] refused an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The name is not a safe relative path, or is the trailer's name.
    BadName {
        /// The refused name.
        name: String,
        /// What is wrong, a phrase completing "the name ...".
        reason: &'static str,
    },
    /// An entry of that name was already added.
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// The data does not fit the 32-bit `filesize` field.
    TooLarge {
        /// The entry's name.
        name: String,
        /// Its size in bytes.
        size: usize,
    },
    /// The mode has bits outside [`MODE_PERM_MASK`].
    BadMode {
        /// The entry's name.
        name: String,
        /// The refused mode.
        mode: u32,
    },
    /// The archive already holds [`MAX_ENTRIES`] entries.
    TooManyEntries {
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadName { name, reason } => write!(
                f,
                "cannot add '{}' to the bundle: the name {reason}",
                name.escape_debug()
            ),
            Self::DuplicateName { name } => write!(
                f,
                "cannot add '{}' to the bundle: it already has an entry of that name",
                name.escape_debug()
            ),
            Self::TooLarge { name, size } => write!(
                f,
                "cannot add '{}' to the bundle: {size} bytes is more than a cpio \
                 entry can hold ({} bytes)",
                name.escape_debug(),
                u32::MAX
            ),
            Self::BadMode { name, mode } => write!(
                f,
                "cannot add '{}' to the bundle: mode {mode:#o} has bits outside \
                 the permission bits {MODE_PERM_MASK:#o}",
                name.escape_debug()
            ),
            Self::TooManyEntries { limit } => {
                write!(f, "cannot add more than {limit} entries to the bundle")
            }
        }
    }
}

impl std::error::Error for BuildError {}

impl Builder {
    /// An empty bundle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a regular file; `mode_perm` holds only permission bits (such as
    /// `0o644`), the file-type bits are added here.
    pub fn add_file(&mut self, name: &str, mode_perm: u32, data: &[u8]) -> Result<&mut Self, BuildError> {
        if mode_perm & !MODE_PERM_MASK != 0 {
            return Err(BuildError::BadMode {
                name: name.to_string(),
                mode: mode_perm,
            });
        }
        self.add(name, MODE_FILE | mode_perm, 1, data)
    }

    /// Adds a directory with permissions `0o755`.
    pub fn add_dir(&mut self, name: &str) -> Result<&mut Self, BuildError> {
        self.add(name, MODE_DIR | DIR_PERM, 2, &[])
    }

    /// Appends the trailer, pads to a multiple of [`BLOCK_LEN`] bytes, and
    /// returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        write_entry(&mut self.out, 0, 0, 1, TRAILER_NAME, &[]);
        let padded = self.out.len().next_multiple_of(BLOCK_LEN);
        self.out.resize(padded, 0);
        self.out
    }

    /// Checks and appends one entry.
    fn add(&mut self, name: &str, mode: u32, nlink: u32, data: &[u8]) -> Result<&mut Self, BuildError> {
        if let Err(reason) = check_name(name) {
            return Err(BuildError::BadName {
                name: name.to_string(),
                reason,
            });
        }
        if name == TRAILER_NAME {
            return Err(BuildError::BadName {
                name: name.to_string(),
                reason: "is reserved for the archive trailer",
            });
        }
        if !u32::try_from(name.len()).is_ok_and(|len| len < u32::MAX) {
            return Err(BuildError::BadName {
                name: name.to_string(),
                reason: "is longer than a cpio header can describe",
            });
        }
        if self.names.contains(name) {
            return Err(BuildError::DuplicateName {
                name: name.to_string(),
            });
        }
        if self.names.len() >= MAX_ENTRIES {
            return Err(BuildError::TooManyEntries { limit: MAX_ENTRIES });
        }
        if u32::try_from(data.len()).is_err() {
            return Err(BuildError::TooLarge {
                name: name.to_string(),
                size: data.len(),
            });
        }
        // Inode numbers start at 1 (the trailer has 0, as in GNU cpio); the
        // count is bounded by MAX_ENTRIES so it fits.
        let ino = u32::try_from(self.names.len())
            .ok()
            .and_then(|n| n.checked_add(1))
            .ok_or(BuildError::TooManyEntries { limit: MAX_ENTRIES })?;
        write_entry(&mut self.out, ino, mode, nlink, name, data);
        self.names.insert(name.to_string());
        Ok(self)
    }
}

/// Appends one `070702` entry; the caller has checked that `data.len()` fits
/// in 32 bits. Owner, times and devices are zero so builds are reproducible.
fn write_entry(out: &mut Vec<u8>, ino: u32, mode: u32, nlink: u32, name: &str, data: &[u8]) {
    // `Builder::add` checked that both lengths fit the header fields; the
    // trailer's are constants. Saturate rather than panic regardless.
    let filesize = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let namesize = u32::try_from(name.len().saturating_add(1)).unwrap_or(u32::MAX);
    let (uid, gid, mtime, dev) = (0u32, 0u32, 0u32, 0u32);
    let header = format!(
        "{ino:08X}{mode:08X}{uid:08X}{gid:08X}{nlink:08X}{mtime:08X}{filesize:08X}\
         {dev:08X}{dev:08X}{dev:08X}{dev:08X}{namesize:08X}{:08X}",
        checksum(data)
    );
    out.extend_from_slice(MAGIC_CRC);
    out.extend_from_slice(header.as_bytes());
    debug_assert_eq!(header.len() + MAGIC_CRC.len(), HEADER_LEN);
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad(out);
    out.extend_from_slice(data);
    pad(out);
}

/// Pads `out` with zeros to the next multiple of [`ALIGN`].
fn pad(out: &mut Vec<u8>) {
    let padded = out.len().next_multiple_of(ALIGN);
    out.resize(padded, 0);
}
