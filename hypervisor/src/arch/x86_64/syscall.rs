//! The `syscall` instruction: MSRs that route a guest's `syscall` to
//! `guest.rs`'s entry stub (AMD APM Vol.2 6.1.1; Intel SDM Vol.3A 5.8.8).

use super::gdt::{KERNEL_CS, USER_SS};
use x86_64::registers::model_specific::{Efer, EferFlags, Msr};

const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_FMASK: u32 = 0xc000_0084;
/// RFLAGS cleared on entry: TF, IF, DF, IOPL, NT, AC.
const FMASK: u64 = (1 << 8) | (1 << 9) | (1 << 10) | (3 << 12) | (1 << 14) | (1 << 18);

/// Enable `syscall`/`sysret` with the hypervisor's selectors.
pub fn init() {
    // STAR[47:32]: kernel CS (SS = +8). STAR[63:48]: base for sysret, which
    // loads SS = base + 8 and CS = base + 16: the user data selector - 8.
    let sysret_base = u64::from(USER_SS - 8);
    let star = (sysret_base << 48) | (u64::from(KERNEL_CS) << 32);
    // SAFETY: the selectors match the loaded GDT (gdt.rs asserts its order)
    // and the entry stub switches stacks before touching memory.
    unsafe {
        Msr::new(MSR_STAR).write(star);
        Msr::new(MSR_LSTAR).write(super::guest::syscall_entry_addr());
        Msr::new(MSR_FMASK).write(FMASK);
        Efer::update(|e| e.insert(EferFlags::SYSTEM_CALL_EXTENSIONS));
    }
}
