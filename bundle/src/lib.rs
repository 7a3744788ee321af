//! The Oxen boot bundle: one cpio archive in the "newc" format that carries
//! dom0's kernel, the domU images and the domain configurations.
//!
//! Three programs share this crate. The host tool `xtask` writes a bundle with
//! [`Builder`] (feature `std`); the hypervisor, which runs without a heap at
//! that point, validates the whole bundle once with [`Archive::parse`] and logs
//! its entries; dom0 later reads the same bytes with the same reader. The
//! reader is `no_std`, allocation-free and free of `unsafe`, and it treats its
//! input as hostile: every length is checked before use and no input can make
//! it panic or overflow.
//!
//! # Wire format
//!
//! Each entry is a 110-byte ASCII header (a 6-byte magic, then 13 fields of 8
//! hex digits: `ino mode uid gid nlink mtime filesize devmajor devminor
//! rdevmajor rdevminor namesize check`), the NUL-terminated name (`namesize`
//! counts the NUL) padded with zeros to a 4-byte boundary, then `filesize`
//! bytes of data padded the same way. Magic `070701` is plain newc; `070702`
//! is newc with a checksum, where `check` is the 32-bit wrapping sum of the
//! data bytes. The entry named `TRAILER!!!` ends the archive; whatever follows
//! it (usually zeros up to a 512-byte block) is ignored.
//!
//! `format.rs` holds the constants and the rules shared by both directions,
//! `reader.rs` the validating reader, `writer.rs` the host-side writer and
//! `error.rs` the reader's error type.
#![no_std]

#[cfg(any(test, feature = "std"))]
extern crate std;

mod error;
mod format;
mod reader;
#[cfg(feature = "std")]
mod writer;

#[cfg(test)]
mod tests;

pub use error::BundleError;
pub use format::{
    BLOCK_LEN, HEADER_LEN, MAGIC_CRC, MAGIC_NEWC, MAX_ENTRIES, MODE_DIR, MODE_FILE, MODE_PERM_MASK,
    MODE_TYPE_MASK, TRAILER_NAME,
};
pub use reader::{Archive, Entries, Entry};
#[cfg(feature = "std")]
pub use writer::{BuildError, Builder};
