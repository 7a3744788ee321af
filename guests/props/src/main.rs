//! `props`: Oxen's hostile-guest property suite, after the Xen Test
//! Framework's idea — one tiny guest per property. One image holds every
//! property; the command line `prop=NAME` picks the one this domain checks
//! (`prop=list` prints them all). The guest prints exactly one verdict line,
//! `prop NAME: SUCCESS`, `prop NAME: SKIP (why)` or `prop NAME: FAILURE
//! (what)`, and powers off; a property whose correct outcome is that the
//! hypervisor crashes the domain prints `prop NAME: expecting CRASH` before
//! the deadly act, and `prop NAME: FAILURE (still alive)` if it survives.
//! `framework.rs` is the runner, `registry.rs` the list, `lowlevel.rs` the
//! shared machine-level helpers, and one file per area holds the checks.
//!
//! xtask runs the suite (`xtask/src/props.rs`): a scenario with `props =
//! [...]` boots a bundle whose `auto/` starts one domain `p-NAME` per
//! property (memory 8 MiB, `extra = "prop=NAME"`), and judges the verdict
//! lines and the hypervisor's `domain N ('p-NAME') crashed:` reports.
//!
//! # The properties
//!
//! Expected outcome SUCCESS unless marked CRASH.
//!
//! **Privileged instructions** (`privileged.rs`): each faults at CPL 3 and
//! the fault is reflected to the guest exactly (#GP(0), `rip` at the
//! instruction), never emulated: `priv-cli` (and RFLAGS.IF stays set),
//! `priv-sti`, `priv-hlt`, `priv-read-cr3`, `priv-write-cr3`,
//! `priv-read-cr0`, `priv-write-cr0`, `priv-read-dr7`, `priv-wrmsr`
//! (IA32_LSTAR), `priv-rdmsr` (IA32_EFER), `priv-in` (the serial port),
//! `priv-out` (the QEMU debug-exit port), `priv-lgdt`, `priv-lidt`,
//! `priv-ltr`, `priv-invlpg`, `priv-swapgs`, `priv-wbinvd`, `priv-clts`,
//! `priv-xsetbv` (SKIP on a CPU without XSAVE). `iret-iopl`: an `iret` frame asking for
//! IOPL 3 (and NT, RF, VM, AC, VIF, VIP) resumes without them, so `cli` and
//! `in` still fault.
//!
//! **The hypervisor's memory** (`hvmem.rs`): a read, a write and an
//! instruction fetch in the hypervisor image and in its direct map each
//! page-fault as a user access to a present page, at the right address,
//! reflected to the guest: `hv-image-read`, `hv-image-write`,
//! `hv-image-exec`, `hv-directmap-read`, `hv-directmap-write`,
//! `hv-directmap-exec`. `noncanonical-access`: reads, writes and jumps at
//! non-canonical addresses raise #GP.
//!
//! **Trap delivery** (`traps.rs`): `trap-frame`: the #UD frame sits where
//! the ABI says (16-aligned below the 128-byte red zone, which stays
//! intact), holds exactly the interrupted `rip rsp rax rcx r11` and vector,
//! and `iret` resumes them. `single-step`: with RFLAGS.TF set each
//! instruction raises #DB to the guest's handler, which runs with TF clear;
//! a hypercall made while stepping works; clearing TF ends it.
//! `entry-df-fault`: with RFLAGS.DF set (`std`, which any guest may do) an
//! exception is still delivered as an exact frame: the hypervisor must not
//! run its own code with the guest's DF. `entry-df-interrupt`: spinning
//! with DF set through timer interrupts and slice ends leaves the
//! hypervisor and the domain intact. `entry-df-crash` (CRASH): an
//! unhandled exception with DF set crashes the domain cleanly, with an
//! intact report and nothing else hurt.
//!
//! **The hypercall boundary** (`hypercalls.rs`): pointer arguments of
//! `console_write`, `memory_info`, `evtchn_status`, `sched_poll`,
//! `mmu_batch` and `vcpu_set_trap_table` give `EFAULT` when they point into
//! the upper half (`efault-upper-half`), are non-canonical
//! (`efault-noncanonical`), straddle `0x0000_8000_0000_0000` or wrap 2^64,
//! writing nothing to the mapped part (`efault-straddle`), are unmapped
//! (`efault-unmapped`), or are read-only for an output, which stays
//! unchanged (`efault-readonly`). `enosys`: every number that names no
//! hypercall (15, 24, 47, 66, 2^64-1, all of 0..=300, and numbers whose low
//! 32 bits name a real one) is `ENOSYS` and touches nothing. `einval-mmu`:
//! reserved `MmuOp` flag bits, nonzero padding, unknown ops and fields an
//! op does not take are `EINVAL`, nothing mapped. `einval-trap-table`:
//! reserved flags, padding, the hypervisor's vectors, duplicates and
//! handlers outside the lower half are `EINVAL`, 33 entries `E2BIG`, and
//! the table in force survives. `einval-callbacks`: any reserved flag bit,
//! or a callback outside the lower half, is `EINVAL`. `einval-shutdown`:
//! undefined shutdown reasons (also ones whose low 32 bits are valid) are
//! `EINVAL` and the domain lives on. `counts-bounded`: counts above the
//! ABI's limits are refused before anything is read.
//!
//! **Memory and mappings** (`mmu.rs`): `mmu-unowned-gfn`: mapping a frame
//! the domain does not own (GFN >= `tot_pages`) is refused, nothing
//! mapped. `mmu-beyond-max`: `memory_increase` beyond `max_pages`
//! (overflowing counts too) is `ENOMEM` and changes nothing.
//! `mmu-wx`: writable+executable is refused for map and protect (the
//! mapping stays as it was) and for the shared-info page. `mmu-overlap`: a
//! batch touching one page twice, or with one bad op among good ones, is
//! refused whole. `mmu-bad-va`: page 0, unaligned, upper-half and
//! non-canonical addresses are refused, the hypervisor's pages cannot be
//! unmapped or reprotected. `mmu-existing`: mapping over our text, stack or
//! info pages is `EEXIST`, unmapping or protecting a hole `ENOENT`.
//! `memory-decrease-bounds`: giving back nothing, everything or more is
//! `EINVAL`.
//!
//! **Other domains** (`isolation.rs`): `domctl-eperm`: every privileged
//! hypercall in `dom0_abi::Hypercall::ALL` is `EPERM` for a domU (valid and
//! reserved-bit `DomainConfig`s alike) and writes nothing.
//! `console-ring-eperm`: `domctl_console_read` of dom0 (or of ourselves),
//! `sysctl_dmesg` and `console_read` are `EPERM`. `foreign-frame-eperm`:
//! an mmu op with `frame_domid` of dom0, a neighbour or nobody is `EPERM`.
//! `foreign-space-eperm`: `mmu_batch` on dom0's, a neighbour's or a missing
//! domain's address space is `EPERM` (no probing which IDs exist), and a
//! domain ID wider than 16 bits is `EINVAL`.
//!
//! **Event channels** (`evtchn.rs`): `evtchn-missing-domain` (`ESRCH`;
//! wide IDs `EINVAL`), `evtchn-port-range` (ports 0, 4096, `u32::MAX`,
//! wide ones: `EINVAL`, not truncated), `evtchn-virq-twice` (`EEXIST`),
//! `evtchn-send-closed` (`EINVAL`), `evtchn-peer-closed` (`ENOTCONN` once
//! the far end closed, and the close marks our end pending),
//! `evtchn-dom0-virqs` (`VIRQ_CONSOLE`, `VIRQ_DOM_EXC`: `EPERM`),
//! `evtchn-not-offered` (`bind_interdomain` to a port not offered to us:
//! `EINVAL`), `evtchn-exhaust` (`ENOMEM` once all 4095 ports are used,
//! usable again once closed), `evtchn-poll-args` (bad `sched_poll`
//! arguments refused; pending and timeout work).
//!
//! **CRASH** (`crash.rs`), each ending in `domain N ('p-NAME') crashed:`:
//! `crash-no-handler` (#UD, no handler); `crash-iret-noncanonical-rip`,
//! `crash-iret-upper-rip`, `crash-iret-upper-rsp`,
//! `crash-iret-unmapped-frame`, `crash-iret-straddle` (`iret` frames that
//! cannot be resumed or read); `crash-handler-unmapped` (a #UD handler at
//! an unmapped address, no #PF handler); `crash-pf-recursion` (a #PF
//! handler at an unmapped address: the fault loop must end in a crash when
//! the stack runs out, not hang); `crash-stack-unmapped`,
//! `crash-stack-upper-half`, `crash-stack-noncanonical`,
//! `crash-stack-readonly`, `crash-stack-overflow` (the exception frame
//! cannot be written: never into the hypervisor, a read-only page or the
//! guard page); `crash-upcall-bad-stack` and `crash-callback-unmapped` (an
//! event upcall that cannot be delivered); `crash-syscall-at-top` (a
//! `syscall` in the last two bytes of the lower half: its return address
//! is non-canonical, and the hypervisor must not fault returning to it).
//!
//! **FPU state** (`fpu.rs`): `fpu-leak-writer` and `fpu-leak-reader` run
//! side by side; the reader starts with a clean state (zero vector
//! registers, MXCSR 0x1f80, FCW 0x37f) and its xmm/ymm registers, MXCSR and
//! FCW hold its own pattern after every yield, never the writer's.
//!
//! **Starvation** (`storm.rs`): `storm-timer` (timers for "now" in a tight
//! loop for 2 s) and `storm-event` (IPI sends for 2 s) finish and dom0
//! reports their end; `liveness`, started during the storms, finishes its
//! timed waits and yields within its own 1.5 s deadline.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

#[macro_use]
mod framework;
#[macro_use]
mod lowlevel;

mod crash;
mod evtchn;
mod fpu;
mod hvmem;
mod hypercalls;
mod isolation;
mod mmu;
mod privileged;
mod registry;
mod storm;
mod traps;

use oxen_guest_sdk::{ShutdownReason, cmdline_value, println};

oxen_guest_sdk::entry!(main);

fn main() -> ShutdownReason {
    let Some(name) = cmdline_value("prop") else {
        println!("props: no prop=NAME on the command line (prop=list lists them)");
        return ShutdownReason::Crash;
    };
    if name == "list" {
        for p in registry::PROPS {
            println!("props: {} ({:?})", p.name, p.expect);
        }
        return ShutdownReason::Poweroff;
    }
    match registry::find(name) {
        Some(index) => framework::run(index),
        None => {
            println!("prop {name}: FAILURE (no such property)");
            ShutdownReason::Poweroff
        }
    }
}
