//! The run loop: pick a vCPU with the credit policy (`credit.rs`), load its
//! address space and FPU state, deliver a pending event upcall, run it until
//! it enters the hypervisor, charge the time it ran, handle why it stopped
//! (a hypercall, a fault, the timer), repeat. Between guest runs the loop
//! fires `vcpu_set_timer` deadlines as `VIRQ_TIMER`, ends `sched_poll`
//! timeouts, and turns serial input into `VIRQ_CONSOLE` for dom0. Whatever
//! changes whether a vCPU can run (an event, a pause, a block) calls
//! [`kick`], and the loop then brings the policy's view up to date. The LAPIC
//! timer runs one-shot, armed for the earliest of: the policy's decision
//! (slice end, credit or cap exhausted, accounting boundary), the next guest
//! deadline, and a housekeeping bound.
//!
//! This module holds `unsafe`: it is the context switch, loading a guest's
//! CR3 and FPU state and entering it; each block says why that is sound.
#![allow(unsafe_code)]

pub mod credit;
mod trap;

use crate::arch::guest::{self, Regs, VECTOR_SYSCALL};
use crate::arch::idt::TIMER_VECTOR;
use crate::arch::{apic, cpu, fpu, paging, serial};
use crate::domain::{DOMAINS, DomainTable, State};
use crate::hypercall::{self, Flow};
use crate::time;
use alloc::collections::BTreeSet;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use credit::{Credit, Params};
use dom0_abi::{DomId, EVENT_VECTOR, ShutdownReason, Virq};
use log::{error, info};

/// A vCPU: its domain and index.
type VcpuRef = (DomId, usize);

/// The longest the loop goes without looking at timers and serial input.
const HOUSEKEEPING_NS: u64 = 10_000_000;
/// How often serial input is looked for.
const INPUT_POLL_NS: u64 = 5_000_000;

/// Earliest guest deadline (timer or poll timeout) not yet handled.
static EARLIEST: AtomicU64 = AtomicU64::new(u64::MAX);

/// A guest deadline was set: make sure the loop looks at it in time.
pub fn note_deadline(ns: u64) {
    EARLIEST.fetch_min(ns, Ordering::Relaxed);
    // Leave the fast path so that the loop arms the timer for it (or fires
    // it at once when it is already due).
    kick();
}

/// Something changed whether a vCPU can run, or a domain's parameters.
static DIRTY: AtomicBool = AtomicBool::new(true);

/// Tell the run loop to bring the policy up to date with the domains.
pub fn kick() {
    DIRTY.store(true, Ordering::Relaxed);
}

/// A domain's scheduler parameters changed.
pub fn params_changed(_dom: DomId, _weight: u32, _cap: u32) {
    kick();
}

/// What the loop remembers between iterations.
struct RunState {
    /// The scheduling policy.
    credit: Credit,
    /// Domains the policy knows.
    known: BTreeSet<DomId>,
    /// Whose registers the FPU holds: vCPU and its save area.
    fpu_owner: Option<(VcpuRef, u64)>,
    /// What to do when dom0 stops.
    test_dom0: bool,
    /// The system time the LAPIC timer is armed for (0: not armed).
    armed_ns: u64,
    /// Next time to look for serial input.
    next_input_ns: u64,
}

/// Run guests forever. Interrupts are off except while idle.
pub fn run(slice_ms: u32, test_dom0: bool) -> ! {
    let mut st = RunState {
        credit: Credit::new(Params::with_tslice_ms(slice_ms), time::now_ns()),
        known: BTreeSet::new(),
        fpu_owner: None,
        test_dom0,
        armed_ns: 0,
        next_input_ns: 0,
    };
    info!("scheduler: credit, {slice_ms} ms slices, 30 ms accounting period, one-shot timer");
    loop {
        let now = time::now_ns();
        let decision = {
            let mut table = DOMAINS.lock();
            housekeeping(&mut table, &mut st, now);
            if DIRTY.swap(false, Ordering::Relaxed) {
                reconcile(&table, &mut st, now);
            }
            st.credit.pick(now)
        };
        let Some(decision) = decision else {
            let wake = st.credit.next_event_ns().unwrap_or(u64::MAX);
            arm(&mut st, now, wake.min(now + HOUSEKEEPING_NS));
            cpu::idle();
            x86_64::instructions::interrupts::disable();
            st.armed_ns = 0;
            continue;
        };
        let until = decision.until_ns.min(now + HOUSEKEEPING_NS);
        arm(&mut st, now, until);
        run_once(&mut st, decision.key, until);
    }
}

/// Whether vCPU `v` of `dom` can run now.
fn can_run(dom: &crate::domain::Domain, v: usize) -> bool {
    dom.runnable() && (v as u32) < dom.vcpu_limit && dom.vcpus.get(v).is_some_and(|vc| vc.runnable())
}

/// Bring the policy's view (domains, parameters, runnable vCPUs) up to date.
fn reconcile(table: &DomainTable, st: &mut RunState, now: u64) {
    // Domains that went away (rare: only then does this allocate).
    if st.known.iter().any(|id| !table.contains(*id)) {
        let gone: alloc::vec::Vec<DomId> = st
            .known
            .iter()
            .copied()
            .filter(|id| !table.contains(*id))
            .collect();
        for id in gone {
            st.credit.remove_domain(id);
            st.known.remove(&id);
        }
    }
    for dom in table.iter() {
        let id = dom.id;
        if st.known.insert(id) {
            st.credit.add_domain(id, dom.weight, dom.cap);
            for v in 0..dom.vcpus.len() {
                st.credit.add_vcpu((id, v));
            }
        } else if st.credit.domain_params(id) != Some((dom.weight, dom.cap))
            && st.credit.set_domain(id, dom.weight, dom.cap).is_err()
        {
            log::warn!("scheduler: domain {id} has parameters the policy refuses");
        }
        for v in 0..dom.vcpus.len() {
            let want = can_run(dom, v);
            if want != st.credit.is_runnable((id, v)) {
                if want {
                    st.credit.wake((id, v), now);
                } else {
                    st.credit.sleep((id, v));
                }
            }
        }
    }
}

/// Arm the one-shot timer for `until` or the earliest guest deadline.
fn arm(st: &mut RunState, now: u64, until: u64) {
    let target = until.min(EARLIEST.load(Ordering::Relaxed)).max(now + 1);
    if st.armed_ns != 0 && st.armed_ns <= target && st.armed_ns > now {
        return;
    }
    if let Some(apic) = apic::local() {
        apic.arm(target - now, time::tsc_at(target));
        st.armed_ns = target;
    }
}

/// Fire due timers, end timed-out polls, pass serial input to dom0.
fn housekeeping(table: &mut DomainTable, st: &mut RunState, now: u64) {
    if now >= st.next_input_ns {
        st.next_input_ns = now + INPUT_POLL_NS;
        if serial::input_ready() {
            crate::event::raise_virq(table, 0, Virq::Console, 0);
            table.wake_dom0();
        }
    }
    if now < EARLIEST.load(Ordering::Relaxed) {
        return;
    }
    let mut earliest = u64::MAX;
    let mut fired: alloc::vec::Vec<VcpuRef> = alloc::vec::Vec::new();
    for id in table.ids() {
        let Some(dom) = table.get_mut(id) else { continue };
        for (v, vcpu) in dom.vcpus.iter_mut().enumerate() {
            if vcpu.timer_deadline_ns != 0 {
                if vcpu.timer_deadline_ns <= now {
                    vcpu.timer_deadline_ns = 0;
                    fired.push((id, v));
                } else {
                    earliest = earliest.min(vcpu.timer_deadline_ns);
                }
            }
            if let Some(poll) = &vcpu.poll
                && poll.deadline_ns != 0
            {
                if poll.deadline_ns <= now {
                    vcpu.poll = None;
                    vcpu.blocked = false;
                    vcpu.regs.rax = 0;
                    kick();
                } else {
                    earliest = earliest.min(poll.deadline_ns);
                }
            }
        }
    }
    EARLIEST.store(earliest, Ordering::Relaxed);
    for (id, v) in fired {
        crate::event::raise_virq(table, id, Virq::Timer, v);
    }
}

/// Switch to `(id, v)`, run it once, and handle its exit.
fn run_once(st: &mut RunState, (id, v): VcpuRef, until: u64) {
    let regs = {
        let mut table = DOMAINS.lock();
        let Some(dom) = table.get_mut(id) else {
            kick();
            return;
        };
        if !can_run(dom, v) {
            // The policy's view is stale: bring it up to date first.
            kick();
            return;
        }
        let root = dom.space.root();
        let area = dom.vcpus[v].fpu.addr();
        // FPU state moves only when another vCPU had the FPU.
        if st.fpu_owner.map(|(who, _)| who) != Some((id, v)) {
            if let Some(((oid, ov), oarea)) = st.fpu_owner
                && table
                    .get(oid)
                    .is_some_and(|d| d.vcpus.get(ov).is_some_and(|x| x.fpu.addr() == oarea))
            {
                // SAFETY: the owner still exists and `oarea` is its FPU frame.
                unsafe { fpu::save(crate::mm::layout::phys_to_virt(oarea) as *mut u8) };
            }
            // SAFETY: `area` is this vCPU's FPU frame, initialised at creation.
            unsafe { fpu::restore(crate::mm::layout::phys_to_virt(area) as *const u8) };
            st.fpu_owner = Some(((id, v), area));
        }
        if cpu::cr3() != root {
            // SAFETY: every guest space maps the whole hypervisor half, shared.
            unsafe { paging::load_root(root) };
        }
        deliver_upcall(&mut table, id, v);
        let Some(dom) = table.get_mut(id) else { return };
        if !can_run(dom, v) {
            // Delivering the upcall crashed the domain: it must not run.
            kick();
            return;
        }
        let rip = dom.vcpus[v].regs.rip;
        if rip >= dom0_abi::GUEST_VA_LIMIT {
            table.crash(
                id,
                format_args!("vCPU {v} would resume at the non-canonical address {rip:#x}"),
            );
            return;
        }
        let Some(vcpu) = table.get_mut(id).and_then(|d| d.vcpus.get_mut(v)) else {
            return;
        };
        let regs: *mut Regs = &mut vcpu.regs;
        regs
    };
    // SAFETY: `regs` lives in a boxed vCPU that is not freed while it runs
    // (only this loop destroys domains, and never the one it is running).
    let regs = unsafe { &mut *regs };
    guest::set_current_regs(regs);
    // The fast path: a hypercall that returns normally, with nothing else
    // changed (no wake-up, no guest deadline or slice end due, no event for
    // this vCPU), goes straight back into the same vCPU. The time it ran is
    // charged to the policy once, when the vCPU finally leaves.
    let deadline_tsc = time::tsc_at(until.min(EARLIEST.load(Ordering::Relaxed)));
    let mut ran_tsc_total = 0u64;
    loop {
        let entered = cpu::rdtsc();
        // SAFETY: the vCPU's address space is loaded, its registers were set
        // by the builder or by an exit (user selectors, sanitised RFLAGS,
        // lower-half RIP), interrupts are off, and `regs` stays put (above).
        unsafe { guest::run(regs) };
        crate::arch::uaccess::close_after_exit();
        let left = cpu::rdtsc();
        let cr2 = cpu::cr2();
        let ran_tsc = left.wrapping_sub(entered);
        ran_tsc_total = ran_tsc_total.wrapping_add(ran_tsc);
        let again = handle_exit(st, (id, v), regs.vector, regs.error_code, cr2, ran_tsc);
        if !again || left >= deadline_tsc || DIRTY.load(Ordering::Relaxed) {
            break;
        }
    }
    st.credit
        .charge((id, v), time::tsc_to_ns(ran_tsc_total), time::now_ns());
}

/// Enter the event callback if an upcall is pending and not masked.
fn deliver_upcall(table: &mut DomainTable, id: DomId, v: usize) {
    let Some(dom) = table.get_mut(id) else { return };
    let callback = dom.vcpus[v].event_callback;
    if callback == 0 || !dom.shared.upcall_pending(v) || dom.shared.upcall_masked(v) {
        return;
    }
    dom.shared.mask_upcall(v);
    trap::push_frame(table, id, v, EVENT_VECTOR, 0, 0, callback);
}

/// Handle vCPU `(id, v)`'s exit; whether it may be resumed at once (a
/// hypercall that returned normally, nothing pending for it).
fn handle_exit(
    st: &mut RunState,
    (id, v): VcpuRef,
    vector: u64,
    error_code: u64,
    cr2: u64,
    ran_tsc: u64,
) -> bool {
    let mut table = DOMAINS.lock();
    let account = |table: &mut DomainTable| {
        if let Some(dom) = table.get_mut(id) {
            dom.cpu_tsc = dom.cpu_tsc.wrapping_add(ran_tsc);
            if let Some(vcpu) = dom.vcpus.get_mut(v) {
                vcpu.cpu_tsc = vcpu.cpu_tsc.wrapping_add(ran_tsc);
            }
        }
    };
    if vector != VECTOR_SYSCALL {
        account(&mut table);
    }
    match vector {
        VECTOR_SYSCALL => {
            let counting = hypercall::stats::enabled();
            let started = if counting { cpu::rdtsc() } else { 0 };
            let nr = if counting {
                table
                    .get(id)
                    .and_then(|d| d.vcpus.get(v))
                    .map_or(0, |vc| vc.regs.rax)
            } else {
                0
            };
            let flow = hypercall::dispatch(&mut table, id, v);
            if counting {
                hypercall::stats::record(nr, cpu::rdtsc().wrapping_sub(started));
            }
            // A syscall in the last bytes below the canonical hole leaves a
            // return address that neither sysretq nor iretq can take (both
            // fault in ring 0): there is nothing to return to.
            // One look-up for the rest: account the time, check the return
            // address, see whether an event is pending.
            let Some(dom) = table.get_mut(id) else {
                return false;
            };
            dom.cpu_tsc = dom.cpu_tsc.wrapping_add(ran_tsc);
            let upcall = dom.shared.upcall_pending(v);
            let Some(vcpu) = dom.vcpus.get_mut(v) else {
                return false;
            };
            vcpu.cpu_tsc = vcpu.cpu_tsc.wrapping_add(ran_tsc);
            let rip = vcpu.regs.rip;
            if rip >= dom0_abi::GUEST_VA_LIMIT {
                table.crash(
                    id,
                    format_args!("syscall returns to the non-canonical address {rip:#x}"),
                );
                dom0_watch(&table, st);
                return false;
            }
            match flow {
                Flow::Return(result) => {
                    vcpu.regs.rax = hypercall::encode(result);
                    vcpu.prefer_sysret();
                    // Nothing to deliver and nobody woken: straight back.
                    return !upcall;
                }
                Flow::Yield => {
                    vcpu.regs.rax = 0;
                    vcpu.prefer_sysret();
                    st.credit.yield_now((id, v));
                }
                Flow::Block => {
                    vcpu.regs.rax = 0;
                    vcpu.prefer_sysret();
                    if vcpu.wake_pending || upcall {
                        vcpu.wake_pending = false;
                    } else {
                        vcpu.blocked = true;
                        kick();
                    }
                }
                Flow::Wait => {
                    vcpu.prefer_sysret();
                    kick();
                }
                Flow::Resume => vcpu.regs.vector = 0,
                Flow::Stopped => kick(),
            }
        }
        v32 if v32 == u64::from(TIMER_VECTOR) => {
            apic::eoi();
            st.armed_ns = 0;
        }
        0..=31 => {
            trap::guest_exception(&mut table, id, v, vector, error_code, cr2);
        }
        _ => apic::eoi(),
    }
    dom0_watch(&table, st);
    false
}

/// dom0 stopping ends the system: in a test build with `oxen_test=dom0`
/// QEMU exits with the verdict, otherwise the machine halts.
fn dom0_watch(table: &DomainTable, st: &RunState) {
    let Some(dom0) = table.get(0) else { return };
    let verdict = match dom0.state {
        State::Shutdown(ShutdownReason::Poweroff) => true,
        State::Shutdown(_) | State::Crashed => false,
        _ => return,
    };
    hypercall::stats::dump();
    if st.test_dom0 && cfg!(feature = "test-hooks") {
        info!(
            "oxen_test=dom0: dom0 stopped ({}); exiting",
            if verdict { "success" } else { "failure" }
        );
        crate::arch::qemu::exit(if verdict {
            crate::arch::qemu::ExitCode::Success
        } else {
            crate::arch::qemu::ExitCode::Failure
        });
    }
    if verdict {
        info!("dom0 powered off: halting the machine");
        // A clean end: a test build tells QEMU so; otherwise the CPU stops.
        #[cfg(feature = "test-hooks")]
        crate::arch::qemu::exit(crate::arch::qemu::ExitCode::Success);
        cpu::halt_forever();
    }
    error!(
        "dom0 stopped ({:?}): nothing is left to manage the machine; halting",
        dom0.state
    );
    crate::fatal::stop();
}
