//! vCPU hypercalls: the trap table, the event callback, and `iret`, which
//! returns from a trap handler to the context in its frame.

use super::{Caller, Flow, read_guest};
use crate::arch::uaccess;
use crate::domain::vcpu::guest_rflags;
use alloc::vec;
use dom0_abi::{GUEST_VA_LIMIT, IretFrame, Status, TRAP_TABLE_MAX, TrapEntry, trap_vector_allowed};
use zerocopy::FromBytes;

/// Replace the trap table with `count` entries at `table` (0 clears it).
pub fn set_trap_table(c: &mut Caller<'_>, table: u64, count: u64) -> Result<u64, Status> {
    if count > TRAP_TABLE_MAX {
        return Err(Status::E2BIG);
    }
    let entry_size = core::mem::size_of::<TrapEntry>() as u64;
    let mut bytes = vec![0u8; (count * entry_size) as usize];
    uaccess::copy_from_guest(&mut bytes, table)?;
    let mut new = [0u64; TRAP_TABLE_MAX as usize];
    let mut seen = [false; TRAP_TABLE_MAX as usize];
    for chunk in bytes.chunks_exact(entry_size as usize) {
        let e = TrapEntry::read_from_bytes(chunk).map_err(|_| Status::EINVAL)?;
        let slot = usize::from(e.vector);
        if e.flags != 0
            || e.pad != [0; 6]
            || !trap_vector_allowed(e.vector)
            || slot >= new.len()
            || seen[slot]
        {
            return Err(Status::EINVAL);
        }
        if e.handler >= GUEST_VA_LIMIT {
            return Err(Status::EINVAL);
        }
        seen[slot] = true;
        new[slot] = e.handler;
    }
    let v = c.vcpu;
    c.domain().vcpus[v].trap_table = new;
    Ok(0)
}

/// Set the event upcall entry (flags must be 0).
pub fn set_callbacks(c: &mut Caller<'_>, handler: u64, flags: u64) -> Result<u64, Status> {
    if flags != 0 || handler >= GUEST_VA_LIMIT {
        return Err(Status::EINVAL);
    }
    let v = c.vcpu;
    c.domain().vcpus[v].event_callback = handler;
    Ok(0)
}

/// Resume the context in the `IretFrame` at the caller's stack pointer. A
/// frame that cannot be read or names a non-canonical or upper-half target
/// crashes the domain: there is nothing sane to return to.
pub fn iret(c: &mut Caller<'_>) -> Flow {
    let v = c.vcpu;
    let rsp = c.domain().vcpus[v].regs.rsp;
    let frame: IretFrame = match read_guest(rsp) {
        Ok(f) => f,
        Err(_) => {
            c.table
                .crash(c.dom, format_args!("iret: the frame at {rsp:#x} cannot be read"));
            return Flow::Stopped;
        }
    };
    if frame.rip >= GUEST_VA_LIMIT || frame.rsp >= GUEST_VA_LIMIT {
        c.table.crash(
            c.dom,
            format_args!(
                "iret: corrupt frame at {rsp:#x} (rip {:#x}, rsp {:#x})",
                frame.rip, frame.rsp
            ),
        );
        return Flow::Stopped;
    }
    let regs = &mut c.domain().vcpus[v].regs;
    regs.rax = frame.rax;
    regs.rcx = frame.rcx;
    regs.r11 = frame.r11;
    regs.rip = frame.rip;
    regs.rflags = guest_rflags(frame.rflags);
    regs.rsp = frame.rsp;
    Flow::Resume
}

/// `vcpu_set_timer(deadline_ns)`: 0 cancels; the run loop raises
/// `VIRQ_TIMER` once system time reaches it.
pub fn set_timer(c: &mut Caller<'_>, deadline_ns: u64) -> Result<u64, Status> {
    let v = c.vcpu;
    c.domain().vcpus[v].timer_deadline_ns = deadline_ns;
    if deadline_ns != 0 {
        crate::sched::note_deadline(deadline_ns);
    }
    Ok(0)
}
