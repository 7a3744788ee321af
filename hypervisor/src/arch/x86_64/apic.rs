//! The local APIC of the boot CPU (Intel SDM Vol.3A chapter 11), in x2APIC
//! mode where CPUID offers it, xAPIC (MMIO, mapped uncached) otherwise. It is
//! software-enabled with the spurious vector and every local interrupt
//! masked; the scheduler work will program its timer. The legacy 8259 PICs
//! are masked so that nothing arrives through them.

use super::idt::SPURIOUS_VECTOR;
use super::port::outb;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use x86_64::registers::model_specific::Msr;

/// IA32_APIC_BASE (Intel SDM Vol.3A 11.4.4).
const IA32_APIC_BASE: u32 = 0x1b;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;
const APIC_BASE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// xAPIC register offsets (Intel SDM Vol.3A table 11-1); the x2APIC MSR is
/// `0x800 + offset / 16` (table 11-6).
const REG_ID: u32 = 0x20;
const REG_VERSION: u32 = 0x30;
const REG_TPR: u32 = 0x80;
const REG_SVR: u32 = 0xf0;
const REG_LVT_TIMER: u32 = 0x320;
const REG_LVT_LINT0: u32 = 0x350;
const REG_LVT_LINT1: u32 = 0x360;
const REG_LVT_ERROR: u32 = 0x370;
const REG_EOI: u32 = 0xb0;
const REG_TIMER_INITIAL: u32 = 0x380;
const REG_TIMER_CURRENT: u32 = 0x390;
const REG_TIMER_DIVIDE: u32 = 0x3e0;
const SVR_ENABLE: u32 = 1 << 8;
const LVT_MASKED: u32 = 1 << 16;
/// Divide configuration 0b0011: divide by 16.
const TIMER_DIVIDE_16: u32 = 0b0011;

/// LVT timer mode bits 17-18 = 10b: TSC-deadline.
const LVT_TIMER_TSC_DEADLINE: u32 = 0b10 << 17;
/// IA32_TSC_DEADLINE (Intel SDM Vol.3A 11.5.4.1).
const IA32_TSC_DEADLINE: u32 = 0x6e0;
const MODE_NONE: u8 = 0;
const MODE_ONESHOT: u8 = 1;
const MODE_TSC_DEADLINE: u8 = 2;
static TIMER_MODE: AtomicU8 = AtomicU8::new(MODE_NONE);
static TICKS_PER_MS: AtomicU64 = AtomicU64::new(0);

static APIC: spin::Once<LocalApic> = spin::Once::new();

/// How the local APIC is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Registers are MSRs.
    X2Apic,
    /// Registers are MMIO at this virtual address.
    XApic {
        /// Virtual address of the register page.
        base_va: u64,
    },
}

/// The boot CPU's local APIC.
#[derive(Clone, Copy, Debug)]
pub struct LocalApic {
    mode: Mode,
}

/// What `init` found.
#[derive(Clone, Copy, Debug)]
pub struct ApicInfo {
    /// APIC ID of this CPU.
    pub id: u32,
    /// Version register: version in bits 0-7, max LVT entry in bits 16-23.
    pub version: u32,
    /// x2APIC or xAPIC.
    pub mode: Mode,
    /// Physical base of the xAPIC registers from IA32_APIC_BASE.
    pub phys_base: u64,
}

/// The physical register base that IA32_APIC_BASE reports.
pub fn msr_phys_base() -> u64 {
    // SAFETY: IA32_APIC_BASE exists on every CPU with a local APIC, which
    // long mode implies.
    unsafe { Msr::new(IA32_APIC_BASE).read() & APIC_BASE_ADDR_MASK }
}

impl LocalApic {
    /// Enable the local APIC. `map_mmio` maps the xAPIC register page and
    /// returns its virtual address (not called in x2APIC mode).
    pub fn init(use_x2apic: bool, map_mmio: impl FnOnce(u64) -> Option<u64>) -> Option<(Self, ApicInfo)> {
        mask_legacy_pic();
        let mut msr = Msr::new(IA32_APIC_BASE);
        // SAFETY: see `msr_phys_base`.
        let base = unsafe { msr.read() };
        let phys_base = base & APIC_BASE_ADDR_MASK;
        let mode = if use_x2apic {
            // SAFETY: CPUID reports x2APIC; enabling it keeps the APIC
            // enabled and moves its registers to MSRs (Intel SDM 11.12.1).
            unsafe { msr.write(base | APIC_BASE_ENABLE | APIC_BASE_X2APIC) };
            Mode::X2Apic
        } else {
            // SAFETY: setting the global enable bit of an enabled-by-reset APIC.
            unsafe { msr.write(base | APIC_BASE_ENABLE) };
            Mode::XApic {
                base_va: map_mmio(phys_base)?,
            }
        };
        let apic = LocalApic { mode };
        apic.write(REG_TPR, 0);
        apic.write(REG_LVT_TIMER, LVT_MASKED);
        apic.write(REG_LVT_LINT0, LVT_MASKED);
        apic.write(REG_LVT_LINT1, LVT_MASKED);
        apic.write(REG_LVT_ERROR, LVT_MASKED);
        apic.write(REG_SVR, SVR_ENABLE | u32::from(SPURIOUS_VECTOR));
        APIC.call_once(|| apic);
        let raw_id = apic.read(REG_ID);
        let id = if use_x2apic { raw_id } else { raw_id >> 24 };
        let version = apic.read(REG_VERSION);
        Some((
            apic,
            ApicInfo {
                id,
                version,
                mode,
                phys_base,
            },
        ))
    }

    /// Measure the timer's rate against the TSC (divide by 16) and set it
    /// up for one-shot use on `vector`: TSC-deadline mode where CPUID has it
    /// (Intel SDM Vol.3A 11.5.4.1), a counted one-shot otherwise. Returns
    /// timer ticks per millisecond (0 in TSC-deadline mode).
    pub fn init_timer(&self, vector: u8, tsc_hz: u64, tsc_deadline: bool) -> u64 {
        self.write(REG_TIMER_DIVIDE, TIMER_DIVIDE_16);
        if tsc_deadline {
            self.write(REG_LVT_TIMER, u32::from(vector) | LVT_TIMER_TSC_DEADLINE);
            TIMER_MODE.store(MODE_TSC_DEADLINE, Ordering::Relaxed);
            return 0;
        }
        self.write(REG_LVT_TIMER, LVT_MASKED);
        // Three 10 ms measurements against the TSC; the median resists one
        // disturbed run (a virtual CPU descheduled by its host, say).
        let mut runs = [0u64; 3];
        for run in runs.iter_mut() {
            self.write(REG_TIMER_INITIAL, u32::MAX);
            let wait = tsc_hz / 100; // 10 ms
            let start = super::cpu::rdtsc();
            while super::cpu::rdtsc().wrapping_sub(start) < wait {
                core::hint::spin_loop();
            }
            *run = u64::from(u32::MAX - self.read(REG_TIMER_CURRENT)) / 10;
        }
        runs.sort_unstable();
        let per_ms = runs[1].max(1);
        self.write(REG_TIMER_INITIAL, 0);
        self.write(REG_LVT_TIMER, u32::from(vector));
        TICKS_PER_MS.store(per_ms, Ordering::Relaxed);
        TIMER_MODE.store(MODE_ONESHOT, Ordering::Relaxed);
        per_ms
    }

    /// Fire the timer once, `delay_ns` from now (`tsc_deadline` is the same
    /// moment as a TSC value, used in TSC-deadline mode).
    pub fn arm(&self, delay_ns: u64, tsc_deadline: u64) {
        match TIMER_MODE.load(Ordering::Relaxed) {
            MODE_TSC_DEADLINE => {
                // SAFETY: IA32_TSC_DEADLINE exists in TSC-deadline mode; the
                // write only schedules the timer interrupt.
                unsafe { Msr::new(IA32_TSC_DEADLINE).write(tsc_deadline.max(1)) };
            }
            MODE_ONESHOT => {
                let per_ms = TICKS_PER_MS.load(Ordering::Relaxed);
                let ticks = u128::from(delay_ns) * u128::from(per_ms) / 1_000_000;
                self.write(REG_TIMER_INITIAL, u32::try_from(ticks.max(1)).unwrap_or(u32::MAX));
            }
            _ => {}
        }
    }

    fn read(&self, reg: u32) -> u32 {
        match self.mode {
            Mode::X2Apic => {
                // SAFETY: x2APIC mode is on and `reg` is an architectural
                // register, readable as an MSR.
                let value = unsafe { Msr::new(0x800 + (reg >> 4)).read() };
                // x2APIC registers other than the ICR are 32 bits wide.
                (value & 0xffff_ffff) as u32
            }
            Mode::XApic { base_va } => {
                let ptr = (base_va + u64::from(reg)) as *const u32;
                // SAFETY: `base_va` maps the register page uncached; `reg`
                // is a 16-byte-aligned register inside it.
                unsafe { ptr.read_volatile() }
            }
        }
    }

    fn write(&self, reg: u32, value: u32) {
        match self.mode {
            Mode::X2Apic => {
                // SAFETY: as for `read`; the registers written are the
                // task priority, the LVTs (masked) and the SVR.
                unsafe { Msr::new(0x800 + (reg >> 4)).write(u64::from(value)) }
            }
            Mode::XApic { base_va } => {
                let ptr = (base_va + u64::from(reg)) as *mut u32;
                // SAFETY: as for `read`.
                unsafe { ptr.write_volatile(value) }
            }
        }
    }
}

/// Mask both 8259 PICs (OCW1 = 0xff); harmless where they do not exist.
fn mask_legacy_pic() {
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
}

/// The boot CPU's local APIC, once `LocalApic::init` has run.
pub fn local() -> Option<&'static LocalApic> {
    APIC.get()
}

/// Signal end of interrupt to the local APIC.
pub fn eoi() {
    if let Some(apic) = APIC.get() {
        apic.write(REG_EOI, 0);
    }
}
