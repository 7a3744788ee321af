//! The benchmark's own event upcall entry. Its first instructions read the
//! TSC into [`ENTRY_TSC`] (after saving the two registers `rdtsc` writes),
//! so `timer_upcall` ends where the handler begins. Then it saves the
//! caller-saved registers, clears the event words (`shared.rs`), unmasks
//! upcalls, restores and returns with the `iret` hypercall from the
//! `TrapFrame` the hypervisor wrote at `rsp` (dom0-abi `trap.rs`). It
//! replaces any upcall entry the SDK registered: the benchmark handles its
//! events itself.

use crate::shared::Page;
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::SeqCst;
use oxen_guest_sdk::dom0_abi::{Hypercall, Status};
use oxen_guest_sdk::hypercall;

/// TSC at the last upcall entry.
pub static ENTRY_TSC: AtomicU64 = AtomicU64::new(0);
/// Upcalls taken.
pub static COUNT: AtomicU64 = AtomicU64::new(0);

core::arch::global_asm!(
    ".pushsection .text.bench_upcall,\"ax\",@progbits",
    ".balign 16",
    ".global bench_upcall_entry",
    ".type bench_upcall_entry, @function",
    "bench_upcall_entry:",
    // rsp is at the TrapFrame (16-aligned); every register as interrupted.
    "push rdx",
    "push rax",
    "rdtsc",
    "shl rdx, 32",
    "or rax, rdx",
    "mov [rip + {tsc}], rax",
    "push rcx",
    "push rsi",
    "push rdi",
    "push r8",
    "push r9",
    "push r10",
    "push r11",
    // Nine pushes: realign to 16 for the call. The callee keeps rbx, rbp
    // and r12-r15 (System V); the guest is soft-float, so no FPU state.
    "sub rsp, 8",
    "cld",
    "call {handler}",
    "add rsp, 8",
    "pop r11",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rdi",
    "pop rsi",
    "pop rcx",
    "pop rax",
    "pop rdx",
    // rsp is at the frame: iret restores rax rcx r11 rip rflags rsp from it.
    "mov eax, {iret}",
    "syscall",
    "ud2",
    ".size bench_upcall_entry, . - bench_upcall_entry",
    ".popsection",
    tsc = sym ENTRY_TSC,
    handler = sym handle,
    iret = const Hypercall::Iret as u64,
);

unsafe extern "C" {
    fn bench_upcall_entry();
}

/// Called by the entry with upcalls masked (delivery masks them).
extern "C" fn handle() {
    COUNT.fetch_add(1, SeqCst);
    let Some(page) = Page::get() else { return };
    loop {
        page.drain();
        page.upcall_mask().store(0, SeqCst);
        if page.upcall_pending().load(SeqCst) == 0 {
            return;
        }
        // More arrived: mask again and drain it before returning.
        page.upcall_mask().store(1, SeqCst);
    }
}

/// Register the entry and let upcalls in.
pub fn install() -> Result<(), Status> {
    let page = Page::get().ok_or(Status::EFAULT)?;
    hypercall::set_callbacks(bench_upcall_entry as *const () as u64)?;
    page.drain();
    page.upcall_mask().store(0, SeqCst);
    Ok(())
}
