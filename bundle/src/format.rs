//! The newc cpio wire format: magics, header layout, mode bits, and the rules
//! both the reader (`reader.rs`) and the writer (`writer.rs`) apply, so that
//! the writer can never produce an archive the reader refuses.
//!
//! The layout follows the newc description in the Linux kernel's
//! `Documentation/driver-api/early-userspace/buffer-format.rst` and GNU cpio's
//! `copyout.c`.

/// Magic of a plain newc header (`check` is ignored).
pub const MAGIC_NEWC: &[u8; MAGIC_LEN] = b"070701";
/// Magic of a newc header whose `check` field is the sum of the data bytes.
pub const MAGIC_CRC: &[u8; MAGIC_LEN] = b"070702";
/// Length of the magic at the start of each header.
pub(crate) const MAGIC_LEN: usize = 6;
/// Length of one numeric header field: 8 ASCII hex digits.
pub(crate) const FIELD_LEN: usize = 8;
/// Names of the numeric header fields, in wire order after the magic.
pub(crate) const FIELDS: [&str; 13] = [
    "ino",
    "mode",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "filesize",
    "devmajor",
    "devminor",
    "rdevmajor",
    "rdevminor",
    "namesize",
    "check",
];
/// Index of `mode` in [`FIELDS`].
pub(crate) const FIELD_MODE: usize = 1;
/// Index of `filesize` in [`FIELDS`].
pub(crate) const FIELD_FILESIZE: usize = 6;
/// Index of `namesize` in [`FIELDS`].
pub(crate) const FIELD_NAMESIZE: usize = 11;
/// Index of `check` in [`FIELDS`].
pub(crate) const FIELD_CHECK: usize = 12;

/// Length of a newc header: the magic and 13 fields of 8 hex digits.
pub const HEADER_LEN: usize = 110;
const _: () = assert!(MAGIC_LEN + FIELDS.len() * FIELD_LEN == HEADER_LEN);

/// Name of the entry that ends an archive.
pub const TRAILER_NAME: &str = "TRAILER!!!";
/// Names and data are padded with zeros to this alignment.
pub(crate) const ALIGN: usize = 4;
/// The writer pads the finished archive to a multiple of this many bytes, as
/// GNU cpio does.
pub const BLOCK_LEN: usize = 512;
/// Most entries (the trailer not counted) an archive may hold. A boot bundle
/// carries a handful; the bound keeps the duplicate-name check, which cannot
/// allocate, cheap on hostile input.
pub const MAX_ENTRIES: usize = 1024;

/// Mask of the file-type bits of `mode` (`S_IFMT`).
pub const MODE_TYPE_MASK: u32 = 0o170_000;
/// File-type bits of a regular file (`S_IFREG`).
pub const MODE_FILE: u32 = 0o100_000;
/// File-type bits of a directory (`S_IFDIR`).
pub const MODE_DIR: u32 = 0o040_000;
/// Mask of the permission bits of `mode` (including set-id and sticky).
pub const MODE_PERM_MASK: u32 = 0o7777;

/// Decodes one header field: exactly 8 ASCII hex digits, either case.
pub(crate) fn parse_hex(field: &[u8]) -> Option<u32> {
    if field.len() != FIELD_LEN {
        return None;
    }
    field.iter().try_fold(0u32, |acc, &b| {
        let digit = char::from(b).to_digit(16)?;
        acc.checked_mul(16)?.checked_add(digit)
    })
}

/// Rounds `offset` up to the next multiple of [`ALIGN`]; `None` on overflow.
pub(crate) fn align_up(offset: usize) -> Option<usize> {
    let rem = offset % ALIGN;
    if rem == 0 {
        Some(offset)
    } else {
        offset.checked_add(ALIGN - rem)
    }
}

/// The `070702` checksum: the 32-bit wrapping sum of the data bytes.
pub(crate) fn checksum(data: &[u8]) -> u32 {
    data.iter().fold(0u32, |sum, &b| sum.wrapping_add(u32::from(b)))
}

/// Checks an entry name; the error is a phrase completing "the name ...".
///
/// Names are relative paths: not empty, not absolute, without `..` or empty
/// components (so without a trailing `/`), and without control characters
/// (the hypervisor logs names to the serial console verbatim).
pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.starts_with('/') {
        return Err("is an absolute path");
    }
    if name.chars().any(char::is_control) {
        return Err("contains a control character");
    }
    for component in name.split('/') {
        if component.is_empty() {
            return Err("has an empty path component");
        }
        if component == ".." {
            return Err("has a '..' component");
        }
    }
    Ok(())
}
