//! Scheduling hypercalls with arguments: `sched_shutdown` (a domain stops
//! itself with a reason) and `sched_poll` (wait for given ports, with a
//! timeout). `sched_yield` and `sched_block` are handled by the run loop.

use super::{Caller, Flow};
use crate::arch::uaccess;
use crate::domain::vcpu::Poll;
use alloc::vec;
use dom0_abi::{POLL_PORTS_MAX, ShutdownReason, Status};

/// Stop the calling domain.
pub fn shutdown(c: &mut Caller<'_>, reason: u64) -> Flow {
    match ShutdownReason::try_from(reason) {
        Ok(reason) => {
            c.table.shutdown(c.dom, reason);
            Flow::Stopped
        }
        Err(_) => Flow::Return(Err(Status::EINVAL)),
    }
}

/// `sched_poll(ports, count, timeout_ns)`: 1 at once if one is pending,
/// else wait (the run loop ends the wait with 1 on an event, 0 on timeout).
pub fn poll(c: &mut Caller<'_>, ports_va: u64, count: u64, timeout_ns: u64) -> Flow {
    match check_poll(c, ports_va, count, timeout_ns) {
        Ok(flow) => flow,
        Err(e) => Flow::Return(Err(e)),
    }
}

fn check_poll(c: &mut Caller<'_>, ports_va: u64, count: u64, timeout_ns: u64) -> Result<Flow, Status> {
    if count == 0 || count > POLL_PORTS_MAX {
        return Err(Status::EINVAL);
    }
    let mut bytes = vec![0u8; count as usize * 4];
    uaccess::copy_from_guest(&mut bytes, ports_va)?;
    let ports: vec::Vec<u32> = bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let v = c.vcpu;
    let dom = c.domain();
    for &port in &ports {
        dom.events.get(port)?;
    }
    if ports.iter().any(|&p| dom.shared.is_pending(p)) {
        return Ok(Flow::Return(Ok(1)));
    }
    let deadline_ns = if timeout_ns == 0 {
        0
    } else {
        crate::time::now_ns().saturating_add(timeout_ns).max(1)
    };
    let vcpu = &mut dom.vcpus[v];
    vcpu.poll = Some(Poll { ports, deadline_ns });
    vcpu.blocked = true;
    vcpu.regs.rax = 0;
    if deadline_ns != 0 {
        crate::sched::note_deadline(deadline_ns);
    }
    Ok(Flow::Wait)
}
