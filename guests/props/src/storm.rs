//! One domain cannot starve the others. `storm-timer` sets a timer for
//! "now" in a tight loop for 2 s (each one fires at once, raising
//! `VIRQ_TIMER`), `storm-event` sends itself events on an IPI port as fast
//! as it can for 2 s; both then report SUCCESS, and dom0 must still report
//! their end. `liveness`, started while they storm, must get the CPU often
//! enough to finish a set of short timed waits and yields within its own
//! deadline; dom0 building it while the storms run shows that dom0 is not
//! starved either.

use oxen_guest_sdk::dom0_abi::Virq;
use oxen_guest_sdk::hypercall;

use crate::framework::{PropResult, accepted, ok};
use crate::lowlevel::{clear_pending, is_pending, now_ns, quiet_events};

/// How long a storm lasts, ns.
const STORM_NS: u64 = 2_000_000_000;
/// Timed waits `liveness` makes, and how long each, ns.
const LIVENESS_WAITS: u32 = 10;
const LIVENESS_WAIT_NS: u64 = 5_000_000;
/// Yields `liveness` makes.
const LIVENESS_YIELDS: u32 = 50;
/// `liveness`'s own deadline for all of it, ns.
const LIVENESS_DEADLINE_NS: u64 = 1_500_000_000;

/// Timers for "now", as fast as possible, for 2 s.
pub fn timer() -> PropResult {
    quiet_events()?;
    let port = accepted("bind VIRQ_TIMER", hypercall::evtchn_bind_virq(Virq::Timer, 0))?;
    let start = now_ns();
    let (mut set, mut fired) = (0u64, 0u64);
    loop {
        let now = now_ns();
        if now.saturating_sub(start) >= STORM_NS {
            break;
        }
        accepted("vcpu_set_timer(now)", hypercall::set_timer(now))?;
        set += 1;
        if is_pending(port) {
            fired += 1;
            clear_pending(port);
        }
    }
    accepted("cancel the timer", hypercall::set_timer(0))?;
    note!("{set} timers set, {fired} seen firing in 2 s");
    ensure!(set > 0, "no timer was set");
    ok()
}

/// Events on an IPI port to ourselves, as fast as possible, for 2 s.
pub fn event() -> PropResult {
    quiet_events()?;
    let port = accepted("bind an IPI port", hypercall::evtchn_bind_ipi(0))?;
    let start = now_ns();
    let mut sent = 0u64;
    while now_ns().saturating_sub(start) < STORM_NS {
        for _ in 0..64 {
            accepted("evtchn_send", hypercall::evtchn_send(port))?;
            clear_pending(port);
            accepted("evtchn_unmask", hypercall::evtchn_unmask(port))?;
            sent += 1;
        }
    }
    note!("{sent} events sent in 2 s");
    ok()
}

/// Timed waits and yields, done within a deadline while storms run.
pub fn liveness() -> PropResult {
    quiet_events()?;
    let start = now_ns();
    let port = accepted("bind VIRQ_TIMER", hypercall::evtchn_bind_virq(Virq::Timer, 0))?;
    let mut worst = 0u64;
    for i in 0..LIVENESS_WAITS {
        let asked = now_ns();
        clear_pending(port);
        accepted("vcpu_set_timer", hypercall::set_timer(asked + LIVENESS_WAIT_NS))?;
        let fired = accepted("sched_poll", hypercall::sched_poll(&[port], LIVENESS_DEADLINE_NS))?;
        ensure!(
            fired,
            "wait {i}: the timer never fired within {LIVENESS_DEADLINE_NS} ns"
        );
        let late = now_ns().saturating_sub(asked + LIVENESS_WAIT_NS);
        worst = worst.max(late);
    }
    for _ in 0..LIVENESS_YIELDS {
        hypercall::sched_yield();
    }
    let took = now_ns().saturating_sub(start);
    note!(
        "{LIVENESS_WAITS} waits of {} ms and {LIVENESS_YIELDS} yields took {} ms, worst wake-up {} ms late",
        LIVENESS_WAIT_NS / 1_000_000,
        took / 1_000_000,
        worst / 1_000_000
    );
    ensure!(
        took <= LIVENESS_DEADLINE_NS,
        "starved: took {} ms, deadline {} ms",
        took / 1_000_000,
        LIVENESS_DEADLINE_NS / 1_000_000
    );
    ok()
}
