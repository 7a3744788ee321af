//! Interrupts that reach the hypervisor while it runs (ring 0), such as the
//! LAPIC timer firing in the idle loop: acknowledged, nothing more (the run
//! loop looks at timers and deadlines itself). Ticks taken while a guest
//! runs come back through the run loop (`sched`) instead.

use crate::arch::apic;

/// An interrupt taken in ring 0.
pub fn hypervisor_interrupt(_vector: u64) {
    apic::eoi();
}
