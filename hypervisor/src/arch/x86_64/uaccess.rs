//! Checked access to guest memory: the only way the hypervisor reads or
//! writes what a guest points at. A range must lie in the lower half
//! without overflow; the copy runs with SMAP opened (`stac`/`clac`, Intel
//! SDM Vol.3A 4.6.1) and a fault during it (unmapped page, or a write to a
//! read-only page, CR0.WP being set) resumes at a fixup through the
//! exception table, so the caller gets `Err(Fault)` instead of a crash.
//! The copy is a `rep movsb`, whose interrupted count tells how far it got.

use super::idt::ExceptionFrame;
use core::sync::atomic::{AtomicBool, Ordering};

/// A guest address could not be accessed (becomes `EFAULT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault;

/// One past the highest guest address (the lower half).
pub const GUEST_LIMIT: u64 = 0x0000_8000_0000_0000;

static SMAP: AtomicBool = AtomicBool::new(false);

/// Tell the accessors whether CR4.SMAP is on (then `stac`/`clac` exist and
/// are needed).
pub fn init(smap: bool) {
    SMAP.store(smap, Ordering::Relaxed);
}

/// Whether `[va, va + len)` is a valid guest range.
pub fn range_ok(va: u64, len: u64) -> bool {
    va.checked_add(len).is_some_and(|end| end <= GUEST_LIMIT)
}

#[repr(C)]
struct ExEntry {
    insn: u64,
    fixup: u64,
}

unsafe extern "C" {
    static __ex_table_start: ExEntry;
    static __ex_table_end: ExEntry;
}

/// If `frame.rip` is a guest-access instruction, continue at its fixup.
pub fn fixup(frame: &mut ExceptionFrame) -> bool {
    // SAFETY: the linker script brackets the `.ex_table` entries with these
    // symbols; the table is read-only data of whole `ExEntry`s.
    let table = unsafe {
        let start = &raw const __ex_table_start;
        let end = &raw const __ex_table_end;
        let count = (end as usize - start as usize) / core::mem::size_of::<ExEntry>();
        core::slice::from_raw_parts(start, count)
    };
    match table.iter().find(|e| e.insn == frame.rip) {
        Some(entry) => {
            frame.rip = entry.fixup;
            true
        }
        None => false,
    }
}

/// Copy `len` bytes from `src` to `dst` with guest access opened; the bytes
/// left uncopied (0 on success).
///
/// # Safety
/// One side must be hypervisor memory valid for `len` bytes; the other is a
/// checked guest range, whose faults the exception table catches.
unsafe fn copy_raw(dst: *mut u8, src: *const u8, len: usize) -> usize {
    let left: usize;
    if SMAP.load(Ordering::Relaxed) {
        // SAFETY: upheld by the caller; `stac`/`clac` exist (SMAP is on).
        unsafe {
            core::arch::asm!(
                "stac",
                "2: rep movsb",
                "3: clac",
                ".pushsection .ex_table, \"a\"",
                ".balign 8",
                ".quad 2b, 3b",
                ".popsection",
                inout("rcx") len => left,
                inout("rsi") src => _,
                inout("rdi") dst => _,
                options(nostack, preserves_flags)
            );
        }
    } else {
        // SAFETY: as above, without SMAP.
        unsafe {
            core::arch::asm!(
                "2: rep movsb",
                "3:",
                ".pushsection .ex_table, \"a\"",
                ".balign 8",
                ".quad 2b, 3b",
                ".popsection",
                inout("rcx") len => left,
                inout("rsi") src => _,
                inout("rdi") dst => _,
                options(nostack, preserves_flags)
            );
        }
    }
    left
}

/// Copy `dst.len()` bytes from guest address `src` (current address space).
pub fn copy_from_guest(dst: &mut [u8], src: u64) -> Result<(), Fault> {
    if !range_ok(src, dst.len() as u64) {
        return Err(Fault);
    }
    // SAFETY: `dst` is a valid Rust buffer; `src` is a checked lower-half
    // range, so a fault there is caught by the fixup.
    let left = unsafe { copy_raw(dst.as_mut_ptr(), src as *const u8, dst.len()) };
    if left == 0 { Ok(()) } else { Err(Fault) }
}

/// Copy `src` to guest address `dst` (current address space).
pub fn copy_to_guest(dst: u64, src: &[u8]) -> Result<(), Fault> {
    if !range_ok(dst, src.len() as u64) {
        return Err(Fault);
    }
    // SAFETY: as for `copy_from_guest`, in the other direction.
    let left = unsafe { copy_raw(dst as *mut u8, src.as_ptr(), src.len()) };
    if left == 0 { Ok(()) } else { Err(Fault) }
}

/// Close SMAP's window after a guest exit: an interrupt gate keeps the
/// guest's RFLAGS.AC, which a guest may set with `popf`, and AC = 1 would
/// let the hypervisor touch user pages unchecked (Intel SDM Vol.3A 4.6.1).
/// (`syscall` clears AC through FMASK.)
pub fn close_after_exit() {
    if SMAP.load(Ordering::Relaxed) {
        // SAFETY: SMAP is on, so `clac` exists; clearing AC only removes
        // the hypervisor's access to user pages.
        unsafe { core::arch::asm!("clac", options(nomem, nostack)) };
    }
}
