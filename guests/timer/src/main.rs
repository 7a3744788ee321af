//! `timer`: checks the time services of ABI 1.1 from inside a domU, one
//! line per check, then `timer: all checks passed` and power-off, or
//! `timer: FAILED (...)` and `Crash`:
//!
//! - **Timers**: [`TIMERS`] times, arm the one-shot timer for now + 10 ms
//!   (`vcpu_set_timer`), wait for `VIRQ_TIMER` and take the lateness (the
//!   time the wait ended minus the deadline) from system time. Passes when
//!   every timer fired, none more than [`EARLY_LIMIT_NS`] early, and the
//!   median is under [`MEDIAN_LIMIT_NS`].
//! - **Monotonic time**: [`READS`] consecutive `now_ns()` reads never go
//!   backwards, with a `sched_yield` every [`YIELD_EVERY`] reads so that
//!   other domains (and the hypervisor's own work) run in between.
//! - **Wall clock**: the date from `wc_sec` / `wc_nsec` is 2024 or later.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use oxen_guest_sdk::time::{self, DateTime, NS_PER_MS};
use oxen_guest_sdk::{ShutdownReason, event, hypercall, now_ns, println, wallclock};

oxen_guest_sdk::entry!(main);

/// Timers armed.
const TIMERS: usize = 100;
/// Each timer's delay.
const TIMER_DELAY_NS: u64 = 10 * NS_PER_MS;
/// How long past its deadline a timer may take before it counts as lost.
const TIMER_LOST_NS: u64 = 1000 * NS_PER_MS;
/// The median lateness must be below this.
const MEDIAN_LIMIT_NS: i64 = 2 * 1_000_000;
/// A timer may fire this much before its deadline (rounding between the
/// guest's and the hypervisor's conversions), no more.
const EARLY_LIMIT_NS: i64 = 10_000;
/// `now_ns()` reads of the monotonicity check.
const READS: u64 = 1_000_000;
/// A `sched_yield` after this many reads.
const YIELD_EVERY: u64 = 1000;
/// The wall clock must say this year or later.
const MIN_YEAR: u64 = 2024;

fn main() -> ShutdownReason {
    let checks = [check_timers(), check_monotonic(), check_wallclock()];
    let failed: Vec<&String> = checks.iter().filter_map(|c| c.as_ref().err()).collect();
    if failed.is_empty() {
        println!("timer: all checks passed");
        return ShutdownReason::Poweroff;
    }
    for why in failed {
        println!("timer: FAILED ({why})");
    }
    ShutdownReason::Crash
}

/// Arm [`TIMERS`] timers one after another and report their lateness.
fn check_timers() -> Result<(), String> {
    let port = time::timer_port().map_err(|e| format!("cannot bind VIRQ_TIMER: {e}"))?;
    let mut lateness_ns: Vec<i64> = Vec::with_capacity(TIMERS);
    for i in 0..TIMERS {
        // An event left over from an earlier timer must not end this wait.
        event::clear_pending(port);
        let deadline = now_ns() + TIMER_DELAY_NS;
        hypercall::set_timer(deadline).map_err(|e| format!("vcpu_set_timer: {e}"))?;
        if !event::wait_timeout(port, TIMER_DELAY_NS + TIMER_LOST_NS) {
            return Err(format!(
                "timer {i} of {TIMERS} did not fire within {} ms of its deadline",
                TIMER_LOST_NS / NS_PER_MS
            ));
        }
        lateness_ns.push(signed_diff(now_ns(), deadline));
    }
    lateness_ns.sort_unstable();
    let (min, median, max) = (lateness_ns[0], lateness_ns[TIMERS / 2], lateness_ns[TIMERS - 1]);
    println!(
        "timer: {TIMERS} timers of {} ms: lateness min {} us, median {} us, max {} us",
        TIMER_DELAY_NS / NS_PER_MS,
        min / 1000,
        median / 1000,
        max / 1000
    );
    if min < -EARLY_LIMIT_NS {
        return Err(format!("a timer fired {} us before its deadline", -min / 1000));
    }
    if median >= MEDIAN_LIMIT_NS {
        return Err(format!(
            "median lateness {} us, the limit is {} us",
            median / 1000,
            MEDIAN_LIMIT_NS / 1000
        ));
    }
    Ok(())
}

/// `a - b` in nanoseconds, signed.
fn signed_diff(a: u64, b: u64) -> i64 {
    if a >= b {
        i64::try_from(a - b).unwrap_or(i64::MAX)
    } else {
        i64::try_from(b - a).map_or(i64::MIN, |d| -d)
    }
}

/// [`READS`] reads of system time, none earlier than the one before.
fn check_monotonic() -> Result<(), String> {
    let mut last = now_ns();
    let first = last;
    let mut backwards = 0u64;
    let mut worst_ns = 0u64;
    for i in 1..=READS {
        if i % YIELD_EVERY == 0 {
            hypercall::sched_yield();
        }
        let now = now_ns();
        if now < last {
            backwards += 1;
            worst_ns = worst_ns.max(last - now);
        }
        last = now;
    }
    if backwards > 0 {
        return Err(format!(
            "time went backwards {backwards} times in {READS} reads, by up to {worst_ns} ns"
        ));
    }
    println!(
        "timer: time is monotonic over {READS} reads ({} ms, a yield every {YIELD_EVERY})",
        (last - first) / NS_PER_MS
    );
    Ok(())
}

/// The wall clock, as a date that must not be before [`MIN_YEAR`].
fn check_wallclock() -> Result<(), String> {
    let date = DateTime::from_unix(wallclock());
    println!("timer: wallclock {date}");
    if date.year < MIN_YEAR {
        return Err(format!("the wall clock says {date}, before {MIN_YEAR}"));
    }
    Ok(())
}
