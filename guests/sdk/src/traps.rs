//! Exception handlers: Rust functions behind one assembly entry stub per
//! vector a guest may register (`dom0_abi::trap_vector_allowed`).
//!
//! **Delivery** (`dom0_abi::trap`): the hypervisor writes a [`TrapFrame`] on
//! the guest stack (below a 128-byte red zone) and enters the stub with
//! `rsp` at the frame and every register as it was at the fault. The stub
//! pushes `rsi`, loads its vector and jumps to the common path, which saves
//! the other general registers below it, calls [`dispatch`] with the frame
//! and the vector (stack 16-aligned, DF clear), restores every register,
//! points `rsp` back at the frame and makes the `iret` hypercall, which
//! resumes from the frame's [`IretFrame`](dom0_abi::IretFrame):
//! `rax rcx r11 rip rflags rsp`.
//!
//! So a handler may edit `frame.iret` (typically `rip`, to skip or recover
//! from the faulting instruction); edits take effect. The other general
//! registers are restored from the trampoline's own save area, which
//! handlers do not see: **changing them is not supported**. The guest target
//! is soft-float, so Rust code does not touch the FPU/SSE registers and the
//! trampoline does not save them.
//!
//! A vector with no Rust handler, or a handler that returns
//! [`Action::Crash`], prints a report (vector, error code, rip, fault
//! address) and shuts the domain down with `Crash`.

use crate::hypercall;
use dom0_abi::{Hypercall, ShutdownReason, Status, TrapEntry, TrapFrame, trap_vector_allowed};
use spin::Mutex;

/// What a handler decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `iret` with the (possibly edited) frame.
    Resume,
    /// Report the trap and shut the domain down with `Crash`.
    Crash,
}

/// A trap handler.
pub type Handler = fn(&mut TrapFrame) -> Action;

/// Every vector a stub exists for, in order (the allowed vectors).
pub const VECTORS: [u8; 13] = [0, 1, 3, 4, 5, 6, 7, 12, 13, 14, 16, 17, 19];
const _: () = {
    let mut i = 0;
    while i < VECTORS.len() {
        assert!(trap_vector_allowed(VECTORS[i]));
        i += 1;
    }
};

/// Registered Rust handlers, by vector.
static HANDLERS: Mutex<[Option<Handler>; 32]> = Mutex::new([None; 32]);

core::arch::global_asm!(
    ".pushsection .text.oxen_trap,\"ax\",@progbits",
    ".balign 16",
    "oxen_trap_common:",
    // rsi (pushed by the stub) is at [rsp]; save the rest above the call.
    "push rax",
    "push rbx",
    "push rcx",
    "push rdx",
    "push rdi",
    "push rbp",
    "push r8",
    "push r9",
    "push r10",
    "push r11",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov rbx, rsp",
    // The frame is just above the 15 saved registers.
    "lea rdi, [rsp + 15 * 8]",
    "and rsp, -16",
    "cld",
    "call {dispatch}",
    "mov rsp, rbx",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop r11",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rbp",
    "pop rdi",
    "pop rdx",
    "pop rcx",
    "pop rbx",
    "pop rax",
    "pop rsi",
    // rsp is at the frame again: rax, rcx, r11 come back from it.
    "mov eax, {iret}",
    "syscall",
    "ud2",
    ".macro OXEN_TRAP_STUB vec",
    ".balign 16",
    ".global oxen_trap_stub_\\vec",
    "oxen_trap_stub_\\vec:",
    "push rsi",
    "mov esi, \\vec",
    "jmp oxen_trap_common",
    ".endm",
    "OXEN_TRAP_STUB 0",
    "OXEN_TRAP_STUB 1",
    "OXEN_TRAP_STUB 3",
    "OXEN_TRAP_STUB 4",
    "OXEN_TRAP_STUB 5",
    "OXEN_TRAP_STUB 6",
    "OXEN_TRAP_STUB 7",
    "OXEN_TRAP_STUB 12",
    "OXEN_TRAP_STUB 13",
    "OXEN_TRAP_STUB 14",
    "OXEN_TRAP_STUB 16",
    "OXEN_TRAP_STUB 17",
    "OXEN_TRAP_STUB 19",
    ".purgem OXEN_TRAP_STUB",
    ".popsection",
    dispatch = sym dispatch,
    iret = const Hypercall::Iret as u64,
);

unsafe extern "C" {
    fn oxen_trap_stub_0();
    fn oxen_trap_stub_1();
    fn oxen_trap_stub_3();
    fn oxen_trap_stub_4();
    fn oxen_trap_stub_5();
    fn oxen_trap_stub_6();
    fn oxen_trap_stub_7();
    fn oxen_trap_stub_12();
    fn oxen_trap_stub_13();
    fn oxen_trap_stub_14();
    fn oxen_trap_stub_16();
    fn oxen_trap_stub_17();
    fn oxen_trap_stub_19();
}

/// The stub's address for `vector`, `None` if no stub exists (the vector
/// is the hypervisor's).
fn stub_address(vector: u8) -> Option<u64> {
    let stub: unsafe extern "C" fn() = match vector {
        0 => oxen_trap_stub_0,
        1 => oxen_trap_stub_1,
        3 => oxen_trap_stub_3,
        4 => oxen_trap_stub_4,
        5 => oxen_trap_stub_5,
        6 => oxen_trap_stub_6,
        7 => oxen_trap_stub_7,
        12 => oxen_trap_stub_12,
        13 => oxen_trap_stub_13,
        14 => oxen_trap_stub_14,
        16 => oxen_trap_stub_16,
        17 => oxen_trap_stub_17,
        19 => oxen_trap_stub_19,
        _ => return None,
    };
    Some(stub as usize as u64)
}

/// Install `handler` for `vector`: registers the SDK's stub for it with
/// `vcpu_set_trap_table`. `EINVAL` for a vector the hypervisor keeps.
pub fn set_handler(vector: u8, handler: Handler) -> Result<(), Status> {
    if !trap_vector_allowed(vector) {
        return Err(Status::EINVAL);
    }
    let slot = usize::from(vector);
    let previous = HANDLERS.lock()[slot].replace(handler);
    register().inspect_err(|_| HANDLERS.lock()[slot] = previous)
}

/// Remove every handler (an empty trap table): every trap crashes again.
pub fn clear_all() -> Result<(), Status> {
    *HANDLERS.lock() = [None; 32];
    hypercall::set_trap_table(&[])
}

/// Tell the hypervisor about every vector with a handler. The whole table
/// goes each time, so it does not matter whether the hypervisor merges or
/// replaces tables.
fn register() -> Result<(), Status> {
    let installed = *HANDLERS.lock();
    let (entries, n) = table(|v| installed[usize::from(v)].is_some());
    hypercall::set_trap_table(&entries[..n])
}

/// The trap table for the vectors `wanted` selects: (entries, count).
fn table(wanted: impl Fn(u8) -> bool) -> ([TrapEntry; VECTORS.len()], usize) {
    let mut entries = [TrapEntry::default(); VECTORS.len()];
    let mut n = 0;
    for v in VECTORS.into_iter().filter(|&v| wanted(v)) {
        if let Some(handler) = stub_address(v) {
            entries[n] = TrapEntry {
                vector: v,
                handler,
                ..TrapEntry::default()
            };
            n += 1;
        }
    }
    (entries, n)
}

/// The mnemonic of an exception vector (`#PF`), or `"?"`.
pub fn vector_name(vector: u64) -> &'static str {
    match vector {
        0 => "#DE",
        1 => "#DB",
        2 => "NMI",
        3 => "#BP",
        4 => "#OF",
        5 => "#BR",
        6 => "#UD",
        7 => "#NM",
        8 => "#DF",
        10 => "#TS",
        11 => "#NP",
        12 => "#SS",
        13 => "#GP",
        14 => "#PF",
        16 => "#MF",
        17 => "#AC",
        18 => "#MC",
        19 => "#XM",
        dom0_abi::EVENT_VECTOR => "event",
        _ => "?",
    }
}

/// Print what trapped and why it is fatal, then shut down with `Crash`.
fn crash(frame: &TrapFrame, vector: u64, why: &str) -> ! {
    crate::println!(
        "trap: {why}: {} (vector {vector}), error code {:#x}, rip {:#x}, rsp {:#x}, fault address {:#x}",
        vector_name(vector),
        frame.error_code,
        frame.iret.rip,
        frame.iret.rsp,
        frame.fault_addr,
    );
    hypercall::shutdown(ShutdownReason::Crash)
}

/// Called by the trampoline with the frame and the stub's vector.
///
/// # Safety
/// Only the trampoline calls this: `frame` points at the [`TrapFrame`] the
/// hypervisor wrote for this trap, which nothing else uses until the
/// trampoline's `iret`.
unsafe extern "C" fn dispatch(frame: *mut TrapFrame, vector: u64) {
    if !frame.is_aligned() || frame.is_null() {
        crate::println!("trap: vector {vector} delivered with a misaligned frame at {frame:p}");
        hypercall::shutdown(ShutdownReason::Crash);
    }
    // SAFETY: the caller guarantees `frame` is the hypervisor-written trap
    // frame, exclusively ours until `iret`; it is non-null and aligned.
    let frame = unsafe { &mut *frame };
    // A trap can only find the lock held if it hit `set_handler` itself.
    let handler = HANDLERS.try_lock().and_then(|h| {
        usize::try_from(vector)
            .ok()
            .and_then(|v| h.get(v).copied().flatten())
    });
    let Some(handler) = handler else {
        crash(frame, vector, "unhandled")
    };
    if handler(frame) == Action::Crash {
        crash(frame, vector, "handler gave up");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_allowed_vector_has_its_own_stub() {
        let mut seen = BTreeSet::new();
        for v in 0..=255u8 {
            match stub_address(v) {
                Some(a) => {
                    assert!(trap_vector_allowed(v) && a != 0 && seen.insert(a), "{v}");
                }
                None => assert!(!trap_vector_allowed(v), "{v}"),
            }
        }
        assert_eq!(seen.len(), VECTORS.len());
    }

    #[test]
    fn tables_hold_only_the_wanted_vectors() {
        let (entries, n) = table(|v| v == 3 || v == 14 || v == 8);
        assert_eq!(n, 2);
        assert_eq!((entries[0].vector, entries[1].vector), (3, 14));
        assert_eq!(entries[1].handler, stub_address(14).expect("14 has a stub"));
        assert!(entries[..n].iter().all(|e| e.flags == 0 && e.pad == [0; 6]));
        assert_eq!(table(|_| false).1, 0);
    }

    #[test]
    fn refused_vectors_are_refused_locally() {
        fn h(_: &mut TrapFrame) -> Action {
            Action::Resume
        }
        assert_eq!(set_handler(8, h), Err(Status::EINVAL));
        assert_eq!(set_handler(2, h), Err(Status::EINVAL));
    }
}
