//! Faults a guest takes: reflected to the handler it registered, on its own
//! stack, as a `TrapFrame` (dom0-abi `trap.rs`); with no handler, or a stack
//! that cannot take the frame, the domain crashes with a report. Nothing a
//! guest does here can fault the hypervisor: the frame is written through
//! the checked guest accessor.

use crate::arch::idt::vector_name;
use crate::arch::uaccess;
use crate::domain::DomainTable;
use dom0_abi::{DomId, EVENT_VECTOR, GUEST_VA_LIMIT, IretFrame, RED_ZONE, TrapFrame};
use zerocopy::IntoBytes;

/// RFLAGS.TF, the single-step flag.
const RFLAGS_TF: u64 = 1 << 8;

/// Deliver exception `vector` of vCPU `v` of domain `id`, or crash it.
pub fn guest_exception(table: &mut DomainTable, id: DomId, v: usize, vector: u64, error_code: u64, cr2: u64) {
    let Some(vcpu) = table.get_mut(id).and_then(|d| d.vcpus.get_mut(v)) else {
        return;
    };
    let (short, long) = vector_name(vector);
    let regs = &mut vcpu.regs;
    let (rip, rsp) = (regs.rip, regs.rsp);
    let handler = usize::try_from(vector)
        .ok()
        .and_then(|i| vcpu.trap_table.get(i))
        .copied()
        .unwrap_or(0);
    let detail = |what: &str| {
        alloc::format!(
            "{short} ({long}) at rip {rip:#x}, error code {error_code:#x}{}, vcpu {v}: {what}",
            if vector == 14 {
                alloc::format!(", address {cr2:#x}")
            } else {
                alloc::string::String::new()
            }
        )
    };
    if handler == 0 {
        let why = detail("no handler registered");
        table.crash(id, format_args!("{why}"));
        return;
    }
    if !push_frame(
        table,
        id,
        v,
        vector,
        error_code,
        if vector == 14 { cr2 } else { 0 },
        handler,
    ) {
        let why = detail(&alloc::format!(
            "cannot deliver it: the guest stack at {rsp:#x} cannot take the frame"
        ));
        table.crash(id, format_args!("{why}"));
    }
}

/// Write a `TrapFrame` for `vector` below vCPU `v`'s stack and point it at
/// `handler`; `false` (and nothing changed) if the stack cannot take it.
/// The guest's address space must be the loaded one.
pub fn push_frame(
    table: &mut DomainTable,
    id: DomId,
    v: usize,
    vector: u64,
    error_code: u64,
    fault_addr: u64,
    handler: u64,
) -> bool {
    let Some(vcpu) = table.get_mut(id).and_then(|d| d.vcpus.get_mut(v)) else {
        return false;
    };
    let regs = &mut vcpu.regs;
    let frame = TrapFrame {
        iret: IretFrame {
            rax: regs.rax,
            rcx: regs.rcx,
            r11: regs.r11,
            rip: regs.rip,
            rflags: regs.rflags,
            rsp: regs.rsp,
        },
        vector,
        error_code,
        fault_addr,
        reserved: 0,
    };
    let size = core::mem::size_of::<TrapFrame>() as u64;
    let target = regs
        .rsp
        .checked_sub(RED_ZONE)
        .map(|top| top & !15)
        .and_then(|top| top.checked_sub(size))
        .filter(|base| *base + size <= GUEST_VA_LIMIT);
    match target {
        Some(base) if uaccess::copy_to_guest(base, frame.as_bytes()).is_ok() => {
            regs.rsp = base;
            regs.rip = handler;
            regs.vector = 0;
            // As the CPU does when it delivers an exception through the
            // IDT: the handler starts with TF clear (Intel SDM Vol.3A
            // 7.12.1.3), or single-stepping would trap in the handler too.
            regs.rflags &= !RFLAGS_TF;
            true
        }
        _ => {
            if vector == EVENT_VECTOR {
                let rsp = regs.rsp;
                table.crash(
                    id,
                    format_args!(
                        "cannot deliver an event upcall: the guest stack at {rsp:#x} cannot take the frame"
                    ),
                );
            }
            false
        }
    }
}
