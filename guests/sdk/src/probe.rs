//! Fault probes, for test guests that try things which must fault (an
//! unmapped read, a privileged instruction, a jump into the hypervisor) and
//! carry on afterwards.
//!
//! A probe stores a *landing pad*, the address just past the probed
//! instruction, in a static right before executing it. [`handler`] (install
//! it with [`install`]) records the trap and resumes at the landing pad; the
//! trampoline restores every register to its value at the fault and `iret`
//! restores `rsp`, so the code after the probe runs as if the instruction
//! had been skipped. A trap with no landing pad armed is a real crash.
//! [`read_u64`], [`write_u64`] and [`jump`] are ready-made probes;
//! [`probe_asm!`](crate::probe_asm) wraps any instruction sequence.

use crate::traps::{self, Action};
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use dom0_abi::{Status, TrapFrame, vector};

/// A trap a probe caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Exception vector.
    pub vector: u64,
    /// The CPU's error code.
    pub error_code: u64,
    /// CR2 for a page fault, else 0.
    pub fault_addr: u64,
    /// Where the trap happened.
    pub rip: u64,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, error {:#x}",
            traps::vector_name(self.vector),
            self.error_code
        )?;
        if self.vector == u64::from(vector::PF) {
            write!(f, ", address {:#x}", self.fault_addr)?;
        }
        Ok(())
    }
}

/// Where the next trap resumes; 0 when no probe is armed.
static LANDING: AtomicU64 = AtomicU64::new(0);
static HIT: AtomicBool = AtomicBool::new(false);
static VECTOR: AtomicU64 = AtomicU64::new(0);
static ERROR_CODE: AtomicU64 = AtomicU64::new(0);
static FAULT_ADDR: AtomicU64 = AtomicU64::new(0);
static RIP: AtomicU64 = AtomicU64::new(0);

/// The probe trap handler: record the trap and resume at the armed landing
/// pad; with none armed, [`Action::Crash`].
pub fn handler(frame: &mut TrapFrame) -> Action {
    let pad = LANDING.swap(0, SeqCst);
    if pad == 0 {
        return Action::Crash;
    }
    VECTOR.store(frame.vector, SeqCst);
    ERROR_CODE.store(frame.error_code, SeqCst);
    FAULT_ADDR.store(frame.fault_addr, SeqCst);
    RIP.store(frame.iret.rip, SeqCst);
    HIT.store(true, SeqCst);
    frame.iret.rip = pad;
    Action::Resume
}

/// Install [`handler`] for each of `vectors`.
pub fn install(vectors: &[u8]) -> Result<(), Status> {
    vectors.iter().try_for_each(|&v| traps::set_handler(v, handler))
}

/// The landing-pad word: a custom probe stores the address to resume at
/// here right before the instruction it probes (see [`read_u64`]).
pub fn landing_pad() -> *mut u64 {
    LANDING.as_ptr()
}

/// Forget any earlier trap: call it before arming a custom probe.
pub fn begin() {
    HIT.store(false, SeqCst);
}

/// Disarm and return the trap the probe caught, if any: call it after a
/// custom probe.
pub fn end() -> Option<Fault> {
    LANDING.store(0, SeqCst);
    HIT.swap(false, SeqCst).then(|| Fault {
        vector: VECTOR.load(SeqCst),
        error_code: ERROR_CODE.load(SeqCst),
        fault_addr: FAULT_ADDR.load(SeqCst),
        rip: RIP.load(SeqCst),
    })
}

/// Run instructions under a landing pad: `unsafe { probe_asm!("cli") }` is
/// `Some(fault)` if they trapped (into [`handler`]), `None` if they ran.
/// The instructions may clobber `rax`, `rcx` and `rdx` only, must not move
/// `rsp`, and may refer to the landing pad as `2f`. It must be used inside
/// `unsafe`: the caller vouches for what the instructions do if they run.
#[macro_export]
macro_rules! probe_asm {
    ($($insn:literal),+ $(,)?) => {{
        $crate::probe::begin();
        ::core::arch::asm!(
            "lea {pad_tmp}, [rip + 2f]",
            "mov qword ptr [{pad_ptr}], {pad_tmp}",
            $($insn,)+
            "2:",
            pad_ptr = in(reg) $crate::probe::landing_pad(),
            pad_tmp = out(reg) _,
            out("rax") _,
            out("rcx") _,
            out("rdx") _,
        );
        $crate::probe::end()
    }};
}

/// Read the `u64` at `addr` under a landing pad.
///
/// # Safety
/// Reading `addr` must have no side effect the caller is not prepared for
/// (device memory); a read that faults has none.
pub unsafe fn read_u64(addr: u64) -> Result<u64, Fault> {
    begin();
    let value: u64;
    // SAFETY: the read is the caller's contract; on a fault the handler
    // resumes at `2:` with every register as it was, so `value` keeps 0.
    unsafe {
        core::arch::asm!(
            "lea {t}, [rip + 2f]",
            "mov qword ptr [{p}], {t}",
            "mov {v}, qword ptr [{a}]",
            "2:",
            p = in(reg) landing_pad(),
            t = out(reg) _,
            a = in(reg) addr,
            v = inout(reg) 0u64 => value,
        );
    }
    end().map_or(Ok(value), Err)
}

/// Write `value` to the `u64` at `addr` under a landing pad.
///
/// # Safety
/// If the write does not fault it happens: `addr` must not hold anything
/// the program relies on (or hold `value` already).
pub unsafe fn write_u64(addr: u64, value: u64) -> Result<(), Fault> {
    begin();
    // SAFETY: the write is the caller's contract; on a fault the handler
    // resumes at `2:` with every register as it was.
    unsafe {
        core::arch::asm!(
            "lea {t}, [rip + 2f]",
            "mov qword ptr [{p}], {t}",
            "mov qword ptr [{a}], {v}",
            "2:",
            p = in(reg) landing_pad(),
            t = out(reg) _,
            a = in(reg) addr,
            v = in(reg) value,
        );
    }
    end().map_or(Ok(()), Err)
}

/// Jump to `target` under a landing pad: the first trap there. A fetch the
/// hypervisor refuses faults with `rip == target`; anything else means code
/// ran at `target` (fill a probed buffer with `int3` to catch that).
///
/// # Safety
/// If `target` is executable, whatever is there runs; it must end in a trap
/// the installed handlers route to the landing pad.
pub unsafe fn jump(target: u64) -> Option<Fault> {
    begin();
    // SAFETY: the caller's contract; a trap resumes at `2:` with `rsp` and
    // every register as they were when it happened, which for a refused
    // fetch is as they were at the `jmp`.
    unsafe {
        core::arch::asm!(
            "lea {t}, [rip + 2f]",
            "mov qword ptr [{p}], {t}",
            "jmp {target}",
            "2:",
            p = in(reg) landing_pad(),
            t = out(reg) _,
            target = in(reg) target,
        );
    }
    end()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn handler_resumes_at_the_pad_and_records_once() {
        let mut frame = TrapFrame {
            vector: 14,
            error_code: 5,
            fault_addr: 0xdead_0000,
            ..TrapFrame::default()
        };
        frame.iret.rip = 0x40_1000;
        // Nothing armed: a real crash.
        assert_eq!(handler(&mut frame), Action::Crash);
        begin();
        LANDING.store(0x40_2000, SeqCst);
        assert_eq!(handler(&mut frame), Action::Resume);
        assert_eq!(frame.iret.rip, 0x40_2000);
        // The pad is used up: a second trap crashes.
        assert_eq!(handler(&mut frame), Action::Crash);
        let f = end().expect("the probe trapped");
        assert_eq!(
            f,
            Fault {
                vector: 14,
                error_code: 5,
                fault_addr: 0xdead_0000,
                rip: 0x40_1000
            }
        );
        assert_eq!(f.to_string(), "#PF, error 0x5, address 0xdead0000");
        assert_eq!(end(), None);
    }
}
