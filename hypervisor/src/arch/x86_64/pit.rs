//! The 8254 PIT, used once at boot as a known clock to measure the TSC
//! frequency when CPUID does not state it. Channel 0 runs as a free-running
//! rate generator (mode 2, reload 0x10000) and is sampled with the counter
//! latch command (8254 datasheet: control word, counter latch). Port 0x61
//! and channel 2 are not used, since not every machine (QEMU microvm) has
//! the PC speaker port that gates it.

use super::cpu::rdtsc;
use super::port::{inb, outb};

/// PIT input clock in Hz.
pub const PIT_HZ: u64 = 1_193_182;
const CHANNEL0: u16 = 0x40;
const COMMAND: u16 = 0x43;
/// Channel 0, lobyte/hibyte access, mode 2 (rate generator), binary.
const CMD_CH0_MODE2: u8 = 0b0011_0100;
/// Channel 0, counter latch.
const CMD_CH0_LATCH: u8 = 0b0000_0000;

fn read_count() -> u16 {
    outb(COMMAND, CMD_CH0_LATCH);
    let lo = inb(CHANNEL0);
    let hi = inb(CHANNEL0);
    u16::from_le_bytes([lo, hi])
}

/// Measure TSC ticks per second over `ms` milliseconds of PIT time. `None`
/// when the PIT does not count (absent: every read gives the same value).
pub fn measure_tsc_hz(ms: u64) -> Option<u64> {
    let target = PIT_HZ * ms / 1000;
    outb(COMMAND, CMD_CH0_MODE2);
    outb(CHANNEL0, 0);
    outb(CHANNEL0, 0);
    // Wait for the first change so that the measurement starts on an edge.
    let first = read_count();
    let mut prev = first;
    let mut polls = 0u32;
    while prev == first {
        polls += 1;
        if polls > 1_000_000 {
            return None;
        }
        prev = read_count();
    }
    let start = rdtsc();
    let mut elapsed: u64 = 0;
    while elapsed < target {
        let now = read_count();
        // The counter counts down and wraps at 0x10000; reads are far more
        // frequent than one wrap (55 ms), so the difference is exact.
        elapsed += u64::from(prev.wrapping_sub(now));
        prev = now;
    }
    let ticks = rdtsc().checked_sub(start)?;
    if ticks == 0 {
        return None;
    }
    Some(u64::try_from(u128::from(ticks) * u128::from(PIT_HZ) / u128::from(elapsed)).unwrap_or(u64::MAX))
}
