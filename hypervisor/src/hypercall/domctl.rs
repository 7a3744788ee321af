//! The privileged interface (dom0 only; the dispatcher refuses everyone
//! else with `EPERM`): create, destroy, pause and unpause domains, describe
//! them, set the initial vCPU context, and describe the machine.

use super::{Caller, domid_arg, read_guest, write_guest};
use crate::domain::State;
use dom0_abi::{DomainConfig, GUEST_VA_LIMIT, Physinfo, Status, VcpuContext, field_str};

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
    if dom.state != State::Alive || !dom.paused {
        return Err(Status::EBUSY);
    }
    let vcpu = dom.vcpus.first_mut().ok_or(Status::EINVAL)?;
    vcpu.set_context(ctx.rip, ctx.rsp, ctx.rdi, ctx.rsi);
    dom.built = true;
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
