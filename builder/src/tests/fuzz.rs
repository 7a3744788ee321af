//! Mutation fuzzing: flip every byte of a good image, overwrite header and
//! program header fields with boundary values, and apply random multi-byte
//! mutations. Parsing must never panic; an image that still parses must
//! build (or fail cleanly) without panicking and without breaking W^X.

use dom0_abi::{GUEST_IMAGE_MAX, GUEST_IMAGE_MIN, MMU_EXEC, MMU_WRITE};

use super::elf_writer::*;
use super::fake::Fake;
use crate::{BuildParams, Image, check_abi, pages_needed};

/// Parse `bytes`; if it parses, check the result's invariants and build it.
/// Returns whether it parsed and built.
fn exercise(bytes: &[u8]) -> bool {
    let Ok(image) = Image::parse(bytes) else {
        return false;
    };
    let _ = check_abi(&image);
    let mut prev_end = 0;
    for s in image.segments() {
        let end = s.end().unwrap();
        assert!(s.vaddr >= GUEST_IMAGE_MIN && end <= GUEST_IMAGE_MAX);
        assert!(s.vaddr >= prev_end, "segments overlap or are out of order");
        assert!(!(s.flags.write && s.flags.exec));
        assert_eq!(image.segment_bytes(s).len() as u64, s.file_size);
        let (first, pages) = s.pages().unwrap();
        assert!(first >= prev_end.next_multiple_of(4096), "segments share a page");
        prev_end = first + pages * 4096;
    }
    let needed = pages_needed(&image);
    if needed > 4096 {
        return false;
    }
    let nr_pages = needed + 3;
    let mut fake = Fake::new(nr_pages);
    let p = BuildParams {
        image: bytes,
        domid: 3,
        nr_pages,
        max_pages: nr_pages,
        vcpus: 1,
        flags: 0,
        name: "fuzz",
        cmdline: "",
        tsc_khz: 1,
        module_len: 0,
    };
    let built = crate::build(&mut fake, &p).is_ok();
    assert!(
        fake.ops
            .iter()
            .all(|op| op.flags & (MMU_WRITE | MMU_EXEC) != (MMU_WRITE | MMU_EXEC))
    );
    built
}

#[test]
fn flip_every_byte() {
    let good = TestElf::good().bytes();
    let mut built = 0;
    for i in 0..good.len() {
        for mask in [0xff, 0x01, 0x80, 0x10] {
            let mut b = good.clone();
            b[i] ^= mask;
            built += usize::from(exercise(&b));
        }
    }
    // Flips in segment bytes and padding keep the image valid: the builder
    // itself was exercised, not only the parser.
    assert!(built > good.len(), "only {built} mutants built");
}

#[test]
fn boundary_values_in_every_field() {
    let good = TestElf::good().bytes();
    let values = [
        0u64,
        1,
        0xfff,
        0x1000,
        0x1001,
        GUEST_IMAGE_MIN,
        GUEST_IMAGE_MAX,
        GUEST_IMAGE_MAX - 1,
        good.len() as u64,
        good.len() as u64 - 1,
        u64::from(u32::MAX),
        i64::MAX as u64,
        u64::MAX - 0x1000,
        u64::MAX - 1,
        u64::MAX,
    ];
    // Every 8-byte-aligned word of the headers, and every 2/4-byte field.
    let header_end = phdr(5);
    for at in (0..header_end).step_by(8) {
        for v in values {
            let mut b = good.clone();
            set_u64(&mut b, at, v);
            exercise(&b);
        }
    }
    for at in (16..header_end).step_by(2) {
        for v in [0u16, 1, 2, 3, 4, 56, 0x7fff, 0xffff] {
            let mut b = good.clone();
            set_u16(&mut b, at, v);
            exercise(&b);
        }
    }
    for at in (0..header_end).step_by(4) {
        for v in [0u32, 1, 2, 3, 4, 7, 8, 0x6474_e551, u32::MAX] {
            let mut b = good.clone();
            set_u32(&mut b, at, v);
            exercise(&b);
        }
    }
}

#[test]
fn random_mutations() {
    let good = TestElf::good().bytes();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut built = 0;
    for _ in 0..20_000 {
        let mut b = good.clone();
        let flips = 1 + next() % 8;
        for _ in 0..flips {
            // Mostly the headers and the note, sometimes anywhere.
            let at = if next() % 4 == 0 {
                next() as usize % b.len()
            } else {
                next() as usize % phdr(5)
            };
            b[at] = next() as u8;
        }
        if next() % 8 == 0 {
            let len = next() as usize % b.len();
            b.truncate(len);
        }
        built += usize::from(exercise(&b));
    }
    assert!(built > 0);
}
