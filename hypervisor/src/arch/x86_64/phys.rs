//! Raw access to physical memory through the direct map. Used by boot-time
//! parsers (firmware tables, the boot bundle) and the frame allocator's
//! bitmap; everything else reaches memory through typed owners.

use crate::mm::layout::phys_to_virt;

/// Copy `buf.len()` bytes starting at physical address `pa`.
///
/// # Safety
/// `[pa, pa + buf.len())` must lie inside the live direct map and must not be
/// written concurrently.
pub unsafe fn copy_from_phys(pa: u64, buf: &mut [u8]) {
    let src = phys_to_virt(pa) as *const u8;
    // SAFETY: the caller guarantees the source is mapped and stable; `buf`
    // is a distinct, writable Rust slice.
    unsafe { core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
}

/// A shared view of `len` bytes of physical memory.
///
/// # Safety
/// The range must lie inside the direct map, stay mapped for `'static` and
/// never be written while the slice is in use.
pub unsafe fn phys_slice(pa: u64, len: usize) -> &'static [u8] {
    // SAFETY: upheld by the caller.
    unsafe { core::slice::from_raw_parts(phys_to_virt(pa) as *const u8, len) }
}

/// An exclusive view of `words` 64-bit words of physical memory.
///
/// # Safety
/// The range must lie inside the direct map, be 8-byte aligned, stay mapped
/// for `'static`, and be owned by the caller alone from now on.
pub unsafe fn phys_words_mut(pa: u64, words: usize) -> &'static mut [u64] {
    // SAFETY: upheld by the caller.
    unsafe { core::slice::from_raw_parts_mut(phys_to_virt(pa) as *mut u64, words) }
}

/// Zero `len` bytes of physical memory.
///
/// # Safety
/// The range must lie inside the direct map and be owned by the caller.
pub unsafe fn zero_phys(pa: u64, len: usize) {
    let dst = phys_to_virt(pa) as *mut u8;
    if pa.is_multiple_of(8) && len.is_multiple_of(8) {
        // `rep stosq`: the soft-float target's `memset` goes byte by byte.
        // SAFETY: upheld by the caller; the range is 8-byte aligned.
        unsafe {
            core::arch::asm!("rep stosq", inout("rdi") dst => _, inout("rcx") len / 8 => _, in("rax") 0u64,
                options(nostack, preserves_flags));
        }
    } else {
        // SAFETY: upheld by the caller.
        unsafe { core::ptr::write_bytes(dst, 0, len) };
    }
}

/// The 4 KiB frame at physical `pa` as a byte slice.
///
/// # Safety
/// `pa` must be a page-aligned frame inside the direct map, owned by the
/// caller, with no other live reference to it.
pub unsafe fn frame_bytes_mut(pa: u64) -> &'static mut [u8] {
    // SAFETY: upheld by the caller.
    unsafe { core::slice::from_raw_parts_mut(phys_to_virt(pa) as *mut u8, 4096) }
}

/// The 64-bit word at physical `pa` as an atomic (memory shared with a
/// guest, which may change it at any time).
///
/// # Safety
/// `pa` must be 8-byte aligned inside the direct map, in a frame that stays
/// allocated while the reference is used.
pub unsafe fn atomic_u64(pa: u64) -> &'static core::sync::atomic::AtomicU64 {
    // SAFETY: upheld by the caller; atomics tolerate concurrent guest writes.
    unsafe { &*(phys_to_virt(pa) as *const core::sync::atomic::AtomicU64) }
}

/// The 32-bit word at physical `pa` as an atomic.
///
/// # Safety
/// As for `atomic_u64`, 4-byte aligned.
pub unsafe fn atomic_u32(pa: u64) -> &'static core::sync::atomic::AtomicU32 {
    // SAFETY: upheld by the caller.
    unsafe { &*(phys_to_virt(pa) as *const core::sync::atomic::AtomicU32) }
}

/// The byte at physical `pa` as an atomic.
///
/// # Safety
/// As for `atomic_u64`.
pub unsafe fn atomic_u8(pa: u64) -> &'static core::sync::atomic::AtomicU8 {
    // SAFETY: upheld by the caller.
    unsafe { &*(phys_to_virt(pa) as *const core::sync::atomic::AtomicU8) }
}
