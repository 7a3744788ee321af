//! The run loop: pick a vCPU, load its address space and FPU state, run it
//! until it enters the hypervisor, handle why (a hypercall, a fault, the
//! timer), repeat. Scheduling is round-robin over runnable vCPUs with a
//! time slice (`sched_tslice_ms=`) enforced by the LAPIC timer tick; the
//! credit scheduler of the events work replaces the policy, not the loop.
//!
//! This module holds `unsafe`: it is the context switch, loading a guest's
//! CR3 and FPU state and entering it; each block says why that is sound.
#![allow(unsafe_code)]

mod trap;

use crate::arch::guest::{self, Regs, VECTOR_SYSCALL};
use crate::arch::idt::TIMER_VECTOR;
use crate::arch::{apic, cpu, fpu, paging, serial};
use crate::domain::{DOMAINS, DomainTable, State};
use crate::hypercall::{self, Flow};
use dom0_abi::{DomId, ShutdownReason};
use log::{error, info};

/// A vCPU: its domain and index.
type VcpuRef = (DomId, usize);

/// What the loop remembers between iterations.
struct RunState {
    /// The vCPU that ran last.
    current: Option<VcpuRef>,
    /// Give the CPU to the next runnable vCPU instead of `current`.
    rotate: bool,
    /// TSC when `current` got the CPU.
    slice_start: u64,
    /// Slice length in TSC ticks.
    slice_tsc: u64,
    /// Whose registers the FPU holds: vCPU and its save area.
    fpu_owner: Option<(VcpuRef, u64)>,
    /// What to do when dom0 stops.
    test_dom0: bool,
}

/// Run guests forever. Interrupts are off except while idle.
pub fn run(slice_ms: u32, test_dom0: bool) -> ! {
    let tsc_hz = crate::time::tsc_hz().unwrap_or(1_000_000_000);
    let mut st = RunState {
        current: None,
        rotate: false,
        slice_start: 0,
        slice_tsc: tsc_hz / 1000 * u64::from(slice_ms.max(1)),
        fpu_owner: None,
        test_dom0,
    };
    info!("scheduler: round-robin, {slice_ms} ms slices");
    loop {
        let next = {
            let mut table = DOMAINS.lock();
            if serial::input_ready() {
                table.notify_dom0();
            }
            pick(&table, &st)
        };
        let Some(next) = next else {
            st.current = None;
            cpu::idle();
            x86_64::instructions::interrupts::disable();
            continue;
        };
        if st.current != Some(next) {
            st.current = Some(next);
            st.slice_start = cpu::rdtsc();
        }
        st.rotate = false;
        run_once(&mut st, next);
    }
}

/// The next vCPU to run: `current` unless it must rotate or cannot run,
/// else the next runnable one after it in (domain, vCPU) order.
fn pick(table: &DomainTable, st: &RunState) -> Option<VcpuRef> {
    let runnable = |(id, v): VcpuRef| {
        table
            .get(id)
            .is_some_and(|d| d.runnable() && d.vcpus.get(v).is_some_and(|vc| vc.runnable()))
    };
    if let Some(cur) = st.current
        && !st.rotate
        && runnable(cur)
    {
        return Some(cur);
    }
    let mut all = alloc::vec::Vec::new();
    for id in table.ids() {
        if let Some(d) = table.get(id) {
            for v in 0..d.vcpus.len() {
                all.push((id, v));
            }
        }
    }
    let start = st
        .current
        .and_then(|c| all.iter().position(|x| *x == c))
        .map_or(0, |i| i + 1);
    (0..all.len())
        .map(|k| all[(start + k) % all.len()])
        .find(|x| runnable(*x))
}

/// Switch to `(id, v)`, run it once, and handle its exit.
fn run_once(st: &mut RunState, (id, v): VcpuRef) {
    let (regs, root, area) = {
        let mut table = DOMAINS.lock();
        let Some(dom) = table.get_mut(id) else { return };
        let root = dom.space.root();
        let vcpu = &mut dom.vcpus[v];
        let area = crate::mm::layout::phys_to_virt(vcpu.fpu.addr());
        let regs: *mut Regs = &mut vcpu.regs;
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
            unsafe { fpu::restore(area as *const u8) };
            st.fpu_owner = Some(((id, v), table.get(id).map_or(0, |d| d.vcpus[v].fpu.addr())));
        }
        (regs, root, area)
    };
    let _ = area;
    if cpu::cr3() != root {
        // SAFETY: every guest space maps the whole hypervisor half, shared.
        unsafe { paging::load_root(root) };
    }
    // SAFETY: `regs` lives in a boxed vCPU that is not freed while it runs
    // (only this loop destroys domains, and never the one it is running).
    let regs = unsafe { &mut *regs };
    guest::set_current_regs(regs);
    let entered = cpu::rdtsc();
    // SAFETY: the vCPU's address space is loaded, its registers were set by
    // the builder or by an exit (user selectors, sanitised RFLAGS, lower-half
    // RIP), interrupts are off, and `regs` stays put (see above).
    unsafe { guest::run(regs) };
    let left = cpu::rdtsc();
    let cr2 = cpu::cr2();
    handle_exit(
        st,
        (id, v),
        regs.vector,
        regs.error_code,
        cr2,
        left.wrapping_sub(entered),
    );
}

fn handle_exit(st: &mut RunState, (id, v): VcpuRef, vector: u64, error_code: u64, cr2: u64, ran_tsc: u64) {
    let mut table = DOMAINS.lock();
    if let Some(dom) = table.get_mut(id) {
        dom.cpu_tsc = dom.cpu_tsc.wrapping_add(ran_tsc);
    }
    match vector {
        VECTOR_SYSCALL => {
            let flow = hypercall::dispatch(&mut table, id, v);
            let Some(vcpu) = table.get_mut(id).and_then(|d| d.vcpus.get_mut(v)) else {
                return;
            };
            match flow {
                Flow::Return(result) => {
                    vcpu.regs.rax = hypercall::encode(result);
                    vcpu.prefer_sysret();
                }
                Flow::Yield => {
                    vcpu.regs.rax = 0;
                    vcpu.prefer_sysret();
                    st.rotate = true;
                }
                Flow::Block => {
                    vcpu.regs.rax = 0;
                    vcpu.prefer_sysret();
                    if vcpu.wake_pending {
                        vcpu.wake_pending = false;
                    } else {
                        vcpu.blocked = true;
                        st.rotate = true;
                    }
                }
                Flow::Resume => vcpu.regs.vector = 0,
                Flow::Stopped => st.rotate = true,
            }
        }
        v32 if v32 == u64::from(TIMER_VECTOR) => {
            apic::eoi();
            crate::irq::tick();
            if cpu::rdtsc().wrapping_sub(st.slice_start) >= st.slice_tsc {
                st.rotate = true;
            }
        }
        0..=31 => {
            trap::guest_exception(&mut table, id, v, vector, error_code, cr2);
        }
        _ => apic::eoi(),
    }
    dom0_watch(&table, st);
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
    } else {
        error!(
            "dom0 stopped ({:?}): nothing is left to manage the machine; halting",
            dom0.state
        );
    }
    crate::fatal::stop();
}
