//! Event-channel hypercalls: thin argument decoding over `crate::event`,
//! which checks and applies them.

use super::{Caller, write_guest};
use crate::event;
use dom0_abi::Status;

/// `evtchn_alloc_unbound(remote)`.
pub fn alloc_unbound(c: &mut Caller<'_>, remote: u64) -> Result<u64, Status> {
    event::alloc_unbound(c.table, c.dom, remote).map(u64::from)
}

/// `evtchn_bind_interdomain(remote, rport)`.
pub fn bind_interdomain(c: &mut Caller<'_>, remote: u64, rport: u64) -> Result<u64, Status> {
    event::bind_interdomain(c.table, c.dom, remote, rport).map(u64::from)
}

/// `evtchn_bind_virq(virq, vcpu)`.
pub fn bind_virq(c: &mut Caller<'_>, virq: u64, vcpu: u64) -> Result<u64, Status> {
    event::bind_virq(c.table, c.dom, virq, vcpu).map(u64::from)
}

/// `evtchn_bind_ipi(vcpu)`.
pub fn bind_ipi(c: &mut Caller<'_>, vcpu: u64) -> Result<u64, Status> {
    event::bind_ipi(c.table, c.dom, vcpu).map(u64::from)
}

/// `evtchn_send(port)`.
pub fn send(c: &mut Caller<'_>, port: u64) -> Result<u64, Status> {
    event::send(c.table, c.dom, port)
}

/// `evtchn_close(port)`.
pub fn close(c: &mut Caller<'_>, port: u64) -> Result<u64, Status> {
    event::close(c.table, c.dom, port)
}

/// `evtchn_unmask(port)`.
pub fn unmask(c: &mut Caller<'_>, port: u64) -> Result<u64, Status> {
    event::unmask(c.table, c.dom, port)
}

/// `evtchn_status(port, out)`.
pub fn status(c: &mut Caller<'_>, port: u64, out: u64) -> Result<u64, Status> {
    let s = event::status(c.table, c.dom, port)?;
    write_guest(out, &s)?;
    Ok(0)
}
