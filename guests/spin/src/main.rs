//! `spin` (package `spinner`): burns CPU in a tight loop for `seconds=S`
//! (default 5) of system time and reports what it got, for the scheduler
//! scenarios (weights, caps). The guest cannot read its own CPU time, so it
//! infers it: the loop reads the clock after every [`CHUNK`] iterations; a
//! chunk normally takes the same short time, and one that took much longer
//! was descheduled for the difference. Running time counts every chunk at
//! most [`Running::limit_ns`] (twice the fastest chunk seen, plus
//! [`TICK_ALLOWANCE_NS`] for interrupts); the share of a CPU is running time
//! over elapsed time.
//!
//! Lines (NAME is the domain's name):
//!
//! - every second: `spin: NAME second K: N iterations (P % of a CPU)`;
//! - at the end: `spin: NAME ran N iterations in S s`, then
//!   `spin: NAME steady rate R iterations/s` and
//!   `spin: NAME steady share P % of a CPU (full speed F iterations/s)`.
//!
//! The steady figures leave out the first and the last `settle_ms`
//! (default 1000) of the run, so that domains started a little apart are
//! compared over a stretch where all of them spin: the scenarios compare
//! the steady rates of two spinners (`[[ratio]]` in tests/*.toml).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use core::hint::black_box;
use oxen_guest_sdk::time::{NS_PER_MS, NS_PER_SEC};
use oxen_guest_sdk::{ShutdownReason, cmdline_value, name, now_ns, println};

oxen_guest_sdk::entry!(main);

/// Loop iterations between two clock reads.
const CHUNK: u64 = 10_000;
/// Default run time, seconds.
const DEFAULT_SECONDS: u64 = 5;
/// Default time left out at each end of the steady window, milliseconds.
const DEFAULT_SETTLE_MS: u64 = 1000;
/// What a chunk may take beyond twice the fastest one and still count as
/// run time whole: timer interrupts and the like.
const TICK_ALLOWANCE_NS: u64 = 50_000;

fn main() -> ShutdownReason {
    let seconds = number("seconds", DEFAULT_SECONDS).max(1);
    let settle_ns = number("settle_ms", DEFAULT_SETTLE_MS).saturating_mul(NS_PER_MS);
    let run_ns = seconds * NS_PER_SEC;
    let settle_ns = settle_ns.min(run_ns / 4);
    let me = name();

    let start = now_ns();
    let end = start + run_ns;
    let steady = (start + settle_ns)..(end - settle_ns);
    let mut run = Running::default();
    let mut second = Tally::default();
    let mut whole = Tally::default();
    let mut window = Tally::default();
    let mut window_from = None;
    let mut window_to = 0;
    let mut next_report = start + NS_PER_SEC;
    let mut reports = 0u64;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut last = start;
    while last < end {
        for _ in 0..CHUNK {
            // One step of an LCG: cheap, and not something the compiler
            // can fold away.
            x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
        let now = now_ns();
        let ran = run.chunk(now - last);
        last = now;
        second.add(ran);
        whole.add(ran);
        if steady.contains(&now) {
            window.add(ran);
            window_from.get_or_insert(now);
            window_to = now;
        }
        if now >= next_report {
            reports += 1;
            let elapsed = now - (next_report - NS_PER_SEC);
            println!(
                "spin: {me} second {reports}: {} iterations ({} % of a CPU)",
                second.iterations,
                Percent(permille(second.ran_ns, elapsed)),
            );
            second = Tally::default();
            next_report += NS_PER_SEC;
        }
    }
    black_box(x);
    println!("spin: {me} ran {} iterations in {seconds} s", whole.iterations);
    let window_ns = window_from.map_or(0, |from| window_to - from);
    let full_speed = run.full_speed();
    match per_second(window.iterations, window_ns) {
        Some(rate) => {
            println!("spin: {me} steady rate {rate} iterations/s");
            println!(
                "spin: {me} steady share {} % of a CPU (full speed {full_speed} iterations/s)",
                Percent(permille(window.ran_ns, window_ns))
            );
        }
        None => println!("spin: {me} steady window too short to measure (seconds={seconds})"),
    }
    ShutdownReason::Poweroff
}

/// `key=N` from the command line, or `default`.
fn number(key: &str, default: u64) -> u64 {
    match cmdline_value(key).map(str::parse::<u64>) {
        Some(Ok(v)) => v,
        Some(Err(_)) => {
            println!("spin: {key}= is not a number; using {default}");
            default
        }
        None => default,
    }
}

/// Iterations and running time over some stretch.
#[derive(Clone, Copy, Default)]
struct Tally {
    iterations: u64,
    ran_ns: u64,
}

impl Tally {
    fn add(&mut self, ran_ns: u64) {
        self.iterations += CHUNK;
        self.ran_ns += ran_ns;
    }
}

/// Running-time inference from chunk durations.
#[derive(Clone, Copy)]
struct Running {
    /// The fastest chunk so far.
    fastest_ns: u64,
}

impl Default for Running {
    fn default() -> Running {
        Running { fastest_ns: u64::MAX }
    }
}

impl Running {
    /// The longest a chunk counts as running.
    fn limit_ns(&self) -> u64 {
        self.fastest_ns
            .saturating_mul(2)
            .saturating_add(TICK_ALLOWANCE_NS)
    }

    /// A chunk took `elapsed_ns`: how much of it the loop ran.
    fn chunk(&mut self, elapsed_ns: u64) -> u64 {
        self.fastest_ns = self.fastest_ns.min(elapsed_ns.max(1));
        elapsed_ns.min(self.limit_ns())
    }

    /// Iterations per second of running time, at the fastest chunk.
    fn full_speed(&self) -> u64 {
        per_second(CHUNK, self.fastest_ns).unwrap_or(0)
    }
}

/// `count` per second over `ns`; `None` for an empty stretch.
fn per_second(count: u64, ns: u64) -> Option<u64> {
    if ns == 0 {
        return None;
    }
    u64::try_from(u128::from(count) * u128::from(NS_PER_SEC) / u128::from(ns)).ok()
}

/// `part / whole` in thousandths; `None` for an empty whole.
fn permille(part: u64, whole: u64) -> Option<u64> {
    if whole == 0 {
        return None;
    }
    u64::try_from(u128::from(part) * 1000 / u128::from(whole)).ok()
}

/// A percentage with one decimal (`33.3`) from thousandths; `?` for none.
struct Percent(Option<u64>);

impl core::fmt::Display for Percent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(permille) => write!(f, "{}.{}", permille / 10, permille % 10),
            None => f.write_str("?"),
        }
    }
}
