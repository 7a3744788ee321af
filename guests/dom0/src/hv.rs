//! The hypervisor as the toolstack sees it: the few privileged hypercalls
//! dom0 makes, behind a trait. The guest (`main.rs`) implements it over the
//! SDK's hypercall wrappers; the host tests (`fake.rs`) implement it with a
//! fake hypervisor that keeps domains and frames in memory.

use dom0_abi::{DomId, DomainConfig, DomainInfo, MmuOp, Status, VcpuContext};

/// The privileged hypercalls the toolstack uses, with the semantics of
/// `dom0_abi::Hypercall` (see `docs/abi.md`).
pub trait Hv {
    /// `domctl_create`: a new, empty, paused domain with
    /// `config.initial_pages` zeroed frames and no mappings.
    fn domctl_create(&mut self, config: &DomainConfig) -> Result<DomId, Status>;

    /// `domctl_destroy`: tear the domain down and return all its frames.
    fn domctl_destroy(&mut self, domid: DomId) -> Result<(), Status>;

    /// `domctl_unpause`: let a built domain run.
    fn domctl_unpause(&mut self, domid: DomId) -> Result<(), Status>;

    /// `domctl_getinfo`: the first domain with an ID `>= domid`; `ESRCH`
    /// past the last.
    fn domctl_getinfo(&mut self, domid: DomId) -> Result<DomainInfo, Status>;

    /// `domctl_set_vcpu_context`: vCPU 0's initial registers.
    fn domctl_set_vcpu_context(&mut self, domid: DomId, context: &VcpuContext) -> Result<(), Status>;

    /// `mmu_batch`: apply `ops` (at most `MMU_BATCH_MAX`) to the address
    /// space of `domid` (`DOMID_SELF` for dom0's own, where an op's
    /// `frame_domid` names a domain dom0 builds for a foreign mapping).
    /// Returns the number of operations applied.
    fn mmu_batch(&mut self, ops: &[MmuOp], domid: DomId) -> Result<usize, Status>;

    /// Copy `bytes` to dom0's own virtual address `va`, inside one page that
    /// an earlier `mmu_batch` on `DOMID_SELF` mapped writable at a
    /// [`crate::foreign`] scratch slot. `EFAULT` if it is not so mapped.
    fn write_mapped(&mut self, va: u64, bytes: &[u8]) -> Result<(), Status>;
}
