//! Faults a guest takes: reflected to the handler it registered, on its own
//! stack, as a `TrapFrame` (dom0-abi `trap.rs`); with no handler, or a stack
//! that cannot take the frame, the domain crashes with a report. Nothing a
//! guest does here can fault the hypervisor: the frame is written through
//! the checked guest accessor.

use crate::arch::idt::vector_name;
use crate::arch::uaccess;
use crate::domain::DomainTable;
use dom0_abi::{DomId, GUEST_VA_LIMIT, IretFrame, RED_ZONE, TrapFrame};
use zerocopy::IntoBytes;

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
    let frame = TrapFrame {
        iret: IretFrame {
            rax: regs.rax,
            rcx: regs.rcx,
            r11: regs.r11,
            rip,
            rflags: regs.rflags,
            rsp,
        },
        vector,
        error_code,
        fault_addr: if vector == 14 { cr2 } else { 0 },
        reserved: 0,
    };
    let size = core::mem::size_of::<TrapFrame>() as u64;
    let target = rsp
        .checked_sub(RED_ZONE)
        .map(|top| top & !15)
        .and_then(|top| top.checked_sub(size))
        .filter(|base| *base + size <= GUEST_VA_LIMIT);
    let delivered = target.is_some_and(|base| uaccess::copy_to_guest(base, frame.as_bytes()).is_ok());
    match target {
        Some(base) if delivered => {
            regs.rsp = base;
            regs.rip = handler;
            regs.vector = 0;
        }
        _ => {
            let why = detail(&alloc::format!(
                "cannot deliver it: the guest stack at {rsp:#x} cannot take the frame"
            ));
            table.crash(id, format_args!("{why}"));
        }
    }
}
