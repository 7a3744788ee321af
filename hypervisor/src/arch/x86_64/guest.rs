//! Running a guest vCPU: `enter_guest` drops to ring 3 with the registers in
//! a [`Regs`] block, and every way back into the hypervisor (a `syscall`, an
//! exception, an interrupt) stores the guest's state into that same block
//! and returns from `enter_guest` as if it were a call. The run loop then
//! reads `regs.vector` to see why.
//!
//! The block is the vCPU's own memory: TSS.RSP0 and the per-CPU `regs_end`
//! point at its end, so the CPU pushes the interrupt frame (SS, RSP, RFLAGS,
//! CS, RIP; Intel SDM Vol.3A 7.14.2) straight into it, the stubs push the
//! vector, error code and general registers below, and nothing is copied.
//! A `syscall` builds the same frame by hand (AMD APM Vol.2 6.1.1).

use super::gdt::{USER_CS, USER_SS};
use super::percpu::{PCPU_HV_RSP, PCPU_REGS_END, PCPU_SCRATCH};
use core::mem::{offset_of, size_of};

pub use super::idt::ExceptionFrame as Regs;

/// `Regs::vector` after a `syscall` exit.
pub const VECTOR_SYSCALL: u64 = 0x100;
/// Set `Regs::vector` to this before `enter_guest` to return with `sysretq`
/// (rip in rcx, rflags in r11: only after a syscall, canonical rip).
pub const VECTOR_SYSRET: u64 = 0x101;

const OFF_VECTOR: usize = offset_of!(Regs, vector);
const _: () = assert!(OFF_VECTOR == 120 && size_of::<Regs>() == 176);

core::arch::global_asm!(
    r#"
.section .text
.global syscall_entry
.balign 16
syscall_entry:
    swapgs
    mov %rsp, %gs:{scratch}
    mov %gs:{regs_end}, %rsp
    push ${user_ss}
    push %gs:{scratch}
    push %r11
    push ${user_cs}
    push %rcx
    push $0
    push ${vsyscall}
/* Every exit from a guest ends here, GS already the hypervisor's and the
 * CPU's (or syscall_entry's) frame, vector and error code in the vCPU's
 * register block: save the general registers below them and return from
 * enter_guest. Exceptions and interrupts from ring 3 come through
 * `from_guest` (idt.rs), which does the swapgs first. */
.global guest_save_and_exit
guest_save_and_exit:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    /* The guest's RFLAGS.DF survives an interrupt gate (only syscall's
     * FMASK clears it): the hypervisor's code assumes it clear. */
    cld
    mov %gs:{hv_rsp}, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret

.global enter_guest
.balign 16
enter_guest:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %gs:{hv_rsp}
    mov %rdi, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    /* rsp is at the vector slot: sysretq when asked and safe, else iretq. */
    cmpq ${vsysret}, (%rsp)
    je 1f
    add $16, %rsp
    swapgs
    iretq
1:
    mov 16(%rsp), %rcx
    mov 32(%rsp), %r11
    mov 40(%rsp), %rsp
    swapgs
    sysretq
"#,
    scratch = const PCPU_SCRATCH,
    regs_end = const PCPU_REGS_END,
    hv_rsp = const PCPU_HV_RSP,
    user_ss = const USER_SS,
    user_cs = const USER_CS,
    vsyscall = const VECTOR_SYSCALL,
    vsysret = const VECTOR_SYSRET,
    options(att_syntax)
);

unsafe extern "C" {
    fn enter_guest(regs: *mut Regs);
    fn syscall_entry();
}

/// Address of the `syscall` entry stub, for LSTAR.
pub fn syscall_entry_addr() -> u64 {
    syscall_entry as *const () as u64
}

/// Run the guest whose registers are in `regs` until it next enters the
/// hypervisor; `regs` then holds its state and the reason in `vector`.
///
/// # Safety
/// 1. `regs` must stay at this address while the guest runs, and TSS.RSP0 and
///    the per-CPU `regs_end` must point at its end (`set_current_regs`).
/// 2. The guest's address space must be loaded in CR3 and map nothing of the
///    hypervisor as user-accessible.
/// 3. `regs.cs`/`regs.ss` must be the user selectors, `regs.rflags` must have
///    IF set and IOPL 0, and `regs.rip` must be canonical (and, for the
///    sysret path, in the lower half).
/// 4. Interrupts must be disabled.
pub unsafe fn run(regs: &mut Regs) {
    // SAFETY: upheld by the caller; the stub saves and restores the
    // callee-saved registers and returns here when the guest exits.
    unsafe { enter_guest(regs) }
}

/// Make `regs` the block that guest entries store into on this CPU.
pub fn set_current_regs(regs: &Regs) {
    let end = regs as *const Regs as u64 + size_of::<Regs>() as u64;
    debug_assert!(
        end.is_multiple_of(16),
        "the CPU would realign RSP0 and shift the frame"
    );
    super::gdt::set_rsp0(end);
    super::percpu::set_regs_end(end);
}
