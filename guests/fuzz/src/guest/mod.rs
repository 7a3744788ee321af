//! The fuzz guest proper: sets up the address space the library's guard
//! reasons about, links up with the canary, and runs the steps.
//!
//! Set-up: trap handlers for every vector (`exec.rs`), [`SCRATCH_FRAMES`]
//! scratch frames and [`JUNK_FRAMES`] junk frames from the top of the SDK's
//! frame pool (contiguous, scratch topmost so that a range running off its
//! end runs into frames the domain has not grown yet), the ports the
//! fuzzer lives on (VIRQ_CONTROL, VIRQ_TIMER, a guard IPI, the canary
//! link). Then, for each step: generate, guard, issue, judge, count. Every
//! `report=` calls (default 100000) a progress line; at the end the totals,
//! the checksum of the sequence, a word to the canary, and power-off
//! (`Crash` if the hypervisor broke a promise).

mod canary;
mod exec;
mod link;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;
use core::sync::atomic::Ordering::Relaxed;
use fuzz::generate::Gen;
use fuzz::guard::Guard;
use fuzz::layout::{Env, INT3};
use fuzz::number;
use fuzz::step::{Post, Pre, Probe, Step};
use fuzz::tally::Tally;
use oxen_guest_sdk::dom0_abi::{GUEST_STACK_PAGES, GUEST_START_INFO_VA, Hypercall, PAGE_SIZE};
use oxen_guest_sdk::time::{self, NS_PER_MS};
use oxen_guest_sdk::{
    ShutdownReason, cmdline, cmdline_value, domid, event, hypercall, mem, now_ns, println, start_info,
};

/// Scratch frames: where random structures are written (32 KiB, room for
/// the largest batch and a bit).
const SCRATCH_FRAMES: u64 = 8;
/// Junk frames: what mappings point at.
const JUNK_FRAMES: u64 = 4;
/// Default number of calls.
const DEFAULT_CALLS: u64 = 100_000;
/// Default progress interval, in calls.
const DEFAULT_REPORT: u64 = 100_000;
/// Per-number time accounting slots (the last: every other number).
const TIME_SLOTS: usize = 72;
/// Broken promises printed in full (all are counted).
const BUGS_SHOWN: u64 = 20;
/// Hypercalls the time report names.
const TIMES_SHOWN: usize = 6;

unsafe extern "C" {
    // Linker-script symbols (guests/sdk/guest.ld): page-aligned bounds.
    static __image_start: u8;
    static __image_end: u8;
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
}

/// The address of a linker symbol.
macro_rules! symbol {
    ($s:ident) => {
        (&raw const $s) as u64
    };
}

/// The guest's main: the fuzzer, or the canary with `mode=canary`.
pub fn main() -> ShutdownReason {
    match cmdline_value("mode") {
        None | Some("fuzz") => fuzz(),
        Some("canary") => canary::run(),
        Some(other) => {
            println!("fuzz: unknown mode '{other}' (fuzz or canary)");
            ShutdownReason::Crash
        }
    }
}

/// `n` frames from the pool, which hands them out top down: their range,
/// if they came out contiguous.
fn frames(n: u64) -> Option<Range<u64>> {
    let top = mem::alloc_frame()?;
    let mut low = top;
    for _ in 1..n {
        let next = mem::alloc_frame()?;
        if next + 1 != low {
            return None;
        }
        low = next;
    }
    Some(low..top + 1)
}

/// The address space as the builder laid it out and `frames` carved it.
fn env(scratch: &Range<u64>, junk: Range<u64>) -> Env {
    let si = start_info();
    Env {
        domid: domid(),
        image: symbol!(__image_start)..symbol!(__image_end),
        text: symbol!(__text_start)..symbol!(__text_end),
        rodata: symbol!(__rodata_start)..symbol!(__rodata_end),
        stack: si.stack_top_va - GUEST_STACK_PAGES * PAGE_SIZE..si.stack_top_va,
        start_info: GUEST_START_INFO_VA,
        shared_info: si.shared_info_va,
        physmap: si.physmap_va,
        initial_pages: si.nr_pages,
        max_pages: si.max_pages,
        scratch: mem::frame_va(scratch.start)..mem::frame_va(scratch.end),
        junk,
    }
}

/// The scratch frames as bytes.
///
/// # Safety
/// No other reference to them may be alive (the hypervisor writes them
/// during calls, when none is).
unsafe fn scratch_bytes(env: &Env) -> &'static mut [u8] {
    let len = usize::try_from(env.scratch.end - env.scratch.start).unwrap_or(0);
    // SAFETY: the frames came from the SDK pool, are the fuzzer's alone,
    // mapped read-write in the physmap for the domain's life; the caller
    // keeps the slice alone.
    unsafe { core::slice::from_raw_parts_mut(env.scratch.start as *mut u8, len) }
}

/// Read own memory in a region `Env::readable_regions` lists.
fn read_own(va: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        // SAFETY: the guard only asks for ranges inside the image, the info
        // pages or the initial physmap, all mapped readable for good.
        *b = unsafe { core::ptr::read_volatile((va + i as u64) as *const u8) };
    }
}

/// Write a newline: ends a line of junk the hypervisor holds for us, so
/// that the next report starts a line of its own.
fn end_junk_line() {
    let _ = hypercall::console_write(b"\n");
}

/// Per-hypercall time: where the run's wall time goes.
struct Timing {
    ns: [u64; TIME_SLOTS],
    calls: [u64; TIME_SLOTS],
}

impl Timing {
    /// Count `ns` for a call of `nr` (every number past the table shares
    /// the last slot).
    fn record(&mut self, nr: u64, ns: u64) {
        let slot = usize::try_from(nr).unwrap_or(TIME_SLOTS - 1).min(TIME_SLOTS - 1);
        self.ns[slot] += ns;
        self.calls[slot] += 1;
    }

    /// A line for each of the hypercalls that took the most time.
    fn print(&self) {
        let mut slots: Vec<usize> = (0..TIME_SLOTS).filter(|&i| self.calls[i] > 0).collect();
        slots.sort_by_key(|&i| core::cmp::Reverse(self.ns[i]));
        for &i in slots.iter().take(TIMES_SHOWN) {
            let name = Hypercall::try_from(i as u64).map_or("(other numbers)", Hypercall::name);
            println!(
                "fuzz: time in {name}: {} ms over {} calls ({} us each)",
                self.ns[i] / NS_PER_MS,
                self.calls[i],
                self.ns[i] / self.calls[i] / 1000
            );
        }
    }
}

/// A run of the fuzzer.
struct Fuzzer {
    env: Env,
    seed: u64,
    calls: u64,
    report: u64,
    trace: u64,
    generator: Gen,
    guard: Guard,
    tally: Tally,
    timing: Timing,
    ipi: u32,
    event_entry: u64,
    link: Option<link::Link>,
    /// A probe of the page the last successful batch changed.
    pending_probe: Option<Probe>,
}

impl Fuzzer {
    /// Read the command line, carve the address space, bind the ports.
    fn set_up() -> Result<Fuzzer, String> {
        let line = cmdline();
        let seed = number(line, "seed").unwrap_or(1);
        let calls = number(line, "calls").unwrap_or(DEFAULT_CALLS);
        let report = number(line, "report")
            .filter(|&r| r > 0)
            .unwrap_or(DEFAULT_REPORT);
        // `trace=N`: print the first N steps before making them (to find the
        // step a failing seed dies on).
        let trace = number(line, "trace").unwrap_or(0);
        exec::install_traps().map_err(|e| format!("cannot install trap handlers: {e}"))?;
        let (Some(scratch), Some(junk)) = (frames(SCRATCH_FRAMES), frames(JUNK_FRAMES)) else {
            return Err(format!(
                "the SDK frame pool has no {} contiguous frames",
                SCRATCH_FRAMES + JUNK_FRAMES
            ));
        };
        for gfn in junk.clone() {
            let len = usize::try_from(PAGE_SIZE).unwrap_or(0);
            // SAFETY: a junk frame, the fuzzer's alone, mapped read-write
            // in the physmap.
            unsafe { core::ptr::write_bytes(mem::frame_va(gfn) as *mut u8, INT3, len) };
        }
        let env = env(&scratch, junk);
        let control = event::control_port().unwrap_or(0);
        let timer = time::timer_port().unwrap_or(0);
        let ipi = hypercall::evtchn_bind_ipi(0).map_err(|e| format!("cannot bind the guard IPI: {e}"))?;
        let link = link::to_canary();
        let event_entry = exec::event_entry();
        let mut guard = Guard::new(
            env.clone(),
            [control, timer, ipi, link.as_ref().map_or(0, |l| l.port)],
            ipi,
            exec::trap_stubs(),
            event_entry,
        );
        // `allow=shx`: go where a known hypervisor problem is (see
        // `Guard::shared_exec`).
        guard.shared_exec = cmdline_value("allow").is_some_and(|list| list.split(',').any(|w| w == "shx"));
        println!(
            "fuzz: seed {seed}, {calls} calls, domain {}, {} pages (max {}), scratch {:#x}..{:#x}, ports control {control} timer {timer} ipi {ipi}{}",
            env.domid,
            env.initial_pages,
            env.max_pages,
            env.scratch.start,
            env.scratch.end,
            if guard.shared_exec { ", allow shx" } else { "" },
        );
        match &link {
            Some(l) => println!(
                "fuzz: linked to the canary, domain {}, on port {}",
                l.peer, l.port
            ),
            None => println!("fuzz: no canary offered a port; running alone"),
        }
        let mut generator = Gen::new(seed, env.clone());
        // SAFETY: the only reference to scratch, dropped at once.
        generator.fill_scratch(unsafe { scratch_bytes(&env) });
        Ok(Fuzzer {
            env,
            seed,
            calls,
            report,
            trace,
            generator,
            guard,
            tally: Tally::default(),
            timing: Timing {
                ns: [0; TIME_SLOTS],
                calls: [0; TIME_SLOTS],
            },
            ipi,
            event_entry,
            link,
            pending_probe: None,
        })
    }

    /// The steps, until `calls` calls are made.
    fn run(&mut self) {
        while self.tally.calls < self.calls {
            self.step();
        }
        self.tally.faults += exec::DEBUG_TRAPS.swap(0, Relaxed);
    }

    /// One step: generate, guard, make, judge, count.
    fn step(&mut self) {
        let mut step = match self.pending_probe.take() {
            Some(p) => Step::Probe(p),
            // SAFETY: the only reference to scratch, dropped before the call.
            None => self.generator.step(unsafe { scratch_bytes(&self.env) }),
        };
        // SAFETY: as above.
        self.guard
            .prepare(&mut step, unsafe { scratch_bytes(&self.env) }, &read_own);
        self.tally.step(&step);
        let number = self.tally.calls + self.tally.probes;
        if number <= self.trace {
            end_junk_line();
            println!("fuzz: step {number}: {}", describe(&step));
        }
        let verdict = match &step {
            Step::Call(c) => {
                let started = now_ns();
                let ret = exec::call(c, self.ipi, self.event_entry);
                self.timing.record(c.nr, now_ns() - started);
                self.tally.result(ret);
                // SAFETY: as above (read only).
                let verdict = self.guard.after(c, ret, unsafe { scratch_bytes(&self.env) });
                if c.nr == Hypercall::MmuBatch as u64 && ret > 0 {
                    self.pending_probe = self.guard.batch_target().map(|va| self.generator.probe_at(va));
                }
                verdict
            }
            Step::Iret(i) => {
                let trap = exec::iret(i);
                self.tally.faults += u64::from(trap.is_some());
                match exec::BAD_RSP.swap(0, Relaxed) {
                    0 => i.expect.judge(trap),
                    bad => Err(format!(
                        "came back to the landing pad with rsp {bad:#x} (trap {trap:x?})"
                    )),
                }
            }
            Step::Probe(p) => {
                let trap = exec::probe(p);
                self.tally.faults += u64::from(trap.is_some());
                p.expect.judge(trap)
            }
        };
        if let Err(why) = verdict {
            self.tally.bugs += 1;
            if self.tally.bugs <= BUGS_SHOWN {
                end_junk_line();
                println!("fuzz: BUG: step {number} ({}): {why}", describe(&step));
            }
        }
        if step.is_call() && self.tally.calls.is_multiple_of(self.report) {
            self.tally.faults += exec::DEBUG_TRAPS.swap(0, Relaxed);
            end_junk_line();
            println!("{}", self.tally.progress_line());
        }
    }

    /// The report, the word to the canary, the verdict.
    fn finish(self, elapsed_ns: u64) -> ShutdownReason {
        let t = &self.tally;
        let elapsed_ms = elapsed_ns / NS_PER_MS;
        end_junk_line();
        println!("{}", t.done_line(self.seed));
        println!("{}", t.checksum_line());
        println!(
            "fuzz: {} calls in {}.{:03} s ({} calls/s), {} probes, {} faults caught, {} frames grown at the end",
            t.calls,
            elapsed_ms / 1000,
            elapsed_ms % 1000,
            t.calls.saturating_mul(1000) / elapsed_ms.max(1),
            t.probes,
            t.faults,
            self.guard.grown
        );
        self.timing.print();
        let verdict = if t.bugs == 0 {
            println!("fuzz: no broken promises");
            ShutdownReason::Poweroff
        } else {
            println!("fuzz: FAILED: {} broken promises", t.bugs);
            ShutdownReason::Crash
        };
        if let Some(l) = &self.link {
            l.tell_canary();
        }
        verdict
    }
}

/// The fuzzer.
fn fuzz() -> ShutdownReason {
    let mut fuzzer = match Fuzzer::set_up() {
        Ok(f) => f,
        Err(why) => {
            println!("fuzz: {why}");
            return ShutdownReason::Crash;
        }
    };
    let started = now_ns();
    fuzzer.run();
    fuzzer.finish(now_ns() - started)
}

/// A step for a report line.
fn describe(step: &Step) -> String {
    match step {
        Step::Call(c) => {
            let name = Hypercall::try_from(c.nr).map_or("unknown", Hypercall::name);
            let mut s = format!(
                "{name} {:#x}({:#x}, {:#x}, {:#x}, {:#x}, {:#x}, {:#x})",
                c.nr, c.args[0], c.args[1], c.args[2], c.args[3], c.args[4], c.args[5]
            );
            if c.relative {
                s.push_str(" (first argument relative to now)");
            }
            if c.pre != Pre::None || c.post != Post::None {
                s.push_str(&format!(" [{:?}, {:?}]", c.pre, c.post));
            }
            s
        }
        Step::Iret(i) => format!("iret to {:?}, rflags {:#x}", i.target, i.rflags),
        Step::Probe(p) => format!("{:?} probe at {:#x}", p.kind, p.addr),
    }
}
