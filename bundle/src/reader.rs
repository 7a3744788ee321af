//! The validating, allocation-free bundle reader used by the hypervisor and
//! dom0.
//!
//! [`Archive::parse`] walks the whole archive once and checks every header,
//! name, size and checksum, that names are unique, and that a trailer ends it;
//! afterwards [`Archive::entries`] and [`Archive::find`] cannot fail. The wire
//! rules live in `format.rs`, the error type in `error.rs`.

use core::fmt;
use core::iter::FusedIterator;

use crate::error::BundleError;
use crate::format::{
    FIELD_CHECK, FIELD_FILESIZE, FIELD_LEN, FIELD_MODE, FIELD_NAMESIZE, FIELDS, HEADER_LEN, MAGIC_CRC,
    MAGIC_LEN, MAGIC_NEWC, MAX_ENTRIES, MODE_DIR, MODE_FILE, MODE_TYPE_MASK, TRAILER_NAME, align_up,
    check_name, checksum, parse_hex,
};

/// A validated bundle: the entries before the trailer.
#[derive(Clone, Copy)]
pub struct Archive<'a> {
    /// The bundle up to (not including) the trailer's header; every entry
    /// lies inside it.
    body: &'a [u8],
    /// Number of entries in `body`.
    count: usize,
}

impl<'a> Archive<'a> {
    /// Validate the whole archive up front (every header, name, size,
    /// checksum, the trailer) so later iteration cannot fail.
    ///
    /// Bytes after the trailer are ignored. Work is linear in the size of the
    /// bundle plus quadratic in the number of entries (at most
    /// [`MAX_ENTRIES`]) for the duplicate-name check.
    pub fn parse(data: &'a [u8]) -> Result<Self, BundleError<'a>> {
        if data.is_empty() {
            return Err(BundleError::Empty);
        }
        let mut offset = 0;
        let mut count = 0;
        loop {
            let raw = read_entry(data, offset, Verify::Checksum)?;
            let body = data.get(..offset).ok_or(BundleError::MissingTrailer)?;
            if raw.is_trailer {
                return Ok(Self { body, count });
            }
            if count >= MAX_ENTRIES {
                return Err(BundleError::TooManyEntries { limit: MAX_ENTRIES });
            }
            let mut earlier = Entries {
                body,
                offset: 0,
                remaining: count,
            };
            let name = raw.entry.name;
            if earlier.any(|e| e.name == name) {
                return Err(BundleError::DuplicateName { offset, name });
            }
            count += 1;
            offset = raw.next;
        }
    }

    /// The entries in archive order, the trailer excluded.
    pub fn entries(&self) -> Entries<'a> {
        Entries {
            body: self.body,
            offset: 0,
            remaining: self.count,
        }
    }

    /// The entry called exactly `name` (no path normalisation), if any.
    pub fn find(&self, name: &str) -> Option<Entry<'a>> {
        self.entries().find(|e| e.name == name)
    }

    /// Number of entries, the trailer excluded.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the archive holds nothing but the trailer.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl<'a> IntoIterator for &Archive<'a> {
    type Item = Entry<'a>;
    type IntoIter = Entries<'a>;

    fn into_iter(self) -> Entries<'a> {
        self.entries()
    }
}

/// One file, directory or other node of a bundle.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The path, a validated relative path such as `dom0/kernel`.
    pub name: &'a str,
    /// The Unix mode: file-type bits and permission bits.
    pub mode: u32,
    /// The contents (empty for a directory).
    pub data: &'a [u8],
    /// The verified checksum of a `070702` entry; `None` for `070701`.
    pub checksum: Option<u32>,
}

impl Entry<'_> {
    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & MODE_TYPE_MASK == MODE_FILE
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & MODE_TYPE_MASK == MODE_DIR
    }
}

/// Iterator over the entries of an [`Archive`], in archive order.
#[derive(Clone)]
pub struct Entries<'a> {
    /// The validated part of the archive.
    body: &'a [u8],
    /// Offset of the next header in `body`.
    offset: usize,
    /// Entries not yet returned.
    remaining: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        if self.remaining == 0 {
            return None;
        }
        // `Archive::parse` validated these bytes, so this cannot fail; if it
        // somehow did, end the iteration rather than panic.
        let Ok(raw) = read_entry(self.body, self.offset, Verify::Skip) else {
            self.remaining = 0;
            return None;
        };
        self.remaining -= 1;
        self.offset = raw.next;
        Some(raw.entry)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Entries<'_> {}
impl FusedIterator for Entries<'_> {}

// The `Debug` forms give sizes rather than contents: a kernel image printed
// byte by byte helps nobody.
impl fmt::Debug for Archive<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Archive")
            .field("entries", &self.count)
            .field("bytes", &self.body.len())
            .finish()
    }
}

impl fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .field("mode", &format_args!("{:#o}", self.mode))
            .field("data_len", &self.data.len())
            .field("checksum", &self.checksum)
            .finish()
    }
}

impl fmt::Debug for Entries<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entries")
            .field("offset", &self.offset)
            .field("remaining", &self.remaining)
            .finish()
    }
}

/// Whether [`read_entry`] recomputes `070702` checksums.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verify {
    /// Sum the data and compare (first pass).
    Checksum,
    /// Trust the header (already verified by `Archive::parse`).
    Skip,
}

/// One decoded entry and where the next header starts.
struct RawEntry<'a> {
    /// The entry itself.
    entry: Entry<'a>,
    /// Offset of the next header (may lie past the end of the data).
    next: usize,
    /// Whether this entry is the trailer.
    is_trailer: bool,
}

/// The header fields the reader uses.
struct Header {
    /// Whether the magic is `070702`.
    has_checksum: bool,
    /// `mode`.
    mode: u32,
    /// `filesize`.
    filesize: u32,
    /// `namesize`, counting the NUL.
    namesize: u32,
    /// `check`.
    check: u32,
}

/// Decodes and checks the entry whose header starts at `offset`.
fn read_entry(data: &[u8], offset: usize, verify: Verify) -> Result<RawEntry<'_>, BundleError<'_>> {
    let rest = data.get(offset..).unwrap_or(&[]);
    if rest.iter().all(|&b| b == 0) {
        return Err(BundleError::MissingTrailer);
    }
    let header = parse_header(rest, offset)?;
    let truncated = BundleError::Truncated { offset, entry: None };

    let namesize = usize::try_from(header.namesize).map_err(|_| truncated)?;
    let name_start = offset.checked_add(HEADER_LEN).ok_or(truncated)?;
    let name_end = name_start.checked_add(namesize).ok_or(truncated)?;
    let raw_name = data.get(name_start..name_end).ok_or(truncated)?;
    let Some((&0, name)) = raw_name.split_last() else {
        return Err(BundleError::NameNotTerminated { offset });
    };
    let name = core::str::from_utf8(name).map_err(|_| BundleError::NameNotUtf8 { offset })?;
    check_name(name).map_err(|reason| BundleError::BadName { offset, name, reason })?;

    let truncated = BundleError::Truncated {
        offset,
        entry: Some(name),
    };
    let filesize = usize::try_from(header.filesize).map_err(|_| truncated)?;
    let data_start = align_up(name_end).ok_or(truncated)?;
    let data_end = data_start.checked_add(filesize).ok_or(truncated)?;
    // An empty entry may end the bundle without the padding after its name;
    // writers that stop right after the trailer's name do that.
    let contents = match data.get(data_start..data_end) {
        Some(contents) => contents,
        None if filesize == 0 => &[],
        None => return Err(truncated),
    };
    let next = align_up(data_end).ok_or(truncated)?;

    let checksum = if header.has_checksum {
        if verify == Verify::Checksum {
            let actual = checksum(contents);
            if actual != header.check {
                return Err(BundleError::ChecksumMismatch {
                    name,
                    expected: header.check,
                    actual,
                });
            }
        }
        Some(header.check)
    } else {
        None
    };

    Ok(RawEntry {
        entry: Entry {
            name,
            mode: header.mode,
            data: contents,
            checksum,
        },
        next,
        is_trailer: name == TRAILER_NAME,
    })
}

/// Decodes the header at the start of `rest`, which begins at `offset` in
/// the bundle and is not all zeros.
fn parse_header(rest: &[u8], offset: usize) -> Result<Header, BundleError<'static>> {
    let magic = rest.get(..MAGIC_LEN).unwrap_or(rest);
    let has_checksum = if magic == MAGIC_CRC {
        true
    } else if magic == MAGIC_NEWC {
        false
    } else if magic.len() < MAGIC_LEN && (MAGIC_NEWC.starts_with(magic) || MAGIC_CRC.starts_with(magic)) {
        return Err(BundleError::Truncated { offset, entry: None });
    } else {
        return Err(BundleError::BadMagic { offset });
    };

    let fields = rest
        .get(MAGIC_LEN..HEADER_LEN)
        .ok_or(BundleError::Truncated { offset, entry: None })?;
    let mut values = [0u32; FIELDS.len()];
    for ((value, field), digits) in values.iter_mut().zip(FIELDS).zip(fields.chunks_exact(FIELD_LEN)) {
        *value = parse_hex(digits).ok_or(BundleError::BadHeaderField { offset, field })?;
    }
    Ok(Header {
        has_checksum,
        mode: values[FIELD_MODE],
        filesize: values[FIELD_FILESIZE],
        namesize: values[FIELD_NAMESIZE],
        check: values[FIELD_CHECK],
    })
}
