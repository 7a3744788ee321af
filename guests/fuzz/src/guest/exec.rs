//! Issuing steps: the raw `syscall` for calls (with what the guard asked
//! for before and after), the `iret` hypercall with a frame built on the
//! stack and a landing pad after it, the probes, and the trap handlers that
//! catch what the fuzzer itself takes.
//!
//! Every trap goes to the SDK's probe handler (`oxen_guest_sdk::probe`),
//! which resumes at the armed landing pad, except #DB: an `iret` may set
//! TF, and [`debug_trap`] clears it where the trap came from and counts it.

use core::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use fuzz::layout::INT3;
use fuzz::step::{Call, Iret, Post, Pre, Probe, ProbeKind, Target, Trap};
use oxen_guest_sdk::dom0_abi::{Hypercall, SharedInfo, Status, TrapFrame, VcpuInfo, vector};
use oxen_guest_sdk::probe::{self, Fault};
use oxen_guest_sdk::traps::{self, Action, VECTORS};
use oxen_guest_sdk::{hypercall, now_ns, start_info};

/// RFLAGS.TF (Intel SDM Vol.1 3.4.3.3): single-step.
const RFLAGS_TF: u64 = 1 << 8;
/// What a write probe stores: the `int3` bytes junk frames are made of.
const INT3_WORD: u64 = u64::from_ne_bytes([INT3; 8]);

/// #DB traps taken (TF from an `iret` frame).
pub static DEBUG_TRAPS: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" {
    // The SDK's entry stubs (`traps.rs`) and upcall entry (`event.rs`),
    // global symbols of its `global_asm!`: the real handlers a random
    // trap table or callback is pointed at.
    fn oxen_trap_stub_0();
    fn oxen_trap_stub_1();
    fn oxen_trap_stub_3();
    fn oxen_trap_stub_4();
    fn oxen_trap_stub_5();
    fn oxen_trap_stub_6();
    fn oxen_trap_stub_7();
    fn oxen_trap_stub_12();
    fn oxen_trap_stub_13();
    fn oxen_trap_stub_14();
    fn oxen_trap_stub_16();
    fn oxen_trap_stub_17();
    fn oxen_trap_stub_19();
    fn oxen_event_entry();
}

/// The SDK's trap entry stub by vector (0 where there is none).
pub fn trap_stubs() -> [u64; 32] {
    let stubs: [(u8, unsafe extern "C" fn()); 13] = [
        (0, oxen_trap_stub_0),
        (1, oxen_trap_stub_1),
        (3, oxen_trap_stub_3),
        (4, oxen_trap_stub_4),
        (5, oxen_trap_stub_5),
        (6, oxen_trap_stub_6),
        (7, oxen_trap_stub_7),
        (12, oxen_trap_stub_12),
        (13, oxen_trap_stub_13),
        (14, oxen_trap_stub_14),
        (16, oxen_trap_stub_16),
        (17, oxen_trap_stub_17),
        (19, oxen_trap_stub_19),
    ];
    let mut out = [0u64; 32];
    for (v, stub) in stubs {
        out[usize::from(v)] = stub as usize as u64;
    }
    out
}

/// The SDK's event upcall entry.
pub fn event_entry() -> u64 {
    oxen_event_entry as *const () as u64
}

/// #DB: single-stepping after an `iret` with TF; clear it and go on.
fn debug_trap(frame: &mut TrapFrame) -> Action {
    frame.iret.rflags &= !RFLAGS_TF;
    DEBUG_TRAPS.fetch_add(1, Relaxed);
    Action::Resume
}

/// Register the fuzzer's trap table: every vector to the probe handler,
/// #DB to [`debug_trap`]. Also what puts it back after a random table.
pub fn install_traps() -> Result<(), Status> {
    for v in VECTORS {
        let handler = if v == vector::DB {
            debug_trap
        } else {
            probe::handler
        };
        traps::set_handler(v, handler)?;
    }
    Ok(())
}

/// Register the trap table again (one call: the SDK sends its whole table).
fn restore_traps() {
    if let Err(e) = traps::set_handler(vector::PF, probe::handler) {
        oxen_guest_sdk::println!("fuzz: cannot register the trap table again: {e}");
    }
}

/// A trap the SDK's probe handler caught.
fn trap(f: Fault) -> Trap {
    Trap {
        vector: f.vector,
        rip: f.rip,
        addr: f.fault_addr,
    }
}

/// Make `call`; its raw `rax`.
pub fn call(c: &Call, ipi_port: u32, event_entry: u64) -> i64 {
    match c.pre {
        Pre::None => {}
        Pre::MaskAndSendIpi => {
            upcall_mask().store(1, SeqCst);
            let _ = hypercall::evtchn_send(ipi_port);
        }
        Pre::MaskAndArmTimer(ns) => {
            upcall_mask().store(1, SeqCst);
            let _ = hypercall::set_timer(now_ns().saturating_add(ns));
        }
    }
    let mut args = c.args;
    if c.relative {
        args[0] = now_ns().wrapping_add(args[0]);
    }
    debug_assert!(c.nr != Hypercall::Iret as u64, "iret goes through `iret` below");
    // SAFETY: the guard (fuzz::guard) vouched for every pointer the
    // hypervisor may write through: scratch frames (no Rust reference to
    // them lives across this call), grown or junk frames, or memory it
    // must refuse. Pointers it only reads from may be anything. Calls that
    // would not return (a valid shutdown) or return elsewhere (`iret`) are
    // never made here; mappings it may change are the tracked pages only.
    let ret = unsafe { hypercall::raw(c.nr, args) };
    match c.post {
        Post::None => {}
        Post::RestoreTraps => restore_traps(),
        Post::Unmask => upcall_mask().store(0, SeqCst),
        Post::RestoreCallbacks => {
            if let Err(e) = hypercall::set_callbacks(event_entry) {
                oxen_guest_sdk::println!("fuzz: cannot register the event entry again: {e}");
            }
        }
    }
    ret
}

/// vCPU 0's `evtchn_upcall_mask` in the shared-info page.
fn upcall_mask() -> &'static AtomicU8 {
    let offset =
        core::mem::offset_of!(SharedInfo, vcpu_info) + core::mem::offset_of!(VcpuInfo, evtchn_upcall_mask);
    let va = start_info().shared_info_va + offset as u64;
    // SAFETY: the builder maps the shared-info page read-write for the
    // domain's life; the mask is a byte the guest owns and the SDK also
    // only touches atomically.
    unsafe { AtomicU8::from_ptr(va as *mut u8) }
}

/// Put an `int3` at `va` (a junk frame's byte in the physmap).
fn refill(va: Option<u64>) {
    if let Some(va) = va {
        // SAFETY: the guard gives the physmap address of a byte of a junk
        // frame: mapped read-write, owned by the fuzzer, used for nothing
        // but being mapped, jumped into and overwritten with int3.
        unsafe { core::ptr::write_volatile(va as *mut u8, INT3) };
    }
}

/// The `iret` hypercall with a frame for `i`; the trap it ended in, if any.
pub fn iret(i: &Iret) -> Option<Trap> {
    refill(i.refill);
    let (use_pad, target) = match i.target {
        Target::Pad => (1u64, 0u64),
        Target::Addr(a) => (0, a),
    };
    probe::begin();
    // SAFETY: (1) the frame sits below the current rsp, which nothing uses
    // (no red zone on this target), and its rsp is the rsp before it was
    // pushed, so the context resumes with the stack as it was; (2) rip is
    // the landing pad `2:` or an address the guard checked faults (or hits
    // an int3 in a junk frame), and the probe handler then resumes at the
    // armed pad with rsp from the faulting context, the same value; (3)
    // `iret` restores rax, rcx and r11 from the frame (declared clobbered),
    // rdx is ours, every other register is preserved by the hypervisor and
    // by the trap trampoline; (4) DF may come back set: `cld` first; TF may
    // too: #DB after it goes to `debug_trap`, which clears it.
    unsafe {
        core::arch::asm!(
            "mov {saved}, rsp",
            "lea rdx, [rip + 2f]",
            "mov qword ptr [{landing}], rdx",
            "test {use_pad}, {use_pad}",
            "cmovnz {target}, rdx",
            "sub rsp, 48",
            "mov qword ptr [rsp], {rax_v}",
            "mov qword ptr [rsp + 8], {rcx_v}",
            "mov qword ptr [rsp + 16], {r11_v}",
            "mov qword ptr [rsp + 24], {target}",
            "mov qword ptr [rsp + 32], {rflags}",
            "lea rdx, [rsp + 48]",
            "mov qword ptr [rsp + 40], rdx",
            "mov eax, {nr}",
            "syscall",
            // Reached only if `iret` returned, which it must not: drop the frame.
            "add rsp, 48",
            "2:",
            "cld",
            // The stack pointer must be back where it was; if not, note
            // what it was and put it back.
            "cmp rsp, {saved}",
            "je 3f",
            "mov qword ptr [{bad}], rsp",
            "mov rsp, {saved}",
            "3:",
            saved = out(reg) _,
            bad = in(reg) BAD_RSP.as_ptr(),
            landing = in(reg) probe::landing_pad(),
            use_pad = in(reg) use_pad,
            target = inout(reg) target => _,
            rax_v = in(reg) i.regs[0],
            rcx_v = in(reg) i.regs[1],
            r11_v = in(reg) i.regs[2],
            rflags = in(reg) i.rflags,
            nr = const Hypercall::Iret as u64,
            out("rax") _,
            out("rcx") _,
            out("r11") _,
            out("rdx") _,
        );
    }
    probe::end().map(trap)
}

/// The stack pointer an `iret` came back to the landing pad with, when it
/// was not the one it left with (0: it was).
pub static BAD_RSP: AtomicU64 = AtomicU64::new(0);

/// Make probe `p`; the trap it ended in, if any.
pub fn probe(p: &Probe) -> Option<Trap> {
    refill(p.refill);
    match p.kind {
        // SAFETY: reading has no side effect on memory; a fault resumes.
        ProbeKind::Read => unsafe { probe::read_u64(p.addr) }.err().map(trap),
        // SAFETY: the guard allows writes only where they fault or land on
        // a junk or grown frame, which hold nothing but int3 bytes.
        ProbeKind::Write => unsafe { probe::write_u64(p.addr, INT3_WORD) }.err().map(trap),
        // SAFETY: the guard allows jumps only where the fetch faults or hits
        // the int3 just put there; either way the probe handler resumes.
        ProbeKind::Jump => unsafe { probe::jump(p.addr) }.map(trap),
    }
}
