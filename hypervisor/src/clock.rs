//! Clock arithmetic shared by the hypervisor and every guest: the TSC to
//! nanoseconds conversion published in each vCPU's time record (Xen's
//! pvclock scheme: `ns = ((tsc_delta << shift) * mul) >> 32`, with a
//! negative shift meaning a right shift), and the calendar conversion for
//! the wall clock read from the RTC. The hypervisor computes its own system
//! time with the very same formula, so guests and hypervisor agree to the
//! nanosecond and time never steps backwards when a record is rewritten.
#![deny(unsafe_code)]

/// Scale factors for a TSC running at `tsc_hz`: `(mul, shift)` such that
/// `ns = ((delta << shift) * mul) >> 32`, with `1e9 < tsc_hz << shift <= 2e9`.
pub fn pvclock_scale(tsc_hz: u64) -> (u32, i8) {
    let mut hz = u128::from(tsc_hz.max(1));
    let mut shift: i8 = 0;
    while hz > 2_000_000_000 {
        hz >>= 1;
        shift -= 1;
    }
    while hz <= 1_000_000_000 {
        hz <<= 1;
        shift += 1;
    }
    let mul = (1_000_000_000u128 << 32) / hz;
    (u32::try_from(mul).unwrap_or(u32::MAX), shift)
}

/// Nanoseconds in `delta` TSC ticks under `(mul, shift)`.
pub fn pvclock_ns(delta: u64, mul: u32, shift: i8) -> u64 {
    let d = u128::from(delta);
    let d = if shift >= 0 { d << shift } else { d >> (-shift) };
    u64::try_from((d * u128::from(mul)) >> 32).unwrap_or(u64::MAX)
}

/// TSC ticks in `ns` nanoseconds under `(mul, shift)` (the inverse, rounded up).
pub fn pvclock_ticks(ns: u64, mul: u32, shift: i8) -> u64 {
    let d = (u128::from(ns) << 32).div_ceil(u128::from(mul.max(1)));
    let d = if shift >= 0 { d >> shift } else { d << (-shift) };
    u64::try_from(d).unwrap_or(u64::MAX)
}

/// Seconds since 1970-01-01 of a UTC civil date and time (proleptic
/// Gregorian; Howard Hinnant's days-from-civil).
pub fn epoch_seconds(year: u32, month: u32, day: u32, hour: u32, min: u32, sec: u32) -> u64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec);
    u64::try_from(secs).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_is_accurate_for_common_frequencies() {
        for hz in [
            1_000_000_000u64,
            2_596_122_000,
            3_000_000_000,
            100_000_000,
            4_000_000_000,
        ] {
            let (mul, shift) = pvclock_scale(hz);
            // One second of ticks is one second, within a nanosecond per
            // second of rounding.
            let ns = pvclock_ns(hz, mul, shift);
            assert!(ns.abs_diff(1_000_000_000) <= 2, "{hz}: {ns}");
            // An hour, too (no overflow, error grows linearly at worst).
            let ns = pvclock_ns(hz * 3600, mul, shift);
            assert!(ns.abs_diff(3_600_000_000_000) <= 7200, "{hz}: {ns}");
            // The inverse lands on or just after the deadline.
            let t = pvclock_ticks(10_000_000, mul, shift);
            assert!(pvclock_ns(t, mul, shift) >= 10_000_000);
            assert!(pvclock_ns(t, mul, shift) <= 10_000_010);
        }
    }

    #[test]
    fn scale_is_monotonic() {
        let (mul, shift) = pvclock_scale(2_596_122_000);
        let mut last = 0;
        for t in (0..10_000_000u64).step_by(997) {
            let ns = pvclock_ns(t, mul, shift);
            assert!(ns >= last);
            last = ns;
        }
    }

    #[test]
    fn calendar() {
        assert_eq!(epoch_seconds(1970, 1, 1, 0, 0, 0), 0);
        assert_eq!(epoch_seconds(2000, 3, 1, 0, 0, 0), 951_868_800);
        assert_eq!(epoch_seconds(2026, 11, 25, 1, 2, 3), 1_795_568_523);
    }
}
