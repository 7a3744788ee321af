//! Event channels as a hostile domU sees them: binding to domains that do
//! not exist, ports out of range (including ones whose low 32 bits name a
//! real port), double binds, sends on closed and on half-closed channels,
//! dom0's VIRQs, ports not offered to us, port exhaustion and bad
//! `sched_poll` arguments. Each refusal has its own status, and a refused
//! call leaves the port table as it was.

use alloc::format;
use alloc::vec::Vec;
use oxen_guest_sdk::dom0_abi::{
    DOMID_MAX, DOMID_SELF, EVTCHN_CLOSED, EVTCHN_IPI, EVTCHN_PORTS, EVTCHN_UNBOUND, Hypercall, Virq,
};
use oxen_guest_sdk::{Status, hypercall};

use crate::framework::{PropResult, accepted, ok, raw, refused};
use crate::lowlevel::{clear_pending, install_probes, is_pending, quiet_events};

/// Port numbers out of range, with wide ones whose low 32 bits name `real`.
fn bad_ports(real: u32) -> [u64; 7] {
    let wide = (1u64 << 32) | u64::from(real);
    [0, 4096, 4097, u64::from(u32::MAX), 1 << 32, wide, u64::MAX]
}

/// Ports allocated now (the runtime may hold some of its own).
fn allocated() -> usize {
    (1..EVTCHN_PORTS)
        .filter_map(|p| u32::try_from(p).ok())
        .filter(|&p| hypercall::evtchn_status(p).is_ok_and(|s| s.state != EVTCHN_CLOSED))
        .count()
}

/// Binding to, or allocating for, a domain that does not exist is `ESRCH`;
/// a domain ID wider than 16 bits is `EINVAL`.
pub fn missing_domain() -> PropResult {
    quiet_events()?;
    for dom in [0x7fe0u16, DOMID_MAX, 0x7ff1, 0x7fff] {
        let r = hypercall::evtchn_alloc_unbound(dom);
        refused(&format!("alloc_unbound for domain {dom:#x}"), r, Status::ESRCH)?;
        let r = hypercall::evtchn_bind_interdomain(dom, 1);
        refused(&format!("bind_interdomain to domain {dom:#x}"), r, Status::ESRCH)?;
    }
    for wide in [1u64 << 16, (1 << 16) | u64::from(DOMID_SELF), u64::MAX] {
        // SAFETY: no pointer arguments.
        let r = unsafe { raw(Hypercall::EvtchnAllocUnbound as u64, [wide, 0, 0, 0, 0, 0]) };
        refused(&format!("alloc_unbound for domain {wide:#x}"), r, Status::EINVAL)?;
        // SAFETY: no pointer arguments.
        let r = unsafe { raw(Hypercall::EvtchnBindInterdomain as u64, [wide, 1, 0, 0, 0, 0]) };
        refused(
            &format!("bind_interdomain to domain {wide:#x}"),
            r,
            Status::EINVAL,
        )?;
    }
    ok()
}

/// Ports out of range are `EINVAL` for send, close, unmask and status, and
/// a wide port number is not truncated onto a real one.
pub fn port_range() -> PropResult {
    quiet_events()?;
    install_probes()?;
    let ipi = accepted("bind_ipi", hypercall::evtchn_bind_ipi(0))?;
    let mut out = [0u64; 4];
    let o = out.as_mut_ptr() as u64;
    for port in bad_ports(ipi) {
        for (name, nr) in [
            ("send", Hypercall::EvtchnSend),
            ("close", Hypercall::EvtchnClose),
            ("unmask", Hypercall::EvtchnUnmask),
            ("status", Hypercall::EvtchnStatus),
        ] {
            // SAFETY: only `status` writes, one EvtchnStatus into `out`.
            let r = unsafe { raw(nr as u64, [port, o, 0, 0, 0, 0]) };
            refused(&format!("evtchn_{name}({port:#x})"), r, Status::EINVAL)?;
        }
    }
    let s = accepted("evtchn_status", hypercall::evtchn_status(ipi))?;
    ensure!(
        s.state == EVTCHN_IPI,
        "port {ipi} is in state {} after the refused calls, expected IPI",
        s.state
    );
    ok()
}

/// A VIRQ bound twice on one vCPU is `EEXIST`; a VIRQ that does not exist
/// or a vCPU that does not exist is `EINVAL`; closing frees the VIRQ.
pub fn virq_twice() -> PropResult {
    quiet_events()?;
    let timer = accepted("bind VIRQ_TIMER", hypercall::evtchn_bind_virq(Virq::Timer, 0))?;
    refused(
        "bind VIRQ_TIMER again",
        hypercall::evtchn_bind_virq(Virq::Timer, 0),
        Status::EEXIST,
    )?;
    // The SDK runtime binds VIRQ_CONTROL at start; bind it here if it did not.
    match hypercall::evtchn_bind_virq(Virq::Control, 0) {
        Ok(_) | Err(Status::EEXIST) => {}
        Err(e) => return Err(format!("bind VIRQ_CONTROL: {e}")),
    }
    refused(
        "bind VIRQ_CONTROL again",
        hypercall::evtchn_bind_virq(Virq::Control, 0),
        Status::EEXIST,
    )?;
    for vcpu in [1u32, 7, 8, u32::MAX] {
        let r = hypercall::evtchn_bind_virq(Virq::Timer, vcpu);
        refused(&format!("bind VIRQ_TIMER on vCPU {vcpu}"), r, Status::EINVAL)?;
    }
    for virq in [4u64, 5, 1 << 32, u64::MAX] {
        // SAFETY: no pointer arguments.
        let r = unsafe { raw(Hypercall::EvtchnBindVirq as u64, [virq, 0, 0, 0, 0, 0]) };
        refused(&format!("bind VIRQ {virq:#x}"), r, Status::EINVAL)?;
    }
    accepted("close the timer port", hypercall::evtchn_close(timer))?;
    accepted(
        "bind VIRQ_TIMER after closing it",
        hypercall::evtchn_bind_virq(Virq::Timer, 0),
    )?;
    ok()
}

/// Sending on, closing or unmasking a closed port is `EINVAL`; its status
/// says closed; sending on a VIRQ port is `EINVAL`.
pub fn send_closed() -> PropResult {
    quiet_events()?;
    let port = accepted("bind_ipi", hypercall::evtchn_bind_ipi(0))?;
    accepted("close", hypercall::evtchn_close(port))?;
    refused(
        "send on the closed port",
        hypercall::evtchn_send(port),
        Status::EINVAL,
    )?;
    refused("close it again", hypercall::evtchn_close(port), Status::EINVAL)?;
    refused("unmask it", hypercall::evtchn_unmask(port), Status::EINVAL)?;
    let s = accepted("status of the closed port", hypercall::evtchn_status(port))?;
    ensure!(s.state == EVTCHN_CLOSED, "a closed port has state {}", s.state);
    refused(
        "send on a port never allocated",
        hypercall::evtchn_send(4000),
        Status::EINVAL,
    )?;
    let timer = accepted("bind VIRQ_TIMER", hypercall::evtchn_bind_virq(Virq::Timer, 0))?;
    refused(
        "send on a VIRQ port",
        hypercall::evtchn_send(timer),
        Status::EINVAL,
    )?;
    ok()
}

/// Once the far end of an interdomain channel closes, our end is unbound:
/// a send on it is `ENOTCONN` (and so is a send on a port never bound),
/// and the close marked it pending so a waiter would wake.
pub fn peer_closed() -> PropResult {
    quiet_events()?;
    let a = accepted("alloc_unbound(SELF)", hypercall::evtchn_alloc_unbound(DOMID_SELF))?;
    let b = accepted(
        "bind_interdomain(SELF, a)",
        hypercall::evtchn_bind_interdomain(DOMID_SELF, a),
    )?;
    accepted("send a -> b", hypercall::evtchn_send(a))?;
    ensure!(is_pending(b), "a send on the loopback channel left b not pending");
    clear_pending(b);
    clear_pending(a);
    accepted("close b", hypercall::evtchn_close(b))?;
    ensure!(is_pending(a), "closing b did not mark a pending");
    let s = accepted("status of a", hypercall::evtchn_status(a))?;
    ensure!(
        s.state == EVTCHN_UNBOUND,
        "after its peer closed, a has state {}",
        s.state
    );
    refused(
        "send on a after its peer closed",
        hypercall::evtchn_send(a),
        Status::ENOTCONN,
    )?;
    let offered = accepted("alloc_unbound(dom0)", hypercall::evtchn_alloc_unbound(0))?;
    refused(
        "send on an unbound port",
        hypercall::evtchn_send(offered),
        Status::ENOTCONN,
    )?;
    ok()
}

/// A domU cannot bind dom0's VIRQs (console input, domain exceptions).
pub fn dom0_virqs() -> PropResult {
    quiet_events()?;
    refused(
        "bind VIRQ_CONSOLE",
        hypercall::evtchn_bind_virq(Virq::Console, 0),
        Status::EPERM,
    )?;
    refused(
        "bind VIRQ_DOM_EXC",
        hypercall::evtchn_bind_virq(Virq::DomExc, 0),
        Status::EPERM,
    )?;
    ok()
}

/// `bind_interdomain` succeeds only on a port its owner offered to us:
/// dom0's ports, a port we offered to dom0, an IPI or VIRQ port, and a
/// port already connected are all `EINVAL`.
pub fn not_offered() -> PropResult {
    quiet_events()?;
    for port in 1..=16 {
        let r = hypercall::evtchn_bind_interdomain(0, port);
        refused(&format!("bind to dom0's port {port}"), r, Status::EINVAL)?;
    }
    let to_dom0 = accepted("alloc_unbound(dom0)", hypercall::evtchn_alloc_unbound(0))?;
    let ipi = accepted("bind_ipi", hypercall::evtchn_bind_ipi(0))?;
    let timer = accepted("bind VIRQ_TIMER", hypercall::evtchn_bind_virq(Virq::Timer, 0))?;
    let a = accepted("alloc_unbound(SELF)", hypercall::evtchn_alloc_unbound(DOMID_SELF))?;
    accepted(
        "bind_interdomain(SELF, a)",
        hypercall::evtchn_bind_interdomain(DOMID_SELF, a),
    )?;
    for (what, port) in [
        ("a port offered to dom0", to_dom0),
        ("an IPI port", ipi),
        ("a VIRQ port", timer),
        ("a port already connected", a),
        ("a port never allocated", 4000),
    ] {
        let r = hypercall::evtchn_bind_interdomain(DOMID_SELF, port);
        refused(&format!("bind to {what} ({port})"), r, Status::EINVAL)?;
    }
    ok()
}

/// Allocating ports until the table is full ends in `ENOMEM` once all
/// `EVTCHN_PORTS - 1` ports are in use (port 0 is never used), and closing
/// them makes them usable again.
pub fn exhaust() -> PropResult {
    quiet_events()?;
    let before = allocated();
    let mut ports = Vec::new();
    let limit = EVTCHN_PORTS + 16;
    let end = loop {
        match hypercall::evtchn_alloc_unbound(DOMID_SELF) {
            Ok(p) => ports.push(p),
            Err(e) => break e,
        }
        ensure!(
            ports.len() <= limit,
            "allocated {} ports without running out",
            ports.len()
        );
    };
    ensure!(
        end == Status::ENOMEM,
        "running out of ports gave {}, expected ENOMEM",
        end.name()
    );
    ensure!(
        before + ports.len() == EVTCHN_PORTS - 1,
        "{} ports allocated before ENOMEM ({before} in use before), expected {}",
        ports.len(),
        EVTCHN_PORTS - 1 - before
    );
    ensure!(
        ports.iter().all(|&p| p != 0 && (p as usize) < EVTCHN_PORTS),
        "a port outside 1..{EVTCHN_PORTS} was handed out"
    );
    for &p in &ports {
        accepted(&format!("close port {p}"), hypercall::evtchn_close(p))?;
    }
    accepted(
        "alloc after closing them all",
        hypercall::evtchn_alloc_unbound(DOMID_SELF),
    )?;
    ensure!(
        allocated() == before + 1,
        "closing every port left some allocated"
    );
    ok()
}

/// `sched_poll` refuses no ports, too many, ports that are not ours or out
/// of range (`EINVAL`) and an unreadable port list (`EFAULT`); on a port
/// of ours it returns at once when it is pending and times out otherwise.
pub fn poll_args() -> PropResult {
    quiet_events()?;
    let ipi = accepted("bind_ipi", hypercall::evtchn_bind_ipi(0))?;
    let many = [ipi; 129];
    refused("poll on no ports", hypercall::sched_poll(&[], 1), Status::EINVAL)?;
    refused(
        "poll on 129 ports",
        hypercall::sched_poll(&many, 1),
        Status::EINVAL,
    )?;
    for bad in [0u32, 4000, 4096, u32::MAX] {
        let r = hypercall::sched_poll(&[ipi, bad], 1_000_000);
        refused(&format!("poll on port {bad}"), r, Status::EINVAL)?;
    }
    // SAFETY: the port list is in the hypervisor's half: refused unread.
    let r = unsafe {
        raw(
            Hypercall::SchedPoll as u64,
            [crate::lowlevel::HV_DIRECT_MAP, 1, 1_000_000, 0, 0, 0],
        )
    };
    refused("poll with the port list in the hypervisor", r, Status::EFAULT)?;
    clear_pending(ipi);
    let r = accepted(
        "poll (1 ms) on an idle port",
        hypercall::sched_poll(&[ipi], 1_000_000),
    )?;
    ensure!(!r, "poll on an idle port reported it pending");
    accepted("send on the IPI port", hypercall::evtchn_send(ipi))?;
    let r = accepted(
        "poll on a pending port",
        hypercall::sched_poll(&[ipi], 1_000_000_000),
    )?;
    ensure!(r, "poll on a pending port timed out");
    let s = accepted("status", hypercall::evtchn_status(ipi))?;
    ensure!(s.state == EVTCHN_IPI, "the IPI port has state {}", s.state);
    ok()
}
