//! Event channels and virtual IRQs (dom0-abi `event.rs` states the
//! semantics): per-domain port tables, binding, sending, closing,
//! masking, and the marking of pending bits in the shared-info page that
//! wakes a vCPU and, unless masked, leads to an upcall (delivered by the
//! run loop, `sched`). Every argument is checked here: ports out of range,
//! double binds, missing or dying domains, a domU binding a VIRQ that is
//! dom0's.
#![deny(unsafe_code)]

use crate::domain::{DomainTable, State};
use alloc::vec::Vec;
use dom0_abi::{
    DOMID_SELF, DomId, EVTCHN_CLOSED, EVTCHN_INTERDOMAIN, EVTCHN_IPI, EVTCHN_PORTS, EVTCHN_UNBOUND,
    EVTCHN_VIRQ, EvtchnStatus, MAX_VCPUS, NR_VIRQS, Status, Virq,
};

/// What a port is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortState {
    /// Not allocated.
    Free,
    /// Offered to `remote`, not connected.
    Unbound {
        /// The domain that may bind.
        remote: DomId,
    },
    /// Connected.
    Interdomain {
        /// The far domain.
        remote: DomId,
        /// Its port.
        rport: u32,
    },
    /// Bound to a VIRQ.
    Virq(Virq),
    /// An IPI to the port's vCPU.
    Ipi,
}

/// One port.
#[derive(Clone, Copy, Debug)]
pub struct Port {
    /// What it is.
    pub state: PortState,
    /// The vCPU its events go to.
    pub vcpu: u32,
}

const FREE: Port = Port {
    state: PortState::Free,
    vcpu: 0,
};

/// A domain's ports.
#[derive(Debug)]
pub struct EventTable {
    ports: Vec<Port>,
    virqs: [[u32; NR_VIRQS as usize]; MAX_VCPUS],
}

impl Default for EventTable {
    fn default() -> Self {
        EventTable {
            ports: alloc::vec![FREE],
            virqs: [[0; NR_VIRQS as usize]; MAX_VCPUS],
        }
    }
}

impl EventTable {
    /// A free port for `state`: the lowest free number. The caller resets
    /// its pending and mask bits (`fresh`).
    fn alloc(&mut self, state: PortState, vcpu: u32) -> Result<u32, Status> {
        let index = match self.ports.iter().skip(1).position(|p| p.state == PortState::Free) {
            Some(i) => i + 1,
            None if self.ports.len() < EVTCHN_PORTS => {
                self.ports.push(FREE);
                self.ports.len() - 1
            }
            None => return Err(Status::ENOMEM),
        };
        self.ports[index] = Port { state, vcpu };
        u32::try_from(index).map_err(|_| Status::ENOMEM)
    }

    /// The port, if allocated.
    pub fn get(&self, port: u32) -> Result<Port, Status> {
        let p = usize::try_from(port)
            .ok()
            .and_then(|i| self.ports.get(i))
            .copied()
            .ok_or(Status::EINVAL)?;
        if port == 0 || p.state == PortState::Free {
            Err(Status::EINVAL)
        } else {
            Ok(p)
        }
    }

    fn set(&mut self, port: u32, p: Port) {
        if let Some(slot) = usize::try_from(port).ok().and_then(|i| self.ports.get_mut(i)) {
            *slot = p;
        }
    }

    /// The port bound to `virq` on vCPU `vcpu` (0: none).
    pub fn virq_port(&self, virq: Virq, vcpu: usize) -> u32 {
        self.virqs.get(vcpu).map_or(0, |v| v[virq as usize])
    }

    /// Every allocated port number.
    pub fn allocated(&self) -> impl Iterator<Item = u32> + '_ {
        self.ports
            .iter()
            .enumerate()
            .filter(|(i, p)| *i > 0 && p.state != PortState::Free)
            .filter_map(|(i, _)| u32::try_from(i).ok())
    }
}

/// Give a newly allocated port a clean slate in the shared page: not
/// pending, not masked (a port number may be reused after a close).
fn fresh(dom: &crate::domain::Domain, port: u32) -> u32 {
    dom.shared.clear_pending(port);
    dom.shared.unmask(port);
    port
}

fn resolve(caller: DomId, dom: u64) -> Result<DomId, Status> {
    match DomId::try_from(dom).map_err(|_| Status::EINVAL)? {
        DOMID_SELF => Ok(caller),
        d => Ok(d),
    }
}

fn live(t: &DomainTable, dom: DomId) -> Result<(), Status> {
    match t.get(dom) {
        Some(d) if d.state != State::Dying => Ok(()),
        _ => Err(Status::ESRCH),
    }
}

/// `evtchn_alloc_unbound(remote)`.
pub fn alloc_unbound(t: &mut DomainTable, caller: DomId, remote: u64) -> Result<u32, Status> {
    let remote = resolve(caller, remote)?;
    live(t, remote)?;
    let dom = t.get_mut(caller).ok_or(Status::ESRCH)?;
    let port = dom.events.alloc(PortState::Unbound { remote }, 0)?;
    Ok(fresh(dom, port))
}

/// `evtchn_bind_interdomain(remote, rport)`.
pub fn bind_interdomain(t: &mut DomainTable, caller: DomId, remote: u64, rport: u64) -> Result<u32, Status> {
    let remote = resolve(caller, remote)?;
    live(t, remote)?;
    let rport = u32::try_from(rport).map_err(|_| Status::EINVAL)?;
    let far = t.get(remote).ok_or(Status::ESRCH)?.events.get(rport)?;
    if far.state != (PortState::Unbound { remote: caller }) {
        return Err(Status::EINVAL);
    }
    let me = t.get_mut(caller).ok_or(Status::ESRCH)?;
    let lport = me.events.alloc(PortState::Interdomain { remote, rport }, 0)?;
    fresh(me, lport);
    let far_dom = t.get_mut(remote).ok_or(Status::ESRCH)?;
    far_dom.events.set(
        rport,
        Port {
            state: PortState::Interdomain {
                remote: caller,
                rport: lport,
            },
            vcpu: far.vcpu,
        },
    );
    Ok(lport)
}

/// `evtchn_bind_virq(virq, vcpu)`.
pub fn bind_virq(t: &mut DomainTable, caller: DomId, virq: u64, vcpu: u64) -> Result<u32, Status> {
    let virq = Virq::try_from(virq)?;
    let dom = t.get_mut(caller).ok_or(Status::ESRCH)?;
    let v = usize::try_from(vcpu).map_err(|_| Status::EINVAL)?;
    if v >= dom.vcpus.len() {
        return Err(Status::EINVAL);
    }
    match virq {
        Virq::Timer => {}
        Virq::Console | Virq::DomExc if !dom.privileged => return Err(Status::EPERM),
        // Global VIRQs go to vCPU 0.
        _ if v != 0 => return Err(Status::EINVAL),
        _ => {}
    }
    if dom.events.virqs[v][virq as usize] != 0 {
        return Err(Status::EEXIST);
    }
    let port = dom.events.alloc(PortState::Virq(virq), v as u32)?;
    fresh(dom, port);
    dom.events.virqs[v][virq as usize] = port;
    Ok(port)
}

/// `evtchn_bind_ipi(vcpu)`.
pub fn bind_ipi(t: &mut DomainTable, caller: DomId, vcpu: u64) -> Result<u32, Status> {
    let dom = t.get_mut(caller).ok_or(Status::ESRCH)?;
    let v = u32::try_from(vcpu).map_err(|_| Status::EINVAL)?;
    if v as usize >= dom.vcpus.len() {
        return Err(Status::EINVAL);
    }
    let port = dom.events.alloc(PortState::Ipi, v)?;
    Ok(fresh(dom, port))
}

fn port_arg(port: u64) -> Result<u32, Status> {
    u32::try_from(port).map_err(|_| Status::EINVAL)
}

/// `evtchn_send(port)`.
pub fn send(t: &mut DomainTable, caller: DomId, port: u64) -> Result<u64, Status> {
    let port = port_arg(port)?;
    let p = t.get(caller).ok_or(Status::ESRCH)?.events.get(port)?;
    match p.state {
        PortState::Interdomain { remote, rport } => {
            set_pending(t, remote, rport);
            Ok(0)
        }
        PortState::Ipi => {
            set_pending(t, caller, port);
            Ok(0)
        }
        PortState::Unbound { .. } => Err(Status::ENOTCONN),
        PortState::Virq(_) | PortState::Free => Err(Status::EINVAL),
    }
}

/// `evtchn_close(port)`.
pub fn close(t: &mut DomainTable, caller: DomId, port: u64) -> Result<u64, Status> {
    let port = port_arg(port)?;
    close_port(t, caller, port)?;
    Ok(0)
}

fn close_port(t: &mut DomainTable, dom: DomId, port: u32) -> Result<(), Status> {
    let d = t.get_mut(dom).ok_or(Status::ESRCH)?;
    let p = d.events.get(port)?;
    if let PortState::Virq(virq) = p.state
        && let Some(slot) = d.events.virqs.get_mut(p.vcpu as usize)
    {
        slot[virq as usize] = 0;
    }
    d.events.set(port, FREE);
    d.shared.clear_pending(port);
    if let PortState::Interdomain { remote, rport } = p.state {
        // The far end falls back to unbound (offered to us again) and hears
        // about it, so a waiter wakes and finds ENOTCONN.
        if let Some(far) = t.get_mut(remote)
            && let Ok(fp) = far.events.get(rport)
        {
            far.events.set(
                rport,
                Port {
                    state: PortState::Unbound { remote: dom },
                    vcpu: fp.vcpu,
                },
            );
            set_pending(t, remote, rport);
        }
    }
    Ok(())
}

/// Close every port of a domain that is going away.
pub fn close_all(t: &mut DomainTable, dom: DomId) {
    let ports: Vec<u32> = t
        .get(dom)
        .map(|d| d.events.allocated().collect())
        .unwrap_or_default();
    for port in ports {
        let _ = close_port(t, dom, port);
    }
}

/// `evtchn_unmask(port)`.
pub fn unmask(t: &mut DomainTable, caller: DomId, port: u64) -> Result<u64, Status> {
    let port = port_arg(port)?;
    let d = t.get_mut(caller).ok_or(Status::ESRCH)?;
    let p = d.events.get(port)?;
    d.shared.unmask(port);
    if d.shared.is_pending(port) {
        d.shared.mark_upcall(p.vcpu as usize, port);
        wake(t, caller, p.vcpu as usize, port);
    }
    Ok(0)
}

/// `evtchn_status(port)`.
pub fn status(t: &DomainTable, caller: DomId, port: u64) -> Result<EvtchnStatus, Status> {
    let port = port_arg(port)?;
    if port == 0 || port as usize >= EVTCHN_PORTS {
        return Err(Status::EINVAL);
    }
    let d = t.get(caller).ok_or(Status::ESRCH)?;
    let mut s = EvtchnStatus {
        port,
        ..EvtchnStatus::default()
    };
    match d.events.get(port) {
        Err(_) => s.state = EVTCHN_CLOSED,
        Ok(p) => {
            s.vcpu = p.vcpu;
            match p.state {
                PortState::Free => s.state = EVTCHN_CLOSED,
                PortState::Unbound { remote } => {
                    s.state = EVTCHN_UNBOUND;
                    s.remote_dom = remote;
                }
                PortState::Interdomain { remote, rport } => {
                    s.state = EVTCHN_INTERDOMAIN;
                    s.remote_dom = remote;
                    s.remote_port = rport;
                }
                PortState::Virq(v) => {
                    s.state = EVTCHN_VIRQ;
                    s.virq = v as u32;
                }
                PortState::Ipi => s.state = EVTCHN_IPI,
            }
        }
    }
    Ok(s)
}

/// Raise `virq` for vCPU `vcpu` of `dom` (no-op when unbound).
pub fn raise_virq(t: &mut DomainTable, dom: DomId, virq: Virq, vcpu: usize) {
    let port = t.get(dom).map_or(0, |d| d.events.virq_port(virq, vcpu));
    if port != 0 {
        set_pending(t, dom, port);
    }
}

/// Mark `port` of `dom` pending: the heart of delivery.
pub fn set_pending(t: &mut DomainTable, dom: DomId, port: u32) {
    let Some(d) = t.get_mut(dom) else { return };
    let Ok(p) = d.events.get(port) else { return };
    let v = p.vcpu as usize;
    let already = d.shared.test_and_set_pending(port);
    // A poller waits for this very port, whatever the masks say.
    wake_pollers(t, dom, port);
    let Some(d) = t.get_mut(dom) else { return };
    if already || d.shared.is_masked(port) {
        return;
    }
    d.shared.mark_upcall(v, port);
    wake(t, dom, v, port);
}

/// Wake vCPU `v` of `dom` from `sched_block` (an unmasked event arrived).
fn wake(t: &mut DomainTable, dom: DomId, v: usize, _port: u32) {
    if let Some(vcpu) = t.get_mut(dom).and_then(|d| d.vcpus.get_mut(v))
        && vcpu.blocked
        && vcpu.poll.is_none()
    {
        vcpu.blocked = false;
        crate::sched::kick();
    }
}

fn wake_pollers(t: &mut DomainTable, dom: DomId, port: u32) {
    let Some(d) = t.get_mut(dom) else { return };
    for vcpu in d.vcpus.iter_mut() {
        if vcpu.poll.as_ref().is_some_and(|p| p.ports.contains(&port)) {
            vcpu.poll = None;
            vcpu.blocked = false;
            vcpu.regs.rax = 1;
            crate::sched::kick();
        }
    }
}
