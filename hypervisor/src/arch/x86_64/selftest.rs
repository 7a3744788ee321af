//! Deliberate faults for the test-only `oxen_test=` hooks: each proves that
//! a class of hypervisor bug is caught and reported. Written in assembly so
//! that the faulting access is exactly the one intended.

/// Write to `addr`, which the caller knows to be read-only: a #PF.
pub fn write_to_readonly(addr: u64) {
    // SAFETY: the write faults (the page is read-only and CR0.WP is set), so
    // no memory changes; the fault handler never returns here.
    unsafe {
        core::arch::asm!("mov qword ptr [{}], 1", in(reg) addr, options(nostack));
    }
}

/// Push until the stack runs into its guard page: the #PF cannot be
/// delivered on the overflowed stack, so the CPU raises #DF, which runs on
/// its own IST stack.
pub fn overflow_stack() -> ! {
    // SAFETY: the loop only pushes onto the current stack until the guard
    // page stops it; nothing else is touched and control never returns.
    unsafe {
        core::arch::asm!("2:", "push rax", "jmp 2b", options(noreturn));
    }
}
