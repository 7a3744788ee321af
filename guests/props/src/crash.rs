//! CRASH properties: a guest context the hypervisor cannot resume or
//! deliver to must end in a crash of that domain — reported as `domain N
//! ('p-NAME') crashed:` by the hypervisor — never in a hypervisor fault, a
//! hang, or a frame written where the guest may not write. Each property
//! prints `expecting CRASH` right before the deadly act; if the act comes
//! back, it reports `FAILURE (still alive)`.
//!
//! The acts: an exception with no handler; `iret` frames with a
//! non-canonical or upper-half `rip`, an upper-half `rsp`, or that cannot
//! be read (unmapped, straddling the end of the lower half); handlers at
//! unmapped addresses (once, and recursively through #PF); a stack that
//! cannot take the exception frame (unmapped, upper half, non-canonical,
//! read-only, running into the guard page); an event upcall onto a bad
//! stack or to an unmapped callback; and a `syscall` in the last bytes of
//! the lower half, whose return address is the first non-canonical one.

use oxen_guest_sdk::dom0_abi::{
    GUEST_START_INFO_VA, GUEST_VA_LIMIT, Hypercall, IretFrame, MMU_EXEC, MMU_WRITE, PAGE_SIZE, RFLAGS_IF,
    TrapEntry, vector,
};
use oxen_guest_sdk::{hypercall, mem, probe};

use crate::framework::{PropResult, accepted, expecting_crash};
use crate::lowlevel::{HV_DIRECT_MAP, HV_IMAGE, NON_CANONICAL, STACK_BOTTOM, UNMAPPED};
use crate::mmu;

/// A page, as a length.
const PAGE_BYTES: usize = 4096;
const _: () = assert!(PAGE_BYTES as u64 == PAGE_SIZE);

/// What a CRASH property returns when its act came back.
fn still_alive() -> PropResult {
    Err(alloc::string::String::from("still alive"))
}

/// Install the probe handler for #UD only: delivery is attempted, and no
/// other vector is handled, so nothing can turn the crash into a recovery.
fn ud_handler_only() -> Result<(), alloc::string::String> {
    accepted("install the #UD handler", probe::install(&[vector::UD]))
}

/// Register a raw trap table: `vector` handled at `handler` and nothing
/// else (no SDK stub involved).
fn raw_trap_table(vector: u8, handler: u64) -> Result<(), alloc::string::String> {
    let entry = TrapEntry {
        vector,
        handler,
        ..TrapEntry::default()
    };
    accepted("register the trap table", hypercall::set_trap_table(&[entry]))
}

/// An exception (#UD) with no handler registered.
pub fn no_handler() -> PropResult {
    expecting_crash();
    // SAFETY: `ud2` raises #UD; with no handler the hypervisor crashes the
    // domain. Nothing here needs to be preserved if it does not.
    unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
    still_alive()
}

/// Make the `iret` hypercall with `rsp` at `frame_va`; if it returns (an
/// error instead of a crash) carry on where we were.
fn iret_at(frame_va: u64) -> PropResult {
    expecting_crash();
    // SAFETY: the `iret` hypercall either crashes the domain (what the
    // property wants), resumes the frame (which holds nothing runnable: the
    // hypervisor would have let a bad frame through), or returns an error,
    // after which rsp is restored from r12 and rax/rcx/r11 are clobbered.
    unsafe {
        core::arch::asm!(
            "mov r12, rsp",
            "mov rsp, {f}",
            "mov eax, {iret}",
            "syscall",
            "mov rsp, r12",
            f = in(reg) frame_va,
            iret = const Hypercall::Iret as u64,
            out("rax") _,
            out("rcx") _,
            out("r11") _,
            out("r12") _,
        );
    }
    still_alive()
}

/// A frame that resumes at a harmless place unless `rip`/`rsp` are bad.
fn frame_with(rip: u64, rsp: u64) -> IretFrame {
    IretFrame {
        rip,
        rsp,
        rflags: RFLAGS_IF,
        ..IretFrame::default()
    }
}

/// A valid lower-half code address (this function).
fn some_text() -> u64 {
    some_text as fn() -> u64 as usize as u64
}

/// `iret` to a non-canonical `rip`.
pub fn iret_noncanonical_rip() -> PropResult {
    let here = 0u64;
    let frame = frame_with(NON_CANONICAL, core::ptr::from_ref(&here) as u64);
    iret_at(core::ptr::from_ref(&frame) as u64)
}

/// `iret` to a `rip` in the hypervisor image.
pub fn iret_upper_rip() -> PropResult {
    let here = 0u64;
    let frame = frame_with(HV_IMAGE, core::ptr::from_ref(&here) as u64);
    iret_at(core::ptr::from_ref(&frame) as u64)
}

/// `iret` with an `rsp` in the hypervisor's direct map.
pub fn iret_upper_rsp() -> PropResult {
    let frame = frame_with(some_text(), HV_DIRECT_MAP);
    iret_at(core::ptr::from_ref(&frame) as u64)
}

/// `iret` with the frame on an unmapped page.
pub fn iret_unmapped_frame() -> PropResult {
    iret_at(UNMAPPED)
}

/// `iret` with a frame that begins in the last (mapped) page of the lower
/// half and ends above it.
pub fn iret_straddle() -> PropResult {
    let top = GUEST_VA_LIMIT - PAGE_SIZE;
    let gfn = mmu::pool_frame()?;
    mmu::map(top, gfn, MMU_WRITE)?;
    iret_at(GUEST_VA_LIMIT - 24)
}

/// #UD delivered to a handler at an unmapped address: the fetch there
/// faults (#PF) and no #PF handler exists.
pub fn handler_unmapped() -> PropResult {
    raw_trap_table(vector::UD, UNMAPPED)?;
    expecting_crash();
    // SAFETY: `ud2` raises #UD, delivered to an unmapped handler; the fetch
    // there page-faults with no handler: the domain crashes.
    unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
    still_alive()
}

/// A #PF handler at an unmapped address: every delivery faults again and
/// is delivered again, one frame lower each time, until the stack cannot
/// take the frame. The loop must end in a crash, not a hang.
pub fn pf_handler_recursion() -> PropResult {
    raw_trap_table(vector::PF, UNMAPPED)?;
    expecting_crash();
    // SAFETY: the read of an unmapped address page-faults into the loop
    // described above; nothing after it runs unless the hypervisor
    // resumes us, in which case rax is clobbered.
    unsafe {
        core::arch::asm!("mov rax, qword ptr [rdx]", in("rdx") UNMAPPED + PAGE_SIZE, out("rax") _,
            options(nostack, readonly));
    }
    still_alive()
}

/// Raise #UD (handled) with `rsp` at `stack`: the frame cannot be written
/// there. If the hypervisor did deliver it, the probe handler resumes
/// after the `ud2` and rsp is restored.
fn ud_on_stack(stack: u64) -> PropResult {
    ud_handler_only()?;
    expecting_crash();
    probe::begin();
    // SAFETY: the hypervisor must crash the domain at the `ud2`. Were the
    // frame written and the handler run, it resumes at `2:` with r12
    // holding the real rsp; rax, rcx, r11 and r12 are declared clobbered.
    unsafe {
        core::arch::asm!(
            "lea rax, [rip + 2f]",
            "mov qword ptr [{pad}], rax",
            "mov r12, rsp",
            "mov rsp, {stack}",
            "ud2",
            "2:",
            "mov rsp, r12",
            pad = in(reg) probe::landing_pad(),
            stack = in(reg) stack,
            out("rax") _,
            out("rcx") _,
            out("r11") _,
            out("r12") _,
        );
    }
    let _ = probe::end();
    still_alive()
}

/// The exception stack is unmapped.
pub fn stack_unmapped() -> PropResult {
    ud_on_stack(UNMAPPED)
}

/// The exception stack is in the hypervisor's direct map: the frame must
/// not be written into hypervisor memory.
pub fn stack_upper_half() -> PropResult {
    ud_on_stack(HV_DIRECT_MAP + 0x10_0000)
}

/// The exception stack is non-canonical.
pub fn stack_noncanonical() -> PropResult {
    ud_on_stack(NON_CANONICAL + 0x10_0000)
}

/// The exception stack is the read-only start_info page.
pub fn stack_readonly() -> PropResult {
    ud_on_stack(GUEST_START_INFO_VA + 0xf00)
}

/// The frame would straddle the bottom of the stack and the unmapped
/// guard page below it.
pub fn stack_overflow() -> PropResult {
    ud_on_stack(STACK_BOTTOM + 128 + 40)
}

/// Send an event to ourselves (an IPI port) with `rsp` at `stack`, so the
/// upcall the send raises is delivered (or not) onto that stack.
fn upcall_on_stack(callback: u64, stack: u64) -> PropResult {
    accepted("set the event callback", hypercall::set_callbacks(callback))?;
    let port = accepted("bind an IPI port", hypercall::evtchn_bind_ipi(0))?;
    expecting_crash();
    // SAFETY: the send returns 0 and the hypervisor then enters the upcall
    // (or crashes us); should we come back here, rsp is restored from r12;
    // rax, rcx, r11, r12 are declared clobbered.
    unsafe {
        core::arch::asm!(
            "mov r12, rsp",
            "mov rsp, {stack}",
            "mov eax, {send}",
            "syscall",
            "mov rsp, r12",
            stack = in(reg) stack,
            send = const Hypercall::EvtchnSend as u64,
            in("rdi") u64::from(port),
            out("rax") _,
            out("rcx") _,
            out("r11") _,
            out("r12") _,
        );
    }
    still_alive()
}

/// An event upcall that must be delivered while `rsp` is unmapped.
pub fn upcall_bad_stack() -> PropResult {
    upcall_on_stack(some_text(), UNMAPPED)
}

/// An event upcall to a callback at an unmapped address (no #PF handler).
pub fn callback_unmapped() -> PropResult {
    let here = 0u64;
    upcall_on_stack(UNMAPPED, core::ptr::from_ref(core::hint::black_box(&here)) as u64)
}

/// A `syscall` in the last two bytes of the lower half: its return address
/// is `0x0000_8000_0000_0000`, the first non-canonical one. Returning there
/// with `sysret` faults in ring 0 on Intel CPUs (the reason the ABI says
/// the hypervisor checks it); with `iretq` it faults in ring 0 everywhere.
/// The hypervisor must crash the domain (or reflect a #GP, which with no
/// handler also crashes it), not fault itself.
pub fn syscall_at_top() -> PropResult {
    let top = GUEST_VA_LIMIT - PAGE_SIZE;
    let gfn = mmu::pool_frame()?;
    let code = mem::frame_va(gfn);
    // SAFETY: the pool frame is ours alone and mapped read-write in the
    // physmap: fill it with `int3` and end it with `syscall` (0f 05).
    unsafe {
        core::ptr::write_bytes(code as *mut u8, 0xcc, PAGE_BYTES);
        core::ptr::write_volatile((code + PAGE_SIZE - 2) as *mut [u8; 2], [0x0f, 0x05]);
    }
    mmu::map(top, gfn, MMU_EXEC)?;
    expecting_crash();
    // SAFETY: the jump runs the `syscall` (the version hypercall, no
    // arguments) at the very top of the lower half; nothing comes back
    // here, since the next instruction would be non-canonical.
    unsafe {
        core::arch::asm!(
            "jmp rdx",
            in("rdx") GUEST_VA_LIMIT - 2,
            in("eax") Hypercall::Version as u32,
            options(noreturn),
        );
    }
}
