//! Memory bring-up on the real machine: the frame allocator over the boot
//! memory map, the hypervisor's own page tables (direct map, W^X image,
//! guarded stacks, the MMIO window) and the heap. The logic it applies is
//! the host-tested `memmap`, `frame` and `paging`; this file feeds them real
//! memory.
//!
//! This module holds `unsafe`: the bitmap and the heap are carved out of raw
//! physical memory, and loading CR3 must map everything in use.
#![allow(unsafe_code)]

use super::frame::{FrameAllocator, Mfn, bitmap_words, managed_end, place_bitmap};
use super::layout::*;
use super::memmap::{MemoryMap, PhysRange, RegionKind};
use super::paging::{self, MapError, PageSize, PteFlags};
use crate::arch::cpu::Features;
use crate::arch::paging::{DirectMapTables, LiveTables, load_root};
use crate::arch::phys;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

/// Most free ranges tracked while building the allocator.
const MAX_FREE_RANGES: usize = 256;
/// Most direct-map spans (memory-map regions rounded to 2 MiB, merged).
const MAX_SPANS: usize = 128;

/// What went wrong while bringing up memory.
#[derive(Clone, Copy, Debug)]
pub enum MmError {
    /// No usable RAM above 1 MiB outside the image and modules.
    NoFreeMemory,
    /// No free range below 4 GiB can hold the frame bitmap.
    NoRoomForBitmap {
        /// Bytes needed.
        bytes: u64,
    },
    /// Frames ran out.
    OutOfFrames,
    /// A mapping failed.
    Map(MapError),
    /// The allocator is not up yet.
    NotReady,
    /// A window (MMIO, stacks) is full.
    WindowFull(&'static str),
}

impl fmt::Display for MmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MmError::NoFreeMemory => f.write_str("no usable memory above 1 MiB"),
            MmError::NoRoomForBitmap { bytes } => {
                write!(f, "no free range below 4 GiB holds the {bytes}-byte frame bitmap")
            }
            MmError::OutOfFrames => f.write_str("out of physical frames"),
            MmError::Map(e) => write!(f, "mapping failed: {e}"),
            MmError::NotReady => f.write_str("memory management is not initialised"),
            MmError::WindowFull(w) => write!(f, "the {w} window is full"),
        }
    }
}

impl From<MapError> for MmError {
    fn from(e: MapError) -> Self {
        MmError::Map(e)
    }
}

/// The frame allocator (lock order: `KERNEL_ROOT` users lock `FRAMES` second).
pub static FRAMES: Mutex<Option<FrameAllocator<'static>>> = Mutex::new(None);
/// Physical address of the hypervisor's PML4 once built.
static KERNEL_ROOT: AtomicU64 = AtomicU64::new(0);
/// Serialises changes to the hypervisor's page tables.
static PT_LOCK: Mutex<()> = Mutex::new(());
static MMIO_NEXT: AtomicU64 = AtomicU64::new(MMIO_BASE);
static NEXT_STACK_SLOT: AtomicU64 = AtomicU64::new(0);
/// The direct-map spans actually mapped, for `map_firmware`.
static SPANS: Mutex<([PhysRange; MAX_SPANS], usize)> =
    Mutex::new(([PhysRange { start: 0, end: 0 }; MAX_SPANS], 0));
/// Page-table entry bits the CPU accepts (NX only with EFER.NXE).
static PTE_MASK: AtomicU64 = AtomicU64::new(!0);

unsafe extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __image_end: u8;
}

fn sym(s: &u8) -> u64 {
    s as *const u8 as u64
}

/// The image's sections as virtual ranges: text, rodata, data+bss.
fn image_sections() -> [(u64, u64); 3] {
    // SAFETY: linker-script symbols; only their addresses are taken.
    unsafe {
        [
            (sym(&__text_start), sym(&__text_end)),
            (sym(&__rodata_start), sym(&__rodata_end)),
            (sym(&__data_start), sym(&__image_end)),
        ]
    }
}

/// The physical range the image occupies.
pub fn image_phys() -> PhysRange {
    let [text, _, data] = image_sections();
    PhysRange {
        start: text.0 - KERNEL_VMA,
        end: (data.1 - KERNEL_VMA).next_multiple_of(PAGE_SIZE),
    }
}

/// Memory figures for the boot log and, later, `xm info`.
#[derive(Clone, Copy, Debug)]
pub struct MemoryReport {
    /// Usable RAM in the firmware map.
    pub usable_bytes: u64,
    /// Frames the allocator manages.
    pub total_frames: u64,
    /// Frames free now.
    pub free_frames: u64,
    /// Where the frame bitmap lives.
    pub bitmap: PhysRange,
}

/// Current frame counts: (total, free).
pub fn frame_counts() -> (u64, u64) {
    FRAMES
        .lock()
        .as_ref()
        .map_or((0, 0), |f| (f.total_frames(), f.free_frames()))
}

/// Build the frame allocator from the memory map, keeping the image and
/// `modules` (the boot bundle) out of it.
pub fn init_frames(map: &MemoryMap, modules: &[PhysRange]) -> Result<MemoryReport, MmError> {
    let mut exclusions = [PhysRange { start: 0, end: 0 }; 1 + crate::boot::MAX_MODULES];
    exclusions[0] = image_phys();
    for (slot, m) in exclusions[1..].iter_mut().zip(modules) {
        *slot = *m;
    }
    let mut free = [PhysRange { start: 0, end: 0 }; MAX_FREE_RANGES];
    let n = map.free_ranges(&exclusions[..=modules.len()], LOW_MEMORY_LIMIT, &mut free);
    let free = &free[..n];
    if free.is_empty() {
        return Err(MmError::NoFreeMemory);
    }
    let words = bitmap_words(managed_end(free));
    let bytes = (words as u64) * 8;
    let bitmap =
        place_bitmap(free, bytes, EARLY_DIRECT_MAP_LIMIT).ok_or(MmError::NoRoomForBitmap { bytes })?;
    // SAFETY: `bitmap` is free RAM (inside `free`), below 4 GiB so inside the
    // boot direct map, page aligned, and from now on reserved for the bitmap
    // alone: the allocator never hands it out.
    let storage = unsafe { phys::phys_words_mut(bitmap.start, words) };
    let frames = FrameAllocator::new(storage, free, bitmap);
    let report = MemoryReport {
        usable_bytes: map.total_usable_bytes(),
        total_frames: frames.total_frames(),
        free_frames: frames.free_frames(),
        bitmap,
    };
    *FRAMES.lock() = Some(frames);
    Ok(report)
}

/// Round a span out to 2 MiB and merge it into `spans` (kept sorted).
fn add_span(spans: &mut [PhysRange; MAX_SPANS], count: &mut usize, start: u64, end: u64) {
    let start = start & !(LARGE_PAGE_SIZE - 1);
    let end = end.min(DIRECT_MAP_MAX).next_multiple_of(LARGE_PAGE_SIZE);
    if end <= start {
        return;
    }
    // Regions arrive sorted, so merging with the last span suffices.
    if *count > 0 && spans[*count - 1].end >= start {
        let last = &mut spans[*count - 1];
        last.end = last.end.max(end);
        return;
    }
    if *count < MAX_SPANS {
        spans[*count] = PhysRange { start, end };
        *count += 1;
    } else {
        log::warn!("too many direct-map spans; {start:#x}..{end:#x} left unmapped");
    }
}

/// Build the hypervisor's page tables and a guarded boot stack; returns the
/// root and the stack top for [`switch_to_kernel_tables`].
///
/// The tables map: all RAM (usable and ACPI regions) at the direct map
/// with the largest pages the CPU allows, read-write and never executable;
/// the image text RX, rodata R, data and bss RW+NX; a guarded boot stack.
/// The lower half, and with it the boot identity map, is left empty.
pub fn build_kernel_tables(map: &MemoryMap, features: &Features) -> Result<(u64, u64), MmError> {
    let mask = if features.nx {
        !0
    } else {
        !PteFlags::NO_EXECUTE.bits()
    };
    PTE_MASK.store(mask, Ordering::Relaxed);
    let max_size = if features.huge_pages {
        PageSize::Size1G
    } else {
        PageSize::Size2M
    };
    let flags = |f: PteFlags| PteFlags::from_bits_retain(f.bits() & mask);

    let mut guard = FRAMES.lock();
    let frames = guard.as_mut().ok_or(MmError::NotReady)?;
    let mut mem = DirectMapTables::early(frames);
    let root = paging::TableMemory::alloc_table(&mut mem).ok_or(MmError::OutOfFrames)?;

    // The direct map.
    let mut spans = SPANS.lock();
    let (span_buf, span_count) = &mut *spans;
    add_span(span_buf, span_count, 0, LARGE_PAGE_SIZE);
    // RAM only: reserved ranges may be device memory (PCIe MMCONFIG, chipset
    // registers) that must never be mapped cacheable; `map_firmware` and
    // `map_mmio` map what is needed of them on demand.
    for region in map
        .regions()
        .iter()
        .filter(|r| r.kind != RegionKind::Reserved && r.kind != RegionKind::Unusable)
    {
        add_span(span_buf, span_count, region.start, region.end);
    }
    let rw_nx = flags(PteFlags::PRESENT | PteFlags::WRITABLE | PteFlags::NO_EXECUTE | PteFlags::GLOBAL);
    let ro_nx = flags(PteFlags::PRESENT | PteFlags::NO_EXECUTE | PteFlags::GLOBAL);
    // The image's own frames appear in the direct map read-only, so that no
    // alias makes hypervisor code or rodata writable.
    let image = image_phys();
    for span in &span_buf[..*span_count] {
        log::debug!("direct map {span} at {:#x}", phys_to_virt(span.start));
        let pieces = [
            (span.start, span.end.min(image.start), rw_nx),
            (span.start.max(image.start), span.end.min(image.end), ro_nx),
            (span.start.max(image.end), span.end, rw_nx),
        ];
        for (start, end, f) in pieces {
            if start < end {
                paging::map_range(
                    &mut mem,
                    root,
                    phys_to_virt(start),
                    start,
                    end - start,
                    f,
                    max_size,
                )?;
            }
        }
    }

    // The image, W^X.
    let [text, rodata, data] = image_sections();
    let text_flags = flags(PteFlags::PRESENT | PteFlags::GLOBAL);
    let ro_flags = flags(PteFlags::PRESENT | PteFlags::NO_EXECUTE | PteFlags::GLOBAL);
    for ((start, end), f) in [(text, text_flags), (rodata, ro_flags), (data, rw_nx)] {
        let end = end.next_multiple_of(PAGE_SIZE);
        paging::map_range(
            &mut mem,
            root,
            start,
            start - KERNEL_VMA,
            end - start,
            f,
            PageSize::Size4K,
        )?;
    }

    // Every upper-half PML4 slot the hypervisor uses must exist before the
    // first guest space copies the upper half: create the MMIO window's.
    let mmio_slot = ((MMIO_BASE >> 39) & 511) as usize;
    if paging::TableMemory::read(&mem, root, mmio_slot) == 0 {
        let pdpt = paging::TableMemory::alloc_table(&mut mem).ok_or(MmError::OutOfFrames)?;
        let entry = pdpt | (PteFlags::PRESENT | PteFlags::WRITABLE).bits();
        paging::TableMemory::write(&mut mem, root, mmio_slot, entry);
    }

    // The boot CPU's stack, with its guard page.
    let stack_top = map_stack_in(&mut mem, root, BOOT_STACK_PAGES, rw_nx)?;
    Ok((root, stack_top))
}

/// Load the tables `build_kernel_tables` made, move onto the new stack and
/// continue in `next`. The boot identity map is gone from then on.
pub fn switch_to_kernel_tables(root: u64, stack_top: u64, next: extern "C" fn() -> !) -> ! {
    KERNEL_ROOT.store(root, Ordering::Release);
    // SAFETY: `build_kernel_tables` mapped the image (code, data, bss with
    // every static, the current boot stack included), the direct map (which
    // every boot-time pointer uses) and the new stack.
    unsafe { load_root(root) };
    // SAFETY: `stack_top` is the top of the freshly mapped, unused stack.
    unsafe { crate::arch::paging::switch_stack(stack_top, next) }
}

/// Pages of the boot CPU's main stack.
pub const BOOT_STACK_PAGES: u64 = 16;

fn map_stack_in(
    mem: &mut DirectMapTables<'_, '_>,
    root: u64,
    pages: u64,
    f: PteFlags,
) -> Result<u64, MmError> {
    if pages == 0 || (pages + 1) * PAGE_SIZE > STACK_SLOT_SIZE {
        return Err(MmError::WindowFull("stack slot"));
    }
    let slot = NEXT_STACK_SLOT.fetch_add(1, Ordering::Relaxed);
    if slot >= STACK_SLOTS {
        return Err(MmError::WindowFull("stack"));
    }
    // The first page of the slot stays unmapped: the guard.
    let bottom = STACK_REGION_BASE + slot * STACK_SLOT_SIZE + PAGE_SIZE;
    for i in 0..pages {
        let frame = paging::TableMemory::alloc_table(mem).ok_or(MmError::OutOfFrames)?;
        paging::map(mem, root, bottom + i * PAGE_SIZE, frame, PageSize::Size4K, f)?;
    }
    log::debug!("stack slot {slot}: {pages} pages at {bottom:#x}, guard page below");
    Ok(bottom + pages * PAGE_SIZE)
}

/// Clear the page-table bits this CPU does not support (NX without EFER.NXE).
pub fn mask_pte(f: PteFlags) -> PteFlags {
    PteFlags::from_bits_retain(f.bits() & PTE_MASK.load(Ordering::Relaxed))
}

/// Physical address of the hypervisor's own PML4.
pub fn kernel_root() -> u64 {
    KERNEL_ROOT.load(Ordering::Acquire)
}

fn rw_nx() -> PteFlags {
    PteFlags::from_bits_retain(
        (PteFlags::PRESENT | PteFlags::WRITABLE | PteFlags::NO_EXECUTE | PteFlags::GLOBAL).bits()
            & PTE_MASK.load(Ordering::Relaxed),
    )
}

/// Map a new stack of `pages` pages below an unmapped guard page; its top.
pub fn alloc_stack(pages: u64) -> Result<u64, MmError> {
    let root = KERNEL_ROOT.load(Ordering::Acquire);
    let _pt = PT_LOCK.lock();
    let mut guard = FRAMES.lock();
    let frames = guard.as_mut().ok_or(MmError::NotReady)?;
    let mut mem = DirectMapTables::new(frames);
    map_stack_in(&mut mem, root, pages, rw_nx())
}

/// Map device registers `[pa, pa + len)` uncached; the virtual address of `pa`.
pub fn map_mmio(pa: u64, len: u64) -> Result<u64, MmError> {
    let f = PteFlags::from_bits_retain(
        (rw_nx() | PteFlags::NO_CACHE | PteFlags::WRITE_THROUGH).bits() & PTE_MASK.load(Ordering::Relaxed),
    );
    map_window(pa, len, f)
}

fn map_window(pa: u64, len: u64, f: PteFlags) -> Result<u64, MmError> {
    let first = pa & !(PAGE_SIZE - 1);
    let end = pa
        .checked_add(len)
        .ok_or(MmError::WindowFull("mmio"))?
        .next_multiple_of(PAGE_SIZE);
    let size = end - first;
    let va = MMIO_NEXT
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |next| {
            next.checked_add(size).filter(|end| *end <= MMIO_BASE + MMIO_SIZE)
        })
        .map_err(|_| MmError::WindowFull("mmio"))?;
    let root = KERNEL_ROOT.load(Ordering::Acquire);
    let _pt = PT_LOCK.lock();
    let mut guard = FRAMES.lock();
    let frames = guard.as_mut().ok_or(MmError::NotReady)?;
    let mut mem = DirectMapTables::new(frames);
    paging::map_range(&mut mem, root, va, first, size, f, PageSize::Size4K)?;
    log::debug!("mapped {first:#x}+{size:#x} at {va:#x} ({f:?})");
    Ok(va + (pa - first))
}

/// A virtual address for firmware data at `[pa, pa + len)`: the direct map
/// when it covers the range, otherwise a new read-only, cached mapping.
pub fn map_firmware(pa: u64, len: u64) -> Result<u64, MmError> {
    let end = pa.checked_add(len).ok_or(MmError::WindowFull("firmware"))?;
    let spans = SPANS.lock();
    if spans.0[..spans.1].iter().any(|s| s.start <= pa && end <= s.end) {
        return Ok(phys_to_virt(pa));
    }
    drop(spans);
    let f = PteFlags::from_bits_retain(
        (PteFlags::PRESENT | PteFlags::NO_EXECUTE | PteFlags::GLOBAL).bits()
            & PTE_MASK.load(Ordering::Relaxed),
    );
    map_window(pa, len, f)
}

/// Allocate `count` contiguous frames; the first.
pub fn alloc_contiguous(count: u64) -> Result<Mfn, MmError> {
    FRAMES
        .lock()
        .as_mut()
        .ok_or(MmError::NotReady)?
        .alloc_contiguous(count, 1)
        .ok_or(MmError::OutOfFrames)
}

/// What the self-check of the hypervisor's own page tables found.
#[derive(Clone, Copy, Debug, Default)]
pub struct TableAudit {
    /// Leaf mappings walked.
    pub mappings: u64,
    /// Leaves both writable and executable.
    pub writable_executable: u64,
    /// Leaves reachable from ring 3.
    pub user_accessible: u64,
    /// Leaves in the lower (guest) half.
    pub lower_half: u64,
    /// The first offending mapping, if any.
    pub first_offender: Option<paging::Mapping>,
}

/// Walk the live page tables (CR3) and count what must never exist: W+X
/// pages, user-accessible hypervisor pages, anything in the lower half.
pub fn audit_live_tables() -> TableAudit {
    let root = crate::arch::cpu::cr3();
    let mut audit = TableAudit::default();
    paging::walk(&LiveTables, root, |m| {
        audit.mappings += 1;
        let bad_wx = m.is_writable_executable();
        let bad_user = m.flags.contains(PteFlags::USER);
        let bad_low = m.va < LOWER_HALF_END;
        audit.writable_executable += u64::from(bad_wx);
        audit.user_accessible += u64::from(bad_user);
        audit.lower_half += u64::from(bad_low);
        if (bad_wx || bad_user || bad_low) && audit.first_offender.is_none() {
            audit.first_offender = Some(m);
        }
    });
    audit
}

/// The 4 KiB of frame `mfn`, through the direct map.
///
/// Only for frames the caller owns outright and that no other reference
/// reaches at the same time: a domain's own frame under the domain-table
/// lock, or a frame just allocated.
pub fn frame_bytes_mut(mfn: Mfn) -> &'static mut [u8] {
    // SAFETY: the final direct map covers every allocatable frame; the
    // caller owns the frame and holds the only reference (see above).
    unsafe { phys::frame_bytes_mut(mfn.addr()) }
}

/// Zero `count` frames starting at `first` (through the direct map).
pub fn zero_frames(first: Mfn, count: u64) {
    // SAFETY: the caller owns these frames (just allocated) and the final
    // direct map covers all RAM.
    unsafe { phys::zero_phys(first.addr(), usize_from(count * PAGE_SIZE)) };
}
