//! The guest runtime proper (guest target only): the `_start` entry, the
//! ELF note that states the ABI the image was built for, the Rust start
//! routine that validates `start_info` and sets up memory before calling
//! the guest's main, and the panic handler.

use crate::{console, event, heap, hypercall, info, mem};
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};
use dom0_abi::{
    ABI_VERSION_MAJOR, ABI_VERSION_MINOR, NOTE_ABI_DESC_SIZE, NOTE_NAME, NOTE_TYPE_ABI_VERSION, PAGE_SIZE,
    ShutdownReason, StartInfo,
};

// The note below spells the name out; keep it in step with the ABI crate.
const _: () = {
    let want = b"Oxen\0";
    assert!(NOTE_NAME.len() == want.len());
    let mut i = 0;
    while i < want.len() {
        assert!(NOTE_NAME[i] == want[i]);
        i += 1;
    }
    assert!(NOTE_ABI_DESC_SIZE == 4);
};

// `_start` and the ABI note share one `global_asm!` so that they land in
// the same object: the linker pulls that object in for the entry symbol,
// and the note comes with it.
core::arch::global_asm!(
    // The builder enters with rsp = GUEST_STACK_TOP and rdi = the
    // StartInfo's address (dom0_abi::StartInfo).
    ".pushsection .text._start,\"ax\",@progbits",
    ".global _start",
    ".type _start, @function",
    "_start:",
    "xor ebp, ebp",
    "and rsp, -16",
    "call {start}",
    "ud2",
    ".size _start, . - _start",
    ".popsection",
    // ELF note (System V gABI "Note Section"): namesz, descsz, type, the
    // name padded to 4 bytes, then the descriptor: major, minor (u16 LE).
    ".pushsection .note.oxen,\"a\",@note",
    ".balign 4",
    ".long {namesz}",
    ".long {descsz}",
    ".long {ntype}",
    ".asciz \"Oxen\"",
    ".balign 4",
    ".short {major}",
    ".short {minor}",
    ".balign 4",
    ".popsection",
    start = sym sdk_start,
    namesz = const NOTE_NAME.len(),
    descsz = const NOTE_ABI_DESC_SIZE,
    ntype = const NOTE_TYPE_ABI_VERSION,
    major = const ABI_VERSION_MAJOR,
    minor = const ABI_VERSION_MINOR,
);

unsafe extern "Rust" {
    /// The guest's main, defined by [`entry!`](crate::entry).
    fn __oxen_guest_main() -> ShutdownReason;
}

/// Called by `_start` with `rdi`: check and keep `start_info`, set up the
/// frame pool and the heap, bind `VIRQ_CONTROL`, run the guest, shut down
/// with its reason.
extern "C" fn sdk_start(start_info_va: u64) -> ! {
    let si = match load(start_info_va) {
        Ok(si) => info::store(si),
        Err(e) => {
            crate::println!("oxen-guest-sdk: cannot start: {e}");
            hypercall::shutdown(ShutdownReason::Crash);
        }
    };
    let plan = mem::plan(si.first_free_gfn, si.nr_pages);
    mem::init_pool(plan.pool);
    let heap_bytes = (plan.heap.end - plan.heap.start) * PAGE_SIZE;
    // SAFETY: frames from `first_free_gfn` up are ones the builder left
    // unused; the domain owns them and the physmap maps them read-write
    // (dom0_abi::GUEST_PHYSMAP_VA). The pool's frames sit above the heap's,
    // and nothing else in the SDK touches these frames.
    unsafe { heap::init(mem::frame_va(plan.heap.start), heap_bytes) };
    event::start();
    // SAFETY: `entry!` defines the symbol with exactly this signature; a
    // guest without `entry!` fails to link.
    let reason = unsafe { __oxen_guest_main() };
    console::flush();
    hypercall::shutdown(reason)
}

/// Read and validate the `StartInfo` at `va`.
fn load(va: u64) -> Result<StartInfo, info::StartInfoError> {
    info::check_pointer(va)?;
    // SAFETY: the builder maps a StartInfo (read-only) at the address it
    // passes in rdi; the pointer is non-null, 8-aligned and the structure
    // lies in the lower half. Were it unmapped, the read would fault with
    // no handler registered yet, which crashes the domain.
    let si = unsafe { core::ptr::read(va as *const StartInfo) };
    info::validate(&si)?;
    Ok(si)
}

static PANICKING: AtomicBool = AtomicBool::new(false);

/// Report the panic and shut down with `Crash` (a panic while reporting
/// skips straight to the shutdown).
#[panic_handler]
fn panic(panic: &PanicInfo<'_>) -> ! {
    if !PANICKING.swap(true, Ordering::SeqCst) {
        match panic.location() {
            Some(at) => crate::println!("panic: {} at {}:{}", panic.message(), at.file(), at.line()),
            None => crate::println!("panic: {}", panic.message()),
        }
    }
    hypercall::shutdown(ShutdownReason::Crash)
}
