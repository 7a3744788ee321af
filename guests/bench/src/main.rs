//! `bench`: Oxen's benchmark guest, one image in several roles chosen by
//! `role=` on its command line (the config's `extra`). `cargo xtask bench`
//! (`xtask/src/bench.rs`) starts it and reads its `bench:` lines from the
//! serial console; `docs/benchmarks.md` says what each figure measures.
//!
//! - `role=micro`: the single-domain path lengths (`micro.rs`).
//! - `role=pong`, `role=ping`: the event-channel round trip between two
//!   domains on one CPU (`evtchn.rs`).
//! - `role=hello`: print one line at once and power off; the lifecycle
//!   benchmark times domain creation to this first console output, and
//!   reads the page-table frames the hypervisor keeps for the domain.
//! - `role=idle`: print one line and block for good; the density
//!   benchmark starts these until memory runs out.
//! - `role=loop nr=N count=M`: make hypercall N (arguments 0) M times,
//!   untimed: a steady load for profiling one path from outside
//!   (docs/benchmarks.md, "Where the instructions go").
//!
//! `iters=N` sets the samples per benchmark (default 10000) and
//! `slow_iters=N` those of the slow ones (default N / 10). Every result
//! line reads `bench: NAME median=.. p99=.. min=.. max=.. n=.. unit=tsc
//! overhead=..`; an error reads `bench: NAME error=STATUS`.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

mod evtchn;
mod micro;
mod shared;
mod stats;
mod tsc;
mod upcall;

use oxen_guest_sdk::{ShutdownReason, cmdline_value, domid, hypercall, println};

oxen_guest_sdk::entry!(main);

/// Samples per benchmark unless `iters=` says otherwise.
const DEFAULT_ITERS: usize = 10_000;

fn main() -> ShutdownReason {
    let role = cmdline_value("role").unwrap_or("micro");
    let iters = number("iters").unwrap_or(DEFAULT_ITERS).max(1);
    let slow_iters = number("slow_iters").unwrap_or(iters / 10).max(1);
    let warmup = (iters / 10).max(10);
    match role {
        "micro" => {
            println!(
                "bench: micro start (domain {}, iters={iters}, slow_iters={slow_iters})",
                domid()
            );
            micro::run(micro::Plan { iters, slow_iters });
        }
        "pong" => evtchn::pong(warmup, iters),
        "ping" => evtchn::ping(warmup, iters),
        "hello" => hello(),
        "idle" => idle(),
        "loop" => spin(number("nr").unwrap_or(0), number("count").unwrap_or(iters)),
        other => {
            println!("bench: error=unknown-role-{other}");
            return ShutdownReason::Crash;
        }
    }
    println!("bench: {role} done");
    ShutdownReason::Poweroff
}

/// The value of `key=N` on the command line.
fn number(key: &str) -> Option<usize> {
    cmdline_value(key).and_then(|v| v.parse().ok())
}

/// `role=hello`: the first console output, then what the hypervisor keeps
/// for this domain besides its memory (page tables; the harness adds the
/// shared-info page and one FPU area per vCPU, as `DomainInfo::overhead_pages`
/// counts them).
fn hello() {
    println!("bench: hello from domain {}", domid());
    match hypercall::memory_info() {
        Ok(mi) => println!(
            "bench: memory tot_pages={} max_pages={} pt_pages={} vcpus={}",
            mi.tot_pages,
            mi.max_pages,
            mi.pt_pages,
            oxen_guest_sdk::start_info().vcpus
        ),
        Err(status) => println!("bench: memory error={}", status.name()),
    }
}

/// `role=loop`: hypercall `nr` (arguments 0) `count` times.
fn spin(nr: usize, count: usize) {
    println!("bench: loop nr={nr} count={count} start");
    for _ in 0..count {
        // SAFETY: every argument is 0: a pointer argument of 0 faults in
        // the hypervisor's checked copy (EFAULT) and writes nothing.
        let _ = unsafe { hypercall::raw(nr as u64, [0; 6]) };
    }
    println!("bench: loop end");
}

/// `role=idle`: say so, then sleep for good (nothing wakes this domain).
fn idle() -> ! {
    println!("bench: idle domain {}", domid());
    loop {
        hypercall::sched_block();
    }
}
