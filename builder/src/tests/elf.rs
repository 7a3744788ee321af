//! Tests of `elf.rs`: the good image parses to the expected segments, and
//! every check refuses what it should with a message that explains it.

use std::string::ToString;
use std::vec;
use std::vec::Vec;

use dom0_abi::{ABI_VERSION_MAJOR, ABI_VERSION_MINOR, GUEST_IMAGE_MAX, GUEST_IMAGE_MIN, NOTE_NAME};

use super::elf_writer::*;
use crate::{ElfError, Image, MAX_SEGMENTS, SegFlags, Segment};

fn good() -> Vec<u8> {
    TestElf::good().bytes()
}

fn parse_err(bytes: &[u8]) -> ElfError {
    match Image::parse(bytes) {
        Ok(image) => panic!("parsed a bad image: {image:?}"),
        Err(e) => {
            // Every error has a sentence.
            assert!(e.to_string().len() > 20, "{e}");
            e
        }
    }
}

/// The good image with one field of program header `i` changed.
fn patched_ph(i: usize, field: usize, value: u64) -> Vec<u8> {
    let mut b = good();
    if field == PH_TYPE || field == PH_FLAGS {
        set_u32(&mut b, phdr(i) + field, value as u32);
    } else {
        set_u64(&mut b, phdr(i) + field, value);
    }
    b
}

#[test]
fn good_image_parses() {
    let bytes = good();
    let image = Image::parse(&bytes).unwrap();
    assert_eq!(image.entry(), ENTRY);
    assert_eq!(image.abi_version(), Some((ABI_VERSION_MAJOR, ABI_VERSION_MINOR)));
    let segs = image.segments();
    assert_eq!(segs.len(), 3);
    let r = SegFlags {
        read: true,
        write: false,
        exec: false,
    };
    assert_eq!(segs[0].vaddr, TEXT_VA);
    assert_eq!(segs[0].mem_size, TEXT_LEN as u64);
    assert_eq!(segs[0].flags, SegFlags { exec: true, ..r });
    assert_eq!(
        segs[1],
        Segment {
            vaddr: RODATA_VA,
            mem_size: 0x100,
            file_size: 0x100,
            flags: r,
            ..segs[1]
        }
    );
    assert_eq!(segs[2].vaddr, DATA_VA);
    assert_eq!(segs[2].file_size, DATA_LEN as u64);
    assert_eq!(segs[2].mem_size, DATA_MEM);
    assert_eq!(segs[2].flags, SegFlags { write: true, ..r });
    assert_eq!(image.segment_bytes(&segs[0]), pattern(1, TEXT_LEN).as_slice());
    assert_eq!(image.segment_bytes(&segs[2]), pattern(3, DATA_LEN).as_slice());
    assert_eq!(segs[2].pages(), Some((0x40_3000, 4)));
    // A segment that is not this image's gives no bytes rather than a panic.
    let foreign = Segment {
        file_offset: u64::MAX,
        file_size: 10,
        ..segs[0]
    };
    assert!(image.segment_bytes(&foreign).is_empty());
    assert!(std::format!("{image:?}").contains("entry: 0x400100"));
}

#[test]
fn segments_are_sorted_by_address() {
    let mut elf = TestElf::good();
    elf.phs.swap(0, 2);
    elf.phs.swap(0, 1);
    let bytes = elf.bytes();
    let image = Image::parse(&bytes).unwrap();
    let vas: Vec<u64> = image.segments().iter().map(|s| s.vaddr).collect();
    assert_eq!(vas, vec![TEXT_VA, RODATA_VA, DATA_VA]);
    assert_eq!(
        image.segment_bytes(&image.segments()[1]),
        pattern(2, RODATA_LEN).as_slice()
    );
}

#[test]
fn truncated_header() {
    let b = good();
    for len in 0..64 {
        assert_eq!(parse_err(&b[..len]), ElfError::TooShort { len });
    }
}

#[test]
fn every_prefix_fails_cleanly() {
    let b = good();
    for len in 0..b.len() {
        assert!(
            Image::parse(&b[..len]).is_err(),
            "a {len}-byte prefix of {} parsed",
            b.len()
        );
    }
    assert!(Image::parse(&b).is_ok());
}

#[test]
fn a_prefix_that_cuts_a_segment_names_it() {
    let b = good();
    let text_off = get_u64(&b, phdr(0) + PH_OFFSET) as usize;
    let e = parse_err(&b[..text_off + 10]);
    assert_eq!(
        e,
        ElfError::SegmentOutsideFile {
            index: 0,
            offset: text_off as u64,
            size: TEXT_LEN as u64,
            len: text_off + 10
        }
    );
    assert!(e.to_string().starts_with("truncated ELF image: segment 0"), "{e}");
}

#[test]
fn bad_identification() {
    let mut b = good();
    b[0] = 0x7e;
    assert_eq!(parse_err(&b), ElfError::BadMagic { found: *b"\x7eELF" });
    let mut b = good();
    b[4] = 1;
    assert_eq!(parse_err(&b), ElfError::NotElf64 { class: 1 });
    let mut b = good();
    b[5] = 2;
    assert_eq!(parse_err(&b), ElfError::NotLittleEndian { encoding: 2 });
    let mut b = good();
    b[6] = 0;
    assert_eq!(parse_err(&b), ElfError::BadVersion { version: 0 });
    let mut b = good();
    set_u32(&mut b, EH_VERSION, 2);
    assert_eq!(parse_err(&b), ElfError::BadVersion { version: 2 });
}

#[test]
fn bad_type_and_machine() {
    let mut b = good();
    set_u16(&mut b, EH_TYPE, 3);
    let e = parse_err(&b);
    assert_eq!(e, ElfError::NotExecutable { e_type: 3 });
    assert!(e.to_string().contains("position-independent"), "{e}");
    set_u16(&mut b, EH_TYPE, 1);
    assert_eq!(parse_err(&b), ElfError::NotExecutable { e_type: 1 });
    let mut b = good();
    set_u16(&mut b, EH_MACHINE, 3);
    let e = parse_err(&b);
    assert_eq!(e, ElfError::WrongMachine { machine: 3 });
    assert!(e.to_string().contains("x86-64"), "{e}");
    let mut b = good();
    set_u16(&mut b, EH_PHENTSIZE, 64);
    assert_eq!(parse_err(&b), ElfError::BadPhentsize { size: 64 });
}

#[test]
fn program_headers_outside_the_file() {
    let b = good();
    let len = b.len();
    for phoff in [u64::MAX, u64::MAX - 55, len as u64 - 10, len as u64, 1 << 40] {
        let mut b = good();
        set_u64(&mut b, EH_PHOFF, phoff);
        assert_eq!(
            parse_err(&b),
            ElfError::PhdrsOutsideFile {
                offset: phoff,
                count: 5,
                len
            }
        );
    }
    let mut b = good();
    set_u16(&mut b, EH_PHNUM, 0xffff);
    let e = parse_err(&b);
    assert_eq!(
        e,
        ElfError::PhdrsOutsideFile {
            offset: 64,
            count: 0xffff,
            len
        }
    );
    let want = std::format!("end at byte {} but the image has {len} bytes", 64 + 0xffff * 56);
    assert!(
        e.to_string()
            .starts_with("truncated ELF image: the program headers"),
        "{e}"
    );
    assert!(e.to_string().ends_with(&want), "{e}");
    // The table itself may sit anywhere inside the file.
    let mut b = good();
    set_u16(&mut b, EH_PHNUM, 0);
    assert_eq!(parse_err(&b), ElfError::NoLoadSegments);
}

#[test]
fn too_many_segments() {
    let build = |n: usize| {
        let mut elf = TestElf::good();
        elf.phs.truncate(1);
        for i in 1..n {
            elf.phs
                .push(Ph::load(PF_R, TEXT_VA + 0x10_0000 * i as u64, pattern(9, 16), 16));
        }
        elf.bytes()
    };
    assert_eq!(
        Image::parse(&build(MAX_SEGMENTS)).unwrap().segments().len(),
        MAX_SEGMENTS
    );
    assert_eq!(
        parse_err(&build(MAX_SEGMENTS + 1)),
        ElfError::TooManySegments { max: MAX_SEGMENTS }
    );
}

#[test]
fn huge_sizes_and_offsets_do_not_overflow() {
    let b = good();
    let len = b.len();
    let text_off = get_u64(&b, phdr(0) + PH_OFFSET);

    let mut b = patched_ph(0, PH_OFFSET, u64::MAX);
    assert_eq!(
        parse_err(&b),
        ElfError::SegmentOutsideFile {
            index: 0,
            offset: u64::MAX,
            size: TEXT_LEN as u64,
            len
        }
    );
    set_u64(&mut b, phdr(0) + PH_OFFSET, u64::MAX - 0xfff);
    assert!(matches!(
        parse_err(&b),
        ElfError::SegmentOutsideFile { index: 0, .. }
    ));

    let b = patched_ph(0, PH_FILESZ, u64::MAX);
    assert_eq!(
        parse_err(&b),
        ElfError::FileSizeExceedsMemSize {
            index: 0,
            file_size: u64::MAX,
            mem_size: TEXT_LEN as u64
        }
    );
    let mut b = patched_ph(0, PH_FILESZ, u64::MAX);
    set_u64(&mut b, phdr(0) + PH_MEMSZ, u64::MAX);
    let e = parse_err(&b);
    assert_eq!(
        e,
        ElfError::SegmentOutsideFile {
            index: 0,
            offset: text_off,
            size: u64::MAX,
            len
        }
    );
    assert!(e.to_string().contains(&std::format!(
        "ends at byte {}",
        u128::from(text_off) + u128::from(u64::MAX)
    )));

    let b = patched_ph(0, PH_MEMSZ, u64::MAX);
    assert_eq!(
        parse_err(&b),
        ElfError::AddressOverflow {
            index: 0,
            vaddr: TEXT_VA,
            mem_size: u64::MAX
        }
    );

    for vaddr in [u64::MAX, u64::MAX - 0xfff, 0xffff_ffff_ffff_f000] {
        let mut b = patched_ph(2, PH_VADDR, vaddr);
        // Keep the file offset congruent so the address check is what fires.
        let off = get_u64(&b, phdr(2) + PH_OFFSET);
        set_u64(&mut b, phdr(2) + PH_OFFSET, (off & !0xfff) | (vaddr & 0xfff));
        let e = parse_err(&b);
        assert!(
            matches!(
                e,
                ElfError::AddressOverflow { index: 2, .. }
                    | ElfError::SegmentOutsideFile { index: 2, .. }
                    | ElfError::OutsideImageArea { index: 2, .. }
            ),
            "{vaddr:#x}: {e}"
        );
    }
    let b = patched_ph(2, PH_VADDR, u64::MAX - 0x10);
    assert!(matches!(
        parse_err(&b),
        ElfError::AddressOverflow { index: 2, .. }
    ));
}

#[test]
fn segment_outside_the_image_area() {
    let cases = [
        (0u64, TEXT_LEN as u64),
        (0x1000, TEXT_LEN as u64),
        (GUEST_IMAGE_MIN - 0x1000, TEXT_LEN as u64),
        (GUEST_IMAGE_MAX - 0x1000, TEXT_LEN as u64),
        (GUEST_IMAGE_MAX, TEXT_LEN as u64),
        (0x0000_8000_0000_0000, TEXT_LEN as u64),
    ];
    for (vaddr, mem) in cases {
        let b = patched_ph(0, PH_VADDR, vaddr);
        let e = parse_err(&b);
        assert_eq!(
            e,
            ElfError::OutsideImageArea {
                index: 0,
                start: vaddr,
                end: vaddr + mem
            }
        );
        assert!(
            e.to_string()
                .contains("outside the guest image area [0x400000, 0x40000000)"),
            "{e}"
        );
    }
    // A segment may end exactly at the top of the area.
    let mut elf = TestElf::good();
    elf.phs.push(Ph::load(
        PF_R,
        GUEST_IMAGE_MAX - 0x1000,
        pattern(5, 0x1000),
        0x1000,
    ));
    assert_eq!(Image::parse(&elf.bytes()).unwrap().segments().len(), 4);
}

#[test]
fn writable_and_executable() {
    let b = patched_ph(2, PH_FLAGS, u64::from(PF_R | PF_W | PF_X));
    let e = parse_err(&b);
    assert_eq!(
        e,
        ElfError::WritableAndExecutable {
            index: 2,
            start: DATA_VA,
            end: DATA_VA + DATA_MEM
        }
    );
    assert!(e.to_string().contains("W^X"), "{e}");
    // Write + execute without read is still W+X.
    let b = patched_ph(0, PH_FLAGS, u64::from(PF_W | PF_X));
    assert!(matches!(
        parse_err(&b),
        ElfError::WritableAndExecutable { index: 0, .. }
    ));
}

#[test]
fn file_size_larger_than_mem_size() {
    let b = patched_ph(0, PH_MEMSZ, 0x1000);
    assert_eq!(
        parse_err(&b),
        ElfError::FileSizeExceedsMemSize {
            index: 0,
            file_size: TEXT_LEN as u64,
            mem_size: 0x1000
        }
    );
}

#[test]
fn address_and_offset_must_be_congruent() {
    let b = patched_ph(0, PH_VADDR, TEXT_VA + 0x10);
    let off = get_u64(&b, phdr(0) + PH_OFFSET);
    assert_eq!(
        parse_err(&b),
        ElfError::Misaligned {
            index: 0,
            vaddr: TEXT_VA + 0x10,
            offset: off
        }
    );
    // A page-offset address is fine when the file offset matches.
    let mut elf = TestElf::good();
    elf.phs[0].vaddr = TEXT_VA + 0x800;
    elf.entry = TEXT_VA + 0x900;
    let image_bytes = elf.bytes();
    let image = Image::parse(&image_bytes).unwrap();
    assert_eq!(image.segments()[0].pages(), Some((TEXT_VA, 2)));
}

#[test]
fn overlapping_segments() {
    let mut elf = TestElf::good();
    elf.phs[1].vaddr = 0x40_1000;
    let e = parse_err(&elf.bytes());
    assert_eq!(
        e,
        ElfError::Overlap {
            index: 1,
            start: 0x40_1000,
            end: 0x40_1100,
            other: 0,
            other_start: TEXT_VA,
            other_end: TEXT_VA + TEXT_LEN as u64
        }
    );
    assert_eq!(
        e.to_string(),
        "segment 1 [0x401000, 0x401100) overlaps segment 0 [0x400000, 0x401800)"
    );
    // The same segment twice.
    let mut elf = TestElf::good();
    elf.phs[1] = elf.phs[0].clone();
    assert!(matches!(
        parse_err(&elf.bytes()),
        ElfError::Overlap {
            index: 1,
            other: 0,
            ..
        }
    ));
    // One segment inside another, listed first.
    let mut elf = TestElf::good();
    elf.phs[1].vaddr = DATA_VA + 0x1000;
    elf.phs.swap(1, 2);
    assert!(matches!(
        parse_err(&elf.bytes()),
        ElfError::Overlap {
            index: 2,
            other: 1,
            ..
        }
    ));
}

#[test]
fn segments_sharing_a_page() {
    let mut elf = TestElf::good();
    elf.phs[1].vaddr = 0x40_1800;
    let e = parse_err(&elf.bytes());
    assert_eq!(
        e,
        ElfError::SharedPage {
            index: 1,
            start: 0x40_1800,
            end: 0x40_1900,
            other: 0,
            other_start: TEXT_VA,
            other_end: 0x40_1800,
            page: 0x40_1000
        }
    );
    assert!(
        e.to_string()
            .contains("shares the page at 0x401000 with segment 0"),
        "{e}"
    );
    // Listed in the other order, the page is still named.
    let mut elf = TestElf::good();
    elf.phs[1].vaddr = 0x40_1800;
    elf.phs.swap(0, 1);
    assert!(matches!(
        parse_err(&elf.bytes()),
        ElfError::SharedPage {
            index: 1,
            other: 0,
            page: 0x40_1000,
            ..
        }
    ));
    // Adjacent pages are fine.
    let mut elf = TestElf::good();
    elf.phs[1].vaddr = 0x40_2000;
    assert!(Image::parse(&elf.bytes()).is_ok());
}

#[test]
fn no_loadable_segment() {
    let mut elf = TestElf::good();
    elf.phs.retain(|ph| ph.p_type != PT_LOAD);
    assert_eq!(parse_err(&elf.bytes()), ElfError::NoLoadSegments);
    // Empty PT_LOADs are ignored, so they do not count.
    let mut elf = TestElf::good();
    elf.phs.retain(|ph| ph.p_type != PT_LOAD);
    elf.phs.push(Ph::load(PF_R | PF_X, TEXT_VA, vec![], 0));
    assert_eq!(parse_err(&elf.bytes()), ElfError::NoLoadSegments);
}

#[test]
fn empty_and_bss_only_segments() {
    let mut elf = TestElf::good();
    // Empty: ignored wherever it claims to be.
    elf.phs.push(Ph::load(PF_R | PF_W | PF_X, 0, vec![], 0));
    // bss only: no file bytes, so the file offset is not used.
    elf.phs.push(Ph::load(PF_R | PF_W, 0x50_0000, vec![], 0x2000));
    let mut b = elf.bytes();
    set_u64(&mut b, phdr(6) + PH_OFFSET, u64::MAX);
    let image = Image::parse(&b).unwrap();
    assert_eq!(image.segments().len(), 4);
    assert_eq!(image.segments()[3].pages(), Some((0x50_0000, 2)));
    assert!(image.segment_bytes(&image.segments()[3]).is_empty());
}

#[test]
fn entry_outside_text() {
    for entry in [
        0,
        RODATA_VA,
        DATA_VA,
        TEXT_VA - 1,
        TEXT_VA + TEXT_LEN as u64,
        u64::MAX,
    ] {
        let mut b = good();
        set_u64(&mut b, EH_ENTRY, entry);
        let e = parse_err(&b);
        assert_eq!(e, ElfError::EntryNotExecutable { entry });
        assert!(e.to_string().contains("not inside an executable segment"), "{e}");
    }
    let mut b = good();
    set_u64(&mut b, EH_ENTRY, TEXT_VA + TEXT_LEN as u64 - 1);
    assert!(Image::parse(&b).is_ok());
}

#[test]
fn dynamic_images_are_refused() {
    let b = patched_ph(4, PH_TYPE, u64::from(PT_INTERP));
    let e = parse_err(&b);
    assert_eq!(e, ElfError::Interpreter { index: 4 });
    assert!(e.to_string().contains("link it statically"), "{e}");
    let b = patched_ph(4, PH_TYPE, u64::from(PT_DYNAMIC));
    assert_eq!(parse_err(&b), ElfError::Dynamic { index: 4 });
}

#[test]
fn notes() {
    let abi = abi_note(1, 7);
    // Another vendor's note first, then ours: found.
    let mut notes = note(
        b"GNU\0",
        3,
        &[
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
        ],
        4,
    );
    notes.extend_from_slice(&abi);
    let mut elf = TestElf::good();
    elf.phs[3] = Ph::note(notes);
    assert_eq!(Image::parse(&elf.bytes()).unwrap().abi_version(), Some((1, 7)));

    // Our name with another type, another name with our type: not the ABI note.
    let mut elf = TestElf::good();
    let mut notes = note(NOTE_NAME, 2, &[9, 0, 9, 0], 4);
    notes.extend(note(b"Oxen", 1, &[9, 0, 9, 0], 4));
    notes.extend(note(b"OXEN\0", 1, &[9, 0, 9, 0], 4));
    elf.phs[3] = Ph::note(notes);
    assert_eq!(Image::parse(&elf.bytes()).unwrap().abi_version(), None);

    // 8-byte aligned note segments are padded to 8.
    let mut elf = TestElf::good();
    let mut notes = note(b"GNU\0\0", 5, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 8);
    notes.extend(note(NOTE_NAME, 1, &[1, 0, 3, 0], 8));
    elf.phs[3] = Ph {
        align: 8,
        ..Ph::note(notes)
    };
    assert_eq!(Image::parse(&elf.bytes()).unwrap().abi_version(), Some((1, 3)));

    // The last note may lack its padding.
    let mut elf = TestElf::good();
    let mut n = note(NOTE_NAME, 1, &[1, 0, 2, 0], 4);
    n.extend(note(b"X\0", 9, &[7], 4));
    n.truncate(n.len() - 3);
    elf.phs[3] = Ph::note(n);
    assert_eq!(Image::parse(&elf.bytes()).unwrap().abi_version(), Some((1, 2)));

    // No PT_NOTE at all.
    let mut elf = TestElf::good();
    elf.phs.remove(3);
    assert_eq!(Image::parse(&elf.bytes()).unwrap().abi_version(), None);
}

#[test]
fn malformed_notes() {
    let b = good();
    let note_off = get_u64(&b, phdr(3) + PH_OFFSET);
    // Cut inside the header, the name and the descriptor.
    for filesz in [1u64, 11, 12, 16, 20, 23] {
        let b = patched_ph(3, PH_FILESZ, filesz);
        assert_eq!(
            parse_err(&b),
            ElfError::BadNote {
                index: 3,
                offset: note_off
            },
            "filesz {filesz}"
        );
    }
    // Huge namesz and descsz.
    for field in [0usize, 4] {
        let mut b = good();
        set_u32(&mut b, note_off as usize + field, u32::MAX);
        assert_eq!(
            parse_err(&b),
            ElfError::BadNote {
                index: 3,
                offset: note_off
            }
        );
    }
    // The second note is the bad one.
    let mut elf = TestElf::good();
    let mut notes = abi_note(1, 0);
    notes.extend_from_slice(&[5, 0, 0, 0, 0xff, 0xff, 0, 0]);
    let first = abi_note(1, 0).len() as u64;
    elf.phs[3] = Ph::note(notes);
    let b = elf.bytes();
    let note_off = get_u64(&b, phdr(3) + PH_OFFSET);
    assert_eq!(
        parse_err(&b),
        ElfError::BadNote {
            index: 3,
            offset: note_off + first
        }
    );
    // The note segment outside the file.
    let b = patched_ph(3, PH_OFFSET, u64::MAX - 4);
    assert!(matches!(
        parse_err(&b),
        ElfError::SegmentOutsideFile { index: 3, .. }
    ));
    // A wrong descriptor size.
    let mut elf = TestElf::good();
    elf.phs[3] = Ph::note(note(NOTE_NAME, 1, &[1, 0, 0, 0, 0, 0, 0, 0], 4));
    let e = parse_err(&elf.bytes());
    assert_eq!(
        e,
        ElfError::BadAbiNote {
            index: 3,
            desc_size: 8
        }
    );
    assert!(e.to_string().contains("8-byte descriptor"), "{e}");
    // Two ABI notes, in one segment or two.
    let mut elf = TestElf::good();
    let mut notes = abi_note(1, 0);
    notes.extend(abi_note(1, 0));
    elf.phs[3] = Ph::note(notes);
    assert_eq!(parse_err(&elf.bytes()), ElfError::DuplicateAbiNote { index: 3 });
    let mut elf = TestElf::good();
    elf.phs.push(Ph::note(abi_note(1, 0)));
    assert_eq!(parse_err(&elf.bytes()), ElfError::DuplicateAbiNote { index: 5 });
}

#[test]
fn other_program_headers_are_ignored() {
    let mut elf = TestElf::good();
    elf.phs.push(Ph::other(PT_NULL));
    elf.phs.push(Ph::other(6)); // PT_PHDR
    elf.phs.push(Ph::other(0x6474_e552)); // PT_GNU_RELRO
    elf.phs.push(Ph {
        vaddr: u64::MAX,
        mem_size: u64::MAX,
        ..Ph::other(0x7000_0000)
    });
    assert!(Image::parse(&elf.bytes()).is_ok());
}
