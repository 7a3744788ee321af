//! Time as a guest reads it: system time from this vCPU's time record in
//! the shared-info page (no hypercall), sleeping on `VIRQ_TIMER` (through
//! `event.rs`), and the wall clock with a calendar date for printing.
//!
//! **System time** is Xen's pvclock: the hypervisor publishes
//! `VcpuTimeInfo` (dom0-abi `shared.rs`) under a seqlock `version` (odd
//! while it rewrites the record); the guest reads the record and the TSC
//! together, retrying while the version is odd or changed, and computes
//! `system_time + (scaled(tsc - tsc_timestamp) * tsc_to_system_mul) >> 32`,
//! where `scaled` shifts left by `tsc_shift` (right when negative). A
//! record that is still all zero (an ABI 1.0 hypervisor) falls back to
//! `tsc * 1e6 / start_info.tsc_khz`.
//!
//! **Sleeping** arms the vCPU's one-shot timer (`vcpu_set_timer`) and waits
//! on the `VIRQ_TIMER` port ([`timer_port`], bound on first use), so it
//! replaces any deadline the guest had set. Without timers (ABI 1.0) it
//! yields until the time has passed.

use crate::{event, hypercall, info};
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};
use dom0_abi::{SharedInfo, Status, VcpuInfo, VcpuTimeInfo, Virq};

/// Nanoseconds in a second.
pub const NS_PER_SEC: u64 = 1_000_000_000;
/// Nanoseconds in a millisecond.
pub const NS_PER_MS: u64 = 1_000_000;

/// How long past its deadline a sleep waits for the timer event before it
/// looks at the clock again (a lost event must not hang a sleeper).
const TIMER_SLACK_NS: u64 = 50 * NS_PER_MS;

/// The `VIRQ_TIMER` port (0: not bound yet).
static TIMER_PORT: AtomicU32 = AtomicU32::new(0);

/// The TSC now (`rdtsc`; not serialising).
pub fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` reads the time-stamp counter and touches nothing
    // else; Oxen leaves CR4.TSD clear so ring 3 may execute it (the time
    // record depends on that).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The parts of a time record the conversion needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeRecord {
    /// TSC at `system_time`.
    pub tsc_timestamp: u64,
    /// Nanoseconds since boot at `tsc_timestamp`.
    pub system_time: u64,
    /// 32.32 fixed-point nanoseconds per (shifted) tick.
    pub tsc_to_system_mul: u32,
    /// Power-of-two pre-shift of the tick delta.
    pub tsc_shift: i8,
}

impl From<VcpuTimeInfo> for TimeRecord {
    fn from(r: VcpuTimeInfo) -> TimeRecord {
        TimeRecord {
            tsc_timestamp: r.tsc_timestamp,
            system_time: r.system_time,
            tsc_to_system_mul: r.tsc_to_system_mul,
            tsc_shift: r.tsc_shift,
        }
    }
}

impl TimeRecord {
    /// System time at TSC value `tsc` (a TSC before the timestamp counts
    /// as the timestamp: time does not run backwards).
    pub fn ns_at(&self, tsc: u64) -> u64 {
        let delta = u128::from(tsc.saturating_sub(self.tsc_timestamp));
        let shift = u32::from(self.tsc_shift.unsigned_abs());
        let delta = if self.tsc_shift >= 0 {
            delta << shift
        } else {
            delta >> shift
        };
        let scaled = (delta * u128::from(self.tsc_to_system_mul)) >> 32;
        self.system_time
            .saturating_add(u64::try_from(scaled).unwrap_or(u64::MAX))
    }
}

/// Nanoseconds in `tsc` ticks at `tsc_khz` (the fallback clock); ticks
/// count as nanoseconds when the frequency is unknown.
fn fallback_ns(tsc: u64, tsc_khz: u64) -> u64 {
    if tsc_khz == 0 {
        return tsc;
    }
    u64::try_from(u128::from(tsc) * 1_000_000 / u128::from(tsc_khz)).unwrap_or(u64::MAX)
}

/// Read a seqlock-protected value: `body` between two `version` reads,
/// again while the version is odd (an update is under way) or changed.
fn seqlock_read<T>(mut version: impl FnMut() -> u32, mut body: impl FnMut() -> T) -> (u32, T) {
    loop {
        let before = version();
        if before & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        let value = body();
        core::sync::atomic::fence(Ordering::Acquire);
        if version() == before {
            return (before, value);
        }
    }
}

/// A version word of the shared-info page, read atomically.
fn load_u32(p: *const u32) -> u32 {
    // SAFETY: callers pass a 4-aligned field of the shared-info page, which
    // the builder maps read-write for the domain's life (see
    // `event::shared_info_ptr`); the hypervisor updates it atomically.
    unsafe { AtomicU32::from_ptr(p.cast_mut()) }.load(Ordering::Acquire)
}

/// This vCPU's time record, read consistently, with a TSC value read
/// inside the same seqlock pass; `None` before the runtime is up.
fn read_record() -> Option<(VcpuTimeInfo, u64)> {
    let page = event::shared_info_ptr()?.cast::<u8>();
    let offset = core::mem::offset_of!(SharedInfo, vcpu_info)
        + event::VCPU as usize * core::mem::size_of::<VcpuInfo>()
        + core::mem::offset_of!(VcpuInfo, time);
    let record = page.wrapping_add(offset).cast::<VcpuTimeInfo>();
    let version = record
        .cast::<u8>()
        .wrapping_add(core::mem::offset_of!(VcpuTimeInfo, version))
        .cast::<u32>();
    let (_, value) = seqlock_read(
        || load_u32(version),
        || {
            // SAFETY: the record lies in the mapped shared-info page, 8-aligned
            // (dom0-abi layout asserts); a torn read is caught by the
            // seqlock, and `VcpuTimeInfo` is valid for any bytes.
            let r = unsafe { core::ptr::read_volatile(record) };
            (r, rdtsc())
        },
    );
    Some(value)
}

/// System time: nanoseconds since the hypervisor booted.
pub fn now_ns() -> u64 {
    match read_record() {
        Some((r, tsc)) if r.version != 0 || r.tsc_to_system_mul != 0 => TimeRecord::from(r).ns_at(tsc),
        Some((_, tsc)) => fallback_ns(tsc, info::start_info().tsc_khz),
        None => fallback_ns(rdtsc(), info::try_start_info().map_or(0, |si| si.tsc_khz)),
    }
}

/// The `VIRQ_TIMER` port of this vCPU, bound on first use (the one
/// [`sleep_ns`] waits on; use it rather than binding the VIRQ again).
pub fn timer_port() -> Result<u32, Status> {
    match TIMER_PORT.load(Ordering::SeqCst) {
        0 => {
            let port = event::bind_virq(Virq::Timer)?;
            TIMER_PORT.store(port, Ordering::SeqCst);
            Ok(port)
        }
        port => Ok(port),
    }
}

/// Sleep until system time `deadline_ns`.
pub fn sleep_until(deadline_ns: u64) {
    let port = timer_port().ok();
    loop {
        let now = now_ns();
        let Some(left) = deadline_ns.checked_sub(now).filter(|&l| l > 0) else {
            return;
        };
        match port {
            Some(port) if hypercall::set_timer(deadline_ns).is_ok() => {
                // Early or late, the loop looks at the clock again; a stale
                // event from an earlier timer only costs one more round.
                event::wait_timeout(port, left.saturating_add(TIMER_SLACK_NS));
            }
            _ => hypercall::sched_yield(),
        }
    }
}

/// Sleep for `ns` nanoseconds of system time.
pub fn sleep_ns(ns: u64) {
    sleep_until(now_ns().saturating_add(ns));
}

/// Sleep for `ms` milliseconds of system time.
pub fn sleep_ms(ms: u64) {
    sleep_ns(ms.saturating_mul(NS_PER_MS));
}

/// The wall clock of system time 0 (`wc_sec`, `wc_nsec`), read under its
/// seqlock; `None` before the runtime is up.
fn wallclock_base() -> Option<(u32, u32)> {
    let page = event::shared_info_ptr()?.cast::<u8>();
    let field = |offset: usize| page.wrapping_add(offset).cast::<u32>();
    let version = field(core::mem::offset_of!(SharedInfo, wc_version));
    let sec = field(core::mem::offset_of!(SharedInfo, wc_sec));
    let nsec = field(core::mem::offset_of!(SharedInfo, wc_nsec));
    let (_, value) = seqlock_read(|| load_u32(version), || (load_u32(sec), load_u32(nsec)));
    Some(value)
}

/// Wall-clock time: nanoseconds since 1970-01-01 UTC.
pub fn wallclock_ns() -> u128 {
    let (sec, nsec) = wallclock_base().unwrap_or((0, 0));
    u128::from(sec) * u128::from(NS_PER_SEC) + u128::from(nsec) + u128::from(now_ns())
}

/// Wall-clock time: seconds since 1970-01-01 UTC.
pub fn wallclock() -> u64 {
    u64::try_from(wallclock_ns() / u128::from(NS_PER_SEC)).unwrap_or(u64::MAX)
}

/// A UTC calendar date and time, for printing (`Display`: ISO 8601).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    /// Year (proleptic Gregorian).
    pub year: u64,
    /// Month, 1 ..= 12.
    pub month: u8,
    /// Day of the month, 1 ..= 31.
    pub day: u8,
    /// Hour, 0 ..= 23.
    pub hour: u8,
    /// Minute, 0 ..= 59.
    pub minute: u8,
    /// Second, 0 ..= 59.
    pub second: u8,
}

impl DateTime {
    /// The date of `secs` seconds since 1970-01-01 UTC (Howard Hinnant's
    /// civil-from-days).
    pub fn from_unix(secs: u64) -> DateTime {
        let days = secs / 86_400;
        let rem = secs % 86_400;
        // Shift the epoch to 0000-03-01, the start of a 400-year era.
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z % 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        let small = |v: u64| u8::try_from(v).unwrap_or(u8::MAX);
        DateTime {
            year,
            month: small(month),
            day: small(day),
            hour: small(rem / 3600),
            minute: small(rem % 3600 / 60),
            second: small(rem % 60),
        }
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;
    use std::string::ToString;

    /// The hypervisor's scale for a TSC at `hz` (hypervisor `clock.rs`).
    fn scale(tsc_hz: u64) -> (u32, i8) {
        let mut hz = u128::from(tsc_hz);
        let mut shift: i8 = 0;
        while hz > 2_000_000_000 {
            hz >>= 1;
            shift -= 1;
        }
        while hz <= 1_000_000_000 {
            hz <<= 1;
            shift += 1;
        }
        (
            u32::try_from((1_000_000_000u128 << 32) / hz).unwrap_or(u32::MAX),
            shift,
        )
    }

    #[test]
    fn pvclock_math_matches_the_frequency() {
        for hz in [
            100_000_000u64,
            1_000_000_000,
            2_596_122_000,
            3_000_000_000,
            4_000_000_000,
        ] {
            let (mul, shift) = scale(hz);
            let r = TimeRecord {
                tsc_timestamp: 1_000_000,
                system_time: 5_000,
                tsc_to_system_mul: mul,
                tsc_shift: shift,
            };
            // One second of ticks past the timestamp is one second later.
            let ns = r.ns_at(1_000_000 + hz);
            assert!(ns.abs_diff(NS_PER_SEC + 5_000) <= 2, "{hz} Hz: {ns}");
            // An hour: no overflow, rounding error stays small.
            let ns = r.ns_at(1_000_000 + hz * 3600);
            assert!(ns.abs_diff(3600 * NS_PER_SEC + 5_000) <= 7_200, "{hz} Hz: {ns}");
            // At and before the timestamp: system_time.
            assert_eq!(r.ns_at(1_000_000), 5_000);
            assert_eq!(r.ns_at(10), 5_000);
        }
    }

    #[test]
    fn pvclock_shifts_both_ways() {
        let r = |shift| TimeRecord {
            tsc_timestamp: 0,
            system_time: 0,
            tsc_to_system_mul: 1 << 31, // 0.5
            tsc_shift: shift,
        };
        assert_eq!(r(0).ns_at(1000), 500);
        assert_eq!(r(1).ns_at(1000), 1000);
        assert_eq!(r(-1).ns_at(1000), 250);
        assert_eq!(r(-2).ns_at(1000), 125);
    }

    #[test]
    fn the_fallback_clock_uses_the_tsc_frequency() {
        assert_eq!(fallback_ns(2_000_000, 2_000_000), NS_PER_MS);
        assert_eq!(fallback_ns(3_000_000_000, 3_000_000), NS_PER_SEC);
        assert_eq!(fallback_ns(1234, 0), 1234);
        assert_eq!(fallback_ns(u64::MAX, 1), u64::MAX);
    }

    #[test]
    fn the_seqlock_retries_odd_and_changed_versions() {
        // Versions seen in turn: odd (skip), 2 then 4 (changed: retry), 4 and 4.
        let versions = [3u32, 2, 4, 4, 4];
        let at = Cell::new(0);
        let reads = Cell::new(0);
        let (v, value) = seqlock_read(
            || {
                let v = versions[at.get()];
                at.set(at.get() + 1);
                v
            },
            || {
                reads.set(reads.get() + 1);
                reads.get() * 10
            },
        );
        assert_eq!((v, value), (4, 20));
        assert_eq!(at.get(), 5);
        // A steady version: one pass.
        let (v, value) = seqlock_read(|| 8, || "ok");
        assert_eq!((v, value), (8, "ok"));
    }

    #[test]
    fn dates() {
        assert_eq!(DateTime::from_unix(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(
            DateTime::from_unix(951_782_400).to_string(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            DateTime::from_unix(1_704_067_199).to_string(),
            "2023-12-31T23:59:59Z"
        );
        assert_eq!(
            DateTime::from_unix(1_709_210_096).to_string(),
            "2024-02-29T12:34:56Z"
        );
        assert_eq!(DateTime::from_unix(4_102_444_800).year, 2100);
    }
}
