//! Privileged instructions at CPL 3: each must fault, and the fault must be
//! reflected to the guest's own handler exactly (the vector the CPU raises,
//! error code 0, `rip` at the instruction), never emulated and never fatal
//! to anything but, without a handler, the guest. One property per
//! instruction; `iret-iopl` checks that a guest cannot give itself the
//! I/O privilege level that would let `cli` and `in`/`out` run.

use oxen_guest_sdk::dom0_abi::{Hypercall, IretFrame, RFLAGS_IF, vector};

use crate::framework::{Pass, PropResult, ok};
use crate::lowlevel::{Probed, cpuid, install_probes, rflags};

/// #GP only.
const GP: &[u8] = &[vector::GP];
/// RFLAGS.IOPL (Intel SDM Vol.1 3.4.3.3).
const RFLAGS_IOPL: u64 = 3 << 12;
/// RFLAGS bits a guest must never hold: IOPL, NT, RF, VM, AC, VIF, VIP.
const RFLAGS_FORBIDDEN: u64 = RFLAGS_IOPL | (1 << 14) | (1 << 16) | (1 << 17) | (1 << 18) | (3 << 19);

/// Check that the probed instruction was reflected as one of `vectors`.
fn reflected(what: &str, probed: Probed, vectors: &[u8]) -> PropResult {
    probed.reflected(what, vectors)?;
    ok()
}

/// Define a property that probes one privileged instruction.
macro_rules! privileged {
    ($(#[$doc:meta])* $name:ident, $what:literal, $vectors:expr, [$($setup:literal),*] $insn:literal) => {
        $(#[$doc])*
        pub fn $name() -> PropResult {
            install_probes()?;
            // SAFETY: (1) at CPL 3 the instruction faults (Intel SDM Vol.2,
            // the instruction's "Protected Mode Exceptions": #GP(0) when CPL
            // > 0, or for I/O when CPL > IOPL), and the probe handler
            // resumes after it with every register restored; (2) the
            // sequence uses rax, rcx and rdx only and does not move rsp.
            // Were the hypervisor to let it run, the property fails, and
            // the operands are harmless values.
            let probed = unsafe { probe_at!(0u64; [$($setup),*] $insn) };
            reflected($what, probed, $vectors)
        }
    };
}

/// `cli` must fault, and leave interrupts (RFLAGS.IF) on.
pub fn cli() -> PropResult {
    install_probes()?;
    // SAFETY: as in `privileged!`: #GP(0) at CPL 3 with IOPL 0.
    let probed = unsafe { probe_at!(0u64; [] "cli") };
    probed.reflected("cli", GP)?;
    ensure!(
        rflags() & RFLAGS_IF != 0,
        "cli faulted, but RFLAGS.IF is now clear"
    );
    ok()
}

privileged!(
    /// `sti` must fault.
    sti, "sti", GP, [] "sti"
);
privileged!(
    /// `hlt` must fault.
    hlt, "hlt", GP, [] "hlt"
);
privileged!(
    /// `mov rax, cr3` must fault.
    read_cr3, "mov rax, cr3", GP, [] "mov rax, cr3"
);
privileged!(
    /// `mov cr3, rax` must fault.
    write_cr3, "mov cr3, rax", GP, ["xor eax, eax"] "mov cr3, rax"
);
privileged!(
    /// `mov rax, cr0` must fault.
    read_cr0, "mov rax, cr0", GP, [] "mov rax, cr0"
);
privileged!(
    /// `mov cr0, rax` (clearing PG and PE) must fault.
    write_cr0, "mov cr0, rax", GP, ["xor eax, eax"] "mov cr0, rax"
);
privileged!(
    /// `mov rax, dr7` must fault.
    read_dr7, "mov rax, dr7", GP, [] "mov rax, dr7"
);
privileged!(
    /// `wrmsr` to IA32_LSTAR (the hypervisor's syscall entry) must fault.
    wrmsr, "wrmsr IA32_LSTAR", GP, ["mov ecx, 0xc0000082", "xor eax, eax", "xor edx, edx"] "wrmsr"
);
privileged!(
    /// `rdmsr` of IA32_EFER must fault.
    rdmsr, "rdmsr IA32_EFER", GP, ["mov ecx, 0xc0000080"] "rdmsr"
);
privileged!(
    /// `in al, dx` from the serial port must fault.
    port_in, "in al, dx (port 0x3f8)", GP, ["mov edx, 0x3f8"] "in al, dx"
);
privileged!(
    /// `out dx, al` to the debug-exit port (which would end QEMU) must fault.
    port_out, "out dx, al (port 0xf4)", GP, ["mov edx, 0xf4", "mov eax, 0x11"] "out dx, al"
);
privileged!(
    /// `lgdt` must fault.
    lgdt, "lgdt", GP, ["lea rax, [rip + 2f]"] "lgdt [rax]"
);
privileged!(
    /// `lidt` must fault.
    lidt, "lidt", GP, ["lea rax, [rip + 2f]"] "lidt [rax]"
);
privileged!(
    /// `ltr` must fault.
    ltr, "ltr", GP, ["xor eax, eax"] "ltr ax"
);
privileged!(
    /// `invlpg` must fault.
    invlpg, "invlpg", GP, ["mov eax, 0x400000"] "invlpg [rax]"
);
privileged!(
    /// `swapgs` must fault.
    swapgs, "swapgs", GP, [] "swapgs"
);
privileged!(
    /// `wbinvd` must fault.
    wbinvd, "wbinvd", GP, [] "wbinvd"
);
privileged!(
    /// `clts` must fault.
    clts, "clts", GP, [] "clts"
);

/// `xsetbv` must fault with #GP(0). Without XSAVE (CPUID.1:ECX bit 26) the
/// instruction does not exist and is only #UD, so there is nothing to check.
pub fn xsetbv() -> PropResult {
    const XSAVE: u32 = 1 << 26;
    if cpuid(1, 0).2 & XSAVE == 0 {
        return Ok(Pass::Skip(
            "CPU lacks XSAVE, so xsetbv is an undefined opcode".into(),
        ));
    }
    install_probes()?;
    // SAFETY: as in `privileged!`: #GP(0) at CPL 3 (Intel SDM Vol.2C XSETBV);
    // were it to run, XCR0 = x87|SSE is a valid value.
    let probed = unsafe { probe_at!(0u64; ["xor ecx, ecx", "mov eax, 3", "xor edx, edx"] "xsetbv") };
    reflected("xsetbv", probed, GP)
}

/// An `iret` hypercall whose frame asks for IOPL 3 (and NT, RF, VM, AC)
/// must resume with none of them: RFLAGS is sanitised, so `cli` and `in`
/// still fault afterwards.
pub fn iret_iopl() -> PropResult {
    install_probes()?;
    // Everything a guest must never hold, plus IF; not TF or DF, which a
    // guest may set (they would only make this check trap or copy backwards).
    let mut frame = IretFrame {
        rflags: RFLAGS_FORBIDDEN | RFLAGS_IF,
        ..IretFrame::default()
    };
    let flags: u64;
    // SAFETY: the `iret` hypercall resumes at `2:` with rsp as it was
    // before the switch (stored in the frame), rax/rcx/r11 from the frame
    // (declared clobbered) and every other register untouched (dom0_abi
    // `trap.rs`). `frame` is a live local the hypervisor only reads.
    unsafe {
        core::arch::asm!(
            "lea rax, [rip + 2f]",
            "mov qword ptr [{f} + 24], rax",
            "mov qword ptr [{f} + 40], rsp",
            "mov r12, rsp",
            "mov rsp, {f}",
            "mov eax, {iret}",
            "syscall",
            "2:",
            "mov rsp, r12",
            "pushfq",
            "pop {flags}",
            f = in(reg) &raw mut frame,
            iret = const Hypercall::Iret as u64,
            flags = lateout(reg) flags,
            out("rax") _,
            out("rcx") _,
            out("r11") _,
            out("r12") _,
        );
    }
    ensure!(
        flags & RFLAGS_FORBIDDEN == 0,
        "iret asking for IOPL/NT/RF/VM/AC/VIF/VIP resumed with RFLAGS {flags:#x}: they must be clear"
    );
    ensure!(
        flags & RFLAGS_IF != 0,
        "iret resumed with IF clear (RFLAGS {flags:#x})"
    );
    // SAFETY: as in `privileged!`: #GP(0) at CPL 3 with IOPL 0.
    let probed = unsafe { probe_at!(0u64; [] "cli") };
    probed.reflected("cli after iret asked for IOPL 3", GP)?;
    // SAFETY: as above; `in` from port 0x80 (POST codes) has no effect.
    let probed = unsafe { probe_at!(0u64; ["mov edx, 0x80"] "in al, dx") };
    probed.reflected("in after iret asked for IOPL 3", GP)?;
    ok()
}
