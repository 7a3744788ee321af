//! Time: the TSC frequency, found once at boot, and the uptime derived from
//! it. The frequency comes from CPUID where the CPU states it (leaf 0x15
//! with its crystal, the hypervisor timing leaf 0x4000_0010, leaf 0x16) and
//! is otherwise measured against the PIT.

use crate::arch::{cpu, pit, rtc};
use crate::clock;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use raw_cpuid::CpuId;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static BOOT_TSC: AtomicU64 = AtomicU64::new(0);

/// Where the TSC frequency came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TscSource {
    /// CPUID leaf 0x15: crystal frequency times the TSC/crystal ratio.
    CpuidCrystal,
    /// The hypervisor timing leaf 0x4000_0010 (QEMU/KVM, VMware).
    HypervisorLeaf,
    /// CPUID leaf 0x16 processor base frequency.
    CpuidBaseFrequency,
    /// Measured against the 8254 PIT.
    PitCalibration,
    /// Nothing worked: a guess, loudly reported.
    Assumed,
}

impl fmt::Display for TscSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TscSource::CpuidCrystal => "CPUID leaf 0x15",
            TscSource::HypervisorLeaf => "hypervisor leaf 0x40000010",
            TscSource::CpuidBaseFrequency => "CPUID leaf 0x16",
            TscSource::PitCalibration => "calibrated against the PIT",
            TscSource::Assumed => "assumed (no source available)",
        })
    }
}

/// What a TSC frequency is assumed to be when nothing can tell.
const ASSUMED_TSC_HZ: u64 = 2_000_000_000;

/// Record the boot TSC; call first thing at boot.
pub fn mark_boot() {
    BOOT_TSC.store(cpu::rdtsc(), Ordering::Relaxed);
}

static CLOCK_MUL: AtomicU64 = AtomicU64::new(0);
static CLOCK_SHIFT: AtomicU64 = AtomicU64::new(0);
static WALLCLOCK_NS: AtomicU64 = AtomicU64::new(0);

/// Find the TSC frequency and remember it, with the system-time scale that
/// guests get in their time records.
pub fn init() -> (u64, TscSource) {
    let (hz, source) = detect();
    TSC_HZ.store(hz, Ordering::Relaxed);
    let (mul, shift) = clock::pvclock_scale(hz);
    CLOCK_MUL.store(u64::from(mul), Ordering::Relaxed);
    CLOCK_SHIFT.store(u64::from(shift as u8), Ordering::Relaxed);
    (hz, source)
}

fn scale() -> (u32, i8) {
    let mul = u32::try_from(CLOCK_MUL.load(Ordering::Relaxed)).unwrap_or(0);
    let shift = (CLOCK_SHIFT.load(Ordering::Relaxed) & 0xff) as u8 as i8;
    (mul, shift)
}

/// System time: nanoseconds since boot, by the same formula as the guests'
/// time records.
pub fn now_ns() -> u64 {
    let (mul, shift) = scale();
    clock::pvclock_ns(
        cpu::rdtsc().saturating_sub(BOOT_TSC.load(Ordering::Relaxed)),
        mul,
        shift,
    )
}

/// The TSC value at system time `ns`.
pub fn tsc_at(ns: u64) -> u64 {
    let (mul, shift) = scale();
    BOOT_TSC
        .load(Ordering::Relaxed)
        .saturating_add(clock::pvclock_ticks(ns, mul, shift))
}

/// The time record every vCPU gets: system time 0 at the boot TSC, so it
/// never needs rewriting while the TSC runs at a constant rate.
pub fn record() -> dom0_abi::VcpuTimeInfo {
    let (mul, shift) = scale();
    dom0_abi::VcpuTimeInfo {
        version: 0,
        pad0: 0,
        tsc_timestamp: BOOT_TSC.load(Ordering::Relaxed),
        system_time: 0,
        tsc_to_system_mul: mul,
        tsc_shift: shift,
        flags: 0,
        pad1: [0; 2],
    }
}

/// Read the RTC and fix the wall clock of system time 0; the date read.
pub fn init_wallclock() -> Option<rtc::RtcTime> {
    let t = rtc::read_time()?;
    let epoch = clock::epoch_seconds(t.year, t.month, t.day, t.hour, t.minute, t.second);
    let boot_ns = (epoch * 1_000_000_000).saturating_sub(now_ns());
    WALLCLOCK_NS.store(boot_ns, Ordering::Relaxed);
    Some(t)
}

/// Wall-clock time of system time 0: `(seconds, nanoseconds)` since 1970.
pub fn wallclock_at_boot() -> (u32, u32) {
    let ns = WALLCLOCK_NS.load(Ordering::Relaxed);
    (
        u32::try_from(ns / 1_000_000_000).unwrap_or(u32::MAX),
        (ns % 1_000_000_000) as u32,
    )
}

fn detect() -> (u64, TscSource) {
    let cpuid = CpuId::new();
    if let Some(hz) = cpuid
        .get_tsc_info()
        .and_then(|t| t.tsc_frequency())
        .filter(|&hz| hz > 0)
    {
        return (hz, TscSource::CpuidCrystal);
    }
    if let Some(khz) = cpuid
        .get_hypervisor_info()
        .and_then(|h| h.tsc_frequency())
        .filter(|&k| k > 0)
    {
        return (u64::from(khz) * 1000, TscSource::HypervisorLeaf);
    }
    if let Some(mhz) = cpuid
        .get_processor_frequency_info()
        .map(|f| f.processor_base_frequency())
        .filter(|&m| m > 0)
    {
        return (u64::from(mhz) * 1_000_000, TscSource::CpuidBaseFrequency);
    }
    // Three 10 ms runs; the median resists one disturbed run.
    let mut runs = [0u64; 3];
    for run in runs.iter_mut() {
        match pit::measure_tsc_hz(10) {
            Some(hz) => *run = hz,
            None => return (ASSUMED_TSC_HZ, TscSource::Assumed),
        }
    }
    runs.sort_unstable();
    (runs[1], TscSource::PitCalibration)
}

/// TSC ticks per second, or `None` before `init`.
pub fn tsc_hz() -> Option<u64> {
    match TSC_HZ.load(Ordering::Relaxed) {
        0 => None,
        hz => Some(hz),
    }
}

/// Microseconds since boot, or `None` before the TSC frequency is known.
pub fn uptime_us() -> Option<u64> {
    let hz = tsc_hz()?;
    let ticks = cpu::rdtsc().saturating_sub(BOOT_TSC.load(Ordering::Relaxed));
    Some(u64::try_from(u128::from(ticks) * 1_000_000 / u128::from(hz)).unwrap_or(u64::MAX))
}

/// Nanoseconds in `ticks` TSC ticks (0 before the frequency is known).
pub fn tsc_to_ns(ticks: u64) -> u64 {
    match tsc_hz() {
        Some(hz) => u64::try_from(u128::from(ticks) * 1_000_000_000 / u128::from(hz)).unwrap_or(u64::MAX),
        None => 0,
    }
}
