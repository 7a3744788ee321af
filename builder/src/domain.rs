//! Building a domain: lay a parsed, ABI-checked image (`elf.rs`, `abi.rs`)
//! out in a new domain's frames, set up its initial address space, and fill
//! its `StartInfo`, all through a [`BuildTarget`] that the hypervisor (for
//! dom0) and dom0 (for domUs, through hypercalls) each implement.
//!
//! # Layout
//!
//! Guest frames, in order (`first_free_gfn` = [`pages_needed`]), with `I`
//! the image pages and `S` = `GUEST_STACK_PAGES`:
//!
//! | gfn                 | contents                                                  |
//! |---------------------|-----------------------------------------------------------|
//! | `0 .. I`            | one per distinct 4 KiB page of each `PT_LOAD`, by address |
//! | `I`                 | the `StartInfo` page                                      |
//! | `I+1 .. I+1+S`      | the initial stack, lowest page first                      |
//! | `I+1+S .. nr_pages` | free, left to the guest                                   |
//!
//! File bytes are copied into the image frames at their page offsets;
//! everything else (bss, the head of a first page, the stack) stays zero, as
//! new frames are zeroed. Frames are written in ascending gfn order.
//!
//! Virtual mappings (`MmuOp`s with `frame_domid` = the new domain), sent in
//! this order:
//!
//! | virtual address                         | what                      | rights             |
//! |-----------------------------------------|---------------------------|--------------------|
//! | each image page's own address           | its image frame           | W, X or read-only  |
//! | `GUEST_START_INFO_VA`                   | the `StartInfo` frame     | read-only          |
//! | `GUEST_SHARED_INFO_VA`                  | `MMU_MAP_SHARED_INFO`     | write              |
//! | `GUEST_STACK_TOP - S*4096 ..` the top   | the stack frames          | write              |
//! | `GUEST_STACK_TOP - (S+1)*4096`          | nothing: the guard page   | —                  |
//! | `GUEST_PHYSMAP_VA + g*4096`, `g < nr`   | frame `g` (every frame)   | write              |
//!
//! No mapping is both writable and executable. The guest starts at the
//! image's entry point with `rsp = GUEST_STACK_TOP` and
//! `rdi = GUEST_START_INFO_VA`; the caller sets that context.
//!
//! The builder needs no heap and about 6 KiB of stack (an mmu batch buffer of
//! [`BATCH_OPS`] operations and the `StartInfo`).

use core::fmt;

use dom0_abi::{
    GUEST_MODULE_VA, GUEST_PHYSMAP_VA, GUEST_SHARED_INFO_VA, GUEST_STACK_PAGES, GUEST_STACK_TOP,
    GUEST_START_INFO_VA, GUEST_VA_LIMIT, MMU_BATCH_MAX, MMU_EXEC, MMU_MAP, MMU_MAP_SHARED_INFO, MMU_WRITE,
    MmuOp, PAGE_SIZE, START_INFO_MAGIC, StartInfo, name_field,
};
use zerocopy::{FromZeros, IntoBytes};

use crate::abi::{AbiError, OUR_ABI, check_abi};
use crate::elf::{ElfError, Image, Segment};

/// Most bytes of a domain name (the `StartInfo` field keeps a NUL).
pub const MAX_NAME_LEN: usize = 31;
/// Most bytes of a command line (the `StartInfo` field keeps a NUL).
pub const MAX_CMDLINE_LEN: usize = 511;
/// Operations per [`BuildTarget::map`] call: at most `MMU_BATCH_MAX`, and
/// small enough that the batch buffer (4 KiB) fits a hypervisor stack.
pub const BATCH_OPS: usize = 128;
const _: () = assert!(BATCH_OPS as u64 <= MMU_BATCH_MAX && BATCH_OPS > 0);
/// Most frames a domain may have: the physmap must end below `GUEST_VA_LIMIT`.
pub const PHYSMAP_MAX_PAGES: u64 = (GUEST_VA_LIMIT - GUEST_PHYSMAP_VA) / PAGE_SIZE;
/// Lowest address of the stack (the guard page lies just below it).
const STACK_BASE: u64 = GUEST_STACK_TOP - GUEST_STACK_PAGES * PAGE_SIZE;

/// Where the builder puts a new domain's memory and mappings.
///
/// The hypervisor implements it over the new domain's frames and page
/// tables; dom0 implements it with foreign mappings and `mmu_batch`.
pub trait BuildTarget {
    /// The target's own error, carried in [`BuildError::Target`].
    type Error: fmt::Debug + fmt::Display;

    /// Copy `bytes` into guest frame `gfn` at byte `offset` (offset + len <= 4096).
    /// The frames of a new domain are zeroed already.
    fn write(&mut self, gfn: u64, offset: usize, bytes: &[u8]) -> Result<(), Self::Error>;

    /// Apply mmu operations to the new domain's address space (at most
    /// `MMU_BATCH_MAX` per call; `frame_domid` is the new domain's id).
    fn map(&mut self, ops: &[MmuOp]) -> Result<(), Self::Error>;
}

/// What to build.
#[derive(Clone, Copy, Debug)]
pub struct BuildParams<'a> {
    /// The guest ELF image (untrusted).
    pub image: &'a [u8],
    /// The new domain's ID (`frame_domid` of every mapping, `StartInfo::domid`).
    pub domid: u16,
    /// Frames the domain has; at least [`pages_needed`], at most [`PHYSMAP_MAX_PAGES`].
    pub nr_pages: u64,
    /// Frames it may grow to (reported in `StartInfo`).
    pub max_pages: u64,
    /// vCPUs (reported in `StartInfo`).
    pub vcpus: u32,
    /// `SIF_*` flags.
    pub flags: u32,
    /// Domain name, at most [`MAX_NAME_LEN`] bytes.
    pub name: &'a str,
    /// Command line, at most [`MAX_CMDLINE_LEN`] bytes.
    pub cmdline: &'a str,
    /// TSC frequency in kHz.
    pub tsc_khz: u64,
    /// dom0's bundle length, 0 for domUs; the hypervisor maps the module
    /// itself at `GUEST_MODULE_VA`.
    pub module_len: u64,
}

/// What the caller needs to start the built domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildResult {
    /// Entry point (`rip`).
    pub entry: u64,
    /// Initial stack pointer (`rsp`), `GUEST_STACK_TOP`.
    pub stack_top: u64,
    /// Where `StartInfo` is mapped (`rdi`), `GUEST_START_INFO_VA`.
    pub start_info_va: u64,
    /// First guest frame the builder left unused.
    pub first_free_gfn: u64,
    /// Frames holding the image (gfns `0 .. image_pages`).
    pub image_pages: u64,
}

/// Why [`build`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError<E> {
    /// The image is not a loadable ELF image.
    Elf(ElfError),
    /// The image's ABI version is refused.
    Abi(AbiError),
    /// The domain has fewer frames than the layout needs.
    TooSmall {
        /// Frames the image, `StartInfo` and stack need.
        needed_pages: u64,
        /// Frames the domain has.
        nr_pages: u64,
    },
    /// The domain has more frames than the physmap can map.
    TooManyPages {
        /// Frames asked for.
        nr_pages: u64,
        /// [`PHYSMAP_MAX_PAGES`].
        limit: u64,
    },
    /// The name is longer than [`MAX_NAME_LEN`].
    NameTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The command line is longer than [`MAX_CMDLINE_LEN`].
    CmdlineTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A segment's page arithmetic overflowed while loading. `Image::parse`
    /// refuses such segments, so this is a defence that should never fire.
    BadSegment {
        /// The segment's address.
        vaddr: u64,
        /// Its size in memory.
        mem_size: u64,
    },
    /// The target failed.
    Target(E),
}

impl<E> From<ElfError> for BuildError<E> {
    fn from(e: ElfError) -> Self {
        BuildError::Elf(e)
    }
}

impl<E> From<AbiError> for BuildError<E> {
    fn from(e: AbiError) -> Self {
        BuildError::Abi(e)
    }
}

impl<E: fmt::Display> fmt::Display for BuildError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Elf(e) => write!(f, "bad guest image: {e}"),
            BuildError::Abi(e) => write!(f, "wrong guest ABI: {e}"),
            BuildError::TooSmall {
                needed_pages,
                nr_pages,
            } => write!(
                f,
                "the domain needs at least {needed_pages} pages for its image, start_info and stack but \
                 has {nr_pages}"
            ),
            BuildError::TooManyPages { nr_pages, limit } => {
                write!(
                    f,
                    "the domain has {nr_pages} pages but the physmap holds at most {limit}"
                )
            }
            BuildError::NameTooLong { len, max } => {
                write!(f, "the domain name is {len} bytes long; the limit is {max}")
            }
            BuildError::CmdlineTooLong { len, max } => {
                write!(f, "the command line is {len} bytes long; the limit is {max}")
            }
            BuildError::BadSegment { vaddr, mem_size } => write!(
                f,
                "the segment at {vaddr:#x} with {mem_size:#x} bytes cannot be loaded: its pages overflow"
            ),
            BuildError::Target(e) => write!(f, "building the domain failed: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for BuildError<E> {}

/// Frames the image's loadable segments occupy (one per distinct page).
fn image_pages(image: &Image<'_>) -> u64 {
    image
        .segments()
        .iter()
        .map(|s| s.pages().map_or(0, |(_, n)| n))
        .fold(0, u64::saturating_add)
}

/// Frames a domain needs for `image`: image pages, the `StartInfo` page and
/// the stack; a toolstack checks this before creating the domain.
pub fn pages_needed(image: &Image<'_>) -> u64 {
    image_pages(image)
        .saturating_add(1)
        .saturating_add(GUEST_STACK_PAGES)
}

/// Build a domain from `p.image` into `target`: load the image, map it, the
/// `StartInfo`, the shared info, the stack and the physmap, and write the
/// `StartInfo` (see the module docs for the layout).
///
/// On error the domain is half-built; the caller destroys it.
pub fn build<T: BuildTarget>(
    target: &mut T,
    p: &BuildParams<'_>,
) -> Result<BuildResult, BuildError<T::Error>> {
    if p.name.len() > MAX_NAME_LEN {
        return Err(BuildError::NameTooLong {
            len: p.name.len(),
            max: MAX_NAME_LEN,
        });
    }
    if p.cmdline.len() > MAX_CMDLINE_LEN {
        return Err(BuildError::CmdlineTooLong {
            len: p.cmdline.len(),
            max: MAX_CMDLINE_LEN,
        });
    }
    if p.nr_pages > PHYSMAP_MAX_PAGES {
        return Err(BuildError::TooManyPages {
            nr_pages: p.nr_pages,
            limit: PHYSMAP_MAX_PAGES,
        });
    }
    let image = Image::parse(p.image)?;
    check_abi(&image)?;

    let image_pages = image_pages(&image);
    let needed_pages = pages_needed(&image);
    if needed_pages > p.nr_pages {
        return Err(BuildError::TooSmall {
            needed_pages,
            nr_pages: p.nr_pages,
        });
    }
    // needed_pages <= nr_pages <= PHYSMAP_MAX_PAGES: none of these overflow.
    let start_info_gfn = image_pages;
    let stack_gfn = start_info_gfn + 1;
    let first_free_gfn = stack_gfn + GUEST_STACK_PAGES;

    let mut batch = Batch::new(target, p.domid);
    load_image(&mut batch, &image)?;
    batch.push(MMU_MAP, 0, GUEST_START_INFO_VA, start_info_gfn)?;
    batch.push(MMU_MAP_SHARED_INFO, MMU_WRITE, GUEST_SHARED_INFO_VA, 0)?;
    for i in 0..GUEST_STACK_PAGES {
        batch.push(MMU_MAP, MMU_WRITE, STACK_BASE + i * PAGE_SIZE, stack_gfn + i)?;
    }
    for gfn in 0..p.nr_pages {
        // gfn < nr_pages <= PHYSMAP_MAX_PAGES, so the address stays below GUEST_VA_LIMIT.
        let va = gfn
            .checked_mul(PAGE_SIZE)
            .and_then(|off| GUEST_PHYSMAP_VA.checked_add(off))
            .ok_or(BuildError::TooManyPages {
                nr_pages: p.nr_pages,
                limit: PHYSMAP_MAX_PAGES,
            })?;
        batch.push(MMU_MAP, MMU_WRITE, va, gfn)?;
    }
    batch.flush()?;

    let info = start_info(p, first_free_gfn);
    target
        .write(start_info_gfn, 0, info.as_bytes())
        .map_err(BuildError::Target)?;

    Ok(BuildResult {
        entry: image.entry(),
        stack_top: GUEST_STACK_TOP,
        start_info_va: GUEST_START_INFO_VA,
        first_free_gfn,
        image_pages,
    })
}

/// Give every image page the next frame, copy the file bytes into it and
/// queue its mapping.
fn load_image<T: BuildTarget>(
    batch: &mut Batch<'_, T>,
    image: &Image<'_>,
) -> Result<(), BuildError<T::Error>> {
    let mut gfn = 0u64;
    for seg in image.segments() {
        let bad = || BuildError::BadSegment {
            vaddr: seg.vaddr,
            mem_size: seg.mem_size,
        };
        let bytes = image.segment_bytes(seg);
        let (first_va, count) = seg.pages().ok_or_else(bad)?;
        let rights = mmu_rights(seg);
        for i in 0..count {
            let va = i
                .checked_mul(PAGE_SIZE)
                .and_then(|off| first_va.checked_add(off))
                .ok_or_else(bad)?;
            let (offset, part) = file_part(seg, bytes, va).ok_or_else(bad)?;
            if !part.is_empty() {
                batch
                    .target
                    .write(gfn, offset, part)
                    .map_err(BuildError::Target)?;
            }
            batch.push(MMU_MAP, rights, va, gfn)?;
            gfn = gfn.checked_add(1).ok_or_else(bad)?;
        }
    }
    Ok(())
}

/// The `MmuOp` rights of a segment (W^X holds: `Image::parse` refuses W+X).
fn mmu_rights(seg: &Segment) -> u32 {
    let mut rights = 0;
    if seg.flags.write {
        rights |= MMU_WRITE;
    }
    if seg.flags.exec {
        rights |= MMU_EXEC;
    }
    rights
}

/// The part of `seg`'s file bytes (`bytes`) that lands in the page at
/// `page_va`, as (offset in the page, bytes); empty for a bss-only page.
fn file_part<'b>(seg: &Segment, bytes: &'b [u8], page_va: u64) -> Option<(usize, &'b [u8])> {
    let file_end = seg.vaddr.checked_add(seg.file_size)?;
    let page_end = page_va.checked_add(PAGE_SIZE)?;
    let lo = seg.vaddr.max(page_va);
    let hi = file_end.min(page_end);
    if lo >= hi {
        return Some((0, &[]));
    }
    // lo >= seg.vaddr, lo >= page_va and hi > lo, so none of these wrap.
    let src = usize::try_from(lo - seg.vaddr).ok()?;
    let len = usize::try_from(hi - lo).ok()?;
    let offset = usize::try_from(lo - page_va).ok()?;
    let part = bytes.get(src..src.checked_add(len)?)?;
    Some((offset, part))
}

/// The new domain's `StartInfo`.
fn start_info(p: &BuildParams<'_>, first_free_gfn: u64) -> StartInfo {
    let mut info = StartInfo::new_zeroed();
    info.magic = START_INFO_MAGIC;
    info.abi_major = OUR_ABI.0;
    info.abi_minor = OUR_ABI.1;
    info.flags = p.flags;
    info.domid = u32::from(p.domid);
    info.vcpus = p.vcpus;
    info.nr_pages = p.nr_pages;
    info.max_pages = p.max_pages;
    info.shared_info_va = GUEST_SHARED_INFO_VA;
    info.physmap_va = GUEST_PHYSMAP_VA;
    info.first_free_gfn = first_free_gfn;
    info.stack_top_va = GUEST_STACK_TOP;
    info.tsc_khz = p.tsc_khz;
    info.module_va = if p.module_len > 0 { GUEST_MODULE_VA } else { 0 };
    info.module_len = p.module_len;
    info.name = name_field(p.name);
    info.cmdline = name_field(p.cmdline);
    info
}

/// Mmu operations queued for the target, sent [`BATCH_OPS`] at a time.
struct Batch<'t, T: BuildTarget> {
    /// Where the operations go.
    target: &'t mut T,
    /// The queue; `len` are used.
    ops: [MmuOp; BATCH_OPS],
    /// Operations queued.
    len: usize,
    /// The new domain (`frame_domid`).
    domid: u16,
}

impl<'t, T: BuildTarget> Batch<'t, T> {
    /// An empty queue for `domid`'s mappings.
    fn new(target: &'t mut T, domid: u16) -> Self {
        Batch {
            target,
            ops: [MmuOp::default(); BATCH_OPS],
            len: 0,
            domid,
        }
    }

    /// Queue one operation, sending the queue first if it is full.
    fn push(&mut self, op: u32, flags: u32, va: u64, gfn: u64) -> Result<(), BuildError<T::Error>> {
        if self.len >= BATCH_OPS {
            self.flush()?;
        }
        if let Some(slot) = self.ops.get_mut(self.len) {
            *slot = MmuOp {
                op,
                flags,
                va,
                gfn,
                frame_domid: self.domid,
                pad: [0; 6],
            };
            self.len += 1;
        }
        Ok(())
    }

    /// Send the queued operations, if any.
    fn flush(&mut self) -> Result<(), BuildError<T::Error>> {
        let ops = self.ops.get(..self.len).unwrap_or(&[]);
        if !ops.is_empty() {
            self.target.map(ops).map_err(BuildError::Target)?;
        }
        self.len = 0;
        Ok(())
    }
}
