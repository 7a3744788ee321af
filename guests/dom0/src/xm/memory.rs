//! `xm mem-set DOM MB` (the memory the domain should balloon to:
//! `domctl_set_target`) and `xm mem-max DOM MB` (the most it may have:
//! `domctl_set_max_mem`). Sizes are MiB (`64`, `64m`, `1g`, `65536k`).

use dom0_abi::Status;

use super::{Fail, Next, hv_fail, is_dom0, mib, name_of, resolve};
use crate::config::{MAX_MEMORY_MIB, PAGES_PER_MIB};
use crate::hv::Hv;

/// `xm mem-set DOM MB`.
pub fn mem_set<H: Hv>(hv: &mut H, spec: &str, target_mib: u64) -> Result<Next, Fail> {
    let info = resolve(hv, spec)?;
    let name = name_of(&info);
    if is_dom0(&info) {
        return Err(Fail::error(
            "Domain-0 does not balloon; its memory is fixed at boot.",
        ));
    }
    if target_mib == 0 || target_mib > MAX_MEMORY_MIB {
        return Err(Fail::error(alloc::format!(
            "Invalid memory target {target_mib} MiB."
        )));
    }
    if target_mib > mib(info.max_pages) {
        return Err(Fail::error(alloc::format!(
            "Cannot set the memory of {name} to {target_mib} MiB: its maximum is {} MiB \
             (raise it with xm mem-max first).",
            mib(info.max_pages)
        )));
    }
    hv.domctl_set_target(info.domid, target_mib * PAGES_PER_MIB)
        .map_err(|s| hv_fail(alloc::format!("Setting the memory target of {name}"), s))?;
    Ok(Next::Prompt)
}

/// `xm mem-max DOM MB`.
pub fn mem_max<H: Hv>(hv: &mut H, spec: &str, max_mib: u64) -> Result<Next, Fail> {
    let info = resolve(hv, spec)?;
    let name = name_of(&info);
    if is_dom0(&info) {
        return Err(Fail::error(
            "Cannot change the maximum memory of privileged domain Domain-0.",
        ));
    }
    if max_mib == 0 || max_mib > MAX_MEMORY_MIB {
        return Err(Fail::error(alloc::format!(
            "Invalid maximum memory {max_mib} MiB."
        )));
    }
    let pages = max_mib * PAGES_PER_MIB;
    if pages < info.tot_pages {
        return Err(Fail::error(alloc::format!(
            "Cannot set the maximum memory of {name} to {max_mib} MiB: it has {} MiB now.",
            mib(info.tot_pages).max(1)
        )));
    }
    match hv.domctl_set_max_mem(info.domid, pages) {
        Ok(()) => Ok(Next::Prompt),
        Err(Status::EINVAL) => Err(Fail::error(alloc::format!(
            "Cannot set the maximum memory of {name} to {max_mib} MiB: the hypervisor refused it \
             (more than the machine has?)."
        ))),
        Err(s) => Err(hv_fail(alloc::format!("Setting the maximum memory of {name}"), s)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion
mod tests {
    use super::*;
    use crate::fake::FakeHv;
    use dom0_abi::DomainConfig;

    #[test]
    fn targets_and_maxima() {
        let mut hv = FakeHv::with_dom0(100_000);
        let config = DomainConfig {
            max_pages: 16 * 256,
            initial_pages: 8 * 256,
            vcpus: 1,
            flags: 0,
            name: dom0_abi::name_field("web"),
            reserved: 0,
        };
        hv.domctl_create(&config).unwrap();
        mem_set(&mut hv, "web", 12).unwrap();
        assert_eq!(hv.domain(1).mem_target, Some(12 * 256));
        assert!(
            matches!(mem_set(&mut hv, "web", 17), Err(Fail::Error(e)) if e.contains("its maximum is 16 MiB"))
        );
        mem_max(&mut hv, "1", 64).unwrap();
        assert_eq!(hv.domain(1).config.max_pages, 64 * 256);
        mem_set(&mut hv, "web", 40).unwrap();
        assert!(matches!(mem_max(&mut hv, "web", 4), Err(Fail::Error(e)) if e.contains("it has 8 MiB now")));
        assert!(matches!(mem_max(&mut hv, "web", 1_000_000), Err(Fail::Error(e)) if e.contains("refused")));
        assert!(mem_set(&mut hv, "Domain-0", 16).is_err());
        assert!(mem_max(&mut hv, "0", 16).is_err());
        assert!(mem_set(&mut hv, "web", 0).is_err());
        assert_eq!(
            mem_set(&mut hv, "nosuch", 8).unwrap_err(),
            Fail::Error("Domain 'nosuch' does not exist.".into())
        );
    }
}
