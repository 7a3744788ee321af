//! `hostile`: a guest that tries to get out of its domain, one attack at a
//! time, and reports each as `hostile: <attack>: refused (<how>)` or
//! `hostile: <attack>: NOT REFUSED (<what happened>)`, then
//! `hostile: N attacks, all refused` or `hostile: K of N NOT REFUSED`, and
//! powers off either way (the transcript is the verdict).
//!
//! The attacks: privileged instructions (each must fault at CPL 3);
//! reading, writing and jumping into hypervisor memory and non-canonical
//! addresses; W^X of its own image, stack, data and physmap; hypercalls
//! with bad pointers, dom0-only hypercalls, unknown numbers, bad
//! `mmu_batch` operations and trap tables. Faults come back through the
//! SDK's probe handler (#GP, #PF, #UD, #BP), which resumes at a landing pad
//! after each attempt.
//!
//! With `mode=crash` on the command line it registers no handler and
//! executes `cli`: the hypervisor must crash this domain (and only it), so
//! `hostile: STILL ALIVE` must never appear.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use core::sync::atomic::AtomicU8;
use oxen_guest_sdk::dom0_abi::{
    DOMID_SELF, DomainConfig, GUEST_SHARED_INFO_VA, GUEST_START_INFO_VA, GUEST_VA_LIMIT, Hypercall, MMU_MAP,
    MMU_PROTECT, MMU_UNMAP, MMU_WRITE, MmuOp, PAGE_SIZE, TrapEntry, VcpuContext, name_field, vector,
};
use oxen_guest_sdk::probe::{self, Fault};
use oxen_guest_sdk::{ShutdownReason, Status, cmdline_value, hypercall, mem, println};

oxen_guest_sdk::entry!(main);

/// The hypervisor's direct map of RAM (supervisor-only).
const HV_DIRECT_MAP: u64 = 0xffff_8000_0000_0000;
/// The hypervisor image (supervisor-only).
const HV_IMAGE: u64 = 0xffff_ffff_8020_0000;
/// The lowest non-canonical address.
const NON_CANONICAL: u64 = 0x8000_0000_0000_0000;
/// Nothing is mapped here in any guest.
const UNMAPPED: u64 = 0x0000_3000_0000_0000;
/// Where hostile asks for mappings of its own frames.
const SCRATCH_VA: u64 = 0x0000_2000_0000_0000;
/// The `int3` opcode: code buffers are filled with it, so that if a jump
/// into one is not refused the first instruction traps back to us.
const INT3: u8 = 0xcc;
/// The vectors hostile handles (the fault of every attack lands here).
const FAULT_VECTORS: [u8; 4] = [vector::GP, vector::PF, vector::UD, vector::BP];

/// `int3` in writable data (must not be executable).
static DATA_INT3: [AtomicU8; 16] = [const { AtomicU8::new(INT3) }; 16];
/// `int3` in read-only data (must not be executable).
static RODATA_INT3: [u8; 16] = [INT3; 16];

/// How an attack ended.
enum Outcome {
    /// Refused: how.
    Refused(String),
    /// Not refused: what happened.
    NotRefused(String),
}

/// Counts attacks and those not refused, and prints each line.
#[derive(Default)]
struct Tally {
    total: u32,
    not_refused: u32,
}

impl Tally {
    fn report(&mut self, attack: &str, outcome: Outcome) {
        self.total += 1;
        match outcome {
            Outcome::Refused(how) => println!("hostile: {attack}: refused ({how})"),
            Outcome::NotRefused(what) => {
                self.not_refused += 1;
                println!("hostile: {attack}: NOT REFUSED ({what})");
            }
        }
    }
}

fn main() -> ShutdownReason {
    if cmdline_value("mode") == Some("crash") {
        return crash_mode();
    }
    if let Err(e) = probe::install(&FAULT_VECTORS) {
        println!("hostile: cannot install trap handlers: {e}");
        return ShutdownReason::Crash;
    }
    let mut t = Tally::default();
    privileged_instructions(&mut t);
    hypervisor_memory(&mut t);
    own_mappings(&mut t);
    hypercalls(&mut t);
    trap_tables(&mut t);
    if t.not_refused == 0 {
        println!("hostile: {} attacks, all refused", t.total);
    } else {
        println!("hostile: {} of {} NOT REFUSED", t.not_refused, t.total);
    }
    ShutdownReason::Poweroff
}

/// `mode=crash`: an unhandled privileged instruction must crash the domain.
fn crash_mode() -> ShutdownReason {
    println!("hostile: crash mode: executing cli");
    // SAFETY: at CPL 3 with IOPL 0 `cli` raises #GP (Intel SDM Vol.2A CLI);
    // with no handler registered the hypervisor crashes this domain. Were
    // it to run, it would change nothing this guest relies on.
    unsafe { core::arch::asm!("cli", options(nomem, nostack)) };
    println!("hostile: STILL ALIVE");
    ShutdownReason::Poweroff
}

// ---- outcomes ----------------------------------------------------------------

/// An instruction or access: refused if it trapped.
fn trapped(fault: Option<Fault>) -> Outcome {
    match fault {
        Some(f) => Outcome::Refused(f.to_string()),
        None => Outcome::NotRefused("it ran".to_string()),
    }
}

/// A read: refused if it faulted.
fn read_outcome(r: Result<u64, Fault>) -> Outcome {
    match r {
        Ok(v) => Outcome::NotRefused(format!("read {v:#x}")),
        Err(f) => Outcome::Refused(f.to_string()),
    }
}

/// A jump: refused if the fetch at `target` page-faulted (rip = target) or
/// the jump raised #GP (non-canonical target); anything else means code ran.
fn jump_outcome(fault: Option<Fault>, target: u64) -> Outcome {
    match fault {
        Some(f) if f.vector == u64::from(vector::PF) && f.rip == target => Outcome::Refused(f.to_string()),
        Some(f) if f.vector == u64::from(vector::GP) => Outcome::Refused(f.to_string()),
        Some(f) => Outcome::NotRefused(format!("code ran: {f} at rip {:#x}", f.rip)),
        None => Outcome::NotRefused("code ran and came back".to_string()),
    }
}

/// A hypercall: refused if it failed (with `want`, if given).
fn call_outcome(r: Result<u64, Status>, want: Option<Status>) -> Outcome {
    match (r, want) {
        (Ok(v), _) => Outcome::NotRefused(format!("returned {v}")),
        (Err(e), Some(w)) if e != w => Outcome::Refused(format!("{}, expected {}", e.name(), w.name())),
        (Err(e), _) => Outcome::Refused(e.name().to_string()),
    }
}

// ---- privileged instructions ---------------------------------------------

/// Run one privileged instruction sequence under a landing pad.
macro_rules! privileged {
    ($t:expr, $attack:literal, $($insn:literal),+) => {{
        // SAFETY: (1) at CPL 3 the sequence faults (#GP(0) for privileged
        // instructions and for I/O with IOPL 0, #UD where the instruction
        // is not available; Intel SDM Vol.2 per instruction), and the probe
        // handler resumes at the landing pad with every register restored;
        // (2) it only clobbers rax, rcx and rdx and does not move rsp, as
        // `probe_asm!` requires. Were the hypervisor to let one run, the
        // report says NOT REFUSED.
        let fault = unsafe { oxen_guest_sdk::probe_asm!($($insn),+) };
        $t.report($attack, trapped(fault));
    }};
}

fn privileged_instructions(t: &mut Tally) {
    privileged!(t, "cli", "cli");
    privileged!(t, "sti", "sti");
    privileged!(t, "hlt", "hlt");
    privileged!(t, "mov %cr3,%rax (read cr3)", "mov rax, cr3");
    privileged!(t, "mov %rax,%cr3 (write cr3)", "xor eax, eax", "mov cr3, rax");
    privileged!(t, "mov %rax,%cr0 (write cr0)", "xor eax, eax", "mov cr0, rax");
    privileged!(t, "mov %dr7,%rax (read dr7)", "mov rax, dr7");
    privileged!(
        t,
        "wrmsr (IA32_TSC_AUX)",
        "mov ecx, 0xc0000103",
        "xor eax, eax",
        "xor edx, edx",
        "wrmsr"
    );
    privileged!(t, "rdmsr (IA32_EFER)", "mov ecx, 0xc0000080", "rdmsr");
    privileged!(t, "in $0x60,%al", "in al, 0x60");
    privileged!(t, "out %al,$0x80", "out 0x80, al");
    privileged!(t, "lgdt", "lea rax, [rip + 2f]", "lgdt [rax]");
    privileged!(t, "lidt", "lea rax, [rip + 2f]", "lidt [rax]");
    privileged!(t, "ltr", "xor eax, eax", "ltr ax");
    privileged!(t, "invlpg", "mov eax, 0x400000", "invlpg [rax]");
    privileged!(t, "swapgs", "swapgs");
    privileged!(t, "wbinvd", "wbinvd");
    privileged!(t, "clts", "clts");
    privileged!(
        t,
        "xsetbv",
        "xor ecx, ecx",
        "xor eax, eax",
        "xor edx, edx",
        "xsetbv"
    );
    privileged!(t, "sysret from ring 3", "sysretq");
    privileged!(t, "sysenter", "sysenter");
    privileged!(t, "int $2 (the NMI gate)", "int 2");
    privileged!(t, "int $8 (the #DF gate)", "int 8");
    privileged!(t, "int $14 (the #PF gate)", "int 14");
    privileged!(t, "int $0x20 (an interrupt gate)", "int 0x20");
    privileged!(t, "int $0x80", "int 0x80");
}

// ---- hypervisor memory ---------------------------------------------------

fn hypervisor_memory(t: &mut Tally) {
    for (what, addr) in [
        ("the hypervisor direct map", HV_DIRECT_MAP),
        ("the hypervisor image", HV_IMAGE),
    ] {
        // SAFETY: a supervisor-only upper-half address: a user read faults
        // (#PF) and the probe resumes; a read has no side effect anyway.
        let read = unsafe { probe::read_u64(addr) };
        t.report(&format!("read {what} at {addr:#x}"), read_outcome(read));
        // SAFETY: as above, a user write faults. Were it to land, it would
        // corrupt the hypervisor: that is what this guest tests for.
        let write = unsafe { probe::write_u64(addr, 0) };
        t.report(&format!("write {what} at {addr:#x}"), trapped(write.err()));
        // SAFETY: a user fetch from a supervisor page faults with rip at
        // the target, and the probe resumes at the landing pad.
        let jump = unsafe { probe::jump(addr) };
        t.report(
            &format!("jump into {what} at {addr:#x}"),
            jump_outcome(jump, addr),
        );
    }
    // SAFETY: a non-canonical access raises #GP before touching memory.
    let read = unsafe { probe::read_u64(NON_CANONICAL) };
    t.report(
        &format!("read non-canonical {NON_CANONICAL:#x}"),
        read_outcome(read),
    );
    // SAFETY: a jump to a non-canonical address raises #GP.
    let jump = unsafe { probe::jump(NON_CANONICAL) };
    t.report(
        &format!("jump to non-canonical {NON_CANONICAL:#x}"),
        jump_outcome(jump, NON_CANONICAL),
    );
}

// ---- W^X of its own memory -----------------------------------------------

/// Write back the value already at `addr` (harmless if it is not refused).
fn rewrite(t: &mut Tally, attack: &str, addr: u64) {
    // SAFETY: `addr` is in hostile's own image or start_info page, both
    // mapped readable; reading has no side effect.
    let value = match unsafe { probe::read_u64(addr) } {
        Ok(v) => v,
        Err(f) => {
            t.report(
                attack,
                Outcome::NotRefused(format!("could not even read it: {f}")),
            );
            return;
        }
    };
    // SAFETY: writes the value that is already there, so even an accepted
    // write changes nothing; a refused one faults and the probe resumes.
    let write = unsafe { probe::write_u64(addr, value) };
    t.report(attack, trapped(write.err()));
}

/// Jump into a buffer of `int3`s that must not be executable.
fn execute(t: &mut Tally, attack: &str, target: u64) {
    // SAFETY: `target` is filled with `int3`: a refused fetch faults at the
    // target, an accepted one traps on the first `int3`; either way the
    // probe handler resumes at the landing pad.
    let fault = unsafe { probe::jump(target) };
    t.report(attack, jump_outcome(fault, target));
}

fn own_mappings(t: &mut Tally) {
    rewrite(t, "write to its own text (read-only)", own_text_address());
    rewrite(t, "write to the start_info page (read-only)", GUEST_START_INFO_VA);
    execute(t, "execute from its own data (NX)", DATA_INT3.as_ptr() as u64);
    execute(t, "execute from its own rodata (NX)", RODATA_INT3.as_ptr() as u64);
    let stack = core::hint::black_box([INT3; 16]);
    execute(
        t,
        "execute from its stack (NX)",
        core::hint::black_box(&stack).as_ptr() as u64,
    );
    match mem::alloc_frame() {
        Some(gfn) => {
            let va = mem::frame_va(gfn);
            // SAFETY: the frame is hostile's own, fresh from the pool and
            // mapped read-write in the physmap; nothing else uses it.
            unsafe { core::ptr::write_bytes(va as *mut u8, INT3, 4096) };
            execute(t, "execute from the physmap (NX)", va);
        }
        None => println!("hostile: execute from the physmap (NX): skipped (no free frame)"),
    }
}

// ---- hypercalls --------------------------------------------------------------

/// One hypercall attack: the call and the status it should fail with
/// (`None`: any failure will do).
struct Call {
    attack: &'static str,
    nr: u64,
    args: [u64; 6],
    want: Option<Status>,
}

fn call(attack: &'static str, nr: Hypercall, args: [u64; 6], want: Option<Status>) -> Call {
    Call {
        attack,
        nr: nr as u64,
        args,
        want,
    }
}

fn hypercalls(t: &mut Tally) {
    use Hypercall as H;
    let text = b"hostile: this line must not be printed\n";
    let buf = text.as_ptr() as u64;
    let mut out = [0u64; 32];
    let out_ptr = out.as_mut_ptr() as u64;
    let cfg = DomainConfig {
        max_pages: 256,
        initial_pages: 256,
        vcpus: 1,
        flags: 0,
        name: name_field("hostile-child"),
        reserved: 0,
    };
    let ctx = VcpuContext {
        rip: 0x40_0000,
        rsp: 0x40_1000,
        ..VcpuContext::default()
    };
    let gfn = mem::alloc_frame().unwrap_or(0);
    let map = |va: u64, frame_domid: u16| MmuOp {
        op: MMU_MAP,
        flags: 0,
        va,
        gfn,
        frame_domid,
        pad: [0; 6],
    };
    let ops = [
        map(SCRATCH_VA, DOMID_SELF),    // 0: fine in itself
        map(SCRATCH_VA, 0),             // 1: dom0's frame
        map(HV_DIRECT_MAP, DOMID_SELF), // 2
        map(NON_CANONICAL, DOMID_SELF), // 3
        map(0, DOMID_SELF),             // 4: page 0
        MmuOp {
            op: MMU_UNMAP,
            va: HV_IMAGE,
            ..MmuOp::default()
        }, // 5
        MmuOp {
            op: MMU_PROTECT,
            flags: MMU_WRITE,
            va: HV_DIRECT_MAP,
            ..MmuOp::default()
        }, // 6
    ];
    let op = |i: usize| core::ptr::from_ref(&ops[i]) as u64;
    let self_id = u64::from(DOMID_SELF);
    let efault = Some(Status::EFAULT);
    let eperm = Some(Status::EPERM);
    let einval = Some(Status::EINVAL);
    let calls = [
        call(
            "console_write from the hypervisor direct map",
            H::ConsoleWrite,
            [HV_DIRECT_MAP, 16, 0, 0, 0, 0],
            efault,
        ),
        call(
            "console_write from the hypervisor image",
            H::ConsoleWrite,
            [HV_IMAGE, 16, 0, 0, 0, 0],
            efault,
        ),
        call(
            "console_write from a non-canonical buffer",
            H::ConsoleWrite,
            [NON_CANONICAL, 16, 0, 0, 0, 0],
            efault,
        ),
        call(
            "console_write from a buffer straddling 0x800000000000",
            H::ConsoleWrite,
            [GUEST_VA_LIMIT - 8, 16, 0, 0, 0, 0],
            efault,
        ),
        call(
            "console_write from an unmapped buffer",
            H::ConsoleWrite,
            [UNMAPPED, 16, 0, 0, 0, 0],
            efault,
        ),
        call(
            "console_write from a buffer wrapping past 2^64",
            H::ConsoleWrite,
            [u64::MAX - 7, 16, 0, 0, 0, 0],
            efault,
        ),
        call(
            "console_write with a huge length",
            H::ConsoleWrite,
            [buf, u64::MAX, 0, 0, 0, 0],
            None,
        ),
        call(
            "console_write running off the shared_info page into unmapped memory",
            H::ConsoleWrite,
            [GUEST_SHARED_INFO_VA + PAGE_SIZE - 8, 64, 0, 0, 0, 0],
            efault,
        ),
        call(
            "memory_info into the read-only start_info page",
            H::MemoryInfo,
            [GUEST_START_INFO_VA, 0, 0, 0, 0, 0],
            efault,
        ),
        call(
            "memory_info into the hypervisor direct map",
            H::MemoryInfo,
            [HV_DIRECT_MAP, 0, 0, 0, 0, 0],
            efault,
        ),
        call(
            "mmu_batch with ops in the hypervisor",
            H::MmuBatch,
            [HV_DIRECT_MAP, 1, self_id, 0, 0, 0],
            efault,
        ),
        call(
            "mmu_batch with a huge count",
            H::MmuBatch,
            [op(0), u64::MAX, self_id, 0, 0, 0],
            None,
        ),
        call(
            "mmu_batch on domain 0's address space",
            H::MmuBatch,
            [op(0), 1, 0, 0, 0, 0],
            None,
        ),
        call(
            "mmu_batch on a nonexistent domain",
            H::MmuBatch,
            [op(0), 1, 0x7fe0, 0, 0, 0],
            None,
        ),
        call(
            "mmu: map a frame of domain 0",
            H::MmuBatch,
            [op(1), 1, self_id, 0, 0, 0],
            None,
        ),
        call(
            "mmu: map into the upper half",
            H::MmuBatch,
            [op(2), 1, self_id, 0, 0, 0],
            einval,
        ),
        call(
            "mmu: map at a non-canonical address",
            H::MmuBatch,
            [op(3), 1, self_id, 0, 0, 0],
            einval,
        ),
        call(
            "mmu: map at page 0",
            H::MmuBatch,
            [op(4), 1, self_id, 0, 0, 0],
            einval,
        ),
        call(
            "mmu: unmap the hypervisor image",
            H::MmuBatch,
            [op(5), 1, self_id, 0, 0, 0],
            einval,
        ),
        call(
            "mmu: make the hypervisor direct map writable",
            H::MmuBatch,
            [op(6), 1, self_id, 0, 0, 0],
            einval,
        ),
        call(
            "domctl_create from a domU",
            H::DomctlCreate,
            [core::ptr::from_ref(&cfg) as u64, 0, 0, 0, 0, 0],
            eperm,
        ),
        call("domctl_destroy of domain 0", H::DomctlDestroy, [0; 6], eperm),
        call("domctl_pause of domain 0", H::DomctlPause, [0; 6], eperm),
        call(
            "domctl_getinfo from a domU",
            H::DomctlGetInfo,
            [0, out_ptr, 0, 0, 0, 0],
            eperm,
        ),
        call(
            "domctl_set_vcpu_context of domain 0",
            H::DomctlSetVcpuContext,
            [0, core::ptr::from_ref(&ctx) as u64, 0, 0, 0, 0],
            eperm,
        ),
        call(
            "sysctl_physinfo from a domU",
            H::SysctlPhysinfo,
            [out_ptr, 0, 0, 0, 0, 0],
            eperm,
        ),
        call(
            "console_read from a domU",
            H::ConsoleRead,
            [out_ptr, 64, 0, 0, 0, 0],
            eperm,
        ),
        call(
            "memory_increase by 2^64-1 frames",
            H::MemoryIncrease,
            [u64::MAX, 0, 0, 0, 0, 0],
            None,
        ),
        call(
            "memory_decrease by 2^64-1 frames",
            H::MemoryDecrease,
            [u64::MAX, 0, 0, 0, 0, 0],
            None,
        ),
    ];
    for c in calls {
        // SAFETY: every pointer argument is either one the hypervisor must
        // refuse without touching memory (upper half, non-canonical,
        // unmapped, read-only, wrapping), or points at hostile's own live
        // locals (`text`, `out`, `cfg`, `ctx`, `ops`), which the hypervisor
        // may only read — or, for `out`, write up to its 256 bytes — if it
        // fails to refuse.
        let r = Status::from_ret(unsafe { hypercall::raw(c.nr, c.args) });
        t.report(c.attack, call_outcome(r, c.want));
    }
    for (attack, nr) in [
        ("hypercall 9999", 9999),
        ("hypercall 15 (unassigned)", 15),
        ("hypercall 47 (unassigned)", 47),
        ("hypercall 2^64-1", u64::MAX),
    ] {
        // SAFETY: no such hypercall: the hypervisor returns ENOSYS without
        // looking at the (zero) arguments.
        let r = Status::from_ret(unsafe { hypercall::raw(nr, [0; 6]) });
        t.report(attack, call_outcome(r, Some(Status::ENOSYS)));
    }
    core::hint::black_box(&mut out);
}

// ---- trap tables ---------------------------------------------------------------

fn trap_tables(t: &mut Tally) {
    let entry = |vector: u8, handler: u64| TrapEntry {
        vector,
        handler,
        ..TrapEntry::default()
    };
    let good = entry(vector::GP, own_text_address());
    let tables: [(&str, TrapEntry, Option<Status>); 5] = [
        (
            "set_trap_table for vector 8 (#DF)",
            entry(8, good.handler),
            Some(Status::EINVAL),
        ),
        (
            "set_trap_table for vector 2 (NMI)",
            entry(2, good.handler),
            Some(Status::EINVAL),
        ),
        (
            "set_trap_table for vector 18 (#MC)",
            entry(18, good.handler),
            Some(Status::EINVAL),
        ),
        (
            "set_trap_table with a handler in the hypervisor",
            entry(vector::GP, HV_IMAGE),
            Some(Status::EINVAL),
        ),
        (
            "set_trap_table with a non-canonical handler",
            entry(vector::GP, NON_CANONICAL),
            Some(Status::EINVAL),
        ),
    ];
    for (attack, e, want) in tables {
        let r = hypercall::set_trap_table(&[e]).map(|()| 0);
        t.report(attack, call_outcome(r, want));
    }
    let table = [good];
    for (attack, args, want) in [
        (
            "set_trap_table from the hypervisor",
            [HV_DIRECT_MAP, 1, 0, 0, 0, 0],
            Some(Status::EFAULT),
        ),
        (
            "set_trap_table with a huge count",
            [table.as_ptr() as u64, u64::MAX, 0, 0, 0, 0],
            None,
        ),
    ] {
        // SAFETY: the table pointer is either supervisor memory the
        // hypervisor must refuse, or hostile's own `table`, only read.
        let r = Status::from_ret(unsafe { hypercall::raw(Hypercall::VcpuSetTrapTable as u64, args) });
        t.report(attack, call_outcome(r, want));
    }
    let r = hypercall::set_callbacks(HV_IMAGE).map(|()| 0);
    t.report(
        "set_callbacks with a handler in the hypervisor",
        call_outcome(r, Some(Status::EINVAL)),
    );
    // SAFETY: no pointer arguments; a reason the ABI does not define.
    let r = Status::from_ret(unsafe { hypercall::raw(Hypercall::SchedShutdown as u64, [99, 0, 0, 0, 0, 0]) });
    t.report(
        "sched_shutdown with reason 99",
        call_outcome(r, Some(Status::EINVAL)),
    );
    // Whatever the hypervisor made of the tables above, put ours back.
    if let Err(e) = probe::install(&FAULT_VECTORS) {
        println!("hostile: cannot reinstall trap handlers: {e}");
    }
}

/// An address in hostile's own text (`main`): a valid lower-half handler
/// address for the otherwise bad trap tables, and a page to try writing.
fn own_text_address() -> u64 {
    let main: fn() -> ShutdownReason = main;
    main as usize as u64
}
