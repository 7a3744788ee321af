//! The machine-level helpers the properties share: addresses that must stay
//! out of a guest's reach, a fault probe that also reports where the probed
//! instruction is ([`probe_at!`]), system time read from the shared-info
//! page without a hypercall ([`now_ns`]), the event-channel bits of that
//! page, CPUID, and RFLAGS.
//!
//! They are written here rather than taken from the SDK on purpose: a
//! property suite checks the hypervisor with as little of the guest runtime
//! in between as possible. For the same reason the event-channel properties
//! take delivery away from the SDK ([`quiet_events`]) and watch the pending
//! bits themselves.

use alloc::format;
use core::sync::atomic::{AtomicU64, Ordering::SeqCst, fence};
use oxen_guest_sdk::dom0_abi::{
    GUEST_STACK_PAGES, GUEST_STACK_TOP, GUEST_VA_LIMIT, PAGE_SIZE, SharedInfo, VcpuTimeInfo, vector,
};
use oxen_guest_sdk::probe::Fault;
use oxen_guest_sdk::start_info;

use crate::framework::Check;

// ---- Addresses ---------------------------------------------------------------

/// Text of the hypervisor image (linked at `0xffffffff80000000` + 2 MiB,
/// `hypervisor/linker.ld`): mapped, supervisor-only.
pub const HV_IMAGE: u64 = 0xffff_ffff_8020_0000;
/// Physical 16 MiB in the hypervisor's direct map (`mm/layout.rs`,
/// `DIRECT_MAP_BASE`): ordinary RAM, mapped read-write, supervisor-only.
pub const HV_DIRECT_MAP: u64 = 0xffff_8000_0100_0000;
/// Non-canonical: bit 63 set, bits 62..47 clear.
pub const NON_CANONICAL: u64 = 0x8000_0000_0000_0000;
/// The first non-canonical address above the lower half.
pub const FIRST_NON_CANONICAL: u64 = GUEST_VA_LIMIT;
/// The last non-canonical page below the upper half.
pub const LAST_NON_CANONICAL: u64 = 0xffff_7fff_ffff_f000;
/// Lower half, never mapped by the builder or the SDK.
pub const UNMAPPED: u64 = 0x0000_3000_0000_0000;
/// Where properties map test pages (lower half, nothing else there).
pub const SCRATCH_VA: u64 = 0x0000_2000_0000_0000;
/// The page right below the initial stack, which the builder leaves
/// unmapped (`dom0_abi::GUEST_STACK_TOP`).
pub const STACK_GUARD: u64 = GUEST_STACK_TOP - (GUEST_STACK_PAGES + 1) * PAGE_SIZE;
/// The lowest address of the initial stack.
pub const STACK_BOTTOM: u64 = GUEST_STACK_TOP - GUEST_STACK_PAGES * PAGE_SIZE;

// ---- Fault probes ------------------------------------------------------------

/// What a [`probe_at!`] saw: the trap (if any) and where the probed
/// instruction is.
#[derive(Clone, Copy, Debug)]
pub struct Probed {
    /// The trap the SDK's probe handler caught.
    pub fault: Option<Fault>,
    /// The address of the probed instruction.
    pub at: u64,
}

impl Probed {
    /// The probed instruction must have trapped with one of `vectors`, at
    /// its own address (a fault, reflected exactly), with error code 0 for
    /// a #GP (privileged instructions raise #GP(0)).
    pub fn reflected(&self, what: &str, vectors: &[u8]) -> Result<Fault, alloc::string::String> {
        let Some(f) = self.fault else {
            return Err(format!("{what} ran at CPL 3 without a fault"));
        };
        ensure!(
            vectors.iter().any(|&v| u64::from(v) == f.vector),
            "{what} raised {f}, expected vector {vectors:?}"
        );
        ensure!(
            f.rip == self.at,
            "{what}: the trap frame says rip {:#x}, the instruction is at {:#x}",
            f.rip,
            self.at
        );
        ensure!(
            f.vector != u64::from(vector::GP) || f.error_code == 0,
            "{what} raised #GP with error code {:#x}, expected #GP(0)",
            f.error_code
        );
        Ok(f)
    }
}

/// Run `insn` (after the `setup` instructions) under the SDK's landing pad,
/// with `arg` in `rdx`: a [`Probed`]. The instructions may use `rax`, `rcx`
/// and `rdx` only and must not move `rsp`; a trap in them resumes right
/// after `insn` with every register as it was at the trap. Use inside
/// `unsafe`: the caller vouches for what the instructions do if they run.
macro_rules! probe_at {
    ($arg:expr; [$($setup:literal),*] $insn:literal) => {{
        oxen_guest_sdk::probe::begin();
        let at: u64;
        ::core::arch::asm!(
            "lea {t}, [rip + 2f]",
            "mov qword ptr [{p}], {t}",
            $($setup,)*
            "3:",
            $insn,
            "2:",
            "lea {at}, [rip + 3b]",
            p = in(reg) oxen_guest_sdk::probe::landing_pad(),
            t = out(reg) _,
            at = lateout(reg) at,
            inout("rdx") $arg => _,
            out("rax") _,
            out("rcx") _,
        );
        $crate::lowlevel::Probed {
            fault: oxen_guest_sdk::probe::end(),
            at,
        }
    }};
}

/// Install the SDK's probe handler for the vectors the properties provoke.
pub fn install_probes() -> Check {
    oxen_guest_sdk::probe::install(&[vector::DE, vector::UD, vector::GP, vector::PF, vector::BP])
        .map_err(|e| format!("cannot install the probe handlers: {e}"))
}

/// Whether a read of `va` page-faults as not present (an unmapped page).
pub fn not_present(va: u64) -> bool {
    // SAFETY: `va` is memory this guest may read without side effects, or
    // unmapped; a fault resumes at the landing pad.
    let p = unsafe { probe_at!(va; [] "mov rax, qword ptr [rdx]") };
    p.fault
        .is_some_and(|f| f.vector == u64::from(vector::PF) && f.error_code & 1 == 0 && f.fault_addr == va)
}

/// Read the `u64` at `va` under a probe.
pub fn peek(va: u64) -> Result<u64, Fault> {
    // SAFETY: properties read only their own memory, or memory that must
    // fault; a read of RAM has no side effect.
    unsafe { oxen_guest_sdk::probe::read_u64(va) }
}

// ---- Registers -----------------------------------------------------------------

/// RFLAGS now.
pub fn rflags() -> u64 {
    let flags: u64;
    // SAFETY: pushes one word and pops it again; reads the flags only.
    unsafe { core::arch::asm!("pushfq", "pop {}", out(reg) flags) };
    flags
}

/// `cpuid(leaf, subleaf)`: (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32, subleaf: u32) -> (u32, u32, u32, u32) {
    let (eax, ebx, ecx, edx): (u32, u32, u32, u32);
    // SAFETY: CPUID is allowed at CPL 3 and only writes the four registers;
    // rbx, which LLVM reserves, is saved and restored around it.
    unsafe {
        core::arch::asm!(
            "mov {b:r}, rbx",
            "cpuid",
            "xchg {b:r}, rbx",
            b = out(reg) ebx,
            inout("eax") leaf => eax,
            inout("ecx") subleaf => ecx,
            out("edx") edx,
            options(nomem, nostack, preserves_flags),
        );
    }
    (eax, ebx, ecx, edx)
}

/// Whether AVX registers may be used: CPUID says AVX and OSXSAVE, and the
/// hypervisor enabled the SSE and AVX state components in XCR0 (Intel SDM
/// Vol.1 14.3).
pub fn avx_usable() -> bool {
    const OSXSAVE: u32 = 1 << 27;
    const AVX: u32 = 1 << 28;
    let (_, _, ecx, _) = cpuid(1, 0);
    if ecx & (OSXSAVE | AVX) != OSXSAVE | AVX {
        return false;
    }
    let (lo, _hi): (u32, u32);
    // SAFETY: CR4.OSXSAVE is set (CPUID.1:ECX.OSXSAVE), so XGETBV with
    // ECX = 0 reads XCR0 at any CPL.
    unsafe {
        core::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") _hi,
            options(nomem, nostack, preserves_flags));
    }
    lo & 0b110 == 0b110
}

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC only reads the counter (CR4.TSD is clear for guests:
    // the ABI has them read time without a hypercall).
    unsafe { core::arch::asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

// ---- The shared-info page ------------------------------------------------------

/// Take event delivery away from the SDK runtime (which registers an upcall
/// at start and clears the pending bits of every port it delivers): with no
/// callback, pending bits stay set until the property clears them.
pub fn quiet_events() -> Check {
    oxen_guest_sdk::hypercall::set_callbacks(0).map_err(|e| format!("clearing the event callback: {e}"))
}

fn shared_info() -> *const SharedInfo {
    start_info().shared_info_va as *const SharedInfo
}

/// System time in nanoseconds, from vCPU 0's time record (the seqlock
/// protocol of `dom0_abi::VcpuTimeInfo`).
pub fn now_ns() -> u64 {
    // SAFETY: the builder maps the shared-info page read-write at
    // `shared_info_va` for the domain's lifetime; the record is read with
    // volatile loads since the hypervisor may rewrite it at any time.
    let record = unsafe { &raw const (*shared_info()).vcpu_info[0].time };
    loop {
        // SAFETY: as above.
        let before = unsafe { core::ptr::read_volatile(&raw const (*record).version) };
        fence(SeqCst);
        // SAFETY: as above.
        let t: VcpuTimeInfo = unsafe { core::ptr::read_volatile(record) };
        fence(SeqCst);
        // SAFETY: as above.
        let after = unsafe { core::ptr::read_volatile(&raw const (*record).version) };
        if before != after || before % 2 != 0 {
            continue;
        }
        let delta = u128::from(rdtsc().saturating_sub(t.tsc_timestamp));
        let shifted = if t.tsc_shift >= 0 {
            delta << t.tsc_shift
        } else {
            delta >> t.tsc_shift.unsigned_abs()
        };
        let ns = (shifted * u128::from(t.tsc_to_system_mul)) >> 32;
        return t
            .system_time
            .saturating_add(u64::try_from(ns).unwrap_or(u64::MAX));
    }
}

/// Word `port / 64` of the shared-info pending bitmap.
fn pending_word(port: u32) -> &'static AtomicU64 {
    let index = usize::try_from(port / 64).unwrap_or(0) % 64;
    // SAFETY: the shared-info page is mapped read-write for the domain's
    // lifetime; `evtchn_pending` is an array of 64 aligned u64s (dom0_abi
    // layout), and the hypervisor updates it with atomics too.
    unsafe { &*(&raw const (*shared_info()).evtchn_pending[index]).cast::<AtomicU64>() }
}

/// Whether `port` is pending.
pub fn is_pending(port: u32) -> bool {
    pending_word(port).load(SeqCst) & (1 << (port % 64)) != 0
}

/// Clear `port`'s pending bit (the guest's half of event handling).
pub fn clear_pending(port: u32) {
    pending_word(port).fetch_and(!(1 << (port % 64)), SeqCst);
}
