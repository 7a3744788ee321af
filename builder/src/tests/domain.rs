//! Tests of `domain.rs`: a good image builds into the documented layout,
//! and every failure is reported, the target's included.

use std::collections::{HashMap, HashSet};
use std::string::{String, ToString};
use std::vec::Vec;

use dom0_abi::{
    GUEST_MODULE_VA, GUEST_PHYSMAP_VA, GUEST_SHARED_INFO_VA, GUEST_STACK_PAGES, GUEST_STACK_TOP,
    GUEST_START_INFO_VA, MMU_BATCH_MAX, MMU_EXEC, MMU_MAP, MMU_MAP_SHARED_INFO, MMU_WRITE, MmuOp,
    SIF_INITDOMAIN, SIF_PRIVILEGED, START_INFO_MAGIC, StartInfo, field_str,
};
use zerocopy::FromBytes;

use super::elf_writer::*;
use super::fake::{Fake, FakeError};
use crate::{
    AbiError, BATCH_OPS, BuildError, BuildParams, BuildResult, ElfError, Image, MAX_CMDLINE_LEN,
    MAX_NAME_LEN, PHYSMAP_MAX_PAGES, build, pages_needed,
};

const NEEDED: u64 = GOOD_IMAGE_PAGES + 1 + GUEST_STACK_PAGES;

fn params(image: &[u8], nr_pages: u64) -> BuildParams<'_> {
    BuildParams {
        image,
        domid: 7,
        nr_pages,
        max_pages: nr_pages.saturating_mul(2),
        vcpus: 2,
        flags: 0,
        name: "web1",
        cmdline: "console=hvc0 root=/dev/xvda",
        tsc_khz: 2_400_000,
        module_len: 0,
    }
}

fn start_info(fake: &Fake, gfn: u64) -> StartInfo {
    StartInfo::read_from_prefix(&fake.frame(gfn)).unwrap().0
}

#[test]
fn pages_needed_counts_image_start_info_and_stack() {
    let bytes = TestElf::good().bytes();
    assert_eq!(pages_needed(&Image::parse(&bytes).unwrap()), NEEDED);
}

#[test]
fn good_image_builds() {
    let bytes = TestElf::good().bytes();
    let nr_pages = 300; // more than one batch of physmap
    let mut fake = Fake::new(nr_pages);
    let p = params(&bytes, nr_pages);
    let r = build(&mut fake, &p).unwrap();
    assert_eq!(
        r,
        BuildResult {
            entry: ENTRY,
            stack_top: GUEST_STACK_TOP,
            start_info_va: GUEST_START_INFO_VA,
            first_free_gfn: NEEDED,
            image_pages: GOOD_IMAGE_PAGES,
        }
    );

    // Frames: text in 0-1, rodata in 2, data + bss in 3-6, the rest zero.
    let text = pattern(1, TEXT_LEN);
    assert_eq!(fake.frame(0).as_slice(), &text[..0x1000]);
    assert_eq!(&fake.frame(1)[..0x800], &text[0x1000..]);
    assert!(fake.frame(1)[0x800..].iter().all(|&b| b == 0));
    let rodata = pattern(2, RODATA_LEN);
    assert_eq!(&fake.frame(2)[..RODATA_LEN], rodata.as_slice());
    assert!(fake.frame(2)[RODATA_LEN..].iter().all(|&b| b == 0));
    let data = pattern(3, DATA_LEN);
    assert!(fake.frame(3)[..0x10].iter().all(|&b| b == 0));
    assert_eq!(&fake.frame(3)[0x10..0x10 + DATA_LEN], data.as_slice());
    assert!(fake.frame(3)[0x10 + DATA_LEN..].iter().all(|&b| b == 0));
    for gfn in 4..7 {
        assert!(fake.frame(gfn).iter().all(|&b| b == 0), "bss frame {gfn}");
    }
    for gfn in 8..nr_pages {
        assert!(fake.frame(gfn).iter().all(|&b| b == 0), "frame {gfn}");
    }
    let written: HashSet<u64> = fake.frames.keys().copied().collect();
    assert_eq!(written, HashSet::from([0, 1, 2, 3, 7]));
    // dom0's target moves a mapping window forward: writes only ascend.
    assert_eq!(fake.writes, [0, 1, 2, 3, 7]);

    // StartInfo.
    let si = start_info(&fake, GOOD_IMAGE_PAGES);
    assert_eq!(si.magic, START_INFO_MAGIC);
    assert_eq!((si.abi_major, si.abi_minor), crate::OUR_ABI);
    assert_eq!(si.flags, 0);
    assert_eq!(si.domid, 7);
    assert_eq!(si.vcpus, 2);
    assert_eq!(si.nr_pages, nr_pages);
    assert_eq!(si.max_pages, nr_pages * 2);
    assert_eq!(si.shared_info_va, GUEST_SHARED_INFO_VA);
    assert_eq!(si.physmap_va, GUEST_PHYSMAP_VA);
    assert_eq!(si.first_free_gfn, NEEDED);
    assert_eq!(si.stack_top_va, GUEST_STACK_TOP);
    assert_eq!(si.tsc_khz, 2_400_000);
    assert_eq!((si.module_va, si.module_len), (0, 0));
    assert_eq!((si.console_evtchn, si.store_evtchn), (0, 0));
    assert_eq!(si.reserved, [0; 5]);
    assert!(si.reserved2.iter().all(|&b| b == 0));
    assert_eq!(field_str(&si.name), "web1");
    assert_eq!(field_str(&si.cmdline), "console=hvc0 root=/dev/xvda");

    // Mappings.
    check_ops_are_well_formed(&fake, 7);
    assert_eq!(
        fake.ops.len() as u64,
        GOOD_IMAGE_PAGES + 1 + 1 + GUEST_STACK_PAGES + nr_pages
    );
    let by_va: HashMap<u64, MmuOp> = fake.ops.iter().map(|op| (op.va, *op)).collect();
    assert_eq!(by_va.len(), fake.ops.len(), "two operations on one page");
    let map = |va: u64, gfn: u64, flags: u32| {
        let op = by_va.get(&va).unwrap_or_else(|| panic!("{va:#x} not mapped"));
        assert_eq!((op.op, op.gfn, op.flags), (MMU_MAP, gfn, flags), "{va:#x}");
    };
    map(0x40_0000, 0, MMU_EXEC);
    map(0x40_1000, 1, MMU_EXEC);
    map(0x40_2000, 2, 0);
    for i in 0..4 {
        map(0x40_3000 + i * 0x1000, 3 + i, MMU_WRITE);
    }
    map(GUEST_START_INFO_VA, GOOD_IMAGE_PAGES, 0);
    let shared = by_va[&GUEST_SHARED_INFO_VA];
    assert_eq!(
        (shared.op, shared.flags, shared.gfn),
        (MMU_MAP_SHARED_INFO, MMU_WRITE, 0)
    );
    let stack_base = GUEST_STACK_TOP - GUEST_STACK_PAGES * 4096;
    for i in 0..GUEST_STACK_PAGES {
        map(stack_base + i * 4096, GOOD_IMAGE_PAGES + 1 + i, MMU_WRITE);
    }
    assert!(
        !by_va.contains_key(&(stack_base - 4096)),
        "the stack guard page is mapped"
    );
    assert!(!by_va.contains_key(&GUEST_STACK_TOP));
    for gfn in 0..nr_pages {
        map(GUEST_PHYSMAP_VA + gfn * 4096, gfn, MMU_WRITE);
    }
    assert!(!by_va.contains_key(&(GUEST_PHYSMAP_VA + nr_pages * 4096)));
    // Image pages are the only executable ones.
    let exec: Vec<u64> = fake
        .ops
        .iter()
        .filter(|op| op.flags & MMU_EXEC != 0)
        .map(|op| op.va)
        .collect();
    assert_eq!(exec, [0x40_0000, 0x40_1000]);
}

/// Every operation is a map or the shared-info map, for `domid`, with zero
/// padding, a page-aligned address and never W+X; batches are bounded.
fn check_ops_are_well_formed(fake: &Fake, domid: u16) {
    for op in &fake.ops {
        assert!(op.op == MMU_MAP || op.op == MMU_MAP_SHARED_INFO, "{op:?}");
        assert_eq!(op.frame_domid, domid);
        assert_eq!(op.pad, [0; 6]);
        assert_eq!(op.va % 4096, 0, "{op:?}");
        assert!(op.va != 0);
        assert!(
            op.flags & (MMU_WRITE | MMU_EXEC) != (MMU_WRITE | MMU_EXEC),
            "W+X: {op:?}"
        );
        assert_eq!(op.flags & !(MMU_WRITE | MMU_EXEC), 0);
    }
    assert!(
        fake.batches
            .iter()
            .all(|&n| n > 0 && n <= BATCH_OPS && n as u64 <= MMU_BATCH_MAX)
    );
    assert_eq!(fake.batches.iter().sum::<usize>(), fake.ops.len());
}

#[test]
fn dom0_gets_its_module_and_flags() {
    let bytes = TestElf::good().bytes();
    let mut fake = Fake::new(NEEDED);
    let p = BuildParams {
        domid: 0,
        flags: SIF_PRIVILEGED | SIF_INITDOMAIN,
        name: "Domain-0",
        module_len: 12345,
        ..params(&bytes, NEEDED)
    };
    let r = build(&mut fake, &p).unwrap();
    assert_eq!(r.first_free_gfn, NEEDED);
    check_ops_are_well_formed(&fake, 0);
    let si = start_info(&fake, GOOD_IMAGE_PAGES);
    assert_eq!(si.flags, SIF_PRIVILEGED | SIF_INITDOMAIN);
    assert_eq!((si.module_va, si.module_len), (GUEST_MODULE_VA, 12345));
    assert_eq!(si.domid, 0);
    assert_eq!(field_str(&si.name), "Domain-0");
}

#[test]
fn unaligned_segment_start_lands_at_its_page_offset() {
    let mut elf = TestElf::good();
    elf.phs[0].vaddr = TEXT_VA + 0x800;
    elf.entry = TEXT_VA + 0x900;
    let bytes = elf.bytes();
    let mut fake = Fake::new(64);
    let r = build(&mut fake, &params(&bytes, 64)).unwrap();
    assert_eq!(r.image_pages, GOOD_IMAGE_PAGES);
    let text = pattern(1, TEXT_LEN);
    assert!(fake.frame(0)[..0x800].iter().all(|&b| b == 0));
    assert_eq!(&fake.frame(0)[0x800..], &text[..0x800]);
    assert_eq!(fake.frame(1).as_slice(), &text[0x800..]);
}

#[test]
fn too_small() {
    let bytes = TestElf::good().bytes();
    for nr_pages in [0, 1, NEEDED - 1] {
        let mut fake = Fake::new(nr_pages);
        let e = build(&mut fake, &params(&bytes, nr_pages)).unwrap_err();
        assert_eq!(
            e,
            BuildError::TooSmall {
                needed_pages: NEEDED,
                nr_pages
            }
        );
        assert!(
            e.to_string().contains(&std::format!("at least {NEEDED} pages")),
            "{e}"
        );
        assert_eq!(fake.calls, 0, "nothing is written before the size check");
    }
    let mut fake = Fake::new(NEEDED);
    assert!(build(&mut fake, &params(&bytes, NEEDED)).is_ok());
}

#[test]
fn too_many_pages() {
    let bytes = TestElf::good().bytes();
    for nr_pages in [PHYSMAP_MAX_PAGES + 1, u64::MAX] {
        let mut fake = Fake::new(0);
        let e = build(&mut fake, &params(&bytes, nr_pages)).unwrap_err();
        assert_eq!(
            e,
            BuildError::TooManyPages {
                nr_pages,
                limit: PHYSMAP_MAX_PAGES
            }
        );
    }
}

#[test]
fn name_and_cmdline_limits() {
    let bytes = TestElf::good().bytes();
    let long_name = "n".repeat(MAX_NAME_LEN + 1);
    let e = build(
        &mut Fake::new(64),
        &BuildParams {
            name: &long_name,
            ..params(&bytes, 64)
        },
    )
    .unwrap_err();
    assert_eq!(e, BuildError::NameTooLong { len: 32, max: 31 });
    assert!(e.to_string().contains("32 bytes long; the limit is 31"), "{e}");
    let long_cmdline = "c".repeat(MAX_CMDLINE_LEN + 1);
    let e = build(
        &mut Fake::new(64),
        &BuildParams {
            cmdline: &long_cmdline,
            ..params(&bytes, 64)
        },
    )
    .unwrap_err();
    assert_eq!(e, BuildError::CmdlineTooLong { len: 512, max: 511 });

    // At the limits, both round-trip with their NUL.
    let name: String = "abcdefghijklmnopqrstuvwxyz01234".into();
    let cmdline = "x=".repeat(255) + "y";
    assert_eq!((name.len(), cmdline.len()), (MAX_NAME_LEN, MAX_CMDLINE_LEN));
    let mut fake = Fake::new(64);
    build(
        &mut fake,
        &BuildParams {
            name: &name,
            cmdline: &cmdline,
            ..params(&bytes, 64)
        },
    )
    .unwrap();
    let si = start_info(&fake, GOOD_IMAGE_PAGES);
    assert_eq!(field_str(&si.name), name);
    assert_eq!(field_str(&si.cmdline), cmdline);
    assert_eq!(si.name[31], 0);
    assert_eq!(si.cmdline[511], 0);
}

#[test]
fn image_errors_are_reported() {
    let mut bytes = TestElf::good().bytes();
    bytes[0] = 0;
    let e = build(&mut Fake::new(64), &params(&bytes, 64)).unwrap_err();
    assert!(matches!(e, BuildError::Elf(ElfError::BadMagic { .. })));
    assert!(
        e.to_string().starts_with("bad guest image: not an ELF image"),
        "{e}"
    );

    let bytes = TestElf::with_abi(crate::OUR_ABI.0 + 1, 0).bytes();
    let mut fake = Fake::new(64);
    let e = build(&mut fake, &params(&bytes, 64)).unwrap_err();
    assert!(matches!(e, BuildError::Abi(AbiError::WrongMajor { .. })));
    assert!(e.to_string().contains("but this hypervisor speaks ABI"), "{e}");
    assert_eq!(fake.calls, 0);

    let mut elf = TestElf::good();
    elf.phs.remove(3);
    let e = build(&mut Fake::new(64), &params(&elf.bytes(), 64)).unwrap_err();
    assert_eq!(e, BuildError::Abi(AbiError::Missing));
}

#[test]
fn target_errors_propagate_from_every_call() {
    let bytes = TestElf::good().bytes();
    let nr_pages = 300;
    let mut fake = Fake::new(nr_pages);
    build(&mut fake, &params(&bytes, nr_pages)).unwrap();
    let total = fake.calls;
    assert!(total > 5);
    for n in 0..total {
        let mut fake = Fake::failing_at(nr_pages, n);
        let e = build(&mut fake, &params(&bytes, nr_pages)).unwrap_err();
        assert_eq!(e, BuildError::Target(FakeError(n)));
        assert_eq!(fake.calls, n + 1, "the builder stops at the first failure");
        assert_eq!(
            e.to_string(),
            std::format!("building the domain failed: fake target failed call {n}")
        );
    }
}

#[test]
fn many_segments_get_consecutive_frames() {
    // Out-of-order program headers, bss-only and page-offset segments.
    let mut elf = TestElf::good();
    elf.phs.push(Ph::load(PF_R | PF_W, 0x80_0000, Vec::new(), 0x1001));
    elf.phs.push(Ph::load(PF_R, 0x60_0ff0, pattern(4, 0x20), 0x20));
    let bytes = elf.bytes();
    let image = Image::parse(&bytes).unwrap();
    assert_eq!(pages_needed(&image), NEEDED + 2 + 2);
    let mut fake = Fake::new(64);
    let r = build(&mut fake, &params(&bytes, 64)).unwrap();
    assert_eq!(r.image_pages, GOOD_IMAGE_PAGES + 4);
    let by_va: HashMap<u64, MmuOp> = fake.ops.iter().map(|op| (op.va, *op)).collect();
    assert_eq!(by_va[&0x60_0000].gfn, 7);
    assert_eq!(by_va[&0x60_1000].gfn, 8);
    assert_eq!(by_va[&0x80_0000].gfn, 9);
    assert_eq!(by_va[&0x80_1000].gfn, 10);
    let part = pattern(4, 0x20);
    assert_eq!(&fake.frame(7)[0xff0..], &part[..0x10]);
    assert_eq!(&fake.frame(8)[..0x10], &part[0x10..]);
    assert_eq!(by_va[&GUEST_START_INFO_VA].gfn, 11);
    assert_eq!(start_info(&fake, 11).first_free_gfn, r.first_free_gfn);
    check_ops_are_well_formed(&fake, 7);
}
