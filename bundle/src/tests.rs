//! Host tests of the bundle reader (`reader.rs`) against hand-made archives,
//! and, with feature `std`, of the writer (`writer.rs`) round-tripping
//! through the reader.

use std::string::ToString;
use std::vec::Vec;
use std::{format, vec};

use crate::format::checksum;
use crate::{Archive, BundleError, Entry, HEADER_LEN, MAX_ENTRIES, TRAILER_NAME};

/// One hand-made entry; fields default to a valid `070702` regular file.
struct Raw<'n> {
    magic: &'static str,
    name: &'n [u8],
    /// Whether a NUL follows the name (and is counted by `namesize`).
    nul: bool,
    mode: u32,
    data: &'n [u8],
    /// Overrides the computed checksum.
    check: Option<u32>,
    /// Overrides `data.len()` in the header.
    filesize: Option<u32>,
    /// Overrides the computed `namesize`.
    namesize: Option<u32>,
}

fn file<'n>(name: &'n str, data: &'n [u8]) -> Raw<'n> {
    Raw {
        magic: "070702",
        name: name.as_bytes(),
        nul: true,
        mode: 0o100_644,
        data,
        check: None,
        filesize: None,
        namesize: None,
    }
}

impl Raw<'_> {
    fn bytes(&self) -> Vec<u8> {
        let len = |n: usize| u32::try_from(n).expect("test sizes are small");
        let namesize = self
            .namesize
            .unwrap_or(len(self.name.len() + usize::from(self.nul)));
        let filesize = self.filesize.unwrap_or(len(self.data.len()));
        let check = self.check.unwrap_or(checksum(self.data));
        let mut out = format!(
            "{}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.magic, 7, self.mode, 0, 0, 1, 0, filesize, 0, 0, 0, 0, namesize, check
        )
        .into_bytes();
        out.extend_from_slice(self.name);
        if self.nul {
            out.push(0);
        }
        out.resize(out.len().next_multiple_of(4), 0);
        out.extend_from_slice(self.data);
        out.resize(out.len().next_multiple_of(4), 0);
        out
    }
}

fn trailer() -> Vec<u8> {
    let mut t = file(TRAILER_NAME, b"");
    t.mode = 0;
    t.bytes()
}

/// The error for an archive that must be refused.
fn refused(bytes: &[u8]) -> BundleError<'_> {
    Archive::parse(bytes).expect_err("the archive must be refused")
}

/// Concatenates entries, appends a trailer, pads to 512 bytes.
fn archive(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut out: Vec<u8> = entries.iter().flat_map(Raw::bytes).collect();
    out.extend(trailer());
    out.resize(out.len().next_multiple_of(512), 0);
    out
}

fn sample() -> Vec<u8> {
    let mut dir = file("dom0", b"");
    dir.mode = 0o040_755;
    archive(&[
        dir,
        file("dom0/kernel", b"\x7fELF kernel bytes"),
        file("dom0/config", b"memory = 512\n"),
    ])
}

#[test]
fn reads_hand_made_archive() {
    let bytes = sample();
    let a = Archive::parse(&bytes).expect("valid");
    assert_eq!(a.len(), 3);
    assert!(!a.is_empty());
    let names: Vec<&str> = a.entries().map(|e| e.name).collect();
    assert_eq!(names, ["dom0", "dom0/kernel", "dom0/config"]);
    assert_eq!(a.entries().len(), 3);
    let dir = a.find("dom0").expect("dir");
    assert!(dir.is_dir() && !dir.is_file());
    let k = a.find("dom0/kernel").expect("kernel");
    assert!(k.is_file() && !k.is_dir());
    assert_eq!(k.data, b"\x7fELF kernel bytes");
    assert_eq!(k.mode, 0o100_644);
    assert_eq!(k.checksum, Some(checksum(b"\x7fELF kernel bytes")));
    assert!(a.find("dom0/").is_none());
    assert!(a.find(TRAILER_NAME).is_none());
    assert_eq!((&a).into_iter().count(), 3);
}

/// `mkdir d; echo hello > d/hello; find d | cpio -o -H newc` as GNU cpio 2.13
/// writes it: upper-case hex, real inode numbers, owner and times, a zero
/// `check`, and the trailer padded to a 512-byte block.
#[test]
fn reads_gnu_cpio_newc() {
    let mut gnu = Vec::new();
    gnu.extend_from_slice(
        concat!(
            "070701",
            "0030A1C2", // ino
            "000041ED", // mode: directory, 0755
            "000003E8", // uid 1000
            "000003E8", // gid 1000
            "00000002", // nlink
            "65F1A2B3", // mtime
            "00000000", // filesize
            "00000008", // devmajor
            "00000001", // devminor
            "00000000", // rdevmajor
            "00000000", // rdevminor
            "00000002", // namesize: "d" and NUL
            "00000000", // check
            "d\0",      // 110 + 2 = 112, aligned
            "070701",
            "0030A1C3", // ino
            "000081A4", // mode: regular file, 0644
            "000003E8",
            "000003E8",
            "00000001",
            "65F1A2B3",
            "00000006", // filesize
            "00000008",
            "00000001",
            "00000000",
            "00000000",
            "00000008", // namesize: "d/hello" and NUL
            "00000000",
            "d/hello\0\0\0", // 112 + 110 + 8 = 230, padded to 232
            "hello\n\0\0",   // 6 bytes of data, padded to 240
            "070701",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000001",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "0000000B", // namesize: "TRAILER!!!" and NUL
            "00000000",
            "TRAILER!!!\0\0\0\0", // 240 + 110 + 11 = 361, padded to 364
        )
        .as_bytes(),
    );
    assert_eq!(gnu.len(), 364);
    gnu.resize(512, 0);

    let a = Archive::parse(&gnu).expect("GNU cpio archive");
    let entries: Vec<Entry<'_>> = a.entries().collect();
    assert_eq!(
        entries,
        [
            Entry {
                name: "d",
                mode: 0o040_755,
                data: b"",
                checksum: None
            },
            Entry {
                name: "d/hello",
                mode: 0o100_644,
                data: b"hello\n",
                checksum: None
            },
        ]
    );
}

#[test]
fn lower_case_hex_and_plain_newc() {
    let mut e = file("a", b"xyz");
    e.magic = "070701";
    e.check = Some(0xdead_beef); // ignored for 070701
    let bytes = archive(&[e]);
    let a = Archive::parse(&bytes).expect("valid");
    let entry = a.find("a").expect("a");
    assert_eq!(entry.data, b"xyz");
    assert_eq!(entry.checksum, None);
}

#[test]
fn trailer_only_is_empty() {
    let bytes = archive(&[]);
    let a = Archive::parse(&bytes).expect("valid");
    assert!(a.is_empty());
    assert_eq!(a.len(), 0);
    assert_eq!(a.entries().next(), None);
}

#[test]
fn anything_after_the_trailer_is_ignored() {
    let mut bytes = archive(&[file("a", b"1")]);
    bytes.extend_from_slice(b"garbage that is not a header");
    assert_eq!(Archive::parse(&bytes).expect("valid").len(), 1);
    // No padding at all after the trailer's name is fine too.
    let mut bytes: Vec<u8> = file("a", b"1").bytes();
    let t = trailer();
    bytes.extend_from_slice(&t[..HEADER_LEN + TRAILER_NAME.len() + 1]);
    assert_eq!(Archive::parse(&bytes).expect("valid").len(), 1);
}

#[test]
fn dot_names_are_allowed() {
    let bytes = archive(&[file(".", b""), file("./a", b"1"), file("b/./c", b"2")]);
    assert_eq!(Archive::parse(&bytes).expect("valid").len(), 3);
}

#[test]
fn empty_input() {
    assert_eq!(refused(&[]), BundleError::Empty);
}

#[test]
fn bad_magic() {
    let mut bytes = sample();
    bytes[5] = b'7';
    assert_eq!(refused(&bytes), BundleError::BadMagic { offset: 0 });
    // A bad magic on a later entry names that entry's offset.
    let first = file("a", b"1").bytes();
    let mut bytes = archive(&[file("a", b"1"), file("b", b"2")]);
    bytes[first.len()] = b'x';
    assert_eq!(refused(&bytes), BundleError::BadMagic { offset: first.len() });
    assert_eq!(refused(b"hello"), BundleError::BadMagic { offset: 0 });
}

#[test]
fn truncated_header() {
    let bytes = sample();
    for len in [1, 5, 6, 50, HEADER_LEN - 1] {
        assert_eq!(
            refused(&bytes[..len]),
            BundleError::Truncated {
                offset: 0,
                entry: None
            },
            "length {len}"
        );
    }
    // Cut inside the name.
    assert_eq!(
        refused(&bytes[..HEADER_LEN + 2]),
        BundleError::Truncated {
            offset: 0,
            entry: None
        }
    );
}

#[test]
fn truncated_data() {
    let bytes = archive(&[file("kernel", b"0123456789")]);
    let data_start = 120; // 110 + "kernel\0" = 117, padded to 120
    assert_eq!(&bytes[data_start..data_start + 4], b"0123");
    let cut = data_start + 5;
    assert_eq!(
        refused(&bytes[..cut]),
        BundleError::Truncated {
            offset: 0,
            entry: Some("kernel")
        }
    );
}

#[test]
fn data_then_nothing_is_missing_trailer() {
    let bytes = file("a", b"1234").bytes();
    assert_eq!(refused(&bytes), BundleError::MissingTrailer);
    let mut padded = bytes.clone();
    padded.resize(4096, 0);
    assert_eq!(refused(&padded), BundleError::MissingTrailer);
    assert_eq!(refused(&[0; 512]), BundleError::MissingTrailer);
}

#[test]
fn bad_hex() {
    for (pos, field) in [(6, "ino"), (14, "mode"), (60, "filesize"), (95, "namesize")] {
        for bad in [b'g', b'G', b' ', b'-', b'+', 0, 0xff] {
            let mut bytes = sample();
            bytes[pos] = bad;
            assert_eq!(
                refused(&bytes),
                BundleError::BadHeaderField { offset: 0, field },
                "byte {bad:#x} at {pos}"
            );
        }
    }
}

#[test]
fn name_without_nul() {
    let mut e = file("abc", b"");
    e.nul = false;
    e.namesize = Some(3);
    assert_eq!(
        refused(&archive(&[e])),
        BundleError::NameNotTerminated { offset: 0 }
    );
    let mut e = file("abc", b"");
    e.namesize = Some(0);
    assert_eq!(
        refused(&archive(&[e])),
        BundleError::NameNotTerminated { offset: 0 }
    );
}

#[test]
fn name_not_utf8() {
    let mut e = file("", b"");
    e.name = b"caf\xe9";
    assert_eq!(refused(&archive(&[e])), BundleError::NameNotUtf8 { offset: 0 });
}

#[test]
fn bad_names() {
    for (name, reason) in [
        ("../x", "has a '..' component"),
        ("a/../../x", "has a '..' component"),
        ("..", "has a '..' component"),
        ("/abs", "is an absolute path"),
        ("/", "is an absolute path"),
        ("", "is empty"),
        ("a//b", "has an empty path component"),
        ("dir/", "has an empty path component"),
        ("a\nb", "contains a control character"),
        ("a\0b", "contains a control character"),
        ("\u{1b}[2J", "contains a control character"),
    ] {
        let bytes = archive(&[file(name, b"x")]);
        assert_eq!(
            refused(&bytes),
            BundleError::BadName {
                offset: 0,
                name,
                reason
            },
            "{name:?}"
        );
    }
}

#[test]
fn checksum_mismatch() {
    let good = archive(&[file("dom0", b"kernel image")]);
    let data_start = 116; // 110 + "dom0\0" = 115, padded to 116
    assert_eq!(&good[data_start..data_start + 6], b"kernel");
    let mut bad = good.clone();
    bad[data_start + 3] ^= 0x01;
    let expected = checksum(b"kernel image");
    let actual = checksum(b"keroel image"); // 'n' ^ 1 == 'o'
    let err = refused(&bad);
    assert_eq!(
        err,
        BundleError::ChecksumMismatch {
            name: "dom0",
            expected,
            actual,
        }
    );
    assert_eq!(
        err.to_string(),
        format!("bundle entry 'dom0' is corrupt: checksum {expected:#010x} expected, {actual:#010x} found")
    );
}

#[test]
fn checksum_is_wrapping_sum() {
    assert_eq!(checksum(b""), 0);
    assert_eq!(checksum(&[0xff; 4]), 4 * 0xff);
    let big = vec![0xffu8; 0x0101_0102];
    // 0x01010102 * 0xff = 0x1_0000_00fe ... wraps to 0xfe.
    assert_eq!(checksum(&big), 0x0101_0102u32.wrapping_mul(0xff));
}

#[test]
fn missing_trailer() {
    let bytes = file("a", b"1").bytes();
    assert_eq!(refused(&bytes), BundleError::MissingTrailer);
}

#[test]
fn duplicate_names() {
    let bytes = archive(&[file("a", b"1"), file("b", b"2"), file("a", b"3")]);
    let offset = file("a", b"1").bytes().len() + file("b", b"2").bytes().len();
    assert_eq!(refused(&bytes), BundleError::DuplicateName { offset, name: "a" });
}

#[test]
fn too_many_entries() {
    let names: Vec<_> = (0..=MAX_ENTRIES).map(|i| format!("f{i}")).collect();
    let entries: Vec<Raw<'_>> = names.iter().map(|n| file(n, b"")).collect();
    assert_eq!(
        Archive::parse(&archive(&entries[..MAX_ENTRIES]))
            .expect("at the limit")
            .len(),
        MAX_ENTRIES
    );
    assert_eq!(
        refused(&archive(&entries)),
        BundleError::TooManyEntries { limit: MAX_ENTRIES }
    );
}

#[test]
fn huge_declared_sizes() {
    for (filesize, namesize) in [
        (Some(u32::MAX), None),
        (Some(u32::MAX - 2), None),
        (None, Some(u32::MAX)),
        (Some(u32::MAX), Some(u32::MAX)),
        (Some(0x8000_0000), None),
    ] {
        let mut e = file("big", b"tiny");
        e.filesize = filesize;
        e.namesize = namesize;
        let bytes = archive(&[e]);
        let err = refused(&bytes);
        assert!(matches!(err, BundleError::Truncated { offset: 0, .. }), "{err:?}");
    }
}

#[test]
fn errors_display_sentences() {
    let cases: [(BundleError<'_>, &str); 6] = [
        (BundleError::Empty, "the boot bundle is empty"),
        (
            BundleError::BadHeaderField {
                offset: 0x70,
                field: "filesize",
            },
            "bundle entry header at offset 0x70 is corrupt: its 'filesize' field is not 8 hex digits",
        ),
        (
            BundleError::Truncated {
                offset: 0,
                entry: Some("dom0"),
            },
            "bundle entry 'dom0' (header at offset 0x0) is truncated: its data runs past the end of the bundle",
        ),
        (
            BundleError::BadName {
                offset: 4,
                name: "a\u{1b}",
                reason: "contains a control character",
            },
            "bundle entry 'a\\u{1b}' (offset 0x4) is refused: the name contains a control character",
        ),
        (
            BundleError::MissingTrailer,
            "the boot bundle has no 'TRAILER!!!' entry: it is truncated or not a cpio archive",
        ),
        (
            BundleError::DuplicateName { offset: 8, name: "x" },
            "bundle entry 'x' (offset 0x8) is refused: an earlier entry has the same name",
        ),
    ];
    for (err, text) in cases {
        assert_eq!(err.to_string(), text);
    }
}

/// Parses and, on success, walks everything: must never panic.
fn exercise(bytes: &[u8]) {
    if let Ok(a) = Archive::parse(bytes) {
        let n = a.entries().count();
        assert_eq!(n, a.len());
        for e in a.entries() {
            assert_eq!(a.find(e.name), Some(e));
        }
    } else if let Err(e) = Archive::parse(bytes) {
        let _ = e.to_string();
    }
}

#[test]
fn mutations_never_panic() {
    let mut e = file("plain", b"newc data");
    e.magic = "070701";
    let mut dir = file("d", b"");
    dir.mode = 0o040_755;
    let base = archive(&[dir, file("d/k", b"0123456789abcdef"), e, file("z", b"")]);
    let end = base.len().min(700);
    for pos in 0..end {
        for value in [0, 1, b'0', b'7', b'9', b'a', b'f', b'F', b'g', 0x80, 0xff, b'/'] {
            let mut m = base.clone();
            m[pos] = value;
            exercise(&m);
        }
        let mut m = base.clone();
        m[pos] ^= 0x20;
        exercise(&m);
        exercise(&base[..pos]);
        exercise(&base[pos..]);
    }
    // Every size field set to its extremes.
    for field_start in (6..HEADER_LEN).step_by(8) {
        for digits in [b"FFFFFFFF", b"7FFFFFFF", b"00000000", b"FFFFFFF0"] {
            let mut m = base.clone();
            m[field_start..field_start + 8].copy_from_slice(digits);
            exercise(&m);
        }
    }
}

#[cfg(feature = "std")]
mod writer {
    use std::string::ToString;
    use std::vec::Vec;

    use crate::{Archive, BLOCK_LEN, BuildError, Builder, MAGIC_CRC, MAX_ENTRIES, TRAILER_NAME};

    #[test]
    fn round_trip() {
        let kernel: Vec<u8> = (0..=255u8).cycle().take(10_001).collect();
        let mut b = Builder::new();
        b.add_dir("dom0")
            .expect("dir")
            .add_file("dom0/kernel", 0o755, &kernel)
            .expect("kernel")
            .add_file("dom0/cmdline", 0o644, b"console=hvc0")
            .expect("cmdline")
            .add_file("empty", 0o600, b"")
            .expect("empty");
        let bytes = b.finish();
        assert_eq!(bytes.len() % BLOCK_LEN, 0);
        assert_eq!(&bytes[..6], MAGIC_CRC);

        let a = Archive::parse(&bytes).expect("round trip");
        assert_eq!(a.len(), 4);
        let names: Vec<&str> = a.entries().map(|e| e.name).collect();
        assert_eq!(names, ["dom0", "dom0/kernel", "dom0/cmdline", "empty"]);
        let dir = a.find("dom0").expect("dir");
        assert!(dir.is_dir());
        assert_eq!(dir.mode, 0o040_755);
        let k = a.find("dom0/kernel").expect("kernel");
        assert!(k.is_file());
        assert_eq!(k.mode, 0o100_755);
        assert_eq!(k.data, &kernel[..]);
        assert!(k.checksum.is_some());
        assert_eq!(a.find("dom0/cmdline").expect("cmdline").data, b"console=hvc0");
        assert_eq!(a.find("empty").expect("empty").data, b"");
    }

    #[test]
    fn empty_builder_is_a_trailer() {
        let bytes = Builder::new().finish();
        assert_eq!(bytes.len(), BLOCK_LEN);
        assert!(Archive::parse(&bytes).expect("valid").is_empty());
    }

    #[test]
    fn refuses_what_the_reader_refuses() {
        let mut b = Builder::new();
        b.add_file("a", 0o644, b"1").expect("first");
        for name in ["../x", "/abs", "", "a//b", "x/", "a\nb"] {
            assert!(
                matches!(b.add_file(name, 0o644, b""), Err(BuildError::BadName { .. })),
                "{name:?}"
            );
        }
        assert!(matches!(b.add_dir(TRAILER_NAME), Err(BuildError::BadName { .. })));
        assert_eq!(
            b.add_file("a", 0o644, b"2").map(|_| ()),
            Err(BuildError::DuplicateName {
                name: "a".to_string()
            })
        );
        assert_eq!(
            b.add_file("m", 0o100_644, b"").map(|_| ()),
            Err(BuildError::BadMode {
                name: "m".to_string(),
                mode: 0o100_644
            })
        );
        // Refused entries leave the archive as it was.
        let bytes = b.finish();
        let a = Archive::parse(&bytes).expect("valid");
        assert_eq!(a.len(), 1);
        assert_eq!(a.find("a").expect("a").data, b"1");
    }

    #[test]
    fn entry_limit() {
        let mut b = Builder::new();
        for i in 0..MAX_ENTRIES {
            b.add_file(&std::format!("f{i}"), 0o644, b"")
                .expect("under the limit");
        }
        assert_eq!(
            b.add_file("one-more", 0o644, b"").map(|_| ()),
            Err(BuildError::TooManyEntries { limit: MAX_ENTRIES })
        );
        assert_eq!(Archive::parse(&b.finish()).expect("valid").len(), MAX_ENTRIES);
    }

    #[test]
    fn build_error_display() {
        let e = BuildError::BadName {
            name: "../x".to_string(),
            reason: "has a '..' component",
        };
        assert_eq!(
            e.to_string(),
            "cannot add '../x' to the bundle: the name has a '..' component"
        );
    }
}
