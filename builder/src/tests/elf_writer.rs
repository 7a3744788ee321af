//! A small ELF64 assembler for the tests: a header, a program header table,
//! and each segment's bytes placed at a file offset congruent with its
//! address (loadable segments) or 8-aligned (the rest). Tests start from
//! [`TestElf::good`] and turn knobs, or patch the bytes afterwards with the
//! `set_*` helpers and the `PH_*` field offsets.

use std::vec;
use std::vec::Vec;

use dom0_abi::{ABI_VERSION_MAJOR, ABI_VERSION_MINOR, NOTE_NAME, NOTE_TYPE_ABI_VERSION};

pub const PT_NULL: u32 = 0;
pub const PT_LOAD: u32 = 1;
pub const PT_DYNAMIC: u32 = 2;
pub const PT_INTERP: u32 = 3;
pub const PT_NOTE: u32 = 4;
pub const PT_GNU_STACK: u32 = 0x6474_e551;
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;

/// Offsets of ELF header fields.
pub const EH_TYPE: usize = 16;
pub const EH_MACHINE: usize = 18;
pub const EH_VERSION: usize = 20;
pub const EH_ENTRY: usize = 24;
pub const EH_PHOFF: usize = 32;
pub const EH_PHENTSIZE: usize = 54;
pub const EH_PHNUM: usize = 56;
/// Offsets of program header fields.
pub const PH_TYPE: usize = 0;
pub const PH_FLAGS: usize = 4;
pub const PH_OFFSET: usize = 8;
pub const PH_VADDR: usize = 16;
pub const PH_FILESZ: usize = 32;
pub const PH_MEMSZ: usize = 40;
pub const PH_ALIGN: usize = 48;

/// Text: two pages, the second half full.
pub const TEXT_VA: u64 = 0x40_0000;
pub const TEXT_LEN: usize = 0x1800;
/// Read-only data: part of one page.
pub const RODATA_VA: u64 = 0x40_2000;
pub const RODATA_LEN: usize = 0x100;
/// Data: 0x20 bytes at a page offset, then bss over four pages in all.
pub const DATA_VA: u64 = 0x40_3010;
pub const DATA_LEN: usize = 0x20;
pub const DATA_MEM: u64 = 0x3000;
pub const ENTRY: u64 = 0x40_0100;
/// Image pages of the good image: 2 text + 1 rodata + 4 data.
pub const GOOD_IMAGE_PAGES: u64 = 7;

/// One program header and its bytes.
#[derive(Clone, Debug)]
pub struct Ph {
    pub p_type: u32,
    pub flags: u32,
    pub vaddr: u64,
    pub data: Vec<u8>,
    pub mem_size: u64,
    pub align: u64,
}

impl Ph {
    pub fn load(flags: u32, vaddr: u64, data: Vec<u8>, mem_size: u64) -> Ph {
        Ph {
            p_type: PT_LOAD,
            flags,
            vaddr,
            data,
            mem_size,
            align: 0x1000,
        }
    }

    pub fn note(notes: Vec<u8>) -> Ph {
        let len = notes.len() as u64;
        Ph {
            p_type: PT_NOTE,
            flags: PF_R,
            vaddr: 0,
            data: notes,
            mem_size: len,
            align: 4,
        }
    }

    pub fn other(p_type: u32) -> Ph {
        Ph {
            p_type,
            flags: PF_R | PF_W,
            vaddr: 0,
            data: Vec::new(),
            mem_size: 0,
            align: 16,
        }
    }
}

/// An image to assemble.
#[derive(Clone, Debug)]
pub struct TestElf {
    pub entry: u64,
    pub e_type: u16,
    pub machine: u16,
    pub phs: Vec<Ph>,
}

/// `len` bytes of a recognisable pattern, never zero.
pub fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

/// One note, padded to `align`.
pub fn note(name: &[u8], n_type: u32, desc: &[u8], align: usize) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(name.len() as u32).to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&n_type.to_le_bytes());
    out.extend_from_slice(name);
    out.resize(out.len().next_multiple_of(align), 0);
    out.extend_from_slice(desc);
    out.resize(out.len().next_multiple_of(align), 0);
    out
}

/// The Oxen ABI note for (major, minor).
pub fn abi_note(major: u16, minor: u16) -> Vec<u8> {
    let mut desc = major.to_le_bytes().to_vec();
    desc.extend_from_slice(&minor.to_le_bytes());
    note(NOTE_NAME, NOTE_TYPE_ABI_VERSION, &desc, 4)
}

impl TestElf {
    /// A good image: text (R X), rodata (R), data + bss (R W), the ABI
    /// note for this crate's version, and a `PT_GNU_STACK` to ignore.
    pub fn good() -> TestElf {
        TestElf {
            entry: ENTRY,
            e_type: 2,
            machine: 62,
            phs: vec![
                Ph::load(PF_R | PF_X, TEXT_VA, pattern(1, TEXT_LEN), TEXT_LEN as u64),
                Ph::load(PF_R, RODATA_VA, pattern(2, RODATA_LEN), RODATA_LEN as u64),
                Ph::load(PF_R | PF_W, DATA_VA, pattern(3, DATA_LEN), DATA_MEM),
                Ph::note(abi_note(ABI_VERSION_MAJOR, ABI_VERSION_MINOR)),
                Ph::other(PT_GNU_STACK),
            ],
        }
    }

    /// The good image with its ABI note replaced by one for (major, minor).
    pub fn with_abi(major: u16, minor: u16) -> TestElf {
        let mut elf = TestElf::good();
        elf.phs[3] = Ph::note(abi_note(major, minor));
        elf
    }

    /// Assemble the image.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; 64 + 56 * self.phs.len()];
        out[0..4].copy_from_slice(b"\x7fELF");
        out[4] = 2; // ELFCLASS64
        out[5] = 1; // ELFDATA2LSB
        out[6] = 1; // EV_CURRENT
        set_u16(&mut out, EH_TYPE, self.e_type);
        set_u16(&mut out, EH_MACHINE, self.machine);
        set_u32(&mut out, EH_VERSION, 1);
        set_u64(&mut out, EH_ENTRY, self.entry);
        set_u64(&mut out, EH_PHOFF, 64);
        set_u16(&mut out, 52, 64); // e_ehsize
        set_u16(&mut out, EH_PHENTSIZE, 56);
        set_u16(&mut out, EH_PHNUM, self.phs.len() as u16);

        for (i, ph) in self.phs.iter().enumerate() {
            let mut offset = out.len();
            if ph.p_type == PT_LOAD && !ph.data.is_empty() {
                let want = (ph.vaddr % 4096) as usize;
                while offset % 4096 != want {
                    offset += 1;
                }
            } else {
                offset = offset.next_multiple_of(8);
            }
            out.resize(offset, 0);
            out.extend_from_slice(&ph.data);
            let at = phdr(i);
            set_u32(&mut out, at + PH_TYPE, ph.p_type);
            set_u32(&mut out, at + PH_FLAGS, ph.flags);
            set_u64(&mut out, at + PH_OFFSET, offset as u64);
            set_u64(&mut out, at + PH_VADDR, ph.vaddr);
            set_u64(&mut out, at + 24, ph.vaddr); // p_paddr
            set_u64(&mut out, at + PH_FILESZ, ph.data.len() as u64);
            set_u64(&mut out, at + PH_MEMSZ, ph.mem_size);
            set_u64(&mut out, at + PH_ALIGN, ph.align);
        }
        out
    }
}

/// Offset of program header `i` in an assembled image.
pub fn phdr(i: usize) -> usize {
    64 + 56 * i
}

pub fn set_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

pub fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn set_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

pub fn get_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
