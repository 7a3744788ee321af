//! The single-domain micro-benchmarks (`role=micro`): each times one
//! operation many times around its `syscall` (`tsc.rs`) and prints one
//! `bench:` line (`stats.rs`). In order: the null hypercall (`version`), an
//! unknown hypercall number (dispatch and `ENOSYS`), `memory_info` and
//! `evtchn_status` (a 32-byte struct copied out), `console_write` of 64
//! bytes (which prints them), `evtchn_send` on a loopback channel (masked,
//! so no delivery), a batched `mmu` map then unmap of 1 and of 64 pages,
//! and `vcpu_set_timer` for a past deadline until the `VIRQ_TIMER` upcall
//! enters the handler (`timer_upcall`) and until the handler's `iret` is
//! back (`timer_upcall_iret`).

use crate::shared::Page;
use crate::stats::Samples;
use crate::tsc::{self, Timed};
use crate::upcall;
use core::sync::atomic::Ordering::SeqCst;
use oxen_guest_sdk::dom0_abi::{DOMID_SELF, Hypercall, MMU_MAP, MMU_UNMAP, MmuOp, Status, Virq};
use oxen_guest_sdk::{hypercall, mem, println};

/// Iteration counts.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Samples kept per benchmark.
    pub iters: usize,
    /// Samples kept by the slow ones (console output, 64-page batches).
    pub slow_iters: usize,
}

impl Plan {
    /// Runs thrown away before each benchmark: a tenth, at least 10.
    fn warmup(n: usize) -> usize {
        (n / 10).max(10)
    }
}

/// Where the mmu benchmarks map: a lower-half range nothing else uses.
const MMU_VA: u64 = 0x0000_3000_0000_0000;

/// The 64 bytes `console_write_64` writes, a line of its own on the console.
const CONSOLE_LINE: &[u8; 64] = b"console_write probe: 64 bytes per call, printed by the hypervis\n";

/// Run every micro-benchmark.
pub fn run(plan: Plan) {
    let overhead = tsc::overhead();
    println!("bench: overhead ticks={overhead}");
    simple(
        "null_hypercall",
        plan.iters,
        overhead,
        Hypercall::Version as u64,
        [0; 3],
    );
    simple("unknown_hypercall", plan.iters, overhead, 0x3ff, [0; 3]);
    let mut info = hypercall::memory_info().unwrap_or_default();
    let out = core::ptr::from_mut(&mut info) as u64;
    simple(
        "memory_info",
        plan.iters,
        overhead,
        Hypercall::MemoryInfo as u64,
        [out, 0, 0],
    );
    let mut status = oxen_guest_sdk::dom0_abi::EvtchnStatus::default();
    let out = core::ptr::from_mut(&mut status) as u64;
    simple(
        "evtchn_status",
        plan.iters,
        overhead,
        Hypercall::EvtchnStatus as u64,
        [1, out, 0],
    );
    let line = CONSOLE_LINE.as_ptr() as u64;
    simple(
        "console_write_64",
        plan.slow_iters,
        overhead,
        Hypercall::ConsoleWrite as u64,
        [line, CONSOLE_LINE.len() as u64, 0],
    );
    evtchn_send(plan.iters, overhead);
    mmu(1, plan.iters, overhead);
    mmu(64, plan.slow_iters, overhead);
    timer(plan.iters, overhead);
}

/// Time `n` calls of a hypercall (after a warm-up) and report them;
/// stop at the first error, reporting it.
fn measure(name: &'static str, n: usize, overhead: u64, mut one: impl FnMut() -> Result<u64, Status>) {
    let mut samples = Samples::new(name, n);
    for i in 0..Plan::warmup(n) + n {
        match one() {
            Ok(ticks) if i >= Plan::warmup(n) => samples.push(ticks),
            Ok(_) => {}
            Err(status) => {
                println!("bench: {name} error={}", status.name());
                return;
            }
        }
    }
    samples.report(overhead);
}

/// A timed call's ticks, or its error.
fn ok(t: Timed) -> Result<u64, Status> {
    Status::from_ret(t.ret).map(|_| t.ticks())
}

/// A benchmark of one hypercall whose arguments never change.
fn simple(name: &'static str, n: usize, overhead: u64, nr: u64, args: [u64; 3]) {
    let expect_enosys = nr == 0x3ff;
    measure(name, n, overhead, || {
        // SAFETY: the pointer arguments name live locals of `run` (a
        // MemoryInfo, an EvtchnStatus) or a static line, each as large as
        // the call writes or reads.
        let t = unsafe { tsc::hypercall(nr, args[0], args[1], args[2]) };
        if expect_enosys && t.ret == Status::ENOSYS.to_ret() {
            return Ok(t.ticks());
        }
        ok(t)
    });
}

/// `evtchn_send` on a loopback channel with upcalls masked: the send and
/// the marking of the pending bits, without delivery.
fn evtchn_send(n: usize, overhead: u64) {
    let Some(page) = Page::get() else {
        println!("bench: evtchn_send error=no-shared-info");
        return;
    };
    let ports = hypercall::evtchn_alloc_unbound(DOMID_SELF)
        .and_then(|a| hypercall::evtchn_bind_interdomain(DOMID_SELF, a).map(|b| (a, b)));
    let (far, near) = match ports {
        Ok(ports) => ports,
        Err(status) => {
            println!("bench: evtchn_send error={}", status.name());
            return;
        }
    };
    let was = page.upcall_mask().swap(1, SeqCst);
    measure("evtchn_send", n, overhead, || {
        // SAFETY: no pointer arguments.
        let t = unsafe { tsc::hypercall(Hypercall::EvtchnSend as u64, u64::from(near), 0, 0) };
        page.take_pending(far);
        page.drain();
        ok(t)
    });
    let _ = hypercall::evtchn_close(near);
    page.drain();
    page.upcall_mask().store(was, SeqCst);
}

/// A batch of `pages` maps (one pool frame, read-only, at consecutive
/// pages from [`MMU_VA`]) then the batch that unmaps them: both calls'
/// ticks together.
fn mmu(pages: usize, n: usize, overhead: u64) {
    let name = if pages == 1 {
        "mmu_map_unmap_1"
    } else {
        "mmu_map_unmap_64"
    };
    let Some(gfn) = mem::alloc_frame() else {
        println!("bench: {name} error=no-free-frame");
        return;
    };
    let mut maps = alloc::vec::Vec::with_capacity(pages);
    let mut unmaps = alloc::vec::Vec::with_capacity(pages);
    for i in 0..pages as u64 {
        let va = MMU_VA + i * 4096;
        maps.push(MmuOp {
            op: MMU_MAP,
            flags: 0,
            va,
            gfn,
            frame_domid: DOMID_SELF,
            pad: [0; 6],
        });
        unmaps.push(MmuOp {
            op: MMU_UNMAP,
            va,
            ..MmuOp::default()
        });
    }
    let batch = |ops: &[MmuOp]| {
        // SAFETY: the hypervisor only reads `ops`, a live slice; the
        // mappings are of our own pool frame at addresses nothing uses.
        unsafe {
            tsc::hypercall(
                Hypercall::MmuBatch as u64,
                ops.as_ptr() as u64,
                ops.len() as u64,
                u64::from(DOMID_SELF),
            )
        }
    };
    measure(name, n, overhead, || {
        let map = ok(batch(&maps))?;
        let unmap = ok(batch(&unmaps))?;
        // Two timed calls carry the overhead twice; `report` takes one off.
        Ok((map + unmap).saturating_sub(overhead))
    });
}

/// `vcpu_set_timer(1)` (a past deadline fires at once) until the upcall
/// handler's first instruction, and until the call returns after it.
fn timer(n: usize, overhead: u64) {
    let port = match hypercall::evtchn_bind_virq(Virq::Timer, 0) {
        Ok(port) => port,
        Err(status) => {
            println!("bench: timer_upcall error={}", status.name());
            return;
        }
    };
    if let Err(status) = upcall::install() {
        println!("bench: timer_upcall error={}", status.name());
        return;
    }
    let mut to_handler = Samples::new("timer_upcall", n);
    let mut round_trip = Samples::new("timer_upcall_iret", n);
    let mut missed = 0u64;
    let warmup = Plan::warmup(n);
    for i in 0..warmup + n {
        let before = upcall::COUNT.load(SeqCst);
        // SAFETY: no pointer arguments; the upcall it raises returns here
        // through the handler's `iret` with every register restored.
        let t = unsafe { tsc::hypercall(Hypercall::VcpuSetTimer as u64, 1, 0, 0) };
        if let Err(status) = Status::from_ret(t.ret) {
            println!("bench: timer_upcall error={}", status.name());
            return;
        }
        if upcall::COUNT.load(SeqCst) == before {
            missed += 1;
            continue;
        }
        if i >= warmup {
            to_handler.push(upcall::ENTRY_TSC.load(SeqCst).wrapping_sub(t.start));
            round_trip.push(t.ticks());
        }
    }
    if missed > 0 {
        println!(
            "bench: timer_upcall note: {missed} of {} calls returned before the upcall",
            warmup + n
        );
    }
    to_handler.report(overhead);
    round_trip.report(overhead);
    let _ = hypercall::evtchn_close(port);
}
