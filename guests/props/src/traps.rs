//! Trap delivery, checked from the receiving end: the frame the hypervisor
//! writes for an exception holds exactly the interrupted context (vector,
//! error code, `rip`, `rsp`, the registers `iret` restores), sits where the
//! ABI says (below a 128-byte red zone that stays untouched, 16-aligned),
//! and `iret` resumes exactly; single-stepping (RFLAGS.TF) is reflected as
//! #DB to the guest's handler, across hypercalls too, as on hardware; and a
//! guest's RFLAGS.DF never leaks into the hypervisor on entry.

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use oxen_guest_sdk::dom0_abi::{Hypercall, RED_ZONE, RFLAGS_IF, TrapFrame, vector};
use oxen_guest_sdk::traps::{self, Action};

use crate::framework::{PropResult, accepted, ok};
use crate::lowlevel::rflags;

/// What the #UD handler saw: the frame's address and its ten words.
static SEEN: [AtomicU64; 11] = [const { AtomicU64::new(0) }; 11];

/// Record the frame and resume after the 2-byte `ud2`.
fn on_ud(frame: &mut TrapFrame) -> Action {
    let words = [
        core::ptr::from_mut(frame) as u64,
        frame.iret.rax,
        frame.iret.rcx,
        frame.iret.r11,
        frame.iret.rip,
        frame.iret.rflags,
        frame.iret.rsp,
        frame.vector,
        frame.error_code,
        frame.fault_addr,
        frame.reserved,
    ];
    for (slot, w) in SEEN.iter().zip(words) {
        slot.store(w, SeqCst);
    }
    frame.iret.rip += 2;
    Action::Resume
}

/// Values the interrupted context holds in the registers `iret` restores.
const RAX: u64 = 0x1111_2222_3333_4444;
const RCX: u64 = 0x5555_6666_7777_8888;
const R11: u64 = 0x9999_aaaa_bbbb_cccc;
/// What the red zone is filled with (plus the word's index).
const RED: u64 = 0x5245_445a_4f4e_4500;
/// Words in the red zone.
const RED_WORDS: usize = (RED_ZONE / 8) as usize;

/// The #UD frame: where it is, what it holds, and that the red zone and
/// the registers survive the round trip through the handler and `iret`.
pub fn frame() -> PropResult {
    accepted("set the #UD handler", traps::set_handler(vector::UD, on_ud))?;
    let (rsp, at, rax, rcx, r11): (u64, u64, u64, u64, u64);
    let mut red = [0u64; RED_WORDS];
    // SAFETY: (1) the red zone below rsp holds nothing (the target has no
    // red zone, and the asm may use the stack); (2) `ud2` raises #UD, whose
    // handler resumes after it with every register as it was (rax, rcx, r11
    // from the frame, the rest from the trampoline); (3) rsi, rdi and rcx
    // are declared clobbered for the copy of the red zone into `red`.
    unsafe {
        core::arch::asm!(
            "mov rax, {red}",
            "mov ecx, 16",
            "4:",
            "lea rdx, [rax + rcx]",
            "neg rcx",
            "mov qword ptr [rsp + rcx * 8], rdx",
            "neg rcx",
            "dec ecx",
            "jnz 4b",
            "mov {rsp}, rsp",
            "mov rax, {rax_v}",
            "mov rcx, {rcx_v}",
            "mov r11, {r11_v}",
            "3:",
            "ud2",
            "mov {rax}, rax",
            "mov {rcx}, rcx",
            "mov {r11}, r11",
            "lea {at}, [rip + 3b]",
            "lea rsi, [rsp - 128]",
            "mov rdi, {buf}",
            "mov ecx, 16",
            "cld",
            "rep movsq",
            red = const RED,
            rax_v = const RAX,
            rcx_v = const RCX,
            r11_v = const R11,
            buf = in(reg) red.as_mut_ptr(),
            rsp = out(reg) rsp,
            at = out(reg) at,
            rax = out(reg) rax,
            rcx = out(reg) rcx,
            r11 = out(reg) r11,
            out("rax") _,
            out("rcx") _,
            out("rdx") _,
            out("rsi") _,
            out("rdi") _,
            out("r11") _,
        );
    }
    let seen: [u64; 11] = core::array::from_fn(|i| SEEN[i].load(SeqCst));
    let [
        addr,
        f_rax,
        f_rcx,
        f_r11,
        f_rip,
        f_rflags,
        f_rsp,
        f_vector,
        f_error,
        f_fault,
        f_reserved,
    ] = seen;
    ensure!(
        f_vector == u64::from(vector::UD),
        "the handler never ran, or saw vector {f_vector}"
    );
    let want = ((rsp - RED_ZONE) & !15) - core::mem::size_of::<TrapFrame>() as u64;
    ensure!(
        addr == want,
        "the frame is at {addr:#x}; with rsp {rsp:#x} the ABI puts it at {want:#x}"
    );
    ensure!(f_rip == at, "frame rip {f_rip:#x}, the ud2 is at {at:#x}");
    ensure!(f_rsp == rsp, "frame rsp {f_rsp:#x}, rsp was {rsp:#x}");
    ensure!(
        (f_rax, f_rcx, f_r11) == (RAX, RCX, R11),
        "frame rax/rcx/r11 {f_rax:#x}/{f_rcx:#x}/{f_r11:#x}, expected {RAX:#x}/{RCX:#x}/{R11:#x}"
    );
    ensure!(f_rflags & RFLAGS_IF != 0, "frame rflags {f_rflags:#x} without IF");
    ensure!(
        (f_error, f_fault, f_reserved) == (0, 0, 0),
        "frame error code / fault address / reserved {f_error:#x}/{f_fault:#x}/{f_reserved:#x}, expected 0/0/0"
    );
    ensure!(
        (rax, rcx, r11) == (RAX, RCX, R11),
        "after iret rax/rcx/r11 are {rax:#x}/{rcx:#x}/{r11:#x}, expected {RAX:#x}/{RCX:#x}/{R11:#x}"
    );
    for (i, w) in red.iter().enumerate() {
        // red[0] is the lowest word, rsp - 128, which got RED + 16.
        let want = RED + (RED_WORDS - i) as u64;
        ensure!(
            *w == want,
            "the red zone word at rsp - {} is {w:#x}, expected {want:#x}",
            128 - 8 * i
        );
    }
    ok()
}

/// #DB traps the handler saw.
static STEPS: AtomicU64 = AtomicU64::new(0);
/// Handler entries while RFLAGS.TF was set in the handler itself.
static NESTED: AtomicU64 = AtomicU64::new(0);

/// Count a single-step trap (and whether the handler itself runs with TF).
fn on_debug(frame: &mut TrapFrame) -> Action {
    STEPS.fetch_add(1, SeqCst);
    if rflags() & (1 << 8) != 0 {
        NESTED.fetch_add(1, SeqCst);
    }
    let _ = frame;
    Action::Resume
}

/// Single-stepping: with RFLAGS.TF set, each instruction traps (#DB, a
/// trap, reflected to the guest's handler, which runs with TF clear as
/// exception delivery does on hardware), hypercalls made while stepping
/// still work, and clearing TF ends it.
pub fn single_step() -> PropResult {
    accepted("set the #DB handler", traps::set_handler(vector::DB, on_debug))?;
    STEPS.store(0, SeqCst);
    let version: u64;
    // SAFETY: TF makes every instruction trap to `on_debug`, which resumes
    // with every register as it was; `syscall` clobbers rcx and r11 and
    // returns the ABI version in rax. TF is cleared before the block ends.
    unsafe {
        core::arch::asm!(
            "pushfq",
            "or qword ptr [rsp], 0x100",
            "popfq",
            "nop",
            "nop",
            "mov eax, {nr}",
            "syscall",
            "mov rdx, rax",
            "nop",
            "pushfq",
            "and qword ptr [rsp], ~0x100",
            "popfq",
            nr = const Hypercall::Version as u64,
            out("rax") _,
            out("rcx") _,
            out("rdx") version,
            out("r11") _,
        );
    }
    let steps = STEPS.load(SeqCst);
    ensure!(
        version == u64::from(oxen_guest_sdk::dom0_abi::abi_version_packed()),
        "the version hypercall made while single-stepping returned {version:#x}"
    );
    ensure!(NESTED.load(SeqCst) == 0, "the #DB handler ran with RFLAGS.TF set");
    ensure!(
        steps >= 6,
        "only {steps} single-step traps for 10 stepped instructions"
    );
    ensure!(
        rflags() & (1 << 8) == 0,
        "RFLAGS.TF is still set after popfq cleared it"
    );
    ok()
}

/// RFLAGS.DF (Intel SDM Vol.1 3.4.3.2).
const RFLAGS_DF: u64 = 1 << 10;

/// A guest may run with RFLAGS.DF set (`std`), and an exception from it
/// must still be delivered exactly: the hypervisor's own code, which copies
/// the frame with string instructions and whose compiler assumes DF clear,
/// must not inherit the guest's DF on entry (interrupt gates do not clear
/// it; the `syscall` entry does, through IA32_FMASK).
pub fn df_fault() -> PropResult {
    accepted("set the #UD handler", traps::set_handler(vector::UD, on_ud))?;
    for slot in &SEEN {
        slot.store(0, SeqCst);
    }
    let (rsp, at): (u64, u64);
    // SAFETY: `ud2` raises #UD, whose handler resumes after it with every
    // register as it was (DF included); DF is cleared again right after,
    // before any compiled code runs.
    unsafe {
        core::arch::asm!(
            "mov {rsp}, rsp",
            "std",
            "3:",
            "ud2",
            "cld",
            "lea {at}, [rip + 3b]",
            rsp = out(reg) rsp,
            at = out(reg) at,
        );
    }
    let seen: [u64; 11] = core::array::from_fn(|i| SEEN[i].load(SeqCst));
    let [addr, _, _, _, f_rip, f_rflags, f_rsp, f_vector, f_error, ..] = seen;
    ensure!(
        f_vector == u64::from(vector::UD) && f_error == 0,
        "with DF set the #UD frame holds vector {f_vector:#x}, error code {f_error:#x}: it was not written as a frame"
    );
    let want = ((rsp - RED_ZONE) & !15) - core::mem::size_of::<TrapFrame>() as u64;
    ensure!(
        addr == want,
        "with DF set the frame is at {addr:#x}, expected {want:#x}"
    );
    ensure!(
        f_rip == at && f_rsp == rsp,
        "with DF set the frame says rip {f_rip:#x} rsp {f_rsp:#x}, expected {at:#x} {rsp:#x}"
    );
    ensure!(
        f_rflags & RFLAGS_DF != 0,
        "the frame's rflags {f_rflags:#x} lost the interrupted DF"
    );
    ok()
}

/// Spin with RFLAGS.DF set long enough for timer interrupts and slice ends
/// to enter the hypervisor from this guest, then check that hypercalls
/// still copy correctly and the domain is intact.
pub fn df_interrupt() -> PropResult {
    // SAFETY: a register-only countdown with DF set; DF is cleared before
    // any compiled code runs again. rcx is declared clobbered.
    unsafe {
        core::arch::asm!(
            "std",
            "4:",
            "dec rcx",
            "jnz 4b",
            "cld",
            inout("rcx") 200_000_000u64 => _,
            options(nomem, nostack),
        );
    }
    let si = oxen_guest_sdk::start_info();
    let mi = accepted("memory_info", oxen_guest_sdk::hypercall::memory_info())?;
    ensure!(
        (mi.tot_pages, mi.max_pages, mi.physmap_va) == (si.nr_pages, si.max_pages, si.physmap_va),
        "after running with DF set memory_info reads {} / {} / {:#x}, start_info {} / {} / {:#x}",
        mi.tot_pages,
        mi.max_pages,
        mi.physmap_va,
        si.nr_pages,
        si.max_pages,
        si.physmap_va
    );
    ok()
}

/// An exception with no handler while RFLAGS.DF is set: the hypervisor
/// must crash the domain as it would with DF clear — cleanly, with its
/// report intact, and nothing else hurt (its crash path formats the report
/// with string copies that run backwards if it inherits the guest's DF).
pub fn df_crash() -> PropResult {
    crate::framework::expecting_crash();
    // SAFETY: `ud2` with no handler registered must crash the domain; were
    // it to come back, DF is cleared before any compiled code runs.
    unsafe { core::arch::asm!("std", "ud2", "cld", options(nomem, nostack)) };
    Err(alloc::string::String::from("still alive"))
}
