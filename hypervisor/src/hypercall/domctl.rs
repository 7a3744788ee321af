//! The privileged interface (dom0 only; the dispatcher refuses everyone
//! else with `EPERM`): create, destroy, pause and unpause domains, describe
//! them, set the initial vCPU context, and describe the machine.

use super::{Caller, domid_arg, read_guest, write_guest};
use crate::domain::State;
use dom0_abi::{
    CONSOLE_IO_MAX, ConsoleRead, DomainConfig, GUEST_VA_LIMIT, Physinfo, SCHED_WEIGHT_MAX, SchedParams,
    ShutdownReason, Status, VcpuContext, VcpuRecord, Virq, field_str,
};

/// `domctl_create(config)`: the new domain's ID.
pub fn create(c: &mut Caller<'_>, cfg_va: u64) -> Result<u64, Status> {
    let cfg: DomainConfig = read_guest(cfg_va)?;
    if cfg.flags != 0 || cfg.reserved != 0 {
        return Err(Status::EINVAL);
    }
    let name = field_str(&cfg.name);
    let id = c
        .table
        .create(name, cfg.initial_pages, cfg.max_pages, cfg.vcpus)?;
    Ok(u64::from(id))
}

/// `domctl_destroy(domid)`.
pub fn destroy(c: &mut Caller<'_>, domid: u64) -> Result<u64, Status> {
    let id = domid_arg(domid)?;
    if id == c.dom {
        return Err(Status::EINVAL);
    }
    c.table.destroy(id)?;
    Ok(0)
}

/// `domctl_pause(domid)` / `domctl_unpause(domid)`.
pub fn pause(c: &mut Caller<'_>, domid: u64, pause: bool) -> Result<u64, Status> {
    let id = domid_arg(domid)?;
    let dom = c.table.get_mut(id).ok_or(Status::ESRCH)?;
    if dom.privileged {
        return Err(Status::EPERM);
    }
    if dom.state != State::Alive || (!pause && !dom.built) {
        return Err(Status::EINVAL);
    }
    dom.paused = pause;
    crate::sched::kick();
    Ok(0)
}

/// `domctl_getinfo(domid, out)`: the ID of the domain described.
pub fn getinfo(c: &mut Caller<'_>, domid: u64, out: u64) -> Result<u64, Status> {
    let id = domid_arg(domid)?;
    let info = c.table.first_from(id).ok_or(Status::ESRCH)?.info();
    write_guest(out, &info)?;
    Ok(u64::from(info.domid))
}

/// `domctl_set_vcpu_context(domid, ctx)`: vCPU 0's initial registers; the
/// domain must be paused and not yet started.
pub fn set_vcpu_context(c: &mut Caller<'_>, domid: u64, ctx_va: u64) -> Result<u64, Status> {
    let id = domid_arg(domid)?;
    let ctx: VcpuContext = read_guest(ctx_va)?;
    if ctx.flags != 0 || ctx.reserved != [0; 3] || ctx.rip >= GUEST_VA_LIMIT || ctx.rsp >= GUEST_VA_LIMIT {
        return Err(Status::EINVAL);
    }
    let dom = c.table.get_mut(id).ok_or(Status::ESRCH)?;
    if dom.privileged {
        return Err(Status::EPERM);
    }
    if dom.state != State::Alive || !dom.paused || dom.built {
        return Err(Status::EBUSY);
    }
    let vcpu = dom.vcpus.first_mut().ok_or(Status::EINVAL)?;
    vcpu.set_context(ctx.rip, ctx.rsp, ctx.rdi, ctx.rsi);
    dom.built = true;
    crate::sched::kick();
    Ok(0)
}

/// `sysctl_physinfo(out)`.
pub fn physinfo(c: &mut Caller<'_>, out: u64) -> Result<u64, Status> {
    let (total, free) = crate::mm::setup::frame_counts();
    let version = |i: usize| {
        crate::init::VERSION
            .split('.')
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    let info = Physinfo {
        nr_cpus: 1,
        pad0: 0,
        total_pages: total,
        free_pages: free,
        tsc_khz: crate::time::tsc_hz().unwrap_or(0) / 1000,
        hv_major: version(0),
        hv_minor: version(1),
        hv_patch: version(2),
        pad1: 0,
        abi_major: dom0_abi::ABI_VERSION_MAJOR,
        abi_minor: dom0_abi::ABI_VERSION_MINOR,
        nr_domains: u32::try_from(c.table.len()).unwrap_or(u32::MAX),
        reserved: [0; 2],
    };
    write_guest(out, &info)?;
    Ok(0)
}

/// A domU the toolstack may act on: exists, is not dom0, is alive.
fn managed<'a>(c: &'a mut Caller<'_>, domid: u64) -> Result<&'a mut crate::domain::Domain, Status> {
    let id = domid_arg(domid)?;
    let dom = c.table.get_mut(id).ok_or(Status::ESRCH)?;
    if dom.privileged {
        return Err(Status::EPERM);
    }
    if dom.state == State::Dying {
        return Err(Status::ESRCH);
    }
    Ok(dom)
}

/// `domctl_shutdown(domid, reason)`: post the request and raise VIRQ_CONTROL.
pub fn shutdown(c: &mut Caller<'_>, domid: u64, reason: u64) -> Result<u64, Status> {
    let reason = ShutdownReason::try_from(reason)?;
    let dom = managed(c, domid)?;
    if dom.state != State::Alive {
        return Err(Status::EINVAL);
    }
    dom.shared.request_shutdown(1 + reason as u32);
    let id = dom.id;
    crate::event::raise_virq(c.table, id, Virq::Control, 0);
    Ok(0)
}

/// `domctl_set_max_mem(domid, max_pages)`.
pub fn set_max_mem(c: &mut Caller<'_>, domid: u64, max_pages: u64) -> Result<u64, Status> {
    let (total, _) = crate::mm::setup::frame_counts();
    let dom = managed(c, domid)?;
    if max_pages < dom.p2m.len() || max_pages > total {
        return Err(Status::EINVAL);
    }
    dom.max_pages = max_pages;
    Ok(0)
}

/// `domctl_set_vcpus(domid, online)`: vCPUs beyond `online` go down.
pub fn set_vcpus(c: &mut Caller<'_>, domid: u64, online: u64) -> Result<u64, Status> {
    let dom = managed(c, domid)?;
    let online = u32::try_from(online).map_err(|_| Status::EINVAL)?;
    if online == 0 || online as usize > dom.vcpus.len() {
        return Err(Status::EINVAL);
    }
    dom.vcpu_limit = online;
    for v in dom.vcpus.iter_mut().skip(online as usize) {
        v.online = false;
    }
    crate::sched::kick();
    Ok(0)
}

/// `domctl_sched_get(domid, out)`: dom0's own parameters too.
pub fn sched_get(c: &mut Caller<'_>, domid: u64, out: u64) -> Result<u64, Status> {
    let id = domid_arg(domid)?;
    let dom = c.table.get(id).ok_or(Status::ESRCH)?;
    let p = SchedParams {
        weight: dom.weight,
        cap: dom.cap,
        reserved: 0,
    };
    write_guest(out, &p)?;
    Ok(0)
}

/// `domctl_sched_set(domid, params)`: weight 1..=65535, cap 0..=100 (one CPU).
pub fn sched_set(c: &mut Caller<'_>, domid: u64, params: u64) -> Result<u64, Status> {
    let p: SchedParams = read_guest(params)?;
    if p.reserved != 0 || p.weight == 0 || p.weight > SCHED_WEIGHT_MAX || p.cap > 100 {
        return Err(Status::EINVAL);
    }
    let id = domid_arg(domid)?;
    let dom = c.table.get_mut(id).ok_or(Status::ESRCH)?;
    dom.weight = p.weight;
    dom.cap = p.cap;
    crate::sched::params_changed(id, p.weight, p.cap);
    Ok(0)
}

fn ring_read<const N: usize>(ring: &crate::ring::ByteRing<N>, io_va: u64) -> Result<u64, Status> {
    let mut io: ConsoleRead = read_guest(io_va)?;
    if io.len > CONSOLE_IO_MAX {
        return Err(Status::E2BIG);
    }
    let mut bytes = [0u8; CONSOLE_IO_MAX as usize];
    let (start, n) = ring.read(io.from, &mut bytes[..io.len as usize]);
    crate::arch::uaccess::copy_to_guest(io.buf, &bytes[..n])?;
    io.next = start + n as u64;
    write_guest(io_va, &io)?;
    Ok(n as u64)
}

/// `domctl_console_read(domid, io)`.
pub fn console_read(c: &mut Caller<'_>, domid: u64, io: u64) -> Result<u64, Status> {
    let id = domid_arg(domid)?;
    let dom = c.table.get(id).ok_or(Status::ESRCH)?;
    ring_read(dom.console.ring(), io)
}

/// `sysctl_dmesg(io)`.
pub fn dmesg(io: u64) -> Result<u64, Status> {
    let ring = crate::console::LOG_RING.lock();
    ring_read(&ring, io)
}

/// `domctl_vcpu_pin(domid, vcpu, mask)`: kept; must name an existing CPU.
pub fn vcpu_pin(c: &mut Caller<'_>, domid: u64, vcpu: u64, mask: u64) -> Result<u64, Status> {
    let nr_cpus = 1u32;
    if mask & ((1u64 << nr_cpus) - 1) == 0 {
        return Err(Status::EINVAL);
    }
    let id = domid_arg(domid)?;
    let dom = c.table.get_mut(id).ok_or(Status::ESRCH)?;
    let v = usize::try_from(vcpu).map_err(|_| Status::EINVAL)?;
    dom.vcpus.get_mut(v).ok_or(Status::EINVAL)?.affinity = mask;
    Ok(0)
}

/// `domctl_vcpu_info(domid, vcpu, out)`.
pub fn vcpu_info(c: &mut Caller<'_>, domid: u64, vcpu: u64, out: u64) -> Result<u64, Status> {
    let id = domid_arg(domid)?;
    let current = (c.dom, c.vcpu);
    let dom = c.table.get(id).ok_or(Status::ESRCH)?;
    let v = usize::try_from(vcpu).map_err(|_| Status::EINVAL)?;
    let vc = dom.vcpus.get(v).ok_or(Status::EINVAL)?;
    let rec = VcpuRecord {
        online: u8::from(vc.online && (v as u32) < dom.vcpu_limit),
        blocked: u8::from(vc.blocked),
        running: u8::from(current == (id, v)),
        pad: 0,
        cpu: 0,
        affinity: vc.affinity,
        cpu_time_ns: crate::time::tsc_to_ns(vc.cpu_tsc),
        reserved: 0,
    };
    write_guest(out, &rec)?;
    Ok(0)
}

/// `domctl_set_target(domid, pages)`: post the balloon target, raise VIRQ_CONTROL.
pub fn set_target(c: &mut Caller<'_>, domid: u64, pages: u64) -> Result<u64, Status> {
    let dom = managed(c, domid)?;
    if pages == 0 || pages > dom.max_pages {
        return Err(Status::EINVAL);
    }
    dom.shared.set_mem_target(pages);
    let id = dom.id;
    crate::event::raise_virq(c.table, id, Virq::Control, 0);
    Ok(0)
}
