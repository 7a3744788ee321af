//! Interrupts that reach the hypervisor while it runs (ring 0): the LAPIC
//! timer tick, counted and acknowledged. Ticks taken while a guest runs
//! come back through the run loop (`sched`) instead.

use crate::arch::{apic, idt::TIMER_VECTOR};
use core::sync::atomic::{AtomicU64, Ordering};

static TICKS: AtomicU64 = AtomicU64::new(0);

/// Count one timer tick.
pub fn tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

/// Timer ticks since the timer started.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// An interrupt taken in ring 0.
pub fn hypervisor_interrupt(vector: u64) {
    if vector == u64::from(TIMER_VECTOR) {
        tick();
    }
    apic::eoi();
}
