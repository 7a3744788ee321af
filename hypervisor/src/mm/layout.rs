//! The hypervisor's virtual memory layout: one table of constants that the
//! boot stub (`arch/x86_64/boot.S`), the linker script and the page-table
//! setup (`mm/setup.rs`) agree on. `docs/memory-layout.md` draws it.
//!
//! The lower half (PML4 slots 0-255) belongs to guests and is left empty by
//! the hypervisor. The upper half is supervisor-only and shared by every
//! address space:
//!
//! | PML4 slot | base                    | what                                   |
//! |-----------|-------------------------|----------------------------------------|
//! | 256-383   | `0xffff_8000_0000_0000` | direct map of all physical memory      |
//! | 506       | `0xffff_fd00_0000_0000` | MMIO window (uncached device mappings) |
//! | 508       | `0xffff_fe00_0000_0000` | stacks, each with an unmapped guard    |
//! | 511       | `0xffff_ffff_8000_0000` | the hypervisor image (top 2 GiB)       |

/// Size of a small page.
pub const PAGE_SIZE: u64 = 4096;
/// Size of a large (2 MiB) page.
pub const LARGE_PAGE_SIZE: u64 = 2 << 20;
/// Size of a huge (1 GiB) page.
pub const HUGE_PAGE_SIZE: u64 = 1 << 30;

/// Virtual base of the hypervisor image link address (kernel code model).
pub const KERNEL_VMA: u64 = 0xffff_ffff_8000_0000;
/// Physical address the image is loaded at (`linker.ld`: `KERNEL_PHYS`).
pub const KERNEL_PHYS: u64 = 0x20_0000;

/// Virtual base of the direct map: physical address `p` is at `DIRECT_MAP_BASE + p`.
pub const DIRECT_MAP_BASE: u64 = 0xffff_8000_0000_0000;
/// The most physical memory the direct map can cover (128 PML4 slots, 64 TiB).
pub const DIRECT_MAP_MAX: u64 = 128 << 39;
/// What the boot stub's direct map covers until the final tables are loaded.
pub const EARLY_DIRECT_MAP_LIMIT: u64 = 4 << 30;

/// Base of the MMIO window: device registers mapped uncached.
pub const MMIO_BASE: u64 = 0xffff_fd00_0000_0000;
/// Size of the MMIO window.
pub const MMIO_SIZE: u64 = 1 << 39;

/// Base of the stack region.
pub const STACK_REGION_BASE: u64 = 0xffff_fe00_0000_0000;
/// Virtual span of one stack slot: an unmapped guard page, then the stack.
pub const STACK_SLOT_SIZE: u64 = 128 * 1024;
/// How many stack slots the region holds.
pub const STACK_SLOTS: u64 = (1 << 39) / STACK_SLOT_SIZE;

/// Physical memory below this address is never given to the frame allocator
/// (real-mode IVT, BDA, EBDA, VGA, option ROMs, the BIOS).
pub const LOW_MEMORY_LIMIT: u64 = 1 << 20;

/// The first address of the upper (hypervisor) half of the canonical space.
pub const UPPER_HALF_START: u64 = 0xffff_8000_0000_0000;
/// One past the last address of the lower (guest) half.
pub const LOWER_HALF_END: u64 = 0x0000_8000_0000_0000;

/// A byte count or address as `usize`; the hypervisor is 64-bit only.
#[allow(clippy::cast_possible_truncation)] // usize is 64 bits, asserted here
pub const fn usize_from(v: u64) -> usize {
    const _: () = assert!(usize::BITS == 64);
    v as usize
}

/// Direct-map virtual address of physical address `pa`.
pub const fn phys_to_virt(pa: u64) -> u64 {
    DIRECT_MAP_BASE + pa
}

/// Physical address of a direct-map or image virtual address, if it is one.
pub const fn virt_to_phys(va: u64) -> Option<u64> {
    if va >= KERNEL_VMA {
        Some(va - KERNEL_VMA)
    } else if va >= DIRECT_MAP_BASE && va < DIRECT_MAP_BASE + DIRECT_MAP_MAX {
        Some(va - DIRECT_MAP_BASE)
    } else {
        None
    }
}

// The regions must not overlap and must sit in the PML4 slots drawn above.
const _: () = assert!(DIRECT_MAP_BASE + DIRECT_MAP_MAX <= MMIO_BASE);
const _: () = assert!(MMIO_BASE + MMIO_SIZE <= STACK_REGION_BASE);
const _: () = assert!(STACK_REGION_BASE + STACK_SLOTS * STACK_SLOT_SIZE <= KERNEL_VMA);
const _: () = assert!((STACK_REGION_BASE >> 39) & 511 == 508);
const _: () = assert!((MMIO_BASE >> 39) & 511 == 506);
const _: () = assert!((KERNEL_VMA >> 39) & 511 == 511);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_map_round_trip() {
        assert_eq!(virt_to_phys(phys_to_virt(0x1234_5000)), Some(0x1234_5000));
        assert_eq!(virt_to_phys(KERNEL_VMA + KERNEL_PHYS), Some(KERNEL_PHYS));
        assert_eq!(virt_to_phys(0x1000), None);
    }
}
