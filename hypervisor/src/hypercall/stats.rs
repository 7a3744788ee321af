//! Per-hypercall counters (`hcstats=on`): calls and TSC ticks spent in
//! `hypercall::dispatch` for each hypercall number (the handler itself; the
//! entry and exit stubs and the run loop are not included). Under QEMU's
//! `-icount` TSC ticks are instructions, so a regression points at its
//! path. The table is logged when dom0 stops.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use dom0_abi::Hypercall;

const SLOTS: usize = 128;
static ENABLED: AtomicBool = AtomicBool::new(false);
static CALLS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
static TICKS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];

/// Turn counting on or off.
pub fn enable(on: bool) {
    ENABLED.store(on, Relaxed);
}

/// Whether counting is on.
pub fn enabled() -> bool {
    ENABLED.load(Relaxed)
}

/// Count one call of `nr` that took `ticks`.
pub fn record(nr: u64, ticks: u64) {
    let slot = usize::try_from(nr)
        .ok()
        .filter(|s| *s < SLOTS - 1)
        .unwrap_or(SLOTS - 1);
    CALLS[slot].fetch_add(1, Relaxed);
    TICKS[slot].fetch_add(ticks, Relaxed);
}

/// Log the table (only hypercalls that were made).
pub fn dump() {
    if !enabled() {
        return;
    }
    log::info!(target: "hcstats", "{:<26} {:>10} {:>14} {:>10}", "hypercall", "calls", "tsc ticks", "per call");
    for (slot, calls) in CALLS.iter().enumerate() {
        let calls = calls.load(Relaxed);
        if calls == 0 {
            continue;
        }
        let ticks = TICKS[slot].load(Relaxed);
        let name = Hypercall::try_from(slot as u64)
            .map(Hypercall::name)
            .unwrap_or(if slot == SLOTS - 1 {
                "(unknown numbers)"
            } else {
                "(unassigned)"
            });
        log::info!(target: "hcstats", "{name:<26} {calls:>10} {ticks:>14} {:>10}", ticks / calls);
    }
}
