//! The hardware side of page tables: tables reached through the direct map,
//! loading CR3 and flushing the TLB. The table logic itself is the portable
//! `mm::paging`, which this module feeds with real memory.

use crate::mm::frame::FrameAllocator;
use crate::mm::layout::{EARLY_DIRECT_MAP_LIMIT, PAGE_SIZE, phys_to_virt};
use crate::mm::paging::TableMemory;

/// Page-table memory reached through the direct map, with new tables taken
/// from the frame allocator.
pub struct DirectMapTables<'a, 'b> {
    frames: &'a mut FrameAllocator<'b>,
    /// Tables must lie below this address: before the final tables are
    /// loaded only the boot stub's 4 GiB are mapped.
    limit: u64,
}

impl<'a, 'b> DirectMapTables<'a, 'b> {
    /// Tables for use while the boot stub's page tables are live.
    pub fn early(frames: &'a mut FrameAllocator<'b>) -> Self {
        Self {
            frames,
            limit: EARLY_DIRECT_MAP_LIMIT,
        }
    }

    /// Tables for use once the final direct map covers all memory.
    pub fn new(frames: &'a mut FrameAllocator<'b>) -> Self {
        Self {
            frames,
            limit: u64::MAX,
        }
    }
}

impl TableMemory for DirectMapTables<'_, '_> {
    fn alloc_table(&mut self) -> Option<u64> {
        let frame = self.frames.alloc_below(self.limit)?.addr();
        // SAFETY: the frame was just allocated, so nothing else uses it, and
        // it lies below `limit`, inside the direct map that is live now.
        unsafe { super::phys::zero_phys(frame, PAGE_SIZE as usize) };
        Some(frame)
    }

    fn read(&self, table: u64, index: usize) -> u64 {
        assert!(index < 512, "page-table index out of range");
        let entry = (phys_to_virt(table) as *const u64).wrapping_add(index);
        // SAFETY: `table` is a page-table frame (allocated by `alloc_table`
        // or the boot stub) in the live direct map; the index is in range.
        unsafe { entry.read_volatile() }
    }

    fn write(&mut self, table: u64, index: usize, value: u64) {
        assert!(index < 512, "page-table index out of range");
        let entry = (phys_to_virt(table) as *mut u64).wrapping_add(index);
        // SAFETY: as for `read`; page tables are only written under the
        // kernel page-table lock.
        unsafe { entry.write_volatile(value) }
    }
}

/// Read-only access to live page tables through the direct map (for walks).
pub struct LiveTables;

impl TableMemory for LiveTables {
    fn alloc_table(&mut self) -> Option<u64> {
        None
    }

    fn read(&self, table: u64, index: usize) -> u64 {
        assert!(index < 512, "page-table index out of range");
        let entry = (phys_to_virt(table) as *const u64).wrapping_add(index);
        // SAFETY: walks start at CR3 and follow present entries only, all of
        // which point at table frames inside the direct map.
        unsafe { entry.read_volatile() }
    }

    fn write(&mut self, _table: u64, _index: usize, _value: u64) {
        unreachable!("LiveTables is read-only");
    }
}

/// Make `root` the current top-level page table.
///
/// # Safety
/// `root` must be a complete PML4 that maps the code, stack and data in use
/// at the call, at the same virtual addresses.
pub unsafe fn load_root(root: u64) {
    // SAFETY: the caller guarantees the new tables map everything in use.
    unsafe {
        core::arch::asm!("mov cr3, {}", in(reg) root, options(nostack, preserves_flags));
    }
}

/// Flush the TLB entry of one virtual address on this CPU.
pub fn flush_page(va: u64) {
    x86_64::instructions::tlb::flush(x86_64::VirtAddr::new_truncate(va));
}

/// Move to a new stack and call `entry` on it.
///
/// # Safety
/// `stack_top` must be the 16-byte-aligned top of a mapped, unused stack.
pub unsafe fn switch_stack(stack_top: u64, entry: extern "C" fn() -> !) -> ! {
    // SAFETY: the caller guarantees the stack; `entry` never returns, so the
    // old stack is never used again.
    unsafe {
        core::arch::asm!(
            "mov rsp, {top}",
            "xor ebp, ebp",
            "call {entry}",
            "ud2",
            top = in(reg) stack_top,
            entry = in(reg) entry,
            options(noreturn)
        )
    }
}
