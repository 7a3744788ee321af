//! Timing: `rdtsc` reads and a hypercall timed from the instruction before
//! its `syscall` to the instruction after it. Under QEMU's
//! `-icount shift=0` the TSC advances once per executed instruction, so a
//! delta is an instruction count; on real KVM it is CPU cycles
//! (ARCHITECTURE.md §7). `lfence` keeps a real CPU from moving the reads
//! across the measured code (Intel SDM Vol.2B, RDTSC); under icount it is
//! one more instruction, part of the constant [`overhead`] subtracts.

use core::arch::asm;

/// The time-stamp counter now.
#[inline(always)]
pub fn now() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: `rdtsc` only reads the TSC into edx:eax (CR4.TSD is clear
    // for guests: the hypervisor never sets it), touches no memory.
    unsafe {
        asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// A hypercall timed around its `syscall`: the result in `rax`, and the
/// TSC read just before and just after.
#[derive(Clone, Copy, Debug)]
pub struct Timed {
    /// `rax` after the call (`>= 0` a result, `< 0` a negated status).
    pub ret: i64,
    /// TSC before the `syscall`.
    pub start: u64,
    /// TSC after it.
    pub end: u64,
}

impl Timed {
    /// Ticks between the two reads.
    pub fn ticks(&self) -> u64 {
        self.end.wrapping_sub(self.start)
    }
}

/// Hypercall `nr` with arguments `a0 a1 a2` (`rdi rsi rdx`), timed.
///
/// # Safety
/// As for `oxen_guest_sdk::hypercall::raw`: any pointer argument must name
/// memory the caller owns and that the call's contract allows the
/// hypervisor to read or write. Calls that do not return (`sched_shutdown`)
/// or resume elsewhere (`iret`) must not be made through this.
#[inline(always)]
pub unsafe fn hypercall(nr: u64, a0: u64, a1: u64, a2: u64) -> Timed {
    let ret: i64;
    let start: u64;
    let end: u64;
    // SAFETY: `syscall` enters the hypervisor, which preserves every
    // register but rax (result), rcx and r11 (declared clobbered) and does
    // not touch our stack; the caller answers for memory. The inputs sit in
    // registers that no instruction here writes before reading them (r14,
    // r15, rdi, rsi), and the `out` (not `lateout`) outputs keep the
    // compiler from placing inputs in rax, rdx, rcx or r11.
    unsafe {
        asm!(
            "lfence",
            "rdtsc",
            "shl rdx, 32",
            "or rax, rdx",
            "mov r12, rax",
            "mov rdx, r15",
            "mov rax, r14",
            "syscall",
            "mov r13, rax",
            "rdtsc",
            "lfence",
            "shl rdx, 32",
            "or rax, rdx",
            in("r14") nr,
            in("r15") a2,
            in("rdi") a0,
            in("rsi") a1,
            out("rax") end,
            out("rdx") _,
            out("rcx") _,
            out("r11") _,
            out("r12") start,
            out("r13") ret,
            options(nostack),
        );
    }
    Timed { ret, start, end }
}

/// The same instruction sequence as [`hypercall`] without the `syscall`:
/// the ticks the measurement itself adds, subtracted from every figure.
#[inline(never)]
pub fn empty() -> u64 {
    let start: u64;
    let end: u64;
    // SAFETY: only register moves and TSC reads; no memory, no stack.
    unsafe {
        asm!(
            "lfence",
            "rdtsc",
            "shl rdx, 32",
            "or rax, rdx",
            "mov r12, rax",
            "mov rdx, r15",
            "mov rax, r14",
            "mov r13, rax",
            "rdtsc",
            "lfence",
            "shl rdx, 32",
            "or rax, rdx",
            in("r14") 0u64,
            in("r15") 0u64,
            out("rax") end,
            out("rdx") _,
            out("r12") start,
            out("r13") _,
            options(nomem, nostack),
        );
    }
    end.wrapping_sub(start)
}

/// The measurement overhead: the smallest of many [`empty`] regions.
pub fn overhead() -> u64 {
    (0..1000).map(|_| empty()).min().unwrap_or(0)
}
